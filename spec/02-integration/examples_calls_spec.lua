-- The call examples as a user runs them: `moonline run examples/…` in a
-- process of its own, called by this process's engine over loopback SIP.
local rt = require "runtime_helper"
local task = require "moonline.task"
local sip = require "moonline.sip"
local room = require "moonline.room"
local process = require "support.process"
local audio = require "support.audio"

local MOONLINE = (os.getenv("MOONLINE_BUILD") or "build") .. "/moonline"
local HOST = "127.0.0.1"
local PORT = 21060 + (os.time() % 100) * 5
local RATE = 16000

-- run an example serving for `seconds`; wait until it listens
local function example(name, port, seconds, argv, env)
  local proc = process.start(MOONLINE, argv or { "run", "examples/" .. name, HOST, tostring(port), tostring(seconds) },
    env and { env = env } or nil)
  local up = task.with_timeout(10, function()
    while not proc:output():find("on " .. HOST, 1, true) do
      assert(proc:running(), "the example exited: " .. select(2, proc:output()))
      task.sleep(0.02)
    end
  end)
  assert(up, "the example did not start listening")
  return proc
end

-- a call into the example, heard through a probe room
local function caller(port)
  local call = assert(sip.dial(("sip:me@%s:%d"):format(HOST, port), { ringing_timeout = 5 }))
  local r = room.create("probe")
  assert(r:add(call))
  return call, r:endpoint({ hear_ms = 10000 }), r
end

local function hear(ep, seconds)
  ep:read(RATE * 10) -- drop what was heard before now
  local ok, pcm = task.with_timeout(seconds + 2, function() return ep:listen(math.floor(seconds * RATE)) end)
  assert(ok and pcm, "nothing heard")
  return audio.from_s16le(pcm)
end

describe("call examples", function()
  it("answer_tone.lua answers with a 440 Hz tone", rt.run(function()
    local proc = example("answer_tone.lua", PORT, 4)
    local call, ep = caller(PORT)
    task.sleep(0.3) -- the first packets: the jitter buffer fills (slower under ASan)
    local level = audio.tone_level(hear(ep, 0.5), RATE, 440)
    assert(level > 0.25, "440 Hz heard at " .. level .. " (sent at 0.3)")
    call:close()
    local code, _, out, err = proc:wait(10)
    assert.equal(0, code, out .. err)
  end))

  it("conference.lua: callers hear each other, a lone caller the waiting tone, * mutes", rt.run(function()
    local proc = example("conference.lua", PORT + 1, 8)
    local a, ea = caller(PORT + 1)
    task.sleep(0.3)
    assert(audio.tone_level(hear(ea, 0.4), RATE, 425) > 0.03, "a lone caller hears the waiting tone")
    local b, eb = caller(PORT + 1)
    a:tone(600, 0.3)
    task.sleep(0.3)
    local heard = hear(eb, 0.4)
    assert(audio.tone_level(heard, RATE, 600) > 0.2, "b hears a")
    assert(audio.tone_level(heard, RATE, 425) < 0.005, "no waiting tone with two callers")
    assert(a:send_dtmf("*"))
    task.sleep(0.5)
    assert(audio.tone_level(hear(eb, 0.4), RATE, 600) < 0.01, "a muted itself")
    a:close()
    b:close()
    local code, _, out, err = proc:wait(15)
    assert.equal(0, code, out .. err)
  end))
  it("moonline start: the weather agent answers the phone, greets, hears the caller and answers aloud",
    rt.run(function()
      local port = PORT + 2
      local proc = example("weather.lua", port, 20,
        { "start", "--ledger", "examples/weather.lua", "--sip", HOST .. ":" .. port, "--for", "12" },
        { MOONLINE_LOG = "info" })
      local call, ep, probe = caller(port)
      -- the greeting of on_enter (espeak-ng, through G.711 both ways)
      local greeting = audio.voiced_seconds(hear(ep, 4))
      assert(greeting > 1.5, "greeting heard for " .. greeting .. " s")
      -- the caller speaks (a 1.8 s clip); the agent transcribes it and answers
      local clip = assert(probe:play("spec/fixtures/speech_phrase.wav"))
      task.sleep(2.0)
      clip:close()
      local reply = audio.voiced_seconds(hear(ep, 6))
      assert(reply > 1.5, "reply heard for " .. reply .. " s")
      call:close()
      local code, _, out, err = proc:wait(20)
      print(("    greeting %.2f s, reply %.2f s of voice heard"):format(greeting, reply))
      assert.equal(0, code, out .. err)
      assert.matches("user: %S+", err)
      assert.matches("agent: I can only help with the weather", err)
      assert.matches("closed %(participant_disconnected%)", err)
      assert.matches("ledger: tasks=0 resources=0 timers=0 handles=0", err, 1, true)
    end))
end)
