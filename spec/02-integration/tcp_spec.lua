-- TCP client resource (engine/bind/bind_tcp.c) against real local servers
-- written with luv on the same loop. Server callbacks are plain luv
-- callbacks, not tasks. Every case ends with an empty ledger (rt.run).
local rt = require "runtime_helper"
local task = require "moonline.task"
local uv = require "luv"

local HOST = "127.0.0.1"

-- Bound every case: a hang fails the spec instead of blocking the run.
local function within(seconds, fn)
  local ok, err = task.with_timeout(seconds, fn)
  assert(ok, "case did not finish within " .. seconds .. "s: " .. tostring(err))
end

-- server(on_conn [, backlog]) -> port, clients. A luv TCP server on
-- 127.0.0.1:0; on_conn(client) runs for each accepted connection (on_conn
-- false: never accept). Its handles are closed when the current scope exits.
local function server(on_conn, backlog)
  local srv = uv.new_tcp()
  assert(srv:bind(HOST, 0))
  local clients = {}
  assert(srv:listen(backlog or 16, function(err)
    if err or on_conn == false then
      return
    end
    local c = uv.new_tcp()
    srv:accept(c)
    clients[#clients + 1] = c
    on_conn(c)
  end))
  local port = srv:getsockname().port
  task.defer(function()
    for _, c in ipairs(clients) do
      if not c:is_closing() then
        c:close()
      end
    end
    if not srv:is_closing() then
      srv:close()
    end
  end)
  return port, clients
end

local function echo(c)
  c:read_start(function(err, data)
    if data and not err then
      c:write(data)
    elseif not c:is_closing() then
      c:close()
    end
  end)
end

-- read from sock until `n` bytes arrived (or eof/error)
local function read_n(sock, n)
  local parts, got = {}, 0
  while got < n do
    local data, err = sock:read()
    if not data then
      return table.concat(parts), err
    end
    parts[#parts + 1] = data
    got = got + #data
  end
  return table.concat(parts)
end

describe("tcp client", function()
  it("writes, reads the echo, closes", rt.run(function()
    within(5, function()
      local port = server(echo)
      local sock, err = task.tcp_connect(HOST, port)
      assert.is_nil(err)
      assert.equals(1, task.ledger().kinds.tcp)
      assert.matches("moonline tcp", tostring(sock))
      assert.is_true(sock:write("hello"))
      assert.equals("hello", read_n(sock, 5))
      sock:close()
      sock:close() -- idempotent
      assert.same({ nil, "closed" }, { sock:read() })
      assert.same({ nil, "closed" }, { sock:write("x") })
    end)
    assert.equals(0, task.ledger().kinds.tcp)
  end))

  it("resolves a host name (localhost)", rt.run(function()
    within(5, function()
      local port = server(echo)
      local sock = assert(task.tcp_connect("localhost", port, { timeout = 2 }))
      assert.is_true(sock:write("named"))
      assert.equals("named", read_n(sock, 5))
      sock:close()
    end)
  end))

  it("gives the data, then nil, 'eof' when the server closes", rt.run(function()
    within(5, function()
      local port = server(function(c)
        c:write("bye", function()
          c:shutdown(function()
            c:close()
          end)
        end)
      end)
      local sock = assert(task.tcp_connect(HOST, port))
      assert.equals("bye", read_n(sock, 3))
      local data, err = sock:read()
      assert.is_nil(data)
      assert.equals("eof", err)
      -- eof is sticky
      assert.same({ nil, "eof" }, { sock:read() })
      sock:close()
    end)
  end))

  it("returns nil, 'connection refused' for a closed port, leaving nothing open", rt.run(function()
    local probe = uv.new_tcp()
    assert(probe:bind(HOST, 0))
    local port = probe:getsockname().port
    probe:close()
    task.sleep(0) -- let the close complete
    local before = task.ledger().resources_opened
    local sock, err = task.tcp_connect(HOST, port, { timeout = 2 })
    assert.is_nil(sock)
    assert.matches("refused", err)
    local l = task.ledger()
    assert.equals(before + 1, l.resources_opened) -- it was really a resource…
    assert.equals(0, l.resources) -- …and already closed when the error came back
    assert.equals(0, l.kinds.tcp)
  end))

  it("reports unknown host names as getaddrinfo errors", rt.run(function()
    local sock, err = task.tcp_connect("no-such-host.invalid", 80, { timeout = 5 })
    assert.is_nil(sock)
    assert.matches("^getaddrinfo: ", err)
    assert.equals(0, task.ledger().kinds.tcp)
  end))

  it("times out a connect that the server never completes; cancels one cleanly", rt.run(function()
    within(10, function()
      -- a listener that never accepts: once its accept queue is full, the
      -- kernel drops further SYNs and connects hang
      local port = server(false, 0)
      local held, timed_out = {}, false
      for _ = 1, 16 do
        local t0 = task.now()
        local sock, err = task.tcp_connect(HOST, port, { timeout = 0.1 })
        if not sock then
          assert.equals("timeout", err)
          assert.is_true(task.now() - t0 >= 0.09)
          timed_out = true
          break
        end
        held[#held + 1] = sock
      end
      assert.is_true(timed_out, "the accept queue never filled up")
      assert.equals(#held, task.ledger().kinds.tcp)
      -- cancelled while blocked in tcp_connect (default 10 s timeout)
      local ok, why = task.with_timeout(0.05, task.tcp_connect, HOST, port)
      assert.is_nil(ok)
      assert.equals("timeout", why)
      assert.equals(#held, task.ledger().kinds.tcp)
      for _, s in ipairs(held) do
        s:close()
      end
    end)
    assert.equals(0, task.ledger().kinds.tcp)
  end))

  it("read under with_timeout gives nil, 'timeout' and the socket stays usable", rt.run(function()
    within(5, function()
      local port, clients = server(function() end) -- silent
      local sock = assert(task.tcp_connect(HOST, port))
      local ok, why = task.with_timeout(0.05, function()
        return sock:read()
      end)
      assert.is_nil(ok)
      assert.equals("timeout", why)
      -- the reader registration was undone: the server speaks now, we read it
      while #clients == 0 do
        task.sleep(0.001)
      end
      clients[1]:write("late")
      assert.equals("late", read_n(sock, 4))
      sock:close()
    end)
    assert.equals(0, task.ledger().kinds.tcp)
  end))

  it("a failing sibling cancels a blocked reader and the scope closes the socket", rt.run(function()
    local reader, reader_err
    within(5, function()
      local port = server(function() end) -- silent: the reader blocks
      local ok, err = pcall(task.scope, function()
        local sock = assert(task.tcp_connect(HOST, port))
        reader = task.spawn(function()
          local rok, rerr = pcall(sock.read, sock)
          reader_err = rerr
          if not rok then
            error(rerr, 0) -- re-raise the Cancelled as it is
          end
        end)
        task.spawn(function()
          task.sleep(0.02)
          error("boom")
        end)
      end)
      assert.is_false(ok)
      assert.matches("boom", tostring(err))
    end)
    assert.is_true(task.is_cancelled(reader_err), "reader got " .. tostring(reader_err))
    assert.same({ "done", "cancelled" }, { reader:status() })
    assert.equals(0, task.ledger().kinds.tcp)
    assert.equals(0, task.ledger().resources)
  end))

  it("closes a socket dropped without close() from __gc and counts a leak", rt.run(function()
    within(5, function()
      local port = server(echo)
      local before = task.ledger()
      local t = task.spawn(function()
        local function open_and_drop()
          local sock = assert(task.tcp_connect(HOST, port))
          return sock ~= nil
        end
        assert.is_true(open_and_drop())
        assert.equals(before.resources + 1, task.ledger().resources)
        collectgarbage()
        collectgarbage()
        assert.equals(before.leaks + 1, task.ledger().leaks)
      end)
      assert.is_true((t:wait()))
      local after = task.ledger()
      assert.equals(before.leaks + 1, after.leaks)
      assert.equals(before.resources, after.resources)
      assert.equals(0, after.kinds.tcp)
    end)
  end))

  it("cancelling a task blocked in read raises Cancelled in it", rt.run(function()
    within(5, function()
      local port = server(echo)
      local sock = assert(task.tcp_connect(HOST, port))
      local t = task.spawn(function()
        return sock:read()
      end)
      while t:status() ~= "waiting" do
        task.yield()
      end
      task.sleep(0.01)
      assert.equals("waiting", t:status())
      t:cancel("stop reading")
      local ok, err = t:wait()
      assert.is_false(ok)
      assert.is_true(task.is_cancelled(err), "got " .. tostring(err))
      assert.equals("stop reading", err.reason)
      -- the socket is still open and has a free reader slot
      assert.is_true(sock:write("again"))
      assert.equals("again", read_n(sock, 5))
      sock:close()
    end)
  end))

  it("close() from another task wakes a blocked reader with nil, 'closed'", rt.run(function()
    within(5, function()
      local port = server(function() end)
      local sock = assert(task.tcp_connect(HOST, port))
      local t = task.spawn(function()
        return sock:read()
      end)
      task.sleep(0.01)
      assert.equals("waiting", t:status())
      sock:close()
      local ok, data, err = t:wait()
      assert.is_true(ok)
      assert.is_nil(data)
      assert.equals("closed", err)
    end)
  end))

  it("refuses a second concurrent reader", rt.run(function()
    within(5, function()
      local port = server(function() end)
      local sock = assert(task.tcp_connect(HOST, port))
      local t = task.spawn(function()
        return sock:read()
      end)
      task.sleep(0.01)
      local ok, err = pcall(sock.read, sock)
      assert.is_false(ok)
      assert.matches("another task is already reading", err)
      sock:close()
      t:wait()
    end)
  end))

  it("moves 1 MiB through an echo server in both directions", rt.run(function()
    within(10, function()
      local port = server(echo)
      local sock = assert(task.tcp_connect(HOST, port))
      local chunk = string.rep("0123456789abcdef", 4096) -- 64 KiB
      local payload = {}
      for i = 1, 16 do
        payload[i] = chunk:gsub("0", string.char(64 + i))
      end
      payload = table.concat(payload)
      local w = task.spawn(function()
        for i = 1, #payload, 100000 do
          assert(sock:write(payload:sub(i, i + 99999)))
        end
      end)
      local got, err = read_n(sock, #payload)
      assert.is_nil(err)
      assert.equals(#payload, #got)
      assert.is_true(got == payload, "echoed bytes differ")
      assert.is_true((w:wait()))
      sock:close()
    end)
  end))

  it("shutdown() ends our side; the peer's reply still arrives", rt.run(function()
    within(5, function()
      local port = server(function(c)
        local got = {}
        c:read_start(function(err, data)
          if data then
            got[#got + 1] = data
          elseif not err then
            c:write("got:" .. table.concat(got), function()
              c:close()
            end)
          end
        end)
      end)
      local sock = assert(task.tcp_connect(HOST, port))
      assert.is_true(sock:write("abc"))
      assert.is_true(sock:shutdown())
      assert.is_true(sock:shutdown()) -- already done
      assert.same({ nil, "shut down" }, { sock:write("more") })
      assert.equals("got:abc", read_n(sock, 7))
      assert.same({ nil, "eof" }, { sock:read() })
      sock:close()
    end)
  end))

  it("checks its arguments and refuses to run outside a task", rt.run(function()
    assert.has_error(function()
      task.tcp_connect(HOST, 0)
    end, "bad argument #2 to 'tcp_connect' (port must be in 1..65535)")
    assert.has_error(function()
      task.tcp_connect(HOST, 80, { timeout = "soon" })
    end)
    assert.has_error(function()
      task.tcp_connect(HOST, 80, { timeout = 0 })
    end)
    assert.has_error(function()
      task.tcp_connect("", 80)
    end)
  end))

  it("refuses to connect outside a task", function()
    local ok, err = pcall(task.tcp_connect, HOST, 80)
    assert.is_false(ok)
    assert.matches("not inside a task", err)
    rt.assert_ledger_zero()
  end)
end)
