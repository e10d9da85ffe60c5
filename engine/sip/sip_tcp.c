/* SIP over TCP (RFC 3261 §18): the listening socket and the connections of
 * a stack, inbound and outbound, found in O(1) by peer address. A
 * connection reads into a buffer of its own (grown up to ML_SIP_MAX_MSG, the
 * same bound as a datagram), frames messages by Content-Length
 * (ml_sip_frame), handles every whole message of a read and keeps a partial
 * one for the next. A stream that cannot be framed or parsed gets a 400 (if
 * one can be built) and is closed: the others are not affected. Writes go
 * out at once when the socket takes them; what it does not take waits in a
 * per-connection buffer (bounded), so nothing is allocated per message.
 * Connections idle for tcp_idle_ns are closed unless a call uses them; at
 * most tcp_max_conns are open. The stack owns every connection: closing it closes them all. */
#include <stdlib.h>
#include <string.h>

#include "sip_stack.h"

#define RBUF_MIN 4096

struct ml_sip_conn {
  uv_tcp_t tcp; /* first: the handle's data is the connection */
  ml_sip_stack *stack;
  ml_sip_addr peer; /* the hash key */
  int connected; /* outbound: until then writes wait in out */
  int in_table;
  int closing; /* out of the table; the handle is closing */
  int shutting; /* malformed stream: flush, FIN, then close */
  char *rbuf;
  size_t rlen, rcap;
  char *out, *wbuf; /* out: waiting; wbuf: in the write in flight */
  size_t out_len, out_cap, wbuf_cap;
  int writing;
  uv_write_t wreq;
  uv_connect_t creq;
  uv_shutdown_t sreq;
  ml_timer idle;
  uint64_t last_active;
  ml_sip_conn *hash_next;
};

/* ---- the table ------------------------------------------------------------------- */

