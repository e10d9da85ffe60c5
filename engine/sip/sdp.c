/* SDP parser, offer/answer and writer (see sdp.h). The parser walks the body
 * once, line by line, and only ever stores views and numbers: no allocation,
 * no copy. It is strict where leniency would let a malformed offer drive the
 * media layer (numbers, addresses, duplicates), and lenient only where real
 * peers differ harmlessly (LF line ends, trailing blanks). */
#include "sdp.h"

#include <limits.h>
#include <string.h>

/* ---- characters and fields ------------------------------------------------- */

static int char_digit(int c) { return c >= '0' && c <= '9'; }
static int char_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* token-char of RFC 8866 §9 */
static int char_token(int c)
{
  return char_alpha(c) || char_digit(c) || (c != 0 && strchr("!#$%&'*+-.^_`{|}~", c) != NULL);
}

static int str_all(ml_str s, int (*ok)(int))
{
  if (s.n == 0) return 0;
  for (size_t i = 0; i < s.n; i++)
    if (!ok((unsigned char)s.p[i])) return 0;
  return 1;
}

static int char_proto(int c) { return char_token(c) || c == '/'; }

/* Literal IPv4/IPv6 addresses and host names; nothing that could break a
 * line we write back or smuggle a second field. */
static int char_addr(int c) { return char_alpha(c) || char_digit(c) || c == '.' || c == '-' || c == ':'; }

static int str_has_prefix(ml_str s, const char *prefix)
{
  size_t n = strlen(prefix);
  return s.n >= n && memcmp(s.p, prefix, n) == 0;
}

static int str_contains(ml_str s, const char *needle)
{
  size_t n = strlen(needle);
  for (size_t i = 0; i + n <= s.n; i++)
    if (memcmp(s.p + i, needle, n) == 0) return 1;
  return 0;
}

/* Split at the first `sep`: *head before it, *tail after it. Returns 0 if
 * there was no sep (then *head = s and *tail is empty). */
static int str_split(ml_str s, char sep, ml_str *head, ml_str *tail)
{
  const char *at = s.n ? memchr(s.p, sep, s.n) : NULL;
  if (!at) {
    *head = s;
    *tail = ml_str_make(s.p + s.n, 0);
    return 0;
  }
  *head = ml_str_make(s.p, (size_t)(at - s.p));
  *tail = ml_str_make(at + 1, s.n - head->n - 1);
  return 1;
}

/* The next field of *rest. RFC 8866 separates fields with exactly one SP,
 * so an empty field (two spaces, nothing left) is an error (-1). */
static int field_next(ml_str *rest, ml_str *f)
{
  if (rest->n == 0) return -1;
  if (str_split(*rest, ' ', f, rest) && rest->n == 0) return -1;
  return f->n ? 0 : -1;
}

static int num_parse(ml_str s, uint64_t min, uint64_t max, uint64_t *v)
{
  return ml_str_to_u64(s, max, v) == 0 && *v >= min ? 0 : -1;
}

/* ---- line parsers ---------------------------------------------------------- */

enum {
  SEEN_V = 1 << 0,
  SEEN_O = 1 << 1,
  SEEN_S = 1 << 2,
  SEEN_T = 1 << 3,
  SEEN_C = 1 << 4,
  SEEN_DIR = 1 << 5,
  SEEN_PTIME = 1 << 6,
  SEEN_MAXPTIME = 1 << 7,
  SEEN_RTCP = 1 << 8,
};

typedef struct sdp_parser {
  ml_sdp *sdp;
  ml_sdp_media *m; /* the current media section; NULL at session level */
  unsigned seen; /* SEEN_* of the session section */
  unsigned mseen; /* SEEN_* of the current media section */
} sdp_parser;

/* "IN IP4|IP6 <addr>[/ttl[/n]]": the ttl suffix only where c= allows it */
static int conn_parse(ml_str *rest, ml_sdp_conn *c, int allow_ttl)
{
  ml_str net, type, addr, ttl;
  if (field_next(rest, &net) || field_next(rest, &type) || field_next(rest, &addr)) return -1;
  if (!ml_str_eq(net, ML_STR_LIT("IN"))) return -1;
  if (ml_str_eq(type, ML_STR_LIT("IP4")))
    c->addrtype = ML_SDP_IP4;
  else if (ml_str_eq(type, ML_STR_LIT("IP6")))
    c->addrtype = ML_SDP_IP6;
  else
    return -1;
  if (str_split(addr, '/', &addr, &ttl)) {
    ml_str t1, t2;
    if (!allow_ttl) return -1;
    if (str_split(ttl, '/', &t1, &t2) && !str_all(t2, char_digit)) return -1;
    if (!str_all(t1, char_digit)) return -1;
  }
  if (!str_all(addr, char_addr)) return -1;
  c->addr = addr;
  return 0;
}

