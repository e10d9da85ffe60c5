-- Run a program from a task without blocking the engine loop (luv spawn +
-- pipes), bounded by a timeout: for specs that drive real peers (sipp, …).
--   local code, out, err = process.run("sipp", { "-sf", "x.xml", … }, { timeout = 30 })
-- or start a long-running one (a proxy, a server) and stop it later:
--   local proc = process.start("kamailio", { "-DD", "-E", … })
--   …
--   local code, signal, out, err = proc:stop()
local task = require "moonline.task"
local uv = require "luv"

local _M = {}

-- The peers run without the sanitizer runtimes the ASan stage preloads into
-- luajit (LD_PRELOAD is inherited): they are not ours to instrument, and some
-- (baresip) misbehave with them.
local STRIPPED = { LD_PRELOAD = true, ASAN_OPTIONS = true, UBSAN_OPTIONS = true, LSAN_OPTIONS = true }

local function peer_env(extra)
  local env = {}
  for k, v in pairs(uv.os_environ()) do
    if not STRIPPED[k] and not (extra and extra[k]) then env[#env + 1] = k .. "=" .. v end
  end
  for k, v in pairs(extra or {}) do env[#env + 1] = k .. "=" .. v end
  return env
end
_M.peer_env = peer_env

local function collect(pipe, parts, done)
  pipe:read_start(function(err, data)
    if data then
      parts[#parts + 1] = data
    else
      pipe:close()
      done()
      if err then parts[#parts + 1] = "\n(read error: " .. tostring(err) .. ")" end
    end
  end)
end

--- run(cmd, args, { timeout = seconds, cwd = dir }) -> exit code, stdout, stderr
-- The process is killed (SIGKILL) if it outlives the timeout or the task is
-- cancelled; the result then says so (code nil, "timeout").
function _M.run(cmd, args, opts)
  opts = opts or {}
  return task.scope(function()
    -- started in this scope: however it ends (timeout, cancellation, error)
    -- the child is stopped and reaped before the scope returns
    local proc = _M.start(cmd, args, opts)
    local code, _, out, err = proc:wait(opts.timeout or 60)
    if code == nil then
      proc:stop(0) -- SIGKILL at once
      out, err = proc:output()
      return nil, out, err .. "\n(timeout)"
    end
    return code, out, err
  end)
end

-- ---- long-running processes ------------------------------------------------

local Process = {}
Process.__index = Process

-- wait until the process has exited (nil, "timeout" past timeout seconds),
-- then until its pipes are at EOF. A grandchild that kept them open (a
-- daemon's workers) does not hold this up for more than a second: the pipes
-- are closed from this side.
local function finish(self, timeout)
  local st = self._state
  if not st.exited then
    local exited = task.with_timeout(timeout, function()
      while not st.exited do st.cond:wait("process " .. self.cmd) end
    end)
    if not exited then return nil, "timeout" end
  end
  if st.pending > 0 then
    task.with_timeout(1, function()
      while st.pending > 0 do st.cond:wait("process pipes") end
    end)
    for _, pipe in ipairs({ self._stdout, self._stderr }) do
      if not pipe:is_closing() then
        pipe:read_stop()
        pipe:close()
        st.pending = st.pending - 1
      end
    end
  end
  return st.code, st.signal, table.concat(self._out), table.concat(self._err)
end

--- proc:running() -> true while the process has not exited
function Process:running()
  return not self._state.exited
end

--- proc:output() -> stdout, stderr so far
function Process:output()
  return table.concat(self._out), table.concat(self._err)
end

--- proc:wait([timeout=60]) -> exit code, signal, stdout, stderr | nil, "timeout"
-- Waits for the process to exit by itself; on timeout it keeps running.
function Process:wait(timeout)
  return finish(self, timeout or 60)
end

--- proc:stop([grace=2]) -> exit code, signal, stdout, stderr (as wait)
-- SIGTERM, then SIGKILL if it has not exited after grace seconds. Stopping a
-- process that has already exited just returns how it ended.
function Process:stop(grace)
  if not self._state.exited then
    uv.process_kill(self._handle, "sigterm")
    local code, signal, out, err = finish(self, grace or 2)
    if code ~= nil then return code, signal, out, err end
    uv.process_kill(self._handle, "sigkill")
  end
  return finish(self, 5)
end

--- start(cmd, args, { cwd = dir, env = { NAME = value } }) -> proc (see Process above)
-- The process belongs to the current scope: if it still runs when the scope
-- exits (normally, by an error, by cancellation), it is stopped then.
function _M.start(cmd, args, opts)
  opts = opts or {}
  local state = { pending = 3, exited = false, cond = task.condition() }
  local function one_done()
    state.pending = state.pending - 1
    state.cond:notify_all()
  end
  local stdout, stderr = uv.new_pipe(false), uv.new_pipe(false)
  local handle, pid
  handle, pid = uv.spawn(cmd, { args = args or {}, stdio = { nil, stdout, stderr }, cwd = opts.cwd,
                                env = peer_env(opts.env) },
    function(code, signal)
      state.code, state.signal, state.exited = code, signal, true
      handle:close()
      one_done()
    end)
  if not handle then
    stdout:close()
    stderr:close()
    error("cannot run " .. cmd .. ": " .. tostring(pid), 2)
  end
  local proc = setmetatable({ cmd = cmd, pid = pid, _handle = handle, _state = state, _stdout = stdout,
                              _stderr = stderr, _out = {}, _err = {} }, Process)
  collect(stdout, proc._out, one_done)
  collect(stderr, proc._err, one_done)
  task.defer(function() proc:stop() end)
  return proc
end

return _M
