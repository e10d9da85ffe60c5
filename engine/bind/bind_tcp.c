/* TCP client resource: `task.tcp_connect(host, port [, {timeout=}])` -> sock
 * with sock:read(), sock:write(data), sock:shutdown(), sock:close().
 *
 * One struct per socket (ml_res first). Everything runs on the engine loop;
 * completions never resume a task: they push the resume values on the task's
 * coroutine and post it (true, ... | false, err). Cancellation is delivered by
 * the runtime; our op-cancel callbacks only undo the registration.
 *
 * Lifetimes:
 *   - the uv_tcp_t, the connect request and the shutdown request live inside
 *     the socket struct: libuv calls their callbacks (UV_ECANCELED) before the
 *     handle's close callback, which is where the struct is released;
 *   - a write request is allocated per write (small) and freed by its
 *     callback, so a write whose task was cancelled can finish on its own
 *     while another task writes next;
 *   - the getaddrinfo request is not tied to the handle: it is allocated on
 *     its own and owns a pointer back to the socket that close() clears
 *     (and close() uv_cancel()s it); its callback frees it in every case;
 *   - reads go into one fixed 64 KiB buffer owned by the socket: libuv reads
 *     ahead until it is full, then reading stops until a task calls read().
 *
 * Values for a suspended coroutine that need allocation (strings, the socket
 * handle) are built on the loop's own thread (loop->L) and moved with
 * lua_xmove, so a GC step never runs on a suspended coroutine's stack. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ml_bind.h"

static const char TCP_MT[] = "moonline.tcp";

#define TCP_BUF_SIZE (64 * 1024)
#define TCP_DEFAULT_TIMEOUT_NS 10000000000ull

enum { H_NONE, H_OPEN, H_CLOSING }; /* state of the uv_tcp_t */

typedef struct tcp_dns tcp_dns;
typedef struct tcp_wreq tcp_wreq;

typedef struct tcp_sock {
  ml_res res; /* first */
  uv_tcp_t tcp;
  int hstate;
  /* connect */
  ml_task *conn_waiter;
  tcp_dns *dns; /* in-flight getaddrinfo */
  struct addrinfo *ai, *ai_next; /* addresses still to try */
  uv_connect_t connect_req;
  ml_timer conn_timer;
  int failing; /* connect failed: the waiter is woken once the handle is closed */
  int last_err;
  char errbuf[128];
  /* read */
  ml_task *reader;
  int reading; /* uv_read_start active */
  int eof;
  int read_err;
  size_t len; /* bytes buffered in buf */
  /* write */
  ml_task *writer;
  tcp_wreq *wreq; /* the request `writer` waits for */
  /* shutdown */
  ml_task *shutter;
  uv_shutdown_t shutdown_req;
  int shut; /* 0 not asked, 1 in flight, 2 done */
  int shut_status;
  char buf[TCP_BUF_SIZE];
} tcp_sock;

struct tcp_dns {
  uv_getaddrinfo_t req;
  tcp_sock *s; /* NULL once the socket closed: the result is dropped */
};

/* The Lua string being written is kept alive by a registry reference instead
 * of being copied: Lua strings are immutable and LuaJIT never moves them, so
 * the pointer stays valid until the callback drops the reference, and large
 * payloads (audio frames) are written without a copy. */
struct tcp_wreq {
  uv_write_t req;
  tcp_sock *s;
  int ref;
};

/* ---- waking waiters ---------------------------------------------------------- */

/* Post t with (true, true) or (false, msg). */
static void wake(ml_task *t, int ok, const char *msg)
{
  lua_checkstack(t->co, 3);
  lua_pushboolean(t->co, ok);
  if (ok) {
    lua_pushboolean(t->co, 1);
  } else {
    lua_State *L = t->loop->L;
    lua_pushstring(L, msg);
    lua_xmove(L, t->co, 1);
  }
  ml_task_post(t, 2);
}

static const char *errmsg(int status)
{
  if (status == UV_ETIMEDOUT) return "timeout";
  return uv_strerror(status);
}

static void take_and_wake(ml_task **slot, int ok, const char *msg)
{
  ml_task *t = *slot;
  if (!t) return;
  *slot = NULL;
  wake(t, ok, msg);
}

