/* An agent's audio in a room (see voice_io.h).
 *
 * Speaking. The speech buffer is one ring holding, in play order, the audio
 * not yet published of every speech queued (speeches play one after another,
 * so their audio is simply concatenated). Each speech knows how much of the
 * ring is its own (ring_len). The endpoint's speak ring holds copies of the
 * first ≤ 2 frames of that audio (the samples stay in our ring until the
 * room has pulled them), so pause and interrupt just clear the endpoint:
 * nothing is lost, and the next sample is still ours. Every tick, the
 * endpoint's `spoken` counter says how many samples the room took; they are
 * charged to the speeches in ring order and dropped from the ring.
 *
 * An interrupted speech ends at once. Its audio is dropped at once when it is
 * at the front of the ring; when it sits behind a speech still playing (it
 * was synthesized ahead), it stays in place, skipped by the copies into the
 * endpoint, and is dropped when it reaches the front: an interrupt never
 * moves audio around.
 *
 * Synthesis runs one segment at a time per voice, in play order: the
 * segments of the first speech not yet fully synthesized; a speech that is
 * not finished holds back the ones after it (their audio could not be put
 * after audio that does not exist yet).
 *
 * Lifetimes: a segment is the `ud` of its TTS request. A request cancelled
 * by us still gets its on_done later (from the TTS engine), so the segment
 * is orphaned (seg->v = NULL) and that on_done frees it: the voice may be
 * gone by then. */
#include "voice_io.h"

#include <stdlib.h>
#include <string.h>

#define LEAD_FRAMES 2 /* frames copied ahead into the endpoint */
#define HEAR_MS 200 /* the endpoint's hear ring: we read it every tick */
#define RING_MIN 16000 /* the speech buffer's first size: 1 s */
#define EVQ_MIN 16 /* the event queue's first size */
#define ENDED_IDS 32 /* ids of ended speeches remembered (speak refuses them) */
#define VOICE_NAME_MAX 40

typedef struct vio_speech vio_speech;

typedef struct vio_seg {
  ml_list link; /* speech->segs while pending */
  ml_voice_io *v; /* NULL once orphaned: its on_done only frees it */
  vio_speech *sp;
  ml_tts_request *req; /* while submitted */
  ml_tts_engine *eng; /* the engine req belongs to */
  uint32_t index;
  uint64_t samples;
  char text[];
} vio_seg;

struct vio_speech {
  ml_list link; /* v->speeches, in play order */
  uint32_t id;
  uint32_t nsegs; /* segments spoken */
  int finished; /* no more segments */
  int ended; /* its PLAYOUT was queued (played out or interrupted) */
  ml_list segs; /* pending: not yet submitted */
  uint64_t samples; /* synthesized */
  uint64_t played; /* published */
  size_t ring_len; /* its samples in v's ring, not yet published */
};

struct ml_voice_io {
  ml_endpoint ep;
  ml_vad *vad;
  ml_stt_sphinx *stt;
  ml_stt_stream *stream;
  ml_tts_engine *tts;
  ml_voice_config cfg;
  char voice_name[VOICE_NAME_MAX];
  ml_voice_notify_cb notify;
  void *data;
  /* speaking */
  int16_t *ring;
  size_t cap, head, len, cap_max;
  uint64_t last_spoken; /* ep.spoken at the last accounting */
  ml_list speeches;
  unsigned nspeeches; /* not ended */
  vio_seg *cur; /* the segment being synthesized */
  int held; /* cur's on_audio took fewer samples: resume when there is room */
  uint32_t ended_ids[ENDED_IDS];
  unsigned ended_n, ended_at;
  /* hearing */
  int user_speaking;
  int want_final; /* the utterance in progress started with an STT stream */
  unsigned pending_finals; /* flushed utterances whose final has not come */
  /* events */
  ml_voice_event *evq;
  unsigned evcap, evhead, evlen;
  int closed; /* kicked: CLOSED was queued */
  int paused;
  ml_voice_stats st;
};

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

void ml_voice_config_default(ml_voice_config *c)
{
  memset(c, 0, sizeof *c);
  ml_vad_config_default(&c->vad);
  c->max_events = 256;
  c->max_speech_ms = 120000;
}

