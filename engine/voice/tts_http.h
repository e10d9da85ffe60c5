/* Remote text-to-speech: an OpenAI-compatible server's POST {url}/audio/speech
 * with {model, input, voice, response_format = "pcm"}, whose body streams raw
 * 24 kHz mono s16le PCM. The audio is resampled to 16 kHz and handed to
 * on_audio as it arrives (the first words play before the response ends).
 * It is an ml_tts_engine (tts.h) like the local espeak-ng one.
 *
 * HTTP goes through engine/net/http_client.c on the loop: no thread. Each
 * request is one connection; on_audio and on_done are called from a timer
 * the connection's notify arms, never inside an lws callback.
 *
 * Bounds: the HTTP client queues at most `max_buffer` bytes of a response
 * before it stops reading the socket (the server then waits: TCP flow
 * control), so a consumer that takes fewer samples (a voice holding its
 * audio) holds the download back, not memory. Per request: the request
 * struct (one input and one output block inline), the resampler, and the
 * HTTP client's queue; nothing is allocated per audio chunk.
 *
 * Failures end the request with on_done(error) and a message from
 * ml_tts_error (during on_done): ML_TTS_ERR_HTTP "…/audio/speech: HTTP 401:
 * Incorrect API key provided" (the server's error.message when it sent
 * one), ML_TTS_ERR_CONNECT "…: connection refused" or "…: the audio stream
 * broke: …", ML_TTS_ERR_TIMEOUT "…: no response within 10 s" (connect,
 * request and response headers) or "…: the audio stalled for 5 s" (no body
 * byte while the consumer was taking audio). */
#ifndef ML_TTS_HTTP_H
#define ML_TTS_HTTP_H

#include <stddef.h>

#include "ml_runtime.h"
#include "tts.h"

typedef struct ml_tts_http ml_tts_http;

/* NULL or 0 in a field: the default */
typedef struct ml_tts_http_config {
  const char *url; /* the API base, "https://api.openai.com/v1" (required); copied */
  const char *model; /* "tts-1" */
  const char *voice; /* "alloy"; a request's ml_tts_options.voice wins when set */
  const char *api_key; /* sent as "Authorization: Bearer …"; NULL: none */
  const char *ca_file; /* https: CA bundle instead of the system's */
  int insecure; /* https: no certificate check */
  unsigned timeout_ms; /* connect + request + response headers: 10000 */
  unsigned idle_ms; /* the body stalls while audio is being taken: 5000 */
  unsigned max_buffer; /* response bytes queued before reading stops: 65536 (1.4 s) */
} ml_tts_http_config;

#define ML_TTS_HTTP_RATE 24000 /* Hz of OpenAI's "pcm" format */

/* NULL with err filled ("bad url: …", out of memory). */
ml_tts_http *ml_tts_http_create(ml_loop *loop, const ml_tts_http_config *cfg, char *err, size_t errlen);
ml_tts_engine *ml_tts_http_engine(ml_tts_http *h);

#endif