/* ---- close ------------------------------------------------------------------ */

/* The handle is closed: wake a failed connect's waiter, then release. */
static void tcp_finish(tcp_sock *s)
{
  if (s->conn_waiter) {
    ml_task *t = s->conn_waiter;
    s->conn_waiter = NULL;
    wake(t, 0, s->errbuf); /* copied onto the task's stack before s goes */
  }
  ml_res_closed(&s->res); /* frees s */
}

static void connect_next(tcp_sock *s);

static void on_close(uv_handle_t *h)
{
  tcp_sock *s = h->data;
  s->hstate = H_NONE;
  if (s->res.state == ML_RES_OPEN) {
    connect_next(s); /* closed to retry the next address */
    return;
  }
  tcp_finish(s);
}

static void tcp_close(ml_res *r)
{
  tcp_sock *s = (tcp_sock *)r;
  ml_timer_stop(r->loop, &s->conn_timer);
  if (s->dns) {
    s->dns->s = NULL;
    uv_cancel((uv_req_t *)&s->dns->req);
    s->dns = NULL;
  }
  if (s->ai) uv_freeaddrinfo(s->ai);
  s->ai = s->ai_next = NULL;
  if (!s->failing) take_and_wake(&s->conn_waiter, 0, "closed");
  take_and_wake(&s->reader, 0, "closed");
  take_and_wake(&s->writer, 0, "closed");
  take_and_wake(&s->shutter, 0, "closed");
  s->wreq = NULL;
  if (s->hstate == H_OPEN) {
    s->hstate = H_CLOSING;
    uv_close((uv_handle_t *)&s->tcp, on_close);
  } else if (s->hstate == H_NONE) {
    tcp_finish(s);
  } /* H_CLOSING: on_close finishes */
}

static void tcp_free(ml_res *r) { free(r); }

static ml_res_type tcp_type = {"tcp", 0, tcp_close, tcp_free};

/* ---- connect ---------------------------------------------------------------- */

/* The connect failed: close the socket; its waiter gets (false, msg) once the
 * handle is gone, so after `nil, err` the ledger no longer counts it. */
static void connect_fail(tcp_sock *s, const char *msg)
{
  if (s->res.state != ML_RES_OPEN) return;
  snprintf(s->errbuf, sizeof s->errbuf, "%s", msg);
  s->failing = 1;
  ml_res_close(&s->res);
}

static void connect_done(tcp_sock *s)
{
  ml_timer_stop(s->res.loop, &s->conn_timer);
  if (s->ai) uv_freeaddrinfo(s->ai);
  s->ai = s->ai_next = NULL;
  ml_task *t = s->conn_waiter;
  s->conn_waiter = NULL;
  if (!t) { /* cannot happen: a cancelled connect closes the socket */
    ml_res_close(&s->res);
    return;
  }
  lua_State *L = s->res.loop->L;
  lua_checkstack(t->co, 3);
  lua_pushboolean(t->co, 1);
  ml_box_new(L, &s->res, TCP_MT);
  lua_xmove(L, t->co, 1);
  ml_task_post(t, 2);
}

static void on_connect(uv_connect_t *req, int status)
{
  tcp_sock *s = req->data;
  if (s->res.state != ML_RES_OPEN) return; /* closing: the waiter was woken */
  if (status == 0) {
    connect_done(s);
    return;
  }
  s->last_err = status;
  if (s->ai_next) { /* another address: a fresh handle for it */
    s->hstate = H_CLOSING;
    uv_close((uv_handle_t *)&s->tcp, on_close);
    return;
  }
  connect_fail(s, errmsg(status));
}

static int start_connect(tcp_sock *s, const struct sockaddr *addr)
{
  if (s->hstate == H_NONE) {
    int rc = uv_tcp_init(s->res.loop->uv, &s->tcp);
    if (rc) return rc;
    s->tcp.data = s;
    s->hstate = H_OPEN;
  }
  s->connect_req.data = s;
  return uv_tcp_connect(&s->connect_req, &s->tcp, addr, on_connect);
}

