-- The lifecycle contract (shared/specs/lifecycle.md): AgentTask rules T1–T5
-- and close rules C1–C9, each with a spec that fails when the rule breaks.
-- The virtual clock makes "bounded time" exact: a close that waited for a
-- timeout would show up as seconds of virtual time.
local rt = require "runtime_helper"
local moonline = require "moonline"
local task = moonline.task
local testing = moonline.testing

local VIRTUAL = { virtual = true }

local function live_objects()
  local k = task.ledger().kinds
  return { session = k.session or 0, activity = k.activity or 0, speech = k.speech or 0 }
end

-- A three-level world: Root's tool `start_t1` runs T1; T1's tool `start_t2`
-- runs T2; T2's tool `finish` completes T2; T1's `finish` completes T1.
-- Every hook and every resumption is written to `log`.
local function world(opts)
  opts = opts or {}
  local log = {}
  local W = { log = log }
  local function note(s) log[#log + 1] = s end
  W.note = note

  local T2 = moonline.AgentTask:extend({ name = "T2", instructions = "t2" })
  function T2:on_enter()
    note("T2 enter")
    if opts.t2_enter then opts.t2_enter(self) end
  end
  function T2:on_exit() note("T2 exit") end
  T2:tool("finish", "Finish T2.", {}, function(self) self:complete("t2 done") end)

  local T1 = moonline.AgentTask:extend({ name = "T1", instructions = "t1" })
  function T1:on_enter()
    note("T1 enter")
    if opts.t1_enter then opts.t1_enter(self) end
  end
  function T1:on_exit() note("T1 exit") end
  T1:tool("start_t2", "Start T2.", {}, function()
    local ok, v = pcall(function() return T2:new():run() end)
    note("T1 resumed: " .. (ok and tostring(v) or tostring(v.message or v)))
    if not ok then error(v, 0) end
    return v
  end)
  T1:tool("finish", "Finish T1.", {}, function(self) self:complete("t1 done") end)

  local Root = moonline.Agent:extend({ name = "Root", instructions = "root" })
  function Root:on_enter() note("Root enter") end
  function Root:on_exit() note("Root exit") end
  Root:tool("start_t1", "Start T1.", {}, function()
    local ok, v = pcall(function() return T1:new():run() end)
    note("Root resumed: " .. (ok and tostring(v) or tostring(v.message or v)))
    if not ok then error(v, 0) end
    return v
  end)

  W.T1, W.T2, W.Root = T1, T2, Root
  W.llm = testing.ScriptedLLM(opts.script or {
    { input = "start", tool_calls = { { name = "start_t1" } } },
    { input = "deeper", tool_calls = { { name = "start_t2" } } },
    { input = "finish t2", tool_calls = { { name = "finish" } } },
    { input = "t2 done", content = "T2 finished." },
    { input = "finish t1", tool_calls = { { name = "finish" } } },
    { input = "t1 done", content = "All done." },
    { content = "ok" },
  })
  W.session = moonline.AgentSession.new({ llm = W.llm })
  W.closes = 0
  W.session:on("close", function(ev)
    W.closes = W.closes + 1
    W.close_reason = ev.reason
    W.objects_at_close = live_objects()
  end)
  return W
end

local function index_of(list, value)
  for i, v in ipairs(list) do
    if v == value then return i end
  end
end

-- close the session and return the virtual seconds it took
local function timed_close(s)
  local t0 = task.now()
  s:close()
  return task.now() - t0
end

describe("AgentTask rules", function()
  it("T1: run() outside a tool or hook raises a clear error", rt.run(function()
    local T = moonline.AgentTask:extend({ name = "T" })
    local ok, err = pcall(function() return T:new():run() end)
    assert.is_false(ok)
    assert.matches("AgentTask:run: only from a tool call or an on_enter/on_exit hook", err)
  end))

  it("T1: a task can be run once", rt.run(function()
    local T = moonline.AgentTask:extend({ name = "T" })
    function T:on_enter() self:complete("done") end
    local second
    local A = moonline.Agent:extend({ name = "A" })
    A:tool("twice", "Run twice.", {}, function()
      local t = T:new()
      t:run()
      local ok, err = pcall(t.run, t)
      second = ok and "ran" or err
      return "x"
    end)
    local s = moonline.AgentSession.new({ llm = testing.ScriptedLLM({
      { input = "go", tool_calls = { { name = "twice" } } }, { content = "ok" } }) })
    s:start({ agent = A:new() })
    s:run({ user_input = "go" })
    assert.matches("a task can be run once", second)
    s:close()
  end, VIRTUAL))

  it("T2/T3: pauses the caller, runs the task, merges its messages, resumes without on_enter", rt.run(function()
    local W = world()
    local s = W.session
    s:start({ agent = W.Root:new() })
    s:run({ user_input = "start" }) -- Root's tool is now blocked in T1:run()
    assert.equal("T1", s.current_agent.name)
    assert.is_nil(index_of(W.log, "Root exit")) -- T2: the paused caller's on_exit does not run
    assert.is_nil(index_of(W.log, "Root resumed: t1 done")) -- the tool is still blocked
    s:run({ user_input = "hello from the user" })
    local r = s:run({ user_input = "finish t1" })
    r.expect:contains_function_call({ name = "finish" })
    r.expect:contains_agent_handoff({ new_agent = "Root" })
    r.expect:contains_message({ content = "All done." })
    assert.same({ "Root enter", "T1 enter", "T1 exit", "Root resumed: t1 done" }, W.log)
    assert.equal("Root", s.current_agent.name)
    -- T3: the task's messages joined Root's context; not its instructions,
    -- not its tool calls
    local root_ctx = s.current_agent.chat_ctx.items
    local texts, has_t1_instructions, has_finish_call = {}, false, false
    for _, it in ipairs(root_ctx) do
      if it.type == "message" then texts[#texts + 1] = it.content end
      if it.content == "t1" then has_t1_instructions = true end
      if it.type == "function_call" and it.name == "finish" then has_finish_call = true end
    end
    assert.truthy(index_of(texts, "hello from the user"))
    assert.is_false(has_t1_instructions)
    assert.is_false(has_finish_call)
    assert.equal(1, live_objects().activity) -- the task's activity is closed
    s:close()
  end, VIRTUAL))

  it("T3: complete(ToolError) makes run() raise it; the tool reports it", rt.run(function()
    local T = moonline.AgentTask:extend({ name = "Refuse" })
    function T:on_enter() self:complete(moonline.ToolError("the user declined")) end
    local A = moonline.Agent:extend({ name = "A" })
    A:tool("ask", "Ask.", {}, function() return T:new():run() end)
    local s = moonline.AgentSession.new({ llm = testing.ScriptedLLM({
      { input = "go", tool_calls = { { name = "ask" } } }, { content = "ok" } }) })
    s:start({ agent = A:new() })
    local r = s:run({ user_input = "go" })
    r.expect:contains_function_call_output({ output = "the user declined", is_error = true })
    s:close()
  end, VIRTUAL))

  it("T4: tasks nest; each level resumes its own caller", rt.run(function()
    local W = world()
    local s = W.session
    s:start({ agent = W.Root:new() })
    s:run({ user_input = "start" })
    s:run({ user_input = "deeper" })
    assert.equal("T2", s.current_agent.name)
    s:run({ user_input = "finish t2" })
    assert.equal("T1", s.current_agent.name)
    s:run({ user_input = "finish t1" })
    assert.equal("Root", s.current_agent.name)
    assert.same({ "Root enter", "T1 enter", "T2 enter", "T2 exit", "T1 resumed: t2 done",
                  "T1 exit", "Root resumed: t1 done" }, W.log)
    s:close()
  end, VIRTUAL))

  it("T4: two tool calls of one turn that each run a task run them one after the other", rt.run(function()
    local log = {}
    local function task_class(name)
      local T = moonline.AgentTask:extend({ name = name })
      function T:on_enter()
        log[#log + 1] = name .. " enter"
        task.sleep(1)
        self:complete(name)
      end
      function T:on_exit() log[#log + 1] = name .. " exit" end
      return T
    end
    local A, B = task_class("TA"), task_class("TB")
    local Root = moonline.Agent:extend({ name = "Root" })
    Root:tool("run_a", "A.", {}, function() return A:new():run() end)
    Root:tool("run_b", "B.", {}, function() return B:new():run() end)
    local s = moonline.AgentSession.new({ llm = testing.ScriptedLLM({
      { input = "both", tool_calls = { { name = "run_a" }, { name = "run_b" } } }, { content = "ok" } }) })
    s:start({ agent = Root:new() })
    local r = s:run({ user_input = "both" })
    assert.same({ "TA enter", "TA exit", "TB enter", "TB exit" }, log)
    r.expect:contains_function_call_output({ output = "TA" })
    r.expect:contains_function_call_output({ output = "TB" })
    s:close()
  end, VIRTUAL))

  it("T5: the history records a handoff when a task starts and when it returns", rt.run(function()
    local W = world()
    local s = W.session
    s:start({ agent = W.Root:new() })
    s:run({ user_input = "start" })
    s:run({ user_input = "finish t1" })
    local handoffs = {}
    for _, it in ipairs(s.history.items) do
      if it.type == "agent_handoff" then handoffs[#handoffs + 1] = it.old_agent .. "->" .. it.new_agent end
    end
    assert.same({ "Root->T1", "T1->Root" }, handoffs)
    s:close()
  end, VIRTUAL))
end)

describe("close rules", function()
  it("C1/C2/C3: nested tasks close innermost first, each caller resumed with a ToolError", rt.run(function()
    local W = world()
    local s = W.session
    s:start({ agent = W.Root:new() })
    s:run({ user_input = "start" })
    s:run({ user_input = "deeper" })
    local took = timed_close(s)
    assert.equal(0, took) -- nothing waited for a timeout
    assert.same({ "Root enter", "T1 enter", "T2 enter",
                  "T2 exit", "T1 resumed: T2 cancelled",
                  "T1 exit", "Root resumed: T1 cancelled",
                  "Root exit" }, W.log)
    assert.equal(1, W.closes)
    assert.equal("user_initiated", W.close_reason)
    assert.same({ session = 0, activity = 0, speech = 0 }, W.objects_at_close) -- C7: after everything closed
    assert.same({ session = 0, activity = 0, speech = 0 }, live_objects()) -- C5
  end, VIRTUAL))

  it("C1/C2: a tool that calls run() only after close began gets a ToolError at once", rt.run(function()
    local T = moonline.AgentTask:extend({ name = "Late" })
    local entered, got = false, nil
    function T:on_enter() entered = true end
    local A = moonline.Agent:extend({ name = "A" })
    A:tool("late", "Late.", {}, function()
      pcall(task.sleep, 10) -- swallows the close's cancellation, then tries to start a task
      local ok, err = pcall(function() return T:new():run() end)
      got = ok and "started" or err
    end)
    local s = moonline.AgentSession.new({ llm = testing.ScriptedLLM({
      { input = "go", tool_calls = { { name = "late" } } } }) })
    s:start({ agent = A:new() })
    s:generate_reply({ user_input = "go" })
    task.sleep(1)
    local took = timed_close(s)
    assert.is_false(entered) -- C4: no activity started
    assert.is_true(moonline.is_tool_error(got))
    assert.matches("Late cancelled: the session is closing", got.message)
    assert.is_true(took < 5, "close took " .. took)
  end, VIRTUAL))

  it("C1: on_enter about to run a task when close begins", rt.run(function()
    local T = moonline.AgentTask:extend({ name = "Never" })
    local started = false
    function T:on_enter() started = true end
    local A = moonline.Agent:extend({ name = "A" })
    function A:on_enter()
      pcall(task.sleep, 10)
      pcall(function() T:new():run() end)
    end
    local s = moonline.AgentSession.new({ llm = testing.ScriptedLLM({}) })
    s:start({ agent = A:new() })
    task.sleep(1)
    local took = timed_close(s)
    assert.is_false(started)
    assert.is_true(took < 5, "close took " .. took)
  end, VIRTUAL))

  it("C1/C6: a task's on_enter waiting for a reply; the reply is interrupted, the wait returns", rt.run(function()
    local waited
    local W = world({
      t1_enter = function(self)
        local sp = self.session:generate_reply({ instructions = "a very slow reply" })
        sp:wait()
        waited = sp.interrupted
      end,
      script = {
        { input = "start", tool_calls = { { name = "start_t1" } } },
        { input = "a very slow reply", content = "…", delay = 1000 },
      },
    })
    local s = W.session
    s:start({ agent = W.Root:new() })
    s:generate_reply({ user_input = "start" })
    task.sleep(1)
    local took = timed_close(s)
    assert.is_true(took < 5, "close took " .. took)
    assert.is_true(waited)
  end, VIRTUAL))

  it("C1: a tool sleeping forever", rt.run(function()
    local A = moonline.Agent:extend({ name = "A" })
    A:tool("forever", "Sleeps.", {}, function() task.sleep(1e6) end)
    local s = moonline.AgentSession.new({ llm = testing.ScriptedLLM({
      { input = "go", tool_calls = { { name = "forever" } } } }) })
    s:start({ agent = A:new() })
    s:generate_reply({ user_input = "go" })
    task.sleep(1)
    assert.equal(0, timed_close(s))
  end, VIRTUAL))

  it("C1: a script that swallows cancellation with pcall is stopped within the bound", rt.run(function()
    local A = moonline.Agent:extend({ name = "A" })
    A:tool("stubborn", "Never stops.", {}, function()
      while true do pcall(task.sleep, 1e6) end
    end)
    local s = moonline.AgentSession.new({ llm = testing.ScriptedLLM({
      { input = "go", tool_calls = { { name = "stubborn" } } } }) })
    s:start({ agent = A:new() })
    s:generate_reply({ user_input = "go" })
    task.sleep(1)
    local took = timed_close(s)
    assert.is_true(took <= 5, "close took " .. took)
    assert.same({ session = 0, activity = 0, speech = 0 }, live_objects())
  end, VIRTUAL))

  it("C4: once close began no activity starts (handoff and update_agent refused)", rt.run(function()
    local B = moonline.Agent:extend({ name = "B" })
    local b_entered = false
    function B:on_enter() b_entered = true end
    local A = moonline.Agent:extend({ name = "A" })
    local s = moonline.AgentSession.new({ llm = testing.ScriptedLLM({}) })
    s:start({ agent = A:new() })
    s:shutdown({ drain = false })
    assert.is_false(s:update_agent(B:new()))
    s:close()
    assert.is_false(b_entered)
  end, VIRTUAL))

  it("C6/C7: queued speeches are interrupted; a pending run fails with 'session closed'", rt.run(function()
    local A = moonline.Agent:extend({ name = "A" })
    local s = moonline.AgentSession.new({ llm = testing.ScriptedLLM({ { content = "slow", delay = 1000 } }) })
    s:start({ agent = A:new() })
    local runner = task.spawn_supervised(function() return s:run({ user_input = "hello" }) end)
    task.sleep(1)
    local queued = s:say("never said")
    local closes = 0
    s:on("close", function() closes = closes + 1 end)
    s:close()
    queued:wait()
    assert.is_true(queued.interrupted)
    local ok, err = runner:wait()
    assert.is_false(ok)
    assert.matches("session closed", err)
    assert.equal(1, closes)
    s:close() -- closing again is a no-op: still one close event
    assert.equal(1, closes)
  end, VIRTUAL))

  it("C8: draining is not blocked by a tool waiting for a task", rt.run(function()
    local W = world()
    local s = W.session
    s:start({ agent = W.Root:new() })
    s:run({ user_input = "start" }) -- Root's speech is blocked in its tool until T1 completes
    local t0 = task.now()
    s:drain()
    assert.equal(0, task.now() - t0)
    assert.equal(1, W.closes)
    assert.truthy(index_of(W.log, "Root resumed: T1 cancelled"))
  end, VIRTUAL))

  it("C9: when the job's task is cancelled the session closes in order (job_shutdown)", rt.run(function()
    local W = world()
    local job = task.spawn(function()
      W.session:start({ agent = W.Root:new() })
      W.session:run({ user_input = "start" })
      task.sleep(1e6) -- the entrypoint waits; the job ends from outside
    end)
    task.sleep(1)
    job:cancel("job ended")
    job:wait()
    assert.equal(1, W.closes)
    assert.equal("job_shutdown", W.close_reason)
    assert.same({ "Root enter", "T1 enter", "T1 exit", "Root resumed: T1 cancelled", "Root exit" }, W.log)
  end, VIRTUAL))

  it("C5: a script error in a hook still leaves everything closed", rt.run(function()
    local A = moonline.Agent:extend({ name = "A" })
    function A:on_enter() error("broken on_enter") end
    function A:on_exit() error("broken on_exit") end
    local s = moonline.AgentSession.new({ llm = testing.ScriptedLLM({}) })
    local errors = 0
    s:on("error", function() errors = errors + 1 end)
    s:start({ agent = A:new() })
    task.sleep(1)
    s:close()
    assert.equal(2, errors)
    assert.same({ session = 0, activity = 0, speech = 0 }, live_objects())
  end, VIRTUAL))
end)

describe("fault injection over the whole lifecycle", function()
  local function scenario()
    local W = world()
    local s = W.session
    s:start({ agent = W.Root:new() })
    s:run({ user_input = "start" })
    s:run({ user_input = "deeper" })
    s:run({ user_input = "finish t2" })
    s:say("bye")
    s:close()
    return W
  end

  it("an error at any yield point leaves no session, activity, speech or task behind (C5)", function()
    task.clock.use_virtual(true)
    task.inject_fault(0)
    task.run(scenario)
    local k_total = task.inject_fault(nil)
    task.clock.use_virtual(false)
    rt.assert_ledger_zero()
    assert.is_true(k_total >= 20, "only " .. k_total .. " yield points")
    for k = 1, k_total do
      task.clock.use_virtual(true)
      task.inject_fault(k)
      local t0 = task.now()
      pcall(task.run, scenario)
      local took = task.now() - t0
      task.inject_fault(nil)
      task.clock.use_virtual(false)
      local problems = rt.ledger_problems()
      assert.is_nil(problems, ("fault at yield point %d of %d: %s"):format(k, k_total, tostring(problems)))
      assert.same({ session = 0, activity = 0, speech = 0 }, live_objects())
      assert.is_true(took < 1, ("fault at yield point %d: the run took %gs"):format(k, took))
    end
  end)
end)
