/* Tasks (engine/runtime/task.c, scope.c, loop.c) driven from C: ready-queue
 * order, cancellation, the cleanup-deadline backstop, deadlock detection and
 * many spawn/cancel cycles. Bodies are Lua snippets run through the real
 * trampoline (moonline.task); checks read C state (task state and status,
 * ledger, timer heap). Here luv is bound to a libuv loop the test owns, as in
 * the `moonline` executable. */
#include <stdlib.h>
#include <string.h>

#include "ml_test.h"
#include "ml_test_lua.h"

#define SEC 1000000000ull

static void check_ledger_zero(ml_loop *loop)
{
  CHECK_EQ(loop->ledger.tasks, 0);
  CHECK_EQ(loop->ledger.scopes, 0);
  CHECK_EQ(loop->ledger.resources, 0);
  CHECK_EQ(loop->heap_len, 0);
  CHECK(ml_list_empty(&loop->ready));
  CHECK(loop->current == NULL);
  CHECK_EQ(ml_loop_handles(loop), 0);
}

static void print_result(lua_State *L, ml_task *t)
{
  char buf[1024];
  fprintf(stderr, "  task %s ended: %s\n", t->name, mlt_result_string(L, t, buf, sizeof buf));
}

/* (a) FIFO: 100 root tasks run in spawn order; tasks that yield go to the
 * back of the queue (round robin). */
static void test_fifo(lua_State *L, ml_loop *loop)
{
  TEST_BEGIN("FIFO ready order");
  CHECK_EQ(mlt_dostring(L, "order = {}"), 0);
  enum { N = 100 };
  int refs[N];
  ml_task *ts[N];
  for (int i = 0; i < N; i++) {
    lua_pushinteger(L, i + 1);
    ts[i] = mlt_spawn(L, "order[#order + 1] = ...", 1, &refs[i], "fifo");
    CHECK_EQ(ts[i]->state, ML_TASK_READY);
  }
  CHECK_EQ(loop->ledger.tasks, N);
  CHECK_EQ(ml_loop_run(loop, NULL), 0);
  CHECK_EQ(mlt_dostring(L, "assert(#order == 100, #order)\n"
                           "for i = 1, 100 do assert(order[i] == i, i) end"),
           0);
  for (int i = 0; i < N; i++) {
    CHECK_EQ(ts[i]->state, ML_TASK_DONE);
    CHECK_EQ(ts[i]->status, ML_STATUS_OK);
    mlt_unref(L, &refs[i]);
  }

  /* round robin: three tasks, each appending twice around a task.yield() */
  CHECK_EQ(mlt_dostring(L, "order = {}"), 0);
  for (int i = 0; i < 3; i++) {
    lua_pushinteger(L, i + 1);
    ts[i] = mlt_spawn(L,
                      "local i = ...\n"
                      "order[#order + 1] = i; task.yield(); order[#order + 1] = i + 10",
                      1, &refs[i], "rr");
  }
  CHECK_EQ(ml_loop_run(loop, NULL), 0);
  CHECK_EQ(mlt_dostring(L, "assert(table.concat(order, ',') == '1,2,3,11,12,13', table.concat(order, ','))"),
           0);
  for (int i = 0; i < 3; i++) {
    CHECK_EQ(ts[i]->status, ML_STATUS_OK);
    mlt_unref(L, &refs[i]);
  }
  check_ledger_zero(loop);
}

/* (b) a task sleeping 1000 s on the virtual clock, cancelled from C (outside
 * any task, like a signal handler): it ends cancelled at once, its timer gone,
 * and virtual time never jumps to the sleep's deadline. */
static void test_cancel_sleeping(lua_State *L, ml_loop *loop)
{
  TEST_BEGIN("cancel a sleeping task");
  uint64_t t0 = ml_clock_now(loop);
  int ref;
  ml_task *t = mlt_spawn(L,
                         "reached = false\n"
                         "task.sleep(1000)\n"
                         "reached = true",
                         0, &ref, "sleeper");
  mlt_run_ready(L);
  CHECK_EQ(t->state, ML_TASK_WAITING);
  CHECK_STR(t->op.what, "sleep");
  CHECK(ml_timer_armed(&t->sleep_timer));
  CHECK_EQ(loop->heap_len, 1);
  ml_task_cancel(t, "test cancel");
  CHECK_EQ(t->state, ML_TASK_READY); /* interrupted: posted with the cancellation */
  CHECK(!ml_timer_armed(&t->sleep_timer));
  CHECK_EQ(ml_loop_run(loop, t), 0);
  CHECK_EQ(t->state, ML_TASK_DONE);
  CHECK_EQ(t->status, ML_STATUS_CANCELLED);
  char buf[256];
  CHECK_STR(mlt_result_string(L, t, buf, sizeof buf), "cancelled: test cancel");
  CHECK_EQ(ml_clock_now(loop), t0); /* no auto-jump was needed */
  CHECK_EQ(loop->ledger.tasks, 0);
  CHECK_EQ(loop->heap_len, 0); /* sleep timer and cleanup deadline both gone */
  CHECK_EQ(mlt_dostring(L, "assert(reached == false)"), 0);
  ml_task_cancel(t, "again"); /* a done task: no-op */
  CHECK_EQ(t->status, ML_STATUS_CANCELLED);
  check_ledger_zero(loop);
  mlt_unref(L, &ref);

  /* cancelled before it ever ran: the body never starts */
  t = mlt_spawn(L, "reached = true", 0, &ref, "early");
  ml_task_cancel(t, "early");
  CHECK_EQ(ml_loop_run(loop, t), 0);
  CHECK_EQ(t->status, ML_STATUS_CANCELLED);
  CHECK_EQ(mlt_dostring(L, "assert(reached == false)"), 0);
  check_ledger_zero(loop);
  mlt_unref(L, &ref);
}

