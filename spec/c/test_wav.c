/* WAV reading (engine/media/wav.c), from images built in memory: 16-bit PCM
 * mono (exact) and stereo (the average), 8 kHz µ-law and A-law (within
 * G.711's error, resampled to 16 kHz: twice as long, same pitch, same
 * level), WAVE_FORMAT_EXTENSIBLE, an odd-sized chunk (padding byte), chunks
 * after the data, a truncated data chunk; every refusal with its message;
 * and ml_wav_load on a real file, a missing one and one over the size
 * limit (a sparse file), each error naming the path. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "g711.h"
#include "ml_test.h"
#include "resample.h"
#include "wav.h"

/* ---- building images -------------------------------------------------------- */

typedef struct img {
  uint8_t *b;
  size_t n, cap;
} img;

static void put(img *m, const void *p, size_t n)
{
  if (m->n + n > m->cap) {
    m->cap = (m->n + n) * 2 + 64;
    m->b = realloc(m->b, m->cap);
    if (!m->b) abort();
  }
  memcpy(m->b + m->n, p, n);
  m->n += n;
}

static void put16(img *m, uint16_t v)
{
  uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
  put(m, b, 2);
}

static void put32(img *m, uint32_t v)
{
  uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  put(m, b, 4);
}

static void chunk(img *m, const char *tag, const void *body, uint32_t n)
{
  put(m, tag, 4);
  put32(m, n);
  put(m, body, n);
  if (n & 1) put(m, "", 1); /* the pad byte */
}

static void riff(img *m)
{
  m->n = 0;
  put(m, "RIFF", 4);
  put32(m, 0); /* patched by done() */
  put(m, "WAVE", 4);
}

static void done(img *m)
{
  uint32_t v = (uint32_t)(m->n - 8);
  uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  memcpy(m->b + 4, b, 4);
}

static void fmt_chunk(img *m, uint16_t format, uint16_t channels, uint32_t rate, uint16_t bits)
{
  img f = {0};
  put16(&f, format);
  put16(&f, channels);
  put32(&f, rate);
  put32(&f, rate * channels * (bits / 8)); /* byte rate */
  put16(&f, (uint16_t)(channels * (bits / 8))); /* block align */
  put16(&f, bits);
  chunk(m, "fmt ", f.b, (uint32_t)f.n);
  free(f.b);
}

/* a whole file: fmt + data */
static void wav(img *m, uint16_t format, uint16_t channels, uint32_t rate, uint16_t bits, const void *data,
                uint32_t len)
{
  riff(m);
  fmt_chunk(m, format, channels, rate, bits);
  chunk(m, "data", data, len);
  done(m);
}

static void le16s(uint8_t *out, const int16_t *s, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = (uint8_t)s[i];
    out[2 * i + 1] = (uint8_t)((uint16_t)s[i] >> 8);
  }
}

static void tone(int16_t *s, size_t n, double hz, double rate, double amp)
{
  for (size_t i = 0; i < n; i++) s[i] = (int16_t)lrint(amp * sin(2 * M_PI * hz * (double)i / rate));
}

static long crossings(const int16_t *s, size_t from, size_t to)
{
  long c = 0;
  for (size_t i = from + 1; i < to; i++) c += (s[i - 1] < 0) != (s[i] < 0);
  return c;
}

static double rms(const int16_t *s, size_t n)
{
  double sq = 0;
  for (size_t i = 0; i < n; i++) sq += (double)s[i] * s[i];
  return sqrt(sq / (double)n);
}

static char err[256];

static int decode(const img *m, uint32_t rate, int16_t **out, size_t *n)
{
  err[0] = '\0';
  return ml_wav_decode(m->b, m->n, rate, out, n, err, sizeof err);
}

/* decoding fails with a message containing `want`, and leaves nothing behind */
static void refused(const img *m, const char *want)
{
  int16_t *out = (int16_t *)&out; /* not NULL: must be reset */
  size_t n = 12345;
  int rc = decode(m, 16000, &out, &n);
  CHECK_EQ(rc, -1);
  CHECK(out == NULL);
  CHECK_EQ(n, 0);
  if (!strstr(err, want)) {
    fprintf(stderr, "[%s] expected an error with \"%s\", got \"%s\"\n", ml_test_current, want, err);
    CHECK(0);
  }
  free(rc == 0 ? out : NULL);
}

/* ---- decoding ------------------------------------------------------------------ */

