/* moonline.voice (C half): TTS and STT engines and voices (an agent's audio
 * in a room, engine/voice/voice_io.h) as resources of the scope that opened
 * them. Audio never reaches Lua: a voice reports events, Lua issues
 * commands.
 *
 *   core.tts_open() -> tts | nil, err           (local: espeak-ng)
 *   core.tts_open({ url =, model =, voice =, api_key =, timeout =, idle_timeout =, max_buffer =,
 *                   ca_file =, insecure = }) -> tts | nil, err   (remote: OpenAI-compatible)
 *   tts:name() -> "espeak-ng" | "openai-http"
 *   core.stt_open([{ hmm =, lm =, dict =, jsgf =, pool =, partial_ms =, buffer_ms =, max_utt_ms = }])
 *     -> stt | nil, err
 *   core.voice_open(room, stt|nil, tts|nil [, opts]) -> voice | nil, err
 *     opts: min_speech_ms, min_silence_ms, prefix_padding_ms, voice, rate, pitch, volume,
 *           max_events, max_speech_ms
 *   voice:next() -> event | nil      (never waits)
 *   voice:wait() -> true when an event is queued | false, "closed" (parks the task otherwise)
 *   voice:speak(id, text) -> true | nil, err     voice:finish(id)
 *   voice:interrupt(id) -> bool      voice:pause(bool)      voice:stats()      voice:close()
 *   tts:close()  stt:close()  (asynchronous: the scope waits for the engine to let go)
 *
 * An event is { type =, at = seconds, ... }: "speech_start", "speech_end",
 * "transcript" (text, final), "synthesized" (id, seg, samples), "playout"
 * (id, interrupted, samples, played), "tts_error" (id, seg, text), "closed".
 *
 * Lifetimes: an engine keeps the list of the voices using it. Closing it
 * (explicitly, or its scope ending while voices of an outer scope still use
 * it) detaches them first (voice_io cancels their requests or closes their
 * stream, then forgets the engine), so no voice ever holds a dead engine. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ml_bind.h"
#include "tts_http.h"
#include "voice_io.h"

static const char TTS_MT[] = "moonline.tts";
static const char STT_MT[] = "moonline.stt";
static const char VOICE_MT[] = "moonline.voice";

typedef struct tts_res {
  ml_res res; /* first */
  ml_tts_engine *tts; /* tts.h: espeak-ng or a remote server */
  ml_list voices; /* voice_res.tts_link */
} tts_res;

typedef struct stt_res {
  ml_res res; /* first */
  ml_stt_sphinx *stt;
  ml_list voices; /* voice_res.stt_link */
} stt_res;

typedef struct voice_res {
  ml_res res; /* first */
  ml_voice_io *v;
  ml_waitq waiters;
  ml_list tts_link, stt_link;
  int had_tts; /* opened with one: "closed" rather than "none" once detached */
} voice_res;

/* ---- engines --------------------------------------------------------------------- */

static void on_engine_closed(void *data) { ml_res_closed(data); }

static void tts_close(ml_res *r)
{
  tts_res *tr = (tts_res *)r;
  while (!ml_list_empty(&tr->voices)) {
    voice_res *vr = ml_container_of(tr->voices.next, voice_res, tts_link);
    ml_list_remove(&vr->tts_link);
    ml_voice_io_detach_tts(vr->v);
  }
  ml_tts_close(tr->tts, on_engine_closed, r); /* after its cancelled requests' on_done */
}

static void stt_close(ml_res *r)
{
  stt_res *sr = (stt_res *)r;
  while (!ml_list_empty(&sr->voices)) {
    voice_res *vr = ml_container_of(sr->voices.next, voice_res, stt_link);
    ml_list_remove(&vr->stt_link);
    ml_voice_io_detach_stt(vr->v);
  }
  ml_stt_sphinx_close(sr->stt, on_engine_closed, r); /* joins its decoder threads */
}

static void res_free(ml_res *r) { free(r); }

static ml_res_type tts_type = {"tts", 0, tts_close, res_free};
static ml_res_type stt_type = {"stt", 0, stt_close, res_free};

