-- sipp (Debian's sip-tester) for the interop specs: its ports, its command
-- line, as the caller (waited for) or in the background (a task), from a task:
-- the loop keeps running.
--   local sipp = require "support.sipp"
--   local ports = sipp.ports(15060)     -- this spec file's own port range
--   it("…", rt.run(function()
--     if sipp.pending_if_missing(pending) then return end
--     local port, sipp_port, media_port = ports()
--     … a listener on port …
--     local code, out, err = sipp.call("spec/sipp/uac_call.xml", port, sipp_port, media_port)
--     sipp.eventually(function() return seen.state end, 10, "the end of the call")
--   or sipp as the callee, in the background:
--     local peer = sipp.start("spec/sipp/uas_answer.xml", port, media_port)
--     … sip.dial(…) …
--     local code, _, err = sipp.wait(peer)
-- Options (opts) of call and start, all optional:
--   calls = n          -m (1)
--   rate = r           -r (none)
--   limit = n          -l (call: 1; start: none)
--   transport = "t1"   -t (UDP when none)
--   timeout = s        -timeout s; sipp is killed 10 s after that (20)
--   trace = false      no -trace_err -error_file (traced by default)
--   error_file = name  where -trace_err writes (a new os.tmpname())
--   extra = { … }      more options, before the target
--   target = "h:p"     start: the UAS to call (none: sipp waits for a call)
--   tmp = true         the scenario is a temporary file: removed once sipp ends
local task = require "moonline.task"
local process = require "support.process"
local files = require "support.files"

local _M = {}

_M.PATH = "/usr/bin/sipp"
_M.HOST = "127.0.0.1"
_M.MISSING = "sipp is not installed (apt-get install sip-tester)"

local function installed(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

--- available: true when sipp is installed
_M.available = installed(_M.PATH)

--- pending_if_missing(pending) -> true when sipp is not installed, after
-- marking the case pending. pending: busted's, which support modules do not see.
function _M.pending_if_missing(pending)
  if not _M.available then
    pending(_M.MISSING)
    return true
  end
end

--- ports(base, { spread = 20, step = 4, offsets = { 0, 1, 2 } }) -> next()
-- A spec file's port allocator: the first block is at
-- base + (os.time() % 100) * spread, so that a rerun soon after does not meet
-- the previous run's sockets; each next() moves on by step and returns the
-- ports at offsets from there (engine SIP, sipp SIP, sipp media by default).
-- Give each spec file a base of its own.
function _M.ports(base, opts)
  opts = opts or {}
  local step, offsets = opts.step or 4, opts.offsets or { 0, 1, 2 }
  local next_port = base + (os.time() % 100) * (opts.spread or 20)
  return function()
    next_port = next_port + step
    local p = {}
    for i, o in ipairs(offsets) do p[i] = next_port + o end
    return unpack(p)
  end
end

--- args(scenario, sipp_port, media_port, opts) -> sipp's arguments (see opts above)
function _M.args(scenario, sipp_port, media_port, opts)
  opts = opts or {}
  local HOST = _M.HOST
  local args = { "-sf", scenario }
  local function add(...)
    for _, a in ipairs({ ... }) do args[#args + 1] = a end
  end
  if opts.transport then add("-t", opts.transport) end
  add("-m", tostring(opts.calls or 1))
  if opts.rate then add("-r", tostring(opts.rate)) end
  if opts.limit then add("-l", tostring(opts.limit)) end
  add("-i", HOST, "-p", tostring(sipp_port), "-mi", HOST, "-mp", tostring(media_port),
      "-nostdin", "-timeout", tostring(opts.timeout or 20) .. "s", "-timeout_error")
  if opts.trace ~= false then add("-trace_err", "-error_file", opts.error_file or os.tmpname()) end
  add(unpack(opts.extra or {}))
  if opts.target then add(opts.target) end
  return args
end

local function run(scenario, sipp_port, media_port, opts)
  local code, out, err = process.run(_M.PATH, _M.args(scenario, sipp_port, media_port, opts),
                                     { timeout = (opts.timeout or 20) + 10 })
  if opts.tmp then os.remove(scenario) end
  return code, out, err
end

--- call(scenario, engine_port, sipp_port, media_port, opts) -> exit code, stdout, stderr
-- sipp as the caller (UAC) of the engine at HOST:engine_port, waited for.
function _M.call(scenario, engine_port, sipp_port, media_port, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.limit = o.limit or 1
  o.target = _M.HOST .. ":" .. engine_port
  return run(scenario, sipp_port, media_port, o)
end

--- start(scenario, sipp_port, media_port, opts) -> a task whose result is
-- sipp's exit code, stdout, stderr (see wait). Without opts.target sipp is the
-- callee: start returns once it has had the time to bind its socket.
function _M.start(scenario, sipp_port, media_port, opts)
  opts = opts or {}
  local t = task.spawn_supervised(function()
    return run(scenario, sipp_port, media_port, opts)
  end)
  if not opts.target then task.sleep(0.3) end -- sipp binds its socket
  return t
end

--- wait(t) -> exit code, stdout, stderr of a sipp started with start
function _M.wait(t)
  local ok, code, out, err = t:wait()
  assert(ok, tostring(code))
  return code, out, err
end

--- scenario(name, subst) -> a temporary copy of spec/sipp/<name> with
-- placeholders filled in: xml:gsub(k, v) for each k, v of subst
function _M.scenario(name, subst)
  local xml = files.slurp("spec/sipp/" .. name)
  for k, v in pairs(subst or {}) do xml = xml:gsub(k, v) end
  return files.tmpfile(xml)
end

--- eventually(pred, seconds, what): wait until pred() holds, polling every
-- 10 ms, at most seconds (10); fails "timed out waiting for <what>"
function _M.eventually(pred, seconds, what)
  local ok = task.with_timeout(seconds or 10, function()
    while not pred() do task.sleep(0.01) end
  end)
  assert(ok, "timed out waiting for " .. (what or "a condition"))
end

return _M
