/* A text-to-speech engine, whichever one speaks: the local espeak-ng
 * (tts_espeak.h) or a remote OpenAI-compatible server (tts_http.h). Voices
 * (voice_io.h) and the Lua binding drive an engine only through this.
 *
 * The contract every engine keeps (see tts_espeak.h for the local one):
 *   - every call and every callback is on the loop thread;
 *   - speak() queues a request and returns it (NULL: refused, no callback);
 *     audio comes as 16 kHz mono int16 through on_audio, which returns how
 *     many samples it took; taking fewer pauses the request until resume();
 *   - on_done comes exactly once per request (ML_TTS_OK, ML_TTS_CANCELLED or
 *     an error status), never inside speak() or cancel(); during it,
 *     error() tells why in words (the status name, or the engine's own
 *     message: "HTTP 401: Incorrect API key", "connection refused", …);
 *   - cancel(): no on_audio once it returns, on_done(ML_TTS_CANCELLED) on a
 *     later loop turn; idempotent until on_done;
 *   - close(): cancels every live request (each gets its on_done), then
 *     calls on_closed (may be NULL) and frees the engine. */
#ifndef ML_TTS_H
#define ML_TTS_H

#include <stddef.h>
#include <stdint.h>

#define ML_TTS_RATE 16000 /* Hz of the audio delivered */

/* on_done status */
enum {
  ML_TTS_OK = 0,
  ML_TTS_CANCELLED = 1, /* cancel, or the engine closing */
  ML_TTS_ERR_VOICE = -1, /* the engine does not know the voice */
  ML_TTS_ERR_ENGINE = -2, /* the engine failed (espeak-ng's data missing?) */
  ML_TTS_ERR_NOMEM = -3,
  ML_TTS_ERR_HTTP = -4, /* the server answered with an error status or a bad body */
  ML_TTS_ERR_CONNECT = -5, /* no connection, or it broke */
  ML_TTS_ERR_TIMEOUT = -6, /* no response, or the audio stalled */
};

typedef struct ml_tts_request ml_tts_request; /* opaque: each engine has its own */

/* 0 (or NULL) in a field: the engine's default */
typedef struct ml_tts_options {
  const char *voice; /* espeak-ng voice name or language: "en-us" (default), "en-gb", "fr", … */
  int rate_wpm; /* words per minute, 80..450; default 175 */
  int pitch; /* 1..100; default 50 */
  int volume; /* 1..200; default 100 */
} ml_tts_options;

/* pcm: n samples at 16 kHz, valid during the call. Return how many were
 * taken (normally n); fewer pauses the request until resume. */
typedef size_t (*ml_tts_audio_cb)(ml_tts_request *req, const int16_t *pcm, size_t n, void *ud);
typedef void (*ml_tts_done_cb)(ml_tts_request *req, int status, void *ud);

typedef struct ml_tts_engine ml_tts_engine;

typedef struct ml_tts_engine_ops {
  const char *name; /* "espeak-ng", "openai-http" */
  ml_tts_request *(*speak)(ml_tts_engine *e, const char *utf8_text, const ml_tts_options *opts,
                           ml_tts_audio_cb on_audio, ml_tts_done_cb on_done, void *ud);
  void (*cancel)(ml_tts_request *req);
  void (*resume)(ml_tts_request *req);
  /* why the request failed, valid during its on_done; NULL: the status name */
  const char *(*error)(ml_tts_request *req);
  void (*close)(ml_tts_engine *e, void (*on_closed)(void *data), void *data);
} ml_tts_engine_ops;

/* Embedded in each engine's own struct. */
struct ml_tts_engine {
  const ml_tts_engine_ops *ops;
};

static inline ml_tts_request *ml_tts_speak(ml_tts_engine *e, const char *utf8_text,
                                           const ml_tts_options *opts, ml_tts_audio_cb on_audio,
                                           ml_tts_done_cb on_done, void *ud)
{
  return e->ops->speak(e, utf8_text, opts, on_audio, on_done, ud);
}
static inline void ml_tts_cancel(ml_tts_engine *e, ml_tts_request *req) { e->ops->cancel(req); }
static inline void ml_tts_resume(ml_tts_engine *e, ml_tts_request *req) { e->ops->resume(req); }
static inline void ml_tts_close(ml_tts_engine *e, void (*on_closed)(void *data), void *data)
{
  e->ops->close(e, on_closed, data);
}
static inline const char *ml_tts_engine_name(const ml_tts_engine *e) { return e->ops->name; }

const char *ml_tts_status_name(int status);
/* During on_done: the engine's message for the request, else the status name. */
const char *ml_tts_error(ml_tts_engine *e, ml_tts_request *req, int status);

#endif