static void test_pcm(void)
{
  TEST_BEGIN("pcm mono");
  enum { N = 5000 };
  static int16_t s[N];
  static uint8_t raw[2 * N];
  for (int i = 0; i < N; i++) s[i] = (int16_t)rng();
  s[0] = -32768;
  s[1] = 32767;
  s[2] = 0;
  le16s(raw, s, N);
  img m = {0};
  wav(&m, 1, 1, 16000, 16, raw, sizeof raw);
  int16_t *out;
  size_t n;
  CHECK_EQ(decode(&m, 16000, &out, &n), 0);
  CHECK_EQ(n, N);
  CHECK(out && memcmp(out, s, sizeof s) == 0);
  free(out);

  /* an odd byte at the end of the data is not a sample */
  wav(&m, 1, 1, 16000, 16, raw, 2 * 10 + 1);
  CHECK_EQ(decode(&m, 16000, &out, &n), 0);
  CHECK_EQ(n, 10);
  CHECK(memcmp(out, s, 10 * sizeof *s) == 0);
  free(out);

  /* an empty data chunk: no samples, not an error */
  wav(&m, 1, 1, 16000, 16, raw, 0);
  CHECK_EQ(decode(&m, 16000, &out, &n), 0);
  CHECK_EQ(n, 0);
  free(out);
  wav(&m, 1, 1, 44100, 16, raw, 0); /* nothing to resample either */
  CHECK_EQ(decode(&m, 16000, &out, &n), 0);
  CHECK_EQ(n, 0);
  free(out);
  free(m.b);
}

static void test_stereo(void)
{
  TEST_BEGIN("pcm stereo");
  enum { N = 3000 };
  static int16_t lr[2 * N];
  static uint8_t raw[4 * N];
  for (int i = 0; i < 2 * N; i++) lr[i] = (int16_t)rng();
  lr[0] = lr[1] = 32767; /* no overflow in the sum */
  lr[2] = lr[3] = -32768;
  lr[4] = 32767, lr[5] = -32768;
  le16s(raw, lr, 2 * N);
  img m = {0};
  wav(&m, 1, 2, 16000, 16, raw, sizeof raw);
  int16_t *out;
  size_t n;
  CHECK_EQ(decode(&m, 16000, &out, &n), 0);
  CHECK_EQ(n, N);
  int bad = 0;
  for (int i = 0; i < N; i++) bad += out[i] != ((int)lr[2 * i] + lr[2 * i + 1]) / 2;
  CHECK_EQ(bad, 0);
  CHECK_EQ(out[0], 32767);
  CHECK_EQ(out[1], -32768);
  CHECK(out[2] == 0 || out[2] == -1);
  free(out);
  /* a half frame at the end (one channel's sample) is dropped */
  wav(&m, 1, 2, 16000, 16, raw, 4 * 7 + 2);
  CHECK_EQ(decode(&m, 16000, &out, &n), 0);
  CHECK_EQ(n, 7);
  free(out);
  free(m.b);
}

/* 8 kHz G.711: the samples as G.711 decodes them at 8 kHz, and at 16 kHz
 * the same tone, twice as many samples, same level */
