/* HTTP/1.1 client over libwebsockets 4.1 on the engine's libuv loop (see
 * http_client.h for the contract).
 *
 * Lifetimes: the connection struct belongs to its owner; the lws wsi points
 * at it through its user pointer. Whichever side goes first cuts the link in
 * both directions (lws_set_wsi_user(wsi, NULL) and c->wsi = NULL), so lws
 * never calls back into freed memory and the owner never touches a freed
 * wsi. Callbacks that arrive with a NULL user belong to a connection whose
 * owner let go: they are ignored, or answered with -1 so lws hangs up.
 *
 * Name resolution runs on libuv's threadpool (uv_getaddrinfo), not inside
 * lws, which would resolve with a blocking call on the loop thread; lws is
 * given the numeric address and the name for Host, SNI and certificate
 * checks. ALPN is pinned to http/1.1: lws ignores rx flow control on h2
 * streams, and bounded buffering relies on it. */
#include "http_client.h"

#include <ctype.h>
#include <errno.h>
#include <libwebsockets.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define HTTP_READ_CHUNK 16384 /* bytes per socket read and per body write */
#define HTTP_RING_MIN 16384
#define HTTP_MAX_VHOSTS 8 /* one per distinct ca_file */
#define HTTP_MAX_LWS_HANDLES 8

typedef struct http_vhost {
  char *ca_file;
  struct lws_vhost *vh;
} http_vhost;

struct ml_http_ctx {
  struct ml_http_ctx *next;
  ml_loop *loop;
  struct lws_context *lws;
  int depth; /* > 0 while inside our lws callback */
  http_vhost vhosts[HTTP_MAX_VHOSTS];
  int nvhosts;
  uv_handle_t *handles[HTTP_MAX_LWS_HANDLES]; /* lws's own, registered as core */
  int nhandles;
  unsigned char scratch[LWS_PRE + HTTP_READ_CHUNK];
};

struct ml_http_dns {
  uv_getaddrinfo_t req;
  ml_http_conn *c; /* NULL once the connection let go: the result is dropped */
};

static struct ml_http_ctx *contexts; /* one per live ml_loop that made a request */

/* ---- logging ---------------------------------------------------------------- */

static void lws_emit(int level, const char *line)
{
  size_t n = strlen(line);
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
  int ml = level & LLL_ERR ? ML_LOG_ERROR : level & LLL_WARN ? ML_LOG_WARN : ML_LOG_DEBUG;
  /* per-connection failures that the caller receives as its error */
  if (ml < ML_LOG_INFO && (!strncmp(line, "SSL error:", 10) || strstr(line, "CLIENT_CONNECTION_ERROR") ||
                           strstr(line, "Failed to generate handshake")))
    ml = ML_LOG_INFO;
  ml_log(ml, "lws: %.*s", (int)n, line);
}

static void log_setup(void)
{
  int levels = LLL_ERR | LLL_WARN;
  if (ml_log_level() >= ML_LOG_DEBUG) levels |= LLL_NOTICE | LLL_INFO;
  lws_set_log_level(levels, lws_emit);
}

/* ---- failing and notifying --------------------------------------------------------- */

static void set_err(ml_http_conn *c, const char *fmt, const char *arg)
{
  snprintf(c->err, sizeof c->err, fmt, arg ? arg : "");
}

/* Cut the link between c and its wsi (see the top of the file). */
static void detach(ml_http_conn *c)
{
  if (!c->wsi) return;
  lws_set_wsi_user(c->wsi, NULL);
  c->wsi = NULL;
}

static void fail(ml_http_conn *c, const char *msg)
{
  detach(c);
  if (c->state == ML_HTTP_DONE || c->state == ML_HTTP_FAILED) return;
  snprintf(c->err, sizeof c->err, "%s", msg);
  c->state = ML_HTTP_FAILED;
  if (c->notify) c->notify(c);
}

/* lws's connection errors, in words a caller can act on. lws says "closed
 * before established" for a refused connect: the socket still knows why. */
