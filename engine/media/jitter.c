/* Jitter buffer for one RTP stream. See jitter.h.
 *
 * Sequence numbers are extended to 64 bits against the newest packet, so the
 * ring index is just ext & mask and the window [next, next + capacity) never
 * wraps. Every stored frame lies in that window, which is why a used slot can
 * only hold the packet with that very extended number (a duplicate). */
#include "jitter.h"

#include <stdlib.h>
#include <string.h>

#define PEAK_DECAY_SHIFT 9 /* per packet: a spike is forgotten with a half-life of ~7 s at 50 pps */
#define BASE_CREEP_SHIFT 8 /* the fastest-packet reference follows a slowly growing path delay */
#define DEPTH_AVG_SHIFT 4 /* average depth over ~16 ticks */
#define SHRINK_EVERY 10 /* ticks between two frames dropped to reduce the delay */
#define LATE_RESYNC 10 /* this many packets in a row from before the window: the sequence moved back */
#define JUMP_LIMIT_FACTOR 4 /* lateness beyond 4 × max delay is a timestamp jump, not jitter */

enum { ST_IDLE, ST_BUFFERING, ST_PLAYING };

typedef struct jb_slot {
  int64_t seq;
  uint32_t ts;
  uint16_t len;
  uint8_t used, pt, marker;
} jb_slot;

struct ml_jitter {
  uint32_t rate, capacity, mask, max_payload, min_ms, max_ms;
  uint32_t ptime, ptime_candidate; /* clock units */
  uint32_t target, min_frames, max_frames; /* frames */
  int state;
  uint8_t played_any; /* since create/reset/resync: an earlier packet can no longer move the head back */
  int64_t next, highest; /* extended sequence numbers */
  uint32_t highest_ts, count;
  /* delay estimation, clock units */
  uint8_t have_transit;
  uint32_t base, last_transit, last_ts, jitter; /* jitter << 4 (RFC 3550 A.8) */
  uint64_t peak; /* << 8 */
  int64_t depth_avg; /* frames << 8 */
  uint32_t since_shrink, misses, late_run;
  ml_jitter_stats st; /* the counters */
  jb_slot *slots;
  uint8_t *data;
};