/* (c) the backstop: a defer that sleeps forever during the unwind of a
 * cancelled task. With the virtual clock the loop jumps to the cleanup
 * deadline, abandons the task and closes its timer resource in C. */
static void test_cleanup_deadline_backstop(lua_State *L, ml_loop *loop)
{
  TEST_BEGIN("cleanup deadline backstop");
  uint64_t saved = loop->cleanup_default_ns;
  loop->cleanup_default_ns = 2 * SEC;
  int64_t abandoned = loop->ledger.abandoned;
  CHECK_EQ(mlt_dostring(L, "defer_started = false"), 0);
  int ref;
  ml_task *t = mlt_spawn(L,
                         "local tm = task.timer(100)\n"
                         "task.defer(function() defer_started = true; task.sleep(1e9) end)\n"
                         "task.sleep(1000)",
                         0, &ref, "stuck");
  mlt_run_ready(L);
  CHECK_EQ(t->state, ML_TASK_WAITING);
  CHECK_EQ(loop->ledger.resources, 1);
  uint64_t t0 = ml_clock_now(loop);
  ml_task_cancel(t, "test");
  CHECK_EQ(ml_loop_run(loop, t), 0);
  CHECK_EQ(t->state, ML_TASK_DONE);
  CHECK_EQ(t->status, ML_STATUS_ERROR);
  CHECK(t->abandoned);
  char buf[256];
  CHECK(strstr(mlt_result_string(L, t, buf, sizeof buf), "abandoned") != NULL);
  CHECK_EQ(mlt_dostring(L, "assert(defer_started == true)"), 0);
  CHECK_EQ(loop->ledger.abandoned, abandoned + 1);
  CHECK_EQ(loop->ledger.resources, 0);
  CHECK_EQ(ml_clock_now(loop) - t0, 2 * SEC); /* exactly the deadline, not 100 s */
  check_ledger_zero(loop);
  loop->cleanup_default_ns = saved;
  mlt_unref(L, &ref);
}

/* (d) deadlock: a task waiting on a channel nobody sends on. ml_loop_run
 * cancels it and returns -1 instead of hanging. */
static void test_deadlock(lua_State *L, ml_loop *loop)
{
  TEST_BEGIN("deadlock detection");
  int ref;
  ml_task *t = mlt_spawn(L, "local ch = task.channel(); return ch:recv()", 0, &ref, "deadlocked");
  CHECK_EQ(ml_loop_run(loop, t), -1);
  CHECK_EQ(t->state, ML_TASK_DONE);
  CHECK_EQ(t->status, ML_STATUS_CANCELLED);
  char buf[256];
  CHECK_STR(mlt_result_string(L, t, buf, sizeof buf), "cancelled: deadlock");
  check_ledger_zero(loop);
  mlt_unref(L, &ref);

  /* a child deadlocked under its parent: cancelling the root reaches it */
  t = mlt_spawn(L,
                "local ch = task.channel()\n"
                "task.spawn(function() ch:recv() end)\n"
                "task.spawn(function() ch:recv() end)",
                0, &ref, "parent");
  CHECK_EQ(ml_loop_run(loop, t), -1);
  CHECK_EQ(t->status, ML_STATUS_CANCELLED);
  check_ledger_zero(loop);
  mlt_unref(L, &ref);

  /* cancellation does not unblock it (its defer waits forever too): the
   * cleanup deadline (virtual: reached at once) abandons it; no hang */
  int64_t abandoned = loop->ledger.abandoned;
  t = mlt_spawn(L,
                "local ch = task.channel()\n"
                "task.defer(function() ch:recv() end)\n"
                "ch:recv()",
                0, &ref, "stubborn");
  CHECK_EQ(ml_loop_run(loop, t), -1);
  CHECK_EQ(t->state, ML_TASK_DONE);
  CHECK_EQ(t->status, ML_STATUS_ERROR);
  CHECK_EQ(loop->ledger.abandoned, abandoned + 1);
  check_ledger_zero(loop);
  mlt_unref(L, &ref);
}

