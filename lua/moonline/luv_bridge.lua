-- moonline.luv_bridge: scripts may use luv directly on the engine's loop.
-- A callback registered from inside a task runs protected; if it raises, the
-- error is routed to that task (it fails with it, and its scope reacts as to
-- any failure) instead of ending the process. Loaded by moonline.task.
local core = require "moonline.core"

local current = core.current
local task_fail = core.task_fail
local select = select
local type = type
local xpcall = xpcall

local _M = {}

-- functions whose function arguments run elsewhere (another thread's VM):
-- they are serialised with string.dump and must stay untouched
local UNTOUCHED = { new_work = true, new_thread = true, queue_work = true, run = true, walk = true }

local on_error -- the xpcall handler of moonline.task, given to install()

local function guard(cb, owner)
  return function(...)
    local ok, err = xpcall(cb, on_error, ...)
    if not ok then
      task_fail(owner, err)
    end
  end
end

-- Re-pack the arguments with every function replaced by its guard.
local function guarded(owner, n, a, ...)
  if n == 0 then return end
  if type(a) == "function" then a = guard(a, owner) end
  return a, guarded(owner, n - 1, ...)
end

local function wrap(f)
  return function(...)
    local owner = current()
    if not owner then
      return f(...)
    end
    return f(guarded(owner, select("#", ...), ...))
  end
end

local function wrap_table(t)
  if rawget(t, "_moonline_bridged") then return end
  for name, f in pairs(t) do
    if type(f) == "function" and not UNTOUCHED[name] then
      t[name] = wrap(f)
    end
  end
  t._moonline_bridged = true
end

--- install(uv, handler): route callback errors of the luv module and of
-- every luv handle class to their tasks (idempotent). handler is the xpcall
-- message handler that adds the traceback.
function _M.install(uv, handler)
  on_error = handler
  wrap_table(uv)
  for key, mt in pairs(debug.getregistry()) do
    if type(key) == "string" and key:match("^uv_") and type(mt) == "table" and type(mt.__index) == "table" then
      wrap_table(mt.__index)
    end
  end
end

return _M
