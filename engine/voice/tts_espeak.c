/* espeak-ng on its own thread, audio back on the loop (see tts_espeak.h).
 *
 * Why a thread of our own and not uv_queue_work: a request blocks its thread
 * for the whole synthesis and, with a slow consumer, for as long as the
 * consumer lets the ring stay full. On libuv's pool (4 threads by default)
 * that would starve name resolution (http_client) and file work; and
 * espeak-ng's globals want one owner at a time anyway, which one thread
 * popping one FIFO gives without a second lock around espeak-ng. The thread
 * starts with the first instance and is joined when the last one closes.
 *
 * espeak-ng is initialised lazily, by the first request, once per process,
 * and never terminated: Debian's 1.51 hangs in espeak_Terminate once it has
 * been initialised a second time and has spoken (its internal fifo thread),
 * and without espeak_Terminate LeakSanitizer finds nothing (its memory stays
 * reachable from its globals). Successive worker threads share that state;
 * the join of one happens before the start of the next.
 *
 * Locking: g.mu guards the request queue and, per request, the ring and the
 * cancelled / released flags. Neither thread calls out (espeak-ng, on_audio,
 * on_done) while holding it. The worker calls uv_async_send only under g.mu
 * and only for a request it has not released, and the loop closes an
 * instance's async only once all its requests were released and freed, so no
 * send can reach a closed handle. */
#include "tts_espeak.h"

#include <espeak-ng/speak_lib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ml_runtime.h"
#include "resample.h"

/* espeak-ng's buffer in ms: the grain at which audio streams out and at which
 * a cancel is noticed (it hands over ~20-50 ms per callback) */
#define TTS_CHUNK_MS 20
/* the resampler runs on the worker, so it can afford more than the loop's
 * ML_RESAMPLE_QUALITY: a steeper band edge below 8 kHz for wideband speech */
#define TTS_QUALITY 5
#define TTS_OUT_BLOCK 1024 /* 16 kHz samples resampled per step (stack buffer) */
#define TTS_IN_MAX 4096 /* espeak-ng samples per step, whatever its rate */
#define TTS_VOICE_MAX 40

struct ml_tts_request {
  ml_list link; /* t->reqs while live (loop thread) */
  ml_list queue_link; /* g.queue while waiting for the worker (g.mu) */
  ml_tts_espeak *t;
  ml_tts_audio_cb on_audio;
  ml_tts_done_cb on_done;
  void *ud;
  char voice[TTS_VOICE_MAX];
  int rate_wpm, pitch, volume;
  /* g.mu */
  int16_t *ring; /* ML_TTS_RING_SAMPLES, allocated when the worker starts it */
  size_t head, len;
  int cancelled;
  int released; /* the worker will not touch it again */
  int status;
  /* loop thread */
  int paused; /* on_audio took less than offered */
  /* worker thread */
  ml_resampler *rs;
  size_t skip; /* resampler delay still to drop from the head */
  uint64_t in_total, out_total;
  char text[];
};

struct ml_tts_espeak {
  ml_tts_engine base; /* ml_tts_espeak_engine */
  uv_async_t async;
  ml_list reqs; /* live requests, in speak() order */
  int closing, handle_closing;
  void (*on_closed)(void *data);
  void *data;
};

static uv_once_t g_once = UV_ONCE_INIT;
static struct {
  uv_mutex_t life; /* serialises thread start and join */
  uv_mutex_t mu;
  uv_cond_t cond; /* the worker waits here: work, ring space, cancel, stop */
  ml_list queue;
  int refs; /* live instances (g.life) */
  int stop; /* g.mu */
  uv_thread_t thread;
  /* the worker's own (one thread at a time) */
  int rate; /* espeak-ng's sample rate; 0 not started, -1 failed */
  char voice[TTS_VOICE_MAX]; /* selected in espeak-ng */
  ml_tts_request *cur; /* being synthesised */
} g;

