/* Tasks: a Lua coroutine owned by C. A task is resumed only by the loop; a
 * primitive that waits records its pending op and yields; the completion (or a
 * cancellation) posts the task back on the ready queue with the values the
 * primitive returns. The body runs inside a Lua trampoline (moonline.task) that
 * owns the body scope's exit protocol, so cleanup can itself yield. */
#include <stdio.h>
#include <string.h>

#include "lauxlib.h"
#include "ml_internal.h"

static const char TASK_MT[] = "moonline.task";

ml_task *ml_task_current(lua_State *L)
{
  ml_loop *loop = ml_loop_get(L);
  if (!loop || !loop->current || loop->current->co != L) return NULL;
  return loop->current;
}

ml_task *ml_task_spawn(ml_loop *loop, lua_State *L, ml_scope *parent, int nargs, int supervised,
                       const char *name)
{
  /* the name is stored inline, at its length: most are short ("speech#42") */
  char buf[ML_TASK_NAME_MAX];
  uint64_t id = ++loop->next_id;
  int len = snprintf(buf, sizeof buf, "%s#%llu", name && *name ? name : "task", (unsigned long long)id);
  if (len < 0) len = 0;
  if (len >= (int)sizeof buf) len = (int)sizeof buf - 1;
  ml_task *t = lua_newuserdata(L, sizeof *t + (size_t)len + 1);
  memset(t, 0, sizeof *t);
  memcpy(t->name, buf, (size_t)len + 1);
  luaL_getmetatable(L, TASK_MT);
  lua_setmetatable(L, -2);
  lua_insert(L, -(nargs + 2)); /* task fn args... */

  t->loop = loop;
  t->id = id;
  t->result_ref = LUA_NOREF;
  t->supervised = supervised != 0;
  ml_list_init(&t->ready_link);
  ml_list_init(&t->child_link);
  ml_list_init(&t->waiters);
  ml_list_init(&t->wait_link);
  ml_list_init(&t->live_link);
  ml_timer_init(&t->sleep_timer, NULL);

  t->co = lua_newthread(L);
  t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  t->body = ml_scope_open(t, ML_SCOPE_BODY);
  t->body->parent = parent;
  t->cur = t->body;
  t->parent = parent;

  /* the coroutine starts as trampoline(body, body_id, fn, args...) */
  lua_rawgeti(L, LUA_REGISTRYINDEX, loop->trampoline_ref);
  lua_pushlightuserdata(L, t->body);
  lua_pushnumber(L, (lua_Number)t->body->id);
  lua_insert(L, -(nargs + 4));
  lua_insert(L, -(nargs + 4));
  lua_insert(L, -(nargs + 4));
  lua_xmove(L, t->co, nargs + 4);
  t->nresume = nargs + 3;

  lua_pushvalue(L, -1);
  t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);

  if (parent) {
    ml_list_push(&parent->children, &t->child_link);
    parent->nchildren++;
    /* spawned into a scope that is already stopping: it starts cancelled */
    if (parent->cancelled || parent->unwinding)
      ml_scope_cancel(t->body, parent->cancel_reason ? parent->cancel_reason : "scope closing");
  }
  loop->ledger.tasks++;
  loop->ledger.tasks_spawned++;
  ml_list_push(&loop->live, &t->live_link);
  t->state = ML_TASK_READY;
  ml_loop_push_ready(loop, t);
  return t;
}

void ml_task_wait(ml_task *t, void (*cancel)(ml_task *, void *), void *data, const char *what)
{
  t->op.cancel = cancel;
  t->op.data = data;
  t->op.what = what;
  t->state = ML_TASK_WAITING;
}

void ml_task_post(ml_task *t, int n)
{
  if (t->state != ML_TASK_WAITING) return;
  t->op.cancel = NULL;
  t->op.data = NULL;
  t->through_shield = 0;
  t->nresume = n;
  t->state = ML_TASK_READY;
  ml_loop_push_ready(t->loop, t);
}

ml_scope *ml_task_cancelled(ml_task *t)
{
  ml_scope *found = NULL;
  for (ml_scope *s = t->cur; s; s = (s == t->body) ? NULL : s->parent) {
    if (s->unwinding) break; /* cleanup runs shielded, bounded by its deadline */
    if (s->cancelled) found = s;
    if (s->kind == ML_SCOPE_SHIELD) break;
  }
  return found;
}

