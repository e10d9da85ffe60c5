/* RTP packets and stream state (engine/media/rtp.c): header validation,
 * RTCP recognition, the header writer, sender continuity, receiver sequence
 * tracking (wrap, loss, reorder, restart, SSRC change) and RFC 3550 jitter.
 * Prints the cost per packet of parse, receiver update and header write. */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "ml_test.h"
#include "rtp.h"

#define MS 1000000ull

/* A packet: fixed header (+ CSRCs, + extension, + padding) and a payload of
 * `payload` bytes of 0xd5. Returns its length. */
static size_t build(uint8_t *b, int cc, int ext_words, int pad, size_t payload)
{
  ml_rtp_header h = {.marker = 1, .pt = 0, .seq = 0x1234, .ts = 0xdeadbeef, .ssrc = 0x01020304};
  size_t n = ml_rtp_write_header(b, 2048, &h);
  b[0] |= (uint8_t)cc;
  for (int i = 0; i < cc; i++) {
    b[n++] = 0xc0, b[n++] = 0, b[n++] = 0, b[n++] = (uint8_t)i;
  }
  if (ext_words >= 0) {
    b[0] |= 0x10;
    b[n++] = 0xbe, b[n++] = 0xde, b[n++] = 0, b[n++] = (uint8_t)ext_words;
    for (int i = 0; i < ext_words * 4; i++) b[n++] = 0x11;
  }
  memset(b + n, 0xd5, payload);
  n += payload;
  if (pad > 0) {
    b[0] |= 0x20;
    memset(b + n, 0, (size_t)pad - 1);
    n += (size_t)pad;
    b[n - 1] = (uint8_t)pad;
  }
  return n;
}

static void test_parse_valid(void)
{
  TEST_BEGIN("parse: valid headers");
  uint8_t b[2048];
  ml_rtp_packet p;
  size_t n = build(b, 0, -1, 0, 160);
  CHECK_EQ(n, 172);
  CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_OK);
  CHECK_EQ(p.marker, 1);
  CHECK_EQ(p.pt, 0);
  CHECK_EQ(p.seq, 0x1234);
  CHECK_EQ(p.ts, 0xdeadbeef);
  CHECK_EQ(p.ssrc, 0x01020304);
  CHECK_EQ(p.csrc_count, 0);
  CHECK_EQ(p.has_ext, 0);
  CHECK(p.payload == b + 12);
  CHECK_EQ(p.payload_len, 160);
  CHECK_EQ(p.padding, 0);

  /* 2 CSRCs + a 2-word extension + 4 bytes of padding */
  n = build(b, 2, 2, 4, 160);
  CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_OK);
  CHECK_EQ(p.csrc_count, 2);
  CHECK(p.csrc == b + 12);
  CHECK_EQ(p.csrc[7], 1);
  CHECK_EQ(p.has_ext, 1);
  CHECK_EQ(p.ext_profile, 0xbede);
  CHECK_EQ(p.ext_len, 8);
  CHECK(p.ext == b + 24);
  CHECK(p.payload == b + 32);
  CHECK_EQ(p.payload_len, 160);
  CHECK_EQ(p.padding, 4);

  /* boundaries that are still valid: 15 CSRCs and nothing else, an empty
   * extension, padding that eats the whole payload, a header-only packet */
  n = build(b, 15, -1, 0, 0);
  CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_OK);
  CHECK_EQ(p.csrc_count, 15);
  CHECK_EQ(p.payload_len, 0);
  CHECK(p.payload == b + n);
  n = build(b, 0, 0, 0, 20);
  CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_OK);
  CHECK_EQ(p.ext_len, 0);
  CHECK_EQ(p.payload_len, 20);
  n = build(b, 0, -1, 1, 0);
  CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_OK);
  CHECK_EQ(p.payload_len, 0);
  CHECK_EQ(p.padding, 1);
  n = build(b, 1, 1, 255, 0);
  CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_OK);
  CHECK_EQ(p.payload_len, 0);
  CHECK_EQ(p.padding, 255);
  n = build(b, 0, -1, 0, 0);
  CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_OK);
  CHECK_EQ(p.payload_len, 0);
}