static void globals_init(void)
{
  if (uv_mutex_init(&g.life) || uv_mutex_init(&g.mu) || uv_cond_init(&g.cond)) abort();
  ml_list_init(&g.queue);
}

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* ---- the worker: espeak-ng -> resampler -> ring -------------------------------- */

/* Append to the ring, waiting while it is full. -1 once cancelled. */
static int worker_push(ml_tts_request *r, const int16_t *pcm, size_t n)
{
  size_t s = min_sz(r->skip, n);
  r->skip -= s;
  pcm += s;
  n -= s;
  r->out_total += n;
  uv_mutex_lock(&g.mu);
  while (n && !r->cancelled) {
    if (r->len == ML_TTS_RING_SAMPLES) { /* backpressure: the loop signals after taking */
      uv_cond_wait(&g.cond, &g.mu);
      continue;
    }
    size_t tail = (r->head + r->len) % ML_TTS_RING_SAMPLES;
    size_t k = min_sz(n, min_sz(ML_TTS_RING_SAMPLES - tail, ML_TTS_RING_SAMPLES - r->len));
    memcpy(r->ring + tail, pcm, k * sizeof *pcm);
    r->len += k;
    pcm += k;
    n -= k;
    uv_async_send(&r->t->async); /* libuv coalesces: one wake-up however many chunks */
  }
  int rc = r->cancelled ? -1 : 0;
  uv_mutex_unlock(&g.mu);
  return rc;
}

/* Resample n samples of espeak-ng's and push them; `cap` limits what is kept
 * (the flush keeps only the tail that belongs to the text). -1: stop. */
static int worker_feed(ml_tts_request *r, const int16_t *in, size_t n, uint64_t cap)
{
  int16_t out[TTS_OUT_BLOCK];
  size_t in_max = min_sz(TTS_IN_MAX, (size_t)((uint64_t)TTS_OUT_BLOCK * (uint64_t)g.rate / ML_TTS_RATE));
  size_t done = 0;
  do {
    size_t in_n = min_sz(n - done, in_max), out_n = TTS_OUT_BLOCK;
    if (ml_resampler_process(r->rs, in + done, &in_n, out, &out_n) < 0) return -1;
    if (n && !in_n && !out_n) return -1; /* no progress: never spin */
    done += in_n;
    if (out_n > r->skip && r->out_total + (out_n - r->skip) > cap)
      out_n = r->skip + (size_t)(cap - r->out_total);
    if (worker_push(r, out, out_n) < 0) return -1;
  } while (done < n);
  return 0;
}

/* espeak-ng's callback, on the worker inside espeak_Synth: 1 aborts it */
static int on_synth(short *wav, int n, espeak_EVENT *events)
{
  (void)events;
  ml_tts_request *r = g.cur;
  if (!r) return 1;
  if (!wav || n <= 0) { /* events only: still a chance to notice a cancel */
    uv_mutex_lock(&g.mu);
    int stop = r->cancelled;
    uv_mutex_unlock(&g.mu);
    return stop;
  }
  r->in_total += (uint64_t)n;
  return worker_feed(r, wav, (size_t)n, UINT64_MAX) < 0;
}

/* Push out what the filter still holds, so the audio lasts exactly as long
 * as espeak-ng's (its head delay was dropped by `skip`). */
static int worker_flush(ml_tts_request *r)
{
  static const int16_t zeros[TTS_IN_MAX];
  uint64_t want = (r->in_total * ML_TTS_RATE + (uint64_t)g.rate / 2) / (uint64_t)g.rate;
  for (int i = 0; i < 8 && r->out_total < want; i++)
    if (worker_feed(r, zeros, TTS_IN_MAX, want) < 0) return -1;
  return 0;
}

static int engine_start(void)
{
  if (g.rate == 0) {
    int rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, TTS_CHUNK_MS, NULL, espeakINITIALIZE_DONT_EXIT);
    g.rate = rate >= 1000 ? rate : -1;
    if (g.rate > 0)
      espeak_SetSynthCallback(on_synth);
    else
      ml_log(ML_LOG_ERROR, "tts: espeak-ng did not start (is espeak-ng-data installed?)");
  }
  return g.rate > 0 ? 0 : ML_TTS_ERR_ENGINE;
}

