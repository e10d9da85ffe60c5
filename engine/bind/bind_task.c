/* moonline.core: tasks, scopes, sleep, wait queues, clock and ledger.
 * The C halves only check, start and yield; lua/moonline/task.lua turns the
 * resume values into results or errors (true, ... | false, err | nil, reason, scope). */
#include <math.h>
#include <string.h>

#include "ml_bind.h"

static const char TASK_MT[] = "moonline.task";
static const char WAITQ_MT[] = "moonline.waitq";
static const char COND_MT[] = "moonline.condition"; /* a wait queue with notify methods */

static uint64_t seconds_to_ns(lua_State *L, int idx, const char *prim)
{
  lua_Number s = luaL_checknumber(L, idx);
  if (s != s) luaL_error(L, "moonline.%s: seconds is NaN", prim);
  if (s <= 0) return 0;
  if (s > 1e9) s = 1e9; /* ~31 years: "forever" without overflow */
  return (uint64_t)(s * 1e9);
}

/* ---- tasks ------------------------------------------------------------------ */

static ml_task *check_task(lua_State *L, int idx) { return luaL_checkudata(L, idx, TASK_MT); }

static int spawn(lua_State *L, int supervised)
{
  const char *prim = supervised ? "task.spawn_supervised" : "task.spawn";
  ml_task *cur = ml_bind_task(L, prim);
  const char *name = NULL;
  int first = 1;
  if (lua_type(L, 1) == LUA_TSTRING) { /* spawn("name", fn, ...) */
    name = lua_tostring(L, 1);
    first = 2;
  }
  luaL_checktype(L, first, LUA_TFUNCTION);
  int nargs = lua_gettop(L) - first;
  /* the name string stays at index 1 (anchored) while the task is built */
  ml_task_spawn(cur->loop, L, cur->cur, nargs, supervised, name);
  return 1;
}

static int l_spawn(lua_State *L) { return spawn(L, 0); }
static int l_spawn_supervised(lua_State *L) { return spawn(L, 1); }

static int l_current(lua_State *L)
{
  ml_task *t = ml_task_current(L);
  if (!t) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
  return 1;
}

static void waiter_cancel(ml_task *t, void *data)
{
  (void)data;
  ml_list_remove(&t->wait_link);
}

static int l_task_wait(lua_State *L)
{
  ml_task *t = check_task(L, 1);
  ml_task *me = ml_bind_wait_task(L, "task:wait");
  if (t == me) return luaL_error(L, "moonline.task:wait: a task cannot wait for itself");
  if (t->state == ML_TASK_DONE) {
    lua_settop(L, 0);
    return ml_task_push_result(t, L);
  }
  if (ml_bind_cancelled(me)) return lua_yield(L, 0);
  ml_list_push(&t->waiters, &me->wait_link);
  ml_task_wait(me, waiter_cancel, t, "task:wait");
  return lua_yield(L, 0);
}

static int l_task_cancel(lua_State *L)
{
  ml_task *t = check_task(L, 1);
  const char *reason = luaL_optstring(L, 2, "cancelled");
  ml_task_cancel(t, reason);
  return 0;
}

/* t:abandon([why]): the C backstop on demand — never resume it again, close
 * what it owns. For supervisors whose own deadline passed (session close). */
static int l_task_abandon(lua_State *L)
{
  ml_task *t = check_task(L, 1);
  const char *why = luaL_optstring(L, 2, "abandoned by its supervisor");
  if (t == ml_task_current(L)) return luaL_error(L, "moonline.task:abandon: a task cannot abandon itself");
  if (t->state == ML_TASK_RUNNING) return luaL_error(L, "moonline.task:abandon: the task is running");
  ml_task_abandon(t, why);
  return 0;
}

/* task_fail(t, err): the task fails with err (an error raised in a libuv
 * callback it registered): recorded as its body's error, body cancelled. */
static int l_task_fail(lua_State *L)
{
  ml_task *t = check_task(L, 1);
  lua_settop(L, 2);
  if (t->state == ML_TASK_DONE || !t->body) {
    ml_log(ML_LOG_ERROR, "error in a libuv callback of finished task %s: %s", t->name,
           lua_isstring(L, 2) ? lua_tostring(L, 2) : luaL_typename(L, 2));
    return 0;
  }
  if (t->body->error_ref == LUA_NOREF) t->body->error_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  ml_scope_cancel(t->body, "error in a libuv callback");
  return 0;
}

