/* G.711 µ-law and A-law. See g711.h.
 *
 * The decode tables hold the middle of each code's quantisation step, as
 * G.191's expanders compute it (µ-law: ±32124 at most, A-law: ±32256). */
#include "g711.h"

const int16_t ml_ulaw_decode_table[256] = {
    -32124, -31100, -30076, -29052, -28028, -27004, -25980, -24956, -23932, -22908, -21884, -20860, -19836,
    -18812, -17788, -16764, -15996, -15484, -14972, -14460, -13948, -13436, -12924, -12412, -11900, -11388,
    -10876, -10364, -9852,  -9340,  -8828,  -8316,  -7932,  -7676,  -7420,  -7164,  -6908,  -6652,  -6396,
    -6140,  -5884,  -5628,  -5372,  -5116,  -4860,  -4604,  -4348,  -4092,  -3900,  -3772,  -3644,  -3516,
    -3388,  -3260,  -3132,  -3004,  -2876,  -2748,  -2620,  -2492,  -2364,  -2236,  -2108,  -1980,  -1884,
    -1820,  -1756,  -1692,  -1628,  -1564,  -1500,  -1436,  -1372,  -1308,  -1244,  -1180,  -1116,  -1052,
    -988,   -924,   -876,   -844,   -812,   -780,   -748,   -716,   -684,   -652,   -620,   -588,   -556,
    -524,   -492,   -460,   -428,   -396,   -372,   -356,   -340,   -324,   -308,   -292,   -276,   -260,
    -244,   -228,   -212,   -196,   -180,   -164,   -148,   -132,   -120,   -112,   -104,   -96,    -88,
    -80,    -72,    -64,    -56,    -48,    -40,    -32,    -24,    -16,    -8,     0,      32124,  31100,
    30076,  29052,  28028,  27004,  25980,  24956,  23932,  22908,  21884,  20860,  19836,  18812,  17788,
    16764,  15996,  15484,  14972,  14460,  13948,  13436,  12924,  12412,  11900,  11388,  10876,  10364,
    9852,   9340,   8828,   8316,   7932,   7676,   7420,   7164,   6908,   6652,   6396,   6140,   5884,
    5628,   5372,   5116,   4860,   4604,   4348,   4092,   3900,   3772,   3644,   3516,   3388,   3260,
    3132,   3004,   2876,   2748,   2620,   2492,   2364,   2236,   2108,   1980,   1884,   1820,   1756,
    1692,   1628,   1564,   1500,   1436,   1372,   1308,   1244,   1180,   1116,   1052,   988,    924,
    876,    844,    812,    780,    748,    716,    684,    652,    620,    588,    556,    524,    492,
    460,    428,    396,    372,    356,    340,    324,    308,    292,    276,    260,    244,    228,
    212,    196,    180,    164,    148,    132,    120,    112,    104,    96,     88,     80,     72,
    64,     56,     48,     40,     32,     24,     16,     8,      0,
};

const int16_t ml_alaw_decode_table[256] = {
    -5504,  -5248,  -6016,  -5760,  -4480,  -4224,  -4992,  -4736,  -7552,  -7296,  -8064,  -7808,  -6528,
    -6272,  -7040,  -6784,  -2752,  -2624,  -3008,  -2880,  -2240,  -2112,  -2496,  -2368,  -3776,  -3648,
    -4032,  -3904,  -3264,  -3136,  -3520,  -3392,  -22016, -20992, -24064, -23040, -17920, -16896, -19968,
    -18944, -30208, -29184, -32256, -31232, -26112, -25088, -28160, -27136, -11008, -10496, -12032, -11520,
    -8960,  -8448,  -9984,  -9472,  -15104, -14592, -16128, -15616, -13056, -12544, -14080, -13568, -344,
    -328,   -376,   -360,   -280,   -264,   -312,   -296,   -472,   -456,   -504,   -488,   -408,   -392,
    -440,   -424,   -88,    -72,    -120,   -104,   -24,    -8,     -56,    -40,    -216,   -200,   -248,
    -232,   -152,   -136,   -184,   -168,   -1376,  -1312,  -1504,  -1440,  -1120,  -1056,  -1248,  -1184,
    -1888,  -1824,  -2016,  -1952,  -1632,  -1568,  -1760,  -1696,  -688,   -656,   -752,   -720,   -560,
    -528,   -624,   -592,   -944,   -912,   -1008,  -976,   -816,   -784,   -880,   -848,   5504,   5248,
    6016,   5760,   4480,   4224,   4992,   4736,   7552,   7296,   8064,   7808,   6528,   6272,   7040,
    6784,   2752,   2624,   3008,   2880,   2240,   2112,   2496,   2368,   3776,   3648,   4032,   3904,
    3264,   3136,   3520,   3392,   22016,  20992,  24064,  23040,  17920,  16896,  19968,  18944,  30208,
    29184,  32256,  31232,  26112,  25088,  28160,  27136,  11008,  10496,  12032,  11520,  8960,   8448,
    9984,   9472,   15104,  14592,  16128,  15616,  13056,  12544,  14080,  13568,  344,    328,    376,
    360,    280,    264,    312,    296,    472,    456,    504,    488,    408,    392,    440,    424,
    88,     72,     120,    104,    24,     8,      56,     40,     216,    200,    248,    232,    152,
    136,    184,    168,    1376,   1312,   1504,   1440,   1120,   1056,   1248,   1184,   1888,   1824,
    2016,   1952,   1632,   1568,   1760,   1696,   688,    656,    752,    720,    560,    528,    624,
    592,    944,    912,    1008,   976,    816,    784,    880,    848,
};

