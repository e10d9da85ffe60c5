/* RTP packets and stream state (RFC 3550). See rtp.h. */
#include "rtp.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void wr16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void wr32(uint8_t *p, uint32_t v)
{
  wr16(p, (uint16_t)(v >> 16));
  wr16(p + 2, (uint16_t)v);
}

/* ---- parse ---------------------------------------------------------------- */

/* RFC 5761 §4: with RTP and RTCP on one port, a second byte of 192..223 is
 * RTCP (RTP avoids payload types 64..95 for that reason). */
static int is_rtcp(const uint8_t *buf) { return buf[1] >= 192 && buf[1] <= 223; }

/* RFC 3550 A.2, minus the rules that would reject reduced-size RTCP (RFC 5506):
 * every packet of the compound is version 2 and the lengths add up exactly. */
static int rtcp_check(const uint8_t *buf, size_t len)
{
  size_t off = 0;
  while (off < len) {
    if (len - off < 4 || buf[off] >> 6 != 2) return ML_RTP_ERTCP;
    size_t n = ((size_t)rd16(buf + off + 2) + 1) * 4;
    if (n > len - off) return ML_RTP_ERTCP;
    off += n;
  }
  return ML_RTP_RTCP;
}

static int parse_ext(const uint8_t *buf, size_t len, size_t *off, ml_rtp_packet *out)
{
  if (len - *off < 4) return ML_RTP_EEXT;
  out->ext_profile = rd16(buf + *off);
  size_t n = (size_t)rd16(buf + *off + 2) * 4;
  *off += 4;
  if (n > len - *off) return ML_RTP_EEXT;
  out->ext = buf + *off;
  out->ext_len = n;
  *off += n;
  return ML_RTP_OK;
}

int ml_rtp_parse(const uint8_t *buf, size_t len, ml_rtp_packet *out)
{
  if (len < ML_RTP_HEADER_SIZE) {
    /* the smallest RTCP packet (an empty RR) is 8 bytes */
    if (len >= 4 && buf[0] >> 6 == 2 && is_rtcp(buf)) return rtcp_check(buf, len);
    return ML_RTP_ESHORT;
  }
  if (buf[0] >> 6 != 2) return ML_RTP_EVERSION;
  if (is_rtcp(buf)) return rtcp_check(buf, len);

  ml_rtp_packet p = {0};
  p.marker = buf[1] >> 7;
  p.pt = buf[1] & 0x7f;
  p.seq = rd16(buf + 2);
  p.ts = rd32(buf + 4);
  p.ssrc = rd32(buf + 8);
  p.csrc_count = buf[0] & 0x0f;
  size_t off = ML_RTP_HEADER_SIZE;
  if ((size_t)p.csrc_count * 4 > len - off) return ML_RTP_ECSRC;
  p.csrc = buf + off;
  off += (size_t)p.csrc_count * 4;
  if (buf[0] & 0x10) {
    p.has_ext = 1;
    int rc = parse_ext(buf, len, &off, &p);
    if (rc != ML_RTP_OK) return rc;
  }
  if (buf[0] & 0x20) {
    /* the last byte counts the padding, itself included, so 0 is invalid */
    p.padding = buf[len - 1];
    if (p.padding == 0 || p.padding > len - off) return ML_RTP_EPADDING;
  }
  p.payload = buf + off;
  p.payload_len = len - off - p.padding;
  *out = p;
  return ML_RTP_OK;
}

const char *ml_rtp_strerror(int result)
{
  switch (result) {
  case ML_RTP_OK:
    return "ok";
  case ML_RTP_RTCP:
    return "rtcp";
  case ML_RTP_ESHORT:
    return "short packet";
  case ML_RTP_EVERSION:
    return "bad version";
  case ML_RTP_ECSRC:
    return "CSRC list past the end";
  case ML_RTP_EEXT:
    return "extension past the end";
  case ML_RTP_EPADDING:
    return "bad padding";
  case ML_RTP_ERTCP:
    return "bad RTCP length";
  default:
    return "unknown";
  }
}

