/* The SIP message parser (RFC 3261 §7) and stream framing (§18.3).
 *
 * One pass over the head: the start line, then header lines (a line that
 * starts with SP/HTAB continues the previous header). Each header is indexed
 * by id as soon as it ends and the well-known ones are checked right there,
 * so a message is read once. Errors in the line structure stop the parse;
 * errors inside a value are recorded (the first one wins) and parsing goes
 * on, so that a 400 can still be built from what was read. */
#include <string.h> /* memmem: _GNU_SOURCE comes from CMakeLists.txt */

#include "sip_lex.h"
#include "sip_msg.h"

/* ---- methods and header names ---------------------------------------------- */

static const char *const method_names[] = {
    [ML_SIP_OTHER] = "",
    [ML_SIP_INVITE] = "INVITE",
    [ML_SIP_ACK] = "ACK",
    [ML_SIP_BYE] = "BYE",
    [ML_SIP_CANCEL] = "CANCEL",
    [ML_SIP_OPTIONS] = "OPTIONS",
    [ML_SIP_REGISTER] = "REGISTER",
    [ML_SIP_REFER] = "REFER",
    [ML_SIP_NOTIFY] = "NOTIFY",
    [ML_SIP_INFO] = "INFO",
    [ML_SIP_UPDATE] = "UPDATE",
    [ML_SIP_PRACK] = "PRACK",
    [ML_SIP_SUBSCRIBE] = "SUBSCRIBE",
    [ML_SIP_MESSAGE] = "MESSAGE",
};
#define METHOD_COUNT (sizeof method_names / sizeof method_names[0])

ml_sip_method ml_sip_method_lookup(ml_str name)
{
  for (size_t i = 1; i < METHOD_COUNT; i++)
    if (ml_str_eq(name, ml_str_c(method_names[i]))) return (ml_sip_method)i;
  return ML_SIP_OTHER;
}

const char *ml_sip_method_name(ml_sip_method m) { return (size_t)m < METHOD_COUNT ? method_names[m] : ""; }

enum { H_SINGLE = 1 }; /* a second one is a 400 (RFC 4475 §3.3.8, §3.3.9) */

/* clang-format off */
#define HDR(name, compact, flags, dup) {name, sizeof(name) - 1, compact, flags, dup}
/* clang-format on */

