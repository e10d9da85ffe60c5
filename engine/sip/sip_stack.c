/* The transport of a SIP stack (UDP here, TCP in sip_tcp.c) and the receive
 * path: parse, validate (the responses RFC 3261 prescribes), then hand the
 * message to its transaction or to the UA core. One receive buffer per
 * stack: no allocation per datagram. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sip_call.h"

/* ---- addresses ------------------------------------------------------------------ */

void ml_sip_addr_format(const ml_sip_addr *a, char *buf, size_t cap, int with_port)
{
  char ip[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (a->ss.ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    port = ntohs(in->sin_port);
    if (with_port)
      snprintf(buf, cap, "%s:%d", ip, port);
    else
      snprintf(buf, cap, "%s", ip);
  } else {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    port = ntohs(in6->sin6_port);
    if (with_port)
      snprintf(buf, cap, "[%s]:%d", ip, port);
    else
      snprintf(buf, cap, "[%s]", ip);
  }
}

int ml_sip_addr_port(const ml_sip_addr *a)
{
  if (a->ss.ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
  return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

void ml_sip_addr_set_port(ml_sip_addr *a, int port)
{
  if (a->ss.ss_family == AF_INET6)
    ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)port);
}

int ml_sip_addr_eq(const ml_sip_addr *a, const ml_sip_addr *b)
{
  return a->tcp == b->tcp && a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

void ml_sip_addr_from_sockaddr(const struct sockaddr *sa, ml_sip_addr *out)
{
  memset(out, 0, sizeof *out);
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *src = (const struct sockaddr_in6 *)sa;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = src->sin6_port;
    in6->sin6_addr = src->sin6_addr;
    in6->sin6_scope_id = src->sin6_scope_id;
    out->len = sizeof *in6;
  } else {
    const struct sockaddr_in *src = (const struct sockaddr_in *)sa;
    struct sockaddr_in *in = (struct sockaddr_in *)&out->ss;
    in->sin_family = AF_INET;
    in->sin_port = src->sin_port;
    in->sin_addr = src->sin_addr;
    out->len = sizeof *in;
  }
}

int ml_sip_addr_resolve(const char *host, int port, ml_sip_addr *out)
{
  memset(out, 0, sizeof *out);
  struct sockaddr_in *in = (struct sockaddr_in *)&out->ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;
  if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    out->len = sizeof *in;
    return 0;
  }
  if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    out->len = sizeof *in6;
    return 0;
  }
  return -1;
}

/* ---- identifiers ---------------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

void ml_sip_make_tag(ml_sip_stack *s, char *buf, size_t cap)
{
  snprintf(buf, cap, "%016llx", (unsigned long long)mix(uv_hrtime() ^ ++s->tag_seq ^ (uintptr_t)s));
}

void ml_sip_make_branch(ml_sip_stack *s, char *buf, size_t cap)
{
  /* the magic cookie marks an RFC 3261 branch (§8.1.1.7) */
  snprintf(buf, cap, "z9hG4bK%016llx",
           (unsigned long long)mix(uv_hrtime() ^ ++s->tag_seq ^ 0x9e3779b97f4a7c15ull));
}

/* ---- sending -------------------------------------------------------------------- */

int ml_sip_stack_send(ml_sip_stack *s, const ml_sip_addr *to, const char *buf, size_t len)
{
  if (to->tcp) {
    if (ml_sip_tcp_send(s, to, buf, len) != 0) return -1;
    s->tx++;
    return 0;
  }
  if (!s->udp_open) return -1;
  uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
  /* a datagram either goes now or is dropped: SIP retransmits, and UDP
   * sockets are rarely full; no copy, no allocation */
  int rc = uv_udp_try_send(&s->udp, &b, 1, (const struct sockaddr *)&to->ss);
  if (rc < 0) {
    ml_log(ML_LOG_WARN, "sip: send to a peer failed: %s", uv_strerror(rc));
    return -1;
  }
  s->tx++;
  return 0;
}

/* A stateless response to a request we will not process further. */
static void respond_stateless(ml_sip_stack *s, const ml_sip_msg *req, const ml_sip_addr *to, int code,
                              const char *extra_name, const char *extra_value)
{
  char buf[4096];
  ml_sip_builder b;
  ml_sip_builder_init(&b, buf, sizeof buf);
  char tag[40] = "";
  if (req->to.tag.n == 0) ml_sip_make_tag(s, tag, sizeof tag);
  if (ml_sip_build_response(req, code, NULL, ml_str_c(tag), &b) != 0) return;
  if (extra_name) ml_sip_builder_header(&b, extra_name, ml_str_c(extra_value));
  if (s->cfg.user_agent) ml_sip_builder_header(&b, "Server", ml_str_c(s->cfg.user_agent));
  size_t n = ml_sip_builder_finish(&b, ML_STR_NULL);
  if (n) ml_sip_stack_send(s, to, buf, n);
}

