-- Benchmark B3 (specs/performance.md): lifecycle churn. N session cycles in
-- one process, each: start (an agent whose tool runs an AgentTask) -> one
-- user turn -> say -> close, with a failure injected at a random yield point
-- of the cycle (task.inject_fault: the k-th waiting primitive raises).
-- Checks, and fails on: the ledger back to its baseline after every cycle
-- (tasks, scopes, resources, timers, handles; no session, activity or speech
-- object left), RSS flat over the run. Prints CPU per cycle, how many cycles
-- ended in an error and RSS over time.
--
--   moonline run bench/b3_churn.lua [N=100000] [seed=1] [--no-rss]
--
-- The engine's virtual clock runs the cycles: a failure that made a turn or a
-- close wait for a timeout shows up as virtual seconds and fails the run.
local moonline = require "moonline"
local task = moonline.task
local ScriptedLLM = moonline.testing.ScriptedLLM

local N, SEED, RSS_CHECK = 100000, 1, true
local positional = {}
for _, a in ipairs(arg) do
  if a == "--no-rss" then
    RSS_CHECK = false -- ASan builds: the allocator's quarantine holds freed memory
  elseif tonumber(a) then
    positional[#positional + 1] = tonumber(a)
  else
    error("usage: moonline run bench/b3_churn.lua [N=100000] [seed=1] [--no-rss]", 0)
  end
end
N, SEED = positional[1] or N, positional[2] or SEED

-- bench/lib/call_stats.lua, next to this script: rss_kb
package.path = debug.getinfo(1, "S").source:match("^@?(.-)[^/]*$") .. "lib/?.lua;" .. package.path
local rss_kb = require("call_stats").rss_kb

-- The scenario: Shop's tool runs Confirm (an AgentTask) whose own LLM turn
-- calls the tool that completes it; then the session says goodbye and closes.
local Confirm = moonline.AgentTask:extend({ name = "Confirm", instructions = "Confirm the order." })
Confirm:tool("confirm", "Mark the order confirmed.", {}, function(self) self:complete("confirmed") end)
function Confirm:on_enter() self.session:generate_reply({ instructions = "greet" }) end

local Shop = moonline.Agent:extend({ name = "Shop", instructions = "You sell pizza." })
Shop:tool("place_order", "Place an order.", { item = { type = "string" } }, function(_, _, a)
  return "order " .. a.item .. ": " .. Confirm:new():run()
end)

local SCRIPT = {
  { input = "order a pizza", tool_calls = { { name = "place_order", arguments = { item = "pizza" } } } },
  { input = "greet", tool_calls = { { name = "confirm", arguments = {} } } },
  { input = "order pizza: confirmed", content = "Your order is confirmed." },
}

local function cycle()
  local s = moonline.AgentSession.new({ llm = ScriptedLLM(SCRIPT) })
  s:start({ agent = Shop:new() })
  s:run({ user_input = "order a pizza" })
  s:say("Goodbye.")
  s:close()
end

local function objects_left()
  local l = task.ledger()
  local k = l.kinds
  return l.tasks, l.scopes, l.resources, l.timers, l.handles,
    (k.session or 0) + (k.activity or 0) + (k.speech or 0)
end

task.clock.use_virtual(true)
-- the yield points of one clean cycle
task.inject_fault(0)
task.scope(cycle)
local points = task.inject_fault(nil)
assert(points >= 10, "only " .. points .. " yield points in a cycle")

local base = { objects_left() }
local function check_ledger(i, k)
  local now = { objects_left() }
  for j = 1, #base do
    if now[j] ~= base[j] then
      error(("cycle %d (fault at yield point %d): ledger tasks/scopes/resources/timers/handles/objects"
        .. " %s, baseline %s"):format(i, k, table.concat(now, "/"), table.concat(base, "/")), 0)
    end
  end
end

math.randomseed(SEED)
local failed, clean = 0, 0
local samples = {}
local t_virtual0 = task.now()
collectgarbage()
local cpu0 = os.clock()
for i = 1, N do
  local k = math.random(points)
  local tv = task.now()
  task.inject_fault(k)
  local ok = pcall(task.scope, cycle)
  task.inject_fault(nil)
  if ok then clean = clean + 1 else failed = failed + 1 end
  check_ledger(i, k)
  -- nothing in a cycle sleeps: a cycle that took virtual time waited for a
  -- timeout (a turn that never settled, a close that hit its bound)
  if task.now() - tv > 0 then
    error(("cycle %d: the fault at yield point %d made it wait %.3f s for a timeout"):format(
      i, k, task.now() - tv), 0)
  end
  if i % (N / 4) == 0 then
    collectgarbage()
    samples[#samples + 1] = rss_kb()
  end
end
local cpu = os.clock() - cpu0
local virtual = task.now() - t_virtual0
task.clock.use_virtual(false)

local per_cycle = (samples[#samples] - samples[1]) * 1024 / (N * 3 / 4)
print(("B3 lifecycle churn: %d cycles, a fault at a random one of %d yield points each (seed %d)"):format(
  N, points, SEED))
print(("  cycles that raised: %d, completed anyway: %d (a fault caught inside, e.g. by a tool)"):format(
  failed, clean))
print(("  CPU per cycle (start, turn with AgentTask, say, close, failure): %.1f us"):format(cpu / N * 1e6))
print(("  time waited for timeouts (virtual clock): %.3f s"):format(virtual))
print(("  RSS at 25/50/75/100%%: %s KB; growth over the last 75%%: %.1f bytes/cycle (%+.2f%%)%s"):format(
  table.concat(samples, "/"), per_cycle, (samples[#samples] - samples[1]) * 100 / samples[1],
  RSS_CHECK and "" or ", not judged (--no-rss)"))
print(("  ledger after every cycle at its baseline (tasks/scopes/resources/timers/handles/objects %s)"):format(
  table.concat(base, "/")))
-- a leaked session (tens of KB) every 1,000 cycles is ~30 bytes per cycle
if RSS_CHECK and per_cycle > 8 then
  error(("RSS not flat: %d KB -> %d KB (%.1f bytes per cycle)"):format(samples[1], samples[#samples], per_cycle), 0)
end
