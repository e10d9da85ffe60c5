/* Voice activity detection on 16 kHz mono int16, in frames of 10 ms
 * multiples (a room's 20 ms frame is two steps).
 *
 * Each 10 ms step is scored from three measures, all O(1) state:
 *   - level: speech-band energy (200–3500 Hz, two biquads) against an
 *     adaptive noise floor that falls fast and rises slowly, so it settles
 *     on the quiet parts of whatever background the line has;
 *   - shape: the share of the energy above the floor that lies in the
 *     speech band, so a broadband hiss or a rumble getting louder is not a
 *     voice (white noise puts ~45 % there, voiced speech ~90 %);
 *   - tonality: the gain of a 2-tap linear predictor, so a clean tone (a
 *     sine is predicted almost exactly, speech is not) is not a voice;
 *     and steadiness: a step whose level and spectral balance have not
 *     moved for 80 ms is a tone, a DTMF digit or a hum even in noise,
 *     never a voice (and the steps that led up to it are forgotten).
 * A step is "speechy" when its score (the weakest of the measures, 0..1)
 * reaches the threshold. Steps that are not speechy pull the floor up, so
 * a steady sound becomes the background. Hysteresis turns steps into
 * utterances: speech starts after min_speech_ms of speechy steps (a leaky
 * count: each other step takes back half a step, so a short first word or
 * a stop consonant's gap does not restart it) and ends after min_silence_ms
 * with none. Positions are in samples since create or reset.
 *
 * The last prefix_padding_ms + a bit of audio is kept in a ring, so at a
 * start the caller can take the audio from the padded start onwards
 * (ml_vad_recent) without buffering it itself. Create allocates everything;
 * processing never allocates. */
#ifndef ML_VAD_H
#define ML_VAD_H

#include <stddef.h>
#include <stdint.h>

#define ML_VAD_RATE 16000
#define ML_VAD_STEP 160 /* samples per 10 ms step: frames are multiples of this */
#define ML_VAD_MAX_FRAME 1600 /* 100 ms: at most one start and one end per frame */

typedef struct ml_vad_config {
  /* Speechy steps needed to start an utterance. 100 ms: the voiced part of
   * a short first word ("what", "no") is 100-150 ms, and only its louder
   * part is speechy in noise; a click, a knock or a plosive burst is
   * shorter. The START edge comes this late after the onset at best. */
  uint32_t min_speech_ms;
  /* Steps without speech that end it. 500 ms: longer than the gaps between
   * words and the breath between phrases (150–400 ms), short enough that a
   * turn ends without an awkward wait. Clamped to at least 100 ms, so a
   * frame never holds two utterances. */
  uint32_t min_silence_ms;
  /* How far before the first speechy step the reported padded start lies.
   * 300 ms: the unvoiced onset ("s", "f", "h") before a vowel is quiet and
   * outside the band, so it is usually not speechy itself; the recogniser
   * wants it. Never before the previous utterance's end. */
  uint32_t prefix_padding_ms;
  /* Score at which a step counts as speechy, 0..1. 0.5 is the point where
   * each measure sits exactly at its threshold below. */
  float threshold;
  /* Speech-band energy above the floor, in dB, that scores 0.5. 8 dB: the
   * floor sits ~1 dB under a steady noise whose 10 ms levels spread by
   * ±1 dB, so noise never gets there; a voice at 10 dB SNR (white noise,
   * whole band) is 13 dB over the noise in the band in its vowels. */
  float snr_db;
  /* Speech-band energy below this (dBFS, 0 = full-scale square wave) never
   * counts. -60: under the quietest usable voice on a phone line (-45), over
   * dither and idle-channel hiss, so digital silence cannot "adapt" the
   * floor down into a detector of its own rounding noise. */
  float min_level_db;
  /* Share of the energy above the floor that lies in the speech band, that
   * scores 0.5. 0.65: between white noise (~0.45) and voiced speech
   * (~0.9). */
  float band_share;
  /* Prediction gain of a 2-tap linear predictor (dB) above which a step
   * is a tone. 35: a steady sine is predicted down to its noise (a clean
   * one scores 60-75 dB), voiced speech at 16 kHz stays under ~28. A tone
   * under ~35 dB SNR is not caught by this measure. */
  float tonal_db;
  /* Time constants of the noise floor (ms): it rises towards louder
   * non-speech steps with floor_rise_ms (1000: a new background is taken
   * in within ~2 s, a vowel barely moves it) and ten times slower during
   * speechy steps (so a false start on a new noise still ends), and falls
   * to quieter steps with floor_fall_ms (40: a pause shows the floor at
   * once). */
  uint32_t floor_rise_ms;
  uint32_t floor_fall_ms;
} ml_vad_config;

typedef enum ml_vad_state { ML_VAD_SILENCE = 0, ML_VAD_SPEECH = 1 } ml_vad_state;

/* edges, as bits of ml_vad_result.edges */
#define ML_VAD_START 1u
#define ML_VAD_END 2u

typedef struct ml_vad_result {
  ml_vad_state state; /* after this frame */
  unsigned edges; /* ML_VAD_START and/or ML_VAD_END seen in this frame */
  /* START: the first sample of the first speechy step, and that minus the
   * padding (not before 0 or the previous end). The edge itself comes
   * min_speech_ms or more later. */
  uint64_t start_pos, padded_start_pos;
  /* END: the sample after the last speechy step (the edge comes
   * min_silence_ms later). With both edges in one frame, compare end_pos
   * and start_pos to know the order. */
  uint64_t end_pos;
  /* for debugging and tuning, over this frame's steps: the mean score,
   * the last step's band SNR and the floor (dBFS) */
  float score, snr_db, floor_db;
} ml_vad_result;

typedef struct ml_vad ml_vad;

/* The defaults documented above. */
void ml_vad_config_default(ml_vad_config *c);

/* cfg NULL: the defaults. Returns NULL when out of memory. */
ml_vad *ml_vad_create(const ml_vad_config *cfg);
void ml_vad_free(ml_vad *v);

/* Back to a fresh state: silence, position 0, the floor not yet known. */
void ml_vad_reset(ml_vad *v);

/* Process n samples (a multiple of ML_VAD_STEP, at most ML_VAD_MAX_FRAME)
 * and fill *out. Returns 0, or -1 for a bad n (nothing is consumed). */
int ml_vad_process(ml_vad *v, const int16_t *pcm, size_t n, ml_vad_result *out);

/* Copy the audio from position `from` up to now into out (at most cap
 * samples, from the oldest). Audio older than the ring (prefix padding +
 * 4 × min_speech + a frame) is gone: *first gets the position actually
 * copied from. Returns the number of samples copied. */
size_t ml_vad_recent(const ml_vad *v, uint64_t from, int16_t *out, size_t cap, uint64_t *first);

/* Samples processed since create or reset. */
uint64_t ml_vad_position(const ml_vad *v);

#endif
