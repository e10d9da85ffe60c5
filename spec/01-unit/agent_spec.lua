-- Agents, tools and the test API (specs/lifecycle.md: Objects, Tools, Test API).
-- Every case runs in the real runtime and ends with an empty ledger.
local rt = require "runtime_helper"
local moonline = require "moonline"
local task = moonline.task
local testing = moonline.testing

local function weather_agent()
  local A = moonline.Agent:extend({ name = "Weather", instructions = "You help with the weather." })
  A:tool("lookup_weather", "Look up the weather for a place.",
    { location = { type = "string", description = "city name" } },
    function(_, _, args) return "sunny in " .. args.location end)
  return A
end

local function session_with(llm, opts)
  opts = opts or {}
  opts.llm = llm
  return moonline.AgentSession.new(opts)
end

local function kinds()
  local k = task.ledger().kinds
  return (k.session or 0) + (k.activity or 0) + (k.speech or 0)
end

describe("tools", function()
  it("a value becomes the output; one output and one event per call", rt.run(function()
    local A = weather_agent()
    local s = session_with(testing.ScriptedLLM({
      { input = "weather in Paris and Rome?", tool_calls = {
        { name = "lookup_weather", arguments = { location = "Paris" } },
        { name = "lookup_weather", arguments = { location = "Rome" } } } },
      { input = "sunny in Rome", content = "Sunny in both." },
    }))
    local executed = 0
    s:on("function_tools_executed", function(ev)
      executed = executed + 1
      assert.equal(2, #ev.function_calls)
    end)
    s:start({ agent = A:new() })
    local r = s:run({ user_input = "weather in Paris and Rome?" })
    r.expect:next_event():is_function_call({ name = "lookup_weather", arguments = { location = "Paris" } })
    r.expect:next_event():is_function_call({ name = "lookup_weather", arguments = { location = "Rome" } })
    r.expect:next_event():is_function_call_output({ output = "sunny in Paris", is_error = false })
    r.expect:next_event():is_function_call_output({ output = "sunny in Rome", is_error = false })
    r.expect:next_event():is_message({ role = "assistant", content = "Sunny in both." })
    r.expect:no_more_events()
    assert.equal(1, executed)
    s:close()
  end, { virtual = true }))

  it("ToolError is an error output the LLM sees", rt.run(function()
    local A = moonline.Agent:extend({ name = "A" })
    A:tool("book", "Book it.", {}, function() error(moonline.ToolError("no seats left")) end)
    local llm = testing.ScriptedLLM({
      { input = "book", tool_calls = { { name = "book" } } },
      { input = "no seats left", content = "Sorry, it is full." },
    })
    local s = session_with(llm)
    s:start({ agent = A:new() })
    local r = s:run({ user_input = "book" })
    r.expect:next_event():is_function_call({ name = "book" })
    r.expect:next_event():is_function_call_output({ output = "no seats left", is_error = true })
    r.expect:next_event():is_message({ content = "Sorry, it is full." })
    -- the LLM was given the error as the tool's message
    local msgs = llm.last_request.messages
    assert.same({ role = "tool", tool_call_id = msgs[#msgs].tool_call_id, content = "no seats left" }, msgs[#msgs])
    s:close()
  end, { virtual = true }))

  it("StopResponse records the call and skips the reply", rt.run(function()
    local A = moonline.Agent:extend({ name = "A" })
    A:tool("hang_up", "End.", {}, function() error(moonline.StopResponse) end)
    local llm = testing.ScriptedLLM({ { input = "bye", tool_calls = { { name = "hang_up" } } } })
    local s = session_with(llm)
    s:start({ agent = A:new() })
    local r = s:run({ user_input = "bye" })
    r.expect:next_event():is_function_call({ name = "hang_up" })
    r.expect:next_event():is_function_call_output({})
    r.expect:no_more_events()
    assert.equal(1, llm.calls) -- no second LLM round
    s:close()
  end, { virtual = true }))

  it("any other error is 'internal error' for the LLM", rt.run(function()
    local A = moonline.Agent:extend({ name = "A" })
    A:tool("crash", "Crash.", {}, function() local t = nil; return t.field end)
    local s = session_with(testing.ScriptedLLM({
      { input = "go", tool_calls = { { name = "crash" } } },
      { input = "internal error", content = "Something went wrong." },
    }))
    s:start({ agent = A:new() })
    local r = s:run({ user_input = "go" })
    r.expect:skip_next()
    r.expect:next_event():is_function_call_output({ output = "internal error", is_error = true })
    r.expect:next_event():is_message({ content = "Something went wrong." })
    s:close()
  end, { virtual = true }))

  it("arguments that fail the schema give a clear error output and no call", rt.run(function()
    local called = 0
    local A = moonline.Agent:extend({ name = "A" })
    A:tool("set_volume", "Set the volume.", { level = { type = "integer", enum = { 1, 2, 3 } } },
      function() called = called + 1 return "ok" end)
    local s = session_with(testing.ScriptedLLM({
      { input = "bad json", tool_calls = { { name = "set_volume", arguments = "{level: 2" } } },
      { input = "wrong type", tool_calls = { { name = "set_volume", arguments = { level = "loud" } } } },
      { input = "not allowed", tool_calls = { { name = "set_volume", arguments = { level = 7 } } } },
      { input = "missing", tool_calls = { { name = "set_volume", arguments = {} } } },
      { content = "Please say that again." },
    }))
    s:start({ agent = A:new() })
    local expected = {
      ["bad json"] = "not valid JSON",
      ["wrong type"] = "args.level: expected integer, got string",
      ["not allowed"] = "args.level: 7 is not one of the allowed values",
      ["missing"] = "missing required field 'level'",
    }
    for input, msg in pairs(expected) do
      local r = s:run({ user_input = input })
      local out = r.expect:contains_function_call_output({ is_error = true })
      assert.truthy(out.item.output:find(msg, 1, true), out.item.output)
    end
    assert.equal(0, called)
    s:close()
  end, { virtual = true }))

  it("an interrupted speech records 'cancelled' for its running tool (I5)", rt.run(function()
    local A = moonline.Agent:extend({ name = "A" })
    A:tool("slow", "Slow.", {}, function() task.sleep(1000) return "late" end)
    local s = session_with(testing.ScriptedLLM({ { input = "go", tool_calls = { { name = "slow" } } } }))
    s:start({ agent = A:new() })
    local outputs = {}
    s:on("conversation_item_added", function(ev)
      if ev.item.type == "function_call_output" then outputs[#outputs + 1] = ev.item end
    end)
    local sp = s:generate_reply({ user_input = "go" })
    task.sleep(1)
    assert.is_true(sp:interrupt())
    sp:wait()
    assert.is_true(sp.interrupted)
    assert.equal(1, #outputs)
    assert.equal("cancelled", outputs[1].output)
    assert.is_true(outputs[1].cancelled)
    s:close()
  end, { virtual = true }))

  it("an uninterruptible speech is not cut, unless forced", rt.run(function()
    local A = moonline.Agent:extend({ name = "A" })
    local s = session_with(testing.ScriptedLLM({}))
    s:start({ agent = A:new() })
    local sp = s:say("a long announcement", { allow_interruptions = false })
    assert.is_false(sp:interrupt())
    sp:wait()
    assert.is_false(sp.interrupted)
    s:close()
  end, { virtual = true }))
end)

describe("speech queue", function()
  it("plays high before normal before low, FIFO within a priority", rt.run(function()
    local A = moonline.Agent:extend({ name = "A" })
    local s = session_with(testing.ScriptedLLM({ { input = "slow", content = "first", delay = 1 } }))
    local order = {}
    s:on("conversation_item_added", function(ev)
      if ev.item.role == "assistant" then order[#order + 1] = ev.item.content end
    end)
    s:start({ agent = A:new() })
    -- the first one is playing (waiting for its LLM); the rest wait in the queue
    local first = s:generate_reply({ user_input = "slow" })
    while first:state() < require("moonline.speech").PLAYING do task.yield() end
    local hs = {
      first,
      s:say("low 1", { priority = "low" }),
      s:say("normal 1"),
      s:say("high 1", { priority = "high" }),
      s:say("low 2", { priority = "low" }),
      s:say("high 2", { priority = "high" }),
    }
    for _, h in ipairs(hs) do h:wait() end
    assert.same({ "first", "high 1", "high 2", "normal 1", "low 1", "low 2" }, order)
    s:close()
  end, { virtual = true }))
end)

describe("handoffs", function()
  it("a tool returning an Agent hands the session over; its on_enter runs", rt.run(function()
    local Billing = moonline.Agent:extend({ name = "Billing", instructions = "billing" })
    local entered = 0
    function Billing:on_enter()
      entered = entered + 1
      self.session:generate_reply({ instructions = "greet billing" })
    end
    local Front = moonline.Agent:extend({ name = "Front" })
    Front:tool("to_billing", "Transfer to billing.", {}, function() return Billing:new() end)
    local s = session_with(testing.ScriptedLLM({
      { input = "my invoice", tool_calls = { { name = "to_billing" } } },
      { input = "greet billing", content = "Billing here." },
    }))
    s:start({ agent = Front:new() })
    local r = s:run({ user_input = "my invoice" })
    r.expect:next_event():is_function_call({ name = "to_billing" })
    r.expect:next_event():is_function_call_output({})
    r.expect:next_event():is_agent_handoff({ new_agent = "Billing" })
    r.expect:next_event():is_message({ content = "Billing here." })
    r.expect:no_more_events()
    assert.equal(1, entered)
    assert.equal("Billing", s.current_agent.name)
    s:close()
  end, { virtual = true }))

  it("update_agent switches agents and runs on_exit of the old one", rt.run(function()
    local log = {}
    local A = moonline.Agent:extend({ name = "A" })
    function A:on_exit() log[#log + 1] = "A exit" end
    local B = moonline.Agent:extend({ name = "B" })
    function B:on_enter() log[#log + 1] = "B enter" end
    local s = session_with(testing.ScriptedLLM({}))
    s:start({ agent = A:new() })
    s:update_agent(B:new())
    while s.current_agent.name ~= "B" do task.sleep(0.01) end
    task.sleep(0.01)
    assert.same({ "A exit", "B enter" }, log)
    s:close()
  end, { virtual = true }))
end)

describe("user turns", function()
  it("on_user_turn_completed may edit the message or raise StopResponse", rt.run(function()
    local A = moonline.Agent:extend({ name = "A" })
    function A:on_user_turn_completed(_, msg)
      if msg.content == "shh" then error(moonline.StopResponse) end
      msg.content = msg.content:lower()
    end
    local llm = testing.ScriptedLLM({ { input = "hello", content = "Hi!" } })
    local s = session_with(llm)
    s:start({ agent = A:new() })
    local r = s:run({ user_input = "HELLO" })
    r.expect:next_event():is_message({ content = "Hi!" })
    r = s:run({ user_input = "shh" })
    r.expect:no_more_events()
    assert.equal(1, llm.calls)
    local last = s.history.items[#s.history.items]
    assert.same({ "user", "shh" }, { last.role, last.content })
    s:close()
  end, { virtual = true }))

  it("emits state changes, items, speech and metrics events", rt.run(function()
    local A = weather_agent()
    local s = session_with(testing.ScriptedLLM({ { input = "hi", content = "Hello!" } }))
    local states, names = {}, {}
    for _, name in ipairs({ "conversation_item_added", "speech_created", "metrics_collected",
                            "user_input_transcribed" }) do
      s:on(name, function() names[name] = (names[name] or 0) + 1 end)
    end
    s:on("agent_state_changed", function(ev) states[#states + 1] = ev.new_state end)
    s:start({ agent = A:new() })
    s:run({ user_input = "hi" })
    assert.same({ "listening", "thinking", "speaking", "listening" }, states)
    assert.same({ conversation_item_added = 2, speech_created = 1, metrics_collected = 1,
                  user_input_transcribed = 1 }, names)
    s:close()
  end, { virtual = true }))

  it("repeated LLM failures close the session with reason 'error'", rt.run(function()
    local A = moonline.Agent:extend({ name = "A" })
    local s = session_with(testing.ScriptedLLM({ { error = "upstream down", status = 503 } }))
    local errors, closed = 0, nil
    s:on("error", function() errors = errors + 1 end)
    s:on("close", function(ev) closed = ev.reason end)
    s:start({ agent = A:new() })
    s:run({ user_input = "try 1" })
    s:run({ user_input = "try 2" })
    -- the third failure closes the session under the run (C7: it fails)
    local ok, err = pcall(s.run, s, { user_input = "try 3" })
    assert.is_false(ok)
    assert.matches("session closed", err)
    s:close()
    assert.equal(3, errors)
    assert.equal("error", closed)
  end, { virtual = true }))
end)

describe("test API", function()
  it("expectations fail with the run's events listed", rt.run(function()
    local A = weather_agent()
    local s = session_with(testing.ScriptedLLM({ { input = "hi", content = "Hello!" } }))
    s:start({ agent = A:new() })
    local r = s:run({ user_input = "hi" })
    local ok, err = pcall(function() r.expect:next_event():is_function_call({ name = "lookup_weather" }) end)
    assert.is_false(ok)
    assert.matches("expected function_call, got message", err)
    assert.matches('1%. message%(assistant: "Hello!"%)', err)
    ok = pcall(function() r.expect:no_more_events() end)
    assert.is_true(ok)
    ok, err = pcall(function() r.expect:next_event() end)
    assert.is_false(ok)
    assert.matches("the run has only 1", err)
    assert.equal("Hello!", r:final_output())
    s:close()
  end, { virtual = true }))

  it("mock_tools replaces a tool for the body and restores it", rt.run(function()
    local A = weather_agent()
    local s = session_with(testing.ScriptedLLM({
      { input = "weather in Oslo?", tool_calls = { { name = "lookup_weather", arguments = { location = "Oslo" } } } },
      { content = "ok" },
    }))
    s:start({ agent = A:new() })
    testing.mock_tools(A, { lookup_weather = function() return "snow" end }, function()
      local r = s:run({ user_input = "weather in Oslo?" })
      r.expect:contains_function_call_output({ output = "snow" })
    end)
    local r = s:run({ user_input = "weather in Oslo?" })
    r.expect:contains_function_call_output({ output = "sunny in Oslo" })
    s:close()
    assert.equal(0, kinds())
  end, { virtual = true }))

  it("the ScriptedLLM fails clearly on an unscripted input", rt.run(function()
    local A = moonline.Agent:extend({ name = "A" })
    local s = session_with(testing.ScriptedLLM({ { input = "known", content = "yes" } }))
    local seen
    s:on("error", function(ev) seen = tostring(ev.error) end)
    s:start({ agent = A:new() })
    s:run({ user_input = "unknown" })
    assert.matches('no reply scripted for input "unknown"', seen)
    s:close()
  end, { virtual = true }))
end)

describe("idle", function()
  it("run() speaks after the on_enter greeting, not into it", rt.run(function()
    local A = moonline.Agent:extend({ name = "A" })
    function A:on_enter() self.session:generate_reply({ instructions = "greet" }) end
    local s = session_with(testing.ScriptedLLM({
      { input = "greet", content = "Hello!", delay = 0.5 },
      { input = "hi", content = "Hi back." },
    }))
    s:start({ agent = A:new() })
    local r = s:run({ user_input = "hi" })
    r.expect:next_event():is_message({ content = "Hi back." })
    r.expect:no_more_events()
    local texts = {}
    for _, it in ipairs(s.history.items) do texts[#texts + 1] = it.role .. ":" .. it.content end
    assert.same({ "assistant:Hello!", "user:hi", "assistant:Hi back." }, texts)
    assert.is_true(s:wait_idle())
    s:close()
  end, { virtual = true }))
end)
