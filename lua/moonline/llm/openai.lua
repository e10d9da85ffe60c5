-- moonline.llm.openai: OpenAI-compatible chat completions, streamed (SSE),
-- with tool calls. Implements the contract in moonline/llm/init.lua.
--
--   local llm = require("moonline.llm.openai").new {
--     base_url = "https://api.openai.com/v1",   -- env OPENAI_BASE_URL
--     api_key = "sk-…",                         -- env OPENAI_API_KEY
--     model = "gpt-4o-mini",                    -- env MOONLINE_LLM_MODEL
--     timeout = 30,          -- seconds: connect + request + response headers
--     idle_timeout = 60,     -- seconds without a byte once the stream runs
--     max_retries = 3,       -- 429, 5xx, connection errors, timeouts; before the first chunk only
--     retry_backoff = 0.5,   -- seconds, doubled per retry, with jitter
--     max_retry_after = 20,  -- bound on a server's retry-after
--     extra_headers = {},    -- sent with every request
--     extra_body = {},       -- merged into every request body (provider-specific fields)
--     insecure = false, ca_file = nil,   -- TLS options of moonline.http
--   }
--   local stream, err = llm:chat { messages = {…}, tools = {…} }
--   while true do
--     local chunk, err = stream:next()   -- chunk.content | chunk.tool_call | chunk.usage
--     if not chunk then break end
--   end
--   stream.metrics  -- ttft, duration, usage, retries, model
local cjson = require "cjson.safe"
local http = require "moonline.http"
local llm = require "moonline.llm"
local task = require "moonline.task"

local error = error
local getenv = os.getenv
local ipairs = ipairs
local max = math.max
local min = math.min
local next = next
local pairs = pairs
local random = math.random
local setmetatable = setmetatable
local sort = table.sort
local tonumber = tonumber
local tostring = tostring
local type = type
local concat = table.concat
local find = string.find
local sub = string.sub
local byte = string.byte

local encode = cjson.encode
local decode = cjson.decode
local null = cjson.null
local now = task.now
local sleep = task.sleep
local new_error = llm.error

local _M = {}

local OpenAI = {}
OpenAI.__index = OpenAI
_M.OpenAI = OpenAI

local Stream = {}
Stream.__index = Stream
_M.Stream = Stream

local function check(cond, msg, level)
  if not cond then
    error("moonline.llm.openai: " .. msg, (level or 2) + 1)
  end
end

local function opt_number(opts, key, default)
  local v = opts[key]
  if v == nil then
    return default
  end
  check(type(v) == "number" and v >= 0, key .. " must be a number >= 0", 3)
  return v
end

--- new(opts) -> llm
function _M.new(opts)
  opts = opts or {}
  check(type(opts) == "table", "new(opts): opts must be a table")
  local base_url = opts.base_url or getenv("OPENAI_BASE_URL") or "https://api.openai.com/v1"
  check(type(base_url) == "string" and base_url:match("^https?://"), "base_url must be an http(s) URL")
  local extra_headers = opts.extra_headers or {}
  check(type(extra_headers) == "table", "extra_headers must be a table")
  local extra_body = opts.extra_body or {}
  check(type(extra_body) == "table", "extra_body must be a table")
  local api_key = opts.api_key or getenv("OPENAI_API_KEY")
  check(api_key == nil or type(api_key) == "string", "api_key must be a string")
  local model = opts.model or getenv("MOONLINE_LLM_MODEL") or "gpt-4o-mini"
  check(type(model) == "string" and model ~= "", "model must be a non-empty string")
  return setmetatable({
    base_url = base_url:gsub("/+$", ""),
    api_key = api_key,
    model = model,
    timeout = opt_number(opts, "timeout", 30),
    idle_timeout = opt_number(opts, "idle_timeout", 60),
    max_retries = opt_number(opts, "max_retries", 3),
    retry_backoff = opt_number(opts, "retry_backoff", 0.5),
    max_retry_after = opt_number(opts, "max_retry_after", 20),
    extra_headers = extra_headers,
    extra_body = extra_body,
    insecure = opts.insecure,
    ca_file = opts.ca_file,
  }, OpenAI)
end

---------------------------------------------------------------------------
-- Request body
---------------------------------------------------------------------------

