/* Local text-to-speech with espeak-ng, off the loop, streamed back to it as
 * 16 kHz mono int16 (the rate of rooms and agent endpoints).
 *
 * espeak-ng keeps its state in globals, is not thread-safe and synthesises
 * with a blocking call, so one worker thread per process owns it and speaks
 * one request at a time, in the order speak() was called (one FIFO across
 * every instance and loop). Each instance is a uv_async_t on its loop: the
 * worker resamples espeak-ng's chunks (22050 Hz) to 16 kHz, writes them into
 * the request's bounded ring and wakes the loop, which hands them to
 * on_audio. Audio starts while the rest of the text is still being
 * synthesised.
 *
 * Every call here, and every callback, is on the loop thread.
 *
 * Lifetimes: a request lives from speak() until its on_done returns, which
 * happens exactly once (ok, cancelled or an error); the pointer must not be
 * used afterwards. An instance lives until the on_closed of its close. The
 * async handle is referenced only while requests are live, so an idle
 * instance does not keep uv_run from returning; close it all the same. */
#ifndef ML_TTS_ESPEAK_H
#define ML_TTS_ESPEAK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define ML_TTS_RATE 16000 /* Hz of the audio delivered */
/* Ring per started request, in 16 kHz samples (1 s, 32 KB): a consumer that
 * takes less than it is offered (or a loop that lags) stops the worker here. */
#define ML_TTS_RING_SAMPLES 16000

/* on_done status */
enum {
  ML_TTS_OK = 0,
  ML_TTS_CANCELLED = 1, /* ml_tts_request_cancel or ml_tts_espeak_close */
  ML_TTS_ERR_VOICE = -1, /* espeak-ng does not know the voice */
  ML_TTS_ERR_ENGINE = -2, /* espeak-ng failed to start (its data missing?) or to speak */
  ML_TTS_ERR_NOMEM = -3,
};

typedef struct ml_tts_espeak ml_tts_espeak;
typedef struct ml_tts_request ml_tts_request;

/* 0 (or NULL) in a field: espeak-ng's default */
typedef struct ml_tts_options {
  const char *voice; /* espeak-ng voice name or language: "en-us" (default), "en-gb", "fr", … */
  int rate_wpm; /* words per minute, 80..450; default 175 */
  int pitch; /* 1..100; default 50 */
  int volume; /* 1..200; default 100 */
} ml_tts_options;

/* pcm: n samples at 16 kHz, valid during the call. Return how many were
 * taken (normally n). Taking fewer pauses delivery of this request: the rest
 * stays buffered, the worker stops once the ring is full, and
 * ml_tts_request_resume offers the rest again. */
typedef size_t (*ml_tts_audio_cb)(ml_tts_request *req, const int16_t *pcm, size_t n, void *ud);
typedef void (*ml_tts_done_cb)(ml_tts_request *req, int status, void *ud);

/* NULL if the worker thread could not start or out of memory. */
ml_tts_espeak *ml_tts_espeak_create(uv_loop_t *loop);

/* Cancel every live request (each gets on_done(ML_TTS_CANCELLED)), wait for
 * the worker to let go of them, close the async handle, then call on_closed
 * (may be NULL) and free t. The last instance to close joins the worker
 * thread. speak() is refused from here on. */
void ml_tts_espeak_close(ml_tts_espeak *t, void (*on_closed)(void *data), void *data);

/* Queue utf8_text (copied; plain text, SSML off) for synthesis. Empty or
 * blank text completes with ML_TTS_OK and no audio on the next loop turn.
 * opts may be NULL. Returns NULL on bad arguments, while closing or out of
 * memory (no callback is called then). */
ml_tts_request *ml_tts_espeak_speak(ml_tts_espeak *t, const char *utf8_text, const ml_tts_options *opts,
                                    ml_tts_audio_cb on_audio, ml_tts_done_cb on_done, void *ud);

/* Stop: no on_audio once this returns; on_done(ML_TTS_CANCELLED) follows on
 * a later loop turn, once the worker let go (espeak-ng is aborted at its
 * next chunk). Idempotent until on_done. */
void ml_tts_request_cancel(ml_tts_request *req);

/* Offer the buffered audio again after on_audio took less than offered. */
void ml_tts_request_resume(ml_tts_request *req);

/* Samples synthesised and not yet taken (at most ML_TTS_RING_SAMPLES). */
size_t ml_tts_request_buffered(ml_tts_request *req);

const char *ml_tts_status_name(int status);

#endif