static void test_parse_invalid(void)
{
  TEST_BEGIN("parse: invalid headers");
  uint8_t b[2048];
  ml_rtp_packet p;
  size_t n = build(b, 0, -1, 0, 160);
  for (size_t len = 0; len < 12; len++) CHECK_EQ(ml_rtp_parse(b, len, &p), ML_RTP_ESHORT);
  for (int v = 0; v < 4; v++) {
    if (v == 2) continue;
    b[0] = (uint8_t)((b[0] & 0x3f) | v << 6);
    CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_EVERSION);
  }
  /* CSRC count past the end: 15 CSRCs need 72 bytes */
  n = build(b, 15, -1, 0, 0);
  CHECK_EQ(ml_rtp_parse(b, n - 1, &p), ML_RTP_ECSRC);
  n = build(b, 1, -1, 0, 0);
  CHECK_EQ(ml_rtp_parse(b, 15, &p), ML_RTP_ECSRC);
  /* extension: header cut, data cut by one byte */
  n = build(b, 0, 0, 0, 0);
  CHECK_EQ(ml_rtp_parse(b, n - 1, &p), ML_RTP_EEXT);
  CHECK_EQ(ml_rtp_parse(b, 12, &p), ML_RTP_EEXT);
  n = build(b, 2, 3, 0, 0);
  CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_OK);
  CHECK_EQ(ml_rtp_parse(b, n - 1, &p), ML_RTP_EEXT);
  b[23] = 0xff; /* claims 1020 bytes of extension */
  CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_EEXT);
  /* padding: count 0, count past the header, count exactly the payload + 1 */
  n = build(b, 0, -1, 4, 8);
  b[n - 1] = 0;
  CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_EPADDING);
  b[n - 1] = 13;
  CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_EPADDING);
  b[n - 1] = 12;
  CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_OK);
  CHECK_EQ(p.payload_len, 0);
  n = build(b, 1, 1, 4, 0);
  b[n - 1] = 5; /* would reach into the extension */
  CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_EPADDING);
  /* the padding count byte is the last one: a header-only packet with P set */
  n = build(b, 0, -1, 0, 0);
  b[0] |= 0x20;
  CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_EPADDING);
  CHECK_STR(ml_rtp_strerror(ML_RTP_EPADDING), "bad padding");
  CHECK_STR(ml_rtp_strerror(42), "unknown");
}

static size_t rtcp(uint8_t *b, uint8_t pt, int count, uint16_t words)
{
  memset(b, 0, (size_t)(words + 1) * 4);
  b[0] = (uint8_t)(0x80 | count);
  b[1] = pt;
  b[2] = (uint8_t)(words >> 8);
  b[3] = (uint8_t)words;
  return (size_t)(words + 1) * 4;
}

