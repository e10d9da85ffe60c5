/* A Lua state with the moonline runtime loaded, for C tests that drive real
 * tasks: luaL_newstate + standard libraries, package.path on the source
 * tree's lua/ (ML_SOURCE_DIR, from CMake), luv and moonline.core preloaded
 * from the linked objects, and `require "moonline.task"` done (it installs
 * the trampoline every task body runs in). The module table is the global
 * `task` for the snippets the tests run. */
#ifndef ML_TEST_LUA_H
#define ML_TEST_LUA_H

#include <stdio.h>

#include "lauxlib.h"
#include "lualib.h"
#include "luv/luv.h"
#include "ml_internal.h"

#ifndef ML_SOURCE_DIR
#error "ML_SOURCE_DIR must name the source tree (spec/c/CMakeLists.txt defines it)"
#endif

int luaopen_moonline_core(lua_State *L);

static int mlt_traceback(lua_State *L)
{
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(non-string error)", 1);
  return 1;
}

static void mlt_preload(lua_State *L, const char *name, lua_CFunction fn)
{
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, fn);
  lua_setfield(L, -2, name);
  lua_pop(L, 2);
}

/* Run a chunk at top level (not in a task); prints the error, returns 0/-1. */
static int mlt_dostring(lua_State *L, const char *code)
{
  int base = lua_gettop(L);
  lua_pushcfunction(L, mlt_traceback);
  int rc = luaL_loadstring(L, code);
  if (rc == 0) rc = lua_pcall(L, 0, 0, base + 1);
  if (rc != 0) fprintf(stderr, "lua error: %s\n", lua_tostring(L, -1));
  lua_settop(L, base);
  return rc == 0 ? 0 : -1;
}

/* uv NULL: luv creates and owns the loop (the `luajit` + moonline.core case);
 * otherwise luv is bound to the caller's loop (the `moonline` executable's
 * case), which the caller closes after lua_close. */
static inline lua_State *mlt_state_new(uv_loop_t *uv)
{
  lua_State *L = luaL_newstate();
  if (!L) return NULL;
  luaL_openlibs(L);
  if (uv) luv_set_loop(L, uv);
  mlt_preload(L, "luv", luaopen_luv);
  mlt_preload(L, "moonline.core", luaopen_moonline_core);
  if (mlt_dostring(L, "package.path = '" ML_SOURCE_DIR "/lua/?.lua;" ML_SOURCE_DIR "/lua/?/init.lua'\n"
                      "task = require 'moonline.task'") != 0) {
    lua_close(L);
    return NULL;
  }
  return L;
}

/* Push a function compiled from `code` (a chunk: its arguments are `...`). */
static int mlt_pushfn(lua_State *L, const char *code)
{
  if (luaL_loadbuffer(L, code, strlen(code), "=test") != 0) {
    fprintf(stderr, "lua syntax error: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

/* Spawn `code` as a root task with nargs arguments already pushed on L (they
 * are consumed). The task userdata is anchored in the registry (*ref) so its
 * C struct stays readable after it is done; release it with mlt_unref. */
static inline ml_task *mlt_spawn(lua_State *L, const char *code, int nargs, int *ref, const char *name)
{
  ml_loop *loop = ml_loop_get(L);
  if (mlt_pushfn(L, code) != 0) {
    lua_pop(L, nargs);
    return NULL;
  }
  lua_insert(L, -(nargs + 1));
  ml_task *t = ml_task_spawn(loop, L, NULL, nargs, 0, name);
  *ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return t;
}

/* The same with a C function as the body. */
static inline ml_task *mlt_spawn_c(lua_State *L, lua_CFunction fn, int nargs, int *ref, const char *name)
{
  ml_loop *loop = ml_loop_get(L);
  lua_pushcfunction(L, fn);
  lua_insert(L, -(nargs + 1));
  ml_task *t = ml_task_spawn(loop, L, NULL, nargs, 0, name);
  *ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return t;
}

static void mlt_unref(lua_State *L, int *ref)
{
  luaL_unref(L, LUA_REGISTRYINDEX, *ref);
  *ref = LUA_NOREF;
}

/* The first value of a finished task's result (its error, for a failed one),
 * as a string in buf. */
static inline const char *mlt_result_string(lua_State *L, ml_task *t, char *buf, size_t n)
{
  snprintf(buf, n, "(none)");
  if (t->state != ML_TASK_DONE || t->result_ref == LUA_NOREF) return buf;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->result_ref);
  lua_rawgeti(L, -1, 1);
  lua_getglobal(L, "tostring");
  lua_insert(L, -2);
  lua_call(L, 1, 1);
  snprintf(buf, n, "%s", lua_tostring(L, -1));
  lua_pop(L, 2);
  return buf;
}

/* Drive the ready queue once: every task that is ready now runs until it
 * parks, using a no-op task as ml_loop_run's `until` (tasks run FIFO, so all
 * that were ready before it have run when it is done). */
static int mlt_noop(lua_State *L)
{
  (void)L;
  return 0;
}

static void mlt_run_ready(lua_State *L)
{
  int ref;
  ml_task *t = mlt_spawn_c(L, mlt_noop, 0, &ref, "noop");
  ml_loop_run(ml_loop_get(L), t);
  mlt_unref(L, &ref);
}

#endif
