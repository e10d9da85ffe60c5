-- AgentTasks: a research agent whose tools run tasks, nested two deep, and a
-- slow task whose tool works for 30 seconds. Close the session (/quit after
-- a turn, or Ctrl-C in the middle of one) at any point: every task on the
-- stack completes with a "… cancelled" error, innermost first, and the
-- process exits cleanly.
--
--   build/moonline console examples/research.lua
--     you> research the moon        (Researcher -> ResearchTask -> DeepResearchTask)
--     you> crunch the numbers       (Researcher -> SlowTask, whose tool sleeps 30 s)
local moonline = require "moonline"
local task = moonline.task
local ScriptedLLM = moonline.testing.ScriptedLLM

local _M = {}

---------------------------------------------------------------------------
-- Tasks
---------------------------------------------------------------------------

-- Digs into one question; its own LLM turn reports the findings.
local DeepResearchTask = moonline.AgentTask:extend({
  name = "DeepResearchTask",
  instructions = "You investigate one question in depth, then call report with your findings.",
})
_M.DeepResearchTask = DeepResearchTask

function DeepResearchTask:on_enter()
  self.session:generate_reply({ instructions = "Dig into this question: " .. self.question })
end

DeepResearchTask:tool("report", "Report the findings of the investigation.",
  { findings = { type = "string" } },
  function(self, _, args)
    self:complete(args.findings)
  end)

-- Researches a topic; may start a DeepResearchTask from its own tool.
local ResearchTask = moonline.AgentTask:extend({
  name = "ResearchTask",
  instructions = "You research a topic. Use deep_research for questions that need digging, "
    .. "then call finish with a short summary.",
})
_M.ResearchTask = ResearchTask

function ResearchTask:on_enter()
  self.session:generate_reply({ instructions = "Research this topic: " .. self.topic })
end

ResearchTask:tool("deep_research", "Investigate one question in depth.",
  { question = { type = "string" } },
  function(_, _, args)
    return DeepResearchTask:new({ question = args.question }):run()
  end)

ResearchTask:tool("finish", "Finish the research with a summary.",
  { summary = { type = "string" } },
  function(self, _, args)
    self:complete(args.summary)
  end)

-- A task whose tool takes 30 seconds.
local SlowTask = moonline.AgentTask:extend({
  name = "SlowTask",
  instructions = "You crunch numbers with the crunch tool.",
})
_M.SlowTask = SlowTask

function SlowTask:on_enter()
  self.session:generate_reply({ instructions = "Crunch the numbers of " .. self.dataset })
end

SlowTask:tool("crunch", "Crunch the numbers (slow).", {},
  function(self)
    task.sleep(30)
    self:complete("the total of " .. self.dataset .. " is 42")
  end)

---------------------------------------------------------------------------
-- The agent
---------------------------------------------------------------------------

local Researcher = moonline.Agent:extend({
  name = "Researcher",
  instructions = "You are a research assistant. Use research for questions about a topic "
    .. "and crunch_numbers for computations.",
})
_M.Researcher = Researcher

local GREETING = "Greet the user and say what you can do."

function Researcher:on_enter()
  self.session:generate_reply({ instructions = GREETING })
end

Researcher:tool("research", "Research a topic (runs a ResearchTask).",
  { topic = { type = "string" } },
  function(_, _, args)
    return ResearchTask:new({ topic = args.topic }):run()
  end)

Researcher:tool("crunch_numbers", "Crunch the numbers of a dataset (runs a SlowTask, about 30 s).",
  { dataset = { type = "string" } },
  function(_, _, args)
    return SlowTask:new({ dataset = args.dataset }):run()
  end)

---------------------------------------------------------------------------
-- The offline model
---------------------------------------------------------------------------

local QUESTION = "Why does the moon cause tides?"
local FINDINGS = "The moon's gravity pulls the oceans into two bulges that Earth rotates through."
local SUMMARY = "The moon orbits Earth every 27 days; its gravity raises the tides twice a day."

local function call(name, arguments)
  return { { name = name, arguments = arguments } }
end

_M.script = {
  { input = GREETING, content = "Hi! I can research a topic for you (try: research the moon) "
    .. "or crunch numbers, which takes a while (try: crunch the numbers)." },
  -- Researcher -> ResearchTask -> DeepResearchTask
  { input = "research the moon", tool_calls = call("research", { topic = "the moon" }) },
  { input = "Research this topic: the moon", delay = 0.5,
    tool_calls = call("deep_research", { question = QUESTION }) },
  { input = "Dig into this question: " .. QUESTION, delay = 1,
    tool_calls = call("report", { findings = FINDINGS }) },
  { input = FINDINGS, tool_calls = call("finish", { summary = SUMMARY }) },
  { input = SUMMARY, content = "Here is what I found: " .. SUMMARY },
  -- Researcher -> SlowTask, whose tool sleeps 30 s
  { input = "crunch the numbers", tool_calls = call("crunch_numbers", { dataset = "sales" }) },
  { input = "Crunch the numbers of sales", tool_calls = call("crunch", {}) },
  { input = "the total of sales is 42", content = "Done: the total of sales is 42." },
  { content = "Try: research the moon, or: crunch the numbers." },
}

_M.app = moonline.serve({
  agent = Researcher,
  llm = ScriptedLLM(_M.script),
  instructions_note = "Offline, the scripted model understands: research the moon, crunch the numbers "
    .. "(30 s; Ctrl-C closes the session in the middle of it).",
})

-- the classes stay reachable for specs: app.classes.ResearchTask, …
_M.app.classes = _M
return _M.app
