/* Local STT (engine/voice/stt_sphinx.c) on a real loop, with real audio:
 * espeak-ng voices in spec/fixtures (16 kHz mono). pocketsphinx's en-us LM
 * hears espeak-ng only fairly, so the LM is held to a measured word error
 * rate, and exact transcripts are asked of a JSGF grammar (an IVR menu).
 *
 * Neither engine is warmed up: the first utterance of a fresh engine (no
 * channel estimate yet, decoded twice) must be right too. Also: 20 ms frames paced in real time give the text
 * of one big write; two streams talking at once share a pool of one decoder; closing a stream or the engine
 * mid-decode; near-silence gives an empty final; a full buffer drops and counts; a missing model is a clear
 * error. Prints the decoder's create time and RSS, the real-time factor and the flush-to-final latency. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lauxlib.h"
#include "ml_runtime.h"
#include "ml_test.h"
#include "stt_sphinx.h"
#include "wav.h"

#define FIX ML_SOURCE_DIR "/spec/fixtures/"
#define MAX_FINALS 8

static ml_loop *loop;

typedef struct heard {
  char finals[MAX_FINALS][256];
  int nfinals, npartials;
  uint64_t final_ns;
} heard;

typedef struct clip {
  int16_t *pcm;
  size_t n;
} clip;

static clip digits, order, cancel, billing, burst;

static void on_result(ml_stt_stream *st, const char *text, int is_final, void *ud)
{
  heard *h = ud;
  (void)st;
  if (!is_final) {
    h->npartials++;
    return;
  }
  if (h->nfinals < MAX_FINALS) snprintf(h->finals[h->nfinals], sizeof h->finals[0], "%s", text);
  h->nfinals++;
  h->final_ns = now_ns();
}

/* turn the loop until *count reaches want (or ms pass); 0 when it did */
static int pump_until(int *count, int want, int ms)
{
  uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;
  while (*count < want && now_ns() < end) {
    uv_run(loop->uv, UV_RUN_NOWAIT);
    usleep(1000);
  }
  return *count >= want ? 0 : -1;
}

static void pump(int ms)
{
  int never = 0;
  pump_until(&never, 1, ms);
}

static clip load(const char *name)
{
  clip c;
  char err[128], path[512];
  snprintf(path, sizeof path, FIX "%s", name);
  MUST(ml_wav_load(path, 16000, &c.pcm, &c.n, err, sizeof err) == 0);
  return c;
}

