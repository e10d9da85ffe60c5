/* Building outgoing SIP messages into a caller buffer, and the response
 * skeleton of RFC 3261 §8.2.6. The builder refuses anything that would
 * change how the message is framed when it is read back — a CR or LF that
 * is not a fold, a NUL, a header name that is not a token — because header
 * values come from scripts and from received messages. */
#include <stdarg.h>
#include <stdio.h>

#include "sip_lex.h"
#include "sip_msg.h"

void ml_sip_builder_init(ml_sip_builder *b, char *buf, size_t cap)
{
  b->buf = buf;
  b->cap = cap;
  b->len = 0;
  b->failed = 0;
}

static void put(ml_sip_builder *b, const char *p, size_t n)
{
  if (b->failed) return;
  if (n > b->cap - b->len) {
    b->failed = 1;
    return;
  }
  if (n) memcpy(b->buf + b->len, p, n);
  b->len += n;
}

static void put_c(ml_sip_builder *b, const char *s) { put(b, s, strlen(s)); }

static int ctl(int c) { return (c < 0x20 && c != '\t') || c == 0x7f; }

/* A value with each fold turned into one SP. Any other control byte fails,
 * except one escaped by a backslash inside a quoted string: the parser lets
 * those through (quoted-pair), so a received From must be echoed as is. */
static void put_value(ml_sip_builder *b, ml_str v)
{
  int quoted = 0;
  size_t i = 0, run = 0;
  while (i < v.n) {
    unsigned char c = (unsigned char)v.p[i];
    if (!ctl(c)) {
      if (c == '"')
        quoted = !quoted;
      else if (c == '\\' && quoted && i + 1 < v.n && v.p[i + 1] != '\r' && v.p[i + 1] != '\n')
        i++;
      i++;
      continue;
    }
    put(b, v.p + run, i - run);
    if (c != '\r' || i + 2 >= v.n || v.p[i + 1] != '\n' || !lex_ws((unsigned char)v.p[i + 2])) {
      b->failed = 1;
      return;
    }
    i += 2;
    while (i < v.n && lex_ws((unsigned char)v.p[i])) i++;
    put(b, " ", 1);
    run = i;
  }
  put(b, v.p + run, v.n - run);
}

static int token_ok(ml_str s)
{
  if (!s.n) return 0;
  for (size_t i = 0; i < s.n; i++)
    if (!lex_token((unsigned char)s.p[i])) return 0;
  return 1;
}

static void put_name(ml_sip_builder *b, const char *name)
{
  if (!token_ok(ml_str_c(name))) b->failed = 1;
  put_c(b, name);
  put(b, ": ", 2);
}

void ml_sip_builder_request_line(ml_sip_builder *b, ml_str method, ml_str uri)
{
  if (!token_ok(method) || !uri.n) b->failed = 1;
  for (size_t i = 0; i < uri.n; i++)
    if (ctl((unsigned char)uri.p[i]) || uri.p[i] == ' ' || uri.p[i] == '\t') b->failed = 1;
  put(b, method.p, method.n);
  put(b, " ", 1);
  put(b, uri.p, uri.n);
  put_c(b, " SIP/2.0\r\n");
}

void ml_sip_builder_status_line(ml_sip_builder *b, int code, const char *reason)
{
  char num[8];
  ml_str r = ml_str_c(reason ? reason : ml_sip_reason(code));
  if (code < 100 || code > 699) b->failed = 1;
  for (size_t i = 0; i < r.n; i++)
    if (ctl((unsigned char)r.p[i])) b->failed = 1;
  snprintf(num, sizeof num, "%d ", code);
  put_c(b, "SIP/2.0 ");
  put_c(b, num);
  put(b, r.p, r.n);
  put(b, "\r\n", 2);
}

void ml_sip_builder_header(ml_sip_builder *b, const char *name, ml_str value)
{
  put_name(b, name);
  put_value(b, value);
  put(b, "\r\n", 2);
}

void ml_sip_builder_headerf(ml_sip_builder *b, const char *name, const char *fmt, ...)
{
  put_name(b, name);
  if (b->failed) return;
  va_list ap;
  va_start(ap, fmt);
  size_t room = b->cap - b->len;
  int n = vsnprintf(b->buf + b->len, room, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= room) {
    b->failed = 1;
    return;
  }
  /* no folds in formatted text: any control byte is an injection */
  for (int i = 0; i < n; i++)
    if (ctl((unsigned char)b->buf[b->len + (size_t)i])) b->failed = 1;
  b->len += (size_t)n;
  put(b, "\r\n", 2);
}

