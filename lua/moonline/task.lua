-- moonline.task: structured concurrency for moonline scripts.
--
-- Every piece of Lua work runs as a task (a coroutine owned by the C
-- scheduler). Tasks live in scopes; a scope waits for its children, and when
-- it ends by an error or a cancellation it cancels them first; then it unwinds
-- its exit stack (resources and defers) in reverse order. Waiting primitives
-- return their results, return `nil, err` on a runtime failure, and raise a
-- `Cancelled` error when the task is cancelled (again at every later
-- primitive until the cancelled scope is left).
local core = require "moonline.core"

local error = error
local getmetatable = getmetatable
local setmetatable = setmetatable
local tostring = tostring
local type = type
local xpcall = xpcall
local traceback = debug.traceback

local scope_open = core.scope_open
local scope_fail = core.scope_fail
local scope_step = core.scope_step
local log = core.log
local isyieldable = coroutine.isyieldable
local cannot_wait = core.cannot_wait
if not isyieldable then
  error("moonline needs LuaJIT 2.1 (coroutine.isyieldable)")
end

local _M = { _VERSION = core.version }

local STEP_DEFER, STEP_DONE = 1, 2 -- engine/runtime/ml_internal.h
local STATUS_OK, STATUS_ERROR, STATUS_CANCELLED = 1, 2, 3 -- enum ml_task_status
local SCOPE_PLAIN, SCOPE_TIMEOUT, SCOPE_SHIELD = 1, 2, 3 -- enum ml_scope_kind

---------------------------------------------------------------------------
-- Cancelled
---------------------------------------------------------------------------

local Cancelled = {}
Cancelled.__index = Cancelled
Cancelled.__tostring = function(e)
  return "cancelled: " .. tostring(e.reason)
end
_M.Cancelled = Cancelled

local function new_cancelled(reason, scope_id)
  return setmetatable({ reason = reason, scope = scope_id }, Cancelled)
end

function _M.is_cancelled(err)
  return getmetatable(err) == Cancelled
end

-- Resume values of a primitive -> results:
--   true, ...          -> ...
--   false, err         -> nil, err
--   nil, reason, scope -> raise Cancelled
local function await(ok, ...)
  if ok then
    return ...
  end
  if ok == nil then
    error(new_cancelled(...), 0)
  end
  return nil, (...)
end
_M.await = await

-- Fault injection for lifecycle specs: when armed, the n-th waiting
-- primitive reached (any task) raises instead of waiting.
local fault = { armed = false, count = 0, at = 0 }

-- Every waiting primitive first checks that the task can yield from here
-- (no C function such as require or table.sort in between).
local function waitable(name)
  if not isyieldable() then
    cannot_wait(name)
  end
  if fault.armed then
    fault.count = fault.count + 1
    if fault.count == fault.at then
      error("injected fault at yield point " .. fault.at .. " (" .. name .. ")", 3)
    end
  end
end
_M.waitable = waitable

--- inject_fault(n): make the n-th waiting primitive from now raise (n = 0:
-- only count). Returns how many were counted since the last call.
function _M.inject_fault(n)
  local counted = fault.count
  fault.armed = n ~= nil
  fault.count = 0
  fault.at = n or 0
  return counted
end

-- xpcall message handler: string errors get the traceback of the failing
-- frame, once (a re-raise through an enclosing scope keeps the first);
-- error objects (tables) are kept as they are.
local function on_error(e)
  if type(e) == "table" or type(e) == "userdata" then
    return e
  end
  e = tostring(e)
  if e:find("\nstack traceback:", 1, true) then
    return e
  end
  return traceback(e, 2)
end
--- on_error(e): the xpcall message handler moonline uses everywhere
_M.on_error = on_error

---------------------------------------------------------------------------
-- Scope exit protocol (runs inside the owning task; may yield)
---------------------------------------------------------------------------

