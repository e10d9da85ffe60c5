/* Resources (engine/runtime/resource.c): OPEN -> CLOSING -> CLOSED with one
 * close path, pushed on their scope's exit stack, counted by the ledger.
 * A fake resource type closes either at once or asynchronously through a
 * libuv timer; task bodies (Lua snippets) open and close fakes through a few
 * C functions registered as globals. Here luv owns the libuv loop, as under a
 * plain `luajit` with the moonline.core module. */
#include <stdlib.h>
#include <string.h>

#include "ml_test.h"
#include "ml_test_lua.h"

/* ---- the fake resource type ------------------------------------------------ */

typedef struct fake {
  ml_res res; /* first */
  int async;
  int index; /* position in the pool: close order is recorded by index */
  int close_calls, free_calls;
  int owner_state_at_closed; /* state of the scope's task when ml_res_closed ran */
  uv_timer_t h; /* async close */
} fake;

enum { POOL = 64 };
static fake pool[POOL]; /* never freed by the type: double closes stay testable */
static int npool;
static int close_order[POOL], nclosed;
static int freed;

static void pool_reset(void)
{
  memset(pool, 0, sizeof pool);
  npool = nclosed = freed = 0;
}

static void fake_async_done(uv_handle_t *h)
{
  fake *f = h->data;
  ml_scope *s = f->res.scope;
  f->owner_state_at_closed = s ? (int)s->owner->state : -1;
  ml_res_closed(&f->res);
}

static void fake_async_fire(uv_timer_t *h) { uv_close((uv_handle_t *)h, fake_async_done); }

static void fake_close(ml_res *r)
{
  fake *f = (fake *)r;
  f->close_calls++;
  if (nclosed < POOL) close_order[nclosed++] = f->index;
  if (!f->async) {
    ml_res_closed(r);
    return;
  }
  uv_timer_init(r->loop->uv, &f->h);
  f->h.data = f;
  uv_timer_start(&f->h, fake_async_fire, 1, 0);
}

static void fake_free(ml_res *r)
{
  ((fake *)r)->free_calls++;
  freed++;
}

static ml_res_type fake_type = {"fake", 0, fake_close, fake_free};

static fake *fake_new(int async)
{
  if (npool == POOL) abort();
  fake *f = &pool[npool];
  f->index = npool++;
  f->async = async;
  return f;
}

/* ---- globals for the task bodies --------------------------------------------- */

static int open_checks_bad; /* exit-stack / ledger checks made inside fake_open */

/* fake_open(async) -> index: opened on the current task's innermost scope */
static int l_fake_open(lua_State *L)
{
  ml_task *t = ml_task_current(L);
  if (!t) return luaL_error(L, "fake_open: not in a task");
  ml_loop *loop = t->loop;
  int64_t before = loop->ledger.resources, kind_before = loop->ledger.by_kind[fake_type.kind];
  fake *f = fake_new(lua_toboolean(L, 1));
  ml_res_open(loop, &f->res, &fake_type, t->cur, "test");
  /* pushed on the scope's exit stack, on top */
  if (t->cur->exits.prev != &f->res.exit.link) open_checks_bad++;
  if (f->res.scope != t->cur || f->res.state != ML_RES_OPEN) open_checks_bad++;
  if (loop->ledger.resources != before + 1) open_checks_bad++;
  if (loop->ledger.by_kind[fake_type.kind] != kind_before + 1) open_checks_bad++;
  lua_pushinteger(L, f->index);
  return 1;
}

static fake *arg_fake(lua_State *L)
{
  int i = (int)luaL_checkinteger(L, 1);
  luaL_argcheck(L, i >= 0 && i < npool, 1, "no such fake");
  return &pool[i];
}

/* fake_close(index) */
static int l_fake_close(lua_State *L)
{
  ml_res_close(&arg_fake(L)->res);
  return 0;
}

/* fake_state(index) -> 0 open, 1 closing, 2 closed */
static int l_fake_state(lua_State *L)
{
  lua_pushinteger(L, arg_fake(L)->res.state);
  return 1;
}

/* exits() -> number of entries on the current scope's exit stack */
static int l_exits(lua_State *L)
{
  ml_task *t = ml_task_current(L);
  int n = 0;
  for (ml_list *l = t->cur->exits.next; l != &t->cur->exits; l = l->next) n++;
  lua_pushinteger(L, n);
  return 1;
}