/* (e) 100,000 spawn + cancel cycles in batches of 1000: half of the batches
 * are cancelled while sleeping, half before they ever ran. */
static void test_spawn_cancel_cycles(lua_State *L, ml_loop *loop)
{
  TEST_BEGIN("100000 spawn/cancel cycles");
  enum { BATCH = 1000, BATCHES = 100 };
  int *refs = malloc(BATCH * sizeof *refs);
  ml_task **ts = malloc(BATCH * sizeof *ts);
  uint64_t spawned0 = loop->ledger.tasks_spawned;
  int not_cancelled = 0, not_done = 0, ledger_bad = 0;
  for (int b = 0; b < BATCHES; b++) {
    for (int i = 0; i < BATCH; i++) ts[i] = mlt_spawn(L, "task.sleep(1000)", 0, &refs[i], "cycle");
    if (b % 2 == 0) mlt_run_ready(L); /* park them in their sleep */
    for (int i = 0; i < BATCH; i++) ml_task_cancel(ts[i], "cycle");
    ml_loop_run(loop, NULL);
    for (int i = 0; i < BATCH; i++) {
      if (ts[i]->state != ML_TASK_DONE) not_done++;
      if (ts[i]->status != ML_STATUS_CANCELLED) not_cancelled++;
      mlt_unref(L, &refs[i]);
    }
    if (loop->ledger.tasks || loop->ledger.scopes || loop->heap_len) ledger_bad++;
    if (b % 10 == 9) lua_gc(L, LUA_GCCOLLECT, 0);
  }
  CHECK_EQ(not_done, 0);
  CHECK_EQ(not_cancelled, 0);
  CHECK_EQ(ledger_bad, 0);
  CHECK_EQ(loop->ledger.tasks_spawned - spawned0, (uint64_t)BATCH * BATCHES + BATCHES / 2);
  CHECK_EQ(ml_clock_now(loop) < 1000 * SEC, 1); /* no sleep ever completed */
  check_ledger_zero(loop);
  free(refs);
  free(ts);
}

/* The backstop reaches children: a parent whose cleanup deadline passes is
 * abandoned, and so is its child stuck in its own cleanup; every resource of
 * both is closed by C. */
static void test_backstop_children(lua_State *L, ml_loop *loop)
{
  TEST_BEGIN("backstop abandons children");
  uint64_t saved = loop->cleanup_default_ns;
  loop->cleanup_default_ns = 3 * SEC;
  int64_t abandoned = loop->ledger.abandoned;
  int ref;
  ml_task *t = mlt_spawn(L,
                         "local a = task.timer(100)\n"
                         "task.spawn(function()\n"
                         "  local b = task.timer(100)\n"
                         "  task.defer(function() task.sleep(1e9) end)\n"
                         "  task.sleep(1e9)\n"
                         "end)\n"
                         "task.defer(function() task.sleep(1e9) end)\n"
                         "task.sleep(1e9)",
                         0, &ref, "parent");
  mlt_run_ready(L);
  CHECK_EQ(loop->ledger.tasks, 2);
  CHECK_EQ(loop->ledger.resources, 2);
  uint64_t t0 = ml_clock_now(loop);
  ml_task_cancel(t, "test");
  CHECK_EQ(ml_loop_run(loop, t), 0);
  CHECK_EQ(t->status, ML_STATUS_ERROR);
  CHECK_EQ(loop->ledger.abandoned, abandoned + 2);
  CHECK_EQ(ml_clock_now(loop) - t0, 3 * SEC);
  check_ledger_zero(loop);
  loop->cleanup_default_ns = saved;
  mlt_unref(L, &ref);
}

/* Abandoning a task that is READY takes it off the ready queue: it never
 * runs again, and the tasks queued around it still run in order. */
static void test_abandon_ready(lua_State *L, ml_loop *loop)
{
  TEST_BEGIN("abandon a ready task");
  CHECK_EQ(mlt_dostring(L, "order = {}"), 0);
  int refs[3];
  ml_task *ts[3];
  for (int i = 0; i < 3; i++) {
    lua_pushinteger(L, i + 1);
    ts[i] = mlt_spawn(L, "order[#order + 1] = ...", 1, &refs[i], "q");
  }
  ml_task_abandon(ts[1], "test");
  CHECK_EQ(ts[1]->state, ML_TASK_DONE);
  CHECK_EQ(ts[1]->status, ML_STATUS_ERROR);
  CHECK_EQ(ml_loop_run(loop, NULL), 0);
  CHECK_EQ(mlt_dostring(L, "assert(table.concat(order, ',') == '1,3', table.concat(order, ','))"), 0);
  CHECK_EQ(ts[0]->status, ML_STATUS_OK);
  CHECK_EQ(ts[2]->status, ML_STATUS_OK);
  for (int i = 0; i < 3; i++) mlt_unref(L, &refs[i]);
  check_ledger_zero(loop);
}

