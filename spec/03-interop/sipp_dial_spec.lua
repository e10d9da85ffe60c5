-- Outbound calls (sip.dial) against sipp as the callee, with scenarios
-- written for these specs (spec/sipp/uas_*.xml): answered, busy, no answer
-- (ringing timeout -> CANCEL), digest auth, and a cancelled dialing task.
local rt = require "runtime_helper"
local task = require "moonline.task"
local sip = require "moonline.sip"
local sipp = require "support.sipp"

local HOST = sipp.HOST
local ports = sipp.ports(17060, { spread = 10, step = 3, offsets = { 0, 1 } }) -- sipp SIP, sipp media

-- start sipp as the callee in the background; returns a task for sipp_result
local function callee(scenario, port, media_port)
  return sipp.start(scenario, port, media_port, { trace = false })
end

local function sipp_result(t)
  local code, _, err = sipp.wait(t)
  return code, err
end

describe("outbound calls against sipp", function()
  before_each(function()
    sipp.pending_if_missing(pending)
  end)

  it("dials, gets answered, exchanges RTP, hangs up with BYE", rt.run(function()
    if not sipp.available then return end
    local port, media_port = ports()
    local peer = callee("spec/sipp/uas_answer.xml", port, media_port)
    local call = assert(sip.dial(("sip:bob@%s:%d"):format(HOST, port), { headers = { ["X-Case"] = "42" } }))
    assert.equal("confirmed", (call:state()))
    call:tone(440, 0.3)
    task.sleep(0.5)
    assert.is_true(call:rtp_stats().tx_packets >= 20)
    call:hangup()
    call:wait("ended")
    assert.same({ "ended", "local hangup", 0 }, { call:state() })
    call:close()
    local code, err = sipp_result(peer)
    assert.equal(0, code, err)
  end))

  it("a busy callee: nil, 'rejected', 486", rt.run(function()
    if not sipp.available then return end
    local port, media_port = ports()
    local peer = callee("spec/sipp/uas_busy.xml", port, media_port)
    local call, why, status = sip.dial(("sip:bob@%s:%d"):format(HOST, port))
    assert.is_nil(call)
    assert.equal("rejected", why)
    assert.equal(486, status)
    local code, err = sipp_result(peer)
    assert.equal(0, code, err)
  end))

  it("no answer: the ringing timeout sends CANCEL", rt.run(function()
    if not sipp.available then return end
    local port, media_port = ports()
    local peer = callee("spec/sipp/uas_no_answer.xml", port, media_port)
    local t0 = task.now()
    local call, why, status = sip.dial(("sip:bob@%s:%d"):format(HOST, port), { ringing_timeout = 1 })
    assert.is_nil(call)
    assert.equal("no answer", why)
    assert.equal(408, status)
    assert.is_true(task.now() - t0 < 3)
    local code, err = sipp_result(peer)
    assert.equal(0, code, err)
  end))

  it("answers a digest challenge (401, qop=auth) with the trunk's credentials", rt.run(function()
    if not sipp.available then return end
    local port, media_port = ports()
    local peer = callee("spec/sipp/uas_auth.xml", port, media_port)
    local call = assert(sip.dial("agent", {
      trunk = { host = HOST, port = port, username = "agent", password = "s3cret" },
    }))
    call:hangup()
    call:wait("ended")
    call:close()
    local code, err = sipp_result(peer)
    assert.equal(0, code, err) -- sipp's verifyauth accepted our response
  end))

  it("registers with digest auth, refreshes before the lease ends, unregisters on close", rt.run(function()
    if not sipp.available then return end
    local port, media_port = ports()
    local registrar = callee("spec/sipp/uas_registrar.xml", port, media_port)
    sip.serve({ host = HOST, port = port + 100 }, function(listener)
      local reg = listener:register({ registrar = HOST, port = port, user = "agent", domain = "moonline.test",
                                      username = "agent", password = "s3cret", expires = 60 })
      local ok, granted = reg:wait_registered(5)
      assert.is_true(ok)
      assert.equal(2, granted)
      task.sleep(2.5) -- the refresh goes out at 80% of the 2 s lease
      assert.equal("registered", (reg:status()))
      reg:close() -- Expires: 0
    end)
    local code, err = sipp_result(registrar)
    assert.equal(0, code, err)
  end))

  it("a dialing task that is cancelled while ringing sends CANCEL (its scope closes the call)", rt.run(function()
    if not sipp.available then return end
    local port, media_port = ports()
    local peer = callee("spec/sipp/uas_no_answer.xml", port, media_port)
    local dialer = task.spawn(function()
      return sip.dial(("sip:bob@%s:%d"):format(HOST, port), { ringing_timeout = 30 })
    end)
    task.sleep(1)
    dialer:cancel("caller hung up")
    local ok, err = dialer:wait()
    assert.is_false(ok)
    assert.is_true(task.is_cancelled(err))
    local code, serr = sipp_result(peer)
    assert.equal(0, code, serr)
  end))
end)
