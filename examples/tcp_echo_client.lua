-- A TCP client in a task: connect, send lines, read the echoes, clean up.
--
--   build/moonline run --ledger examples/tcp_echo_client.lua            # own echo server
--   build/moonline run examples/tcp_echo_client.lua HOST PORT           # someone else's
--
-- The socket belongs to the scope that opened it: if anything below fails or
-- is cancelled (Ctrl-C), the scope closes it; nothing needs a pcall.
local task = require "moonline.task"
local uv = require "luv"

local host, port = arg and arg[1], arg and tonumber(arg[2])

if not host then
  -- no server given: start a luv echo server on this same loop
  local srv = uv.new_tcp()
  assert(srv:bind("127.0.0.1", 0))
  assert(srv:listen(16, function(err)
    if err then
      return
    end
    local c = uv.new_tcp()
    srv:accept(c)
    c:read_start(function(rerr, data)
      if data and not rerr then
        c:write(data)
      else
        c:close()
      end
    end)
  end))
  host, port = "127.0.0.1", srv:getsockname().port
  task.defer(function()
    srv:close()
  end)
  print("echo server on " .. host .. ":" .. port)
end

local sock, err = task.tcp_connect(host, port, { timeout = 3 })
if not sock then
  error("connect to " .. host .. ":" .. port .. " failed: " .. err, 0)
end

for _, line in ipairs({ "hello", "moonline", "bye" }) do
  assert(sock:write(line .. "\n"))
  -- reads return whatever has arrived; bound the wait for the whole line
  local ok, reply, rerr = task.with_timeout(2, function()
    local buf = ""
    while not buf:find("\n", 1, true) do
      local data, rerr = sock:read()
      if not data then
        return nil, rerr
      end
      buf = buf .. data
    end
    return buf
  end)
  if not ok then
    error("no reply within 2s", 0)
  elseif not reply then
    error("read failed: " .. rerr, 0)
  end
  print("sent " .. line .. ", got back " .. reply:gsub("\n$", ""))
end

sock:close()
