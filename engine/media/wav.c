/* WAV reading (see wav.h). */
#include "wav.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "g711.h"
#include "resample.h"

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

#define FAIL(...)                                                                                            \
  do {                                                                                                       \
    snprintf(err, errcap, __VA_ARGS__);                                                                      \
    return -1;                                                                                               \
  } while (0)

enum { WAV_PCM = 1, WAV_ALAW = 6, WAV_ULAW = 7, WAV_EXTENSIBLE = 0xFFFE };

static int16_t sample_at(const uint8_t *p, unsigned format)
{
  if (format == WAV_PCM) return (int16_t)le16(p);
  return format == WAV_ULAW ? ml_ulaw_to_linear(*p) : ml_alaw_to_linear(*p);
}

int ml_wav_decode(const uint8_t *data, size_t len, uint32_t rate, int16_t **out, size_t *n, char *err,
                  size_t errcap)
{
  *out = NULL;
  *n = 0;
  if (len < 12 || memcmp(data, "RIFF", 4) || memcmp(data + 8, "WAVE", 4)) FAIL("not a RIFF/WAVE file");
  const uint8_t *fmt = NULL, *pcm = NULL;
  size_t pcm_len = 0, fmt_len = 0;
  for (size_t off = 12; off + 8 <= len;) {
    uint32_t size = le32(data + off + 4);
    const uint8_t *body = data + off + 8;
    size_t avail = len - off - 8;
    if (!memcmp(data + off, "fmt ", 4)) {
      if (size < 16 || size > avail) FAIL("bad fmt chunk");
      fmt = body;
      fmt_len = size;
    } else if (!memcmp(data + off, "data", 4)) {
      pcm = body;
      pcm_len = size > avail ? avail : size; /* a truncated file plays what it has */
      break;
    }
    if (size > avail) break;
    off += 8 + (size_t)size + (size & 1);
  }
  if (!fmt) FAIL("no fmt chunk");
  if (!pcm) FAIL("no data chunk");
  unsigned format = le16(fmt), channels = le16(fmt + 2), bits = le16(fmt + 14);
  uint32_t in_rate = le32(fmt + 4);
  if (format == WAV_EXTENSIBLE) { /* the sub-format GUID, at 24 in a 40-byte fmt */
    if (fmt_len < 40 || le16(fmt + 16) < 22)
      FAIL("bad fmt chunk (WAVE_FORMAT_EXTENSIBLE, %zu bytes)", fmt_len);
    format = le16(fmt + 24);
  }
  if (!((format == WAV_PCM && bits == 16) || ((format == WAV_ULAW || format == WAV_ALAW) && bits == 8)))
    FAIL("unsupported encoding (format %u, %u bits): use 16-bit PCM, µ-law or A-law", format, bits);
  if (channels < 1 || channels > 2) FAIL("%u channels: use mono or stereo", channels);
  if (in_rate < 1000 || in_rate > 192000) FAIL("bad sample rate %u", in_rate);
  size_t width = bits / 8 * channels, frames = pcm_len / width;
  ml_resampler *rs = NULL;
  size_t skip = 0, pad = 0, want = frames;
  if (in_rate != rate && frames) {
    /* The filter delays what it puts out by `skip` samples (zeros first) and
     * keeps the last input in its history. Feed `pad` zeros after the clip
     * to flush that tail and drop the first `skip` samples: the clip starts
     * at once and ends whole, so a looped clip wraps without a gap. */
    rs = ml_resampler_create(in_rate, rate, ML_RESAMPLE_QUALITY);
    if (!rs) FAIL("cannot resample %u Hz to %u Hz", in_rate, rate);
    skip = (size_t)ml_resampler_latency(rs);
    pad = (size_t)(((uint64_t)skip * in_rate + rate - 1) / rate) + 1;
    want = (size_t)(((uint64_t)frames * rate + in_rate / 2) / in_rate);
  }
  int16_t *mono = calloc(frames + pad ? frames + pad : 1, sizeof *mono);
  if (!mono) {
    ml_resampler_free(rs);
    FAIL("out of memory");
  }
  for (size_t i = 0; i < frames; i++) {
    const uint8_t *p = pcm + i * width;
    int32_t s = sample_at(p, format);
    if (channels == 2) s = (s + sample_at(p + bits / 8, format)) / 2;
    mono[i] = (int16_t)s;
  }
  if (!rs) {
    *out = mono;
    *n = frames;
    return 0;
  }
  size_t cap = ml_resampler_out_size(rs, frames + pad) + 16;
  int16_t *conv = malloc(cap * sizeof *conv);
  if (!conv) {
    ml_resampler_free(rs);
    free(mono);
    FAIL("out of memory");
  }
  size_t in_n = frames + pad, out_n = cap;
  int rc = ml_resampler_process(rs, mono, &in_n, conv, &out_n);
  ml_resampler_free(rs);
  free(mono);
  if (rc) {
    free(conv);
    FAIL("resampling failed");
  }
  size_t got = out_n > skip ? out_n - skip : 0;
  if (got > want) got = want;
  memmove(conv, conv + skip, got * sizeof *conv);
  *out = conv;
  *n = got;
  return 0;
}

int ml_wav_load(const char *path, uint32_t rate, int16_t **out, size_t *n, char *err, size_t errcap)
{
  FILE *f = fopen(path, "rb");
  if (!f) FAIL("%s: %s", path, strerror(errno));
  uint8_t *buf = NULL;
  long size = -1;
  if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
  if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    FAIL("%s: cannot read", path);
  }
  if ((unsigned long)size > ML_WAV_MAX_BYTES) {
    fclose(f);
    FAIL("%s: larger than %u MiB", path, ML_WAV_MAX_BYTES >> 20);
  }
  buf = malloc(size ? (size_t)size : 1);
  if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
    free(buf);
    fclose(f);
    FAIL("%s: cannot read", path);
  }
  fclose(f);
  int rc = ml_wav_decode(buf, (size_t)size, rate, out, n, err, errcap);
  free(buf);
  if (rc) {
    char inner[200];
    snprintf(inner, sizeof inner, "%s", err);
    FAIL("%s: %s", path, inner);
  }
  return 0;
}