static ml_sdp_err origin_parse(ml_sdp *sdp, ml_str v)
{
  ml_str id, version;
  uint64_t ver;
  if (field_next(&v, &sdp->origin_user) || field_next(&v, &id) || field_next(&v, &version))
    return ML_SDP_ERR_ORIGIN;
  if (!str_all(id, char_digit) || num_parse(version, 0, UINT64_MAX, &ver)) return ML_SDP_ERR_ORIGIN;
  if (conn_parse(&v, &sdp->origin, 0) || v.n) return ML_SDP_ERR_ORIGIN;
  sdp->sess_id = id;
  sdp->sess_version = ver;
  return ML_SDP_OK;
}

static ml_sdp_err timing_parse(ml_sdp *sdp, ml_str v, int first)
{
  ml_str a, b;
  uint64_t start, stop;
  if (field_next(&v, &a) || field_next(&v, &b) || v.n) return ML_SDP_ERR_TIMING;
  if (num_parse(a, 0, UINT64_MAX, &start) || num_parse(b, 0, UINT64_MAX, &stop)) return ML_SDP_ERR_TIMING;
  if (first) sdp->t_start = start, sdp->t_stop = stop;
  return ML_SDP_OK;
}

static ml_sdp_err conn_line(sdp_parser *ps, ml_str v)
{
  unsigned *seen = ps->m ? &ps->mseen : &ps->seen;
  ml_sdp_conn *c = ps->m ? &ps->m->conn : &ps->sdp->conn;
  if (*seen & SEEN_C) return ML_SDP_ERR_DUPLICATE;
  *seen |= SEEN_C;
  if (conn_parse(&v, c, 1) || v.n) return ML_SDP_ERR_CONNECTION;
  return ML_SDP_OK;
}

/* the format list of m=: payload types 0..127 for RTP, tokens otherwise;
 * kept for audio (the only media we answer) */
static ml_sdp_err media_fmts(ml_sdp_media *m, ml_str fmts)
{
  ml_str f;
  m->fmts = fmts;
  while (fmts.n) {
    uint64_t pt;
    if (field_next(&fmts, &f)) return ML_SDP_ERR_MEDIA;
    if (!m->rtp) {
      if (!str_all(f, char_token)) return ML_SDP_ERR_MEDIA;
      continue;
    }
    if (num_parse(f, 0, 127, &pt)) return ML_SDP_ERR_PAYLOAD;
    if (!m->audio) continue;
    if (m->npt == ML_SDP_MAX_PT) return ML_SDP_ERR_LIMIT;
    m->pt[m->npt++] = (uint8_t)pt;
  }
  return ML_SDP_OK;
}

static ml_sdp_err media_line(sdp_parser *ps, ml_str v)
{
  ml_sdp *sdp = ps->sdp;
  ml_str type, port, nports, proto;
  uint64_t num;
  if (!(ps->seen & SEEN_T)) return ML_SDP_ERR_TIMING; /* t= comes before the first m= */
  if (sdp->nmedia == ML_SDP_MAX_MEDIA) return ML_SDP_ERR_LIMIT;
  ml_sdp_media *m = &sdp->media[sdp->nmedia++];
  ps->m = m;
  ps->mseen = 0;
  if (field_next(&v, &type) || field_next(&v, &port) || field_next(&v, &proto) || v.n == 0)
    return ML_SDP_ERR_MEDIA;
  if (!str_all(type, char_token) || !str_all(proto, char_proto)) return ML_SDP_ERR_MEDIA;
  m->type = type;
  m->proto = proto;
  m->nports = 1;
  if (str_split(port, '/', &port, &nports)) {
    if (num_parse(nports, 1, 65535, &num)) return ML_SDP_ERR_PORT;
    m->nports = (uint16_t)num;
  }
  if (num_parse(port, 0, 65535, &num)) return ML_SDP_ERR_PORT;
  m->port = (uint16_t)num;
  m->rtp = str_has_prefix(proto, "RTP/") || str_contains(proto, "/RTP/");
  m->audio = ml_str_ieq_c(type, "audio");
  return media_fmts(m, v);
}

