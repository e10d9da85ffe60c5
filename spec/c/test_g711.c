/* G.711 µ-law and A-law (engine/media/g711.c): known code points, the error
 * of decode(encode(x)) over every int16, monotonicity, code round trips and
 * the frame helpers. Prints the cost of a 20 ms frame each way. */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "g711.h"
#include "ml_test.h"

static void test_known_values(void)
{
  TEST_BEGIN("known values");
  /* µ-law: 0xFF is +0, 0x7F is -0, 0x80/0x00 the extremes */
  CHECK_EQ(ml_ulaw_from_linear(0), 0xff);
  CHECK_EQ(ml_ulaw_from_linear(-1), 0x7f);
  CHECK_EQ(ml_ulaw_from_linear(32767), 0x80);
  CHECK_EQ(ml_ulaw_from_linear(-32768), 0x00);
  CHECK_EQ(ml_ulaw_to_linear(0xff), 0);
  CHECK_EQ(ml_ulaw_to_linear(0x7f), 0);
  CHECK_EQ(ml_ulaw_to_linear(0x80), 32124);
  CHECK_EQ(ml_ulaw_to_linear(0x00), -32124);
  CHECK_EQ(ml_ulaw_to_linear(0xfe), 8);
  CHECK_EQ(ml_ulaw_to_linear(0xef), 132); /* first step of segment 1 */
  CHECK_EQ(ml_ulaw_from_linear(1000), 0xce);
  CHECK_EQ(ml_ulaw_to_linear(0xce), 988);
  CHECK_EQ(ml_ulaw_from_linear(-1000), 0x4e);
  /* A-law: 0xD5 / 0x55 are the smallest steps, 0xAA / 0x2A the extremes */
  CHECK_EQ(ml_alaw_from_linear(0), 0xd5);
  CHECK_EQ(ml_alaw_from_linear(-1), 0x55);
  CHECK_EQ(ml_alaw_from_linear(32767), 0xaa);
  CHECK_EQ(ml_alaw_from_linear(-32768), 0x2a);
  CHECK_EQ(ml_alaw_to_linear(0xd5), 8);
  CHECK_EQ(ml_alaw_to_linear(0x55), -8);
  CHECK_EQ(ml_alaw_to_linear(0xaa), 32256);
  CHECK_EQ(ml_alaw_to_linear(0x2a), -32256);
  CHECK_EQ(ml_alaw_from_linear(1000), 0xfa);
  CHECK_EQ(ml_alaw_to_linear(0xfa), 1008);
  CHECK_EQ(ml_alaw_from_linear(-1000), 0x7a);
  /* silence fills: what a PCMU/PCMA comfort frame is made of */
  CHECK_EQ(ml_ulaw_to_linear(ml_ulaw_from_linear(0)), 0);
  CHECK_EQ(ml_alaw_to_linear(ml_alaw_from_linear(0)), 8);
}

/* Half a quantisation step in the segment of |x| (16-bit scale), plus the
 * clipping above each law's largest level. */
static int ulaw_bound(int x)
{
  int a = x < 0 ? -x : x;
  if (a > 32635) return a - 32124 + 1;
  return (a + 132) / 32 + 1;
}

static int alaw_bound(int x)
{
  int a = x < 0 ? -x : x;
  return a / 32 > 8 ? a / 32 + 1 : 9;
}

static void test_error_bounds(void)
{
  TEST_BEGIN("decode(encode(x)) over all int16");
  int u_bad = 0, a_bad = 0, u_mono = 0, a_mono = 0, u_max = 0, a_max = 0;
  int u_prev = -32768 - 1, a_prev = -32768 - 1;
  for (int x = -32768; x <= 32767; x++) {
    int u = ml_ulaw_to_linear(ml_ulaw_from_linear((int16_t)x));
    int a = ml_alaw_to_linear(ml_alaw_from_linear((int16_t)x));
    int ue = abs(u - x), ae = abs(a - x);
    if (ue > ulaw_bound(x)) u_bad++;
    if (ae > alaw_bound(x)) a_bad++;
    if (ue > u_max) u_max = ue;
    if (ae > a_max) a_max = ae;
    if (u < u_prev) u_mono++;
    if (a < a_prev) a_mono++;
    u_prev = u, a_prev = a;
  }
  CHECK_EQ(u_bad, 0);
  CHECK_EQ(a_bad, 0);
  CHECK_EQ(u_mono, 0); /* companding keeps the order */
  CHECK_EQ(a_mono, 0);
  CHECK(u_max <= 644); /* 32767 -> 32124 */
  CHECK(a_max <= 512);
  /* small signals are near exact */
  int small = 0;
  for (int x = -100; x <= 100; x++) {
    if (abs(ml_ulaw_to_linear(ml_ulaw_from_linear((int16_t)x)) - x) > 4) small++;
    if (abs(ml_alaw_to_linear(ml_alaw_from_linear((int16_t)x)) - x) > 8) small++;
  }
  CHECK_EQ(small, 0);
}

