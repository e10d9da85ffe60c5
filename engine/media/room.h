/* A room: an in-process media hub (DESIGN.md §5). Members — SIP legs, tracks
 * (a tone or a clip, looped or not), agent audio endpoints — each publish
 * 20 ms of 16 kHz mono per tick and hear the mix of the others (N−1, see
 * mixer.h). One timer per room, paced against a fixed schedule like the RTP
 * sender, drives the tick: pull every member's frame, mix, push every
 * listener's mix. A tick is O(members) and allocates nothing.
 *
 * A member is embedded in whatever owns it (the RTP stream of a leg, a track,
 * an endpoint) and reaches it through its ops. Moving a member between rooms
 * keeps its state (buffers, resamplers): only the mixer slot changes. */
#ifndef ML_ROOM_H
#define ML_ROOM_H

#include <stdint.h>

#include "mixer.h"
#include "ml_runtime.h"

typedef struct ml_room ml_room;
typedef struct ml_room_member ml_room_member;

typedef struct ml_room_member_ops {
  /* this tick's frame (ML_MIX_FRAME samples at ML_MIX_RATE) into frame;
   * return 0 to publish nothing (silence) */
  int (*pull)(ml_room_member *m, int16_t *frame);
  /* what the member hears this tick (listeners only) */
  void (*push)(ml_room_member *m, const int16_t *frame);
} ml_room_member_ops;

struct ml_room_member {
  const ml_room_member_ops *ops;
  ml_room *room; /* NULL when in no room */
  int id; /* mixer slot */
  int listens;
  int muted;
  ml_list link; /* in room->members */
  /* the room is closing with the member inside: its owner disconnects it
   * (a SIP leg hangs up); may be NULL */
  void (*kick)(ml_room_member *m, void *data);
  void *kick_data;
};

typedef struct ml_room_stats {
  uint64_t ticks, late_ticks;
  uint64_t max_tick_lag_ns; /* how late a tick ran, worst case */
} ml_room_stats;

struct ml_room {
  ml_loop *loop;
  ml_mixer *mixer;
  ml_list members;
  ml_timer tick;
  uint64_t next_ns;
  ml_room_stats stats;
  int16_t frame[ML_MIX_FRAME]; /* scratch for pulls */
};

/* A room for up to max_members. It ticks while it has members (an empty
 * room costs no wakeups). NULL on bad arguments or out of memory. */
ml_room *ml_room_create(ml_loop *loop, uint32_t max_members);
/* Stops the tick; members still inside are kicked and let go (their room
 * becomes NULL). */
void ml_room_free(ml_room *r);

void ml_room_member_init(ml_room_member *m, const ml_room_member_ops *ops, int listens);
/* Join (a member in another room moves). -1 when the room is full. */
int ml_room_join(ml_room *r, ml_room_member *m);
/* Leave the current room, if any. */
void ml_room_leave(ml_room_member *m);
void ml_room_set_mute(ml_room_member *m, int muted);

/* Members in the room now (the mixer keeps the count). */
static inline uint32_t ml_room_members(const ml_room *r) { return ml_mixer_count(r->mixer); }

/* One tick by hand (the timer calls this); exposed for tests. */
void ml_room_mix_once(ml_room *r);

#endif