static ml_sdp_err rtpmap_parse(ml_sdp_media *m, ml_str v)
{
  ml_str pt, spec, enc, clock, channels;
  uint64_t npt, nclock, nch = 1;
  if (field_next(&v, &pt) || field_next(&v, &spec) || v.n) return ML_SDP_ERR_RTPMAP;
  if (num_parse(pt, 0, 127, &npt)) return ML_SDP_ERR_RTPMAP;
  if (!str_split(spec, '/', &enc, &clock) || !str_all(enc, char_token)) return ML_SDP_ERR_RTPMAP;
  if (str_split(clock, '/', &clock, &channels) && num_parse(channels, 1, 255, &nch)) return ML_SDP_ERR_RTPMAP;
  if (num_parse(clock, 1, UINT32_MAX, &nclock)) return ML_SDP_ERR_RTPMAP;
  if (ml_sdp_media_rtpmap(m, (uint8_t)npt)) return ML_SDP_ERR_DUPLICATE;
  if (m->nrtpmap == ML_SDP_MAX_RTPMAP) return ML_SDP_ERR_LIMIT;
  m->rtpmap[m->nrtpmap++] = (ml_sdp_rtpmap){(uint8_t)npt, (uint8_t)nch, (uint32_t)nclock, enc};
  return ML_SDP_OK;
}

static ml_sdp_err fmtp_parse(ml_sdp_media *m, ml_str v)
{
  ml_str pt, params;
  uint64_t npt;
  if (!str_split(v, ' ', &pt, &params) || params.n == 0) return ML_SDP_ERR_FMTP;
  if (num_parse(pt, 0, 127, &npt)) return ML_SDP_ERR_FMTP;
  if (ml_sdp_media_fmtp(m, (uint8_t)npt)) return ML_SDP_ERR_DUPLICATE;
  if (m->nfmtp == ML_SDP_MAX_FMTP) return ML_SDP_ERR_LIMIT;
  m->fmtp[m->nfmtp++] = (ml_sdp_fmtp){(uint8_t)npt, params};
  return ML_SDP_OK;
}

/* ptime-value is an integer or a real ("20", "20.0"): we keep whole ms */
static int ms_parse(ml_str v, uint32_t *ms)
{
  ml_str whole, frac;
  uint64_t n;
  if (str_split(v, '.', &whole, &frac) && !str_all(frac, char_digit)) return -1;
  if (num_parse(whole, 1, ML_SDP_MAX_PTIME, &n)) return -1;
  *ms = (uint32_t)n;
  return 0;
}

static ml_sdp_err rtcp_parse(ml_sdp_media *m, ml_str v)
{
  ml_str port;
  uint64_t n;
  if (field_next(&v, &port) || num_parse(port, 0, 65535, &n)) return ML_SDP_ERR_RTCP;
  if (v.n && (conn_parse(&v, &m->rtcp_conn, 0) || v.n)) return ML_SDP_ERR_RTCP;
  m->rtcp_port = (uint16_t)n;
  return ML_SDP_OK;
}

static ml_sdp_dir dir_from_name(ml_str name)
{
  if (ml_str_eq(name, ML_STR_LIT("sendrecv"))) return ML_SDP_SENDRECV;
  if (ml_str_eq(name, ML_STR_LIT("sendonly"))) return ML_SDP_SENDONLY;
  if (ml_str_eq(name, ML_STR_LIT("recvonly"))) return ML_SDP_RECVONLY;
  if (ml_str_eq(name, ML_STR_LIT("inactive"))) return ML_SDP_INACTIVE;
  return ML_SDP_DIR_NONE;
}

/* a seen-once attribute: the SEEN_* bit of the current section */
static int once(unsigned *seen, unsigned bit)
{
  if (*seen & bit) return -1;
  *seen |= bit;
  return 0;
}

static ml_sdp_err media_attr(sdp_parser *ps, ml_str name, ml_str value)
{
  ml_sdp_media *m = ps->m;
  if (ml_str_eq(name, ML_STR_LIT("rtpmap"))) return rtpmap_parse(m, value);
  if (ml_str_eq(name, ML_STR_LIT("fmtp"))) return fmtp_parse(m, value);
  if (ml_str_eq(name, ML_STR_LIT("ptime"))) {
    if (once(&ps->mseen, SEEN_PTIME)) return ML_SDP_ERR_DUPLICATE;
    return ms_parse(value, &m->ptime) ? ML_SDP_ERR_PTIME : ML_SDP_OK;
  }
  if (ml_str_eq(name, ML_STR_LIT("maxptime"))) {
    if (once(&ps->mseen, SEEN_MAXPTIME)) return ML_SDP_ERR_DUPLICATE;
    return ms_parse(value, &m->maxptime) ? ML_SDP_ERR_PTIME : ML_SDP_OK;
  }
  if (ml_str_eq(name, ML_STR_LIT("rtcp"))) {
    if (once(&ps->mseen, SEEN_RTCP)) return ML_SDP_ERR_DUPLICATE;
    return rtcp_parse(m, value);
  }
  return ML_SDP_OK;
}

/* a=<name>[:<value>]: the direction at either level, the rest of what we
 * need on audio m= lines; unknown attributes are ignored (RFC 8866 §5.13) */
