/* Tracks (see track.h). */
#include "track.h"

#include <stdlib.h>
#include <string.h>

static void finish(ml_track *t)
{
  if (t->done) return;
  t->done = 1;
  if (t->on_done) t->on_done(t, t->data);
}

static int pull_tone(ml_room_member *m, int16_t *frame)
{
  ml_track *t = ml_container_of(m, ml_track, member);
  if (t->done) return 0;
  ml_tone_fill(&t->tone, frame, ML_MIX_FRAME);
  t->frames++;
  if (t->tone_frames_left && --t->tone_frames_left == 0) finish(t);
  return 1;
}

static int pull_clip(ml_room_member *m, int16_t *frame)
{
  ml_track *t = ml_container_of(m, ml_track, member);
  if (t->done) return 0;
  if (!t->clip_len) { /* an empty file: played once it is over at once, looped it is silence */
    if (!t->loop) finish(t);
    return 0;
  }
  size_t n = 0;
  while (n < ML_MIX_FRAME) {
    size_t k = t->clip_len - t->pos;
    if (k > ML_MIX_FRAME - n) k = ML_MIX_FRAME - n;
    memcpy(frame + n, t->clip + t->pos, k * sizeof *frame);
    n += k;
    t->pos += k;
    if (t->pos == t->clip_len) {
      if (!t->loop) break;
      t->pos = 0;
    }
  }
  if (n < ML_MIX_FRAME) memset(frame + n, 0, (ML_MIX_FRAME - n) * sizeof *frame);
  t->frames++;
  if (!t->loop && t->pos == t->clip_len) finish(t);
  return 1;
}

static void push_none(ml_room_member *m, const int16_t *frame)
{
  (void)m;
  (void)frame;
}

static const ml_room_member_ops tone_ops = {pull_tone, push_none};
static const ml_room_member_ops clip_ops = {pull_clip, push_none};

void ml_track_init_tone(ml_track *t, double hz, double level, double seconds)
{
  memset(t, 0, sizeof *t);
  ml_room_member_init(&t->member, &tone_ops, 0);
  ml_tone_init(&t->tone, hz, level, ML_MIX_RATE);
  if (seconds > 0) { /* whole 20 ms frames, at least one */
    t->tone_frames_left = (uint64_t)(seconds * 50.0 + 0.5);
    if (!t->tone_frames_left) t->tone_frames_left = 1;
  }
}

void ml_track_init_shared(ml_track *t, ml_clip *clip, int loop)
{
  memset(t, 0, sizeof *t);
  ml_room_member_init(&t->member, &clip_ops, 0);
  t->shared = clip;
  t->clip = clip ? clip->samples : NULL;
  t->clip_len = clip ? clip->len : 0;
  t->loop = loop;
}

void ml_track_init_clip(ml_track *t, int16_t *samples, size_t n, int loop)
{
  /* out of memory: an empty clip (it ends at once, or is silence looped) */
  ml_track_init_shared(t, ml_clip_new(samples, n), loop);
}

void ml_track_release(ml_track *t)
{
  ml_room_leave(&t->member);
  ml_clip_unref(t->shared);
  t->shared = NULL;
  t->clip = NULL;
  t->clip_len = 0;
}
