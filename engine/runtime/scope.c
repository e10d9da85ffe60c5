/* Scopes: structured concurrency. A scope owns child tasks and one exit stack
 * (C resources and Lua defers). Cancelling a scope cancels its children and
 * interrupts its owner; a scope that is unwinding is shielded from
 * cancellation but bounded by its cleanup deadline, past which the C backstop
 * abandons the owner task and closes the remaining C resources itself. */
#include <stdlib.h>
#include <string.h>

#include "lauxlib.h"
#include "ml_internal.h"

static void scope_deadline_fired(ml_timer *tm);

ml_scope *ml_scope_open(ml_task *owner, enum ml_scope_kind kind)
{
  ml_scope *s = calloc(1, sizeof *s);
  if (!s) abort();
  s->owner = owner;
  s->kind = kind;
  s->id = ++owner->loop->next_id;
  s->error_ref = LUA_NOREF;
  s->cleanup_ns = owner->loop->cleanup_default_ns;
  ml_list_init(&s->children);
  ml_list_init(&s->exits);
  ml_list_init(&s->closing);
  ml_timer_init(&s->deadline, scope_deadline_fired);
  if (kind != ML_SCOPE_BODY) {
    s->parent = owner->cur;
    owner->cur = s;
  }
  owner->loop->ledger.scopes++;
  return s;
}

void ml_scope_free(ml_scope *s)
{
  ml_task *owner = s->owner;
  ml_loop *loop = owner->loop;
  ml_timer_stop(loop, &s->deadline);
  if (s->error_ref != LUA_NOREF) luaL_unref(loop->L, LUA_REGISTRYINDEX, s->error_ref);
  if (owner->cur == s) owner->cur = s->kind == ML_SCOPE_BODY ? NULL : s->parent;
  if (owner->body == s) owner->body = NULL;
  loop->ledger.scopes--;
  free(s);
}

void ml_scope_begin_cleanup(ml_scope *s)
{
  if (s->cleanup_armed) return;
  s->cleanup_armed = 1;
  ml_timer_start(s->owner->loop, &s->deadline, s->cleanup_ns);
}

static void scope_deadline_fired(ml_timer *tm)
{
  ml_scope *s = ml_container_of(tm, ml_scope, deadline);
  if (!s->cleanup_armed) {
    ml_scope_cancel(s, "timeout"); /* a with_timeout deadline */
    return;
  }
  char why[96];
  snprintf(why, sizeof why, "cleanup did not finish within %.3gs", (double)s->cleanup_ns / 1e9);
  ml_task_abandon(s->owner, why);
}

static void cancel_children(ml_scope *s, const char *reason)
{
  for (ml_list *l = s->children.next; l != &s->children; l = l->next)
    ml_task_cancel(ml_container_of(l, ml_task, child_link), reason);
}

void ml_scope_cancel(ml_scope *s, const char *reason)
{
  if (s->cancelled) return;
  s->cancelled = 1;
  snprintf(s->reason_buf, sizeof s->reason_buf, "%s", reason ? reason : "cancelled");
  s->cancel_reason = s->reason_buf;
  ml_scope_begin_cleanup(s);
  cancel_children(s, s->cancel_reason);
  ml_task_interrupt(s->owner);
}

/* The body (or a join) failed: stop the children and start unwinding. */
void ml_scope_fail(ml_scope *s)
{
  s->unwinding = 1;
  ml_scope_begin_cleanup(s);
  cancel_children(s, s->cancelled ? s->cancel_reason : "scope failed");
}

void ml_scope_child_done(ml_scope *s, ml_task *child)
{
  lua_State *L = child->loop->L;
  ml_list_remove(&child->child_link);
  s->nchildren--;
  /* fail fast, unless the child was supervised or we had asked it to stop
   * (then its failure, e.g. a cleanup past its deadline, is logged as its own) */
  if (child->status == ML_STATUS_ERROR && !child->supervised && !child->stop_requested) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, child->result_ref);
    lua_rawgeti(L, -1, 1);
    if (s->error_ref == LUA_NOREF) {
      s->error_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* fail fast: first error wins */
      lua_pop(L, 1);
      ml_scope_cancel(s, "child task failed");
    } else {
      /* the scope already ends because of another error: this one is logged
       * here since nobody else will see it */
      ml_log(ML_LOG_ERROR, "task %s also failed: %s", child->name,
             lua_isstring(L, -1) ? lua_tostring(L, -1) : luaL_typename(L, -1));
      lua_pop(L, 2);
    }
  }
  if (s->nchildren == 0 && s->joining && s->owner->state == ML_TASK_WAITING) {
    s->joining = 0;
    lua_pushinteger(s->owner->co, ML_STEP_AGAIN);
    ml_task_post(s->owner, 1);
  }
}

