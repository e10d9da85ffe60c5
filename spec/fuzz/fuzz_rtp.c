/* libFuzzer harness for the media receive path (engine/media): RTP/RTCP
 * parsing, RFC 4733 payloads, the RTP receiver state and the jitter buffer.
 *
 * The input is used twice:
 *  1. as one datagram: ml_rtp_parse must keep its views inside the buffer,
 *     and what it accepts must survive a header write + parse round trip;
 *  2. as a call: records [ctl][len][len bytes of datagram]..., where ctl's
 *     low 3 bits are how many playout ticks follow the packet and its high 5
 *     bits the milliseconds since the previous packet. Telephone-events (PT
 *     101) go to a DTMF receiver, the rest through the RTP receiver into a
 *     jitter buffer sized by the first byte.
 *  3. as the parameters of an outgoing DTMF event (digit, duration, ptime,
 *     clock rate) and of the losses and duplicates it meets on the way to a
 *     receiver, which must report exactly that digit, exactly once.
 * Invariants: frames come out in sequence order with the bytes that were put
 * for that sequence number; every stored packet is played, dropped, held or
 * flushed; nothing exceeds the configured sizes; the echo of every packet
 * through a sender has continuous sequence numbers and timestamps. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtmf.h"
#include "jitter.h"
#include "rtp.h"

#define MS 1000000ull
#define TE_PT 101

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                                        \
  do {                                                                                                       \
    if (!(cond)) {                                                                                           \
      fprintf(stderr, "fuzz_rtp: invariant failed: %s (line %d)\n", #cond, __LINE__);                        \
      abort();                                                                                               \
    }                                                                                                        \
  } while (0)

static uint32_t hash(const uint8_t *p, size_t n)
{
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h ^ (uint32_t)n;
}

static void check_one(const uint8_t *data, size_t size)
{
  ml_rtp_packet p;
  int rc = ml_rtp_parse(data, size, &p);
  REQUIRE(rc >= ML_RTP_ERTCP && rc <= ML_RTP_RTCP);
  REQUIRE(ml_rtp_strerror(rc) != NULL);
  if (rc != ML_RTP_OK) return;
  size_t head = ML_RTP_HEADER_SIZE + (size_t)p.csrc_count * 4 + (p.has_ext ? 4 + p.ext_len : 0);
  REQUIRE(p.payload == data + head);
  REQUIRE(head + p.payload_len + p.padding == size);
  REQUIRE(p.csrc == data + ML_RTP_HEADER_SIZE);
  REQUIRE(!p.has_ext || (p.ext >= data && p.ext + p.ext_len <= data + size));
  REQUIRE(p.pt < 128);

  uint8_t b[ML_RTP_HEADER_SIZE];
  ml_rtp_header h = {.marker = p.marker, .pt = p.pt, .seq = p.seq, .ts = p.ts, .ssrc = p.ssrc};
  REQUIRE(ml_rtp_write_header(b, sizeof b, &h) == ML_RTP_HEADER_SIZE);
  ml_rtp_packet q;
  REQUIRE(ml_rtp_parse(b, sizeof b, &q) == ML_RTP_OK || p.pt >= 64); /* 64..95 with marker: RTCP range */
  if (ml_rtp_parse(b, sizeof b, &q) == ML_RTP_OK)
    REQUIRE(q.seq == p.seq && q.ts == p.ts && q.ssrc == p.ssrc && q.pt == p.pt && q.marker == p.marker);

  ml_dtmf_event ev;
  if (ml_dtmf_parse(p.payload, p.payload_len, &ev) == 0) {
    REQUIRE(ev.volume < 64 && ev.end <= 1);
    uint8_t w[4];
    ml_dtmf_write(w, &ev);
    REQUIRE(w[0] == p.payload[0] && w[2] == p.payload[2] && w[3] == p.payload[3]);
    REQUIRE((w[1] & 0xbf) == (p.payload[1] & 0xbf)); /* the reserved bit is not kept */
  }
}

/* ---- a call ------------------------------------------------------------------- */

typedef struct call {
  ml_jitter *jb;
  ml_rtp_receiver rx;
  ml_dtmf_receiver dtmf;
  uint64_t now;
  int have_last;
  uint16_t last_played;
  uint32_t max_payload, capacity;
  ml_rtp_sender tx; /* echoes every audio packet */
} call;

