-- moonline.room: rooms where callers, agents and tracks hear each other.
--
--   local room = require "moonline.room"
--   local r = room.create("support")      -- a resource of the current scope
--   r:add(call)                           -- an answered SIP call joins
--   local music = r:play("hold.wav", { loop = true })
--   r:move(call, other_room)              -- keeps the call up, changes what it hears
--   r:close()                             -- everyone still inside is disconnected (BYE)
--
-- Every member publishes one mono stream and hears the mix of the others
-- (N−1), at 16 kHz in 20 ms ticks; G.711 legs are resampled 8 <-> 16 kHz.
-- Members: SIP calls (answered), tracks (r:play), audio endpoints
-- (r:endpoint, for agents and tests: 16 kHz s16le in and out). Data
-- messages go to every data subscriber of the room but the sender.
local core = require "moonline.core"
local task = require "moonline.task"

local await = task.await
local waitable = task.waitable
local wrap = task.wrap_method

local Room = core.methods("moonline.room")
local Track = core.methods("moonline.room_track")
local Endpoint = core.methods("moonline.room_endpoint")

local _M = {}

-- data subscribers of each room (weak: a dropped room takes them along)
local subscribers = setmetatable({}, { __mode = "k" })

local DATA_QUEUE = 64

--- create(name [, { max = 64, outermost = false }]) -> room
-- The room belongs to the current scope (with outermost, to the current
-- task's outermost scope): it closes when that scope ends.
function _M.create(name, opts)
  opts = opts or {}
  if name ~= nil and type(name) ~= "string" then
    error("moonline.room.create: the name must be a string", 2)
  end
  local r = core.room_create(name, opts.max, opts.outermost)
  subscribers[r] = {}
  return r
end

--- room:add(member) -> true | nil, err: a call, track or endpoint joins
-- (leaving the room it was in, if any).
wrap(Room, "join", function(raw)
  return function(self, member)
    local ok, err = raw(self, member)
    if not ok then return nil, err end
    return true
  end
end)
Room.add = Room.join

--- room:remove(member): the member leaves (a call stays up, hearing nothing).
Room.remove = Room.leave

--- room:move(member, other) -> true | nil, err: from this room to other.
function Room:move(member, other)
  if not self:has(member) then
    return nil, "not in the room '" .. self:name() .. "'"
  end
  return other:join(member)
end

--- move(member, to) -> true | nil, err: into room `to`, from wherever it is.
function _M.move(member, to)
  return to:join(member)
end

--- room:play(source [, { loop = false, level = 0.3, seconds = 0 }]) -> track | nil, err
-- source: a WAV file (16-bit PCM, µ-law or A-law, any rate, mono or stereo),
-- a frequency in Hz, or { tone = hz }. A tone plays for `seconds` (0: until
-- stopped); a file once, or looped with loop = true.
function Room:play(source, opts)
  opts = opts or {}
  local spec = type(source) == "table" and source or {}
  local hz = type(source) == "number" and source or spec.tone
  if hz then
    return self:tone(hz, opts.level or spec.level, opts.seconds or spec.seconds)
  end
  if type(source) ~= "string" then
    error("room:play: a WAV file path, a frequency or { tone = hz }", 2)
  end
  local track, err = self:clip(source, opts.loop)
  if not track then return nil, err end
  return track
end

--- track:wait([seconds]) -> true when it has played to the end (or stopped),
-- nil, "timeout" after seconds.
wrap(Track, "wait", function(raw)
  return function(self, seconds)
    local function until_done()
      while not self:done() do
        waitable("track:wait")
        await(raw(self))
      end
      return true
    end
    if not seconds then return until_done() end
    local ok = task.with_timeout(seconds, until_done)
    if ok then return true end
    return nil, "timeout"
  end
end)
--- track:stop(): stop playing and leave the room (same as close).
Track.stop = Track.close

--- room:endpoint([{ speak_ms = 10000, hear_ms = 2000 }]) -> endpoint
-- An audio member for an agent (or a test): ep:say(pcm) queues 16 kHz s16le
-- audio into the room; ep:listen(samples) returns what it heard.
wrap(Room, "endpoint", function(raw)
  return function(self, opts)
    opts = opts or {}
    return raw(self, opts.speak_ms, opts.hear_ms)
  end
end)

-- one room tick; false once the endpoint left its room or was closed
local function endpoint_tick(ep, raw_wait)
  waitable("endpoint:wait")
  local ok, err, scope = raw_wait(ep)
  if ok == false then return false end
  await(ok, err, scope) -- cancelled: raises (with its reason and scope); woken: true
  return true
end

--- ep:say(pcm) -> true | nil, "closed": queue all of pcm, waiting while the
-- queue is full. ep:clear() drops what is not yet played (barge-in).
function Endpoint:say(pcm)
  local at, total = 0, #pcm / 2 -- in samples; the rest is never copied
  while true do
    at = at + self:write(pcm, at)
    if at >= total then return true end
    if not endpoint_tick(self, self._raw_wait) then return nil, "closed" end
  end
end

--- ep:listen(samples) -> s16le string of exactly `samples` | nil, "closed", partial
-- Waits for the room to produce them (bound it with task.with_timeout).
function Endpoint:listen(samples)
  local parts, got = {}, 0
  while got < samples do
    local chunk = self:read(samples - got)
    if not chunk then return nil, "closed", table.concat(parts) end
    if #chunk > 0 then
      parts[#parts + 1] = chunk
      got = got + #chunk / 2
    elseif not endpoint_tick(self, self._raw_wait) then
      return nil, "closed", table.concat(parts)
    end
  end
  return table.concat(parts)
end
Endpoint._raw_wait = Endpoint._raw_wait or Endpoint.wait
--- ep:wait() -> true after the next tick | nil, "closed"
function Endpoint:wait()
  if endpoint_tick(self, self._raw_wait) then return true end
  return nil, "closed"
end

--- room:data([identity]) -> subscription with sub:recv() -> msg | nil, "closed"
-- msg = { from =, topic =, payload = }. A subscriber keeps up to 64
-- messages; beyond that the oldest waiting ones are dropped (sub.dropped).
-- Its messages are delivered even after the room closed; then recv says so.
local Subscription = {}
Subscription.__index = Subscription

function Room:data(identity)
  local subs = subscribers[self]
  if not subs or self:closed() then error("moonline.room: the room is closed", 2) end
  local sub = setmetatable({ room = self, identity = identity, queue = {}, head = 1, tail = 0, dropped = 0 },
    Subscription)
  subs[sub] = true
  return sub
end

function Subscription:recv()
  while self.tail < self.head do
    if self.closed or self.room:closed() then return nil, "closed" end
    waitable("room data:recv")
    local ok, err, scope = self.room:data_wait()
    if ok == false then return nil, err end
    await(ok, err, scope) -- cancelled: raises (with its reason and scope)
  end
  local msg = self.queue[self.head]
  self.queue[self.head] = nil
  self.head = self.head + 1
  return msg
end

--- sub:close(): no more messages for this subscriber.
function Subscription:close()
  self.closed = true
  local subs = subscribers[self.room]
  if subs then subs[self] = nil end
  self.room:data_notify()
end

--- room:send_data(payload [, { from =, topic = }]) -> delivered count | nil, "closed"
-- Never waits: a subscriber that is not reading loses its oldest message.
function Room:send_data(payload, opts)
  opts = opts or {}
  local subs = subscribers[self]
  if not subs or self:closed() then return nil, "closed" end
  local msg = { from = opts.from, topic = opts.topic, payload = payload }
  local n = 0
  for sub in pairs(subs) do
    if sub.identity == nil or sub.identity ~= opts.from then
      if sub.tail - sub.head + 1 >= DATA_QUEUE then
        sub.queue[sub.head] = nil
        sub.head = sub.head + 1
        sub.dropped = sub.dropped + 1
      end
      sub.tail = sub.tail + 1
      sub.queue[sub.tail] = msg
      n = n + 1
    end
  end
  if n > 0 then self:data_notify() end
  return n
end

return _M
