/* Sub-parsers on header views: URIs (sip:, sips:, tel:, others), name-addrs,
 * Via values, CSeq, parameter lists, and the escape/quote/fold helpers.
 * They never copy: every result is a view into the input. Inside a header
 * value CR and LF only occur as part of a fold, so they count as whitespace
 * wherever the grammar allows LWS. */
#include "sip_lex.h"
#include "sip_msg.h"

/* ---- hosts ----------------------------------------------------------------- */

/* dotted quad, each part 1-3 digits up to 255 */
static int ipv4_ok(const char *p, size_t n)
{
  size_t i = 0;
  for (int part = 0; part < 4; part++) {
    if (part > 0) {
      if (i >= n || p[i] != '.') return 0;
      i++;
    }
    size_t start = i;
    unsigned v = 0;
    while (i < n && lex_digit((unsigned char)p[i]) && i - start < 3) v = v * 10 + (unsigned)(p[i++] - '0');
    if (i == start || v > 255) return 0;
  }
  return i == n;
}

/* RFC 4291 text form: up to 8 groups of 1-4 hex digits, one "::" standing
 * for one or more zero groups, optionally an IPv4 tail worth two groups */
static int ipv6_ok(const char *p, size_t n)
{
  size_t i = 0;
  int groups = 0, gap = 0;
  if (n < 2) return 0;
  if (p[0] == ':') {
    if (p[1] != ':') return 0;
    gap = 1;
    i = 2;
    if (i == n) return 1;
  }
  for (;;) {
    size_t j = i;
    while (j < n && lex_hex((unsigned char)p[j]) && j - i < 5) j++;
    if (j < n && p[j] == '.') {
      if (!ipv4_ok(p + i, n - i)) return 0;
      groups += 2;
      break;
    }
    if (j == i || j - i > 4) return 0;
    groups++;
    if (j == n) break;
    if (p[j] != ':') return 0;
    j++;
    if (j < n && p[j] == ':') {
      if (gap) return 0;
      gap = 1;
      j++;
      if (j == n) break;
    } else if (j == n) {
      return 0;
    }
    i = j;
  }
  return gap ? groups <= 7 : groups == 8;
}

/* hostname = *( domainlabel "." ) toplabel [ "." ]; the top label starts
 * with a letter, which is what tells a name from a bad IPv4 address */
static int hostname_ok(const char *p, size_t n)
{
  if (n && p[n - 1] == '.') n--;
  if (n == 0) return 0;
  size_t start = 0, top = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || p[i] == '.') {
      if (i == start || !lex_alnum((unsigned char)p[start]) || !lex_alnum((unsigned char)p[i - 1])) return 0;
      top = start;
      start = i + 1;
    } else if (!lex_alnum((unsigned char)p[i]) && p[i] != '-') {
      return 0;
    }
  }
  return lex_alpha((unsigned char)p[top]);
}

/* A host at p: "[v6]", a dotted quad or a name. Returns the end, or NULL. */
static const char *host_scan(const char *p, const char *end, ml_str *host, ml_sip_host_type *type)
{
  if (p < end && *p == '[') {
    const char *close = memchr(p, ']', (size_t)(end - p));
    if (!close || !ipv6_ok(p + 1, (size_t)(close - p - 1))) return NULL;
    *host = lex_span(p + 1, close);
    *type = ML_SIP_HOST_IPV6;
    return close + 1;
  }
  const char *q = p;
  int all_digits = 1;
  while (q < end && (lex_alnum((unsigned char)*q) || *q == '-' || *q == '.')) {
    if (!lex_digit((unsigned char)*q) && *q != '.') all_digits = 0;
    q++;
  }
  size_t n = (size_t)(q - p);
  if (all_digits && n && ipv4_ok(p, n)) {
    *type = ML_SIP_HOST_IPV4;
  } else if (hostname_ok(p, n)) {
    *type = ML_SIP_HOST_NAME;
  } else {
    return NULL;
  }
  *host = lex_span(p, q);
  return q;
}