static int l_task_status(lua_State *L)
{
  static const char *const states[] = {"ready", "running", "waiting", "done"};
  static const char *const statuses[] = {"", "ok", "error", "cancelled"};
  ml_task *t = check_task(L, 1);
  lua_pushstring(L, states[t->state]);
  if (t->state == ML_TASK_DONE) {
    lua_pushstring(L, statuses[t->status]);
    return 2;
  }
  return 1;
}

static int l_task_name(lua_State *L)
{
  lua_pushstring(L, check_task(L, 1)->name);
  return 1;
}

static int l_task_tostring(lua_State *L)
{
  ml_task *t = check_task(L, 1);
  lua_pushfstring(L, "moonline task %s", t->name);
  return 1;
}

static int l_task_gc(lua_State *L)
{
  ml_task *t = lua_touserdata(L, 1);
  if (t->result_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, t->result_ref);
  t->result_ref = LUA_NOREF;
  return 0;
}

/* Runs fn as the root task of a fresh root scope and drives the loop until it
 * and everything it started are done. Returns ok, values... | false, err. */
static int l_run(lua_State *L)
{
  ml_loop *loop = ml_loop_get(L);
  if (loop->current) return luaL_error(L, "moonline.task.run: already inside a task (use task.spawn)");
  if (loop->trampoline_ref == LUA_NOREF)
    return luaL_error(L, "moonline.task.run: require 'moonline.task' first");
  const char *name = NULL;
  int first = 1;
  if (lua_type(L, 1) == LUA_TSTRING) {
    name = lua_tostring(L, 1);
    first = 2;
  }
  luaL_checktype(L, first, LUA_TFUNCTION);
  int nargs = lua_gettop(L) - first;
  ml_task *t = ml_task_spawn(loop, L, NULL, nargs, 0, name ? name : "main");
  int ref = luaL_ref(L, LUA_REGISTRYINDEX); /* keep the task alive */
  int rc = ml_loop_run(loop, t);
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  luaL_unref(L, LUA_REGISTRYINDEX, ref);
  (void)rc; /* a deadlock was logged and ended as a cancellation */
  return ml_task_push_result(t, L);
}

/* ---- scopes ------------------------------------------------------------------- */

/* scope_open(kind [, seconds]) -> scope, id.  kind: 1 plain, 2 timeout, 3 shield */
static int l_scope_open(lua_State *L)
{
  ml_task *t = ml_bind_wait_task(L, "task.scope"); /* its exit may wait */
  int kind = (int)luaL_checkinteger(L, 1);
  if (kind < ML_SCOPE_PLAIN || kind > ML_SCOPE_SHIELD) return luaL_argerror(L, 1, "bad scope kind");
  uint64_t ns = kind == ML_SCOPE_TIMEOUT ? seconds_to_ns(L, 2, "task.with_timeout") : 0;
  ml_scope *s = ml_scope_open(t, (enum ml_scope_kind)kind);
  if (kind == ML_SCOPE_TIMEOUT) ml_timer_start(t->loop, &s->deadline, ns);
  lua_pushlightuserdata(L, s);
  lua_pushnumber(L, (lua_Number)s->id);
  return 2;
}

static ml_scope *check_own_scope(lua_State *L, ml_task *t)
{
  ml_scope *s = lua_touserdata(L, 1);
  if (!s || s != t->cur) luaL_error(L, "moonline: scope exit out of order (internal error)");
  return s;
}

/* scope_fail(s, is_error, err): the body ended by an error (is_error) or by
 * a cancellation; record a real error, cancel the children, start unwinding. */