/* ---- events ----------------------------------------------------------------------- */

void ml_voice_event_clear(ml_voice_event *e)
{
  free(e->text);
  e->text = NULL;
}

static ml_voice_event *ev_at(ml_voice_io *v, unsigned i) { return &v->evq[(v->evhead + i) % v->evcap]; }

static int evq_grow(ml_voice_io *v)
{
  unsigned cap = v->evcap ? v->evcap * 2 : EVQ_MIN;
  ml_voice_event *q = malloc(cap * sizeof *q);
  if (!q) return -1;
  for (unsigned i = 0; i < v->evlen; i++) q[i] = *ev_at(v, i);
  free(v->evq);
  v->evq = q;
  v->evcap = cap;
  v->evhead = 0;
  return 0;
}

/* The queue is at its bound: drop the oldest interim transcript (O(queue),
 * only when full). 0 when there was one. */
static int evq_drop_interim(ml_voice_io *v)
{
  for (unsigned i = 0; i < v->evlen; i++) {
    ml_voice_event *e = ev_at(v, i);
    if (e->type != ML_VOICE_TRANSCRIPT || e->is_final) continue;
    ml_voice_event_clear(e);
    for (; i + 1 < v->evlen; i++) *ev_at(v, i) = *ev_at(v, i + 1);
    v->evlen--;
    v->st.events_dropped++;
    return 0;
  }
  return -1;
}

/* Queue e (its text is taken over) and tell the owner. Nothing follows CLOSED. */
static void emit(ml_voice_io *v, ml_voice_event *e)
{
  int interim = e->type == ML_VOICE_TRANSCRIPT && !e->is_final;
  if (v->closed) goto drop;
  if (v->evlen >= v->cfg.max_events && evq_drop_interim(v) != 0) {
    if (interim) {
      v->st.events_dropped++;
      goto drop;
    }
    v->st.events_over++;
  }
  if (v->evlen == v->evcap && evq_grow(v) != 0) goto drop; /* out of memory: nothing better to do */
  *ev_at(v, v->evlen++) = *e;
  if (v->notify) v->notify(v, v->data);
  return;
drop:
  ml_voice_event_clear(e);
}

static void emit_simple(ml_voice_io *v, ml_voice_event_type type, uint32_t id, uint64_t pos)
{
  ml_voice_event e = {.type = type, .id = id, .pos = pos};
  emit(v, &e);
}

static void emit_text(ml_voice_io *v, ml_voice_event_type type, uint32_t id, uint32_t seg, int is_final,
                      const char *text)
{
  ml_voice_event e = {
      .type = type, .id = id, .seg = seg, .is_final = is_final, .pos = ml_vad_position(v->vad)};
  e.text = strdup(text ? text : "");
  emit(v, &e);
}

static void emit_playout(ml_voice_io *v, vio_speech *sp, int interrupted)
{
  ml_voice_event e = {.type = ML_VOICE_PLAYOUT,
                      .id = sp->id,
                      .interrupted = interrupted,
                      .pos = ml_vad_position(v->vad),
                      .samples = sp->samples,
                      .played = sp->played};
  emit(v, &e);
}

int ml_voice_io_next(ml_voice_io *v, ml_voice_event *out)
{
  if (!v->evlen) return 0;
  *out = *ev_at(v, 0);
  v->evhead = (v->evhead + 1) % v->evcap;
  v->evlen--;
  return 1;
}

unsigned ml_voice_io_pending(const ml_voice_io *v) { return v->evlen; }

/* ---- the speech buffer ------------------------------------------------------------ */

/* Room for n more samples, growing by doubling up to cap_max: how many fit. */
static size_t ring_reserve(ml_voice_io *v, size_t n)
{
  size_t want = min_sz(v->len + n, v->cap_max);
  if (want > v->cap) {
    size_t cap = v->cap ? v->cap : RING_MIN;
    while (cap < want) cap *= 2;
    cap = min_sz(cap, v->cap_max);
    int16_t *buf = malloc(cap * sizeof *buf);
    if (buf) { /* linearised: the head moves to 0 */
      size_t first = min_sz(v->len, v->cap - v->head);
      if (v->len) {
        memcpy(buf, v->ring + v->head, first * sizeof *buf);
        memcpy(buf + first, v->ring, (v->len - first) * sizeof *buf);
      }
      free(v->ring);
      v->ring = buf;
      v->cap = cap;
      v->head = 0;
    }
  }
  return min_sz(n, v->cap - v->len);
}

