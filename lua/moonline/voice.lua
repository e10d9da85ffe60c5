-- moonline.voice: an agent's audio in a room. Audio never enters Lua: a voice
-- hears the room (VAD, then local STT) and speaks into it (local TTS, or a
-- remote OpenAI-compatible one); Lua sees events and issues commands.
--
--   local voice = require "moonline.voice"
--   local tts = assert(voice.tts())                          -- espeak-ng (or MOONLINE_TTS_URL's)
--   local tts = assert(voice.tts({ url = "http://127.0.0.1:8000/v1", voice = "alloy" }))
--   local stt = assert(voice.stt({ jsgf = "menu.gram" }))    -- pocketsphinx (nil, err: model missing)
--   local v = assert(voice.open(room, { stt = stt, tts = tts, min_silence_ms = 500 }))
--   v:speak(1, "Hello!") ; v:finish(1)
--   local ev = v:next_event()   -- waits: { type = "playout", id = 1, played =, samples =, … }
--
-- Engines and voices are resources of the current scope (closed when it
-- ends). Events (ev.type): speech_start / speech_end (the user; ev.at in
-- seconds since the voice opened), transcript (ev.text, ev.final),
-- synthesized (ev.id, ev.seg, ev.samples), playout (ev.id, ev.interrupted,
-- ev.samples, ev.played: 16 kHz samples), tts_error (ev.id, ev.text) and
-- closed (the room closed with the voice inside; the last event).
local core = require "moonline.core"
local task = require "moonline.task"

local await = task.await
local waitable = task.waitable
local wrap = task.wrap_method

local Voice = core.methods("moonline.voice")

local _M = {}

local getenv = os.getenv

local function env(name)
  local v = getenv(name)
  if v ~= nil and v ~= "" then return v end
end

--- tts([opts]) -> engine | nil, err.
-- With a url (opts.url, else MOONLINE_TTS_URL): a remote OpenAI-compatible
-- engine (POST {url}/audio/speech, 24 kHz "pcm" streamed and resampled):
--   voice.tts{ url = "http://127.0.0.1:8000/v1", model = "tts-1", voice = "alloy", api_key = "sk-…",
--              timeout = 10, idle_timeout = 5, max_buffer = 65536, ca_file =, insecure = }
-- model, voice and api_key default from MOONLINE_TTS_MODEL, MOONLINE_TTS_VOICE
-- and MOONLINE_TTS_API_KEY (else OPENAI_API_KEY). opts.url = false forces the
-- local engine. Not OPENAI_BASE_URL: that often names an LLM-only server.
-- Without a url: the local TTS (espeak-ng). engine:name() tells which.
function _M.tts(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("moonline.voice.tts: options must be a table", 2)
  end
  opts = opts or {}
  local url = opts.url
  if url == nil then url = env("MOONLINE_TTS_URL") end
  if not url then return core.tts_open() end
  if type(url) ~= "string" then
    error("moonline.voice.tts: url must be a string", 2)
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.url = url
  o.model = opts.model or env("MOONLINE_TTS_MODEL")
  o.voice = opts.voice or env("MOONLINE_TTS_VOICE")
  o.api_key = opts.api_key or env("MOONLINE_TTS_API_KEY") or env("OPENAI_API_KEY")
  return core.tts_open(o)
end

--- stt([{ jsgf =, lm =, dict =, hmm =, pool = 1, partial_ms = 500, buffer_ms = 10000 }])
-- -> engine | nil, err: the local STT (pocketsphinx), its decoders loading
-- in the background.
function _M.stt(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("moonline.voice.stt: options must be a table", 2)
  end
  return core.stt_open(opts)
end

--- open(room, { stt =, tts =, min_speech_ms =, min_silence_ms =, prefix_padding_ms =,
--   voice =, rate =, pitch =, volume =, max_events = 256, max_speech_ms = 120000 })
-- -> voice | nil, err (the room is full). stt and tts are optional: without
-- stt no transcripts, without tts speak() fails.
function _M.open(room, opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("moonline.voice.open: options must be a table", 2)
  end
  return core.voice_open(room, opts.stt, opts.tts, opts)
end

local raw_next = Voice.next

--- v:wait() -> true once an event is queued | nil, "closed"
wrap(Voice, "wait", function(raw)
  return function(self)
    waitable("voice:wait")
    local ok, err, scope = raw(self)
    if ok == false then return nil, err end
    await(ok, err, scope) -- cancelled (nil, reason, scope): raises
    return true
  end
end)
local raw_wait = Voice._raw_wait

local function next_event(self)
  while true do
    local ev = raw_next(self)
    if ev then return ev end
    waitable("voice:next_event")
    local ok, err, scope = raw_wait(self)
    if ok == false then return nil, err end
    await(ok, err, scope)
  end
end

--- v:next_event([seconds]) -> event | nil, "closed" | nil, "timeout"
-- Waits for the next event (every event is delivered, in order).
function Voice:next_event(seconds)
  if not seconds then return next_event(self) end
  local ok, ev, err = task.with_timeout(seconds, next_event, self)
  if not ok then return nil, "timeout" end
  return ev, err
end

--- v:speak(id, text) -> true | nil, err: a text segment of speech `id` (a
-- number chosen by the caller, never reused). Speeches play in the order of
-- their first segment; v:finish(id) says no more segments will come, and
-- its "playout" event follows once everything is played.
--- v:interrupt(id) -> played | false: stop it now ("playout" with
-- interrupted = true follows); played: its 16 kHz samples the room took.
--- v:pause(bool): stop / resume publishing (within one 20 ms frame).
--- v:stats() -> { heard =, spoken =, buffered =, speeches =, user_speaking =, … }

return _M
