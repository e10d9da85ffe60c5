-- Audio helpers for the interop specs: find the tools, read a WAV file's
-- samples through sox, measure a tone (level in dBFS, frequency by zero
-- crossings) and read sox's own measures (stats, stat -freq).
--   local audio = require "support.audio"
--   local info = audio.info("rec.wav")            -- { rate =, channels =, samples =, duration = }
--   local s = audio.samples("rec.wav")            -- { -1 <= x < 1, … }
--   local first, last = audio.find_above(s, 0.1)  -- first and last sample louder than 0.1
--   local m = audio.measure(s, first, last, 8000) -- { rms_db =, peak_db =, freq = }
--   local st = audio.sox_stats("rec.wav", 0.5, 1.9) -- sox's { rms_db =, peak_db =, dominant_hz =, … }
-- All of them run sox through support.process, from a task: the loop keeps running.
local process = require "support.process"

local _M = {}

--- which(cmd) -> the program's path on $PATH, or nil
function _M.which(cmd)
  for dir in (os.getenv("PATH") or "/usr/bin:/bin"):gmatch("[^:]+") do
    local path = dir .. "/" .. cmd
    local f = io.open(path)
    if f then
      f:close()
      return path
    end
  end
end

--- sox(args) -> stdout, stderr; fails the caller if sox does not exit 0
function _M.sox(args, opts)
  local code, out, err = process.run("sox", args, { timeout = (opts and opts.timeout) or 30 })
  assert(code == 0, ("sox %s: exit %s: %s"):format(table.concat(args, " "), tostring(code), err))
  return out, err
end

--- info(path) -> { rate =, channels =, samples =, duration = } (sox --i)
function _M.info(path)
  local out = _M.sox({ "--i", path })
  local rate = tonumber(out:match("Sample Rate%s*:%s*(%d+)"))
  local channels = tonumber(out:match("Channels%s*:%s*(%d+)"))
  local samples = tonumber(out:match("Duration%s*:[^=]*=%s*(%d+) samples"))
  assert(rate and channels and samples, "cannot read sox --i " .. path .. ": " .. out)
  return { rate = rate, channels = channels, samples = samples, duration = samples / rate }
end