/* ---- receiving ------------------------------------------------------------------ */

/* extensions we support (Require checks, RFC 3261 §8.2.2.3) */
static int supported_option(ml_str opt)
{
  return ml_str_ieq_c(opt, "timer") || ml_str_ieq_c(opt, "replaces");
}

static void handle_request(ml_sip_stack *s, const ml_sip_msg *req, const ml_sip_addr *from)
{
  /* retransmission, ACK for a non-2xx, or CANCEL's own: the transaction layer */
  ml_sip_method m = req->method == ML_SIP_ACK ? ML_SIP_INVITE : req->method;
  ml_sip_txn *t = ml_sip_txn_find(s, req->via0.branch, m, 1);
  if (t && (req->method != ML_SIP_ACK || t->last_code >= 300)) {
    ml_sip_txn_server_recv(t, req);
    return;
  }
  if (req->method == ML_SIP_ACK) { /* ACK for a 2xx: the dialog's */
    ml_sip_ua_request(s, req, from);
    return;
  }
  if (req->max_forwards == 0) {
    respond_stateless(s, req, from, 483, NULL, NULL);
    return;
  }
  ml_sip_iter it;
  ml_str opt;
  ml_sip_iter_init(&it, req, ML_SIP_H_REQUIRE);
  while (ml_sip_iter_next(&it, &opt) == 1) {
    if (!supported_option(ml_str_trim(opt))) {
      char unsupported[128];
      snprintf(unsupported, sizeof unsupported, "%.*s", (int)opt.n, opt.p);
      respond_stateless(s, req, from, 420, "Unsupported", unsupported);
      return;
    }
  }
  ml_sip_ua_request(s, req, from);
}

static void handle_response(ml_sip_stack *s, const ml_sip_msg *rsp)
{
  ml_sip_txn *t = ml_sip_txn_find(s, rsp->via0.branch, rsp->cseq_method, 0);
  if (!t) return; /* stray: RFC 3261 §18.1.2 says discard */
  ml_sip_txn_client_recv(t, rsp);
}

/* Parse and handle one message; -1 when it was malformed. */
static int receive(ml_sip_stack *s, const char *buf, size_t len, const ml_sip_addr *from, int flags)
{
  ml_sip_msg *m = &s->msg;
  s->rx++;
  if (ml_sip_parse(m, buf, len, flags) != 0) {
    s->rx_errors++;
    ml_log(ML_LOG_INFO, "sip: bad message (%d %s: %s)", m->err.code, m->err.reason,
           m->err.detail ? m->err.detail : "");
    if (ml_sip_can_respond(m) && m->err.code >= 400) respond_stateless(s, m, from, m->err.code, NULL, NULL);
    return -1;
  }
  if (m->is_request)
    handle_request(s, m, from);
  else
    handle_response(s, m);
  return 0;
}

void ml_sip_stack_receive(ml_sip_stack *s, const char *buf, size_t len, const ml_sip_addr *from)
{
  /* keep-alive CRLFs (RFC 5626) */
  size_t i = 0;
  while (i < len && (buf[i] == '\r' || buf[i] == '\n')) i++;
  if (i == len) return;
  receive(s, buf, len, from, ML_SIP_UDP);
}

int ml_sip_stack_receive_stream(ml_sip_stack *s, const char *buf, size_t len, const ml_sip_addr *from)
{
  return receive(s, buf, len, from, ML_SIP_STREAM);
}

void ml_sip_stack_reject_stream(ml_sip_stack *s, const char *head, size_t len, const ml_sip_addr *from)
{
  ml_sip_msg *m = &s->msg;
  ml_sip_parse(m, head, len, ML_SIP_STREAM);
  if (ml_sip_can_respond(m)) respond_stateless(s, m, from, 400, NULL, NULL);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  (void)suggested;
  ml_sip_stack *s = h->data;
  *buf = uv_buf_init(s->rbuf, sizeof s->rbuf);
}

static void on_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
  ml_sip_stack *s = h->data;
  if (n <= 0 || !addr) return;
  if (flags & UV_UDP_PARTIAL) { /* over 64 KiB: not SIP we accept */
    s->rx_errors++;
    return;
  }
  ml_sip_addr from;
  ml_sip_addr_from_sockaddr(addr, &from);
  ml_sip_stack_receive(s, buf->base, (size_t)n, &from);
}

