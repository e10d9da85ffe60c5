/* libFuzzer harness for engine/media/wav.c: ml_wav_decode of any bytes, at
 * the room's rate (16 kHz) and at 8 kHz.
 *
 * Invariants: the result is 0 or -1; a refusal leaves *out NULL and *n 0 and
 * says why in a terminated message (also in a tiny buffer); a success hands
 * back a buffer of *n samples (all read here, so ASan sees any short one)
 * whose length is what the header promises: at most one sample per input
 * byte before resampling, and round(frames × rate / in_rate) after it, so
 * the 16 kHz result is twice the 8 kHz one give or take a rounding. Both
 * rates accept or refuse the same input with the same message, and decoding
 * is deterministic. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "wav.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile int64_t sink;

typedef struct result {
  int rc;
  int16_t *out;
  size_t n;
  char err[256];
} result;

static void run(const uint8_t *data, size_t size, uint32_t rate, result *r)
{
  memset(r->err, 'x', sizeof r->err);
  r->out = (int16_t *)r; /* must be overwritten */
  r->n = (size_t)-1;
  r->rc = ml_wav_decode(data, size, rate, &r->out, &r->n, r->err, sizeof r->err);
  ASSERT(r->rc == 0 || r->rc == -1);
  if (r->rc) {
    ASSERT(r->out == NULL && r->n == 0);
    ASSERT(memchr(r->err, '\0', sizeof r->err) != NULL && r->err[0] != '\0');
    return;
  }
  ASSERT(r->out != NULL);
  /* the worst case: 8-bit mono at 1 kHz, resampled up */
  ASSERT(r->n <= (uint64_t)size * rate / 1000 + 1);
  int64_t sum = 0;
  for (size_t i = 0; i < r->n; i++) sum += r->out[i];
  sink = sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size > 65536) return 0;
  result a, b;
  run(data, size, 16000, &a);
  run(data, size, 8000, &b);
  ASSERT(a.rc == b.rc);
  if (a.rc) {
    ASSERT(strcmp(a.err, b.err) == 0);
  } else {
    ASSERT(a.n <= 2 * b.n + 1 && 2 * b.n <= a.n + 1);
  }
  /* the same input again: the same samples */
  result c;
  run(data, size, 16000, &c);
  ASSERT(c.rc == a.rc && c.n == a.n);
  if (!c.rc) ASSERT(c.n == 0 || memcmp(c.out, a.out, c.n * sizeof *c.out) == 0);
  /* a tiny message buffer is still terminated */
  char tiny[5];
  int16_t *out;
  size_t n;
  memset(tiny, 'x', sizeof tiny);
  if (ml_wav_decode(data, size, 8000, &out, &n, tiny, sizeof tiny) == 0)
    free(out);
  else
    ASSERT(memchr(tiny, '\0', sizeof tiny) != NULL);
  free(a.out);
  free(b.out);
  free(c.out);
  return 0;
}
