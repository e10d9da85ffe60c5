/* Local STT: pocketsphinx decoders on worker threads (see stt_sphinx.h).
 *
 * Threads and locks. One mutex (s->mu) guards everything the loop thread and
 * the workers share: the queue of streams waiting for a decoder, each stream's
 * ring, flush marks and counters, the result queue and the CMN prior. A worker
 * holds it only to move samples out of a ring or results in, never while it
 * decodes. A second mutex (model_mu) serialises decoder creation and
 * destruction, which touch sphinxbase's global state. The decoders themselves
 * are each touched by one worker only. */
#include "stt_sphinx.h"

#include <pocketsphinx.h>
#include <sphinxbase/cmn.h>
#include <sphinxbase/err.h>
#include <sphinxbase/feat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ml_runtime.h"

#define ML_STT_CHUNK 4800 /* samples decoded per lock round (300 ms): bounds cancel latency */
/* The decoder is always fed 20 ms at a time: its results depend on how the
 * audio is sliced (measured: a cold "billing" became "two three" when fed in
 * 300 ms blocks), and they must not depend on when the worker woke up. */
#define ML_STT_SLICE 320
#define ML_STT_MARKS 32 /* flushes a stream may have pending */
#define ML_STT_CMN_MAX 64 /* cepstral vector length bound (en-us: 13) */

/* A decoder's live cepstral mean state: the running mean, the sum of the
 * frames it came from and their count (the weight of the evidence). */
typedef struct ml_stt_cmn {
  mfcc_t mean[ML_STT_CMN_MAX], sum[ML_STT_CMN_MAX];
  int32 nframe;
} ml_stt_cmn;

typedef struct ml_stt_worker {
  ml_stt_sphinx *s;
  uv_thread_t thread;
  ps_decoder_t *ps;
  cmd_ln_t *config;
  ml_stt_stream *cur; /* the stream whose utterance this decoder holds */
  int in_utt;
  uint64_t utt_samples, next_partial;
  char partial[512]; /* last interim text posted, to post only changes */
  ml_stt_cmn cmn_init; /* the model's: its -cmninit mean, no frames */
  /* A cold utterance (no channel estimate behind it) keeps its audio for a
   * second pass at its end; NULL otherwise, or when it outgrew keep_max. */
  int16_t *keep;
  size_t keep_len, keep_cap, keep_max;
  int16_t buf[ML_STT_CHUNK];
} ml_stt_worker;

struct ml_stt_stream {
  ml_list link; /* s->waiting while it waits for a decoder */
  ml_list all_link; /* s->streams */
  ml_stt_sphinx *s;
  ml_stt_result_cb on_result;
  void *ud;
  ml_stt_worker *worker; /* bound for the current utterance */
  int closed; /* the owner let go: nobody hears it any more */
  int warned; /* a drop was logged since the last flush */
  int16_t *ring;
  size_t cap, head, len;
  uint64_t marks[ML_STT_MARKS]; /* flush positions in `written` samples */
  unsigned mark_head, mark_len;
  ml_stt_stream_stats stats;
  int has_cmn;
  ml_stt_cmn cmn;
};

typedef struct ml_stt_result {
  ml_list link;
  ml_stt_stream *st;
  int is_final;
  char text[];
} ml_stt_result;

struct ml_stt_sphinx {
  uv_loop_t *loop;
  uv_async_t async; /* workers -> loop: results ready, a worker exited */
  ml_stt_sphinx_config cfg;
  char hmm[512], lm[512], dict[512], jsgf[512];
  uv_mutex_t mu, model_mu;
  uv_cond_t cv; /* broadcast: audio, a flush, a close or the stop */
  ml_list waiting; /* streams with work and no decoder, FIFO */
  ml_list streams; /* every stream not yet freed */
  ml_list results; /* for the loop, FIFO */
  ml_stt_worker *workers;
  unsigned nworkers, nstarted, nexited, nfailed;
  int stopping; /* workers: finish now */
  int closing; /* loop: close was called */
  int has_prior;
  ml_stt_cmn prior;
  double init_seconds;
  char err[256]; /* a worker's decoder failed to load */
  int err_logged;
  void (*on_closed)(void *data);
  void *closed_data;
};