static const char *opt_string(lua_State *L, int idx, const char *name)
{
  if (lua_isnoneornil(L, idx)) return NULL;
  lua_getfield(L, idx, name);
  const char *s = NULL;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "moonline.voice: option '%s' must be a string", name);
    s = lua_tostring(L, -1); /* kept alive by the options table */
  }
  lua_pop(L, 1);
  return s;
}

static unsigned opt_uint(lua_State *L, int idx, const char *name, unsigned def, unsigned max)
{
  if (lua_isnoneornil(L, idx)) return def;
  lua_getfield(L, idx, name);
  unsigned v = def;
  if (!lua_isnil(L, -1)) {
    lua_Number n = lua_tonumber(L, -1);
    if (!lua_isnumber(L, -1) || n < 0 || n > max)
      luaL_error(L, "moonline.voice: option '%s' must be a number between 0 and %u", name, max);
    v = (unsigned)n;
  }
  lua_pop(L, 1);
  return v;
}

/* seconds -> ms (0: the default) */
static unsigned opt_ms(lua_State *L, int idx, const char *name)
{
  lua_getfield(L, idx, name);
  unsigned ms = 0;
  if (!lua_isnil(L, -1)) {
    lua_Number sec = lua_tonumber(L, -1);
    if (!lua_isnumber(L, -1) || !(sec > 0) || sec > 3600)
      luaL_error(L, "moonline.voice: option '%s' must be a number of seconds in (0, 3600]", name);
    ms = (unsigned)(sec * 1000 + 0.5);
    if (!ms) ms = 1;
  }
  lua_pop(L, 1);
  return ms;
}

/* tts_open([opts]): with opts.url a remote OpenAI-compatible engine, else espeak-ng */
static int l_tts_open(lua_State *L)
{
  ml_task *t = ml_bind_task(L, "voice.tts");
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TTABLE);
  const char *url = opt_string(L, 1, "url");
  ml_tts_http_config hc = {0};
  if (url) {
    hc.url = url;
    hc.model = opt_string(L, 1, "model");
    hc.voice = opt_string(L, 1, "voice");
    hc.api_key = opt_string(L, 1, "api_key");
    hc.ca_file = opt_string(L, 1, "ca_file");
    lua_getfield(L, 1, "insecure");
    hc.insecure = lua_toboolean(L, -1);
    lua_pop(L, 1);
    hc.timeout_ms = opt_ms(L, 1, "timeout");
    hc.idle_ms = opt_ms(L, 1, "idle_timeout");
    hc.max_buffer = opt_uint(L, 1, "max_buffer", 0, 64u << 20);
  }
  tts_res *tr = calloc(1, sizeof *tr);
  if (!tr) return luaL_error(L, "out of memory");
  char err[256];
  if (url) {
    ml_tts_http *h = ml_tts_http_create(t->loop, &hc, err, sizeof err);
    tr->tts = ml_tts_http_engine(h);
  } else {
    tr->tts = ml_tts_espeak_engine(ml_tts_espeak_create(t->loop->uv));
    snprintf(err, sizeof err, "the TTS engine did not start (worker thread)");
  }
  if (!tr->tts) {
    free(tr);
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  ml_list_init(&tr->voices);
  ml_bind_open(L, t->loop, &tr->res, &tts_type, t->cur, TTS_MT);
  return 1;
}

static int l_tts_name(lua_State *L)
{
  tts_res *tr = (tts_res *)ml_box_get(L, 1, TTS_MT);
  if (!tr || tr->res.state != ML_RES_OPEN) luaL_error(L, "moonline.voice: the TTS engine is closed");
  lua_pushstring(L, ml_tts_engine_name(tr->tts));
  return 1;
}

