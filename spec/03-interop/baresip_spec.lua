-- Interop with baresip (Debian's baresip 1.0) as the caller, on loopback and
-- without a sound card: what the caller heard is checked from baresip's own
-- recording, with sox. The engine side runs in this process; baresip runs as a
-- child process, waited for without blocking the loop.
--
-- How baresip is configured and run: spec/support/baresip.lua.
local rt = require "runtime_helper"
local task = require "moonline.task"
local sip = require "moonline.sip"
local audio = require "support.audio"
local baresip = require "support.baresip"

local HOST = "127.0.0.1"
local near, log = baresip.near, baresip.log
local recording = baresip.recording

-- pending unless the tools are installed: true when the spec is to return
local function pending_unless(...)
  local why = baresip.missing(...)
  if why then
    pending(why)
    return true
  end
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
local function handled(seen, blog)
  local done = task.with_timeout(5, function()
    while not seen.state do task.sleep(0.01) end
  end)
  assert(done, "the engine's call handler did not finish" .. blog)
end

describe("SIP interop with baresip as the caller", function()
  it("the caller hears the 440 Hz tone the engine plays, between silences", rt.run(function()
    if pending_unless("baresip", "sox") then return end
    local LEAD, TONE, TAIL, LEVEL, HZ = 0.5, 2.0, 0.5, 0.3, 440
    local dir = baresip.tmpdir()
    local source = baresip.silence(dir, 10) -- the caller says nothing, for longer than the call
    local listener, seen, target = engine(function(call, seen)
      assert(call:answer())
      seen.confirmed = call:wait("confirmed")
      task.sleep(LEAD)
      call:tone(HZ, LEVEL, TONE)
      task.sleep(TONE + TAIL)
      call:hangup()
      call:wait("ended")
    end)
    local code, out, err = baresip.call(dir, source, target, 5)
    listener:close() -- stop accepting; the call in progress finishes
    local blog = log(out, err)
    assert.equal(0, code, blog)
    handled(seen, blog)

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
    assert(first, "no tone in the recording" .. blog)
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
    if pending_unless("baresip", "sox", "espeak-ng") then return end
    local dir = baresip.tmpdir()
    -- 8 kHz mono S16, as aufile wants it, padded to n.5 s: baresip 1.0's aufile
    -- notices the end of its file on a 1 s timer, then hangs up
    local source, raw, duration = baresip.speech(dir, "hello moonline, this is a test call")
    local listener, seen, target = engine(function(call, seen)
      assert(call:answer())
      seen.confirmed = call:wait("confirmed")
      call:wait("ended") -- the caller hangs up at the end of its speech
    end)
    local code, out, err = baresip.call(dir, source, target, duration + 3)
    listener:close() -- stop accepting; the call in progress finishes
    local blog = log(out, err)
    assert.equal(0, code, blog)
    handled(seen, blog)
    assert.equal("confirmed", seen.confirmed)
    assert.same({ "ended", "remote hangup", 0 }, seen.state)
    assert.equal(0, seen.rtp.rx_bad)
    local heard = seen.rtp.rx_packets * 0.02
    assert.is_true(heard >= duration - 0.1 and heard <= duration + 0.7,
      ("received %d packets (%.2f s) of %.2f s of speech%s"):format(seen.rtp.rx_packets, heard, duration, blog))
    -- and what baresip sent is that speech: its encoder's input, recorded
    local sent = audio.info(recording(dir, "-enc.wav")).duration
    assert.is_true(sent >= duration - 0.1, "baresip sent " .. sent .. " s")
    print(("\n    engine received %d packets (%.2f s) for %.2f s of speech (%.2f s unpadded)")
      :format(seen.rtp.rx_packets, heard, duration, raw))
  end))
  it("in a room: the caller hears a WAV prompt, the agent's endpoint hears the caller", rt.run(function()
    if pending_unless("baresip", "sox", "espeak-ng") then return end
    local dir = baresip.tmpdir()
    -- see above (aufile's 1 s timer); 2 s more after the speech for the prompt
    local source, raw, duration = baresip.speech(dir, "I would like to speak to a person please", 2)
    local prompt = dir .. "/prompt.wav"
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
    local code, out, err = baresip.call(dir, source, target, duration + 3)
    listener:close()
    local blog = log(out, err)
    assert.equal(0, code, blog)
    handled(seen, blog)
    assert.same({ "ended", "remote hangup", 0 }, seen.state)

    -- the caller heard the prompt, through the room (16 kHz) and G.711
    local wav = recording(dir, "-dec.wav")
    local s = audio.samples(wav)
    local first, last = audio.find_above(s, LEVEL / 3)
    assert(first, "no prompt in the recording" .. blog)
    local rate = audio.info(wav).rate
    near(PROMPT, 0.08, (last - first + 1) / rate, "prompt duration (s)")
    local edge = math.floor(rate / 50)
    local m = audio.measure(s, first + edge, last - edge, rate)
    near(HZ, 3, m.freq, "prompt frequency (Hz)")
    near(audio.dbfs(LEVEL / math.sqrt(2)), 2, m.rms_db, "prompt RMS (dBFS)")

    -- the agent heard the caller: speech for about as long as it was spoken
    local ear = audio.from_s16le(table.concat(heard))
    local said = audio.voiced_seconds(audio.samples(source), 8000)
    local got = audio.voiced_seconds(ear, 16000)
    assert.is_true(said > 1, "espeak said " .. said .. " s")
    near(said, 0.3, got, "voiced seconds the agent heard")
    print(("\n    in a room: the caller heard the prompt %.3f s at %.1f Hz, %.2f dBFS; " ..
      "the agent heard %.2f s of voice of %.2f s spoken"):format((last - first + 1) / rate, m.freq, m.rms_db,
      got, said))
  end))
end)