void ml_stt_sphinx_config_default(ml_stt_sphinx_config *cfg)
{
  memset(cfg, 0, sizeof *cfg);
  cfg->pool = 1;
  cfg->buffer_ms = 10000;
  cfg->partial_ms = 500;
  cfg->max_utt_ms = 30000;
}

/* ---- configuration --------------------------------------------------------- */

static int path_check(char *dst, size_t cap, const char *given, const char *dflt, const char *leaf,
                      const char *what, char *err, size_t errcap)
{
  snprintf(dst, cap, "%s", given ? given : dflt);
  char probe[600];
  snprintf(probe, sizeof probe, "%s%s", dst, leaf);
  if (access(probe, R_OK) == 0) return 0;
  snprintf(err, errcap, "stt_sphinx: %s not found: %s%s", what, probe,
           given ? "" : " (install pocketsphinx-en-us)");
  return -1;
}

static int config_paths(ml_stt_sphinx *s, char *err, size_t errcap)
{
  const ml_stt_sphinx_config *c = &s->cfg;
  if (path_check(s->hmm, sizeof s->hmm, c->hmm, ML_STT_SPHINX_MODEL "/en-us", "/mdef", "acoustic model", err,
                 errcap) != 0)
    return -1;
  if (path_check(s->dict, sizeof s->dict, c->dict, ML_STT_SPHINX_MODEL "/cmudict-en-us.dict", "",
                 "dictionary", err, errcap) != 0)
    return -1;
  if (c->jsgf) return path_check(s->jsgf, sizeof s->jsgf, c->jsgf, NULL, "", "grammar", err, errcap);
  return path_check(s->lm, sizeof s->lm, c->lm, ML_STT_SPHINX_MODEL "/en-us.lm.bin", "", "language model",
                    err, errcap);
}

/* A config per decoder: ps_init writes into it (feat.params, model paths)
 * and its reference count is not atomic, so decoders cannot share one. */
static cmd_ln_t *config_new(ml_stt_sphinx *s)
{
  if (s->jsgf[0])
    return cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", s->hmm, "-dict", s->dict, "-jsgf", s->jsgf, NULL);
  return cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", s->hmm, "-dict", s->dict, "-lm", s->lm, NULL);
}

/* ---- the worker side (s->mu held unless said otherwise) --------------------- */