static void test_rtcp(void)
{
  TEST_BEGIN("RTCP on the RTP port");
  uint8_t b[256];
  ml_rtp_packet p;
  memset(&p, 0x5a, sizeof p);
  size_t n = rtcp(b, 200, 0, 6); /* SR without report blocks */
  CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_RTCP);
  CHECK_EQ(p.seq, 0x5a5a); /* out untouched */
  n = rtcp(b, 201, 0, 1); /* empty RR: 8 bytes */
  CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_RTCP);
  for (int pt = 200; pt <= 204; pt++) {
    n = rtcp(b, (uint8_t)pt, 0, 1);
    CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_RTCP);
  }
  /* compound: RR + SDES + BYE */
  n = rtcp(b, 201, 0, 1);
  n += rtcp(b + n, 202, 1, 3);
  n += rtcp(b + n, 203, 1, 1);
  CHECK_EQ(n, 32);
  CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_RTCP);
  CHECK_EQ(ml_rtp_parse(b, n - 1, &p), ML_RTP_ERTCP); /* last packet cut */
  CHECK_EQ(ml_rtp_parse(b, n - 4, &p), ML_RTP_ERTCP);
  b[8] = 0x40; /* second packet version 1 */
  CHECK_EQ(ml_rtp_parse(b, n, &p), ML_RTP_ERTCP);
  n = rtcp(b, 200, 0, 6);
  CHECK_EQ(ml_rtp_parse(b, n + 3, &p), ML_RTP_ERTCP); /* trailing garbage */
  CHECK_EQ(ml_rtp_parse(b, 3, &p), ML_RTP_ESHORT);
  /* RTP payload types 0..127 without the reserved range are RTP */
  ml_rtp_header h = {.pt = 127, .marker = 1};
  ml_rtp_write_header(b, sizeof b, &h);
  CHECK_EQ(ml_rtp_parse(b, 12, &p), ML_RTP_OK);
  h.pt = 96;
  ml_rtp_write_header(b, sizeof b, &h);
  CHECK_EQ(ml_rtp_parse(b, 12, &p), ML_RTP_OK);
}

static void test_write_roundtrip(void)
{
  TEST_BEGIN("header writer round trip");
  uint8_t b[16];
  ml_rtp_packet p;
  ml_rtp_header h = {.marker = 0, .pt = 101, .seq = 65535, .ts = 4294967295u, .ssrc = 7};
  CHECK_EQ(ml_rtp_write_header(b, 11, &h), 0);
  CHECK_EQ(ml_rtp_write_header(b, sizeof b, &h), 12);
  CHECK_EQ(b[0], 0x80);
  CHECK_EQ(b[1], 101);
  CHECK_EQ(ml_rtp_parse(b, 12, &p), ML_RTP_OK);
  CHECK_EQ(p.pt, 101);
  CHECK_EQ(p.marker, 0);
  CHECK_EQ(p.seq, 65535);
  CHECK_EQ(p.ts, 4294967295u);
  CHECK_EQ(p.ssrc, 7);
  h.pt = 200; /* only 7 bits are written */
  ml_rtp_write_header(b, sizeof b, &h);
  CHECK_EQ(b[1], 200 & 0x7f);
}

/* Random bytes: no crash, and an accepted packet's views stay in the buffer
 * and add up to its length. */
static void test_parse_random(void)
{
  TEST_BEGIN("parse: random input");
  uint8_t b[300];
  uint64_t x = 88172645463325252ull;
  int bad = 0, ok = 0;
  for (int i = 0; i < 200000; i++) {
    size_t n = (size_t)(i % 300);
    for (size_t k = 0; k < n; k++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      b[k] = (uint8_t)x;
    }
    if (n) b[0] = (uint8_t)((b[0] & 0x3f) | 0x80);
    ml_rtp_packet p;
    if (ml_rtp_parse(b, n, &p) != ML_RTP_OK) continue;
    ok++;
    size_t head = 12 + p.csrc_count * 4u + (p.has_ext ? 4 + p.ext_len : 0);
    if (p.payload != b + head || head + p.payload_len + p.padding != n) bad++;
  }
  CHECK_EQ(bad, 0);
  CHECK(ok > 1000);
}

