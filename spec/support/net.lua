-- Ports for specs.
local uv = require "luv"

local _M = {}

--- free_port([kind = "udp"]) -> a port of 127.0.0.1 ("udp" or "tcp") that
-- was free a moment ago: for a peer to listen on, or for nothing to listen on
function _M.free_port(kind)
  local s = kind == "tcp" and uv.new_tcp() or uv.new_udp()
  assert(s:bind("127.0.0.1", 0))
  local port = s:getsockname().port
  s:close()
  return port
end

return _M
