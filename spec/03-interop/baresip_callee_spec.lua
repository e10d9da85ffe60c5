-- Interop with baresip (Debian's baresip 1.0) as the callee: a human agent's
-- phone that answers by itself (the account's ;answermode=auto), listening on
-- 127.0.0.1:<a port chosen here>. The engine dials it with sip.dial and the
-- answered leg joins a room. What baresip heard is checked from its own
-- recording, with sox; what it said, from the room's audio endpoint. How
-- baresip is configured and run: spec/support/baresip.lua.
local rt = require "runtime_helper"
local task = require "moonline.task"
local sip = require "moonline.sip"
local room = require "moonline.room"
local audio = require "support.audio"
local baresip = require "support.baresip"
local uv = require "luv"

local near, log = baresip.near, baresip.log

-- pending unless the tools are installed: true when the spec is to return
local function pending_unless(...)
  local why = baresip.missing(...)
  if why then
    pending(why)
    return true
  end
end

-- until something listens on 127.0.0.1:port (UDP), bounded: baresip has
-- started once our own bind to that port fails
local function listening(port, seconds)
  return task.with_timeout(seconds, function()
    while true do
      local udp = uv.new_udp()
      local ok = udp:bind("127.0.0.1", port)
      udp:close()
      if not ok then return true end
      task.sleep(0.02)
    end
  end)
end

-- baresip answering on its port, started and listening: proc, uri
local function human(dir, source, seconds)
  local proc, port = baresip.answer(dir, source, seconds)
  if not listening(port, 5) then
    local _, _, out, err = proc:stop()
    error("baresip does not listen on 127.0.0.1:" .. port .. log(out, err))
  end
  return proc, ("sip:human@127.0.0.1:%d"):format(port)
end

-- stop baresip (SIGTERM: it quits cleanly and flushes its output) -> stdout, stderr
local function stop(proc)
  local code, signal, out, err = proc:stop(5)
  assert(code == 0 and signal == 0, ("baresip exit %s, signal %s"):format(tostring(code), tostring(signal))
    .. log(out, err))
  return out, err
end

describe("SIP interop with baresip as an auto-answering callee", function()
  it("answers the engine's dial and hears the room's tone; the engine hangs up", rt.run(function()
    if pending_unless("baresip", "sox") then return end
    local LEAD, TONE, TAIL, LEVEL, HZ = 0.5, 1.5, 0.5, 0.3, 600
    local dir = baresip.tmpdir()
    -- baresip says nothing, for longer than the call (the end of its file would hang up)
    local proc, uri = human(dir, baresip.silence(dir, 20), 15)
    local r = room.create("agent")
    local call, why, status = sip.dial(uri, { room = r, ringing_timeout = 5 })
    assert(call, ("dial %s: %s %s"):format(uri, tostring(why), tostring(status)))
    assert.is_true(r:has(call))
    local info = call:info()
    assert.matches("PCMU/8000", info.sdp, 1, true)
    assert.matches("baresip", call:header("Server") or "", 1, true)
    task.sleep(LEAD)
    local track = assert(r:play(HZ, { level = LEVEL, seconds = TONE }))
    assert(track:wait(TONE + 1))
    task.sleep(TAIL)
    call:hangup()
    assert(task.with_timeout(5, function() return call:wait("ended") end), "the BYE was not answered")
    assert.same({ "ended", "local hangup", 0 }, { call:state() })
    local rtp = call:rtp_stats()
    call:close()
    local out, err = stop(proc)
    local blog = log(out, err)

    -- baresip's side: it answered at once, and the engine's BYE closed the call
    assert.matches("Call established: sip:moonline@127.0.0.1", out, 1, true)
    assert.matches("session closed: Connection reset by peer", out, 1, true)
    assert.matches("Call with sip:moonline@127.0.0.1 terminated", out, 1, true)
    assert.equal(0, rtp.rx_bad)
    local call_s = LEAD + TONE + TAIL
    assert.is_true(rtp.tx_packets >= call_s / 0.02 - 5, "sent " .. rtp.tx_packets)
    assert.is_true(rtp.rx_packets >= call_s / 0.02 - 25, "received " .. rtp.rx_packets)

    -- what it heard: the tone, through the room (16 kHz) and G.711
    local wav = baresip.recording(dir, "-dec.wav")
    local winfo = audio.info(wav)
    assert.same({ 8000, 1 }, { winfo.rate, winfo.channels })
    local s = audio.samples(wav)
    local first, last = audio.find_above(s, LEVEL / 3)
    assert(first, "no tone in the recording" .. blog)
    local rate = winfo.rate
    local heard_s = (last - first + 1) / rate
    near(TONE, 0.1, heard_s, "tone duration (s)")
    local edge = math.floor(rate / 50)
    local m = audio.measure(s, first + edge, last - edge, rate)
    local rms_db = audio.dbfs(LEVEL / math.sqrt(2)) -- -13.47 dBFS
    near(HZ, 2, m.freq, "zero-crossing frequency (Hz)")
    near(rms_db, 2, m.rms_db, "tone RMS (dBFS)")
    assert.is_true(m.min_window_rms_db > rms_db - 1, "a dropout in the tone: " .. m.min_window_rms_db)
    local st = audio.sox_stats(wav, (first + edge - 1) / rate, (last - first + 1 - 2 * edge) / rate)
    near(HZ, 5, st.dominant_hz, "sox stat -freq: dominant frequency (Hz)")
    near(rms_db, 2, st.rms_db, "sox stats: RMS lev dB")
    local ms = math.floor(rate / 1000)
    assert.is_true(audio.dbfs(audio.peak(s, 1, first - ms)) < -50, "noise before the tone")
    assert.is_true(audio.dbfs(audio.peak(s, last + ms, #s)) < -50, "noise after the tone")
    print(("\n    baresip (callee) heard: tone %.3f s, %.2f Hz (sox: dominant %.2f Hz), RMS %.2f dBFS (sox %.2f); " ..
      "silence %.2f s before, %.2f s after"):format(heard_s, m.freq, st.dominant_hz, m.rms_db, st.rms_db,
      (first - 1) / rate, (#s - last) / rate))
  end))

  it("says its speech to the room's endpoint, then hangs up: remote hangup", rt.run(function()
    if pending_unless("baresip", "sox", "espeak-ng") then return end
    local dir = baresip.tmpdir()
    local source, raw, duration = baresip.speech(dir, "hello, this is the support desk, how can I help")
    local proc, uri = human(dir, source, duration + 10)
    local r = room.create("agent")
    local ep = r:endpoint()
    local heard = {}
    task.spawn(function() -- the agent's ear, from before the call is answered
      while true do
        local pcm = ep:listen(320) -- one 20 ms tick at 16 kHz
        if not pcm then break end
        heard[#heard + 1] = pcm
      end
    end)
    local call, why, status = sip.dial(uri, { room = r, ringing_timeout = 5 })
    assert(call, ("dial %s: %s %s"):format(uri, tostring(why), tostring(status)))
    local t0 = uv.hrtime()
    -- baresip hangs up at the end of its file (aufile's 1 s timer: within a second of it)
    local ended = task.with_timeout(duration + 3, function() return call:wait("ended") end)
    local call_s = (uv.hrtime() - t0) / 1e9
    local rtp = call:rtp_stats()
    local state = { call:state() }
    call:close()
    ep:close()
    local out, err = stop(proc)
    local blog = log(out, err)
    assert(ended, "baresip did not hang up" .. blog)
    assert.same({ "ended", "remote hangup", 0 }, state)
    assert.matches("Call established: sip:moonline@127.0.0.1", out, 1, true)
    assert.equal(0, rtp.rx_bad)
    near(duration, 1.1, call_s, "call length (s)")

    -- the agent heard the speech, for about as long as it was spoken
    local said = audio.voiced_seconds(audio.samples(source), 8000)
    local got = audio.voiced_seconds(audio.from_s16le(table.concat(heard)), 16000)
    assert.is_true(said > 1, "espeak said " .. said .. " s")
    near(said, 0.3, got, "voiced seconds the agent heard")
    -- and what baresip sent is that speech: its encoder's input, recorded
    local sent = audio.info(baresip.recording(dir, "-enc.wav")).duration
    assert.is_true(sent >= duration - 0.1, "baresip sent " .. sent .. " s")
    print(("\n    baresip (callee) said %.2f s of voice (%.2f s file, %.2f s unpadded), the agent heard %.2f s; " ..
      "call %.2f s, %d packets received"):format(said, duration, raw, got, call_s, rtp.rx_packets))
  end))
end)