static double mono_seconds(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void result_post(ml_stt_sphinx *s, ml_stt_stream *st, const char *text, int is_final)
{
  size_t len = strlen(text);
  ml_stt_result *r = malloc(sizeof *r + len + 1);
  if (!r) return; /* a lost result beats a dead process; the owner times out */
  r->st = st;
  r->is_final = is_final;
  memcpy(r->text, text, len + 1);
  ml_list_push(&s->results, &r->link);
  uv_async_send(&s->async);
}

static void stream_free(ml_stt_stream *st)
{
  ml_list_remove(&st->all_link);
  free(st->ring);
  free(st);
}

/* Samples the worker may take now: up to the next flush mark, a chunk and the
 * utterance bound. *end says the utterance ends after them. */
static size_t stream_take(ml_stt_worker *w, ml_stt_stream *st, int *end)
{
  uint64_t limit = st->stats.decoded + st->len;
  *end = 0;
  if (st->mark_len && st->marks[st->mark_head] <= limit) {
    limit = st->marks[st->mark_head];
    *end = 1;
  }
  size_t n = (size_t)(limit - st->stats.decoded);
  uint64_t max_utt = (uint64_t)w->s->cfg.max_utt_ms * (ML_STT_RATE / 1000);
  if (max_utt && w->utt_samples + n >= max_utt) {
    n = (size_t)(max_utt - w->utt_samples);
    *end = 1;
  }
  if (n > ML_STT_CHUNK) {
    n = ML_STT_CHUNK;
    *end = 0;
  }
  if (!*end) n -= n % ML_STT_SLICE; /* the rest waits for the slice to fill */
  for (size_t i = 0; i < n; i++) {
    w->buf[i] = st->ring[st->head];
    st->head = (st->head + 1) % st->cap;
  }
  st->len -= n;
  st->stats.decoded += n;
  if (*end && st->mark_len && st->marks[st->mark_head] == st->stats.decoded) {
    st->mark_head = (st->mark_head + 1) % ML_STT_MARKS;
    st->mark_len--;
  }
  return n;
}

static cmn_t *worker_cmn(ml_stt_worker *w) { return ps_get_feat(w->ps)->cmn_struct; }

/* The whole state, not just the mean (cmn_live_set): a restored mean must
 * keep its weight, or a stream with one utterance behind it would fall back
 * most of the way to the model's default on its next. */
static void cmn_save(ml_stt_cmn *to, const cmn_t *c)
{
  memcpy(to->mean, c->cmn_mean, (size_t)c->veclen * sizeof(mfcc_t));
  memcpy(to->sum, c->sum, (size_t)c->veclen * sizeof(mfcc_t));
  to->nframe = c->nframe;
}

static void cmn_restore(cmn_t *c, const ml_stt_cmn *from)
{
  memcpy(c->cmn_mean, from->mean, (size_t)c->veclen * sizeof(mfcc_t));
  memcpy(c->sum, from->sum, (size_t)c->veclen * sizeof(mfcc_t));
  c->nframe = from->nframe;
}

static void keep_drop(ml_stt_worker *w)
{
  free(w->keep);
  w->keep = NULL;
  w->keep_len = w->keep_cap = 0;
}

/* Unlocked: the cold utterance's audio so far, for its second pass; past
 * keep_max (the stream's buffer) it is not worth a second pass: dropped. */
static void keep_add(ml_stt_worker *w, size_t n)
{
  if (!w->keep) return;
  if (w->keep_len + n > w->keep_cap) {
    size_t cap = w->keep_cap * 2;
    if (cap < w->keep_len + n) cap = w->keep_len + n;
    if (cap > w->keep_max) cap = w->keep_max;
    int16_t *k = w->keep_len + n <= cap ? realloc(w->keep, cap * sizeof *k) : NULL;
    if (!k) {
      keep_drop(w);
      return;
    }
    w->keep = k;
    w->keep_cap = cap;
  }
  memcpy(w->keep + w->keep_len, w->buf, n * sizeof *w->buf);
  w->keep_len += n;
}

/* Unlocked: start an utterance with the stream's channel estimate. With none
 * (no frames behind it: the engine's first utterance), keep the audio. */
static void utt_start(ml_stt_worker *w, const ml_stt_cmn *cmn)
{
  keep_drop(w);
  if (cmn->nframe == 0) {
    w->keep_cap = w->keep_max < ML_STT_RATE ? w->keep_max : ML_STT_RATE; /* 1 s, doubled as needed */
    w->keep = malloc(w->keep_cap * sizeof *w->keep);
    if (!w->keep) w->keep_cap = 0;
  }
  cmn_restore(worker_cmn(w), cmn);
  ps_start_utt(w->ps);
  w->in_utt = 1;
  w->utt_samples = 0;
  w->next_partial = (uint64_t)w->s->cfg.partial_ms * (ML_STT_RATE / 1000);
  w->partial[0] = 0;
}

static const char *utt_hyp(ml_stt_worker *w)
{
  int32 score;
  const char *h = w->ps ? ps_get_hyp(w->ps, &score) : NULL;
  return h ? h : "";
}

/* Unlocked: the stream was closed or the engine is stopping. */
static int worker_cancelled(ml_stt_worker *w)
{
  uv_mutex_lock(&w->s->mu);
  int gone = w->s->stopping || w->cur->closed;
  uv_mutex_unlock(&w->s->mu);
  return gone;
}

/* Unlocked, after a cold utterance's first pass: decode its audio again with
 * the channel mean estimated from the utterance itself (the live estimate at
 * its end: the mean of its frames, since it started with none), which the
 * first pass only had at its end. Returns the final text, or NULL when a
 * close or the stop interrupted it (then the decoder is still in_utt). The
 * channel state left behind is the first pass's, so the utterances after it
 * start exactly as they would have without the second pass. */
static const char *utt_second_pass(ml_stt_worker *w)
{
  cmn_t *c = worker_cmn(w);
  /* ps_end_utt skips the update when its cepstrum buffer is full (seen with
   * the grammar): the mean must be this utterance's, not -cmninit */
  cmn_live_update(c);
  ml_stt_cmn own;
  cmn_save(&own, c);
  if (!own.nframe) { /* no frame with energy: nothing learnt, nothing to redo */
    keep_drop(w);
    return utt_hyp(w);
  }
  /* A first pass without a single word heard noise, not badly normalised
   * words: a second pass with the noise's own mean would turn it into words
   * (a grammar always finds a path), and an agent must be able to tell a
   * cough from speech (a false interruption). */
  if (!utt_hyp(w)[0]) {
    cmn_restore(c, &own);
    keep_drop(w);
    return "";
  }
  ps_start_utt(w->ps);
  w->in_utt = 1;
  for (size_t i = 0; i < w->keep_len; i += ML_STT_SLICE) {
    if (i && i % ML_STT_CHUNK == 0 && worker_cancelled(w)) return NULL;
    size_t k = w->keep_len - i < ML_STT_SLICE ? w->keep_len - i : ML_STT_SLICE;
    ps_process_raw(w->ps, w->keep + i, k, FALSE, FALSE);
  }
  ps_end_utt(w->ps);
  w->in_utt = 0;
  cmn_restore(c, &own);
  keep_drop(w);
  return utt_hyp(w);
}

/* Unlocked: decode n samples; returns the text to post (final or a changed
 * interim) or NULL (also when a second pass was interrupted). */
static const char *utt_process(ml_stt_worker *w, size_t n, int end)
{
  if (!w->ps) return end ? "" : NULL; /* no decoder could be loaded */
  keep_add(w, n);
  for (size_t i = 0; i < n; i += ML_STT_SLICE)
    ps_process_raw(w->ps, w->buf + i, n - i < ML_STT_SLICE ? n - i : ML_STT_SLICE, FALSE, FALSE);
  w->utt_samples += n;
  if (end) {
    ps_end_utt(w->ps);
    w->in_utt = 0;
    return w->keep ? utt_second_pass(w) : utt_hyp(w);
  }
  if (!w->s->cfg.partial_ms || w->utt_samples < w->next_partial) return NULL;
  w->next_partial += (uint64_t)w->s->cfg.partial_ms * (ML_STT_RATE / 1000);
  const char *h = utt_hyp(w);
  if (!h[0] || strcmp(h, w->partial) == 0) return NULL;
  snprintf(w->partial, sizeof w->partial, "%s", h);
  return h;
}

/* The utterance ended: keep its channel estimate, post its text, free the
 * decoder and queue the stream again if it has more to say. */
static void utt_finish(ml_stt_worker *w, ml_stt_stream *st, const char *text)
{
  ml_stt_sphinx *s = w->s;
  /* only speech teaches the stream and the engine about the channel: the
   * mean of a noise would normalise the next words wrongly (and a stream
   * still without words stays cold: its next words get their second pass) */
  if (w->ps && text[0]) {
    cmn_save(&st->cmn, worker_cmn(w));
    st->has_cmn = 1;
    s->prior = st->cmn;
    s->has_prior = 1;
  }
  st->stats.utterances++;
  result_post(s, st, text, 1);
  w->cur = NULL;
  st->worker = NULL;
  if (st->len || st->mark_len) ml_list_push(&s->waiting, &st->link);
}

/* The owner closed the stream mid-utterance: abandon it. Unlocks around the
 * decoder call. */
static void utt_abandon(ml_stt_worker *w, ml_stt_stream *st)
{
  if (w->in_utt && w->ps) {
    uv_mutex_unlock(&w->s->mu);
    ps_end_utt(w->ps); /* a decoder must be between utterances to start one */
    uv_mutex_lock(&w->s->mu);
  }
  w->in_utt = 0;
  w->cur = NULL;
  keep_drop(w);
  stream_free(st);
}

/* One round of work on the bound stream; 0 when there was nothing to do. */
static int worker_round(ml_stt_worker *w)
{
  ml_stt_sphinx *s = w->s;
  ml_stt_stream *st = w->cur;
  if (st->closed) {
    utt_abandon(w, st);
    return 1;
  }
  int end;
  size_t n = stream_take(w, st, &end);
  if (!n && !end) return 0;
  ml_stt_cmn cmn;
  int start = !w->in_utt;
  if (start && w->ps) cmn = st->has_cmn ? st->cmn : w->cmn_init;
  uv_mutex_unlock(&s->mu);
  if (start && w->ps) utt_start(w, &cmn);
  const char *text = utt_process(w, n, end);
  uv_mutex_lock(&s->mu);
  if (st->closed) return 1; /* the next round abandons it */
  if (end && !text) return 1; /* a second pass cut short by the stop */
  if (end)
    utt_finish(w, st, text);
  else if (text)
    result_post(s, st, text, 0);
  return 1;
}

/* Locked: take the next waiting stream, or wait for one or for audio. */
static void worker_step(ml_stt_worker *w)
{
  ml_stt_sphinx *s = w->s;
  if (!w->cur && !ml_list_empty(&s->waiting)) {
    ml_list *l = s->waiting.next;
    ml_list_remove(l);
    w->cur = ml_container_of(l, ml_stt_stream, link);
    w->cur->worker = w;
  }
  if (w->cur && worker_round(w)) return;
  uv_cond_wait(&s->cv, &s->mu);
}

static void worker_load(ml_stt_worker *w)
{
  ml_stt_sphinx *s = w->s;
  uv_mutex_lock(&s->model_mu);
  double t0 = mono_seconds();
  w->config = config_new(s);
  w->ps = w->config ? ps_init(w->config) : NULL;
  double took = mono_seconds() - t0;
  if (w->ps) {
    cmn_t *c = worker_cmn(w);
    if (c->veclen > ML_STT_CMN_MAX) { /* not a model we know: refuse it rather than overrun */
      ps_free(w->ps);
      w->ps = NULL;
    } else {
      cmn_save(&w->cmn_init, c);
    }
  }
  uv_mutex_unlock(&s->model_mu);
  uv_mutex_lock(&s->mu);
  if (w->ps && s->init_seconds == 0) s->init_seconds = took;
  if (!w->ps) {
    s->nfailed++;
    snprintf(s->err, sizeof s->err, "stt_sphinx: could not load the decoder from %.80s with %.120s", s->hmm,
             s->jsgf[0] ? s->jsgf : s->lm);
    uv_async_send(&s->async);
  }
  uv_mutex_unlock(&s->mu);
}

static void worker_unload(ml_stt_worker *w)
{
  /* ps_free does not free a grammar search's per-utterance lists (found by
   * LeakSanitizer): an utterance in progress must end first */
  if (w->in_utt && w->ps) ps_end_utt(w->ps);
  keep_drop(w);
  uv_mutex_lock(&w->s->model_mu);
  if (w->ps) ps_free(w->ps);
  if (w->config) cmd_ln_free_r(w->config);
  w->ps = NULL;
  w->config = NULL;
  uv_mutex_unlock(&w->s->model_mu);
}

static void worker_main(void *arg)
{
  ml_stt_worker *w = arg;
  ml_stt_sphinx *s = w->s;
  worker_load(w);
  uv_mutex_lock(&s->mu);
  /* without a decoder, step aside for those that have one; the last one
   * left answers every flush with "" so that no owner waits forever */
  int serve = w->ps || s->nfailed == s->nworkers;
  while (serve && !s->stopping) worker_step(w);
  uv_mutex_unlock(&s->mu);
  worker_unload(w);
  uv_mutex_lock(&s->mu);
  s->nexited++;
  uv_mutex_unlock(&s->mu);
  uv_async_send(&s->async);
}

/* ---- the loop side ------------------------------------------------------------ */

static void engine_free(uv_handle_t *h)
{
  ml_stt_sphinx *s = h->data;
  void (*cb)(void *) = s->on_closed;
  void *data = s->closed_data;
  uv_cond_destroy(&s->cv);
  uv_mutex_destroy(&s->mu);
  uv_mutex_destroy(&s->model_mu);
  free(s->workers);
  free(s);
  if (cb) cb(data);
}

/* Every worker has exited: join them, free what is left, close the handle. */
static void engine_finish(ml_stt_sphinx *s)
{
  for (unsigned i = 0; i < s->nstarted; i++) uv_thread_join(&s->workers[i].thread);
  while (!ml_list_empty(&s->streams)) stream_free(ml_container_of(s->streams.next, ml_stt_stream, all_link));
  while (!ml_list_empty(&s->results)) {
    ml_list *l = s->results.next;
    ml_list_remove(l);
    free(ml_container_of(l, ml_stt_result, link));
  }
  uv_close((uv_handle_t *)&s->async, engine_free);
}

static ml_stt_result *result_pop(ml_stt_sphinx *s)
{
  ml_stt_result *r = NULL;
  uv_mutex_lock(&s->mu);
  if (!ml_list_empty(&s->results) && !s->closing) {
    r = ml_container_of(s->results.next, ml_stt_result, link);
    ml_list_remove(&r->link);
  }
  uv_mutex_unlock(&s->mu);
  return r;
}

/* One at a time, so that a callback that closes a stream (or the engine)
 * takes that stream's later results with it. */
static void on_async(uv_async_t *a)
{
  ml_stt_sphinx *s = a->data;
  ml_stt_result *r;
  while ((r = result_pop(s))) {
    r->st->on_result(r->st, r->text, r->is_final, r->st->ud);
    free(r);
  }
  uv_mutex_lock(&s->mu);
  int done = s->closing && s->nexited == s->nstarted && !uv_is_closing((uv_handle_t *)&s->async);
  const char *err = s->err[0] && !s->err_logged ? s->err : NULL;
  s->err_logged |= err != NULL;
  uv_mutex_unlock(&s->mu);
  if (err) ml_log(ML_LOG_ERROR, "%s", err);
  if (done) engine_finish(s);
}

static int engine_start(ml_stt_sphinx *s, char *err, size_t errcap)
{
  s->workers = calloc(s->nworkers, sizeof *s->workers);
  if (!s->workers) {
    snprintf(err, errcap, "stt_sphinx: out of memory");
    return -1;
  }
  for (unsigned i = 0; i < s->nworkers; i++) {
    s->workers[i].s = s;
    s->workers[i].keep_max = (size_t)s->cfg.buffer_ms * (ML_STT_RATE / 1000);
    if (uv_thread_create(&s->workers[i].thread, worker_main, &s->workers[i]) != 0) break;
    uv_mutex_lock(&s->mu); /* workers compare nfailed with it */
    s->nstarted++;
    uv_mutex_unlock(&s->mu);
  }
  uv_mutex_lock(&s->mu);
  s->nworkers = s->nstarted;
  uv_mutex_unlock(&s->mu);
  if (s->nstarted) return 0;
  snprintf(err, errcap, "stt_sphinx: cannot start a worker thread");
  return -1;
}

ml_stt_sphinx *ml_stt_sphinx_create(uv_loop_t *loop, const ml_stt_sphinx_config *cfg, char *err,
                                    size_t errcap)
{
  ml_stt_sphinx *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errcap, "stt_sphinx: out of memory");
    return NULL;
  }
  if (cfg)
    s->cfg = *cfg;
  else
    ml_stt_sphinx_config_default(&s->cfg);
  s->nworkers = s->cfg.pool ? s->cfg.pool : 1;
  if (!s->cfg.buffer_ms) s->cfg.buffer_ms = 10000;
  s->cfg.max_utt_ms -= s->cfg.max_utt_ms % 20; /* whole slices */
  if (config_paths(s, err, errcap) != 0) {
    free(s);
    return NULL;
  }
  err_set_logfp(NULL); /* sphinxbase logs pages per decoder to stderr otherwise */
  s->loop = loop;
  ml_list_init(&s->waiting);
  ml_list_init(&s->streams);
  ml_list_init(&s->results);
  uv_mutex_init(&s->mu);
  uv_mutex_init(&s->model_mu);
  uv_cond_init(&s->cv);
  uv_async_init(loop, &s->async, on_async);
  s->async.data = s;
  if (engine_start(s, err, errcap) != 0) {
    s->closing = 1;
    uv_close((uv_handle_t *)&s->async, engine_free);
    return NULL;
  }
  return s;
}

