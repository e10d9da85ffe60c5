/* A timer resource: `task.timer(after [, every])` -> handle with :wait() and
 * :close(). It lives on the engine clock (real or virtual) and in its scope's
 * exit stack like any other resource. */
#include <stdlib.h>

#include "ml_bind.h"

static const char TIMER_MT[] = "moonline.timer";

typedef struct ml_timer_res {
  ml_res res; /* first */
  ml_timer timer;
  uint64_t every_ns;
  int fired; /* expirations not yet seen by :wait() */
  ml_task *waiter;
} ml_timer_res;

static void timer_wake(ml_timer_res *tr, int ok)
{
  ml_task *t = tr->waiter;
  if (!t) return;
  tr->waiter = NULL;
  if (ok) {
    lua_pushboolean(t->co, 1);
    lua_pushinteger(t->co, tr->fired);
    tr->fired = 0;
    ml_task_post(t, 2);
  } else {
    lua_pushboolean(t->co, 0);
    lua_pushliteral(t->co, "closed");
    ml_task_post(t, 2);
  }
}

static void timer_fired(ml_timer *tm)
{
  ml_timer_res *tr = ml_container_of(tm, ml_timer_res, timer);
  tr->fired++;
  if (tr->every_ns) ml_timer_start(tr->res.loop, &tr->timer, tr->every_ns);
  timer_wake(tr, 1);
}

static void timer_close(ml_res *r)
{
  ml_timer_res *tr = (ml_timer_res *)r;
  ml_timer_stop(r->loop, &tr->timer);
  timer_wake(tr, 0);
  ml_res_closed(r);
}

static void timer_free(ml_res *r) { free(r); }

static ml_res_type timer_type = {"timer", 0, timer_close, timer_free};

static uint64_t opt_ns(lua_State *L, int idx)
{
  lua_Number s = luaL_optnumber(L, idx, 0);
  if (!(s > 0)) return 0;
  return (uint64_t)((s > 1e9 ? 1e9 : s) * 1e9);
}

static int l_timer(lua_State *L)
{
  ml_task *t = ml_bind_task(L, "task.timer");
  luaL_checknumber(L, 1);
  uint64_t after = opt_ns(L, 1), every = opt_ns(L, 2);
  ml_timer_res *tr = calloc(1, sizeof *tr);
  if (!tr) return luaL_error(L, "out of memory");
  char where[64];
  ml_bind_where(L, where, sizeof where);
  ml_res_open(t->loop, &tr->res, &timer_type, t->cur, where);
  ml_timer_init(&tr->timer, timer_fired);
  tr->every_ns = every;
  ml_box_new(L, &tr->res, TIMER_MT);
  ml_timer_start(t->loop, &tr->timer, after);
  return 1;
}

static void timer_wait_cancel(ml_task *t, void *data)
{
  (void)t;
  ((ml_timer_res *)data)->waiter = NULL;
}

/* :wait() -> number of expirations since the last wait | false, "closed" */
static int l_timer_wait(lua_State *L)
{
  ml_timer_res *tr = (ml_timer_res *)ml_box_get(L, 1, TIMER_MT);
  ml_task *t = ml_bind_wait_task(L, "timer:wait");
  if (!tr || tr->res.state != ML_RES_OPEN) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (tr->waiter) return luaL_error(L, "moonline.timer:wait: another task is already waiting on this timer");
  if (ml_bind_cancelled(t)) return lua_yield(L, 0);
  if (tr->fired) {
    lua_pushboolean(L, 1);
    lua_pushinteger(L, tr->fired);
    tr->fired = 0;
    return 2;
  }
  if (!ml_timer_armed(&tr->timer)) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "expired");
    return 2;
  }
  tr->waiter = t;
  ml_task_wait(t, timer_wait_cancel, tr, "timer");
  return lua_yield(L, 0);
}

int ml_open_timer(lua_State *L)
{
  static const luaL_Reg methods[] = {{"wait", l_timer_wait}, {"close", ml_box_close}, {NULL, NULL}};
  ml_res_type_register(&timer_type);
  ml_bind_class(L, TIMER_MT, methods);
  lua_pushcfunction(L, l_timer);
  lua_setfield(L, -2, "timer");
  return 0;
}