static ml_sdp_err attr_line(sdp_parser *ps, ml_str v)
{
  ml_str name, value;
  int has_value = str_split(v, ':', &name, &value);
  if (!str_all(name, char_token)) return ML_SDP_ERR_ATTRIBUTE;
  if (ps->m && !ps->m->audio) return ML_SDP_OK;
  ml_sdp_dir dir = dir_from_name(name);
  if (dir != ML_SDP_DIR_NONE) {
    if (has_value) return ML_SDP_ERR_ATTRIBUTE;
    if (once(ps->m ? &ps->mseen : &ps->seen, SEEN_DIR)) return ML_SDP_ERR_DUPLICATE;
    *(ps->m ? &ps->m->dir : &ps->sdp->dir) = dir;
    return ML_SDP_OK;
  }
  return ps->m ? media_attr(ps, name, value) : ML_SDP_OK;
}

/* v o s t c m a: parsed; i u e p b z k r: allowed and skipped */
static ml_sdp_err line_parse(sdp_parser *ps, char type, ml_str v)
{
  if (!(ps->seen & SEEN_V) && type != 'v') return ML_SDP_ERR_VERSION;
  if (ps->m && strchr("vostrzuep", type)) return ML_SDP_ERR_ORDER;
  switch (type) {
  case 'v':
    if (once(&ps->seen, SEEN_V)) return ML_SDP_ERR_DUPLICATE;
    return ml_str_eq(v, ML_STR_LIT("0")) ? ML_SDP_OK : ML_SDP_ERR_VERSION;
  case 'o':
    if (once(&ps->seen, SEEN_O)) return ML_SDP_ERR_DUPLICATE;
    return origin_parse(ps->sdp, v);
  case 's':
    if (once(&ps->seen, SEEN_S)) return ML_SDP_ERR_DUPLICATE;
    ps->sdp->name = v;
    return ML_SDP_OK;
  case 't': {
    int first = !(ps->seen & SEEN_T);
    ps->seen |= SEEN_T;
    return timing_parse(ps->sdp, v, first);
  }
  case 'c':
    return conn_line(ps, v);
  case 'm':
    return media_line(ps, v);
  case 'a':
    return attr_line(ps, v);
  case 'i':
  case 'u':
  case 'e':
  case 'p':
  case 'b':
  case 'z':
  case 'k':
  case 'r':
    return ML_SDP_OK;
  default:
    return ML_SDP_ERR_TYPE;
  }
}

/* what is left after the first blank line may only be more blank lines */
static int rest_blank(const char *p, const char *end)
{
  for (; p < end; p++)
    if (*p != '\r' && *p != '\n' && *p != ' ' && *p != '\t') return 0;
  return 1;
}

static ml_sdp_err parse_finish(const sdp_parser *ps)
{
  const ml_sdp *sdp = ps->sdp;
  if (!(ps->seen & SEEN_V)) return ML_SDP_ERR_VERSION;
  if (!(ps->seen & SEEN_O)) return ML_SDP_ERR_ORIGIN;
  if (!(ps->seen & SEEN_S)) return ML_SDP_ERR_NAME;
  if (!(ps->seen & SEEN_T)) return ML_SDP_ERR_TIMING;
  for (size_t i = 0; i < sdp->nmedia; i++) {
    const ml_sdp_media *m = &sdp->media[i];
    if (m->port && !m->conn.addrtype && !sdp->conn.addrtype) return ML_SDP_ERR_CONNECTION;
  }
  return ML_SDP_OK;
}

ml_sdp_err ml_sdp_parse(ml_sdp *sdp, const char *buf, size_t len)
{
  sdp_parser ps = {.sdp = sdp};
  const char *p = buf, *end = len ? buf + len : buf;
  memset(sdp, 0, sizeof *sdp);
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    ml_str line = ml_str_make(p, (size_t)((nl ? nl : end) - p));
    p = nl ? nl + 1 : end;
    sdp->line++;
    if (line.n && line.p[line.n - 1] == '\r') line.n--;
    while (line.n && (line.p[line.n - 1] == ' ' || line.p[line.n - 1] == '\t')) line.n--;
    if (line.n == 0) {
      if (!rest_blank(p, end)) return ML_SDP_ERR_SYNTAX;
      break;
    }
    /* a bare CR or a NUL inside a line: no guessing what the peer meant */
    if (line.n < 2 || line.p[1] != '=' || memchr(line.p, '\r', line.n) || memchr(line.p, '\0', line.n))
      return ML_SDP_ERR_SYNTAX;
    if (line.p[0] < 'a' || line.p[0] > 'z') return ML_SDP_ERR_SYNTAX;
    ml_sdp_err err = line_parse(&ps, line.p[0], ml_str_make(line.p + 2, line.n - 2));
    if (err) return err;
  }
  return parse_finish(&ps);
}

