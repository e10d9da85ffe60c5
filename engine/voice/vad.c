/* Voice activity detection. See vad.h.
 *
 * Levels are in dB relative to full scale (a full-scale square wave is 0
 * dBFS, a full-scale sine -3). The noise floor is smoothed in dB, so its
 * rise and fall are rates of change of loudness, not of power: a floor
 * 30 dB below a new background catches up as fast as one 3 dB below it,
 * relative to the gap. */
#include "vad.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SILENT_DB (-100.0f) /* digital silence, so log() never sees 0 */
#define DC_POLE 0.995 /* DC blocker: a one-pole high-pass at ~13 Hz */
#define BAND_LOW_HZ 200.0
#define BAND_HIGH_HZ 3500.0
#define SNR_SPAN_DB 6.0f /* the level score goes 0 -> 1 over this many dB around snr_db */
#define SHARE_SPAN 0.3f /* the shape score goes 0 -> 1 over this much band share */
#define TONAL_SPAN_DB 10.0f /* the tonality score goes 1 -> 0 over this many dB */
#define SLOW_RISE_FACTOR 10 /* the floor rises this much slower under speechy steps */
/* Steady: over the last STEADY_STEPS steps the level moved less than
 * STEADY_DB and the lag-1 correlation (the spectral balance) less than
 * STEADY_CORR. A tone, a DTMF digit or a hum is that steady even in noise
 * (digits: <= 0.8 dB and <= 0.025, the two tones beating in a 10 ms step);
 * speech is not: the flattest 80 ms of the fixtures move 2 dB, and a human
 * voice's pitch and loudness hold still less than espeak-ng's. */
#define STEADY_STEPS 8
#define STEADY_DB 1.0f
#define STEADY_CORR 0.04f

/* one biquad section, transposed direct form II (RBJ cookbook coefficients) */
typedef struct biquad {
  double b0, b1, b2, a1, a2;
  double z1, z2;
} biquad;

struct ml_vad {
  ml_vad_config cfg;
  uint32_t min_speech, min_silence, pad; /* steps, steps, samples */
  double rise, rise_slow, fall; /* per-step smoothing factors of the floor */
  /* filters */
  double dc_x1, dc_y1;
  biquad hp, lp;
  double prev1, prev2; /* the last two DC-blocked samples, for the predictor's lags */
  /* floor, dBFS; unknown until the first step */
  int have_floor;
  float floor_band, floor_total;
  float last_snr;
  /* the last steps' level and correlation, for steadiness */
  float hist_level[STEADY_STEPS], hist_corr[STEADY_STEPS];
  unsigned hist_at, hist_n;
  /* hysteresis */
  ml_vad_state state;
  uint32_t cand; /* leaky count of speechy steps while silent, in half steps */
  uint64_t cand_start; /* the first speechy step of the candidate */
  uint32_t quiet; /* steps without speech while speaking */
  uint64_t speech_end; /* after the last speechy step */
  uint64_t prev_end; /* the previous utterance's end: padding stops there */
  uint64_t pos; /* samples processed */
  /* the ring of recent audio */
  int16_t *ring;
  size_t ring_len;
};

void ml_vad_config_default(ml_vad_config *c)
{
  c->min_speech_ms = 100;
  c->min_silence_ms = 500;
  c->prefix_padding_ms = 300;
  c->threshold = 0.5f;
  c->snr_db = 8.0f;
  c->min_level_db = -60.0f;
  c->band_share = 0.65f;
  c->tonal_db = 35.0f;
  c->floor_rise_ms = 1000;
  c->floor_fall_ms = 40;
}

static uint32_t ms_to_steps(uint32_t ms, uint32_t least)
{
  uint32_t steps = (ms + 5) / 10;
  return steps < least ? least : steps;
}

/* the per-step factor of a one-pole smoother with time constant ms */
static double smoothing(uint32_t ms)
{
  if (ms < 10) ms = 10;
  return 1.0 - exp(-10.0 / ms);
}

