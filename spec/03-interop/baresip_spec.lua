-- Interop with baresip (Debian's baresip 1.0) as the caller, on loopback and
-- without a sound card: what the caller heard is checked from baresip's own
-- recording, with sox. The engine side runs in this process; baresip runs as a
-- child process, waited for without blocking the loop.
--
-- How baresip is driven (all in a temporary directory given with -f):
--   config    sip_listen 127.0.0.1:0, net_interface 127.0.0.1 (SDP and RTP on
--             loopback), G.711 only; audio_source `aufile,<wav>` (what the
--             caller says: 8 kHz mono S16 WAV; at its end baresip hangs up),
--             audio_player `aubridge` (a player with no device), and the
--             `sndfile` filter, which dumps the decoded audio of the call, what
--             the caller heard, to <snd_path>/dump-<time>-dec.wav (and what it
--             sent to …-enc.wav). No stdio module: stdin is not a terminal.
--   accounts  one local account, no registration
--   command   baresip -f <dir> -s -e "/dial <engine>" -t <seconds>: dials at
--             start (the menu module's command), quits after <seconds>. Its
--             output is only read after it exits (flushed then), for messages.
local rt = require "runtime_helper"
local task = require "moonline.task"
local sip = require "moonline.sip"
local process = require "support.process"
local audio = require "support.audio"
local uv = require "luv"

local HOST = "127.0.0.1"
local BARESIP, SOX, ESPEAK = audio.which("baresip"), audio.which("sox"), audio.which("espeak-ng")

local CONFIG = [[
poll_method		epoll
sip_listen		127.0.0.1:0
sip_transports		udp
net_interface		127.0.0.1
audio_player		aubridge,moonline-spec
audio_alert		aubridge,moonline-spec
audio_source		aufile,SOURCE
audio_srate		8000
audio_channels		1
module_path		/usr/lib/baresip/modules
module			g711.so
module			aufile.so
module			aubridge.so
module			sndfile.so
module_app		account.so
module_app		menu.so
snd_path		DIR
]]

local function pending_unless(...)
  local missing = {}
  for _, tool in ipairs({ ... }) do
    if not tool[2] then missing[#missing + 1] = tool[1] end
  end
  if #missing > 0 then
    pending(table.concat(missing, ", ") .. " not installed (scripts/setup installs them)")
    return true
  end
end

-- the names in a directory
local function list(dir)
  local names, req = {}, uv.fs_scandir(dir)
  while req do
    local name = uv.fs_scandir_next(req)
    if not name then break end
    names[#names + 1] = name
  end
  return names
end

-- a temporary directory, removed with its files when the current scope ends
local function tmpdir()
  local dir = assert(uv.fs_mkdtemp("/tmp/moonline-baresip-XXXXXX"))
  task.defer(function()
    for _, name in ipairs(list(dir)) do os.remove(dir .. "/" .. name) end
    uv.fs_rmdir(dir)
  end)
  return dir
end

-- baresip(dir, source_wav, target, seconds) -> exit code, stdout, stderr:
-- calls target, saying source_wav, and quits after `seconds`
local function baresip(dir, source, target, seconds)
  local config = CONFIG:gsub("SOURCE", source):gsub("DIR", dir)
  local f = assert(io.open(dir .. "/config", "w"))
  f:write(config)
  f:close()
  f = assert(io.open(dir .. "/accounts", "w"))
  f:write("<sip:caller@127.0.0.1>;regint=0\n")
  f:close()
  return process.run(BARESIP, { "-f", dir, "-s", "-e", "/dial " .. target, "-t", tostring(seconds) },
    { timeout = seconds + 15, cwd = dir })
end

-- the one file of dir whose name ends with suffix
local function recording(dir, suffix)
  local found = {}
  for _, name in ipairs(list(dir)) do
    if name:sub(-#suffix) == suffix then found[#found + 1] = dir .. "/" .. name end
  end
  assert(#found == 1, ("expected one *%s in %s, found: %s"):format(suffix, dir, table.concat(list(dir), " ")))
  return found[1]
end

local function near(expected, tolerance, actual, what)
  assert(actual and math.abs(actual - expected) <= tolerance,
    ("%s: expected %.2f ± %.2f, got %s"):format(what, expected, tolerance, tostring(actual)))
end

-- the engine listens on an ephemeral port; handler(call, seen) fills `seen`
local function engine(handler)
  local seen = {}
  local listener = assert(sip.listen({ host = HOST, port = 0, handler = function(call)
    seen.info = call:info()
    handler(call, seen)
    seen.state = { call:state() }
    seen.rtp = call:rtp_stats()
  end }))
  return listener, seen, ("sip:agent@%s:%d"):format(HOST, listener:port())
end

-- until the engine's call handler has finished (bounded: a handler that
-- failed never fills seen.state)
local function handled(seen, log)
  local done = task.with_timeout(5, function()
    while not seen.state do task.sleep(0.01) end
  end)
  assert(done, "the engine's call handler did not finish" .. log)
end

describe("SIP interop with baresip as the caller", function()
  it("the caller hears the 440 Hz tone the engine plays, between silences", rt.run(function()
    if pending_unless({ "baresip", BARESIP }, { "sox", SOX }) then return end
    local LEAD, TONE, TAIL, LEVEL, HZ = 0.5, 2.0, 0.5, 0.3, 440
    local dir = tmpdir()
    local source = dir .. "/silence.wav" -- the caller says nothing, for longer than the call
    audio.sox({ "-n", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", source, "trim", "0", "10" })
    local listener, seen, target = engine(function(call, seen)
      assert(call:answer())
      seen.confirmed = call:wait("confirmed")
      task.sleep(LEAD)
      call:tone(HZ, LEVEL, TONE)
      task.sleep(TONE + TAIL)
      call:hangup()
      call:wait("ended")
    end)
    local code, out, err = baresip(dir, source, target, 5)
    listener:close() -- stop accepting; the call in progress finishes
    local log = "\n--- baresip stdout:\n" .. out .. "\n--- stderr:\n" .. err
    assert.equal(0, code, log)
    handled(seen, log)

    -- the engine's side of the call
    assert.matches("<sip:caller@127.0.0.1>", seen.info.from, 1, true)
    assert.matches("PCMU/8000", seen.info.sdp, 1, true)
    assert.equal("confirmed", seen.confirmed)
    assert.same({ "ended", "local hangup", 0 }, seen.state)
    local call_s = LEAD + TONE + TAIL
    assert.is_true(seen.rtp.tx_packets >= call_s / 0.02 - 5, "sent " .. seen.rtp.tx_packets)
    assert.is_true(seen.rtp.rx_packets >= call_s / 0.02 - 25, "received " .. seen.rtp.rx_packets)
    assert.equal(0, seen.rtp.rx_bad)
    assert.matches("Call established", out, 1, true)

    -- what the caller heard: baresip's decoded audio
    local wav = recording(dir, "-dec.wav")
    local info = audio.info(wav)
    assert.same({ 8000, 1 }, { info.rate, info.channels })
    local s = audio.samples(wav)
    assert.equal(info.samples, #s)
    local first, last = audio.find_above(s, LEVEL / 3)
    assert(first, "no tone in the recording" .. log)
    local rate = info.rate
    near(TONE, 0.06, (last - first + 1) / rate, "tone duration (s)")
    -- the tone, 20 ms in from each end: frequency and level
    local edge = math.floor(rate / 50)
    local m = audio.measure(s, first + edge, last - edge, rate)
    local peak_db = audio.dbfs(LEVEL)                -- -10.46 dBFS: the tone's peak
    local rms_db = audio.dbfs(LEVEL / math.sqrt(2)) -- -13.47 dBFS: its RMS
    near(HZ, 2, m.freq, "zero-crossing frequency (Hz)")
    near(rms_db, 2, m.rms_db, "tone RMS (dBFS)")
    near(peak_db, 1, m.peak_db, "tone peak (dBFS)")
    assert.is_true(m.min_window_rms_db > rms_db - 1, "a dropout in the tone: " .. m.min_window_rms_db)
    -- sox's measures of the same stretch
    local st = audio.sox_stats(wav, (first + edge - 1) / rate, (last - first + 1 - 2 * edge) / rate)
    near(HZ, 5, st.dominant_hz, "sox stat -freq: dominant frequency (Hz)")
    near(HZ, 10, st.rough_hz, "sox stat: rough frequency (Hz)")
    near(rms_db, 2, st.rms_db, "sox stats: RMS lev dB")
    near(peak_db, 1, st.peak_db, "sox stats: Pk lev dB")
    -- silence before and after. The trailing one is short of TAIL by what
    -- baresip's jitter buffer (5 frames by default) held when the BYE came.
    local ms = math.floor(rate / 1000)
    local lead_s, tail_s = (first - 1) / rate, (#s - last) / rate
    assert.is_true(lead_s >= LEAD - 0.2 and lead_s <= LEAD + 0.05, "leading silence " .. lead_s .. " s")
    assert.is_true(tail_s >= TAIL - 0.15 and tail_s <= TAIL + 0.05, "trailing silence " .. tail_s .. " s")
    assert.is_true(audio.dbfs(audio.peak(s, 1, first - ms)) < -50, "noise before the tone")
    assert.is_true(audio.dbfs(audio.peak(s, last + ms, #s)) < -50, "noise after the tone")
    print(("\n    baresip heard: tone %.3f s, %.2f Hz (sox: dominant %.2f Hz, rough %d Hz), " ..
      "RMS %.2f dBFS (sox %.2f), peak %.2f dBFS (sox %.2f); silence %.2f s before, %.2f s after")
      :format((last - first + 1) / rate, m.freq, st.dominant_hz, st.rough_hz, m.rms_db, st.rms_db,
        m.peak_db, st.peak_db, lead_s, tail_s))
  end))

  it("the engine receives the caller's speech for as long as it lasts", rt.run(function()
    if pending_unless({ "baresip", BARESIP }, { "sox", SOX }, { "espeak-ng", ESPEAK }) then return end
    local dir = tmpdir()
    local spoken, source = dir .. "/spoken.wav", dir .. "/speech.wav"
    local code, _, err = process.run(ESPEAK, { "-w", spoken, "hello moonline, this is a test call" },
      { timeout = 30 })
    assert.equal(0, code, err)
    -- 8 kHz mono S16, as aufile wants it, padded to n.5 s: baresip 1.0's aufile
    -- notices the end of its file on a 1 s timer, then hangs up
    local raw = audio.info(spoken).duration
    local duration = math.ceil(raw + 0.5) - 0.5
    audio.sox({ spoken, "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", source,
                "pad", "0", ("%.4f"):format(duration - raw) })
    near(duration, 0.01, audio.info(source).duration, "speech file duration (s)")
    local listener, seen, target = engine(function(call, seen)
      assert(call:answer())
      seen.confirmed = call:wait("confirmed")
      call:wait("ended") -- the caller hangs up at the end of its speech
    end)
    local out
    code, out, err = baresip(dir, source, target, duration + 3)
    listener:close() -- stop accepting; the call in progress finishes
    local log = "\n--- baresip stdout:\n" .. out .. "\n--- stderr:\n" .. err
    assert.equal(0, code, log)
    handled(seen, log)
    assert.equal("confirmed", seen.confirmed)
    assert.same({ "ended", "remote hangup", 0 }, seen.state)
    assert.equal(0, seen.rtp.rx_bad)
    local heard = seen.rtp.rx_packets * 0.02
    assert.is_true(heard >= duration - 0.1 and heard <= duration + 0.7,
      ("received %d packets (%.2f s) of %.2f s of speech%s"):format(seen.rtp.rx_packets, heard, duration, log))
    -- and what baresip sent is that speech: its encoder's input, recorded
    local sent = audio.info(recording(dir, "-enc.wav")).duration
    assert.is_true(sent >= duration - 0.1, "baresip sent " .. sent .. " s")
    print(("\n    engine received %d packets (%.2f s) for %.2f s of speech (%.2f s unpadded)")
      :format(seen.rtp.rx_packets, heard, duration, raw))
  end))
  it("in a room: the caller hears a WAV prompt, the agent's endpoint hears the caller", rt.run(function()
    if pending_unless({ "baresip", BARESIP }, { "sox", SOX }, { "espeak-ng", ESPEAK }) then return end
    local dir = tmpdir()
    local spoken, source, prompt = dir .. "/spoken.wav", dir .. "/speech.wav", dir .. "/prompt.wav"
    local code, _, err = process.run(ESPEAK, { "-w", spoken, "I would like to speak to a person please" },
      { timeout = 30 })
    assert.equal(0, code, err)
    local raw = audio.info(spoken).duration
    -- see above (aufile's 1 s timer); 2 s more after the speech for the prompt
    local duration = math.ceil(raw + 0.5) - 0.5 + 2
    audio.sox({ spoken, "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", source,
                "pad", "0", ("%.4f"):format(duration - raw) })
    -- the prompt: 1 s of 1000 Hz at 16 kHz stereo, a format the room converts
    local HZ, LEVEL, PROMPT = 1000, 0.3, 1.0
    audio.sox({ "-n", "-r", "16000", "-c", "2", "-b", "16", "-e", "signed-integer", prompt,
                "synth", tostring(PROMPT), "sine", tostring(HZ), "vol", tostring(LEVEL) })
    local heard, listening = {}, true
    local listener, seen, target = engine(function(call, seen)
      local ctx = sip.context(call)
      assert(ctx:accept())
      seen.confirmed = call:wait("confirmed")
      local r = ctx.room
      local ep = r:endpoint()
      task.spawn(function() -- the agent's ear: what it hears while the caller speaks
        while listening and ep:wait() do heard[#heard + 1] = ep:read(16000) end
      end)
      task.sleep(raw + 0.5)
      listening = false -- the agent hears the prompt too (N−1): not counted as the caller's voice
      local track = assert(r:play(prompt))
      assert(track:wait(3))
      call:wait("ended") -- the caller hangs up at the end of its speech
      ep:close()
    end)
    local out
    code, out, err = baresip(dir, source, target, duration + 3)
    listener:close()
    local log = "\n--- baresip stdout:\n" .. out .. "\n--- stderr:\n" .. err
    assert.equal(0, code, log)
    handled(seen, log)
    assert.same({ "ended", "remote hangup", 0 }, seen.state)

    -- the caller heard the prompt, through the room (16 kHz) and G.711
    local wav = recording(dir, "-dec.wav")
    local s = audio.samples(wav)
    local first, last = audio.find_above(s, LEVEL / 3)
    assert(first, "no prompt in the recording" .. log)
    local rate = audio.info(wav).rate
    near(PROMPT, 0.08, (last - first + 1) / rate, "prompt duration (s)")
    local edge = math.floor(rate / 50)
    local m = audio.measure(s, first + edge, last - edge, rate)
    near(HZ, 3, m.freq, "prompt frequency (Hz)")
    near(audio.dbfs(LEVEL / math.sqrt(2)), 2, m.rms_db, "prompt RMS (dBFS)")

    -- the agent heard the caller: speech for about as long as it was spoken
    local function voiced_seconds(samples, r)
      local n, frame = 0, math.floor(r / 50)
      for i = 1, #samples - frame + 1, frame do
        if audio.dbfs(audio.rms(samples, i, i + frame - 1)) > -40 then n = n + 1 end
      end
      return n * 0.02
    end
    local ear = audio.from_s16le(table.concat(heard))
    local said = voiced_seconds(audio.samples(source), 8000)
    local got = voiced_seconds(ear, 16000)
    assert.is_true(said > 1, "espeak said " .. said .. " s")
    near(said, 0.3, got, "voiced seconds the agent heard")
    print(("\n    in a room: the caller heard the prompt %.3f s at %.1f Hz, %.2f dBFS; " ..
      "the agent heard %.2f s of voice of %.2f s spoken"):format((last - first + 1) / rate, m.freq, m.rms_db,
      got, said))
  end))
end)
