-- moonline.chat: the chat context — an ordered list of items — and its
-- conversion to the OpenAI message format the LLM interface takes.
--
-- Items (plain tables, `type` first):
--   { type = "message", role = "user"|"assistant"|"system", content = "…", interrupted = bool }
--   { type = "function_call", call_id = "…", name = "…", arguments = "<json>" }
--   { type = "function_call_output", call_id = "…", name = "…", output = "…", is_error = bool }
--   { type = "agent_handoff", old_agent = "Name"|nil, new_agent = "Name" }
local setmetatable = setmetatable

local _M = {}

local ChatContext = {}
ChatContext.__index = ChatContext
_M.ChatContext = ChatContext

function _M.new(items)
  return setmetatable({ items = items or {} }, ChatContext)
end

function ChatContext:add(item)
  local items = self.items
  items[#items + 1] = item
  return item
end

function ChatContext:add_message(role, content)
  return self:add({ type = "message", role = role, content = content })
end

function ChatContext:copy()
  local items = {}
  for i, it in ipairs(self.items) do
    items[i] = it
  end
  return _M.new(items)
end

function ChatContext:__len()
  return #self.items
end

--- to_messages(instructions, extra) -> OpenAI messages: the instructions as
-- the system message, then the items (handoffs are not sent), consecutive
-- function calls folded into one assistant message with tool_calls, then
-- `extra` (one-off instructions for this reply) as a last system message.
function ChatContext:to_messages(instructions, extra)
  local out = {}
  if instructions and instructions ~= "" then
    out[1] = { role = "system", content = instructions }
  end
  local calls -- the assistant message collecting consecutive function calls
  for _, it in ipairs(self.items) do
    local t = it.type
    if t == "function_call" then
      if not calls then
        calls = { role = "assistant", tool_calls = {} }
        out[#out + 1] = calls
      end
      local tc = calls.tool_calls
      tc[#tc + 1] = { id = it.call_id, type = "function", ["function"] = { name = it.name, arguments = it.arguments } }
    else
      calls = nil
      if t == "message" then
        out[#out + 1] = { role = it.role, content = it.content }
      elseif t == "function_call_output" then
        out[#out + 1] = { role = "tool", tool_call_id = it.call_id, content = it.output }
      end
    end
  end
  if extra and extra ~= "" then
    out[#out + 1] = { role = "system", content = extra }
  end
  return out
end

return _M
