-- moonline.agent: Agent and AgentTask classes.
--
--   local Weather = moonline.Agent:extend{ name = "Weather", instructions = "…" }
--   Weather:tool("lookup", "Look up the weather.", { city = { type = "string" } },
--                function(self, ctx, args) return "sunny in " .. args.city end)
--   function Weather:on_enter() self.session:generate_reply() end
--
--   local Confirm = moonline.AgentTask:extend{ instructions = "…" }
--   -- in a tool or hook:  local v = Confirm:new():run()
--   -- in the task:        self:complete("yes")  or  self:complete(ToolError("no"))
local task = require "moonline.task"
local chat = require "moonline.chat"
local tools = require "moonline.tools"
local context = require "moonline.context"

local setmetatable = setmetatable
local getmetatable = getmetatable
local rawget = rawget
local pairs = pairs
local error = error
local type = type

local _M = {}

local Agent = { name = "Agent", instructions = "" }
Agent.__index = Agent
Agent._tools = {}
Agent._tool_order = {}
_M.Agent = Agent

--- Agent:extend(fields) -> a subclass; fields become class defaults
-- (name, instructions, llm, …) or methods.
function Agent:extend(fields)
  local cls = {}
  for k, v in pairs(fields or {}) do
    cls[k] = v
  end
  cls.__index = cls
  cls._super = self
  cls._tools = setmetatable({}, { __index = self._tools })
  local order = {}
  for i, n in ipairs(self._tool_order) do order[i] = n end
  cls._tool_order = order
  return setmetatable(cls, self)
end

--- Agent:tool(name, description, params, fn): declare a tool on the class.
-- params: a JSON schema object, or the shorthand { field = { type = … }, … }
-- (all required unless optional = true). fn(self, ctx, args).
function Agent:tool(name, description, params, fn)
  if rawget(self, "_tools") == nil then
    error("Agent:tool: declare tools on a class (made with :extend), not on an instance", 2)
  end
  local t = tools.define(name, description, params, fn)
  if rawget(self._tools, name) == nil then
    local order = self._tool_order
    local present = false
    for _, n in ipairs(order) do
      if n == name then present = true end
    end
    if not present then order[#order + 1] = name end
  end
  self._tools[name] = t
  return self
end

--- Agent:new([opts]) -> instance. opts: instructions, chat_ctx, llm, tools
-- (extra tool definitions for this instance), and anything else kept as-is.
function Agent:new(opts)
  opts = opts or {}
  local obj = setmetatable({}, self)
  for k, v in pairs(opts) do
    if k ~= "chat_ctx" then obj[k] = v end
  end
  obj.chat_ctx = opts.chat_ctx and opts.chat_ctx:copy() or chat.new()
  if obj.init then obj:init(opts) end
  return obj
end

function _M.is_agent(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  while mt do
    if mt == Agent then return true end
    mt = getmetatable(mt)
  end
  return false
end

--- the tool named `name` for this instance (instance tools, then the class's)
function Agent:_tool(name)
  local extra = rawget(self, "tools")
  if extra then
    for _, t in ipairs(extra) do
      if t.name == name then return t end
    end
  end
  return self._tools[name]
end

--- the tool list sent to the LLM (built once per instance)
function Agent:_tool_specs()
  local specs = rawget(self, "_specs")
  if specs then return specs end
  specs = {}
  for _, name in ipairs(self._tool_order) do
    specs[#specs + 1] = self._tools[name].spec
  end
  for _, t in ipairs(rawget(self, "tools") or {}) do
    specs[#specs + 1] = t.spec
  end
  self._specs = specs
  return specs
end

---------------------------------------------------------------------------
-- AgentTask
---------------------------------------------------------------------------

local AgentTask = Agent:extend({ name = "AgentTask" })
AgentTask._is_task = true
_M.AgentTask = AgentTask

function _M.is_task(v)
  return _M.is_agent(v) and v._is_task == true
end

function AgentTask:new(opts)
  local obj = Agent.new(self, opts)
  obj._done = false
  obj._cond = task.condition()
  return obj
end

--- task:run() -> the value given to complete(v); raises the error given to
-- complete(err) (a ToolError when the session closed under it).
-- Only inside a tool call or an on_enter/on_exit hook (T1); once (T1).
function AgentTask:run()
  local ctx = context.current()
  if not ctx or not ctx.activity then
    error("AgentTask:run: only from a tool call or an on_enter/on_exit hook", 2)
  end
  if rawget(self, "_started") then
    error("AgentTask:run: a task can be run once", 2)
  end
  self._started = true
  return ctx.activity:_run_task(self)
end

--- task:complete(value_or_error): a ToolError (or StopResponse) completes it
-- with that error; anything else is the result. The first call wins.
function AgentTask:complete(v)
  if self._done then
    return false
  end
  self._done = true
  if tools.is_tool_error(v) or tools.is_stop(v) then
    self._error = v
  else
    self._value = v
  end
  self._cond:notify_all()
  if self._on_complete then self._on_complete() end
  return true
end

--- task:done() -> whether it completed
function AgentTask:done()
  return self._done
end

--- task:result() -> value | nil, err (nil, nil while it runs)
function AgentTask:result()
  if self._error ~= nil then return nil, self._error end
  return self._value
end

function AgentTask:_wait_done()
  while not self._done do
    self._cond:wait("agent task")
  end
end

return _M
