/* luaopen_moonline_core: the one C module. Binds the runtime to the libuv
 * loop that luv uses (the engine's own loop inside the `moonline` executable,
 * luv's default loop under a plain luajit), so luv and moonline share it. */
#include <stdlib.h>
#include <string.h>

#include "http_client.h"
#include "luv/luv.h"
#include "ml_bind.h"

static int loop_gc(lua_State *L)
{
  ml_loop **box = lua_touserdata(L, 1);
  if (*box) {
    ml_loop_shutdown(*box); /* HTTP streams close through their lws context: first */
    ml_http_loop_free(*box);
    ml_loop_free(*box);
  }
  *box = NULL;
  return 0;
}

static int l_methods(lua_State *L)
{
  luaL_getmetatable(L, luaL_checkstring(L, 1));
  if (lua_isnil(L, -1)) return luaL_argerror(L, 1, "no such class");
  lua_getfield(L, -1, "__index");
  return 1;
}

static ml_loop *loop_create(lua_State *L)
{
  lua_getglobal(L, "require");
  lua_pushliteral(L, "luv");
  lua_call(L, 1, 1);
  /* luv's loop dies with its module table (its __gc closes every handle):
   * pin it for as long as the VM lives, whatever unloads package.loaded */
  lua_setfield(L, LUA_REGISTRYINDEX, "moonline.core.luv");
  uv_loop_t *uv = luv_loop(L);
  if (!uv) luaL_error(L, "moonline.core: luv has no loop");
  /* a private thread whose stack C uses from loop callbacks */
  lua_State *T = lua_newthread(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "moonline.core.thread");
  ml_loop *loop = ml_loop_new(uv, T);
  if (!loop) luaL_error(L, "moonline.core: out of memory");
  ml_loop **box = lua_newuserdata(L, sizeof *box);
  *box = loop;
  lua_newtable(L);
  lua_pushcfunction(L, loop_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, "moonline.core.loop");
  const char *level = getenv("MOONLINE_LOG");
  if (level) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
      if (!strcmp(level, names[i])) ml_log_set_level(i);
  }
  return loop;
}

int luaopen_moonline_core(lua_State *L)
{
  if (!ml_loop_get(L)) loop_create(L);
  lua_newtable(L);
  ml_open_task(L);
  ml_open_timer(L);
  ml_open_tcp(L);
  ml_open_http(L);
  ml_open_lifecycle(L);
  ml_open_sip(L);
  ml_open_room(L);
  ml_open_voice(L);
  lua_pushcfunction(L, l_methods);
  lua_setfield(L, -2, "methods");
  lua_pushliteral(L, MOONLINE_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
