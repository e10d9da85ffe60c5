/* An audio endpoint: a room member whose audio comes from and goes to its
 * owner in blocks of any size — an agent's TTS output in, what the agent
 * should transcribe out — through two fixed rings of 16 kHz samples.
 * Writing more than the ring holds is refused (the writer paces itself);
 * a reader that falls behind loses the oldest audio (counted). */
#ifndef ML_ENDPOINT_H
#define ML_ENDPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "room.h"

typedef struct ml_pcm_ring {
  int16_t *buf;
  size_t cap, head, len;
} ml_pcm_ring;

typedef struct ml_endpoint {
  ml_room_member member; /* listening */
  ml_pcm_ring speak; /* written by the owner, published a frame per tick */
  ml_pcm_ring hear; /* the mix, read by the owner */
  uint64_t heard_dropped; /* samples of the mix lost to a slow reader */
  uint64_t spoken; /* samples published */
  /* after every tick that added to `hear`, and when `speak` ran dry */
  void (*on_tick)(struct ml_endpoint *e, void *data);
  void *data;
} ml_endpoint;

/* Rings for speak_ms and hear_ms of audio (one allocation). -1 when out of memory. */
int ml_endpoint_init(ml_endpoint *e, unsigned speak_ms, unsigned hear_ms);
/* Leave the room and free the rings. */
void ml_endpoint_release(ml_endpoint *e);
/* Queue samples to speak; returns how many fitted. */
size_t ml_endpoint_write(ml_endpoint *e, const int16_t *pcm, size_t n);
/* Take up to max heard samples; returns how many. */
size_t ml_endpoint_read(ml_endpoint *e, int16_t *out, size_t max);
/* Drop what is queued to speak (barge-in); returns how many samples. */
size_t ml_endpoint_clear(ml_endpoint *e);

#endif