void ml_stt_sphinx_close(ml_stt_sphinx *s, void (*on_closed)(void *data), void *data)
{
  if (s->closing) return;
  s->on_closed = on_closed;
  s->closed_data = data;
  uv_mutex_lock(&s->mu);
  s->closing = 1;
  s->stopping = 1;
  uv_cond_broadcast(&s->cv);
  uv_mutex_unlock(&s->mu);
  uv_async_send(&s->async); /* in case every worker has exited already */
}

double ml_stt_sphinx_init_seconds(ml_stt_sphinx *s)
{
  uv_mutex_lock(&s->mu);
  double t = s->init_seconds;
  uv_mutex_unlock(&s->mu);
  return t;
}

ml_stt_stream *ml_stt_stream_open(ml_stt_sphinx *s, ml_stt_result_cb on_result, void *ud)
{
  if (s->closing) return NULL;
  ml_stt_stream *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->cap = (size_t)s->cfg.buffer_ms * (ML_STT_RATE / 1000);
  st->ring = malloc(st->cap * sizeof *st->ring);
  if (!st->ring) {
    free(st);
    return NULL;
  }
  st->s = s;
  st->on_result = on_result;
  st->ud = ud;
  ml_list_init(&st->link);
  uv_mutex_lock(&s->mu);
  ml_list_push(&s->streams, &st->all_link);
  if (s->has_prior) { /* a snapshot: streams opened together start alike */
    st->cmn = s->prior;
    st->has_cmn = 1;
  }
  uv_mutex_unlock(&s->mu);
  return st;
}

