-- Waiting for a voice's events in specs (moonline.voice):
--   local ve = require "support.voice_events"
--   local ev, seen = ve.until_event(v, ve.of_type("playout", 1), 10)
local task = require "moonline.task"

local _M = {}

--- until_event(v, pred [, seconds = 20]) -> the first event that matches
-- pred, and every event seen up to it (in order); fails after `seconds`
function _M.until_event(v, pred, seconds)
  local seen = {}
  local ok, found = task.with_timeout(seconds or 20, function()
    while true do
      local ev = assert(v:next_event())
      seen[#seen + 1] = ev
      if pred(ev) then return ev end
    end
  end)
  assert(ok, "no such event; saw " .. #seen)
  return found, seen
end

--- of_type(type [, id]) -> a predicate for until_event
function _M.of_type(t, id)
  return function(ev) return ev.type == t and (id == nil or ev.id == id) end
end

return _M