static void test_sender(void)
{
  TEST_BEGIN("sender continuity");
  ml_rtp_sender a, s;
  ml_rtp_sender_init(&a);
  ml_rtp_sender_init(&s);
  CHECK(a.ssrc != s.ssrc || a.seq != s.seq || a.ts != s.ts); /* random, 2^-80 to fail */
  s.seq = 65534;
  s.ts = 4294967000u;
  uint8_t b[64];
  ml_rtp_packet p;
  uint32_t ts0 = s.ts;
  CHECK_EQ(ml_rtp_sender_write(&s, b, sizeof b, 0, 0, 160), 12);
  CHECK_EQ(ml_rtp_parse(b, 12, &p), ML_RTP_OK);
  CHECK_EQ(p.marker, 1); /* first packet: talkspurt start */
  CHECK_EQ(p.seq, 65534);
  CHECK_EQ(p.ts, ts0);
  CHECK_EQ(p.ssrc, s.ssrc);
  ml_rtp_sender_write(&s, b, sizeof b, 0, 0, 160);
  ml_rtp_parse(b, 12, &p);
  CHECK_EQ(p.marker, 0);
  CHECK_EQ(p.seq, 65535);
  CHECK_EQ(p.ts, ts0 + 160);
  /* PCMU 20 ms -> PCMA 30 ms: seq and ts go on */
  ml_rtp_sender_write(&s, b, sizeof b, 8, 0, 240);
  ml_rtp_parse(b, 12, &p);
  CHECK_EQ(p.pt, 8);
  CHECK_EQ(p.seq, 0); /* wrapped */
  CHECK_EQ(p.ts, ts0 + 320);
  ml_rtp_sender_write(&s, b, sizeof b, 8, 0, 240);
  ml_rtp_parse(b, 12, &p);
  CHECK_EQ(p.seq, 1);
  CHECK_EQ(p.ts, (uint32_t)(ts0 + 560)); /* wraps in 32 bits */
  /* an event with its own timestamp: seq moves, the media clock does not */
  uint32_t media = s.ts;
  CHECK_EQ(ml_rtp_sender_write_at(&s, b, sizeof b, 101, 1, media), 12);
  ml_rtp_parse(b, 12, &p);
  CHECK_EQ(p.seq, 2);
  CHECK_EQ(p.ts, media);
  CHECK_EQ(p.marker, 1);
  CHECK_EQ(p.pt, 101);
  CHECK_EQ(s.ts, media);
  ml_rtp_sender_advance(&s, 160);
  ml_rtp_sender_write_at(&s, b, sizeof b, 101, 0, media);
  ml_rtp_parse(b, 12, &p);
  CHECK_EQ(p.seq, 3);
  CHECK_EQ(p.marker, 0);
  ml_rtp_sender_advance(&s, 160);
  /* back to audio after the event: talkspurt marker, ts past the event */
  ml_rtp_sender_write(&s, b, sizeof b, 0, 0, 160);
  ml_rtp_parse(b, 12, &p);
  CHECK_EQ(p.seq, 4);
  CHECK_EQ(p.ts, media + 320);
  CHECK_EQ(p.marker, 1);
  /* no room: nothing changes */
  ml_rtp_sender before = s;
  CHECK_EQ(ml_rtp_sender_write(&s, b, 8, 0, 0, 160), 0);
  CHECK(memcmp(&before, &s, sizeof s) == 0);
  CHECK_EQ(s.packets, 7);
}

/* A receiver fed with packets `seq` at `arrival` ms. */
static int rx(ml_rtp_receiver *r, uint32_t ssrc, uint16_t seq, uint32_t ts, double arrival_ms)
{
  ml_rtp_packet p = {.ssrc = ssrc, .seq = seq, .ts = ts};
  return ml_rtp_receiver_update(r, &p, (uint64_t)(arrival_ms * 1e6));
}

