/* Clips (see clip.h). */
#include "clip.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "wav.h"

static ml_clip *cache; /* clips loaded from files and still referenced */

static ml_clip *clip_alloc(int16_t *samples, size_t len)
{
  ml_clip *c = calloc(1, sizeof *c);
  if (!c) {
    free(samples);
    return NULL;
  }
  c->refs = 1;
  c->samples = samples;
  c->len = len;
  return c;
}

ml_clip *ml_clip_new(int16_t *samples, size_t len) { return clip_alloc(samples, len); }

static int64_t mtime_ns(const struct stat *st)
{
  return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

ml_clip *ml_clip_load(const char *path, uint32_t rate, char *err, size_t errcap)
{
  struct stat st;
  if (stat(path, &st) != 0) {
    snprintf(err, errcap, "%s: %s", path, strerror(errno));
    return NULL;
  }
  for (ml_clip *c = cache; c; c = c->next) {
    if (c->rate == rate && c->dev == (uint64_t)st.st_dev && c->ino == (uint64_t)st.st_ino &&
        c->size == (uint64_t)st.st_size && c->mtime_ns == mtime_ns(&st) && !strcmp(c->path, path)) {
      c->refs++;
      return c;
    }
  }
  int16_t *samples;
  size_t n;
  if (ml_wav_load(path, rate, &samples, &n, err, errcap) != 0) return NULL;
  char *key = strdup(path);
  ml_clip *c = key ? clip_alloc(samples, n) : NULL;
  if (!c) {
    if (!key) free(samples);
    free(key);
    snprintf(err, errcap, "out of memory");
    return NULL;
  }
  c->path = key;
  c->rate = rate;
  c->dev = (uint64_t)st.st_dev;
  c->ino = (uint64_t)st.st_ino;
  c->size = (uint64_t)st.st_size;
  c->mtime_ns = mtime_ns(&st);
  c->next = cache;
  cache = c;
  return c;
}

void ml_clip_unref(ml_clip *c)
{
  if (!c || --c->refs) return;
  if (c->path) {
    ml_clip **p = &cache;
    while (*p != c) p = &(*p)->next;
    *p = c->next;
    free(c->path);
  }
  free((void *)c->samples);
  free(c);
}

unsigned ml_clip_cached(void)
{
  unsigned n = 0;
  for (ml_clip *c = cache; c; c = c->next) n++;
  return n;
}
