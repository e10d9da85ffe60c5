/* The engine clock (engine/runtime/clock.c): one timer heap behind a virtual
 * or a real (libuv) clock. Pure C: no task and no script, only a lua_State
 * because ml_loop_new records the loop in its registry. */
#include <stdint.h>
#include <stdlib.h>

#include "lauxlib.h"
#include "ml_internal.h"
#include "ml_test.h"

#define MS 1000000ull
#define SEC 1000000000ull

/* ---- helpers --------------------------------------------------------------- */

typedef struct probe {
  ml_timer timer;
  ml_loop *loop;
  int index;
  int armed_by_test; /* the test thinks it is armed */
  int fired; /* how many times it fired */
  uint64_t due, seq; /* as started, to check the firing order */
  uint64_t seen_now; /* ml_clock_now inside the callback */
} probe;

static int *fire_log;
static size_t fire_len, fire_cap;

static void log_fire(int index)
{
  if (fire_len == fire_cap) {
    fire_cap = fire_cap ? fire_cap * 2 : 256;
    fire_log = realloc(fire_log, fire_cap * sizeof *fire_log);
    if (!fire_log) abort();
  }
  fire_log[fire_len++] = index;
}

static void probe_fired(ml_timer *t)
{
  probe *p = ml_container_of(t, probe, timer);
  p->fired++;
  p->seen_now = ml_clock_now(p->loop);
  log_fire(p->index);
}

static void probe_start(probe *p, ml_loop *loop, uint64_t delay)
{
  ml_timer_start(loop, &p->timer, delay);
  p->armed_by_test = 1;
  p->due = p->timer.due_ns;
  p->seq = p->timer.seq;
}

static void probes_init(probe *ps, int n, ml_loop *loop, ml_timer_cb cb)
{
  for (int i = 0; i < n; i++) {
    memset(&ps[i], 0, sizeof ps[i]);
    ml_timer_init(&ps[i].timer, cb);
    ps[i].loop = loop;
    ps[i].index = i;
  }
}

static ml_loop *new_loop(lua_State *L, int virtual_clock)
{
  ml_loop *loop = ml_loop_new(NULL, L);
  if (!loop) return NULL;
  if (virtual_clock && ml_clock_set_virtual(loop, 1) != 0) {
    ml_loop_free(loop);
    return NULL;
  }
  return loop;
}

/* The heap's invariants: back-pointers and the (due, seq) min-heap order. */
static int heap_ok(ml_loop *loop)
{
  for (size_t i = 0; i < loop->heap_len; i++) {
    ml_timer *t = loop->heap[i];
    if (t->heap_index != i + 1) return 0;
    if (i > 0) {
      ml_timer *p = loop->heap[(i - 1) / 2];
      if (p->due_ns > t->due_ns || (p->due_ns == t->due_ns && p->seq > t->seq)) return 0;
    }
  }
  return 1;
}

static uint64_t rng_below(uint64_t n) { return rng() % n; }

/* ---- virtual clock ------------------------------------------------------------ */

static void test_deadline_order(lua_State *L)
{
  TEST_BEGIN("deadline order");
  ml_loop *loop = new_loop(L, 1);
  CHECK(loop != NULL);
  if (!loop) return;
  static const uint64_t delays[] = {50, 10, 30, 10, 20, 10, 0};
  static const int expected[] = {6, 1, 3, 5, 4, 2, 0};
  enum { N = sizeof delays / sizeof delays[0] };
  probe ps[N];
  probes_init(ps, N, loop, probe_fired);
  fire_len = 0;
  for (int i = 0; i < N; i++) probe_start(&ps[i], loop, delays[i] * MS);
  CHECK_EQ(loop->heap_len, N);
  CHECK(heap_ok(loop));
  CHECK_EQ(ml_clock_now(loop), 0);
  ml_clock_advance(loop, 100 * MS);
  CHECK_EQ(fire_len, N);
  for (int i = 0; i < N && i < (int)fire_len; i++) CHECK_EQ(fire_log[i], expected[i]);
  for (int i = 0; i < N; i++) {
    CHECK_EQ(ps[i].fired, 1);
    CHECK_EQ(ps[i].seen_now, delays[i] * MS); /* each saw its own due time */
    CHECK(!ml_timer_armed(&ps[i].timer));
  }
  CHECK_EQ(ml_clock_now(loop), 100 * MS);
  CHECK_EQ(loop->heap_len, 0);
  ml_loop_free(loop);
}