-- finish(s, ok, ...) -> true, results... | false, err
local function finish(s, ok, ...)
  local err
  if not ok then
    err = ...
    scope_fail(s, getmetatable(err) ~= Cancelled, err)
  end
  while true do
    local what, a, b = scope_step(s)
    if what == STEP_DONE then
      if a ~= nil then
        return false, a -- the body's error or a failed child's
      end
      if ok then
        return true, ...
      end
      return false, err
    elseif what == STEP_DEFER then
      local dok, derr = xpcall(a, on_error)
      if not dok then
        log("error", "defer failed: " .. tostring(derr))
      end
    elseif what == nil then
      -- cancelled while waiting for the children on the normal path
      if ok then
        ok, err = false, new_cancelled(a, b)
      end
      scope_fail(s, false, err)
    end
  end
end

-- Outcome of a scope for its caller: results, or the error re-raised.
local function reraise(ok, ...)
  if ok then
    return ...
  end
  error((...), 0)
end

--- scope(fn, ...) -> fn's results. Runs fn in a new scope: tasks spawned inside
-- are waited for; if fn or a child fails, the others are cancelled and the
-- error is raised after everything is cleaned up.
function _M.scope(fn, ...)
  waitable("task.scope")
  local s = scope_open(SCOPE_PLAIN)
  return reraise(finish(s, xpcall(fn, on_error, ...)))
end

local function timeout_outcome(sid, ok, ...)
  if ok then
    return true, ...
  end
  local err = ...
  if getmetatable(err) == Cancelled and err.scope == sid then
    return nil, err.reason
  end
  error(err, 0)
end

--- with_timeout(seconds, fn, ...) -> true, fn's results | nil, "timeout"
function _M.with_timeout(seconds, fn, ...)
  waitable("task.with_timeout")
  local s, sid = scope_open(SCOPE_TIMEOUT, seconds)
  return timeout_outcome(sid, finish(s, xpcall(fn, on_error, ...)))
end

--- shield(fn, ...) -> fn's results. Cancellation from outside does not reach
-- fn; it is delivered when fn returns. The enclosing scopes' cleanup deadlines
-- still bound it.
function _M.shield(fn, ...)
  waitable("task.shield")
  local s = scope_open(SCOPE_SHIELD)
  return reraise(finish(s, xpcall(fn, on_error, ...)))
end

-- The body of every task: trampoline(body_scope, body_id, fn, ...).
local function task_outcome(ok, ...)
  if ok then
    return STATUS_OK, ...
  end
  local err = ...
  if getmetatable(err) == Cancelled then
    return STATUS_CANCELLED, err
  end
  return STATUS_ERROR, err
end

local function trampoline(s, _, fn, ...)
  local live, reason, id = core.check_cancel()
  if not live then
    -- cancelled before it ever ran: never start the body
    return task_outcome(finish(s, false, new_cancelled(reason, id)))
  end
  return task_outcome(finish(s, xpcall(fn, on_error, ...)))
end
core.set_trampoline(trampoline)

-- errors in luv callbacks registered by a task fail that task
require("moonline.luv_bridge").install(require("luv"), on_error)

---------------------------------------------------------------------------
-- Tasks
---------------------------------------------------------------------------

--- spawn([name,] fn, ...) -> task. Fail-fast: if it fails, its scope is
-- cancelled and the scope raises its error.
_M.spawn = core.spawn

--- spawn_supervised([name,] fn, ...) -> task. Its failure is only its own;
-- read it with t:wait() (logged if nobody waits).
_M.spawn_supervised = core.spawn_supervised

--- current() -> the running task (nil outside tasks)
_M.current = core.current

-- Wrap a C method of a class with its Lua half. The raw C function is kept
-- under "_raw_<name>" so loading this module twice never wraps twice.
local function wrap_method(class, name, make)
  local raw_name = "_raw_" .. name
  local raw = rawget(class, raw_name)
  if not raw then
    raw = class[name]
    class[raw_name] = raw
  end
  class[name] = make(raw)
end

--- wrap_method(class, name, make): give a C method its Lua half (for the
-- other modules that bind C classes: moonline.sip, …)
_M.wrap_method = wrap_method

