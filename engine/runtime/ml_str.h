/* String views for zero-copy parsers (SIP, SDP, digest, sipfrag): a view
 * points into the buffer it was parsed from and is valid as long as it is. */
#ifndef ML_STR_H
#define ML_STR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct ml_str {
  const char *p;
  size_t n;
} ml_str;

#define ML_STR_NULL ((ml_str){NULL, 0})
#define ML_STR_LIT(s) ((ml_str){(s), sizeof(s) - 1})

static inline ml_str ml_str_make(const char *p, size_t n) { return (ml_str){p, n}; }
static inline ml_str ml_str_c(const char *s) { return (ml_str){s, s ? strlen(s) : 0}; }
static inline int ml_str_empty(ml_str s) { return s.n == 0; }

static inline int ml_str_eq(ml_str a, ml_str b)
{
  return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static inline int ml_ascii_lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* case-insensitive (ASCII) equality: header names, methods, tokens */
static inline int ml_str_ieq(ml_str a, ml_str b)
{
  if (a.n != b.n) return 0;
  for (size_t i = 0; i < a.n; i++)
    if (ml_ascii_lower((unsigned char)a.p[i]) != ml_ascii_lower((unsigned char)b.p[i])) return 0;
  return 1;
}

static inline int ml_str_ieq_c(ml_str a, const char *b) { return ml_str_ieq(a, ml_str_c(b)); }

/* trim spaces and tabs on both sides */
static inline ml_str ml_str_trim(ml_str s)
{
  while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) s.p++, s.n--;
  while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) s.n--;
  return s;
}

/* decimal digits only, no sign, no overflow past max; 0 on success */
static inline int ml_str_to_u64(ml_str s, uint64_t max, uint64_t *out)
{
  if (s.n == 0 || s.n > 20) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < s.n; i++) {
    unsigned d = (unsigned char)s.p[i] - '0';
    if (d > 9) return -1;
    if (v > (max - d) / 10) return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

#endif
