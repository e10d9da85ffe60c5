/* Audio endpoints (see endpoint.h). */
#include "endpoint.h"

#include <stdlib.h>
#include <string.h>

static size_t ring_put(ml_pcm_ring *r, const int16_t *in, size_t n)
{
  if (n > r->cap - r->len) n = r->cap - r->len;
  size_t tail = (r->head + r->len) % r->cap, first = r->cap - tail < n ? r->cap - tail : n;
  memcpy(r->buf + tail, in, first * sizeof *in);
  memcpy(r->buf, in + first, (n - first) * sizeof *in);
  r->len += n;
  return n;
}

static size_t ring_take(ml_pcm_ring *r, int16_t *out, size_t n)
{
  if (n > r->len) n = r->len;
  size_t first = r->cap - r->head < n ? r->cap - r->head : n;
  if (out) {
    memcpy(out, r->buf + r->head, first * sizeof *out);
    memcpy(out + first, r->buf, (n - first) * sizeof *out);
  }
  r->head = (r->head + n) % r->cap;
  r->len -= n;
  return n;
}

static int ep_pull(ml_room_member *m, int16_t *frame)
{
  ml_endpoint *e = ml_container_of(m, ml_endpoint, member);
  if (!e->speak.len) return 0;
  size_t n = ring_take(&e->speak, frame, ML_MIX_FRAME);
  if (n < ML_MIX_FRAME) memset(frame + n, 0, (ML_MIX_FRAME - n) * sizeof *frame);
  e->spoken += n;
  return 1;
}

static void ep_push(ml_room_member *m, const int16_t *frame)
{
  ml_endpoint *e = ml_container_of(m, ml_endpoint, member);
  size_t room = e->hear.cap - e->hear.len;
  if (room < ML_MIX_FRAME) e->heard_dropped += ring_take(&e->hear, NULL, ML_MIX_FRAME - room);
  ring_put(&e->hear, frame, ML_MIX_FRAME);
  if (e->on_tick) e->on_tick(e, e->data);
}

static const ml_room_member_ops ep_ops = {ep_pull, ep_push};

int ml_endpoint_init(ml_endpoint *e, unsigned speak_ms, unsigned hear_ms)
{
  memset(e, 0, sizeof *e);
  ml_room_member_init(&e->member, &ep_ops, 1);
  /* whole frames, at least one each */
  size_t speak = ((size_t)speak_ms / 20 + 1) * ML_MIX_FRAME, hear = ((size_t)hear_ms / 20 + 1) * ML_MIX_FRAME;
  int16_t *buf = malloc((speak + hear) * sizeof *buf);
  if (!buf) return -1;
  e->speak = (ml_pcm_ring){buf, speak, 0, 0};
  e->hear = (ml_pcm_ring){buf + speak, hear, 0, 0};
  return 0;
}

void ml_endpoint_release(ml_endpoint *e)
{
  ml_room_leave(&e->member);
  free(e->speak.buf);
  e->speak.buf = e->hear.buf = NULL;
  e->speak.cap = e->hear.cap = e->speak.len = e->hear.len = 0;
}

size_t ml_endpoint_write(ml_endpoint *e, const int16_t *pcm, size_t n)
{
  return e->speak.buf ? ring_put(&e->speak, pcm, n) : 0;
}

size_t ml_endpoint_read(ml_endpoint *e, int16_t *out, size_t max)
{
  return e->hear.buf ? ring_take(&e->hear, out, max) : 0;
}

size_t ml_endpoint_clear(ml_endpoint *e)
{
  return e->speak.buf ? ring_take(&e->speak, NULL, e->speak.len) : 0;
}
