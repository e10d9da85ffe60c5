-- A softphone calls the agent: baresip (Debian's 1.0, no sound card) calls
-- `moonline start examples/weather.lua` in a process of its own, says a
-- question (espeak-ng), and its own recording of the call is checked: the
-- agent's greeting, then a spoken reply to the question. The engine's log
-- shows the transcript and the reply; it exits with the ledger at zero.
local rt = require "runtime_helper"
local task = require "moonline.task"
local audio = require "support.audio"
local baresip = require "support.baresip"
local process = require "support.process"
local net = require "support.net"

local MOONLINE = (os.getenv("MOONLINE_BUILD") or "build") .. "/moonline"
local HOST = "127.0.0.1"

describe("baresip calls the voice agent (moonline start)", function()
  it("the caller hears the greeting and a spoken reply to its question", rt.run(function()
    local why = baresip.missing("baresip", "sox", "espeak-ng")
    if why then
      pending(why)
      return
    end
    local dir = baresip.tmpdir()
    -- 4 s of silence (the greeting plays), the question, silence for the reply
    local question = baresip.speech(dir, "What is the weather in Paris?")
    local source = dir .. "/caller.wav"
    audio.sox({ question, source, "pad", "4", "6" })
    local port = net.free_port()
    local agent = process.start(MOONLINE, { "start", "--ledger", "examples/weather.lua", "--sip",
      HOST .. ":" .. port, "--for", "17" }, { env = { MOONLINE_LOG = "info" } })
    local up = task.with_timeout(10, function()
      while not agent:output():find("answering SIP calls", 1, true) do
        assert(agent:running(), "moonline start exited: " .. select(2, agent:output()))
        task.sleep(0.05)
      end
    end)
    assert(up, "moonline start did not come up")
    local target = ("sip:agent@%s:%d"):format(HOST, port)
    local code, out, err = baresip.call(dir, source, target, 14)
    local blog = baresip.log(out, err)
    assert.equal(0, code, blog)
    local acode, _, aout, aerr = agent:wait(10)
    local alog = "\n--- moonline start:\n" .. aout .. aerr
    assert.equal(0, acode, alog)

    -- what the caller heard (baresip's decoded audio, 8 kHz)
    local wav = baresip.recording(dir, "-dec.wav")
    local rate = audio.info(wav).rate
    local s = audio.samples(wav)
    local greeting = audio.voiced_seconds(s, rate, 0, 4.5)
    local reply = audio.voiced_seconds(s, rate, 6.5)
    print(("    baresip heard %.2f s of greeting in its first 4.5 s and %.2f s of reply after 6.5 s;"
      .. " the agent heard %q"):format(greeting, reply, aerr:match("user: ([^\n]*)") or "?"))
    assert(greeting > 1.5, "greeting: " .. greeting .. " s" .. alog)
    assert(reply > 1.5, "reply: " .. reply .. " s" .. alog)
    assert.matches("user: %S+", aerr, nil, false)
    assert.matches("agent: I can only help with the weather", aerr, 1, true)
    assert.matches("ledger: tasks=0 resources=0 timers=0 handles=0", aerr, 1, true)
  end))
end)
