/* RFC 4733 telephone-events. See dtmf.h. */
#include "dtmf.h"

#include <string.h>

static const char digits[16] = "0123456789*#ABCD";

int ml_dtmf_parse(const uint8_t *payload, size_t len, ml_dtmf_event *out)
{
  if (len < ML_DTMF_PAYLOAD_SIZE) return -1;
  out->event = payload[0];
  out->end = payload[1] >> 7;
  out->volume = payload[1] & 0x3f; /* bit 6 is reserved */
  out->duration = (uint16_t)(payload[2] << 8 | payload[3]);
  return 0;
}

void ml_dtmf_write(uint8_t out[ML_DTMF_PAYLOAD_SIZE], const ml_dtmf_event *ev)
{
  out[0] = ev->event;
  out[1] = (uint8_t)((ev->end ? 0x80 : 0) | (ev->volume & 0x3f));
  out[2] = (uint8_t)(ev->duration >> 8);
  out[3] = (uint8_t)ev->duration;
}

char ml_dtmf_digit(uint8_t event) { return event < 16 ? digits[event] : 0; }

int ml_dtmf_event_code(char digit)
{
  if (digit >= 'a' && digit <= 'd') digit = (char)(digit - 'a' + 'A');
  const char *p = digit ? memchr(digits, digit, sizeof digits) : NULL;
  return p ? (int)(p - digits) : -1;
}

/* ---- receiver ------------------------------------------------------------- */

void ml_dtmf_receiver_init(ml_dtmf_receiver *r) { memset(r, 0, sizeof *r); }

static int receiver_seen(const ml_dtmf_receiver *r, uint32_t ts)
{
  for (unsigned i = 0; i < r->recent_len; i++)
    if (r->recent_ts[i] == ts) return 1;
  return 0;
}

static void receiver_remember(ml_dtmf_receiver *r, uint32_t ts)
{
  r->recent_ts[r->recent_next] = ts;
  r->recent_next = (r->recent_next + 1) % ML_DTMF_HISTORY;
  if (r->recent_len < ML_DTMF_HISTORY) r->recent_len++;
}

/* A long event goes on in a new segment whose timestamp is the old one plus
 * the old segment's duration (close to 0xFFFF), without a marker. A repeated
 * press of the same key whose end and start were both lost looks alike only
 * if the first press lasted several seconds. */
static int receiver_is_segment(const ml_dtmf_receiver *r, uint32_t ts, int marker, const ml_dtmf_event *ev)
{
  uint32_t delta = ts - r->active_ts;
  return r->active && !marker && ev->event == r->active_event && delta >= 0x8000 && delta <= 0xFFFF;
}

static void receiver_track(ml_dtmf_receiver *r, uint32_t ts, const ml_dtmf_event *ev)
{
  r->have_event = 1;
  r->active = !ev->end;
  r->active_event = ev->event;
  r->active_ts = ts;
  r->active_duration = ev->duration;
}

int ml_dtmf_receiver_feed(ml_dtmf_receiver *r, uint32_t ts, int marker, const uint8_t *payload, size_t len,
                          char *digit)
{
  ml_dtmf_event ev;
  if (ml_dtmf_parse(payload, len, &ev) != 0) {
    r->malformed++;
    return -1;
  }
  r->packets++;
  if (receiver_seen(r, ts)) {
    if (r->active && ts == r->active_ts) receiver_track(r, ts, &ev); /* an update or the end */
    return 0;
  }
  int segment = receiver_is_segment(r, ts, marker, &ev);
  receiver_remember(r, ts);
  /* a late first sighting of an older event is reported but does not
   * replace the newest one */
  if (!r->have_event || (int32_t)(ts - r->active_ts) > 0) receiver_track(r, ts, &ev);
  if (segment || ev.event >= 16) return 0;
  *digit = ml_dtmf_digit(ev.event);
  r->digits++;
  return 1;
}

/* ---- sender --------------------------------------------------------------- */

int ml_dtmf_sender_start(ml_dtmf_sender *s, char digit, uint32_t duration_ms, uint32_t ptime_ms,
                         uint32_t clock_rate, uint32_t ts)
{
  int code = ml_dtmf_event_code(digit);
  uint64_t step = (uint64_t)ptime_ms * clock_rate / 1000;
  uint64_t total = (uint64_t)duration_ms * clock_rate / 1000;
  if (code < 0 || step == 0 || total == 0 || step > 0xFFFF) return -1;
  memset(s, 0, sizeof *s);
  s->event = (uint8_t)code;
  s->volume = 10;
  s->ts = ts;
  s->step = (uint32_t)step;
  s->total = total > 0xFFFF ? 0xFFFF : (uint32_t)total;
  s->ends_left = ML_DTMF_END_PACKETS;
  s->active = 1;
  return 0;
}

/* Updates while the reported duration stays below the total; at least one,
 * so the marker packet is never an end packet. */
static unsigned sender_updates(const ml_dtmf_sender *s)
{
  unsigned n = (s->total + s->step - 1) / s->step - 1;
  return n ? n : 1;
}

unsigned ml_dtmf_sender_packets(const ml_dtmf_sender *s) { return sender_updates(s) + ML_DTMF_END_PACKETS; }

int ml_dtmf_sender_next(ml_dtmf_sender *s, ml_dtmf_packet *out)
{
  if (!s->active) return 0;
  ml_dtmf_event ev = {.event = s->event, .volume = s->volume};
  uint32_t next = s->sent + s->step;
  if (!s->started || next < s->total) {
    ev.duration = (uint16_t)(next < s->total ? next : s->total);
  } else {
    ev.end = 1;
    ev.duration = (uint16_t)s->total;
    if (--s->ends_left == 0) s->active = 0;
  }
  out->marker = !s->started;
  out->end = ev.end;
  out->ts = s->ts;
  out->duration = ev.duration;
  ml_dtmf_write(out->payload, &ev);
  s->started = 1;
  s->sent = ev.duration;
  return 1;
}