static int l_stt_open(lua_State *L)
{
  ml_task *t = ml_bind_task(L, "voice.stt");
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TTABLE);
  ml_stt_sphinx_config cfg;
  ml_stt_sphinx_config_default(&cfg);
  cfg.hmm = opt_string(L, 1, "hmm");
  cfg.lm = opt_string(L, 1, "lm");
  cfg.dict = opt_string(L, 1, "dict");
  cfg.jsgf = opt_string(L, 1, "jsgf");
  cfg.pool = opt_uint(L, 1, "pool", cfg.pool, 64);
  cfg.partial_ms = opt_uint(L, 1, "partial_ms", cfg.partial_ms, 60000);
  cfg.buffer_ms = opt_uint(L, 1, "buffer_ms", cfg.buffer_ms, 600000);
  cfg.max_utt_ms = opt_uint(L, 1, "max_utt_ms", cfg.max_utt_ms, 600000);
  stt_res *sr = calloc(1, sizeof *sr);
  if (!sr) return luaL_error(L, "out of memory");
  char err[256];
  sr->stt = ml_stt_sphinx_create(t->loop->uv, &cfg, err, sizeof err);
  if (!sr->stt) {
    free(sr);
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  ml_list_init(&sr->voices);
  ml_bind_open(L, t->loop, &sr->res, &stt_type, t->cur, STT_MT);
  return 1;
}

/* ---- voices ---------------------------------------------------------------------- */

static void on_voice_event(ml_voice_io *v, void *data)
{
  (void)v;
  ml_waitq_wake(&((voice_res *)data)->waiters, INT_MAX);
}

static void voice_close(ml_res *r)
{
  voice_res *vr = (voice_res *)r;
  ml_voice_io_close(vr->v); /* no callback from here on */
  vr->v = NULL;
  if (ml_list_linked(&vr->tts_link)) ml_list_remove(&vr->tts_link);
  if (ml_list_linked(&vr->stt_link)) ml_list_remove(&vr->stt_link);
  ml_waitq_wake(&vr->waiters, INT_MAX); /* they find it closed */
  ml_res_closed(r);
}

static ml_res_type voice_type = {"voice", 0, voice_close, res_free};

/* the engine handle at idx (nil: none); a closed one is the script's mistake */
static ml_res *engine_arg(lua_State *L, int idx, const char *mt, const char *what)
{
  if (lua_isnoneornil(L, idx)) return NULL;
  ml_res *r = ml_box_get(L, idx, mt);
  if (!r || r->state != ML_RES_OPEN) luaL_error(L, "moonline.voice: the %s engine is closed", what);
  return r;
}

static int l_voice_open(lua_State *L)
{
  ml_task *t = ml_bind_task(L, "voice.open");
  ml_room *room = ml_bind_room_get(L, 1);
  stt_res *sr = (stt_res *)engine_arg(L, 2, STT_MT, "STT");
  tts_res *tr = (tts_res *)engine_arg(L, 3, TTS_MT, "TTS");
  if (!lua_isnoneornil(L, 4)) luaL_checktype(L, 4, LUA_TTABLE);
  ml_voice_config cfg;
  ml_voice_config_default(&cfg);
  cfg.vad.min_speech_ms = opt_uint(L, 4, "min_speech_ms", cfg.vad.min_speech_ms, 10000);
  cfg.vad.min_silence_ms = opt_uint(L, 4, "min_silence_ms", cfg.vad.min_silence_ms, 10000);
  cfg.vad.prefix_padding_ms = opt_uint(L, 4, "prefix_padding_ms", cfg.vad.prefix_padding_ms, 2000);
  cfg.tts.voice = opt_string(L, 4, "voice"); /* copied by voice_io */
  cfg.tts.rate_wpm = (int)opt_uint(L, 4, "rate", 0, 450);
  cfg.tts.pitch = (int)opt_uint(L, 4, "pitch", 0, 100);
  cfg.tts.volume = (int)opt_uint(L, 4, "volume", 0, 200);
  cfg.max_events = opt_uint(L, 4, "max_events", cfg.max_events, 65536);
  cfg.max_speech_ms = opt_uint(L, 4, "max_speech_ms", cfg.max_speech_ms, 3600000);
  if (cfg.tts.voice && strlen(cfg.tts.voice) >= 40)
    luaL_error(L, "moonline.voice: the voice name is too long");
  voice_res *vr = calloc(1, sizeof *vr);
  if (!vr) return luaL_error(L, "out of memory");
  ml_waitq_init(&vr->waiters);
  ml_list_init(&vr->tts_link);
  ml_list_init(&vr->stt_link);
  const char *err = NULL;
  vr->v =
      ml_voice_io_open_engine(room, sr ? sr->stt : NULL, tr ? tr->tts : NULL, &cfg, on_voice_event, vr, &err);
  if (!vr->v) {
    free(vr);
    lua_pushnil(L);
    lua_pushstring(L, err ? err : "out of memory");
    return 2;
  }
  if (sr) ml_list_push(&sr->voices, &vr->stt_link);
  if (tr) ml_list_push(&tr->voices, &vr->tts_link);
  vr->had_tts = tr != NULL;
  ml_bind_open(L, t->loop, &vr->res, &voice_type, t->cur, VOICE_MT);
  return 1;
}

