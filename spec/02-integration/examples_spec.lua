-- The example agents (examples/*.lua), loaded in-process as `moonline
-- console` loads them: one normal run of each, and the research example
-- closed in the middle of each stage of its AgentTasks (specs/lifecycle.md
-- C1, C2, C3, C5, C7) on the virtual clock.
package.path = "./?.lua;" .. package.path

local rt = require "runtime_helper"
local task = require "moonline.task"
local moonline = require "moonline"
local agent_mod = require "moonline.agent"

local AgentSession = moonline.AgentSession

-- wait until what the session is doing (the greeting of on_enter, a turn)
-- has settled
local function settle(session)
  assert(session:wait_idle())
end

-- the session's items as they are added, and a wait for one that matches
local function recorder(session)
  local items, cond = {}, task.condition()
  session:on("conversation_item_added", function(ev)
    items[#items + 1] = ev.item
    cond:notify_all()
  end)
  local function wait_for(pred)
    local seen = 0
    while true do
      for i = seen + 1, #items do
        if pred(items[i]) then return items[i] end
      end
      seen = #items
      cond:wait("item")
    end
  end
  return items, wait_for
end

local function start(app)
  local session = AgentSession.new({ llm = app.llm })
  local closes = 0
  session:on("close", function() closes = closes + 1 end)
  local items, wait_for = recorder(session)
  session:start({ agent = app:new_agent() })
  settle(session)
  return session, items, wait_for, function() return closes end
end

local function outputs(items)
  local by_name = {}
  for _, it in ipairs(items) do
    if it.type == "function_call_output" then by_name[it.name] = it end
  end
  return by_name
end

describe("examples/weather.lua", function()
  it("returns an app; its agent greets, calls the tool and answers", rt.run(function()
    local app = dofile("examples/weather.lua")
    assert.equal("Weather", app.name)
    local session, items = start(app)
    assert.same({ type = "message", role = "assistant",
                  content = "Hi! I can look up the weather for you. Which city?" },
                { type = items[1].type, role = items[1].role, content = items[1].content })

    local result = session:run({ user_input = "weather in Paris?" })
    result.expect:next_event():is_function_call({ name = "lookup_weather", arguments = { location = "Paris" } })
    result.expect:next_event():is_function_call_output({ output = "sunny, 21 degrees in Paris", is_error = false })
    result.expect:next_event():is_message({ role = "assistant", content = "It is sunny in Paris, 21 degrees." })
    result.expect:no_more_events()

    result = session:run({ user_input = "weather in Atlantis?" })
    result.expect:next_event():is_function_call({ name = "lookup_weather" })
    result.expect:next_event():is_function_call_output({ output = "no forecast for Atlantis", is_error = true })
    result.expect:next_event():is_message({ content = "Sorry, I have no forecast for Atlantis." })
    result.expect:no_more_events()

    result = session:run({ user_input = "how are you?" })
    result.expect:next_event():is_message({ contains = "Try: weather in Paris?" })
    result.expect:no_more_events()
    session:close()
  end))
end)

describe("examples/research.lua", function()
  it("research: Researcher -> ResearchTask -> DeepResearchTask and back", rt.run(function()
    local app = dofile("examples/research.lua")
    local session = start(app)
    local t0 = task.now()
    local result = session:run({ user_input = "research the moon" })
    local e = result.expect
    e:next_event():is_function_call({ name = "research", arguments = { topic = "the moon" } })
    e:next_event():is_agent_handoff({ new_agent = "ResearchTask" })
    e:next_event():is_function_call({ name = "deep_research" })
    e:next_event():is_agent_handoff({ new_agent = "DeepResearchTask" })
    e:next_event():is_function_call({ name = "report" })
    e:next_event():is_function_call_output({ name = "report", output = "" })
    e:next_event():is_agent_handoff({ new_agent = "ResearchTask" })
    e:next_event():is_function_call_output({ name = "deep_research", is_error = false })
    e:next_event():is_function_call({ name = "finish" })
    e:next_event():is_function_call_output({ name = "finish", output = "" })
    e:next_event():is_agent_handoff({ new_agent = "Researcher" })
    e:next_event():is_function_call_output({ name = "research", is_error = false })
    e:next_event():is_message({ role = "assistant", contains = "Here is what I found: The moon orbits Earth" })
    e:no_more_events()
    assert.is_true(task.now() - t0 >= 1.5) -- the scripted delays of the two tasks
    assert.equal("Researcher", session.current_agent.name)
    session:close()
  end, { virtual = true }))

  it("crunch: the SlowTask's tool works for 30 s, then the agent answers", rt.run(function()
    local app = dofile("examples/research.lua")
    local session = start(app)
    local t0 = task.now()
    local result = session:run({ user_input = "crunch the numbers", timeout = 120 })
    result.expect:contains_function_call_output({ name = "crunch_numbers", output = "the total of sales is 42" })
    assert.equal("Done: the total of sales is 42.", result:final_output())
    assert.is_true(task.now() - t0 >= 30)
    session:close()
  end, { virtual = true }))

  -- Start a turn, wait for `stage` (an item of the session), close there.
  local function close_during(input, stage, check)
    return rt.run(function()
      local app = dofile("examples/research.lua")
      local session, items, wait_for, closes = start(app)
      local run_error
      local turn = task.spawn("user turn", function()
        local ok, err = pcall(session.run, session, { user_input = input, timeout = 120 })
        run_error = not ok and err or "the run returned"
      end)
      wait_for(stage)
      local t0 = task.now()
      session:close()
      local took = task.now() - t0
      turn:wait()

      assert.is_true(took < 5, "close took " .. took .. " s") -- C1's bound
      assert.is_true(took < 0.5, "close waited " .. took .. " s for a scripted delay or the sleeping tool")
      assert.equal(1, closes())
      assert.matches("session closed", tostring(run_error))
      assert.is_true(session.closed)
      assert.equal(0, task.ledger().kinds.activity) -- every activity closed
      -- every task that started has completed, with a ToolError "… cancelled"
      local started = 0
      for _, it in ipairs(items) do
        if it.type == "agent_handoff" and agent_mod.is_task(it.new) then
          started = started + 1
          local t = it.new
          assert.is_true(t:done(), t.name .. " did not complete")
          local _, terr = t:result()
          assert.is_true(moonline.is_tool_error(terr), t.name .. " completed without a ToolError")
          assert.matches(t.name .. " cancelled", t._error.message, 1, true)
        end
      end
      assert.is_true(started > 0)
      -- every call has exactly one recorded output
      local calls, outs = {}, {}
      for _, it in ipairs(items) do
        if it.type == "function_call" then calls[it.call_id] = it.name end
        if it.type == "function_call_output" then
          assert.is_nil(outs[it.call_id], "two outputs for " .. it.name)
          outs[it.call_id] = it
        end
      end
      for id, name in pairs(calls) do
        assert.is_not_nil(outs[id], "no output for " .. name)
      end
      check(outputs(items), items)
    end, { virtual = true })
  end

  local function is_handoff_to(name)
    return function(it) return it.type == "agent_handoff" and it.new_agent == name end
  end

  it("closed while the ResearchTask runs: it completes cancelled, the research tool gets the error",
    close_during("research the moon", is_handoff_to("ResearchTask"), function(out)
      assert.same({ "ResearchTask cancelled", true }, { out.research.output, out.research.is_error })
      assert.is_nil(out.deep_research)
    end))

  it("closed while the nested DeepResearchTask runs: innermost first, each caller gets its error",
    close_during("research the moon", is_handoff_to("DeepResearchTask"), function(out, items)
      assert.same({ "DeepResearchTask cancelled", true }, { out.deep_research.output, out.deep_research.is_error })
      assert.same({ "ResearchTask cancelled", true }, { out.research.output, out.research.is_error })
      -- C3: DeepResearchTask's output is recorded before ResearchTask's
      local order = {}
      for _, it in ipairs(items) do
        if it.type == "function_call_output" then order[#order + 1] = it.name end
      end
      assert.same({ "deep_research", "research" }, order)
    end))

  it("closed while the SlowTask's tool sleeps: the tool is cancelled, the task completes cancelled",
    close_during("crunch the numbers",
      function(it) return it.type == "function_call" and it.name == "crunch" end,
      function(out)
        assert.is_true(out.crunch.cancelled)
        assert.same({ "SlowTask cancelled", true }, { out.crunch_numbers.output, out.crunch_numbers.is_error })
      end))
end)

describe("closed sessions of the examples", function()
  it("are garbage: nothing keeps a session (or its agents and tasks) alive after close", rt.run(function()
    local weak = setmetatable({}, { __mode = "k" })
    local function one(file, input)
      local session = start(dofile(file))
      session:run({ user_input = input, timeout = 120 })
      session:close()
      weak[session] = file
      for _, it in ipairs(session.history.items) do
        if it.new then weak[it.new] = it.new.name end
      end
    end
    one("examples/weather.lua", "weather in Paris?")
    one("examples/research.lua", "research the moon")
    one("examples/research.lua", "crunch the numbers")
    local x1, x2, x3, x4, x5, x6, x7, x8 = 1, 2, 3, 4, 5, 6, 7, 8 -- overwrite dead stack slots
    collectgarbage()
    collectgarbage()
    local alive = {}
    for _, what in pairs(weak) do alive[#alive + 1] = what end
    table.sort(alive)
    assert.same({}, alive)
    assert.equal(36, x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8)
  end, { virtual = true }))
end)

describe("moonline.serve", function()
  local Agent = moonline.Agent:extend({ name = "A" })

  it("names the app after the agent and builds a new instance per session", function()
    local app = moonline.serve({ agent = Agent })
    assert.equal("A", app.name)
    local a, b = app:new_agent(), app:new_agent()
    assert.is_true(agent_mod.is_agent(a))
    assert.are_not.equal(a, b)
    assert.equal(app, moonline.serve(app))
  end)

  it("accepts a function returning an instance", function()
    local app = moonline.serve({ agent = function() return Agent:new({ instructions = "x" }) end, name = "f" })
    assert.equal("x", app:new_agent().instructions)
    local bad = moonline.serve({ agent = function() return Agent end })
    assert.has_error(function() bad:new_agent() end)
  end)

  it("rejects what it cannot run, with a clear message", function()
    local function err(t)
      local ok, e = pcall(moonline.serve, t)
      assert.is_false(ok)
      return e
    end
    assert.matches("expected a table", err(nil), 1, true)
    assert.matches("agent must be an Agent class", err({}), 1, true)
    assert.matches("agent is an instance; pass the class", err({ agent = Agent:new() }), 1, true)
    assert.matches("llm must be an LLM object", err({ agent = Agent, llm = {} }), 1, true)
    assert.matches("unknown field 'agnet'", err({ agent = Agent, agnet = Agent }), 1, true)
  end)
end)