local Task = core.methods("moonline.task")

local function wait_outcome(ok, ...)
  if ok == nil then
    error(new_cancelled(...), 0)
  end
  return ok, ...
end

--- t:wait() -> true, results... | false, err  (err is a Cancelled if it was cancelled)
wrap_method(Task, "wait", function(raw)
  return function(self)
    waitable("task:wait")
    return wait_outcome(raw(self))
  end
end)

--- t:cancel([reason]) cancels the task (and everything it started).

--- run([name,] fn, ...) -> fn's results. Runs fn as the root task and drives
-- the loop until it and everything it started are done; raises its error.
-- For plain `luajit` programs and specs; `moonline run FILE` does this itself.
function _M.run(...)
  return reraise(core.run(...))
end

--- defer(fn): run fn when the current scope exits (LIFO, protected).
_M.defer = core.defer

--- sleep(seconds)
function _M.sleep(seconds)
  waitable("task.sleep")
  return await(core.sleep(seconds))
end

--- yield(): let every other ready task run once.
function _M.yield()
  waitable("task.yield")
  return await(core.yield())
end

--- cancelled_through() -> whether a cancellation from outside the current
-- shield is pending (see condition:wait(what, true)); never raises, never waits.
_M.cancelled_through = core.cancelled_through

--- check_cancel(): raise Cancelled now if the task is cancelled.
function _M.check_cancel()
  waitable("task.check_cancel")
  return await(core.check_cancel())
end

--- now() -> seconds on the engine clock (monotonic; virtual in tests)
_M.now = core.now

--- ledger() -> { tasks, scopes, resources, timers, handles, leaks, abandoned, kinds = {} }
_M.ledger = core.ledger
--- tasks() -> { { name =, state =, waiting_for = }, ... }: every live task
-- and what it waits for (diagnostics: what holds up a close)
_M.tasks = core.tasks

--- set_cleanup_deadline([seconds]) -> previous: how long a scope's cleanup may take.
_M.set_cleanup_deadline = core.set_cleanup_deadline

---------------------------------------------------------------------------
-- Channels (wait queues underneath; values never copied)
---------------------------------------------------------------------------

local Channel = {}
Channel.__index = Channel

--- channel([capacity=1]) -> ch with ch:send(v), ch:recv(), ch:close()
function _M.channel(capacity)
  capacity = capacity or 1
  if type(capacity) ~= "number" or capacity < 1 then
    error("moonline.task.channel: capacity must be a number >= 1", 2)
  end
  return setmetatable({
    buf = {}, head = 1, tail = 0, cap = capacity, closed = false,
    recvq = core.waitq(), sendq = core.waitq(),
  }, Channel)
end

--- ch:send(v) -> true | nil, "closed". Waits while the channel is full.
function Channel:send(v)
  if v == nil then
    error("moonline.task.channel: cannot send nil", 2)
  end
  while true do
    if self.closed then
      return nil, "closed"
    end
    if self.tail - self.head + 1 < self.cap then
      break
    end
    waitable("channel:send")
    await(self.sendq:wait("channel send"))
  end
  self.tail = self.tail + 1
  self.buf[self.tail] = v
  self.recvq:wake(1)
  return true
end

--- ch:recv() -> v | nil, "closed". Waits while the channel is empty.
function Channel:recv()
  while self.tail < self.head do
    if self.closed then
      return nil, "closed"
    end
    waitable("channel:recv")
    await(self.recvq:wait("channel recv"))
  end
  local v = self.buf[self.head]
  self.buf[self.head] = nil
  self.head = self.head + 1
  self.sendq:wake(1)
  return v
end

--- ch:close(): wakes every waiter; buffered values can still be received.
function Channel:close()
  self.closed = true
  self.recvq:wake_all()
  self.sendq:wake_all()
end

