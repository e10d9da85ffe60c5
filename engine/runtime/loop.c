/* The loop: one libuv loop per process and the ready queue of tasks. Tasks
 * are resumed only here, in FIFO order, at most `budget` of them between two
 * polls for I/O, so a burst of completions cannot starve the network. */
#include <stdlib.h>
#include <string.h>

#include "lauxlib.h"
#include "ml_internal.h"

static const char LOOP_KEY = 'L'; /* registry key: its address */

ml_loop *ml_loop_new(uv_loop_t *uv, lua_State *L)
{
  ml_loop *loop = calloc(1, sizeof *loop);
  if (!loop) return NULL;
  if (!uv) {
    uv = malloc(sizeof *uv);
    if (!uv || uv_loop_init(uv) != 0) {
      free(uv);
      free(loop);
      return NULL;
    }
    loop->own_uv = 1;
  }
  loop->uv = uv;
  loop->L = L;
  loop->budget = 256;
  loop->autojump_ms = 1;
  loop->cleanup_default_ns = 5000000000ull;
  loop->trampoline_ref = LUA_NOREF;
  ml_list_init(&loop->ready);
  ml_list_init(&loop->live);
  ml_clock_init(loop);
  lua_pushlightuserdata(L, (void *)&LOOP_KEY);
  lua_pushlightuserdata(L, loop);
  lua_rawset(L, LUA_REGISTRYINDEX);
  return loop;
}

ml_loop *ml_loop_get(lua_State *L)
{
  lua_pushlightuserdata(L, (void *)&LOOP_KEY);
  lua_rawget(L, LUA_REGISTRYINDEX);
  ml_loop *loop = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return loop;
}

static int loop_uv_run(ml_loop *loop, uv_run_mode mode);

static void teardown_watchdog(uv_timer_t *h) { ((ml_loop *)h->data)->closing = 2; }

void ml_loop_shutdown(ml_loop *loop)
{
  while (!ml_list_empty(&loop->live))
    ml_task_abandon(ml_container_of(loop->live.next, ml_task, live_link), "VM teardown");
  if (loop->ledger.resources == 0) return;
  loop->closing = 1;
  uv_timer_stop(loop->uv_timer);
  uv_timer_start(loop->uv_timer, teardown_watchdog, 1000, 0);
  while (loop->ledger.resources > 0 && loop->closing == 1) loop_uv_run(loop, UV_RUN_ONCE);
  uv_timer_stop(loop->uv_timer);
  loop->closing = 0;
}

void ml_loop_free(ml_loop *loop)
{
  if (!loop) return;
  ml_loop_shutdown(loop);
  /* The close completes on a later loop turn, maybe in luv's finaliser after
   * this module is unloaded (plain luajit): so the callback is libc's free,
   * always mapped; it receives the handle pointer as its void * argument. */
  uv_close((uv_handle_t *)loop->uv_timer, (uv_close_cb)(void (*)(void))free);
  if (loop->ledger.resources > 0) {
    /* a close still in flight would write into the loop: keep it */
    ml_log(ML_LOG_ERROR,
           "VM teardown: %lld resource(s) still closing after 1s; leaving the runtime in memory",
           (long long)loop->ledger.resources);
    return;
  }
  if (loop->own_uv) {
    while (uv_run(loop->uv, UV_RUN_NOWAIT)) {
    }
    uv_loop_close(loop->uv);
    free(loop->uv);
  }
  free(loop->heap);
  free(loop);
}

void ml_loop_add_core_handle(ml_loop *loop, uv_handle_t *h)
{
  if (loop->ncore_handles < ML_CORE_HANDLES_MAX)
    loop->core_handles[loop->ncore_handles++] = h;
  else
    ml_log(ML_LOG_ERROR, "more than %d core handles: raise ML_CORE_HANDLES_MAX", ML_CORE_HANDLES_MAX);
}

int ml_loop_is_core_handle(const ml_loop *loop, const uv_handle_t *h)
{
  if (h == (const uv_handle_t *)loop->uv_timer) return 1;
  for (int i = 0; i < loop->ncore_handles; i++)
    if (loop->core_handles[i] == h) return 1;
  return 0;
}

