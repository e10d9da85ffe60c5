-- Benchmark B1 (specs/performance.md): N concurrent text sessions in ONE
-- process. Mirrors ../shared/peers/livekit-node/bench.mjs (LiveKit Agents
-- for Node) step by step: same agents, tools, inputs and outputs, one
-- scripted model per session keyed on the last message; everything else is
-- the real framework (AgentSession, Agent, activities, tool calls, AgentTask,
-- RunResult).
--
--   build/moonline run bench/text_turns.lua N [--task] [--warm] [--json] [--profile=MODE[,FILE]]
--
--   --task     the tool runs an AgentTask whose own LLM turn calls a tool that completes it
--   --warm     run 3 sessions through a full cycle first (JIT warm-up), then measure
--   --json     one line of JSON (the keys of the peer's output)
--   --profile  LuaJIT's sampling profiler over the turn phase (jit.p modes, e.g. "F" or "fl,/tmp/p.txt")
--
-- Phases: construct + start N sessions; one user turn per session, all
-- concurrently (the LLM calls a tool, then replies); close all concurrently.
-- CPU is os.clock() (process CPU time); memory is RSS (/proc/self/statm) and
-- the Lua heap, after a full collection.
local moonline = require "moonline"
local task = moonline.task
local ScriptedLLM = moonline.testing.ScriptedLLM
local uv = require "luv"
local cjson = require "cjson"

local args = { ... }
local N, WITH_TASK, JSON_OUT, WARM, PROFILE = 1, false, false, false, nil
for _, a in ipairs(args) do
  if a:match("^%d+$") then
    N = tonumber(a)
  elseif a == "--task" then
    WITH_TASK = true
  elseif a == "--json" then
    JSON_OUT = true
  elseif a == "--warm" then
    WARM = true
  elseif a:match("^%-%-profile") then
    PROFILE = a:match("^%-%-profile=(.+)$") or "F"
  else
    error("usage: moonline run bench/text_turns.lua N [--task] [--warm] [--json] [--profile=MODE[,FILE]]", 0)
  end
end

---------------------------------------------------------------------------
-- Measurement helpers
---------------------------------------------------------------------------

local PAGE = 4096
local function rss()
  local f = assert(io.open("/proc/self/statm"))
  local _, resident = f:read("*n", "*n")
  f:close()
  return resident * PAGE
end

local function mem()
  collectgarbage()
  collectgarbage()
  return { rss = rss(), heap = collectgarbage("count") * 1024 }
end

local clock = os.clock -- process CPU time, seconds
local function now_ms() return uv.hrtime() / 1e6 end
local function fmt(x, d) return tonumber(("%." .. (d or 1) .. "f"):format(x)) end
local function MB(b) return fmt(b / 1048576) end
local function KB(b) return fmt(b / 1024) end

---------------------------------------------------------------------------
-- The scenario (bench.mjs)
---------------------------------------------------------------------------

local tool_runs, task_tool_runs, tasks_completed, close_events, error_events = 0, 0, 0, 0, 0
local FINAL_TEXT = WITH_TASK and "Your order is confirmed." or "It is sunny in Paris."
local USER_TEXT = WITH_TASK and "order a pizza" or "weather in Paris?"

-- An AgentTask whose on_enter asks the LLM for a reply; that reply is a tool
-- call to `confirm`, which completes the task; the parent resumes.
local ConfirmTask = moonline.AgentTask:extend({
  name = "ConfirmTask",
  instructions = "Confirm the order with the user.",
})
ConfirmTask:tool("confirm", "Mark the order confirmed.", {}, function(self)
  task_tool_runs = task_tool_runs + 1
  self:complete("confirmed") -- returns nothing: no tool reply
end)
function ConfirmTask:on_enter()
  self.session:generate_reply({ instructions = "instructions:task_greeting" })
end

local BenchAgent = moonline.Agent:extend({ name = "BenchAgent", instructions = "You are a helpful voice agent." })
if WITH_TASK then
  BenchAgent:tool("place_order", "Place an order; runs a confirmation sub-task.", { item = { type = "string" } },
    function(_, _, a)
      tool_runs = tool_runs + 1
      local r = ConfirmTask:new():run()
      tasks_completed = tasks_completed + 1
      return "order " .. a.item .. ": " .. r
    end)
else
  BenchAgent:tool("get_weather", "Get the weather for a city.", { city = { type = "string" } },
    function(_, _, a)
      tool_runs = tool_runs + 1
      return "sunny in " .. a.city
    end)
end

-- one scripted model per session, keyed on the last message: the user's
-- text, the tool's output, or the instructions of generate_reply
local function make_llm()
  if WITH_TASK then
    return ScriptedLLM({
      { input = "order a pizza", tool_calls = { { name = "place_order", arguments = { item = "pizza" } } } },
      { input = "instructions:task_greeting", tool_calls = { { name = "confirm", arguments = {} } } },
      { input = "order pizza: confirmed", content = FINAL_TEXT },
    })
  end
  return ScriptedLLM({
    { input = "weather in Paris?", tool_calls = { { name = "get_weather", arguments = { city = "Paris" } } } },
    { input = "sunny in Paris", content = FINAL_TEXT },
  })
end

local function on_close() close_events = close_events + 1 end
local function on_error() error_events = error_events + 1 end

local function new_session()
  local s = moonline.AgentSession.new({ llm = make_llm() })
  s:on("close", on_close)
  s:on("error", on_error)
  return s
end

if WARM then
  for _ = 1, 3 do
    local s = new_session()
    s:start({ agent = BenchAgent:new() })
    s:run({ user_input = USER_TEXT })
    s:close()
  end
  tool_runs, task_tool_runs, tasks_completed, close_events, error_events = 0, 0, 0, 0, 0
end

---------------------------------------------------------------------------
-- Phases
---------------------------------------------------------------------------

local m0 = mem()
local t_start = now_ms()
local c0 = clock()

-- phase 1: construct + start N sessions
local sessions = {}
for i = 1, N do
  local s = new_session()
  sessions[i] = s
  s:start({ agent = BenchAgent:new() })
end
local t_started = now_ms()
local c1 = clock()
local m1 = mem()

-- phase 2: one scripted user turn per session, all concurrently
local profiler
if PROFILE then
  local mode, file = PROFILE:match("^([^,]*),?(.*)$")
  profiler = require "jit.p"
  profiler.start(mode, file ~= "" and file or nil)
end
local latency = {}
local turns_ok, turns_failed = 0, 0
local t_turn0 = now_ms()
local c2 = clock()
task.scope(function()
  for i = 1, N do
    local s = sessions[i]
    task.spawn(function()
      local t = now_ms()
      local ok, r = pcall(s.run, s, { user_input = USER_TEXT, timeout = 120 })
      if ok and r:final_output() == FINAL_TEXT then
        latency[#latency + 1] = now_ms() - t
        turns_ok = turns_ok + 1
      else
        turns_failed = turns_failed + 1
        if turns_failed <= 3 then
          io.stderr:write("turn failed: ", ok and tostring(r:final_output()) or tostring(r), "\n")
        end
      end
    end)
  end
end)
local t_turn1 = now_ms()
local c3 = clock()
if profiler then profiler.stop() end
local m2 = mem() -- all sessions alive, each with one completed turn in its history

-- sanity: the history of the first session
local h = {}
for _, it in ipairs(sessions[1].history.items) do
  h[#h + 1] = it.type .. (it.role and (":" .. it.role) or "") .. (it.name and (":" .. it.name) or "")
end

table.sort(latency)
local function pct(p)
  if #latency == 0 then return "n/a" end
  return fmt(latency[math.min(#latency, math.floor(p / 100 * #latency) + 1)])
end

-- phase 3: close all, concurrently
local t_close0 = now_ms()
local c4 = clock()
for i = 1, N do
  sessions[i]:shutdown({ drain = false })
end
for i = 1, N do
  sessions[i]:close()
end
local t_end = now_ms()
local c5 = clock()
local m3 = mem()
-- drop our references to the closed sessions; what remains is retained by the framework
sessions = nil
local m4 = mem()

local function cpu_ms(a, b) return (b - a) * 1000 end

local r = {
  N = N, variant = WITH_TASK and "tool+AgentTask" or "tool", warm = WARM, engine = jit.version,
  total_wall_ms = fmt(t_end - t_start),
  start_ms = fmt(t_started - t_start),
  turns_ms = fmt(t_turn1 - t_turn0),
  close_ms = fmt(t_end - t_close0),
  cpu_ms_per_session_start = fmt(cpu_ms(c0, c1) / N, 4),
  cpu_ms_per_turn = fmt(cpu_ms(c2, c3) / N, 4),
  cpu_ms_per_session_close = fmt(cpu_ms(c4, c5) / N, 4),
  turns_per_s = fmt(turns_ok / ((t_turn1 - t_turn0) / 1000)),
  turn_latency_ms_p50 = pct(50), turn_latency_ms_p99 = pct(99),
  turns_ok = turns_ok, turns_failed = turns_failed,
  tool_runs = tool_runs, task_tool_runs = task_tool_runs, tasks_completed = tasks_completed,
  close_events = close_events, error_events = error_events,
  baseline_rss_mb = MB(m0.rss), baseline_heap_mb = MB(m0.heap),
  per_session_started_rss_kb = KB((m1.rss - m0.rss) / N), per_session_started_heap_kb = KB((m1.heap - m0.heap) / N),
  per_session_after_turn_rss_kb = KB((m2.rss - m0.rss) / N),
  per_session_after_turn_heap_kb = KB((m2.heap - m0.heap) / N),
  after_close_rss_mb = MB(m3.rss), after_close_heap_mb = MB(m3.heap),
  after_release_rss_mb = MB(m4.rss), after_release_heap_mb = MB(m4.heap),
  retained_heap_per_closed_session_kb = KB((m4.heap - m0.heap) / N),
  history_session0 = table.concat(h, " | "),
}

local ledger = task.ledger()
r.live_tasks_after_close = ledger.tasks - 1 -- the main task itself
r.live_resources_after_close = ledger.resources

if JSON_OUT then
  print(cjson.encode(r))
else
  local keys = {}
  for k in pairs(r) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    print(("%-36s %s"):format(k, tostring(r[k])))
  end
end
if turns_failed > 0 or close_events ~= N then
  error(("%d turn(s) failed; %d close event(s) for %d sessions"):format(turns_failed, close_events, N), 0)
end
