-- moonline.activity: AgentActivity — one running agent. It owns a speech
-- queue (priorities high > normal > low, FIFO within one), plays one speech at
-- a time (each LLM round-trip is a step, tool calls in between), runs the
-- agent's hooks, and is paused while an AgentTask it started runs.
--
-- Structure (DESIGN.md §4): the activity is a task; its speeches are child
-- tasks, and a speech's tool calls are children of the speech. An AgentTask's
-- activity is spawned inside the tool call (or hook) that runs it, so nothing
-- it owns can outlive its caller.
local task = require "moonline.task"
local tools = require "moonline.tools"
local speech_mod = require "moonline.speech"
local context = require "moonline.context"
local agent_mod = require "moonline.agent"
local core = require "moonline.core"

local setmetatable = setmetatable
local ipairs = ipairs
local error = error
local tostring = tostring
local concat = table.concat
local remove = table.remove
local xpcall = xpcall
local log = core.log

local _M = {}

local RUNNING = 1 -- lifecycle states of the C object
local PLAYING, SCHEDULED = speech_mod.PLAYING, speech_mod.SCHEDULED

local Activity = {}
Activity.__index = Activity
_M.Activity = Activity

local call_seq = 0

function _M.new(session, agent, parent)
  return setmetatable({
    session = session,
    agent = agent,
    parent = parent, -- the activity paused under this one (AgentTask), or nil
    queues = { {}, {}, {} }, -- by priority: low, normal, high
    queued = 0,
    cond = task.condition(),
    task_lock = nil, -- tasks run by this activity's tools run one at a time (T4); made on first use
    paused = false,
    draining = false,
    force = false,
    running = false,
    closed = false,
    exited = false,
    current = nil, -- the speech playing
    hooks = {},
  }, Activity)
end

local on_error = task.on_error

local function name_of(agent)
  return agent and agent.name or "?"
end

---------------------------------------------------------------------------
-- Hooks: on_enter / on_exit run as tasks with a call context
---------------------------------------------------------------------------

-- A hook counts as pending work until its task ends. A hook task cancelled
-- before it first ran never reaches its body's defer, so the activity also
-- settles every record when it ends (activity_ended).
local function hook_settle(self, rec)
  if rec.settled then return end
  rec.settled = true
  self.session:_pending(-1)
end

local function run_hook(self, name, fn, rec)
  local session = self.session
  task.defer(function() hook_settle(self, rec) end)
  context.set({ session = session, activity = self, hook = name, userdata = session.userdata })
  local ok, err = xpcall(fn, on_error, self.agent)
  if not ok and not task.is_cancelled(err) then
    log("error", ("session %s: %s.%s failed: %s"):format(session.id, name_of(self.agent), name, tostring(err)))
    session:_emit_error(err, name)
  end
end

function Activity:_hook(name)
  local fn = self.agent[name]
  if not fn then return nil end
  self.session:_pending(1)
  local rec = { settled = false }
  local t = task.spawn_supervised(name, run_hook, self, name, fn, rec)
  local hooks = self.hooks
  hooks[#hooks + 1] = t
  hooks[t] = rec
  return t
end

---------------------------------------------------------------------------
-- Lifecycle
---------------------------------------------------------------------------

-- However the activity's task ends (also by an error or a cancellation at
-- any yield point): the speech it was playing and those still queued end
-- interrupted, so nothing (a turn waiting to settle) waits for them.
local function activity_ended(self)
  if self.on_ended then self.on_ended() end -- an AgentTask's caller counts as pending again first
  local sp = self.current
  self.current = nil
  if sp and not sp.done then
    sp:interrupt({ force = true })
    sp:_finish()
  end
  self:_drop_queue()
  for i = 1, #self.hooks do hook_settle(self, self.hooks[self.hooks[i]]) end
  self.closed = true
  self.cond:notify_all()
end

