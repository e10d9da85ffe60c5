-- moonline.speech: SpeechHandle — one reply of an agent, from creation to
-- done or interrupted. Its state lives in a C lifecycle object owned by the
-- activity that plays it: created -> scheduled -> playing -> done.
-- speech:wait() never raises: a failure is on speech.error.
local task = require "moonline.task"

local setmetatable = setmetatable

local _M = {}

local CREATED, SCHEDULED, PLAYING, DONE = 0, 1, 2, 3
_M.CREATED, _M.SCHEDULED, _M.PLAYING, _M.DONE = CREATED, SCHEDULED, PLAYING, DONE

_M.PRIORITY = { low = 1, normal = 2, high = 3 }

local SpeechHandle = {}
SpeechHandle.__index = SpeechHandle
_M.SpeechHandle = SpeechHandle

local next_id = 0

--- new(activity, opts) where opts = { priority = "low"|"normal"|"high",
-- allow_interruptions = bool, instructions =, tool_choice =, user_message = }
function _M.new(activity, opts)
  next_id = next_id + 1
  local priority = _M.PRIORITY[opts.priority or "normal"]
  if not priority then
    error("speech priority must be low, normal or high, got " .. tostring(opts.priority), 3)
  end
  return setmetatable({
    id = "speech_" .. next_id,
    activity = activity,
    priority = priority,
    allow_interruptions = opts.allow_interruptions ~= false,
    instructions = opts.instructions,
    tool_choice = opts.tool_choice,
    text = opts.text, -- say(): fixed text instead of an LLM reply
    interrupted = false,
    done = false,
    error = nil,
    steps = 0,
    obj = task.lifecycle("speech", activity.task),
    task = false, -- set when it plays (sized in: no rehash)
    _on_done = false,
  }, SpeechHandle)
end

function SpeechHandle:state()
  return self.obj:state()
end

--- wait(): until done or interrupted; never raises (except Cancelled for the
-- waiting task itself)
function SpeechHandle:wait()
  if not self.done then
    self.obj:wait(DONE)
  end
  return self
end

--- interrupt{force=}: stop it now (queued: never plays; playing: its task is
-- cancelled, tool calls record "cancelled"). Returns false when it does not
-- allow interruptions and force is not set.
function SpeechHandle:interrupt(opts)
  if self.done then return true end
  if not self.allow_interruptions and not (opts and opts.force) then
    return false
  end
  self.interrupted = true
  if self.task then
    self.task:cancel("interrupted")
  else
    self:_finish()
  end
  return true
end

function SpeechHandle:_advance(state)
  if self.obj:state() < state then
    self.obj:advance(state)
  end
end

--- _finish([err]): done (interrupted if it was interrupted); wakes waiters
function SpeechHandle:_finish(err)
  if self.done then return end
  self.done = true
  if err ~= nil then self.error = err end
  if self.obj:state() < DONE then
    self.obj:advance(DONE)
  end
  self.obj:close()
  local on_done = self._on_done
  if on_done then
    self._on_done = nil
    on_done(self)
  end
end

return _M
