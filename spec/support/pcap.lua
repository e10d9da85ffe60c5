-- RTP captures for sipp's play_pcap_audio, written here so a spec decides
-- what a real peer sends: the codec, the ptime, the audio.
--   local pcap = require "support.pcap"
--   pcap.write_rtp(path, { samples = s, ptime = 30, pt = 0 })  -- s: 8 kHz, [-1, 1]
-- sipp replaces the addresses and ports and keeps the packets' timing, so
-- each packet is stamped ptime after the previous one.
local bit = require "bit"

local _M = {}

local band, bor, rshift, lshift = bit.band, bit.bor, bit.rshift, bit.lshift
local char, floor = string.char, math.floor

local function u16be(v) return char(band(rshift(v, 8), 255), band(v, 255)) end
local function u32be(v)
  return char(band(rshift(v, 24), 255), band(rshift(v, 16), 255), band(rshift(v, 8), 255), band(v, 255))
end
local function u16le(v) return char(band(v, 255), band(rshift(v, 8), 255)) end
local function u32le(v)
  return char(band(v, 255), band(rshift(v, 8), 255), band(rshift(v, 16), 255), band(rshift(v, 24), 255))
end

--- ulaw(x) -> the G.711 µ-law byte of a linear sample in [-32768, 32767]
function _M.ulaw(x)
  local sign = 0
  if x < 0 then
    x = -x
    sign = 0x80
  end
  if x > 32635 then x = 32635 end
  x = x + 0x84
  local exp, mask = 7, 0x4000
  while exp > 0 and band(x, mask) == 0 do
    exp = exp - 1
    mask = rshift(mask, 1)
  end
  local mantissa = band(rshift(x, exp + 3), 0x0F)
  return band(bit.bnot(bor(sign, lshift(exp, 4), mantissa)), 0xFF)
end

-- one Ethernet/IPv4/UDP frame around payload (checksums 0: sipp rewrites them)
local function frame(payload)
  local udp = u16be(6000) .. u16be(6002) .. u16be(8 + #payload) .. u16be(0) .. payload
  local ip = char(0x45, 0) .. u16be(20 + #udp) .. u16be(0) .. u16be(0) .. char(64, 17) .. u16be(0)
    .. char(127, 0, 0, 1) .. char(127, 0, 0, 1)
  return string.rep("\0", 12) .. u16be(0x0800) .. ip .. udp
end

--- write_rtp(path, { samples =, ptime = 20, pt = 0, ssrc = }) -> packets written
-- samples are 8 kHz in [-1, 1], encoded as µ-law (pt 0).
function _M.write_rtp(path, opts)
  local ptime, pt = opts.ptime or 20, opts.pt or 0
  assert(pt == 0, "only PCMU (pt 0) is written")
  local per = 8 * ptime
  local f = assert(io.open(path, "wb"))
  f:write(u32le(0xa1b2c3d4) .. u16le(2) .. u16le(4) .. u32le(0) .. u32le(0) .. u32le(65535) .. u32le(1))
  local s, n, seq, ts, t_us = opts.samples, 0, 1000, 160000, 0
  for i = 1, #s - per + 1, per do
    local payload = {}
    for k = 0, per - 1 do payload[k + 1] = char(_M.ulaw(floor(s[i + k] * 32767 + 0.5))) end
    local rtp = char(0x80, n == 0 and bor(0x80, pt) or pt) .. u16be(seq % 65536) .. u32be(ts)
      .. u32be(opts.ssrc or 0x4d4f4f4e) .. table.concat(payload)
    local pkt = frame(rtp)
    f:write(u32le(floor(t_us / 1e6)) .. u32le(t_us % 1e6) .. u32le(#pkt) .. u32le(#pkt) .. pkt)
    n, seq, ts, t_us = n + 1, seq + 1, ts + per, t_us + ptime * 1000
  end
  f:close()
  return n
end

return _M
