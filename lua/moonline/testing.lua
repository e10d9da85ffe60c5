-- moonline.testing: test agents offline.
--
--   local llm = testing.ScriptedLLM{
--     { input = "weather in Paris?",
--       tool_calls = { { name = "lookup_weather", arguments = { location = "Paris" } } } },
--     { input = "sunny in Paris", content = "It is sunny in Paris.", delay = 0.05 },
--   }
--
-- A reply is chosen by the last message of the request: the user's text, the
-- output of the tool that just ran, or the instructions of generate_reply.
-- An entry without `input` answers anything else. `error = "…"` (with an
-- optional `status`) makes the call fail like a provider would.
local task = require "moonline.task"
local llm_mod = require "moonline.llm"
local cjson = require "cjson.safe"

local setmetatable = setmetatable
local getmetatable = getmetatable
local rawget = rawget
local ipairs = ipairs
local error = error
local pcall = pcall

local _M = {}

_M.RunResult = require "moonline.run_result"

---------------------------------------------------------------------------
-- ScriptedLLM
---------------------------------------------------------------------------

local ScriptedLLM = {}
ScriptedLLM.__index = ScriptedLLM

local Stream = {}
Stream.__index = Stream

local call_seq = 0

function _M.ScriptedLLM(entries)
  local by_input, default = {}, nil
  for i, e in ipairs(entries or {}) do
    if type(e) ~= "table" then
      error("ScriptedLLM: entry " .. i .. " must be a table", 2)
    end
    if e.input == nil then
      default = e
    else
      by_input[e.input] = by_input[e.input] or e
    end
  end
  return setmetatable({ by_input = by_input, default = default, calls = 0 }, ScriptedLLM)
end

local function last_text(messages)
  local m = messages[#messages]
  return m and m.content or ""
end

function ScriptedLLM:chat(request)
  self.calls = self.calls + 1
  self.last_request = request
  local key = last_text(request.messages or {})
  return setmetatable({
    entry = self.by_input[key] or self.default,
    key = key,
    phase = 0,
    t0 = task.now(),
    metrics = { ttft = nil, retries = 0, model = "scripted" },
  }, Stream)
end

function Stream:next()
  local e = self.entry
  if self.closed then return nil end
  if self.phase == 0 then
    self.phase = 1
    if e and e.delay then task.sleep(e.delay) end
    self.metrics.ttft = task.now() - self.t0
    if not e then
      return nil, llm_mod.error({ message = ("ScriptedLLM: no reply scripted for input %q"):format(self.key),
                                  kind = "protocol", retryable = false })
    end
    if e.error then
      return nil, llm_mod.error({ message = e.error, status = e.status, kind = "http", retryable = false })
    end
    self.calls = e.tool_calls or {}
    self.ci = 0
    if e.content then return { content = e.content } end
  end
  if self.phase == 1 then
    self.ci = self.ci + 1
    local tc = self.calls[self.ci]
    if tc then
      call_seq = call_seq + 1
      return { tool_call = { id = "call_" .. call_seq, name = tc.name,
                             arguments = type(tc.arguments) == "string" and tc.arguments
                                         or cjson.encode(tc.arguments or {}) } }
    end
    self.phase = 2
    self.metrics.duration = task.now() - self.t0
    self.metrics.usage = { prompt_tokens = 0, completion_tokens = 0, total_tokens = 0 }
    return { usage = self.metrics.usage }
  end
  return nil
end

function Stream:close()
  self.closed = true
end

---------------------------------------------------------------------------
-- mock_tools
---------------------------------------------------------------------------

--- mock_tools(agent_or_class, { name = fn, … } [, body]) -> restore()
-- Replaces the implementations of the named tools (fn(self, ctx, args)). With
-- a body function, runs it and restores afterwards, even on error.
function _M.mock_tools(agent, mocks, body)
  local class = rawget(agent, "_tools") and agent or getmetatable(agent)
  local saved = {}
  for name, fn in pairs(mocks) do
    local t = class._tools[name]
    if not t then
      error("mock_tools: " .. tostring(class.name) .. " has no tool '" .. name .. "'", 2)
    end
    saved[name] = rawget(class._tools, name) or false
    local copy = {}
    for k, v in pairs(t) do copy[k] = v end
    copy.fn = fn
    class._tools[name] = copy
  end
  local function restore()
    for name, t in pairs(saved) do
      class._tools[name] = t or nil
    end
  end
  if body then
    local ok, err = pcall(body)
    restore()
    if not ok then error(err, 0) end
  end
  return restore
end

return _M
