-- Loaded by busted before the specs (see .busted). Makes the build's C module
-- and the source Lua library importable, and gives specs a way to run code
-- inside the real runtime and check the ledger afterwards.
local build = os.getenv("MOONLINE_BUILD") or "build"
package.cpath = build .. "/lib/?.so;" .. package.cpath
package.path = "lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