static void fail_connect(ml_http_conn *c, struct lws *wsi, const char *why)
{
  char msg[sizeof c->err];
  const char *w = why ? why : "";
  int fd = lws_get_socket_fd(wsi), soerr = 0;
  socklen_t sl = sizeof soerr;
  if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) soerr = 0;
  if (soerr == ETIMEDOUT)
    snprintf(msg, sizeof msg, "timeout");
  else if (soerr)
    snprintf(msg, sizeof msg, "%s", uv_strerror(-soerr)); /* "connection refused", … */
  else if (c->tls && lws_get_ssl(wsi) && SSL_get_verify_result(lws_get_ssl(wsi)) != X509_V_OK)
    snprintf(msg, sizeof msg, "tls: certificate verify failed: %s",
             X509_verify_cert_error_string(SSL_get_verify_result(lws_get_ssl(wsi))));
  else if (c->tls && (lws_get_ssl(wsi) || strstr(w, "SSL") || strstr(w, "tls")))
    snprintf(msg, sizeof msg, "tls: %s", w);
  else if (*w)
    snprintf(msg, sizeof msg, "connection failed: %s", w);
  else
    snprintf(msg, sizeof msg, "connection failed");
  fail(c, msg);
}

/* ---- body queue (ring buffer) -------------------------------------------------------- */

static int ring_reserve(ml_http_conn *c, size_t more)
{
  if (c->len + more <= c->cap) return 0;
  size_t cap = c->cap ? c->cap : HTTP_RING_MIN;
  while (cap < c->len + more) cap *= 2;
  char *r = malloc(cap);
  if (!r) return -1;
  /* unwrap into the new buffer */
  size_t first = c->cap - c->head < c->len ? c->cap - c->head : c->len;
  if (c->len) {
    memcpy(r, c->ring + c->head, first);
    memcpy(r + first, c->ring, c->len - first);
  }
  free(c->ring);
  c->ring = r;
  c->cap = cap;
  c->head = 0;
  return 0;
}

static int ring_put(ml_http_conn *c, const char *p, size_t n)
{
  if (ring_reserve(c, n)) return -1;
  size_t tail = (c->head + c->len) % c->cap;
  size_t first = c->cap - tail < n ? c->cap - tail : n;
  memcpy(c->ring + tail, p, first);
  memcpy(c->ring, p + first, n - first);
  c->len += n;
  return 0;
}

size_t ml_http_conn_peek(ml_http_conn *c, const char **p)
{
  if (!c->len) return 0;
  *p = c->ring + c->head;
  return c->cap - c->head < c->len ? c->cap - c->head : c->len;
}

void ml_http_conn_consume(ml_http_conn *c, size_t n)
{
  if (n > c->len) n = c->len;
  c->len -= n;
  c->head = c->len ? (c->head + n) % c->cap : 0;
  if (c->paused && c->len <= c->max_buffer / 2) {
    c->paused = 0;
    if (c->wsi) lws_rx_flow_control(c->wsi, 1 | LWS_RXFLOW_REASON_FLAG_PROCESS_NOW);
  }
}

/* ---- lws callbacks ------------------------------------------------------------------- */

/* Request headers: "name: value\r\n" each, into lws's handshake buffer. */
static int append_headers(ml_http_conn *c, char **p, char *end)
{
  const char *h = c->req_headers, *stop = h + c->req_headers_len;
  while (h < stop) {
    const char *name = h, *value = h + strlen(h) + 1;
    size_t nl = strlen(name), vl = strlen(value);
    h = value + vl + 1;
    if ((size_t)(end - *p) < nl + vl + 4) return -1;
    memcpy(*p, name, nl);
    *p += nl;
    *(*p)++ = ':';
    *(*p)++ = ' ';
    memcpy(*p, value, vl);
    *p += vl;
    *(*p)++ = '\r';
    *(*p)++ = '\n';
  }
  if (c->body_len || !strcmp(c->method, "POST") || !strcmp(c->method, "PUT") || !strcmp(c->method, "PATCH")) {
    char cl[48];
    int n = snprintf(cl, sizeof cl, "content-length: %zu\r\n", c->body_len);
    if (end - *p < n) return -1;
    memcpy(*p, cl, (size_t)n);
    *p += n;
  }
  return 0;
}