/* UDP and TCP on one ephemeral port: take a TCP port, then the same UDP
 * port; a few tries, since another process may hold that UDP port. */
static int bind_pair(const ml_sip_addr *a, int *tcp_fd, int *udp_fd)
{
  for (int attempt = 0; attempt < 16; attempt++) {
    int t = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int u = socket(a->ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (t < 0 || u < 0) {
      int e = -errno;
      if (t >= 0) close(t);
      if (u >= 0) close(u);
      return e;
    }
    int on = 1;
    setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    ml_sip_addr b = *a;
    socklen_t blen = b.len;
    if (bind(t, (struct sockaddr *)&b.ss, b.len) == 0 &&
        getsockname(t, (struct sockaddr *)&b.ss, &blen) == 0 &&
        bind(u, (struct sockaddr *)&b.ss, b.len) == 0) {
      *tcp_fd = t;
      *udp_fd = u;
      return 0;
    }
    close(t);
    close(u);
  }
  return UV_EADDRINUSE;
}

int ml_sip_stack_open(ml_sip_stack *s, ml_loop *loop, const ml_sip_stack_cfg *cfg)
{
  memset(s, 0, sizeof *s);
  s->loop = loop;
  s->cfg = *cfg;
  int want = cfg->transports ? cfg->transports : ML_SIP_LISTEN_UDP;
  ml_sip_addr a;
  if (ml_sip_addr_resolve(cfg->host ? cfg->host : "127.0.0.1", cfg->port, &a) != 0) return UV_EINVAL;
  int tcp_fd = -1, udp_fd = -1, rc;
  if (want == (ML_SIP_LISTEN_UDP | ML_SIP_LISTEN_TCP) && cfg->port == 0 &&
      (rc = bind_pair(&a, &tcp_fd, &udp_fd)) != 0)
    return rc;
  if (want & ML_SIP_LISTEN_UDP) {
    if ((rc = uv_udp_init(loop->uv, &s->udp)) != 0) goto fail;
    s->udp.data = s;
    s->udp_open = 1;
    s->handles++;
    rc = udp_fd >= 0 ? uv_udp_open(&s->udp, udp_fd) : uv_udp_bind(&s->udp, (const struct sockaddr *)&a.ss, 0);
    udp_fd = -1;
    if (rc || (rc = uv_udp_recv_start(&s->udp, on_alloc, on_recv)) != 0) goto fail;
    int namelen = sizeof s->local.ss;
    uv_udp_getsockname(&s->udp, (struct sockaddr *)&s->local.ss, &namelen);
    s->local.len = (socklen_t)namelen;
    ml_sip_addr_set_port(&a, ml_sip_addr_port(&s->local));
  }
  if (want & ML_SIP_LISTEN_TCP) {
    if (tcp_fd >= 0) {
      if ((rc = uv_tcp_init(loop->uv, &s->tcp)) != 0) goto fail;
      s->tcp.data = s;
      s->tcp_open = 1;
      s->handles++;
      rc = uv_tcp_open(&s->tcp, tcp_fd);
      tcp_fd = -1;
      if (rc || (rc = ml_sip_tcp_start(s)) != 0) goto fail;
    } else if ((rc = ml_sip_tcp_listen(s, &a)) != 0) {
      goto fail;
    }
    if (!(want & ML_SIP_LISTEN_UDP)) {
      int namelen = sizeof s->local.ss;
      uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&s->local.ss, &namelen);
      s->local.len = (socklen_t)namelen;
    }
  }
  ml_sip_addr_format(&s->local, s->local_hostport, sizeof s->local_hostport, 1);
  return 0;
fail:
  if (tcp_fd >= 0) close(tcp_fd);
  if (udp_fd >= 0) close(udp_fd);
  ml_sip_stack_close(s, NULL);
  return rc;
}

void ml_sip_stack_handle_closed(ml_sip_stack *s)
{
  if (--s->handles == 0 && s->closing && s->on_closed) s->on_closed(s);
}

static void on_handle_closed(uv_handle_t *h) { ml_sip_stack_handle_closed(h->data); }

void ml_sip_stack_close(ml_sip_stack *s, void (*on_closed)(ml_sip_stack *s))
{
  s->closing = 1;
  s->on_closed = on_closed;
  ml_sip_ua_free_all(s);
  ml_sip_txn_free_all(s);
  ml_sip_tcp_close_all(s);
  if (s->udp_open) {
    s->udp_open = 0;
    uv_close((uv_handle_t *)&s->udp, on_handle_closed);
  }
  if (s->tcp_open) {
    s->tcp_open = 0;
    uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
  }
  if (s->handles == 0 && on_closed) on_closed(s);
}
