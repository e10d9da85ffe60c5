-- An AgentSession talking in a room (specs/lifecycle.md I1–I4), through the
-- real engine: clips played into the room are the user (VAD, pocketsphinx
-- with an IVR grammar), the agent speaks with espeak-ng, and an endpoint in
-- the room is the caller's ear. Only the LLM is scripted.
--
-- spec/fixtures/noise_burst.wav (1 s of band-passed pink noise with a 4 Hz
-- tremolo: speech-like to the VAD, no words to the recogniser) was made with
--   sox -n -r 16000 -b 16 -c 1 noise_burst.wav synth 1.0 pinknoise sinc 300-3000 tremolo 4 90 vol 0.5
local rt = require "runtime_helper"
local eventually = rt.eventually
local moonline = require "moonline"
local task = moonline.task
local room = require "moonline.room"
local voice = require "moonline.voice"
local audio = require "support.audio"

local GRAMMAR = "spec/fixtures/stt_ivr.gram"
local BILLING = "spec/fixtures/stt_billing.wav"
local BURST = "spec/fixtures/noise_burst.wav"
local RATE = 16000
local NOTICE = "Thank you for calling the city library. Our opening hours are nine to five on weekdays,"
  .. " and ten to two on Saturdays."
local REPLY = "Connecting you to billing."

local Agent = moonline.Agent:extend({ name = "Desk", instructions = "Route the caller." })