static uint32_t pow2_at_least(uint32_t n)
{
  uint32_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

static uint32_t ms_to_units(const ml_jitter *jb, uint32_t ms)
{
  return (uint32_t)((uint64_t)ms * jb->rate / 1000);
}

static uint32_t units_to_us(const ml_jitter *jb, uint64_t units)
{
  uint64_t us = units * 1000000 / jb->rate;
  return us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* Bounds in frames for the current ptime; the target follows the peak. */
static void target_update(ml_jitter *jb)
{
  uint32_t p = jb->ptime;
  jb->min_frames = (ms_to_units(jb, jb->min_ms) + p - 1) / p;
  if (jb->min_frames < 1) jb->min_frames = 1;
  jb->max_frames = ms_to_units(jb, jb->max_ms) / p;
  if (jb->max_frames > jb->capacity - 1) jb->max_frames = jb->capacity - 1;
  if (jb->max_frames < jb->min_frames) jb->max_frames = jb->min_frames;
  /* lateness within an eighth of a ptime is the tick's own granularity */
  uint64_t late = jb->peak >> 8, slack = p / 8;
  late = late > slack ? late - slack : 0;
  uint64_t t = (late + p - 1) / p + 1;
  if (t < jb->min_frames) t = jb->min_frames;
  if (t > jb->max_frames) t = jb->max_frames;
  jb->target = (uint32_t)t;
}

ml_jitter *ml_jitter_create(const ml_jitter_config *cfg)
{
  ml_jitter_config c = cfg ? *cfg : (ml_jitter_config){0};
  if (!c.clock_rate) c.clock_rate = 8000;
  if (!c.capacity) c.capacity = 32;
  if (!c.max_payload) c.max_payload = 480;
  if (!c.min_delay_ms) c.min_delay_ms = 20;
  if (!c.max_delay_ms) c.max_delay_ms = 200;
  if (!c.ptime_ms) c.ptime_ms = 20;
  if (c.clock_rate < 1000 || c.clock_rate > 192000 || c.capacity > 4096 || c.capacity < 2 ||
      c.max_payload > UINT16_MAX || c.min_delay_ms > c.max_delay_ms || c.max_delay_ms > 10000 ||
      c.ptime_ms > 1000)
    return NULL;
  uint32_t cap = pow2_at_least(c.capacity);
  size_t head = (sizeof(ml_jitter) + 15) & ~(size_t)15;
  ml_jitter *jb = calloc(1, head + cap * sizeof(jb_slot) + (size_t)cap * c.max_payload);
  if (!jb) return NULL;
  jb->slots = (jb_slot *)((uint8_t *)jb + head);
  jb->data = (uint8_t *)(jb->slots + cap);
  jb->rate = c.clock_rate;
  jb->capacity = cap;
  jb->mask = cap - 1;
  jb->max_payload = c.max_payload;
  jb->min_ms = c.min_delay_ms;
  jb->max_ms = c.max_delay_ms;
  jb->ptime = ms_to_units(jb, c.ptime_ms);
  if (!jb->ptime) jb->ptime = 1;
  target_update(jb);
  return jb;
}

void ml_jitter_free(ml_jitter *jb) { free(jb); }

static void flush(ml_jitter *jb)
{
  for (uint32_t i = 0; i < jb->capacity; i++) jb->slots[i].used = 0;
  jb->st.flushed += jb->count;
  jb->count = 0;
}

void ml_jitter_reset(ml_jitter *jb)
{
  flush(jb);
  jb->state = ST_IDLE;
  jb->played_any = 0;
  jb->have_transit = 0;
  jb->peak = 0;
  jb->jitter = 0;
  jb->depth_avg = 0;
  jb->since_shrink = jb->misses = jb->late_run = 0;
  jb->ptime_candidate = 0;
  target_update(jb);
}

/* Start over at ext: after a reset, or when the sequence left the window. */
static void restart_at(ml_jitter *jb, int64_t ext, uint32_t ts)
{
  flush(jb);
  jb->state = ST_BUFFERING;
  jb->played_any = 0;
  jb->next = jb->highest = ext;
  jb->highest_ts = ts;
  jb->late_run = 0;
  jb->depth_avg = 0;
}

/* Lateness of this packet against the fastest one seen (the base), and the
 * RFC 3550 jitter for the statistics. */
static void delay_observe(ml_jitter *jb, uint32_t ts, uint64_t arrival_ns)
{
  uint32_t arrival = (uint32_t)(arrival_ns / 1000 * jb->rate / 1000000);
  uint32_t transit = arrival - ts;
  if (!jb->have_transit) {
    jb->base = jb->last_transit = transit;
    jb->last_ts = ts;
    jb->have_transit = 1;
    return;
  }
  if (ts != jb->last_ts) {
    int32_t dd = (int32_t)(transit - jb->last_transit);
    uint32_t ad = dd < 0 ? (uint32_t) - (int64_t)dd : (uint32_t)dd;
    jb->jitter += ad - ((jb->jitter + 8) >> 4);
  }
  jb->last_transit = transit;
  jb->last_ts = ts;

  int32_t d = (int32_t)(transit - jb->base);
  uint64_t jump = (uint64_t)ms_to_units(jb, jb->max_ms) * JUMP_LIMIT_FACTOR;
  if (d < 0 && (uint64_t) - (int64_t)d <= jump) {
    /* faster than the base: everything seen so far was later than thought */
    jb->peak += (uint64_t) - (int64_t)d << 8;
    jb->base = transit;
    d = 0;
  } else if (d < 0 || (uint64_t)d > jump) {
    jb->base = transit; /* the sender's timestamps jumped: start measuring again */
    d = 0;
  } else {
    jb->base += (uint32_t)d >> BASE_CREEP_SHIFT;
  }
  jb->peak -= (jb->peak + (1u << PEAK_DECAY_SHIFT) - 1) >> PEAK_DECAY_SHIFT; /* rounded up: reaches 0 */
  if (((uint64_t)d << 8) > jb->peak) jb->peak = (uint64_t)d << 8;
  uint64_t cap = jump << 8;
  if (jb->peak > cap) jb->peak = cap;
  target_update(jb);
}

/* Two equal timestamp steps per packet in a row make the ptime; silence gaps,
 * events and odd steps are ignored. */
static void ptime_learn(ml_jitter *jb, int64_t dseq, uint32_t dts)
{
  if (dseq <= 0 || dseq > 4 || dts % dseq) return;
  uint32_t per = dts / (uint32_t)dseq;
  if (per < ms_to_units(jb, 5) || per > ms_to_units(jb, 120)) return;
  if (per == jb->ptime_candidate && per != jb->ptime) {
    jb->ptime = per;
    target_update(jb);
  }
  jb->ptime_candidate = per;
}

static void slot_store(ml_jitter *jb, int64_t ext, const ml_rtp_packet *p)
{
  jb_slot *s = &jb->slots[(uint64_t)ext & jb->mask];
  s->seq = ext;
  s->ts = p->ts;
  s->len = (uint16_t)p->payload_len;
  s->pt = p->pt;
  s->marker = p->marker;
  s->used = 1;
  if (p->payload_len)
    memcpy(jb->data + ((uint64_t)ext & jb->mask) * jb->max_payload, p->payload, p->payload_len);
  jb->count++;
  jb->st.received++;
  if (ext > jb->highest) {
    ptime_learn(jb, ext - jb->highest, p->ts - jb->highest_ts);
    jb->highest = ext;
    jb->highest_ts = p->ts;
  }
}

static int put_late(ml_jitter *jb, int64_t ext, const ml_rtp_packet *p, uint64_t arrival_ns)
{
  delay_observe(jb, p->ts, arrival_ns); /* late packets are what the delay must cover */
  jb->st.late++;
  /* only packets from before the whole window tell of a sequence restart;
   * merely late ones are jitter */
  if (jb->next - ext < jb->capacity) {
    jb->late_run = 0;
    return ML_JITTER_LATE;
  }
  if (++jb->late_run < LATE_RESYNC) return ML_JITTER_LATE;
  jb->st.resyncs++;
  restart_at(jb, ext, p->ts);
  slot_store(jb, ext, p);
  return ML_JITTER_RESYNC;
}

int ml_jitter_put(ml_jitter *jb, const ml_rtp_packet *p, uint64_t arrival_ns)
{
  if (p->payload_len > jb->max_payload) {
    jb->st.too_big++;
    return ML_JITTER_TOO_BIG;
  }
  if (jb->state == ST_IDLE) restart_at(jb, p->seq, p->ts);
  int64_t ext = jb->highest + (int16_t)(uint16_t)(p->seq - (uint16_t)jb->highest);
  int rc = ML_JITTER_OK;
  if (ext < jb->next) {
    /* before playout starts an earlier packet simply moves the head back */
    if (jb->played_any || jb->highest - ext >= jb->capacity) return put_late(jb, ext, p, arrival_ns);
    jb->next = ext;
  }
  jb->late_run = 0;
  if (ext - jb->next >= jb->capacity) {
    jb->st.resyncs++;
    restart_at(jb, ext, p->ts);
    rc = ML_JITTER_RESYNC;
  }
  if (jb->slots[(uint64_t)ext & jb->mask].used) {
    jb->st.duplicates++;
    return ML_JITTER_DUPLICATE;
  }
  delay_observe(jb, p->ts, arrival_ns);
  slot_store(jb, ext, p);
  return rc;
}

/* ---- playout ---------------------------------------------------------------- */

static uint32_t expected_ts(const ml_jitter *jb, int64_t ext)
{
  return jb->highest_ts + (uint32_t)((ext - jb->highest) * (int64_t)jb->ptime);
}

static jb_slot *head(ml_jitter *jb) { return &jb->slots[(uint64_t)jb->next & jb->mask]; }

static int get_lost(ml_jitter *jb, ml_jitter_frame *out)
{
  out->seq = (uint16_t)jb->next;
  out->ts = expected_ts(jb, jb->next);
  jb->st.concealed++;
  return ML_JITTER_LOST;
}

/* Nothing held while playing: conceal without moving on, so a packet that is
 * only late is still played (the delay grows by one frame); after max delay
 * the sender has paused: back to buffering, silence. */
static int get_underrun(ml_jitter *jb, ml_jitter_frame *out)
{
  jb->st.underruns++;
  if (++jb->misses > jb->max_frames) {
    jb->state = ST_BUFFERING;
    return ML_JITTER_EMPTY;
  }
  return get_lost(jb, out);
}

/* Over the target on average: drop the head frame (paced, so it is heard as
 * a rare short skip rather than a stutter). */
static void shrink(ml_jitter *jb, int64_t *span)
{
  if (++jb->since_shrink < SHRINK_EVERY) return;
  if (jb->depth_avg <= (int64_t)(jb->target + 1) << 8 || *span <= jb->target) return;
  jb_slot *s = head(jb);
  if (s->used) {
    s->used = 0;
    jb->count--;
    jb->st.dropped++;
  } else {
    jb->st.lost++;
  }
  jb->next++;
  (*span)--;
  jb->since_shrink = 0;
  jb->depth_avg -= 1 << 8;
}

/* The head frame is missing but later ones are here. Above the target the
 * gap is skipped at once (a burst loss must not add to the delay); below it
 * we conceal and wait, which is how the delay grows to what the network
 * needs; at the target the frame is lost. Returns 0 if a frame is now at the
 * head. */
static int get_missing(ml_jitter *jb, int64_t span, ml_jitter_frame *out)
{
  while (!head(jb)->used && span > jb->target) {
    jb->st.lost++;
    jb->next++;
    span--;
  }
  if (head(jb)->used) return 0;
  if (span < jb->target) {
    jb->st.stretched++;
    return get_lost(jb, out);
  }
  jb->st.lost++;
  int rc = get_lost(jb, out);
  jb->next++;
  return rc;
}

int ml_jitter_get(ml_jitter *jb, ml_jitter_frame *out)
{
  memset(out, 0, sizeof *out);
  if (jb->state == ST_IDLE) return ML_JITTER_EMPTY;
  int64_t span = jb->highest - jb->next + 1;
  if (jb->state == ST_BUFFERING) {
    if (span < jb->target) return ML_JITTER_EMPTY;
    jb->state = ST_PLAYING;
  }
  if (span <= 0) return get_underrun(jb, out);
  jb->misses = 0;
  jb->depth_avg += (((int64_t)span << 8) - jb->depth_avg) >> DEPTH_AVG_SHIFT;
  shrink(jb, &span);
  if (!head(jb)->used) {
    int rc = get_missing(jb, span, out);
    if (rc) return rc;
  }
  jb_slot *s = head(jb);
  out->data = jb->data + ((uint64_t)jb->next & jb->mask) * jb->max_payload;
  out->len = s->len;
  out->seq = (uint16_t)s->seq;
  out->ts = s->ts;
  out->pt = s->pt;
  out->marker = s->marker;
  s->used = 0;
  jb->count--;
  jb->st.played++;
  jb->played_any = 1;
  jb->next++;
  return ML_JITTER_FRAME;
}

void ml_jitter_stats_get(const ml_jitter *jb, ml_jitter_stats *out)
{
  *out = jb->st;
  out->buffered = jb->count;
  out->ptime_ms = (uint32_t)((uint64_t)jb->ptime * 1000 / jb->rate);
  out->target_ms = (uint32_t)((uint64_t)jb->target * jb->ptime * 1000 / jb->rate);
  int64_t span = jb->state == ST_IDLE ? 0 : jb->highest - jb->next + 1;
  out->depth_ms = span > 0 ? (uint32_t)((uint64_t)span * jb->ptime * 1000 / jb->rate) : 0;
  out->jitter_us = units_to_us(jb, jb->jitter >> 4);
  out->peak_us = units_to_us(jb, jb->peak >> 8);
}

uint32_t ml_jitter_ptime_ms(const ml_jitter *jb) { return (uint32_t)((uint64_t)jb->ptime * 1000 / jb->rate); }