--- ch:len() -> values buffered (LuaJIT ignores __len on tables: #ch is not it)
function Channel:len()
  return self.tail - self.head + 1
end
Channel.__len = Channel.len

---------------------------------------------------------------------------
-- Conditions and locks (wait queues underneath)
---------------------------------------------------------------------------

-- A condition is a C wait queue (moonline.condition) with the methods below.
--- condition() -> c with c:wait([what [, through_shield]]), c:notify([n=1]), c:notify_all().
-- A woken waiter re-checks its predicate (loop around wait).
-- through_shield: a cancellation of a scope outside the waiter's shield also
-- raises Cancelled here, once per scope (a supervisor that runs shielded but
-- must hear that it is being cancelled, to stop in order); task.cancelled_through()
-- tells whether one is pending without waiting.
_M.condition = core.condition

wrap_method(core.methods("moonline.condition"), "wait", function(raw)
  return function(self, what, through_shield)
    waitable("condition:wait")
    return await(raw(self, what or "condition", through_shield))
  end
end)

--- c:notify([n=1]) -> tasks woken; c:notify_all() -> tasks woken (C methods)

local Lock = {}
Lock.__index = Lock

--- lock() -> l with l:acquire(), l:release(), l:with(fn, ...) (released on any exit)
function _M.lock()
  return setmetatable({ held = false, cond = _M.condition() }, Lock)
end

function Lock:acquire()
  while self.held do
    self.cond:wait("lock")
  end
  self.held = true
end

function Lock:release()
  self.held = false
  self.cond:notify(1)
end

function Lock:with(fn, ...)
  self:acquire()
  return _M.scope(function(...)
    _M.defer(function() self:release() end)
    return fn(...)
  end, ...)
end

---------------------------------------------------------------------------
-- Resources: timers and TCP clients
---------------------------------------------------------------------------

--- timer(after [, every]) -> t with t:wait() -> expirations | nil, "closed"|"expired"; t:close()
_M.timer = core.timer
-- The Lua half of a waiting C method: check, call, turn resume values into results.
local function awaiting(prim)
  return function(raw)
    return function(...)
      waitable(prim)
      return await(raw(...))
    end
  end
end

wrap_method(core.methods("moonline.timer"), "wait", awaiting("timer:wait"))

--- tcp_connect(host, port [, {timeout=}]) -> sock | nil, err
--  sock:read() -> data | nil, "eof"|"closed"|err; sock:write(data) -> true | nil, err; sock:close()
function _M.tcp_connect(host, port, opts)
  waitable("task.tcp_connect")
  return await(core.tcp_connect(host, port, opts))
end
local Tcp = core.methods("moonline.tcp")
for _, name in ipairs({ "read", "write", "shutdown" }) do
  wrap_method(Tcp, name, awaiting("tcp:" .. name))
end

---------------------------------------------------------------------------
-- Lifecycle objects (the C half of sessions, activities, speech handles)
---------------------------------------------------------------------------

--- lifecycle(kind [, owner_task]) -> obj: states only move forward (obj:advance(n)),
-- obj:wait(n) waits until the state is >= n (or the object closed) and returns it,
-- obj:close() sets the final state task.LIFECYCLE_CLOSED once; the owner task's
-- scope closes it at the latest. Counted in the ledger under `kind`.
_M.lifecycle = core.lifecycle
_M.LIFECYCLE_CLOSED = core.LIFECYCLE_CLOSED
wrap_method(core.methods("moonline.lifecycle"), "wait", function(raw)
  return function(self, n)
    waitable("lifecycle:wait")
    while true do
      local st = self:state()
      if st >= n then
        return st
      end
      await(raw(self, n))
    end
  end
end)

---------------------------------------------------------------------------
-- Virtual clock (tests)
---------------------------------------------------------------------------

_M.clock = {
  --- use_virtual(on): switch the engine clock (only while no timer is armed)
  use_virtual = core.clock_virtual,
  is_virtual = core.clock_is_virtual,
  now = core.now,
  --- advance(seconds): move virtual time; timers fire from the loop
  advance = function(seconds)
    if core.current() then
      waitable("clock.advance")
    end
    return await(core.clock_advance(seconds))
  end,
}

return _M
