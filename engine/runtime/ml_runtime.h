/* Moonline runtime: one libuv loop, tasks (coroutines owned by C), scopes with
 * exit stacks, resources with a single close-once path, a timer heap behind a
 * real or virtual clock, and a ledger of everything live.
 *
 * Ownership rules (DESIGN.md §2):
 *   - a task always lives in a scope; a scope belongs to one task;
 *   - a resource is pushed on its scope's exit stack when it is created, before
 *     any yield, and is closed exactly once through ml_res_close;
 *   - nothing here resumes a coroutine from inside a libuv callback: completions
 *     post the task on the ready queue, drained by ml_loop_run. */
#ifndef ML_RUNTIME_H
#define ML_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lua.h"

/* ---- intrusive circular doubly-linked list ------------------------------ */

typedef struct ml_list {
  struct ml_list *prev, *next;
} ml_list;

static inline void ml_list_init(ml_list *h) { h->prev = h->next = h; }
static inline int ml_list_empty(const ml_list *h) { return h->next == h; }
static inline int ml_list_linked(const ml_list *n) { return n->next != NULL && n->next != n; }
static inline void ml_list_push(ml_list *h, ml_list *n) /* at the tail */
{
  n->prev = h->prev;
  n->next = h;
  h->prev->next = n;
  h->prev = n;
}
static inline void ml_list_remove(ml_list *n)
{
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = n;
}
#define ml_container_of(p, type, field) ((type *)((char *)(p) - (size_t)offsetof(type, field)))

/* ---- log ----------------------------------------------------------------- */

enum { ML_LOG_ERROR, ML_LOG_WARN, ML_LOG_INFO, ML_LOG_DEBUG };
void ml_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ml_log_set_level(int level);
int ml_log_level(void);

/* ---- clock: one timer heap, real (libuv) or virtual ---------------------- */

typedef struct ml_timer ml_timer;
typedef void (*ml_timer_cb)(ml_timer *t);

struct ml_timer {
  uint64_t due_ns;
  uint64_t seq; /* FIFO among equal deadlines */
  size_t heap_index; /* 0 = not armed; otherwise index + 1 */
  ml_timer_cb cb;
};

typedef struct ml_loop ml_loop;

void ml_timer_init(ml_timer *t, ml_timer_cb cb);
void ml_timer_start(ml_loop *loop, ml_timer *t, uint64_t delay_ns);
void ml_timer_stop(ml_loop *loop, ml_timer *t);
static inline int ml_timer_armed(const ml_timer *t) { return t->heap_index != 0; }
uint64_t ml_clock_now(ml_loop *loop); /* ns on the engine clock */
int ml_clock_set_virtual(ml_loop *loop, int on);
void ml_clock_advance(ml_loop *loop, uint64_t ns); /* virtual only: fires due timers */

/* ---- ledger -------------------------------------------------------------- */

#define ML_RES_KINDS_MAX 32

typedef struct ml_ledger {
  int64_t tasks; /* live tasks */
  int64_t scopes; /* open scopes */
  int64_t resources; /* live resources, all kinds */
  int64_t by_kind[ML_RES_KINDS_MAX];
  int64_t leaks; /* resources closed by __gc (dropped while open) */
  int64_t abandoned; /* tasks abandoned by the C backstop */
  uint64_t tasks_spawned, resources_opened;
} ml_ledger;

/* ---- tasks, scopes, resources -------------------------------------------- */

typedef struct ml_task ml_task;
typedef struct ml_scope ml_scope;
typedef struct ml_res ml_res;

/* A pending operation: what a waiting task is blocked on. `cancel` undoes the
 * registration (stop a timer, unlink from a wait queue) so that no completion
 * can touch the task afterwards. */
typedef struct ml_op {
  void (*cancel)(ml_task *t, void *data);
  void *data;
  const char *what; /* "sleep", "tcp read", … for diagnostics */
} ml_op;

enum ml_task_state { ML_TASK_READY, ML_TASK_RUNNING, ML_TASK_WAITING, ML_TASK_DONE };
enum ml_task_status { ML_STATUS_NONE, ML_STATUS_OK, ML_STATUS_ERROR, ML_STATUS_CANCELLED };

#define ML_TASK_NAME_MAX 48 /* with its "#id", NUL included; longer names are cut */

