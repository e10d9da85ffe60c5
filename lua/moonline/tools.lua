-- moonline.tools: function tools — declaration, argument checking against a
-- JSON schema, the errors a tool may raise, and how outcomes become outputs.
local cjson = require "cjson.safe"

local error = error
local getmetatable = getmetatable
local setmetatable = setmetatable
local pairs = pairs
local ipairs = ipairs
local type = type
local tostring = tostring
local math_type_int = function(v) return v == math.floor(v) end

local _M = {}

---------------------------------------------------------------------------
-- Errors a tool (or a hook) may raise
---------------------------------------------------------------------------

local ToolError = {}
ToolError.__index = ToolError
ToolError.__tostring = function(e) return "ToolError: " .. tostring(e.message) end
_M.ToolErrorClass = ToolError

--- ToolError(message): the message is the output the LLM sees.
function _M.ToolError(message)
  return setmetatable({ message = tostring(message) }, ToolError)
end

function _M.is_tool_error(e)
  return getmetatable(e) == ToolError
end

local StopClass = {}
StopClass.__index = StopClass
StopClass.__tostring = function() return "StopResponse" end

--- StopResponse: raise it (error(StopResponse) or error(StopResponse())) from a
-- tool or on_user_turn_completed to skip the reply.
local StopResponse = setmetatable({}, {
  __index = StopClass,
  __tostring = StopClass.__tostring,
  __call = function() return setmetatable({}, StopClass) end,
})
_M.StopResponse = StopResponse

function _M.is_stop(e)
  return e == StopResponse or getmetatable(e) == StopClass
end

---------------------------------------------------------------------------
-- JSON schema (the subset LLM tools use)
---------------------------------------------------------------------------

local null = cjson.null

local function type_of(v)
  local t = type(v)
  if t == "table" then
    -- cjson decodes [] and {} alike; an empty table passes as either
    if next(v) == nil then return "empty" end
    return v[1] ~= nil and "array" or "object"
  end
  if v == null then return "null" end
  return t
end

local function type_ok(want, v, vt)
  if want == "integer" then return vt == "number" and math_type_int(v) end
  if want == "object" or want == "array" then return vt == want or vt == "empty" end
  return want == vt
end

local function check(schema, v, path)
  if schema == nil or schema == true then return true end
  local vt = type_of(v)
  local want = schema.type
  if want then
    local ok = false
    if type(want) == "table" then
      for _, w in ipairs(want) do
        if type_ok(w, v, vt) then ok = true break end
      end
    else
      ok = type_ok(want, v, vt)
    end
    if not ok then
      local shown = type(want) == "table" and table.concat(want, "|") or want
      return nil, ("%s: expected %s, got %s"):format(path, shown, vt == "empty" and "table" or vt)
    end
  end
  if schema.enum then
    local found = false
    for _, e in ipairs(schema.enum) do
      if e == v then found = true break end
    end
    if not found then
      return nil, ("%s: %s is not one of the allowed values"):format(path, cjson.encode(v) or tostring(v))
    end
  end
  if vt == "object" or vt == "empty" then
    local props = schema.properties or {}
    for _, name in ipairs(schema.required or {}) do
      if v[name] == nil or v[name] == null then
        return nil, ("%s: missing required field '%s'"):format(path, name)
      end
    end
    for k, sub in pairs(v) do
      local ps = props[k]
      if ps then
        local ok, err = check(ps, sub, path .. "." .. tostring(k))
        if not ok then return nil, err end
      elseif schema.additionalProperties == false then
        return nil, ("%s: unexpected field '%s'"):format(path, tostring(k))
      end
    end
  elseif vt == "array" and schema.items then
    for i, sub in ipairs(v) do
      local ok, err = check(schema.items, sub, path .. "[" .. i .. "]")
      if not ok then return nil, err end
    end
  end
  return true
end

--- validate(schema, value) -> true | nil, "args.field: expected …"
function _M.validate(schema, value)
  return check(schema, value, "args")
end

-- A parameters table is either a full object schema ({type = "object", …})
-- or the shorthand map name -> property schema, where every property is
-- required unless it says optional = true.
local function object_schema(params)
  if params == nil then
    return { type = "object", properties = {} }
  end
  if params.type == "object" then
    return params
  end
  local props, required = {}, {}
  for name, p in pairs(params) do
    local copy = {}
    for k, v in pairs(p) do
      if k ~= "optional" then copy[k] = v end
    end
    props[name] = copy
    if not p.optional then required[#required + 1] = name end
  end
  table.sort(required)
  local schema = { type = "object", properties = props, additionalProperties = false }
  if #required > 0 then schema.required = required end
  return schema
end

---------------------------------------------------------------------------
-- Tool definitions
---------------------------------------------------------------------------

--- define(name, description, params, fn) -> tool
function _M.define(name, description, params, fn)
  if type(name) ~= "string" or not name:match("^[%a_][%w_%-]*$") then
    error("tool name must be an identifier, got " .. tostring(name), 3)
  end
  if type(fn) ~= "function" then
    error("tool '" .. name .. "': the implementation must be a function", 3)
  end
  local schema = object_schema(params)
  return {
    name = name,
    description = description or "",
    schema = schema,
    fn = fn,
    -- what the LLM request carries (built once)
    spec = { type = "function", ["function"] = { name = name, description = description or "", parameters = schema } },
  }
end

--- parse_arguments(tool, json) -> args | nil, err (an error output for the LLM)
function _M.parse_arguments(tool, json)
  local args
  if json == nil or json == "" then
    args = {}
  else
    local err
    args, err = cjson.decode(json)
    if args == nil then
      return nil, "invalid arguments for " .. tool.name .. ": not valid JSON (" .. tostring(err) .. ")"
    end
    if type(args) ~= "table" then
      return nil, "invalid arguments for " .. tool.name .. ": expected a JSON object"
    end
  end
  local ok, err = _M.validate(tool.schema, args)
  if not ok then
    return nil, "invalid arguments for " .. tool.name .. ": " .. err
  end
  return args
end

--- encode_output(value) -> string | nil (nil: no output, no reply needed)
function _M.encode_output(v)
  local t = type(v)
  if v == nil then return nil end
  if t == "string" then return v end
  if t == "number" or t == "boolean" then return tostring(v) end
  if t == "table" then
    local s = cjson.encode(v)
    if s then return s end
  end
  return tostring(v)
end

return _M