/* A voice's name ("en-us", "English_(Great_Britain)", "gmw/en"), else a
 * language ("en-gb", "pt-br"): espeak-ng knows en-gb only by the latter. */
static int engine_voice(const char *voice)
{
  if (espeak_SetVoiceByName(voice) == EE_OK) return 0;
  espeak_VOICE spec;
  memset(&spec, 0, sizeof spec);
  spec.languages = voice;
  return espeak_SetVoiceByProperties(&spec) == EE_OK ? 0 : -1;
}

/* Loading a voice reads its files (and a language's dictionary): only when
 * it changes. The parameters are set every time, as espeak-ng keeps them. */
static int engine_configure(const ml_tts_request *r)
{
  if (strcmp(g.voice, r->voice) != 0) {
    if (engine_voice(r->voice) != 0) {
      g.voice[0] = '\0'; /* whatever espeak-ng has now, reload next time */
      return ML_TTS_ERR_VOICE;
    }
    snprintf(g.voice, sizeof g.voice, "%s", r->voice);
  }
  espeak_SetParameter(espeakRATE, r->rate_wpm, 0);
  espeak_SetParameter(espeakPITCH, r->pitch, 0);
  espeak_SetParameter(espeakVOLUME, r->volume, 0);
  return 0;
}

static int worker_prepare(ml_tts_request *r)
{
  int rc = engine_start();
  if (rc == 0) rc = engine_configure(r);
  if (rc) return rc;
  int16_t *ring = malloc(ML_TTS_RING_SAMPLES * sizeof *ring);
  r->rs = ml_resampler_create((uint32_t)g.rate, ML_TTS_RATE, TTS_QUALITY);
  if (!ring || !r->rs) {
    free(ring);
    return ML_TTS_ERR_NOMEM;
  }
  r->skip = (size_t)ml_resampler_latency(r->rs);
  uv_mutex_lock(&g.mu);
  r->ring = ring;
  uv_mutex_unlock(&g.mu);
  return 0;
}

static int worker_speak(ml_tts_request *r)
{
  int rc = worker_prepare(r);
  if (rc) return rc;
  g.cur = r;
  /* plain UTF-8 text: no SSML, no phoneme input, no pause added at the end */
  espeak_ERROR e = espeak_Synth(r->text, strlen(r->text) + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, NULL, r);
  g.cur = NULL;
  if (e != EE_OK) return ML_TTS_ERR_ENGINE;
  worker_flush(r); /* a cancel is reported by the flag, not by this */
  return ML_TTS_OK;
}

static void worker_main(void *arg)
{
  (void)arg;
  uv_mutex_lock(&g.mu);
  for (;;) {
    while (!g.stop && ml_list_empty(&g.queue)) uv_cond_wait(&g.cond, &g.mu);
    if (ml_list_empty(&g.queue)) break; /* stop: no instance is left, so nothing is queued */
    ml_tts_request *r = ml_container_of(g.queue.next, ml_tts_request, queue_link);
    ml_list_remove(&r->queue_link);
    int cancelled = r->cancelled;
    uv_mutex_unlock(&g.mu);
    int status = cancelled ? ML_TTS_CANCELLED : worker_speak(r);
    ml_resampler_free(r->rs);
    r->rs = NULL;
    uv_mutex_lock(&g.mu);
    r->status = status;
    r->released = 1;
    uv_async_send(&r->t->async); /* under g.mu: see the top of the file */
  }
  uv_mutex_unlock(&g.mu);
}

static int worker_acquire(void)
{
  uv_once(&g_once, globals_init);
  uv_mutex_lock(&g.life);
  int rc = 0;
  if (g.refs == 0) {
    g.stop = 0;
    rc = uv_thread_create(&g.thread, worker_main, NULL);
  }
  if (rc == 0) g.refs++;
  uv_mutex_unlock(&g.life);
  return rc;
}

/* The last instance stops the thread. It is idle by then (every request of
 * every instance was released), so the join does not wait for espeak-ng. */
