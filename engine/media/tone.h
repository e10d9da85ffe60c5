/* A sine oscillator for tones (call:tone, room tracks): a rotating phasor,
 * one complex multiply per sample instead of a sin(), renormalised once per
 * block so rounding cannot grow the amplitude. Header-only, no allocation. */
#ifndef ML_TONE_H
#define ML_TONE_H

#include <math.h>
#include <stdint.h>

typedef struct ml_tone {
  double amp; /* peak, in sample units */
  double re, im; /* the phasor */
  double rot_re, rot_im; /* one sample's rotation */
} ml_tone;

/* hz at `rate` samples per second, level 0..1 of full scale (clamped) */
static inline void ml_tone_init(ml_tone *t, double hz, double level, double rate)
{
  level = level < 0 ? 0 : level > 1 ? 1 : level;
  double step = 2.0 * M_PI * hz / rate;
  t->amp = 32767.0 * level;
  t->rot_re = cos(step);
  t->rot_im = sin(step);
  t->re = 1.0;
  t->im = 0.0;
}

/* the next n samples */
static inline void ml_tone_fill(ml_tone *t, int16_t *out, unsigned n)
{
  double re = t->re, im = t->im;
  for (unsigned i = 0; i < n; i++) {
    out[i] = (int16_t)(t->amp * im);
    double nre = re * t->rot_re - im * t->rot_im;
    im = re * t->rot_im + im * t->rot_re;
    re = nre;
  }
  double mag = sqrt(re * re + im * im);
  t->re = re / mag;
  t->im = im / mag;
}

#endif