static const struct hdr_def {
  const char *name;
  unsigned char len;
  char compact;
  unsigned char flags;
  const char *dup; /* the error detail for a second one */
} hdr_defs[ML_SIP_H__COUNT] = {
    [ML_SIP_H_OTHER] = HDR("", 0, 0, NULL),
    [ML_SIP_H_VIA] = HDR("Via", 'v', 0, NULL),
    [ML_SIP_H_FROM] = HDR("From", 'f', H_SINGLE, "duplicate From"),
    [ML_SIP_H_TO] = HDR("To", 't', H_SINGLE, "duplicate To"),
    [ML_SIP_H_CALL_ID] = HDR("Call-ID", 'i', H_SINGLE, "duplicate Call-ID"),
    [ML_SIP_H_CSEQ] = HDR("CSeq", 0, H_SINGLE, "duplicate CSeq"),
    [ML_SIP_H_MAX_FORWARDS] = HDR("Max-Forwards", 0, H_SINGLE, "duplicate Max-Forwards"),
    [ML_SIP_H_CONTENT_LENGTH] = HDR("Content-Length", 'l', H_SINGLE, "duplicate Content-Length"),
    [ML_SIP_H_CONTENT_TYPE] = HDR("Content-Type", 'c', H_SINGLE, "duplicate Content-Type"),
    [ML_SIP_H_CONTENT_ENCODING] = HDR("Content-Encoding", 'e', 0, NULL),
    [ML_SIP_H_CONTACT] = HDR("Contact", 'm', 0, NULL),
    [ML_SIP_H_ROUTE] = HDR("Route", 0, 0, NULL),
    [ML_SIP_H_RECORD_ROUTE] = HDR("Record-Route", 0, 0, NULL),
    [ML_SIP_H_REQUIRE] = HDR("Require", 0, 0, NULL),
    [ML_SIP_H_PROXY_REQUIRE] = HDR("Proxy-Require", 0, 0, NULL),
    [ML_SIP_H_SUPPORTED] = HDR("Supported", 'k', 0, NULL),
    [ML_SIP_H_UNSUPPORTED] = HDR("Unsupported", 0, 0, NULL),
    [ML_SIP_H_EXPIRES] = HDR("Expires", 0, 0, NULL),
    [ML_SIP_H_MIN_EXPIRES] = HDR("Min-Expires", 0, 0, NULL),
    [ML_SIP_H_WWW_AUTHENTICATE] = HDR("WWW-Authenticate", 0, 0, NULL),
    [ML_SIP_H_PROXY_AUTHENTICATE] = HDR("Proxy-Authenticate", 0, 0, NULL),
    [ML_SIP_H_AUTHORIZATION] = HDR("Authorization", 0, 0, NULL),
    [ML_SIP_H_PROXY_AUTHORIZATION] = HDR("Proxy-Authorization", 0, 0, NULL),
    [ML_SIP_H_REFER_TO] = HDR("Refer-To", 'r', 0, NULL),
    [ML_SIP_H_REFERRED_BY] = HDR("Referred-By", 'b', 0, NULL),
    [ML_SIP_H_EVENT] = HDR("Event", 'o', 0, NULL),
    [ML_SIP_H_ALLOW_EVENTS] = HDR("Allow-Events", 'u', 0, NULL),
    [ML_SIP_H_SUBSCRIPTION_STATE] = HDR("Subscription-State", 0, 0, NULL),
    [ML_SIP_H_SESSION_EXPIRES] = HDR("Session-Expires", 'x', 0, NULL),
    [ML_SIP_H_MIN_SE] = HDR("Min-SE", 0, 0, NULL),
    [ML_SIP_H_ALLOW] = HDR("Allow", 0, 0, NULL),
    [ML_SIP_H_ACCEPT] = HDR("Accept", 0, 0, NULL),
    [ML_SIP_H_USER_AGENT] = HDR("User-Agent", 0, 0, NULL),
    [ML_SIP_H_SERVER] = HDR("Server", 0, 0, NULL),
    [ML_SIP_H_SUBJECT] = HDR("Subject", 's', 0, NULL),
    [ML_SIP_H_IDENTITY] = HDR("Identity", 'y', 0, NULL),
    [ML_SIP_H_IDENTITY_INFO] = HDR("Identity-Info", 'n', 0, NULL),
    [ML_SIP_H_ACCEPT_CONTACT] = HDR("Accept-Contact", 'a', 0, NULL),
    [ML_SIP_H_REJECT_CONTACT] = HDR("Reject-Contact", 'j', 0, NULL),
    [ML_SIP_H_REQUEST_DISPOSITION] = HDR("Request-Disposition", 'd', 0, NULL),
    [ML_SIP_H_RETRY_AFTER] = HDR("Retry-After", 0, 0, NULL),
    [ML_SIP_H_TIMESTAMP] = HDR("Timestamp", 0, 0, NULL),
    [ML_SIP_H_WARNING] = HDR("Warning", 0, 0, NULL),
    [ML_SIP_H_REASON] = HDR("Reason", 0, 0, NULL),
    [ML_SIP_H_REPLACES] = HDR("Replaces", 0, 0, NULL),
    [ML_SIP_H_RSEQ] = HDR("RSeq", 0, 0, NULL),
    [ML_SIP_H_RACK] = HDR("RAck", 0, 0, NULL),
#undef HDR
};

ml_sip_hdr_id ml_sip_hdr_lookup(ml_str name)
{
  if (name.n == 0) return ML_SIP_H_OTHER;
  int c = ml_ascii_lower((unsigned char)name.p[0]);
  for (int i = 1; i < ML_SIP_H__COUNT; i++) {
    const struct hdr_def *d = &hdr_defs[i];
    if (name.n == 1 ? d->compact && c == d->compact
                    : name.n == d->len && c == ml_ascii_lower((unsigned char)d->name[0]) &&
                          ml_str_ieq(name, ml_str_make(d->name, d->len)))
      return (ml_sip_hdr_id)i;
  }
  return ML_SIP_H_OTHER;
}

