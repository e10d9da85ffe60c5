-- Interop with Kamailio's dispatcher (DESIGN.md §5, scale-out): sipp calls
-- Kamailio, which spreads the calls over two engine instances and probes
-- them with OPTIONS; an engine that answers 503 (draining) gets no new calls.
--
--   sipp ──UDP──> kamailio (spec/kamailio/dispatcher.cfg) ──UDP──> engine A
--                                                         └──UDP──> engine B
--
-- The two engines are two SIP listeners in this process, on their own
-- sockets; Kamailio and sipp are child processes, waited for without blocking
-- the loop. Every case ends with the ledger empty.
local rt = require "runtime_helper"
local task = require "moonline.task"
local sip = require "moonline.sip"
local process = require "support.process"
local files = require "support.files"
local sipp = require "support.sipp"
local uv = require "luv"

local KAMAILIO = "/usr/sbin/kamailio"
local CFG = "spec/kamailio/dispatcher.cfg"
local SCENARIO = "spec/sipp/uac_short_call.xml"
local HOST = sipp.HOST
local PING_INTERVAL = 1 -- ds_ping_interval in dispatcher.cfg
local ports = sipp.ports(22060) -- Kamailio SIP, sipp SIP, sipp media

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local function pending_if_missing()
  for _, p in ipairs({ { KAMAILIO, "kamailio is not installed (apt-get install kamailio)" },
                       { sipp.PATH, sipp.MISSING } }) do
    if not exists(p[1]) then
      pending(p[2])
      return true
    end
  end
end

-- wait_until(seconds, what, fn): poll fn every 50 ms until it is true; fail
-- with what when it is not within seconds
local function wait_until(seconds, what, fn)
  local ok = task.with_timeout(seconds, function()
    while not fn() do task.sleep(0.05) end
  end)
  assert(ok, ("timed out after %g s waiting for %s"):format(seconds, what))
end

-- An engine instance: a SIP listener on a port of its own that answers every
-- call with a tone until the caller hangs up, and counts.
--   took: calls handed to the handler; done: calls ended by the caller's BYE;
--   other: how the other calls ended
local function engine(name)
  local e = { name = name, took = 0, done = 0, other = {} }
  e.listener = assert(sip.listen({ host = HOST, port = 0, handler = function(call)
    e.took = e.took + 1
    assert(call:answer())
    call:tone(440, 0.3)
    call:wait("ended")
    local _, reason, code = call:state()
    if reason == "remote hangup" then
      e.done = e.done + 1
    else
      e.other[#e.other + 1] = ("%s %s"):format(reason, code)
    end
  end }))
  e.port = e.listener:port()
  return e
end

local function rx(e)
  return e.listener:stats().rx
end

-- with_cluster(body): engines A and B, Kamailio in front of them, then
-- body(cluster); everything is stopped however body ends.
--   cluster.a, cluster.b      the engines
--   cluster.calls(n)          n calls from sipp through Kamailio; asserts
--                             they all succeed, and that they have all ended
--                             on the engines before returning
--   cluster.log()             Kamailio's log so far
local function with_cluster(body)
  -- the engines' accept loops are tasks of this scope: it waits for them
  -- once the inner scope has closed the listeners
  local a, b = engine("A"), engine("B")
  return task.scope(function()
    task.defer(function()
      a.listener:close()
      b.listener:close()
    end)
    local kam_port, sipp_port, media_port = ports()

    local list = files.tmpfile(("1 sip:%s:%d\n1 sip:%s:%d\n"):format(HOST, a.port, HOST, b.port))
    local rundir = assert(uv.fs_mkdtemp((os.getenv("TMPDIR") or "/tmp") .. "/moonline-kamailio-XXXXXX"))
    task.defer(function()
      os.remove(list)
      local dir = uv.fs_scandir(rundir)
      local name = dir and uv.fs_scandir_next(dir)
      while name do
        os.remove(rundir .. "/" .. name)
        name = uv.fs_scandir_next(dir)
      end
      uv.fs_rmdir(rundir)
    end)

    local kam = process.start(KAMAILIO, {
      "-DD", "-E", "-f", CFG, "-Y", rundir, "-P", rundir .. "/kamailio.pid", "-m", "32", "-M", "8",
      "-A", ("LISTEN=udp:%s:%d"):format(HOST, kam_port), "-A", ('DS_LIST="%s"'):format(list) })
    local function log() return select(2, kam:output()) end
    -- up once it has sent its first OPTIONS to both engines
    local ok = task.with_timeout(10, function()
      while kam:running() and (rx(a) < 1 or rx(b) < 1) do task.sleep(0.05) end
    end)
    assert(ok and kam:running(), "kamailio did not start probing the engines:\n" .. log())

    local cluster = { a = a, b = b, log = log }
    function cluster.calls(n)
      local took0 = a.took + b.took
      local errors = os.tmpname()
      local code, out, err = sipp.call(SCENARIO, kam_port, sipp_port, media_port,
                                       { calls = n, rate = 20, limit = 20, timeout = 30, error_file = errors })
      local trace = files.slurp(errors)
      os.remove(errors)
      assert(code == 0, ("sipp: %d calls, exit %s\n%s\n%s\n%s\nkamailio:\n%s"):format(
        n, tostring(code), err, out:sub(-3000), trace:sub(1, 6000), log():sub(-3000)))
      -- sipp had the 200 for every BYE: each call has ended on its engine
      wait_until(5, "the engines to end the calls", function()
        return a.done + #a.other + b.done + #b.other == took0 + n
      end)
      assert.same({}, a.other)
      assert.same({}, b.other)
      assert.equal(took0 + n, a.took + b.took)
    end

    body(cluster)

    local code, signal = kam:stop()
    assert(code == 0 and signal == 0, ("kamailio stopped with %s, signal %s:\n%s"):format(
      tostring(code), tostring(signal), log()))
    assert.not_matches("ERROR", log())
  end)
end

describe("SIP interop with Kamailio's dispatcher", function()
  it("spreads 100 calls over two engines", rt.run(function()
    if pending_if_missing() then return end
    with_cluster(function(c)
      c.calls(100)
      -- round-robin with one Kamailio worker: strictly alternating
      assert.same({ 50, 50 }, { c.a.done, c.b.done })
    end)
  end))

  it("sends new calls away from an engine that answers OPTIONS with 503", rt.run(function()
    if pending_if_missing() then return end
    with_cluster(function(c)
      local a, b = c.a, c.b
      c.calls(20) -- both in the rotation
      assert.same({ 10, 10 }, { a.done, b.done })

      -- B drains: Kamailio's next OPTIONS gets 503 and marks it inactive.
      -- Two pings answered after that, and two ping intervals, are enough.
      b.listener:set_draining(true)
      local since, pings = task.now(), rx(b)
      wait_until(10, "two OPTIONS to the draining engine", function()
        return rx(b) >= pings + 2 and task.now() - since >= 2 * PING_INTERVAL
      end)
      c.calls(20) -- all to A: B's handler is not even called
      assert.same({ 30, 10, 10 }, { a.done, b.done, b.took })

      -- B is back: one 200 to OPTIONS and it is in the rotation again
      b.listener:set_draining(false)
      since, pings = task.now(), rx(b)
      wait_until(10, "two OPTIONS to the engine back from draining", function()
        return rx(b) >= pings + 2 and task.now() - since >= 2 * PING_INTERVAL
      end)
      c.calls(20)
      assert.same({ 40, 20 }, { a.done, b.done })
    end)
  end))
end)
