/* HTTP client resource: `core.http_request(opts)` -> true, res | false, err,
 * then res:headers(), res:read(), res:close(). The Lua half is
 * moonline/http.lua; the connection itself is engine/net/http_client.c.
 *
 * The request is a runtime resource (kind "http") registered in the calling
 * task's current scope before anything can yield, so scope unwind,
 * cancellation and __gc close it. Closing is synchronous: the lws connection
 * is cut loose and killed, the struct is freed at once.
 *
 * Waking: the connection reports every change through notify(), possibly
 * from inside an lws callback, where no Lua may run (a GC step could close
 * another connection lws is servicing). So a waiter is only ever resumed
 * with a bare `true`, which allocates nothing, and the Lua half calls the
 * raw method again, which reads the new state from the task itself:
 *   headers(): true, status, headers | false, err | (waits) true
 *   read():    true, chunk | true, false (end) | false, err | (waits) true
 * Cancellation is delivered by the runtime as usual (nil, reason, scope).
 *
 * Every wait is bounded: `timeout` covers connect + request + response
 * headers, `idle_timeout` each read that finds nothing queued. Either one
 * firing fails the connection with "timeout". */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_client.h"
#include "ml_bind.h"

static const char HTTP_MT[] = "moonline.http";

#define HTTP_DEFAULT_TIMEOUT_NS 30000000000ull
#define HTTP_DEFAULT_IDLE_NS 60000000000ull
#define HTTP_DEFAULT_MAX_BUFFER (1u << 20)

typedef struct http_res {
  ml_res res; /* first */
  ml_http_conn conn;
  ml_task *waiter;
  ml_timer hdr_timer; /* connect + until the response headers */
  ml_timer idle_timer; /* a read waiting with nothing queued */
  uint64_t idle_ns;
  int body_ref; /* the request body string, kept alive while lws sends it */
} http_res;

/* ---- waking --------------------------------------------------------------------- */

static void wake_waiter(http_res *h)
{
  ml_task *t = h->waiter;
  if (!t) return;
  h->waiter = NULL;
  ml_timer_stop(h->res.loop, &h->idle_timer);
  lua_checkstack(t->co, 1);
  lua_pushboolean(t->co, 1);
  ml_task_post(t, 1);
}

static void on_notify(ml_http_conn *c)
{
  http_res *h = ml_container_of(c, http_res, conn);
  if (c->have_headers || c->state == ML_HTTP_FAILED || c->state == ML_HTTP_DONE)
    ml_timer_stop(h->res.loop, &h->hdr_timer);
  wake_waiter(h);
}

static void on_timeout(http_res *h)
{
  ml_timer_stop(h->res.loop, &h->hdr_timer);
  ml_http_conn_abort(&h->conn, "timeout");
  wake_waiter(h);
}

static void hdr_timeout(ml_timer *tm) { on_timeout(ml_container_of(tm, http_res, hdr_timer)); }
static void idle_timeout(ml_timer *tm) { on_timeout(ml_container_of(tm, http_res, idle_timer)); }

/* ---- resource -------------------------------------------------------------------- */

static void http_close(ml_res *r)
{
  http_res *h = (http_res *)r;
  ml_timer_stop(r->loop, &h->hdr_timer);
  ml_timer_stop(r->loop, &h->idle_timer);
  ml_http_conn_abort(&h->conn, NULL);
  wake_waiter(h); /* its next call finds the handle closed */
  ml_res_closed(r);
}

static void http_free(ml_res *r)
{
  http_res *h = (http_res *)r;
  ml_http_conn_free(&h->conn);
  if (h->body_ref != LUA_NOREF) luaL_unref(r->loop->L, LUA_REGISTRYINDEX, h->body_ref);
  free(h);
}

static ml_res_type http_type = {"http", 0, http_close, http_free};

/* ---- options ---------------------------------------------------------------------- */

static uint64_t opt_seconds(lua_State *L, const char *name, uint64_t dflt)
{
  lua_getfield(L, 1, name);
  uint64_t ns = dflt;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "moonline.http.request: opts.%s must be a number of seconds", name);
    lua_Number sec = lua_tonumber(L, -1);
    if (!(sec > 0)) luaL_error(L, "moonline.http.request: opts.%s must be > 0", name);
    if (sec > 1e9) sec = 1e9;
    ns = (uint64_t)(sec * 1e9);
  }
  lua_pop(L, 1);
  return ns;
}

static const char *opt_string(lua_State *L, const char *name, size_t *len)
{
  lua_getfield(L, 1, name);
  const char *s = NULL;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "moonline.http.request: opts.%s must be a string", name);
    s = lua_tolstring(L, -1, len);
  }
  lua_pop(L, 1); /* still referenced by opts */
  return s;
}

static int is_token(const char *s, size_t n)
{
  static const char extra[] = "!#$%&'*+-.^_`|~";
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch && strchr(extra, ch))))
      return 0;
  }
  return 1;
}

