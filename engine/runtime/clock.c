/* The engine clock: every timer of every task lives in one binary min-heap
 * (O(log n) start/stop, no allocation per timer). On the real clock a single
 * uv_timer wakes the loop for the earliest deadline; on the virtual clock time
 * only moves when a test advances it or when ml_loop_run finds nothing else
 * that could happen (auto-jump), so lifecycle tests are fast and exact. */
#include <stdlib.h>

#include "ml_runtime.h"

static int heap_less(const ml_timer *a, const ml_timer *b)
{
  return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static void heap_set(ml_loop *loop, size_t i, ml_timer *t)
{
  loop->heap[i] = t;
  t->heap_index = i + 1;
}

static void heap_up(ml_loop *loop, size_t i)
{
  ml_timer *t = loop->heap[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!heap_less(t, loop->heap[p])) break;
    heap_set(loop, i, loop->heap[p]);
    i = p;
  }
  heap_set(loop, i, t);
}

static void heap_down(ml_loop *loop, size_t i)
{
  ml_timer *t = loop->heap[i];
  size_t n = loop->heap_len;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && heap_less(loop->heap[c + 1], loop->heap[c])) c++;
    if (!heap_less(loop->heap[c], t)) break;
    heap_set(loop, i, loop->heap[c]);
    i = c;
  }
  heap_set(loop, i, t);
}

uint64_t ml_clock_now(ml_loop *loop)
{
  if (loop->virtual_clock) return loop->virtual_now;
  return uv_hrtime() - loop->real_base;
}

static void uv_timer_fired(uv_timer_t *h);

/* Keep the single uv_timer aimed at the earliest deadline (real clock only). */
static void clock_rearm(ml_loop *loop)
{
  if (loop->virtual_clock || loop->heap_len == 0) {
    if (loop->uv_timer_armed) {
      uv_timer_stop(loop->uv_timer);
      loop->uv_timer_armed = 0;
    }
    return;
  }
  uint64_t now = ml_clock_now(loop), due = loop->heap[0]->due_ns;
  uint64_t ms = due > now ? (due - now + 999999) / 1000000 : 0;
  uv_update_time(loop->uv);
  uv_timer_start(loop->uv_timer, uv_timer_fired, ms, 0);
  loop->uv_timer_armed = 1;
}

static void fire_due(ml_loop *loop, uint64_t now)
{
  while (loop->heap_len > 0 && loop->heap[0]->due_ns <= now) {
    ml_timer *t = loop->heap[0];
    ml_timer_stop(loop, t);
    t->cb(t);
  }
}

static void uv_timer_fired(uv_timer_t *h)
{
  ml_loop *loop = h->data;
  loop->uv_timer_armed = 0;
  fire_due(loop, ml_clock_now(loop));
  clock_rearm(loop);
}

void ml_timer_init(ml_timer *t, ml_timer_cb cb)
{
  t->due_ns = 0;
  t->seq = 0;
  t->heap_index = 0;
  t->cb = cb;
}

void ml_timer_start(ml_loop *loop, ml_timer *t, uint64_t delay_ns)
{
  if (ml_timer_armed(t)) ml_timer_stop(loop, t);
  if (loop->heap_len == loop->heap_cap) {
    size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    ml_timer **h = realloc(loop->heap, cap * sizeof *h);
    if (!h) abort(); /* out of memory: nothing sane to do */
    loop->heap = h;
    loop->heap_cap = cap;
  }
  t->due_ns = ml_clock_now(loop) + delay_ns;
  t->seq = loop->timer_seq++;
  heap_set(loop, loop->heap_len++, t);
  heap_up(loop, loop->heap_len - 1);
  if (loop->heap[0] == t) clock_rearm(loop);
}

void ml_timer_stop(ml_loop *loop, ml_timer *t)
{
  if (!ml_timer_armed(t)) return;
  size_t i = t->heap_index - 1;
  t->heap_index = 0;
  ml_timer *last = loop->heap[--loop->heap_len];
  if (i < loop->heap_len) {
    heap_set(loop, i, last);
    heap_up(loop, i);
    heap_down(loop, last->heap_index - 1);
  }
  if (loop->heap_len == 0) clock_rearm(loop);
}

int ml_clock_set_virtual(ml_loop *loop, int on)
{
  if (loop->heap_len > 0) return -1; /* switching under live timers would reorder them */
  loop->virtual_clock = on;
  if (on) loop->virtual_now = 0;
  clock_rearm(loop);
  return 0;
}

void ml_clock_advance(ml_loop *loop, uint64_t ns)
{
  if (!loop->virtual_clock) return;
  uint64_t target = loop->virtual_now + ns;
  /* step through deadlines so callbacks see the time they were due */
  while (loop->heap_len > 0 && loop->heap[0]->due_ns <= target) {
    if (loop->heap[0]->due_ns > loop->virtual_now) loop->virtual_now = loop->heap[0]->due_ns;
    fire_due(loop, loop->virtual_now);
  }
  loop->virtual_now = target;
}

/* The next deadline, for ml_loop_run's auto-jump. */
int ml_clock_next(ml_loop *loop, uint64_t *due)
{
  if (loop->heap_len == 0) return 0;
  *due = loop->heap[0]->due_ns;
  return 1;
}

void ml_clock_init(ml_loop *loop)
{
  loop->real_base = uv_hrtime();
  /* on the heap: libuv may finish closing it after the loop struct is gone */
  loop->uv_timer = malloc(sizeof *loop->uv_timer);
  if (!loop->uv_timer) abort();
  uv_timer_init(loop->uv, loop->uv_timer);
  loop->uv_timer->data = loop;
}
