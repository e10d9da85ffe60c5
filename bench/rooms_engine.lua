-- Rooms benchmark (bench/rooms.sh), the engine side: like bench/b2_engine.lua
-- every inbound call is answered and hung up by the engine HOLD seconds after
-- the ACK, but instead of a tone straight into its RTP each caller joins a
-- room:
--
--   MODE none   no room: a 440 Hz tone into the call's RTP (B2)
--   MODE K      rooms of K callers (answer order: callers 1..K share the first
--               room, ...); each hears the mix of the K−1 others
--   MODE hold   a room per caller with a looped WAV track in it (hold music)
--
--   moonline run bench/rooms_engine.lua HOST PORT HOLD MAX_SECONDS MODE CALLS QUIET WAV
--
-- Once CALLS calls are up, it waits 1.5 s and measures a window until 1 s
-- before the first hang-up (all calls up, no signalling): the CPU time
-- (getrusage), the RTP packets sent and received, the member-ticks of the
-- rooms (members × ticks); then prints one `rooms window ...` line. When it
-- ends (SIGTERM from bench/rooms.sh) it prints `rooms summary ...`: calls,
-- RSS before the first call and at the peak, the per-packet send lag
-- (rtp_stats().lag_hist) and the rooms' worst tick lag (room:stats()).
local task = require "moonline.task"
local sip = require "moonline.sip"
local room = require "moonline.room"
-- bench/lib/call_stats.lua, next to this script
package.path = debug.getinfo(1, "S").source:match("^@?(.-)[^/]*$") .. "lib/?.lua;" .. package.path
local stats = require "call_stats"
local rss_kb = stats.rss_kb

local host = arg[1] or "127.0.0.1"
local port = tonumber(arg[2]) or 25060
local hold = tonumber(arg[3]) or 10
local max_seconds = tonumber(arg[4]) or 3600
local mode = arg[5] or "2"
local calls_wanted = tonumber(arg[6]) or 100
local quiet = tonumber(arg[7]) or 10
local wav = arg[8] or "/tmp/rooms_hold.wav"
local K = mode == "hold" and 1 or tonumber(mode) -- callers per room; nil: no rooms
assert(mode == "none" or (K and K >= 1), "rooms: MODE is none, hold or a room size")

local function cpu_us() -- user + system: this process, microseconds
  local user, sys = stats.cpu_us()
  return user + sys
end