static double cpu_seconds(void)
{
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static long rss_kb(void)
{
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
  }
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* word error rate of hyp against ref: word-level edit distance / ref words */
static int split(const char *s, char w[][32], int max)
{
  int n = 0;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", s);
  for (char *save, *t = strtok_r(buf, " ", &save); t && n < max; t = strtok_r(NULL, " ", &save))
    snprintf(w[n++], 32, "%s", t);
  return n;
}

static int word_errors(const char *ref, const char *hyp, int *nref)
{
  char r[32][32], h[32][32];
  int nr = split(ref, r, 32), nh = split(hyp, h, 32), d[33][33];
  for (int i = 0; i <= nr; i++) d[i][0] = i;
  for (int j = 0; j <= nh; j++) d[0][j] = j;
  for (int i = 1; i <= nr; i++)
    for (int j = 1; j <= nh; j++) {
      int sub = d[i - 1][j - 1] + (strcmp(r[i - 1], h[j - 1]) != 0);
      int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
      d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
  *nref = nr;
  return d[nr][nh];
}

/* one utterance in one write; returns the final text (in h) */
static const char *say(ml_stt_stream *st, heard *h, const clip *c)
{
  int want = h->nfinals + 1;
  CHECK_EQ(ml_stt_stream_write(st, c->pcm, c->n), c->n);
  ml_stt_stream_flush(st);
  MUST(pump_until(&h->nfinals, want, 20000) == 0);
  return h->finals[want - 1];
}

/* ---- real-time feeding: 20 ms frames from a uv timer ----------------------- */

typedef struct feeder {
  uv_timer_t timer;
  ml_stt_stream *st[2];
  const clip *clip[2];
  size_t off[2];
  int n, done;
  uint64_t flush_ns;
} feeder;

static void feed_tick(uv_timer_t *t)
{
  feeder *f = t->data;
  int left = 0;
  for (int i = 0; i < f->n; i++) {
    size_t k = f->clip[i]->n - f->off[i] < 320 ? f->clip[i]->n - f->off[i] : 320;
    if (k) ml_stt_stream_write(f->st[i], f->clip[i]->pcm + f->off[i], k);
    f->off[i] += k;
    left += f->off[i] < f->clip[i]->n;
  }
  if (left) return;
  for (int i = 0; i < f->n; i++) ml_stt_stream_flush(f->st[i]);
  f->flush_ns = now_ns();
  uv_timer_stop(t);
  uv_close((uv_handle_t *)t, NULL);
  f->done = 1;
}

static void feed(feeder *f)
{
  uv_timer_init(loop->uv, &f->timer);
  f->timer.data = f;
  uv_timer_start(&f->timer, feed_tick, 20, 20);
  MUST(pump_until(&f->done, 1, 30000) == 0);
}

/* ---- tests ------------------------------------------------------------------- */

static void test_missing_model(void)
{
  TEST_BEGIN("missing model");
  ml_stt_sphinx_config cfg;
  ml_stt_sphinx_config_default(&cfg);
  cfg.hmm = "/nonexistent/en-us";
  char err[256] = "";
  CHECK(ml_stt_sphinx_create(loop->uv, &cfg, err, sizeof err) == NULL);
  CHECK(strstr(err, "acoustic model not found: /nonexistent/en-us/mdef") != NULL);
  cfg.hmm = NULL;
  cfg.jsgf = FIX "nonexistent.gram";
  CHECK(ml_stt_sphinx_create(loop->uv, &cfg, err, sizeof err) == NULL);
  CHECK(strstr(err, "grammar not found") != NULL);
}

static int closed_count;
static void on_engine_closed(void *data)
{
  (void)data;
  closed_count++;
}

static ml_stt_sphinx *engine(const ml_stt_sphinx_config *cfg, double *ready_s, long *rss_delta)
{
  char err[256];
  long rss0 = rss_kb();
  uint64_t t0 = now_ns();
  ml_stt_sphinx *s = ml_stt_sphinx_create(loop->uv, cfg, err, sizeof err);
  MUST(s != NULL);
  while (ml_stt_sphinx_init_seconds(s) == 0 && now_ns() - t0 < 30000000000ull) pump(5);
  MUST(ml_stt_sphinx_init_seconds(s) > 0);
  if (ready_s) *ready_s = ml_stt_sphinx_init_seconds(s);
  if (rss_delta) *rss_delta = rss_kb() - rss0;
  return s;
}

static void engine_close(ml_stt_sphinx *s)
{
  int want = closed_count + 1;
  ml_stt_sphinx_close(s, on_engine_closed, NULL);
  CHECK_EQ(pump_until(&closed_count, want, 5000), 0);
}

/* The LM engine, one decoder: accuracy, then pacing, sharing, closing. */
static ml_stt_sphinx *lm;

/* The engine's first utterance is fed at the pace of speech, to time its
 * second pass: flush -> final is that pass over the whole utterance. */
static void test_lm_accuracy(void)
{
  TEST_BEGIN("LM word error rate");
  heard h = {0};
  ml_stt_stream *st = ml_stt_stream_open(lm, on_result, &h);
  MUST(st != NULL);
  static const struct {
    const clip *c;
    const char *ref;
  } utts[] = {{&digits, "one two three four five"},
              {&digits, "one two three four five"},
              {&order, "i would like to order a large pizza"},
              {&cancel, "please cancel my order"}};
  int errs = 0, words = 0, cold_errs = 0, cold_words = 0;
  double audio = 0, cpu0 = 0;
  for (size_t i = 0; i < sizeof utts / sizeof utts[0]; i++) {
    const char *hyp;
    if (i == 1) cpu0 = cpu_seconds(); /* the rate of a single pass */
    if (i == 0) {
      feeder f = {.st = {st}, .clip = {utts[0].c}, .n = 1};
      feed(&f);
      MUST(pump_until(&h.nfinals, 1, 10000) == 0);
      hyp = h.finals[0];
      printf("  LM first utterance of the engine (%.1f s, real-time feed): flush -> final %.0f ms\n",
             (double)utts[0].c->n / 16000, (double)(h.final_ns - f.flush_ns) / 1e6);
    } else {
      hyp = say(st, &h, utts[i].c);
    }
    int nref, e = word_errors(utts[i].ref, hyp, &nref);
    printf("  LM %s: \"%s\" (%d/%d word errors)\n", i ? "next" : "first", hyp, e, nref);
    audio += i ? (double)utts[i].c->n / 16000 : 0;
    *(i ? &errs : &cold_errs) += e;
    *(i ? &words : &cold_words) += nref;
  }
  double rtf = (cpu_seconds() - cpu0) / audio;
  printf("  LM WER: first utterance %d/%d words, then %d/%d; real-time factor %.2f CPU s per audio s\n",
         cold_errs, cold_words, errs, words, rtf);
  /* measured: 0 errors in all 22 words (the first utterance lost all 5
   * without its second pass); allow one in it and two in the rest */
  CHECK(cold_errs <= 1);
  CHECK(errs <= 2);
  CHECK(h.npartials >= 1); /* interim results every 500 ms of audio */
  ml_stt_stream_stats stats;
  ml_stt_stream_stats_get(st, &stats);
  CHECK_EQ(stats.utterances, 4);
  CHECK_EQ(stats.dropped, 0);
  CHECK_EQ(stats.decoded, stats.written);
  ml_stt_stream_close(st);
}

/* Streams opened together start from the same channel estimate, so the same
 * audio must give the same text whether it comes in one write or in 20 ms
 * frames at the pace of speech; and two streams talking at once with one
 * decoder: the second waits for the first's flush, then catches up. */
static void test_realtime_and_sharing(void)
{
  TEST_BEGIN("20 ms frames, two streams, pool of one");
  heard hb = {0}, hr = {0}, ha = {0}, ho = {0}, hc = {0};
  ml_stt_stream *big = ml_stt_stream_open(lm, on_result, &hb);
  ml_stt_stream *rt = ml_stt_stream_open(lm, on_result, &hr);
  ml_stt_stream *a = ml_stt_stream_open(lm, on_result, &ha);
  ml_stt_stream *o = ml_stt_stream_open(lm, on_result, &ho);
  ml_stt_stream *obig = ml_stt_stream_open(lm, on_result, &hc);
  MUST(big && rt && a && o && obig);
  const char *ref = say(big, &hb, &digits);
  const char *oref = say(obig, &hc, &order);

  feeder f = {.st = {rt}, .clip = {&digits}, .n = 1};
  feed(&f);
  MUST(pump_until(&hr.nfinals, 1, 10000) == 0);
  CHECK_STR(hr.finals[0], ref);
  printf("  latency flush -> final (real-time feed, %.1f s utterance): %.0f ms\n", (double)digits.n / 16000,
         (double)(hr.final_ns - f.flush_ns) / 1e6);

  /* both talk at once: `a` holds the decoder, `o` queues its audio */
  feeder g = {.st = {a, o}, .clip = {&digits, &order}, .n = 2};
  feed(&g);
  int both = 0;
  for (uint64_t end = now_ns() + 20000000000ull; both < 2 && now_ns() < end;) {
    pump(5);
    both = (ha.nfinals >= 1) + (ho.nfinals >= 1);
  }
  CHECK_EQ(both, 2);
  CHECK_STR(ha.finals[0], ref);
  CHECK_STR(ho.finals[0], oref);
  printf("  shared decoder: first final %.0f ms after the flush, second %.0f ms\n",
         (double)(ha.final_ns - g.flush_ns) / 1e6, (double)(ho.final_ns - g.flush_ns) / 1e6);
  ml_stt_stream_close(big);
  ml_stt_stream_close(rt);
  ml_stt_stream_close(a);
  ml_stt_stream_close(o);
  ml_stt_stream_close(obig);
}

static void test_silence(void)
{
  TEST_BEGIN("silence");
  heard h = {0};
  ml_stt_stream *st = ml_stt_stream_open(lm, on_result, &h);
  clip quiet = {calloc(32000, sizeof(int16_t)), 32000};
  MUST(quiet.pcm != NULL);
  CHECK_STR(say(st, &h, &quiet), ""); /* digital silence */
  for (size_t i = 0; i < quiet.n; i++) quiet.pcm[i] = (int16_t)((int)(rng() % 41) - 20);
  CHECK_STR(say(st, &h, &quiet), ""); /* a quiet line */
  ml_stt_stream_flush(st); /* an empty utterance */
  CHECK_EQ(pump_until(&h.nfinals, 3, 5000), 0);
  CHECK_STR(h.finals[2], "");
  free(quiet.pcm);
  ml_stt_stream_close(st);
}

/* Closed mid-decode: no callback after close, and the decoder serves the
 * next stream. */
static void test_close_stream(void)
{
  TEST_BEGIN("close a stream mid-decode");
  heard h = {0}, h2 = {0};
  ml_stt_stream *st = ml_stt_stream_open(lm, on_result, &h);
  for (int i = 0; i < 3; i++) ml_stt_stream_write(st, order.pcm, order.n);
  ml_stt_stream_flush(st);
  pump(100);
  ml_stt_stream_close(st);
  ml_stt_stream *next = ml_stt_stream_open(lm, on_result, &h2);
  CHECK(strcmp(say(next, &h2, &order), "") != 0);
  CHECK_EQ(h.nfinals, 0);
  ml_stt_stream_close(next);
}

/* Turn the loop until the decoder has taken all st's audio (it is then
 * within 300 ms of its end, or in the second pass after it). */
static void wait_taken(ml_stt_stream *st)
{
  ml_stt_stream_stats stats;
  uint64_t end = now_ns() + 10000000000ull;
  do {
    pump(1);
    ml_stt_stream_stats_get(st, &stats);
  } while (stats.decoded < stats.written && now_ns() < end);
  CHECK_EQ(stats.decoded, stats.written);
}

/* The IVR grammar: exact transcripts, from the engine's first utterance on;
 * a full buffer drops and counts; closing during a first utterance's second
 * pass. */
static void test_grammar(void)
{
  TEST_BEGIN("JSGF grammar");
  ml_stt_sphinx_config cfg;
  ml_stt_sphinx_config_default(&cfg);
  cfg.jsgf = FIX "stt_ivr.gram";
  cfg.buffer_ms = 3000;
  double ready;
  long rss;
  ml_stt_sphinx *g = engine(&cfg, &ready, &rss);
  printf("  JSGF decoder: created in %.2f s, RSS +%ld MB\n", ready, rss / 1024);

  /* streams opened before any utterance has words start cold */
  heard hc = {0}, hk = {0};
  ml_stt_stream *cold = ml_stt_stream_open(g, on_result, &hc);
  ml_stt_stream *killed = ml_stt_stream_open(g, on_result, &hk);
  MUST(cold && killed);
  /* closed at the end of its audio: in its second pass, or just before */
  CHECK_EQ(ml_stt_stream_write(killed, order.pcm, order.n), order.n);
  ml_stt_stream_flush(killed);
  wait_taken(killed);
  pump(10);
  int heard_before = hk.nfinals;
  ml_stt_stream_close(killed);
  pump(100);
  CHECK_EQ(hk.nfinals, heard_before);

  /* the engine's first utterance: without its second pass it was "one two
   * two three four five" */
  heard h = {0};
  ml_stt_stream *st = ml_stt_stream_open(g, on_result, &h);
  uint64_t t0 = now_ns();
  CHECK_STR(say(st, &h, &digits), "one two three four five");
  printf("  JSGF first utterance of the engine (%.1f s in one write): both passes in %.0f ms\n",
         (double)digits.n / 16000, (double)(h.final_ns - t0) / 1e6);
  h.nfinals = 0;
  double cpu0 = cpu_seconds();
  CHECK_STR(say(st, &h, &billing), "billing");
  CHECK_STR(say(st, &h, &digits), "one two three four five");
  CHECK_STR(say(st, &h, &billing), "billing");
  printf("  JSGF real-time factor %.3f\n",
         (cpu_seconds() - cpu0) / ((double)(2 * billing.n + digits.n) / 16000));

  /* st holds the only decoder (an utterance without a flush); the other
   * stream's 3 s buffer takes 3 s, the rest is dropped and counted */
  heard h2 = {0};
  ml_stt_stream *late = ml_stt_stream_open(g, on_result, &h2);
  ml_stt_stream_write(st, billing.pcm, 1600);
  pump(50);
  CHECK_EQ(ml_stt_stream_write(late, order.pcm, order.n), order.n);
  CHECK_EQ(ml_stt_stream_write(late, digits.pcm, digits.n), 48000 - order.n);
  ml_stt_stream_stats stats;
  ml_stt_stream_stats_get(late, &stats);
  CHECK_EQ(stats.dropped, order.n + digits.n - 48000);
  CHECK_EQ(stats.written, 48000);
  CHECK_EQ(stats.decoded, 0);
  ml_stt_stream_write(st, billing.pcm + 1600, billing.n - 1600);
  ml_stt_stream_flush(st);
  ml_stt_stream_flush(late);
  CHECK_EQ(pump_until(&h2.nfinals, 1, 10000), 0);
  CHECK_STR(h.finals[3], "billing");
  ml_stt_stream_close(late);

  /* closing the engine while a cold stream's utterance is in its second
   * pass and another waits: no callback, every handle gone */
  CHECK_EQ(ml_stt_stream_write(cold, digits.pcm, digits.n), digits.n);
  ml_stt_stream_flush(cold);
  wait_taken(cold);
  for (int i = 0; i < 6; i++) ml_stt_stream_write(st, digits.pcm + i * 2000, 2000);
  pump(5);
  int before = h.nfinals;
  engine_close(g);
  CHECK_EQ(h.nfinals, before);
}

/* A noise the VAD takes for speech (spec/fixtures/noise_burst.wav) as the
 * engine's first utterance: no words. Its second pass, with the noise's own
 * channel mean, would give the grammar's "five eight": a cold utterance
 * without words is left alone. Words after it still get their second pass. */
static void test_grammar_noise(void)
{
  TEST_BEGIN("JSGF grammar: a cold utterance of noise has no words");
  ml_stt_sphinx_config cfg;
  ml_stt_sphinx_config_default(&cfg);
  cfg.jsgf = FIX "stt_ivr.gram";
  ml_stt_sphinx *g = engine(&cfg, NULL, NULL);
  heard h = {0};
  ml_stt_stream *st = ml_stt_stream_open(g, on_result, &h);
  CHECK_STR(say(st, &h, &burst), "");
  CHECK_STR(say(st, &h, &digits), "one two three four five");
  ml_stt_stream_close(st);
  engine_close(g);
}

int main(void)
{
  lua_State *L = luaL_newstate();
  REQUIRE(L != NULL);
  loop = ml_loop_new(NULL, L);
  REQUIRE(loop != NULL);
  int handles0 = ml_loop_handles(loop);
  digits = load("stt_digits.wav");
  order = load("stt_order.wav");
  cancel = load("stt_cancel.wav");
  billing = load("stt_billing.wav");
  burst = load("noise_burst.wav");

  test_missing_model();
  CHECK_EQ(ml_loop_handles(loop), handles0);
  test_grammar();
  test_grammar_noise();
  malloc_trim(0); /* so that the next RSS figure is the LM decoder's own */

  double ready;
  long rss;
  lm = engine(NULL, &ready, &rss);
  printf("  LM decoder: created in %.2f s, RSS +%ld MB\n", ready, rss / 1024);
  test_lm_accuracy();
  test_realtime_and_sharing();
  test_silence();
  test_close_stream();
  engine_close(lm);
  CHECK_EQ(ml_loop_handles(loop), handles0);

  free(digits.pcm);
  free(order.pcm);
  free(burst.pcm);
  free(cancel.pcm);
  free(billing.pcm);
  ml_loop_free(loop);
  lua_close(L);
  return ML_TEST_DONE("test_stt_sphinx");
}