const char *ml_sdp_strerror(ml_sdp_err err)
{
  switch (err) {
  case ML_SDP_OK:
    return "ok";
  case ML_SDP_ERR_SYNTAX:
    return "line syntax";
  case ML_SDP_ERR_TYPE:
    return "unknown line type";
  case ML_SDP_ERR_VERSION:
    return "missing or bad v=";
  case ML_SDP_ERR_ORIGIN:
    return "missing or bad o=";
  case ML_SDP_ERR_NAME:
    return "missing s=";
  case ML_SDP_ERR_TIMING:
    return "missing or bad t=";
  case ML_SDP_ERR_CONNECTION:
    return "missing or bad c=";
  case ML_SDP_ERR_MEDIA:
    return "bad m=";
  case ML_SDP_ERR_PORT:
    return "bad m= port";
  case ML_SDP_ERR_PAYLOAD:
    return "bad payload type";
  case ML_SDP_ERR_RTPMAP:
    return "bad a=rtpmap";
  case ML_SDP_ERR_FMTP:
    return "bad a=fmtp";
  case ML_SDP_ERR_PTIME:
    return "bad a=ptime or a=maxptime";
  case ML_SDP_ERR_RTCP:
    return "bad a=rtcp";
  case ML_SDP_ERR_ATTRIBUTE:
    return "bad attribute";
  case ML_SDP_ERR_DUPLICATE:
    return "duplicate line";
  case ML_SDP_ERR_ORDER:
    return "session line after m=";
  case ML_SDP_ERR_LIMIT:
    return "too many m= lines, payload types or attributes";
  }
  return "unknown error";
}

/* ---- queries --------------------------------------------------------------- */

ml_sdp_dir ml_sdp_media_dir(const ml_sdp *sdp, const ml_sdp_media *m)
{
  if (m->dir != ML_SDP_DIR_NONE) return m->dir;
  return sdp->dir != ML_SDP_DIR_NONE ? sdp->dir : ML_SDP_SENDRECV;
}

ml_sdp_conn ml_sdp_media_conn(const ml_sdp *sdp, const ml_sdp_media *m)
{
  return m->conn.addrtype ? m->conn : sdp->conn;
}

const ml_sdp_rtpmap *ml_sdp_media_rtpmap(const ml_sdp_media *m, uint8_t pt)
{
  for (size_t i = 0; i < m->nrtpmap; i++)
    if (m->rtpmap[i].pt == pt) return &m->rtpmap[i];
  return NULL;
}

const ml_sdp_fmtp *ml_sdp_media_fmtp(const ml_sdp_media *m, uint8_t pt)
{
  for (size_t i = 0; i < m->nfmtp; i++)
    if (m->fmtp[i].pt == pt) return &m->fmtp[i];
  return NULL;
}

/* ---- telephone-event sets -------------------------------------------------- */

void ml_sdp_events_add(ml_sdp_events *ev, unsigned lo, unsigned hi)
{
  if (hi > 255) hi = 255;
  for (unsigned e = lo; e <= hi; e++) ev->bits[e / 32] |= 1u << (e % 32);
}

int ml_sdp_events_has(const ml_sdp_events *ev, unsigned event)
{
  return event < 256 && (ev->bits[event / 32] >> (event % 32) & 1u);
}

int ml_sdp_events_empty(const ml_sdp_events *ev)
{
  for (size_t i = 0; i < 8; i++)
    if (ev->bits[i]) return 0;
  return 1;
}

/* RFC 4733 §2.4.1: events = event-list / range, comma-separated */
int ml_sdp_events_parse(ml_sdp_events *ev, ml_str params)
{
  ml_str item, lo, hi;
  memset(ev, 0, sizeof *ev);
  if (params.n == 0) return -1;
  while (params.n) {
    uint64_t a, b;
    if (str_split(params, ',', &item, &params) && params.n == 0) return -1;
    if (!str_split(item, '-', &lo, &hi)) hi = lo;
    if (num_parse(lo, 0, 255, &a) || num_parse(hi, 0, 255, &b) || a > b) return -1;
    ml_sdp_events_add(ev, (unsigned)a, (unsigned)b);
  }
  return 0;
}

/* ---- offer/answer ------------------------------------------------------------ */

/* What a payload type carries: its rtpmap if it has one (the peer's word),
 * else the RFC 3551 static assignment; only 8 kHz counts for us. */