static void test_fifo_equal_deadlines(lua_State *L)
{
  TEST_BEGIN("FIFO among equal deadlines");
  ml_loop *loop = new_loop(L, 1);
  CHECK(loop != NULL);
  if (!loop) return;
  enum { N = 1000 };
  probe *ps = calloc(N, sizeof *ps);
  probes_init(ps, N, loop, probe_fired);
  fire_len = 0;
  for (int i = 0; i < N; i++) probe_start(&ps[i], loop, 7 * MS);
  /* stopping some from the middle of the heap must not reorder the rest */
  for (int i = 3; i < N; i += 7) {
    ml_timer_stop(loop, &ps[i].timer);
    ps[i].armed_by_test = 0;
  }
  CHECK(heap_ok(loop));
  ml_clock_advance(loop, 7 * MS);
  int expected = 0, bad = 0;
  size_t k = 0;
  for (int i = 0; i < N; i++) {
    if (!ps[i].armed_by_test) continue;
    expected++;
    if (k >= fire_len || fire_log[k] != i) bad++;
    k++;
  }
  CHECK_EQ(fire_len, expected);
  CHECK_EQ(bad, 0);
  CHECK_EQ(loop->heap_len, 0);
  free(ps);
  ml_loop_free(loop);
}

/* Random starts, restarts and stops (also from inside callbacks), fired in
 * random-sized advances: every armed timer fires exactly once, in (due, seq)
 * order, seeing ml_clock_now == its due time; no stopped timer ever fires. */
static probe *rand_probes;
static int rand_n;

static int fired_unarmed; /* fired although stopped */

static void rand_fired(ml_timer *t)
{
  probe *p = ml_container_of(t, probe, timer);
  if (!p->armed_by_test) fired_unarmed++;
  probe_fired(t);
  /* now and then, stop a random other timer from inside a callback */
  if (rng_below(10) == 0) {
    probe *q = &rand_probes[rng_below((uint64_t)rand_n)];
    if (q != p && q->armed_by_test) {
      ml_timer_stop(p->loop, &q->timer);
      q->armed_by_test = 0;
    }
  }
  p->armed_by_test = 0;
}

static void test_random_heap(lua_State *L)
{
  TEST_BEGIN("random heap (10000 timers)");
  ml_loop *loop = new_loop(L, 1);
  CHECK(loop != NULL);
  if (!loop) return;
  enum { N = 10000 };
  rand_probes = calloc(N, sizeof *rand_probes);
  rand_n = N;
  probes_init(rand_probes, N, loop, rand_fired);
  fire_len = 0;

  int heap_bad = 0;
  for (int i = 0; i < N; i++) {
    /* deadlines in 0..499 ms: about 20 timers share each deadline */
    probe_start(&rand_probes[i], loop, rng_below(500) * MS);
    uint64_t r = rng_below(100);
    if (r < 25) { /* stop a random armed one (often from the middle) */
      probe *q = &rand_probes[rng_below((uint64_t)i + 1)];
      if (q->armed_by_test) {
        ml_timer_stop(loop, &q->timer);
        q->armed_by_test = 0;
      }
    } else if (r < 30) { /* restart a random one: new deadline, new seq */
      probe *q = &rand_probes[rng_below((uint64_t)i + 1)];
      probe_start(q, loop, rng_below(500) * MS);
    } else if (r < 32) { /* stopping twice, or something never armed, is a no-op */
      probe *q = &rand_probes[rng_below((uint64_t)i + 1)];
      ml_timer_stop(loop, &q->timer);
      ml_timer_stop(loop, &q->timer);
      q->armed_by_test = 0;
    }
    if (i % 500 == 0 && !heap_ok(loop)) heap_bad++;
  }
  CHECK_EQ(heap_bad, 0);
  CHECK(heap_ok(loop));
  size_t armed = 0;
  for (int i = 0; i < N; i++) armed += rand_probes[i].armed_by_test;
  CHECK_EQ(loop->heap_len, armed);

  /* advance in random steps until everything fired */
  int rounds = 0, now_bad = 0;
  while (loop->heap_len > 0 && rounds < 100000) {
    ml_clock_advance(loop, rng_below(20) * MS + rng_below(2));
    rounds++;
    if (!heap_ok(loop)) heap_bad++;
  }
  CHECK_EQ(loop->heap_len, 0);
  CHECK_EQ(heap_bad, 0);

  int order_bad = 0, twice = 0, stray = 0, missing = 0;
  for (size_t k = 0; k < fire_len; k++) {
    probe *p = &rand_probes[fire_log[k]];
    if (p->seen_now != p->due) now_bad++;
    if (k > 0) {
      probe *prev = &rand_probes[fire_log[k - 1]];
      if (prev->due > p->due || (prev->due == p->due && prev->seq > p->seq)) order_bad++;
    }
  }
  for (int i = 0; i < N; i++) {
    probe *p = &rand_probes[i];
    if (p->fired > 1) twice++;
    if (p->armed_by_test) missing++; /* still thought armed, never fired */
    if (p->fired && ml_timer_armed(&p->timer)) stray++;
  }
  CHECK(fire_len <= armed); /* callbacks may stop some of the armed ones */
  CHECK(fire_len > armed / 2);
  CHECK_EQ(fired_unarmed, 0);
  CHECK_EQ(order_bad, 0);
  CHECK_EQ(now_bad, 0);
  CHECK_EQ(twice, 0);
  CHECK_EQ(missing, 0);
  CHECK_EQ(stray, 0);
  free(rand_probes);
  rand_probes = NULL;
  ml_loop_free(loop);
}

