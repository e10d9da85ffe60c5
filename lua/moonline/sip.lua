-- moonline.sip: answer phone calls.
--
--   local sip = require "moonline.sip"
--   local listener = sip.listen{ host = "127.0.0.1", port = 5060, handler = function(call)
--     call:answer()            -- 200 OK with our SDP answer; RTP starts
--     call:tone(440, 0.5, 3)   -- a 440 Hz tone for 3 s
--     call:wait("ended")       -- until the caller hangs up
--   end }
--
-- Each inbound call runs `handler(call)` in its own task; the call belongs to
-- that task's scope: when the handler returns or fails, the call is hung up
-- (BYE, or 603 while ringing) and its RTP socket closed.
--
-- The accept loop runs until listener:close() (or a cancellation): a scope
-- that returns normally waits for it. Closing stops accepting (new INVITEs
-- and OPTIONS get 503) and lets the calls in progress finish. sip.serve(opts,
-- body) does that around a body function.
local core = require "moonline.core"
local task = require "moonline.task"

local await = task.await
local waitable = task.waitable

local _M = {}

local Listener = core.methods("moonline.sip_listener")
local Call = core.methods("moonline.sip_call")

local wrap = task.wrap_method

-- A task woken from a wait queue is resumed with a bare `true`: the C half
-- is asked again until it has an answer.
local function retrying(prim)
  return function(raw)
    return function(...)
      waitable(prim)
      while true do
        local a, b = await(raw(...))
        if a ~= nil or b ~= nil then return a, b end
      end
    end
  end
end

wrap(Listener, "accept", retrying("sip listener:accept"))
wrap(Call, "wait", retrying("sip call:wait"))
wrap(Call, "read_dtmf", retrying("sip call:read_dtmf"))
wrap(Call, "answer", function(raw) return function(self) return await(raw(self)) end end)
wrap(Call, "reject", function(raw) return function(self, code) return await(raw(self, code)) end end)
wrap(Call, "send_dtmf", function(raw) return function(self, digits) return await(raw(self, digits)) end end)
-- call:wait_change() -> true | nil, "ended": until the next event of the call
wrap(Call, "wait_change", function(raw)
  return function(self)
    waitable("sip call:wait_change")
    local ok, a, b = raw(self)
    if ok == nil then return await(ok, a, b) end -- cancelled: raises
    if ok == false then return nil, a end
    return true
  end
end)

--- call:transfer(uri [, { referred_by =, timeout = 30 }]) -> true, status | nil, err, status
-- Cold transfer (REFER, RFC 3515): the other side is asked to call uri; the
-- NOTIFYs it sends tell how that goes. Success is a 2xx sipfrag; the call
-- stays up either way (the other side usually hangs up after a success).
wrap(Call, "transfer", function(raw)
  return function(self, uri, opts)
    opts = opts or {}
    local ok, err = await(raw(self, uri, opts.referred_by))
    if not ok then return nil, err end
    local done = task.with_timeout(opts.timeout or 30, function()
      while true do
        local code, final = self:transfer_status()
        if final then return code end
        if not self:wait_change() then return self:transfer_status() end
      end
    end)
    local code = select(1, self:transfer_status())
    if not done then return nil, "transfer timed out", code end
    if code >= 200 and code < 300 then return true, code end
    return nil, "transfer failed", code
  end
end)

-- A re-INVITE offering our session as a=sendonly (hold) or a=sendrecv
-- (resume), RFC 3264 §8.4. The transaction itself is bounded (408 after
-- 32 s); opts.timeout bounds the wait here too. A 491 (both sides sent a
-- re-INVITE at once) is retried after RFC 3261 §14.1's random delay: 2.1-4 s
-- when the Call-ID is ours, 0-2 s when it is theirs.
local function reoffer(self, hold, opts)
  opts = opts or {}
  local attempts = opts.attempts or 3
  for attempt = 1, attempts do
    local ok, err
    -- not while the peer's own re-INVITE waits for its ACK (RFC 3261 §14.1):
    -- that ends within 32 s (the ACK, or a BYE without one)
    task.with_timeout(opts.timeout or 40, function()
      while true do
        ok, err = await(self:reinvite(hold))
        if ok or err ~= "busy" then return end
        task.sleep(0.05)
      end
    end)
    if not ok then return nil, err or "timeout" end
    task.with_timeout(opts.timeout or 40, function()
      while select(2, self:reinvite_status()) do
        if not self:wait_change() then return end
      end
    end)
    local code, pending, ours = self:reinvite_status()
    if pending then return nil, "timeout" end
    if code == 0 then return nil, "ended" end
    if code >= 200 and code < 300 then return true, code end
    if code ~= 491 or attempt == attempts then return nil, "rejected", code end
    task.sleep(ours and 2.1 + math.random() * 1.9 or math.random() * 2)
  end
end

--- call:hold([{ timeout = 40, attempts = 3 }]) -> true, 200 | nil, err, status
-- Puts the other side on hold: re-INVITE with our SDP as a=sendonly; once it
-- is accepted we send no audio and call:holding() is true. A failure
-- ("rejected" with the status, "timeout", "ended") changes nothing.
function Call:hold(opts) return reoffer(self, true, opts) end

