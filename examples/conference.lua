-- A conference bridge: every caller joins one room and hears everybody else.
-- A caller alone in the room hears a soft tone (or the music given as a WAV);
-- pressing * mutes or unmutes yourself.
--   moonline run examples/conference.lua [host] [port] [seconds to serve] [music.wav]
local task = require "moonline.task"
local sip = require "moonline.sip"
local room = require "moonline.room"

local host, port, serve_for, music = arg[1] or "127.0.0.1", tonumber(arg[2]) or 5060, tonumber(arg[3]), arg[4]

local bridge = room.create("bridge") -- closes when the script ends: everyone still in gets a BYE
local waiting = music and assert(bridge:play(music, { loop = true })) or bridge:play(425, { level = 0.05 })
local callers = 0

local function joined(n)
  callers = callers + n
  bridge:mute(waiting, callers > 1) -- the waiting sound only for a caller alone
end

sip.serve({ host = host, port = port, handler = function(call)
  assert(call:answer())
  assert(bridge:add(call))
  joined(1)
  task.defer(function() joined(-1) end) -- however the call ends
  local muted = false
  for digit in function() return call:read_dtmf() end do -- nil when the call ends
    if digit == "*" then
      muted = not muted
      bridge:mute(call, muted)
    end
  end
end }, function()
  print(("conference bridge on %s:%d"):format(host, port))
  task.sleep(serve_for or math.huge)
end)