static void register_globals(lua_State *L)
{
  lua_register(L, "fake_open", l_fake_open);
  lua_register(L, "fake_close", l_fake_close);
  lua_register(L, "fake_state", l_fake_state);
  lua_register(L, "exits", l_exits);
}

/* Spawn `code` as a root task and run the loop until it is done. */
static ml_task *run_task(lua_State *L, const char *code, int *ref)
{
  ml_task *t = mlt_spawn(L, code, 0, ref, "res");
  if (t) ml_loop_run(ml_loop_get(L), t);
  return t;
}

static void check_ledger_zero(ml_loop *loop)
{
  CHECK_EQ(loop->ledger.tasks, 0);
  CHECK_EQ(loop->ledger.scopes, 0);
  CHECK_EQ(loop->ledger.resources, 0);
  CHECK_EQ(loop->ledger.by_kind[fake_type.kind], 0);
  CHECK_EQ(loop->heap_len, 0);
}

/* ---- tests --------------------------------------------------------------------- */

static void test_register(void)
{
  TEST_BEGIN("type registration");
  int kind = fake_type.kind;
  ml_res_type_register(&fake_type); /* again: same kind */
  CHECK_EQ(fake_type.kind, kind);
  CHECK_STR(ml_res_kind_name(kind), "fake");
  CHECK_STR(ml_res_kind_name(-1), "?");
  CHECK_STR(ml_res_kind_name(ML_RES_KINDS_MAX), "?");
  CHECK(ml_res_kind_count() >= 2); /* the timer type and ours */
}

/* Unwinding closes in reverse order of opening, each exactly once. */
static void test_exit_stack_order(lua_State *L, ml_loop *loop)
{
  TEST_BEGIN("exit stack LIFO");
  pool_reset();
  open_checks_bad = 0;
  int ref;
  ml_task *t = run_task(L,
                        "fake_open(false); fake_open(false); fake_open(false)\n"
                        "assert(exits() == 3)",
                        &ref);
  CHECK(t != NULL);
  if (!t) return;
  CHECK_EQ(t->state, ML_TASK_DONE);
  CHECK_EQ(t->status, ML_STATUS_OK);
  CHECK_EQ(open_checks_bad, 0);
  CHECK_EQ(nclosed, 3);
  CHECK_EQ(close_order[0], 2);
  CHECK_EQ(close_order[1], 1);
  CHECK_EQ(close_order[2], 0);
  for (int i = 0; i < 3; i++) {
    CHECK_EQ(pool[i].close_calls, 1);
    CHECK_EQ(pool[i].free_calls, 1);
    CHECK_EQ(pool[i].res.state, ML_RES_CLOSED);
    CHECK(pool[i].res.scope == NULL);
  }
  check_ledger_zero(loop);
  mlt_unref(L, &ref);
}

/* Explicit close: off the exit stack at once; a second close is a no-op, and
 * so is the scope's unwind for it. */
static void test_close_idempotent_sync(lua_State *L, ml_loop *loop)
{
  TEST_BEGIN("sync close is idempotent");
  pool_reset();
  int ref;
  ml_task *t = run_task(L,
                        "local a = fake_open(false); local b = fake_open(false)\n"
                        "fake_close(a); assert(fake_state(a) == 2); assert(exits() == 1)\n"
                        "fake_close(a); fake_close(b); fake_close(b); assert(exits() == 0)",
                        &ref);
  CHECK(t != NULL);
  if (!t) return;
  CHECK_EQ(t->status, ML_STATUS_OK);
  CHECK_EQ(pool[0].close_calls, 1);
  CHECK_EQ(pool[1].close_calls, 1);
  CHECK_EQ(pool[0].free_calls, 1);
  CHECK_EQ(pool[1].free_calls, 1);
  CHECK_EQ(nclosed, 2);
  check_ledger_zero(loop);
  mlt_unref(L, &ref);
}

/* Asynchronous close: CLOSING until the type calls ml_res_closed; closes in
 * between are no-ops; the scope's exit waits for it before the task ends. */
