-- bench/spawn_cancel.lua: N spawn/cancel cycles in batches; prints CPU per
-- cycle and RSS over time (flat RSS = nothing leaks per task).
--   moonline run bench/spawn_cancel.lua [N=100000] [batch=1000]
local task = require "moonline.task"

local N = tonumber(arg[1]) or 100000
local BATCH = tonumber(arg[2]) or 1000

-- bench/lib/call_stats.lua, next to this script: rss_kb
package.path = debug.getinfo(1, "S").source:match("^@?(.-)[^/]*$") .. "lib/?.lua;" .. package.path
local rss_kb = require("call_stats").rss_kb

local function cycle_batch()
  local ts = {}
  for i = 1, BATCH do
    ts[i] = task.spawn(function()
      task.defer(function() end)
      task.sleep(1000)
    end)
  end
  task.yield() -- every task starts and parks
  for i = 1, BATCH do ts[i]:cancel("bench") end
  for i = 1, BATCH do ts[i]:wait() end
end

-- warm up: the first batches size the heap, the ready queue and the JIT
for _ = 1, 10 do cycle_batch() end
collectgarbage()
local rss_warm = rss_kb()
local cpu0 = os.clock()
local samples = {}
for b = 1, N / BATCH do
  cycle_batch()
  if b % (N / BATCH / 4) == 0 then
    collectgarbage()
    samples[#samples + 1] = rss_kb()
  end
end
local cpu = os.clock() - cpu0
collectgarbage()
local rss_end = rss_kb()
local l = task.ledger()

print(("spawn/cancel: %d cycles in batches of %d"):format(N, BATCH))
print(("  CPU per cycle (spawn + start + cancel + cleanup + wait): %.2f us"):format(cpu / N * 1e6))
local growth = (rss_end - samples[1]) * 100 / samples[1]
-- Judge growth in bytes per cycle, not as a percentage: allocator and page
-- noise is 0-4 bytes per cycle here, while leaking one small Lua object or
-- malloc chunk per task is 16 bytes or more.
local per_cycle = (rss_end - samples[1]) * 1024 / (N * 3 / 4)
print(("  RSS after warm-up: %d KB; at 25/50/75/100%%: %s KB; growth from 25%% to the end %.2f%%"
  .. " (%.1f bytes/cycle)"):format(rss_warm, table.concat(samples, "/"), growth, per_cycle))
print(("  ledger: tasks=%d scopes=%d resources=%d timers=%d handles=%d (spawned %d)"):format(
  l.tasks, l.scopes, l.resources, l.timers, l.handles, l.tasks_spawned))
if per_cycle > 8 then
  error(("RSS not flat: %d KB -> %d KB (%.1f bytes per cycle)"):format(samples[1], rss_end, per_cycle))
end
