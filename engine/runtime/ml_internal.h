/* Runtime internals shared by the files of engine/runtime and engine/bind. */
#ifndef ML_INTERNAL_H
#define ML_INTERNAL_H

#include "ml_runtime.h"

void ml_clock_init(ml_loop *loop);
int ml_clock_next(ml_loop *loop, uint64_t *due);
void ml_loop_push_ready(ml_loop *loop, ml_task *t);
void ml_task_resume(ml_task *t);
int ml_task_push_result(ml_task *t, lua_State *co); /* (ok, values...) */

/* Values a waiting primitive is resumed with:
 *   true, ...            success
 *   false, err           runtime failure (the Lua half returns nil, err)
 *   nil, reason, scope   cancelled (the Lua half raises Cancelled) */
void ml_task_push_cancel(ml_task *t, ml_scope *s);

/* wait queues: tasks parked until woken (channels, t:wait()) */
typedef struct ml_waitq {
  ml_list tasks;
} ml_waitq;
void ml_waitq_init(ml_waitq *q);
void ml_waitq_wait(ml_waitq *q, ml_task *t, const char *what);
int ml_waitq_wake(ml_waitq *q, int n); /* wakes up to n tasks with `true`; returns count */

void ml_scope_fail(ml_scope *s);
void ml_scope_defer(ml_scope *s, lua_State *L); /* pops a function */
int ml_scope_step(ml_scope *s, lua_State *L);

#define ML_CHECKPOINT_NONE 0 /* a bare coroutine.yield(): resume with nothing */
#define ML_CHECKPOINT_YIELD 1 /* task.yield(): resume with true */
#define ML_CHECKPOINT_CANCEL 2 /* deliver cancellation after a trip through the loop */
#define ML_CHECKPOINT_CANCEL_AGAIN 3 /* it was swallowed before: deliver after a pause */
#define ML_REDELIVER_NS 1000000ull /* the pause: a swallowing loop cannot spin the CPU */

#define ML_STEP_AGAIN 0
#define ML_STEP_DEFER 1
#define ML_STEP_DONE 2

#endif
