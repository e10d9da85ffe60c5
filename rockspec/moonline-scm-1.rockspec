-- Build and install Moonline from this checkout:
--   luarocks make rockspec/moonline-scm-1.rockspec [--tree DIR] [--deps-mode=none]
-- Installs the `moonline` command (tree/bin), the Lua library
-- (tree/share/lua/5.1/moonline/*.lua) and the C module moonline.core
-- (tree/lib/lua/5.1/moonline/core.so, for a plain `luajit`).
rockspec_format = "3.0"
package = "moonline"
version = "scm-1"

source = {
  -- Only `luarocks make` from a checkout is supported: it builds the files in
  -- place and never fetches this URL. There is no public repository yet, so
  -- `luarocks build`/`luarocks install` of this rockspec cannot fetch sources.
  url = "git+file://.",
}

description = {
  summary = "Voice-agent engine: LuaJIT scripts as structured-concurrency tasks on libuv",
  detailed = [[
Moonline is a C engine that runs agents written in Lua (LuaJIT) as coroutine
tasks on one libuv loop. Tasks live in scopes; when a scope ends, by success,
error or cancellation, its children are cancelled and its resources closed, in
reverse order, exactly once.
]],
  -- license: none chosen yet (`luarocks lint` wants one; `luarocks make` does not)
  labels = { "libuv", "luajit", "async", "voice" },
}

-- Only Lua itself. The C build links the system's LuaJIT, libuv and luv
-- (Debian: libluajit-5.1-dev libuv1-dev lua-luv-dev; JSON will come from
-- Debian's lua-cjson; see scripts/setup). Declaring the "luv" or "lua-cjson"
-- rocks here would make LuaRocks download and build second copies.
dependencies = {
  "lua >= 5.1",
}

build = {
  type = "cmake",
  -- LuaRocks runs: cmake -H. -Bbuild.luarocks -D<variables>, then
  -- cmake --build build.luarocks and cmake --build build.luarocks --target install.
  -- $(PREFIX) is the rock's own directory (tree/lib/luarocks/rocks-5.1/moonline/scm-1);
  -- $(LUADIR), $(LIBDIR) and $(BINDIR) are its lua/, lib/ and bin/ folders, which
  -- LuaRocks then deploys to tree/share/lua/5.1, tree/lib/lua/5.1 and tree/bin.
  variables = {
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    MOONLINE_LUADIR = "$(LUADIR)",
    MOONLINE_LIBDIR = "$(LIBDIR)",
    MOONLINE_BINDIR = "$(BINDIR)",
    MOONLINE_TESTS = "OFF",
    -- a newer compiler's new warnings must not break an install
    MOONLINE_WERROR = "OFF",
  },
}
