/* N−1 mixer. See mixer.h.
 *
 * Contributions are stored already scaled by the gain (and saturated to
 * int16) at mix time, so the subtraction removes exactly what was added. Only
 * the participants that published this tick take part in the sum, and a
 * listener that published nothing gets the saturated sum itself. */
#include "mixer.h"

#include <stdlib.h>
#include <string.h>

#define GAIN_ONE 4096 /* Q12 */
#define GAIN_MAX (8 * GAIN_ONE)

typedef struct mix_part {
  int16_t in[ML_MIX_FRAME]; /* published this tick, gain applied at mix */
  int16_t out[ML_MIX_FRAME];
  uint8_t used, listens, muted, published, contributes;
  int32_t gain; /* Q12 */
} mix_part;

struct ml_mixer {
  uint32_t max, count;
  int32_t acc[ML_MIX_FRAME];
  mix_part *parts;
};

ml_mixer *ml_mixer_create(uint32_t max_participants)
{
  if (max_participants < 1 || max_participants > ML_MIX_MAX) return NULL;
  ml_mixer *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->parts = calloc(max_participants, sizeof *m->parts);
  if (!m->parts) {
    ml_mixer_free(m);
    return NULL;
  }
  m->max = max_participants;
  return m;
}

void ml_mixer_free(ml_mixer *m)
{
  if (!m) return;
  free(m->parts);
  free(m);
}

static mix_part *part(const ml_mixer *m, int id)
{
  if (id < 0 || (uint32_t)id >= m->max || !m->parts[id].used) return NULL;
  return &m->parts[id];
}

int ml_mixer_join(ml_mixer *m, int listens)
{
  for (uint32_t i = 0; i < m->max; i++) {
    mix_part *p = &m->parts[i];
    if (p->used) continue;
    memset(p, 0, sizeof *p);
    p->used = 1;
    p->listens = listens != 0;
    p->gain = GAIN_ONE;
    m->count++;
    return (int)i;
  }
  return -1;
}

void ml_mixer_leave(ml_mixer *m, int id)
{
  mix_part *p = part(m, id);
  if (!p) return;
  p->used = 0;
  m->count--;
}

void ml_mixer_publish(ml_mixer *m, int id, const int16_t *frame)
{
  mix_part *p = part(m, id);
  if (!p) return;
  memcpy(p->in, frame, sizeof p->in);
  p->published = 1;
}

void ml_mixer_set_gain(ml_mixer *m, int id, float gain)
{
  mix_part *p = part(m, id);
  if (!p) return;
  if (!(gain > 0)) gain = 0; /* NaN too */
  float q = gain * GAIN_ONE + 0.5f;
  p->gain = q >= GAIN_MAX ? GAIN_MAX : (int32_t)q;
}

void ml_mixer_set_mute(ml_mixer *m, int id, int muted)
{
  mix_part *p = part(m, id);
  if (p) p->muted = muted != 0;
}

static inline int16_t sat16(int32_t v) { return (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v); }

static void scale(int16_t *x, int32_t gain)
{
  for (int i = 0; i < ML_MIX_FRAME; i++) x[i] = sat16((x[i] * gain + GAIN_ONE / 2) >> 12);
}

/* Gather this tick's contributions (gain applied in place) and sum them. */
static void mix_sum(ml_mixer *m)
{
  memset(m->acc, 0, sizeof m->acc);
  for (uint32_t i = 0; i < m->max; i++) {
    mix_part *p = &m->parts[i];
    p->contributes = p->used && p->published && !p->muted && p->gain != 0;
    p->published = 0;
    if (!p->contributes) continue;
    if (p->gain != GAIN_ONE) scale(p->in, p->gain);
    for (int k = 0; k < ML_MIX_FRAME; k++) m->acc[k] += p->in[k];
  }
}

void ml_mixer_mix(ml_mixer *m)
{
  mix_sum(m);
  for (uint32_t i = 0; i < m->max; i++) {
    mix_part *p = &m->parts[i];
    if (!p->used || !p->listens) continue;
    if (p->contributes) {
      for (int k = 0; k < ML_MIX_FRAME; k++) p->out[k] = sat16(m->acc[k] - p->in[k]);
    } else {
      for (int k = 0; k < ML_MIX_FRAME; k++) p->out[k] = sat16(m->acc[k]);
    }
  }
}

const int16_t *ml_mixer_output(const ml_mixer *m, int id)
{
  mix_part *p = part(m, id);
  return p && p->listens ? p->out : NULL;
}

uint32_t ml_mixer_count(const ml_mixer *m) { return m->count; }
