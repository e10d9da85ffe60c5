-- The HTTP client (engine/net/http_client.c, engine/bind/bind_http.c,
-- moonline.http) and the OpenAI-compatible provider (moonline.llm.openai)
-- against a real local HTTP server (spec/support/http_server.lua, luv on the
-- same loop). Every case ends with an empty ledger (rt.run).
local rt = require "runtime_helper"
local task = require "moonline.task"
local http = require "moonline.http"
local llm = require "moonline.llm"
local openai = require "moonline.llm.openai"
local http_server = require "support.http_server"
local cjson = require "cjson.safe"

-- Bound every case: a hang fails the spec instead of blocking the run.
local function within(seconds, fn)
  local ok, err = task.with_timeout(seconds, fn)
  assert(ok, "case did not finish within " .. seconds .. "s: " .. tostring(err))
end

-- One SSE event carrying a chat.completion.chunk with these choices/fields.
local function event(fields)
  local obj = { id = "chatcmpl-1", object = "chat.completion.chunk", model = "test-model-0613" }
  for k, v in pairs(fields) do
    obj[k] = v
  end
  return "data: " .. cjson.encode(obj) .. "\n\n"
end

local function delta(d, finish_reason)
  return event({ choices = { { index = 0, delta = d, finish_reason = finish_reason or cjson.null } } })
end

local function usage_event(p, c)
  return event({ choices = {}, usage = { prompt_tokens = p, completion_tokens = c, total_tokens = p + c } })
end

local DONE = "data: [DONE]\n\n"

local SSE_HEADERS = { ["content-type"] = "text/event-stream" }

local function sse(chunks, extra)
  local r = { status = 200, headers = SSE_HEADERS, chunks = chunks }
  for k, v in pairs(extra or {}) do
    r[k] = v
  end
  return r
end