-- JSON Schema keywords whose value is an array: an empty Lua table would be
-- encoded as {} by cjson, so empty ones are dropped (they mean nothing).
local ARRAY_KEYWORDS = { required = true, enum = true, anyOf = true, oneOf = true, allOf = true,
                         prefixItems = true, type = true }

local function clean_schema(v)
  if type(v) ~= "table" then
    return v
  end
  local out = {}
  for k, x in pairs(v) do
    if not (ARRAY_KEYWORDS[k] and type(x) == "table" and next(x) == nil) then
      out[k] = clean_schema(x)
    end
  end
  return out
end

local function encode_tool_calls(calls)
  if type(calls) ~= "table" or next(calls) == nil then
    return nil
  end
  local out = {}
  for i, tc in ipairs(calls) do
    local fn = tc["function"] or {}
    local args = fn.arguments
    if type(args) == "table" then
      args = encode(args) -- a decoded object given back: encode it again
    end
    out[i] = {
      id = tc.id,
      type = tc.type or "function",
      ["function"] = { name = fn.name, arguments = args or "{}" },
    }
  end
  return out
end

local function encode_messages(messages)
  local out = {}
  for i, m in ipairs(messages) do
    check(type(m) == "table" and type(m.role) == "string", "messages[" .. i .. "] must have a role", 4)
    out[i] = {
      role = m.role,
      content = m.content,
      name = m.name,
      tool_call_id = m.tool_call_id,
      tool_calls = encode_tool_calls(m.tool_calls),
    }
  end
  return out
end

local function encode_tools(tools)
  if type(tools) ~= "table" or next(tools) == nil then
    return nil -- cjson would send {}: omit instead
  end
  local out = {}
  for i, t in ipairs(tools) do
    local fn = t["function"] or t
    check(type(fn.name) == "string", "tools[" .. i .. "] needs a function name", 4)
    out[i] = {
      type = "function",
      ["function"] = {
        name = fn.name,
        description = fn.description,
        parameters = clean_schema(fn.parameters or { type = "object", properties = {} }),
      },
    }
  end
  return out
end

function OpenAI:_body(request)
  local body = {}
  for k, v in pairs(self.extra_body) do
    body[k] = v
  end
  body.model = request.model or self.model
  body.messages = encode_messages(request.messages)
  body.stream = true
  body.stream_options = { include_usage = true }
  body.tools = encode_tools(request.tools)
  if body.tools then
    body.tool_choice = request.tool_choice
    body.parallel_tool_calls = request.parallel_tool_calls
  end
  body.temperature = request.temperature
  return encode(body)
end

---------------------------------------------------------------------------
-- Errors
---------------------------------------------------------------------------

-- moonline.http error strings -> an LLMError
local function transport_error(err)
  if err == "timeout" then
    return new_error { kind = "timeout", message = "timeout", retryable = true }
  end
  local fatal = err:find("^bad url") or err:find("^tls: certificate") or err == "closed"
  return new_error { kind = "connection", message = err, retryable = not fatal }
end

local RETRY_STATUS = { [408] = true, [409] = true, [429] = true }

