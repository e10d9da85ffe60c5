-- SIP over TCP (RFC 3261 §18): sipp (-t t1) as caller and callee with
-- scenarios written for these specs (spec/sipp/*_tcp.xml), and raw
-- connections (task.tcp_connect) for what sipp cannot do: several messages
-- in one segment, a message split over many, garbage, the connection bound,
-- the idle timeout. Every case ends with the ledger empty: the listener owns
-- its connections and closes them.
local rt = require "runtime_helper"
local task = require "moonline.task"
local sip = require "moonline.sip"
local sipp = require "support.sipp"

local HOST = sipp.HOST
local eventually = sipp.eventually
local ports = sipp.ports(19060)

-- sipp over TCP as the caller -> exit code, stdout, stderr
local function sipp_uac(scenario, engine_port, sipp_port, media_port)
  return sipp.call(scenario, engine_port, sipp_port, media_port, { transport = "t1" })
end

-- sipp over TCP as the callee, in the background: a task for sipp.wait
local function sipp_uas(scenario, port, media_port)
  return sipp.start(scenario, port, media_port, { transport = "t1", trace = false })
end

local function options(port, n, extra)
  return table.concat({
    ("OPTIONS sip:agent@%s:%d;transport=tcp SIP/2.0"):format(HOST, port),
    ("Via: SIP/2.0/TCP %s:5999;branch=z9hG4bK-tcp-%d-%d;rport"):format(HOST, n, os.time()),
    "From: <sip:probe@127.0.0.1>;tag=p" .. n,
    "To: <sip:agent@127.0.0.1>",
    "Call-ID: tcp-probe-" .. n .. "@moonline.test",
    "CSeq: " .. n .. " OPTIONS",
    "Max-Forwards: 70",
    extra or "Content-Length: 0",
    "", "" }, "\r\n")
end

-- read until `count` status lines arrived, or the connection ended (bounded):
-- -> the text read, "eof" when the peer closed
local function read_responses(sock, count, seconds)
  local got, ended = {}, nil
  task.with_timeout(seconds or 5, function()
    while true do
      local _, n = table.concat(got):gsub("SIP/2%.0 %d%d%d", "")
      if n >= count then return end
      local data, err = sock:read()
      if not data then
        ended = err
        return
      end
      got[#got + 1] = data
    end
  end)
  return table.concat(got), ended
end

-- read until the peer closes the connection (bounded): -> true when it did
local function closed_by_peer(sock, seconds)
  local closed = false
  task.with_timeout(seconds or 5, function()
    while true do
      local data = sock:read()
      if not data then
        closed = true
        return
      end
    end
  end)
  return closed
end

local function count(text, pattern)
  local _, n = text:gsub(pattern, "")
  return n
end

describe("SIP over TCP", function()
  it("answers a call from sipp over TCP: tone, RTP both ways, the caller's BYE", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local seen = {}
    local listener = assert(sip.listen({ host = HOST, port = port, transport = "both", handler = function(call)
      seen.info = call:info()
      assert(call:answer())
      call:tone(440, 0.5)
      seen.confirmed = call:wait("confirmed")
      call:wait("ended")
      seen.state = { call:state() }
      seen.rtp = call:rtp_stats()
    end }))
    local code, _, err = sipp_uac("spec/sipp/uac_call_tcp.xml", port, sipp_port, media_port)
    local stats = listener:stats()
    listener:close()
    assert.equal(0, code, err)
    eventually(function() return seen.state end, 10, "the end of the call")
    assert.matches("sipp tcp caller", seen.info.from)
    assert.equal("confirmed", seen.confirmed)
    assert.same({ "ended", "remote hangup", 0 }, seen.state)
    assert.is_true(seen.rtp.tx_packets >= 120, "sent " .. seen.rtp.tx_packets)
    assert.is_true(seen.rtp.rx_packets >= 50, "received " .. seen.rtp.rx_packets)
    assert.is_true(stats.tcp_accepted >= 1)
    assert.equal(0, stats.retransmits) -- reliable transport: no timer A/E/G
  end))

  it("hangs up itself: the BYE goes over TCP on the caller's connection", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local ended
    -- the call outlasts the idle timeout: its connection must stay for the BYE
    local listener = assert(sip.listen({ host = HOST, port = port, transport = "tcp", tcp_idle_timeout = 0.3,
                                         handler = function(call)
      assert(call:answer())
      call:wait("confirmed")
      task.sleep(1)
      call:hangup()
      call:wait("ended")
      ended = { call:state() }
    end }))
    local code, _, err = sipp_uac("spec/sipp/uac_wait_bye_tcp.xml", port, sipp_port, media_port)
    listener:close()
    assert.equal(0, code, err)
    eventually(function() return ended end, 10, "the end of the call")
    assert.same({ "ended", "local hangup", 0 }, ended)
  end))

  it("dials sipp over TCP (trunk transport = tcp): answered, RTP, BYE", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, media_port = ports()
    local peer = sipp_uas("spec/sipp/uas_answer_tcp.xml", port, media_port)
    local call = assert(sip.dial("bob", { trunk = { host = HOST, port = port, transport = "tcp" } }))
    assert.equal("confirmed", (call:state()))
    call:tone(440, 0.3)
    task.sleep(0.5)
    assert.is_true(call:rtp_stats().tx_packets >= 20)
    call:hangup()
    call:wait("ended")
    assert.same({ "ended", "local hangup", 0 }, { call:state() })
    call:close()
    local code, _, err = sipp.wait(peer)
    assert.equal(0, code, err)
  end))

  it("a TCP dial to a closed port fails at once, not after timer B", rt.run(function()
    local port = ports() -- nothing listens there
    local t0 = task.now()
    local call, why, status = sip.dial("bob", { trunk = { host = HOST, port = port, transport = "tcp" } })
    assert.is_nil(call)
    assert.equal("timeout", why)
    assert.equal(408, status)
    assert.is_true(task.now() - t0 < 2, "took " .. (task.now() - t0) .. " s")
  end))

  it("frames several messages in one segment and one message split over many", rt.run(function()
    local port = ports()
    local listener = assert(sip.listen({ host = HOST, port = port, transport = "tcp" }))
    local sock = assert(task.tcp_connect(HOST, port))
    -- three requests in one write, a keep-alive ping between them
    assert(sock:write(options(port, 1) .. options(port, 2) .. "\r\n\r\n" .. options(port, 3)))
    local text = read_responses(sock, 3)
    assert.equal(3, count(text, "SIP/2%.0 200 OK"), text)
    for n = 1, 3 do assert.matches("CSeq: " .. n .. " OPTIONS", text, 1, true) end
    assert.matches("transport=tcp", text, 1, true) -- our Contact
    -- one request in 7-byte pieces, with a body, the last piece with the next request's start
    local body = "v=0\r\n"
    local msg = options(port, 4, "Content-Type: application/sdp\r\nContent-Length: " .. #body) .. body
    local next_msg = options(port, 5)
    local stream = msg .. next_msg
    for i = 1, #stream, 7 do
      assert(sock:write(stream:sub(i, i + 6)))
      task.sleep(0.001)
    end
    text = read_responses(sock, 2)
    assert.equal(2, count(text, "SIP/2%.0 200 OK"), text)
    assert.matches("CSeq: 4 OPTIONS", text, 1, true)
    assert.matches("CSeq: 5 OPTIONS", text, 1, true)
    local stats = listener:stats()
    assert.equal(1, stats.tcp_connections)
    assert.equal(0, stats.rx_errors)
    sock:close()
    listener:close()
  end))

  it("a stream without Content-Length gets 400 and is closed; others go on", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local listener = assert(sip.listen({ host = HOST, port = port, transport = "both", handler = function(call)
      assert(call:answer())
      call:wait("ended")
    end }))
    local good = assert(task.tcp_connect(HOST, port))
    assert(good:write(options(port, 1)))
    assert.equal(1, count(read_responses(good, 1), "SIP/2%.0 200"))
    -- RFC 3261 §18.3: on a stream, Content-Length is mandatory
    local bad = assert(task.tcp_connect(HOST, port))
    assert(bad:write(options(port, 2, "X-No-Length: yes")))
    local text = read_responses(bad, 1)
    assert.matches("^SIP/2%.0 400", text)
    assert.is_true(closed_by_peer(bad), "the bad stream was not closed")
    bad:close()
    -- plain garbage: closed (nothing to answer)
    local junk = assert(task.tcp_connect(HOST, port))
    assert(junk:write(string.rep("\0garbage", 100) .. "\r\n\r\n"))
    assert.is_true(closed_by_peer(junk), "the garbage stream was not closed")
    junk:close()
    -- a body longer than the 64 KiB bound: closed
    local big = assert(task.tcp_connect(HOST, port))
    assert(big:write(options(port, 3, "Content-Length: 70000")))
    assert.is_true(closed_by_peer(big), "the oversized stream was not closed")
    big:close()
    -- the good connection still works, and so does a call from sipp
    assert(good:write(options(port, 4)))
    assert.equal(1, count(read_responses(good, 1), "SIP/2%.0 200"))
    local code, _, err = sipp_uac("spec/sipp/uac_call_tcp.xml", port, sipp_port, media_port)
    assert.equal(0, code, err)
    assert.is_true(listener:stats().rx_errors >= 3)
    good:close()
    listener:close()
  end))

  it("bounds the connections and closes idle ones", rt.run(function()
    local port = ports()
    local listener = assert(sip.listen({ host = HOST, port = port, transport = "tcp", tcp_max_connections = 2,
                                         tcp_idle_timeout = 0.5 }))
    local a = assert(task.tcp_connect(HOST, port))
    local b = assert(task.tcp_connect(HOST, port))
    eventually(function() return listener:stats().tcp_connections == 2 end, 5, "two connections")
    local c = assert(task.tcp_connect(HOST, port)) -- over the bound: closed at once
    assert.is_true(closed_by_peer(c, 2), "the third connection was kept")
    assert.equal(1, listener:stats().tcp_refused)
    -- a is kept busy; b says nothing and is closed after the idle timeout
    local t0 = task.now()
    for n = 1, 4 do
      assert(a:write(options(port, n)))
      assert.equal(1, count(read_responses(a, 1), "SIP/2%.0 200"))
      task.sleep(0.2)
    end
    assert.is_true(closed_by_peer(b, 3), "the idle connection was kept")
    assert.is_true(task.now() - t0 >= 0.4)
    assert.equal(1, listener:stats().tcp_connections)
    a:close()
    b:close()
    c:close()
    listener:close()
  end))

  it("closing the listener closes its connections", rt.run(function()
    local port = ports()
    local listener = assert(sip.listen({ host = HOST, port = port, transport = "both" }))
    local sock = assert(task.tcp_connect(HOST, port))
    assert(sock:write(options(port, 1)))
    assert.equal(1, count(read_responses(sock, 1), "SIP/2%.0 200"))
    listener:close()
    assert.is_true(closed_by_peer(sock, 3), "the connection outlived the listener")
    sock:close()
  end))
end)
