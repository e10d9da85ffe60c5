/* Lifecycle objects: the C half of sessions, activities and speech handles.
 *
 *   core.lifecycle(kind [, owner_task]) -> obj
 *   obj:state() -> n            obj:advance(n)   (n must be greater: states only move forward)
 *   obj:wait(n) -> state        (until state >= n or closed; never raises on close)
 *   obj:close()                 (final state ML_LC_CLOSED; wakes every waiter; once)
 *
 * The behaviour (turns, tools, hooks) is Lua; what C enforces is that states
 * only move forward, that each object is closed exactly once and counted in
 * the ledger under its kind, and that it is closed by its owner's scope at
 * the latest: an object belongs to the body scope of `owner_task` (default:
 * the current task), so a speech created by a tool call belongs to the
 * activity that will play it, not to the tool call. */
#include <stdlib.h>
#include <string.h>

#include "ml_bind.h"

static const char LC_MT[] = "moonline.lifecycle";

#define ML_LC_CLOSED 1000
#define ML_LC_KINDS 8

typedef struct ml_lc {
  ml_res res; /* first */
  int state;
  ml_waitq waiters;
} ml_lc;

static void lc_close(ml_res *r)
{
  ml_lc *o = (ml_lc *)r;
  o->state = ML_LC_CLOSED;
  ml_waitq_wake(&o->waiters, 0x7fffffff);
  ml_res_closed(r);
}

static void lc_free(ml_res *r) { free(r); }

/* one resource type per kind name, so the ledger counts sessions, activities
 * and speeches apart */
static ml_res_type lc_types[ML_LC_KINDS];
static char lc_names[ML_LC_KINDS][16];
static int lc_ntypes;

static const ml_res_type *lc_type(lua_State *L, const char *kind)
{
  for (int i = 0; i < lc_ntypes; i++)
    if (!strcmp(lc_names[i], kind)) return &lc_types[i];
  if (lc_ntypes == ML_LC_KINDS || strlen(kind) >= sizeof lc_names[0])
    luaL_error(L, "moonline.lifecycle: too many kinds, or kind name too long: %s", kind);
  ml_res_type *t = &lc_types[lc_ntypes];
  strcpy(lc_names[lc_ntypes], kind);
  t->name = lc_names[lc_ntypes];
  t->close = lc_close;
  t->free = lc_free;
  ml_res_type_register(t);
  lc_ntypes++;
  return t;
}

static int l_lifecycle(lua_State *L)
{
  const char *kind = luaL_checkstring(L, 1);
  ml_task *t = ml_bind_task(L, "lifecycle");
  ml_task *owner = t;
  if (!lua_isnoneornil(L, 2)) {
    owner = luaL_checkudata(L, 2, "moonline.task");
    if (owner->state == ML_TASK_DONE || !owner->body)
      return luaL_error(L, "moonline.lifecycle: owner task %s has ended", owner->name);
  }
  const ml_res_type *type = lc_type(L, kind);
  ml_lc *o = calloc(1, sizeof *o);
  if (!o) return luaL_error(L, "out of memory");
  char where[64];
  ml_bind_where(L, where, sizeof where);
  /* the owner's body scope, so only the owner's end (or an explicit close) ends it */
  ml_res_open(t->loop, &o->res, type, owner == t ? t->cur : owner->body, where);
  ml_waitq_init(&o->waiters);
  ml_box_new(L, &o->res, LC_MT);
  return 1;
}

static ml_lc *check_lc(lua_State *L) { return (ml_lc *)ml_box_get(L, 1, LC_MT); }

static int l_state(lua_State *L)
{
  ml_lc *o = check_lc(L);
  lua_pushinteger(L, o ? o->state : ML_LC_CLOSED);
  return 1;
}

static int l_advance(lua_State *L)
{
  ml_lc *o = check_lc(L);
  int n = (int)luaL_checkinteger(L, 2);
  if (!o) return luaL_error(L, "moonline.lifecycle:advance: the object is closed");
  if (n >= ML_LC_CLOSED) return luaL_argerror(L, 2, "use :close() for the final state");
  if (n <= o->state)
    return luaL_error(L, "moonline.lifecycle:advance: %s cannot go from state %d back to %d",
                      o->res.type->name, o->state, n);
  o->state = n;
  ml_waitq_wake(&o->waiters, 0x7fffffff);
  return 0;
}

/* wait(n) -> true, state (the Lua half loops until state >= n) */
static int l_wait(lua_State *L)
{
  ml_lc *o = check_lc(L);
  int n = (int)luaL_checkinteger(L, 2);
  ml_task *t = ml_bind_wait_task(L, "lifecycle:wait");
  int state = o ? o->state : ML_LC_CLOSED;
  if (state >= n) {
    lua_pushboolean(L, 1);
    lua_pushinteger(L, state);
    return 2;
  }
  return ml_bind_park(L, t, &o->waiters, o->res.type->name);
}

int ml_open_lifecycle(lua_State *L)
{
  static const luaL_Reg methods[] = {
      {"state", l_state}, {"advance", l_advance}, {"wait", l_wait}, {"close", ml_box_close}, {NULL, NULL}};
  ml_bind_class(L, LC_MT, methods);
  lua_pushcfunction(L, l_lifecycle);
  lua_setfield(L, -2, "lifecycle");
  lua_pushinteger(L, ML_LC_CLOSED);
  lua_setfield(L, -2, "LIFECYCLE_CLOSED");
  return 0;
}