static void ring_put(ml_voice_io *v, const int16_t *pcm, size_t n)
{
  size_t tail = (v->head + v->len) % v->cap, first = min_sz(n, v->cap - tail);
  memcpy(v->ring + tail, pcm, first * sizeof *pcm);
  memcpy(v->ring, pcm + first, (n - first) * sizeof *pcm);
  v->len += n;
}

static void ring_drop(ml_voice_io *v, size_t n)
{
  v->head = (v->head + n) % (v->cap ? v->cap : 1);
  v->len -= n;
}

/* Idle (nothing queued, nothing coming): give the buffer back. */
static void ring_maybe_free(ml_voice_io *v)
{
  if (v->len || v->cur || !ml_list_empty(&v->speeches) || !v->ring) return;
  free(v->ring);
  v->ring = NULL;
  v->cap = v->head = 0;
}

/* Copy up to n samples from ring offset `off` into the endpoint. */
static size_t ring_to_endpoint(ml_voice_io *v, size_t off, size_t n)
{
  size_t at = (v->head + off) % v->cap, first = min_sz(n, v->cap - at);
  size_t done = ml_endpoint_write(&v->ep, v->ring + at, first);
  if (done == first && n > first) done += ml_endpoint_write(&v->ep, v->ring, n - first);
  return done;
}

/* Keep LEAD_FRAMES of live audio in the endpoint: what follows the copies
 * already there, skipping the audio of interrupted speeches. */
static void top_up(ml_voice_io *v)
{
  if (v->paused || v->closed || !v->len) return;
  size_t lead = LEAD_FRAMES * ML_MIX_FRAME;
  if (v->ep.speak.len >= lead) return;
  size_t want = lead - v->ep.speak.len, skip = v->ep.speak.len, off = 0;
  for (ml_list *n = v->speeches.next; want && n != &v->speeches; n = n->next) {
    vio_speech *sp = ml_container_of(n, vio_speech, link);
    size_t len = sp->ring_len;
    if (!sp->ended && skip < len) {
      size_t k = ring_to_endpoint(v, off + skip, min_sz(want, len - skip));
      want -= k;
      skip = 0;
    } else if (!sp->ended) {
      skip -= len;
    }
    off += len;
  }
}

/* ---- speeches ---------------------------------------------------------------------- */

static vio_speech *speech_find(ml_voice_io *v, uint32_t id)
{
  for (ml_list *n = v->speeches.next; n != &v->speeches; n = n->next) {
    vio_speech *sp = ml_container_of(n, vio_speech, link);
    if (sp->id == id && !sp->ended) return sp;
  }
  return NULL;
}

static int id_ended(const ml_voice_io *v, uint32_t id)
{
  for (unsigned i = 0; i < v->ended_n; i++)
    if (v->ended_ids[i] == id) return 1;
  return 0;
}

static vio_speech *speech_new(ml_voice_io *v, uint32_t id)
{
  vio_speech *sp = calloc(1, sizeof *sp);
  if (!sp) return NULL;
  sp->id = id;
  ml_list_init(&sp->segs);
  ml_list_push(&v->speeches, &sp->link);
  v->nspeeches++;
  return sp;
}

static void segs_free(vio_speech *sp)
{
  while (!ml_list_empty(&sp->segs)) {
    vio_seg *s = ml_container_of(sp->segs.next, vio_seg, link);
    ml_list_remove(&s->link);
    free(s);
  }
}

/* Cancel the request in flight; its on_done will only free the segment. */
static void cur_cancel(ml_voice_io *v)
{
  vio_seg *s = v->cur;
  if (!s) return;
  v->cur = NULL;
  v->held = 0;
  s->v = NULL;
  ml_tts_cancel(s->eng, s->req);
}