/* 1*DIGIT, 1..65535 */
static const char *port_scan(const char *p, const char *end, int *port)
{
  const char *q = p;
  unsigned v = 0;
  while (q < end && lex_digit((unsigned char)*q) && q - p < 5) v = v * 10 + (unsigned)(*q++ - '0');
  if (q == p || v == 0 || v > 65535 || (q < end && lex_digit((unsigned char)*q))) return NULL;
  *port = (int)v;
  return q;
}

/* ---- URIs ------------------------------------------------------------------ */

/* ';'-separated pname[=pvalue], no whitespace (RFC 3261 uri-parameters) */
static int uri_params_ok(ml_str s)
{
  const char *p = s.p, *end = s.p + s.n;
  while (p < end) {
    const char *item = p;
    while (p < end && *p != ';') p++;
    ml_str it = lex_span(item, p), name = it, value = ML_STR_NULL;
    const char *eq = memchr(it.p, '=', it.n);
    if (eq) {
      name = lex_span(it.p, eq);
      value = lex_span(eq + 1, p);
      if (!value.n || !lex_all(value, lex_paramchar)) return 0;
    }
    if (!name.n || !lex_all(name, lex_paramchar)) return 0;
    if (p < end && ++p == end) return 0; /* trailing ';' */
  }
  return 1;
}

/* '&'-separated hname=hvalue */
static int uri_headers_ok(ml_str s)
{
  const char *p = s.p, *end = s.p + s.n;
  if (!s.n) return 0;
  while (p < end) {
    const char *item = p;
    while (p < end && *p != '&') p++;
    ml_str it = lex_span(item, p);
    const char *eq = memchr(it.p, '=', it.n);
    if (!eq || eq == it.p) return 0;
    if (!lex_all(lex_span(it.p, eq), lex_hnv) || !lex_all(lex_span(eq + 1, p), lex_hnv)) return 0;
    if (p < end && ++p == end) return 0;
  }
  return 1;
}

/* sip:/sips: after the colon: [user[:password]@]host[:port][;params][?headers] */
static int uri_parse_sip(const char *p, const char *end, ml_sip_uri *u)
{
  /* the user part may hold ';' and '?', never '@': the first '@' ends it */
  const char *at = memchr(p, '@', (size_t)(end - p));
  if (at) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    u->user = lex_span(p, colon ? colon : at);
    if (colon) u->password = lex_span(colon + 1, at);
    if (!u->user.n || !lex_all(u->user, lex_user)) return -1;
    if (colon && !lex_all(u->password, lex_password)) return -1;
    p = at + 1;
  }
  p = host_scan(p, end, &u->host, &u->host_type);
  if (!p) return -1;
  if (p < end && *p == ':' && !(p = port_scan(p + 1, end, &u->port))) return -1;
  if (p < end && *p == ';') {
    const char *q = memchr(p, '?', (size_t)(end - p));
    if (!q) q = end;
    u->params = lex_span(p + 1, q);
    if (!u->params.n || !uri_params_ok(u->params)) return -1;
    p = q;
  }
  if (p < end && *p == '?') {
    u->headers = lex_span(p + 1, end);
    if (!uri_headers_ok(u->headers)) return -1;
    p = end;
  }
  return p == end ? 0 : -1;
}

/* tel: (RFC 3966): a global (+...) or local number, then ;params */
static int uri_parse_tel(const char *p, const char *end, ml_sip_uri *u)
{
  const char *semi = memchr(p, ';', (size_t)(end - p));
  const char *nend = semi ? semi : end;
  const char *q = p < nend && *p == '+' ? p + 1 : p;
  int digits = 0;
  for (; q < nend; q++) {
    if (!lex_tel((unsigned char)*q)) return -1;
    if (lex_hex((unsigned char)*q) || *q == '*' || *q == '#') digits++;
  }
  if (!digits) return -1;
  u->user = lex_span(p, nend);
  if (semi) {
    u->params = lex_span(semi + 1, end);
    if (!u->params.n || !uri_params_ok(u->params)) return -1;
  }
  return 0;
}

