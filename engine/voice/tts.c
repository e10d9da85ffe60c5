/* What every TTS engine shares (see tts.h). */
#include "tts.h"

const char *ml_tts_status_name(int status)
{
  switch (status) {
  case ML_TTS_OK:
    return "ok";
  case ML_TTS_CANCELLED:
    return "cancelled";
  case ML_TTS_ERR_VOICE:
    return "unknown voice";
  case ML_TTS_ERR_ENGINE:
    return "espeak-ng failed";
  case ML_TTS_ERR_NOMEM:
    return "out of memory";
  case ML_TTS_ERR_HTTP:
    return "the TTS server answered with an error";
  case ML_TTS_ERR_CONNECT:
    return "no connection to the TTS server";
  case ML_TTS_ERR_TIMEOUT:
    return "the TTS server timed out";
  default:
    return "?";
  }
}

const char *ml_tts_error(ml_tts_engine *e, ml_tts_request *req, int status)
{
  const char *m = e && e->ops->error && status < 0 ? e->ops->error(req) : NULL;
  return m && *m ? m : ml_tts_status_name(status);
}
