/* Character classes and whitespace of the SIP grammar (RFC 3261 §25.1),
 * shared by sip_msg.c, sip_uri.c and sip_build.c. Private to engine/sip.
 *
 * The sets are spelled out as in the RFC rather than packed into a table:
 * letters and digits take the fast path, punctuation a short memchr. */
#ifndef ML_SIP_LEX_H
#define ML_SIP_LEX_H

#include <string.h>

#include "ml_str.h"

/* c is one of the n bytes of set */
static inline int lex_in(int c, const char *set, size_t n) { return memchr(set, c, n) != NULL; }
#define LEX_IN(c, lit) lex_in((c), (lit), sizeof(lit) - 1)

static inline int lex_digit(int c) { return (unsigned)c - '0' < 10u; }
static inline int lex_alpha(int c) { return (unsigned)(c | 32) - 'a' < 26u; }
static inline int lex_alnum(int c) { return lex_digit(c) || lex_alpha(c); }
static inline int lex_hex(int c) { return lex_digit(c) || (unsigned)(c | 32) - 'a' < 6u; }
static inline int lex_hexval(int c) { return lex_digit(c) ? c - '0' : (c | 32) - 'a' + 10; }

/* The hot classes are switches rather than a memchr; one line per set
 * reads better than a case ladder. */
/* clang-format off */
/* token: methods, header names, param names, transports */
static inline int lex_token(int c)
{
  switch (c) {
  case '-': case '.': case '!': case '%': case '*': case '_': case '+': case '`': case '\'': case '~': return 1;
  default: return lex_alnum(c);
  }
}
/* unquoted parameter values: gen-value (token / host) and URI pvalues */
static inline int lex_pvalue(int c)
{
  switch (c) {
  case '(': case ')': case '[': case ']': case '/': case ':': case '&': case '$': return 1;
  default: return lex_token(c);
  }
}
/* clang-format on */
static inline int lex_unreserved(int c) { return lex_alnum(c) || LEX_IN(c, "-_.!~*'()"); }
/* URI user part: unreserved / user-unreserved (escapes checked apart) */
static inline int lex_user(int c) { return lex_unreserved(c) || LEX_IN(c, "&=+$,;?/"); }
static inline int lex_password(int c) { return lex_unreserved(c) || LEX_IN(c, "&=+$,"); }
/* URI parameter names and values */
static inline int lex_paramchar(int c) { return lex_unreserved(c) || LEX_IN(c, "[]/:&+$"); }
/* URI header names and values */
static inline int lex_hnv(int c) { return lex_unreserved(c) || LEX_IN(c, "[]/?:+$"); }
/* Call-ID words */
static inline int lex_word(int c) { return lex_alnum(c) || LEX_IN(c, "-.!%*_+`'~()<>:\\\"/[]?{}"); }
static inline int lex_scheme(int c) { return lex_alnum(c) || LEX_IN(c, "+-."); }
/* the characters of any absolute URI (other schemes) */
static inline int lex_uric(int c) { return lex_unreserved(c) || LEX_IN(c, ";/?:@&=+$,%[]#"); }
/* tel: numbers (RFC 3966): digits, hex, * # and visual separators */
static inline int lex_tel(int c) { return lex_hex(c) || LEX_IN(c, "*#-.()"); }

static inline int lex_ws(int c) { return c == ' ' || c == '\t'; }
/* inside a header value a fold's CRLF is whitespace too */
static inline int lex_lws(int c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static inline const char *lex_skip_lws(const char *p, const char *end)
{
  while (p < end && lex_lws((unsigned char)*p)) p++;
  return p;
}

static inline const char *lex_skip_token(const char *p, const char *end)
{
  while (p < end && lex_token((unsigned char)*p)) p++;
  return p;
}

static inline ml_str lex_trim(ml_str s)
{
  if (s.n == 0) return s;
  while (s.n && lex_lws((unsigned char)s.p[0])) s.p++, s.n--;
  while (s.n && lex_lws((unsigned char)s.p[s.n - 1])) s.n--;
  return s;
}

static inline ml_str lex_span(const char *a, const char *b) { return ml_str_make(a, (size_t)(b - a)); }

/* Length of the quoted-string at p (p[0] == '"'), closing quote included;
 * 0 when it is not terminated. A backslash escapes any byte but CR and LF. */
static inline size_t lex_quoted(const char *p, size_t n)
{
  for (size_t i = 1; i < n; i++) {
    if (p[i] == '"') return i + 1;
    if (p[i] == '\\') {
      if (i + 1 >= n || p[i + 1] == '\r' || p[i + 1] == '\n') return 0;
      i++;
    }
  }
  return 0;
}

/* every byte is in the class or part of a %HH escape; empty is fine */
static inline int lex_all(ml_str s, int (*ok)(int c))
{
  for (size_t i = 0; i < s.n; i++) {
    int c = (unsigned char)s.p[i];
    if (c == '%') {
      if (s.n - i < 3 || !lex_hex((unsigned char)s.p[i + 1]) || !lex_hex((unsigned char)s.p[i + 2])) return 0;
      i += 2;
    } else if (!ok(c)) {
      return 0;
    }
  }
  return 1;
}

#endif
