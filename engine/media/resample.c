/* Resampler over speexdsp. See resample.h. */
#include "resample.h"

#include <speex/speex_resampler.h>
#include <stdlib.h>

struct ml_resampler {
  SpeexResamplerState *st;
  uint32_t in_rate, out_rate;
};

ml_resampler *ml_resampler_create(uint32_t in_rate, uint32_t out_rate, int quality)
{
  if (in_rate < 1000 || in_rate > 192000 || out_rate < 1000 || out_rate > 192000) return NULL;
  if (quality < SPEEX_RESAMPLER_QUALITY_MIN || quality > SPEEX_RESAMPLER_QUALITY_MAX) return NULL;
  ml_resampler *r = malloc(sizeof *r);
  if (!r) return NULL;
  int err = 0;
  r->st = speex_resampler_init(1, in_rate, out_rate, quality, &err);
  if (!r->st || err != RESAMPLER_ERR_SUCCESS) {
    if (r->st) speex_resampler_destroy(r->st);
    free(r);
    return NULL;
  }
  r->in_rate = in_rate;
  r->out_rate = out_rate;
  return r;
}

void ml_resampler_free(ml_resampler *r)
{
  if (!r) return;
  speex_resampler_destroy(r->st);
  free(r);
}

int ml_resampler_process(ml_resampler *r, const int16_t *in, size_t *in_n, int16_t *out, size_t *out_n)
{
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

int ml_resampler_latency(const ml_resampler *r) { return speex_resampler_get_output_latency(r->st); }

void ml_resampler_reset(ml_resampler *r) { speex_resampler_reset_mem(r->st); }