static voice_res *check_voice(lua_State *L)
{
  voice_res *vr = (voice_res *)ml_box_get(L, 1, VOICE_MT);
  if (!vr || !vr->v) luaL_error(L, "moonline.voice: the voice is closed");
  return vr;
}

static uint32_t check_id(lua_State *L, int idx)
{
  lua_Number n = luaL_checknumber(L, idx);
  luaL_argcheck(L, n >= 0 && n <= 4294967295.0 && n == (lua_Number)(uint32_t)n, idx,
                "a speech id: an integer 0..2^32-1");
  return (uint32_t)n;
}

static const char *const event_names[] = {
    NULL, "speech_start", "speech_end", "transcript", "synthesized", "playout", "tts_error", "closed",
};

static void set_int(lua_State *L, const char *k, uint64_t v)
{
  lua_pushnumber(L, (lua_Number)v);
  lua_setfield(L, -2, k);
}

/* next() -> event | nil */
static int l_voice_next(lua_State *L)
{
  voice_res *vr = (voice_res *)ml_box_get(L, 1, VOICE_MT);
  ml_voice_event e;
  if (!vr || !vr->v || !ml_voice_io_next(vr->v, &e)) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 6);
  lua_pushstring(L, event_names[e.type]);
  lua_setfield(L, -2, "type");
  lua_pushnumber(L, (lua_Number)e.pos / ML_MIX_RATE);
  lua_setfield(L, -2, "at");
  switch (e.type) {
  case ML_VOICE_TRANSCRIPT:
    lua_pushboolean(L, e.is_final);
    lua_setfield(L, -2, "final");
    break;
  case ML_VOICE_SYNTHESIZED:
  case ML_VOICE_TTS_ERROR:
    set_int(L, "id", e.id);
    set_int(L, "seg", e.seg);
    if (e.type == ML_VOICE_SYNTHESIZED) set_int(L, "samples", e.samples);
    break;
  case ML_VOICE_PLAYOUT:
    set_int(L, "id", e.id);
    set_int(L, "samples", e.samples);
    set_int(L, "played", e.played);
    lua_pushboolean(L, e.interrupted);
    lua_setfield(L, -2, "interrupted");
    break;
  default:
    break;
  }
  if (e.text) {
    lua_pushstring(L, e.text);
    lua_setfield(L, -2, "text");
  }
  ml_voice_event_clear(&e);
  return 1;
}