/* hash of the payload stored for each sequence number, valid when its
 * generation is this run's (no 64 KB clear per run) */
static uint32_t shadow[65536], shadow_gen[65536], generation;

static void call_restart(call *c) { c->have_last = 0; /* sequence order restarts */ }

static void call_tick(call *c)
{
  ml_jitter_frame f;
  int rc = ml_jitter_get(c->jb, &f);
  REQUIRE(rc == ML_JITTER_EMPTY || rc == ML_JITTER_FRAME || rc == ML_JITTER_LOST);
  if (rc != ML_JITTER_FRAME) {
    REQUIRE(f.data == NULL && f.len == 0);
    return;
  }
  REQUIRE(f.data != NULL && f.len <= c->max_payload);
  REQUIRE(shadow_gen[f.seq] == generation && shadow[f.seq] == hash(f.data, f.len));
  if (c->have_last) REQUIRE((int16_t)(uint16_t)(f.seq - c->last_played) > 0);
  c->have_last = 1;
  c->last_played = f.seq;
}

static void call_audio(call *c, const ml_rtp_packet *p)
{
  int rx = ml_rtp_receiver_update(&c->rx, p, c->now);
  if (rx == ML_RTP_RX_BAD) return;
  if (rx == ML_RTP_RX_NEW_SSRC || rx == ML_RTP_RX_RESYNC) {
    ml_jitter_reset(c->jb);
    call_restart(c);
  }
  int rc = ml_jitter_put(c->jb, p, c->now);
  REQUIRE(rc >= ML_JITTER_TOO_BIG && rc <= ML_JITTER_RESYNC);
  if (rc == ML_JITTER_RESYNC) call_restart(c);
  if (rc == ML_JITTER_OK || rc == ML_JITTER_RESYNC) {
    shadow[p->seq] = hash(p->payload, p->payload_len);
    shadow_gen[p->seq] = generation;
  }
  if (rc == ML_JITTER_TOO_BIG) REQUIRE(p->payload_len > c->max_payload);
}

/* Send the packet back through a sender: continuous seq, ts by its samples
 * (a byte per sample, as G.711), the talkspurt marker after a pause. */
static void call_echo(call *c, const ml_rtp_packet *p)
{
  uint8_t b[ML_RTP_HEADER_SIZE];
  ml_rtp_sender before = c->tx;
  if (p->marker) ml_rtp_sender_advance(&c->tx, 160);
  uint32_t ts = c->tx.ts;
  REQUIRE(ml_rtp_sender_write(&c->tx, b, sizeof b, 0, 0, (uint32_t)p->payload_len) == ML_RTP_HEADER_SIZE);
  ml_rtp_packet q;
  REQUIRE(ml_rtp_parse(b, sizeof b, &q) == ML_RTP_OK);
  REQUIRE(q.seq == before.seq && c->tx.seq == (uint16_t)(before.seq + 1));
  REQUIRE(q.ts == ts && c->tx.ts == ts + (uint32_t)p->payload_len);
  REQUIRE(q.marker == (before.packets == 0 || p->marker));
  REQUIRE(q.ssrc == c->tx.ssrc);
}

static void call_packet(call *c, const uint8_t *pkt, size_t len)
{
  ml_rtp_packet p;
  if (ml_rtp_parse(pkt, len, &p) != ML_RTP_OK) return;
  call_echo(c, &p);
  if (p.pt == TE_PT) {
    char d = 0;
    int rc = ml_dtmf_receiver_feed(&c->dtmf, p.ts, p.marker, p.payload, p.payload_len, &d);
    REQUIRE(rc >= -1 && rc <= 1);
    if (rc == 1) REQUIRE(d && strchr("0123456789*#ABCD", d));
    REQUIRE(c->dtmf.digits <= c->dtmf.packets);
    return;
  }
  call_audio(c, &p);
}

static void check_stats(call *c)
{
  ml_jitter_stats st;
  ml_jitter_stats_get(c->jb, &st);
  REQUIRE(st.received == st.played + st.dropped + st.buffered + st.flushed);
  REQUIRE(st.buffered <= c->capacity);
  REQUIRE(st.stretched <= st.concealed);
  ml_rtp_rx_stats rs;
  ml_rtp_receiver_stats(&c->rx, &rs);
  REQUIRE(rs.lost == (int64_t)rs.expected - (int64_t)rs.received);
  (void)ml_rtp_receiver_fraction_lost(&c->rx);
}

