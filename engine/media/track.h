/* A track: a publish-only room member playing a tone or a clip (hold music,
 * a prompt, background audio), once or looped, at the room's rate (16 kHz).
 * A clip is shared (clip.h): tracks playing the same file hold references
 * to one copy. Playing allocates nothing. */
#ifndef ML_TRACK_H
#define ML_TRACK_H

#include <stddef.h>
#include <stdint.h>

#include "clip.h"
#include "room.h"
#include "tone.h"

typedef struct ml_track {
  ml_room_member member; /* publish-only */
  ml_tone tone;
  uint64_t tone_frames_left; /* 0 with a tone: until stopped */
  /* clip: a reference to shared samples */
  ml_clip *shared;
  const int16_t *clip;
  size_t clip_len, pos;
  int loop;
  int done; /* played to the end (a clip once, a timed tone) */
  uint64_t frames; /* published */
  void (*on_done)(struct ml_track *t, void *data);
  void *data;
} ml_track;

/* A sine at hz, level 0..1 of full scale, for seconds (0: until stopped). */
void ml_track_init_tone(ml_track *t, double hz, double level, double seconds);
/* Play samples (16 kHz mono; the track takes ownership, freed by
 * ml_track_release), once or looped. */
void ml_track_init_clip(ml_track *t, int16_t *samples, size_t n, int loop);
/* Play a shared clip (the track takes over one reference of it). */
void ml_track_init_shared(ml_track *t, ml_clip *clip, int loop);
/* Leave the room and drop the clip. */
void ml_track_release(ml_track *t);

#endif