struct ml_task {
  ml_list ready_link; /* ready queue */
  ml_list child_link; /* parent scope's children */
  ml_loop *loop;
  lua_State *co;
  ml_scope *parent; /* scope it was spawned in */
  ml_scope *body; /* its own outermost scope */
  ml_scope *cur; /* innermost open scope */
  ml_op op;
  ml_timer sleep_timer; /* sleep needs no allocation */
  uint64_t delivered_scope; /* id of the cancelled scope last delivered */
  ml_list waiters; /* tasks blocked in t:wait() on this task */
  ml_list wait_link; /* in a wait queue while blocked on one */
  ml_list live_link; /* loop->live while not done */
  uint64_t id;
  int co_ref; /* anchors the coroutine while live */
  int self_ref; /* anchors this userdata while live */
  int result_ref; /* table {values..., n =} once done; LUA_REFNIL: no values */
  enum ml_task_state state;
  enum ml_task_status status;
  int nresume; /* values pushed on co for the next resume */
  int checkpoint; /* why it yielded without an op: ML_CHECKPOINT_* */
  unsigned supervised : 1, abandoned : 1;
  unsigned stop_requested : 1; /* its scope was told to stop: its failure is its own */
  unsigned through_shield : 1; /* its wait also ends on a cancellation outside its shield */
  char name[]; /* "name#id", allocated to its length (at most ML_TASK_NAME_MAX) */
};

enum ml_scope_kind { ML_SCOPE_BODY, ML_SCOPE_PLAIN, ML_SCOPE_TIMEOUT, ML_SCOPE_SHIELD };

struct ml_scope {
  ml_scope *parent;
  ml_task *owner;
  ml_list children; /* live child tasks (ml_task.child_link) */
  ml_list exits; /* exit stack: ml_exit, pushed at tail, unwound from tail */
  ml_list closing; /* resources whose asynchronous close is still running */
  int nchildren;
  enum ml_scope_kind kind;
  unsigned cancelled : 1, unwinding : 1, joining : 1, closing_wait : 1, cleanup_armed : 1;
  const char *cancel_reason; /* static string or interned in reason_buf */
  char reason_buf[40];
  int error_ref; /* first failure (body error or fail-fast child error) */
  ml_timer deadline; /* with_timeout deadline, then the cleanup deadline */
  uint64_t cleanup_ns;
  uint64_t id;
};

enum ml_exit_kind { ML_EXIT_RES, ML_EXIT_DEFER };

typedef struct ml_exit {
  ml_list link;
  enum ml_exit_kind kind;
} ml_exit;

enum ml_res_state { ML_RES_OPEN, ML_RES_CLOSING, ML_RES_CLOSED };

typedef struct ml_res_type {
  const char *name; /* "timer", "tcp", … also the ledger kind */
  int kind; /* filled by ml_res_type_register */
  /* Start closing. Call ml_res_closed(r) when done, now or from a callback;
   * must wake any task waiting on r. Never fails, never yields. */
  void (*close)(ml_res *r);
  void (*free)(ml_res *r); /* release memory after CLOSED */
} ml_res_type;

struct ml_res {
  ml_exit exit; /* first: ml_exit* -> ml_res* */
  const ml_res_type *type;
  ml_loop *loop;
  ml_scope *scope; /* NULL once unlinked from its exit stack */
  enum ml_res_state state;
  struct ml_res **box; /* the Lua userdata that points here, if any */
  uint64_t id;
  char where[64]; /* script position that opened it, for leak logs */
};

#define ML_CORE_HANDLES_MAX 16

/* ---- the loop -------------------------------------------------------------- */

