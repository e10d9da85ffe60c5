-- What the engine sides of the call benchmarks (bench/b2_engine.lua,
-- bench/rooms_engine.lua) share: the process's CPU time, RSS and wall clock,
-- answering a call with the counters, the RTP packets of the live calls, the
-- per-packet send lag histogram (rtp_stats().lag_hist), percentiles, the
-- once-a-second loop. The scripts find it next to themselves:
--
--   package.path = debug.getinfo(1, "S").source:match("^@?(.-)[^/]*$") .. "lib/?.lua;" .. package.path
--   local stats = require "call_stats"
local task = require "moonline.task"
local ffi = require "ffi"

local M = {}

ffi.cdef [[
  struct call_stats_timeval { long tv_sec; long tv_usec; };
  struct call_stats_rusage { struct call_stats_timeval ru_utime, ru_stime; long ru_pad[14]; };
  int getrusage(int who, struct call_stats_rusage *usage);
  int gettimeofday(struct call_stats_timeval *tv, void *tz);
  int getpid(void);
]]

function M.getpid()
  return ffi.C.getpid()
end

local tv = ffi.new("struct call_stats_timeval")
function M.wall() -- seconds since the epoch, to line up with the driver's samples
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) + tonumber(tv.tv_usec) / 1e6
end

local ru = ffi.new("struct call_stats_rusage")
function M.cpu_us() -- user, system: this process, microseconds
  ffi.C.getrusage(0, ru)
  return tonumber(ru.ru_utime.tv_sec) * 1e6 + tonumber(ru.ru_utime.tv_usec),
    tonumber(ru.ru_stime.tv_sec) * 1e6 + tonumber(ru.ru_stime.tv_usec)
end

function M.rss_kb()
  local f = io.open("/proc/self/statm")
  if not f then return 0 end
  local _, res = f:read("*n", "*n")
  f:close()
  return (res or 0) * 4 -- pages of 4 KiB
end

-- one line on stdout, flushed (the driver reads it while we run)
function M.emit(line)
  io.stdout:write(line, "\n")
  io.stdout:flush()
end

-- answers CALL and counts it in ST (answered, answer_failed, active,
-- max_active, t_first_answer, t_last_answer: engine clock); false if the
-- answer failed (told on stderr with TAG)
function M.answer(call, st, tag)
  local ok, err = call:answer()
  if not ok then
    st.answer_failed = st.answer_failed + 1
    io.stderr:write(tag, ": answer failed: ", tostring(err), "\n")
    return false
  end
  local t0 = task.now()
  if st.answered == 0 then st.t_first_answer = t0 end
  st.t_last_answer = t0
  st.answered = st.answered + 1
  st.active = st.active + 1
  if st.active > st.max_active then st.max_active = st.active end
  return true
end

-- the RTP packets so far of the calls in LIVE (call -> true), 50 calls at a
-- time (~0.1 ms) so that this does not hold up the packets -> tx, rx, the
-- worst send lag of any of them (ms)
function M.live_rtp(live)
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
  return tx, rx, lag
end

-- per packet send lag, when the engine counts it (rtp_stats().lag_hist: packets
-- whose lag was < 0.5, 1, 2, 3, 5, 10, 20 ms and the rest)
local HIST_EDGES = { "0.5", "1", "2", "3", "5", "10", "20", "inf" }

function M.hist_new()
  return { 0, 0, 0, 0, 0, 0, 0, 0 }
end

function M.hist_add(hist, lag_hist)
  for i = 1, 8 do hist[i] = hist[i] + (lag_hist[i] or 0) end
end

-- -> the packets, the bucket of the 99th and of the 99.9th percentile packet
-- ("< edge" ms; with no packets, the first), the % of packets 5 ms late or more
function M.hist_figures(hist)
  local total, acc, p99, p999 = 0, 0, nil, nil
  for i = 1, 8 do total = total + hist[i] end
  for i = 1, 8 do
    acc = acc + hist[i]
    if not p99 and acc >= 0.99 * total then p99 = HIST_EDGES[i] end
    if not p999 and acc >= 0.999 * total then p999 = HIST_EDGES[i] end
  end
  return total, p99, p999, total > 0 and 100 * (hist[6] + hist[7] + hist[8]) / total or 0
end

-- the P quantile (0 < P <= 1) of a sorted list; 0 if empty
function M.pct(sorted, p)
  if #sorted == 0 then return 0 end
  return sorted[math.max(1, math.ceil(#sorted * p))]
end

-- FN() once a second for MAX_SECONDS
function M.each_second(max_seconds, fn)
  local start = task.now()
  while task.now() - start < max_seconds do
    task.sleep(1)
    fn()
  end
end

return M
