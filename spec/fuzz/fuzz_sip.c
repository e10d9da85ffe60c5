/* libFuzzer harness for the SIP message layer (engine/sip/sip_msg.c,
 * sip_uri.c, sip_build.c). The same bytes go through the datagram and the
 * stream parser, every sub-parser on every header value and list item, and
 * the stream framer. Besides ASan/UBSan it checks invariants:
 *   - every view lies inside the input, every count within its limit;
 *   - a failed parse carries one of 400/505/513, a reason and a detail;
 *   - framing and parsing agree on every message that parses;
 *   - a response built for any request that parses, parses back.
 * Run: build-fuzz/spec/fuzz/fuzz_sip -max_total_time=120 <corpus copy> */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "sip_msg.h"

static ml_sip_msg msg, rsp;
static char out[ML_SIP_MAX_MSG + 8192];
static char scratch[ML_SIP_MAX_MSG];

static int inside(ml_str v, ml_str s) { return v.n == 0 || (v.p >= s.p && v.p + v.n <= s.p + s.n); }

/* where a view starts and ends tells whether the parser cut it right */
static int after(ml_str v, char c) { return v.n == 0 || v.p[-1] == c; }
static int before(ml_str v, ml_str s, char c) { return v.n == 0 || (v.p + v.n < s.p + s.n && v.p[v.n] == c); }

static void check_host(ml_str host, ml_sip_host_type type, ml_str s)
{
  if (type == ML_SIP_HOST_IPV6) ASSERT(after(host, '[') && before(host, s, ']') && host.n >= 2);
  if (type == ML_SIP_HOST_NAME || type == ML_SIP_HOST_IPV4) {
    for (size_t i = 0; i < host.n; i++) ASSERT(host.p[i] != ']' && host.p[i] != ':' && host.p[i] != ';');
    ASSERT(host.n > 0);
  }
}

static void check_uri(const ml_sip_uri *u, ml_str s)
{
  ASSERT(inside(u->text, s) && inside(u->scheme_name, s) && inside(u->user, s) && inside(u->password, s));
  ASSERT(inside(u->host, s) && inside(u->params, s) && inside(u->headers, s));
  ASSERT(u->port >= 0 && u->port <= 65535);
}

/* a URI that parsed: each part sits between its delimiters */
static void check_uri_parts(const ml_sip_uri *u)
{
  ml_str t = u->text;
  check_uri(u, t);
  ASSERT(after(u->params, ';') && after(u->headers, '?') && after(u->password, ':'));
  if (u->scheme == ML_SIP_URI_SIP || u->scheme == ML_SIP_URI_SIPS) {
    ASSERT(u->user.n == 0 || before(u->user, t, ':') || before(u->user, t, '@'));
    check_host(u->host, u->host_type, t);
    ASSERT(u->params.n == 0 || u->params.p + u->params.n == t.p + t.n || before(u->params, t, '?'));
    ASSERT(u->headers.n == 0 || u->headers.p + u->headers.n == t.p + t.n);
  }
}

static void params(ml_str list, ml_str s)
{
  ml_str n, v;
  while (ml_sip_param_next(&list, &n, &v) == 1) ASSERT(inside(n, s) && inside(v, s) && n.n > 0);
  ml_sip_param(list, "tag", &v);
}

