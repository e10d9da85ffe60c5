/* VM teardown (DESIGN.md §2: "every path — explicit close, scope unwind, __gc
 * of a leaked handle, VM teardown, process drain — goes through close_once"):
 * lua_close on a state whose tasks are still live must close their C
 * resources exactly once and free what the runtime allocated for them
 * (scopes, defers, resource structs), so LeakSanitizer stays quiet. Each case
 * uses a fresh Lua state on a libuv loop the test owns. */
#include <stdlib.h>
#include <string.h>

#include "ml_test.h"
#include "ml_test_lua.h"

typedef struct fake {
  ml_res res; /* first */
  int close_calls;
} fake;

static int fake_closes, fake_frees;

static void fake_close(ml_res *r)
{
  ((fake *)r)->close_calls++;
  fake_closes++;
  ml_res_closed(r);
}

static void fake_free(ml_res *r)
{
  fake_frees++;
  free(r);
}

static ml_res_type fake_type = {"fake", 0, fake_close, fake_free};

/* fake_open(): a heap-allocated fake on the current scope */
static int l_fake_open(lua_State *L)
{
  ml_task *t = ml_task_current(L);
  if (!t) return luaL_error(L, "fake_open: not in a task");
  fake *f = calloc(1, sizeof *f);
  ml_res_open(t->loop, &f->res, &fake_type, t->cur, "teardown");
  return 0;
}

static lua_State *state_new(uv_loop_t *uv)
{
  if (uv_loop_init(uv) != 0) return NULL;
  lua_State *L = mlt_state_new(uv);
  if (!L) return NULL;
  ml_res_type_register(&fake_type);
  lua_register(L, "fake_open", l_fake_open);
  ml_clock_set_virtual(ml_loop_get(L), 1);
  return L;
}

static void state_close(lua_State *L, uv_loop_t *uv)
{
  lua_close(L);
  for (int i = 0; i < 8 && uv_run(uv, UV_RUN_NOWAIT); i++) {
  }
  CHECK_EQ(uv_loop_close(uv), 0);
}

/* A task parked in a wait when the VM goes away: its fake resource, its timer
 * resource, its defer and its scopes must not outlive lua_close. */
static void test_teardown_waiting_task(void)
{
  TEST_BEGIN("teardown with a waiting task");
  uv_loop_t uv;
  lua_State *L = state_new(&uv);
  CHECK(L != NULL);
  if (!L) return;
  fake_closes = fake_frees = 0;
  int ref;
  ml_task *t = mlt_spawn(L,
                         "fake_open()\n"
                         "local tm = task.timer(100)\n"
                         "task.defer(function() end)\n"
                         "task.scope(function()\n"
                         "  fake_open()\n"
                         "  task.channel():recv()\n"
                         "end)",
                         0, &ref, "live");
  mlt_run_ready(L);
  CHECK_EQ(t->state, ML_TASK_WAITING);
  ml_loop *loop = ml_loop_get(L);
  CHECK_EQ(loop->ledger.resources, 3);
  CHECK_EQ(loop->ledger.scopes, 2);
  state_close(L, &uv);
  CHECK_EQ(fake_closes, 2); /* each fake closed once by the teardown */
  CHECK_EQ(fake_frees, 2);
}

/* The same for a task that is ready (posted, not yet resumed) and one that
 * is a child of a waiting parent. */
static void test_teardown_ready_and_children(void)
{
  TEST_BEGIN("teardown with ready tasks and children");
  uv_loop_t uv;
  lua_State *L = state_new(&uv);
  CHECK(L != NULL);
  if (!L) return;
  fake_closes = fake_frees = 0;
  int ref1, ref2;
  mlt_spawn(L,
            "fake_open()\n"
            "task.spawn(function() fake_open(); task.sleep(1000) end)\n"
            "task.sleep(1000)",
            0, &ref1, "parent");
  mlt_run_ready(L);
  mlt_spawn(L, "fake_open()", 0, &ref2, "never-ran"); /* still READY */
  state_close(L, &uv);
  CHECK_EQ(fake_closes, 2); /* the never-run task opened nothing */
  CHECK_EQ(fake_frees, 2);
}

/* An asynchronous close still in flight when the VM goes away: lua_close
 * must let it finish (or detach it) before the loop is freed, otherwise the
 * type's completion, ml_res_closed, writes into a freed ml_loop (its ledger).
 * The fake here notices when its completion comes after lua_close and then
 * skips ml_res_closed, so this case fails cleanly instead of corrupting memory. */
typedef struct slow_fake {
  ml_res res; /* first */
  uv_timer_t h;
  int done;
} slow_fake;

static slow_fake slow; /* static: nothing to leak if the close never finishes */
static int lua_closed;

static void slow_done(uv_handle_t *h)
{
  (void)h;
  slow.done = 1;
  if (!lua_closed) ml_res_closed(&slow.res); /* after lua_close: the loop is gone */
}

static void slow_fire(uv_timer_t *h) { uv_close((uv_handle_t *)h, slow_done); }

static void slow_close(ml_res *r)
{
  uv_timer_init(r->loop->uv, &slow.h);
  uv_timer_start(&slow.h, slow_fire, 20, 0); /* e.g. a goodbye on the network */
}

static void slow_free(ml_res *r) { (void)r; }

static ml_res_type slow_type = {"slow", 0, slow_close, slow_free};

static int l_slow_open_close(lua_State *L)
{
  ml_task *t = ml_task_current(L);
  memset(&slow, 0, sizeof slow);
  ml_res_open(t->loop, &slow.res, &slow_type, t->cur, "teardown");
  ml_res_close(&slow.res);
  return 0;
}

static void test_teardown_close_in_flight(void)
{
  TEST_BEGIN("teardown with a close in flight");
  uv_loop_t uv;
  lua_State *L = state_new(&uv);
  CHECK(L != NULL);
  if (!L) return;
  ml_res_type_register(&slow_type);
  lua_register(L, "slow_open_close", l_slow_open_close);
  int ref;
  ml_task *t = mlt_spawn(L, "slow_open_close(); task.channel():recv()", 0, &ref, "closing");
  mlt_run_ready(L);
  CHECK_EQ(t->state, ML_TASK_WAITING);
  CHECK_EQ(slow.res.state, ML_RES_CLOSING);
  lua_closed = 0;
  lua_close(L);
  lua_closed = 1;
  CHECK_EQ(slow.done, 1); /* lua_close returned only after the close finished */
  CHECK_EQ(slow.res.state, ML_RES_CLOSED);
  for (int i = 0; i < 1000 && uv_run(&uv, UV_RUN_ONCE); i++) {
  }
  CHECK_EQ(uv_loop_close(&uv), 0);
}

int main(void)
{
  test_teardown_waiting_task();
  test_teardown_ready_and_children();
  test_teardown_close_in_flight();
  return ML_TEST_DONE("test_teardown");
}