/* wait() -> true (an event is queued, or woken: the Lua half looks again) | false, "closed" */
static int l_voice_wait(lua_State *L)
{
  voice_res *vr = (voice_res *)ml_box_get(L, 1, VOICE_MT);
  ml_task *t = ml_bind_wait_task(L, "voice:wait");
  if (!vr || !vr->v) return ml_bind_fail(L, "closed");
  if (ml_voice_io_pending(vr->v)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  ml_voice_stats st;
  ml_voice_io_stats_get(vr->v, &st);
  if (st.closed) return ml_bind_fail(L, "closed"); /* its CLOSED event was taken */
  return ml_bind_park(L, t, &vr->waiters, "voice event");
}

static int l_voice_speak(lua_State *L)
{
  voice_res *vr = check_voice(L);
  uint32_t id = check_id(L, 2);
  const char *text = luaL_checkstring(L, 3);
  const char *why = NULL;
  switch (ml_voice_io_speak(vr->v, id, text)) {
  case 0:
    lua_pushboolean(L, 1);
    return 1;
  case ML_VOICE_ENOTTS:
    why = vr->had_tts ? "the TTS engine is closed" : "no TTS engine";
    break;
  case ML_VOICE_EENDED:
    why = "the speech was finished or interrupted";
    break;
  case ML_VOICE_ECLOSED:
    why = "the room is closed";
    break;
  default:
    why = "out of memory";
    break;
  }
  lua_pushnil(L);
  lua_pushstring(L, why);
  return 2;
}

static int l_voice_finish(lua_State *L)
{
  voice_res *vr = check_voice(L);
  ml_voice_io_finish(vr->v, check_id(L, 2));
  return 0;
}

static int l_voice_interrupt(lua_State *L)
{
  voice_res *vr = check_voice(L);
  uint64_t played = 0;
  if (ml_voice_io_interrupt(vr->v, check_id(L, 2), &played) != 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushnumber(L, (lua_Number)played); /* samples the room took */
  return 1;
}

static int l_voice_pause(lua_State *L)
{
  voice_res *vr = check_voice(L);
  ml_voice_io_pause(vr->v, lua_isnone(L, 2) || lua_toboolean(L, 2));
  return 0;
}

static int l_voice_stats(lua_State *L)
{
  voice_res *vr = check_voice(L);
  ml_voice_stats st;
  ml_voice_io_stats_get(vr->v, &st);
  lua_createtable(L, 0, 14);
  set_int(L, "heard", st.heard);
  set_int(L, "spoken", st.spoken);
  set_int(L, "events_dropped", st.events_dropped);
  set_int(L, "events_over", st.events_over);
  set_int(L, "stt_dropped", st.stt_dropped);
  set_int(L, "tts_held", st.tts_held);
  set_int(L, "utterances", st.utterances);
  set_int(L, "speeches", st.speeches);
  set_int(L, "buffered", st.buffered);
  set_int(L, "buffer_bytes", st.buffer_bytes);
  set_int(L, "pending", ml_voice_io_pending(vr->v));
  lua_pushboolean(L, st.user_speaking);
  lua_setfield(L, -2, "user_speaking");
  lua_pushboolean(L, st.paused);
  lua_setfield(L, -2, "paused");
  lua_pushboolean(L, st.closed);
  lua_setfield(L, -2, "closed");
  return 1;
}

int ml_open_voice(lua_State *L)
{
  static const luaL_Reg engine_methods[] = {{"close", ml_box_close}, {NULL, NULL}};
  static const luaL_Reg tts_methods[] = {{"close", ml_box_close}, {"name", l_tts_name}, {NULL, NULL}};
  static const luaL_Reg voice_methods[] = {
      {"next", l_voice_next},     {"wait", l_voice_wait},           {"speak", l_voice_speak},
      {"finish", l_voice_finish}, {"interrupt", l_voice_interrupt}, {"pause", l_voice_pause},
      {"stats", l_voice_stats},   {"close", ml_box_close},          {NULL, NULL}};
  ml_res_type_register(&tts_type);
  ml_res_type_register(&stt_type);
  ml_res_type_register(&voice_type);
  ml_bind_class(L, TTS_MT, tts_methods);
  ml_bind_class(L, STT_MT, engine_methods);
  ml_bind_class(L, VOICE_MT, voice_methods);
  lua_pushcfunction(L, l_tts_open);
  lua_setfield(L, -2, "tts_open");
  lua_pushcfunction(L, l_stt_open);
  lua_setfield(L, -2, "stt_open");
  lua_pushcfunction(L, l_voice_open);
  lua_setfield(L, -2, "voice_open");
  return 0;
}
