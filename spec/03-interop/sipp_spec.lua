-- Interop with sipp (Debian's sip-tester) on loopback: real SIP, real RTP,
-- scenarios written for these specs (spec/sipp/*.xml). The engine side runs
-- in this process; sipp runs as a child process, waited for without blocking
-- the loop. Every case ends with the ledger empty.
local rt = require "runtime_helper"
local task = require "moonline.task"
local sip = require "moonline.sip"
local sipp = require "support.sipp"
local files = require "support.files"
local audio = require "support.audio"
local pcap = require "support.pcap"
local uv = require "luv"

local HOST = sipp.HOST
local eventually = sipp.eventually
local ports = sipp.ports(15060)

describe("SIP interop with sipp", function()
  it("answers a call, exchanges G.711 RTP both ways, ends on the caller's BYE", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local seen = {}
    local listener = assert(sip.listen({ host = HOST, port = port, handler = function(call)
      seen.info = call:info()
      assert(call:answer())
      call:tone(440, 0.5)
      seen.confirmed = call:wait("confirmed")
      call:wait("ended")
      seen.state = { call:state() }
      seen.rtp = call:rtp_stats()
    end }))
    local code, _, err = sipp.call("spec/sipp/uac_call.xml", port, sipp_port, media_port)
    listener:close() -- stop accepting; the call in progress finishes
    assert.equal(0, code, err)
    eventually(function() return seen.state end, 10, "the handler to see the end of the call")
    assert.matches("sipp caller", seen.info.from)
    assert.matches("m=audio", seen.info.sdp)
    assert.equal("confirmed", seen.confirmed)
    assert.same({ "ended", "remote hangup", 0 }, seen.state)
    assert.is_true(seen.rtp.tx_packets >= 120, "sent " .. seen.rtp.tx_packets) -- 3 s at 20 ms
    assert.is_true(seen.rtp.rx_packets >= 50, "received " .. seen.rtp.rx_packets) -- sipp's pcap
    assert.is_true(seen.rtp.max_send_lag_ms < 20, "send lag " .. seen.rtp.max_send_lag_ms)
  end))

  it("rejects with the code the script chooses", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local listener = assert(sip.listen({ host = HOST, port = port, handler = function(call)
      assert(call:reject(486))
    end }))
    local code, _, err = sipp.call("spec/sipp/uac_rejected.xml", port, sipp_port, media_port)
    listener:close() -- stop accepting; the call in progress finishes
    assert.equal(0, code, err)
  end))

  it("hangs up itself: BYE to the caller", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local ended
    local listener = assert(sip.listen({ host = HOST, port = port, handler = function(call)
      assert(call:answer())
      call:wait("confirmed")
      task.sleep(0.5)
      call:hangup()
      call:wait("ended")
      ended = { call:state() }
    end }))
    local code, _, err = sipp.call("spec/sipp/uac_wait_bye.xml", port, sipp_port, media_port)
    listener:close() -- stop accepting; the call in progress finishes
    assert.equal(0, code, err)
    eventually(function() return ended end, 10, "the end of the call")
    assert.same({ "ended", "local hangup", 0 }, ended)
  end))

  it("a handler that ends without hanging up hangs up by its scope", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local listener = assert(sip.listen({ host = HOST, port = port, handler = function(call)
      assert(call:answer())
      call:wait("confirmed")
      task.sleep(0.3)
      error("the agent script broke") -- the call is closed by the scope: BYE
    end }))
    local code, _, err = sipp.call("spec/sipp/uac_wait_bye.xml", port, sipp_port, media_port)
    listener:close() -- stop accepting; the call in progress finishes
    assert.equal(0, code, err)
  end))

  it("CANCEL while ringing: 200 for the CANCEL, 487 for the INVITE", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local result
    local listener = assert(sip.listen({ host = HOST, port = port, handler = function(call)
      -- never answers: the caller gives up
      call:wait("ended")
      result = { call:state() }
    end }))
    local code, _, err = sipp.call("spec/sipp/uac_cancel.xml", port, sipp_port, media_port)
    -- sipp checked the 200 for the CANCEL and the 487 for the INVITE. A
    -- handler sees the call only if it took it before the CANCEL came (on a
    -- slow machine the call may end while still queued: then nobody does).
    assert.equal(0, code, err)
    task.sleep(0.2)
    listener:close()
    if result then assert.same({ "ended", "cancelled", 487 }, result) end
  end))

  it("hold (re-INVITE sendonly) stops our audio; resume starts it again", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local samples = {}
    local listener = assert(sip.listen({ host = HOST, port = port, handler = function(call)
      assert(call:answer())
      call:tone(440, 0.3)
      call:wait("confirmed")
      for _ = 1, 200 do -- sample (at most 20 s): held?, packets sent so far
        if call:state() == "ended" then break end
        samples[#samples + 1] = { call:held(), call:rtp_stats().tx_packets }
        task.sleep(0.1)
      end
    end }))
    local code, _, err = sipp.call("spec/sipp/uac_hold.xml", port, sipp_port, media_port)
    listener:close()
    assert.equal(0, code, err) -- sipp checked recvonly, then sendrecv, in our answers
    local held, sent_while_held, first_held_tx, resumed = 0, 0, nil, false
    for _, smp in ipairs(samples) do
      if smp[1] then
        held = held + 1
        first_held_tx = first_held_tx or smp[2]
        sent_while_held = smp[2] - first_held_tx
      elseif held > 0 then
        resumed = true
      end
    end
    assert.is_true(held >= 5, "held for " .. held .. " samples")
    assert.is_true(sent_while_held <= 5, sent_while_held .. " packets sent on hold")
    assert.is_true(resumed)
  end))

  for _, case in ipairs({ { "SIP/2.0 200 OK", true, 200 }, { "SIP/2.0 486 Busy Here", nil, 486 } }) do
    it("cold transfer (REFER, NOTIFY sipfrag) reports " .. case[3], rt.run(function()
      if sipp.pending_if_missing(pending) then return end
      local port, sipp_port, media_port = ports()
      local outcome
      local listener = assert(sip.listen({ host = HOST, port = port, handler = function(call)
        assert(call:answer())
        call:wait("confirmed")
        outcome = { call:transfer("sip:human@127.0.0.1:5099", { referred_by = "sip:agent@127.0.0.1" }) }
        call:wait("ended") -- the caller hangs up after the transfer
      end }))
      local f = sipp.scenario("uac_refer.xml", { FINAL_FRAG = case[1] })
      local code, _, err = sipp.call(f, port, sipp_port, media_port)
      os.remove(f)
      listener:close()
      assert.equal(0, code, err)
      assert.equal(case[2], outcome[1])
      assert.equal(case[3], outcome[case[2] and 2 or 3])
    end))
  end

  it("answers OPTIONS with 200, and 503 while draining", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local listener = assert(sip.listen({ host = HOST, port = port }))
    local xml = files.slurp("spec/sipp/uac_options.xml")
    for _, expected in ipairs({ 200, 503 }) do
      listener:set_draining(expected == 503)
      local f = files.tmpfile((xml:gsub("EXPECTED_CODE", tostring(expected))))
      local code, _, err = sipp.call(f, port, sipp_port, media_port)
      os.remove(f)
      assert.equal(0, code, ("OPTIONS expecting %d: %s"):format(expected, err))
    end
    listener:close()
  end))

  it("keeps serving a good call while garbage and truncated datagrams arrive", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local listener = assert(sip.listen({ host = HOST, port = port, handler = function(call)
      assert(call:answer())
      call:wait("ended")
    end }))
    local noise = uv.new_udp()
    task.defer(function() noise:close() end)
    local junk = {
      "\0\1\2\3garbage",
      "INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4",
      "SIP/2.0 200 OK\r\n\r\n",
      string.rep("A", 1400),
      "INVITE sip:agent@127.0.0.1 SIP/2.0\r\nContent-Length: 9999\r\n\r\nv=0",
    }
    local spammer = task.spawn(function()
      for i = 1, 200 do
        noise:send(junk[i % #junk + 1], HOST, port)
        task.sleep(0.01)
      end
    end)
    local code, _, err = sipp.call("spec/sipp/uac_call.xml", port, sipp_port, media_port)
    spammer:wait()
    local stats = listener:stats() -- before the close: a closed listener has no stats
    listener:close()
    assert.equal(0, code, err)
    assert.is_true(stats.rx_errors >= 150, "rx_errors " .. stats.rx_errors)
  end))

  it("takes 30 ms G.711 from sipp through the jitter buffer into a room, answers at 30 ms", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local HZ, LEVEL = 700, 0.3
    local capture = os.tmpname()
    local packets = pcap.write_rtp(capture, { samples = audio.sine(HZ, 2.4, 8000, LEVEL), ptime = 30 })
    local xml = files.slurp("spec/sipp/uac_call_ptime30.xml"):gsub("PCAP_FILE", capture)
    local scenario = files.tmpfile(xml)
    local seen = {}
    local listener = assert(sip.listen({ host = HOST, port = port, handler = function(call, ctx)
      assert(ctx:accept())
      local ep = ctx.room:endpoint()
      call:wait("confirmed")
      assert(ep:listen(8000)) -- 0.5 s: the stream starts, the jitter buffer fills
      local ok, pcm = task.with_timeout(3, function() return ep:listen(16000) end)
      assert(ok and pcm, "nothing heard")
      seen.heard = audio.from_s16le(pcm)
      call:wait("ended")
      seen.rtp = call:rtp_stats()
    end }))
    local code, _, err = sipp.call(scenario, port, sipp_port, media_port)
    listener:close()
    os.remove(capture)
    os.remove(scenario)
    assert.equal(0, code, err)
    eventually(function() return seen.rtp end, 10, "the handler to finish")
    local level = audio.tone_level(seen.heard, 16000, HZ)
    local m = audio.measure(seen.heard, 1, #seen.heard, 16000)
    assert.is_true(math.abs(level - LEVEL) < 0.03, "700 Hz at " .. level)
    assert.is_true(math.abs(m.freq - HZ) < 2, "zero crossings say " .. m.freq .. " Hz")
    assert.is_true(m.min_window_rms_db > audio.dbfs(LEVEL / math.sqrt(2)) - 1.5,
      "a dropout in what the room heard: " .. m.min_window_rms_db)
    assert.is_true(seen.rtp.rx_packets >= packets - 2, ("received %d of %d"):format(seen.rtp.rx_packets, packets))
    -- 30 ms packets out: about 2.5 s / 30 ms of them, not 2.5 s / 20 ms
    assert.is_true(seen.rtp.tx_packets >= 70 and seen.rtp.tx_packets <= 100, "sent " .. seen.rtp.tx_packets)
    print(("\n    30 ms ptime: the room heard %.1f Hz (zero crossings), %.3f at 700 Hz (sent %.3f), " ..
      "quietest 20 ms %.2f dBFS; %d/%d packets in, %d out")
      :format(m.freq, level, LEVEL, m.min_window_rms_db, seen.rtp.rx_packets, packets, seen.rtp.tx_packets))
  end))
end)