int ml_sip_parse_uri(ml_str s, ml_sip_uri *u)
{
  memset(u, 0, sizeof *u);
  u->text = s;
  if (!s.n || !lex_alpha((unsigned char)s.p[0])) return -1;
  const char *p = s.p, *end = s.p + s.n;
  while (p < end && lex_scheme((unsigned char)*p)) p++;
  if (p == end || *p != ':') return -1;
  u->scheme_name = lex_span(s.p, p);
  p++;
  if (ml_str_ieq_c(u->scheme_name, "sip")) {
    u->scheme = ML_SIP_URI_SIP;
    return uri_parse_sip(p, end, u);
  }
  if (ml_str_ieq_c(u->scheme_name, "sips")) {
    u->scheme = ML_SIP_URI_SIPS;
    return uri_parse_sip(p, end, u);
  }
  if (ml_str_ieq_c(u->scheme_name, "tel")) {
    u->scheme = ML_SIP_URI_TEL;
    return uri_parse_tel(p, end, u);
  }
  u->scheme = ML_SIP_URI_OTHER;
  ml_str rest = lex_span(p, end);
  return rest.n && lex_all(rest, lex_uric) ? 0 : -1;
}

/* ---- parameters ------------------------------------------------------------ */

int ml_sip_param_next(ml_str *rest, ml_str *name, ml_str *value)
{
  if (!rest->n) return 0;
  const char *p = rest->p, *end = rest->p + rest->n;
  p = lex_skip_lws(p, end);
  if (p == end) {
    *rest = lex_span(end, end);
    return 0;
  }
  if (*p == ';') p = lex_skip_lws(p + 1, end);
  const char *n0 = p;
  while (p < end && lex_pvalue((unsigned char)*p)) p++;
  if (p == n0) return -1;
  *name = lex_span(n0, p);
  *value = lex_span(p, p);
  const char *q = lex_skip_lws(p, end);
  if (q < end && *q == '=') {
    q = lex_skip_lws(q + 1, end);
    const char *v0 = q;
    if (q < end && *q == '"') {
      size_t len = lex_quoted(q, (size_t)(end - q));
      if (!len) return -1;
      q += len;
    } else {
      while (q < end && lex_pvalue((unsigned char)*q)) q++;
    }
    if (q == v0) return -1;
    *value = lex_span(v0, q);
    q = lex_skip_lws(q, end);
  }
  if (q < end && *q != ';') return -1;
  *rest = lex_span(q, end);
  return 1;
}

int ml_sip_param(ml_str params, const char *name, ml_str *value)
{
  ml_str n, v, want = ml_str_c(name);
  while (ml_sip_param_next(&params, &n, &v) == 1) {
    if (ml_str_ieq(n, want)) {
      *value = v;
      return 1;
    }
  }
  return 0;
}

/* a header-param list at p (";a=b ; c"): every entry well-formed */
static int params_check(const char *p, const char *end, ml_str *params)
{
  p = lex_skip_lws(p, end);
  if (p == end) return 0;
  if (*p != ';') return -1;
  ml_str rest = lex_span(p, end), n, v;
  int rc;
  while ((rc = ml_sip_param_next(&rest, &n, &v)) == 1) {
  }
  if (rc < 0) return -1;
  *params = lex_span(lex_skip_lws(p + 1, end), end);
  return 0;
}

int ml_sip_uri_header(ml_str headers, const char *name, ml_str *value)
{
  if (!headers.n) return 0;
  const char *p = headers.p, *end = headers.p + headers.n;
  ml_str want = ml_str_c(name);
  while (p < end) {
    const char *item = p;
    while (p < end && *p != '&') p++;
    const char *eq = memchr(item, '=', (size_t)(p - item));
    if (eq && ml_str_ieq(lex_span(item, eq), want)) {
      *value = lex_span(eq + 1, p);
      return 1;
    }
    if (p < end) p++;
  }
  return 0;
}

/* ---- name-addr ------------------------------------------------------------- */

/* `display-name` before '<': a quoted string, or tokens separated by LWS
 * (no LWS before '<' is tolerated). Returns the '<', or NULL. */
static const char *display_scan(const char *p, const char *end, ml_str *display)
{
  if (*p == '"') {
    size_t q = lex_quoted(p, (size_t)(end - p));
    if (!q) return NULL;
    *display = ml_str_make(p, q);
    p = lex_skip_lws(p + q, end);
  } else {
    const char *d0 = p, *d1 = p;
    while (p < end && *p != '<') {
      const char *t = lex_skip_token(p, end);
      if (t == p) return NULL;
      d1 = t;
      p = lex_skip_lws(t, end);
    }
    *display = lex_span(d0, d1);
  }
  return p < end && *p == '<' ? p : NULL;
}