/* Append "name\0value\0" (lower-case name) to a growing buffer. */
static void pack(lua_State *L, char **buf, size_t *len, size_t *cap, const char *name, size_t nl,
                 const char *value, size_t vl)
{
  size_t need = *len + nl + vl + 2;
  if (need > *cap) {
    size_t ncap = *cap ? *cap * 2 : 256;
    while (ncap < need) ncap *= 2;
    char *nb = realloc(*buf, ncap);
    if (!nb) {
      free(*buf);
      *buf = NULL;
      luaL_error(L, "out of memory");
    }
    *buf = nb;
    *cap = ncap;
  }
  char *p = *buf + *len;
  for (size_t i = 0; i < nl; i++) p[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
  p[nl] = '\0';
  if (value) memcpy(p + nl + 1, value, vl);
  p[nl + 1 + vl] = '\0';
  *len = need;
  if (!value) *len = *len - 1; /* names only: "name\0" */
}

/* opts.headers -> packed request headers; with c NULL only checks them
 * (and raises on misuse). */
static void opt_headers(lua_State *L, ml_http_conn *c)
{
  lua_getfield(L, 1, "headers");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, -1)) luaL_error(L, "moonline.http.request: opts.headers must be a table");
  size_t cap = 0;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    size_t nl, vl;
    if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
      luaL_error(L, "moonline.http.request: opts.headers must map names to strings");
    const char *name = lua_tolstring(L, -2, &nl);
    lua_pushvalue(L, -1); /* a copy: tolstring on a number converts in place */
    const char *value = lua_tolstring(L, -1, &vl);
    if (!is_token(name, nl) || strlen(value) != vl || strpbrk(value, "\r\n"))
      luaL_error(L, "moonline.http.request: bad header %s (names are tokens, values have no CR/LF)", name);
    /* content-length is ours to set */
    if (c && !(nl == 14 && !strncasecmp(name, "content-length", nl)))
      pack(L, &c->req_headers, &c->req_headers_len, &cap, name, nl, value, vl);
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
}

static void opt_want(lua_State *L, ml_http_conn *c)
{
  lua_getfield(L, 1, "want_headers");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, -1)) luaL_error(L, "moonline.http.request: opts.want_headers must be a list of names");
  size_t cap = 0;
  for (int i = 1;; i++) {
    lua_rawgeti(L, -1, i);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      break;
    }
    size_t nl;
    const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &nl) : NULL;
    if (!name || !is_token(name, nl) || nl > 200)
      luaL_error(L, "moonline.http.request: opts.want_headers must be a list of header names");
    if (c) pack(L, &c->want, &c->want_len, &cap, name, nl, NULL, 0);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* ---- request ---------------------------------------------------------------------- */

static int push_fail(lua_State *L, const char *msg)
{
  lua_pushboolean(L, 0);
  lua_pushstring(L, msg);
  return 2;
}

/* core.http_request(opts) -> true, res | false, err. Starts the request and
 * returns at once; res:headers() waits for the response. */
static int l_http_request(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  size_t n;
  const char *url = opt_string(L, "url", &n);
  if (!url) return luaL_error(L, "moonline.http.request: opts.url is required");
  const char *method = opt_string(L, "method", &n);
  if (!method) {
    method = "GET";
    n = 3;
  }
  if (!is_token(method, n) || n >= 16) return luaL_error(L, "moonline.http.request: bad method");
  size_t body_len = 0;
  const char *body = opt_string(L, "body", &body_len);
  uint64_t timeout = opt_seconds(L, "timeout", HTTP_DEFAULT_TIMEOUT_NS);
  uint64_t idle = opt_seconds(L, "idle_timeout", HTTP_DEFAULT_IDLE_NS);
  const char *ca_file = opt_string(L, "ca_file", &n);
  lua_getfield(L, 1, "insecure");
  int insecure = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "max_buffer");
  lua_Integer max_buffer = lua_isnil(L, -1) ? HTTP_DEFAULT_MAX_BUFFER : lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (max_buffer < 1024) return luaL_error(L, "moonline.http.request: opts.max_buffer must be >= 1024 bytes");
  opt_headers(L, NULL); /* misuse raises here, before anything is allocated */
  opt_want(L, NULL);
  ml_task *t = ml_bind_task(L, "http.request");
  if (ml_bind_cancelled(t)) return lua_yield(L, 0);

  http_res *h = calloc(1, sizeof *h);
  if (!h) return luaL_error(L, "out of memory");
  h->body_ref = LUA_NOREF;
  ml_http_conn *c = &h->conn;
  int bad = ml_http_conn_init(c, method, url);
  if (bad) {
    char err[sizeof c->err];
    memcpy(err, c->err, sizeof err);
    ml_http_conn_free(c);
    free(h);
    return push_fail(L, err);
  }
  opt_headers(L, c);
  opt_want(L, c);
  if (ca_file) c->ca_file = strdup(ca_file);
  c->insecure = insecure;
  c->max_buffer = (size_t)max_buffer;
  if (body && body_len) {
    c->body = body;
    c->body_len = body_len;
    lua_getfield(L, 1, "body");
    h->body_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  h->idle_ns = idle;
  ml_timer_init(&h->hdr_timer, hdr_timeout);
  ml_timer_init(&h->idle_timer, idle_timeout);

  lua_pushboolean(L, 1);
  ml_bind_open(L, t->loop, &h->res, &http_type, t->cur, HTTP_MT);
  if (ml_http_conn_start(c, t->loop, on_notify) == 0 && c->state == ML_HTTP_CONNECTING)
    ml_timer_start(t->loop, &h->hdr_timer, timeout);
  return 2;
}