size_t ml_sip_builder_finish(ml_sip_builder *b, ml_str body)
{
  ml_sip_builder_headerf(b, "Content-Length", "%zu", body.n);
  put(b, "\r\n", 2);
  put(b, body.p, body.n);
  return b->failed ? 0 : b->len;
}

/* ---- responses ------------------------------------------------------------- */

static ml_str first_value(const ml_sip_msg *m, ml_sip_hdr_id id)
{
  const ml_sip_header *h = ml_sip_header_get(m, id);
  return h ? h->value : ML_STR_NULL;
}

/* RFC 3261 §12.1.1: a UAS copies Record-Route into the responses that
 * establish a dialog (101-199 with a To tag make an early one) */
static int creates_dialog(const ml_sip_msg *req, int code)
{
  ml_sip_method m = req->method;
  return code > 100 && code < 300 && (m == ML_SIP_INVITE || m == ML_SIP_SUBSCRIBE || m == ML_SIP_REFER);
}

int ml_sip_build_response(const ml_sip_msg *req, int code, const char *reason, ml_str to_tag,
                          ml_sip_builder *b)
{
  ml_sip_name_addr to;
  ml_str tag, to_value = first_value(req, ML_SIP_H_TO);
  if (!ml_sip_can_respond(req)) {
    b->failed = 1;
    return -1;
  }
  ml_sip_builder_status_line(b, code, reason);
  for (unsigned i = 0; i < req->n_via; i++) ml_sip_builder_header(b, "Via", req->via[i]);
  ml_sip_builder_header(b, "From", first_value(req, ML_SIP_H_FROM));
  put_name(b, "To");
  put_value(b, to_value);
  /* a To that does not parse gets no tag: it is echoed for a 400 only */
  if (to_tag.n && ml_sip_parse_name_addr(to_value, &to) == 0 && !ml_sip_param(to.params, "tag", &tag)) {
    if (!token_ok(to_tag)) b->failed = 1;
    put_c(b, ";tag=");
    put(b, to_tag.p, to_tag.n);
  }
  put(b, "\r\n", 2);
  ml_sip_builder_header(b, "Call-ID", first_value(req, ML_SIP_H_CALL_ID));
  ml_sip_builder_header(b, "CSeq", first_value(req, ML_SIP_H_CSEQ));
  if (creates_dialog(req, code))
    for (unsigned i = 0; i < req->n_record_route; i++)
      ml_sip_builder_header(b, "Record-Route", req->record_route[i]);
  return b->failed ? -1 : 0;
}

/* ---- reason phrases -------------------------------------------------------- */

static const struct {
  short code;
  const char *text;
} reasons[] = {
    {100, "Trying"},
    {180, "Ringing"},
    {181, "Call Is Being Forwarded"},
    {182, "Queued"},
    {183, "Session Progress"},
    {199, "Early Dialog Terminated"},
    {200, "OK"},
    {202, "Accepted"},
    {204, "No Notification"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Moved Temporarily"},
    {305, "Use Proxy"},
    {380, "Alternative Service"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {410, "Gone"},
    {412, "Conditional Request Failed"},
    {413, "Request Entity Too Large"},
    {414, "Request-URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Unsupported URI Scheme"},
    {420, "Bad Extension"},
    {421, "Extension Required"},
    {422, "Session Interval Too Small"},
    {423, "Interval Too Brief"},
    {480, "Temporarily Unavailable"},
    {481, "Call/Transaction Does Not Exist"},
    {482, "Loop Detected"},
    {483, "Too Many Hops"},
    {484, "Address Incomplete"},
    {485, "Ambiguous"},
    {486, "Busy Here"},
    {487, "Request Terminated"},
    {488, "Not Acceptable Here"},
    {489, "Bad Event"},
    {491, "Request Pending"},
    {493, "Undecipherable"},
    {500, "Server Internal Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Server Time-out"},
    {505, "Version Not Supported"},
    {513, "Message Too Large"},
    {580, "Precondition Failure"},
    {600, "Busy Everywhere"},
    {603, "Decline"},
    {604, "Does Not Exist Anywhere"},
    {606, "Not Acceptable"},
};

const char *ml_sip_reason(int code)
{
  static const char *const classes[] = {"Unknown",      "Provisional",  "Success",       "Redirection",
                                        "Client Error", "Server Error", "Global Failure"};
  for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
    if (reasons[i].code == code) return reasons[i].text;
  return code >= 100 && code <= 699 ? classes[code / 100] : classes[0];
}