/* The speech is over for the owner: remember its id, emit PLAYOUT. */
static void speech_end(ml_voice_io *v, vio_speech *sp, int interrupted)
{
  sp->ended = 1;
  v->nspeeches--;
  segs_free(sp);
  v->ended_ids[v->ended_at] = sp->id;
  v->ended_at = (v->ended_at + 1) % ENDED_IDS;
  if (v->ended_n < ENDED_IDS) v->ended_n++;
  emit_playout(v, sp, interrupted);
}

static void speech_free(vio_speech *sp)
{
  ml_list_remove(&sp->link);
  segs_free(sp);
  free(sp);
}

/* From the front: drop the audio of interrupted speeches that reached it,
 * end the speeches whose audio has all been published, stop at the first
 * one still playing (they end in order). */
static void speeches_settle(ml_voice_io *v)
{
  while (!ml_list_empty(&v->speeches)) {
    vio_speech *sp = ml_container_of(v->speeches.next, vio_speech, link);
    if (!sp->ended) {
      int done = sp->finished && ml_list_empty(&sp->segs) && !(v->cur && v->cur->sp == sp) && !sp->ring_len;
      if (!done) break;
      speech_end(v, sp, 0);
    }
    ring_drop(v, sp->ring_len); /* at the front: its audio is at the ring's head */
    speech_free(sp);
  }
  ring_maybe_free(v);
}

/* Charge what the room pulled since the last tick to the speeches, in ring
 * order, and drop it from the ring. */
static void account_published(ml_voice_io *v)
{
  size_t delta = (size_t)(v->ep.spoken - v->last_spoken);
  v->last_spoken = v->ep.spoken;
  v->st.spoken += delta;
  for (ml_list *n = v->speeches.next; delta && n != &v->speeches; n = n->next) {
    vio_speech *sp = ml_container_of(n, vio_speech, link);
    /* everything before sp has no audio left: sp's is at the ring's head */
    size_t k = sp->ended ? sp->ring_len : min_sz(delta, sp->ring_len);
    ring_drop(v, k);
    sp->ring_len -= k;
    if (!sp->ended) {
      sp->played += k;
      delta -= k;
    }
  }
}

static void tts_pump(ml_voice_io *v);

static void on_tts_audio_done(ml_tts_request *req, int status, void *ud);

static size_t on_tts_audio(ml_tts_request *req, const int16_t *pcm, size_t n, void *ud)
{
  vio_seg *s = ud;
  ml_voice_io *v = s->v;
  (void)req;
  if (!v) return n; /* cancelled requests get no audio; never hold one anyway */
  size_t take = ring_reserve(v, n);
  ring_put(v, pcm, take);
  s->samples += take;
  s->sp->samples += take;
  s->sp->ring_len += take;
  if (take < n) {
    v->held = 1;
    v->st.tts_held++;
  }
  top_up(v); /* audio now rather than after the next tick */
  return take;
}

static void on_tts_audio_done(ml_tts_request *req, int status, void *ud)
{
  vio_seg *s = ud;
  ml_voice_io *v = s->v;
  if (!v) {
    free(s);
    return;
  }
  v->cur = NULL;
  v->held = 0;
  vio_speech *sp = s->sp;
  if (status == ML_TTS_OK) {
    ml_voice_event e = {.type = ML_VOICE_SYNTHESIZED, .id = sp->id, .seg = s->index, .samples = s->samples};
    e.pos = ml_vad_position(v->vad);
    emit(v, &e);
  } else {
    emit_text(v, ML_VOICE_TTS_ERROR, sp->id, s->index, 0, ml_tts_error(s->eng, req, status));
  }
  free(s);
  speeches_settle(v);
  tts_pump(v);
}

