/* Resources: C objects with OPEN -> CLOSING -> CLOSED and exactly one close
 * path. Explicit close, scope unwind, __gc of a dropped handle, the C backstop
 * and VM teardown all call ml_res_close, so nothing is closed twice and the
 * ledger stays exact. */
#include <stdio.h>
#include <string.h>

#include "ml_internal.h"

static const ml_res_type *kinds[ML_RES_KINDS_MAX];
static int nkinds;

void ml_res_type_register(ml_res_type *type)
{
  for (int i = 0; i < nkinds; i++)
    if (kinds[i] == type) return;
  if (nkinds == ML_RES_KINDS_MAX) {
    ml_log(ML_LOG_ERROR, "too many resource kinds (max %d): %s", ML_RES_KINDS_MAX, type->name);
    type->kind = ML_RES_KINDS_MAX - 1;
    return;
  }
  type->kind = nkinds;
  kinds[nkinds++] = type;
}

const char *ml_res_kind_name(int kind) { return kind >= 0 && kind < nkinds ? kinds[kind]->name : "?"; }
int ml_res_kind_count(void) { return nkinds; }

void ml_res_open(ml_loop *loop, ml_res *r, const ml_res_type *type, ml_scope *s, const char *where)
{
  r->exit.kind = ML_EXIT_RES;
  r->type = type;
  r->loop = loop;
  r->state = ML_RES_OPEN;
  r->box = NULL;
  r->id = ++loop->next_id;
  snprintf(r->where, sizeof r->where, "%s", where ? where : "?");
  r->scope = s;
  if (s)
    ml_list_push(&s->exits, &r->exit.link);
  else
    ml_list_init(&r->exit.link);
  loop->ledger.resources++;
  loop->ledger.by_kind[type->kind]++;
  loop->ledger.resources_opened++;
}

void ml_res_close(ml_res *r)
{
  if (r->state != ML_RES_OPEN) return;
  r->state = ML_RES_CLOSING;
  if (r->scope) {
    /* off the exit stack; the scope still waits for an asynchronous close */
    ml_list_remove(&r->exit.link);
    ml_list_push(&r->scope->closing, &r->exit.link);
  }
  r->type->close(r);
}

void ml_res_closed(ml_res *r)
{
  ml_loop *loop = r->loop;
  ml_scope *s = r->scope;
  r->state = ML_RES_CLOSED;
  loop->ledger.resources--;
  loop->ledger.by_kind[r->type->kind]--;
  if (r->box) *r->box = NULL; /* the Lua handle now reads as closed */
  r->box = NULL;
  r->scope = NULL;
  if (ml_list_linked(&r->exit.link)) ml_list_remove(&r->exit.link);
  r->type->free(r);
  if (s && ml_list_empty(&s->closing) && s->closing_wait && s->owner->state == ML_TASK_WAITING) {
    s->closing_wait = 0;
    lua_pushinteger(s->owner->co, 0); /* STEP_AGAIN */
    ml_task_post(s->owner, 1);
  }
}