static int write_body(struct ml_http_ctx *x, ml_http_conn *c, struct lws *wsi)
{
  if (c->body_sent >= c->body_len) return 0;
  size_t n = c->body_len - c->body_sent;
  if (n > HTTP_READ_CHUNK) n = HTTP_READ_CHUNK;
  int last = c->body_sent + n == c->body_len;
  unsigned char *buf = x->scratch + LWS_PRE;
  memcpy(buf, c->body + c->body_sent, n);
  if (lws_write(wsi, buf, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n) return -1;
  c->body_sent += n;
  if (last)
    lws_client_http_body_pending(wsi, 0);
  else
    lws_callback_on_writable(wsi);
  return 0;
}

static void copy_header(ml_http_conn *c, char **buf, size_t *cap, const char *name, size_t nl,
                        const char *value, size_t vl)
{
  if (c->resp_headers_len + nl + vl + 2 > *cap) {
    size_t ncap = *cap ? *cap : 1024;
    while (ncap < c->resp_headers_len + nl + vl + 2) ncap *= 2;
    char *nb = realloc(*buf, ncap);
    if (!nb) return; /* drop the header rather than the response */
    *buf = nb;
    *cap = ncap;
  }
  char *p = *buf + c->resp_headers_len;
  for (size_t i = 0; i < nl; i++) p[i] = (char)tolower((unsigned char)name[i]);
  p[nl] = '\0';
  memcpy(p + nl + 1, value, vl);
  p[nl + 1 + vl] = '\0';
  c->resp_headers_len += nl + vl + 2;
}

/* The response headers live only during ESTABLISHED_CLIENT_HTTP: copy every
 * header lws knows by name, plus the extra names the caller asked for. */
static void copy_headers(ml_http_conn *c, struct lws *wsi, char *value, int vsize)
{
  char *buf = NULL;
  size_t cap = 0;
  c->resp_headers_len = 0;
  for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
    const char *name = (const char *)lws_token_to_string((enum lws_token_indexes)t);
    if (!name) continue;
    size_t nl = strlen(name);
    if (nl < 2 || name[nl - 1] != ':' || name[0] == ':') continue; /* methods, h2 pseudo-headers */
    int len = lws_hdr_total_length(wsi, (enum lws_token_indexes)t);
    if (len <= 0) continue;
    int got = lws_hdr_copy(wsi, value, vsize, (enum lws_token_indexes)t);
    if (got < 0) continue;
    copy_header(c, &buf, &cap, name, nl - 1, value, (size_t)got);
  }
  for (const char *w = c->want; w && w < c->want + c->want_len; w += strlen(w) + 1) {
    char cname[256];
    int nl = snprintf(cname, sizeof cname, "%s:", w);
    if (nl <= 1 || nl >= (int)sizeof cname) continue;
    int len = lws_hdr_custom_length(wsi, cname, nl);
    if (len < 0) continue;
    int got = lws_hdr_custom_copy(wsi, value, vsize, cname, nl);
    if (got < 0) continue;
    copy_header(c, &buf, &cap, w, (size_t)nl - 1, value, (size_t)got);
  }
  c->resp_headers = buf;
  /* a body that ends when the connection closes: no length, not chunked */
  int has_len = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
  int chunked = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
  c->chunked = chunked;
  c->close_delimited = !has_len && !chunked && strcmp(c->method, "HEAD") != 0 && c->status != 204 &&
                       c->status != 304 && c->status >= 200;
}

/* lws 4.1 ends a chunked body at end of stream as if it were complete; so
 * before each read, look whether the stream has ended with no bytes left
 * (in the socket or, for TLS, decrypted in OpenSSL's buffer). */