static void biquad_init(biquad *f, double hz, int highpass)
{
  double w = 2.0 * M_PI * hz / ML_VAD_RATE, c = cos(w), alpha = sin(w) / (2.0 * M_SQRT1_2), a0 = 1.0 + alpha;
  double k = highpass ? (1.0 + c) / 2.0 : (1.0 - c) / 2.0;
  f->b0 = k / a0;
  f->b1 = (highpass ? -2.0 * k : 2.0 * k) / a0;
  f->b2 = k / a0;
  f->a1 = -2.0 * c / a0;
  f->a2 = (1.0 - alpha) / a0;
  f->z1 = f->z2 = 0.0;
}

static inline double biquad_run(biquad *f, double x)
{
  double y = f->b0 * x + f->z1;
  f->z1 = f->b1 * x - f->a1 * y + f->z2;
  f->z2 = f->b2 * x - f->a2 * y;
  return y;
}

ml_vad *ml_vad_create(const ml_vad_config *cfg)
{
  ml_vad *v = calloc(1, sizeof *v);
  if (!v) return NULL;
  if (cfg)
    v->cfg = *cfg;
  else
    ml_vad_config_default(&v->cfg);
  v->min_speech = ms_to_steps(v->cfg.min_speech_ms, 1);
  v->min_silence = ms_to_steps(v->cfg.min_silence_ms, ML_VAD_MAX_FRAME / ML_VAD_STEP);
  v->pad = ms_to_steps(v->cfg.prefix_padding_ms, 0) * ML_VAD_STEP;
  v->rise = smoothing(v->cfg.floor_rise_ms);
  v->rise_slow = smoothing(v->cfg.floor_rise_ms * SLOW_RISE_FACTOR);
  v->fall = smoothing(v->cfg.floor_fall_ms);
  /* the leaky count can take longer than min_speech to start (4 × when
   * every other step is speechy) */
  v->ring_len = v->pad + 4 * (size_t)v->min_speech * ML_VAD_STEP + ML_VAD_MAX_FRAME;
  v->ring = malloc(v->ring_len * sizeof *v->ring);
  if (!v->ring) {
    free(v);
    return NULL;
  }
  ml_vad_reset(v);
  return v;
}

void ml_vad_free(ml_vad *v)
{
  if (!v) return;
  free(v->ring);
  free(v);
}

void ml_vad_reset(ml_vad *v)
{
  v->dc_x1 = v->dc_y1 = v->prev1 = v->prev2 = 0.0;
  biquad_init(&v->hp, BAND_LOW_HZ, 1);
  biquad_init(&v->lp, BAND_HIGH_HZ, 0);
  v->have_floor = 0;
  v->floor_band = v->floor_total = SILENT_DB;
  v->last_snr = 0.0f;
  v->hist_at = v->hist_n = 0;
  v->state = ML_VAD_SILENCE;
  v->cand = v->quiet = 0;
  v->cand_start = v->speech_end = v->prev_end = v->pos = 0;
}

uint64_t ml_vad_position(const ml_vad *v) { return v->pos; }

/* ---- one step: measures and score ---------------------------------------- */

typedef struct step_measure {
  float band_db, total_db; /* levels, dBFS */
  double band, total; /* mean squares, in full-scale units */
  float gain_db; /* prediction gain of the 2nd-order predictor */
  float corr; /* lag-1 correlation: where the power sits, low (near 1) to high (below 0) */
} step_measure;

static float to_db(double ms)
{
  float db = (float)(10.0 * log10(ms + 1e-10));
  return db < SILENT_DB ? SILENT_DB : db;
}

/* The 2-tap least-squares predictor over the step (covariance method, lags
 * reaching into the previous step): how much it reduces the power. A sine
 * obeys x[n] = 2cos(w)x[n-1] - x[n-2], so its residue is rounding alone;
 * noise and speech leave a good part of their power in it. c[i][j] is the
 * sum of x[n-i]x[n-j] over the step. */