ml_scope *ml_task_cancelled_through(ml_task *t)
{
  ml_scope *found = NULL;
  for (ml_scope *s = t->cur; s; s = (s == t->body) ? NULL : s->parent) {
    if (s->unwinding) break;
    if (s->cancelled) found = s;
  }
  return found && found->id != t->delivered_scope ? found : NULL;
}

void ml_task_push_cancel(ml_task *t, ml_scope *s)
{
  t->delivered_scope = s->id;
  lua_checkstack(t->co, 3);
  lua_pushnil(t->co);
  lua_pushstring(t->co, s->cancel_reason ? s->cancel_reason : "cancelled");
  lua_pushnumber(t->co, (lua_Number)s->id);
}

void ml_task_interrupt(ml_task *t)
{
  if (t->state != ML_TASK_WAITING) return;
  ml_scope *s = ml_task_cancelled(t);
  if (!s && t->through_shield) s = ml_task_cancelled_through(t);
  if (!s) return;
  ml_op op = t->op;
  if (op.cancel) op.cancel(t, op.data);
  ml_task_push_cancel(t, s);
  ml_task_post(t, 3);
}

void ml_task_cancel(ml_task *t, const char *reason)
{
  if (t->state == ML_TASK_DONE || !t->body) return;
  t->stop_requested = 1;
  ml_scope_cancel(t->body, reason);
}

/* Push the values of a finished task's result onto co: (ok, values...). */
int ml_task_push_result(ml_task *t, lua_State *co)
{
  lua_State *L = t->loop->L;
  if (t->result_ref == LUA_REFNIL) { /* no values */
    lua_pushboolean(co, t->status == ML_STATUS_OK);
    return 1;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->result_ref);
  lua_getfield(L, -1, "n");
  int n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_checkstack(co, n + 2);
  lua_pushboolean(co, t->status == ML_STATUS_OK);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    lua_xmove(L, co, 1);
  }
  lua_pop(L, 1);
  return n + 1;
}

/* Store the outcome (the n values on top of L) and notify waiters and parent. */
static void task_done(ml_task *t, enum ml_task_status status, int n)
{
  ml_loop *loop = t->loop;
  lua_State *L = loop->L;
  if (n == 0 && status != ML_STATUS_ERROR) {
    t->result_ref = LUA_REFNIL; /* most tasks return nothing: no table for it */
  } else {
    lua_createtable(L, n, 1);
    lua_insert(L, -(n + 1));
    for (int i = n; i >= 1; i--) lua_rawseti(L, -(i + 1), i);
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
    t->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }

  t->state = ML_TASK_DONE;
  t->status = status;
  t->op.cancel = NULL;
  loop->ledger.tasks--;
  ml_list_remove(&t->live_link);
  luaL_unref(L, LUA_REGISTRYINDEX, t->co_ref);
  t->co_ref = LUA_NOREF;
  t->co = NULL;

  int had_waiter = !ml_list_empty(&t->waiters);
  while (!ml_list_empty(&t->waiters)) {
    ml_task *w = ml_container_of(t->waiters.next, ml_task, wait_link);
    ml_list_remove(&w->wait_link);
    ml_task_post(w, ml_task_push_result(t, w->co));
  }
  if (status == ML_STATUS_ERROR && (t->supervised || t->stop_requested) && !had_waiter) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->result_ref);
    lua_rawgeti(L, -1, 1);
    ml_log(ML_LOG_ERROR, "%s task %s failed: %s", t->supervised ? "supervised" : "cancelled", t->name,
           lua_isstring(L, -1) ? lua_tostring(L, -1) : luaL_typename(L, -1));
    lua_pop(L, 2);
  }
  if (t->parent) ml_scope_child_done(t->parent, t);
  luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
  t->self_ref = LUA_NOREF;
}

/* Close every scope the task still has open, innermost first (C backstop). */
static void task_reap_scopes(ml_task *t)
{
  while (t->cur) {
    ml_scope *s = t->cur;
    ml_scope_backstop(s, t->loop->L);
    ml_scope_free(s);
  }
}

