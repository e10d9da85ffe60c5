/* The N−1 room mixer (engine/media/mixer.c): every listener hears exactly
 * the saturated sum of the others (checked against a direct O(N²) mix),
 * saturation, mute, gain, publish-only tracks, silence for who does not
 * publish, join/leave, and a 100-participant room. Prints the cost of a
 * tick for N = 2, 10, 100. */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "mixer.h"
#include "ml_test.h"

static void fill(int16_t *f, int amp)
{
  for (int i = 0; i < ML_MIX_FRAME; i++) f[i] = (int16_t)((int)(rng() % (uint64_t)(2 * amp + 1)) - amp);
}

static int16_t sat(long v) { return (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v); }

/* Mix one tick with random frames (participant i publishes when pub[i]) and
 * compare each listener's output with the direct sum of the others. Returns
 * the number of wrong samples. */
static int check_tick(ml_mixer *m, const int *ids, int n, const int *pub, int amp)
{
  static int16_t frames[128][ML_MIX_FRAME];
  for (int i = 0; i < n; i++) {
    fill(frames[i], amp);
    if (pub[i]) ml_mixer_publish(m, ids[i], frames[i]);
  }
  ml_mixer_mix(m);
  int bad = 0;
  for (int i = 0; i < n; i++) {
    const int16_t *out = ml_mixer_output(m, ids[i]);
    if (!out) {
      bad++;
      continue;
    }
    for (int k = 0; k < ML_MIX_FRAME; k++) {
      long sum = 0;
      for (int j = 0; j < n; j++)
        if (j != i && pub[j]) sum += frames[j][k];
      if (out[k] != sat(sum)) bad++;
    }
  }
  return bad;
}

static void test_n_minus_one(void)
{
  TEST_BEGIN("N-1 mix");
  ml_mixer *m = ml_mixer_create(8);
  int ids[8], pub[8];
  for (int i = 0; i < 5; i++) ids[i] = ml_mixer_join(m, 1), pub[i] = 1;
  CHECK_EQ(ml_mixer_count(m), 5);
  CHECK_EQ(ids[0], 0);
  CHECK_EQ(ids[4], 4);
  /* before any mix: silence */
  const int16_t *o = ml_mixer_output(m, ids[0]);
  int nonzero = 0;
  for (int k = 0; k < ML_MIX_FRAME; k++) nonzero += o[k] != 0;
  CHECK_EQ(nonzero, 0);
  /* small signals: exact sums */
  int bad = 0;
  for (int t = 0; t < 50; t++) bad += check_tick(m, ids, 5, pub, 3000);
  CHECK_EQ(bad, 0);
  /* two of them silent this tick */
  pub[1] = pub[3] = 0;
  CHECK_EQ(check_tick(m, ids, 5, pub, 3000), 0);
  /* a tick where nobody publishes: everybody hears silence */
  ml_mixer_mix(m);
  nonzero = 0;
  for (int i = 0; i < 5; i++)
    for (int k = 0; k < ML_MIX_FRAME; k++) nonzero += ml_mixer_output(m, ids[i])[k] != 0;
  CHECK_EQ(nonzero, 0);
  /* two participants hear exactly each other */
  ml_mixer *two = ml_mixer_create(2);
  int a = ml_mixer_join(two, 1), b = ml_mixer_join(two, 1);
  CHECK_EQ(ml_mixer_join(two, 1), -1); /* full */
  int16_t fa[ML_MIX_FRAME], fb[ML_MIX_FRAME];
  fill(fa, 32767);
  fill(fb, 32767);
  ml_mixer_publish(two, a, fa);
  ml_mixer_publish(two, b, fb);
  ml_mixer_mix(two);
  CHECK(memcmp(ml_mixer_output(two, a), fb, sizeof fb) == 0);
  CHECK(memcmp(ml_mixer_output(two, b), fa, sizeof fa) == 0);
  ml_mixer_free(two);
  ml_mixer_free(m);
}

static void test_saturation(void)
{
  TEST_BEGIN("saturation");
  ml_mixer *m = ml_mixer_create(4);
  int ids[4], pub[4] = {1, 1, 1, 1};
  for (int i = 0; i < 4; i++) ids[i] = ml_mixer_join(m, 1);
  /* full-scale noise: sums overflow int16 often, the reference saturates */
  int bad = 0;
  for (int t = 0; t < 20; t++) bad += check_tick(m, ids, 4, pub, 32767);
  CHECK_EQ(bad, 0);
  /* three at +30000, one at -32768: the 32-bit sum is exact, each hears it
   * minus its own, clipped only then (90000 for the fourth, not wrapped) */
  int16_t loud[ML_MIX_FRAME], neg[ML_MIX_FRAME];
  for (int k = 0; k < ML_MIX_FRAME; k++) loud[k] = 30000, neg[k] = -32768;
  for (int i = 0; i < 3; i++) ml_mixer_publish(m, ids[i], loud);
  ml_mixer_publish(m, ids[3], neg);
  ml_mixer_mix(m);
  CHECK_EQ(ml_mixer_output(m, ids[0])[0], 60000 - 32768);
  CHECK_EQ(ml_mixer_output(m, ids[3])[17], 32767);
  for (int i = 0; i < 3; i++) ml_mixer_publish(m, ids[i], neg);
  ml_mixer_mix(m);
  CHECK_EQ(ml_mixer_output(m, ids[3])[5], -32768);
  ml_mixer_free(m);
}

