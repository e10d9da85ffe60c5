/* HTTP/1.1 client connections over libwebsockets, on the engine's libuv loop.
 *
 * One lws context per ml_loop, created on the first request with the loop as
 * lws's foreign loop and destroyed by ml_http_loop_free. lws's own libuv
 * handles (idle, timer, event pipe) are registered as core handles of the
 * loop and unreferenced, so they neither count in the ledger nor keep the
 * loop alive; a connection's poll handle counts while the connection lives.
 *
 * An ml_http_conn is embedded in its owner (the Lua resource). It never calls
 * into Lua: every change (response headers in, body bytes queued, end of the
 * body, failure) is reported through `notify`, which may run inside an lws
 * callback, a getaddrinfo callback or a call made by the owner itself.
 *
 * Body bytes are queued in one ring buffer per connection that grows by
 * doubling; past `max_buffer` bytes lws stops reading the socket (rx flow
 * control) until the owner consumed half of it. */
#ifndef ML_HTTP_CLIENT_H
#define ML_HTTP_CLIENT_H

#include <stddef.h>

#include "ml_runtime.h"

enum ml_http_state {
  ML_HTTP_IDLE, /* not started */
  ML_HTTP_CONNECTING, /* resolving, connecting, sending, waiting for the response */
  ML_HTTP_BODY, /* response headers in, body arriving */
  ML_HTTP_DONE, /* the whole body is queued; the connection is gone */
  ML_HTTP_FAILED, /* `err` says why; headers may have arrived before */
};

typedef struct ml_http_conn ml_http_conn;
typedef void (*ml_http_notify)(ml_http_conn *c);

typedef struct ml_http_dns ml_http_dns;
struct ml_http_ctx;
struct lws;

struct ml_http_conn {
  ml_loop *loop;
  struct ml_http_ctx *ctx;
  struct lws *wsi; /* NULL once detached (closed, completed, failed) */
  ml_http_dns *dns; /* in-flight getaddrinfo */
  ml_http_notify notify;
  enum ml_http_state state;
  int have_headers;
  int status;
  /* request (filled by ml_http_conn_init) */
  char method[16];
  char host[256]; /* name or address, no brackets */
  char host_header[272]; /* host[:port] as sent in Host */
  char addr[64]; /* numeric address lws connects to */
  int port, tls, insecure;
  char *path;
  char *ca_file;
  char *req_headers; /* packed "name:\0value\0"..., owned */
  size_t req_headers_len;
  const char *body; /* borrowed: the owner keeps it alive until abort */
  size_t body_len, body_sent;
  char *want; /* packed extra response header names "name\0"..., owned */
  size_t want_len;
  /* response */
  char *resp_headers; /* packed "name\0value\0"..., owned */
  size_t resp_headers_len;
  int close_delimited; /* no length, not chunked: the body ends at close */
  int chunked, at_eof; /* lws reports a chunked body cut short as complete */
  /* body queue */
  char *ring;
  size_t cap, head, len, max_buffer;
  int paused;
  char err[192];
};

/* Fill c from a method and URL. 0, or -1 with c->err = "bad url: ...". */
int ml_http_conn_init(ml_http_conn *c, const char *method, const char *url);
/* Start resolving and connecting. Failures (also synchronous ones) end in
 * ML_HTTP_FAILED plus a notify; returns -1 only if the context could not be
 * created, with c->err set and no notify. */
int ml_http_conn_start(ml_http_conn *c, ml_loop *loop, ml_http_notify notify);
/* Drop the connection now; no notify follows. `why` non-NULL marks a
 * connection still in progress FAILED with that error. */
void ml_http_conn_abort(ml_http_conn *c, const char *why);
void ml_http_conn_free(ml_http_conn *c); /* abort + release memory */
/* The next contiguous queued bytes (0 when empty), then consume them. */
size_t ml_http_conn_peek(ml_http_conn *c, const char **p);
void ml_http_conn_consume(ml_http_conn *c, size_t n);

/* Destroy the loop's lws context, if any (before the loop itself goes). */
void ml_http_loop_free(ml_loop *loop);

#endif
