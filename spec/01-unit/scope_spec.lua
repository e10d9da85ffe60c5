-- Scopes, exit stacks, cancellation and the C backstop, run inside the real
-- runtime (every case ends with an empty ledger: see runtime_helper).
local rt = require "runtime_helper"
local task = require "moonline.task"

local function ledger_kind(kind)
  return task.ledger().kinds[kind] or 0
end

describe("scope exit stack", function()
  it("unwinds defers and resources in reverse order (LIFO)", rt.run(function()
    local order = {}
    task.scope(function()
      task.defer(function() order[#order + 1] = "a" end)
      local t = task.timer(100)
      task.defer(function()
        order[#order + 1] = "b"
        -- the timer was opened before this defer: still open now
        assert.is_nil(select(2, pcall(function() return tostring(t):match("closed") end)))
      end)
      task.defer(function() order[#order + 1] = "c" end)
    end)
    assert.same({ "c", "b", "a" }, order)
    assert.equal(0, ledger_kind("timer"))
  end))

  it("runs every defer even when one fails, and logs the failure", rt.run(function()
    local ran = {}
    task.scope(function()
      task.defer(function() ran[#ran + 1] = 1 end)
      task.defer(function() error("defer boom") end)
      task.defer(function() ran[#ran + 1] = 3 end)
    end)
    assert.same({ 3, 1 }, ran)
  end))

  it("waits for children on a normal return", rt.run(function()
    local done = 0
    task.scope(function()
      for i = 1, 5 do
        task.spawn(function() task.sleep(0.001 * i); done = done + 1 end)
      end
    end)
    assert.equal(5, done)
  end, { virtual = true }))

  it("lets cleanup yield after cancellation (yielding finalizers)", rt.run(function()
    local steps = {}
    local t = task.spawn(function()
      task.defer(function()
        steps[#steps + 1] = "cleanup start"
        task.sleep(0.5) -- a cleanup that waits: allowed, shielded, within the deadline
        steps[#steps + 1] = "cleanup end"
      end)
      task.sleep(1000)
    end)
    task.sleep(0.01)
    t:cancel("stop")
    local ok, err = t:wait()
    assert.is_false(ok)
    assert.is_true(task.is_cancelled(err))
    assert.equal("stop", err.reason)
    assert.same({ "cleanup start", "cleanup end" }, steps)
  end, { virtual = true }))
end)

describe("task names", function()
  it("are name#id, task#id without a name, cut at 47 bytes", rt.run(function()
    local a = task.spawn("speech", function() end)
    local b = task.spawn(function() end)
    local long = task.spawn(("x"):rep(60), function() end)
    assert.matches("^speech#%d+$", a:name())
    assert.matches("^task#%d+$", b:name())
    assert.equal(("x"):rep(47), long:name())
    assert.equal("moonline task " .. a:name(), tostring(a))
    for _, t in ipairs({ a, b, long }) do t:wait() end
    assert.matches("^speech#%d+$", a:name()) -- kept once done
  end))
end)

describe("conditions", function()
  it("wake waiters in order; notify and notify_all return how many woke", rt.run(function()
    local c = task.condition()
    assert.equal(0, c:notify())
    local order = {}
    for i = 1, 3 do
      task.spawn(function()
        c:wait("test cond")
        order[#order + 1] = i
      end)
    end
    task.yield() -- all three wait
    assert.equal(1, c:notify())
    assert.equal(2, c:notify_all())
    task.yield()
    assert.same({ 1, 2, 3 }, order)
  end))
end)

describe("errors", function()
  it("cancels sleeping siblings, closes every resource and keeps the traceback", function()
    local cancelled = 0
    local ok, err = rt.outcome(function()
      task.scope(function()
        for _ = 1, 3 do
          task.spawn(function()
            local tm = task.timer(1000)
            local ok2, e = pcall(task.sleep, 1000)
            if not ok2 and task.is_cancelled(e) then cancelled = cancelled + 1 end
            tm:wait() -- sticky: raises again
          end)
        end
        task.spawn(function()
          task.sleep(0.01)
          error("child exploded")
        end)
        task.sleep(1000)
      end)
    end, { virtual = true })
    assert.is_false(ok)
    assert.matches("child exploded", err)
    assert.matches("scope_spec.lua:%d+", err) -- file:line of the failing child
    assert.matches("stack traceback", err)
    assert.equal(3, cancelled)
  end)

  it("a body error wins over the cancellations it causes", function()
    local ok, err = rt.outcome(function()
      task.scope(function()
        task.spawn(function() task.sleep(1000) end)
        error("body failed")
      end)
    end, { virtual = true })
    assert.is_false(ok)
    assert.matches("body failed", err)
  end)

  it("keeps error objects (tables) intact", function()
    local E = { code = 42 }
    local ok, err = rt.outcome(function()
      task.scope(function()
        task.spawn(function() error(E) end)
        task.sleep(10)
      end)
    end, { virtual = true })
    assert.is_false(ok)
    assert.equal(E, err)
  end)

  it("supervised children fail alone and report through wait()", rt.run(function()
    local sibling_done = false
    task.scope(function()
      local bad = task.spawn_supervised(function() error("only me") end)
      task.spawn(function() task.sleep(0.01); sibling_done = true end)
      local ok, err = bad:wait()
      assert.is_false(ok)
      assert.matches("only me", err)
    end)
    assert.is_true(sibling_done)
  end, { virtual = true }))
end)

describe("cancellation", function()
  it("is sticky: a pcall that swallows it gets it again at the next primitive", rt.run(function()
    local seen = {}
    local t = task.spawn(function()
      for i = 1, 3 do
        local ok, e = pcall(task.sleep, 1000)
        seen[i] = (not ok) and task.is_cancelled(e)
      end
      return "unreachable?"
    end)
    task.sleep(0.01)
    t:cancel("go away")
    local ok, err = t:wait()
    -- the body swallowed every delivery and returned normally: it may do so,
    -- but every primitive it reached raised again
    assert.same({ true, true, true }, seen)
    assert.is_true(ok)
    assert.equal("unreachable?", err)
  end, { virtual = true }))

  it("delivers again even to a tight pcall loop (the loop gets control each time)", rt.run(function()
    local rounds = 0
    local t = task.spawn(function()
      while true do
        pcall(task.sleep, 1)
        rounds = rounds + 1
      end
    end)
    task.sleep(0.01)
    t:cancel()
    local ok, err = t:wait() -- ends by the cleanup deadline backstop, not a hang
    assert.is_false(ok)
    assert.matches("abandoned", tostring(err))
    assert.is_true(rounds > 0)
  end, { virtual = true }))

  it("with_timeout returns nil, 'timeout' and cancels what ran inside", rt.run(function()
    local inner_cancelled = false
    local ok, why = task.with_timeout(0.5, function()
      task.spawn(function()
        local s, e = pcall(task.sleep, 1000)
        inner_cancelled = not s and task.is_cancelled(e)
      end)
      task.sleep(1000)
    end)
    assert.is_nil(ok)
    assert.equal("timeout", why)
    assert.is_true(inner_cancelled)
    assert.same({ true, 7 }, { task.with_timeout(1, function() return 7 end) })
  end, { virtual = true }))

  it("an outer cancellation passes through an inner with_timeout", rt.run(function()
    local t = task.spawn(function()
      task.with_timeout(100, function() task.sleep(1000) end)
      return "should not get here"
    end)
    task.sleep(1)
    t:cancel("outer")
    local ok, err = t:wait()
    assert.is_false(ok)
    assert.equal("outer", err.reason)
  end, { virtual = true }))

  it("shield defers cancellation until the shielded work is done", rt.run(function()
    local finished = false
    local t = task.spawn(function()
      task.shield(function()
        task.sleep(1)
        finished = true
      end)
      task.sleep(1000)
    end)
    task.sleep(0.1)
    t:cancel()
    local ok, err = t:wait()
    assert.is_true(finished)
    assert.is_false(ok)
    assert.is_true(task.is_cancelled(err))
  end, { virtual = true }))


  it("a wait through the shield hears a cancellation from outside once; the shielded work goes on", rt.run(function()
    local cond = task.condition()
    local heard, slept, pending_after = 0, false, nil
    local t = task.spawn(function()
      task.shield(function()
        local ok, err = pcall(cond.wait, cond, "outside", true)
        if not ok and task.is_cancelled(err) then heard = heard + 1 end
        pending_after = task.cancelled_through()
        task.sleep(1) -- an ordinary wait inside the shield: not cancelled
        slept = true
        -- delivered once: a second wait through the shield waits for real
        local woke = task.with_timeout(1, cond.wait, cond, "again", true)
        assert.is_nil(woke)
      end)
      task.sleep(1000) -- out of the shield: the cancellation applies again
    end)
    task.sleep(0.1)
    t:cancel("job ends")
    local ok, err = t:wait()
    assert.equal(1, heard)
    assert.is_false(pending_after)
    assert.is_true(slept)
    assert.is_false(ok)
    assert.equal("job ends", err.reason)
  end, { virtual = true }))

  it("a wait through the shield raises at once when the cancellation came first", rt.run(function()
    local cond = task.condition()
    local seen
    local t = task.spawn(function()
      task.shield(function()
        task.sleep(1) -- cancelled from outside meanwhile
        seen = task.cancelled_through()
        local ok, err = pcall(cond.wait, cond, "outside", true)
        assert.is_false(ok)
        assert.equal("early", err.reason)
      end)
    end)
    task.sleep(0.1)
    t:cancel("early")
    t:wait()
    assert.is_true(seen)
  end, { virtual = true }))
  it("a task cancelled before it starts never runs its body", rt.run(function()
    local ran = false
    local t = task.spawn(function() ran = true end)
    t:cancel("early")
    local ok, err = t:wait()
    assert.is_false(ran)
    assert.is_false(ok)
    assert.equal("early", err.reason)
  end))

  it("reaches every descendant", rt.run(function()
    local cancelled = 0
    local function leaf()
      local ok, e = pcall(task.sleep, 1000)
      if not ok and task.is_cancelled(e) then cancelled = cancelled + 1 end
    end
    local t = task.spawn(function()
      task.spawn(function()
        task.spawn(leaf)
        task.scope(function() task.spawn(leaf); leaf() end)
      end)
      leaf()
    end)
    task.sleep(1)
    t:cancel()
    t:wait()
    assert.equal(4, cancelled)
  end, { virtual = true }))
end)

describe("C backstop", function()
  it("abandons a cleanup that outlives its deadline and closes its resources", rt.run(function()
    local before = task.ledger().abandoned
    local t = task.spawn(function()
      task.timer(1000) -- a C resource in this task's scope
      task.defer(function() task.sleep(1e6) end) -- a cleanup that never ends
      task.sleep(1000)
    end)
    task.sleep(0.01)
    local t0 = task.now()
    t:cancel("shutdown")
    local ok, err = t:wait()
    assert.is_false(ok)
    assert.matches("abandoned", tostring(err))
    assert.equal(before + 1, task.ledger().abandoned)
    assert.equal(0, ledger_kind("timer"))
    -- the default deadline is 5 s (virtual time here)
    assert.near(5, task.now() - t0, 0.01)
  end, { virtual = true }))

  it("honours a configured cleanup deadline", rt.run(function()
    local prev = task.set_cleanup_deadline(0.25)
    task.defer(function() task.set_cleanup_deadline(prev) end)
    local t = task.spawn(function()
      task.defer(function() task.sleep(1e6) end)
      task.sleep(1000)
    end)
    task.sleep(0.01)
    local t0 = task.now()
    t:cancel()
    t:wait()
    assert.near(0.25, task.now() - t0, 0.01)
  end, { virtual = true }))
end)

describe("leaked handles", function()
  it("are closed by __gc, logged and counted", rt.run(function()
    local before = task.ledger().leaks
    local t = task.spawn(function()
      for _ = 1, 3 do
        task.timer(1000) -- dropped at once: nobody closes it
      end
      collectgarbage()
      collectgarbage()
      assert.equal(0, ledger_kind("timer"))
    end)
    assert.is_true(t:wait())
    assert.equal(before + 3, task.ledger().leaks)
  end))
end)

describe("primitives outside a task", function()
  it("are refused at the top level of the main state", function()
    local ok, err = pcall(task.sleep, 1)
    assert.is_false(ok)
    assert.matches("moonline.task.sleep: not inside a task", err)
  end)

  it("are refused across a C boundary (table.sort comparator)", rt.run(function()
    local ok, err = pcall(table.sort, { 3, 2, 1 }, function(a, b)
      task.sleep(0)
      return a < b
    end)
    assert.is_false(ok)
    assert.matches("task.sleep: cannot wait here", err)
  end))

  it("are refused at module top level run by require", rt.run(function()
    package.preload["spec_waits_at_top"] = function()
      task.sleep(0)
    end
    local ok, err = pcall(require, "spec_waits_at_top")
    package.preload["spec_waits_at_top"] = nil
    assert.is_false(ok)
    assert.matches("cannot wait here", err)
  end))

  it("are refused in a plain coroutine inside a task", rt.run(function()
    local co = coroutine.create(function() task.sleep(0) end)
    local ok, err = coroutine.resume(co)
    assert.is_false(ok)
    assert.matches("not a moonline task", err)
  end))

  it("spawn outside a task says so", function()
    local ok, err = pcall(task.spawn, function() end)
    assert.is_false(ok)
    assert.matches("task.spawn: not inside a task", err)
  end)
end)

describe("channels", function()
  it("pass values in order with back-pressure, and close wakes receivers", rt.run(function()
    local ch = task.channel(2)
    local got = {}
    task.scope(function()
      task.spawn(function()
        for i = 1, 10 do assert(ch:send(i)) end
        ch:close()
      end)
      task.spawn(function()
        while true do
          local v = ch:recv()
          if v == nil then break end
          got[#got + 1] = v
        end
      end)
    end)
    assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, got)
    assert.same({ nil, "closed" }, { ch:send(1) })
  end))

  it("deadlock is detected, reported and ends as a cancellation", function()
    local ok, err = rt.outcome(function()
      local ch = task.channel()
      ch:recv() -- nobody will ever send
    end)
    assert.is_false(ok)
    assert.is_true(task.is_cancelled(err))
    assert.equal("deadlock", err.reason)
  end)
end)

describe("virtual clock", function()
  it("advance moves time and fires timers from the loop", rt.run(function()
    local t0 = task.now()
    local fired = false
    task.spawn(function() task.sleep(10); fired = true end)
    task.yield()
    task.clock.advance(9.9)
    assert.is_false(fired)
    task.clock.advance(0.2)
    task.yield()
    assert.is_true(fired)
    assert.near(10.1, task.now() - t0, 1e-6)
  end, { virtual = true }))

  it("a repeating timer counts expirations", rt.run(function()
    local tm = task.timer(1, 1)
    assert.equal(1, tm:wait())
    task.clock.advance(3)
    assert.equal(3, tm:wait())
    tm:close()
    assert.same({ nil, "closed" }, { tm:wait() })
  end, { virtual = true }))
end)

describe("virtual clock with live I/O", function()
  it("still jumps when a real handle keeps the loop alive", rt.run(function()
    local uv = require "luv"
    local server = uv.new_tcp()
    assert(server:bind("127.0.0.1", 0))
    assert(server:listen(8, function() end))
    task.defer(function() server:close() end)
    local t0 = task.now()
    task.sleep(3600) -- an hour of virtual time, while the listener stays open
    assert.near(3600, task.now() - t0, 1e-6)
  end, { virtual = true }))
end)

describe("real clock", function()
  -- A timer already due when libuv starts a turn fires before the poll; the
  -- task it wakes must not then wait for the poll's next deadline (30 s here).
  it("wakes a task on time even when the next timer is far away", rt.run(function()
    local far = task.spawn(function() task.sleep(30) end)
    task.yield()
    local t0 = task.now()
    for _ = 1, 3 do task.sleep(0) end
    local waited = task.now() - t0
    far:cancel()
    assert.is_true(waited < 1, ("three sleep(0) took %.3f s"):format(waited))
  end))

  it("wakes a task posted from a luv timer callback promptly", rt.run(function()
    local uv = require "luv"
    local ch = task.channel()
    local far = task.spawn(function() task.sleep(30) end)
    local h = uv.new_timer()
    task.defer(function() h:close() end)
    local t0 = task.now()
    h:start(0, 0, function() ch:send("tick") end)
    assert.equal("tick", ch:recv())
    assert.is_true(task.now() - t0 < 1, ("took %.3f s"):format(task.now() - t0))
    far:cancel()
  end))
end)