/* Try the remaining resolved addresses in order (the handle is fresh). */
static void connect_next(tcp_sock *s)
{
  while (s->ai_next) {
    struct addrinfo *ai = s->ai_next;
    s->ai_next = ai->ai_next;
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    int rc = start_connect(s, ai->ai_addr);
    if (rc == 0) return;
    s->last_err = rc;
    if (s->hstate == H_OPEN && s->ai_next) { /* the failed handle may hold a socket */
      s->hstate = H_CLOSING;
      uv_close((uv_handle_t *)&s->tcp, on_close);
      return;
    }
  }
  connect_fail(s, errmsg(s->last_err ? s->last_err : UV_EAI_NONAME));
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
  tcp_dns *d = ml_container_of(req, tcp_dns, req);
  tcp_sock *s = d->s;
  free(d);
  if (!s) { /* the socket closed meanwhile */
    if (res) uv_freeaddrinfo(res);
    return;
  }
  s->dns = NULL;
  if (status < 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "getaddrinfo: %s", uv_strerror(status));
    if (res) uv_freeaddrinfo(res);
    connect_fail(s, msg);
    return;
  }
  s->ai = s->ai_next = res;
  connect_next(s);
}

static void conn_timeout(ml_timer *tm)
{
  tcp_sock *s = ml_container_of(tm, tcp_sock, conn_timer);
  connect_fail(s, "timeout");
}

/* The connecting task was cancelled (or abandoned): nobody can receive the
 * socket any more, so close it now rather than at scope exit. */
static void connect_cancel(ml_task *t, void *data)
{
  (void)t;
  tcp_sock *s = data;
  s->conn_waiter = NULL;
  ml_res_close(&s->res);
}

static int push_fail(lua_State *L, const char *msg)
{
  lua_pushboolean(L, 0);
  lua_pushstring(L, msg);
  return 2;
}

static uint64_t opt_timeout(lua_State *L, int idx)
{
  if (lua_isnoneornil(L, idx)) return TCP_DEFAULT_TIMEOUT_NS;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "timeout");
  uint64_t ns = TCP_DEFAULT_TIMEOUT_NS;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER) luaL_argerror(L, idx, "opts.timeout must be a number of seconds");
    lua_Number sec = lua_tonumber(L, -1);
    if (!(sec > 0)) luaL_argerror(L, idx, "opts.timeout must be > 0");
    if (sec > 1e9) sec = 1e9;
    ns = (uint64_t)(sec * 1e9);
  }
  lua_pop(L, 1);
  return ns;
}

/* core.tcp_connect(host, port [, opts]) -> true, sock | false, err */
static int l_tcp_connect(lua_State *L)
{
  size_t hlen;
  const char *host = luaL_checklstring(L, 1, &hlen);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_argcheck(L, hlen > 0 && hlen < 256, 1, "host must be a non-empty name or address");
  luaL_argcheck(L, port > 0 && port < 65536, 2, "port must be in 1..65535");
  uint64_t timeout = opt_timeout(L, 3);
  ml_task *t = ml_bind_wait_task(L, "task.tcp_connect");
  if (ml_bind_cancelled(t)) return lua_yield(L, 0);
  ml_loop *loop = t->loop;

  tcp_sock *s = calloc(1, sizeof *s);
  if (!s) return luaL_error(L, "out of memory");
  int rc = uv_tcp_init(loop->uv, &s->tcp);
  if (rc) {
    free(s);
    return push_fail(L, uv_strerror(rc));
  }
  s->tcp.data = s;
  s->hstate = H_OPEN;
  ml_timer_init(&s->conn_timer, conn_timeout);
  char where[64];
  ml_bind_where(L, where, sizeof where);
  ml_res_open(loop, &s->res, &tcp_type, t->cur, where);

  /* From here on every failure goes through connect_fail: the task is woken
   * with (false, err) once the handle is closed, like an asynchronous one. */
  struct sockaddr_storage ss;
  char msg[128];
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss) == 0) {
    /* numeric addresses skip the resolver (and the threadpool) */
    rc = start_connect(s, (struct sockaddr *)&ss);
    if (rc) connect_fail(s, errmsg(rc));
  } else {
    tcp_dns *d = calloc(1, sizeof *d);
    if (!d) {
      ml_res_close(&s->res);
      return luaL_error(L, "out of memory");
    }
    d->s = s;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", (int)port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    rc = uv_getaddrinfo(loop->uv, &d->req, on_resolved, host, portstr, &hints);
    if (rc) {
      free(d);
      snprintf(msg, sizeof msg, "getaddrinfo: %s", uv_strerror(rc));
      connect_fail(s, msg);
    } else {
      s->dns = d;
    }
  }
  if (!s->failing) ml_timer_start(loop, &s->conn_timer, timeout);
  s->conn_waiter = t;
  ml_task_wait(t, connect_cancel, s, "tcp connect");
  return lua_yield(L, 0);
}