const char *ml_sip_hdr_name(ml_sip_hdr_id id)
{
  return (unsigned)id < ML_SIP_H__COUNT ? hdr_defs[id].name : "";
}

/* ---- lists ----------------------------------------------------------------- */

int ml_sip_split(ml_str *rest, ml_str *value)
{
  if (!rest->n) return 0;
  const char *p = rest->p, *end = p + rest->n;
  p = lex_skip_lws(p, end);
  if (p == end) {
    *rest = lex_span(end, end);
    return 0;
  }
  const char *start = p;
  int angle = 0;
  while (p < end) {
    if (*p == '"') {
      size_t q = lex_quoted(p, (size_t)(end - p));
      if (!q) return -1;
      p += q;
      continue;
    }
    if (*p == '<') {
      if (angle) return -1;
      angle = 1;
    } else if (*p == '>') {
      angle = 0;
    } else if (*p == ',' && !angle) {
      break;
    }
    p++;
  }
  if (angle) return -1;
  *value = lex_trim(lex_span(start, p));
  if (!value->n) return -1;
  if (p < end && lex_skip_lws(++p, end) == end) return -1; /* "a," */
  *rest = lex_span(p, end);
  return 1;
}

void ml_sip_iter_init(ml_sip_iter *it, const ml_sip_msg *m, ml_sip_hdr_id id)
{
  it->m = m;
  it->h = m->first[id];
  it->rest = it->h != ML_SIP_NONE ? m->headers[it->h].value : ML_STR_NULL;
}

int ml_sip_iter_next(ml_sip_iter *it, ml_str *value)
{
  while (it->h != ML_SIP_NONE) {
    int rc = ml_sip_split(&it->rest, value);
    if (rc != 0) return rc;
    it->h = it->m->headers[it->h].next;
    if (it->h != ML_SIP_NONE) it->rest = it->m->headers[it->h].value;
  }
  return 0;
}

int ml_sip_header_has(const ml_sip_msg *m, ml_sip_hdr_id id, const char *token)
{
  ml_sip_iter it;
  ml_str v, want = ml_str_c(token);
  ml_sip_iter_init(&it, m, id);
  while (ml_sip_iter_next(&it, &v) == 1)
    if (ml_str_ieq(v, want)) return 1;
  return 0;
}

const ml_sip_header *ml_sip_header_get(const ml_sip_msg *m, ml_sip_hdr_id id)
{
  if ((unsigned)id >= ML_SIP_H__COUNT || m->first[id] == ML_SIP_NONE) return NULL;
  return &m->headers[m->first[id]];
}

const ml_sip_header *ml_sip_header_next(const ml_sip_msg *m, const ml_sip_header *h)
{
  return h->next == ML_SIP_NONE ? NULL : &m->headers[h->next];
}

const ml_sip_header *ml_sip_header_find(const ml_sip_msg *m, ml_str name)
{
  ml_sip_hdr_id id = ml_sip_hdr_lookup(name);
  if (id != ML_SIP_H_OTHER) return ml_sip_header_get(m, id);
  for (unsigned i = 0; i < m->n_headers; i++)
    if (ml_str_ieq(m->headers[i].name, name)) return &m->headers[i];
  return NULL;
}

/* ---- parser state and errors ----------------------------------------------- */

typedef struct sip_parser {
  ml_sip_msg *m;
  uint8_t last[ML_SIP_H__COUNT]; /* last header of each id, to chain the next */
  int via_bad; /* a Via failed: no response can be routed */
  int cseq_ok;
} sip_parser;

/* record an error; the first one is the one reported */
static int fail(ml_sip_msg *m, int code, const char *detail)
{
  if (!m->err.code) {
    m->err.code = code;
    m->err.reason = ml_sip_reason(code);
    m->err.detail = detail;
  }
  return -1;
}

