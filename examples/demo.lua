-- A short tour of Moonline's runtime: tasks, scopes and cleanup.
--
--   build/moonline run --ledger examples/demo.lua
--
-- The whole file runs as the main task. Every task lives in a scope; a scope
-- waits for its tasks, and when something fails it cancels the rest and
-- cleans up (defers and resources, last opened first) before the error leaves it.
local task = require "moonline.task"

local start = task.now()
local function say(fmt, ...)
  print(string.format("[%4.2fs] " .. fmt, task.now() - start, ...))
end

local function first_line(err)
  return (tostring(err):match("[^\n]*"))
end

---------------------------------------------------------------------------
say("1. Workers: a scope waits for every task spawned inside it")
task.scope(function()
  for i, seconds in ipairs({ 0.15, 0.05, 0.10 }) do
    task.spawn("worker " .. i, function()
      task.sleep(seconds)
      say("   worker %d woke after %.2fs", i, seconds)
    end)
  end
end)
say("   scope returned: all three workers are done")

---------------------------------------------------------------------------
say("2. Waiting for and cancelling a single task")
task.scope(function()
  local answer = task.spawn("answer", function()
    task.sleep(0.02)
    return 42
  end)
  local forever = task.spawn("forever", function()
    task.sleep(60)
  end)
  say("   answer:wait() -> %s, %s", answer:wait())
  forever:cancel("not needed")
  local ok, err = forever:wait()
  say("   forever:wait() -> %s, %s (cancelled: %s)", ok, tostring(err), task.is_cancelled(err))
end)

---------------------------------------------------------------------------
say("3. Defers run when their scope exits, last registered first")
task.scope(function()
  task.defer(function() say("   defer: close the file") end)
  task.defer(function() say("   defer: hang up the call") end)
  say("   body finished")
end)

---------------------------------------------------------------------------
say("4. Deadlines with task.with_timeout")
say("   fast job -> %s, %s", task.with_timeout(0.5, function()
  task.sleep(0.05)
  return "done"
end))
say("   slow job -> %s, %s", task.with_timeout(0.1, function()
  task.sleep(10)
  return "done"
end))

---------------------------------------------------------------------------
say("5. A timer feeding a channel")
task.scope(function()
  local ch = task.channel(2)
  task.spawn("ticker", function()
    local tick = task.timer(0.05, 0.05) -- a resource: closed with this task's scope
    for n = 1, 3 do
      tick:wait()
      ch:send("tick " .. n)
    end
    ch:close()
  end)
  task.spawn("reader", function()
    local msg = ch:recv() -- nil, "closed" once closed and drained
    while msg do
      say("   reader got %q", msg)
      msg = ch:recv()
    end
    say("   channel closed, reader done")
  end)
end)

---------------------------------------------------------------------------
say("6. An error in one task cancels its siblings; everything is cleaned up")
local ok, err = pcall(task.scope, function()
  local tick = task.timer(0.02, 0.02) -- owned by this scope
  task.defer(function() say("   defer: scope cleanup ran (timer closed after this)") end)
  task.spawn("listener", function()
    task.defer(function() say("   listener: cancelled, cleaning up") end)
    while tick:wait() do end
  end)
  task.spawn("sleeper", function()
    task.defer(function() say("   sleeper: cancelled, cleaning up") end)
    task.sleep(10)
    say("   sleeper: never printed")
  end)
  say("   live resources inside the scope: %d (the timer)", task.ledger().resources)
  task.spawn("faulty", function()
    task.sleep(0.1)
    error("lost the connection")
  end)
end)
say("   pcall(task.scope, ...) -> %s, %s", ok, first_line(err))

local l = task.ledger()
say("Done. Live resources=%d timers=%d (only the main task and its scope remain: tasks=%d scopes=%d)",
  l.resources, l.timers, l.tasks, l.scopes)