static ml_sdp_codec pt_codec(const ml_sdp_media *m, uint8_t pt)
{
  const ml_sdp_rtpmap *r = ml_sdp_media_rtpmap(m, pt);
  if (!r) return pt == 0 ? ML_SDP_PCMU : pt == 8 ? ML_SDP_PCMA : ML_SDP_CODEC_NONE;
  if (r->clock != 8000 || r->channels != 1) return ML_SDP_CODEC_NONE;
  if (ml_str_ieq_c(r->encoding, "PCMU")) return ML_SDP_PCMU;
  if (ml_str_ieq_c(r->encoding, "PCMA")) return ML_SDP_PCMA;
  if (ml_str_ieq_c(r->encoding, "telephone-event")) return ML_SDP_TELEPHONE_EVENT;
  return ML_SDP_CODEC_NONE;
}

static int codec_accepted(const ml_sdp_caps *local, ml_sdp_codec c)
{
  return (c == ML_SDP_PCMU && local->pcmu) || (c == ML_SDP_PCMA && local->pcma);
}

static int media_usable(const ml_sdp_media *m)
{
  return m->audio && m->port != 0 && ml_str_eq(m->proto, ML_STR_LIT("RTP/AVP"));
}

/* telephone-event: the first one at 8 kHz; events offered (no fmtp means
 * 0-15, RFC 4733 §2.4.1) and taken by us */
static void answer_events(const ml_sdp_media *m, const ml_sdp_caps *local, ml_sdp_answer_params *out)
{
  out->te_pt = -1;
  memset(&out->events, 0, sizeof out->events);
  for (size_t i = 0; i < m->npt; i++) {
    if (pt_codec(m, m->pt[i]) != ML_SDP_TELEPHONE_EVENT) continue;
    const ml_sdp_fmtp *f = ml_sdp_media_fmtp(m, m->pt[i]);
    ml_sdp_events offered = {{0}};
    if (!f)
      ml_sdp_events_add(&offered, 0, 15);
    else if (ml_sdp_events_parse(&offered, f->params))
      continue;
    for (size_t w = 0; w < 8; w++) out->events.bits[w] = offered.bits[w] & local->events.bits[w];
    if (ml_sdp_events_empty(&out->events)) continue;
    out->te_pt = m->pt[i];
    return;
  }
}

static uint32_t answer_ptime(const ml_sdp_media *m, const ml_sdp_caps *local)
{
  uint32_t ptime = m->ptime == 20 || m->ptime == 30 ? m->ptime : local->ptime == 30 ? 30 : 20;
  if (m->maxptime && ptime > m->maxptime) ptime = 20;
  return ptime;
}

static int conn_is_hold(ml_sdp_conn c)
{
  return c.addrtype == ML_SDP_IP4 && ml_str_eq(c.addr, ML_STR_LIT("0.0.0.0"));
}

/* RFC 3264 §6.1: our direction mirrors the offer's, limited by ours */
static void answer_dir(const ml_sdp *offer, const ml_sdp_media *m, const ml_sdp_caps *local,
                       ml_sdp_answer_params *out)
{
  ml_sdp_dir od = ml_sdp_media_dir(offer, m);
  ml_sdp_dir ld = local->dir != ML_SDP_DIR_NONE ? local->dir : ML_SDP_SENDRECV;
  int peer_sends = od == ML_SDP_SENDRECV || od == ML_SDP_SENDONLY;
  int peer_recvs = (od == ML_SDP_SENDRECV || od == ML_SDP_RECVONLY) && !conn_is_hold(out->remote);
  out->send = peer_recvs && (ld == ML_SDP_SENDRECV || ld == ML_SDP_SENDONLY);
  out->recv = peer_sends && (ld == ML_SDP_SENDRECV || ld == ML_SDP_RECVONLY);
  out->held = !peer_recvs;
  if (out->send)
    out->dir = out->recv ? ML_SDP_SENDRECV : ML_SDP_SENDONLY;
  else
    out->dir = out->recv ? ML_SDP_RECVONLY : ML_SDP_INACTIVE;
}

/* the offerer's first codec that we accept; -1 if none */
static int media_answer(const ml_sdp *offer, const ml_sdp_media *m, const ml_sdp_caps *local,
                        ml_sdp_answer_params *out)
{
  size_t i = 0;
  while (i < m->npt && !codec_accepted(local, pt_codec(m, m->pt[i]))) i++;
  if (i == m->npt) return -1;
  out->pt = m->pt[i];
  out->codec = pt_codec(m, m->pt[i]);
  answer_events(m, local, out);
  out->ptime = answer_ptime(m, local);
  out->remote = ml_sdp_media_conn(offer, m);
  out->remote_port = m->port;
  out->remote_rtcp_port = m->rtcp_port ? m->rtcp_port : (uint16_t)(m->port + 1);
  answer_dir(offer, m, local, out);
  return 0;
}