/* Submit the next segment if none is in flight (see the top of the file). */
static void tts_pump(ml_voice_io *v)
{
  while (!v->cur && v->tts && !v->closed) {
    vio_speech *sp = NULL;
    for (ml_list *n = v->speeches.next; n != &v->speeches; n = n->next) {
      vio_speech *c = ml_container_of(n, vio_speech, link);
      if (c->ended) continue;
      if (!ml_list_empty(&c->segs)) {
        sp = c;
        break;
      }
      if (!c->finished) return; /* more may come for it: the ones after wait */
    }
    if (!sp) return;
    vio_seg *s = ml_container_of(sp->segs.next, vio_seg, link);
    ml_list_remove(&s->link);
    s->v = v;
    s->eng = v->tts;
    s->req = ml_tts_speak(v->tts, s->text, &v->cfg.tts, on_tts_audio, on_tts_audio_done, s);
    if (s->req) {
      v->cur = s;
      return;
    }
    emit_text(v, ML_VOICE_TTS_ERROR, sp->id, s->index, 0, "the TTS engine refused the text");
    free(s);
    speeches_settle(v);
  }
}

int ml_voice_io_speak(ml_voice_io *v, uint32_t id, const char *utf8_text)
{
  if (v->closed) return ML_VOICE_ECLOSED;
  if (!v->tts) return ML_VOICE_ENOTTS;
  vio_speech *sp = speech_find(v, id);
  if ((sp && sp->finished) || (!sp && id_ended(v, id))) return ML_VOICE_EENDED;
  size_t len = strlen(utf8_text);
  vio_seg *s = calloc(1, sizeof *s + len + 1);
  if (!s) return ML_VOICE_ENOMEM;
  if (!sp && !(sp = speech_new(v, id))) {
    free(s);
    return ML_VOICE_ENOMEM;
  }
  memcpy(s->text, utf8_text, len + 1);
  s->sp = sp;
  s->index = sp->nsegs++;
  ml_list_push(&sp->segs, &s->link);
  tts_pump(v);
  return 0;
}

void ml_voice_io_finish(ml_voice_io *v, uint32_t id)
{
  if (v->closed || id_ended(v, id)) return;
  vio_speech *sp = speech_find(v, id);
  if (!sp && !(sp = speech_new(v, id))) return;
  sp->finished = 1;
  speeches_settle(v);
  tts_pump(v); /* the speech after it may start */
  top_up(v);
}

int ml_voice_io_interrupt(ml_voice_io *v, uint32_t id, uint64_t *played)
{
  vio_speech *sp = speech_find(v, id);
  if (!sp) return -1;
  if (played) *played = sp->played;
  if (v->cur && v->cur->sp == sp) cur_cancel(v);
  ml_endpoint_clear(&v->ep); /* it may hold some of sp's audio: copy again below */
  speech_end(v, sp, 1);
  speeches_settle(v); /* drops sp's audio if it is at the front */
  tts_pump(v);
  top_up(v);
  return 0;
}

void ml_voice_io_pause(ml_voice_io *v, int paused)
{
  v->paused = paused != 0;
  if (v->paused)
    ml_endpoint_clear(&v->ep); /* copies: the samples are still in the ring */
  else
    top_up(v);
}

/* ---- hearing ------------------------------------------------------------------------- */

static void on_stt_result(ml_stt_stream *st, const char *text, int is_final, void *ud)
{
  ml_voice_io *v = ud;
  (void)st;
  if (is_final && v->pending_finals) v->pending_finals--;
  emit_text(v, ML_VOICE_TRANSCRIPT, 0, 0, is_final, text);
}

static void stt_write(ml_voice_io *v, const int16_t *pcm, size_t n)
{
  v->st.stt_dropped += n - ml_stt_stream_write(v->stream, pcm, n);
}

static void utterance_start(ml_voice_io *v, const ml_vad_result *r)
{
  v->user_speaking = 1;
  v->st.utterances++;
  emit_simple(v, ML_VOICE_SPEECH_START, 0, r->padded_start_pos);
  v->want_final = v->stream != NULL;
  if (!v->stream) return;
  /* from the padded start up to now (this frame included), through a frame
   * on the stack: the VAD keeps that audio for us */
  int16_t buf[ML_MIX_FRAME];
  uint64_t from = r->padded_start_pos, now = ml_vad_position(v->vad), first;
  while (from < now) {
    size_t n = ml_vad_recent(v->vad, from, buf, ML_MIX_FRAME, &first);
    if (!n) break;
    stt_write(v, buf, n);
    from = first + n;
  }
}