static int l_scope_fail(lua_State *L)
{
  ml_task *t = ml_bind_task(L, "task.scope");
  ml_scope *s = check_own_scope(L, t);
  if (lua_toboolean(L, 2) && s->error_ref == LUA_NOREF) {
    lua_settop(L, 3);
    s->error_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  ml_scope_fail(s);
  return 0;
}

static int l_scope_step(lua_State *L)
{
  ml_task *t = ml_bind_wait_task(L, "task.scope");
  ml_scope *s = check_own_scope(L, t);
  int n = ml_scope_step(s, L);
  return n >= 0 ? n : lua_yield(L, 0);
}

static int l_scope_cancelled(lua_State *L)
{
  ml_scope *s = lua_touserdata(L, 1);
  lua_pushboolean(L, s && s->cancelled);
  return 1;
}

static int l_defer(lua_State *L)
{
  ml_task *t = ml_bind_task(L, "task.defer");
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  ml_scope_defer(t->cur, L);
  return 0;
}

/* ---- sleep / yield ---------------------------------------------------------------- */

static void sleep_fired(ml_timer *tm)
{
  ml_task *t = ml_container_of(tm, ml_task, sleep_timer);
  lua_pushboolean(t->co, 1);
  ml_task_post(t, 1);
}

static void sleep_cancel(ml_task *t, void *data)
{
  (void)data;
  ml_timer_stop(t->loop, &t->sleep_timer);
}

static int l_sleep(lua_State *L)
{
  ml_task *t = ml_bind_wait_task(L, "task.sleep");
  uint64_t ns = seconds_to_ns(L, 1, "task.sleep");
  if (ml_bind_cancelled(t)) return lua_yield(L, 0);
  t->sleep_timer.cb = sleep_fired;
  ml_timer_start(t->loop, &t->sleep_timer, ns);
  ml_task_wait(t, sleep_cancel, NULL, "sleep");
  return lua_yield(L, 0);
}

static int l_yield(lua_State *L)
{
  ml_task *t = ml_bind_wait_task(L, "task.yield");
  if (!ml_bind_cancelled(t)) t->checkpoint = ML_CHECKPOINT_YIELD;
  return lua_yield(L, 0);
}

/* cancel_point(): raise (via the Lua half) if the task is cancelled. */
static int l_check_cancel(lua_State *L)
{
  ml_task *t = ml_bind_task(L, "task.check_cancel");
  ml_scope *s = ml_task_cancelled(t);
  if (!s) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, s->cancel_reason);
  lua_pushnumber(L, (lua_Number)s->id);
  return 3;
}

/* cancelled_through() -> whether a cancellation outside the task's shield is
 * pending (not delivered yet); q:wait(what, true) would deliver it. */
static int l_cancelled_through(lua_State *L)
{
  ml_task *t = ml_bind_task(L, "task.cancelled_through");
  lua_pushboolean(L, ml_task_cancelled_through(t) != NULL);
  return 1;
}

/* ---- wait queues --------------------------------------------------------------------- */

void ml_waitq_init(ml_waitq *q) { ml_list_init(&q->tasks); }

void ml_waitq_wait(ml_waitq *q, ml_task *t, const char *what)
{
  ml_list_push(&q->tasks, &t->wait_link);
  ml_task_wait(t, waiter_cancel, q, what);
}

int ml_waitq_wake(ml_waitq *q, int n)
{
  int woken = 0;
  while (woken < n && !ml_list_empty(&q->tasks)) {
    ml_task *t = ml_container_of(q->tasks.next, ml_task, wait_link);
    ml_list_remove(&t->wait_link);
    lua_pushboolean(t->co, 1);
    ml_task_post(t, 1);
    woken++;
  }
  return woken;
}

static int new_waitq(lua_State *L, const char *mt)
{
  ml_waitq *q = lua_newuserdata(L, sizeof *q);
  ml_waitq_init(q);
  luaL_getmetatable(L, mt);
  lua_setmetatable(L, -2);
  return 1;
}

static int l_waitq(lua_State *L) { return new_waitq(L, WAITQ_MT); }
/* condition() -> c: the wait queue itself (no table around it) */
static int l_condition(lua_State *L) { return new_waitq(L, COND_MT); }

/* The wait queue at index 1: a moonline.waitq or a moonline.condition. */
static ml_waitq *check_waitq(lua_State *L)
{
  ml_waitq *q = lua_touserdata(L, 1);
  if (q && lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, WAITQ_MT);
    luaL_getmetatable(L, COND_MT);
    int ok = lua_rawequal(L, -3, -2) || lua_rawequal(L, -3, -1);
    lua_pop(L, 3);
    if (ok) return q;
  }
  luaL_typerror(L, 1, "wait queue");
  return NULL;
}

