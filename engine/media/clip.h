/* Clips: decoded audio shared by the tracks that play it. A thousand callers
 * on hold with the same music hold one copy of it, not a thousand.
 *
 * ml_clip_load decodes a WAV file once per (file, rate): a later load of the
 * same unchanged file (same device, inode, size and mtime) takes a reference
 * to the copy in memory; a changed file is decoded again. A clip is freed
 * with its last reference. The cache is a list of the clips in use — a
 * handful of distinct prompts and hold tunes — walked once per load, never
 * per frame. Loop thread only (no locking). */
#ifndef ML_CLIP_H
#define ML_CLIP_H

#include <stddef.h>
#include <stdint.h>

typedef struct ml_clip ml_clip;

struct ml_clip {
  unsigned refs;
  const int16_t *samples;
  size_t len;
  /* the cache key; path NULL for a clip made from samples */
  char *path;
  uint32_t rate;
  uint64_t dev, ino, size;
  int64_t mtime_ns;
  ml_clip *next;
};

/* A clip of samples (taken over: freed with the clip); refs = 1. NULL when
 * out of memory (samples are freed then). */
ml_clip *ml_clip_new(int16_t *samples, size_t len);
/* The WAV file at path, as mono samples at rate; refs + 1. NULL with a
 * message in err (see ml_wav_load). */
ml_clip *ml_clip_load(const char *path, uint32_t rate, char *err, size_t errcap);
void ml_clip_unref(ml_clip *c);
/* Clips in the cache now (for tests and stats). */
unsigned ml_clip_cached(void);

#endif