-- A room with the session's voice in it, an ear for the caller, and a log of
-- the session's events.
local function world(name, opts)
  opts = opts or {}
  local r = room.create(name)
  local tts = assert(voice.tts())
  local stt = assert(voice.stt({ jsgf = GRAMMAR }))
  local s = moonline.AgentSession.new({
    llm = moonline.testing.ScriptedLLM(opts.script or { { content = REPLY } }),
    stt = stt, tts = tts,
    false_interruption_timeout = opts.false_interruption_timeout,
  })
  local log = {}
  for _, e in ipairs({ "user_state_changed", "agent_state_changed", "user_input_transcribed",
                       "agent_false_interruption", "agent_interrupted", "close" }) do
    s:on(e, function(ev)
      ev.name = e
      ev.at = task.now()
      ev.spoken = s.audio and not s.audio.voice_closed and s.audio.voice:stats().spoken or nil
      log[#log + 1] = ev
    end)
  end
  local ear = r:endpoint({ speak_ms = 200, hear_ms = 20000 })
  s:start({ agent = (opts.agent or Agent):new(), room = r })
  return { room = r, session = s, ear = ear, log = log }
end

local function first(log, name, pred)
  for _, ev in ipairs(log) do
    if ev.name == name and (not pred or pred(ev)) then return ev end
  end
end

local function messages(s)
  local out = {}
  for _, it in ipairs(s.history.items) do
    if it.type == "message" then out[#out + 1] = it end
  end
  return out
end

local function spoken(w) return w.session.audio.voice:stats().spoken end

-- seconds of voice in what the ear heard so far
local function loud_seconds(ear)
  return audio.voiced_seconds(audio.from_s16le(ear:read(20 * RATE) or ""))
end

describe("an AgentSession in a room", function()
  it("a spoken user turn is transcribed and answered aloud (I4)", rt.run(function()
    local w = world("turn")
    task.sleep(0.3)
    local clip = assert(w.room:play(BILLING))
    eventually(function() return #messages(w.session) >= 2 and w.session.agent_state == "listening" end, 15)
    clip:close()
    local m = messages(w.session)
    assert.same({ "user", "billing" }, { m[1].role, m[1].content })
    assert.same({ "assistant", REPLY }, { m[2].role, m[2].content })
    local heard = first(w.log, "user_input_transcribed", function(ev) return ev.is_final end)
    assert.equal("billing", heard.transcript)
    -- the turn completed after the user stopped plus the endpointing delay
    local stopped = first(w.log, "user_state_changed", function(ev) return ev.new_state == "listening" end)
    local thinking = first(w.log, "agent_state_changed", function(ev) return ev.new_state == "thinking" end)
    local delay = thinking.at - stopped.at
    assert(delay >= 0.5 and delay < 1.5, "endpointing took " .. delay)
    -- the caller heard the clip and then the reply (espeak-ng: ~1.3 s)
    local loud = loud_seconds(w.ear)
    print(("    turn: end of speech -> reply %.2f s; the caller heard %.2f s of voice"):format(delay, loud))
    assert(loud > 1.2, "heard only " .. loud .. " s")
    w.session:close()
  end))

  it("the user's words interrupt the agent: playout pauses at once, the history keeps what was said (I1)",
    rt.run(function()
      local w = world("interrupt")
      local sp = w.session:say(NOTICE)
      eventually(function() return spoken(w) > 1.0 * RATE end, 10, "the notice to play")
      local clip = assert(w.room:play(BILLING))
      eventually(function() return sp.done end, 10, "the interruption")
      assert.is_true(sp.interrupted)
      -- paused at the user's first speech, before any word was known
      local started = first(w.log, "user_state_changed", function(ev) return ev.new_state == "speaking" end)
      local cut = first(w.log, "agent_interrupted")
      assert.is_truthy(cut, "no agent_interrupted event")
      assert(cut.spoken - started.spoken <= 2 * 320,
        ("%d samples published between the user's speech and the cut"):format(cut.spoken - started.spoken))
      local said = messages(w.session)[1]
      assert.is_true(said.interrupted)
      assert(#said.content > 0 and #said.content < #NOTICE, "content: " .. said.content)
      assert.equal(said.content, NOTICE:sub(1, #said.content))
      -- then the user's turn is answered
      eventually(function() return #messages(w.session) >= 3 and w.session.agent_state == "listening" end, 15)
      clip:close()
      local m = messages(w.session)
      assert.same({ "billing", REPLY }, { m[2].content, m[3].content })
      print(("    interrupted after %.2f s of the notice: %q"):format(started.spoken / RATE, said.content))
      w.session:close()
    end))

  it("a speech that disallows interruptions plays to its end (I2)", rt.run(function()
    local w = world("uninterruptible")
    local sp = w.session:say(NOTICE, { allow_interruptions = false })
    eventually(function() return spoken(w) > 1.0 * RATE end, 10, "the notice to play")
    local clip = assert(w.room:play(BILLING))
    eventually(function() return sp.done end, 20, "the notice to end")
    clip:close()
    assert.is_false(sp.interrupted)
    assert.is_nil(first(w.log, "agent_interrupted"))
    local m = messages(w.session)
    assert.same({ NOTICE }, { m[1].content })
    assert.is_nil(m[1].interrupted)
    -- the user's words are still a turn, answered after the notice
    eventually(function() return #messages(w.session) >= 3 and w.session.agent_state == "listening" end, 15)
    assert.same({ "billing", REPLY }, { messages(w.session)[2].content, messages(w.session)[3].content })
    w.session:close()
  end))

  it("a sound without words pauses the agent, which then resumes where it paused (I3)", rt.run(function()
    local w = world("false-interruption", { false_interruption_timeout = 0.5 })
    local sp = w.session:say(NOTICE)
    eventually(function() return spoken(w) > 1.0 * RATE end, 10, "the notice to play")
    local clip = assert(w.room:play(BURST))
    eventually(function() return first(w.log, "agent_false_interruption") end, 10, "the false interruption")
    clip:close()
    local paused = first(w.log, "user_state_changed", function(ev) return ev.new_state == "speaking" end)
    local resumed = first(w.log, "agent_false_interruption")
    eventually(function() return sp.done end, 20, "the notice to end")
    assert.is_false(sp.interrupted)
    local m = messages(w.session)
    assert.equal(1, #m) -- no words, no turn
    assert.equal(NOTICE, m[1].content)
    -- nothing was lost: the room took every synthesized sample
    local st = w.session.audio.voice:stats()
    assert.equal(0, st.buffered)
    print(("    paused %.2f s (user sound + %.1f s), then resumed; %d samples spoken in all"):format(
      resumed.at - paused.at, 0.5, st.spoken))
    w.session:close()
  end))

  it("the room closing ends the session (participant_disconnected)", rt.run(function()
    local w = world("gone")
    w.session:say(NOTICE)
    eventually(function() return spoken(w) > 0.2 * RATE end, 10, "the notice to play")
    w.room:close()
    eventually(function() return w.session.closed end, 5, "the session to close")
    assert.equal("participant_disconnected", first(w.log, "close").reason)
  end))
  it("closing the session mid-speech cuts it: the history keeps what was heard", rt.run(function()
    local w = world("close-mid-speech")
    local sp = w.session:say(NOTICE)
    eventually(function() return spoken(w) > 1.5 * RATE end, 10, "the notice to play")
    w.session:close()
    assert.is_true(sp.done and sp.interrupted)
    local said = messages(w.session)[1]
    assert.is_true(said.interrupted)
    assert(#said.content > 0 and #said.content < #NOTICE, "content: " .. said.content)
    assert.equal(said.content, NOTICE:sub(1, #said.content))
  end))

  it("a tool's wait_for_playout returns once the words before the tool call were heard", rt.run(function()
    local heard_at_tool
    local Checker = moonline.Agent:extend({ name = "Checker", instructions = "check" })
    local w
    Checker:tool("check", "Check the account.", {}, function(_, ctx)
      ctx.wait_for_playout()
      local st = w.session.audio.voice:stats()
      heard_at_tool = { spoken = st.spoken, buffered = st.buffered }
      return "all good"
    end)
    w = world("wait-for-playout", {
      agent = Checker,
      script = {
        { input = "billing", content = "One moment while I check your account.",
          tool_calls = { { name = "check", arguments = {} } } },
        { input = "all good", content = "Your account is fine." },
      },
    })
    local clip = assert(w.room:play(BILLING))
    eventually(function() return #messages(w.session) >= 3 and w.session.agent_state == "listening" end, 20)
    clip:close()
    assert.is_table(heard_at_tool, "the tool did not run")
    -- espeak-ng says the first sentence in ~2 s: all of it was published when the tool went on
    assert.equal(0, heard_at_tool.buffered)
    assert(heard_at_tool.spoken > 1.5 * RATE, "only " .. heard_at_tool.spoken .. " samples heard")
    local m = messages(w.session)
    assert.same({ "billing", "One moment while I check your account.", "Your account is fine." },
      { m[1].content, m[2].content, m[3].content })
    w.session:close()
  end))

  it("a handoff in a room: the new agent speaks with the same voice", rt.run(function()
    local Billing = moonline.Agent:extend({ name = "Billing", instructions = "billing" })
    function Billing:on_enter() self.session:say("Billing here.") end
    local Front = moonline.Agent:extend({ name = "Front", instructions = "front" })
    Front:tool("to_billing", "Transfer to billing.", {}, function() return Billing:new() end)
    local w = world("handoff", {
      agent = Front,
      script = { { input = "billing", tool_calls = { { name = "to_billing", arguments = {} } } } },
    })
    local clip = assert(w.room:play(BILLING))
    eventually(function()
      local m = messages(w.session)
      return m[#m] and m[#m].content == "Billing here." and w.session.agent_state == "listening"
    end, 20, "Billing's greeting to be heard")
    clip:close()
    assert.equal("Billing", w.session.current_agent.name)
    assert(spoken(w) > 0.5 * RATE, "the greeting was not heard")
    w.session:close()
  end))
end)