static int socket_at_eof(struct lws *wsi)
{
  SSL *ssl = lws_get_ssl(wsi);
  if (ssl && SSL_has_pending(ssl)) return 0;
  int fd = lws_get_socket_fd(wsi);
  if (fd < 0) return 1;
  char b;
  ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
  ml_http_conn *c = user;
  struct lws_context *lc = lws_get_context(wsi);
  struct ml_http_ctx *x = lc ? lws_context_user(lc) : NULL;
  int rc = 0;
  if (x) x->depth++;
  switch (reason) {
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    if (c) fail_connect(c, wsi, in ? (const char *)in : NULL);
    break;
  case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
    if (!c) {
      rc = -1;
      break;
    }
    if (append_headers(c, (char **)in, *(char **)in + len)) {
      fail(c, "request headers too large");
      rc = -1;
      break;
    }
    if (c->body_len) {
      lws_client_http_body_pending(wsi, 1);
      lws_callback_on_writable(wsi);
    }
    break;
  case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE:
    if (c && x && write_body(x, c, wsi)) {
      fail(c, "connection closed while sending the request");
      rc = -1;
    }
    break;
  case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
    if (!c) {
      rc = -1;
      break;
    }
    c->status = (int)lws_http_client_http_response(wsi);
    if (x) copy_headers(c, wsi, (char *)x->scratch, (int)sizeof x->scratch);
    c->have_headers = 1;
    c->state = ML_HTTP_BODY;
    c->notify(c);
    break;
  case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
    if (!c || !x) {
      rc = -1;
      break;
    }
    char *p = (char *)x->scratch + LWS_PRE;
    int n = HTTP_READ_CHUNK;
    if (c->chunked) c->at_eof = socket_at_eof(wsi);
    if (lws_http_client_read(wsi, &p, &n) < 0) rc = -1;
    break;
  }
  case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
    if (!c || c->state != ML_HTTP_BODY) break;
    if (ring_put(c, in, len)) {
      fail(c, "out of memory");
      rc = -1;
      break;
    }
    if (!c->paused && c->len >= c->max_buffer) {
      c->paused = 1; /* the owner reads; ml_http_conn_consume resumes */
      lws_rx_flow_control(wsi, 0);
    }
    c->notify(c);
    break;
  case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
    if (c && c->state == ML_HTTP_BODY && c->chunked && c->at_eof) {
      fail(c, "connection closed before the end of the body");
    } else if (c && c->state == ML_HTTP_BODY) {
      detach(c);
      c->state = ML_HTTP_DONE;
      c->notify(c);
    }
    rc = -1; /* no keep-alive: hang up now */
    break;
  case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
    if (!c) break;
    if (c->state == ML_HTTP_BODY && c->close_delimited) {
      detach(c);
      c->state = ML_HTTP_DONE;
      c->notify(c);
    } else {
      fail(c, c->have_headers ? "connection closed before the end of the body"
                              : "connection closed before the response");
    }
    break;
  case LWS_CALLBACK_WSI_DESTROY:
    if (c && c->wsi == wsi) fail(c, "connection closed");
    break;
  default:
    break;
  }
  if (x) x->depth--;
  return rc;
}

static const struct lws_protocols protocols[] = {
    {.name = "moonline-http", .callback = http_cb},
    {.name = NULL},
};

/* ---- the context -------------------------------------------------------------------- */

typedef struct handle_walk {
  int n, skip;
  struct ml_http_ctx *x;
} handle_walk;

static void count_cb(uv_handle_t *h, void *arg)
{
  (void)h;
  ((handle_walk *)arg)->n++;
}

/* Handles are appended to the loop's queue: the ones past `skip` are new. */
static void adopt_cb(uv_handle_t *h, void *arg)
{
  handle_walk *w = arg;
  if (w->n++ < w->skip) return;
  struct ml_http_ctx *x = w->x;
  if (x->nhandles == HTTP_MAX_LWS_HANDLES) {
    ml_log(ML_LOG_ERROR, "http: libwebsockets made more handles than expected");
    return;
  }
  x->handles[x->nhandles++] = h;
  ml_loop_add_core_handle(x->loop, h);
  uv_unref(h); /* lws's housekeeping never keeps the loop alive by itself */
}