typedef struct ml_defer {
  ml_exit exit;
  int fn_ref;
} ml_defer;

void ml_scope_defer(ml_scope *s, lua_State *L)
{
  ml_defer *d = malloc(sizeof *d);
  if (!d) luaL_error(L, "out of memory");
  d->exit.kind = ML_EXIT_DEFER;
  d->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* pops the function */
  ml_list_push(&s->exits, &d->exit.link);
}

/* Pop the top exit entry: closes a resource, or pushes a defer's function on
 * L and returns 1. Returns 0 when the stack is empty. */
static int scope_pop_exit(ml_scope *s, lua_State *L, int *pushed)
{
  *pushed = 0;
  if (ml_list_empty(&s->exits)) return 0;
  ml_exit *e = ml_container_of(s->exits.prev, ml_exit, link);
  if (e->kind == ML_EXIT_RES) {
    ml_res_close((ml_res *)e); /* unlinks it */
    return 1;
  }
  ml_defer *d = (ml_defer *)e;
  ml_list_remove(&e->link);
  if (L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, d->fn_ref);
    *pushed = 1;
  }
  luaL_unref(s->owner->loop->L, LUA_REGISTRYINDEX, d->fn_ref);
  free(d);
  return 1;
}

static void join_cancel(ml_task *t, void *data)
{
  (void)t;
  ((ml_scope *)data)->joining = 0;
}

static void closing_cancel(ml_task *t, void *data)
{
  (void)t;
  ((ml_scope *)data)->closing_wait = 0;
}

/* One step of a scope's exit (called by the trampoline in a loop):
 *   wait for children -> unwind the exit stack -> wait for async closes -> done.
 * Returns the number of values pushed, or -1 after parking the task (the
 * caller then yields). */
int ml_scope_step(ml_scope *s, lua_State *L)
{
  ml_task *t = s->owner;
  if (s->nchildren > 0) {
    if (!s->unwinding) {
      ml_scope *c = ml_task_cancelled(t);
      if (c) { /* interrupted while joining: the caller fails the scope */
        lua_pushnil(L);
        lua_pushstring(L, c->cancel_reason);
        lua_pushnumber(L, (lua_Number)c->id);
        return 3;
      }
    }
    s->joining = 1;
    ml_task_wait(t, join_cancel, s, "child tasks");
    return -1;
  }
  if (!s->unwinding) {
    s->unwinding = 1;
    ml_scope_begin_cleanup(s);
  }
  int pushed;
  while (scope_pop_exit(s, L, &pushed)) {
    if (pushed) {
      lua_pushinteger(L, ML_STEP_DEFER);
      lua_insert(L, -2);
      return 2;
    }
  }
  if (!ml_list_empty(&s->closing)) {
    s->closing_wait = 1;
    ml_task_wait(t, closing_cancel, s, "resources closing");
    return -1;
  }
  lua_pushinteger(L, ML_STEP_DONE);
  if (s->error_ref != LUA_NOREF)
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->error_ref);
  else
    lua_pushnil(L);
  ml_scope_free(s);
  return 2;
}

void ml_scope_backstop(ml_scope *s, lua_State *L)
{
  (void)L;
  s->unwinding = 1;
  s->cancelled = 1;
  if (!s->cancel_reason) s->cancel_reason = "abandoned";
  ml_timer_stop(s->owner->loop, &s->deadline);
  while (!ml_list_empty(&s->children))
    ml_task_abandon(ml_container_of(s->children.next, ml_task, child_link), "its parent scope was abandoned");
  while (!ml_list_empty(&s->exits)) {
    ml_exit *e = ml_container_of(s->exits.prev, ml_exit, link);
    if (e->kind == ML_EXIT_RES) {
      ml_res *r = (ml_res *)e;
      ml_log(ML_LOG_WARN, "backstop: closing %s opened at %s", r->type->name, r->where);
    } else {
      ml_log(ML_LOG_WARN, "backstop: skipping a defer of task %s", s->owner->name);
    }
    int pushed;
    scope_pop_exit(s, NULL, &pushed);
  }
  /* closes still in flight finish without us */
  while (!ml_list_empty(&s->closing)) {
    ml_res *r = (ml_res *)ml_container_of(s->closing.next, ml_exit, link);
    ml_list_remove(&r->exit.link);
    r->scope = NULL;
  }
}