--- from_s16le(raw) -> samples as numbers in [-1, 1) (16-bit little-endian PCM)
function _M.from_s16le(raw)
  local s, byte = {}, string.byte
  for i = 1, #raw - 1, 2 do
    local lo, hi = byte(raw, i, i + 1)
    local v = hi * 256 + lo
    if v >= 32768 then v = v - 65536 end
    s[#s + 1] = v / 32768
  end
  return s
end

--- to_s16le(samples) -> 16-bit little-endian PCM (samples in [-1, 1], clipped)
function _M.to_s16le(s)
  local out, char, floor = {}, string.char, math.floor
  for i = 1, #s do
    local v = floor(s[i] * 32767 + 0.5)
    if v > 32767 then v = 32767 elseif v < -32768 then v = -32768 end
    if v < 0 then v = v + 65536 end
    out[i] = char(v % 256, floor(v / 256))
  end
  return table.concat(out)
end

--- sine(hz, seconds, rate, level) -> samples of a sine
function _M.sine(hz, seconds, rate, level)
  local s = {}
  for i = 1, math.floor(seconds * rate) do
    s[i] = level * math.sin(2 * math.pi * hz * (i - 1) / rate)
  end
  return s
end

--- voiced_seconds(samples [, rate = 16000 [, from_s [, to_s]]]) -> seconds of
-- 20 ms frames louder than -40 dBFS RMS: how long something was heard
-- (speech, a reply), in all of samples or from from_s to to_s seconds
function _M.voiced_seconds(samples, rate, from_s, to_s)
  rate = rate or 16000
  local n, frame = 0, math.floor(rate / 50)
  local first = from_s and math.floor(from_s * rate) + 1 or 1
  local last = math.min(#samples, to_s and math.floor(to_s * rate) or #samples)
  for i = first, last - frame + 1, frame do
    if _M.dbfs(_M.rms(samples, i, i + frame - 1)) > -40 then n = n + 1 end
  end
  return n * 0.02
end

--- tone_level(s, rate, hz) -> the amplitude of the hz component of s (a
-- Goertzel filter over all of s): tells tones in a mix apart, which zero
-- crossings cannot
function _M.tone_level(s, rate, hz)
  local w = 2 * math.pi * hz / rate
  local coeff = 2 * math.cos(w)
  local q1, q2 = 0, 0
  for i = 1, #s do
    local q0 = coeff * q1 - q2 + s[i]
    q2, q1 = q1, q0
  end
  local power = q1 * q1 + q2 * q2 - coeff * q1 * q2
  return 2 * math.sqrt(math.max(power, 0)) / #s
end

--- samples(path) -> the first channel's samples as numbers in [-1, 1)
function _M.samples(path)
  return _M.from_s16le(_M.sox({ path, "-t", "raw", "-e", "signed-integer", "-b", "16", "-L", "-" }))
end

--- dbfs(amplitude) -> 20·log10(amplitude), full scale = 1
function _M.dbfs(a)
  return a > 0 and 20 * math.log10(a) or -math.huge
end

--- find_above(s, threshold) -> index of the first and the last sample with
-- |x| >= threshold (nil when there is none)
function _M.find_above(s, threshold)
  local first, last
  for i = 1, #s do
    if math.abs(s[i]) >= threshold then
      first = first or i
      last = i
    end
  end
  return first, last
end

--- peak(s, from, to) -> the largest |x| of s[from..to] (0 when empty)
function _M.peak(s, from, to)
  local p = 0
  for i = math.max(from, 1), math.min(to, #s) do
    p = math.max(p, math.abs(s[i]))
  end
  return p
end

--- rms(s, from, to) -> the RMS of s[from..to]
function _M.rms(s, from, to)
  local sum, n = 0, 0
  for i = math.max(from, 1), math.min(to, #s) do
    sum, n = sum + s[i] * s[i], n + 1
  end
  return n > 0 and math.sqrt(sum / n) or 0
end

--- measure(s, from, to, rate) -> { rms_db =, peak_db =, freq =, min_window_rms_db = }
-- freq counts the rising zero crossings (interpolated between samples);
-- min_window_rms_db is the quietest 20 ms window: a dropout shows there.
function _M.measure(s, from, to, rate)
  local t_first, t_last, crossings
  for i = from + 1, to do
    local a, b = s[i - 1], s[i]
    if a < 0 and b >= 0 then
      local t = (i - 1) + a / (a - b) -- where the line between them crosses 0
      t_first = t_first or t
      t_last = t
      crossings = (crossings or 0) + 1
    end
  end
  local window, min_rms = math.floor(rate / 50), math.huge
  for w = from, to - window + 1, window do
    min_rms = math.min(min_rms, _M.rms(s, w, w + window - 1))
  end
  return {
    rms_db = _M.dbfs(_M.rms(s, from, to)),
    peak_db = _M.dbfs(_M.peak(s, from, to)),
    freq = crossings and crossings > 1 and (crossings - 1) * rate / (t_last - t_first) or 0,
    min_window_rms_db = _M.dbfs(min_rms),
  }
end

--- sox_stats(path, start, length) -> sox's measures of that stretch (seconds):
-- { rms_db =, peak_db = } from `stats`, { rough_hz = } from `stat` and
-- { dominant_hz = } the strongest bin of `stat -freq` (summed over its windows)
function _M.sox_stats(path, start, length)
  local _, err = _M.sox({ path, "-n", "trim", tostring(start), tostring(length), "stat", "-freq", "stats" })
  local power = {}
  for hz, p in err:gmatch("\n%s*(%d+%.%d+)%s+(%d+%.?%d*)") do
    power[hz] = (power[hz] or 0) + tonumber(p)
  end
  local dominant, best = nil, -1
  for hz, p in pairs(power) do
    if p > best then dominant, best = tonumber(hz), p end
  end
  return {
    rms_db = tonumber(err:match("RMS lev dB%s+(%S+)")),
    peak_db = tonumber(err:match("Pk lev dB%s+(%S+)")),
    rough_hz = tonumber(err:match("Rough%s+frequency:%s+(%S+)")),
    dominant_hz = dominant,
    output = err,
  }
end

return _M
