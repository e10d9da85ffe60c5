-- The engine calls itself on loopback: sip.dial to its own listener. Both
-- sides are real SIP/RTP over sockets, so what one sends the other must get.
local rt = require "runtime_helper"
local task = require "moonline.task"
local sip = require "moonline.sip"

local HOST = "127.0.0.1"
local PORT = 18060 + (os.time() % 100) * 7

describe("SIP loopback (the engine calls itself)", function()
  it("sends RFC 4733 digits that the other side reads once each", rt.run(function()
    local got = {}
    sip.serve({ host = HOST, port = PORT, handler = function(call)
      assert(call:answer())
      for _ = 1, 4 do
        local d = call:read_dtmf()
        if not d then break end
        got[#got + 1] = d
      end
      call:wait("ended")
    end }, function()
      local call = assert(sip.dial(("sip:agent@%s:%d"):format(HOST, PORT)))
      assert(call:send_dtmf("12#"))
      assert(call:send_dtmf("w9"))
      local t0 = task.now()
      -- a digit is read at its first packet; it counts as sent after its 3 end packets
      while (#got < 4 or call:rtp_stats().dtmf_sent < 4) and task.now() - t0 < 5 do task.sleep(0.05) end
      assert.equal(4, call:rtp_stats().dtmf_sent)
      call:hangup()
      call:wait("ended")
      call:close()
    end)
    assert.same({ "1", "2", "#", "9" }, got)
  end))

  it("refuses digits that are not DTMF", rt.run(function()
    sip.serve({ host = HOST, port = PORT + 1, handler = function(call)
      assert(call:answer())
      call:wait("ended")
    end }, function()
      local call = assert(sip.dial(("sip:agent@%s:%d"):format(HOST, PORT + 1)))
      local ok, err = call:send_dtmf("1x")
      assert.is_nil(ok)
      assert.matches("cannot send these digits", err)
      call:close() -- closing hangs up (BYE)
    end)
  end))

  it("a hangup on either side ends both; the ledger is empty after", rt.run(function()
    local remote_state
    sip.serve({ host = HOST, port = PORT + 2, handler = function(call)
      assert(call:answer())
      call:wait("ended")
      remote_state = { call:state() }
    end }, function()
      local call = assert(sip.dial(("sip:agent@%s:%d"):format(HOST, PORT + 2)))
      call:tone(300, 0.2)
      task.sleep(0.2)
      call:hangup()
      call:wait("ended")
      assert.same({ "ended", "local hangup", 0 }, { call:state() })
      call:close()
    end)
    assert.same({ "ended", "remote hangup", 0 }, remote_state)
  end))
end)