struct handle_count {
  const ml_loop *loop;
  int n;
};

static void count_handle(uv_handle_t *h, void *arg)
{
  struct handle_count *c = arg;
  if (!ml_loop_is_core_handle(c->loop, h) && !uv_is_closing(h)) c->n++;
}

int ml_loop_handles(ml_loop *loop)
{
  struct handle_count c = {loop, 0};
  uv_walk(loop->uv, count_handle, &c);
  return c.n;
}

/* A completion inside uv_run (a timer callback, say) must not be followed by
 * a poll that blocks until some later event: stop that iteration short. */
void ml_loop_push_ready(ml_loop *loop, ml_task *t)
{
  ml_list_push(&loop->ready, &t->ready_link);
  if (loop->in_uv_run) uv_stop(loop->uv);
}

/* Every turn of the libuv loop goes through here (see ml_loop_push_ready). */
static int loop_uv_run(ml_loop *loop, uv_run_mode mode)
{
  loop->in_uv_run = 1;
  int r = uv_run(loop->uv, mode);
  loop->in_uv_run = 0;
  return r;
}

/* Resume up to `budget` ready tasks; returns how many ran. */
static int run_ready(ml_loop *loop)
{
  int n = 0;
  if (loop->advance_pending) {
    uint64_t ns = loop->advance_pending;
    loop->advance_pending = 0;
    ml_clock_advance(loop, ns);
  }
  while (n < loop->budget && !ml_list_empty(&loop->ready)) {
    ml_list *link = loop->ready.next;
    ml_list_remove(link);
    ml_task_resume(ml_container_of(link, ml_task, ready_link));
    n++;
  }
  return n;
}

static void quiet_timer_fired(uv_timer_t *h) { ((ml_loop *)h->data)->quiet = 1; }

/* Poll real I/O for up to the auto-jump threshold; 1 if nothing came in.
 * The timer repeats: if libuv's cached time makes it fire before the poll,
 * it is still armed, so the poll can never block without a timeout. */
static int virtual_quiet(ml_loop *loop)
{
  loop->quiet = 0;
  uv_update_time(loop->uv);
  uv_timer_start(loop->uv_timer, quiet_timer_fired, loop->autojump_ms, loop->autojump_ms);
  loop_uv_run(loop, UV_RUN_ONCE);
  uv_timer_stop(loop->uv_timer);
  return loop->quiet && ml_list_empty(&loop->ready);
}

static void report_deadlock(ml_loop *loop, ml_task *until)
{
  ml_log(ML_LOG_ERROR,
         "deadlock: %lld task(s) are waiting and nothing can wake them "
         "(no timers, no I/O); cancelling task %s",
         (long long)loop->ledger.tasks, until->name);
  ml_task_cancel(until, "deadlock");
}

int ml_loop_run(ml_loop *loop, ml_task *until)
{
  int deadlocked = 0;
  for (;;) {
    run_ready(loop);
    if (until && until->state == ML_TASK_DONE) {
      loop_uv_run(loop, UV_RUN_NOWAIT); /* close callbacks of handles closed at the end */
      return deadlocked ? -1 : 0;
    }
    if (!ml_list_empty(&loop->ready) || loop->advance_pending) {
      loop_uv_run(loop, UV_RUN_NOWAIT);
      continue;
    }
    uint64_t due;
    if (loop->virtual_clock && ml_clock_next(loop, &due)) {
      /* virtual time jumps to the next deadline once real I/O has been
       * quiet for the auto-jump threshold (Trio's autojump, DESIGN.md §2) */
      if (uv_loop_alive(loop->uv) && !virtual_quiet(loop)) continue;
      uint64_t now = ml_clock_now(loop);
      ml_clock_advance(loop, due > now ? due - now : 0);
      continue;
    }
    if (uv_loop_alive(loop->uv)) {
      loop_uv_run(loop, UV_RUN_ONCE);
      continue;
    }
    if (!until) return 0;
    if (deadlocked && until->state != ML_TASK_DONE) {
      /* cancellation did not unblock it and no deadline is pending: reap */
      ml_task_abandon(until, "deadlock persisted after cancellation");
      continue;
    }
    deadlocked = 1;
    report_deadlock(loop, until);
  }
}
