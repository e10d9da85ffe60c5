-- Run a program from a task without blocking the engine loop (luv spawn +
-- pipes), bounded by a timeout: for specs that drive real peers (sipp, …).
--   local code, out, err = process.run("sipp", { "-sf", "x.xml", … }, { timeout = 30 })
local task = require "moonline.task"
local uv = require "luv"

local _M = {}

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
  local out, err = {}, {}
  local state = { code = nil, signal = nil, pending = 3 }
  local cond = task.condition()
  local function one_done()
    state.pending = state.pending - 1
    cond:notify_all()
  end
  local stdout, stderr = uv.new_pipe(false), uv.new_pipe(false)
  local handle, pid
  handle, pid = uv.spawn(cmd, { args = args or {}, stdio = { nil, stdout, stderr }, cwd = opts.cwd },
    function(code, signal)
      state.code, state.signal = code, signal
      handle:close()
      one_done()
    end)
  if not handle then
    stdout:close()
    stderr:close()
    error("cannot run " .. cmd .. ": " .. tostring(pid), 2)
  end
  collect(stdout, out, one_done)
  collect(stderr, err, one_done)
  return task.scope(function()
    -- however this ends (timeout, cancellation, error), the child is killed
    -- and reaped before the scope returns: cleanup runs shielded
    task.defer(function()
      if state.pending > 0 then
        uv.process_kill(handle, "sigkill")
        while state.pending > 0 do cond:wait("process kill") end
      end
    end)
    local finished = task.with_timeout(opts.timeout or 60, function()
      while state.pending > 0 do cond:wait("process " .. cmd) end
    end)
    if not finished then
      return nil, table.concat(out), table.concat(err) .. "\n(timeout)"
    end
    return state.code, table.concat(out), table.concat(err)
  end)
end

return _M