static void check_g711(int alaw)
{
  enum { N = 8000 }; /* one second */
  static int16_t s[N];
  static uint8_t codes[N];
  tone(s, N, 500, 8000, 12000);
  if (alaw)
    ml_alaw_encode(codes, s, N);
  else
    ml_ulaw_encode(codes, s, N);
  img m = {0};
  wav(&m, alaw ? 6 : 7, 1, 8000, 8, codes, N);
  int16_t *out;
  size_t n;
  CHECK_EQ(decode(&m, 8000, &out, &n), 0);
  CHECK_EQ(n, N);
  int bad = 0, far = 0;
  for (int i = 0; i < N; i++) {
    bad += out[i] != (alaw ? ml_alaw_to_linear(codes[i]) : ml_ulaw_to_linear(codes[i]));
    /* G.711's step is at most 1/16 of the magnitude (plus the small steps near 0) */
    far += abs(out[i] - s[i]) > abs(s[i]) / 16 + 16;
  }
  CHECK_EQ(bad, 0);
  CHECK_EQ(far, 0);
  free(out);

  CHECK_EQ(decode(&m, 16000, &out, &n), 0);
  CHECK_EQ(n, 2 * N);
  if (n == 2 * N) {
    /* pitch: 500 Hz, counted away from the edges (the filter's ramp) */
    long c = crossings(out, 1000, 15000); /* 0.875 s */
    CHECK(labs(c - 875) <= 2);
    double at = goertzel(out + 1000, 14000, 500, 16000), off = goertzel(out + 1000, 14000, 540, 16000);
    CHECK(at > 1000 * off);
    /* no energy folded up to 8 kHz - 500 Hz (an image of the tone) */
    CHECK(at > 1000 * goertzel(out + 1000, 14000, 7500, 16000));
    /* level: the same RMS as the original */
    double want = 12000 / sqrt(2), got = rms(out + 1000, 14000);
    CHECK(fabs(got - want) < want * 0.03);
    /* time-aligned: the output at 2i is the input at i (the filter's delay
     * is taken out), i.e. the best match is at lag 0 */
    int best = 99;
    double best_d = 1e300;
    for (int lag = -15; lag <= 15; lag++) { /* under half a period */
      double d = 0;
      for (int i = 500; i < 7500; i++) d += fabs((double)out[2 * i + lag] - s[i]);
      if (d < best_d) best_d = d, best = lag;
    }
    CHECK_EQ(best, 0);
    CHECK(best_d / 7000 < 300);
    /* ... up to both ends: the clip starts at once and ends whole */
    double head = 0, tail = 0;
    for (int i = 0; i < 20; i++) head += fabs((double)out[2 * i] - s[i]);
    for (int i = N - 20; i < N; i++) tail += fabs((double)out[2 * i] - s[i]);
    CHECK(head / 20 < 1500);
    CHECK(tail / 20 < 1500);
  }
  free(out);
  free(m.b);
}

static void test_g711(void)
{
  TEST_BEGIN("µ-law 8 kHz");
  check_g711(0);
  TEST_BEGIN("A-law 8 kHz");
  check_g711(1);
  /* stereo µ-law: the average of the decoded channels */
  TEST_BEGIN("µ-law stereo");
  uint8_t codes[4] = {0x80, 0x00, 0xce, 0xff};
  img m = {0};
  wav(&m, 7, 2, 8000, 8, codes, 4);
  int16_t *out;
  size_t n;
  CHECK_EQ(decode(&m, 8000, &out, &n), 0);
  CHECK_EQ(n, 2);
  CHECK_EQ(out[0], 0);
  CHECK_EQ(out[1], 988 / 2);
  free(out);
  free(m.b);
}

/* other rates: 44.1 kHz and 48 kHz PCM down to 16 kHz, 16 kHz up to 48 kHz */
static void test_rates(void)
{
  TEST_BEGIN("other rates");
  const uint32_t rates[][2] = {{44100, 16000}, {48000, 16000}, {16000, 8000}, {8000, 48000}, {22050, 16000}};
  for (size_t k = 0; k < sizeof rates / sizeof *rates; k++) {
    uint32_t in = rates[k][0], outr = rates[k][1];
    size_t len = in; /* one second */
    int16_t *s = malloc(len * sizeof *s);
    uint8_t *raw = malloc(2 * len);
    tone(s, len, 1000, in, 10000);
    le16s(raw, s, len);
    img m = {0};
    wav(&m, 1, 1, in, 16, raw, (uint32_t)(2 * len));
    int16_t *out;
    size_t n;
    CHECK_EQ(decode(&m, outr, &out, &n), 0);
    CHECK_EQ(n, outr);
    if (n == outr) {
      long c = crossings(out, outr / 10, outr - outr / 10); /* 0.8 s */
      CHECK(labs(c - 1600) <= 2);
      double r = rms(out + outr / 10, outr * 8 / 10);
      CHECK(fabs(r - 10000 / sqrt(2)) < 10000 / sqrt(2) * 0.03);
      /* a cosine starts at its peak: so does the output, not after the
       * filter's delay (a looped clip would have a gap at every wrap) */
      int16_t *cs = malloc(len * sizeof *cs);
      for (size_t i = 0; i < len; i++) cs[i] = (int16_t)lrint(10000 * cos(2 * M_PI * 1000 * (double)i / in));
      le16s(raw, cs, len);
      wav(&m, 1, 1, in, 16, raw, (uint32_t)(2 * len));
      free(out);
      CHECK_EQ(decode(&m, outr, &out, &n), 0);
      CHECK_EQ(n, outr);
      CHECK(out[0] > 5000 && out[1] > 5000);
      free(cs);
    }
    free(out);
    free(m.b);
    free(raw);
    free(s);
  }
}