/* ---- write ---------------------------------------------------------------- */

size_t ml_rtp_write_header(uint8_t *buf, size_t cap, const ml_rtp_header *h)
{
  if (cap < ML_RTP_HEADER_SIZE) return 0;
  buf[0] = 2 << 6;
  buf[1] = (uint8_t)((h->marker ? 0x80 : 0) | (h->pt & 0x7f));
  wr16(buf + 2, h->seq);
  wr32(buf + 4, h->ts);
  wr32(buf + 8, h->ssrc);
  return ML_RTP_HEADER_SIZE;
}

/* ---- sender --------------------------------------------------------------- */

/* getrandom only fails without entropy at early boot or under a seccomp
 * filter; the clock then still makes two streams unlikely to collide. */
static void random_fill(void *p, size_t n)
{
  if (getrandom(p, n, GRND_NONBLOCK) == (ssize_t)n) return;
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  uint64_t x = (uint64_t)t.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)t.tv_sec ^ (uintptr_t)p;
  for (size_t i = 0; i < n; i++) {
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    ((uint8_t *)p)[i] = (uint8_t)((x * 0x2545F4914F6CDD1Dull) >> 56);
  }
}

void ml_rtp_sender_init(ml_rtp_sender *s)
{
  uint32_t r[3];
  random_fill(r, sizeof r);
  memset(s, 0, sizeof *s);
  s->ssrc = r[0];
  s->seq = (uint16_t)r[1];
  s->ts = r[2];
  s->marker_next = 1;
}

static size_t sender_emit(ml_rtp_sender *s, uint8_t *buf, size_t cap, uint8_t pt, int marker, uint32_t ts)
{
  ml_rtp_header h = {.marker = marker != 0, .pt = pt, .seq = s->seq, .ts = ts, .ssrc = s->ssrc};
  size_t n = ml_rtp_write_header(buf, cap, &h);
  if (n == 0) return 0;
  s->seq++;
  s->packets++;
  return n;
}

size_t ml_rtp_sender_write(ml_rtp_sender *s, uint8_t *buf, size_t cap, uint8_t pt, int marker,
                           uint32_t samples)
{
  size_t n = sender_emit(s, buf, cap, pt, marker || s->marker_next, s->ts);
  if (n == 0) return 0;
  s->ts += samples;
  s->marker_next = 0;
  return n;
}

size_t ml_rtp_sender_write_at(ml_rtp_sender *s, uint8_t *buf, size_t cap, uint8_t pt, int marker, uint32_t ts)
{
  return sender_emit(s, buf, cap, pt, marker, ts);
}

void ml_rtp_sender_advance(ml_rtp_sender *s, uint32_t samples)
{
  s->ts += samples;
  s->marker_next = 1;
}

/* ---- receiver ------------------------------------------------------------- */

void ml_rtp_receiver_init(ml_rtp_receiver *r, uint32_t clock_rate)
{
  memset(r, 0, sizeof *r);
  r->clock_rate = clock_rate;
}

/* A.1 init_seq: a new sequence space starts at seq */
static void receiver_restart(ml_rtp_receiver *r, const ml_rtp_packet *p)
{
  r->started = 1;
  r->ssrc = p->ssrc;
  r->base_seq = p->seq;
  r->max_seq = p->seq;
  r->bad_seq = (uint32_t)p->seq + 1 + (1u << 16); /* never equal to a 16-bit seq + 1 */
  r->cycles = 0;
  r->received = 0;
  r->expected_prior = r->received_prior = 0;
  r->have_transit = 0;
  r->jitter = 0;
}

