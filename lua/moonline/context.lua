-- moonline.context: what a tool call or hook task is running for. Set by the
-- framework when it starts the task; read by AgentTask:run() (rule T1: a task
-- runs only from a tool call or on_enter/on_exit) and by tools (ctx).
local task = require "moonline.task"

local current = task.current
local defer = task.defer

local _M = {}

local by_task = setmetatable({}, { __mode = "k" })

--- set(ctx): the context of the running task, until the current scope exits
-- (call it at the top of the task's body). The entry is removed then: a weak
-- key alone does not free an entry whose value refers back to the task (a
-- hook's ctx.activity.hooks holds the hook's task), which kept every session
-- with an on_enter alive forever.
-- A context set in a nested scope of a task that has one (a tool call run
-- in the task of its speech) gives way to the outer one when that scope exits.
function _M.set(ctx)
  local t = current()
  local outer = by_task[t]
  by_task[t] = ctx
  defer(function() by_task[t] = outer end)
end

--- current() -> the context of the running task, or nil
function _M.current()
  local t = current()
  return t and by_task[t]
end

return _M
