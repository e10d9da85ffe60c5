-- Voices in rooms through the real engine (VAD, pocketsphinx, espeak-ng):
-- a voice hears a clip played into its room and reports the user's speech
-- and its transcript; it speaks text that an endpoint in the room hears,
-- reports playout, is interrupted; engines closed under it; the room
-- closing under it. Every spec ends with the ledger at zero.
local rt = require "runtime_helper"
local task = require "moonline.task"
local room = require "moonline.room"
local voice = require "moonline.voice"
local voice_events = require "support.voice_events"
local until_event, of_type = voice_events.until_event, voice_events.of_type

local GRAMMAR = "spec/fixtures/stt_ivr.gram"
local LONG = "It was a bright cold day in April, and the clocks were striking thirteen. Winston Smith, "
  .. "his chin nuzzled into his breast in an effort to escape the vile wind, slipped quickly through "
  .. "the glass doors of Victory Mansions."

-- the loudest sample (of 32767) in an s16le string
local function peak(pcm)
  local max, byte = 0, string.byte
  for i = 1, #pcm - 1, 2 do
    local lo, hi = byte(pcm, i, i + 1)
    local s = hi * 256 + lo
    if s >= 32768 then s = 65536 - s end
    if s > max then max = s end
  end
  return max
end

describe("voice", function()
  it("hears a clip: speech_start, speech_end, then a final transcript", rt.run(function()
    local r = room.create("hear")
    local stt = assert(voice.stt({ jsgf = GRAMMAR }))
    local v = assert(voice.open(r, { stt = stt }))
    task.sleep(0.6)
    assert(r:play("spec/fixtures/stt_digits.wav"))
    local final, seen = until_event(v, function(ev) return ev.type == "transcript" and ev.final end)
    assert.equal("speech_start", seen[1].type)
    local ends = 0
    for _, ev in ipairs(seen) do
      if ev.type == "speech_end" then ends = ends + 1 end
    end
    assert.equal(1, ends)
    assert.is_string(final.text)
    assert(final.text:find("five"), "transcript: " .. final.text)
    assert(seen[1].at > 0.2 and seen[1].at < 0.6, "padded start at " .. seen[1].at) -- onset at 0.6 s
    local st = v:stats()
    assert.equal(1, st.utterances)
    assert.is_false(st.user_speaking)
  end))

  it("speaks: synthesized, then playout with every sample played; the room hears it", rt.run(function()
    local r = room.create("speak")
    local tts = assert(voice.tts())
    local v = assert(voice.open(r, { tts = tts }))
    local ear = r:endpoint({ hear_ms = 5000 })
    assert.is_true(v:speak(1, "Hello there, how can I help you?"))
    v:finish(1)
    local done, seen = until_event(v, of_type("playout", 1))
    assert.equal("synthesized", seen[1].type)
    assert.equal(0, seen[1].seg)
    assert.equal(seen[1].samples, done.samples)
    assert.equal(done.samples, done.played)
    assert.is_false(done.interrupted)
    assert(done.samples > 16000, "samples " .. done.samples)
    assert(peak(ear:read(80000)) > 3000, "the room did not carry the voice")
    local ok, err = v:speak(1, "again")
    assert.is_nil(ok)
    assert.equal("the speech was finished or interrupted", err)
    assert.equal(done.samples, v:stats().spoken)
    assert.equal(0, v:stats().buffer_bytes)
  end))

  it("interrupt stops a speech mid-way; pause and resume", rt.run(function()
    local r = room.create("interrupt")
    local tts = assert(voice.tts())
    local v = assert(voice.open(r, { tts = tts }))
    assert(v:speak(7, LONG))
    v:finish(7)
    until_event(v, of_type("synthesized", 7))
    task.sleep(0.3)
    v:pause(true)
    local spoken = v:stats().spoken
    task.sleep(0.1)
    assert.equal(spoken, v:stats().spoken)
    v:pause(false)
    task.sleep(0.2)
    assert(v:stats().spoken > spoken)
    local played = v:interrupt(7)
    assert.is_false(v:interrupt(7))
    local ev = until_event(v, of_type("playout", 7), 1)
    assert.is_true(ev.interrupted)
    assert.equal(played, ev.played)
    assert(ev.played > 0 and ev.played < ev.samples, ("played %d of %d"):format(ev.played, ev.samples))
    assert.equal(ev.played, v:stats().spoken)
  end))

  it("speeches play in the order of their first segment", rt.run(function()
    local r = room.create("order")
    local tts = assert(voice.tts())
    local v = assert(voice.open(r, { tts = tts }))
    assert(v:speak(1, "One."))
    assert(v:speak(2, "Two."))
    v:finish(2)
    v:finish(1)
    local _, seen = until_event(v, of_type("playout", 2))
    local order = {}
    for _, ev in ipairs(seen) do
      if ev.type == "playout" then order[#order + 1] = ev.id end
    end
    assert.same({ 1, 2 }, order)
  end))

  it("closing the TTS engine while a voice speaks is safe", rt.run(function()
    local r = room.create("tts-close")
    local tts = assert(voice.tts())
    local v = assert(voice.open(r, { tts = tts }))
    assert(v:speak(3, LONG))
    assert(v:speak(3, LONG:rep(4)))
    tts:close() -- the first segment is being synthesized, the second waits
    local err_ev = until_event(v, of_type("tts_error", 3), 2)
    assert.equal("the TTS engine is closed", err_ev.text)
    local ok, err = v:speak(4, "hello")
    assert.is_nil(ok)
    assert.equal("the TTS engine is closed", err)
    -- whatever was synthesized plays on (spec/c/test_voice_io.c plays it
    -- out); the speech still ends
    task.sleep(0.2)
    assert.is_number(v:interrupt(3))
    local ev = until_event(v, of_type("playout", 3), 1)
    assert.is_true(ev.interrupted)
    assert.equal(v:stats().spoken, ev.played)
    -- a closed engine cannot be given to a new voice
    assert.has_error(function() voice.open(r, { tts = tts }) end, "moonline.voice: the TTS engine is closed")
  end))

  it("the room closing ends the speech, then a closed event; wait says closed", rt.run(function()
    local r = room.create("gone")
    local tts = assert(voice.tts())
    local stt = assert(voice.stt({ jsgf = GRAMMAR }))
    local v = assert(voice.open(r, { tts = tts, stt = stt }))
    assert(v:speak(1, LONG))
    task.sleep(0.2)
    r:close()
    local last, seen = until_event(v, of_type("closed"), 1)
    assert.equal("playout", seen[#seen - 1].type)
    assert.is_true(seen[#seen - 1].interrupted)
    assert.equal(last, seen[#seen])
    assert.same({ nil, "closed" }, { v:next_event() })
    assert.same({ nil, "closed" }, { v:wait() })
    assert.same({ nil, "the room is closed" }, { v:speak(2, "hi") })
  end))

  it("a waiting task is woken, and cancelled cleanly", rt.run(function()
    local r = room.create("wait")
    local tts = assert(voice.tts())
    local v = assert(voice.open(r, { tts = tts }))
    assert.same({ nil, "timeout" }, { v:next_event(0.1) })
    task.scope(function()
      local waiter = task.spawn("waiter", function() return v:next_event() end)
      task.sleep(0.05)
      assert(v:speak(1, "Hi."))
      local ok, ev = waiter:wait()
      assert.is_true(ok)
      assert.equal("synthesized", ev.type)
    end)
    v:close()
    assert.has_error(function() v:speak(1, "x") end, "moonline.voice: the voice is closed")
    assert.same({ nil, "closed" }, { v:next_event() })
  end))

  it("stt() with a missing model returns nil, err; misuse raises", rt.run(function()
    local stt, err = voice.stt({ hmm = "/nonexistent/en-us" })
    assert.is_nil(stt)
    assert.matches("acoustic model not found", err)
    assert.has_error(function() voice.stt("x") end, "moonline.voice.stt: options must be a table")
    assert.has_error(function() voice.open({}, {}) end)
  end))
end)