-- A non-200 response: read a bounded part of its body for the message.
local function status_error(res)
  local parts, n = {}, 0
  while n < 65536 do
    local chunk = res:read()
    if not chunk then
      break
    end
    parts[#parts + 1] = chunk
    n = n + #chunk
  end
  res:close()
  local body = concat(parts)
  local msg
  local obj = decode(body)
  if type(obj) == "table" then
    local e = obj.error
    if type(e) == "table" and type(e.message) == "string" then
      msg = e.message
    elseif type(e) == "string" then
      msg = e
    elseif type(obj.message) == "string" then
      msg = obj.message
    end
  end
  if not msg then
    msg = body:gsub("%s+", " "):sub(1, 200)
    if msg == "" then
      msg = "HTTP " .. res.status
    end
  end
  local status = res.status
  local rid = res.headers["x-request-id"]
  return new_error {
    kind = "http",
    status = status,
    message = msg .. (rid and (" (request id " .. rid .. ")") or ""),
    retryable = RETRY_STATUS[status] or (status >= 500 and status <= 599),
    retry_after = tonumber(res.headers["retry-after-ms"] or "") and tonumber(res.headers["retry-after-ms"]) / 1000
      or tonumber(res.headers["retry-after"] or ""),
  }
end

---------------------------------------------------------------------------
-- The stream
---------------------------------------------------------------------------

--- llm:chat(request) -> stream | nil, err
function OpenAI:chat(request)
  check(type(request) == "table", "chat(request): request must be a table")
  check(type(request.messages) == "table", "chat(request): request.messages must be a list")
  local body, jerr = self:_body(request)
  if not body then
    return nil, new_error { kind = "protocol", message = "cannot encode the request: " .. tostring(jerr),
                            retryable = false }
  end
  local headers = { ["content-type"] = "application/json", accept = "text/event-stream" }
  for k, v in pairs(self.extra_headers) do
    headers[k:lower()] = v
  end
  if self.api_key and self.api_key ~= "" then
    headers.authorization = "Bearer " .. self.api_key
  end
  local s = setmetatable({
    llm = self,
    http_opts = {
      method = "POST",
      url = self.base_url .. "/chat/completions",
      headers = headers,
      body = body,
      timeout = request.timeout or self.timeout,
      idle_timeout = max(self.idle_timeout, request.timeout or 0),
      want_headers = { "x-request-id", "retry-after-ms" },
      insecure = self.insecure,
      ca_file = self.ca_file,
    },
    started = now(),
    attempts = 0,
    delivered = 0,
    pending = {}, phead = 1, ptail = 0,
    buf = "", data = nil,
    calls = {},
    metrics = { retries = 0, model = request.model or self.model },
  }, Stream)
  local ok, err = s:_open()
  if not ok then
    return nil, err
  end
  return s
end

-- Wait before retry number n (1-based): exponential with jitter, or the
-- server's retry-after (bounded).
function Stream:_backoff(err)
  local llm_ = self.llm
  local delay = llm_.retry_backoff * 2 ^ (self.attempts - 1) * (0.5 + random() * 0.5)
  if type(err.retry_after) == "number" and err.retry_after >= 0 then
    delay = min(err.retry_after, llm_.max_retry_after)
  end
  sleep(delay)
end

-- Send the request until a 200 arrives or retrying is no longer allowed.
function Stream:_open(err)
  while true do
    if err then
      if not err.retryable or self.attempts > self.llm.max_retries then
        self:_fail(err)
        return nil, err
      end
      self.metrics.retries = self.metrics.retries + 1
      self:_backoff(err)
    end
    self.attempts = self.attempts + 1
    local res, herr = http.request(self.http_opts)
    if not res then
      err = transport_error(herr)
    elseif res.status ~= 200 then
      err = status_error(res)
    else
      self.res = res
      self.buf, self.data = "", nil
      return true
    end
  end
end

function Stream:_fail(err)
  self.err = err
  self.metrics.duration = now() - self.started
  if self.res then
    self.res:close()
  end
end

function Stream:_push(chunk)
  self.ptail = self.ptail + 1
  self.pending[self.ptail] = chunk
end

-- Emit the assembled tool calls, in index order.
function Stream:_flush_calls()
  local calls = self.calls
  if next(calls) == nil then
    return
  end
  local idx = {}
  for i in pairs(calls) do
    idx[#idx + 1] = i
  end
  sort(idx)
  for _, i in ipairs(idx) do
    local c = calls[i]
    self:_push({ tool_call = { id = c.id, name = c.name, arguments = concat(c.args) } })
  end
  self.calls = {}
end

local function str(v)
  return type(v) == "string" and v or nil
end

-- One decoded SSE event.
function Stream:_event(obj)
  if type(obj) ~= "table" then
    return false
  end
  local e = obj.error
  if e ~= nil and e ~= null then
    local msg = type(e) == "table" and str(e.message) or str(e) or "error event"
    self:_fail(new_error { kind = "http", message = msg, status = type(e) == "table" and tonumber(e.code) or nil,
                          retryable = false })
    return true
  end
  if str(obj.model) then
    self.metrics.model = obj.model
  end
  local choices = obj.choices
  if type(choices) == "table" then
    for _, choice in ipairs(choices) do
      local delta = type(choice) == "table" and choice.delta
      if type(delta) == "table" then
        local content = str(delta.content)
        if content and content ~= "" then
          self:_push({ content = content })
        end
        local tcs = delta.tool_calls
        if type(tcs) == "table" then
          for _, tc in ipairs(tcs) do
            if type(tc) ~= "table" then
              return false
            end
            local i = tonumber(tc.index) or 0
            local c = self.calls[i]
            if not c then
              c = { args = {} }
              self.calls[i] = c
            end
            c.id = c.id or str(tc.id)
            local fn = tc["function"]
            if type(fn) == "table" then
              c.name = c.name or str(fn.name)
              local a = str(fn.arguments)
              if a and a ~= "" then
                c.args[#c.args + 1] = a
              end
            end
          end
        end
      end
      local fr = type(choice) == "table" and choice.finish_reason
      if fr ~= nil and fr ~= null then
        self:_flush_calls()
      end
    end
  elseif choices ~= nil and choices ~= null then
    return false
  end
  local usage = obj.usage
  if type(usage) == "table" then
    local u = {
      prompt_tokens = tonumber(usage.prompt_tokens),
      completion_tokens = tonumber(usage.completion_tokens),
      total_tokens = tonumber(usage.total_tokens),
    }
    self.metrics.usage = u
    self:_push({ usage = u })
  end
  return true
end

function Stream:_finish()
  self:_flush_calls()
  self.done = true
  self.metrics.duration = now() - self.started
  if self.res then
    self.res:close()
  end
end

-- Dispatch one complete event's data.
function Stream:_dispatch(data)
  if data == "[DONE]" then
    self:_finish()
    return
  end
  local obj = decode(data)
  if obj == nil or not self:_event(obj) then
    self:_fail(new_error { kind = "protocol", retryable = false,
                           message = "malformed event from the server: " .. sub(data, 1, 120) })
  end
end

-- Feed body bytes: split into lines (LF, CRLF), gather data: lines into
-- events, dispatch on the blank line that ends each event.
function Stream:_feed(chunk)
  local buf = self.buf .. chunk
  local pos = 1
  while not (self.done or self.err) do
    local nl = find(buf, "\n", pos, true)
    if not nl then
      break
    end
    local stop = nl - 1
    if stop >= pos and byte(buf, stop) == 13 then
      stop = stop - 1
    end
    local line = sub(buf, pos, stop)
    pos = nl + 1
    if line == "" then
      local data = self.data
      if data then
        self.data = nil
        self:_dispatch(data)
      end
    elseif byte(line, 1) ~= 58 then -- ":" starts a comment
      local field, value = line, ""
      local colon = find(line, ":", 1, true)
      if colon then
        field = sub(line, 1, colon - 1)
        value = sub(line, colon + 1)
        if byte(value, 1) == 32 then
          value = sub(value, 2)
        end
      end
      if field == "data" then
        self.data = self.data and (self.data .. "\n" .. value) or value
      end -- event:, id:, retry: are not used by chat completions
    end
  end
  self.buf = sub(buf, pos)
  if #self.buf > 4 * 1024 * 1024 then
    self:_fail(new_error { kind = "protocol", retryable = false, message = "event line longer than 4 MiB" })
  end
end

--- stream:next() -> chunk | nil (end) | nil, err
function Stream:next()
  while true do
    local h = self.phead
    if h <= self.ptail then
      local chunk = self.pending[h]
      self.pending[h] = nil
      self.phead = h + 1
      if self.delivered == 0 and (chunk.content or chunk.tool_call) then
        self.metrics.ttft = now() - self.started
      end
      self.delivered = self.delivered + 1
      return chunk
    end
    if self.err then
      return nil, self.err
    end
    if self.done then
      return nil
    end
    local data, err = self.res:read()
    if data then
      self:_feed(data)
    elseif err then
      local e = transport_error(err)
      if err ~= "timeout" then
        e.message = err
      end
      self.res:close()
      self.res = nil
      if self.delivered == 0 and self.ptail == 0 then
        -- nothing reached the caller yet: the request may be sent again
        self.calls, self.data = {}, nil
        local ok, oerr = self:_open(e)
        if not ok then
          return nil, oerr
        end
      else
        self:_fail(e)
      end
    else
      -- the body ended without [DONE]: what arrived is the answer
      if self.data then
        local d = self.data
        self.data = nil
        self:_dispatch(d)
      end
      if not self.err then
        self:_finish()
      end
    end
  end
end

--- stream:close(): idempotent; closes the HTTP stream
function Stream:close()
  if not self.done and not self.err then
    self.done = true
    self.metrics.duration = now() - self.started
  end
  if self.res then
    self.res:close()
  end
end

Stream.__tostring = function(s)
  return "moonline.llm.openai stream (" .. (s.err and "failed" or s.done and "done" or "open") .. ")"
end

return _M
