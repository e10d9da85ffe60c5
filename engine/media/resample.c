/* Resampler: our own FIR for the 2:1 ratios (8 <-> 16 kHz, the G.711 legs
 * of a room), speexdsp for the others. See resample.h. */
#include "resample.h"

#include <math.h>
#include <speex/speex_resampler.h>
#include <stdlib.h>
#include <string.h>

/* 2:1 and 1:2: one low-pass FIR at the higher rate, 2N - 1 taps (Kaiser window,
 * beta 5.65: ~60 dB), cut at 3.7 kHz of 16 kHz (scaled with the rates): flat
 * to 3.4 kHz, below -60 dB from 4 kHz, so nothing aliases into the band going
 * down. Going up, each output sample is one of its two phases (N taps) over
 * the last N inputs; going down only every other output is computed (2N
 * taps). int16 taps and samples, int32 sums: the compiler turns each dot
 * product into vector multiply-adds. A 20 ms frame costs about a tenth of
 * speexdsp's quality 3, which has much the same band edges. */
#define FIR_N 48
#define FIR_CHUNK 480 /* output samples per pass */

typedef struct fir2 {
  int up; /* 1: x2, 0: /2 */
  int hist_zero; /* the kept input is all zeros */
  size_t hist; /* inputs kept between calls: N - 1 up, 2N - 2 down */
  int16_t h[2 * FIR_N]; /* up: phase 0 then phase 1, x2; down: all; oldest sample's tap first */
  int16_t x[2 * FIR_N + 2 * FIR_CHUNK];
} fir2;

struct ml_resampler {
  SpeexResamplerState *st; /* NULL: fir2 */
  fir2 *f;
  uint32_t in_rate, out_rate;
};

static double bessel_i0(double x)
{
  double s = 1, t = 1;
  for (int k = 1; k < 40; k++) {
    t *= (x / (2 * k)) * (x / (2 * k));
    s += t;
  }
  return s;
}

static fir2 *fir2_create(int up)
{
  fir2 *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->up = up;
  f->hist_zero = 1;
  f->hist = up ? FIR_N - 1 : 2 * FIR_N - 2;
  const double pi = 3.14159265358979323846, beta = 5.65, fc = 3700.0 / 16000, c = FIR_N - 1;
  double h[2 * FIR_N] = {0}, sum = 0;
  for (int j = 0; j <= 2 * c; j++) { /* 2N - 1 taps and a zero: an odd length, a delay of whole samples */
    double d = j - c, r = d / c;
    h[j] = (d == 0 ? 2 * fc : sin(2 * pi * fc * d) / (pi * d)) * bessel_i0(beta * sqrt(1 - r * r)) /
           bessel_i0(beta);
    sum += h[j];
  }
  for (int j = 0; j < 2 * FIR_N; j++) {
    double g = h[j] / sum; /* unity gain at DC */
    if (up) /* phase p of output 2k + p: taps 2i + p, for x[k - i] */
      f->h[(j % 2) * FIR_N + FIR_N - 1 - j / 2] = (int16_t)lrint(2 * g * 32768);
    else /* y[k]: tap j for v[2k + 1 - j] */
      f->h[2 * FIR_N - 1 - j] = (int16_t)lrint(g * 32768);
  }
  return f;
}

static inline int16_t sat16(int32_t v) { return (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v); }

static int all_zero(const int16_t *x, size_t n)
{
  int16_t o = 0;
  for (size_t i = 0; i < n; i++) o |= x[i];
  return o == 0;
}

/* sum of h[i] w[i], rounded from Q15 */
static inline int16_t dot(const int16_t *restrict h, const int16_t *restrict w, int n)
{
  int32_t acc = 0;
  for (int i = 0; i < n; i++) acc += (int32_t)h[i] * w[i];
  return sat16((acc + (1 << 14)) >> 15);
}

