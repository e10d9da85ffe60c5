-- The remote TTS engine (OpenAI-compatible: POST {url}/audio/speech, a body
-- of raw 24 kHz s16le PCM) through the real engine, against a real local
-- HTTP server started by each spec (support/http_server.lua): a voice in a
-- room plays what the server streams (resampled to 16 kHz, heard by an
-- endpoint), cancels mid-stream by closing the connection, and turns HTTP
-- errors, a refused connection and a stalled server into tts_error events
-- with a clear message while the speech still ends. The ledger is zero after
-- each spec.
local rt = require "runtime_helper"
local eventually = rt.eventually
local task = require "moonline.task"
local room = require "moonline.room"
local voice = require "moonline.voice"
local voice_events = require "support.voice_events"
local until_event, of_type = voice_events.until_event, voice_events.of_type
local audio = require "support.audio"
local http_server = require "support.http_server"
local cjson = require "cjson.safe"
local uv = require "luv"
local moonline = require "moonline"
local process = require "support.process"
local net = require "support.net"

local IN_RATE, RATE = 24000, 16000
local TONE_HZ = 1000

-- 24 kHz s16le of a tone
local function tone_pcm(seconds, hz)
  return audio.to_s16le(audio.sine(hz or TONE_HZ, seconds, IN_RATE, 0.5))
end

-- pcm cut into chunks of `ms` (an odd byte count on purpose: samples split
-- across chunks must join)
local function chunks_of(pcm, ms)
  local size = math.floor(IN_RATE * 2 * ms / 1000) + 1
  local out = {}
  for i = 1, #pcm, size do out[#out + 1] = pcm:sub(i, i + size - 1) end
  return out
end

local function speech_response(pcm, ms, delay)
  return { status = 200, headers = { ["content-type"] = "audio/pcm" }, chunks = chunks_of(pcm, ms), delay = delay }
end

local function find(seen, t)
  for _, ev in ipairs(seen) do
    if ev.type == t then return ev end
  end
end

local function remote_tts(srv, extra)
  local o = { url = srv.url .. "/v1", model = "tts-1", voice = "alloy", api_key = "sk-test" }
  for k, val in pairs(extra or {}) do o[k] = val end
  return assert(voice.tts(o))
end

-- speak `text` as speech `id` and finish it
local function say(v, id, text)
  assert(v:speak(id, text))
  v:finish(id)
end