int ml_sip_parse_name_addr(ml_str s, ml_sip_name_addr *na)
{
  memset(na, 0, sizeof *na);
  s = lex_trim(s);
  if (!s.n) return -1;
  const char *p = s.p, *end = s.p + s.n;
  const char *t = lex_skip_token(p, end);
  if (t < end && *t == ':' && t > p) {
    /* addr-spec: a URI with ',', ';' or '?' must be in <> (RFC 3261 §20),
     * so the first ';' starts the header params */
    const char *u = p;
    while (p < end && *p != ';' && !lex_lws((unsigned char)*p)) p++;
    ml_str uri = lex_span(u, p);
    if (memchr(uri.p, '?', uri.n) || memchr(uri.p, ',', uri.n)) return -1;
    if (ml_sip_parse_uri(uri, &na->uri)) return -1;
  } else {
    if (*p != '<' && !(p = display_scan(p, end, &na->display))) return -1;
    const char *gt = memchr(p, '>', (size_t)(end - p));
    if (!gt || ml_sip_parse_uri(lex_span(p + 1, gt), &na->uri)) return -1;
    na->bracketed = 1;
    p = gt + 1;
  }
  if (params_check(p, end, &na->params)) return -1;
  /* tag-param = "tag" EQUAL token, at most once: a dialog hangs on it, and a
   * second or empty one would let two sides read different tags */
  ml_str rest = na->params, n, v;
  int tags = 0;
  while (ml_sip_param_next(&rest, &n, &v) == 1) {
    if (!ml_str_ieq(n, ML_STR_LIT("tag"))) continue;
    if (++tags > 1 || !v.n) return -1;
    na->tag = v;
  }
  return 0;
}

/* ---- Via ------------------------------------------------------------------- */

static const struct {
  const char *name;
  ml_sip_transport tp;
} via_transports[] = {
    {"UDP", ML_SIP_TP_UDP},   {"TCP", ML_SIP_TP_TCP}, {"TLS", ML_SIP_TP_TLS},
    {"SCTP", ML_SIP_TP_SCTP}, {"WS", ML_SIP_TP_WS},   {"WSS", ML_SIP_TP_WSS},
};

/* SWS "/" SWS */
static const char *slash_scan(const char *p, const char *end)
{
  p = lex_skip_lws(p, end);
  if (p == end || *p != '/') return NULL;
  return lex_skip_lws(p + 1, end);
}

/* sent-protocol = "SIP" / "2.0" / transport, with LWS allowed around '/' */
static const char *via_protocol(const char *p, const char *end, ml_sip_via *v)
{
  const char *t = lex_skip_token(p, end);
  if (!ml_str_ieq_c(lex_span(p, t), "SIP") || !(p = slash_scan(t, end))) return NULL;
  t = lex_skip_token(p, end);
  if (!ml_str_eq(lex_span(p, t), ML_STR_LIT("2.0")) || !(p = slash_scan(t, end))) return NULL;
  t = lex_skip_token(p, end);
  if (t == p) return NULL;
  v->transport_name = lex_span(p, t);
  for (size_t i = 0; i < sizeof via_transports / sizeof via_transports[0]; i++)
    if (ml_str_ieq_c(v->transport_name, via_transports[i].name)) v->transport = via_transports[i].tp;
  return t;
}

static int via_ip_ok(ml_str s)
{
  if (s.n > 2 && s.p[0] == '[' && s.p[s.n - 1] == ']') return ipv6_ok(s.p + 1, s.n - 2);
  return ipv4_ok(s.p, s.n) || ipv6_ok(s.p, s.n);
}

static int via_number(ml_str s, unsigned max, int *out)
{
  uint64_t v;
  if (ml_str_to_u64(s, max, &v)) return -1;
  *out = (int)v;
  return 0;
}

