local rt = require "runtime_helper"
local task = require "moonline.task"

describe("runtime smoke", function()
  it("runs a root task and returns its values", function()
    assert.same(42, task.run(function() task.sleep(0) return 42 end))
    rt.assert_ledger_zero()
  end)
end)