/* Encoding follows ITU-T G.191's reference: µ-law works on the top 14 bits,
 * A-law on the top 12, negatives in one's complement (~x), so a code depends
 * only on x >> 2 (µ-law) or x >> 4 (A-law) and one lookup in a 16 KB / 4 KB
 * table replaces the segment search: 4-5× faster per frame than the search
 * with its data-dependent shift, and a speech frame only touches a few lines
 * of the table. The tables are built from the search below at load time. */
static uint8_t ulaw_table[1 << 14], alaw_table[1 << 12];

/* µ-law of a 14-bit magnitude: bias 33, the segment is where the top bit is */
static uint8_t ulaw_search(int mag, int negative)
{
  int v = (mag > 0x1fff - 33 ? 0x1fff - 33 : mag) + 33;
  int seg = 31 - __builtin_clz((unsigned)v) - 5; /* v >= 33: top bit 5..12 */
  if (seg < 0) seg = 0;
  uint8_t code = (uint8_t)(seg << 4 | ((v >> (seg + 1)) & 0x0f));
  return (uint8_t)(code ^ (negative ? 0x7f : 0xff));
}

/* A-law of a 12-bit magnitude: a linear first segment, then one per octave */
static uint8_t alaw_search(int mag, int negative)
{
  int code = mag;
  if (mag > 15) {
    int seg = 31 - __builtin_clz((unsigned)mag) - 3; /* 16..31 -> 1, ..., 1024..2047 -> 7 */
    code = seg << 4 | ((mag >> (seg - 1)) & 0x0f);
  }
  return (uint8_t)(code ^ (negative ? 0x55 : 0xd5));
}

__attribute__((constructor)) static void g711_tables_build(void)
{
  for (int i = 0; i < 1 << 14; i++) {
    int x = (int16_t)(uint16_t)(i << 2) >> 2; /* the 14-bit signed value */
    ulaw_table[i] = ulaw_search(x < 0 ? ~x : x, x < 0);
  }
  for (int i = 0; i < 1 << 12; i++) {
    int x = (int16_t)(uint16_t)(i << 4) >> 4;
    alaw_table[i] = alaw_search(x < 0 ? ~x : x, x < 0);
  }
}

static inline uint8_t ulaw_encode1(int16_t x) { return ulaw_table[(uint16_t)x >> 2]; }
static inline uint8_t alaw_encode1(int16_t x) { return alaw_table[(uint16_t)x >> 4]; }

uint8_t ml_ulaw_from_linear(int16_t x) { return ulaw_encode1(x); }
uint8_t ml_alaw_from_linear(int16_t x) { return alaw_encode1(x); }

void ml_ulaw_encode(uint8_t *out, const int16_t *in, size_t n)
{
  for (size_t i = 0; i < n; i++) out[i] = ulaw_encode1(in[i]);
}

void ml_ulaw_decode(int16_t *out, const uint8_t *in, size_t n)
{
  for (size_t i = 0; i < n; i++) out[i] = ml_ulaw_decode_table[in[i]];
}

void ml_alaw_encode(uint8_t *out, const int16_t *in, size_t n)
{
  for (size_t i = 0; i < n; i++) out[i] = alaw_encode1(in[i]);
}

void ml_alaw_decode(int16_t *out, const uint8_t *in, size_t n)
{
  for (size_t i = 0; i < n; i++) out[i] = ml_alaw_decode_table[in[i]];
}