local function activity_main(self)
  task.defer(function() activity_ended(self) end)
  self.obj = task.lifecycle("activity")
  self.agent.session = self.session
  self.obj:advance(RUNNING)
  self.running = true
  self.cond:notify_all()
  self:_hook("on_enter")
  while true do
    local sp = self:_next_speech()
    if not sp then break end
    self:_play(sp)
  end
  -- stopping: hooks still running (on_enter waiting on something) are cancelled
  for _, h in ipairs(self.hooks) do
    h:cancel("activity closing")
  end
  for _, h in ipairs(self.hooks) do
    h:wait()
  end
  if not self.exited then
    self.exited = true -- on_exit at most once per activity (C3)
    local h = self:_hook("on_exit")
    if h then
      local done = task.with_timeout(self.session.opts.drain_timeout, function() return h:wait() end)
      if not done then h:cancel("on_exit timeout"); h:wait() end
    end
  end
  self.closed = true
  self.obj:close()
  self.cond:notify_all()
end

--- start(): spawn the activity in the current task's scope; returns once it runs
function Activity:start()
  self.task = task.spawn("activity:" .. name_of(self.agent), activity_main, self)
  while not self.running and self.task:status() ~= "done" do
    self.cond:wait("activity start")
  end
end

local function wait_task(t)
  return t:wait()
end

--- close{force=}: drain (play what is queued; force: interrupt the current
-- speech and drop the queue), run on_exit, and wait until closed (bounded).
function Activity:close(opts)
  if not self.task or self.task:status() == "done" then return end
  self.draining = true
  if opts and opts.force then
    self.force = true
    if self.current then self.current:interrupt({ force = true }) end
  end
  self.cond:notify_all()
  local ok = task.with_timeout(self.session.opts.drain_timeout, wait_task, self.task)
  if not ok then
    log("warn", ("session %s: activity %s did not drain in time; cancelling it"):format(
      self.session.id, name_of(self.agent)))
    self.task:cancel("drain timeout")
    self.task:wait()
  end
end

function Activity:_pause()
  self.paused = true
end

function Activity:_resume()
  self.paused = false
  self.cond:notify_all()
end

---------------------------------------------------------------------------
-- Speech queue
---------------------------------------------------------------------------