/* ---- read ------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  (void)suggested;
  tcp_sock *s = h->data;
  *buf = uv_buf_init(s->buf + s->len, (unsigned)(TCP_BUF_SIZE - s->len)); /* len 0: UV_ENOBUFS */
}

static void read_stop(tcp_sock *s)
{
  if (!s->reading) return;
  uv_read_stop((uv_stream_t *)&s->tcp);
  s->reading = 0;
}

/* Hand the buffered bytes to the reader: (true, data). */
static void deliver(tcp_sock *s)
{
  ml_task *t = s->reader;
  s->reader = NULL;
  lua_State *L = s->res.loop->L;
  lua_checkstack(t->co, 3);
  lua_pushboolean(t->co, 1);
  lua_pushlstring(L, s->buf, s->len);
  lua_xmove(L, t->co, 1);
  s->len = 0;
  ml_task_post(t, 2);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
  (void)buf;
  tcp_sock *s = st->data;
  if (s->res.state != ML_RES_OPEN) return;
  if (nread > 0) {
    s->len += (size_t)nread;
    if (s->reader)
      deliver(s);
    else if (s->len == TCP_BUF_SIZE)
      read_stop(s); /* full and nobody reads: let TCP push back */
    return;
  }
  if (nread == 0) return; /* EAGAIN */
  if (nread == UV_ENOBUFS) {
    read_stop(s);
    return;
  }
  read_stop(s);
  if (nread == UV_EOF)
    s->eof = 1;
  else
    s->read_err = (int)nread;
  if (s->reader) take_and_wake(&s->reader, 0, s->eof ? "eof" : errmsg(s->read_err));
}

static int read_start(tcp_sock *s)
{
  if (s->reading || s->eof || s->read_err || s->len == TCP_BUF_SIZE) return 0;
  int rc = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
  if (rc == 0) s->reading = 1;
  return rc;
}

static void read_cancel(ml_task *t, void *data)
{
  (void)t;
  ((tcp_sock *)data)->reader = NULL; /* bytes that arrive stay buffered */
}

static tcp_sock *check_open(lua_State *L)
{
  tcp_sock *s = (tcp_sock *)ml_box_get(L, 1, TCP_MT);
  return s && s->res.state == ML_RES_OPEN ? s : NULL;
}

/* sock:read() -> true, data | false, "eof" | "closed" | err */
static int l_read(lua_State *L)
{
  tcp_sock *s = check_open(L);
  ml_task *t = ml_bind_wait_task(L, "tcp:read");
  if (!s) return push_fail(L, "closed");
  if (s->reader)
    return luaL_error(L, "moonline.tcp:read: another task is already reading this socket "
                         "(one reader at a time)");
  if (ml_bind_cancelled(t)) return lua_yield(L, 0);
  if (s->len > 0) {
    lua_pushboolean(L, 1);
    lua_pushlstring(L, s->buf, s->len);
    s->len = 0;
    read_start(s); /* it may have stopped on a full buffer */
    return 2;
  }
  if (s->eof) return push_fail(L, "eof");
  if (s->read_err) return push_fail(L, errmsg(s->read_err));
  int rc = read_start(s);
  if (rc) return push_fail(L, errmsg(rc));
  s->reader = t;
  ml_task_wait(t, read_cancel, s, "tcp read");
  return lua_yield(L, 0);
}

/* ---- write ------------------------------------------------------------------ */