/* A.1 update_seq, without probation. */
static int receiver_seq(ml_rtp_receiver *r, uint16_t seq)
{
  uint16_t udelta = (uint16_t)(seq - r->max_seq);
  if (udelta < ML_RTP_MAX_DROPOUT) {
    if (seq < r->max_seq) r->cycles += 1u << 16; /* wrapped */
    r->max_seq = seq;
    return ML_RTP_RX_OK;
  }
  if (udelta <= (uint16_t)(65536 - ML_RTP_MAX_MISORDER)) {
    if (seq == r->bad_seq) return ML_RTP_RX_RESYNC; /* two in a row after a jump: believe it */
    r->bad_seq = (uint16_t)(seq + 1);
    r->bad++;
    return ML_RTP_RX_BAD;
  }
  return ML_RTP_RX_OLD;
}

/* A.8: arrival time in clock units; only differences matter, so wrapping
 * in 32 bits is harmless. Microseconds keep the product in 64 bits for
 * centuries at 48 kHz. */
static void receiver_jitter(ml_rtp_receiver *r, const ml_rtp_packet *p, uint64_t arrival_ns)
{
  uint32_t arrival = (uint32_t)(arrival_ns / 1000 * r->clock_rate / 1000000);
  uint32_t transit = arrival - p->ts;
  if (r->have_transit && p->ts != r->last_ts) {
    int32_t d = (int32_t)(transit - r->transit);
    uint32_t ad = d < 0 ? (uint32_t) - (int64_t)d : (uint32_t)d;
    r->jitter += ad - ((r->jitter + 8) >> 4);
  }
  if (!r->have_transit || p->ts != r->last_ts) {
    r->transit = transit;
    r->last_ts = p->ts;
    r->have_transit = 1;
  }
}

int ml_rtp_receiver_update(ml_rtp_receiver *r, const ml_rtp_packet *p, uint64_t arrival_ns)
{
  int rc;
  if (!r->started) {
    receiver_restart(r, p);
    rc = ML_RTP_RX_FIRST;
  } else if (p->ssrc != r->ssrc) {
    receiver_restart(r, p);
    r->ssrc_changes++;
    rc = ML_RTP_RX_NEW_SSRC;
  } else {
    rc = receiver_seq(r, p->seq);
    if (rc == ML_RTP_RX_BAD) return rc;
    if (rc == ML_RTP_RX_RESYNC) {
      receiver_restart(r, p);
      r->resyncs++;
    }
  }
  r->received++;
  receiver_jitter(r, p, arrival_ns);
  return rc;
}

static uint32_t receiver_ext_max(const ml_rtp_receiver *r) { return r->cycles + r->max_seq; }

static uint64_t receiver_expected(const ml_rtp_receiver *r)
{
  return r->started ? (uint64_t)receiver_ext_max(r) - r->base_seq + 1 : 0;
}

void ml_rtp_receiver_stats(const ml_rtp_receiver *r, ml_rtp_rx_stats *out)
{
  memset(out, 0, sizeof *out);
  out->ext_max_seq = receiver_ext_max(r);
  out->expected = receiver_expected(r);
  out->received = r->received;
  out->lost = (int64_t)out->expected - (int64_t)out->received;
  out->jitter = r->jitter >> 4;
  out->jitter_us = r->clock_rate ? (uint32_t)((uint64_t)out->jitter * 1000000 / r->clock_rate) : 0;
  out->ssrc_changes = r->ssrc_changes;
  out->resyncs = r->resyncs;
  out->bad = r->bad;
}

uint8_t ml_rtp_receiver_fraction_lost(ml_rtp_receiver *r)
{
  uint32_t expected = (uint32_t)receiver_expected(r), received = (uint32_t)r->received;
  uint32_t expected_interval = expected - r->expected_prior;
  uint32_t received_interval = received - r->received_prior;
  r->expected_prior = expected;
  r->received_prior = received;
  if (expected_interval == 0 || received_interval >= expected_interval) return 0;
  return (uint8_t)(((uint64_t)(expected_interval - received_interval) << 8) / expected_interval);
}
