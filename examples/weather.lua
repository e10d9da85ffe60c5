-- A weather agent: one tool, a greeting, and a scripted model so that it runs
-- offline.
--
--   build/moonline console examples/weather.lua
--
-- With OPENAI_API_KEY (or OPENAI_BASE_URL) set, the console talks to that
-- model instead of the script below, and the same tool serves it.
local moonline = require "moonline"
local ScriptedLLM = moonline.testing.ScriptedLLM

local FORECASTS = {
  Paris = "sunny, 21 degrees",
  London = "light rain, 14 degrees",
  Tokyo = "cloudy, 18 degrees",
}

local GREETING = "Greet the user and offer to look up the weather."

local Weather = moonline.Agent:extend({
  name = "Weather",
  instructions = "You are a helpful voice assistant. You can look up the weather of a city "
    .. "with lookup_weather. Keep your answers short.",
})

Weather:tool("lookup_weather", "Look up the weather for a place.",
  { location = { type = "string", description = "city name" } },
  function(_, _, args)
    local city = args.location:gsub("^%l", string.upper)
    local forecast = FORECASTS[city]
    if not forecast then
      error(moonline.ToolError("no forecast for " .. args.location))
    end
    return forecast .. " in " .. city
  end)

function Weather:on_enter()
  self.session:generate_reply({ instructions = GREETING })
end

-- The offline model: the reply is chosen by the last message (the user's
-- text, a tool's output, or the instructions of generate_reply).
local script = {
  { input = GREETING, content = "Hi! I can look up the weather for you. Which city?" },
  { input = "hello", content = "Hello! Ask me about the weather in a city, for example Paris or London." },
  { input = "hi", content = "Hello! Ask me about the weather in a city, for example Paris or London." },
  { input = "thanks", content = "You're welcome!" },
  { input = "weather in Atlantis?",
    tool_calls = { { name = "lookup_weather", arguments = { location = "Atlantis" } } } },
  { input = "no forecast for Atlantis", content = "Sorry, I have no forecast for Atlantis." },
  { content = "I can only help with the weather. Try: weather in Paris?" }, -- anything else
}
local ANSWERS = {
  Paris = "It is sunny in Paris, 21 degrees.",
  London = "Light rain in London, 14 degrees. Take an umbrella.",
  Tokyo = "Cloudy in Tokyo, 18 degrees.",
}
for city, forecast in pairs(FORECASTS) do
  local call = { { name = "lookup_weather", arguments = { location = city } } }
  script[#script + 1] = { input = "weather in " .. city .. "?", tool_calls = call }
  script[#script + 1] = { input = "weather in " .. city, tool_calls = call }
  script[#script + 1] = { input = "What's the weather in " .. city .. "?", tool_calls = call }
  script[#script + 1] = { input = forecast .. " in " .. city, content = ANSWERS[city] }
end

return moonline.serve({
  agent = Weather,
  llm = ScriptedLLM(script),
  instructions_note = "Offline, the scripted model understands: hello, weather in Paris? "
    .. "(or London, Tokyo), weather in Atlantis?, thanks.",
})
