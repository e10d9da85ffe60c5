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

local host = arg[1] or "127.0.0.1"
local port = tonumber(arg[2]) or 25060
local hold = tonumber(arg[3]) or 10
local max_seconds = tonumber(arg[4]) or 3600
local PTIME = 0.020

local ffi = require "ffi"
ffi.cdef [[
  struct b2_timeval { long tv_sec; long tv_usec; };
  struct b2_rusage { struct b2_timeval ru_utime, ru_stime; long ru_pad[14]; };
  int getrusage(int who, struct b2_rusage *usage);
  int gettimeofday(struct b2_timeval *tv, void *tz);
  int getpid(void);
]]
local tv = ffi.new("struct b2_timeval")
local function wall() -- seconds since the epoch, to line up with the driver's samples
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) + tonumber(tv.tv_usec) / 1e6
end
local ru = ffi.new("struct b2_rusage")
local function cpu_us() -- user, system: this process, microseconds
  ffi.C.getrusage(0, ru)
  return tonumber(ru.ru_utime.tv_sec) * 1e6 + tonumber(ru.ru_utime.tv_usec),
    tonumber(ru.ru_stime.tv_sec) * 1e6 + tonumber(ru.ru_stime.tv_usec)
end

local function rss_kb()
  local f = io.open("/proc/self/statm")
  if not f then return 0 end
  local _, res = f:read("*n", "*n")
  f:close()
  return (res or 0) * 4 -- pages of 4 KiB
end

local st = {
  answered = 0, answer_failed = 0, ended = 0, active = 0, max_active = 0,
  tx = 0, rx = 0, rx_bad = 0, tx_expected = 0, tx_short_calls = 0,
  lag_over_5ms = 0, lag_over_20ms = 0, media_s = 0,
  rss_base_kb = rss_kb(), heap_base_kb = collectgarbage("count"),
  rss_at_peak_kb = 0, heap_at_peak_kb = 0, peak_tick_active = 0,
  t_first_answer = 0, t_last_answer = 0, t_first_hangup = 0, t_last_end = 0, -- engine clock, s
}
local lags = {} -- per call: the worst send lag, ms
-- per packet send lag, when the engine counts it (rtp_stats().lag_hist: packets
-- whose lag was < 0.5, 1, 2, 3, 5, 10, 20 ms and the rest)
local HIST_EDGES = { "0.5", "1", "2", "3", "5", "10", "20", "inf" }
local hist = nil
local live = {} -- call -> true while it is answered

local function handler(call)
  local ok, err = call:answer()
  if not ok then
    st.answer_failed = st.answer_failed + 1
    io.stderr:write("b2: answer failed: ", tostring(err), "\n")
    return
  end
  local t0 = task.now()
  if st.answered == 0 then st.t_first_answer = t0 end
  st.t_last_answer = t0
  st.answered = st.answered + 1
  st.active = st.active + 1
  if st.active > st.max_active then st.max_active = st.active end
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
        hist = hist or { 0, 0, 0, 0, 0, 0, 0, 0 }
        for i = 1, 8 do hist[i] = hist[i] + (r.lag_hist[i] or 0) end
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

local function pct(sorted, p)
  if #sorted == 0 then return 0 end
  return sorted[math.max(1, math.ceil(#sorted * p))]
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
  add("lag_p50_ms", pct(lags, 0.50))
  add("lag_p99_ms", pct(lags, 0.99))
  add("lag_max_ms", pct(lags, 1.0))
  local user, sys = cpu_us()
  add("cpu_user_us", user)
  add("cpu_sys_us", sys)
  add("rss_now_kb", rss_kb())
  if hist then -- the bucket of the 99th and 99.9th percentile packet: "< edge" ms
    local total, acc, p99, p999 = 0, 0, nil, nil
    for i = 1, 8 do total = total + hist[i] end
    for i = 1, 8 do
      acc = acc + hist[i]
      if not p99 and acc >= 0.99 * total then p99 = HIST_EDGES[i] end
      if not p999 and acc >= 0.999 * total then p999 = HIST_EDGES[i] end
    end
    add("lag_hist", table.concat(hist, ","))
    add("lag_pkt_p99_below_ms", p99)
    add("lag_pkt_p999_below_ms", p999)
    add("lag_pkt_over_5ms_pct", total > 0 and 100 * (hist[6] + hist[7] + hist[8]) / total or 0)
  end
  add("heap_now_kb", collectgarbage("count"))
  io.stdout:write("b2 summary ", table.concat(parts, " "), "\n")
  io.stdout:flush()
end

sip.serve({ host = host, port = port, handler = handler }, function(listener)
  task.defer(summary) -- at the end, however it ends (SIGTERM cancels the root scope)
  io.stdout:write(("b2 listening %s:%d hold=%gs pid=%d\n"):format(host, port, hold, ffi.C.getpid()))
  io.stdout:flush()
  local start = task.now()
  while task.now() - start < max_seconds do
    task.sleep(1)
    local ls = listener:stats()
    -- RTP packets so far: the ended calls' plus the live ones', 50 calls
    -- at a time (~0.1 ms) so that this loop does not hold up the packets
    local tx, rx, lag, calls = 0, 0, 0, {}
    for c in pairs(live) do calls[#calls + 1] = c end
    for i, c in ipairs(calls) do
      if i % 50 == 0 then task.yield() end
      if live[c] then
        local r = c:rtp_stats()
        tx, rx = tx + (r.tx_packets or 0), rx + (r.rx_packets or 0)
        if (r.max_send_lag_ms or 0) > lag then lag = r.max_send_lag_ms end
      end
    end
    tx, rx = tx + st.tx, rx + st.rx
    local user, sys = cpu_us()
    local rss = rss_kb()
    if st.active > 0 and st.active >= st.peak_tick_active then -- the memory at the most calls a tick saw
      st.peak_tick_active, st.rss_at_peak_kb, st.heap_at_peak_kb = st.active, rss, collectgarbage("count")
    end
    io.stdout:write(("b2 status t=%.3f wall=%.3f active=%d answered=%d ended=%d failed=%d "
      .. "sip_rx=%d sip_tx=%d retrans=%d sip_calls=%d sip_txns=%d "
      .. "rtp_tx=%d rtp_rx=%d live_lag_max_ms=%.3f cpu_user_us=%d cpu_sys_us=%d rss_kb=%d heap_kb=%d\n")
      :format(task.now(), wall(), st.active, st.answered, st.ended, st.answer_failed,
        ls.rx, ls.tx, ls.retransmits, ls.calls, ls.transactions,
        tx, rx, lag, user, sys, rss, collectgarbage("count")))
    io.stdout:flush()
  end
end)
