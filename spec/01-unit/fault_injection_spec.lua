-- Fault injection over a scenario that uses every kind of yield point: the
-- scenario runs once to count its K yield points, then K more times with an
-- error injected at point k. Whatever k, the runtime must end with an empty
-- ledger, the root must end (no hang), and the failure must surface.
local rt = require "runtime_helper"
local task = require "moonline.task"

local function scenario()
  local ch = task.channel(1)
  task.defer(function()
    task.sleep(0.01) -- a cleanup that yields
  end)
  task.scope(function()
    local tm = task.timer(0.01, 0.01)
    task.defer(function() tm:close() end)
    task.spawn(function()
      for i = 1, 3 do
        ch:send(i)
        task.sleep(0.01)
      end
      ch:close()
    end)
    task.spawn(function()
      task.with_timeout(1, function()
        while true do
          local v = ch:recv()
          if not v then break end
          tm:wait()
        end
      end)
    end)
    local helper = task.spawn_supervised(function()
      task.shield(function() task.sleep(0.02) end)
      return "helped"
    end)
    helper:wait()
    task.yield()
  end)
  task.scope(function()
    local w = task.spawn(function() task.sleep(1000) end)
    task.sleep(0.05)
    w:cancel("enough")
    w:wait()
  end)
  return "done"
end

describe("fault injection", function()
  it("at every yield point of the lifecycle scenario leaves nothing behind", function()
    task.clock.use_virtual(true)
    task.inject_fault(0)
    assert.equal("done", task.run(scenario))
    local k_total = task.inject_fault(nil)
    task.clock.use_virtual(false)
    rt.assert_ledger_zero()
    assert.is_true(k_total >= 15, "scenario has only " .. k_total .. " yield points")

    local failed, completed = 0, 0
    for k = 1, k_total do
      task.clock.use_virtual(true)
      task.inject_fault(k)
      local ok, err = pcall(task.run, scenario)
      task.inject_fault(nil)
      task.clock.use_virtual(false)
      local problems = rt.ledger_problems()
      assert.is_nil(problems, "after a fault at yield point " .. k .. ": " .. tostring(problems))
      if ok then
        completed = completed + 1 -- the fault hit a cleanup (logged) or a supervised task
      else
        failed = failed + 1
        assert.matches("injected fault at yield point " .. k, tostring(err))
      end
    end
    assert.is_true(failed > k_total / 2, ("only %d of %d faults surfaced"):format(failed, k_total))
  end)
end)