static void test_receiver_sequence(void)
{
  TEST_BEGIN("receiver: wrap, loss, reorder, duplicates");
  ml_rtp_receiver r;
  r.source_len = 16;
  ml_rtp_receiver_init(&r, 8000);
  CHECK_EQ(r.source_len, 0); /* not learned yet */
  r.source_len = 16; /* the transport learned it: updates leave it alone */
  ml_rtp_rx_stats st;
  int others = 0;
  /* 200 packets across the wrap, every 10th lost */
  uint16_t seq0 = 65436;
  for (int i = 0; i < 200; i++) {
    if (i % 10 == 5) continue;
    int rc = rx(&r, 9, (uint16_t)(seq0 + i), (uint32_t)i * 160, i * 20.0);
    if (rc != (i == 0 ? ML_RTP_RX_FIRST : ML_RTP_RX_OK)) others++;
  }
  CHECK_EQ(others, 0);
  ml_rtp_receiver_stats(&r, &st);
  CHECK_EQ(st.ext_max_seq, 65536 + 99);
  CHECK_EQ(st.expected, 200);
  CHECK_EQ(st.received, 180);
  CHECK_EQ(st.lost, 20);
  CHECK_EQ(st.jitter, 0);
  CHECK_EQ(ml_rtp_receiver_fraction_lost(&r), 20 * 256 / 200);
  CHECK_EQ(ml_rtp_receiver_fraction_lost(&r), 0); /* a new, empty interval */
  CHECK_EQ(r.source_len, 16);

  /* a reordered and a duplicate packet are "old" and counted as received */
  CHECK_EQ(rx(&r, 9, 100, 200 * 160, 4000), ML_RTP_RX_OK);
  CHECK_EQ(rx(&r, 9, 98, 198 * 160, 4001), ML_RTP_RX_OLD);
  CHECK_EQ(rx(&r, 9, 98, 198 * 160, 4001), ML_RTP_RX_OLD);
  ml_rtp_receiver_stats(&r, &st);
  CHECK_EQ(st.expected, 201);
  CHECK_EQ(st.received, 183);
  CHECK_EQ(st.lost, 18);
  /* a gap forward within MAX_DROPOUT is loss, not a restart */
  CHECK_EQ(rx(&r, 9, 100 + 2999, 0, 4020), ML_RTP_RX_OK);
  ml_rtp_receiver_stats(&r, &st);
  CHECK_EQ(st.lost, 18 + 2998);
}

static void test_receiver_restart(void)
{
  TEST_BEGIN("receiver: jump, restart, SSRC change");
  ml_rtp_receiver r;
  ml_rtp_receiver_init(&r, 8000);
  ml_rtp_rx_stats st;
  for (int i = 0; i < 10; i++) rx(&r, 1, (uint16_t)(1000 + i), (uint32_t)i * 160, i * 20.0);
  /* one packet far away is dropped; a second in line confirms a restart */
  CHECK_EQ(rx(&r, 1, 40000, 0, 200), ML_RTP_RX_BAD);
  CHECK_EQ(rx(&r, 1, 1010, 1600, 200), ML_RTP_RX_OK); /* the old sequence goes on */
  CHECK_EQ(rx(&r, 1, 30001, 0, 220), ML_RTP_RX_BAD);
  CHECK_EQ(rx(&r, 1, 30002, 160, 240), ML_RTP_RX_RESYNC);
  CHECK_EQ(rx(&r, 1, 30003, 320, 260), ML_RTP_RX_OK);
  ml_rtp_receiver_stats(&r, &st);
  CHECK_EQ(st.expected, 2);
  CHECK_EQ(st.received, 2);
  CHECK_EQ(st.resyncs, 1);
  CHECK_EQ(st.bad, 2);
  /* a new SSRC restarts the stream at once (the learned source stays: the
   * transport decides whether to follow) */
  r.source_len = 8;
  CHECK_EQ(rx(&r, 2, 5, 99, 280), ML_RTP_RX_NEW_SSRC);
  CHECK_EQ(r.source_len, 8);
  CHECK_EQ(rx(&r, 2, 6, 259, 300), ML_RTP_RX_OK);
  ml_rtp_receiver_stats(&r, &st);
  CHECK_EQ(r.ssrc, 2);
  CHECK_EQ(st.ssrc_changes, 1);
  CHECK_EQ(st.expected, 2);
  CHECK_EQ(st.lost, 0);
  /* backwards by more than MAX_MISORDER is a jump too */
  CHECK_EQ(rx(&r, 2, (uint16_t)(6 - 100), 0, 320), ML_RTP_RX_BAD);
  CHECK_EQ(rx(&r, 2, (uint16_t)(6 - 99), 0, 320), ML_RTP_RX_OLD);
}