/* every sub-parser on one view: what they return must stay inside it */
static void sub_parsers(ml_str v)
{
  ml_str s = v;
  ml_sip_uri u;
  ml_sip_name_addr na;
  ml_sip_via via;
  ml_str item, rest = v, m;
  uint32_t seq;

  if (ml_sip_parse_uri(v, &u) == 0) {
    check_uri_parts(&u);
    ASSERT(ml_str_eq(u.text, v));
    params(u.params, s);
    if (ml_sip_uri_header(u.headers, "Replaces", &item)) ASSERT(inside(item, s));
    ASSERT(ml_sip_unescape(u.user, scratch, sizeof scratch) >= 0);
  }
  if (ml_sip_parse_name_addr(v, &na) == 0) {
    check_uri(&na.uri, s);
    check_uri_parts(&na.uri);
    ASSERT(!na.bracketed || (after(na.uri.text, '<') && before(na.uri.text, s, '>')));
    ASSERT(inside(na.display, s) && inside(na.params, s) && inside(na.tag, s));
    params(na.params, s);
    if (ml_sip_uri_header(na.uri.headers, "Replaces", &item)) ASSERT(inside(item, s));
  }
  if (ml_sip_parse_via(v, &via) == 0) {
    ASSERT(inside(via.transport_name, s) && inside(via.host, s) && inside(via.params, s));
    check_host(via.host, via.host_type, s);
    ASSERT(inside(via.branch, s) && inside(via.received, s) && inside(via.maddr, s));
    ASSERT(via.rport >= -1 && via.rport <= 65535 && via.ttl >= -1 && via.ttl <= 255);
  }
  if (ml_sip_parse_cseq(v, &seq, &m) == 0) ASSERT(seq < 0x80000000u && inside(m, s) && m.n > 0);
  params(v, s);
  while (ml_sip_split(&rest, &item) == 1) {
    ASSERT(inside(item, s) && item.n > 0);
    if (ml_sip_parse_name_addr(item, &na) == 0) check_uri_parts(&na.uri);
    if (ml_sip_parse_via(item, &via) == 0) check_host(via.host, via.host_type, item);
  }
  ml_sip_unescape(v, scratch, sizeof scratch);
  size_t un = ml_sip_unfold(v, scratch, sizeof scratch);
  ASSERT(un <= v.n);
  ASSERT(inside(ml_sip_unquote(v), s));
}

static void check_msg(const ml_sip_msg *m, ml_str s)
{
  ASSERT(m->n_headers <= ML_SIP_MAX_HEADERS && m->n_via <= ML_SIP_MAX_VIA &&
         m->n_contact <= ML_SIP_MAX_CONTACT);
  ASSERT(m->n_route <= ML_SIP_MAX_ROUTE && m->n_record_route <= ML_SIP_MAX_ROUTE);
  ASSERT(m->len <= s.n);
  ASSERT(inside(m->method_name, s) && inside(m->reason, s) && inside(m->call_id, s) && inside(m->body, s));
  ASSERT(inside(m->cseq_method_name, s) && inside(m->content_type, s));
  check_uri(&m->ruri, s);
  check_uri(&m->from.uri, s);
  check_uri(&m->to.uri, s);
  ASSERT(inside(m->from.tag, s) && inside(m->to.tag, s) && inside(m->via0.branch, s) &&
         inside(m->via0.host, s));
  for (unsigned i = 0; i < m->n_headers; i++) {
    const ml_sip_header *h = &m->headers[i];
    ASSERT(inside(h->name, s) && inside(h->value, s) && h->name.n > 0 && h->id < ML_SIP_H__COUNT);
    ASSERT(h->next == ML_SIP_NONE ||
           (h->next > i && h->next < m->n_headers && m->headers[h->next].id == h->id));
  }
  for (unsigned i = 0; i < m->n_via; i++) ASSERT(inside(m->via[i], s));
  for (unsigned i = 0; i < m->n_contact; i++) ASSERT(inside(m->contact[i], s));
  for (unsigned i = 0; i < m->n_route; i++) ASSERT(inside(m->route[i], s));
  for (unsigned i = 0; i < m->n_record_route; i++) ASSERT(inside(m->record_route[i], s));
  if (m->err.code) {
    ASSERT(m->err.code == 400 || m->err.code == 505 || m->err.code == 513);
    ASSERT(m->err.reason && m->err.detail);
  } else {
    ASSERT(m->status == 0 || (m->status >= 100 && m->status <= 699));
    ASSERT(m->content_length < 0 || (size_t)m->content_length == m->body.n);
    ASSERT(m->body.p + m->body.n == s.p + m->len);
  }
}