/* q:wait([what [, through_shield]]): through_shield: a cancellation of a scope
 * outside the task's innermost shield also ends the wait (once per scope), for
 * a supervisor that runs shielded but must hear that it is being cancelled. */
static int l_waitq_wait(lua_State *L)
{
  ml_waitq *q = check_waitq(L);
  ml_task *t = ml_bind_wait_task(L, "wait");
  int through = lua_toboolean(L, 3);
  if (ml_bind_cancelled(t)) return lua_yield(L, 0);
  if (through) {
    ml_scope *s = ml_task_cancelled_through(t);
    if (s) {
      lua_settop(L, 0);
      ml_task_push_cancel(t, s);
      return 3;
    }
  }
  ml_waitq_wait(q, t, luaL_optstring(L, 2, "wait queue"));
  t->through_shield = through != 0;
  return lua_yield(L, 0);
}

static int l_waitq_wake(lua_State *L)
{
  ml_waitq *q = check_waitq(L);
  int n = (int)luaL_optinteger(L, 2, 1);
  lua_pushinteger(L, ml_waitq_wake(q, n));
  return 1;
}

static int l_waitq_wake_all(lua_State *L)
{
  ml_waitq *q = check_waitq(L);
  lua_pushinteger(L, ml_waitq_wake(q, 0x7fffffff));
  return 1;
}

/* ---- clock, ledger, config ---------------------------------------------------------------- */

static int l_now(lua_State *L)
{
  lua_pushnumber(L, (lua_Number)ml_clock_now(ml_loop_get(L)) / 1e9);
  return 1;
}

static int l_clock_virtual(lua_State *L)
{
  ml_loop *loop = ml_loop_get(L);
  if (ml_clock_set_virtual(loop, lua_toboolean(L, 1)) != 0)
    return luaL_error(L, "moonline.clock: cannot switch clocks while timers are armed");
  return 0;
}

static int l_clock_is_virtual(lua_State *L)
{
  lua_pushboolean(L, ml_loop_get(L)->virtual_clock);
  return 1;
}

/* advance(seconds): virtual time moves between two task resumptions, never
 * in the middle of one, so timers fire from the loop as they would for real. */
static int l_clock_advance(lua_State *L)
{
  ml_loop *loop = ml_loop_get(L);
  uint64_t ns = seconds_to_ns(L, 1, "clock.advance");
  if (!loop->virtual_clock) return luaL_error(L, "moonline.clock.advance: the clock is not virtual");
  if (!loop->current) {
    ml_clock_advance(loop, ns);
    lua_pushboolean(L, 1);
    return 1;
  }
  ml_task *t = ml_bind_wait_task(L, "clock.advance");
  loop->advance_pending += ns;
  if (!ml_bind_cancelled(t)) t->checkpoint = ML_CHECKPOINT_YIELD;
  return lua_yield(L, 0);
}

static int l_set_cleanup_deadline(lua_State *L)
{
  ml_loop *loop = ml_loop_get(L);
  lua_pushnumber(L, (lua_Number)loop->cleanup_default_ns / 1e9);
  if (!lua_isnoneornil(L, 1)) loop->cleanup_default_ns = seconds_to_ns(L, 1, "task.set_cleanup_deadline");
  return 1;
}

/* tasks() -> { { name =, state = "ready"|"running"|"waiting", waiting_for = what }, ... }:
 * every live task and what it is blocked on, for diagnosing a stuck close */
