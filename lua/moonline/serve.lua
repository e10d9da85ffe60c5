-- moonline.serve: what an agent script returns — the app descriptor that
-- `moonline console FILE` (and, later, telephony) runs:
--
--   local Weather = moonline.Agent:extend{ name = "Weather", instructions = "…" }
--   return moonline.serve{
--     agent = Weather,                 -- an Agent class, or a function returning a new Agent instance
--     llm = testing.ScriptedLLM{ … },  -- optional: the model used when no provider is configured
--     instructions_note = "Ask: weather in Paris?", -- optional: a hint shown to the person testing it
--     name = "weather",                -- optional: defaults to the agent's name
--     session = { close_timeout = 4 }, -- optional: AgentSession.new options
--   }
--
-- serve only validates and returns the descriptor (with app:new_agent()); it
-- starts nothing, so a script can be loaded by a runner, a test or a spec.
local agent_mod = require "moonline.agent"

local type = type
local pairs = pairs
local rawget = rawget
local error = error
local tostring = tostring
local setmetatable = setmetatable
local getmetatable = getmetatable

local _M = {}

local App = {}
App.__index = App
_M.App = App

local FIELDS = {
  agent = true, llm = true, instructions_note = true, name = true, session = true, userdata = true,
}

local function is_class(v)
  return agent_mod.is_agent(v) and rawget(v, "_tools") ~= nil
end

--- app:new_agent() -> a new Agent instance for one session
function App:new_agent()
  local a = self.agent
  local obj
  if type(a) == "function" then
    obj = a(self)
    if not agent_mod.is_agent(obj) then
      error(("moonline.serve: the agent function of %s returned %s, not an Agent instance"):format(
        self.name, type(obj)), 2)
    end
    if is_class(obj) then
      error(("moonline.serve: the agent function of %s returned a class; return Class:new()"):format(self.name), 2)
    end
  else
    obj = a:new()
  end
  return obj
end

--- app:new_userdata() -> the userdata of a new session (a copy of the table,
-- or what the function returns)
function App:new_userdata()
  local u = self.userdata
  if type(u) == "function" then return u(self) end
  if type(u) == "table" then
    local copy = {}
    for k, v in pairs(u) do copy[k] = v end
    return copy
  end
  return {}
end

function _M.is_app(v)
  return type(v) == "table" and getmetatable(v) == App
end

--- serve{ agent =, llm =, instructions_note =, name =, session =, userdata = } -> app
function _M.serve(app)
  if type(app) ~= "table" then
    error("moonline.serve: expected a table { agent = AgentClass, … }, got " .. type(app), 2)
  end
  if _M.is_app(app) then return app end
  for k in pairs(app) do
    if not FIELDS[k] then
      error(("moonline.serve: unknown field '%s' (known: agent, llm, instructions_note, name, session, userdata)")
        :format(tostring(k)), 2)
    end
  end
  local a = app.agent
  if type(a) ~= "function" then
    if not agent_mod.is_agent(a) then
      error("moonline.serve: agent must be an Agent class (moonline.Agent:extend{…}) "
        .. "or a function returning an Agent instance, got " .. type(a), 2)
    end
    if not is_class(a) then
      error("moonline.serve: agent is an instance; pass the class (each session gets its own instance) "
        .. "or a function returning a new instance", 2)
    end
  end
  local llm = app.llm
  if llm ~= nil and (type(llm) ~= "table" or type(llm.chat) ~= "function") then
    error("moonline.serve: llm must be an LLM object (with a chat method), got " .. type(llm), 2)
  end
  if app.instructions_note ~= nil and type(app.instructions_note) ~= "string" then
    error("moonline.serve: instructions_note must be a string", 2)
  end
  if app.session ~= nil and type(app.session) ~= "table" then
    error("moonline.serve: session must be a table of AgentSession.new options", 2)
  end
  local u = app.userdata
  if u ~= nil and type(u) ~= "table" and type(u) ~= "function" then
    error("moonline.serve: userdata must be a table or a function returning one", 2)
  end
  if app.name == nil then
    app.name = type(a) == "table" and a.name or "agent"
  elseif type(app.name) ~= "string" then
    error("moonline.serve: name must be a string", 2)
  end
  return setmetatable(app, App)
end

return _M