static void msg_reset(ml_sip_msg *m, const char *buf)
{
  /* the big arrays are guarded by their counts: clear only the rest */
  m->buf = buf;
  m->len = 0;
  m->err = (ml_sip_error){0, NULL, NULL};
  m->is_request = 0;
  m->method = ML_SIP_OTHER;
  m->method_name = m->reason = ML_STR_NULL;
  memset(&m->ruri, 0, sizeof m->ruri);
  m->status = 0;
  m->n_headers = m->n_via = m->n_contact = m->n_route = m->n_record_route = 0;
  memset(m->first, ML_SIP_NONE, sizeof m->first);
  m->contact_star = 0;
  memset(&m->via0, 0, sizeof m->via0);
  memset(&m->from, 0, sizeof m->from);
  memset(&m->to, 0, sizeof m->to);
  m->call_id = m->cseq_method_name = m->content_type = m->body = ML_STR_NULL;
  m->cseq = 0;
  m->cseq_method = ML_SIP_OTHER;
  m->max_forwards = -1;
  m->content_length = m->expires = -1;
}

/* Bytes line_end must look at: control characters, and the two that change
 * the quoting state. Everything else (>= 0x80 too: UTF-8, or whatever a PBX
 * put in a display name) is skipped in a tight loop. */
static const unsigned char line_stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,         1,          1,          1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, ['"'] = 1, ['\\'] = 1, [0x7f] = 1,
};

/* The CRLF that ends the line at p, or NULL when the line holds a control
 * character first: a bare CR or LF, a NUL... HTAB is allowed, and inside a
 * quoted string a backslash may escape any byte but CR and LF (quoted-pair,
 * RFC 4475 §3.1.1.2); *quoted carries that state across folded lines (NULL
 * for the start line, which has no quoted strings). */
static const char *line_end(const char *p, const char *end, int *quoted)
{
  int q = quoted ? *quoted : 0;
  for (;; p++) {
    while (p < end && !line_stop[(unsigned char)*p]) p++;
    if (p == end) return NULL;
    unsigned char c = (unsigned char)*p;
    if (c == '"' || c == '\\' || c == '\t') {
      if (c == '"' && quoted)
        q = !q;
      else if (c == '\\' && q && p + 1 < end && p[1] != '\r' && p[1] != '\n')
        p++;
      continue;
    }
    if (c != '\r' || p + 1 == end || p[1] != '\n') return NULL;
    if (quoted) *quoted = q;
    return p;
  }
}

/* ---- start line ------------------------------------------------------------ */

/* 0 for SIP/2.0, 505 for another well-formed version, 400 for anything else.
 * "SIP" is case-insensitive (RFC 3261 §7.1). */
static int version_check(ml_str v)
{
  if (v.n < 7 || !ml_str_ieq(ml_str_make(v.p, 4), ML_STR_LIT("SIP/"))) return 400;
  const char *p = v.p + 4, *end = v.p + v.n, *d = p;
  while (d < end && lex_digit((unsigned char)*d)) d++;
  if (d == p || d == end || *d != '.') return 400;
  const char *e = d + 1;
  while (e < end && lex_digit((unsigned char)*e)) e++;
  if (e == d + 1 || e != end) return 400;
  return ml_str_eq(lex_span(p, end), ML_STR_LIT("2.0")) ? 0 : 505;
}

/* Method SP Request-URI SP SIP-Version: exactly one SP each (RFC 4475 §3.1.2.9-10) */
static int request_line(ml_sip_msg *m, const char *p, const char *eol)
{
  const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
  const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
  if (!sp2 || sp1 == p || lex_skip_token(p, sp1) != sp1 || sp2 == sp1 + 1)
    return fail(m, 400, "malformed request line");
  int version = version_check(lex_span(sp2 + 1, eol));
  if (version == 400) return fail(m, 400, "malformed request line");
  m->is_request = 1;
  m->method_name = lex_span(p, sp1);
  m->method = ml_sip_method_lookup(m->method_name);
  ml_str uri = lex_span(sp1 + 1, sp2);
  /* a bad version or URI still lets the headers be read, for the response */
  if (version == 505) {
    m->ruri.text = uri;
    fail(m, 505, "SIP version is not 2.0");
  } else if (ml_sip_parse_uri(uri, &m->ruri)) {
    fail(m, 400, "bad Request-URI");
  } else if (m->ruri.headers.n) {
    fail(m, 400, "headers in the Request-URI"); /* RFC 3261 §19.1.1 */
  }
  return 0;
}

