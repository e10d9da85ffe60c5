/* Local TTS (engine/voice/tts_espeak.c) with the real espeak-ng on a real
 * loop: "hello world" is 16 kHz speech of a plausible length with its energy
 * below 4 kHz; audio streams (the first chunk long before the paragraph is
 * synthesised; a consumer that stops taking stops the worker at a full
 * ring); requests run in order and end once; cancel is prompt and silences
 * the request at once; close cancels what is pending and leaves no handle. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ml_test.h"
#include "tts_espeak.h"

#define MS 1000000ull

static uv_loop_t loop;
static int seq; /* orders events across requests */

static const char *paragraph =
    "It was a bright cold day in April, and the clocks were striking thirteen. Winston Smith, his chin "
    "nuzzled into his breast in an effort to escape the vile wind, slipped quickly through the glass doors "
    "of "
    "Victory Mansions, though not quickly enough to prevent a swirl of gritty dust from entering along with "
    "him. The hallway smelt of boiled cabbage and old rag mats. At one end of it a coloured poster, too "
    "large "
    "for indoor display, had been tacked to the wall. It depicted simply an enormous face, more than a metre "
    "wide: the face of a man of about forty-five, with a heavy black moustache and ruggedly handsome "
    "features. Winston made for the stairs. It was no use trying the lift. Even at the best of times it was "
    "seldom working, and at present the electric current was cut off during daylight hours.";

typedef struct capture {
  int16_t *pcm;
  size_t n, cap;
  size_t take_max; /* per on_audio call; 0: all */
  size_t cancel_at; /* cancel from on_audio once this many samples came; 0: never */
  int close_at_first; /* close the instance from the first on_audio */
  ml_tts_espeak *tts;
  ml_tts_request *req;
  int calls, done, status, cancelled, audio_after_cancel;
  int first_seq, done_seq;
  uint64_t t_speak, t_first, t_cancel, t_done;
} capture;

static size_t on_audio(ml_tts_request *r, const int16_t *pcm, size_t n, void *ud)
{
  capture *c = ud;
  if (c->cancelled || c->done) c->audio_after_cancel++;
  if (!c->calls++) {
    c->t_first = now_ns();
    c->first_seq = ++seq;
  }
  size_t take = c->take_max && n > c->take_max ? c->take_max : n;
  if (c->n + take > c->cap) {
    c->cap = (c->n + take) * 2;
    c->pcm = realloc(c->pcm, c->cap * sizeof *c->pcm);
    MUST(c->pcm);
  }
  memcpy(c->pcm + c->n, pcm, take * sizeof *pcm);
  c->n += take;
  if (c->cancel_at && c->n >= c->cancel_at && !c->cancelled) {
    c->cancelled = 1;
    c->t_cancel = now_ns();
    ml_tts_request_cancel(r);
  }
  if (c->close_at_first) {
    c->close_at_first = 0;
    c->t_cancel = now_ns();
    ml_tts_espeak_close(c->tts, NULL, NULL);
  }
  return take;
}

static void on_done(ml_tts_request *r, int status, void *ud)
{
  capture *c = ud;
  (void)r;
  c->done++;
  c->status = status;
  c->done_seq = ++seq;
  c->t_done = now_ns();
}

static ml_tts_request *speak(ml_tts_espeak *t, capture *c, const char *text, const ml_tts_options *o)
{
  c->tts = t;
  c->t_speak = now_ns();
  c->req = ml_tts_espeak_speak(t, text, o, on_audio, on_done, c);
  MUST(c->req);
  return c->req;
}

static int closed;
static void on_closed(void *data)
{
  (void)data;
  closed++;
}

