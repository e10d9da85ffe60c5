/* The resampler (engine/media/resample.c: our FIR for 2:1, speexdsp else): 8 kHz <-> 16 kHz in
 * 20 ms frames. A 1 kHz sine keeps its frequency (zero crossings) and level
 * (within 1 dB) once the filter has settled; frames stay whole; a tone above
 * the 8 kHz Nyquist limit is filtered out on the way down. Prints the cost of
 * a frame each way. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "ml_test.h"
#include "resample.h"

static const double PI = 3.14159265358979323846;

/* frame k of a sine of `hz` at `rate`, amplitude `amp` */
static void sine(int16_t *x, size_t n, size_t k, double hz, double rate, double amp)
{
  for (size_t i = 0; i < n; i++) x[i] = (int16_t)lrint(amp * sin(2 * PI * hz * (double)(k * n + i) / rate));
}

static double rms(const int16_t *x, size_t n)
{
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return sqrt(s / (double)n);
}

/* sign changes, counted between samples that are clearly on either side */
static int crossings(const int16_t *x, size_t n)
{
  int c = 0, prev = 0;
  for (size_t i = 0; i < n; i++) {
    int s = x[i] > 100 ? 1 : x[i] < -100 ? -1 : 0;
    if (s && prev && s != prev) c++;
    if (s) prev = s;
  }
  return c;
}

enum { FRAMES = 100 }; /* 2 s */

/* Run FRAMES frames of a sine through r; keep the output after `settle`
 * frames in out (whole frames of out_frame samples). Returns 0 if every frame
 * was consumed whole and produced exactly out_frame samples. */
static int run(ml_resampler *r, double hz, double in_rate, size_t in_frame, size_t out_frame, int16_t *out,
               int settle)
{
  int16_t in[960], tmp[960];
  int bad = 0;
  for (int k = 0; k < FRAMES; k++) {
    sine(in, in_frame, (size_t)k, hz, in_rate, 10000);
    size_t in_n = in_frame, out_n = sizeof tmp / sizeof tmp[0];
    if (ml_resampler_process(r, in, &in_n, tmp, &out_n) != 0) bad++;
    if (in_n != in_frame || out_n != out_frame) bad++;
    if (k >= settle) memcpy(out + (size_t)(k - settle) * out_frame, tmp, out_frame * sizeof *tmp);
  }
  return bad;
}

static void test_up(void)
{
  TEST_BEGIN("8 kHz -> 16 kHz, 1 kHz sine");
  ml_resampler *r = ml_resampler_create(8000, 16000, ML_RESAMPLE_QUALITY);
  CHECK(r != NULL);
  if (!r) return;
  CHECK_EQ(ml_resampler_out_size(r, 160), 320);
  CHECK(ml_resampler_latency(r) > 0 && ml_resampler_latency(r) < 320);
  static int16_t out[FRAMES * 320];
  CHECK_EQ(run(r, 1000, 8000, 160, 320, out, 2), 0);
  size_t n = (FRAMES - 2) * 320; /* 1.96 s at 16 kHz */
  double seconds = (double)n / 16000;
  double hz = crossings(out, n) / 2.0 / seconds;
  CHECK(fabs(hz - 1000) < 5);
  double in_rms = 10000 / sqrt(2), db = 20 * log10(rms(out, n) / in_rms);
  CHECK(fabs(db) < 1.0);
  printf("8k->16k: 1 kHz in, %.1f Hz out, level %+.2f dB, latency %d samples\n", hz, db,
         ml_resampler_latency(r));
  ml_resampler_free(r);
}

static void test_down(void)
{
  TEST_BEGIN("16 kHz -> 8 kHz: 1 kHz kept, 6 kHz removed");
  ml_resampler *r = ml_resampler_create(16000, 8000, ML_RESAMPLE_QUALITY);
  CHECK(r != NULL);
  if (!r) return;
  static int16_t out[FRAMES * 160];
  CHECK_EQ(run(r, 1000, 16000, 320, 160, out, 2), 0);
  size_t n = (FRAMES - 2) * 160;
  double hz = crossings(out, n) / 2.0 / ((double)n / 8000);
  double db = 20 * log10(rms(out, n) / (10000 / sqrt(2)));
  CHECK(fabs(hz - 1000) < 5);
  CHECK(fabs(db) < 1.0);
  /* 6 kHz would alias to 2 kHz without the filter */
  ml_resampler_reset(r);
  CHECK_EQ(run(r, 6000, 16000, 320, 160, out, 2), 0);
  double alias_db = 20 * log10(rms(out, n) / (10000 / sqrt(2)) + 1e-9);
  CHECK(alias_db < -30);
  printf("16k->8k: 1 kHz in, %.1f Hz out, level %+.2f dB; 6 kHz in: %.1f dB\n", hz, db, alias_db);
  ml_resampler_free(r);
}

/* The telephone band passes flat both ways; going down, nothing from 4.2 kHz
 * up folds back into it. */