/* SIP-Version SP 3DIGIT SP Reason-Phrase (which may be empty) */
static int status_line(ml_sip_msg *m, const char *p, const char *eol)
{
  const char *sp = memchr(p, ' ', (size_t)(eol - p));
  if (!sp) return fail(m, 400, "malformed status line");
  int version = version_check(lex_span(p, sp));
  const char *c = sp + 1;
  if (version == 400 || eol - c < 4 || c[3] != ' ') return fail(m, 400, "malformed status line");
  int code = 0;
  for (int i = 0; i < 3; i++) {
    if (!lex_digit((unsigned char)c[i])) return fail(m, 400, "malformed status line");
    code = code * 10 + (c[i] - '0');
  }
  if (code < 100 || code > 699) return fail(m, 400, "status code out of range");
  m->status = code;
  m->reason = lex_span(c + 4, eol);
  if (version == 505) fail(m, 505, "SIP version is not 2.0");
  return 0;
}

static int start_line(ml_sip_msg *m, const char *p, const char *eol)
{
  if ((size_t)(eol - p) > ML_SIP_MAX_LINE) return fail(m, 400, "start line too long");
  /* a method is a token and '/' is not a token character */
  if (eol - p >= 4 && ml_str_ieq(ml_str_make(p, 4), ML_STR_LIT("SIP/"))) return status_line(m, p, eol);
  return request_line(m, p, eol);
}

/* ---- well-known header values ---------------------------------------------- */

/* callid = word [ "@" word ] */
static int call_id_ok(ml_str v)
{
  const char *at = v.n ? memchr(v.p, '@', v.n) : NULL;
  if (at && (at == v.p || at == v.p + v.n - 1)) return 0;
  for (size_t i = 0; i < v.n; i++)
    if (!lex_word((unsigned char)v.p[i]) && v.p + i != at) return 0;
  return v.n > 0;
}

/* RFC 3261 §20.19: more than 2^32-1 counts as 2^32-1; malformed is -1 */
static int64_t delta_seconds(ml_str v)
{
  uint64_t x;
  size_t i = 0;
  while (i < v.n && lex_digit((unsigned char)v.p[i])) i++;
  if (!v.n || i != v.n) return -1;
  return ml_str_to_u64(v, UINT32_MAX, &x) ? UINT32_MAX : (int64_t)x;
}

static int via_fail(sip_parser *ps, const char *detail)
{
  ps->via_bad = 1;
  ps->m->n_via = 0;
  return fail(ps->m, 400, detail);
}

static void via_add(sip_parser *ps, ml_str value)
{
  ml_sip_msg *m = ps->m;
  ml_str rest = value, v;
  ml_sip_via via;
  int rc, n = 0;
  while (!ps->via_bad && (rc = ml_sip_split(&rest, &v)) == 1) {
    n++;
    if (m->n_via == ML_SIP_MAX_VIA) return (void)via_fail(ps, "too many Via values");
    if (ml_sip_parse_via(v, &via)) return (void)via_fail(ps, "bad Via");
    if (m->n_via == 0) m->via0 = via;
    m->via[m->n_via++] = v;
  }
  if (!ps->via_bad && (rc < 0 || n == 0)) via_fail(ps, "bad Via");
}

