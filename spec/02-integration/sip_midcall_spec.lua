-- Mid-call features engine to engine on loopback: hold/resume both ways,
-- a cold transfer where both the REFER's sender and its receiver are ours,
-- and digits sent by sip.dial once the call is answered.
local rt = require "runtime_helper"
local eventually = rt.eventually
local task = require "moonline.task"
local sip = require "moonline.sip"

local HOST = "127.0.0.1"
local PORT = 21400 + (os.time() % 100) * 7

local function sent_during(call, seconds)
  local before = call:rtp_stats().tx_packets
  task.sleep(seconds)
  return call:rtp_stats().tx_packets - before
end

describe("SIP mid-call, engine to engine", function()
  it("hold: both sides stop sending, the held side sees held(); resume restarts both", rt.run(function()
    local callee
    sip.serve({ host = HOST, port = PORT, handler = function(call)
      assert(call:answer())
      call:tone(300, 0.2)
      callee = call
      call:wait("ended")
    end }, function()
      local call = assert(sip.dial(("sip:agent@%s:%d"):format(HOST, PORT)))
      call:tone(440, 0.2)
      eventually(function() return callee end)
      assert.same({ true, 200 }, { call:hold() })
      assert.is_true(call:holding())
      assert.is_false(call:held())
      assert.is_true(callee:held())
      assert.is_false(callee:holding())
      assert.is_true(sent_during(call, 0.3) <= 1, "the holder stopped sending")
      assert.is_true(sent_during(callee, 0.3) <= 1, "the held side stopped sending (recvonly)")
      assert.same({ true, 200 }, { call:unhold() })
      assert.is_false(call:holding())
      assert.is_false(callee:held())
      assert.is_true(sent_during(call, 0.3) >= 10)
      assert.is_true(sent_during(callee, 0.3) >= 10)
      -- the other way round: the callee holds the caller
      assert.same({ true, 200 }, { callee:hold() })
      assert.is_true(call:held())
      assert.same({ true, 200 }, { callee:unhold() })
      assert.is_false(call:held())
      call:hangup()
      call:wait("ended")
      -- a hold on a call that is over is an error, not a hang
      local ok, err = call:hold()
      assert.is_nil(ok)
      assert.matches("not up", err)
      call:close()
    end)
  end))

  it("transfer: our REFER to our own engine, which dials the target and reports 200", rt.run(function()
    local outcome, target_answered
    sip.serve({ host = HOST, port = PORT + 1, handler = function(call) -- the human
      assert(call:answer())
      target_answered = true
      call:wait("ended")
    end }, function()
      sip.serve({ host = HOST, port = PORT + 2, handler = function(call) -- the agent
        assert(call:answer())
        call:wait("confirmed")
        outcome = { call:transfer(("sip:human@%s:%d"):format(HOST, PORT + 1),
                                  { referred_by = "sip:agent@127.0.0.1", timeout = 10 }) }
        call:wait("ended")
      end }, function()
        local call = assert(sip.dial(("sip:agent@%s:%d"):format(HOST, PORT + 2)))
        local req = assert(call:wait_refer(5))
        assert.equal(("sip:human@%s:%d"):format(HOST, PORT + 1), req.refer_to)
        assert.equal("sip:agent@127.0.0.1", req.referred_by)
        assert(req:accept())
        local leg = assert(sip.dial(req.refer_to))
        assert(req:notify(200))
        eventually(function() return outcome end, 5, "the transfer outcome")
        call:hangup() -- a transferee leaves the first call
        call:wait("ended")
        call:close()
        leg:hangup()
        leg:wait("ended")
        leg:close()
      end)
    end)
    assert.is_true(target_answered)
    assert.same({ true, 200 }, outcome)
  end))

  it("wait_refer is bounded: nil, 'timeout' when none comes", rt.run(function()
    sip.serve({ host = HOST, port = PORT + 3, handler = function(call)
      assert(call:answer())
      call:wait("ended")
    end }, function()
      local call = assert(sip.dial(("sip:agent@%s:%d"):format(HOST, PORT + 3)))
      assert.same({ nil, "timeout" }, { call:wait_refer(0.2) })
      call:close()
    end)
  end))

  it("sip.dial{ dtmf = } sends the digits once the call is answered", rt.run(function()
    local got = {}
    sip.serve({ host = HOST, port = PORT + 4, handler = function(call)
      assert(call:answer())
      for _ = 1, 4 do
        local d = call:read_dtmf()
        if not d then break end
        got[#got + 1] = d
      end
      call:wait("ended")
    end }, function()
      local call = assert(sip.dial(("sip:agent@%s:%d"):format(HOST, PORT + 4), { dtmf = "12#9" }))
      eventually(function() return #got == 4 end, 5, "the digits")
      call:close()
      local ok, err = sip.dial(("sip:agent@%s:%d"):format(HOST, PORT + 4), { dtmf = "1x" })
      assert.is_nil(ok)
      assert.matches("cannot send these digits", err)
    end)
    assert.same({ "1", "2", "#", "9" }, got)
  end))
end)
