-- Temporary files for the specs that run the `moonline` command.
local _M = {}

--- tmpfile(content) -> a new temporary file's name, holding content
function _M.tmpfile(content)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(content)
  f:close()
  return name
end

--- slurp(name) -> the file's content ("" when it does not exist)
function _M.slurp(name)
  local f = io.open(name)
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

return _M
