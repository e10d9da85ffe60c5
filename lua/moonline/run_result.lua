-- moonline.run_result: what session:run{user_input=} returns — the ordered
-- events of one turn (messages, function calls, their outputs, handoffs) —
-- and the assertions users write against it:
--
--   result.expect:next_event():is_function_call{ name = "lookup", arguments = { city = "Paris" } }
--   result.expect:next_event():is_function_call_output{ output = "sunny" }
--   result.expect:next_event():is_message{ role = "assistant" }
--   result.expect:no_more_events()
--   result.expect:contains_function_call{ name = "lookup" }
local cjson = require "cjson.safe"

local setmetatable = setmetatable
local type = type
local pairs = pairs
local ipairs = ipairs
local tostring = tostring
local error = error

local _M = {}

local RunResult = {}
RunResult.__index = RunResult

function _M.new(session)
  local r = setmetatable({ session = session, events = {}, done = false }, RunResult)
  r.expect = setmetatable({ result = r, cursor = 0 }, _M.Expect)
  return r
end

function RunResult:_event(item)
  local t = item.type
  if t == "message" and item.role ~= "assistant" then return end -- the user's own input is not an event
  self.events[#self.events + 1] = { type = t, item = item }
end

function RunResult:_finish()
  self.done = true
  return self
end

--- final_output(): the text of the last assistant message, or nil
function RunResult:final_output()
  for i = #self.events, 1, -1 do
    local ev = self.events[i]
    if ev.type == "message" then return ev.item.content end
  end
end

---------------------------------------------------------------------------
-- Assertions
---------------------------------------------------------------------------

local function describe_event(ev)
  local it = ev.item
  if ev.type == "message" then
    return ("message(%s: %q)"):format(it.role, tostring(it.content))
  elseif ev.type == "function_call" then
    return ("function_call(%s %s)"):format(it.name, it.arguments)
  elseif ev.type == "function_call_output" then
    return ("function_call_output(%s%s: %q)"):format(it.name, it.is_error and ", error" or "", tostring(it.output))
  elseif ev.type == "agent_handoff" then
    return ("agent_handoff(%s -> %s)"):format(tostring(it.old_agent), tostring(it.new_agent))
  end
  return ev.type
end

local function listing(result)
  local lines = {}
  for i, ev in ipairs(result.events) do
    lines[i] = ("  %d. %s"):format(i, describe_event(ev))
  end
  return #lines > 0 and table.concat(lines, "\n") or "  (no events)"
end

local function fail(result, msg, level)
  error(msg .. "\nevents of this run:\n" .. listing(result), (level or 1) + 1)
end

-- expected is a subset of got (tables compared field by field)
local function matches(expected, got)
  if type(expected) ~= "table" then return expected == got end
  if type(got) ~= "table" then return false end
  for k, v in pairs(expected) do
    if not matches(v, got[k]) then return false end
  end
  return true
end

local function check_fields(ev, want)
  local it = ev.item
  if want.name and it.name ~= want.name then return false, "name" end
  if want.role and it.role ~= want.role then return false, "role" end
  if want.content and it.content ~= want.content then return false, "content" end
  if want.contains and not (it.content or ""):find(want.contains, 1, true) then return false, "contains" end
  if want.output ~= nil and it.output ~= want.output then return false, "output" end
  if want.is_error ~= nil and (it.is_error or false) ~= want.is_error then return false, "is_error" end
  if want.arguments ~= nil then
    local args = cjson.decode(it.arguments or "")
    if not matches(want.arguments, args) then return false, "arguments" end
  end
  if want.new_agent ~= nil then
    local na = want.new_agent
    if type(na) == "string" then
      if it.new_agent ~= na then return false, "new_agent" end
    elseif it.new ~= na and getmetatable(it.new) ~= na then
      return false, "new_agent"
    end
  end
  return true
end

local EventAssert = {}
EventAssert.__index = EventAssert

local function is(kind)
  return function(self, want)
    local ev = self.event
    if ev.type ~= kind then
      fail(self.result, ("event %d: expected %s, got %s"):format(self.index, kind, describe_event(ev)), 2)
    end
    local ok, field = check_fields(ev, want or {})
    if not ok then
      fail(self.result, ("event %d: %s does not match on %s (wanted %s)"):format(
        self.index, describe_event(ev), field, cjson.encode(want) or "?"), 2)
    end
    return ev
  end
end

EventAssert.is_message = is("message")
EventAssert.is_function_call = is("function_call")
EventAssert.is_function_call_output = is("function_call_output")
EventAssert.is_agent_handoff = is("agent_handoff")

local Expect = {}
Expect.__index = Expect
_M.Expect = Expect

--- next_event() -> an assertion on the next event (fails if there is none)
function Expect:next_event()
  local r = self.result
  self.cursor = self.cursor + 1
  local ev = r.events[self.cursor]
  if not ev then
    fail(r, ("expected an event at position %d, but the run has only %d"):format(self.cursor, #r.events), 1)
  end
  return setmetatable({ result = r, event = ev, index = self.cursor }, EventAssert)
end

--- skip_next([n=1])
function Expect:skip_next(n)
  self.cursor = self.cursor + (n or 1)
  return self
end

function Expect:no_more_events()
  local r = self.result
  if self.cursor < #r.events then
    fail(r, ("expected no more events after position %d, but %d remain"):format(
      self.cursor, #r.events - self.cursor), 1)
  end
end

local function contains(kind)
  return function(self, want)
    local r = self.result
    for _, ev in ipairs(r.events) do
      if ev.type == kind and check_fields(ev, want or {}) then return ev end
    end
    fail(r, ("expected the run to contain a %s matching %s"):format(kind, cjson.encode(want or {}) or "?"), 1)
  end
end

Expect.contains_function_call = contains("function_call")
Expect.contains_function_call_output = contains("function_call_output")
Expect.contains_message = contains("message")
Expect.contains_agent_handoff = contains("agent_handoff")

return _M
