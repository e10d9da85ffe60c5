-- Digest auth engine to engine: our UAC (sip.dial with trunk credentials)
-- against our UAS (sip.listen{ auth = }), SHA-256 first as RFC 8760 asks;
-- and the headers each side reads (the INVITE's, the 2xx's).
local rt = require "runtime_helper"
local task = require "moonline.task"
local sip = require "moonline.sip"

local HOST = "127.0.0.1"
local PORT = 19060 + (os.time() % 100) * 9

local function uri(port) return ("sip:agent@%s:%d"):format(HOST, port) end

describe("SIP digest auth, engine to engine", function()
  it("SHA-256: the retried INVITE is answered, the handler knows the user and the headers", rt.run(function()
    local seen = {}
    sip.serve({ host = HOST, port = PORT, auth = { realm = "moonline", users = { alice = "secret" },
      algorithms = { "SHA-256" } }, handler = function(call, ctx)
      seen.user, seen.info_user = ctx.user, call:info().user
      seen.case = ctx.header("x-case")
      seen.auth = call:headers("Authorization")
      assert(ctx:accept())
      call:wait("ended")
    end }, function(listener)
      local call, why, status = sip.dial(uri(PORT), {
        trunk = { host = HOST, port = PORT, username = "alice", password = "secret" },
        headers = { ["X-Case"] = "42" },
      })
      assert(call, tostring(why) .. " " .. tostring(status))
      -- an outbound call reads the 2xx answer's headers
      assert.matches("^moonline/", call:header("Server"))
      assert.is_nil(call:header("X-Case"))
      assert.same({}, call:headers("WWW-Authenticate"))
      call:hangup()
      call:wait("ended")
      call:close()
      local st = listener:stats()
      assert.equal(1, st.auth_challenges)
      assert.equal(1, st.auth_accepted)
      assert.equal(0, st.auth_rejected)
    end)
    assert.equal("alice", seen.user)
    assert.equal("alice", seen.info_user)
    assert.equal("42", seen.case)
    assert.equal(1, #seen.auth)
    assert.matches('algorithm=SHA%-256', seen.auth[1])
  end))

  it("both offered: our UAC answers the first, SHA-256", rt.run(function()
    local seen
    sip.serve({ host = HOST, port = PORT + 1, auth = { users = function(name)
      return name == "bob" and "pa\"ss" or nil
    end }, handler = function(call)
      seen = call:header("Authorization")
      assert(call:answer())
      call:wait("ended")
    end }, function()
      local call = assert(sip.dial(uri(PORT + 1), {
        trunk = { host = HOST, port = PORT + 1, username = "bob", password = "pa\"ss" } }))
      call:close()
    end)
    assert.matches('username="bob"', seen)
    assert.matches('algorithm=SHA%-256', seen)
  end))

  it("a wrong password gets 403, no credentials 401, a failing users function 500", rt.run(function()
    local called = false
    sip.serve({ host = HOST, port = PORT + 2, auth = { users = function(name)
      if name == "boom" then error("the user database is down") end
      return name == "alice" and "secret" or nil
    end }, handler = function() called = true end }, function(listener)
      local function dial(user, pw)
        return sip.dial(uri(PORT + 2), { trunk = { host = HOST, port = PORT + 2, username = user, password = pw } })
      end
      assert.same({ nil, "rejected", 403 }, { dial("alice", "wrong") })
      assert.same({ nil, "rejected", 403 }, { dial("mallory", "secret") }) -- an unknown user alike
      assert.same({ nil, "auth failed", 401 }, { dial(nil, nil) })
      assert.same({ nil, "rejected", 500 }, { dial("boom", "x") })
      local st = listener:stats()
      assert.equal(4, st.auth_challenges)
      assert.equal(3, st.auth_rejected)
      assert.equal(0, st.auth_accepted)
    end)
    assert.is_false(called)
  end))

  it("checks the listen options", rt.run(function()
    assert.has_error(function() sip.listen({ host = HOST, port = PORT + 3, auth = { users = 42 } }) end)
    assert.has_error(function()
      sip.listen({ host = HOST, port = PORT + 3, auth = { users = {}, algorithms = { "SHA-512" } } })
    end)
    assert.has_error(function() sip.listen({ host = HOST, port = PORT + 3, auth = { users = {}, realm = 'a"b' } }) end)
  end))

  it("without auth nothing is challenged; an outbound call has no headers before the answer", rt.run(function()
    local info
    sip.serve({ host = HOST, port = PORT + 4, handler = function(call)
      info = call:info()
      task.sleep(0.2)
      assert(call:answer())
      call:wait("ended")
    end }, function(listener)
      local call = assert(sip.dial(uri(PORT + 4), { wait_until_answered = false }))
      assert.is_nil(call:header("Server"))
      assert.same({}, call:headers("Server"))
      assert(call:wait("confirmed"))
      assert.matches("^moonline/", call:header("server"))
      call:close()
      assert.is_nil(listener:stats().auth_challenges)
    end)
    assert.is_nil(info.user)
  end))
end)
