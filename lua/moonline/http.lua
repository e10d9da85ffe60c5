-- moonline.http: an HTTP/1.1 client on the engine loop (libwebsockets + OpenSSL).
--
--   local http = require "moonline.http"
--   local res, err = http.request {
--     method = "POST", url = "https://host:port/path",
--     headers = { ["content-type"] = "application/json" }, body = "…",
--     timeout = 30,       -- seconds: connect + request + response headers
--     idle_timeout = 60,  -- seconds a read may wait for the next bytes
--   }
--   res.status, res.headers["content-type"]
--   local chunk = res:read()   -- next body bytes | nil at the end | nil, err
--   local body = res:read_all()
--   res:close()
--
-- Other options: insecure = true (accept any TLS certificate), ca_file = path
-- (trust this CA bundle instead of the system's), want_headers = { "x-request-id" }
-- (response headers libwebsockets does not know by name; the known ones are
-- always in res.headers), max_buffer = bytes (default 1 MiB: past it the
-- connection stops reading until the body is read).
--
-- The response is a resource of the calling task's scope: the scope's exit,
-- a cancellation or the garbage collector closes it. Errors: "connection
-- refused", "timeout", "tls: …", "bad url: …", "getaddrinfo: …",
-- "connection closed before the end of the body", "closed".
local core = require "moonline.core"
local task = require "moonline.task"

local error = error
local pairs = pairs
local setmetatable = setmetatable
local tostring = tostring
local type = type
local concat = table.concat

local waitable = task.waitable
local await = task.await
local http_request = core.http_request

local Raw = core.methods("moonline.http")
local raw_headers, raw_read, raw_close, raw_buffered = Raw.headers, Raw.read, Raw.close, Raw.buffered

local _M = {}

local Response = {}
Response.__index = Response
_M.Response = Response

Response.__tostring = function(self)
  return "moonline http response " .. tostring(self.status) .. " (" .. tostring(self._h) .. ")"
end

--- res:read() -> chunk | nil (end of body) | nil, err
function Response:read()
  local h = self._h
  while true do
    waitable("http:read")
    local ok, a, b = raw_read(h)
    if ok then
      if a then
        return a
      elseif a == false then
        return nil
      end -- nil: woken, look again
    elseif ok == false then
      return nil, a
    else
      return await(ok, a, b) -- raises Cancelled
    end
  end
end

--- res:read_all([max_bytes]) -> body | nil, err  (the response is closed after)
function Response:read_all(max)
  max = max or 64 * 1024 * 1024
  local parts, n = {}, 0
  while true do
    local chunk, err = self:read()
    if not chunk then
      self:close()
      if err then
        return nil, err
      end
      return concat(parts)
    end
    n = n + #chunk
    if n > max then
      self:close()
      return nil, "body larger than " .. max .. " bytes"
    end
    parts[#parts + 1] = chunk
  end
end

--- res:close(): idempotent; wakes a reader with nil, "closed"
function Response:close()
  raw_close(self._h)
end

--- res:buffered() -> bytes queued, queue capacity, paused (diagnostics)
function Response:buffered()
  return raw_buffered(self._h)
end

--- request(opts) -> res | nil, err
function _M.request(opts)
  if type(opts) ~= "table" then
    error("moonline.http.request: expected a table of options", 2)
  end
  if type(opts.url) ~= "string" then
    error("moonline.http.request: opts.url must be a string", 2)
  end
  waitable("http.request")
  local ok, h, sid = http_request(opts)
  if not ok then
    if ok == nil then
      return await(ok, h, sid) -- cancelled before it started
    end
    return nil, h
  end
  while true do
    waitable("http.request")
    local hok, status, headers = raw_headers(h)
    if hok then
      if status then
        return setmetatable({ status = status, headers = headers, _h = h }, Response)
      end -- woken: look again
    else
      raw_close(h)
      if hok == false then
        return nil, status
      end
      return await(hok, status, headers) -- raises Cancelled
    end
  end
end

--- get(url [, opts]) -> status, body, headers | nil, err
function _M.get(url, opts)
  local o = {}
  for k, v in pairs(opts or {}) do
    o[k] = v
  end
  o.method, o.url = "GET", url
  local res, err = _M.request(o)
  if not res then
    return nil, err
  end
  local body, rerr = res:read_all()
  if not body then
    return nil, rerr
  end
  return res.status, body, res.headers
end

return _M