-- hold music: 2 s of a two-note chord, 16 kHz mono s16le (the room's rate:
-- no conversion when a track starts)
local function write_wav(path)
  local rate, n = 16000, 32000
  local out = {}
  for i = 0, n - 1 do
    local t = i / rate
    local v = math.floor(6000 * math.sin(2 * math.pi * 330 * t) + 4000 * math.sin(2 * math.pi * 495 * t))
    if v < 0 then v = v + 65536 end
    out[#out + 1] = string.char(v % 256, math.floor(v / 256))
  end
  local data = table.concat(out)
  local function u32(x) return string.char(x % 256, math.floor(x / 256) % 256, math.floor(x / 65536) % 256,
    math.floor(x / 16777216)) end
  local function u16(x) return string.char(x % 256, math.floor(x / 256)) end
  local f = assert(io.open(path, "wb"))
  f:write("RIFF", u32(36 + #data), "WAVE", "fmt ", u32(16), u16(1), u16(1), u32(rate), u32(rate * 2),
    u16(2), u16(16), "data", u32(#data), data)
  f:close()
end
if mode == "hold" then write_wav(wav) end

local st = {
  answered = 0, answer_failed = 0, join_failed = 0, ended = 0, active = 0, max_active = 0,
  tx = 0, rx = 0, rss_base_kb = rss_kb(), rss_at_peak_kb = 0, peak_active = 0,
  t_first_answer = 0, t_last_answer = 0,
}
local hist = stats.hist_new() -- per packet send lag (rtp_stats().lag_hist)
local live = {} -- call -> true while answered
local rooms = {} -- made in the listener's scope, so that they outlive the handlers

local function add_stats(r)
  st.tx = st.tx + (r.tx_packets or 0)
  st.rx = st.rx + (r.rx_packets or 0)
  if r.lag_hist then stats.hist_add(hist, r.lag_hist) end
end

local function handler(call)
  if not stats.answer(call, st, "rooms") then return end
  local n = st.answered - 1 -- callers answered before this one
  live[call] = true
  task.defer(function()
    live[call] = nil
    st.active = st.active - 1
    st.ended = st.ended + 1
    add_stats(call:rtp_stats())
  end)
  if not K then
    call:tone(440, 0.3)
  else
    local r = rooms[math.floor(n / K) + 1]
    if not (r and r:add(call)) then
      st.join_failed = st.join_failed + 1
    elseif mode == "hold" then
      local track, terr = r:play(wav, { loop = true })
      if not track then
        st.join_failed = st.join_failed + 1
        io.stderr:write("rooms: hold track: ", tostring(terr), "\n")
      end
    end
  end
  if hold > 0 then
    call:wait("confirmed")
    task.with_timeout(hold, call.wait, call, "ended")
    call:hangup()
  end
  call:wait("ended")
end

-- RTP packets so far (ended calls and live ones) and member-ticks per room,
-- 50 calls at a time so that this does not hold up the packets
local function snapshot()
  local tx, rx = stats.live_rtp(live)
  local ticks, members = {}, 0
  for i, r in ipairs(rooms) do
    local s = r:stats()
    ticks[i] = s.ticks
    members = members + s.members
  end
  return { t = task.now(), cpu = cpu_us(), pkts = tx + rx + st.tx + st.rx, ticks = ticks, members = members }
end

local function measure_window()
  while st.active < calls_wanted do task.sleep(0.1) end
  task.sleep(1.5)
  local a = snapshot()
  local t_end = st.t_first_answer + hold - 1
  if t_end - a.t < 3 then io.stderr:write("rooms: the quiet window is under 3 s\n") end
  task.sleep(math.max(0.5, t_end - a.t))
  local b = snapshot()
  local member_ticks, room_ticks = 0, 0
  for i, r in ipairs(rooms) do
    local d = b.ticks[i] - a.ticks[i]
    room_ticks = room_ticks + d
    member_ticks = member_ticks + d * r:stats().members
  end
  local dt, dcpu = b.t - a.t, b.cpu - a.cpu
  stats.emit(("rooms window mode=%s seconds=%.3f active=%d rooms_live=%d members=%d cpu_us=%d pkts=%d "
    .. "room_ticks=%d member_ticks=%d cpu_pct=%.1f")
    :format(mode, dt, st.active, #rooms > 0 and math.ceil(st.active / K) or 0, b.members, dcpu, b.pkts - a.pkts,
      room_ticks, member_ticks, dcpu / dt / 1e4))
end

local function summary()
  for c in pairs(live) do add_stats(c:rtp_stats()) end
  local lag_max, lag_sum, nr, late = 0, 0, 0, 0
  local lags = {}
  for _, r in ipairs(rooms) do
    local ok, s = pcall(r.stats, r) -- closed already: no figure
    if ok and s.ticks > 0 then
      nr = nr + 1
      lags[#lags + 1] = s.max_tick_lag_ms
      lag_sum = lag_sum + s.max_tick_lag_ms
      if s.max_tick_lag_ms > lag_max then lag_max = s.max_tick_lag_ms end
      late = late + s.late_ticks
    end
  end
  table.sort(lags)
  local total, p99, _, over_5ms_pct = stats.hist_figures(hist)
  stats.emit(("rooms summary mode=%s answered=%d answer_failed=%d join_failed=%d ended=%d max_active=%d "
    .. "rooms_used=%d room_tick_lag_max_ms=%.3f room_tick_lag_p50_ms=%.3f late_ticks=%d "
    .. "lag_hist=%s lag_pkt_p99_below_ms=%s lag_pkt_over_5ms_pct=%.3f "
    .. "rss_base_kb=%d rss_at_peak_kb=%d peak_active=%d")
    :format(mode, st.answered, st.answer_failed, st.join_failed, st.ended, st.max_active,
      nr, lag_max, stats.pct(lags, 0.5), late,
      table.concat(hist, ","), total > 0 and p99 or "n/a", over_5ms_pct,
      st.rss_base_kb, st.rss_at_peak_kb, st.peak_active))
end

sip.serve({ host = host, port = port, handler = handler }, function()
  if K then
    for i = 1, math.ceil(calls_wanted / K) do rooms[i] = room.create("r" .. i, { max = K + 1 }) end
  end
  -- the baseline after the rooms exist (empty rooms do not tick)
  collectgarbage()
  st.rss_base_kb = rss_kb()
  task.defer(summary) -- SIGTERM cancels the root scope
  task.spawn("window", measure_window)
  stats.emit(("rooms listening %s:%d mode=%s hold=%gs calls=%d quiet=%gs pid=%d")
    :format(host, port, mode, hold, calls_wanted, quiet, stats.getpid()))
  stats.each_second(max_seconds, function()
    local rss = rss_kb()
    if st.active > 0 and st.active >= st.peak_active then
      st.peak_active, st.rss_at_peak_kb = st.active, rss
    end
  end)
end)
