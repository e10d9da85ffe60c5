-- moonline.events: a small event emitter mixed into sessions.
--   obj:on(name, fn) -> fn     obj:off(name, fn)     obj:once(name, fn)
--   obj:emit(name, ev)         handlers run in order, protected: an error in
--                              one is logged (with its traceback) and the
--                              others still run
--   obj:listens(name)          whether anyone would receive it
local log = require("moonline.core").log
local xpcall = xpcall

local _M = {}

local function handlers(self, name)
  local all = self._handlers
  if not all then
    all = {}
    self._handlers = all
  end
  local list = all[name]
  if not list then
    list = {}
    all[name] = list
  end
  return list
end

function _M.on(self, name, fn)
  local list = handlers(self, name)
  list[#list + 1] = fn
  return fn
end

function _M.off(self, name, fn)
  local list = self._handlers and self._handlers[name]
  if not list then return end
  for i = #list, 1, -1 do
    if list[i] == fn then
      table.remove(list, i)
    end
  end
end

function _M.once(self, name, fn)
  local wrapper
  wrapper = function(ev)
    _M.off(self, name, wrapper)
    return fn(ev)
  end
  return _M.on(self, name, wrapper)
end

local on_error = require("moonline.task").on_error

function _M.emit(self, name, ev)
  local list = self._handlers and self._handlers[name]
  if not list or #list == 0 then return end
  -- a copy: handlers may remove themselves (once) while we iterate
  local n = #list
  local snapshot = { unpack(list, 1, n) }
  for i = 1, n do
    local ok, err = xpcall(snapshot[i], on_error, ev)
    if not ok then
      log("error", "event handler for '" .. name .. "' failed: " .. err)
    end
  end
end

--- obj:listens(name) -> whether a handler is registered for name (callers
-- that would build an event for nobody skip it)
function _M.listens(self, name)
  local list = self._handlers and self._handlers[name]
  return list ~= nil and #list > 0
end

--- mixin(class): adds on/off/once/emit/listens to a class table
function _M.mixin(class)
  class.on, class.off, class.once, class.emit, class.listens = _M.on, _M.off, _M.once, _M.emit, _M.listens
  return class
end

return _M