static void test_layouts(void)
{
  TEST_BEGIN("extensible");
  int16_t s[64];
  uint8_t raw[128];
  for (int i = 0; i < 64; i++) s[i] = (int16_t)(i * 1000 - 30000);
  le16s(raw, s, 64);
  static const uint8_t guid_tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                        0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};
  img m = {0}, f = {0};
  /* WAVE_FORMAT_EXTENSIBLE, 40-byte fmt, PCM sub-format */
  riff(&m);
  put16(&f, 0xFFFE);
  put16(&f, 1);
  put32(&f, 16000);
  put32(&f, 32000);
  put16(&f, 2);
  put16(&f, 16);
  put16(&f, 22); /* cbSize */
  put16(&f, 16); /* valid bits */
  put32(&f, 4); /* channel mask: front centre */
  put16(&f, 1); /* sub-format: PCM */
  put(&f, guid_tail, sizeof guid_tail);
  CHECK_EQ(f.n, 40);
  chunk(&m, "fmt ", f.b, (uint32_t)f.n);
  chunk(&m, "data", raw, sizeof raw);
  done(&m);
  int16_t *out;
  size_t n;
  CHECK_EQ(decode(&m, 16000, &out, &n), 0);
  CHECK_EQ(n, 64);
  CHECK(out && memcmp(out, s, sizeof s) == 0);
  free(out);
  /* µ-law as the sub-format */
  f.b[24] = 7;
  f.b[14] = 8; /* bits */
  riff(&m);
  chunk(&m, "fmt ", f.b, (uint32_t)f.n);
  chunk(&m, "data", "\xff\x80", 2);
  done(&m);
  CHECK_EQ(decode(&m, 16000, &out, &n), 0);
  CHECK_EQ(n, 2);
  if (n == 2) CHECK(out[0] == 0 && out[1] == 32124);
  free(out);
  /* IEEE float as the sub-format: refused */
  f.b[24] = 3;
  f.b[14] = 32;
  riff(&m);
  chunk(&m, "fmt ", f.b, (uint32_t)f.n);
  chunk(&m, "data", raw, sizeof raw);
  done(&m);
  refused(&m, "unsupported encoding (format 3, 32 bits)");
  /* an extensible fmt too short to hold its sub-format: refused, not read
   * from the next chunk's header (here "data" and a size whose high half
   * would read as PCM) */
  f.b[24] = 1;
  f.b[14] = 16;
  riff(&m);
  chunk(&m, "fmt ", f.b, 18);
  put(&m, "data", 4);
  put32(&m, 0x00010000u + 128);
  put(&m, raw, sizeof raw);
  done(&m);
  refused(&m, "fmt");

  TEST_BEGIN("chunk layout");
  /* an odd-sized chunk before fmt: its pad byte is skipped */
  riff(&m);
  chunk(&m, "LIST", "abc", 3);
  fmt_chunk(&m, 1, 1, 16000, 16);
  chunk(&m, "junk", "", 0);
  chunk(&m, "data", raw, sizeof raw);
  chunk(&m, "LIST", "INFOxxxx", 8); /* chunks after the data are ignored */
  done(&m);
  CHECK_EQ(decode(&m, 16000, &out, &n), 0);
  CHECK_EQ(n, 64);
  CHECK(out && memcmp(out, s, sizeof s) == 0);
  free(out);
  /* a longer fmt (cbSize = 0 after the 16 bytes) */
  riff(&m);
  uint8_t fmt18[18];
  memcpy(fmt18, "\x01\x00\x01\x00\x80\x3e\x00\x00\x00\x7d\x00\x00\x02\x00\x10\x00\x00\x00", 18);
  chunk(&m, "fmt ", fmt18, 18);
  chunk(&m, "data", raw, sizeof raw);
  done(&m);
  CHECK_EQ(decode(&m, 16000, &out, &n), 0);
  CHECK_EQ(n, 64);
  CHECK(out && memcmp(out, s, sizeof s) == 0);
  free(out);

  TEST_BEGIN("truncated data");
  /* the data chunk claims 1000 samples, the file has 40 and a half */
  riff(&m);
  fmt_chunk(&m, 1, 1, 16000, 16);
  put(&m, "data", 4);
  put32(&m, 2000);
  put(&m, raw, 81);
  done(&m);
  CHECK_EQ(decode(&m, 16000, &out, &n), 0);
  CHECK_EQ(n, 40);
  CHECK(out && memcmp(out, s, 40 * sizeof *s) == 0);
  free(out);
  /* the size a streaming writer leaves when it never came back: 0xFFFFFFFF */
  m.b[m.n - 81 - 4] = m.b[m.n - 81 - 3] = m.b[m.n - 81 - 2] = m.b[m.n - 81 - 1] = 0xff;
  CHECK_EQ(decode(&m, 16000, &out, &n), 0);
  CHECK_EQ(n, 40);
  free(out);
  /* the header of the data chunk only */
  riff(&m);
  fmt_chunk(&m, 1, 1, 16000, 16);
  put(&m, "data", 4);
  put32(&m, 2000);
  done(&m);
  CHECK_EQ(decode(&m, 16000, &out, &n), 0);
  CHECK_EQ(n, 0);
  free(out);
  free(m.b);
  free(f.b);
}