static float prediction_gain_db(double c00, double c01, double c02, double c11, double c12, double c22)
{
  if (c00 <= 0.0) return 0.0f;
  double det = c11 * c22 - c12 * c12;
  if (det <= c11 * c22 * 1e-12) return 0.0f; /* no signal in the lags: nothing to predict from */
  double a1 = (c01 * c22 - c02 * c12) / det, a2 = (c02 * c11 - c01 * c12) / det;
  double e = c00 - a1 * c01 - a2 * c02;
  if (e <= c00 * 1e-9) return 90.0f;
  return (float)(10.0 * log10(c00 / e));
}

static void step_measure_run(ml_vad *v, const int16_t *x, step_measure *m)
{
  double band = 0, c00 = 0, c01 = 0, c02 = 0, c11 = 0, c12 = 0, c22 = 0;
  double x1 = v->dc_x1, y1 = v->dc_y1, p1 = v->prev1, p2 = v->prev2;
  for (int i = 0; i < ML_VAD_STEP; i++) {
    double s = x[i] * (1.0 / 32768.0);
    double d = s - x1 + DC_POLE * y1; /* DC out: an offset is not a voice */
    x1 = s;
    y1 = d;
    double b = biquad_run(&v->lp, biquad_run(&v->hp, d));
    band += b * b;
    c00 += d * d;
    c01 += d * p1;
    c02 += d * p2;
    c11 += p1 * p1;
    c12 += p1 * p2;
    c22 += p2 * p2;
    p2 = p1;
    p1 = d;
  }
  v->dc_x1 = x1;
  v->dc_y1 = y1;
  v->prev1 = p1;
  v->prev2 = p2;
  m->band = band / ML_VAD_STEP;
  m->total = c00 / ML_VAD_STEP;
  m->band_db = to_db(m->band);
  m->total_db = to_db(m->total);
  m->gain_db = prediction_gain_db(c00, c01, c02, c11, c12, c22);
  m->corr = c00 > 0.0 ? (float)(c01 / c00) : 0.0f;
}

/* Record the step; true when the window is full and nothing in it moved. */
static int steady(ml_vad *v, const step_measure *m)
{
  v->hist_level[v->hist_at] = m->band_db;
  v->hist_corr[v->hist_at] = m->corr;
  v->hist_at = (v->hist_at + 1) % STEADY_STEPS;
  if (v->hist_n < STEADY_STEPS) v->hist_n++;
  if (v->hist_n < STEADY_STEPS) return 0;
  float lmin = m->band_db, lmax = lmin, cmin = m->corr, cmax = cmin;
  for (int i = 0; i < STEADY_STEPS; i++) {
    float l = v->hist_level[i], c = v->hist_corr[i];
    lmin = l < lmin ? l : lmin;
    lmax = l > lmax ? l : lmax;
    cmin = c < cmin ? c : cmin;
    cmax = c > cmax ? c : cmax;
  }
  return lmax - lmin < STEADY_DB && cmax - cmin < STEADY_CORR;
}

static float clamp01(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }

/* The weakest of the measures: each must look like speech. */
static float step_score(ml_vad *v, const step_measure *m)
{
  const ml_vad_config *c = &v->cfg;
  float snr = m->band_db - v->floor_band;
  v->last_snr = snr;
  if (m->band_db < c->min_level_db) return 0.0f;
  float level = clamp01(0.5f + (snr - c->snr_db) / SNR_SPAN_DB);
  /* the share of the new energy (above each floor) that is in the band */
  double over_band = m->band - pow(10.0, v->floor_band / 10.0);
  double over_total = m->total - pow(10.0, v->floor_total / 10.0);
  float share = over_total > 0.0 ? (float)(over_band / over_total) : 0.0f;
  float shape = clamp01(0.5f + (share - c->band_share) / SHARE_SPAN);
  float tone = clamp01(0.5f + (c->tonal_db - m->gain_db) / TONAL_SPAN_DB);
  float s = level < shape ? level : shape;
  return s < tone ? s : tone;
}

static float floor_follow(float floor, float level, double rise, double fall)
{
  return floor + (float)((level - floor) * (level < floor ? fall : rise));
}