static http_res *check_open(lua_State *L)
{
  http_res *h = (http_res *)ml_box_get(L, 1, HTTP_MT);
  return h && h->res.state == ML_RES_OPEN ? h : NULL;
}

static void headers_cancel(ml_task *t, void *data)
{
  (void)t;
  http_res *h = data;
  h->waiter = NULL;
  ml_res_close(&h->res); /* the Lua half raises: nobody can receive the response */
}

static void push_headers(lua_State *L, ml_http_conn *c)
{
  lua_newtable(L);
  const char *p = c->resp_headers, *end = p + c->resp_headers_len;
  while (p && p < end) {
    size_t nl = strlen(p);
    const char *v = p + nl + 1;
    size_t vl = strlen(v);
    lua_pushlstring(L, p, nl);
    lua_pushlstring(L, v, vl);
    lua_rawset(L, -3);
    p = v + vl + 1;
  }
}

/* res:headers() -> true, status, headers | false, err | (after a wait) true */
static int l_headers(lua_State *L)
{
  http_res *h = check_open(L);
  ml_task *t = ml_bind_wait_task(L, "http.request");
  if (!h) return push_fail(L, "closed");
  if (h->waiter) return luaL_error(L, "moonline.http: another task is already waiting on this response");
  if (ml_bind_cancelled(t)) return lua_yield(L, 0);
  ml_http_conn *c = &h->conn;
  if (c->have_headers) {
    lua_pushboolean(L, 1);
    lua_pushinteger(L, c->status);
    push_headers(L, c);
    return 3;
  }
  if (c->state == ML_HTTP_FAILED) return push_fail(L, c->err);
  h->waiter = t;
  ml_task_wait(t, headers_cancel, h, "http request");
  return lua_yield(L, 0);
}

static void read_cancel(ml_task *t, void *data)
{
  (void)t;
  http_res *h = data;
  h->waiter = NULL; /* bytes that arrive stay queued */
  ml_timer_stop(h->res.loop, &h->idle_timer);
}

/* res:read() -> true, chunk | true, false (end) | false, err | (after a wait) true */
static int l_read(lua_State *L)
{
  http_res *h = check_open(L);
  ml_task *t = ml_bind_wait_task(L, "http:read");
  if (!h) return push_fail(L, "closed");
  if (h->waiter) return luaL_error(L, "moonline.http:read: another task is already reading this response");
  if (ml_bind_cancelled(t)) return lua_yield(L, 0);
  ml_http_conn *c = &h->conn;
  const char *p;
  size_t n = ml_http_conn_peek(c, &p);
  if (n) {
    lua_pushboolean(L, 1);
    lua_pushlstring(L, p, n);
    ml_http_conn_consume(c, n); /* may resume a paused connection */
    return 2;
  }
  if (c->state == ML_HTTP_DONE) {
    lua_pushboolean(L, 1);
    lua_pushboolean(L, 0);
    return 2;
  }
  if (c->state == ML_HTTP_FAILED) return push_fail(L, c->err);
  h->waiter = t;
  ml_timer_start(t->loop, &h->idle_timer, h->idle_ns);
  ml_task_wait(t, read_cancel, h, "http read");
  return lua_yield(L, 0);
}

/* res:buffered() -> bytes queued, queue capacity, paused (for tests) */
static int l_buffered(lua_State *L)
{
  http_res *h = check_open(L);
  lua_pushinteger(L, h ? (lua_Integer)h->conn.len : 0);
  lua_pushinteger(L, h ? (lua_Integer)h->conn.cap : 0);
  lua_pushboolean(L, h && h->conn.paused);
  return 3;
}

int ml_open_http(lua_State *L)
{
  static const luaL_Reg methods[] = {{"headers", l_headers},
                                     {"read", l_read},
                                     {"buffered", l_buffered},
                                     {"close", ml_box_close},
                                     {NULL, NULL}};
  ml_res_type_register(&http_type);
  ml_bind_class(L, HTTP_MT, methods);
  lua_pushcfunction(L, l_http_request);
  lua_setfield(L, -2, "http_request");
  return 0;
}