static uint64_t addr_hash(const ml_sip_addr *a)
{
  uint64_t h = 1469598103934665603ull;
  const unsigned char *p = (const unsigned char *)&a->ss;
  for (socklen_t i = 0; i < a->len; i++) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

static ml_sip_conn **conn_bucket(ml_sip_stack *s, const ml_sip_addr *a)
{
  return &s->conns[addr_hash(a) & (s->conn_cap - 1)];
}

static int same_peer(const ml_sip_addr *a, const ml_sip_addr *b)
{
  return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

static void conns_grow(ml_sip_stack *s)
{
  size_t old_cap = s->conn_cap;
  ml_sip_conn **old = s->conns;
  s->conn_cap = old_cap ? old_cap * 2 : 64;
  s->conns = calloc(s->conn_cap, sizeof *s->conns);
  if (!s->conns) abort();
  for (size_t i = 0; i < old_cap; i++) {
    for (ml_sip_conn *c = old[i], *next; c; c = next) {
      next = c->hash_next;
      ml_sip_conn **b = conn_bucket(s, &c->peer);
      c->hash_next = *b;
      *b = c;
    }
  }
  free(old);
}

static void conn_add(ml_sip_stack *s, ml_sip_conn *c)
{
  if (s->n_conns + 1 > s->conn_cap / 2) conns_grow(s);
  c->in_table = 1;
  ml_sip_conn **b = conn_bucket(s, &c->peer);
  c->hash_next = *b;
  *b = c;
  s->n_conns++;
}

static void conn_remove(ml_sip_stack *s, ml_sip_conn *c)
{
  if (!c->in_table) return;
  c->in_table = 0;
  for (ml_sip_conn **p = conn_bucket(s, &c->peer); *p; p = &(*p)->hash_next) {
    if (*p == c) {
      *p = c->hash_next;
      s->n_conns--;
      return;
    }
  }
}

ml_sip_conn *ml_sip_tcp_find(ml_sip_stack *s, const ml_sip_addr *peer)
{
  if (!s->conn_cap) return NULL;
  for (ml_sip_conn *c = *conn_bucket(s, peer); c; c = c->hash_next)
    if (same_peer(&c->peer, peer)) return c;
  return NULL;
}

/* ---- life cycle ------------------------------------------------------------------ */

static void on_conn_closed(uv_handle_t *h)
{
  ml_sip_conn *c = h->data;
  ml_sip_stack *s = c->stack;
  free(c->rbuf);
  free(c->out);
  free(c->wbuf);
  free(c);
  ml_sip_stack_handle_closed(s);
}

static void conn_close(ml_sip_conn *c)
{
  if (c->closing) return;
  c->closing = 1;
  conn_remove(c->stack, c);
  ml_timer_stop(c->stack->loop, &c->idle);
  if (!c->stack->closing) ml_sip_txn_transport_error(c->stack, &c->peer);
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static uint64_t idle_ns(ml_sip_stack *s)
{
  return s->cfg.tcp_idle_ns ? s->cfg.tcp_idle_ns : ML_SIP_TCP_IDLE_NS;
}

/* one timer per connection, re-armed lazily: activity only stamps the time */
static void on_idle(ml_timer *tm)
{
  ml_sip_conn *c = ml_container_of(tm, ml_sip_conn, idle);
  ml_sip_stack *s = c->stack;
  uint64_t now = ml_clock_now(s->loop), limit = idle_ns(s);
  /* a call's connection stays while the call lasts: its BYE needs it */
  if (now - c->last_active >= limit && !ml_sip_ua_uses(s, &c->peer)) {
    conn_close(c);
    return;
  }
  if (now - c->last_active >= limit) c->last_active = now;
  ml_timer_start(s->loop, &c->idle, limit - (now - c->last_active));
}

static void touch(ml_sip_conn *c) { c->last_active = ml_clock_now(c->stack->loop); }

static ml_sip_conn *conn_new(ml_sip_stack *s, const ml_sip_addr *peer)
{
  ml_sip_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->stack = s;
  c->peer = *peer;
  c->peer.tcp = 1;
  if (uv_tcp_init(s->loop->uv, &c->tcp) != 0) {
    free(c);
    return NULL;
  }
  c->tcp.data = c;
  s->handles++;
  ml_timer_init(&c->idle, on_idle);
  touch(c);
  ml_timer_start(s->loop, &c->idle, idle_ns(s));
  return c;
}

static unsigned max_conns(ml_sip_stack *s)
{
  return s->cfg.tcp_max_conns ? s->cfg.tcp_max_conns : ML_SIP_TCP_MAX_CONNS;
}

/* ---- writing --------------------------------------------------------------------- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
  (void)status;
  conn_close(req->handle->data);
}

static void flush(ml_sip_conn *c);

static void on_write(uv_write_t *req, int status)
{
  ml_sip_conn *c = req->handle->data;
  c->writing = 0;
  if (c->closing) return;
  if (status < 0) {
    ml_log(ML_LOG_INFO, "sip: tcp write failed: %s", uv_strerror(status));
    conn_close(c);
    return;
  }
  flush(c);
}

/* start the next write, or the shutdown of a stream we gave up on */
static void flush(ml_sip_conn *c)
{
  if (c->closing || !c->connected || c->writing) return;
  if (c->out_len) {
    /* swap the buffers: out keeps collecting while wbuf is written */
    char *w = c->wbuf;
    size_t wcap = c->wbuf_cap;
    c->wbuf = c->out;
    c->wbuf_cap = c->out_cap;
    c->out = w;
    c->out_cap = wcap;
    uv_buf_t b = uv_buf_init(c->wbuf, (unsigned)c->out_len);
    c->out_len = 0;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
      conn_close(c);
      return;
    }
    c->writing = 1;
    return;
  }
  if (c->shutting == 1) {
    c->shutting = 2;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) conn_close(c);
  }
}

static int queue(ml_sip_conn *c, const char *buf, size_t len)
{
  if (c->out_len + len > ML_SIP_TCP_MAX_OUT) { /* the peer does not read: give up on it */
    ml_log(ML_LOG_WARN, "sip: tcp peer does not read; closing the connection");
    conn_close(c);
    return -1;
  }
  if (c->out_len + len > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + len) cap *= 2;
    char *p = realloc(c->out, cap);
    if (!p) {
      conn_close(c);
      return -1;
    }
    c->out = p;
    c->out_cap = cap;
  }
  memcpy(c->out + c->out_len, buf, len);
  c->out_len += len;
  return 0;
}

static int conn_write(ml_sip_conn *c, const char *buf, size_t len)
{
  if (c->closing || c->shutting) return -1;
  size_t off = 0;
  if (c->connected && !c->writing && !c->out_len) {
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n < 0 && n != UV_EAGAIN && n != UV_ENOSYS) {
      ml_log(ML_LOG_INFO, "sip: tcp write failed: %s", uv_strerror(n));
      conn_close(c);
      return -1;
    }
    if (n > 0) off = (size_t)n;
    if (off == len) return 0;
  }
  if (queue(c, buf + off, len - off) != 0) return -1;
  flush(c);
  return 0;
}

/* ---- reading --------------------------------------------------------------------- */

/* a stream we cannot follow any more: stop reading, send what is queued (the
 * 400), then FIN and close */
static void give_up(ml_sip_conn *c)
{
  if (c->closing || c->shutting) return;
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->shutting = 1;
  flush(c);
}