ml_sdp_neg ml_sdp_negotiate(const ml_sdp *offer, const ml_sdp_caps *local, ml_sdp_answer_params *out)
{
  int audio = 0;
  memset(out, 0, sizeof *out);
  for (size_t i = 0; i < offer->nmedia; i++) {
    if (!media_usable(&offer->media[i])) continue;
    audio = 1;
    if (media_answer(offer, &offer->media[i], local, out) == 0) {
      out->media = i;
      return ML_SDP_NEG_OK;
    }
  }
  return audio ? ML_SDP_NEG_NO_CODEC : ML_SDP_NEG_NO_AUDIO;
}

const char *ml_sdp_neg_strerror(ml_sdp_neg neg)
{
  switch (neg) {
  case ML_SDP_NEG_OK:
    return "ok";
  case ML_SDP_NEG_NO_AUDIO:
    return "no usable audio stream";
  case ML_SDP_NEG_NO_CODEC:
    return "no common codec";
  }
  return "unknown error";
}

/* ---- writing ------------------------------------------------------------------ */

void ml_sdp_desc_offer(ml_sdp_desc *d, const ml_sdp_caps *caps)
{
  memset(d, 0, sizeof *d);
  if (caps->pcmu) d->fmt[d->nfmt++] = (ml_sdp_fmt){0, ML_SDP_PCMU};
  if (caps->pcma) d->fmt[d->nfmt++] = (ml_sdp_fmt){8, ML_SDP_PCMA};
  if (!ml_sdp_events_empty(&caps->events)) d->fmt[d->nfmt++] = (ml_sdp_fmt){101, ML_SDP_TELEPHONE_EVENT};
  d->events = caps->events;
  d->ptime = caps->ptime == 30 ? 30 : 20;
  d->dir = caps->dir != ML_SDP_DIR_NONE ? caps->dir : ML_SDP_SENDRECV;
}

void ml_sdp_desc_answer(ml_sdp_desc *d, const ml_sdp *offer, const ml_sdp_answer_params *a)
{
  memset(d, 0, sizeof *d);
  d->fmt[d->nfmt++] = (ml_sdp_fmt){a->pt, a->codec};
  if (a->te_pt >= 0) d->fmt[d->nfmt++] = (ml_sdp_fmt){(uint8_t)a->te_pt, ML_SDP_TELEPHONE_EVENT};
  d->events = a->events;
  d->ptime = a->ptime;
  d->dir = a->dir;
  d->offer = offer;
  d->media = a->media;
}

/* An append-only cursor over the caller's buffer: once something does not
 * fit, everything after is dropped and the write fails as a whole. */
typedef struct sdp_out {
  char *p;
  size_t n, cap;
  int full;
} sdp_out;

static void out_mem(sdp_out *o, const char *s, size_t n)
{
  if (o->full || n > o->cap - o->n) {
    o->full = 1;
    return;
  }
  memcpy(o->p + o->n, s, n);
  o->n += n;
}

static void out_str(sdp_out *o, ml_str s) { out_mem(o, s.p, s.n); }
static void out_cstr(sdp_out *o, const char *s) { out_mem(o, s, strlen(s)); }

static void out_u64(sdp_out *o, uint64_t v)
{
  char tmp[20];
  size_t i = sizeof tmp;
  do tmp[--i] = (char)('0' + v % 10);
  while (v /= 10);
  out_mem(o, tmp + i, sizeof tmp - i);
}

static void out_events(sdp_out *o, const ml_sdp_events *ev)
{
  int first = 1;
  for (unsigned e = 0; e < 256; e++) {
    if (!ml_sdp_events_has(ev, e)) continue;
    unsigned hi = e;
    while (hi < 255 && ml_sdp_events_has(ev, hi + 1)) hi++;
    if (!first) out_mem(o, ",", 1);
    out_u64(o, e);
    if (hi > e) out_mem(o, "-", 1), out_u64(o, hi);
    first = 0;
    e = hi;
  }
}

static const char *codec_name(ml_sdp_codec c)
{
  switch (c) {
  case ML_SDP_PCMU:
    return "PCMU";
  case ML_SDP_PCMA:
    return "PCMA";
  case ML_SDP_TELEPHONE_EVENT:
    return "telephone-event";
  case ML_SDP_CODEC_NONE:
    break;
  }
  return NULL;
}

static const char *dir_name(ml_sdp_dir d)
{
  switch (d) {
  case ML_SDP_SENDRECV:
    return "sendrecv";
  case ML_SDP_SENDONLY:
    return "sendonly";
  case ML_SDP_RECVONLY:
    return "recvonly";
  case ML_SDP_INACTIVE:
    return "inactive";
  case ML_SDP_DIR_NONE:
    break;
  }
  return NULL;
}

