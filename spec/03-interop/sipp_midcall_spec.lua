-- Mid-call features against sipp, with scenarios written for these specs
-- (spec/sipp/*): our own hold/resume (re-INVITE sendonly/sendrecv, sipp
-- checks the direction and the o= version), glare (491 both ways), a REFER
-- from the other side (202, NOTIFY 100, the engine dials the Refer-To target
-- — a second sipp — and reports the outcome; or rejects it), and session
-- refreshes; the 200 to the caller's re-INVITE retransmitted until its ACK
-- (a second re-INVITE meanwhile gets 500), and a refused re-offer (488) that
-- leaves the caller's previous SDP in place. Every wait is bounded; every
-- case ends with the ledger empty.
local rt = require "runtime_helper"
local task = require "moonline.task"
local sip = require "moonline.sip"
local sipp = require "support.sipp"

local HOST = sipp.HOST
local scenario, eventually = sipp.scenario, sipp.eventually
-- engine SIP, sipp SIP, sipp media (sipp takes media .. media + 3); the
-- REFER cases put a second sipp at +10
local ports = sipp.ports(19060, { step = 20, offsets = { 0, 1, 4 } })

-- sipp on a scenario (a temporary file: removed once sipp has ended) in the
-- background: a task for sipp_ok. target: "host:port" to call (UAC), nil to
-- wait for a call (UAS). extra: more sipp options (a list).
local function start_sipp(file, sipp_port, media_port, target, extra)
  return sipp.start(file, sipp_port, media_port, { timeout = 25, target = target, extra = extra, tmp = true })
end

local function sipp_ok(t)
  local code, _, err = sipp.wait(t)
  assert.equal(0, code, err)
end

describe("mid-call features against sipp", function()
  it("holds the callee it dialed (sendonly, next o= version) and resumes (sendrecv)", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, _, media_port = ports()
    local peer = start_sipp(scenario("uas_hold.xml"), port, media_port)
    local call = assert(sip.dial(("sip:bob@%s:%d"):format(HOST, port)))
    call:tone(440, 0.3)
    task.sleep(0.3)
    assert.is_false(call:holding())
    assert.same({ true, 200 }, { call:hold() })
    assert.is_true(call:holding())
    local sent = call:rtp_stats().tx_packets
    task.sleep(0.5)
    assert.is_true(call:rtp_stats().tx_packets - sent <= 1, "audio sent while holding")
    assert.same({ true, 200 }, { call:unhold() })
    assert.is_false(call:holding())
    sent = call:rtp_stats().tx_packets
    task.sleep(0.5)
    assert.is_true(call:rtp_stats().tx_packets - sent >= 15, "audio resumed")
    call:hangup()
    call:wait("ended")
    call:close()
    sipp_ok(peer)
  end))

  it("glare: a re-INVITE while ours is out gets 491; ours, refused with 491, goes again", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local seen = {}
    sip.serve({ host = HOST, port = port, handler = function(call)
      assert(call:answer())
      call:tone(440, 0.3)
      call:wait("confirmed")
      local t0 = task.now()
      seen.hold = { call:hold() }
      seen.hold_took = task.now() - t0
      seen.holding = call:holding()
      seen.unhold = { call:unhold() }
      seen.holding_after = call:holding()
      call:wait("ended")
    end }, function()
      sipp_ok(start_sipp(scenario("uac_glare.xml"), sipp_port, media_port, HOST .. ":" .. port))
      eventually(function() return seen.holding_after ~= nil end, 5, "the handler")
    end)
    assert.same({ true, 200 }, seen.hold)
    assert.is_true(seen.hold_took < 4, "the retry after a 491 waits at most 2 s (not our Call-ID)")
    assert.is_true(seen.holding)
    assert.same({ true, 200 }, seen.unhold)
    assert.is_false(seen.holding_after)
  end))

  -- the engine takes the REFER, calls the Refer-To target (a second sipp) and
  -- reports its outcome: 200 when it answers, its status when it refuses
  for _, case in ipairs({ { "uas_answer.xml", "200 OK", 200 }, { "uas_busy.xml", "486 Busy Here", 486 } }) do
    it("a REFER from the caller: 202, NOTIFY 100, dials the target, final NOTIFY " .. case[3], rt.run(function()
      if sipp.pending_if_missing(pending) then return end
      local port, sipp_port, media_port = ports()
      local target_port, target_media = sipp_port + 10, media_port + 10
      local target_uri = ("sip:human@%s:%d"):format(HOST, target_port)
      local seen = {}
      sip.serve({ host = HOST, port = port, handler = function(call)
        assert(call:answer())
        call:wait("confirmed")
        local req = assert(call:wait_refer(10))
        seen.refer_to, seen.referred_by = req.refer_to, req.referred_by
        assert(req:accept())
        assert.is_nil(call:refer_request()) -- answered: not pending any more
        local leg, why, status = sip.dial(req.refer_to, { ringing_timeout = 10 })
        seen.dial = { leg ~= nil, why, status }
        assert(req:notify(leg and 200 or status))
        seen.again = { req:notify(200) } -- the subscription is over
        if leg then
          leg:hangup()
          leg:wait("ended")
          leg:close()
        end
        call:wait("ended")
        seen.done = true
      end }, function()
        local target = start_sipp(scenario(case[1]), target_port, target_media)
        local caller = start_sipp(scenario("uac_refer_in.xml", { REFER_TARGET = target_uri, FINAL_FRAG = case[2] }),
                                  sipp_port, media_port, HOST .. ":" .. port)
        sipp_ok(caller)
        sipp_ok(target)
        eventually(function() return seen.done end, 5, "the handler")
      end)
      assert.equal(target_uri, seen.refer_to)
      assert.matches("^sip:caller@", seen.referred_by)
      assert.same(case[3] == 200 and { true } or { false, "rejected", 486 }, seen.dial)
      assert.is_nil(seen.again[1])
    end))
  end

  it("REFERs refused: no Refer-To 400, two 400, declined by the script 603, outside a dialog 481",
     rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local seen = {}
    sip.serve({ host = HOST, port = port, handler = function(call)
      assert(call:answer())
      call:wait("confirmed")
      local req = assert(call:wait_refer(10))
      seen.reject = { req:reject(603) }
      seen.accept_after = { req:accept() } -- already answered
      call:wait("ended")
      seen.done = true
    end }, function()
      sipp_ok(start_sipp(scenario("uac_refer_in_reject.xml",
                                  { REFER_TARGET = "sip:human@127.0.0.1:5099", REJECT_CODE = "603" }),
                         sipp_port, media_port, HOST .. ":" .. port))
      eventually(function() return seen.done end, 5, "the handler")
    end)
    assert.same({ true }, seen.reject)
    assert.is_nil(seen.accept_after[1])
    assert.matches("not in that state", seen.accept_after[2])
  end))

  it("a REFER the script never looks at is declined (603) when the call ends", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    sip.serve({ host = HOST, port = port, handler = function(call)
      assert(call:answer())
      call:wait("confirmed")
      task.sleep(0.3) -- the REFER arrives and waits
      call:hangup() -- 603 for the REFER, then BYE
      call:wait("ended")
    end }, function()
      sipp_ok(start_sipp(scenario("uac_refer_in_unanswered.xml", { REFER_TARGET = "sip:human@127.0.0.1:5099" }),
                         sipp_port, media_port, HOST .. ":" .. port))
    end)
  end))

  it("session refreshes (re-INVITE same SDP, UPDATE, re-INVITE without SDP) change nothing", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local samples, info = {}, nil
    sip.serve({ host = HOST, port = port, handler = function(call)
      assert(call:answer())
      call:tone(440, 0.3)
      call:wait("confirmed")
      info = call:info()
      for _ = 1, 100 do -- at most 10 s
        if call:state() ~= "confirmed" then break end
        samples[#samples + 1] = { call:held(), call:holding(), call:rtp_stats().tx_packets }
        task.sleep(0.1)
      end
    end }, function()
      sipp_ok(start_sipp(scenario("uac_refresh.xml"), sipp_port, media_port, HOST .. ":" .. port))
      eventually(function() return #samples > 0 end, 5, "the handler")
    end)
    assert.matches("o=caller 53655765 2353687637", info.sdp)
    assert.is_true(#samples >= 10, #samples .. " samples")
    for i, smp in ipairs(samples) do
      assert.is_false(smp[1])
      assert.is_false(smp[2])
      if i > 1 then assert.is_true(smp[3] > samples[i - 1][3], "audio kept flowing") end
    end
  end))
  -- RFC 3261 §13.3.1.4, §14.2. sipp checks the timing (the 200 again after
  -- about 0.5 s, then 1 s), the 500's Retry-After, and that nothing comes
  -- after the ACK; -nr keeps sipp from swallowing the repeated 200s as
  -- retransmissions. (The BYE after 64*T1 without an ACK: spec/c/test_sip_reinvite.c,
  -- on the virtual clock.)
  it("the 200 to a re-INVITE comes again until the ACK; a second re-INVITE meanwhile gets 500",
     rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local seen = { held = false }
    sip.serve({ host = HOST, port = port, handler = function(call)
      assert(call:answer())
      call:tone(440, 0.3)
      call:wait("confirmed")
      while call:state() == "confirmed" do
        if call:held() then seen.held = true end
        task.sleep(0.05)
      end
      seen.state = call:state()
      seen.done = true
    end }, function()
      sipp_ok(start_sipp(scenario("uac_reinvite_noack.xml"), sipp_port, media_port, HOST .. ":" .. port,
                         { "-nr" }))
      eventually(function() return seen.done end, 5, "the handler")
    end)
    assert.is_true(seen.held, "the re-INVITE (sendonly) was applied")
    assert.equal("ended", seen.state)
  end))

  it("a re-offer refused with 488 leaves the caller's previous SDP in place", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local samples = {}
    sip.serve({ host = HOST, port = port, handler = function(call)
      assert(call:answer())
      call:tone(440, 0.3)
      call:wait("confirmed")
      for _ = 1, 100 do -- at most 10 s
        if call:state() ~= "confirmed" then break end
        samples[#samples + 1] = { call:info().sdp, call:held(), call:rtp_stats().tx_packets }
        task.sleep(0.1)
      end
    end }, function()
      sipp_ok(start_sipp(scenario("uac_reoffer_rejected.xml"), sipp_port, media_port, HOST .. ":" .. port))
      eventually(function() return #samples > 0 end, 5, "the handler")
    end)
    assert.is_true(#samples >= 10, #samples .. " samples")
    for i, smp in ipairs(samples) do
      assert.matches("o=caller 53655765 2353687637 ", smp[1])
      assert.matches("RTP/AVP 0 101", smp[1])
      assert.is_false(smp[2])
      if i > 1 then assert.is_true(smp[3] > samples[i - 1][3], "audio kept flowing") end
    end
  end))
end)