--- schedule(speech): queue it (an activity that is closing interrupts it at once)
function Activity:_schedule(sp)
  if self.draining and self.force or self.closed then
    sp:interrupt({ force = true })
    return sp
  end
  local q = self.queues[sp.priority]
  q[#q + 1] = sp
  self.queued = self.queued + 1
  sp:_advance(SCHEDULED)
  self.cond:notify_all()
  return sp
end

function Activity:_drop_queue()
  for p = 3, 1, -1 do
    local q = self.queues[p]
    while #q > 0 do
      remove(q, 1):interrupt({ force = true })
    end
  end
  self.queued = 0
end

function Activity:_next_speech()
  while true do
    if self.draining and (self.force or self.queued == 0) then
      self:_drop_queue() -- a speech that cannot be scheduled any more is interrupted (C6)
      return nil
    end
    if not self.paused and self.queued > 0 then
      for p = 3, 1, -1 do
        local q = self.queues[p]
        if #q > 0 then
          self.queued = self.queued - 1
          local sp = remove(q, 1)
          if not sp.done then return sp end
        end
      end
    else
      self.cond:wait("speech queue")
    end
  end
end

--- new_speech(opts) -> SpeechHandle, queued on this activity
function Activity:new_speech(opts)
  local session = self.session
  if self.closed then
    error("the activity of " .. name_of(self.agent) .. " is closed", 3)
  end
  local sp = speech_mod.new(self, opts)
  session:_pending(1)
  sp._on_done = function() session:_pending(-1) end
  if session:listens("speech_created") then
    session:emit("speech_created", { speech_handle = sp, source = opts.source or "generate_reply" })
  end
  return self:_schedule(sp)
end

function Activity:_play(sp)
  self.current = sp
  sp:_advance(PLAYING)
  sp.task = task.spawn_supervised("speech", self._generate, self, sp)
  local ok, err = sp.task:wait()
  if not ok then
    if task.is_cancelled(err) then
      sp.interrupted = true
    else
      sp.error = err
      log("error", ("session %s: speech of %s failed: %s"):format(self.session.id, name_of(self.agent), tostring(err)))
      self.session:_emit_error(err, "speech")
    end
  end
  self.current = nil
  sp:_finish()
  if sp.handoff and not self.session.closing then
    self.session:_request_handoff(self, sp.handoff)
  end
  if self.queued == 0 then
    self.session:_set_agent_state("listening")
  end
end

---------------------------------------------------------------------------
-- The reply pipeline: LLM steps with tool calls in between
---------------------------------------------------------------------------

function Activity:_llm()
  return self.agent.llm or self.session.llm
end

-- Reads a reply stream into parts (text) and calls; returns its error, if any.
local function read_stream(session, sp, stream, parts, calls)
  while true do
    local chunk, err = stream:next()
    if err then return err end
    if not chunk then return nil end
    if chunk.content then
      if #parts == 0 then session:_set_agent_state("speaking") end
      parts[#parts + 1] = chunk.content
      session:_output_text(chunk.content, sp)
    end
    if chunk.tool_call then calls[#calls + 1] = chunk.tool_call end
  end
end

-- One LLM round-trip; returns the text and the tool calls, or nil, err.
function Activity:_llm_step(sp, step)
  local session = self.session
  local agent = self.agent
  local llm = self:_llm()
  if not llm then
    return nil, "no LLM configured for " .. name_of(agent)
  end
  session:_set_agent_state("thinking")
  local request = {
    messages = agent.chat_ctx:to_messages(agent.instructions, step == 1 and sp.instructions or nil),
    tool_choice = step == 1 and sp.tool_choice or nil,
  }
  local specs = agent:_tool_specs()
  if #specs > 0 then request.tools = specs end
  local stream, err = llm:chat(request)
  if not stream then return nil, err end
  local parts, calls = {}, {}
  local ok, perr = pcall(read_stream, session, sp, stream, parts, calls)
  if ok then err = perr end
  stream:close()
  if stream.metrics and session:listens("metrics_collected") then
    session:emit("metrics_collected", { type = "llm_metrics", metrics = stream.metrics, speech_id = sp.id })
  end
  if not ok then error(perr, 0) end -- cancelled (interrupted) or a bug
  local text = concat(parts)
  if err then return nil, err, text end
  return text, calls
end

-- An assistant message of speech sp: in the history, and in a room the
-- end of its text (an interruption rewrites it to what was spoken)
local function said(self, sp, item)
  self.session:_add_item(self.agent, item)
  local audio = self.session.audio
  if audio then audio:item(sp, item) end
end

local function generate_text(self, sp)
  local session = self.session
  if sp.text then -- say(): fixed text
    session:_set_agent_state("speaking")
    session:_output_text(sp.text, sp)
    said(self, sp, { type = "message", role = "assistant", content = sp.text })
    return
  end
  while true do
    sp.steps = sp.steps + 1
    local text, calls, partial = self:_llm_step(sp, sp.steps)
    if not text then
      local err = calls
      if partial and partial ~= "" then
        said(self, sp, { type = "message", role = "assistant", content = partial, interrupted = true })
      end
      sp.error = err
      session:_emit_error(err, "llm")
      return
    end
    session:_llm_ok()
    if text ~= "" then
      said(self, sp, { type = "message", role = "assistant", content = text })
    end
    if #calls == 0 then return end
    local reply, handoff = self:_run_tools(sp, calls)
    if handoff then
      sp.handoff = handoff
      return
    end
    -- no new LLM round once the session is closing (C4) or the speech was cut
    if not reply or session.closing or sp.interrupted then return end
  end
end

-- In a room the speech lasts until it was heard (or cut: then the audio
-- stops at once and the history keeps what was spoken).
function Activity:_generate(sp)
  local audio = self.session.audio
  if not audio then return generate_text(self, sp) end
  task.defer(function() audio:stop(sp) end)
  generate_text(self, sp)
  audio:finish(sp)
end

---------------------------------------------------------------------------
-- Tools: every call gets exactly one recorded outcome and one event
---------------------------------------------------------------------------

-- text output has no playout to wait for: the text was delivered
local function no_playout() end

local function tool_ctx(self, sp, call)
  local session = self.session
  return {
    session = session,
    activity = self,
    agent = self.agent,
    speech_handle = sp,
    function_call = call,
    userdata = session.userdata,
    disallow_interruptions = function() sp.allow_interruptions = false end,
    wait_for_playout = session.audio and function() session.audio:wait_for_playout(sp) end or no_playout,
  }
end

local function call_tool(self, sp, call)
  local session = self.session
  local agent = self.agent
  local ctx = tool_ctx(self, sp, call)
  context.set(ctx)
  local tool = agent:_tool(call.name)
  if not tool then
    call.outcome = { output = "unknown tool: " .. tostring(call.name), is_error = true }
    return
  end
  local args, aerr = tools.parse_arguments(tool, call.arguments)
  if not args then
    call.outcome = { output = aerr, is_error = true } -- a clear error output, and no call
    return
  end
  local ok, r = xpcall(tool.fn, on_error, agent, ctx, args)
  if ok then
    if agent_mod.is_agent(r) then
      call.outcome = { agent = r }
    else
      call.outcome = { output = tools.encode_output(r) }
    end
  elseif task.is_cancelled(r) then
    call.outcome = { output = "cancelled", is_error = true, cancelled = true }
    error(r, 0) -- stay cancelled
  elseif tools.is_tool_error(r) then
    call.outcome = { output = r.message, is_error = true }
  elseif tools.is_stop(r) then
    call.outcome = { stop = true }
  else
    log("error", ("session %s: tool %s of %s failed: %s"):format(session.id, call.name, name_of(agent), tostring(r)))
    call.outcome = { output = "internal error", is_error = true }
  end
end

-- The only call of a step (the common case) runs in the speech's own task,
-- in a scope of its own, instead of a task of its own: one coroutine fewer
-- per tool call. It behaves as the supervised task would: what it spawns is
-- waited for, its failure is logged and is its own (the outcome is already
-- recorded), and only a cancellation of the speech goes through.
local function call_tool_here(self, sp, call)
  local ok, err = pcall(task.scope, call_tool, self, sp, call)
  if not ok then
    if task.is_cancelled(err) then
      if not core.check_cancel() then error(err, 0) end
    else
      log("error", ("session %s: tool %s of %s failed: %s"):format(self.session.id, call.name, name_of(self.agent),
                                                                    tostring(err)))
    end
  end
end

function Activity:_record_output(call)
  if call.recorded then return end
  call.recorded = true
  local o = call.outcome or { output = "cancelled", is_error = true, cancelled = true }
  call.outcome = o
  self.session:_add_item(self.agent, {
    type = "function_call_output", call_id = call.call_id, name = call.name,
    output = o.output or "", is_error = o.is_error or false, cancelled = o.cancelled or nil,
  })
end

local function run_calls(self, sp, list)
  local session = self.session
  -- outputs recorded in call order, after every call ended, even when the
  -- speech is interrupted (I5): this runs in the scope's cleanup
  task.defer(function()
    for _, call in ipairs(list) do self:_record_output(call) end
    if session:listens("function_tools_executed") then
      session:emit("function_tools_executed", { function_calls = list, speech_handle = sp })
    end
  end)
  if #list == 1 then
    call_tool_here(self, sp, list[1])
  else
    for _, call in ipairs(list) do
      task.spawn_supervised("tool:" .. call.name, call_tool, self, sp, call)
    end
  end
end

-- Runs the calls of one step concurrently; returns reply_required, handoff.
function Activity:_run_tools(sp, calls)
  local session = self.session
  local list = {}
  for i, tc in ipairs(calls) do
    call_seq = call_seq + 1
    local call = { call_id = tc.id or ("call_" .. call_seq), name = tc.name, arguments = tc.arguments or "{}" }
    list[i] = call
    session:_add_item(self.agent, { type = "function_call", call_id = call.call_id, name = call.name,
                                    arguments = call.arguments })
  end
  task.scope(run_calls, self, sp, list)
  local reply, handoff = false, nil
  for _, call in ipairs(list) do
    local o = call.outcome
    if o.agent then
      handoff = handoff or o.agent
    elseif not o.stop and o.output ~= nil then
      reply = true
    end
  end
  for _, call in ipairs(list) do
    if call.outcome.stop then reply = false end
  end
  return reply, handoff
end

---------------------------------------------------------------------------
-- AgentTask: run from a tool call or hook of this activity
---------------------------------------------------------------------------

-- What _run_task undoes when it ends, however it ends: the reverse of what
-- it did so far, each step protected like a defer of its own.
local function protected(fn, ...)
  local ok, err = xpcall(fn, on_error, ...)
  if not ok then log("error", "defer failed: " .. tostring(err)) end
end

local function close_child(child) child:close({ force = true }) end

local function undo_run_task(self, t, run)
  local session = self.session
  -- the caller counts as pending again before anything of the task's ends,
  -- so a turn cannot look settled while this unwinds
  protected(t._on_complete)
  t._on_complete = nil -- the task outlives the run (in the history): keep nothing of the run alive
  if run.started then protected(close_child, run.child) end
  if run.child then protected(session._pop, session, run.child) end
  if run.paused then protected(self._resume, self) end
  run.child = nil
  protected(self.task_lock.release, self.task_lock)
end

local function run_task_body(self, t)
  local session = self.session
  local lock = self.task_lock
  if not lock then
    lock = task.lock()
    self.task_lock = lock
  end
  lock:acquire()
  -- While the task runs, the caller waits for it (and its user), not for
  -- itself: it stops counting as pending work once the task's activity
  -- counts, and counts again the moment the task completes (complete()
  -- calls _on_complete synchronously), so a run cannot settle in between.
  local run = { waiting = false }
  local function stop_waiting()
    if run.waiting then run.waiting = false session:_pending(1) end
  end
  t._on_complete = stop_waiting
  task.defer(function() undo_run_task(self, t, run) end)
  if session.closing then
    -- the session is closing: the task cannot start; it completes at once (C2, C4)
    log("info", ("session %s: %s not started: the session is closing"):format(session.id, name_of(t)))
    t:complete(tools.ToolError(name_of(t) .. " cancelled: the session is closing"))
    error(t._error, 0)
  end
  self:_pause() -- T2: paused, its on_exit does not run
  run.paused = true
  session:_add_item(self.agent, { type = "agent_handoff", old_agent = name_of(self.agent), new_agent = name_of(t),
                                  old = self.agent, new = t })
  local start_len = #t.chat_ctx.items
  local child = _M.new(session, t, self)
  child.on_ended = stop_waiting -- also when the task's activity fails before the task completes
  session:_push(child)
  run.child = child
  child:start()
  run.started = true
  if not t._done then
    run.waiting = true
    session:_pending(-1)
  end
  t:_wait_done()
  child:close({ force = session.closing })
  -- T3: the task's new messages join the caller's context (tool calls only if asked)
  local items = t.chat_ctx.items
  for i = start_len + 1, #items do
    local it = items[i]
    if it.type == "message" or (t.merge_tool_calls and it.type:match("^function_call")) then
      self.agent.chat_ctx:add(it)
    end
  end
  session:_add_item(self.agent, { type = "agent_handoff", old_agent = name_of(t), new_agent = name_of(self.agent),
                                  old = t, new = self.agent })
  if t._error ~= nil then
    error(t._error, 0)
  end
  return t._value
end

function Activity:_run_task(t)
  return task.scope(run_task_body, self, t)
end

return _M
