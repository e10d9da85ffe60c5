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

#include "tts.h" /* ML_TTS_RATE, statuses, options, callbacks, the engine interface */

/* Ring per started request, in 16 kHz samples (1 s, 32 KB): a consumer that
 * takes less than it is offered (or a loop that lags) stops the worker here. */
#define ML_TTS_RING_SAMPLES 16000

typedef struct ml_tts_espeak ml_tts_espeak;

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

/* The instance as an ml_tts_engine (tts.h), "espeak-ng": its speak, cancel,
 * resume and close are the functions above. */
ml_tts_engine *ml_tts_espeak_engine(ml_tts_espeak *t);

#endif
