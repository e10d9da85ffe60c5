-- moonline.start: serve an agent on the phone.
--
--   moonline start examples/weather.lua [--sip 127.0.0.1:5060] [--transport udp|tcp|both]
--                                       [--grammar FILE.gram] [--stt-pool N] [--voice en-us] [--for SECONDS]
--
-- FILE is the same script `moonline console` runs (`return moonline.serve{…}`).
-- Every inbound call is answered; a session of the script's agent talks in
-- the call's room with the local engines: pocketsphinx listens (its en-us
-- language model, or a JSGF grammar), espeak-ng speaks. The model is picked
-- as the console picks it (an OpenAI-compatible server from the environment,
-- else the script's own). The session ends when the caller hangs up (or the
-- agent closes it, which hangs up). Runs until Ctrl-C / SIGTERM, or --for.
local task = require "moonline.task"
local sip = require "moonline.sip"
local voice = require "moonline.voice"
local console = require "moonline.console"
local session_mod = require "moonline.session"
local core = require "moonline.core"

local log = core.log

local _M = {}

local USAGE = "usage: moonline start FILE [--sip HOST:PORT] [--transport udp|tcp|both] [--grammar FILE.gram]"
  .. " [--stt-pool N] [--voice NAME] [--for SECONDS]"

local UsageError = { __tostring = function(e) return e.message end }
local function usage_error(msg)
  error(setmetatable({ message = msg .. "\n" .. USAGE }, UsageError), 0)
end

local function parse(args)
  local o = { host = "127.0.0.1", port = 5060, transport = "udp" }
  local i = 1
  local function value(name)
    i = i + 1
    local v = args[i]
    if v == nil then usage_error(name .. " needs a value") end
    return v
  end
  while i <= #args do
    local a = args[i]
    if a == "--sip" then
      local v = value(a)
      local host, port = v:match("^(.*):(%d+)$")
      if not host then usage_error("--sip wants HOST:PORT, got " .. v) end
      o.host, o.port = host, tonumber(port)
    elseif a == "--transport" then
      o.transport = value(a)
    elseif a == "--grammar" then
      o.grammar = value(a)
    elseif a == "--stt-pool" then
      o.pool = tonumber(value(a))
      if not o.pool or o.pool < 1 or o.pool % 1 ~= 0 then usage_error("--stt-pool wants a count of decoders") end
    elseif a == "--voice" then
      o.voice = value(a)
    elseif a == "--for" then
      o.seconds = tonumber(value(a)) or usage_error("--for wants seconds")
    elseif a:sub(1, 1) == "-" then
      usage_error("unknown option " .. a)
    elseif not o.file then
      o.file = a
    else
      usage_error("one FILE only, got " .. a)
    end
    i = i + 1
  end
  if not o.file then usage_error("no FILE") end
  return o
end

-- One call: answered, a session in its room until either side ends it.
local function serve_call(app, engines, call, ctx)
  local tag = ("call %s"):format(ctx.call_id or "?")
  ctx:accept()
  local opts = {}
  for k, v in pairs(app.session or {}) do opts[k] = v end
  opts.llm, opts.stt, opts.tts = engines.llm, engines.stt, engines.tts
  opts.userdata = app:new_userdata()
  opts.tts_options = engines.tts_options
  local session = session_mod.AgentSession.new(opts)
  local ended = task.condition()
  session:on("close", function(ev)
    log("info", ("%s: session %s closed (%s)"):format(tag, session.id, tostring(ev.reason)))
    ended:notify_all()
  end)
  session:on("user_input_transcribed", function(ev)
    if ev.is_final then log("info", ("%s: user: %s"):format(tag, ev.transcript)) end
  end)
  session:on("conversation_item_added", function(ev)
    local it = ev.item
    if it.type == "message" and it.role == "assistant" then
      log("info", ("%s: agent%s: %s"):format(tag, it.interrupted and " (interrupted)" or "", tostring(it.content)))
    end
  end)
  task.defer(function() session:close() end)
  session:start({ agent = app:new_agent(), room = ctx.room })
  log("info", ("%s from %s: session %s started"):format(tag, tostring(ctx.from), session.id))
  -- until the caller hangs up or the session ends (then the call is hung up)
  local watcher = task.spawn(function()
    call:wait("ended")
    session:close({ reason = "participant_disconnected" })
  end)
  while not session.closed do ended:wait("session end") end
  watcher:cancel("session ended")
  call:hangup()
end

--- main(...): the `moonline start FILE …` command (runs as the main task)
function _M.main(...)
  local o = parse({ ... })
  local app = console.load(o.file)
  local llm, using = console.pick_llm(app)
  local tts, terr = voice.tts() -- MOONLINE_TTS_URL: a remote OpenAI-compatible one, else espeak-ng
  if not tts then error("no TTS: " .. tostring(terr), 0) end
  -- decoders: each is ~90 MB with the language model (~27 MB with a grammar);
  -- callers beyond the pool wait their turn for one, utterance by utterance
  local stt, serr = voice.stt({ jsgf = o.grammar, pool = o.pool })
  if not stt then error("no STT: " .. tostring(serr), 0) end
  local engines = { llm = llm, tts = tts, stt = stt, tts_options = o.voice and { voice = o.voice } or nil }
  local listener, err = sip.listen({
    host = o.host, port = o.port, transport = o.transport,
    handler = function(call, ctx) serve_call(app, engines, call, ctx) end,
  })
  if not listener then error(tostring(err), 0) end -- "cannot listen on HOST:PORT: why"
  print(("moonline start: %s (%s) answering SIP calls on %s:%d/%s; %s; listening with pocketsphinx (%s),"
    .. " speaking with %s"):format(app.name, o.file, o.host, o.port, o.transport, using,
    o.grammar and ("grammar " .. o.grammar) or "en-us language model", tts:name()))
  if app.instructions_note then print(app.instructions_note) end
  task.sleep(o.seconds or math.huge)
  listener:close()
  return 0
end

return _M
