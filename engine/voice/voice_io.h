/* An agent's audio in a room (DESIGN.md §4: audio frames never enter Lua).
 *
 * A voice_io is a room member (an ml_endpoint) that
 *   - hears the room's mix (N-1: never its own speech), runs the VAD on it in
 *     20 ms frames and, while the user speaks (from the VAD's padded start to
 *     its end edge), feeds an STT stream; flushes it on the end edge;
 *   - speaks: text segments of a speech (ids chosen by the caller) go to the
 *     TTS engine; their audio is kept in the voice_io's own growable buffer
 *     (the TTS worker is never held back by playout: it is shared by every
 *     session) and moved into the endpoint two frames ahead of the room's
 *     tick, so pausing or interrupting stops playout within one frame;
 *   - reports what happens as events, in order, through a bounded queue the
 *     owner drains (the Lua binding wakes a waiting task).
 *
 * Positions and durations are in samples at 16 kHz. Every function is called
 * on the loop thread; every callback arrives on it. The room's tick does the
 * work (hearing, publishing, playout accounting): O(speeches queued) and no
 * allocation per tick. */
#ifndef ML_VOICE_IO_H
#define ML_VOICE_IO_H

#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "stt_sphinx.h"
#include "tts.h"
#include "tts_espeak.h"
#include "vad.h"

typedef enum ml_voice_event_type {
  ML_VOICE_SPEECH_START = 1, /* the user started speaking: pos = the padded start */
  ML_VOICE_SPEECH_END, /* the user stopped: pos = where the speech ended */
  ML_VOICE_TRANSCRIPT, /* text (owned by the event), is_final; pos = when it arrived */
  ML_VOICE_SYNTHESIZED, /* segment `seg` of speech `id` is fully synthesized: samples = its length */
  ML_VOICE_PLAYOUT, /* speech `id` ended: played = its samples published, interrupted, samples = all */
  ML_VOICE_TTS_ERROR, /* segment `seg` of speech `id` failed: text = why */
  ML_VOICE_CLOSED, /* the room closed with the voice inside (last event) */
} ml_voice_event_type;

typedef struct ml_voice_event {
  ml_voice_event_type type;
  uint32_t id, seg;
  int is_final, interrupted;
  uint64_t pos; /* samples heard since the voice opened */
  uint64_t samples, played;
  char *text; /* malloc'd, freed by ml_voice_event_clear */
} ml_voice_event;

typedef struct ml_voice_config {
  ml_vad_config vad;
  ml_tts_options tts; /* voice, rate, pitch, volume for every segment (the voice name is copied) */
  /* The queue's bound (default 256). Past it, interim transcripts are dropped
   * (the oldest queued one, else the new one); any other event still goes
   * in and the queue grows past the bound (stats.events_over): every other
   * event answers something the owner did or a user's utterance, so their
   * number is bounded by the owner's own activity, and losing one would
   * leave the owner waiting for it forever. */
  unsigned max_events;
  /* Synthesized audio a voice may hold ahead of playout (default 120 s,
   * 3.8 MB). Past it on_audio takes fewer samples: the TTS request stalls
   * (holding the one TTS worker every session shares) until playout makes
   * room. Long enough that only a paused voice with minutes of text queued
   * gets there. */
  unsigned max_speech_ms;
} ml_voice_config;

typedef struct ml_voice_io ml_voice_io;

/* What the owner is told: an event was queued (drain with ml_voice_io_next).
 * May run inside any call below and from the room's tick. */
typedef void (*ml_voice_notify_cb)(ml_voice_io *v, void *data);

/* speak() failures */
enum {
  ML_VOICE_ENOTTS = -1, /* opened without TTS, or its engine was detached */
  ML_VOICE_EENDED = -2, /* the speech was finished or interrupted already */
  ML_VOICE_ECLOSED = -3, /* the room closed with the voice inside */
  ML_VOICE_ENOMEM = -4,
};

