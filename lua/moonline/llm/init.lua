-- moonline.llm: the model interface every LLM provider implements.
--
-- An LLM is an object with one method:
--
--   llm:chat(request) -> stream | nil, err
--
--   request = {
--     messages = { -- OpenAI chat format, built by the framework from the chat context
--       { role = "system", content = "…" },
--       { role = "user", content = "…" },
--       { role = "assistant", content = "…" | nil,
--         tool_calls = { { id = "call_1", type = "function",
--                          ["function"] = { name = "…", arguments = "<json string>" } } } },
--       { role = "tool", tool_call_id = "call_1", content = "<output string>" },
--     },
--     tools = { { type = "function", ["function"] = { name =, description =, parameters = <schema> } } }
--             | nil,
--     tool_choice = "auto" | "none" | "required" | { type = "function", ["function"] = { name = "…" } } | nil,
--     parallel_tool_calls = bool | nil,
--     model = "…" | nil,          -- overrides the provider's default
--     temperature = number | nil,
--     timeout = seconds | nil,     -- overrides the provider's default request timeout
--   }
--
--   stream:next() -> chunk | nil (end of stream) | nil, err
--     chunk.content    = "text delta"                       (zero or more)
--     chunk.tool_call  = { id =, name =, arguments = "<json string>" }
--                        emitted once per call, when its arguments are complete
--     chunk.usage      = { prompt_tokens =, completion_tokens =, total_tokens = }
--   stream:close()     -- idempotent; closes the HTTP stream (also done by its scope)
--   stream.metrics     -- filled as the stream goes: { ttft = seconds to the first chunk,
--                          duration = seconds, usage = {…}, retries = n, model = "…" }
--
-- `next` waits (it is a task primitive): cancellation raises Cancelled there.
-- Runtime failures (HTTP status, dropped connection, malformed data, timeout)
-- come back as `nil, err` where err is a table { message = "…", status = n|nil,
-- retryable = bool, kind = "http"|"timeout"|"connection"|"protocol" } with a
-- __tostring. Providers retry before the first chunk only.
--
-- Implementations: moonline.llm.openai (HTTP + SSE), moonline.testing.ScriptedLLM.
local _M = {}

local LLMError = {}
LLMError.__index = LLMError
LLMError.__tostring = function(e)
  return "llm error" .. (e.status and (" " .. e.status) or "") .. ": " .. tostring(e.message)
end
_M.LLMError = LLMError

--- error(fields) -> an LLMError table
function _M.error(fields)
  return setmetatable(fields, LLMError)
end

function _M.is_error(e)
  return getmetatable(e) == LLMError
end

-- providers are loaded on first use: moonline.llm.openai, …
setmetatable(_M, {
  __index = function(t, k)
    local ok, mod = pcall(require, "moonline.llm." .. k)
    if ok then
      rawset(t, k, mod)
      return mod
    end
    return nil
  end,
})

return _M