static struct ml_http_ctx *ctx_find(ml_loop *loop)
{
  for (struct ml_http_ctx *x = contexts; x; x = x->next)
    if (x->loop == loop) return x;
  return NULL;
}

static struct ml_http_ctx *ctx_get(ml_loop *loop)
{
  struct ml_http_ctx *x = ctx_find(loop);
  if (x) return x;
  x = calloc(1, sizeof *x);
  if (!x) return NULL;
  x->loop = loop;
  log_setup();
  void *foreign[1] = {loop->uv};
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols;
  info.foreign_loops = foreign;
  info.user = x;
  info.pt_serv_buf_size = HTTP_READ_CHUNK;
  info.max_http_header_data = 16384;
  /* our own timers bound every wait; lws's must never fire first */
  info.timeout_secs = 24 * 3600;
  info.connect_timeout_secs = 24 * 3600;
  handle_walk w = {0, 0, x};
  uv_walk(loop->uv, count_cb, &w);
  x->lws = lws_create_context(&info);
  if (!x->lws) {
    free(x);
    return NULL;
  }
  w.skip = w.n;
  w.n = 0;
  uv_walk(loop->uv, adopt_cb, &w);
  x->next = contexts;
  contexts = x;
  return x;
}

typedef struct find_walk {
  struct ml_http_ctx *x;
  int found;
} find_walk;

static void find_cb(uv_handle_t *h, void *arg)
{
  find_walk *f = arg;
  for (int i = 0; i < f->x->nhandles; i++)
    if (f->x->handles[i] == h) f->found++;
}

void ml_http_loop_free(ml_loop *loop)
{
  struct ml_http_ctx *x = ctx_find(loop);
  if (!x) return;
  for (struct ml_http_ctx **pp = &contexts; *pp; pp = &(*pp)->next)
    if (*pp == x) {
      *pp = x->next;
      break;
    }
  /* On a foreign loop lws destroys a context in two calls: the first
   * closes its libuv handles, the loop runs their close callbacks, the
   * second frees what is left. */
  lws_context_destroy(x->lws);
  int gone = 0;
  for (int turn = 0; turn < 1000 && !gone; turn++) {
    find_walk f = {x, 0};
    uv_walk(loop->uv, find_cb, &f);
    gone = !f.found;
    if (!gone) uv_run(loop->uv, UV_RUN_NOWAIT);
  }
  if (gone)
    lws_context_destroy(x->lws);
  else /* freeing it now would free handles libuv still holds */
    ml_log(ML_LOG_ERROR, "http: libwebsockets handles still open at teardown; leaving its context");
  for (int i = 0; i < x->nvhosts; i++) free(x->vhosts[i].ca_file);
  free(x);
}

/* A vhost per CA file: lws keeps the client TLS context on the vhost. */
static struct lws_vhost *vhost_for(struct ml_http_ctx *x, const char *ca_file)
{
  if (!ca_file) return NULL;
  for (int i = 0; i < x->nvhosts; i++)
    if (!strcmp(x->vhosts[i].ca_file, ca_file)) return x->vhosts[i].vh;
  if (x->nvhosts == HTTP_MAX_VHOSTS) return NULL;
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols;
  info.vhost_name = ca_file;
  info.client_ssl_ca_filepath = ca_file;
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  info.timeout_secs = 24 * 3600;
  info.connect_timeout_secs = 24 * 3600;
  char *copy = strdup(ca_file);
  if (!copy) return NULL;
  struct lws_vhost *vh = lws_create_vhost(x->lws, &info);
  if (!vh) {
    free(copy);
    return NULL;
  }
  x->vhosts[x->nvhosts].ca_file = copy;
  x->vhosts[x->nvhosts].vh = vh;
  x->nvhosts++;
  return vh;
}

/* ---- URL --------------------------------------------------------------------------- */