struct ml_loop {
  uv_loop_t *uv;
  int own_uv; /* we created uv and must close it */
  lua_State *L; /* main state of the VM */
  ml_list ready;
  ml_list live; /* every live task (ml_task.live_link), for VM teardown */
  int budget; /* tasks resumed between two I/O polls */
  ml_task *current; /* the task being resumed, if any */
  ml_ledger ledger;
  uint64_t next_id;
  /* clock */
  ml_timer **heap;
  size_t heap_len, heap_cap;
  uint64_t timer_seq;
  int virtual_clock;
  uint64_t virtual_now;
  uint64_t real_base; /* hrtime at init, so engine time starts near 0 */
  uv_timer_t *uv_timer; /* drives the heap on the real clock; a core handle */
  int uv_timer_armed;
  int closing;
  uint64_t cleanup_default_ns;
  int trampoline_ref; /* Lua function(fn, ...) that runs a task body */
  uv_handle_t *core_handles[ML_CORE_HANDLES_MAX]; /* not counted as live */
  int ncore_handles;
  uint64_t advance_pending;
  uint64_t autojump_ms; /* virtual clock: real I/O quiet this long -> jump */
  int quiet; /* virtual time to add before the next resume */
  int in_uv_run; /* inside uv_run: a post must stop the iteration short */
};

ml_loop *ml_loop_new(uv_loop_t *uv, lua_State *L); /* uv NULL: create one */
/* Abandon every live task (the C backstop closes what they own) and give
 * asynchronous closes up to 1 s. Runs libuv callbacks: call it before
 * lua_close where possible (ml_loop_free calls it too, as a last resort). */
void ml_loop_shutdown(ml_loop *loop);
void ml_loop_free(ml_loop *loop);
ml_loop *ml_loop_get(lua_State *L); /* the loop of this VM; NULL if none */
/* Run until `until` is done (or forever when NULL and work remains). Returns
 * 0, or -1 when it stopped on a deadlock (tasks wait for nothing that can
 * happen) after cancelling the root scope. */
int ml_loop_run(ml_loop *loop, ml_task *until);
int ml_loop_handles(ml_loop *loop); /* libuv handles that are not the core's */
void ml_loop_add_core_handle(ml_loop *loop, uv_handle_t *h);
int ml_loop_is_core_handle(const ml_loop *loop, const uv_handle_t *h);

/* ---- tasks ----------------------------------------------------------------- */

/* Spawn fn (at stack top of L, followed by nargs arguments, all popped) as a
 * task in scope `parent` (NULL: a root task). Pushes the task userdata on L. */
ml_task *ml_task_spawn(ml_loop *loop, lua_State *L, ml_scope *parent, int nargs, int supervised,
                       const char *name);
ml_task *ml_task_current(lua_State *L); /* the task whose coroutine is L, or NULL */
/* Park the current task on `op`. The caller returns lua_yield(L, 0) next. */
void ml_task_wait(ml_task *t, void (*cancel)(ml_task *, void *), void *data, const char *what);
/* Wake a waiting task: values already pushed on t->co (n of them). */
void ml_task_post(ml_task *t, int n);
/* Deliver cancellation: if waiting and not protected, abort its op. */
void ml_task_interrupt(ml_task *t);
void ml_task_cancel(ml_task *t, const char *reason);
/* The outermost cancelled scope that applies to the task now, or NULL. */
ml_scope *ml_task_cancelled(ml_task *t);
/* The same, seen through shields (not through cleanup), once per scope: NULL
 * when that cancellation was delivered to the task already. */
ml_scope *ml_task_cancelled_through(ml_task *t);
/* C backstop: never resume the coroutine again; close what it owned. */
void ml_task_abandon(ml_task *t, const char *why);

/* ---- scopes ---------------------------------------------------------------- */

ml_scope *ml_scope_open(ml_task *owner, enum ml_scope_kind kind);
void ml_scope_cancel(ml_scope *s, const char *reason);
void ml_scope_begin_cleanup(ml_scope *s); /* arms the cleanup deadline */
void ml_scope_free(ml_scope *s); /* exit stack must be empty */
void ml_scope_child_done(ml_scope *s, ml_task *child);
/* Close every C resource on the exit stack now, in reverse order; drop defers. */
void ml_scope_backstop(ml_scope *s, lua_State *L);

/* ---- resources ------------------------------------------------------------- */

void ml_res_type_register(ml_res_type *type);
/* Initialise r (allocated by the caller, r embedded first in its struct) and
 * push it on scope s. `where` names the opening script line. */
void ml_res_open(ml_loop *loop, ml_res *r, const ml_res_type *type, ml_scope *s, const char *where);
void ml_res_close(ml_res *r); /* idempotent */
void ml_res_closed(ml_res *r); /* called by the type when its close finished */
const char *ml_res_kind_name(int kind);
int ml_res_kind_count(void);

#endif
