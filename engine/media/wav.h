/* WAV files for tracks: RIFF/WAVE with 16-bit PCM, µ-law or A-law, mono or
 * stereo (mixed down), any rate — read whole and converted to mono 16-bit at
 * the rate asked for (speexdsp). Files over ML_WAV_MAX_BYTES are refused, so
 * a bad path cannot make the engine allocate without bound. */
#ifndef ML_WAV_H
#define ML_WAV_H

#include <stddef.h>
#include <stdint.h>

#define ML_WAV_MAX_BYTES (64u << 20)

/* Parse a WAV image in memory into mono samples at `rate` Hz (*out is
 * malloc'd, the caller frees it). Returns 0, or -1 with a message in err. */
int ml_wav_decode(const uint8_t *data, size_t len, uint32_t rate, int16_t **out, size_t *n, char *err,
                  size_t errcap);

/* The same from a file. */
int ml_wav_load(const char *path, uint32_t rate, int16_t **out, size_t *n, char *err, size_t errcap);

#endif