static int l_tasks(lua_State *L)
{
  static const char *const states[] = {"ready", "running", "waiting", "done"};
  ml_loop *loop = ml_bind_task(L, "task.tasks")->loop;
  lua_newtable(L);
  int i = 0;
  for (ml_list *n = loop->live.next; n != &loop->live; n = n->next) {
    ml_task *t = ml_container_of(n, ml_task, live_link);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, t->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, states[t->state]);
    lua_setfield(L, -2, "state");
    if (t->state == ML_TASK_WAITING && t->op.what) {
      lua_pushstring(L, t->op.what);
      lua_setfield(L, -2, "waiting_for");
    }
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

static int l_ledger(lua_State *L)
{
  ml_loop *loop = ml_loop_get(L);
  ml_ledger *lg = &loop->ledger;
  lua_createtable(L, 0, 12);
#define FIELD(name, v)                                                                                       \
  lua_pushnumber(L, (lua_Number)(v));                                                                        \
  lua_setfield(L, -2, name)
  FIELD("tasks", lg->tasks);
  FIELD("scopes", lg->scopes);
  FIELD("resources", lg->resources);
  FIELD("timers", loop->heap_len);
  FIELD("handles", ml_loop_handles(loop));
  FIELD("leaks", lg->leaks);
  FIELD("abandoned", lg->abandoned);
  FIELD("tasks_spawned", lg->tasks_spawned);
  FIELD("resources_opened", lg->resources_opened);
#undef FIELD
  lua_createtable(L, 0, ml_res_kind_count());
  for (int k = 0; k < ml_res_kind_count(); k++) {
    lua_pushnumber(L, (lua_Number)lg->by_kind[k]);
    lua_setfield(L, -2, ml_res_kind_name(k));
  }
  lua_setfield(L, -2, "kinds");
  return 1;
}

static int l_log(lua_State *L)
{
  static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
  int level = luaL_checkoption(L, 1, NULL, levels);
  const char *msg = luaL_checkstring(L, 2);
  ml_log(level, "%s", msg);
  return 0;
}

static int l_log_level(lua_State *L)
{
  static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
  lua_pushstring(L, levels[ml_log_level()]);
  if (!lua_isnoneornil(L, 1)) ml_log_set_level(luaL_checkoption(L, 1, NULL, levels));
  return 1;
}

static int l_where(lua_State *L)
{
  char buf[128];
  ml_bind_where(L, buf, sizeof buf);
  lua_pushstring(L, buf);
  return 1;
}

static int l_set_trampoline(lua_State *L)
{
  ml_loop *loop = ml_loop_get(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  if (loop->trampoline_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, loop->trampoline_ref);
  loop->trampoline_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

int ml_open_task(lua_State *L)
{
  static const luaL_Reg task_methods[] = {{"wait", l_task_wait},       {"cancel", l_task_cancel},
                                          {"status", l_task_status},   {"name", l_task_name},
                                          {"abandon", l_task_abandon}, {NULL, NULL}};
  luaL_newmetatable(L, TASK_MT);
  lua_newtable(L);
  luaL_register(L, NULL, task_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_task_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, l_task_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  static const luaL_Reg waitq_methods[] = {
      {"wait", l_waitq_wait}, {"wake", l_waitq_wake}, {"wake_all", l_waitq_wake_all}, {NULL, NULL}};
  luaL_newmetatable(L, WAITQ_MT);
  lua_newtable(L);
  luaL_register(L, NULL, waitq_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);

  static const luaL_Reg cond_methods[] = {
      {"wait", l_waitq_wait}, {"notify", l_waitq_wake}, {"notify_all", l_waitq_wake_all}, {NULL, NULL}};
  luaL_newmetatable(L, COND_MT);
  lua_newtable(L);
  luaL_register(L, NULL, cond_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);

  static const luaL_Reg fns[] = {{"spawn", l_spawn},
                                 {"spawn_supervised", l_spawn_supervised},
                                 {"current", l_current},
                                 {"run", l_run},
                                 {"scope_open", l_scope_open},
                                 {"scope_fail", l_scope_fail},
                                 {"scope_step", l_scope_step},
                                 {"scope_cancelled", l_scope_cancelled},
                                 {"defer", l_defer},
                                 {"sleep", l_sleep},
                                 {"yield", l_yield},
                                 {"check_cancel", l_check_cancel},
                                 {"cancelled_through", l_cancelled_through},
                                 {"task_fail", l_task_fail},
                                 {"waitq", l_waitq},
                                 {"condition", l_condition},
                                 {"now", l_now},
                                 {"clock_virtual", l_clock_virtual},
                                 {"clock_is_virtual", l_clock_is_virtual},
                                 {"clock_advance", l_clock_advance},
                                 {"set_cleanup_deadline", l_set_cleanup_deadline},
                                 {"ledger", l_ledger},
                                 {"tasks", l_tasks},
                                 {"log", l_log},
                                 {"log_level", l_log_level},
                                 {"where", l_where},
                                 {"set_trampoline", l_set_trampoline},
                                 {"cannot_wait", ml_bind_cannot_wait},
                                 {NULL, NULL}};
  luaL_register(L, NULL, fns);
  return 0;
}
