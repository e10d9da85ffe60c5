-- spec/support/http_server.lua: a scriptable HTTP/1.1 server for specs,
-- written with plain luv callbacks on the engine's own loop (not tasks).
--
--   local http_server = require "support.http_server"
--   local srv = http_server.start {            -- inside a task: closed when its scope exits
--     responses = {                            -- the n-th request gets responses[n]
--       { status = 429, headers = { ["retry-after"] = "0" }, body = "slow down" },
--       { status = 200, headers = { ["content-type"] = "text/event-stream" },
--         chunks = { "data: a\n\n", "data: b\n\n" },  -- sent chunked, in order
--         delay = 0.01,                        -- seconds before each chunk (or a list: per chunk)
--         first_byte_delay = 0.5,              -- seconds before the status line
--         drop_after = 1 },                    -- close after that many chunks
--     },                                       -- (past the end: the last one again)
--   }
--   srv.url .. "/v1/chat/completions"
--   srv.requests[i] = { method, path, headers = {lower-case}, body }
--   srv.connections, srv.peer_closed            -- accepted / closed by the client first
--
-- http_server.start_tls { cert =, key =, responses = … } serves the same over
-- TLS through `openssl s_server` (one connection at a time, stdio bridged).
local uv = require "luv"
local task = require "moonline.task"

local concat = table.concat
local format = string.format

local _M = {}