--- call:unhold([opts]) -> true, 200 | nil, err, status: re-INVITE a=sendrecv; audio resumes
function Call:unhold(opts) return reoffer(self, false, opts) end

-- A transfer request from the other side (an inbound REFER, RFC 3515).
local Refer = {}
Refer.__index = Refer

--- req:accept() -> true | nil, err: 202 Accepted, then NOTIFY "SIP/2.0 100 Trying"
function Refer:accept() return await(self.call:refer_reply("accept")) end

--- req:reject([code=603]) -> true | nil, err: a final error response to the REFER
function Refer:reject(code) return await(self.call:refer_reply("reject", code or 603)) end

--- req:notify(code) -> true | nil, err: NOTIFY with "SIP/2.0 <code> ..."; a
-- final code (>= 200) ends the subscription (terminated;reason=noresource)
function Refer:notify(code) return await(self.call:refer_reply("notify", code)) end

--- call:wait_refer([seconds]) -> req | nil, "timeout" | "ended"
-- The next REFER from the other side: req.refer_to (the URI to call, as
-- sent), req.referred_by (or nil). The script decides: req:accept(), call
-- the target (sip.dial), req:notify(status); or req:reject(code). A REFER
-- left undecided is declined (603) when the call ends; an accepted one
-- whose outcome was never reported gets a final NOTIFY (487) when we hang up.
function Call:wait_refer(seconds)
  local req
  local done = task.with_timeout(seconds or math.huge, function()
    while true do
      req = self:refer_request()
      if req then return true end
      if not self:wait_change() then return end
    end
  end)
  if req then return setmetatable({ call = self, refer_to = req.refer_to, referred_by = req.referred_by }, Refer) end
  return nil, done and "ended" or "timeout"
end

--- context(call) -> ctx: what a handler gets as its second argument.
-- ctx.caller is the call; ctx.from, ctx.to, ctx.call_id come from the
-- INVITE; ctx.user is the authenticated username (listen{ auth = }), or nil;
-- ctx.header(name) / ctx.headers(name) read the INVITE's headers (the same
-- as call:header / call:headers); ctx.room is a room made on first use in the handler's scope, which
-- the caller joins once answered (ctx:accept() answers and joins);
-- ctx:reject(code) refuses the call.
local Context = {}
function Context:__index(key)
  if key ~= "room" then return Context[key] end
  -- the handler's outermost scope: made inside a with_timeout, say, it still
  -- lives as long as the call
  local r = require("moonline.room").create("call " .. (self.call_id or ""), { max = 16, outermost = true })
  rawset(self, "room", r)
  local state = self.caller:state()
  if state == "confirmed" or state == "answered" then
    assert(r:add(self.caller))
  end
  return r
end

function Context:accept()
  local ok, err = self.caller:answer()
  if not ok then return nil, err end
  local r = rawget(self, "room")
  if r then return r:add(self.caller) end
  return true
end

function Context:reject(code)
  return self.caller:reject(code)
end

function _M.context(call)
  local info = call:info()
  return setmetatable({
    caller = call, from = info.from, to = info.to, call_id = info.call_id, user = info.user,
    header = function(name) return call:header(name) end,
    headers = function(name) return call:headers(name) end,
  }, Context)
end

--- listen{ host = "127.0.0.1", port = 5060, handler = fn(call, ctx), user_agent = } -> listener | nil, err
-- The listener is a resource of the current scope; its accept loop and the
-- call handlers are tasks of that scope too.
-- transport = "udp" (default) | "tcp" | "both" (UDP and TCP on one port);
-- over TCP: tcp_idle_timeout = 300 (s), tcp_max_connections = 1024.
-- auth = { realm = "moonline", users = { alice = "secret" } | function(username) -> password | nil,
--          algorithms = { "SHA-256", "MD5" }, nonce_ttl = 300 }: digest auth of
-- new INVITEs (401 challenges, 403 for a wrong password); the handler runs
-- only for authenticated calls, call:info().user / ctx.user say who. A users
-- function is called as the INVITE arrives: it must answer at once (no waiting).
function _M.listen(opts)
  opts = opts or {}
  local raw, err = await(core.sip_listen(opts.host, opts.port, opts.user_agent, opts.transport,
    opts.tcp_idle_timeout, opts.tcp_max_connections, opts.auth))
  if not raw then
    return nil, err
  end
  if opts.handler then
    local handler = opts.handler
    task.spawn_supervised("sip accept", function()
      local took = task.channel(1)
      while true do
        -- one task waits in accept; it owns the call it gets, and tells the
        -- loop to start the next waiter
        task.spawn_supervised("sip call", function()
          local call = raw:accept()
          took:send(call and true or false)
          if call then handler(call, _M.context(call)) end
        end)
        if not took:recv() then break end
      end
    end)
  end
  return raw
end

