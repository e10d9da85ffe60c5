-- The `moonline` command as a user runs it: real processes, exit codes,
-- tracebacks, the ledger line and signals.
local build = os.getenv("MOONLINE_BUILD") or "build"
local MOONLINE = build .. "/moonline"
local files = require "support.files"
local tmpfile, slurp = files.tmpfile, files.slurp



-- run(args [, shell_prefix]) -> exit code, stdout, stderr
local function run(args, wrap)
  local out, err = os.tmpname(), os.tmpname()
  local cmd = ("%s %s >%s 2>%s; echo $?"):format(MOONLINE, args, out, err)
  if wrap then cmd = wrap(cmd, out, err) end
  local p = io.popen("timeout 30 sh -c '" .. cmd:gsub("'", "'\\''") .. "'")
  local rc = tonumber((p:read("*a"):match("(%d+)%s*$")))
  p:close()
  local o, e = slurp(out), slurp(err)
  os.remove(out)
  os.remove(err)
  return rc, o, e
end

local LEDGER_ZERO = "ledger: tasks=0 resources=0 timers=0 handles=0"

describe("moonline CLI", function()
  it("--help prints the usage and exits 0", function()
    local rc, out = run("--help")
    assert.equal(0, rc)
    assert.matches("usage: moonline", out)
    assert.matches("run %[%-%-ledger%] FILE", out)
  end)

  it("--version names the version, LuaJIT and libuv", function()
    local rc, out = run("--version")
    assert.equal(0, rc)
    assert.matches("^moonline %d+%.%d+%.%d+ %(LuaJIT 2%.1", out)
  end)

  it("an unknown command is a usage error (exit 2)", function()
    local rc, _, err = run("frobnicate")
    assert.equal(2, rc)
    assert.matches("unknown command 'frobnicate'", err)
  end)

  it("runs a script with its arguments and exits 0", function()
    local f = tmpfile([[
      local task = require "moonline.task"
      local a, b = ...
      task.sleep(0.01)
      print("args", a, b, arg[0] ~= nil)
    ]])
    local rc, out, err = run("run --ledger " .. f .. " one two")
    os.remove(f)
    assert.equal(0, rc, err)
    assert.matches("args\tone\ttwo\ttrue", out)
    assert.matches(LEDGER_ZERO, err, 1, true)
  end)

  it("an error in nested scopes with open timers and sockets: exit 1, FILE:LINE, zero ledger", function()
    local f = tmpfile([[
local task = require "moonline.task"
local uv = require "luv"
local server = uv.new_tcp()             -- a real listener on loopback
server:bind("127.0.0.1", 0)
local peers = {}
server:listen(16, function()
  local peer = uv.new_tcp(); server:accept(peer); peers[#peers + 1] = peer
end)
task.defer(function()
  for _, p in ipairs(peers) do p:close() end
  server:close(); print("outer cleanup")
end)
local port = server:getsockname().port
task.scope(function()
  local t1 = task.timer(10, 1)
  local s1 = assert(task.tcp_connect("127.0.0.1", port))
  task.spawn(function()
    local s2 = assert(task.tcp_connect("127.0.0.1", port))
    task.scope(function()
      task.timer(5)
      s2:read() -- blocks: the peer never writes
    end)
  end)
  task.spawn(function()
    task.sleep(0.05)
    print("open: " .. task.ledger().kinds.tcp .. " sockets, " .. task.ledger().kinds.timer .. " timers")
    error("nested failure")
  end)
  t1:wait()
  s1:read()
end)
]])
    local rc, out, err = run("run --ledger " .. f)
    assert.equal(1, rc, err)
    assert.matches("open: 2 sockets, 2 timers", out)
    assert.matches(f:gsub("%p", "%%%0") .. ":27: nested failure", err)
    assert.matches("stack traceback", err)
    assert.matches("outer cleanup", out)
    assert.matches(LEDGER_ZERO, err, 1, true)
    os.remove(f)
  end)

  it("a syntax error is reported with its line and exit 1", function()
    local f = tmpfile("local x = = 1\n")
    local rc, _, err = run("run " .. f)
    os.remove(f)
    assert.equal(1, rc)
    assert.matches(":1: unexpected symbol", err)
  end)

  it("a missing file is reported", function()
    local rc, _, err = run("run /nonexistent/script.lua")
    assert.equal(1, rc)
    assert.matches("cannot open /nonexistent/script.lua", err)
  end)

  it("--ledger exits 3 when a libuv handle is left open", function()
    local f = tmpfile([[
      local uv = require "luv"
      _G.keep = uv.new_timer() -- created, never closed
    ]])
    local rc, _, err = run("run --ledger " .. f)
    os.remove(f)
    assert.equal(3, rc)
    assert.matches("ledger: tasks=0 resources=0 timers=0 handles=1", err, 1, true)
  end)

  it("MOONLINE_LEDGER=1 turns the ledger on", function()
    local f = tmpfile("return 1")
    local rc, _, err = run("run " .. f, function(cmd) return "MOONLINE_LEDGER=1 " .. cmd end)
    os.remove(f)
    assert.equal(0, rc)
    assert.matches(LEDGER_ZERO, err, 1, true)
  end)

  it("an error in a luv callback fails the task that registered it; the rest goes on", function()
    local f = tmpfile([[
      local uv = require "luv"
      local task = require "moonline.task"
      local child = task.spawn_supervised(function()
        local t = uv.new_timer()
        task.defer(function() t:close() end)
        t:start(1, 0, function() error("callback broke") end)
        task.sleep(1000)
      end)
      local ok, err = child:wait()
      print("child", ok, err)
      print("still running")
    ]])
    local rc, out, err = run("run --ledger " .. f)
    os.remove(f)
    assert.equal(0, rc, err)
    assert.matches("child\tfalse\t[^\n]*:6: callback broke", out)
    assert.matches("still running", out)
    assert.matches(LEDGER_ZERO, err, 1, true)
  end)

  for _, sig in ipairs({ { "INT", 130 }, { "TERM", 143 } }) do
    it("SIG" .. sig[1] .. " cancels the root scope, runs cleanup, exits " .. sig[2], function()
      local f = tmpfile([[
        local task = require "moonline.task"
        task.defer(function() task.sleep(0.01); print("cleaned up") end)
        task.spawn(function()
          local ok, e = pcall(task.sleep, 1000)
          print("child", ok, tostring(e))
        end)
        print("ready")
        io.stdout:flush()
        task.sleep(1000)
      ]])
      local rc, out, err = run("run --ledger " .. f, function(cmd, o)
        -- start in the background, wait for "ready", then signal it
        local bg = cmd:gsub("; echo %$%?$", "")
        return bg .. " & pid=$!; for i in $(seq 100); do grep -q ready " .. o ..
          " && break; sleep 0.05; done; kill -" .. sig[1] .. " $pid; wait $pid; echo $?"
      end)
      os.remove(f)
      assert.equal(sig[2], rc, err)
      assert.matches("child\tfalse\tcancelled: signal", out)
      assert.matches("cleaned up", out)
      assert.matches("cancelled: signal", err)
      assert.matches(LEDGER_ZERO, err, 1, true)
    end)
  end
end)
