-- moonline.context: what a tool call or hook task is running for. Set by the
-- framework when it starts the task; read by AgentTask:run() (rule T1: a task
-- runs only from a tool call or on_enter/on_exit) and by tools (ctx).
local task = require "moonline.task"

local current = task.current

local _M = {}

local by_task = setmetatable({}, { __mode = "k" })

--- set(ctx): the context of the running task
function _M.set(ctx)
  by_task[current()] = ctx
end

--- current() -> the context of the running task, or nil
function _M.current()
  local t = current()
  return t and by_task[t]
end

return _M
