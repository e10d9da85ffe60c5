/* message/sipfrag status lines (see sipfrag.h): strict about the one line we
 * act on, silent about the headers after it, which nobody needs to read. */
#include "sipfrag.h"

#include <limits.h>
#include <string.h>

/* reason-phrase characters: text and tabs, no control character */
static int char_reason(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static int reason_valid(ml_str s)
{
  for (size_t i = 0; i < s.n; i++)
    if (!char_reason((unsigned char)s.p[i])) return 0;
  return 1;
}

static int status_parse(const char *p, unsigned *status)
{
  unsigned v = 0;
  for (int i = 0; i < 3; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    v = v * 10 + (unsigned)(p[i] - '0');
  }
  if (v < 100 || v > 699) return -1;
  *status = v;
  return 0;
}

ml_sipfrag_err ml_sipfrag_parse(ml_sipfrag *f, const char *buf, size_t len)
{
  static const char version[] = "SIP/2.0 ";
  memset(f, 0, sizeof *f);
  if (len == 0) return ML_SIPFRAG_ERR_EMPTY;
  const char *nl = memchr(buf, '\n', len);
  ml_str line = ml_str_make(buf, nl ? (size_t)(nl - buf) : len);
  f->headers = nl ? ml_str_make(nl + 1, len - line.n - 1) : ml_str_make(buf + len, 0);
  if (line.n && line.p[line.n - 1] == '\r') line.n--;
  if (line.n < sizeof version - 1 ||
      !ml_str_ieq(ml_str_make(line.p, sizeof version - 1), ML_STR_LIT(version)))
    return line.n ? ML_SIPFRAG_ERR_VERSION : ML_SIPFRAG_ERR_EMPTY;
  ml_str rest = ml_str_make(line.p + sizeof version - 1, line.n - (sizeof version - 1));
  if (rest.n < 3 || status_parse(rest.p, &f->status)) return ML_SIPFRAG_ERR_STATUS;
  if (rest.n > 3 && rest.p[3] != ' ') return ML_SIPFRAG_ERR_STATUS;
  f->reason = rest.n > 3 ? ml_str_make(rest.p + 4, rest.n - 4) : ml_str_make(rest.p + 3, 0);
  if (!reason_valid(f->reason)) return ML_SIPFRAG_ERR_SYNTAX;
  f->reason = ml_str_trim(f->reason);
  return ML_SIPFRAG_OK;
}

const char *ml_sipfrag_strerror(ml_sipfrag_err err)
{
  switch (err) {
  case ML_SIPFRAG_OK:
    return "ok";
  case ML_SIPFRAG_ERR_EMPTY:
    return "no status line";
  case ML_SIPFRAG_ERR_VERSION:
    return "not a SIP/2.0 status line";
  case ML_SIPFRAG_ERR_STATUS:
    return "bad status code";
  case ML_SIPFRAG_ERR_SYNTAX:
    return "bad character in the status line";
  }
  return "unknown error";
}

static const char *reason_default(unsigned status)
{
  static const struct {
    unsigned status;
    const char *reason;
  } known[] = {
      {100, "Trying"},
      {180, "Ringing"},
      {181, "Call Is Being Forwarded"},
      {182, "Queued"},
      {183, "Session Progress"},
      {200, "OK"},
      {202, "Accepted"},
      {300, "Multiple Choices"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {407, "Proxy Authentication Required"},
      {408, "Request Timeout"},
      {480, "Temporarily Unavailable"},
      {481, "Call/Transaction Does Not Exist"},
      {486, "Busy Here"},
      {487, "Request Terminated"},
      {488, "Not Acceptable Here"},
      {500, "Server Internal Error"},
      {503, "Service Unavailable"},
      {600, "Busy Everywhere"},
      {603, "Decline"},
  };
  for (int pass = 0; pass < 2; pass++, status -= status % 100) /* then the x00 of its class */
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
      if (known[i].status == status) return known[i].reason;
  return "";
}

int ml_sipfrag_write(char *buf, size_t cap, unsigned status, ml_str reason)
{
  if (status < 100 || status > 699 || !reason_valid(reason)) return -1;
  ml_str r = reason.n ? reason : ml_str_c(reason_default(status));
  size_t n = sizeof "SIP/2.0 000 " - 1 + r.n + 2;
  if (n >= cap || n > INT_MAX) return -1;
  memcpy(buf, "SIP/2.0 ", 8);
  buf[8] = (char)('0' + status / 100);
  buf[9] = (char)('0' + status / 10 % 10);
  buf[10] = (char)('0' + status % 10);
  buf[11] = ' ';
  if (r.n) memcpy(buf + 12, r.p, r.n);
  memcpy(buf + 12 + r.n, "\r\n", 3);
  return (int)n;
}