/* a response to a request that parsed must parse, unless the response
 * itself crosses a limit ("v:" became "Via: ", a tag was added) */
static void respond(const ml_sip_msg *req, int code, const char *tag)
{
  ml_sip_builder b;
  ml_sip_builder_init(&b, out, sizeof out);
  if (ml_sip_build_response(req, code, NULL, ml_str_c(tag), &b) != 0) {
    ASSERT(!ml_sip_can_respond(req));
    return;
  }
  size_t n = ml_sip_builder_finish(&b, ML_STR_LIT("ok"));
  ASSERT(n > 0);
  if (req->err.code) return; /* an echo of a bad request may be bad itself */
  int rc = ml_sip_parse(&rsp, out, n, ML_SIP_STREAM);
  if (rc != 0 && n <= ML_SIP_MAX_MSG && strcmp(rsp.err.detail, "header line too long") != 0) {
    fprintf(stderr, "fuzz_sip: response %d does not parse: %s\n%.*s\n", code, rsp.err.detail, (int)n, out);
    abort();
  }
  if (rc == 0) {
    ASSERT(rsp.status == code && rsp.n_via == req->n_via && rsp.body.n == 2);
    ASSERT(ml_str_eq(rsp.call_id, req->call_id) && rsp.cseq == req->cseq);
    ASSERT(req->to.tag.n || !tag[0] || ml_str_eq(rsp.to.tag, ml_str_c(tag)));
  }
}

/* the framer agrees with the stream parser on every message that parses */
static void frame(ml_str s)
{
  size_t off = 0, len = 0;
  int rc;
  while ((rc = ml_sip_frame(s.p + off, s.n - off, &len)) == ML_SIP_FRAME_KEEPALIVE) {
    ASSERT(len > 0 && len <= s.n - off);
    off += len;
  }
  if (rc == ML_SIP_FRAME_OK) ASSERT(len > 0 && len <= s.n - off);
  int parsed = ml_sip_parse(&msg, s.p, s.n, ML_SIP_STREAM) == 0;
  if (parsed) {
    ASSERT(rc == ML_SIP_FRAME_OK && off + len == msg.len);
  }
  if (rc == ML_SIP_FRAME_OK && off + len < s.n) {
    /* the rest is the next message: frame it too */
    ml_sip_frame(s.p + off + len, s.n - off - len, &len);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  ml_str s = ml_str_make((const char *)data, size);
  static const int flags[] = {ML_SIP_UDP, ML_SIP_STREAM};

  for (int f = 0; f < 2; f++) {
    int rc = ml_sip_parse(&msg, s.p, s.n, flags[f]);
    ASSERT(rc == msg.err.code);
    check_msg(&msg, s);
    if (f == 0) {
      for (unsigned i = 0; i < msg.n_headers; i++) {
        sub_parsers(msg.headers[i].value);
        ASSERT(ml_sip_hdr_lookup(msg.headers[i].name) == msg.headers[i].id);
      }
      for (int id = 0; id < ML_SIP_H__COUNT; id++) {
        ml_sip_iter it;
        ml_str v;
        ml_sip_iter_init(&it, &msg, (ml_sip_hdr_id)id);
        while (ml_sip_iter_next(&it, &v) == 1) ASSERT(inside(v, s));
      }
      ml_sip_header_has(&msg, ML_SIP_H_SUPPORTED, "timer");
      ml_sip_header_find(&msg, ML_STR_LIT("X-Custom"));
      if (ml_sip_can_respond(&msg)) {
        respond(&msg, msg.err.code ? msg.err.code : 180, "fz1");
        if (!msg.err.code) {
          respond(&msg, 100, "");
          respond(&msg, 200, "fz2");
        }
      }
    }
  }
  frame(s);
  /* the raw input as one header value */
  sub_parsers(size > 4096 ? ml_str_make(s.p, 4096) : s);
  return 0;
}