static void contact_add(ml_sip_msg *m, ml_str value)
{
  ml_str rest = value, v;
  ml_sip_name_addr na;
  int rc, n = 0;
  while ((rc = ml_sip_split(&rest, &v)) == 1) {
    n++;
    if (v.n == 1 && v.p[0] == '*') {
      /* RFC 3261 §10.2.2: "*" only alone */
      if (m->contact_star || m->n_contact) return (void)fail(m, 400, "Contact * with other values");
      m->contact_star = 1;
      continue;
    }
    if (m->contact_star) return (void)fail(m, 400, "Contact * with other values");
    if (m->n_contact == ML_SIP_MAX_CONTACT) return (void)fail(m, 400, "too many Contact values");
    if (ml_sip_parse_name_addr(v, &na)) return (void)fail(m, 400, "bad Contact");
    m->contact[m->n_contact++] = v;
  }
  if (rc < 0 || n == 0) fail(m, 400, "bad Contact");
}

/* Route and Record-Route take name-addrs only: the URI is always in <> */
static void route_add(ml_sip_msg *m, ml_str value, ml_str *list, unsigned *count, const char *bad)
{
  ml_str rest = value, v;
  ml_sip_name_addr na;
  int rc, n = 0;
  while ((rc = ml_sip_split(&rest, &v)) == 1) {
    n++;
    if (*count == ML_SIP_MAX_ROUTE) return (void)fail(m, 400, "too many Route or Record-Route values");
    if (ml_sip_parse_name_addr(v, &na) || !na.bracketed) return (void)fail(m, 400, bad);
    list[(*count)++] = v;
  }
  if (rc < 0 || n == 0) fail(m, 400, bad);
}

static void header_check(sip_parser *ps, ml_sip_header *h)
{
  ml_sip_msg *m = ps->m;
  uint64_t x;
  switch (h->id) {
  case ML_SIP_H_VIA:
    via_add(ps, h->value);
    break;
  case ML_SIP_H_CONTACT:
    contact_add(m, h->value);
    break;
  case ML_SIP_H_ROUTE:
    route_add(m, h->value, m->route, &m->n_route, "bad Route");
    break;
  case ML_SIP_H_RECORD_ROUTE:
    route_add(m, h->value, m->record_route, &m->n_record_route, "bad Record-Route");
    break;
  case ML_SIP_H_FROM:
    if (ml_sip_parse_name_addr(h->value, &m->from)) fail(m, 400, "bad From");
    break;
  case ML_SIP_H_TO:
    if (ml_sip_parse_name_addr(h->value, &m->to)) fail(m, 400, "bad To");
    break;
  case ML_SIP_H_CALL_ID:
    if (!call_id_ok(h->value)) fail(m, 400, "bad Call-ID");
    m->call_id = h->value;
    break;
  case ML_SIP_H_CSEQ:
    if (ml_sip_parse_cseq(h->value, &m->cseq, &m->cseq_method_name)) {
      fail(m, 400, "bad CSeq");
      break;
    }
    ps->cseq_ok = 1;
    m->cseq_method = ml_sip_method_lookup(m->cseq_method_name);
    break;
  case ML_SIP_H_MAX_FORWARDS:
    if (ml_str_to_u64(h->value, 255, &x))
      fail(m, 400, "bad Max-Forwards");
    else
      m->max_forwards = (int)x;
    break;
  case ML_SIP_H_CONTENT_LENGTH:
    /* digits only: "-1", "+5", "5, 5" are all a 400 */
    if (ml_str_to_u64(h->value, UINT32_MAX, &x))
      fail(m, 400, "bad Content-Length");
    else
      m->content_length = (int64_t)x;
    break;
  case ML_SIP_H_CONTENT_TYPE:
    if (!h->value.n) fail(m, 400, "empty Content-Type");
    m->content_type = h->value;
    break;
  case ML_SIP_H_EXPIRES:
    m->expires = delta_seconds(h->value);
    break;
  default:
    break;
  }
}

/* ---- header lines ---------------------------------------------------------- */

/* name *(SP/HTAB) ":" value — the value runs to eol for now (folds extend it) */
static ml_sip_header *header_start(sip_parser *ps, const char *p, const char *eol)
{
  ml_sip_msg *m = ps->m;
  const char *t = lex_skip_token(p, eol), *c = t;
  while (c < eol && lex_ws((unsigned char)*c)) c++;
  if (t == p || c == eol || *c != ':') {
    fail(m, 400, "malformed header line");
    return NULL;
  }
  if (m->n_headers == ML_SIP_MAX_HEADERS) {
    fail(m, 400, "too many headers");
    return NULL;
  }
  ml_sip_header *h = &m->headers[m->n_headers++];
  h->name = lex_span(p, t);
  h->value = lex_span(c + 1, eol);
  h->id = ML_SIP_H_OTHER;
  h->next = ML_SIP_NONE;
  return h;
}