/* no CR, LF or NUL (a line break in a field would inject lines); with
 * spaces forbidden too for single-field values */
static int text_safe(ml_str s, int spaces)
{
  for (size_t i = 0; i < s.n; i++) {
    unsigned char c = (unsigned char)s.p[i];
    if (c == '\r' || c == '\n' || c == '\0' || (!spaces && (c == ' ' || c == '\t'))) return 0;
  }
  return 1;
}

static int desc_valid(const ml_sdp_desc *d)
{
  if (d->addrtype != ML_SDP_IP4 && d->addrtype != ML_SDP_IP6) return 0;
  if (!str_all(d->addr, char_addr) || !text_safe(d->username, 0) || !text_safe(d->name, 1)) return 0;
  if (d->nfmt == 0 || d->nfmt > ML_SDP_MAX_FMT) return 0;
  for (size_t i = 0; i < d->nfmt; i++)
    if (d->fmt[i].pt > 127 || !codec_name(d->fmt[i].codec)) return 0;
  if (d->ptime > ML_SDP_MAX_PTIME) return 0;
  return !d->offer || d->media < d->offer->nmedia;
}

static void out_header(sdp_out *o, const ml_sdp_desc *d)
{
  const char *ip = d->addrtype == ML_SDP_IP6 ? " IN IP6 " : " IN IP4 ";
  out_cstr(o, "v=0\r\no=");
  out_str(o, d->username.n ? d->username : ML_STR_LIT("-"));
  out_mem(o, " ", 1), out_u64(o, d->sess_id);
  out_mem(o, " ", 1), out_u64(o, d->sess_version);
  out_cstr(o, ip), out_str(o, d->addr);
  out_cstr(o, "\r\ns=");
  out_str(o, d->name.n ? d->name : ML_STR_LIT("-"));
  out_cstr(o, "\r\nc="), out_cstr(o, ip + 1), out_str(o, d->addr);
  /* RFC 3264 §6: the answer's t= equals the offer's */
  out_cstr(o, "\r\nt="), out_u64(o, d->offer ? d->offer->t_start : 0);
  out_mem(o, " ", 1), out_u64(o, d->offer ? d->offer->t_stop : 0), out_cstr(o, "\r\n");
}

static void out_audio(sdp_out *o, const ml_sdp_desc *d)
{
  out_cstr(o, "m=audio "), out_u64(o, d->port), out_cstr(o, " RTP/AVP");
  for (size_t i = 0; i < d->nfmt; i++) out_mem(o, " ", 1), out_u64(o, d->fmt[i].pt);
  out_cstr(o, "\r\n");
  for (size_t i = 0; i < d->nfmt; i++) {
    out_cstr(o, "a=rtpmap:"), out_u64(o, d->fmt[i].pt);
    out_mem(o, " ", 1), out_cstr(o, codec_name(d->fmt[i].codec)), out_cstr(o, "/8000\r\n");
    if (d->fmt[i].codec != ML_SDP_TELEPHONE_EVENT || ml_sdp_events_empty(&d->events)) continue;
    out_cstr(o, "a=fmtp:"), out_u64(o, d->fmt[i].pt), out_mem(o, " ", 1);
    out_events(o, &d->events), out_cstr(o, "\r\n");
  }
  if (d->ptime) out_cstr(o, "a=ptime:"), out_u64(o, d->ptime), out_cstr(o, "\r\n");
  if (d->rtcp_port) out_cstr(o, "a=rtcp:"), out_u64(o, d->rtcp_port), out_cstr(o, "\r\n");
  if (dir_name(d->dir)) out_cstr(o, "a="), out_cstr(o, dir_name(d->dir)), out_cstr(o, "\r\n");
}

/* RFC 3264 §6: a rejected stream keeps its place, with port 0 */
static void out_rejected(sdp_out *o, const ml_sdp_media *m)
{
  out_cstr(o, "m="), out_str(o, m->type), out_cstr(o, " 0 "), out_str(o, m->proto);
  out_mem(o, " ", 1), out_str(o, m->fmts), out_cstr(o, "\r\n");
}

int ml_sdp_write(char *buf, size_t cap, const ml_sdp_desc *d)
{
  sdp_out o = {buf, 0, cap, 0};
  if (cap == 0 || !desc_valid(d)) return -1;
  out_header(&o, d);
  if (!d->offer) out_audio(&o, d);
  for (size_t i = 0; d->offer && i < d->offer->nmedia; i++) {
    if (i == d->media)
      out_audio(&o, d);
    else
      out_rejected(&o, &d->offer->media[i]);
  }
  if (o.full || o.n >= cap || o.n > INT_MAX) return -1;
  buf[o.n] = '\0';
  return (int)o.n;
}