/* A periodic timer re-armed from its own callback during one advance fires at
 * each period, seeing each due time; a zero-delay timer started from a callback
 * fires in the same advance at the same instant. */
typedef struct periodic {
  ml_timer timer;
  ml_loop *loop;
  uint64_t every;
  int count, limit;
  uint64_t seen[16];
} periodic;

static probe chained; /* started from inside periodic's 3rd firing */

static void periodic_fired(ml_timer *t)
{
  periodic *p = ml_container_of(t, periodic, timer);
  if (p->count < 16) p->seen[p->count] = ml_clock_now(p->loop);
  p->count++;
  if (p->count == 3) probe_start(&chained, p->loop, 0);
  if (p->count < p->limit) ml_timer_start(p->loop, &p->timer, p->every);
}

static void test_advance_steps(lua_State *L)
{
  TEST_BEGIN("advance steps through deadlines");
  ml_loop *loop = new_loop(L, 1);
  CHECK(loop != NULL);
  if (!loop) return;
  periodic p = {.loop = loop, .every = 1 * SEC, .limit = 10};
  ml_timer_init(&p.timer, periodic_fired);
  probes_init(&chained, 1, loop, probe_fired);
  fire_len = 0;
  ml_timer_start(loop, &p.timer, p.every);
  ml_clock_advance(loop, 4500 * MS);
  CHECK_EQ(p.count, 4);
  CHECK_EQ(ml_clock_now(loop), 4500 * MS); /* lands on the target, not the last deadline */
  CHECK_EQ(chained.fired, 1);
  CHECK_EQ(chained.seen_now, 3 * SEC);
  ml_clock_advance(loop, 100 * SEC);
  CHECK_EQ(p.count, 10);
  for (int i = 0; i < 10; i++) CHECK_EQ(p.seen[i], (uint64_t)(i + 1) * SEC);
  CHECK_EQ(ml_clock_now(loop), 104500 * MS);
  CHECK_EQ(loop->heap_len, 0);
  /* advancing with nothing armed only moves time */
  ml_clock_advance(loop, 1);
  CHECK_EQ(ml_clock_now(loop), 104500 * MS + 1);
  ml_loop_free(loop);
}