/* close t (if any), run the loop dry, and check that nothing is left on it */
static void finish(ml_tts_espeak *t)
{
  int before = closed;
  if (t) ml_tts_espeak_close(t, on_closed, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (t) CHECK_EQ(closed, before + 1);
  CHECK(!uv_loop_alive(&loop));
  CHECK_EQ(uv_loop_close(&loop), 0);
}

static double rms(const int16_t *x, size_t n)
{
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return n ? sqrt(s / (double)n) : 0;
}

/* Share of the energy below 4 kHz in the voiced frames (32 ms, Goertzel on a
 * 125 Hz grid up to 7.9 kHz): voiced speech sits low, noise would not. */
static double low_band_share(const int16_t *x, size_t n)
{
  const size_t frame = 512;
  double low = 0, all = 0;
  for (size_t at = 0; at + frame <= n; at += frame) {
    if (rms(x + at, frame) < 300) continue; /* pauses, quiet consonants */
    for (double hz = 62.5; hz < 8000; hz += 125) {
      double p = goertzel(x + at, frame, hz, ML_TTS_RATE);
      all += p;
      if (hz < 4000) low += p;
    }
  }
  return all > 0 ? low / all : 0;
}

static void test_hello(void)
{
  TEST_BEGIN("hello world");
  uv_loop_init(&loop);
  ml_tts_espeak *t = ml_tts_espeak_create(&loop);
  MUST(t);
  capture c = {0};
  speak(t, &c, "hello world", NULL);
  uv_run(&loop, UV_RUN_DEFAULT); /* the async is referenced only while requests are live */
  CHECK_EQ(c.done, 1);
  CHECK_EQ(c.status, ML_TTS_OK);
  double secs = (double)c.n / ML_TTS_RATE, level = rms(c.pcm, c.n), low = low_band_share(c.pcm, c.n);
  printf("hello world: %.3f s of 16 kHz audio in %d chunks, rms %.0f, %.1f%% of voiced energy below 4 kHz, "
         "first audio after %.2f ms, done after %.2f ms\n",
         secs, c.calls, level, 100 * low, (double)(c.t_first - c.t_speak) / MS,
         (double)(c.t_done - c.t_speak) / MS);
  CHECK(secs >= 0.6 && secs <= 2.0);
  CHECK(level > 500);
  CHECK(low > 0.8);
  free(c.pcm);
  finish(t);
}

static void test_empty(void)
{
  TEST_BEGIN("empty text");
  uv_loop_init(&loop);
  ml_tts_espeak *t = ml_tts_espeak_create(&loop);
  MUST(t);
  capture a = {0}, b = {0};
  speak(t, &a, "", NULL);
  speak(t, &b, " \n\t", NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  CHECK_EQ(a.done, 1);
  CHECK_EQ(b.done, 1);
  CHECK_EQ(a.status, ML_TTS_OK);
  CHECK_EQ(a.calls + b.calls, 0);
  CHECK(ml_tts_espeak_speak(t, NULL, NULL, on_audio, on_done, &a) == NULL);
  finish(t);
}

/* requests run one after the other, in the order asked: all of the first
 * one's audio and its done come before the second's first audio */
static void test_order(void)
{
  TEST_BEGIN("order");
  uv_loop_init(&loop);
  ml_tts_espeak *t = ml_tts_espeak_create(&loop);
  MUST(t);
  capture a = {0}, b = {0}, c = {0};
  speak(t, &a, "The first request.", NULL);
  speak(t, &b, "And the second one.", &(ml_tts_options){.voice = "en-gb", .rate_wpm = 220, .pitch = 70});
  speak(t, &c, "Third.", NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(a.done == 1 && b.done == 1 && c.done == 1);
  CHECK(a.status == ML_TTS_OK && b.status == ML_TTS_OK && c.status == ML_TTS_OK);
  CHECK(a.calls > 0 && b.calls > 0 && c.calls > 0);
  CHECK(a.first_seq < a.done_seq && a.done_seq < b.first_seq);
  CHECK(b.done_seq < c.first_seq);
  free(a.pcm);
  free(b.pcm);
  free(c.pcm);
  finish(t);
}

static void test_bad_voice(void)
{
  TEST_BEGIN("unknown voice");
  uv_loop_init(&loop);
  ml_tts_espeak *t = ml_tts_espeak_create(&loop);
  MUST(t);
  capture a = {0}, b = {0};
  speak(t, &a, "nothing", &(ml_tts_options){.voice = "xx-nope"});
  speak(t, &b, "something", NULL); /* the next request is not hurt */
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ(a.done, 1);
  CHECK_EQ(a.status, ML_TTS_ERR_VOICE);
  CHECK_EQ(a.calls, 0);
  CHECK_EQ(b.status, ML_TTS_OK);
  CHECK(b.n > ML_TTS_RATE / 4);
  free(b.pcm);
  finish(t);
}

/* a long paragraph streams: its first audio arrives long before the last */
static size_t paragraph_samples;
static void test_streaming(void)
{
  TEST_BEGIN("time to first audio");
  uv_loop_init(&loop);
  ml_tts_espeak *t = ml_tts_espeak_create(&loop);
  MUST(t);
  capture c = {0};
  speak(t, &c, paragraph, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ(c.status, ML_TTS_OK);
  double ttfa = (double)(c.t_first - c.t_speak) / MS, total = (double)(c.t_done - c.t_speak) / MS;
  double secs = (double)c.n / ML_TTS_RATE;
  printf("paragraph (%zu chars): %.1f s of audio in %d chunks; first audio after %.2f ms, all after %.1f ms "
         "(%.0fx real time)\n",
         strlen(paragraph), secs, c.calls, ttfa, total, secs * 1000 / total);
  CHECK(secs > 30 && secs < 90);
  CHECK(ttfa < total / 4);
  CHECK(c.calls > 10);
  paragraph_samples = c.n;
  free(c.pcm);
  finish(t);
}

/* Cancel from on_audio, mid-paragraph: nothing more is delivered, done comes
 * once, soon, and far less than the paragraph was synthesised. */
static void test_cancel(void)
{
  TEST_BEGIN("cancel");
  uv_loop_init(&loop);
  ml_tts_espeak *t = ml_tts_espeak_create(&loop);
  MUST(t);
  capture c = {.cancel_at = 2 * ML_TTS_RATE}, next = {0};
  speak(t, &c, paragraph, NULL);
  speak(t, &next, "after the cancel", NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ(c.done, 1);
  CHECK_EQ(c.status, ML_TTS_CANCELLED);
  CHECK_EQ(c.audio_after_cancel, 0);
  double ms = (double)(c.t_done - c.t_cancel) / MS;
  printf("cancel after %.1f s of audio: done %.2f ms later\n", (double)c.n / ML_TTS_RATE, ms);
  CHECK(ms < 100);
  CHECK(c.n < paragraph_samples / 4);
  CHECK_EQ(next.status, ML_TTS_OK); /* the worker moved on */
  CHECK(next.n > ML_TTS_RATE / 2);
  free(c.pcm);
  free(next.pcm);
  finish(t);
}

/* ---- backpressure: a consumer that stops taking stops the worker ------------- */

static uv_timer_t timer, timer2;
static capture paced;
static int phase;
static size_t max_buffered;

static void on_pace(uv_timer_t *h)
{
  if (paced.done) { /* the request is gone */
    uv_timer_stop(h);
    return;
  }
  size_t b = ml_tts_request_buffered(paced.req);
  if (b > max_buffered) max_buffered = b;
  if (phase == 0) { /* paused since the first chunk: the ring is full, the worker waits */
    CHECK_EQ(b, ML_TTS_RING_SAMPLES);
    CHECK_EQ(paced.done, 0);
    CHECK_EQ(paced.n, 320);
    phase = 1;
  }
  ml_tts_request_resume(paced.req);
}

static void on_stuck(uv_timer_t *h) { uv_stop(h->loop); }

static void test_backpressure(void)
{
  TEST_BEGIN("backpressure");
  uv_loop_init(&loop);
  ml_tts_espeak *t = ml_tts_espeak_create(&loop);
  MUST(t);
  capture ref = {0};
  const char *text = "Backpressure keeps memory bounded when the listener is slow.";
  speak(t, &ref, text, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  /* 20 ms frames, one per resume: a real-time consumer, sped up 20 times */
  paced = (capture){.take_max = 320};
  speak(t, &paced, text, NULL);
  uv_timer_init(&loop, &timer);
  uv_timer_start(&timer, on_pace, 200, 1);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&timer, NULL);
  CHECK_EQ(phase, 1);
  CHECK_EQ(paced.done, 1);
  CHECK_EQ(paced.status, ML_TTS_OK);
  /* nothing lost or added by pausing (espeak-ng is not bit-exact from one
   * run to the next: a few samples either way) */
  CHECK(paced.n + 160 > ref.n && paced.n < ref.n + 160);
  CHECK(max_buffered <= ML_TTS_RING_SAMPLES);
  printf("backpressure: %zu samples in 320-sample steps, at most %zu buffered\n", paced.n, max_buffered);
  /* cancel while the worker waits on a full ring */
  capture stuck = {.take_max = 1};
  speak(t, &stuck, paragraph, NULL);
  uv_timer_init(&loop, &timer2);
  uv_timer_start(&timer2, on_stuck, 100, 0); /* let the ring fill, then stop the loop */
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ(stuck.n, 1);
  CHECK_EQ(ml_tts_request_buffered(stuck.req), ML_TTS_RING_SAMPLES);
  stuck.cancelled = 1;
  stuck.t_cancel = now_ns();
  ml_tts_request_cancel(stuck.req);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&timer2, NULL);
  CHECK_EQ(stuck.done, 1);
  CHECK_EQ(stuck.status, ML_TTS_CANCELLED);
  CHECK_EQ(stuck.audio_after_cancel, 0);
  printf("cancel of a blocked worker: done %.2f ms later\n", (double)(stuck.t_done - stuck.t_cancel) / MS);
  free(ref.pcm);
  free(paced.pcm);
  free(stuck.pcm);
  finish(t);
}

/* Close with one request speaking (closed from its own on_audio) and two
 * queued: each gets done(cancelled) once, on_closed comes last, and the loop
 * is left with no handle. */
static void test_close_pending(void)
{
  TEST_BEGIN("close with requests pending");
  uv_loop_init(&loop);
  ml_tts_espeak *t = ml_tts_espeak_create(&loop);
  MUST(t);
  capture a = {.close_at_first = 1}, b = {0}, c = {0};
  speak(t, &a, paragraph, NULL);
  speak(t, &b, paragraph, NULL);
  speak(t, &c, "short", NULL);
  int before = closed;
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(a.done == 1 && b.done == 1 && c.done == 1);
  CHECK(a.status == ML_TTS_CANCELLED && b.status == ML_TTS_CANCELLED && c.status == ML_TTS_CANCELLED);
  CHECK_EQ(a.calls, 1);
  CHECK(b.calls == 0 && c.calls == 0);
  CHECK_EQ(closed, before); /* closed with on_closed NULL */
  printf("close while speaking: last done %.2f ms later\n", (double)(c.t_done - a.t_cancel) / MS);
  free(a.pcm);
  finish(NULL);

  /* and closed right after speak(), before the loop ever ran */
  uv_loop_init(&loop);
  t = ml_tts_espeak_create(&loop);
  MUST(t);
  capture d = {0}, e = {0};
  speak(t, &d, paragraph, NULL);
  speak(t, &e, "", NULL);
  ml_tts_espeak_close(t, on_closed, NULL);
  CHECK(ml_tts_espeak_speak(t, "refused", NULL, on_audio, on_done, &d) == NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ(d.done, 1);
  CHECK_EQ(d.status, ML_TTS_CANCELLED);
  CHECK_EQ(e.done, 1);
  CHECK_EQ(e.status, ML_TTS_CANCELLED);
  CHECK_EQ(closed, before + 1);
  free(d.pcm);
  finish(NULL);
}

/* two instances on one loop share the worker; it stops with the last */
static void test_two_instances(void)
{
  TEST_BEGIN("two instances");
  uv_loop_init(&loop);
  ml_tts_espeak *t1 = ml_tts_espeak_create(&loop), *t2 = ml_tts_espeak_create(&loop);
  MUST(t1 && t2);
  capture a = {0}, b = {0};
  speak(t1, &a, "one", NULL);
  speak(t2, &b, "two", NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(a.status == ML_TTS_OK && b.status == ML_TTS_OK && a.n > 0 && b.n > 0);
  CHECK(a.done_seq < b.first_seq);
  int before = closed;
  ml_tts_espeak_close(t1, on_closed, NULL);
  ml_tts_espeak_close(t2, on_closed, NULL);
  free(a.pcm);
  free(b.pcm);
  finish(NULL);
  CHECK_EQ(closed, before + 2);
}

int main(void)
{
  test_hello();
  test_empty();
  test_order();
  test_bad_voice();
  test_streaming();
  test_cancel();
  test_backpressure();
  test_close_pending();
  test_two_instances();
  return ML_TEST_DONE("tts_espeak");
}