int ml_http_conn_init(ml_http_conn *c, const char *method, const char *url)
{
  const char *p = url;
  for (const char *q = url; *q; q++)
    if ((unsigned char)*q <= ' ' || *q == 0x7f) {
      set_err(c, "bad url: %s", "it contains spaces or control characters");
      return -1;
    }
  if (!strncasecmp(p, "http://", 7)) {
    p += 7;
  } else if (!strncasecmp(p, "https://", 8)) {
    p += 8;
    c->tls = 1;
  } else {
    set_err(c, "bad url: %s", "it must start with http:// or https://");
    return -1;
  }
  size_t alen = strcspn(p, "/?#");
  const char *aend = p + alen;
  if (memchr(p, '@', alen)) {
    set_err(c, "bad url: %s", "user names and passwords in the URL are not supported");
    return -1;
  }
  const char *hend, *portp = NULL;
  if (*p == '[') {
    const char *close = memchr(p, ']', alen);
    if (!close) {
      set_err(c, "bad url: %s", "unclosed [ in the host");
      return -1;
    }
    hend = close;
    p++;
    if (close + 1 < aend) {
      if (close[1] != ':') {
        set_err(c, "bad url: %s", "junk after the IPv6 address");
        return -1;
      }
      portp = close + 2;
    }
  } else {
    const char *colon = memchr(p, ':', alen);
    hend = colon ? colon : aend;
    if (colon) portp = colon + 1;
  }
  size_t hlen = (size_t)(hend - p);
  if (hlen == 0 || hlen >= sizeof c->host) {
    set_err(c, "bad url: %s", hlen ? "host name too long" : "missing host");
    return -1;
  }
  memcpy(c->host, p, hlen);
  c->host[hlen] = '\0';
  c->port = c->tls ? 443 : 80;
  if (portp) {
    long port = 0;
    if (portp == aend) {
      set_err(c, "bad url: %s", "empty port");
      return -1;
    }
    for (const char *q = portp; q < aend; q++) {
      if (!isdigit((unsigned char)*q) || port > 65535) {
        set_err(c, "bad url: %s", "bad port");
        return -1;
      }
      port = port * 10 + (*q - '0');
    }
    if (port < 1 || port > 65535) {
      set_err(c, "bad url: %s", "port out of range");
      return -1;
    }
    c->port = (int)port;
  }
  int v6 = strchr(c->host, ':') != NULL;
  int defport = c->port == (c->tls ? 443 : 80);
  snprintf(c->host_header, sizeof c->host_header, "%s%s%s%s%.0d", v6 ? "[" : "", c->host, v6 ? "]" : "",
           defport ? "" : ":", defport ? 0 : c->port);
  /* path and query; the fragment is never sent */
  size_t plen = strcspn(aend, "#");
  c->path = malloc(plen + 2);
  if (!c->path) {
    set_err(c, "%s", "out of memory");
    return -1;
  }
  size_t o = 0;
  if (*aend != '/') c->path[o++] = '/';
  memcpy(c->path + o, aend, plen);
  c->path[o + plen] = '\0';
  snprintf(c->method, sizeof c->method, "%s", method);
  return 0;
}

/* ---- connecting ---------------------------------------------------------------------- */