static void test_restart_and_switch(lua_State *L)
{
  TEST_BEGIN("restart, stop, clock switch");
  ml_loop *loop = new_loop(L, 1);
  CHECK(loop != NULL);
  if (!loop) return;
  probe ps[2];
  probes_init(ps, 2, loop, probe_fired);
  fire_len = 0;
  probe_start(&ps[0], loop, 10 * MS);
  probe_start(&ps[1], loop, 20 * MS);
  probe_start(&ps[0], loop, 30 * MS); /* restart an armed timer: moved, not duplicated */
  CHECK_EQ(loop->heap_len, 2);
  CHECK(heap_ok(loop));
  /* switching clocks under live timers is refused */
  CHECK_EQ(ml_clock_set_virtual(loop, 0), -1);
  CHECK_EQ(loop->virtual_clock, 1);
  ml_clock_advance(loop, 25 * MS);
  CHECK_EQ(fire_len, 1);
  CHECK_EQ(ps[1].fired, 1);
  CHECK_EQ(ps[0].fired, 0);
  ml_timer_stop(loop, &ps[0].timer);
  ml_timer_stop(loop, &ps[0].timer);
  ml_clock_advance(loop, 1 * SEC);
  CHECK_EQ(ps[0].fired, 0);
  CHECK_EQ(loop->heap_len, 0);
  /* advance on the real clock does nothing */
  CHECK_EQ(ml_clock_set_virtual(loop, 0), 0);
  probe_start(&ps[0], loop, 1 * SEC);
  ml_clock_advance(loop, 10 * SEC);
  CHECK_EQ(ps[0].fired, 0);
  CHECK(loop->uv_timer_armed);
  ml_timer_stop(loop, &ps[0].timer);
  CHECK(!loop->uv_timer_armed); /* the last stop disarms the libuv timer */
  /* back to virtual: time restarts at 0 */
  CHECK_EQ(ml_clock_set_virtual(loop, 1), 0);
  CHECK_EQ(ml_clock_now(loop), 0);
  ml_loop_free(loop);
}

/* ---- real clock ------------------------------------------------------------------ */

static void test_real_clock(lua_State *L)
{
  TEST_BEGIN("real clock");
  ml_loop *loop = new_loop(L, 0);
  CHECK(loop != NULL);
  if (!loop) return;
  CHECK_EQ(loop->virtual_clock, 0);
  uint64_t a = ml_clock_now(loop), b = ml_clock_now(loop);
  CHECK(b >= a);

  probe ps[3];
  probes_init(ps, 3, loop, probe_fired);
  fire_len = 0;
  uint64_t t0 = ml_clock_now(loop);
  probe_start(&ps[0], loop, 5 * MS);
  CHECK(loop->uv_timer_armed);
  CHECK(uv_loop_alive(loop->uv));
  uint64_t wall0 = uv_hrtime();
  for (int i = 0; i < 1000 && !ps[0].fired && uv_hrtime() - wall0 < 2 * SEC; i++)
    uv_run(loop->uv, UV_RUN_ONCE);
  CHECK_EQ(ps[0].fired, 1);
  CHECK(ps[0].seen_now >= ps[0].due);
  CHECK(ps[0].seen_now - t0 >= 5 * MS);
  CHECK(uv_hrtime() - wall0 >= 5 * MS);
  CHECK_EQ(loop->heap_len, 0);
  CHECK(!loop->uv_timer_armed);
  CHECK(!uv_loop_alive(loop->uv)); /* nothing left to wake the loop */

  /* several deadlines, driven by ml_loop_run (returns when nothing is left) */
  fire_len = 0;
  probe_start(&ps[0], loop, 3 * MS);
  probe_start(&ps[1], loop, 1 * MS);
  probe_start(&ps[2], loop, 2 * MS);
  wall0 = uv_hrtime();
  CHECK_EQ(ml_loop_run(loop, NULL), 0);
  CHECK(uv_hrtime() - wall0 >= 3 * MS);
  CHECK_EQ(fire_len, 3);
  if (fire_len == 3) {
    CHECK_EQ(fire_log[0], 1);
    CHECK_EQ(fire_log[1], 2);
    CHECK_EQ(fire_log[2], 0);
  }
  for (int i = 0; i < 3; i++) CHECK(ps[i].seen_now >= ps[i].due);
  CHECK_EQ(loop->heap_len, 0);
  ml_loop_free(loop);
}

int main(void)
{
  const char *seed = getenv("ML_TEST_SEED");
  if (seed) ml_test_rng_state = strtoull(seed, NULL, 0) | 1;
  lua_State *L = luaL_newstate();
  REQUIRE(L != NULL);
  test_deadline_order(L);
  test_fifo_equal_deadlines(L);
  test_random_heap(L);
  test_advance_steps(L);
  test_restart_and_switch(L);
  test_real_clock(L);
  lua_close(L);
  free(fire_log);
  return ML_TEST_DONE("test_clock");
}
