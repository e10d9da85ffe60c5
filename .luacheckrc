-- luacheck configuration. Run: luacheck lua spec examples (scripts/test lints every Lua dir)
-- `function A:on_exit() … end` need not use self
self = false
std = "luajit" -- LuaJIT 2.1 as Debian ships it (no 5.2 extras such as table.pack)
max_line_length = 120
codes = true

-- build outputs and LuaRocks trees are not ours to lint
exclude_files = { "build*/**", ".rocks/**" }

-- busted's describe/it/assert/spy/… in the specs
files["spec/"] = { std = "+busted" }