static void utterance_end(ml_voice_io *v, uint64_t end_pos)
{
  v->user_speaking = 0;
  emit_simple(v, ML_VOICE_SPEECH_END, 0, end_pos);
  if (v->stream) {
    ml_stt_stream_flush(v->stream);
    v->pending_finals++;
  } else if (v->want_final) { /* the STT engine went away mid-utterance */
    emit_text(v, ML_VOICE_TRANSCRIPT, 0, 0, 1, "");
  }
  v->want_final = 0;
}

static void hear_frame(ml_voice_io *v, const int16_t *frame)
{
  ml_vad_result r;
  if (ml_vad_process(v->vad, frame, ML_MIX_FRAME, &r) != 0) return;
  int start = (r.edges & ML_VAD_START) != 0, end = (r.edges & ML_VAD_END) != 0;
  if (start && end && r.end_pos <= r.start_pos) { /* the last one ended, a new one began */
    if (v->user_speaking) utterance_end(v, r.end_pos);
    end = 0;
  }
  if (start)
    utterance_start(v, &r); /* this frame included */
  else if (v->user_speaking && v->stream)
    stt_write(v, frame, ML_MIX_FRAME);
  if (end && v->user_speaking) utterance_end(v, r.end_pos);
}

/* The room's tick, after it pulled our frame and pushed the mix. */
static void on_tick(ml_endpoint *e, void *data)
{
  ml_voice_io *v = data;
  (void)e;
  account_published(v);
  int16_t frame[ML_MIX_FRAME];
  while (v->ep.hear.len >= ML_MIX_FRAME) {
    ml_endpoint_read(&v->ep, frame, ML_MIX_FRAME);
    hear_frame(v, frame);
  }
  v->st.heard = ml_vad_position(v->vad);
  speeches_settle(v);
  if (v->held && v->cur && v->len <= v->cap_max / 2) { /* in big steps, not a frame at a time */
    v->held = 0;
    ml_tts_resume(v->cur->eng, v->cur->req);
  }
  top_up(v);
}

/* ---- open, close, detach --------------------------------------------------------------- */

static void drop_all_speech(ml_voice_io *v, int interrupted_events)
{
  cur_cancel(v);
  ml_endpoint_clear(&v->ep);
  while (!ml_list_empty(&v->speeches)) {
    vio_speech *sp = ml_container_of(v->speeches.next, vio_speech, link);
    if (!sp->ended && interrupted_events) speech_end(v, sp, 1);
    speech_free(sp);
  }
  v->len = v->head = 0;
  ring_maybe_free(v);
}

/* The room closed with us inside: every speech ends (interrupted), an
 * utterance in progress ends, then CLOSED, the last event. */
static void on_kicked(ml_room_member *m, void *data)
{
  ml_voice_io *v = data;
  (void)m;
  if (v->closed) return;
  if (v->user_speaking) {
    v->user_speaking = 0;
    emit_simple(v, ML_VOICE_SPEECH_END, 0, ml_vad_position(v->vad));
  }
  if (v->stream) ml_stt_stream_close(v->stream);
  v->stream = NULL;
  drop_all_speech(v, 1);
  emit_simple(v, ML_VOICE_CLOSED, 0, ml_vad_position(v->vad));
  v->closed = 1;
}

ml_voice_io *ml_voice_io_open(ml_room *room, ml_stt_sphinx *stt, ml_tts_espeak *tts,
                              const ml_voice_config *cfg, ml_voice_notify_cb notify, void *data,
                              const char **err)
{
  return ml_voice_io_open_engine(room, stt, ml_tts_espeak_engine(tts), cfg, notify, data, err);
}

