/* libFuzzer harness for engine/sip/sipfrag.c: parse; views stay in the input;
 * a parsed status line written back parses to the same status and reason. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "sipfrag.h"

static int view_in(ml_str s, const uint8_t *data, size_t size)
{
  return s.n == 0 || ((const uint8_t *)s.p >= data && (const uint8_t *)s.p + s.n <= data + size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static char buf[8192];
  ml_sipfrag f, back;
  if (size > 4096) return 0;
  if (ml_sipfrag_parse(&f, (const char *)data, size) != ML_SIPFRAG_OK) return 0;
  ASSERT(f.status >= 100 && f.status <= 699);
  ASSERT(view_in(f.reason, data, size) && view_in(f.headers, data, size));
  ASSERT(!memchr(f.reason.p, '\r', f.reason.n) && !memchr(f.reason.p, '\n', f.reason.n));
  int n = ml_sipfrag_write(buf, sizeof buf, f.status, f.reason);
  ASSERT(n > 0 && buf[n] == '\0' && buf[n - 1] == '\n');
  ASSERT(ml_sipfrag_parse(&back, buf, (size_t)n) == ML_SIPFRAG_OK);
  ASSERT(back.status == f.status && back.headers.n == 0);
  ASSERT(f.reason.n == 0 || ml_str_eq(back.reason, f.reason));
  ASSERT(ml_sipfrag_final(&f) == (f.status >= 200));
  return 0;
}