/* n outputs (n / 2 inputs up, 2n down) */
static void fir2_run(fir2 *f, const int16_t *in, size_t n, int16_t *out)
{
  size_t n_in = f->up ? n / 2 : 2 * n;
  if (f->hist_zero && all_zero(in, n_in)) { /* silence in, silence out: the state stays zero */
    memset(out, 0, n * sizeof *out);
    return;
  }
  int16_t *x = f->x;
  memcpy(x + f->hist, in, n_in * sizeof *in);
  if (f->up) {
    for (size_t k = 0; k < n / 2; k++) {
      out[2 * k] = dot(f->h, x + k, FIR_N);
      out[2 * k + 1] = dot(f->h + FIR_N, x + k, FIR_N);
    }
  } else {
    for (size_t k = 0; k < n; k++) out[k] = dot(f->h, x + 2 * k, 2 * FIR_N);
  }
  memmove(x, x + n_in, f->hist * sizeof *x);
  f->hist_zero = all_zero(x, f->hist);
}

ml_resampler *ml_resampler_create(uint32_t in_rate, uint32_t out_rate, int quality)
{
  if (in_rate < 1000 || in_rate > 192000 || out_rate < 1000 || out_rate > 192000) return NULL;
  if (quality < SPEEX_RESAMPLER_QUALITY_MIN || quality > SPEEX_RESAMPLER_QUALITY_MAX) return NULL;
  ml_resampler *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->in_rate = in_rate;
  r->out_rate = out_rate;
  if (out_rate == 2 * in_rate || in_rate == 2 * out_rate) {
    r->f = fir2_create(out_rate > in_rate);
    if (!r->f) {
      free(r);
      return NULL;
    }
    return r;
  }
  int err = 0;
  r->st = speex_resampler_init(1, in_rate, out_rate, quality, &err);
  if (!r->st || err != RESAMPLER_ERR_SUCCESS) {
    if (r->st) speex_resampler_destroy(r->st);
    free(r);
    return NULL;
  }
  return r;
}

void ml_resampler_free(ml_resampler *r)
{
  if (!r) return;
  if (r->st) speex_resampler_destroy(r->st);
  free(r->f);
  free(r);
}

int ml_resampler_process(ml_resampler *r, const int16_t *in, size_t *in_n, int16_t *out, size_t *out_n)
{
  if (r->f) {
    /* whole pairs of samples at the higher rate */
    size_t n =
        r->f->up ? (*in_n < *out_n / 2 ? *in_n : *out_n / 2) * 2 : (*in_n / 2 < *out_n ? *in_n / 2 : *out_n);
    size_t made = 0;
    while (made < n) {
      size_t k = n - made < FIR_CHUNK ? n - made : FIR_CHUNK;
      fir2_run(r->f, in + (r->f->up ? made / 2 : 2 * made), k, out + made);
      made += k;
    }
    *in_n = r->f->up ? n / 2 : 2 * n;
    *out_n = n;
    return 0;
  }
  /* speexdsp counts in 32 bits; a frame is far smaller, so clamp rather than fail */
  spx_uint32_t ilen = *in_n > UINT32_MAX ? UINT32_MAX : (spx_uint32_t)*in_n;
  spx_uint32_t olen = *out_n > UINT32_MAX ? UINT32_MAX : (spx_uint32_t)*out_n;
  int err = speex_resampler_process_int(r->st, 0, in, &ilen, out, &olen);
  *in_n = ilen;
  *out_n = olen;
  return err == RESAMPLER_ERR_SUCCESS ? 0 : -1;
}

size_t ml_resampler_out_size(const ml_resampler *r, size_t in_n)
{
  return (size_t)(((uint64_t)in_n * r->out_rate + r->in_rate - 1) / r->in_rate);
}

/* the filter's centre, N - 1 samples at the higher rate, in output samples
 * (going down the newest input is odd-numbered: (N - 1 + 1) / 2 - 1) */
int ml_resampler_latency(const ml_resampler *r)
{
  if (r->f) return r->f->up ? FIR_N - 1 : FIR_N / 2 - 1;
  return speex_resampler_get_output_latency(r->st);
}

void ml_resampler_reset(ml_resampler *r)
{
  if (r->f) {
    memset(r->f->x, 0, sizeof r->f->x);
    r->f->hist_zero = 1;
    return;
  }
  speex_resampler_reset_mem(r->st);
}