void ml_task_abandon(ml_task *t, const char *why)
{
  if (t->state == ML_TASK_DONE || t->abandoned) return;
  ml_loop *loop = t->loop;
  const char *what = t->op.what ? t->op.what : "nothing";
  ml_log(ML_LOG_ERROR, "task %s abandoned: %s (it was waiting on %s)", t->name, why, what);
  if (t->state == ML_TASK_WAITING && t->op.cancel) t->op.cancel(t, t->op.data);
  if (t->state == ML_TASK_READY) ml_list_remove(&t->ready_link);
  t->op.cancel = NULL;
  t->state = ML_TASK_RUNNING; /* no completion may post it any more */
  t->abandoned = 1;
  loop->ledger.abandoned++;
  task_reap_scopes(t);
  lua_pushfstring(loop->L, "task %s abandoned: %s", t->name, why);
  task_done(t, ML_STATUS_ERROR, 1);
}

static void redeliver_fired(ml_timer *tm)
{
  ml_task *t = ml_container_of(tm, ml_task, sleep_timer);
  ml_scope *s = ml_task_cancelled(t);
  if (s) {
    ml_task_push_cancel(t, s);
    ml_task_post(t, 3);
  } else {
    lua_pushboolean(t->co, 1);
    ml_task_post(t, 1);
  }
}

static void redeliver_cancel(ml_task *t, void *data)
{
  (void)data;
  ml_timer_stop(t->loop, &t->sleep_timer);
}

void ml_task_resume(ml_task *t)
{
  ml_loop *loop = t->loop;
  ml_task *prev = loop->current;
  int n = t->nresume;
  t->nresume = 0;
  t->state = ML_TASK_RUNNING;
  t->checkpoint = ML_CHECKPOINT_NONE;
  loop->current = t;
  int rc = lua_resume(t->co, n);
  loop->current = prev;

  if (rc == LUA_YIELD) {
    if (t->state != ML_TASK_RUNNING) return; /* parked on an op, or reaped */
    /* yielded with no op: a checkpoint; go round the loop once */
    lua_settop(t->co, 0);
    if (loop->advance_pending) { /* clock.advance: time moves before it resumes */
      uint64_t ns = loop->advance_pending;
      loop->advance_pending = 0;
      ml_clock_advance(loop, ns);
    }
    if (t->checkpoint == ML_CHECKPOINT_CANCEL_AGAIN) {
      t->sleep_timer.cb = redeliver_fired;
      ml_timer_start(loop, &t->sleep_timer, ML_REDELIVER_NS);
      ml_task_wait(t, redeliver_cancel, NULL, "a cancellation it swallowed before");
      return;
    }
    ml_scope *s = t->checkpoint == ML_CHECKPOINT_CANCEL ? ml_task_cancelled(t) : NULL;
    int nv = 0;
    if (s) {
      ml_task_push_cancel(t, s);
      nv = 3;
    } else if (t->checkpoint != ML_CHECKPOINT_NONE) {
      lua_pushboolean(t->co, 1);
      nv = 1;
    }
    t->state = ML_TASK_WAITING;
    ml_task_post(t, nv);
    return;
  }

  lua_State *L = loop->L;
  if (rc == 0) {
    /* the trampoline returned: status code, then the values */
    int top = lua_gettop(t->co);
    int code = top > 0 ? (int)lua_tointeger(t->co, 1) : ML_STATUS_ERROR;
    if (top > 0) lua_remove(t->co, 1);
    lua_checkstack(L, top + 1);
    lua_xmove(t->co, L, top > 0 ? top - 1 : 0);
    if (t->cur) task_reap_scopes(t); /* the trampoline always closes them; belt and braces */
    task_done(
        t, code == ML_STATUS_OK || code == ML_STATUS_CANCELLED ? (enum ml_task_status)code : ML_STATUS_ERROR,
        top > 0 ? top - 1 : 0);
    return;
  }
  /* an error escaped the trampoline itself (out of memory, a fault in cleanup
   * code): keep the traceback, then the C backstop closes what is left */
  const char *msg = lua_tostring(t->co, -1);
  luaL_traceback(L, t->co, msg ? msg : "(error object is not a string)", 0);
  ml_log(ML_LOG_ERROR, "task %s failed outside its scopes: %s", t->name, lua_tostring(L, -1));
  task_reap_scopes(t);
  task_done(t, ML_STATUS_ERROR, 1);
}