static void test_receiver_jitter(void)
{
  TEST_BEGIN("receiver: interarrival jitter");
  ml_rtp_receiver r;
  ml_rtp_receiver_init(&r, 8000);
  ml_rtp_rx_stats st;
  /* transit alternating +0 / +10 ms: |D| is 80 units every packet, so J
   * converges to 80 (J += (|D| - J) / 16) */
  for (int i = 0; i < 500; i++) rx(&r, 3, (uint16_t)i, (uint32_t)i * 160, i * 20.0 + (i % 2) * 10.0);
  ml_rtp_receiver_stats(&r, &st);
  CHECK(st.jitter >= 78 && st.jitter <= 80);
  CHECK(st.jitter_us >= 9750 && st.jitter_us <= 10000);
  /* steady again: decays towards 0 */
  for (int i = 500; i < 1000; i++) rx(&r, 3, (uint16_t)i, (uint32_t)i * 160, i * 20.0 + 3);
  ml_rtp_receiver_stats(&r, &st);
  CHECK(st.jitter <= 1);
  /* packets that repeat a timestamp (an event's updates) do not count:
   * 3 packets of one event 20 ms apart, then audio in step */
  ml_rtp_receiver_init(&r, 8000);
  for (int i = 0; i < 10; i++) rx(&r, 4, (uint16_t)i, (uint32_t)i * 160, i * 20.0);
  for (int i = 10; i < 13; i++) rx(&r, 4, (uint16_t)i, 1600, i * 20.0);
  for (int i = 13; i < 20; i++) rx(&r, 4, (uint16_t)i, (uint32_t)i * 160, i * 20.0);
  ml_rtp_receiver_stats(&r, &st);
  CHECK_EQ(st.jitter, 0);
  CHECK_EQ(st.lost, 0);
}

/* ---- costs ---------------------------------------------------------------- */

static volatile uint64_t sink;

static void bench(void)
{
  TEST_BEGIN("costs");
  uint8_t b[2048];
  size_t n = build(b, 0, -1, 0, 160);
  ml_rtp_packet p;
  enum { N = 2000000 };
  uint64_t t0 = now_ns();
  for (int i = 0; i < N; i++) {
    b[3] = (uint8_t)i;
    ml_rtp_parse(b, n, &p);
    sink += p.seq;
  }
  uint64_t t1 = now_ns();
  ml_rtp_receiver r;
  ml_rtp_receiver_init(&r, 8000);
  p.ssrc = 1;
  for (int i = 0; i < N; i++) {
    p.seq = (uint16_t)i;
    p.ts = (uint32_t)i * 160;
    sink += (uint64_t)ml_rtp_receiver_update(&r, &p, (uint64_t)i * 20 * MS);
  }
  uint64_t t2 = now_ns();
  ml_rtp_sender s;
  ml_rtp_sender_init(&s);
  for (int i = 0; i < N; i++) sink += ml_rtp_sender_write(&s, b, sizeof b, 0, 0, 160);
  uint64_t t3 = now_ns();
  printf("cost: rtp parse %.1f ns/packet, receiver update %.1f ns/packet, header write %.1f ns/packet\n",
         (double)(t1 - t0) / N, (double)(t2 - t1) / N, (double)(t3 - t2) / N);
  ml_rtp_rx_stats st;
  ml_rtp_receiver_stats(&r, &st);
  CHECK_EQ(st.lost, 0);
}

int main(void)
{
  test_parse_valid();
  test_parse_invalid();
  test_rtcp();
  test_write_roundtrip();
  test_parse_random();
  test_sender();
  test_receiver_sequence();
  test_receiver_restart();
  test_receiver_jitter();
  bench();
  return ML_TEST_DONE("test_rtp");
}
