-- moonline.console: talk to an agent in the terminal.
--
--   moonline console examples/weather.lua
--
-- FILE is a script ending in `return moonline.serve{ agent = …, llm = … }`.
-- The model: an OpenAI-compatible server when OPENAI_API_KEY or
-- OPENAI_BASE_URL is set (moonline.llm.openai, model MOONLINE_LLM_MODEL),
-- otherwise the script's own llm (a ScriptedLLM, for working offline).
--
-- One text session; each line typed is one user turn (session:run). The
-- agent's reply is printed as it streams, tool calls, their outputs,
-- handoffs and errors in between. stdin is read through libuv, so the loop
-- (timers, the model's HTTP stream) keeps running while it waits. `/quit`,
-- end of input (Ctrl-D) or Ctrl-C close the session, then the process exits.
local task = require "moonline.task"
local serve = require "moonline.serve"
local session_mod = require "moonline.session"

local type = type
local tostring = tostring
local error = error
local pcall = pcall
local getenv = os.getenv
local setmetatable = setmetatable
local getmetatable = getmetatable

local _M = {}

-- A usage error: main.c prints it as "moonline: <message>", without a traceback.
local UsageError = { __tostring = function(e) return e.message end }

local function usage_error(msg)
  error(setmetatable({ message = msg }, UsageError), 0)
end

-- how long one turn may take before the console gives up on it (a tool may
-- legitimately work for a while; Ctrl-C is the way out)
_M.TURN_TIMEOUT = 600

---------------------------------------------------------------------------
-- Output
---------------------------------------------------------------------------

local stdout = io.stdout

local function out(s)
  stdout:write(s)
  stdout:flush()
end

-- The transcript printer: "agent> " opens a reply, the reply's end (its
-- message item) closes the line; events in between are indented.
local function new_printer()
  local p = { mid = false }
  function p.text(delta)
    if not p.mid then
      out("agent> ")
      p.mid = true
    end
    out(delta)
  end
  function p.endline()
    if p.mid then
      out("\n")
      p.mid = false
    end
  end
  function p.line(s)
    p.endline()
    out(s .. "\n")
  end
  return p
end

local function one_line(s, max)
  s = tostring(s):gsub("%s*\n%s*", " ")
  max = max or 200
  if #s > max then s = s:sub(1, max - 3) .. "..." end
  return s
end

local function describe_error(e)
  if type(e) == "table" and e.message then return tostring(e.message) end
  return tostring(e)
end

local function watch(session, p)
  session:on("conversation_item_added", function(ev)
    local it = ev.item
    local t = it.type
    if t == "message" then
      if it.role == "assistant" then
        if not p.mid then p.text(it.content or "") end -- not streamed (nothing came through text_output)
        if it.interrupted then out(" [interrupted]") end
        p.endline()
      end
    elseif t == "function_call" then
      p.line(("  [tool] %s %s"):format(it.name, one_line(it.arguments or "{}")))
    elseif t == "function_call_output" then
      local tag = it.cancelled and "-> cancelled: " or it.is_error and "-> error: " or "-> "
      local output = it.output or ""
      if it.cancelled then
        tag, output = "-> cancelled", ""
      elseif output == "" and tag == "-> " then
        output = "(done, no output)"
      end
      p.line(("  [tool] %s %s%s"):format(it.name, tag, one_line(output)))
    elseif t == "agent_handoff" then
      p.line(("  [handoff] %s -> %s"):format(tostring(it.old_agent or "-"), tostring(it.new_agent)))
    end
  end)
  session:on("error", function(ev)
    p.line(("  [error] %s: %s"):format(tostring(ev.source or "session"), one_line(describe_error(ev.error), 400)))
  end)
  session:on("close", function(ev)
    local why = ev.reason or "?"
    if ev.error ~= nil then why = why .. ": " .. one_line(describe_error(ev.error)) end
    p.line("  [session closed: " .. why .. "]")
  end)
end

---------------------------------------------------------------------------
-- Input: lines from stdin without blocking the loop
---------------------------------------------------------------------------