ml_voice_io *ml_voice_io_open_engine(ml_room *room, ml_stt_sphinx *stt, ml_tts_engine *tts,
                                     const ml_voice_config *cfg, ml_voice_notify_cb notify, void *data,
                                     const char **err)
{
  const char *why = "out of memory";
  ml_voice_io *v = calloc(1, sizeof *v);
  if (!v) goto fail;
  if (cfg)
    v->cfg = *cfg;
  else
    ml_voice_config_default(&v->cfg);
  if (!v->cfg.max_events) v->cfg.max_events = 256;
  if (!v->cfg.max_speech_ms) v->cfg.max_speech_ms = 120000;
  if (v->cfg.tts.voice) { /* the caller's string may not outlive the voice */
    snprintf(v->voice_name, sizeof v->voice_name, "%s", v->cfg.tts.voice);
    v->cfg.tts.voice = v->voice_name;
  }
  v->cap_max = (size_t)v->cfg.max_speech_ms * (ML_MIX_RATE / 1000);
  if (v->cap_max < LEAD_FRAMES * ML_MIX_FRAME) v->cap_max = LEAD_FRAMES * ML_MIX_FRAME;
  ml_list_init(&v->speeches);
  v->notify = notify;
  v->data = data;
  v->stt = stt;
  v->tts = tts;
  if (ml_endpoint_init(&v->ep, LEAD_FRAMES * 20, HEAR_MS) != 0) {
    free(v);
    v = NULL;
    goto fail;
  }
  v->ep.on_tick = on_tick;
  v->ep.data = v;
  v->ep.member.kick = on_kicked;
  v->ep.member.kick_data = v;
  v->vad = ml_vad_create(&v->cfg.vad);
  if (!v->vad) goto fail_v;
  if (stt && !(v->stream = ml_stt_stream_open(stt, on_stt_result, v))) goto fail_v;
  if (ml_room_join(room, &v->ep.member) != 0) {
    why = "the room is full";
    goto fail_v;
  }
  return v;
fail_v:
  ml_voice_io_close(v);
  v = NULL;
fail:
  if (err) *err = why;
  return NULL;
}

void ml_voice_io_close(ml_voice_io *v)
{
  if (!v) return;
  ml_endpoint_release(&v->ep); /* no tick, no kick from here on */
  if (v->stream) ml_stt_stream_close(v->stream);
  v->closed = 1; /* no event, no notify */
  drop_all_speech(v, 0);
  for (unsigned i = 0; i < v->evlen; i++) ml_voice_event_clear(ev_at(v, i));
  free(v->evq);
  ml_vad_free(v->vad);
  free(v);
}

void ml_voice_io_detach_tts(ml_voice_io *v)
{
  if (!v->tts) return;
  v->tts = NULL;
  uint32_t lost_id = 0, lost_seg = 0;
  int lost = 0;
  if (v->cur) {
    lost = 1;
    lost_id = v->cur->sp->id;
    lost_seg = v->cur->index;
    cur_cancel(v);
  }
  for (ml_list *n = v->speeches.next; n != &v->speeches; n = n->next) {
    vio_speech *sp = ml_container_of(n, vio_speech, link);
    if (sp->ended) continue;
    int this_lost = lost && sp->id == lost_id;
    if (!ml_list_empty(&sp->segs)) {
      if (!this_lost) lost_seg = ml_container_of(sp->segs.next, vio_seg, link)->index;
      this_lost = 1;
      segs_free(sp);
    }
    if (this_lost) emit_text(v, ML_VOICE_TTS_ERROR, sp->id, lost_seg, 0, "the TTS engine is closed");
  }
  speeches_settle(v);
}

void ml_voice_io_detach_stt(ml_voice_io *v)
{
  if (!v->stream) return;
  ml_stt_stream_close(v->stream);
  v->stream = NULL;
  v->stt = NULL;
  for (; v->pending_finals; v->pending_finals--) emit_text(v, ML_VOICE_TRANSCRIPT, 0, 0, 1, "");
}

ml_room_member *ml_voice_io_member(ml_voice_io *v) { return &v->ep.member; }

void ml_voice_io_stats_get(const ml_voice_io *v, ml_voice_stats *out)
{
  *out = v->st;
  out->speeches = v->nspeeches;
  out->user_speaking = v->user_speaking;
  out->paused = v->paused;
  out->closed = v->closed;
  out->buffered = v->len;
  for (const ml_list *n = v->speeches.next; n != &v->speeches; n = n->next) {
    const vio_speech *sp = ml_container_of(n, vio_speech, link);
    if (sp->ended) out->buffered -= sp->ring_len; /* dropped when reached */
  }
  out->buffer_bytes = v->cap * sizeof *v->ring;
}