typedef struct ml_voice_stats {
  uint64_t heard; /* samples of the mix run through the VAD */
  uint64_t spoken; /* samples published into the room */
  uint64_t events_dropped; /* interim transcripts dropped: the queue was full */
  uint64_t events_over; /* events queued past max_events (see ml_voice_config) */
  uint64_t stt_dropped; /* samples the STT stream refused (its buffer was full) */
  uint64_t tts_held; /* times on_audio took fewer samples: max_speech_ms was reached */
  unsigned utterances; /* VAD start edges */
  unsigned speeches; /* speeches not yet ended */
  int user_speaking, paused, closed;
  uint64_t buffered; /* synthesized samples not yet published */
  size_t buffer_bytes; /* the speech buffer's size now (0 when idle) */
} ml_voice_stats;

void ml_voice_config_default(ml_voice_config *c);

/* Join `room` as an endpoint (the room's loop is the voice's). stt and tts
 * may each be NULL (no transcripts; speak() fails). tts is any engine
 * (tts.h): espeak-ng, a remote server. cfg NULL: defaults. Returns NULL on
 * out of memory or a full room (*err says which). */
ml_voice_io *ml_voice_io_open_engine(ml_room *room, ml_stt_sphinx *stt, ml_tts_engine *tts,
                                     const ml_voice_config *cfg, ml_voice_notify_cb notify, void *data,
                                     const char **err);
/* The same with the local engine (ml_tts_espeak_engine(tts)). */
ml_voice_io *ml_voice_io_open(ml_room *room, ml_stt_sphinx *stt, ml_tts_espeak *tts,
                              const ml_voice_config *cfg, ml_voice_notify_cb notify, void *data,
                              const char **err);
/* Leave the room, cancel TTS requests, close the STT stream, free the queue.
 * No callback after it returns. */
void ml_voice_io_close(ml_voice_io *v);

/* The engine is closing: let go of it first. TTS: the request in flight is
 * cancelled and the segments not yet synthesized are dropped (a TTS_ERROR
 * "the TTS engine is closed" for each speech that loses some); audio
 * already synthesized still plays and every speech still gets its PLAYOUT;
 * speak() fails from now on. STT: the stream is closed; each utterance
 * whose final transcript had not come gets an empty final one. */
void ml_voice_io_detach_tts(ml_voice_io *v);
void ml_voice_io_detach_stt(ml_voice_io *v);

/* The endpoint (room member), e.g. to move the voice to another room. */
ml_room_member *ml_voice_io_member(ml_voice_io *v);

/* Queue a text segment of speech `id` (segments of one id play in order,
 * speeches in the order of their first segment). 0, or ML_VOICE_E*. The ids
 * of the last 32 speeches that ended are remembered and refused; use fresh
 * ids (a counter). */
int ml_voice_io_speak(ml_voice_io *v, uint32_t id, const char *utf8_text);
/* No more segments for `id`: its PLAYOUT event comes once all is played (an
 * id never spoken plays nothing and ends in its turn). */
void ml_voice_io_finish(ml_voice_io *v, uint32_t id);
/* Stop speech `id` now (and drop its audio and pending segments): a PLAYOUT
 * event with interrupted = 1 and what was played. 0 if it was playing or
 * queued (*played, if not NULL: its samples the room took, the same figure
 * as the event's), -1 if unknown or already ended. */
int ml_voice_io_interrupt(ml_voice_io *v, uint32_t id, uint64_t *played);
/* Pause/resume publishing (a possible false interruption): paused, the
 * room hears nothing from this voice from the next frame on, and resume
 * goes on from the next sample. */
void ml_voice_io_pause(ml_voice_io *v, int paused);

/* Take the oldest event: 1, or 0 when the queue is empty. The event's text
 * belongs to the caller until ml_voice_event_clear. */
int ml_voice_io_next(ml_voice_io *v, ml_voice_event *out);
/* Events queued (not yet taken). */
unsigned ml_voice_io_pending(const ml_voice_io *v);
void ml_voice_event_clear(ml_voice_event *e);

void ml_voice_io_stats_get(const ml_voice_io *v, ml_voice_stats *out);

#endif
