-- moonline: voice agents in Lua on the moonline engine.
--
--   local moonline = require "moonline"
--   local A = moonline.Agent:extend{ instructions = "…" }
--   local session = moonline.AgentSession.new{ llm = … }
--   session:start{ agent = A:new() }
local agent = require "moonline.agent"
local tools = require "moonline.tools"

local _M = {
  _VERSION = require("moonline.core").version,
  Agent = agent.Agent,
  AgentTask = agent.AgentTask,
  AgentSession = require("moonline.session").AgentSession,
  ToolError = tools.ToolError,
  StopResponse = tools.StopResponse,
  is_tool_error = tools.is_tool_error,
  task = require "moonline.task",
  chat = require "moonline.chat",
  llm = require "moonline.llm",
  serve = require("moonline.serve").serve,
}

-- loaded on first use: moonline.testing, moonline.sip (calls), moonline.room (rooms)
local lazy = { testing = "moonline.testing", sip = "moonline.sip", room = "moonline.room" }
setmetatable(_M, {
  __index = function(t, k)
    if lazy[k] then
      local m = require(lazy[k])
      rawset(t, k, m)
      return m
    end
  end,
})

return _M