-- open_input() -> lines (a channel of strings, closed at end of input), is_tty.
-- The libuv handle is closed when the calling scope exits.
local function open_input()
  local uv = require "luv"
  local lines = task.channel(1e9)
  local kind = uv.guess_handle(0)
  local handle
  if kind == "tty" then
    handle = assert(uv.new_tty(0, true))
  elseif kind == "pipe" or kind == "tcp" then
    handle = assert(uv.new_pipe(false))
    assert(handle:open(0))
  else
    -- a regular file or /dev/null: reading it never waits for long
    for line in io.lines() do
      lines:send((line:gsub("\r$", "")))
    end
    lines:close()
    return lines, false
  end
  task.defer(function()
    pcall(handle.read_stop, handle)
    if not handle:is_closing() then handle:close() end
    if kind == "tty" then uv.tty_reset_mode() end
  end)
  local buf = ""
  handle:read_start(function(err, data)
    if err or not data then -- end of input (Ctrl-D, closed pipe) or a read error
      if buf ~= "" then lines:send(buf) end
      buf = ""
      handle:read_stop()
      lines:close()
      return
    end
    buf = buf .. data
    while true do
      local nl = buf:find("\n", 1, true)
      if not nl then break end
      lines:send((buf:sub(1, nl - 1):gsub("\r$", "")))
      buf = buf:sub(nl + 1)
    end
  end)
  return lines, kind == "tty"
end

---------------------------------------------------------------------------
-- Model
---------------------------------------------------------------------------

local function set(name)
  local v = getenv(name)
  return v ~= nil and v ~= ""
end

--- pick_llm(app) -> llm, "using …" (raises a clear error when there is none)
function _M.pick_llm(app)
  if set("OPENAI_API_KEY") or set("OPENAI_BASE_URL") then
    local ok, openai = pcall(require, "moonline.llm.openai")
    if not ok then
      usage_error("OPENAI_API_KEY/OPENAI_BASE_URL is set but moonline.llm.openai cannot be loaded: "
        .. tostring(openai))
    end
    local llm = openai.new({})
    local base = llm.base_url or getenv("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    local model = llm.model or getenv("MOONLINE_LLM_MODEL") or "(default)"
    return llm, ("using %s model %s"):format(base, model)
  end
  if app.llm then
    local scripted = getmetatable(app.llm) == getmetatable(require("moonline.testing").ScriptedLLM({}))
    return app.llm, scripted and "using the script's scripted model" or "using the script's model"
  end
  usage_error("no model for the console: set OPENAI_API_KEY (and optionally OPENAI_BASE_URL, "
    .. "MOONLINE_LLM_MODEL) to use an OpenAI-compatible server, or give the script one: "
    .. "moonline.serve{ agent = …, llm = moonline.testing.ScriptedLLM{…} }")
end

---------------------------------------------------------------------------
-- The session
---------------------------------------------------------------------------

-- wait until the current turn (speeches, hooks, handoffs) has settled
local function settle(session, seconds)
  session:wait_idle(seconds)
end

--- load(file) -> app: runs the script (inside the current task)
function _M.load(file)
  if type(file) ~= "string" then
    usage_error("usage: moonline console FILE")
  end
  local chunk, err = loadfile(file)
  if not chunk then
    usage_error(tostring(err))
  end
  local app = chunk(file)
  if not serve.is_app(app) then
    usage_error(("%s must end with `return moonline.serve{ agent = … }` (it returned %s)"):format(file, type(app)))
  end
  return app
end

local QUIT = { ["/quit"] = true, ["/exit"] = true, ["/q"] = true }

--- main(file): the `moonline console FILE` command (runs as the main task)
function _M.main(file)
  local app = _M.load(file)
  local llm, using = _M.pick_llm(app)
  local p = new_printer()

  out(("moonline console: %s (%s)\n%s\n"):format(app.name, file, using))
  if app.instructions_note then out(app.instructions_note .. "\n") end
  out("Type a message and press Enter; /quit or Ctrl-D to leave.\n\n")

  local opts = {}
  for k, v in pairs(app.session or {}) do opts[k] = v end
  opts.llm = llm
  opts.userdata = app:new_userdata()
  opts.text_output = p.text
  local session = session_mod.AgentSession.new(opts)
  watch(session, p)

  -- however this task ends (quit, end of input, Ctrl-C, an error), the
  -- session is closed before the input handle (defers run in reverse)
  local lines, tty = open_input()
  task.defer(function()
    session:close()
    p.endline()
  end)

  session:start({ agent = app:new_agent() })
  settle(session, _M.TURN_TIMEOUT) -- the greeting of on_enter, if any

  while not session.closing do
    out("you> ")
    local line = lines:recv()
    if line == nil then -- end of input
      out("\n")
      break
    end
    if not tty then out(line .. "\n") end -- show what was piped in
    line = line:match("^%s*(.-)%s*$")
    if QUIT[line] then break end
    if line ~= "" then
      local ok, err = pcall(session.run, session, { user_input = line, timeout = _M.TURN_TIMEOUT })
      if not ok then
        if task.is_cancelled(err) then error(err, 0) end
        p.line("  [error] " .. one_line(describe_error(err), 400))
      end
      p.endline()
    end
  end
  session:close()
  out("bye\n")
  return 0
end

return _M