-- Split a text into pieces of `size` bytes (cuts lines and JSON anywhere).
local function split(text, size)
  local out = {}
  for i = 1, #text, size do
    out[#out + 1] = text:sub(i, i + size - 1)
  end
  return out
end

local function new_llm(srv, opts)
  local o = { base_url = srv.url .. "/v1", api_key = "test-key", model = "test-model", retry_backoff = 0.01,
              timeout = 5 }
  for k, v in pairs(opts or {}) do
    o[k] = v
  end
  return openai.new(o)
end

local MESSAGES = {
  { role = "system", content = "You are terse." },
  { role = "user", content = "Weather in Paris?" },
}

-- Drain a stream: content, tool calls, usage, and the error that ended it.
local function collect(stream)
  local text, calls, usage = {}, {}, nil
  while true do
    local chunk, err = stream:next()
    if not chunk then
      return table.concat(text), calls, usage, err
    end
    if chunk.content then
      text[#text + 1] = chunk.content
    end
    if chunk.tool_call then
      calls[#calls + 1] = chunk.tool_call
    end
    if chunk.usage then
      usage = chunk.usage
    end
  end
end

describe("http client", function()
  it("does a GET round trip: status, lower-case headers, body", rt.run(function()
    within(5, function()
      local srv = http_server.start {
        responses = { { status = 200, headers = { ["Content-Type"] = "text/plain", ["X-Thing"] = "1" },
                        body = "hello" } },
      }
      local res, err = http.request { url = srv.url .. "/hello?x=1", want_headers = { "x-thing" } }
      assert.is_nil(err)
      assert.equals(1, task.ledger().kinds.http)
      assert.equals(200, res.status)
      assert.equals("text/plain", res.headers["content-type"])
      assert.equals("5", res.headers["content-length"])
      assert.equals("1", res.headers["x-thing"])
      assert.equals("hello", res:read())
      assert.is_nil(res:read())
      assert.is_nil(res:read()) -- the end is sticky
      res:close()
      res:close() -- idempotent
      assert.same({ nil, "closed" }, { res:read() })
      assert.equals(0, task.ledger().kinds.http)
      local req = srv.requests[1]
      assert.equals("GET", req.method)
      assert.equals("/hello?x=1", req.path)
      assert.equals("127.0.0.1:" .. srv.port, req.headers.host)
      -- the convenience wrapper
      local status, body = http.get(srv.url .. "/again")
      assert.equals(200, status)
      assert.equals("hello", body)
    end)
  end))

  it("POSTs a body with headers; reads a chunked body in pieces", rt.run(function()
    within(5, function()
      local srv = http_server.start { responses = { { status = 201, chunks = { "a", "bb", "ccc" }, delay = 0.01 } } }
      local big = string.rep("x", 3 * 1024 * 1024 + 17) -- bodies of a few MB
      local res = assert(http.request {
        method = "POST", url = srv.url .. "/p", body = big,
        headers = { ["content-type"] = "application/octet-stream", ["X-Key"] = 42 },
      })
      assert.equals(201, res.status)
      assert.equals("abbccc", res:read_all())
      assert.equals(0, task.ledger().kinds.http) -- read_all closes
      local req = srv.requests[1]
      assert.equals("POST", req.method)
      assert.equals(#big, #req.body)
      assert.is_true(req.body == big)
      assert.equals("application/octet-stream", req.headers["content-type"])
      assert.equals("42", req.headers["x-key"])
      assert.equals(tostring(#big), req.headers["content-length"])
    end)
  end))

  it("reports refused connections, bad URLs and unknown hosts as nil, err", rt.run(function()
    local probe = require("luv").new_tcp()
    assert(probe:bind("127.0.0.1", 0))
    local port = probe:getsockname().port
    probe:close()
    task.sleep(0)
    local before = task.ledger().resources_opened
    local res, err = http.request { url = "http://127.0.0.1:" .. port .. "/", timeout = 2 }
    assert.is_nil(res)
    assert.equals("connection refused", err)
    local l = task.ledger()
    assert.equals(before + 1, l.resources_opened)
    assert.equals(0, l.resources) -- already closed when the error came back
    assert.same({ nil, "bad url: it must start with http:// or https://" }, { http.request { url = "ftp://x/" } })
    assert.matches("^bad url: ", select(2, http.request { url = "http://:80/" }))
    assert.matches("^bad url: ", select(2, http.request { url = "http://host:99999/" }))
    assert.matches("^getaddrinfo: ", select(2, http.request { url = "http://no-such-host.invalid/", timeout = 5 }))
    assert.has_error(function()
      http.request { url = "http://127.0.0.1/", headers = { ["bad name"] = "x" } }
    end)
    assert.has_error(function()
      http.request { url = "http://127.0.0.1/", timeout = 0 }
    end)
    assert.has_error(function()
      http.request("http://127.0.0.1/")
    end)
    assert.equals(0, task.ledger().resources)
  end))

  it("times out a response that never starts, and a read that waits too long", rt.run(function()
    within(5, function()
      local srv = http_server.start {
        responses = {
          { status = 200, body = "late", first_byte_delay = 3 },
          { status = 200, chunks = { "first", "second" }, delay = { 0, 3 } },
        },
      }
      local t0 = task.now()
      local res, err = http.request { url = srv.url, timeout = 0.2 }
      assert.is_nil(res)
      assert.equals("timeout", err)
      assert.is_true(task.now() - t0 < 1)
      assert.equals(0, task.ledger().kinds.http)
      res = assert(http.request { url = srv.url, idle_timeout = 0.2 })
      t0 = task.now()
      assert.equals("first", res:read())
      assert.same({ nil, "timeout" }, { res:read() })
      assert.is_true(task.now() - t0 < 1)
      res:close()
    end)
  end))

  it("says when the connection closes before the end of the body", rt.run(function()
    within(5, function()
      local srv = http_server.start {
        responses = {
          { status = 200, chunks = { "a", "b", "c" }, delay = 0.01, drop_after = 2 },
          { status = 200, body = "until close", no_length = true },
        },
      }
      local res = assert(http.request { url = srv.url })
      assert.equals("a", res:read())
      assert.equals("b", res:read())
      assert.same({ nil, "connection closed before the end of the body" }, { res:read() })
      res:close()
      -- no length, not chunked: the end of the connection is the end of the body
      res = assert(http.request { url = srv.url })
      assert.equals("until close", res:read_all())
    end)
  end))

  it("close() from another task wakes a blocked reader with nil, 'closed'", rt.run(function()
    within(5, function()
      local srv = http_server.start { responses = { { status = 200, chunks = { "x", "y" }, delay = { 0, 0.3 } } } }
      local res = assert(http.request { url = srv.url })
      assert.equals("x", res:read())
      local t = task.spawn(function()
        return res:read()
      end)
      task.sleep(0.02)
      assert.equals("waiting", t:status())
      res:close()
      assert.same({ true, nil, "closed" }, { t:wait() })
      -- a second reader is refused while one waits
      res = assert(http.request { url = srv.url })
      assert.equals("x", res:read())
      t = task.spawn(function()
        return res:read()
      end)
      task.sleep(0.02)
      assert.has_error(function()
        res:read()
      end)
      t:cancel("enough")
      local ok, cerr = t:wait()
      assert.is_false(ok)
      assert.is_true(task.is_cancelled(cerr))
      -- the cancelled read left no waiter behind: reading goes on
      local data = res:read()
      assert.equals("y", data)
      res:close()
    end)
  end))

  it("closes a response dropped without close() from __gc and counts a leak", rt.run(function()
    within(5, function()
      local srv = http_server.start { responses = { { status = 200, chunks = { "x", "y" }, delay = { 0, 3 } } } }
      local before = task.ledger()
      local t = task.spawn(function()
        local function open_and_drop()
          return http.request { url = srv.url } ~= nil
        end
        assert.is_true(open_and_drop())
        assert.equals(before.resources + 1, task.ledger().resources)
        collectgarbage()
        collectgarbage()
        assert.equals(before.leaks + 1, task.ledger().leaks)
        assert.equals(0, task.ledger().kinds.http)
      end)
      assert.is_true((t:wait()))
      local deadline = task.now() + 2
      while srv.peer_closed < 1 and task.now() < deadline do
        task.sleep(0.01)
      end
      assert.equals(1, srv.peer_closed) -- the connection went with it
    end)
  end))

  it("bounds what it buffers: a fast server waits for a slow reader", rt.run(function()
    within(20, function()
      local piece = string.rep("0123456789abcdef", 4096) -- 64 KiB
      local n = 64 -- 4 MiB in all
      local chunks = {}
      for i = 1, n do
        chunks[i] = piece:gsub("0", string.char(64 + i % 26))
      end
      local srv = http_server.start { responses = { { status = 200, chunks = chunks } } }
      local res = assert(http.request { url = srv.url, max_buffer = 256 * 1024 })
      task.sleep(0.3) -- the server writes as fast as it can; nobody reads
      local queued, cap, paused = res:buffered()
      assert.is_true(paused, "the connection should be paused")
      assert.is_true(queued >= 256 * 1024, "queued " .. queued)
      assert.is_true(queued < 256 * 1024 + 64 * 1024, "queued " .. queued)
      assert.is_true(cap <= 512 * 1024, "ring capacity " .. cap)
      local got, max_queued = {}, queued
      while true do
        local chunk = res:read()
        if not chunk then
          break
        end
        got[#got + 1] = chunk
        local q = res:buffered()
        max_queued = math.max(max_queued, q)
        if #got % 8 == 0 then
          task.sleep(0.001)
        end
      end
      got = table.concat(got)
      assert.equals(n * #piece, #got)
      assert.is_true(got == table.concat(chunks), "body bytes differ")
      assert.is_true(max_queued < 256 * 1024 + 64 * 1024, "queued at most " .. max_queued)
      res:close()
    end)
  end))

  it("speaks HTTPS: trusts a CA file, or anything when insecure, and fails verification otherwise", rt.run(function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir) == 0)
    task.defer(function()
      os.execute("rm -rf " .. dir)
    end)
    local cert, key = http_server.make_cert(dir)
    within(15, function()
      local srv = http_server.start_tls {
        cert = cert, key = key,
        responses = { { status = 200, headers = SSE_HEADERS, chunks = { "secure", " hello" }, delay = 0.01 } },
      }
      local res, err = http.request { url = srv.url .. "/verify", timeout = 3 }
      assert.is_nil(res)
      assert.equals("tls: certificate verify failed: self-signed certificate", err)
      assert.equals(0, task.ledger().kinds.http)
      srv.wait_ready()
      res = assert(http.request { url = srv.url .. "/ca", ca_file = cert, timeout = 3 })
      assert.equals(200, res.status)
      assert.equals("secure hello", res:read_all())
      srv.wait_ready()
      res = assert(http.request { url = srv.url .. "/insecure", insecure = true, timeout = 3 })
      assert.equals("secure hello", res:read_all())
      assert.equals("/ca", srv.requests[1].path)
      assert.equals("/insecure", srv.requests[2].path)
      -- the provider over TLS
      srv.wait_ready()
      srv.responses = { sse({ delta({ content = "over tls" }), DONE }) }
      srv.requests = {}
      local stream = assert(new_llm(srv, { ca_file = cert }):chat { messages = MESSAGES })
      assert.equals("over tls", (collect(stream)))
    end)
  end))
end)

describe("llm.openai", function()
  it("streams text deltas (lines split anywhere, comments, CRLF, multi-line data) and usage", rt.run(function()
    within(5, function()
      local text = table.concat({
        ": keep-alive comment\n\n",
        delta({ role = "assistant", content = "" }),
        delta({ content = "Hello" }),
        (delta({ content = ", wor" }):gsub("\n", "\r\n")),
        'data: {"choices":[{"index":0,\ndata: "delta":{"content":"ld!"},"finish_reason":null}]}\n\n',
        "event: ignored\nid: 7\n" .. delta({}, "stop"),
        usage_event(12, 3),
        DONE,
      })
      local srv = http_server.start { responses = { sse(split(text, 7), { delay = 0.001 }) } }
      local stream = assert(new_llm(srv):chat { messages = MESSAGES })
      local content, calls, usage, err = collect(stream)
      assert.is_nil(err)
      assert.equals("Hello, world!", content)
      assert.same({}, calls)
      assert.same({ prompt_tokens = 12, completion_tokens = 3, total_tokens = 15 }, usage)
      local m = stream.metrics
      assert.is_true(m.ttft > 0 and m.ttft <= m.duration)
      assert.same(usage, m.usage)
      assert.equals(0, m.retries)
      assert.equals("test-model-0613", m.model)
      assert.is_nil(stream:next()) -- the end is sticky
      stream:close()
      assert.equals(0, task.ledger().kinds.http)
    end)
  end))

  it("sends the model, messages, tools, stream=true and the key", rt.run(function()
    within(5, function()
      local srv = http_server.start { responses = { sse({ DONE }) } }
      local model = new_llm(srv, { extra_headers = { ["X-Org"] = "acme" } })
      local tools = {
        { type = "function", ["function"] = { name = "lookup_weather", description = "Look up the weather.",
          parameters = { type = "object", properties = { location = { type = "string" } },
                         required = { "location" } } } },
        { type = "function", ["function"] = { name = "end_call", description = "Hang up.",
          parameters = { type = "object", properties = {}, required = {} } } },
      }
      local messages = {
        { role = "system", content = "You are terse." },
        { role = "user", content = "Weather in Paris?" },
        { role = "assistant", tool_calls = { { id = "call_1", type = "function",
          ["function"] = { name = "lookup_weather", arguments = '{"location": "Paris"}' } } } },
        { role = "tool", tool_call_id = "call_1", content = "sunny" },
        { role = "assistant", content = "Sunny.", tool_calls = {} },
      }
      collect(assert(model:chat { messages = messages, tools = tools, tool_choice = "auto", temperature = 0.2 }))
      collect(assert(model:chat { messages = MESSAGES, tools = {}, model = "other-model" }))
      assert.equals(2, #srv.requests)
      local req = srv.requests[1]
      assert.equals("POST", req.method)
      assert.equals("/v1/chat/completions", req.path)
      assert.equals("Bearer test-key", req.headers.authorization)
      assert.equals("application/json", req.headers["content-type"])
      assert.equals("acme", req.headers["x-org"])
      local body = assert(cjson.decode(req.body))
      assert.equals("test-model", body.model)
      assert.is_true(body.stream)
      assert.is_true(body.stream_options.include_usage)
      assert.equals("auto", body.tool_choice)
      assert.equals(0.2, body.temperature)
      assert.equals(5, #body.messages)
      assert.same({ role = "user", content = "Weather in Paris?" }, body.messages[2])
      local call = body.messages[3].tool_calls[1]
      assert.equals('{"location": "Paris"}', call["function"].arguments) -- the string as given
      assert.equals("call_1", body.messages[4].tool_call_id)
      assert.is_nil(body.messages[5].tool_calls) -- an empty list is left out, not sent as {}
      assert.equals(2, #body.tools)
      assert.equals("lookup_weather", body.tools[1]["function"].name)
      assert.same({ "location" }, body.tools[1]["function"].parameters.required)
      assert.is_nil(body.tools[2]["function"].parameters.required)
      assert.is_not_nil(req.body:find('"properties":{}', 1, true)) -- an empty object stays an object
      -- no tools: the field is absent (cjson would send {})
      local body2 = assert(cjson.decode(srv.requests[2].body))
      assert.equals("other-model", body2.model)
      assert.is_nil(body2.tools)
      assert.is_nil(body2.tool_choice)
      assert.is_nil(srv.requests[2].body:find('"tools"', 1, true))
    end)
  end))

  it("assembles a tool call from deltas split across chunks", rt.run(function()
    within(5, function()
      local tc = function(fields)
        fields.index = 0
        return delta({ tool_calls = { fields } })
      end
      local text = table.concat({
        tc({ id = "call_abc", type = "function", ["function"] = { name = "lookup_weather", arguments = "" } }),
        tc({ ["function"] = { arguments = '{"loc' } }),
        tc({ ["function"] = { arguments = 'ation": "Pa' } }),
        tc({ ["function"] = { arguments = 'ris", "unit"' } }),
        tc({ ["function"] = { arguments = ': "C"}' } }),
        delta({}, "tool_calls"),
        usage_event(40, 9),
        DONE,
      })
      local srv = http_server.start { responses = { sse(split(text, 50)) } }
      local content, calls, usage, err = collect(assert(new_llm(srv):chat { messages = MESSAGES }))
      assert.is_nil(err)
      assert.equals("", content)
      assert.equals(1, #calls)
      assert.same({ id = "call_abc", name = "lookup_weather", arguments = '{"location": "Paris", "unit": "C"}' },
        calls[1])
      assert.same({ location = "Paris", unit = "C" }, cjson.decode(calls[1].arguments))
      assert.equals(49, usage.total_tokens)
    end)
  end))

  it("emits parallel tool calls interleaved by index in index order", rt.run(function()
    within(5, function()
      local function tc(index, fields)
        fields.index = index
        return delta({ tool_calls = { fields } })
      end
      local text = table.concat({
        delta({ content = "Checking both." }),
        tc(1, { id = "call_B", type = "function", ["function"] = { name = "get_time", arguments = "" } }),
        tc(0, { id = "call_A", type = "function", ["function"] = { name = "lookup_weather", arguments = "" } }),
        tc(1, { ["function"] = { arguments = '{"tz":' } }),
        tc(0, { ["function"] = { arguments = '{"location":' } }),
        tc(0, { ["function"] = { arguments = ' "Paris"}' } }),
        tc(2, { id = "call_C", type = "function", ["function"] = { name = "end_call", arguments = "{}" } }),
        tc(1, { ["function"] = { arguments = ' "CET"}' } }),
        DONE, -- no finish_reason: the calls are emitted at the end of the stream
      })
      local srv = http_server.start { responses = { sse(split(text, 33)) } }
      local stream = assert(new_llm(srv):chat { messages = MESSAGES })
      local first = assert(stream:next())
      assert.equals("Checking both.", first.content) -- content streams before the calls complete
      local content, calls, _, err = collect(stream)
      assert.is_nil(err)
      assert.equals("", content)
      assert.equals(3, #calls)
      assert.same({ id = "call_A", name = "lookup_weather", arguments = '{"location": "Paris"}' }, calls[1])
      assert.same({ id = "call_B", name = "get_time", arguments = '{"tz": "CET"}' }, calls[2])
      assert.same({ id = "call_C", name = "end_call", arguments = "{}" }, calls[3])
    end)
  end))

  it("retries a 429 (honouring retry-after) and succeeds", rt.run(function()
    within(5, function()
      local srv = http_server.start {
        responses = {
          { status = 429, headers = { ["retry-after"] = "0.05", ["content-type"] = "application/json" },
            body = '{"error":{"message":"Rate limit reached","type":"requests"}}' },
          sse({ delta({ content = "ok" }), DONE }),
        },
      }
      local t0 = task.now()
      local stream = assert(new_llm(srv, { retry_backoff = 2 }):chat { messages = MESSAGES })
      assert.equals("ok", (collect(stream)))
      assert.equals(1, stream.metrics.retries)
      assert.equals(2, #srv.requests)
      local waited = task.now() - t0
      assert.is_true(waited >= 0.04 and waited < 1, "waited " .. waited) -- retry-after, not the 2 s backoff
      assert.is_true(stream.metrics.ttft >= 0.04)
    end)
  end))

  it("gives up after max_retries with the server's error message", rt.run(function()
    within(5, function()
      local srv = http_server.start {
        responses = { { status = 500, headers = { ["content-type"] = "application/json" },
                        body = '{"error":{"message":"The server had an error","type":"server_error"}}' } },
      }
      local stream, err = new_llm(srv, { max_retries = 2 }):chat { messages = MESSAGES }
      assert.is_nil(stream)
      assert.is_true(llm.is_error(err))
      assert.equals("http", err.kind)
      assert.equals(500, err.status)
      assert.is_true(err.retryable)
      assert.matches("The server had an error", err.message)
      assert.matches("^llm error 500: The server had an error", tostring(err))
      assert.equals(3, #srv.requests)
      -- a 400 is not retried
      srv.responses = { { status = 400, body = '{"error":{"message":"bad model"}}' } }
      srv.requests = {}
      stream, err = new_llm(srv):chat { messages = MESSAGES }
      assert.is_nil(stream)
      assert.equals(400, err.status)
      assert.is_false(err.retryable)
      assert.equals("bad model", err.message)
      assert.equals(1, #srv.requests)
    end)
    assert.equals(0, task.ledger().kinds.http)
  end))

  it("times out a server that is slow to answer, in bounded time", rt.run(function()
    within(5, function()
      local srv = http_server.start { responses = { sse({ DONE }, { first_byte_delay = 3 }) } }
      local t0 = task.now()
      local stream, err = new_llm(srv, { timeout = 0.2, max_retries = 1 }):chat { messages = MESSAGES }
      local elapsed = task.now() - t0
      assert.is_nil(stream)
      assert.equals("timeout", err.kind)
      assert.is_true(err.retryable)
      assert.equals(2, #srv.requests) -- retried once, then gave up
      assert.is_true(elapsed >= 0.4 and elapsed < 1.5, "took " .. elapsed)
    end)
    assert.equals(0, task.ledger().kinds.http)
  end))

  it("does not retry a stream dropped after content was delivered", rt.run(function()
    within(5, function()
      local srv = http_server.start {
        responses = { sse({ delta({ content = "Hel" }), delta({ content = "lo" }), delta({ content = "!" }) },
                          { drop_after = 2, delay = 0.02 }) },
      }
      local stream = assert(new_llm(srv):chat { messages = MESSAGES })
      local content, _, _, err = collect(stream)
      assert.equals("Hello", content)
      assert.is_true(llm.is_error(err))
      assert.equals("connection", err.kind)
      assert.matches("closed before the end", err.message)
      assert.equals(1, #srv.requests)
      assert.equals(0, stream.metrics.retries)
      assert.same({ nil, err }, { stream:next() }) -- sticky
    end)
  end))

  it("retries a stream dropped before any chunk was delivered", rt.run(function()
    within(5, function()
      local srv = http_server.start {
        responses = {
          sse({ ": nothing yet\n\n", "data: {" }, { drop_after = 1 }),
          sse({ delta({ content = "second try" }), DONE }),
        },
      }
      local stream = assert(new_llm(srv):chat { messages = MESSAGES })
      local content, _, _, err = collect(stream)
      assert.is_nil(err)
      assert.equals("second try", content)
      assert.equals(1, stream.metrics.retries)
      assert.equals(2, #srv.requests)
    end)
  end))

  it("fails with kind 'protocol' on malformed JSON, never crashing or hanging", rt.run(function()
    within(5, function()
      local srv = http_server.start {
        responses = {
          sse({ delta({ content = "fine" }), "data: {\"choices\": [oops]}\n\n", DONE }),
          sse({ 'data: {"choices": 5}\n\n', DONE }),
        },
      }
      local stream = assert(new_llm(srv):chat { messages = MESSAGES })
      local content, _, _, err = collect(stream)
      assert.equals("fine", content)
      assert.equals("protocol", err.kind)
      assert.is_false(err.retryable)
      assert.matches("malformed", err.message)
      stream = assert(new_llm(srv):chat { messages = MESSAGES })
      local _, _, _, err2 = collect(stream)
      assert.equals("protocol", err2.kind)
      assert.equals(2, #srv.requests) -- not retried
    end)
    assert.equals(0, task.ledger().kinds.http)
  end))

  it("closes the HTTP stream when the reading task is cancelled", rt.run(function()
    within(5, function()
      -- the first event at once, then silence (the second would come in 30 s)
      local srv = http_server.start {
        responses = { sse({ delta({ content = "first" }), delta({ content = "late" }) }, { delay = { 0, 30 } }) },
      }
      local got = task.channel(1)
      local reader = task.spawn(function()
        local stream = assert(new_llm(srv, { idle_timeout = 30 }):chat { messages = MESSAGES })
        got:send(assert(stream:next()).content)
        stream:next() -- blocks: the server says nothing more
        error("not reached")
      end)
      assert.equals("first", got:recv())
      assert.equals(1, task.ledger().kinds.http)
      task.sleep(0.01)
      reader:cancel("caller hung up")
      local ok, err = reader:wait()
      assert.is_false(ok)
      assert.is_true(task.is_cancelled(err))
      assert.equals(0, task.ledger().kinds.http)
      local deadline = task.now() + 2
      while srv.peer_closed < 1 and task.now() < deadline do
        task.sleep(0.01)
      end
      assert.equals(1, srv.peer_closed)
    end)
  end))

  it("streams 1000 events (measured)", rt.run(function()
    within(20, function()
      local parts = {}
      for i = 1, 1000 do
        parts[i] = delta({ content = "tok" .. i .. " " })
      end
      parts[#parts + 1] = usage_event(100, 1000)
      parts[#parts + 1] = DONE
      local text = table.concat(parts)
      local srv = http_server.start { responses = { sse(split(text, 1400)) } }
      local c0, t0 = os.clock(), task.now()
      local stream = assert(new_llm(srv):chat { messages = MESSAGES })
      local n = 0
      while true do
        local chunk, err = stream:next()
        assert.is_nil(err)
        if not chunk then
          break
        end
        if chunk.content then
          n = n + 1
        end
      end
      local cpu, wall = os.clock() - c0, task.now() - t0
      assert.equals(1000, n)
      -- the server runs in this process too: the CPU figure includes it
      print(string.format("\n    1000-event stream: %.1f ms CPU (client + server), %.1f ms wall, %d bytes",
        cpu * 1000, wall * 1000, #text))
    end)
  end))
end)
