/* Rooms (see room.h). */
#include "room.h"

#include <stdlib.h>
#include <string.h>

#define TICK_NS (20ull * 1000000ull)

void ml_room_mix_once(ml_room *r)
{
  ml_list *n;
  for (n = r->members.next; n != &r->members; n = n->next) {
    ml_room_member *m = ml_container_of(n, ml_room_member, link);
    if (m->ops->pull(m, r->frame)) ml_mixer_publish(r->mixer, m->id, r->frame);
  }
  ml_mixer_mix(r->mixer);
  /* a push may not change membership, so the list is stable here */
  for (n = r->members.next; n != &r->members; n = n->next) {
    ml_room_member *m = ml_container_of(n, ml_room_member, link);
    if (m->listens) m->ops->push(m, ml_mixer_output(r->mixer, m->id));
  }
  r->stats.ticks++;
}

static void on_tick(ml_timer *tm)
{
  ml_room *r = ml_container_of(tm, ml_room, tick);
  uint64_t now = ml_clock_now(r->loop);
  if (now > r->next_ns && now - r->next_ns > r->stats.max_tick_lag_ns)
    r->stats.max_tick_lag_ns = now - r->next_ns;
  ml_room_mix_once(r);
  r->next_ns += TICK_NS;
  if (r->next_ns + TICK_NS < now) { /* the loop stalled: skip, do not burst */
    r->stats.late_ticks++;
    r->next_ns = now + TICK_NS;
  }
  ml_timer_start(r->loop, &r->tick, r->next_ns > now ? r->next_ns - now : 0);
}

ml_room *ml_room_create(ml_loop *loop, uint32_t max_members)
{
  ml_room *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->mixer = ml_mixer_create(max_members);
  if (!r->mixer) {
    free(r);
    return NULL;
  }
  r->loop = loop;
  ml_list_init(&r->members);
  ml_timer_init(&r->tick, on_tick);
  return r;
}

void ml_room_free(ml_room *r)
{
  if (!r) return;
  ml_timer_stop(r->loop, &r->tick);
  while (!ml_list_empty(&r->members)) {
    ml_room_member *m = ml_container_of(r->members.next, ml_room_member, link);
    ml_room_leave(m);
    if (m->kick) m->kick(m, m->kick_data);
  }
  ml_mixer_free(r->mixer);
  free(r);
}

void ml_room_member_init(ml_room_member *m, const ml_room_member_ops *ops, int listens)
{
  memset(m, 0, sizeof *m);
  m->ops = ops;
  m->listens = listens;
  m->id = -1;
  ml_list_init(&m->link);
}

int ml_room_join(ml_room *r, ml_room_member *m)
{
  if (m->room == r) return 0;
  int id = ml_mixer_join(r->mixer, m->listens);
  if (id < 0) return -1;
  ml_room_leave(m);
  if (ml_list_empty(&r->members)) { /* an empty room does not tick: start now */
    r->next_ns = ml_clock_now(r->loop) + TICK_NS;
    ml_timer_start(r->loop, &r->tick, TICK_NS);
  }
  m->room = r;
  m->id = id;
  ml_mixer_set_mute(r->mixer, id, m->muted);
  ml_list_push(&r->members, &m->link);
  return 0;
}

void ml_room_leave(ml_room_member *m)
{
  if (!m->room) return;
  ml_mixer_leave(m->room->mixer, m->id);
  ml_list_remove(&m->link);
  ml_list_init(&m->link);
  if (ml_list_empty(&m->room->members)) ml_timer_stop(m->room->loop, &m->room->tick);
  m->room = NULL;
  m->id = -1;
}

void ml_room_set_mute(ml_room_member *m, int muted)
{
  m->muted = muted != 0;
  if (m->room) ml_mixer_set_mute(m->room->mixer, m->id, m->muted);
}
