/* Clips shared between tracks (clip.h): one decoded copy per unchanged file
 * and rate, freed with the last reference; a changed file is read again. */
#include <unistd.h>

#include "clip.h"
#include "ml_test.h"
#include "track.h"

/* a 16 kHz mono 16-bit WAV of n samples of value v */
static void write_wav(const char *path, size_t n, int16_t v)
{
  FILE *f = fopen(path, "wb");
  MUST(f);
  uint32_t data = (uint32_t)(n * 2), riff = 36 + data, fmt_size = 16, rate = 16000, byte_rate = 32000;
  uint16_t pcm = 1, channels = 1, align = 2, bits = 16;
  fwrite("RIFF", 1, 4, f);
  fwrite(&riff, 4, 1, f);
  fwrite("WAVEfmt ", 1, 8, f);
  fwrite(&fmt_size, 4, 1, f);
  fwrite(&pcm, 2, 1, f);
  fwrite(&channels, 2, 1, f);
  fwrite(&rate, 4, 1, f);
  fwrite(&byte_rate, 4, 1, f);
  fwrite(&align, 2, 1, f);
  fwrite(&bits, 2, 1, f);
  fwrite("data", 1, 4, f);
  fwrite(&data, 4, 1, f);
  for (size_t i = 0; i < n; i++) fwrite(&v, 2, 1, f);
  fclose(f);
}

int main(void)
{
  char path[] = "/tmp/moonline-clip-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  char err[256];

  TEST_BEGIN("the same file twice: one copy");
  write_wav(path, 1600, 1000);
  ml_clip *a = ml_clip_load(path, 16000, err, sizeof err), *b = ml_clip_load(path, 16000, err, sizeof err);
  REQUIRE(a && b);
  CHECK(a == b);
  CHECK_EQ(a->refs, 2);
  CHECK_EQ(a->len, 1600);
  CHECK_EQ(a->samples[800], 1000);
  CHECK_EQ(ml_clip_cached(), 1);

  TEST_BEGIN("tracks share it and drop their references");
  ml_track t1, t2;
  ml_clip *c = ml_clip_load(path, 16000, err, sizeof err);
  ml_track_init_shared(&t1, c, 1);
  ml_track_init_shared(&t2, ml_clip_load(path, 16000, err, sizeof err), 0);
  CHECK(t1.clip == t2.clip);
  CHECK_EQ(a->refs, 4);
  ml_track_release(&t1);
  ml_track_release(&t2);
  CHECK_EQ(a->refs, 2);

  TEST_BEGIN("another rate: another copy");
  ml_clip *slow = ml_clip_load(path, 8000, err, sizeof err);
  REQUIRE(slow);
  CHECK(slow != a);
  CHECK_EQ(slow->len, 800);
  CHECK_EQ(ml_clip_cached(), 2);
  ml_clip_unref(slow);
  CHECK_EQ(ml_clip_cached(), 1);

  TEST_BEGIN("a changed file is read again; the old copy lives while used");
  write_wav(path, 3200, -500);
  ml_clip *fresh = ml_clip_load(path, 16000, err, sizeof err);
  REQUIRE(fresh);
  CHECK(fresh != a);
  CHECK_EQ(fresh->len, 3200);
  CHECK_EQ(fresh->samples[0], -500);
  CHECK_EQ(a->samples[0], 1000);
  CHECK_EQ(ml_clip_cached(), 2);
  ml_clip_unref(a);
  ml_clip_unref(b);
  CHECK_EQ(ml_clip_cached(), 1);
  ml_clip_unref(fresh);
  CHECK_EQ(ml_clip_cached(), 0);

  TEST_BEGIN("errors name the file; nothing is cached");
  unlink(path);
  CHECK(ml_clip_load(path, 16000, err, sizeof err) == NULL);
  CHECK(strstr(err, path) != NULL && strstr(err, "No such file") != NULL);
  FILE *f = fopen(path, "wb");
  MUST(f);
  fputs("not a wav", f);
  fclose(f);
  CHECK(ml_clip_load(path, 16000, err, sizeof err) == NULL);
  CHECK(strstr(err, "not a RIFF/WAVE file") != NULL);
  CHECK_EQ(ml_clip_cached(), 0);
  unlink(path);

  TEST_BEGIN("a clip of samples is not cached");
  int16_t *s = malloc(4 * sizeof *s);
  MUST(s);
  ml_clip *own = ml_clip_new(s, 4);
  CHECK_EQ(ml_clip_cached(), 0);
  ml_clip_unref(own);
  return ML_TEST_DONE("test_clip");
}