/* Handle every whole message in rbuf; keep a partial one at the front. */
static void consume(ml_sip_conn *c)
{
  ml_sip_stack *s = c->stack;
  size_t off = 0;
  while (!c->closing && !c->shutting && off < c->rlen) {
    size_t n;
    const char *p = c->rbuf + off;
    size_t avail = c->rlen - off;
    int rc = ml_sip_frame(p, avail, &n);
    if (rc == ML_SIP_FRAME_MORE) break;
    if (rc == ML_SIP_FRAME_KEEPALIVE) {
      if (n == 4) conn_write(c, "\r\n", 2); /* RFC 5626 §4.4.1: a ping gets a pong */
      off += n;
      continue;
    }
    if (rc == ML_SIP_FRAME_ERROR) {
      /* the head, if whole, still identifies the request for a 400 */
      const char *blank = memmem(p, avail < ML_SIP_MAX_MSG ? avail : ML_SIP_MAX_MSG, "\r\n\r\n", 4);
      s->rx++;
      s->rx_errors++;
      ml_log(ML_LOG_INFO, "sip: tcp stream cannot be framed (no or bad Content-Length?); closing it");
      if (blank) ml_sip_stack_reject_stream(s, p, (size_t)(blank + 4 - p), &c->peer);
      give_up(c);
      break;
    }
    if (ml_sip_stack_receive_stream(s, p, n, &c->peer) != 0) {
      give_up(c);
      break;
    }
    off += n;
  }
  if (c->closing) return;
  if (off) {
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  (void)suggested;
  ml_sip_conn *c = h->data;
  if (c->rlen == c->rcap && c->rcap < ML_SIP_MAX_MSG) {
    size_t cap = c->rcap ? c->rcap * 2 : RBUF_MIN;
    if (cap > ML_SIP_MAX_MSG) cap = ML_SIP_MAX_MSG;
    char *p = realloc(c->rbuf, cap);
    if (p) {
      c->rbuf = p;
      c->rcap = cap;
    }
  }
  /* full at ML_SIP_MAX_MSG cannot happen: ml_sip_frame fails a message that long */
  *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf)
{
  (void)buf;
  ml_sip_conn *c = h->data;
  if (n == 0 || c->closing) return;
  if (n < 0) { /* EOF or reset: a partial message is lost with it */
    conn_close(c);
    return;
  }
  c->rlen += (size_t)n;
  touch(c);
  consume(c);
}

static void conn_start(ml_sip_conn *c)
{
  c->connected = 1;
  uv_tcp_nodelay(&c->tcp, 1);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    conn_close(c);
    return;
  }
  flush(c);
}

/* ---- inbound --------------------------------------------------------------------- */

static void on_connection(uv_stream_t *server, int status)
{
  ml_sip_stack *s = server->data;
  if (status < 0 || s->closing) return;
  ml_sip_addr peer;
  memset(&peer, 0, sizeof peer);
  ml_sip_conn *c = conn_new(s, &peer);
  if (!c) return;
  int namelen = sizeof peer.ss;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
      uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer.ss, &namelen) != 0) {
    conn_close(c);
    return;
  }
  ml_sip_addr_from_sockaddr((const struct sockaddr *)&peer.ss, &c->peer);
  c->peer.tcp = 1;
  if (s->n_conns >= max_conns(s)) { /* at the bound: refuse, keep the others */
    s->tcp_refused++;
    conn_close(c);
    return;
  }
  /* a stale entry for the same address (a quick reconnect) gives way */
  ml_sip_conn *old = ml_sip_tcp_find(s, &c->peer);
  if (old) conn_close(old);
  conn_add(s, c);
  s->tcp_accepted++;
  conn_start(c);
}

int ml_sip_tcp_listen(ml_sip_stack *s, const ml_sip_addr *local)
{
  int rc = uv_tcp_init(s->loop->uv, &s->tcp);
  if (rc) return rc;
  s->tcp.data = s;
  s->tcp_open = 1;
  s->handles++;
  if ((rc = uv_tcp_bind(&s->tcp, (const struct sockaddr *)&local->ss, 0)) != 0) return rc;
  return ml_sip_tcp_start(s);
}

int ml_sip_tcp_start(ml_sip_stack *s) { return uv_listen((uv_stream_t *)&s->tcp, 128, on_connection); }

/* ---- outbound -------------------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status)
{
  ml_sip_conn *c = req->handle->data;
  if (c->closing) return;
  if (status < 0) {
    char where[80];
    ml_sip_addr_format(&c->peer, where, sizeof where, 1);
    ml_log(ML_LOG_INFO, "sip: tcp connect to %s failed: %s", where, uv_strerror(status));
    conn_close(c);
    return;
  }
  conn_start(c);
}

int ml_sip_tcp_send(ml_sip_stack *s, const ml_sip_addr *to, const char *buf, size_t len)
{
  if (s->closing) return -1;
  ml_sip_conn *c = ml_sip_tcp_find(s, to);
  if (!c) {
    if (s->n_conns >= max_conns(s)) return -1;
    c = conn_new(s, to);
    if (!c) return -1;
    conn_add(s, c);
    if (uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&to->ss, on_connect) != 0) {
      conn_close(c);
      return -1;
    }
  }
  touch(c);
  return conn_write(c, buf, len);
}

void ml_sip_tcp_close_all(ml_sip_stack *s)
{
  for (size_t i = 0; i < s->conn_cap; i++)
    while (s->conns[i]) conn_close(s->conns[i]);
  free(s->conns);
  s->conns = NULL;
  s->conn_cap = s->n_conns = 0;
}