/* every code decodes to a value that encodes back to the same code (µ-law's
 * -0 excepted: it decodes to 0, which is +0) */
static void test_code_roundtrip(void)
{
  TEST_BEGIN("encode(decode(c)) == c");
  int u_bad = 0, a_bad = 0;
  for (int c = 0; c < 256; c++) {
    if (c != 0x7f && ml_ulaw_from_linear(ml_ulaw_to_linear((uint8_t)c)) != c) u_bad++;
    if (ml_alaw_from_linear(ml_alaw_to_linear((uint8_t)c)) != c) a_bad++;
  }
  CHECK_EQ(u_bad, 0);
  CHECK_EQ(a_bad, 0);
  /* the tables are odd-symmetric: the sign bit only flips the sign */
  int sym = 0;
  for (int c = 0; c < 128; c++) {
    if (ml_ulaw_to_linear((uint8_t)c) != -ml_ulaw_to_linear((uint8_t)(c | 0x80))) sym++;
    if (ml_alaw_to_linear((uint8_t)c) != -ml_alaw_to_linear((uint8_t)(c | 0x80))) sym++;
  }
  CHECK_EQ(sym, 0);
}

static void test_frames(void)
{
  TEST_BEGIN("frame helpers");
  int16_t pcm[240], back[240];
  uint8_t enc[240];
  for (int i = 0; i < 240; i++) pcm[i] = (int16_t)((i * 2731) % 65536 - 32768);
  ml_ulaw_encode(enc, pcm, 240);
  int bad = 0;
  for (int i = 0; i < 240; i++)
    if (enc[i] != ml_ulaw_from_linear(pcm[i])) bad++;
  ml_ulaw_decode(back, enc, 240);
  for (int i = 0; i < 240; i++)
    if (back[i] != ml_ulaw_to_linear(enc[i])) bad++;
  ml_alaw_encode(enc, pcm, 240);
  for (int i = 0; i < 240; i++)
    if (enc[i] != ml_alaw_from_linear(pcm[i])) bad++;
  ml_alaw_decode(back, enc, 240);
  for (int i = 0; i < 240; i++)
    if (back[i] != ml_alaw_to_linear(enc[i])) bad++;
  CHECK_EQ(bad, 0);
  /* n = 0 touches nothing */
  enc[0] = 0x42;
  ml_ulaw_encode(enc, pcm, 0);
  CHECK_EQ(enc[0], 0x42);
}

static volatile uint64_t sink;

static void bench(void)
{
  TEST_BEGIN("costs");
  int16_t pcm[160], back[160];
  uint8_t enc[160];
  for (int i = 0; i < 160; i++) pcm[i] = (int16_t)(((i * 7919) % 20000) - 10000);
  enum { N = 200000 };
  uint64_t t0 = now_ns();
  for (int i = 0; i < N; i++) {
    pcm[i % 160] ^= 1;
    ml_ulaw_encode(enc, pcm, 160);
    sink += enc[i % 160];
  }
  uint64_t t1 = now_ns();
  for (int i = 0; i < N; i++) {
    enc[i % 160] ^= 1;
    ml_ulaw_decode(back, enc, 160);
    sink += (uint64_t)back[i % 160];
  }
  uint64_t t2 = now_ns();
  for (int i = 0; i < N; i++) {
    pcm[i % 160] ^= 1;
    ml_alaw_encode(enc, pcm, 160);
    sink += enc[i % 160];
  }
  uint64_t t3 = now_ns();
  for (int i = 0; i < N; i++) {
    enc[i % 160] ^= 1;
    ml_alaw_decode(back, enc, 160);
    sink += (uint64_t)back[i % 160];
  }
  uint64_t t4 = now_ns();
  printf("cost: 20 ms G.711 frame (160 samples): ulaw encode %.0f ns, decode %.0f ns; alaw encode %.0f ns, "
         "decode %.0f ns\n",
         (double)(t1 - t0) / N, (double)(t2 - t1) / N, (double)(t3 - t2) / N, (double)(t4 - t3) / N);
  CHECK(1);
}

int main(void)
{
  test_known_values();
  test_error_bounds();
  test_code_roundtrip();
  test_frames();
  bench();
  return ML_TEST_DONE("test_g711");
}