static void header_end(sip_parser *ps, ml_sip_header *h)
{
  ml_sip_msg *m = ps->m;
  uint8_t idx = (uint8_t)(h - m->headers);
  h->value = lex_trim(h->value);
  h->id = (uint8_t)ml_sip_hdr_lookup(h->name);
  int dup = m->first[h->id] != ML_SIP_NONE;
  if (dup)
    m->headers[ps->last[h->id]].next = idx;
  else
    m->first[h->id] = idx;
  ps->last[h->id] = idx;
  /* a second From/CSeq/... is indexed but not decoded: the decoded values
   * stay those of the first one, which a 400 response echoes */
  if (dup && (hdr_defs[h->id].flags & H_SINGLE))
    fail(m, 400, hdr_defs[h->id].dup);
  else
    header_check(ps, h);
}

/* [p, end): header lines, each ending in CRLF */
static int headers_parse(sip_parser *ps, const char *p, const char *end)
{
  ml_sip_header *h = NULL;
  int quoted = 0;
  while (p < end) {
    if (!lex_ws((unsigned char)*p)) quoted = 0; /* a new header */
    const char *eol = line_end(p, end, &quoted);
    if (!eol) {
      if (h) header_end(ps, h); /* still index it: a 400 needs Via...CSeq */
      return fail(ps->m, 400, "control character or bare CR/LF in a header");
    }
    if (lex_ws((unsigned char)*p)) {
      if (!h) return fail(ps->m, 400, "continuation line without a header");
      h->value.n = (size_t)(eol - h->value.p);
    } else {
      if (h) header_end(ps, h);
      if (!(h = header_start(ps, p, eol))) return -1;
    }
    if ((size_t)(eol - h->name.p) > ML_SIP_MAX_LINE) return fail(ps->m, 400, "header line too long");
    p = eol + 2;
  }
  if (h) header_end(ps, h);
  return 0;
}

/* RFC 3261 §8.1.1: the headers every request and response carries */
static void headers_required(sip_parser *ps)
{
  static const struct {
    ml_sip_hdr_id id;
    const char *detail;
  } required[] = {
      {ML_SIP_H_VIA, "missing Via"},         {ML_SIP_H_FROM, "missing From"}, {ML_SIP_H_TO, "missing To"},
      {ML_SIP_H_CALL_ID, "missing Call-ID"}, {ML_SIP_H_CSEQ, "missing CSeq"},
  };
  ml_sip_msg *m = ps->m;
  for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
    if (m->first[required[i].id] == ML_SIP_NONE) fail(m, 400, required[i].detail);
  if (m->is_request && ps->cseq_ok && !ml_str_eq(m->cseq_method_name, m->method_name))
    fail(m, 400, "CSeq method differs from the request method");
}

/* RFC 3261 §18.3 */
static int body_parse(ml_sip_msg *m, size_t head, size_t len, int flags)
{
  size_t avail = len - head;
  m->len = head;
  if (m->content_length < 0) {
    if (!(flags & ML_SIP_UDP)) return fail(m, 400, "missing Content-Length on a stream");
    if (len > ML_SIP_MAX_MSG) return fail(m, 513, "message too large");
    m->body = ml_str_make(m->buf + head, avail);
    m->len = len;
    return 0;
  }
  size_t cl = (size_t)m->content_length;
  if (cl > ML_SIP_MAX_MSG - head) return fail(m, 513, "message too large");
  if (cl > avail) return fail(m, 400, "body shorter than Content-Length");
  m->body = ml_str_make(m->buf + head, cl);
  m->len = head + cl;
  return 0;
}

