/* Sample-rate conversion for one mono 16-bit stream (8 kHz G.711 legs in and
 * out of 16 kHz rooms). The 2:1 and 1:2 ratios (8 <-> 16 kHz) run our own
 * FIR (resample.c: flat to 3.4 kHz, -60 dB from 4 kHz, ~1 µs per 20 ms frame
 * each way; silence with a silent history costs nothing); the others wrap
 * speexdsp's resampler, at `quality`.
 *
 * Create one per stream and direction: the filter keeps history across calls,
 * so consecutive frames join without clicks. ml_resampler_process never
 * allocates (speexdsp converts int16 through a buffer on the stack). The first
 * output is delayed by the filter (ml_resampler_latency samples, zeros first),
 * which keeps every frame the same size. */
#ifndef ML_RESAMPLE_H
#define ML_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

#define ML_RESAMPLE_QUALITY 3 /* speexdsp's "VoIP" quality: plenty for 8 kHz telephony */

typedef struct ml_resampler ml_resampler;

/* in_rate -> out_rate in Hz (each 1000..192000), quality 0..10 (speexdsp;
 * ML_RESAMPLE_QUALITY when in doubt). Returns NULL on bad arguments or out of
 * memory. */
ml_resampler *ml_resampler_create(uint32_t in_rate, uint32_t out_rate, int quality);
void ml_resampler_free(ml_resampler *r);

/* Convert up to *in_n samples into at most *out_n; on return *in_n is what
 * was consumed and *out_n what was written. For whole frames at rates that
 * divide evenly (160 at 8 kHz -> 320 at 16 kHz) everything is consumed and
 * out_n = in_n * out_rate / in_rate. Returns 0, or -1 if speexdsp failed. */
int ml_resampler_process(ml_resampler *r, const int16_t *in, size_t *in_n, int16_t *out, size_t *out_n);

/* Output samples corresponding to in_n input samples (for sizing buffers). */
size_t ml_resampler_out_size(const ml_resampler *r, size_t in_n);

/* Filter delay in output samples. */
int ml_resampler_latency(const ml_resampler *r);

/* Clear the filter history (a new talk spurt on a new stream). */
void ml_resampler_reset(ml_resampler *r);

#endif
