-- Rooms with real calls: the engine dials its own listener, the answering
-- side puts the caller in rooms, and the dialing side listens to its call
-- through a probe room's audio endpoint. Everything a member hears went
-- through RTP, G.711, the jitter buffer and both resamplers.
local rt = require "runtime_helper"
local task = require "moonline.task"
local sip = require "moonline.sip"
local room = require "moonline.room"
local audio = require "support.audio"
local files = require "support.files"

local HOST = "127.0.0.1"
local PORT = 19060 + (os.time() % 100) * 7
local RATE = 16000

-- what a member hears for `seconds`, after `settle` seconds of warm-up
local function hear(ep, seconds, settle)
  if settle then assert(ep:listen(math.floor(settle * RATE))) end
  local ok, pcm = task.with_timeout(seconds + 2, function() return ep:listen(math.floor(seconds * RATE)) end)
  assert(ok and pcm, "nothing heard")
  return audio.from_s16le(pcm)
end

-- a probe: the dialing side's call in a room of its own with an endpoint
local function probe(call)
  local r = room.create("probe")
  assert(r:add(call))
  return r, r:endpoint()
end

local function dial(port)
  return assert(sip.dial(("sip:agent@%s:%d"):format(HOST, port)))
end

describe("rooms", function()
  it("a caller hears the room's track, then another room's after a move; closing a room hangs up", rt.run(function()
    local moved, closed = task.channel(1), task.channel(1)
    local step = task.channel(1)
    sip.serve({ host = HOST, port = PORT, handler = function(call, ctx)
      assert(ctx.caller == call)
      assert(ctx:accept())
      local a = ctx.room
      assert(a:has(call))
      assert(a:play(440, { level = 0.3 }))
      local b = room.create("other")
      assert(b:play({ tone = 1000 }, { level = 0.3 }))
      step:recv()
      assert(a:move(call, b))
      assert.is_false(a:has(call))
      assert.is_true(b:has(call))
      moved:send(true)
      step:recv()
      b:close() -- the caller is inside: it gets a BYE
      closed:send(true)
      call:wait("ended")
    end }, function()
      local call = dial(PORT)
      local _, ep = probe(call)
      local s = hear(ep, 0.5, 0.3)
      local at440, at1000 = audio.tone_level(s, RATE, 440), audio.tone_level(s, RATE, 1000)
      assert(at440 > 0.15, "440 Hz heard at " .. at440)
      assert(at1000 < 0.01, "1000 Hz heard at " .. at1000)
      step:send(true)
      moved:recv()
      s = hear(ep, 0.5, 0.2)
      at440, at1000 = audio.tone_level(s, RATE, 440), audio.tone_level(s, RATE, 1000)
      assert(at1000 > 0.15, "1000 Hz heard at " .. at1000)
      assert(at440 < 0.01, "440 Hz heard at " .. at440)
      step:send(true)
      closed:recv()
      assert(task.with_timeout(5, function() return call:wait("ended") end))
      assert.same({ "ended", "remote hangup", 0 }, { call:state() })
      call:close()
    end)
  end))

  it("mixes N−1: each caller hears the others, not itself; mute silences one", rt.run(function()
    local ready = task.channel(1)
    local shared, heard
    sip.serve({ host = HOST, port = PORT + 1, handler = function(call)
      assert(call:answer())
      assert(shared:add(call))
      if shared:count() == 3 then ready:send(true) end
      call:wait("ended")
    end }, function()
      shared = room.create("shared")
      local ep = shared:endpoint()
      local c1, c2 = dial(PORT + 1), dial(PORT + 1)
      c1:tone(600, 0.3)
      c2:tone(900, 0.3)
      local _, e1 = probe(c1)
      local _, e2 = probe(c2)
      ready:recv()
      heard = hear(ep, 0.5, 0.3)
      local h1, h2 = hear(e1, 0.5), hear(e2, 0.5)
      assert(audio.tone_level(heard, RATE, 600) > 0.15)
      assert(audio.tone_level(heard, RATE, 900) > 0.15)
      assert(audio.tone_level(h1, RATE, 900) > 0.15, "caller 1 hears caller 2")
      assert(audio.tone_level(h1, RATE, 600) < 0.02, "caller 1 does not hear itself")
      assert(audio.tone_level(h2, RATE, 600) > 0.15, "caller 2 hears caller 1")
      assert(audio.tone_level(h2, RATE, 900) < 0.02, "caller 2 does not hear itself")
      -- the shared room's endpoint speaks: both callers hear it
      assert(ep:say(audio.to_s16le(audio.sine(300, 1.0, RATE, 0.3))))
      h1 = hear(e1, 0.4, 0.2)
      assert(audio.tone_level(h1, RATE, 300) > 0.15, "caller 1 hears the endpoint")
      c1:close()
      c2:close()
      ep:close()
    end)
  end))

  it("ctx.room first used in a nested scope lives as long as the handler", rt.run(function()
    local alive
    sip.serve({ host = HOST, port = PORT + 5, handler = function(call, ctx)
      assert(ctx:accept())
      assert(task.with_timeout(1, function() return ctx.room:play(500) end))
      task.sleep(0.1)
      alive = not ctx.room:closed() and ctx.room:has(call) and call:state() == "confirmed"
      call:hangup()
    end }, function()
      local call = dial(PORT + 5)
      assert(task.with_timeout(5, function() return call:wait("ended") end))
      call:close()
    end)
    assert.is_true(alive)
  end))

  it("a leg's delay in a room stays put across hold, tones and digits", rt.run(function()
    local queued = {}
    local step = task.channel(1)
    sip.serve({ host = HOST, port = PORT + 6, handler = function(call, ctx)
      assert(ctx:accept())
      assert(ctx.room:play(500))
      call:wait("confirmed")
      task.sleep(0.3)
      queued[1] = call:rtp_stats().room_queued_ms
      step:recv() -- the caller held and resumed us: we sent nothing for a while
      task.sleep(0.3)
      queued[2] = call:rtp_stats().room_queued_ms
      call:tone(300, 0.2, 0.3) -- a tone plays over the room's audio
      assert(call:send_dtmf("123"))
      task.sleep(1.0)
      local st = call:rtp_stats()
      queued[3], queued.overruns = st.room_queued_ms, st.room_overruns
      call:hangup()
    end }, function()
      local call = dial(PORT + 6)
      task.sleep(0.4)
      assert(call:hold())
      task.sleep(0.5)
      assert(call:unhold())
      step:send(true)
      assert(task.with_timeout(10, function() return call:wait("ended") end))
      call:close()
    end)
    for i = 1, 3 do assert(queued[i] <= 40, ("queued %s ms at step %d"):format(tostring(queued[i]), i)) end
    assert.equal(0, queued.overruns)
  end))

  it("sip.dial{ room = } puts the answered leg in the room", rt.run(function()
    sip.serve({ host = HOST, port = PORT + 4, handler = function(call)
      assert(call:answer())
      call:tone(800, 0.3)
      call:wait("ended")
    end }, function()
      local r = room.create("consult")
      local ep = r:endpoint()
      local call = assert(sip.dial(("sip:agent@%s:%d"):format(HOST, PORT + 4), { room = r }))
      assert.is_true(r:has(call))
      assert(audio.tone_level(hear(ep, 0.4, 0.3), RATE, 800) > 0.2)
      call:close()
      assert.equal(1, r:count()) -- a closed call leaves its room
    end)
  end))

  it("mute: a muted member still hears, the others stop hearing it", rt.run(function()
    sip.serve({ host = HOST, port = PORT + 2, handler = function(call, ctx)
      assert(ctx:accept())
      local r = ctx.room
      local ep = r:endpoint()
      assert(hear(ep, 0.3, 0.3)) -- the caller's tone has arrived
      local before = audio.tone_level(hear(ep, 0.4), RATE, 700)
      r:mute(call, true)
      local after = audio.tone_level(hear(ep, 0.4, 0.1), RATE, 700)
      assert(before > 0.15, "heard before mute at " .. before)
      assert(after < 0.01, "heard after mute at " .. after)
      call:hangup()
    end }, function()
      local call = dial(PORT + 2)
      call:tone(700, 0.3)
      assert(task.with_timeout(10, function() return call:wait("ended") end))
      call:close()
    end)
  end))

  it("plays a WAV file once (the track ends) or looped", rt.run(function()
    local path = os.tmpname() .. ".wav"
    -- 0.5 s of 8 kHz A-law 500 Hz, written by sox: a format the track converts
    audio.sox({ "-n", "-r", "8000", "-e", "a-law", "-b", "8", "-c", "1", path,
      "synth", "0.5", "sine", "500", "vol", "0.5" })
    local r = room.create("files")
    local ep = r:endpoint()
    local t0 = task.now()
    local track = assert(r:play(path))
    assert(track:wait(3))
    local took = task.now() - t0
    assert(took > 0.4 and took < 0.9, "played for " .. took)
    local s = audio.from_s16le(ep:read(RATE))
    assert(audio.tone_level(s, RATE, 500) > 0.1)
    track:close()
    local looped = assert(r:play(path, { loop = true }))
    assert.same({ nil, "timeout" }, { looped:wait(1.2) })
    assert.is_false(looped:done())
    looped:stop()
    local missing, err = r:play("/nonexistent.wav")
    assert.is_nil(missing)
    assert.matches("/nonexistent.wav: No such file", err)
    local notwav = files.tmpfile("hello")
    missing, err = r:play(notwav)
    assert.is_nil(missing)
    assert.matches("not a RIFF/WAVE file", err)
    r:close()
    os.remove(path)
    os.remove(notwav)
  end))

  it("say() feeds audio longer than the endpoint's queue, all of it heard once", rt.run(function()
    local r = room.create("say")
    local mouth, ear = r:endpoint({ speak_ms = 100 }), r:endpoint()
    local said = task.spawn(function() return mouth:say(audio.to_s16le(audio.sine(400, 0.6, RATE, 0.3))) end)
    local heard = hear(ear, 0.6)
    assert.is_true(said:wait())
    assert.equal(math.floor(0.6 * RATE), mouth:stats().spoken)
    assert(audio.tone_level(heard, RATE, 400) > 0.25, "400 Hz throughout")
    r:close()
  end))

  it("passes data messages to every subscriber but the sender", rt.run(function()
    local r = room.create("data")
    local alice, bob = r:data("alice"), r:data("bob")
    assert.equal(1, r:send_data("hi", { from = "alice", topic = "chat" }))
    assert.same({ from = "alice", topic = "chat", payload = "hi" }, bob:recv())
    assert.equal(2, r:send_data("all"))
    assert.equal("all", alice:recv().payload)
    assert.equal("all", bob:recv().payload)
    for i = 1, 70 do r:send_data(i, { from = "alice" }) end
    assert.equal(6, bob.dropped)
    assert.equal(7, bob:recv().payload)
    task.spawn(function() r:close() end)
    local n = 0
    while bob:recv() do n = n + 1 end
    assert.equal(63, n)
    assert.same({ nil, "closed" }, { alice:recv() })
  end))

  it("explains what cannot join", rt.run(function()
    local r = room.create("errors")
    local other = room.create("other")
    local ep = other:endpoint()
    assert.same({ nil, "not in the room 'errors'" }, { r:move(ep, other) })
    assert(room.move(ep, r))
    assert.is_true(r:has(ep))
    ep:close()
    assert.has_error(function() r:add(ep) end, "moonline.room: the endpoint is closed")
    assert.has_error(function() r:add({}) end)
    r:close()
    assert.has_error(function() r:tone(440) end, "moonline.room: the room is closed")
    sip.serve({ host = HOST, port = PORT + 3, handler = function(call)
      local ok, err = pcall(other.add, other, call)
      assert.is_false(ok)
      assert.matches("answer it first", err)
      call:reject(486)
    end }, function()
      assert.same({ nil, "rejected", 486 }, { sip.dial(("sip:agent@%s:%d"):format(HOST, PORT + 3)) })
    end)
  end))

  it("a deadline around a wait on an endpoint or on data is reported as a timeout", rt.run(function()
    local r = room.create("deadline")
    local ep = r:endpoint()
    -- an endpoint alone hears nothing: listen waits until the deadline
    assert.same({ nil, "timeout" }, { task.with_timeout(0.05, function() return ep:listen(16000) end) })
    local sub = r:data("agent")
    assert.same({ nil, "timeout" }, { task.with_timeout(0.05, function() return sub:recv() end) })
    r:close()
  end))
end)