/* the params RFC 3261 and RFC 3581 give a meaning to, checked */
static int via_params(ml_sip_via *v)
{
  ml_str rest = v->params, n, val;
  int rc;
  while ((rc = ml_sip_param_next(&rest, &n, &val)) == 1) {
    if (ml_str_ieq_c(n, "branch")) {
      if (!val.n || v->branch.n) return -1;
      v->branch = val;
    } else if (ml_str_ieq_c(n, "received")) {
      if (!via_ip_ok(val) || v->received.n) return -1;
      v->received = val;
    } else if (ml_str_ieq_c(n, "maddr")) {
      if (!val.n || v->maddr.n) return -1;
      v->maddr = val;
    } else if (ml_str_ieq_c(n, "rport")) {
      if (v->rport >= 0) return -1;
      v->rport = 0;
      if (val.n && (via_number(val, 65535, &v->rport) || v->rport == 0)) return -1;
    } else if (ml_str_ieq_c(n, "ttl")) {
      if (v->ttl >= 0 || via_number(val, 255, &v->ttl)) return -1;
    }
  }
  return rc;
}

int ml_sip_parse_via(ml_str s, ml_sip_via *v)
{
  memset(v, 0, sizeof *v);
  v->rport = v->ttl = -1;
  s = lex_trim(s);
  if (!s.n) return -1;
  const char *end = s.p + s.n, *p = via_protocol(s.p, end, v);
  if (!p || p == end || !lex_lws((unsigned char)*p)) return -1;
  p = host_scan(lex_skip_lws(p, end), end, &v->host, &v->host_type);
  if (!p) return -1;
  const char *q = lex_skip_lws(p, end); /* COLON = SWS ":" SWS */
  if (q < end && *q == ':' && !(p = port_scan(lex_skip_lws(q + 1, end), end, &v->port))) return -1;
  if (params_check(p, end, &v->params)) return -1;
  return via_params(v);
}

/* ---- CSeq ------------------------------------------------------------------ */

int ml_sip_parse_cseq(ml_str s, uint32_t *seq, ml_str *method)
{
  s = lex_trim(s);
  if (!s.n) return -1;
  const char *p = s.p, *end = s.p + s.n;
  const char *d = p;
  while (d < end && lex_digit((unsigned char)*d)) d++;
  uint64_t v;
  if (ml_str_to_u64(lex_span(p, d), 0x7fffffff, &v)) return -1;
  const char *m = lex_skip_lws(d, end);
  if (m == d) return -1;
  const char *t = lex_skip_token(m, end);
  if (t == m || t != end) return -1;
  *seq = (uint32_t)v;
  *method = lex_span(m, t);
  return 0;
}

/* ---- helpers --------------------------------------------------------------- */

ml_str ml_sip_unquote(ml_str s)
{
  if (s.n >= 2 && s.p[0] == '"' && s.p[s.n - 1] == '"') return ml_str_make(s.p + 1, s.n - 2);
  return s;
}

long ml_sip_unescape(ml_str s, char *out, size_t cap)
{
  size_t o = 0;
  for (size_t i = 0; i < s.n; i++) {
    int c = (unsigned char)s.p[i];
    if (c == '%') {
      if (s.n - i < 3 || !lex_hex((unsigned char)s.p[i + 1]) || !lex_hex((unsigned char)s.p[i + 2]))
        return -1;
      c = lex_hexval((unsigned char)s.p[i + 1]) * 16 + lex_hexval((unsigned char)s.p[i + 2]);
      i += 2;
    }
    if (o == cap) return -1;
    out[o++] = (char)c;
  }
  return (long)o;
}

size_t ml_sip_unfold(ml_str s, char *out, size_t cap)
{
  size_t o = 0;
  int prev_ws = 0;
  for (size_t i = 0; i < s.n; i++) {
    char c = s.p[i];
    if (c == '\r' || c == '\n') {
      /* the fold and the whitespace after it become one SP, none if the
       * value already had one before the fold */
      while (i + 1 < s.n && lex_lws((unsigned char)s.p[i + 1])) i++;
      if (prev_ws) continue;
      c = ' ';
    }
    prev_ws = lex_ws((unsigned char)c);
    if (o < cap) out[o] = c;
    o++;
  }
  return o;
}