static void test_close_async(lua_State *L, ml_loop *loop)
{
  TEST_BEGIN("async close");
  pool_reset();
  int ref;
  ml_task *t = run_task(L,
                        "local a = fake_open(true)\n"
                        "fake_close(a); assert(fake_state(a) == 1); assert(exits() == 0)\n"
                        "fake_close(a)\n"
                        "fake_open(true)", /* left for the unwind */
                        &ref);
  CHECK(t != NULL);
  if (!t) return;
  CHECK_EQ(t->state, ML_TASK_DONE);
  CHECK_EQ(t->status, ML_STATUS_OK);
  for (int i = 0; i < 2; i++) {
    CHECK_EQ(pool[i].close_calls, 1);
    CHECK_EQ(pool[i].free_calls, 1);
    CHECK_EQ(pool[i].res.state, ML_RES_CLOSED);
    /* the task was parked in its scope exit, waiting for the close */
    CHECK_EQ(pool[i].owner_state_at_closed, ML_TASK_WAITING);
  }
  check_ledger_zero(loop);
  CHECK_EQ(ml_loop_handles(loop), 0);
  mlt_unref(L, &ref);
}

/* A body error still unwinds everything (sync and async), LIFO. */
static void test_unwind_on_error(lua_State *L, ml_loop *loop)
{
  TEST_BEGIN("unwind on error");
  pool_reset();
  int ref;
  ml_task *t = run_task(L,
                        "fake_open(false); fake_open(true); fake_open(false)\n"
                        "task.scope(function() fake_open(true); fake_open(false) end)\n"
                        "error('boom')",
                        &ref);
  CHECK(t != NULL);
  if (!t) return;
  char buf[256];
  CHECK_EQ(t->status, ML_STATUS_ERROR);
  CHECK(strstr(mlt_result_string(L, t, buf, sizeof buf), "boom") != NULL);
  CHECK_EQ(nclosed, 5);
  /* the inner scope closed its two when it ended, then the body's three */
  static const int expected[] = {4, 3, 2, 1, 0};
  for (int i = 0; i < 5 && i < nclosed; i++) CHECK_EQ(close_order[i], expected[i]);
  CHECK_EQ(freed, 5);
  check_ledger_zero(loop);
  mlt_unref(L, &ref);
}

/* ml_res_closed clears the Lua handle's pointer, now or when the async close
 * finishes; a resource without a scope works too. Pure C, no task. */
static ml_res *async_box;

static void test_box_cleared(ml_loop *loop)
{
  TEST_BEGIN("box cleared by ml_res_closed");
  pool_reset();
  fake *f = fake_new(0);
  ml_res *box = NULL;
  ml_res_open(loop, &f->res, &fake_type, NULL, "c");
  CHECK(!ml_list_linked(&f->res.exit.link));
  CHECK_EQ(loop->ledger.resources, 1);
  CHECK_EQ(loop->ledger.by_kind[fake_type.kind], 1);
  box = &f->res;
  f->res.box = &box;
  ml_res_close(&f->res);
  CHECK(box == NULL);
  CHECK(f->res.box == NULL);
  ml_res_close(&f->res);
  CHECK_EQ(f->close_calls, 1);
  CHECK_EQ(loop->ledger.resources, 0);

  fake *g = fake_new(1);
  ml_res_open(loop, &g->res, &fake_type, NULL, "c");
  async_box = &g->res;
  g->res.box = &async_box;
  ml_res_close(&g->res);
  CHECK(async_box == &g->res); /* still closing */
  CHECK_EQ(g->res.state, ML_RES_CLOSING);
  CHECK_EQ(loop->ledger.resources, 1);
  for (int i = 0; i < 100 && g->res.state != ML_RES_CLOSED; i++) uv_run(loop->uv, UV_RUN_ONCE);
  CHECK_EQ(g->res.state, ML_RES_CLOSED);
  CHECK(async_box == NULL);
  CHECK_EQ(g->close_calls, 1);
  CHECK_EQ(g->free_calls, 1);
  CHECK_EQ(g->owner_state_at_closed, -1);
  CHECK_EQ(loop->ledger.resources, 0);
  CHECK_EQ(loop->ledger.by_kind[fake_type.kind], 0);
}

/* The C backstop: a task abandoned while waiting has its resources closed by
 * C, in reverse order; an async close still in flight completes after its
 * scope is gone. */