static void floor_update(ml_vad *v, const step_measure *m, int speechy)
{
  if (!v->have_floor) { /* the first step is the best guess there is */
    v->floor_band = m->band_db;
    v->floor_total = m->total_db;
    v->have_floor = 1;
    return;
  }
  double rise = speechy ? v->rise_slow : v->rise;
  v->floor_band = floor_follow(v->floor_band, m->band_db, rise, v->fall);
  v->floor_total = floor_follow(v->floor_total, m->total_db, rise, v->fall);
}

/* ---- hysteresis ------------------------------------------------------------ */

static void step_silent(ml_vad *v, int speechy, ml_vad_result *out)
{
  if (!speechy) {
    if (v->cand) v->cand--; /* leaky at half the rate: a short word, a gap, the next word still add up */
    return;
  }
  if (!v->cand) v->cand_start = v->pos;
  v->cand += 2;
  if (v->cand < 2 * v->min_speech) return;
  v->state = ML_VAD_SPEECH;
  v->quiet = 0;
  v->speech_end = v->pos + ML_VAD_STEP;
  uint64_t padded = v->cand_start > v->pad ? v->cand_start - v->pad : 0;
  out->edges |= ML_VAD_START;
  out->start_pos = v->cand_start;
  out->padded_start_pos = padded > v->prev_end ? padded : v->prev_end;
}

static void step_speaking(ml_vad *v, int speechy, ml_vad_result *out)
{
  if (speechy) {
    v->quiet = 0;
    v->speech_end = v->pos + ML_VAD_STEP;
    return;
  }
  if (++v->quiet < v->min_silence) return;
  v->state = ML_VAD_SILENCE;
  v->cand = 0;
  v->prev_end = v->speech_end;
  out->edges |= ML_VAD_END;
  out->end_pos = v->speech_end;
}

static void ring_put(ml_vad *v, const int16_t *x)
{
  size_t at = (size_t)(v->pos % v->ring_len), first = v->ring_len - at;
  if (first > ML_VAD_STEP) first = ML_VAD_STEP;
  memcpy(v->ring + at, x, first * sizeof *x);
  memcpy(v->ring, x + first, (ML_VAD_STEP - first) * sizeof *x);
}

int ml_vad_process(ml_vad *v, const int16_t *pcm, size_t n, ml_vad_result *out)
{
  if (n == 0 || n % ML_VAD_STEP || n > ML_VAD_MAX_FRAME) return -1;
  memset(out, 0, sizeof *out);
  float score_sum = 0.0f;
  for (size_t at = 0; at < n; at += ML_VAD_STEP) {
    step_measure m;
    step_measure_run(v, pcm + at, &m);
    int still = steady(v, &m);
    float score = v->have_floor && !still ? step_score(v, &m) : 0.0f;
    int speechy = score >= v->cfg.threshold;
    /* the speechy steps that led up to a steady sound were that sound
     * starting: a tone burst (a DTMF digit) must not add up to speech */
    if (still && v->state == ML_VAD_SILENCE) v->cand = 0;
    floor_update(v, &m, speechy);
    if (v->state == ML_VAD_SILENCE)
      step_silent(v, speechy, out);
    else
      step_speaking(v, speechy, out);
    ring_put(v, pcm + at);
    v->pos += ML_VAD_STEP;
    score_sum += score;
  }
  out->state = v->state;
  out->score = score_sum / (float)(n / ML_VAD_STEP);
  out->snr_db = v->last_snr;
  out->floor_db = v->floor_band;
  return 0;
}

size_t ml_vad_recent(const ml_vad *v, uint64_t from, int16_t *out, size_t cap, uint64_t *first)
{
  uint64_t oldest = v->pos > v->ring_len ? v->pos - v->ring_len : 0;
  if (from < oldest) from = oldest;
  if (from > v->pos) from = v->pos;
  if (first) *first = from;
  size_t n = (size_t)(v->pos - from);
  if (n > cap) n = cap;
  for (size_t i = 0; i < n; i++) out[i] = v->ring[(from + i) % v->ring_len];
  return n;
}
