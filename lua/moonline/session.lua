-- moonline.session: AgentSession — owns the I/O (text here), the models, the
-- history, userdata and events, and the stack of activities: the active one
-- on top, paused ones under running AgentTasks.
--
-- The session is a task. Its activities run inside a shield so that a
-- cancellation from outside (the job ending) is turned into the ordered close
-- below instead of cancelling everything at once; the runtime's cleanup
-- deadline still bounds it.
--
-- Close (specs/lifecycle.md C1–C9): innermost first. The top AgentTask is
-- completed with ToolError("… cancelled") (C2), which resumes its caller; the
-- caller closes the task's activity and resumes its own (C3); repeat down to
-- the root activity, which is drained and closed. No activity starts once
-- close began (C4). Then the I/O is detached and `close` is emitted once (C7).
local task = require "moonline.task"
local chat = require "moonline.chat"
local tools = require "moonline.tools"
local events = require "moonline.events"
local activity_mod = require "moonline.activity"
local agent_mod = require "moonline.agent"
local run_result = require "moonline.run_result"
local session_audio = require "moonline.session_audio"
local core = require "moonline.core"

local setmetatable = setmetatable
local error = error
local tostring = tostring
local log = core.log

local _M = {}

local RUNNING, CLOSING = 1, 2 -- lifecycle states of the C object (0: starting)

local AgentSession = events.mixin({})
AgentSession.__index = AgentSession
_M.AgentSession = AgentSession

local DEFAULTS = {
  close_timeout = 4, -- seconds for the ordered close, within the runtime's 5 s cleanup deadline
  drain_timeout = 2, -- seconds for one activity to finish its current speech
  run_timeout = 30, -- seconds session:run() waits for the turn to settle
  max_unrecoverable_errors = 3, -- consecutive LLM failures before the session closes
}

local seq = 0

--- AgentSession.new{ llm =, userdata =, text_output = function(delta) end, close_timeout =, … }
function AgentSession.new(opts)
  opts = opts or {}
  local o = {}
  for k, v in pairs(DEFAULTS) do
    o[k] = opts[k] ~= nil and opts[k] or v
  end
  seq = seq + 1
  return setmetatable({
    id = opts.id or ("session_" .. seq),
    opts = o,
    llm = opts.llm,
    userdata = opts.userdata or {},
    text_output = opts.text_output,
    -- audio, in a room (start{room=}): the engines and their options
    stt = opts.stt,
    tts = opts.tts,
    audio_opts = {
      vad = opts.vad, tts_options = opts.tts_options,
      min_endpointing_delay = opts.min_endpointing_delay, max_endpointing_delay = opts.max_endpointing_delay,
      false_interruption_timeout = opts.false_interruption_timeout,
    },
    history = chat.new(),
    stack = {},
    agent_state = "initializing",
    user_state = "listening",
    pending = 0,
    llm_errors = 0,
    cond = task.condition(),
    cmds = {}, -- for the session task: close and handoff commands, in order
    cmd_head = 1,
    cmd_tail = 0,
    cmd_cond = task.condition(),
    started = false,
    closing = false,
    closed = false,
  }, AgentSession)
end

---------------------------------------------------------------------------
-- State and items
---------------------------------------------------------------------------

local STATE_EVENT = { agent_state = "agent_state_changed", user_state = "user_state_changed" }

-- agent_state / user_state: set it; listeners hear of a change
function AgentSession:_set_state(field, state)
  local old = self[field]
  if old == state then return end
  self[field] = state
  local ev = STATE_EVENT[field]
  if self:listens(ev) then
    self:emit(ev, { old_state = old, new_state = state })
  end
end

function AgentSession:_set_agent_state(state)
  self:_set_state("agent_state", state)
end