static void test_errors(void)
{
  TEST_BEGIN("errors");
  uint8_t raw[64] = {0};
  img m = {0};
  put(&m, "RIFX\0\0\0\0WAVE", 12);
  refused(&m, "not a RIFF/WAVE file");
  m.n = 0;
  put(&m, "RIFF\0\0\0\0AVI ", 12);
  refused(&m, "not a RIFF/WAVE file");
  m.n = 0;
  put(&m, "RIFF\0\0\0\0WAV", 11);
  refused(&m, "not a RIFF/WAVE file");
  refused(&(img){(uint8_t *)"", 0, 0}, "not a RIFF/WAVE file");

  riff(&m);
  chunk(&m, "data", raw, sizeof raw);
  done(&m);
  refused(&m, "no fmt chunk");
  riff(&m);
  done(&m);
  refused(&m, "no fmt chunk");
  riff(&m);
  fmt_chunk(&m, 1, 1, 16000, 16);
  chunk(&m, "LIST", raw, 10);
  done(&m);
  refused(&m, "no data chunk");
  /* a chunk running past the end hides what would follow */
  riff(&m);
  fmt_chunk(&m, 1, 1, 16000, 16);
  put(&m, "LIST", 4);
  put32(&m, 1000);
  chunk(&m, "data", raw, sizeof raw);
  done(&m);
  refused(&m, "no data chunk");
  /* a short or cut fmt */
  riff(&m);
  chunk(&m, "fmt ", raw, 14);
  chunk(&m, "data", raw, sizeof raw);
  done(&m);
  refused(&m, "bad fmt chunk");
  riff(&m);
  put(&m, "fmt ", 4);
  put32(&m, 16);
  put(&m, "\x01\x00\x01\x00\x80\x3e", 6);
  done(&m);
  refused(&m, "bad fmt chunk");

  const struct {
    uint16_t format, channels;
    uint32_t rate;
    uint16_t bits;
    const char *msg;
  } bad[] = {
      {1, 1, 16000, 24, "unsupported encoding (format 1, 24 bits)"},
      {1, 1, 16000, 8, "unsupported encoding (format 1, 8 bits)"},
      {1, 1, 16000, 32, "unsupported encoding (format 1, 32 bits)"},
      {3, 1, 16000, 32, "unsupported encoding (format 3, 32 bits)"},
      {2, 1, 16000, 4, "unsupported encoding (format 2, 4 bits)"}, /* MS ADPCM */
      {7, 1, 8000, 16, "unsupported encoding (format 7, 16 bits)"},
      {6, 1, 8000, 0, "unsupported encoding (format 6, 0 bits)"},
      {0xFFFE, 1, 16000, 16, "bad fmt chunk (WAVE_FORMAT_EXTENSIBLE, 16 bytes)"}, /* no extension */
      {1, 3, 16000, 16, "3 channels: use mono or stereo"},
      {1, 0, 16000, 16, "0 channels: use mono or stereo"},
      {7, 6, 8000, 8, "6 channels: use mono or stereo"},
      {1, 1, 0, 16, "bad sample rate 0"},
      {1, 1, 999, 16, "bad sample rate 999"},
      {1, 1, 192001, 16, "bad sample rate 192001"},
      {1, 1, 4000000000u, 16, "bad sample rate 4000000000"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    riff(&m);
    fmt_chunk(&m, bad[i].format, bad[i].channels, bad[i].rate, bad[i].bits);
    chunk(&m, "data", raw, sizeof raw);
    done(&m);
    refused(&m, bad[i].msg);
  }
  /* the limits themselves are fine */
  int16_t *out;
  size_t n;
  riff(&m);
  fmt_chunk(&m, 1, 1, 1000, 16);
  chunk(&m, "data", raw, sizeof raw);
  done(&m);
  CHECK_EQ(decode(&m, 16000, &out, &n), 0);
  free(out);
  riff(&m);
  fmt_chunk(&m, 1, 2, 192000, 16);
  chunk(&m, "data", raw, sizeof raw);
  done(&m);
  CHECK_EQ(decode(&m, 16000, &out, &n), 0);
  free(out);

  /* a small error buffer gets a truncated, terminated message */
  char small[8];
  memset(small, 'x', sizeof small);
  m.n = 0;
  put(&m, "nope", 4);
  CHECK_EQ(ml_wav_decode(m.b, m.n, 16000, &out, &n, small, sizeof small), -1);
  CHECK_STR(small, "not a R");
  free(m.b);
}

/* ---- files ------------------------------------------------------------------- */

static void test_load(void)
{
  TEST_BEGIN("load");
  char path[] = "/tmp/ml_test_wav_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  int16_t s[320];
  uint8_t raw[640];
  tone(s, 320, 400, 8000, 8000);
  le16s(raw, s, 320);
  img m = {0};
  wav(&m, 1, 1, 8000, 16, raw, sizeof raw);
  CHECK_EQ(write(fd, m.b, m.n), (long)m.n);
  int16_t *out, *ref;
  size_t n, nref;
  CHECK_EQ(ml_wav_load(path, 16000, &out, &n, err, sizeof err), 0);
  CHECK_EQ(decode(&m, 16000, &ref, &nref), 0);
  CHECK_EQ(n, nref);
  CHECK(out && ref && memcmp(out, ref, n * sizeof *out) == 0);
  free(out);
  free(ref);

  /* a decoding error names the file */
  CHECK_EQ(ftruncate(fd, 0), 0);
  CHECK_EQ(pwrite(fd, "RIFF\0\0\0\0WAVEfmt ", 16, 0), 16);
  out = (int16_t *)&out;
  CHECK_EQ(ml_wav_load(path, 16000, &out, &n, err, sizeof err), -1);
  CHECK(out == NULL);
  char want[512];
  snprintf(want, sizeof want, "%s: no fmt chunk", path);
  CHECK_STR(err, want);
  CHECK_EQ(ftruncate(fd, 0), 0);
  CHECK_EQ(ml_wav_load(path, 16000, &out, &n, err, sizeof err), -1);
  snprintf(want, sizeof want, "%s: not a RIFF/WAVE file", path);
  CHECK_STR(err, want);

  /* over the limit: refused from its size alone (a sparse file, nothing read) */
  CHECK_EQ(ftruncate(fd, (off_t)ML_WAV_MAX_BYTES + 1), 0);
  CHECK_EQ(ml_wav_load(path, 16000, &out, &n, err, sizeof err), -1);
  CHECK(out == NULL);
  snprintf(want, sizeof want, "%s: larger than 64 MiB", path);
  CHECK_STR(err, want);
  CHECK_EQ(ftruncate(fd, (off_t)4 << 30), 0); /* past 32 bits too */
  CHECK_EQ(ml_wav_load(path, 16000, &out, &n, err, sizeof err), -1);
  CHECK_STR(err, want);
  /* exactly at the limit it is read (and then refused as not a WAV) */
  CHECK_EQ(ftruncate(fd, (off_t)ML_WAV_MAX_BYTES), 0);
  CHECK_EQ(ml_wav_load(path, 16000, &out, &n, err, sizeof err), -1);
  snprintf(want, sizeof want, "%s: not a RIFF/WAVE file", path);
  CHECK_STR(err, want);
  close(fd);
  unlink(path);

  /* missing */
  CHECK_EQ(ml_wav_load(path, 16000, &out, &n, err, sizeof err), -1);
  CHECK(out == NULL);
  snprintf(want, sizeof want, "%s: %s", path, strerror(ENOENT));
  CHECK_STR(err, want);
  /* a directory */
  CHECK_EQ(ml_wav_load("/tmp", 16000, &out, &n, err, sizeof err), -1);
  CHECK(strncmp(err, "/tmp: ", 6) == 0);
  free(m.b);
}

int main(void)
{
  const char *seed = getenv("ML_TEST_SEED");
  if (seed) ml_test_rng_state = strtoull(seed, NULL, 0) | 1;
  test_pcm();
  test_stereo();
  test_g711();
  test_rates();
  test_layouts();
  test_errors();
  test_load();
  return ML_TEST_DONE("test_wav");
}
