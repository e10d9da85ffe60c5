-- Benchmark B2 (specs/performance.md), the engine side: every inbound call
-- is answered (200 + SDP, RTP starts), gets a 440 Hz tone (the stand-in for
-- the TTS prompt: there is no TTS/VAD yet) while the caller's audio is
-- received (counted, not analysed), and is hung up by the engine HOLD seconds
-- after the ACK (HOLD = 0: wait for the caller's BYE).
--
--   moonline run bench/b2_engine.lua [HOST] [PORT] [HOLD] [MAX_SECONDS]
--
-- Prints `b2 status ...` once a second (engine clock and wall time, calls,
-- SIP counters, RTP packets so far, CPU time from getrusage, RSS, Lua heap)
-- and, when it ends (MAX_SECONDS, or SIGTERM/SIGINT from bench/b2_calls.sh),
-- one `b2 summary ...` line of key=value figures: calls answered/ended, RTP
-- sent/received/expected, the per-call worst send lag (its p50/p99/max over
-- calls), RSS and Lua heap before the first call and at the peak, and, when
-- the engine counts it (rtp_stats().lag_hist), the per-packet send lag.
local task = require "moonline.task"
local sip = require "moonline.sip"
-- bench/lib/call_stats.lua, next to this script
package.path = debug.getinfo(1, "S").source:match("^@?(.-)[^/]*$") .. "lib/?.lua;" .. package.path
local stats = require "call_stats"
local rss_kb, cpu_us = stats.rss_kb, stats.cpu_us

local host = arg[1] or "127.0.0.1"
local port = tonumber(arg[2]) or 25060
local hold = tonumber(arg[3]) or 10
local max_seconds = tonumber(arg[4]) or 3600
local PTIME = 0.020

local st = {
  answered = 0, answer_failed = 0, ended = 0, active = 0, max_active = 0,
  tx = 0, rx = 0, rx_bad = 0, tx_expected = 0, tx_short_calls = 0,
  lag_over_5ms = 0, lag_over_20ms = 0, media_s = 0,
  rss_base_kb = rss_kb(), heap_base_kb = collectgarbage("count"),
  rss_at_peak_kb = 0, heap_at_peak_kb = 0, peak_tick_active = 0,
  t_first_answer = 0, t_last_answer = 0, t_first_hangup = 0, t_last_end = 0, -- engine clock, s
}
local lags = {} -- per call: the worst send lag, ms
local hist = nil -- per packet send lag, when the engine counts it (rtp_stats().lag_hist)
local live = {} -- call -> true while it is answered

local function handler(call)
  if not stats.answer(call, st, "b2") then return end
  local t0 = st.t_last_answer
  call:tone(440, 0.3)
  live[call] = true
  local t_end
  task.defer(function()
    live[call] = nil
    st.t_last_end = task.now()
    st.active = st.active - 1
    st.ended = st.ended + 1
    local r = call:rtp_stats()
    if r.tx_packets then
      local media = (t_end or task.now()) - t0
      local expected = math.floor(media / PTIME) + 1
      st.media_s = st.media_s + media
      st.tx = st.tx + r.tx_packets
      st.rx = st.rx + r.rx_packets
      st.rx_bad = st.rx_bad + r.rx_bad
      st.tx_expected = st.tx_expected + expected
      if r.tx_packets < expected - 1 then st.tx_short_calls = st.tx_short_calls + 1 end
      lags[#lags + 1] = r.max_send_lag_ms
      if r.lag_hist then
        hist = hist or stats.hist_new()
        stats.hist_add(hist, r.lag_hist)
      end
      if r.max_send_lag_ms >= 5 then st.lag_over_5ms = st.lag_over_5ms + 1 end
      if r.max_send_lag_ms >= 20 then st.lag_over_20ms = st.lag_over_20ms + 1 end
    end
  end)
  if hold > 0 then
    call:wait("confirmed")
    task.with_timeout(hold, call.wait, call, "ended")
    t_end = task.now()
    if st.t_first_hangup == 0 then st.t_first_hangup = t_end end
    call:hangup()
  end
  call:wait("ended")
  t_end = t_end or task.now()
end

local function summary()
  table.sort(lags)
  local parts = {}
  local function add(k, v)
    parts[#parts + 1] = ("%s=%s"):format(k, type(v) == "number" and (v % 1 == 0 and ("%d"):format(v)
      or ("%.3f"):format(v)) or tostring(v))
  end
  for _, k in ipairs({ "answered", "answer_failed", "ended", "active", "max_active", "tx", "rx", "rx_bad",
                       "tx_expected", "tx_short_calls", "lag_over_5ms", "lag_over_20ms", "media_s",
                       "rss_base_kb", "peak_tick_active", "rss_at_peak_kb", "heap_base_kb", "heap_at_peak_kb",
                       "t_first_answer", "t_last_answer", "t_first_hangup", "t_last_end" }) do
    add(k, st[k])
  end
  add("lag_p50_ms", stats.pct(lags, 0.50))
  add("lag_p99_ms", stats.pct(lags, 0.99))
  add("lag_max_ms", stats.pct(lags, 1.0))
  local user, sys = cpu_us()
  add("cpu_user_us", user)
  add("cpu_sys_us", sys)
  add("rss_now_kb", rss_kb())
  if hist then -- the bucket of the 99th and 99.9th percentile packet: "< edge" ms
    local _, p99, p999, over_5ms_pct = stats.hist_figures(hist)
    add("lag_hist", table.concat(hist, ","))
    add("lag_pkt_p99_below_ms", p99)
    add("lag_pkt_p999_below_ms", p999)
    add("lag_pkt_over_5ms_pct", over_5ms_pct)
  end
  add("heap_now_kb", collectgarbage("count"))
  stats.emit("b2 summary " .. table.concat(parts, " "))
end

sip.serve({ host = host, port = port, handler = handler }, function(listener)
  task.defer(summary) -- at the end, however it ends (SIGTERM cancels the root scope)
  stats.emit(("b2 listening %s:%d hold=%gs pid=%d"):format(host, port, hold, stats.getpid()))
  stats.each_second(max_seconds, function()
    local ls = listener:stats()
    -- RTP packets so far: the ended calls' plus the live ones'
    local tx, rx, lag = stats.live_rtp(live)
    tx, rx = tx + st.tx, rx + st.rx
    local user, sys = cpu_us()
    local rss = rss_kb()
    if st.active > 0 and st.active >= st.peak_tick_active then -- the memory at the most calls a tick saw
      st.peak_tick_active, st.rss_at_peak_kb, st.heap_at_peak_kb = st.active, rss, collectgarbage("count")
    end
    stats.emit(("b2 status t=%.3f wall=%.3f active=%d answered=%d ended=%d failed=%d "
      .. "sip_rx=%d sip_tx=%d retrans=%d sip_calls=%d sip_txns=%d "
      .. "rtp_tx=%d rtp_rx=%d live_lag_max_ms=%.3f cpu_user_us=%d cpu_sys_us=%d rss_kb=%d heap_kb=%d")
      :format(task.now(), stats.wall(), st.active, st.answered, st.ended, st.answer_failed,
        ls.rx, ls.tx, ls.retransmits, ls.calls, ls.transactions,
        tx, rx, lag, user, sys, rss, collectgarbage("count")))
  end)
end)