static void test_mute_gain_tracks(void)
{
  TEST_BEGIN("mute, gain, publish-only tracks, leave");
  ml_mixer *m = ml_mixer_create(4);
  int a = ml_mixer_join(m, 1), b = ml_mixer_join(m, 1), music = ml_mixer_join(m, 0);
  CHECK(ml_mixer_output(m, music) == NULL);
  int16_t fa[ML_MIX_FRAME], fb[ML_MIX_FRAME], fm[ML_MIX_FRAME];
  for (int k = 0; k < ML_MIX_FRAME; k++) fa[k] = 1000, fb[k] = 2000, fm[k] = (int16_t)(k - 160);
  /* muted a still hears b and the music; b hears only the music */
  ml_mixer_set_mute(m, a, 1);
  ml_mixer_publish(m, a, fa);
  ml_mixer_publish(m, b, fb);
  ml_mixer_publish(m, music, fm);
  ml_mixer_mix(m);
  CHECK_EQ(ml_mixer_output(m, a)[0], 2000 - 160);
  CHECK_EQ(ml_mixer_output(m, b)[0], -160);
  CHECK_EQ(ml_mixer_output(m, b)[200], 40);
  /* unmuted at half gain, music at 2×: b hears 500 + 2 × music */
  ml_mixer_set_mute(m, a, 0);
  ml_mixer_set_gain(m, a, 0.5f);
  ml_mixer_set_gain(m, music, 2.0f);
  ml_mixer_publish(m, a, fa);
  ml_mixer_publish(m, b, fb);
  ml_mixer_publish(m, music, fm);
  ml_mixer_mix(m);
  CHECK_EQ(ml_mixer_output(m, b)[0], 500 - 320);
  CHECK_EQ(ml_mixer_output(m, a)[0], 2000 - 320);
  CHECK_EQ(ml_mixer_output(m, a)[300], 2000 + 280);
  /* a gain that overflows saturates the contribution itself */
  ml_mixer_set_gain(m, music, 8.0f);
  for (int k = 0; k < ML_MIX_FRAME; k++) fm[k] = 20000;
  ml_mixer_publish(m, music, fm);
  ml_mixer_mix(m);
  CHECK_EQ(ml_mixer_output(m, a)[0], 32767);
  ml_mixer_set_gain(m, music, 0.0f); /* zero gain: like a mute */
  ml_mixer_publish(m, music, fm);
  ml_mixer_mix(m);
  CHECK_EQ(ml_mixer_output(m, a)[0], 0);
  /* leave: the slot is reused, starts silent and unmuted at unity gain */
  ml_mixer_leave(m, a);
  CHECK(ml_mixer_output(m, a) == NULL);
  CHECK_EQ(ml_mixer_count(m), 2);
  ml_mixer_publish(m, a, fa); /* ignored */
  int c = ml_mixer_join(m, 1);
  CHECK_EQ(c, a);
  CHECK_EQ(ml_mixer_output(m, c)[0], 0);
  ml_mixer_publish(m, c, fa);
  ml_mixer_mix(m);
  CHECK_EQ(ml_mixer_output(m, b)[0], 1000);
  ml_mixer_leave(m, -1);
  ml_mixer_leave(m, 99);
  CHECK(ml_mixer_create(0) == NULL);
  ml_mixer_free(m);
  ml_mixer_free(NULL);
}

static void test_big_room(void)
{
  TEST_BEGIN("100 participants");
  ml_mixer *m = ml_mixer_create(100);
  int ids[100], pub[100];
  for (int i = 0; i < 100; i++) ids[i] = ml_mixer_join(m, 1), pub[i] = i % 3 != 0;
  CHECK_EQ(ml_mixer_join(m, 1), -1);
  /* amplitude 500 × 66 publishers stays below full scale: exact */
  CHECK_EQ(check_tick(m, ids, 100, pub, 500), 0);
  /* and with loud ones: saturating */
  CHECK_EQ(check_tick(m, ids, 100, pub, 20000), 0);
  ml_mixer_free(m);
}

static volatile uint64_t sink;

static double bench_n(int n)
{
  ml_mixer *m = ml_mixer_create((uint32_t)n);
  static int16_t frames[100][ML_MIX_FRAME];
  for (int i = 0; i < n; i++) {
    ml_mixer_join(m, 1);
    fill(frames[i], 3000);
  }
  int iters = 200000 / n;
  uint64_t t0 = now_ns();
  for (int t = 0; t < iters; t++) {
    for (int i = 0; i < n; i++) ml_mixer_publish(m, i, frames[i]);
    ml_mixer_mix(m);
    sink += (uint64_t)ml_mixer_output(m, t % n)[t % ML_MIX_FRAME];
  }
  double ns = (double)(now_ns() - t0) / iters;
  ml_mixer_free(m);
  return ns;
}

static void bench(void)
{
  TEST_BEGIN("costs");
  double n2 = bench_n(2), n10 = bench_n(10), n100 = bench_n(100);
  printf(
      "cost: mix tick (20 ms at 16 kHz, publish + mix) N=2 %.0f ns, N=10 %.0f ns, N=100 %.0f ns (%.0f ns per "
      "participant)\n",
      n2, n10, n100, n100 / 100);
  CHECK(1);
}

int main(void)
{
  const char *seed = getenv("ML_TEST_SEED");
  if (seed) ml_test_rng_state = strtoull(seed, NULL, 0) | 1;
  test_n_minus_one();
  test_saturation();
  test_mute_gain_tracks();
  test_big_room();
  bench();
  return ML_TEST_DONE("test_mixer");
}