static void on_write(uv_write_t *req, int status)
{
  tcp_wreq *w = ml_container_of(req, tcp_wreq, req);
  tcp_sock *s = w->s; /* alive: write callbacks come before the close callback */
  luaL_unref(s->res.loop->L, LUA_REGISTRYINDEX, w->ref);
  if (s->wreq == w) {
    s->wreq = NULL;
    take_and_wake(&s->writer, status == 0, status == 0 ? NULL : errmsg(status));
  }
  free(w);
}

static void write_cancel(ml_task *t, void *data)
{
  (void)t;
  tcp_sock *s = data;
  s->writer = NULL; /* the bytes already queued still go out */
  s->wreq = NULL;
}

/* sock:write(data) -> true, true | false, err */
static int l_write(lua_State *L)
{
  tcp_sock *s = check_open(L);
  size_t n;
  const char *data = luaL_checklstring(L, 2, &n);
  ml_task *t = ml_bind_wait_task(L, "tcp:write");
  if (!s) return push_fail(L, "closed");
  if (s->writer)
    return luaL_error(L, "moonline.tcp:write: another task is already writing to this socket "
                         "(one writer at a time)");
  if (ml_bind_cancelled(t)) return lua_yield(L, 0);
  if (s->shut) return push_fail(L, "shut down");
  if (n == 0) {
    return ml_bind_ok(L);
  }
  tcp_wreq *w = malloc(sizeof *w);
  if (!w) return luaL_error(L, "out of memory");
  w->s = s;
  lua_pushvalue(L, 2);
  w->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)n);
  int rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, on_write);
  if (rc) {
    luaL_unref(L, LUA_REGISTRYINDEX, w->ref);
    free(w);
    return push_fail(L, errmsg(rc));
  }
  s->writer = t;
  s->wreq = w;
  ml_task_wait(t, write_cancel, s, "tcp write");
  return lua_yield(L, 0);
}

/* ---- shutdown --------------------------------------------------------------- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
  tcp_sock *s = req->data;
  s->shut = 2;
  s->shut_status = status;
  if (s->res.state != ML_RES_OPEN) return;
  take_and_wake(&s->shutter, status == 0, status == 0 ? NULL : errmsg(status));
}

static void shutdown_cancel(ml_task *t, void *data)
{
  (void)t;
  ((tcp_sock *)data)->shutter = NULL; /* the shutdown still completes */
}

/* sock:shutdown() -> true, true | false, err: ends our side once the queued
 * writes are out; reading goes on until the peer closes. */
static int l_shutdown(lua_State *L)
{
  tcp_sock *s = check_open(L);
  ml_task *t = ml_bind_wait_task(L, "tcp:shutdown");
  if (!s) return push_fail(L, "closed");
  if (s->shutter)
    return luaL_error(L, "moonline.tcp:shutdown: another task is already shutting this socket down");
  if (ml_bind_cancelled(t)) return lua_yield(L, 0);
  if (s->shut == 2) {
    if (s->shut_status) return push_fail(L, errmsg(s->shut_status));
    return ml_bind_ok(L);
  }
  if (s->shut == 0) {
    s->shutdown_req.data = s;
    int rc = uv_shutdown(&s->shutdown_req, (uv_stream_t *)&s->tcp, on_shutdown);
    if (rc) return push_fail(L, errmsg(rc));
    s->shut = 1;
  }
  s->shutter = t;
  ml_task_wait(t, shutdown_cancel, s, "tcp shutdown");
  return lua_yield(L, 0);
}

/* libuv writes streams with write(2), so a write to a connection the peer
 * has reset raises SIGPIPE, whose default action kills the process. Writes
 * must fail with EPIPE instead: ignore SIGPIPE unless the host program has
 * installed its own handler. */
static void ignore_sigpipe(void)
{
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) != 0 || sa.sa_handler != SIG_DFL) return;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGPIPE, &sa, NULL);
}

int ml_open_tcp(lua_State *L)
{
  ignore_sigpipe();
  static const luaL_Reg methods[] = {
      {"read", l_read}, {"write", l_write}, {"shutdown", l_shutdown}, {"close", ml_box_close}, {NULL, NULL}};
  ml_res_type_register(&tcp_type);
  ml_bind_class(L, TCP_MT, methods);
  lua_pushcfunction(L, l_tcp_connect);
  lua_setfield(L, -2, "tcp_connect");
  return 0;
}