/* with_timeout on the virtual clock: the deadline cancels the scope at
 * exactly its time; the outer task goes on; nothing stays armed. */
static void test_timeout_scope(lua_State *L, ml_loop *loop)
{
  TEST_BEGIN("with_timeout");
  uint64_t t0 = ml_clock_now(loop);
  int ref;
  ml_task *t = mlt_spawn(L,
                         "local ok, err = task.with_timeout(1.5, function()\n"
                         "  local tm = task.timer(100)\n"
                         "  task.spawn(function() task.sleep(100) end)\n"
                         "  task.sleep(100)\n"
                         "end)\n"
                         "assert(ok == nil and err == 'timeout', tostring(err))\n"
                         "assert(task.ledger().resources == 0)\n"
                         "local ok2, v = task.with_timeout(5, function() task.sleep(1); return 42 end)\n"
                         "assert(ok2 == true and v == 42)\n"
                         "return task.now()",
                         0, &ref, "timeouts");
  CHECK_EQ(ml_loop_run(loop, t), 0);
  CHECK_EQ(t->status, ML_STATUS_OK);
  if (t->status != ML_STATUS_OK) print_result(L, t);
  CHECK_EQ(ml_clock_now(loop) - t0, 2500000000ull);
  check_ledger_zero(loop);
  mlt_unref(L, &ref);
}

/* The same task machinery on the real clock: sleeps wait for libuv. */
static void test_real_clock_tasks(lua_State *L, ml_loop *loop)
{
  TEST_BEGIN("tasks on the real clock");
  CHECK_EQ(ml_clock_set_virtual(loop, 0), 0);
  CHECK_EQ(mlt_dostring(L, "order = {}"), 0);
  int refs[3];
  ml_task *ts[3];
  static const char *const delays[] = {"0.006", "0.002", "0.004"};
  for (int i = 0; i < 3; i++) {
    lua_pushinteger(L, i + 1);
    lua_pushstring(L, delays[i]);
    ts[i] = mlt_spawn(L,
                      "local i, d = ...\n"
                      "local due = task.now() + tonumber(d)\n"
                      "task.sleep(tonumber(d))\n"
                      "order[#order + 1] = { i = i, due = due, woke = task.now() }",
                      2, &refs[i], "real");
  }
  uint64_t wall0 = uv_hrtime();
  CHECK_EQ(ml_loop_run(loop, NULL), 0);
  CHECK(uv_hrtime() - wall0 >= 6000000ull);
  /* each woke no earlier than its due time, and they woke in due order (the
   * exact order of i depends on how fast the tasks got to start, e.g. under
   * valgrind) */
  CHECK_EQ(mlt_dostring(L, "assert(#order == 3)\n"
                           "for k, o in ipairs(order) do\n"
                           "  assert(o.woke >= o.due, k)\n"
                           "  if k > 1 then assert(order[k - 1].due <= o.due + 1e-4, k) end\n"
                           "end"),
           0);
  for (int i = 0; i < 3; i++) {
    CHECK_EQ(ts[i]->status, ML_STATUS_OK);
    mlt_unref(L, &refs[i]);
  }
  check_ledger_zero(loop);
  CHECK(!loop->uv_timer_armed);
  CHECK_EQ(ml_clock_set_virtual(loop, 1), 0);
}

int main(void)
{
  uv_loop_t uv;
  REQUIRE(uv_loop_init(&uv) == 0);
  lua_State *L = mlt_state_new(&uv);
  REQUIRE(L != NULL);
  ml_loop *loop = ml_loop_get(L);
  REQUIRE(loop != NULL);
  REQUIRE(loop->uv == &uv);
  REQUIRE(ml_clock_set_virtual(loop, 1) == 0);

  test_fifo(L, loop);
  test_cancel_sleeping(L, loop);
  test_cleanup_deadline_backstop(L, loop);
  test_deadlock(L, loop);
  test_spawn_cancel_cycles(L, loop);
  test_backstop_children(L, loop);
  test_abandon_ready(L, loop);
  test_timeout_scope(L, loop);
  test_real_clock_tasks(L, loop);

  lua_close(L);
  /* the engine's own uv_timer was closed by the module's __gc */
  uv_run(&uv, UV_RUN_NOWAIT);
  CHECK_EQ(uv_loop_close(&uv), 0);
  return ML_TEST_DONE("test_task");
}
