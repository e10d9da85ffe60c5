-- moonline.session_audio: the audio side of an AgentSession in a room
-- (specs/lifecycle.md I1–I5). The session's voice (moonline.voice: an
-- endpoint in the room with VAD, STT and TTS in C) reports events; this file
-- turns them into user turns and interruptions, and plays the agent's
-- speeches through it. Audio never enters Lua.
--
--   I1  VAD start (the VAD's own minimum duration) while interruptible agent
--       speech plays: playout pauses within a frame; once the user's speech
--       has words it is an interruption (the speech is cut; the spoken part,
--       not the unspoken text, stays in the history). Without STT there are
--       no words to wait for: the VAD start interrupts at once.
--   I2  allow_interruptions = false: the user's speech does not touch it.
--   I3  no words within false_interruption_timeout after the user stopped:
--       the paused speech resumes where it paused.
--   I4  end of turn: VAD silence (the VAD's min_silence_ms) plus
--       min_endpointing_delay with a final transcript completes the turn;
--       without a transcript yet, it waits for one up to
--       max_endpointing_delay.
--   I5  tool results are recorded whatever happens to the speech (activity).
local task = require "moonline.task"
local core = require "moonline.core"

local concat = table.concat
local log = core.log
local now = task.now

local _M = {}

local DEFAULTS = {
  min_endpointing_delay = 0.5, -- s of silence after the VAD's end edge before the turn completes
  max_endpointing_delay = 3.0, -- s to wait for a final transcript after the end edge
  false_interruption_timeout = 2.0, -- s after the user stopped without words: resume the speech
  sample_rate = 16000,
}

local Audio = {}
Audio.__index = Audio

local function has_words(text)
  return text ~= nil and text:find("%w") ~= nil
end

--- open(session, room, opts) -> Audio, in the current task's scope (the
-- session task's): the voice joins the room; the input task runs until the
-- session ends.
function _M.open(session, room, opts)
  opts = opts or {}
  local cfg = {}
  for k, v in pairs(DEFAULTS) do
    cfg[k] = opts[k] ~= nil and opts[k] or v
  end
  if cfg.max_endpointing_delay < cfg.min_endpointing_delay then
    cfg.max_endpointing_delay = cfg.min_endpointing_delay
  end
  local vopts = { stt = opts.stt, tts = opts.tts }
  for k, v in pairs(opts.vad or {}) do vopts[k] = v end
  for k, v in pairs(opts.tts_options or {}) do vopts[k] = v end
  local v, err = require("moonline.voice").open(room, vopts)
  if not v then return nil, err end
  local self = setmetatable({
    session = session,
    voice = v,
    cfg = cfg,
    has_stt = opts.stt ~= nil,
    cond = task.condition(),
    next_id = 0,
    speeches = {}, -- voice speech id -> playout record of a SpeechHandle
    by_speech = setmetatable({}, { __mode = "k" }), -- SpeechHandle -> record
    -- the user's turn in progress
    user_speaking = false,
    finals = {}, -- final transcripts of the turn, in order
    turn_words = false, -- the turn has words (interim or final)
    utterance_words = false, -- the current utterance has words
    awaiting_final = false, -- an utterance ended; its final transcript has not come
    turn_deadline = nil, -- when the turn completes (I4)
    turn_give_up = nil, -- when to stop waiting for a final transcript
    paused = nil, -- the record paused by possible interruption (I1/I3)
    resume_at = nil, -- when to resume it (I3)
    closed = false,
  }, Audio)
  self.input = task.spawn("session " .. session.id .. " audio", self._input_loop, self)
  return self
end

---------------------------------------------------------------------------
-- Output: the agent's speeches
---------------------------------------------------------------------------

-- Text is cut into sentences for the TTS as it streams in: the first
-- sentence plays while the LLM writes the rest.
local SENTENCE = "^.-[%.!?;:]+[\"')%]]*%s+()" -- the text up to a sentence end, and where the rest starts
local MAX_SEGMENT = 240

local function record_of(self, sp)
  local r = self.by_speech[sp]
  if r then return r end
  self.next_id = self.next_id + 1
  r = {
    id = self.next_id,
    sp = sp,
    pending = "", -- text not yet sent to the TTS
    segments = {}, -- { text =, item =, samples = (once synthesized) }
    done = false, -- the PLAYOUT event came
    played = 0,
    finished = false,
  }
  self.by_speech[sp] = r
  self.speeches[r.id] = r
  return r
end

local function send_segment(self, r, text)
  if not has_words(text) then
    if #r.segments > 0 then -- punctuation only: keep it with the previous segment's text
      local last = r.segments[#r.segments]
      last.text = last.text .. text
    end
    return
  end
  local ok, err = self.voice:speak(r.id, text)
  if ok then
    r.segments[#r.segments + 1] = { text = text } -- the voice's segment #r.segments - 1
  else
    log("warn", ("session %s: speech %s: %s"):format(self.session.id, r.sp.id, tostring(err)))
  end
end

--- text(sp, delta): more text of speech sp, as the LLM streams it
function Audio:text(sp, delta)
  local r = record_of(self, sp)
  local buf = r.pending .. delta
  while true do
    local cut = buf:match(SENTENCE)
    if not cut and #buf > MAX_SEGMENT then
      cut = buf:find("%s", MAX_SEGMENT / 2) -- a long run without a sentence end: cut at a space
    end
    if not cut then break end
    send_segment(self, r, buf:sub(1, cut - 1))
    buf = buf:sub(cut)
  end
  r.pending = buf
end

--- item(sp, item): the end of an LLM step whose text became this history
-- item: the rest of the text goes out, and an interruption rewrites the item
-- to what was spoken
function Audio:item(sp, item)
  self:flush(sp)
  local r = record_of(self, sp)
  for _, seg in ipairs(r.segments) do
    if seg.item == nil then seg.item = item end
  end
end

--- flush(sp): send what is left of the text (the end of an LLM step)
function Audio:flush(sp)
  local r = self.by_speech[sp]
  if not r then return end
  if r.pending ~= "" then
    local text = r.pending
    r.pending = ""
    send_segment(self, r, text)
  end
end

-- The part of each item that was spoken: whole segments up to `played`
-- samples, then the part of the cut segment up to its last whole word
-- (estimated from its share of the segment's audio).
local function rewrite_spoken(r, played)
  local spoken = {} -- item -> { text parts }
  local order = {}
  local left = played
  for _, seg in ipairs(r.segments) do
    local item = seg.item
    if item then
      if not spoken[item] then
        spoken[item] = {}
        order[#order + 1] = item
      end
      local n = seg.samples
      if n and left >= n then
        spoken[item][#spoken[item] + 1] = seg.text
        left = left - n
      elseif n and n > 0 and left > 0 then
        local part = seg.text:sub(1, math.floor(#seg.text * left / n))
        part = part:match("^(.*%S)%s") or "" -- whole words only
        spoken[item][#spoken[item] + 1] = part
        left = 0
      end
    end
  end
  for _, item in ipairs(order) do
    item.content = concat(spoken[item], " "):gsub("%s+", " "):gsub("^%s+", ""):gsub("%s+$", "")
    item.interrupted = true
  end
end

-- Called when the speech's playout ended (PLAYOUT event, or interrupt)
local function playout_ended(self, r, played, interrupted)
  if r.done then return end
  r.done = true
  r.played = played or r.played
  self.speeches[r.id] = nil
  if interrupted then rewrite_spoken(r, r.played) end
  if self.paused == r then
    self.paused = nil
    self.resume_at = nil
    self.voice:pause(false)
  end
  self.cond:notify_all()
end

--- finish(sp): no more text; waits until it has all been heard (PLAYOUT)
function Audio:finish(sp)
  local r = self.by_speech[sp]
  if not r or r.done then return end
  self:flush(sp)
  r.finished = true
  self.voice:finish(r.id)
  while not r.done and not self.closed do
    self.cond:wait("speech playout")
  end
end

--- stop(sp): the speech ends however it ends (a defer of the speech task):
-- if it is still playing, it is cut now and its history rewritten
function Audio:stop(sp)
  local r = self.by_speech[sp]
  if not r or r.done then return end
  if self.closed then
    playout_ended(self, r, r.played, true)
    return
  end
  local played = self.voice:interrupt(r.id)
  playout_ended(self, r, type(played) == "number" and played or r.played, true)
end

--- wait_for_playout(sp): until what the speech queued so far was heard
function Audio:wait_for_playout(sp)
  local r = self.by_speech[sp]
  if not r then return end
  self:flush(sp)
  local function all_synthesized()
    for _, seg in ipairs(r.segments) do
      if not seg.samples then return false end
    end
    return true
  end
  while not r.done and not self.closed do
    if all_synthesized() then
      local buffered = self.voice:stats().buffered or 0
      if buffered == 0 then return end
      task.sleep(buffered / self.cfg.sample_rate + 0.02)
    else
      self.cond:wait("speech synthesis")
    end
  end
end

---------------------------------------------------------------------------
-- Input: the user's turns and interruptions
---------------------------------------------------------------------------

local function set_user_state(self, state)
  self.session:_set_state("user_state", state)
end

-- The speech the user's voice would interrupt now, if any (I2: not one
-- that disallows interruptions).
local function interruptible(self)
  local top = self.session.stack[#self.session.stack]
  local sp = top and top.current
  if not sp or sp.done or not sp.allow_interruptions then return nil end
  local r = self.by_speech[sp]
  if not r or r.done then return nil end
  return r
end

local function interrupt_now(self, r)
  if self.paused == r then self.paused, self.resume_at = nil, nil end
  local s = self.session
  if s:listens("agent_interrupted") then s:emit("agent_interrupted", { speech_handle = r.sp }) end
  r.sp:interrupt() -- cancels the speech task; its defer cuts the audio (stop)
  self:stop(r.sp) -- and right now, whatever the task does next
  self.voice:pause(false)
end

local function on_speech_start(self)
  self.user_speaking = true
  self.utterance_words = false
  self.turn_deadline, self.turn_give_up = nil, nil -- the turn goes on
  self.resume_at = nil
  set_user_state(self, "speaking")
  local r = interruptible(self)
  if r then
    if self.has_stt then -- I1: pause until we know it has words (I3)
      if self.paused ~= r then
        self.voice:pause(true)
        self.paused = r
      end
    else
      interrupt_now(self, r)
    end
  end
end

local function on_speech_end(self)
  self.user_speaking = false
  set_user_state(self, "listening")
  local t = now()
  if self.has_stt then self.awaiting_final = true end
  self.turn_deadline = t + self.cfg.min_endpointing_delay
  self.turn_give_up = t + self.cfg.max_endpointing_delay
  if self.paused and not self.utterance_words then
    self.resume_at = t + self.cfg.false_interruption_timeout
  end
end

local function on_transcript(self, ev)
  local s = self.session
  local words = has_words(ev.text)
  if words then
    self.utterance_words = true
    self.turn_words = true
    if self.paused then interrupt_now(self, self.paused) end
  end
  if ev.final then
    self.awaiting_final = false
    if words then self.finals[#self.finals + 1] = ev.text end
  end
  if words and s:listens("user_input_transcribed") then
    s:emit("user_input_transcribed", { transcript = ev.text, is_final = ev.final })
  end
end

local function on_synthesized(self, ev)
  local r = self.speeches[ev.id]
  if not r then return end
  local seg = r.segments[ev.seg + 1] -- the voice counts segments from 0
  if seg then seg.samples = ev.samples end
  self.cond:notify_all()
end

-- I4: the user's turn is complete
local function complete_turn(self)
  local text = concat(self.finals, " ")
  self.finals = {}
  self.turn_words = false
  self.turn_deadline, self.turn_give_up = nil, nil
  if not has_words(text) then return end
  local s = self.session
  if s.closing then return end
  local ok, err = pcall(s._user_turn, s, text, true)
  if not ok then
    if task.is_cancelled(err) then error(err, 0) end
    log("error", ("session %s: user turn failed: %s"):format(s.id, tostring(err)))
  end
end

-- What the input loop waits for next, besides an event: the earliest deadline
local function next_deadline(self)
  local d
  if self.resume_at then d = self.resume_at end
  if self.turn_deadline and not self.user_speaking then
    local t = self.turn_deadline
    if self.awaiting_final then t = math.max(t, self.turn_give_up) end
    if not d or t < d then d = t end
  end
  return d
end

local function on_deadlines(self)
  local t = now()
  if self.resume_at and t >= self.resume_at then -- I3: a false interruption
    local r = self.paused
    self.paused, self.resume_at = nil, nil
    self.voice:pause(false)
    local s = self.session
    if r and s:listens("agent_false_interruption") then
      s:emit("agent_false_interruption", { speech_handle = r.sp })
    end
  end
  if self.turn_deadline and not self.user_speaking and t >= self.turn_deadline then
    if not self.awaiting_final or t >= self.turn_give_up then
      self.awaiting_final = false
      complete_turn(self)
    end
  end
end

local function dispatch(self, ev)
  local kind = ev.type
  if kind == "speech_start" then
    on_speech_start(self)
  elseif kind == "speech_end" then
    on_speech_end(self)
  elseif kind == "transcript" then
    on_transcript(self, ev)
    -- a final transcript may be what the end of turn was waiting for
    if ev.final and self.turn_deadline and not self.user_speaking then on_deadlines(self) end
  elseif kind == "synthesized" then
    on_synthesized(self, ev)
  elseif kind == "playout" then
    local r = self.speeches[ev.id]
    if r then playout_ended(self, r, ev.played, ev.interrupted) end
  elseif kind == "tts_error" then
    log("warn", ("session %s: TTS failed: %s"):format(self.session.id, tostring(ev.text)))
  end
end

local function wait_event(voice)
  return voice:next_event()
end

function Audio:_input_loop()
  local voice = self.voice
  while true do
    local ev, err
    local d = next_deadline(self)
    if d then
      local wait = d - now()
      if wait > 0 then
        local ok, e, e2 = task.with_timeout(wait, wait_event, voice)
        if ok then ev, err = e, e2 else ev = false end
      else
        ev = false
      end
    else
      ev, err = voice:next_event()
    end
    if ev == false then
      on_deadlines(self)
    elseif not ev or ev.type == "closed" then
      self:_closed(err or "room closed")
      return
    else
      dispatch(self, ev)
    end
  end
end

-- The room closed with the voice inside: nothing more will be heard or
-- played; whoever waits for a playout is released; the session closes.
function Audio:_closed(why)
  self.closed = true
  for _, r in pairs(self.speeches) do
    playout_ended(self, r, r.played, not r.finished)
  end
  self.cond:notify_all()
  local s = self.session
  log("info", ("session %s: the room closed (%s)"):format(s.id, tostring(why)))
  if not s.closing then s:_request_close({ reason = "participant_disconnected" }) end
end

--- close(): stop listening and speaking (the session's end)
function Audio:close()
  if self.voice_closed then return end
  self.voice_closed = true
  if self.input then
    self.input:cancel("session closed")
    self.input:wait()
    self.input = nil
  end
  self.closed = true
  for _, r in pairs(self.speeches) do
    playout_ended(self, r, r.played, true)
  end
  self.voice:close()
  self.cond:notify_all()
end

return _M