-- "Name: value" lines for the INVITE; names must be tokens, values one line
local function header_lines(headers)
  if not headers then return nil end
  local out = {}
  for name, value in pairs(headers) do
    if type(name) ~= "string" or not name:match("^[%w%-%.!%%%*_%+`'~]+$") then
      error("sip.dial: bad header name " .. tostring(name), 3)
    end
    value = tostring(value)
    if value:find("[\r\n%z]") then
      error("sip.dial: the value of " .. name .. " must be one line", 3)
    end
    out[#out + 1] = name .. ": " .. value .. "\r\n"
  end
  table.sort(out)
  return table.concat(out)
end

--- dial(uri, opts) -> call | nil, err, status
-- uri: "sip:bob@127.0.0.1:5080", or a number/user with opts.trunk.
-- opts: trunk = { host =, port =, username =, password =, transport = "udp"|"tcp" },
--       from = "sip:agent@host",
--       headers = { ["X-Case"] = "42" }, ringing_timeout = 30, listener = (send from
--       a listener's socket; default: a socket of the call's own), local_host,
--       wait_until_answered = true, dtmf = "123#" (sent once answered),
--       room = (a moonline.room the leg joins once answered).
-- While ringing, a timeout or a cancellation of the calling task sends CANCEL.
function _M.dial(uri, opts)
  opts = opts or {}
  local trunk = opts.trunk or {}
  local ruri = uri
  local host, port = trunk.host, trunk.port
  if not uri:match("^sips?:") then
    if not host then
      error("sip.dial: '" .. uri .. "' is not a SIP URI; give a trunk to dial a number", 2)
    end
    ruri = ("sip:%s@%s:%d"):format(uri, host, port or 5060)
  end
  if not host then -- the URI's host: sip:user@host:port, sip:host, sip:user@[v6]:port
    local hostport = ruri:match("^sips?:[^@;>]*@([^;>?]+)") or ruri:match("^sips?:([^;>?]+)")
    if hostport then
      host, port = hostport:match("^%[([^%]]+)%]:?(%d*)$")
      if not host then host, port = hostport:match("^([^:]+):?(%d*)$") end
    end
    port = tonumber(port)
  end
  local transport = trunk.transport
  if not transport and ruri:lower():find(";transport=tcp", 1, true) then transport = "tcp" end
  local local_host = opts.local_host or "127.0.0.1"
  local call, err = await(core.sip_dial(opts.listener, {
    ruri = ruri, to = "<" .. ruri .. ">",
    from = "<" .. (opts.from or ("sip:moonline@" .. local_host)) .. ">",
    headers = header_lines(opts.headers),
    host = host, port = port or 5060, local_host = local_host,
    username = trunk.username, password = trunk.password, transport = transport,
  }))
  if not call then
    return nil, err
  end
  if opts.wait_until_answered == false then
    return call
  end
  local answered, why = task.with_timeout(opts.ringing_timeout or 30, function()
    return call:wait("confirmed")
  end)
  if answered and why then
    if opts.room then -- the answered leg joins the room (warm transfer: a consult room)
      local ok, rerr = opts.room:add(call)
      if not ok then
        call:close()
        return nil, rerr
      end
    end
    if opts.dtmf then -- RFC 4733 digits once answered ('w': half a second pause)
      local ok, derr = call:send_dtmf(opts.dtmf)
      if not ok then
        call:close()
        return nil, derr
      end
    end
    return call
  end
  if not answered then -- no answer in time: CANCEL, and wait for the end (bounded)
    call:hangup()
    task.with_timeout(5, function() call:wait("ended") end)
  end
  local _, reason, status = call:state()
  call:close()
  if not answered then
    return nil, "no answer", 408
  end
  return nil, reason or "ended", status
end

local Registration = core.methods("moonline.sip_registration")
wrap(Listener, "register", function(raw) return function(self, opts) return await(raw(self, opts)) end end)
wrap(Registration, "wait_change", function(raw)
  return function(self)
    waitable("sip registration:wait_change")
    local ok, a, b = raw(self)
    if ok == nil then return await(ok, a, b) end
    if ok == false then return nil, a end
    return true
  end
end)

--- listener:register{ registrar = "192.0.2.5", port = 5060, user = "agent", domain =,
--  username =, password =, expires = 3600 } -> registration
-- Registers the listener's address (digest auth on 401/407), refreshes it
-- before it expires, retries after failures; closing it unregisters
-- (Expires: 0). reg:status() -> state, granted seconds, last status code.

--- reg:wait_registered([seconds=10]) -> true, granted | nil, state, code
function Registration:wait_registered(seconds)
  local ok = task.with_timeout(seconds or 10, function()
    while true do
      local state = self:status()
      if state == "registered" then return end
      if state == "failed" or state == "closed" then return end
      if not self:wait_change() then return end
    end
  end)
  local state, granted, code = self:status()
  if state == "registered" then return true, granted end
  return nil, ok and state or "timeout", code
end

--- serve(opts, body) -> body's results: listen, run body(listener), then stop
-- listening (calls in progress finish first), however body ends.
function _M.serve(opts, body)
  local listener = assert(_M.listen(opts))
  return task.scope(function()
    task.defer(function() listener:close() end)
    return body(listener)
  end)
end

return _M