static void worker_release(void)
{
  uv_mutex_lock(&g.life);
  if (--g.refs == 0) {
    uv_mutex_lock(&g.mu);
    g.stop = 1;
    uv_cond_signal(&g.cond);
    uv_mutex_unlock(&g.mu);
    uv_thread_join(&g.thread);
  }
  uv_mutex_unlock(&g.life);
}

/* ---- the loop side: delivery, completion, close --------------------------------- */

static void instance_maybe_close(ml_tts_espeak *t);

static void request_free(ml_tts_request *r)
{
  free(r->ring);
  free(r);
}

static void request_finish(ml_tts_request *r)
{
  ml_tts_espeak *t = r->t;
  int status = r->cancelled ? ML_TTS_CANCELLED : r->status;
  ml_list_remove(&r->link);
  if (ml_list_empty(&t->reqs)) uv_unref((uv_handle_t *)&t->async);
  r->on_done(r, status, r->ud);
  request_free(r);
  instance_maybe_close(t);
}

/* Hand over what the ring holds now, no more: a worker that refills it as
 * fast as on_audio drains it must not keep the loop here. Calls on_audio
 * without g.mu, from the ring itself: the worker only writes past len. */
static void request_pump(ml_tts_request *r)
{
  uv_mutex_lock(&g.mu);
  size_t budget = r->len;
  while (budget && !r->cancelled && !r->paused) {
    const int16_t *p = r->ring + r->head;
    size_t n = min_sz(budget, ML_TTS_RING_SAMPLES - r->head);
    uv_mutex_unlock(&g.mu);
    size_t took = min_sz(r->on_audio(r, p, n, r->ud), n);
    uv_mutex_lock(&g.mu);
    r->len -= took;
    r->head = (r->head + took) % ML_TTS_RING_SAMPLES;
    budget -= took;
    if (took < n) r->paused = 1;
    uv_cond_signal(&g.cond); /* room in the ring */
  }
  int more = r->len && !r->cancelled && !r->paused;
  int done = r->released && (r->cancelled || (!r->len && !r->paused));
  uv_mutex_unlock(&g.mu);
  if (done)
    request_finish(r);
  else if (more)
    uv_async_send(&r->t->async); /* the rest on the next loop turn */
}

static void on_async(uv_async_t *h)
{
  ml_tts_espeak *t = h->data;
  ml_list *n, *next;
  for (n = t->reqs.next; n != &t->reqs; n = next) {
    next = n->next; /* only request_pump(r) frees r */
    request_pump(ml_container_of(n, ml_tts_request, link));
  }
}

static void on_async_closed(uv_handle_t *h)
{
  ml_tts_espeak *t = h->data;
  worker_release();
  if (t->on_closed) t->on_closed(t->data);
  free(t);
}

static void instance_maybe_close(ml_tts_espeak *t)
{
  if (!t->closing || t->handle_closing || !ml_list_empty(&t->reqs)) return;
  t->handle_closing = 1;
  uv_close((uv_handle_t *)&t->async, on_async_closed);
}

/* ---- API ------------------------------------------------------------------------ */

static const ml_tts_engine_ops espeak_ops;

ml_tts_espeak *ml_tts_espeak_create(uv_loop_t *loop)
{
  ml_tts_espeak *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->base.ops = &espeak_ops;
  ml_list_init(&t->reqs);
  if (worker_acquire() != 0) {
    free(t);
    return NULL;
  }
  if (uv_async_init(loop, &t->async, on_async) != 0) {
    worker_release();
    free(t);
    return NULL;
  }
  t->async.data = t;
  uv_unref((uv_handle_t *)&t->async); /* referenced while requests are live */
  return t;
}

void ml_tts_espeak_close(ml_tts_espeak *t, void (*on_closed)(void *data), void *data)
{
  if (t->closing) return;
  t->closing = 1;
  t->on_closed = on_closed;
  t->data = data;
  for (ml_list *n = t->reqs.next; n != &t->reqs; n = n->next)
    ml_tts_request_cancel(ml_container_of(n, ml_tts_request, link));
  instance_maybe_close(t);
}