static void run_call(const uint8_t *data, size_t size)
{
  if (size < 1) return;
  uint8_t cfgb = data[0];
  call c = {0};
  ml_jitter_config cfg = {
      .capacity = 4u << (cfgb & 3), /* 4..32 */
      .max_payload = (cfgb & 4) ? 64 : 480,
      .min_delay_ms = (cfgb & 8) ? 60 : 20,
      .max_delay_ms = (cfgb & 16) ? 100 : 200,
      .ptime_ms = (cfgb & 32) ? 30 : 20,
  };
  c.jb = ml_jitter_create(&cfg);
  REQUIRE(c.jb != NULL);
  c.max_payload = cfg.max_payload;
  c.capacity = cfg.capacity;
  ml_rtp_receiver_init(&c.rx, 8000);
  ml_dtmf_receiver_init(&c.dtmf);
  ml_rtp_sender_init(&c.tx);
  c.tx.seq = 65530; /* wraps early */
  generation++;

  size_t off = 1;
  while (off + 2 <= size) {
    uint8_t ctl = data[off], len = data[off + 1];
    off += 2;
    size_t n = len <= size - off ? len : size - off;
    c.now += (uint64_t)(ctl >> 3) * MS;
    call_packet(&c, data + off, n);
    off += n;
    for (int t = 0; t < (ctl & 7); t++) call_tick(&c);
    check_stats(&c);
  }
  for (int t = 0; t < 40; t++) call_tick(&c); /* drain */
  check_stats(&c);
  ml_jitter_free(c.jb);
}

/* ---- DTMF sender -> receiver ------------------------------------------------ */

static void run_dtmf(const uint8_t *data, size_t size)
{
  if (size < 8) return;
  static const char keys[] = "0123456789*#ABCDabcd";
  char digit = keys[data[0] % (sizeof keys - 1)];
  uint32_t duration_ms = 1 + (uint32_t)(data[1] | (data[2] & 0x3f) << 8); /* 1 ms .. 16 s */
  uint32_t ptime_ms = 10 + (uint32_t)(data[3] % 6) * 10;
  static const uint32_t rates[] = {8000, 16000, 48000};
  uint32_t rate = rates[data[4] % 3];
  uint32_t ts = (uint32_t)data[5] << 24 | (uint32_t)data[6] << 16 | (uint32_t)data[7] << 8;
  ml_dtmf_sender s;
  REQUIRE(ml_dtmf_sender_start(&s, digit, duration_ms, ptime_ms, rate, ts) == 0);
  unsigned total = ml_dtmf_sender_packets(&s), n = 0, delivered = 0, digits = 0;
  ml_dtmf_receiver r;
  ml_dtmf_receiver_init(&r);
  ml_dtmf_packet pk;
  uint16_t prev = 0;
  char got = 0;
  while (ml_dtmf_sender_next(&s, &pk)) {
    REQUIRE(pk.ts == ts && pk.marker == (n == 0) && pk.duration >= prev && pk.duration > 0);
    prev = pk.duration;
    /* input bits decide: 0 lost, 1 delivered, both for duplicates; the last
     * end packet always arrives so something does */
    uint8_t fate = 8 + n / 4 < size ? data[8 + n / 4] >> (2 * (n % 4)) & 3 : 1;
    if (n + 1 == total && !delivered) fate = 1;
    for (int k = 0; k < (fate == 3 ? 2 : fate); k++) {
      char d = 0;
      if (ml_dtmf_receiver_feed(&r, pk.ts, pk.marker, pk.payload, sizeof pk.payload, &d) == 1)
        digits++, got = d;
      delivered++;
    }
    n++;
  }
  REQUIRE(pk.end && n == total && n >= 4);
  REQUIRE(digits == 1);
  REQUIRE(got == ml_dtmf_digit((uint8_t)ml_dtmf_event_code(digit)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  check_one(data, size);
  run_call(data, size);
  run_dtmf(data, size);
  return 0;
}