static void connect_addr(ml_http_conn *c)
{
  struct lws_client_connect_info ci;
  memset(&ci, 0, sizeof ci);
  ci.context = c->ctx->lws;
  ci.address = c->addr;
  ci.port = c->port;
  ci.path = c->path;
  ci.host = c->host_header;
  ci.method = c->method;
  ci.protocol = protocols[0].name;
  ci.userdata = c;
  ci.alpn = "http/1.1";
  ci.ssl_connection = LCCSCF_HTTP_NO_FOLLOW_REDIRECT;
  if (c->tls) {
    ci.ssl_connection |= LCCSCF_USE_SSL;
    if (c->insecure)
      ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
                           LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
    if (c->ca_file) {
      ci.vhost = vhost_for(c->ctx, c->ca_file);
      if (!ci.vhost) {
        fail(c, "tls: cannot load the CA file");
        return;
      }
    }
  }
  /* lws may report a failure from inside this call (through the callback) */
  struct lws *wsi = lws_client_connect_via_info(&ci);
  if (c->state != ML_HTTP_CONNECTING) return;
  if (!wsi) {
    fail(c, "connection failed");
    return;
  }
  c->wsi = wsi;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
  ml_http_dns *d = ml_container_of(req, ml_http_dns, req);
  ml_http_conn *c = d->c;
  free(d);
  if (!c) {
    if (res) uv_freeaddrinfo(res);
    return;
  }
  c->dns = NULL;
  if (status < 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "getaddrinfo: %s", uv_strerror(status));
    if (res) uv_freeaddrinfo(res);
    fail(c, msg);
    return;
  }
  /* IPv4 first: servers on loopback often listen on 127.0.0.1 only */
  struct addrinfo *pick = NULL;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
    if (ai->ai_family == AF_INET) {
      pick = ai;
      break;
    }
  if (!pick)
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
      if (ai->ai_family == AF_INET6) {
        pick = ai;
        break;
      }
  if (!pick) {
    uv_freeaddrinfo(res);
    fail(c, "getaddrinfo: no address");
    return;
  }
  if (pick->ai_family == AF_INET)
    uv_ip4_name((struct sockaddr_in *)pick->ai_addr, c->addr, sizeof c->addr);
  else
    uv_ip6_name((struct sockaddr_in6 *)pick->ai_addr, c->addr, sizeof c->addr);
  uv_freeaddrinfo(res);
  connect_addr(c);
}

int ml_http_conn_start(ml_http_conn *c, ml_loop *loop, ml_http_notify notify)
{
  c->loop = loop;
  c->notify = notify;
  if (!c->max_buffer) c->max_buffer = 1 << 20;
  c->ctx = ctx_get(loop);
  if (!c->ctx) {
    set_err(c, "%s", "cannot create the libwebsockets context");
    c->state = ML_HTTP_FAILED;
    return -1;
  }
  c->state = ML_HTTP_CONNECTING;
  unsigned char probe[16];
  if (uv_inet_pton(AF_INET, c->host, probe) == 0 || uv_inet_pton(AF_INET6, c->host, probe) == 0) {
    snprintf(c->addr, sizeof c->addr, "%.63s", c->host); /* numeric: short */
    connect_addr(c);
    return 0;
  }
  ml_http_dns *d = calloc(1, sizeof *d);
  if (!d) {
    fail(c, "out of memory");
    return 0;
  }
  d->c = c;
  char port[8];
  snprintf(port, sizeof port, "%d", c->port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  int rc = uv_getaddrinfo(loop->uv, &d->req, on_resolved, c->host, port, &hints);
  if (rc) {
    free(d);
    char msg[160];
    snprintf(msg, sizeof msg, "getaddrinfo: %s", uv_strerror(rc));
    fail(c, msg);
    return 0;
  }
  c->dns = d;
  return 0;
}

void ml_http_conn_abort(ml_http_conn *c, const char *why)
{
  if (c->dns) {
    c->dns->c = NULL;
    uv_cancel((uv_req_t *)&c->dns->req);
    c->dns = NULL;
  }
  if (c->wsi) {
    struct lws *wsi = c->wsi;
    detach(c);
    /* inside one of our callbacks the wsi may be the one being serviced */
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK,
                    c->ctx && c->ctx->depth ? LWS_TO_KILL_ASYNC : LWS_TO_KILL_SYNC);
  }
  c->notify = NULL;
  if (why && c->state != ML_HTTP_DONE && c->state != ML_HTTP_FAILED) {
    snprintf(c->err, sizeof c->err, "%s", why);
    c->state = ML_HTTP_FAILED;
  }
}

void ml_http_conn_free(ml_http_conn *c)
{
  ml_http_conn_abort(c, NULL);
  free(c->path);
  free(c->ca_file);
  free(c->req_headers);
  free(c->want);
  free(c->resp_headers);
  free(c->ring);
  c->path = c->ca_file = c->req_headers = c->want = c->resp_headers = c->ring = NULL;
  c->len = c->cap = 0;
}