/* Locked: make sure a worker will look at st. */
static void stream_wake(ml_stt_stream *st)
{
  if (!st->worker && !ml_list_linked(&st->link)) ml_list_push(&st->s->waiting, &st->link);
  uv_cond_broadcast(&st->s->cv);
}

size_t ml_stt_stream_write(ml_stt_stream *st, const int16_t *pcm, size_t n)
{
  ml_stt_sphinx *s = st->s;
  uv_mutex_lock(&s->mu);
  size_t room = st->cap - st->len, k = n < room ? n : room;
  size_t tail = (st->head + st->len) % st->cap, first = st->cap - tail < k ? st->cap - tail : k;
  memcpy(st->ring + tail, pcm, first * sizeof *pcm);
  memcpy(st->ring, pcm + first, (k - first) * sizeof *pcm);
  st->len += k;
  st->stats.written += k;
  st->stats.dropped += n - k;
  int warn = k < n && !st->warned;
  st->warned |= warn;
  if (k) stream_wake(st);
  uv_mutex_unlock(&s->mu);
  if (warn) ml_log(ML_LOG_WARN, "stt_sphinx: a stream's buffer is full: audio dropped (decoders busy)");
  return k;
}

void ml_stt_stream_flush(ml_stt_stream *st)
{
  ml_stt_sphinx *s = st->s;
  uv_mutex_lock(&s->mu);
  int full = st->mark_len == ML_STT_MARKS;
  if (!full) {
    st->marks[(st->mark_head + st->mark_len) % ML_STT_MARKS] = st->stats.written;
    st->mark_len++;
    st->warned = 0;
    stream_wake(st);
  }
  uv_mutex_unlock(&s->mu);
  if (full) ml_log(ML_LOG_WARN, "stt_sphinx: %d flushes pending on a stream: flush ignored", ML_STT_MARKS);
}

void ml_stt_stream_close(ml_stt_stream *st)
{
  ml_stt_sphinx *s = st->s;
  uv_mutex_lock(&s->mu);
  for (ml_list *l = s->results.next, *next; l != &s->results; l = next) {
    next = l->next;
    ml_stt_result *r = ml_container_of(l, ml_stt_result, link);
    if (r->st != st) continue;
    ml_list_remove(l);
    free(r);
  }
  if (ml_list_linked(&st->link)) ml_list_remove(&st->link);
  st->closed = 1;
  /* a worker holding it frees it when it next looks; else it goes now */
  if (st->worker)
    uv_cond_broadcast(&s->cv);
  else
    stream_free(st);
  uv_mutex_unlock(&s->mu);
}

void ml_stt_stream_stats_get(ml_stt_stream *st, ml_stt_stream_stats *out)
{
  uv_mutex_lock(&st->s->mu);
  *out = st->stats;
  uv_mutex_unlock(&st->s->mu);
}
