-- spec/runtime_helper.lua: run a spec body as the root task and assert the
-- ledger is empty afterwards.
--   local rt = require "runtime_helper"
--   it("…", rt.run(function() … end))          -- body in a root task
--   rt.assert_ledger_zero()                     -- tasks, scopes, resources, timers, handles
--   rt.eventually(function() return x.done end, 5, "x to finish")
local task = require "moonline.task"

local _M = {}

function _M.ledger_problems()
  collectgarbage()
  local l = task.ledger()
  local bad = {}
  for _, k in ipairs({ "tasks", "scopes", "resources", "timers", "handles" }) do
    if l[k] ~= 0 then
      bad[#bad + 1] = k .. "=" .. l[k]
    end
  end
  return #bad > 0 and table.concat(bad, " ") or nil, l
end

function _M.assert_ledger_zero()
  local problems = _M.ledger_problems()
  assert(problems == nil, "ledger not empty: " .. tostring(problems))
end

-- outcome(fn): runs fn as a root task and returns task.run's pcall result
-- (for specs that expect the root to fail), after checking the ledger.
-- opts.virtual runs it on the virtual clock.
function _M.outcome(fn, opts)
  opts = opts or {}
  if opts.virtual then
    task.clock.use_virtual(true)
  end
  local ok, err = pcall(task.run, fn)
  if opts.virtual then
    task.clock.use_virtual(false)
  end
  _M.assert_ledger_zero()
  return ok, err
end

-- run(fn): a function for `it` that runs fn as a root task, then checks the
-- ledger. The error of fn (if any) fails the spec with its traceback.
function _M.run(fn, opts)
  return function()
    local ok, err = _M.outcome(fn, opts)
    if not ok then
      error(err, 0)
    end
  end
end

--- eventually(pred [, seconds = 5 [, what]]): waits (from a task) until
-- pred() holds, checking every 10 ms; fails naming `what` after `seconds`
function _M.eventually(pred, seconds, what)
  local ok = task.with_timeout(seconds or 5, function()
    while not pred() do task.sleep(0.01) end
  end)
  assert(ok, "timed out waiting for " .. (what or "a condition"))
end

return _M