int ml_sip_parse(ml_sip_msg *m, const char *buf, size_t len, int flags)
{
  sip_parser ps = {.m = m};
  msg_reset(m, buf);
  size_t off = 0;
  while (len - off >= 2 && buf[off] == '\r' && buf[off + 1] == '\n') off += 2;
  size_t lim = len < ML_SIP_MAX_MSG ? len : ML_SIP_MAX_MSG;
  const char *blank = lim > off ? memmem(buf + off, lim - off, "\r\n\r\n", 4) : NULL;
  if (!blank) {
    if (len > ML_SIP_MAX_MSG) fail(m, 513, "message too large");
    fail(m, 400, off == len ? "empty message" : "no empty line after the headers");
    return m->err.code;
  }
  const char *hend = blank + 2, *p = buf + off, *eol = line_end(p, hend, NULL);
  size_t head = (size_t)(blank + 4 - buf);
  if (!eol)
    fail(m, 400, "control character or bare CR/LF in the start line");
  else if (start_line(m, p, eol) == 0 && headers_parse(&ps, eol + 2, hend) == 0)
    headers_required(&ps);
  if (m->err.code) {
    m->len = head;
    return m->err.code;
  }
  body_parse(m, head, len, flags);
  return m->err.code;
}

int ml_sip_can_respond(const ml_sip_msg *m)
{
  return m->is_request && m->method != ML_SIP_ACK && m->n_via > 0 && m->first[ML_SIP_H_FROM] != ML_SIP_NONE &&
         m->first[ML_SIP_H_TO] != ML_SIP_NONE && m->first[ML_SIP_H_CALL_ID] != ML_SIP_NONE &&
         m->first[ML_SIP_H_CSEQ] != ML_SIP_NONE;
}

/* ---- stream framing -------------------------------------------------------- */

/* The Content-Length of a head [p, end) whose lines end in LF, start line
 * first: 0 with *cl, or -1 when it is missing, repeated or not a number.
 * Header lines are recognised as ml_sip_parse does, so both agree on every
 * message that parses. */
static int head_content_length(const char *p, const char *end, uint64_t *cl)
{
  int found = 0;
  p = (const char *)memchr(p, '\n', (size_t)(end - p)) + 1;
  while (p < end) {
    const char *next = (const char *)memchr(p, '\n', (size_t)(end - p)) + 1;
    const char *t = lex_skip_token(p, next), *c = t;
    while (c < next && lex_ws((unsigned char)*c)) c++;
    ml_str name = lex_span(p, t);
    if (t > p && *c == ':' &&
        ((name.n == 1 && (*p | 32) == 'l') || ml_str_ieq(name, ML_STR_LIT("Content-Length")))) {
      while (next < end && lex_ws((unsigned char)*next))
        next = (const char *)memchr(next, '\n', (size_t)(end - next)) + 1;
      if (found++ || ml_str_to_u64(lex_trim(lex_span(c + 1, next)), ML_SIP_MAX_MSG, cl)) return -1;
    }
    p = next;
  }
  return found ? 0 : -1;
}

int ml_sip_frame(const char *buf, size_t len, size_t *msg_len)
{
  size_t off = 0;
  *msg_len = 0;
  while (len - off >= 2 && buf[off] == '\r' && buf[off + 1] == '\n') off += 2;
  if (off) {
    *msg_len = off;
    return ML_SIP_FRAME_KEEPALIVE;
  }
  size_t lim = len < ML_SIP_MAX_MSG ? len : ML_SIP_MAX_MSG;
  const char *blank = lim >= 4 ? memmem(buf, lim, "\r\n\r\n", 4) : NULL;
  if (!blank) return len >= ML_SIP_MAX_MSG ? ML_SIP_FRAME_ERROR : ML_SIP_FRAME_MORE;
  uint64_t cl;
  size_t head = (size_t)(blank + 4 - buf);
  if (head_content_length(buf, blank + 2, &cl) || cl > ML_SIP_MAX_MSG - head) return ML_SIP_FRAME_ERROR;
  if (len - head < cl) return ML_SIP_FRAME_MORE;
  *msg_len = head + (size_t)cl;
  return ML_SIP_FRAME_OK;
}