describe("remote TTS (OpenAI-compatible)", function()
  it("streams the server's 24 kHz PCM into the room at 16 kHz: the ear hears the tone; the request is the API's",
    rt.run(function()
      local pcm = tone_pcm(1.2)
      local resp = speech_response(pcm, 100, 0.1) -- real time
      resp.delay = { 0 } -- the first chunk at once (then 0.1 s before each)
      setmetatable(resp.delay, { __index = function() return 0.1 end })
      local srv = http_server.start({ responses = { resp } })
      local r = room.create("tts-http")
      local tts = remote_tts(srv)
      assert.equal("openai-http", tts:name())
      local v = assert(voice.open(r, { tts = tts }))
      local ear = r:endpoint({ hear_ms = 5000 })
      local t0 = task.now()
      say(v, 1, "Hello \"there\",\nworld.")
      local first
      task.with_timeout(5, function()
        while v:stats().buffered + v:stats().spoken == 0 do task.sleep(0.001) end
        first = task.now() - t0
      end)
      assert(first, "no audio")
      -- streaming: the voice plays while the server is still sending (the response lasts ~1.2 s)
      task.sleep(0.4)
      local st = v:stats()
      assert(st.spoken > 0.2 * RATE, "spoken " .. st.spoken)
      local done, seen = until_event(v, of_type("playout", 1))
      local synth = assert(find(seen, "synthesized"))
      assert(synth.at - seen[1].at >= 0 and st.spoken < synth.samples, "audio came before the end")
      assert.equal(1.2 * RATE, synth.samples) -- exactly 2/3 of the input, delay dropped and flushed
      assert.equal(synth.samples, done.samples)
      assert.equal(done.samples, done.played)
      assert.is_false(done.interrupted)
      -- what the room carried: the tone, 1.2 s, at 1 kHz after 24k -> 16k
      local heard = audio.from_s16le(ear:read(5 * RATE))
      local secs = audio.voiced_seconds(heard)
      -- 20 ms frames: a frame partly filled at each end, and at each gap when
      -- the real-time stream ran dry for a moment, counts whole (seen: 1.24 s)
      assert(secs >= 1.16 and secs <= 1.32, "heard " .. secs .. " s")
      local on, off = audio.tone_level(heard, RATE, TONE_HZ), audio.tone_level(heard, RATE, 1500)
      assert(on > 20 * off, ("1 kHz %.4f, 1.5 kHz %.4f"):format(on, off))
      local first_s, last_s = audio.find_above(heard, 0.1)
      local m = audio.measure(heard, first_s, last_s, RATE)
      assert(math.abs(m.freq - TONE_HZ) < 10, "frequency " .. m.freq)
      assert(math.abs(m.peak_db - 20 * math.log10(0.5)) < 1, "peak " .. m.peak_db .. " dBFS")
      -- the request
      assert.equal(1, #srv.requests)
      local req = srv.requests[1]
      assert.equal("POST", req.method)
      assert.equal("/v1/audio/speech", req.path)
      assert.equal("Bearer sk-test", req.headers.authorization)
      assert.equal("application/json", req.headers["content-type"])
      local body = assert(cjson.decode(req.body))
      assert.same({ model = "tts-1", input = "Hello \"there\",\nworld.", voice = "alloy", response_format = "pcm" },
        body)
      print(("    remote TTS: first audio %.1f ms after speak (connect, POST, first 100 ms chunk)")
        :format(first * 1000))
    end))

  it("the voice's own option wins over the engine's; no api_key, no Authorization", rt.run(function()
    local srv = http_server.start({ responses = { speech_response(tone_pcm(0.2), 100, 0) } })
    local r = room.create("tts-http-voice")
    local tts = assert(voice.tts({ url = srv.url .. "/v1/", model = "gpt-4o-mini-tts", voice = "nova",
                                   api_key = false }))
    local v = assert(voice.open(r, { tts = tts, voice = "shimmer" }))
    say(v, 1, "Hi.")
    until_event(v, of_type("playout", 1))
    local req = srv.requests[1]
    assert.equal("/v1/audio/speech", req.path)
    assert.is_nil(req.headers.authorization)
    local body = cjson.decode(req.body)
    assert.equal("gpt-4o-mini-tts", body.model)
    assert.equal("shimmer", body.voice)
  end))

  it("interrupt mid-stream aborts the request: the server sees the connection close", rt.run(function()
    local pcm = tone_pcm(6)
    local srv = http_server.start({ responses = { speech_response(pcm, 100, 0.1) } })
    local r = room.create("tts-http-cancel")
    local tts = remote_tts(srv)
    local v = assert(voice.open(r, { tts = tts }))
    say(v, 5, "A long story.")
    eventually(function() return v:stats().spoken > 0.5 * RATE end, 5, "half a second played")
    assert.equal(0, srv.peer_closed)
    local t0 = uv.hrtime()
    local played = assert(v:interrupt(5))
    local ms
    task.with_timeout(2, function()
      while srv.peer_closed == 0 do task.sleep(0.001) end
      ms = (uv.hrtime() - t0) / 1e6
    end)
    assert(ms, "the server did not see the connection close")
    local ev = until_event(v, of_type("playout", 5), 1)
    assert.is_true(ev.interrupted)
    assert.equal(played, ev.played)
    assert(ms < 100, "closed after " .. ms .. " ms")
    -- nothing more is queued, and the next speech gets a new request
    assert.is_nil(v:next())
    say(v, 6, "Next.")
    local done = until_event(v, of_type("playout", 6), 15)
    assert.is_false(done.interrupted)
    assert.equal(2, #srv.requests)
    print(("    remote TTS: interrupt -> the server saw the connection close in %.1f ms"):format(ms))
  end))

  it("closing the engine mid-stream: tts_error 'the TTS engine is closed', the speech ends, the server sees the close",
    rt.run(function()
      local srv = http_server.start({ responses = { speech_response(tone_pcm(4), 100, 0.1) } })
      local r = room.create("tts-http-close")
      local tts = remote_tts(srv)
      local v = assert(voice.open(r, { tts = tts }))
      say(v, 1, "Story.")
      eventually(function() return v:stats().spoken > 0.2 * RATE end, 5)
      tts:close()
      local done, seen = until_event(v, of_type("playout", 1), 5)
      assert.equal("the TTS engine is closed", assert(find(seen, "tts_error")).text)
      assert.is_false(done.interrupted)
      eventually(function() return srv.peer_closed == 1 end, 2, "the server to see the close")
    end))

  for _, case in ipairs({
    { status = 500, body = '{"error":{"message":"The server had an error","type":"server_error"}}',
      want = "HTTP 500: The server had an error" },
    { status = 401, body = '{"error":{"message":"Incorrect API key provided: sk-test.","code":"invalid_api_key"}}',
      want = "HTTP 401: Incorrect API key provided: sk-test." },
    { status = 429, body = "Too many requests\n", want = "HTTP 429: Too many requests" },
  }) do
    it(("HTTP %d -> tts_error naming it; the speech still ends (playout)"):format(case.status), rt.run(function()
      local srv = http_server.start({ responses = {
        { status = case.status, headers = { ["content-type"] = "application/json" }, body = case.body },
        speech_response(tone_pcm(0.3), 100, 0),
      } })
      local r = room.create("tts-http-" .. case.status)
      local tts = remote_tts(srv)
      local v = assert(voice.open(r, { tts = tts }))
      say(v, 1, "Hello.")
      local done, seen = until_event(v, of_type("playout", 1))
      local err = assert(find(seen, "tts_error"))
      assert.equal(1, err.id)
      assert.equal(srv.url .. "/v1/audio/speech: " .. case.want, err.text)
      assert.equal(0, done.samples)
      assert.is_false(done.interrupted)
      -- the engine is still usable
      say(v, 2, "Again.")
      local ok = until_event(v, of_type("playout", 2))
      assert.equal(0.3 * RATE, ok.samples)
    end))
  end

  it("a refused connection -> tts_error 'connection refused'; the speech ends", rt.run(function()
    local port = net.free_port("tcp")
    local r = room.create("tts-http-refused")
    local tts = assert(voice.tts({ url = "http://127.0.0.1:" .. port .. "/v1" }))
    local v = assert(voice.open(r, { tts = tts }))
    say(v, 1, "Hello.")
    local done, seen = until_event(v, of_type("playout", 1))
    local err = assert(find(seen, "tts_error"))
    assert.equal("http://127.0.0.1:" .. port .. "/v1/audio/speech: connection refused", err.text)
    assert.equal(0, done.samples)
  end))

  it("a server that never answers -> a bounded timeout", rt.run(function()
    local srv = http_server.start({ responses = { { status = 200, first_byte_delay = 30, body = "" } } })
    local r = room.create("tts-http-noanswer")
    local tts = remote_tts(srv, { timeout = 0.3 })
    local v = assert(voice.open(r, { tts = tts }))
    local t0 = task.now()
    say(v, 1, "Hello.")
    local _, seen = until_event(v, of_type("playout", 1), 3)
    local took = task.now() - t0
    assert.equal(srv.url .. "/v1/audio/speech: no response within 0.3 s", assert(find(seen, "tts_error")).text)
    assert(took >= 0.29 and took < 0.8, "took " .. took)
    eventually(function() return srv.peer_closed == 1 end, 2, "the server to see the close")
  end))

  it("a server that stalls mid-stream -> a bounded timeout; what came plays", rt.run(function()
    local pcm = tone_pcm(0.4)
    local resp = speech_response(pcm, 100, 0)
    resp.delay = { 0, 0, 30 } -- two chunks, then nothing
    local srv = http_server.start({ responses = { resp } })
    local r = room.create("tts-http-stall")
    local tts = remote_tts(srv, { idle_timeout = 0.3 })
    local v = assert(voice.open(r, { tts = tts }))
    local t0 = task.now()
    say(v, 1, "Hello.")
    local done, seen = until_event(v, of_type("playout", 1), 3)
    local err = assert(find(seen, "tts_error"))
    assert.equal(srv.url .. "/v1/audio/speech: the audio stalled for 0.3 s", err.text)
    local took = task.now() - t0
    assert(took < 1.2, "took " .. took)
    assert(done.samples > 0.15 * RATE and done.samples < 0.25 * RATE, "samples " .. done.samples)
    assert.equal(done.samples, done.played)
  end))

  it("a voice holding its audio holds the download back, then plays all of it", rt.run(function()
    -- 4 s sent as fast as possible into a voice that buffers at most 0.5 s
    local srv = http_server.start({ responses = { speech_response(tone_pcm(4), 100, 0) } })
    local r = room.create("tts-http-held")
    local tts = remote_tts(srv, { max_buffer = 8192 })
    local v = assert(voice.open(r, { tts = tts, max_speech_ms = 500 }))
    say(v, 1, "Long.")
    task.sleep(1)
    local st = v:stats()
    assert(st.tts_held > 0, "never held")
    assert(st.buffered <= 0.5 * RATE, "buffered " .. st.buffered)
    local done = until_event(v, of_type("playout", 1), 10)
    assert.equal(4 * RATE, done.samples)
    assert.equal(done.samples, done.played)
  end))

  it("blank text completes with no request; bad urls are refused at once", rt.run(function()
    local srv = http_server.start({})
    local r = room.create("tts-http-blank")
    local tts = remote_tts(srv)
    local v = assert(voice.open(r, { tts = tts }))
    say(v, 1, "  \n")
    local done = until_event(v, of_type("playout", 1))
    assert.equal(0, done.samples)
    assert.equal(0, #srv.requests)
    local t, err = voice.tts({ url = "ftp://example.com/v1" })
    assert.is_nil(t)
    assert.matches("bad url", err)
  end))

  it("defaults from MOONLINE_TTS_URL, MOONLINE_TTS_API_KEY, MOONLINE_TTS_MODEL, MOONLINE_TTS_VOICE", rt.run(function()
    local ffi = require "ffi"
    pcall(ffi.cdef, "int setenv(const char *, const char *, int); int unsetenv(const char *);")
    local srv = http_server.start({ responses = { speech_response(tone_pcm(0.2), 100, 0) } })
    local vars = { MOONLINE_TTS_URL = srv.url .. "/v1", MOONLINE_TTS_API_KEY = "sk-env",
                   MOONLINE_TTS_MODEL = "tts-1-hd", MOONLINE_TTS_VOICE = "echo" }
    local saved = {}
    for k, val in pairs(vars) do
      saved[k] = os.getenv(k)
      ffi.C.setenv(k, val, 1)
    end
    task.defer(function()
      for k in pairs(vars) do
        if saved[k] then ffi.C.setenv(k, saved[k], 1) else ffi.C.unsetenv(k) end
      end
    end)
    local tts = assert(voice.tts())
    assert.equal("openai-http", tts:name())
    local v = assert(voice.open(room.create("tts-http-env"), { tts = tts }))
    say(v, 1, "Env.")
    until_event(v, of_type("playout", 1))
    local req = srv.requests[1]
    assert.equal("Bearer sk-env", req.headers.authorization)
    assert.same({ "tts-1-hd", "echo" }, { cjson.decode(req.body).model, cjson.decode(req.body).voice })
    assert.equal("espeak-ng", assert(voice.tts({ url = false })):name())
  end))
end)

describe("an AgentSession in a room with the remote TTS", function()
  it("says two sentences; the ear hears the server's speech", rt.run(function()
    local SENTENCES = { "Thank you for calling.", "How can I help you today?" }
    -- real speech from the server: espeak-ng's, made 24 kHz s16le by sox, per sentence
    local speech, want = {}, 0
    for _, text in ipairs(SENTENCES) do
      local wav = os.tmpname()
      assert.equal(0, (process.run("espeak-ng", { "-w", wav, text })))
      speech[text] = audio.sox({ wav, "-r", "24000", "-t", "raw", "-e", "signed-integer", "-b", "16", "-L", "-" })
      os.remove(wav)
      want = want + #speech[text] / 2 / IN_RATE
    end
    local srv = http_server.start({ responses = { function(req)
      local input = (cjson.decode(req.body) or {}).input or ""
      local pcm = speech[input:match("^%s*(.-)%s*$")]
      if not pcm then return { status = 400, body = "unknown input: " .. input } end
      return speech_response(pcm, 200, 0.05)
    end } })
    local r = room.create("tts-http-session")
    local tts = remote_tts(srv)
    local s = moonline.AgentSession.new({ llm = moonline.testing.ScriptedLLM({}), tts = tts })
    local ear = r:endpoint({ hear_ms = 20000 })
    s:start({ agent = moonline.Agent:extend({ name = "Desk", instructions = "Greet." }):new(), room = r })
    local sp = s:say(table.concat(SENTENCES, " "))
    eventually(function() return sp.done end, 15, "the sentence to play out")
    assert.is_false(sp.interrupted)
    local heard = audio.from_s16le(ear:read(20 * RATE) or "")
    local loud = audio.voiced_seconds(heard)
    print(("    session: the ear heard %.2f s of voice (%.2f s sent at 24 kHz)"):format(loud, want))
    assert(loud > 0.6 * want and loud <= want + 0.05, "heard " .. loud .. " s of " .. want)
    for _, req in ipairs(srv.requests) do
      assert(speech[cjson.decode(req.body).input:match("^%s*(.-)%s*$")], "asked for " .. req.body)
    end
    s:close()
  end))
end)
