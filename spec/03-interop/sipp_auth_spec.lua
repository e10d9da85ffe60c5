-- Digest auth as a UAS against sipp (Debian's sip-tester), and the INVITE's
-- headers in the handler: scenarios written for these specs
-- (spec/sipp/uac_auth.xml, uac_headers.xml). Every case ends with the ledger
-- empty.
local rt = require "runtime_helper"
local sip = require "moonline.sip"
local sipp = require "support.sipp"
local files = require "support.files"

local HOST = sipp.HOST
local eventually = sipp.eventually
local ports = sipp.ports(25060)

-- uac_auth.xml with the password and the final code put in
local function auth_scenario(password, final)
  local xml = files.slurp("spec/sipp/uac_auth.xml"):gsub("PASSWORD", password):gsub("FINAL_CODE", tostring(final))
  if final == 200 then
    xml = xml:gsub("ACK_URI", "[next_url]"):gsub("ACK_BRANCH", "[branch]"):gsub("<!%-%-BYE", ""):gsub("BYE%-%->", "")
  else -- the ACK of a non-2xx: the INVITE's Request-URI and branch (4 messages back)
    xml = xml:gsub("ACK_URI", "sip:[remote_ip]:[remote_port]"):gsub("ACK_BRANCH", "[branch-4]")
  end
  return files.tmpfile(xml)
end

describe("SIP digest auth as a UAS, with sipp", function()
  -- sipp 3.6 computes MD5 only and answers the first WWW-Authenticate: with
  -- SHA-256 first (RFC 8760) it gives up; algorithms = { "MD5" } serves it
  it("SHA-256 is offered first: sipp (MD5 only) cannot answer it", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local called = false
    local listener = assert(sip.listen({ host = HOST, port = port,
      auth = { users = { alice = "secret" } }, handler = function() called = true end }))
    local f = auth_scenario("secret", 200)
    local code, out, err = sipp.call(f, port, sipp_port, media_port)
    os.remove(f)
    listener:close()
    assert.not_equal(0, code)
    assert.matches("must use MD5", (out or "") .. (err or ""))
    assert.is_false(called)
  end))

  it("MD5 only: challenges, takes sipp's retry with alice's password, runs the handler", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local seen = {}
    local listener = assert(sip.listen({ host = HOST, port = port,
      auth = { realm = "moonline", users = { alice = "secret" }, algorithms = { "MD5" } },
      handler = function(call, ctx)
        seen.info = call:info()
        seen.user = ctx.user
        seen.case = ctx.header("X-Case")
        assert(call:answer())
        call:wait("ended")
        seen.state = { call:state() }
      end }))
    local f = auth_scenario("secret", 200)
    local code, out, err = sipp.call(f, port, sipp_port, media_port)
    os.remove(f)
    listener:close()
    assert.equal(0, code, (out or "") .. (err or ""))
    eventually(function() return seen.state end, 10, "the end of the call")
    assert.equal("alice", seen.info.user)
    assert.equal("alice", seen.user)
    assert.equal("auth-42", seen.case)
    assert.same({ "ended", "remote hangup", 0 }, seen.state)
  end))

  it("a wrong password gets 403 and the handler never runs", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local called = false
    local listener = assert(sip.listen({ host = HOST, port = port,
      auth = { users = function(name) return name == "alice" and "secret" or nil end, algorithms = { "MD5" } },
      handler = function() called = true end }))
    local f = auth_scenario("not-the-secret", 403)
    local code, out, err = sipp.call(f, port, sipp_port, media_port)
    os.remove(f)
    listener:close()
    assert.equal(0, code, (out or "") .. (err or ""))
    assert.is_false(called)
  end))

  it("OPTIONS is not challenged", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local listener = assert(sip.listen({ host = HOST, port = port, auth = { users = { alice = "secret" } } }))
    local f = sipp.scenario("uac_options.xml", { EXPECTED_CODE = "200" })
    local code, _, err = sipp.call(f, port, sipp_port, media_port)
    os.remove(f)
    listener:close()
    assert.equal(0, code, err)
  end))
end)

describe("the INVITE's headers in the handler, with sipp", function()
  it("reads X- headers, repeated ones, and compact forms", rt.run(function()
    if sipp.pending_if_missing(pending) then return end
    local port, sipp_port, media_port = ports()
    local seen
    local listener = assert(sip.listen({ host = HOST, port = port, handler = function(call, ctx)
      seen = {
        case = call:header("X-Case"),
        case_lower = call:header("x-case"),
        tags = call:headers("X-Tag"),
        subject = call:header("Subject"), -- sent as "s:"
        subject_compact = ctx.header("s"),
        call_id = call:header("Call-ID"), -- sent as "i:"
        none = call:header("X-None"),
        nones = call:headers("X-None"),
        ctx_tags = ctx.headers("x-tag"),
        info = call:info(),
      }
      assert(call:reject(486))
    end }))
    local code, _, err = sipp.call("spec/sipp/uac_headers.xml", port, sipp_port, media_port)
    listener:close()
    assert.equal(0, code, err)
    eventually(function() return seen end, 5, "the handler")
    assert.equal("case-42", seen.case)
    assert.equal("case-42", seen.case_lower)
    assert.same({ "a", "b, c" }, seen.tags)
    assert.same({ "a", "b, c" }, seen.ctx_tags)
    assert.equal("a compact subject", seen.subject)
    assert.equal("a compact subject", seen.subject_compact)
    assert.equal(seen.info.call_id, seen.call_id)
    assert.is_nil(seen.none)
    assert.same({}, seen.nones)
    assert.is_nil(seen.info.user) -- no auth on this listener
  end))
end)
