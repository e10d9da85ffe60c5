/* Shared binding helpers: task checks with clear errors, resource handles. */
#include <stdio.h>
#include <string.h>

#include "ml_bind.h"

ml_task *ml_bind_task(lua_State *L, const char *prim)
{
  ml_loop *loop = ml_loop_get(L);
  if (!loop) luaL_error(L, "moonline.%s: the moonline runtime is not initialised", prim);
  ml_task *t = loop->current;
  if (!t)
    luaL_error(L,
               "moonline.%s: not inside a task (call it from code run by moonline: "
               "a script's main chunk, a spawned task, or task.run)",
               prim);
  if (t->co != L)
    luaL_error(L,
               "moonline.%s: called from a coroutine that is not a moonline task "
               "(coroutine.create/wrap inside a task cannot wait; use task.spawn)",
               prim);
  return t;
}

/* Yieldability can only be asked from Lua (coroutine.isyieldable): a
 * lua_call from C is itself a C boundary. So the Lua halves ask, and call
 * core.cannot_wait(name) for the precise message when the answer is no. */
ml_task *ml_bind_wait_task(lua_State *L, const char *prim) { return ml_bind_task(L, prim); }

int ml_bind_cannot_wait(lua_State *L)
{
  const char *prim = luaL_checkstring(L, 1);
  ml_bind_task(L, prim); /* not in a task / foreign coroutine: says so */
  return luaL_error(L,
                    "moonline.%s: cannot wait here: a C function is between this call and "
                    "the task (module top level run by require, a table.sort comparator, "
                    "string.gsub, or an FFI callback); wait from task code",
                    prim);
}

int ml_bind_cancelled(ml_task *t)
{
  ml_scope *s = ml_task_cancelled(t);
  if (!s) return 0;
  /* the same cancellation again means the script swallowed it with pcall */
  t->checkpoint = t->delivered_scope == s->id ? ML_CHECKPOINT_CANCEL_AGAIN : ML_CHECKPOINT_CANCEL;
  return 1;
}

int ml_bind_park(lua_State *L, ml_task *t, ml_waitq *q, const char *what)
{
  if (!ml_bind_cancelled(t)) ml_waitq_wait(q, t, what);
  return lua_yield(L, 0);
}

int ml_bind_ok(lua_State *L)
{
  lua_pushboolean(L, 1);
  lua_pushboolean(L, 1);
  return 2;
}

int ml_bind_fail(lua_State *L, const char *msg)
{
  lua_pushboolean(L, 0);
  lua_pushstring(L, msg);
  return 2;
}

void ml_bind_where(lua_State *L, char *buf, size_t n)
{
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0) continue;
    if (strstr(ar.source, "lua/moonline/") || strstr(ar.source, "5.1/moonline/")) continue; /* ours */
    snprintf(buf, n, "%s:%d", ar.short_src, ar.currentline);
    return;
  }
  snprintf(buf, n, "?");
}

ml_res **ml_bind_open(lua_State *L, ml_loop *loop, ml_res *r, const ml_res_type *type, ml_scope *s,
                      const char *mt)
{
  char where[64];
  ml_bind_where(L, where, sizeof where);
  ml_res_open(loop, r, type, s, where);
  return ml_box_new(L, r, mt);
}

ml_res **ml_box_new(lua_State *L, ml_res *r, const char *mt)
{
  ml_res **box = lua_newuserdata(L, sizeof *box);
  *box = r;
  r->box = box;
  luaL_getmetatable(L, mt);
  lua_setmetatable(L, -2);
  return box;
}

ml_res *ml_box_get(lua_State *L, int idx, const char *mt)
{
  ml_res **box = luaL_checkudata(L, idx, mt);
  return *box;
}

int ml_box_gc(lua_State *L)
{
  ml_res **box = lua_touserdata(L, 1);
  ml_res *r = box ? *box : NULL;
  if (!r) return 0;
  r->box = NULL;
  *box = NULL;
  if (r->state == ML_RES_OPEN) {
    r->loop->ledger.leaks++;
    ml_log(ML_LOG_WARN, "leak: %s opened at %s was garbage-collected while open; closing it", r->type->name,
           r->where);
    ml_res_close(r);
  }
  return 0;
}

int ml_box_close(lua_State *L)
{
  ml_res **box = lua_touserdata(L, 1);
  if (!box || !lua_getmetatable(L, 1)) return luaL_argerror(L, 1, "expected a moonline resource");
  lua_pop(L, 1);
  if (*box) ml_res_close(*box);
  return 0;
}

int ml_box_tostring(lua_State *L)
{
  ml_res **box = lua_touserdata(L, 1);
  ml_res *r = box ? *box : NULL;
  if (!r)
    lua_pushstring(L, "moonline resource (closed)");
  else
    lua_pushfstring(L, "moonline %s #%d (%s, opened at %s)", r->type->name, (int)r->id,
                    r->state == ML_RES_OPEN ? "open" : "closing", r->where);
  return 1;
}

void ml_bind_class(lua_State *L, const char *mt, const luaL_Reg *methods)
{
  luaL_newmetatable(L, mt);
  lua_newtable(L);
  luaL_register(L, NULL, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, ml_box_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, ml_box_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}