local REASONS = {
  [200] = "OK", [204] = "No Content", [400] = "Bad Request", [401] = "Unauthorized", [404] = "Not Found",
  [429] = "Too Many Requests", [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Unavailable",
}

-- Parse one request from buf: returns req, rest | nil (incomplete) | false, why
local function parse_request(buf)
  local head_end = buf:find("\r\n\r\n", 1, true)
  if not head_end then
    return nil
  end
  local head = buf:sub(1, head_end - 1)
  local method, path = head:match("^(%u+) (%S+) HTTP/1%.[01]\r?\n?")
  if not method then
    return false, "bad request line"
  end
  local headers = {}
  for line in head:gmatch("\r\n([^\r\n]*)") do
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then
      headers[name:lower()] = value
    end
  end
  local len = tonumber(headers["content-length"] or "0") or 0
  local body_start = head_end + 4
  if #buf < body_start + len - 1 then
    return nil
  end
  return { method = method, path = path, headers = headers, body = buf:sub(body_start, body_start + len - 1) },
    buf:sub(body_start + len)
end

-- Serve one connection given its io: io.write(data [, cb]), io.close(), and
-- feed(data | nil) to call as bytes (or the end) arrive.
local function session(srv, io)
  local buf, done, timers = "", false, {}
  local function after(seconds, fn)
    if not seconds or seconds <= 0 then
      return fn()
    end
    local t = uv.new_timer()
    timers[#timers + 1] = t
    srv.handles[#srv.handles + 1] = t
    t:start(math.floor(seconds * 1000 + 0.5), 0, function()
      t:close()
      if not done then
        fn()
      end
    end)
  end
  local function finish()
    if done then
      return
    end
    done = true
    io.close()
  end
  local function respond(r)
    local function delay_before(i)
      if type(r.delay) == "table" then
        return r.delay[i] or 0
      end
      return r.delay
    end
    local chunks = r.chunks
    local body = r.body
    local headers = {}
    for k, v in pairs(r.headers or {}) do
      headers[#headers + 1] = k .. ": " .. v .. "\r\n"
    end
    local chunked = chunks ~= nil
    if chunked then
      headers[#headers + 1] = "transfer-encoding: chunked\r\n"
    elseif not r.no_length then
      headers[#headers + 1] = "content-length: " .. #(body or "") .. "\r\n"
    end
    headers[#headers + 1] = "connection: close\r\n"
    local status = r.status or 200
    local head = format("HTTP/1.1 %d %s\r\n%s\r\n", status, r.reason or REASONS[status] or "Status", concat(headers))
    after(r.first_byte_delay, function()
      if not chunked then
        io.write(head .. (body or ""))
        if r.no_length then
          after(r.close_after or 0, finish)
        end
        return -- the client closes once it has the body
      end
      io.write(head)
      local i = 0
      local function next_chunk()
        i = i + 1
        if r.drop_after and i > r.drop_after then
          return finish()
        end
        local c = chunks[i]
        if c == nil then
          io.write("0\r\n\r\n")
          return
        end
        io.write(format("%x\r\n%s\r\n", #c, c))
        after(delay_before(i + 1), next_chunk)
      end
      after(delay_before(1), next_chunk)
    end)
  end
  return function(data)
    if done then
      return
    end
    if not data then
      srv.peer_closed = srv.peer_closed + 1
      done = true
      io.close()
      return
    end
    buf = buf .. data
    local req, rest = parse_request(buf)
    if req == nil then
      return
    end
    if req == false then
      io.write("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
      return finish()
    end
    buf = rest
    srv.requests[#srv.requests + 1] = req
    local n = #srv.requests
    local r = srv.responses[n] or srv.responses[#srv.responses]
    if type(r) == "function" then
      r = r(req, n)
    end
    respond(r)
  end
end

local function new_server(opts)
  local srv = {
    responses = opts.responses or { { status = 200, body = "ok" } },
    requests = {},
    connections = 0,
    peer_closed = 0,
    handles = {},
  }
  task.defer(function()
    for _, h in ipairs(srv.handles) do
      if not h:is_closing() then
        h:close()
      end
    end
  end)
  return srv
end

--- start(opts) -> srv (plain HTTP on 127.0.0.1, an ephemeral port)
function _M.start(opts)
  opts = opts or {}
  local srv = new_server(opts)
  local listener = uv.new_tcp()
  srv.handles[#srv.handles + 1] = listener
  assert(listener:bind("127.0.0.1", 0))
  assert(listener:listen(64, function(err)
    if err then
      return
    end
    local c = uv.new_tcp()
    srv.handles[#srv.handles + 1] = c
    listener:accept(c)
    srv.connections = srv.connections + 1
    local feed = session(srv, {
      write = function(data)
        if not c:is_closing() then
          c:write(data)
        end
      end,
      close = function()
        if not c:is_closing() then
          c:close()
        end
      end,
    })
    c:read_start(function(rerr, data)
      if rerr then
        data = nil
      end
      feed(data)
    end)
  end))
  srv.port = listener:getsockname().port
  srv.url = "http://127.0.0.1:" .. srv.port
  return srv
end

--- make_cert(dir) -> cert_path, key_path: a self-signed certificate for
-- localhost and 127.0.0.1 (also usable as its own CA file). Blocking.
function _M.make_cert(dir)
  local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
  local cmd = format(
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 " ..
      "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 " ..
      "-keyout %s -out %s >/dev/null 2>&1", key, cert)
  assert(os.execute(cmd) == 0 or os.execute(cmd) == true, "openssl req failed")
  return cert, key
end

-- Is something listening on 127.0.0.1:port? (read from /proc, so no
-- connection is spent on asking)
local function listening(port)
  local f = io.open("/proc/net/tcp")
  if not f then
    return true
  end
  local local_addr = format("0100007F:%04X", port)
  local found = false
  for line in f:lines() do
    local addr, st = line:match("^%s*%d+: (%x+:%x+) %x+:%x+ (%x%x)")
    if addr == local_addr and st == "0A" then
      found = true
      break
    end
  end
  f:close()
  return found
end

--- start_tls(opts) -> srv: like start, over TLS through `openssl s_server`,
-- which prints what the client sends and sends what it reads. s_server
-- serves one connection (-naccept 1) and exits; a new one is started for
-- the next connection. srv.wait_ready() waits until a process that has not
-- served a connection yet listens: call it before each request.
-- opts.cert, opts.key: PEM files (make_cert).
function _M.start_tls(opts)
  local srv = new_server(opts)
  local probe = uv.new_tcp()
  assert(probe:bind("127.0.0.1", 0))
  srv.port = probe:getsockname().port
  probe:close()
  srv.url = "https://localhost:" .. srv.port
  local stopped, proc = false, nil
  local generation, used = 0, 0
  local function spawn()
    generation = generation + 1
    local stdin, stdout = uv.new_pipe(false), uv.new_pipe(false)
    srv.handles[#srv.handles + 1] = stdin
    srv.handles[#srv.handles + 1] = stdout
    local this
    local feed = session(srv, {
      write = function(data)
        if not stdin:is_closing() then
          stdin:write(data)
        end
      end,
      close = function()
        if this and not this:is_closing() then
          this:kill("sigterm")
        end
      end,
    })
    this = uv.spawn("openssl", {
      args = { "s_server", "-quiet", "-naccept", "1", "-accept", "127.0.0.1:" .. srv.port,
               "-cert", opts.cert, "-key", opts.key },
      stdio = { stdin, stdout, nil },
      env = require("support.process").peer_env(),
    }, function()
      for _, h in ipairs({ this, stdin, stdout }) do
        if not h:is_closing() then
          h:close()
        end
      end
      if not stopped then
        spawn()
      end
    end)
    assert(this, "cannot run openssl s_server")
    proc = this
    srv.handles[#srv.handles + 1] = this
    srv.connections = srv.connections + 1
    stdout:read_start(function(err, data)
      if data and not err then
        feed(data)
      end
    end)
  end
  task.defer(function()
    stopped = true
    if proc and not proc:is_closing() then
      proc:kill("sigterm")
    end
  end)
  function srv.wait_ready()
    local deadline = task.now() + 5
    while generation <= used or not listening(srv.port) do
      assert(task.now() < deadline, "openssl s_server did not start listening")
      task.sleep(0.01)
    end
    used = generation
  end
  spawn()
  srv.wait_ready()
  return srv
end

return _M