static int is_blank(const char *s)
{
  for (; *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return 0;
  return 1;
}

static int opt_or(int v, int def, int lo, int hi) { return v == 0 ? def : v < lo ? lo : v > hi ? hi : v; }

ml_tts_request *ml_tts_espeak_speak(ml_tts_espeak *t, const char *utf8_text, const ml_tts_options *opts,
                                    ml_tts_audio_cb on_audio, ml_tts_done_cb on_done, void *ud)
{
  if (!t || t->closing || !utf8_text || !on_audio || !on_done) return NULL;
  const char *voice = opts && opts->voice && *opts->voice ? opts->voice : "en-us";
  size_t len = strlen(utf8_text);
  if (strlen(voice) >= TTS_VOICE_MAX) return NULL;
  ml_tts_request *r = calloc(1, sizeof *r + len + 1);
  if (!r) return NULL;
  memcpy(r->text, utf8_text, len + 1);
  snprintf(r->voice, sizeof r->voice, "%s", voice);
  r->rate_wpm = opt_or(opts ? opts->rate_wpm : 0, espeakRATE_NORMAL, espeakRATE_MINIMUM, espeakRATE_MAXIMUM);
  r->pitch = opt_or(opts ? opts->pitch : 0, 50, 1, 100);
  r->volume = opt_or(opts ? opts->volume : 0, 100, 1, 200);
  r->t = t;
  r->on_audio = on_audio;
  r->on_done = on_done;
  r->ud = ud;
  ml_list_init(&r->queue_link);
  ml_list_push(&t->reqs, &r->link);
  uv_ref((uv_handle_t *)&t->async);
  int blank = is_blank(utf8_text);
  uv_mutex_lock(&g.mu);
  if (blank) {
    r->released = 1; /* nothing to say: done on the next turn, the worker never sees it */
  } else {
    ml_list_push(&g.queue, &r->queue_link);
    uv_cond_signal(&g.cond);
  }
  uv_mutex_unlock(&g.mu);
  if (blank) uv_async_send(&t->async);
  return r;
}

void ml_tts_request_cancel(ml_tts_request *r)
{
  uv_mutex_lock(&g.mu);
  if (!r->cancelled) {
    r->cancelled = 1;
    if (ml_list_linked(&r->queue_link)) { /* not started: the worker will never see it */
      ml_list_remove(&r->queue_link);
      r->released = 1;
    }
    uv_cond_signal(&g.cond); /* a worker waiting for ring space */
  }
  uv_mutex_unlock(&g.mu);
  uv_async_send(&r->t->async);
}

void ml_tts_request_resume(ml_tts_request *r)
{
  if (!r->paused) return;
  r->paused = 0;
  uv_async_send(&r->t->async);
}

size_t ml_tts_request_buffered(ml_tts_request *r)
{
  uv_mutex_lock(&g.mu);
  size_t n = r->len;
  uv_mutex_unlock(&g.mu);
  return n;
}

/* ---- the engine interface (tts.h) ---------------------------------------------- */

static ml_tts_request *op_speak(ml_tts_engine *e, const char *utf8_text, const ml_tts_options *opts,
                                ml_tts_audio_cb on_audio, ml_tts_done_cb on_done, void *ud)
{
  return ml_tts_espeak_speak((ml_tts_espeak *)e, utf8_text, opts, on_audio, on_done, ud);
}

static void op_close(ml_tts_engine *e, void (*on_closed)(void *data), void *data)
{
  ml_tts_espeak_close((ml_tts_espeak *)e, on_closed, data);
}

static const ml_tts_engine_ops espeak_ops = {
    .name = "espeak-ng",
    .speak = op_speak,
    .cancel = ml_tts_request_cancel,
    .resume = ml_tts_request_resume,
    .error = NULL, /* the status says it all */
    .close = op_close,
};

ml_tts_engine *ml_tts_espeak_engine(ml_tts_espeak *t) { return t ? &t->base : NULL; }