static void test_abandon_closes(lua_State *L, ml_loop *loop)
{
  TEST_BEGIN("abandon closes resources");
  pool_reset();
  int ref;
  ml_task *t = mlt_spawn(L,
                         "fake_open(false); fake_open(true)\n"
                         "task.defer(function() error('never runs') end)\n"
                         "fake_open(false)\n"
                         "local ch = task.channel(); ch:recv()",
                         0, &ref, "abandoned");
  CHECK(t != NULL);
  if (!t) return;
  mlt_run_ready(L);
  CHECK_EQ(t->state, ML_TASK_WAITING);
  CHECK_EQ(loop->ledger.resources, 3);
  int64_t abandoned = loop->ledger.abandoned;
  ml_task_abandon(t, "test");
  CHECK_EQ(t->state, ML_TASK_DONE);
  CHECK_EQ(t->status, ML_STATUS_ERROR);
  CHECK(t->abandoned);
  CHECK_EQ(loop->ledger.abandoned, abandoned + 1);
  CHECK_EQ(nclosed, 3);
  if (nclosed == 3) {
    CHECK_EQ(close_order[0], 2);
    CHECK_EQ(close_order[1], 1);
    CHECK_EQ(close_order[2], 0);
  }
  CHECK_EQ(pool[1].res.state, ML_RES_CLOSING); /* async: still in flight */
  CHECK(pool[1].res.scope == NULL);
  CHECK_EQ(loop->ledger.scopes, 0);
  ml_task_abandon(t, "again"); /* no-op */
  CHECK_EQ(loop->ledger.abandoned, abandoned + 1);
  ml_loop_run(loop, NULL);
  CHECK_EQ(pool[1].res.state, ML_RES_CLOSED);
  CHECK_EQ(pool[1].owner_state_at_closed, -1);
  CHECK_EQ(freed, 3);
  check_ledger_zero(loop);
  mlt_unref(L, &ref);
}

/* The timer resource of the bindings, through its Lua handle: an explicit
 * close twice, a scope unwind after an explicit close, and a handle dropped
 * while open (closed by __gc, counted as a leak, closed once). */
static void test_timer_handles(lua_State *L, ml_loop *loop)
{
  TEST_BEGIN("timer resource handles");
  int ref;
  int64_t leaks = loop->ledger.leaks;
  ml_task *t = run_task(L,
                        "local a = task.timer(10); a:close(); a:close()\n"
                        "assert(tostring(a):find('closed'))\n"
                        "assert(select(2, a:wait()) == 'closed')\n"
                        "do local b = task.timer(10) end\n"
                        "collectgarbage(); collectgarbage()\n"
                        "assert(task.ledger().resources == 0)\n"
                        "local c = task.timer(0.001); assert(c:wait() == 1)\n"
                        "kept = task.timer(10)", /* closed by the unwind */
                        &ref);
  CHECK(t != NULL);
  if (!t) return;
  char buf[512];
  CHECK_EQ(t->status, ML_STATUS_OK);
  if (t->status != ML_STATUS_OK) fprintf(stderr, "  error: %s\n", mlt_result_string(L, t, buf, sizeof buf));
  CHECK_EQ(loop->ledger.leaks, leaks + 1);
  check_ledger_zero(loop);
  /* the global handle outlives its resource and reads as closed */
  CHECK_EQ(mlt_dostring(L, "assert(select(2, kept:close()) == nil); "
                           "assert(tostring(kept):find('closed')); kept = nil"),
           0);
  mlt_unref(L, &ref);
}

/* The ledger's handle count: libuv handles that are not the core's own
 * (here a luv timer a script made), back to 0 once it is closed. */
static void test_handle_count(lua_State *L, ml_loop *loop)
{
  TEST_BEGIN("ledger handle count");
  CHECK_EQ(ml_loop_handles(loop), 0);
  CHECK_EQ(mlt_dostring(L, "local uv = require 'luv'; h = uv.new_timer()"), 0);
  CHECK_EQ(ml_loop_handles(loop), 1);
  CHECK_EQ(mlt_dostring(L, "h:close(); h = nil"), 0);
  CHECK_EQ(ml_loop_handles(loop), 0); /* closing handles no longer count */
  ml_loop_run(loop, NULL);
  CHECK_EQ(ml_loop_handles(loop), 0);
  CHECK(!uv_loop_alive(loop->uv));
}

int main(void)
{
  lua_State *L = mlt_state_new(NULL);
  REQUIRE(L != NULL);
  ml_loop *loop = ml_loop_get(L);
  REQUIRE(loop != NULL);
  ml_res_type_register(&fake_type);
  register_globals(L);

  test_register();
  test_exit_stack_order(L, loop);
  test_close_idempotent_sync(L, loop);
  test_close_async(L, loop);
  test_unwind_on_error(L, loop);
  test_box_cleared(loop);
  test_abandon_closes(L, loop);
  test_timer_handles(L, loop);
  test_handle_count(L, loop);

  lua_close(L);
  return ML_TEST_DONE("test_resource");
}