static void test_band(void)
{
  TEST_BEGIN("band edges: 3.4 kHz flat, 4.2 kHz removed going down");
  ml_resampler *up = ml_resampler_create(8000, 16000, ML_RESAMPLE_QUALITY);
  ml_resampler *down = ml_resampler_create(16000, 8000, ML_RESAMPLE_QUALITY);
  CHECK(up && down);
  if (!up || !down) return;
  static int16_t out[FRAMES * 320];
  double ref = 10000 / sqrt(2);
  CHECK_EQ(run(up, 3400, 8000, 160, 320, out, 2), 0);
  double up_db = 20 * log10(rms(out, (FRAMES - 2) * 320) / ref);
  CHECK_EQ(run(down, 3400, 16000, 320, 160, out, 2), 0);
  double down_db = 20 * log10(rms(out, (FRAMES - 2) * 160) / ref);
  ml_resampler_reset(down);
  CHECK_EQ(run(down, 4200, 16000, 320, 160, out, 2), 0);
  double alias_db = 20 * log10(rms(out, (FRAMES - 2) * 160) / ref + 1e-9);
  CHECK(fabs(up_db) < 0.2);
  CHECK(fabs(down_db) < 0.2);
  CHECK(alias_db < -55);
  printf("3.4 kHz: %+.2f dB up, %+.2f dB down; 4.2 kHz down: %.1f dB\n", up_db, down_db, alias_db);
  ml_resampler_free(up);
  ml_resampler_free(down);
}

/* A silent frame with a silent history is silence out, and the next sound
 * comes out as if the silence had been filtered. */
static void test_silence(void)
{
  TEST_BEGIN("silence skips the filter, exactly");
  ml_resampler *a = ml_resampler_create(8000, 16000, ML_RESAMPLE_QUALITY);
  ml_resampler *b = ml_resampler_create(8000, 16000, ML_RESAMPLE_QUALITY);
  int16_t zero[160] = {0}, in[160], oa[320], ob[320];
  int same = 1;
  for (int k = 0; k < 10; k++) {
    size_t in_n = 160, out_n = 320;
    ml_resampler_process(a, zero, &in_n, oa, &out_n);
    for (int i = 0; i < 320; i++) same &= oa[i] == 0;
  }
  ml_resampler_reset(b);
  for (int k = 0; k < 5; k++) {
    sine(in, 160, (size_t)k, 1000, 8000, 10000);
    size_t na = 160, nb = 160, ma = 320, mb = 320;
    ml_resampler_process(a, in, &na, oa, &ma);
    ml_resampler_process(b, in, &nb, ob, &mb);
    for (int i = 0; i < 320; i++) same &= oa[i] == ob[i];
  }
  CHECK(same);
  ml_resampler_free(a);
  ml_resampler_free(b);
}

static void test_args(void)
{
  TEST_BEGIN("arguments and partial output");
  CHECK(ml_resampler_create(0, 16000, 3) == NULL);
  CHECK(ml_resampler_create(8000, 16000, 11) == NULL);
  CHECK(ml_resampler_create(8000, 16000, -1) == NULL);
  ml_resampler *r = ml_resampler_create(8000, 16000, ML_RESAMPLE_QUALITY);
  int16_t in[160] = {0}, out[320];
  /* room for half the output: half the input is consumed */
  size_t in_n = 160, out_n = 160;
  CHECK_EQ(ml_resampler_process(r, in, &in_n, out, &out_n), 0);
  CHECK_EQ(out_n, 160);
  CHECK_EQ(in_n, 80);
  ml_resampler_free(r);
  ml_resampler_free(NULL);
}

static volatile uint64_t sink;

static void bench(void)
{
  TEST_BEGIN("costs");
  ml_resampler *up = ml_resampler_create(8000, 16000, ML_RESAMPLE_QUALITY);
  ml_resampler *down = ml_resampler_create(16000, 8000, ML_RESAMPLE_QUALITY);
  int16_t in[320], out[320];
  sine(in, 320, 0, 440, 16000, 8000);
  enum { N = 20000 };
  uint64_t t0 = now_ns();
  for (int i = 0; i < N; i++) {
    size_t in_n = 160, out_n = 320;
    ml_resampler_process(up, in, &in_n, out, &out_n);
    sink += (uint64_t)out[i % 320];
  }
  uint64_t t1 = now_ns();
  for (int i = 0; i < N; i++) {
    size_t in_n = 320, out_n = 160;
    ml_resampler_process(down, in, &in_n, out, &out_n);
    sink += (uint64_t)out[i % 160];
  }
  uint64_t t2 = now_ns();
  printf("cost: resample 20 ms frame 8k->16k %.0f ns, 16k->8k %.0f ns (quality %d)\n", (double)(t1 - t0) / N,
         (double)(t2 - t1) / N, ML_RESAMPLE_QUALITY);
  CHECK(1);
  ml_resampler_free(up);
  ml_resampler_free(down);
}

int main(void)
{
  test_up();
  test_down();
  test_band();
  test_silence();
  test_args();
  bench();
  return ML_TEST_DONE("test_resample");
}
