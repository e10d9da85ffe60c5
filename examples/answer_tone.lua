-- Answer every call on a SIP port with a 440 Hz tone until the caller hangs up.
--   moonline run examples/answer_tone.lua [host] [port] [seconds to serve]
local task = require "moonline.task"
local sip = require "moonline.sip"

local host, port, serve_for = arg[1] or "127.0.0.1", tonumber(arg[2]) or 5060, tonumber(arg[3])

sip.serve({ host = host, port = port, handler = function(call)
  call:answer()                  -- 200 OK with our SDP answer; RTP starts
  call:tone(440, 0.3)            -- a 440 Hz tone at -10 dBFS, until stopped
  call:wait("ended")             -- until the caller hangs up
end }, function()
  print(("answering calls on %s:%d"):format(host, port))
  task.sleep(serve_for or math.huge)  -- serve until Ctrl-C (or for serve_for seconds)
end)