function AgentSession:_top()
  return self.stack[#self.stack]
end

-- session.current_agent: the agent running now (the top of the stack)
function AgentSession:_push(act)
  self.stack[#self.stack + 1] = act
  self.current_agent = act.agent
end

function AgentSession:_pop(act)
  for i = #self.stack, 1, -1 do
    if self.stack[i] == act then
      table.remove(self.stack, i)
      break
    end
  end
  local top = self.stack[#self.stack]
  self.current_agent = top and top.agent or self.current_agent
  self.cond:notify_all()
end

function AgentSession:_add_item(agent, item)
  self.history:add(item)
  if agent and item.type ~= "agent_handoff" then
    agent.chat_ctx:add(item)
  end
  if self:listens("conversation_item_added") then
    self:emit("conversation_item_added", { item = item })
  end
  local run = self._run
  if run then run:_event(item) end
  return item
end

function AgentSession:_output_text(delta, sp)
  local out = self.text_output
  if out then out(delta) end
  local audio = self.audio
  if audio and sp then audio:text(sp, delta) end
end

function AgentSession:_emit_error(err, source)
  self:emit("error", { error = err, source = source })
  if source == "llm" then
    self.llm_errors = self.llm_errors + 1
    if self.llm_errors >= self.opts.max_unrecoverable_errors and not self.closing then
      log("error", ("session %s: %d LLM failures in a row; closing"):format(self.id, self.llm_errors))
      self:_request_close({ reason = "error", error = err })
    end
  end
end

function AgentSession:_llm_ok()
  self.llm_errors = 0
end

-- pending work of the current turn: speeches, hooks, agent switches
function AgentSession:_pending(d)
  self.pending = self.pending + d
  if self.pending <= 0 then
    self.cond:notify_all()
  end
end

---------------------------------------------------------------------------
-- The session task
---------------------------------------------------------------------------

function AgentSession:_switch(agent)
  local old = self.stack[1]
  if #self.stack > 1 then
    log("error", ("session %s: handoff to %s refused: an AgentTask is running"):format(self.id, agent.name))
    return
  end
  if old then
    old:close({ force = false })
    self:_pop(old)
  end
  -- C4; the job ending (seen through the shield) counts as close begun
  if self.closing or task.cancelled_through() then return end
  self:_add_item(nil, { type = "agent_handoff", old_agent = old and old.agent.name, new_agent = agent.name,
                        old = old and old.agent, new = agent })
  local act = activity_mod.new(self, agent)
  self:_push(act)
  act:start()
end

function AgentSession:_close_all(cmd)
  local ok = task.with_timeout(self.opts.close_timeout, function()
    while #self.stack > 0 do
      local top = self.stack[#self.stack]
      if top.parent and agent_mod.is_task(top.agent) then
        -- C2: the task completes with a ToolError; its caller (a tool or hook
        -- of the activity below) closes it, pops it and resumes (C3)
        top.agent:complete(tools.ToolError(top.agent.name .. " cancelled"))
        while self.stack[#self.stack] == top do
          self.cond:wait("task activity close")
        end
      else
        top:close({ force = not cmd.drain })
        self:_pop(top)
      end
    end
  end)
  if not ok then
    -- a script holds on past the deadline (swallowed cancellation, a cleanup
    -- that waits): the C backstop closes what is left, innermost first
    log("warn", ("session %s: close took longer than %gs; abandoning what is left"):format(
      self.id, self.opts.close_timeout))
    for i = #self.stack, 1, -1 do
      local t = self.stack[i].task
      if t and t:status() ~= "done" then t:abandon("session close deadline") end
    end
    self.stack = {}
  end
end

-- The session task runs shielded (its activities are closed in order, not
-- cancelled all at once), but it waits for commands through the shield: a
-- cancellation from outside (the job ending) ends that wait, and becomes an
-- ordered close.
local function next_cmd(self)
  local cmds = self.cmds
  while cmds[self.cmd_head] == nil do
    local ok, err = pcall(self.cmd_cond.wait, self.cmd_cond, "session command", true)
    if not ok then
      if not task.is_cancelled(err) then error(err, 0) end
      self:_request_close({ reason = "job_shutdown" })
    end
  end
  local cmd = cmds[self.cmd_head]
  cmds[self.cmd_head] = nil
  self.cmd_head = self.cmd_head + 1
  return cmd
end

local function session_body(self, agent)
  local root = activity_mod.new(self, agent)
  self:_push(root)
  root:start()
  self.obj:advance(RUNNING)
  self:_set_agent_state("listening")
  self.cond:notify_all()
  local cmd
  while true do
    cmd = next_cmd(self)
    if cmd.kind == "close" then break end
    if cmd.kind == "handoff" then
      if cmd.from == self.stack[1] and not self.closing then
        self:_switch(cmd.agent)
      end
      self:_pending(-1)
    end
  end
  self.obj:advance(CLOSING)
  self:_close_all(cmd)
  self.reason = cmd.reason
  self.close_error = cmd.error
end

local function session_main(self, agent)
  self.obj = task.lifecycle("session")
  task.defer(function() self:_finished() end)
  if self.room then -- the voice lives as long as the session task
    local o = self.audio_opts
    o.stt, o.tts = self.stt, self.tts
    local audio, err = session_audio.open(self, self.room, o)
    if not audio then -- start() raises it
      self.reason, self.close_error = "error", "cannot join the room: " .. tostring(err)
      return
    end
    self.audio = audio
    task.defer(function() audio:close() end) -- when the session fails
  end
  task.shield(session_body, self, agent)
  -- the scope waits for its tasks before its defers run: stop the voice's
  -- input task first
  if self.audio then self.audio:close() end
end

-- Runs once the session task ends, however it ends (also after a script error).
function AgentSession:_finished()
  if self.closed then return end
  self.closing = true
  self.closed = true
  self.text_output = nil -- I/O detached (C5)
  self.stack = {}
  self.pending = 0
  self:_set_agent_state("idle")
  if self.obj then self.obj:close() end
  self.cond:notify_all()
  self:emit("close", { reason = self.reason or "error", error = self.close_error }) -- C7: once
end

local function send_cmd(self, cmd)
  self.cmd_tail = self.cmd_tail + 1
  self.cmds[self.cmd_tail] = cmd
  self.cmd_cond:notify(1)
end

function AgentSession:_request_close(cmd)
  if self.closing then return end
  self.closing = true
  cmd.kind = "close"
  send_cmd(self, cmd)
  self.cond:notify_all()
end

function AgentSession:_request_handoff(from, agent)
  self:_pending(1)
  send_cmd(self, { kind = "handoff", from = from, agent = agent })
end

---------------------------------------------------------------------------
-- Public API
---------------------------------------------------------------------------

--- start{ agent = A:new(), room = r }: starts the session as a task in the
-- current scope; returns once the agent's activity runs (its on_enter has
-- started). With a room, the session talks there: its voice joins the room
-- (VAD, and the session's stt and tts engines: moonline.voice).
function AgentSession:start(opts)
  local agent = opts and opts.agent
  if not agent_mod.is_agent(agent) then
    error("AgentSession:start: agent must be an Agent instance (A:new())", 2)
  end
  if self.started then
    error("AgentSession:start: the session was already started", 2)
  end
  self.started = true
  self.room = opts.room -- audio: the session's voice joins this room
  self.task = task.spawn_supervised("session " .. self.id, session_main, self, agent)
  while self.agent_state == "initializing" and not self.closed do
    self.cond:wait("session start")
  end
  if self.closed and self.close_error then
    error("AgentSession:start: " .. tostring(self.close_error), 2)
  end
  return self
end

-- While closing, speeches still go to the top activity, which interrupts
-- them at once (C6) unless the close drains.
local function top_activity(self, what)
  local top = self.stack[#self.stack]
  if not top then
    error("AgentSession:" .. what .. ": the session is not started", 3)
  end
  return top
end

--- generate_reply{ instructions =, user_input =, tool_choice =, allow_interruptions = } -> SpeechHandle
function AgentSession:generate_reply(opts)
  opts = opts or {}
  local act = top_activity(self, "generate_reply")
  if opts.user_input then
    self:_add_item(act.agent, { type = "message", role = "user", content = opts.user_input })
  end
  return act:new_speech({ instructions = opts.instructions, tool_choice = opts.tool_choice,
                          allow_interruptions = opts.allow_interruptions, priority = opts.priority })
end

--- say(text, { allow_interruptions = }) -> SpeechHandle
function AgentSession:say(text, opts)
  opts = opts or {}
  local act = top_activity(self, "say")
  return act:new_speech({ text = tostring(text), allow_interruptions = opts.allow_interruptions,
                          priority = opts.priority, source = "say" })
end

--- interrupt{ force = }: interrupts the current and queued speeches
function AgentSession:interrupt(opts)
  local top = self.stack[#self.stack]
  if not top then return end
  if top.current then top.current:interrupt(opts) end
  for p = 1, 3 do
    for _, sp in ipairs(top.queues[p]) do
      sp:interrupt(opts)
    end
  end
end

--- update_agent(agent): hand the session over to another agent
function AgentSession:update_agent(agent)
  if not agent_mod.is_agent(agent) then
    error("AgentSession:update_agent: expected an Agent instance", 2)
  end
  top_activity(self, "update_agent")
  if self.closing then -- C4: no activity starts once close began
    log("info", ("session %s: update_agent(%s) refused: the session is closing"):format(self.id, agent.name))
    return false
  end
  self:_request_handoff(self.stack[1], agent)
  return true
end

-- wait until closed (bounded: the ordered close plus the cleanup deadline)
local function wait_closed(self)
  if not self.task then return end
  self.task:wait()
end

--- close(): interrupts, then closes; returns when closed (C1: bounded)
function AgentSession:close(opts)
  self:_request_close({ reason = (opts and opts.reason) or "user_initiated", drain = false })
  wait_closed(self)
end

--- drain(): lets queued speeches play, then closes
function AgentSession:drain()
  self:_request_close({ reason = "user_initiated", drain = true })
  wait_closed(self)
end

--- shutdown{ drain = true }: starts closing and returns at once
function AgentSession:shutdown(opts)
  local drain = not (opts and opts.drain == false)
  self:_request_close({ reason = "user_initiated", drain = drain })
end

--- wait_idle([seconds]) -> true | nil, "timeout": waits until what the
-- session is doing (the greeting of on_enter, a turn: speeches, hooks,
-- handoffs) has settled, or the session closed. A tool waiting for an
-- AgentTask's user does not count.
local function wait_settled(self)
  while self.pending > 0 and not self.closed do
    self.cond:wait("session idle")
  end
end

function AgentSession:wait_idle(seconds)
  if self.pending <= 0 or self.closed then return true end -- nothing to wait for: no timer either
  local ok = task.with_timeout(seconds or self.opts.run_timeout, wait_settled, self)
  if not ok then return nil, "timeout" end
  return true
end

--- run{ user_input = "…" } -> RunResult: one text turn, for tests. Speaks
-- after what is already going on (an on_enter greeting), then waits until
-- every speech, hook and handoff the turn caused has settled (bounded).
function AgentSession:run(opts)
  local text = opts and opts.user_input
  if type(text) ~= "string" then
    error("AgentSession:run: user_input must be a string", 2)
  end
  if self.closing then
    error("session closed", 2)
  end
  if self._run then
    error("AgentSession:run: another run is in progress", 2)
  end
  if not self:wait_idle(opts.timeout) then
    error("AgentSession:run: the session is still busy with an earlier turn", 2)
  end
  if self.closing then
    error("session closed", 2)
  end
  local result = run_result.new(self)
  self._run = result
  local ok, err = pcall(self._user_turn, self, text)
  if not ok then
    self._run = nil
    error(err, 0)
  end
  local settled = self:wait_idle(opts.timeout)
  self._run = nil
  if self.closing then -- C7: a run the close cut short fails
    error("session closed", 2)
  end
  if not settled then
    error(("AgentSession:run: the turn did not settle within %gs"):format(opts.timeout or self.opts.run_timeout), 2)
  end
  return result:_finish()
end

-- A user turn (typed, or transcribed: then the transcripts were reported
-- already): the hook may edit the message or stop the reply.
function AgentSession:_user_turn(text, transcribed)
  local act = top_activity(self, "run")
  local agent = act.agent
  local msg = { type = "message", role = "user", content = text }
  if not transcribed and self:listens("user_input_transcribed") then
    self:emit("user_input_transcribed", { transcript = text, is_final = true })
  end
  local hook = agent.on_user_turn_completed
  if hook then
    local ok, err = pcall(hook, agent, agent.chat_ctx, msg)
    if not ok then
      if tools.is_stop(err) then
        self:_add_item(agent, msg)
        return
      end
      if task.is_cancelled(err) then error(err, 0) end
      log("error", ("session %s: %s.on_user_turn_completed failed: %s"):format(self.id, agent.name, tostring(err)))
      self:_emit_error(err, "on_user_turn_completed")
    end
  end
  self:_add_item(agent, msg)
  act:new_speech({ source = "user_turn" })
end

return _M
