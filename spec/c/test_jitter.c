/* The jitter buffer (engine/media/jitter.c): in-order, reordered, duplicate,
 * burst loss, late packets, sequence wrap and jumps, a 30 ms ptime learned
 * from timestamps, and the playout delay following the network's jitter in
 * a simulated call. Prints the cost of a put + get pair. */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "jitter.h"
#include "ml_test.h"

#define MS 1000000ull

static uint16_t seq_base = 0; /* each test's first sequence number */
static uint32_t ts_base = 1000;

/* Put frame i of a stream with `step` clock units per frame; its 160 payload
 * bytes all carry the low byte of i. */
static int put(ml_jitter *jb, int i, uint32_t step, uint64_t at_ns)
{
  static uint8_t payload[160];
  memset(payload, (uint8_t)i, sizeof payload);
  ml_rtp_packet p = {.pt = 0, .seq = (uint16_t)(seq_base + i), .ts = ts_base + (uint32_t)i * step};
  p.ssrc = 1;
  p.payload = payload;
  p.payload_len = sizeof payload;
  return ml_jitter_put(jb, &p, at_ns);
}

/* A FRAME for stream index i, with the right bytes? */
static int frame_is(const ml_jitter_frame *f, int i)
{
  if (f->seq != (uint16_t)(seq_base + i) || f->len != 160 || !f->data) return 0;
  for (int k = 0; k < 160; k++)
    if (f->data[k] != (uint8_t)i) return 0;
  return 1;
}

static ml_jitter *make(uint32_t min_ms, uint32_t max_ms)
{
  ml_jitter_config c = {.min_delay_ms = min_ms, .max_delay_ms = max_ms};
  return ml_jitter_create(&c);
}

static void test_config(void)
{
  TEST_BEGIN("create and config");
  ml_jitter *jb = ml_jitter_create(NULL);
  CHECK(jb != NULL);
  ml_jitter_stats st;
  ml_jitter_stats_get(jb, &st);
  CHECK_EQ(st.ptime_ms, 20);
  CHECK_EQ(st.target_ms, 20);
  CHECK_EQ(st.buffered, 0);
  ml_jitter_frame f;
  CHECK_EQ(ml_jitter_get(jb, &f), ML_JITTER_EMPTY);
  CHECK(f.data == NULL);
  ml_jitter_free(jb);
  ml_jitter_config bad = {.min_delay_ms = 300, .max_delay_ms = 200};
  CHECK(ml_jitter_create(&bad) == NULL);
  bad = (ml_jitter_config){.capacity = 100000};
  CHECK(ml_jitter_create(&bad) == NULL);
  /* a payload above max_payload is refused */
  ml_jitter_config small = {.max_payload = 100};
  jb = ml_jitter_create(&small);
  CHECK_EQ(put(jb, 0, 160, 0), ML_JITTER_TOO_BIG);
  ml_jitter_stats_get(jb, &st);
  CHECK_EQ(st.too_big, 1);
  CHECK_EQ(st.received, 0);
  ml_jitter_free(jb);
}

/* Network and playout in lockstep: packet i arrives at i × 20 ms, get right
 * after. */
static void test_in_order(void)
{
  TEST_BEGIN("in order, across the sequence wrap");
  seq_base = 65500;
  ml_jitter *jb = ml_jitter_create(NULL);
  int bad = 0;
  ml_jitter_frame f;
  for (int i = 0; i < 100; i++) {
    if (put(jb, i, 160, (uint64_t)i * 20 * MS) != ML_JITTER_OK) bad++;
    if (ml_jitter_get(jb, &f) != ML_JITTER_FRAME || !frame_is(&f, i)) bad++;
    if (f.ts != ts_base + (uint32_t)i * 160) bad++;
  }
  CHECK_EQ(bad, 0);
  ml_jitter_stats st;
  ml_jitter_stats_get(jb, &st);
  CHECK_EQ(st.received, 100);
  CHECK_EQ(st.played, 100);
  CHECK_EQ(st.lost + st.late + st.concealed + st.duplicates + st.dropped, 0);
  CHECK_EQ(st.target_ms, 20);
  CHECK_EQ(st.jitter_us, 0);
  CHECK_EQ(st.buffered, 0);
  /* the sender stops: conceal up to the max delay, then report silence */
  int lost = 0, empty = 0;
  for (int i = 0; i < 30; i++) {
    int rc = ml_jitter_get(jb, &f);
    lost += rc == ML_JITTER_LOST;
    empty += rc == ML_JITTER_EMPTY;
  }
  CHECK_EQ(lost, 10);
  CHECK_EQ(empty, 20);
  /* and resumes where it stopped (sequence numbers go on, timestamps kept
   * the time): plays on, nothing counted lost */
  ts_base += 30 * 160;
  put(jb, 100, 160, 2600 * MS);
  ts_base -= 30 * 160;
  CHECK_EQ(ml_jitter_get(jb, &f), ML_JITTER_FRAME);
  CHECK(frame_is(&f, 100));
  ml_jitter_stats_get(jb, &st);
  CHECK_EQ(st.lost, 0);
  CHECK_EQ(st.target_ms, 20);
  CHECK_EQ(st.underruns, 11);
  ml_jitter_free(jb);
  seq_base = 0;
}

static void test_reordered(void)
{
  TEST_BEGIN("reordered and duplicates");
  ml_jitter *jb = make(60, 200); /* holds 3 frames */
  ml_jitter_frame f;
  /* before playout: 2, 0, 1 arrive, played 0, 1, 2 */
  put(jb, 2, 160, 0);
  CHECK_EQ(ml_jitter_get(jb, &f), ML_JITTER_EMPTY);
  put(jb, 0, 160, 1 * MS);
  CHECK_EQ(put(jb, 0, 160, 1 * MS), ML_JITTER_DUPLICATE);
  CHECK_EQ(ml_jitter_get(jb, &f), ML_JITTER_FRAME); /* 3 frames spanned: playing */
  CHECK(frame_is(&f, 0));
  put(jb, 1, 160, 2 * MS);
  /* then pairs swapped while playing: 4 3 6 5 8 7 ... */
  int order_bad = 0, played = 0;
  int expect = 1;
  for (int i = 3; i < 60; i += 2) {
    uint64_t t = (uint64_t)i * 20 * MS;
    put(jb, i + 1, 160, t);
    put(jb, i, 160, t + 1 * MS);
    CHECK_EQ(put(jb, i, 160, t + 2 * MS), ML_JITTER_DUPLICATE);
    for (int k = 0; k < 2; k++) {
      if (ml_jitter_get(jb, &f) != ML_JITTER_FRAME) continue;
      if (!frame_is(&f, expect)) order_bad++;
      expect++, played++;
    }
  }
  CHECK_EQ(order_bad, 0);
  CHECK_EQ(played, 58);
  ml_jitter_stats st;
  ml_jitter_stats_get(jb, &st);
  CHECK_EQ(st.duplicates, 29 + 1);
  CHECK_EQ(st.lost, 0);
  CHECK_EQ(st.late, 0);
  ml_jitter_free(jb);
}

static void test_burst_loss(void)
{
  TEST_BEGIN("burst loss");
  ml_jitter *jb = ml_jitter_create(NULL);
  ml_jitter_frame f;
  int frames = 0, lost = 0, after_bad = 0;
  for (int i = 0; i < 60; i++) {
    if (i < 10 || i >= 20) put(jb, i, 160, (uint64_t)i * 20 * MS);
    int rc = ml_jitter_get(jb, &f);
    if (rc == ML_JITTER_FRAME) {
      frames++;
      if (!frame_is(&f, i)) after_bad++; /* still in step: no delay added */
    }
    if (rc == ML_JITTER_LOST) lost++;
  }
  CHECK_EQ(frames, 50);
  CHECK_EQ(lost, 10); /* one concealed frame per missing tick */
  CHECK_EQ(after_bad, 0);
  ml_jitter_stats st;
  ml_jitter_stats_get(jb, &st);
  CHECK_EQ(st.lost, 10);
  CHECK_EQ(st.late, 0);
  CHECK_EQ(st.target_ms, 20);
  /* a gap longer than the ring: the buffer restarts at the new packet */
  CHECK_EQ(put(jb, 60 + 100, 160, 60 * 20 * MS), ML_JITTER_RESYNC);
  CHECK_EQ(ml_jitter_get(jb, &f), ML_JITTER_FRAME);
  CHECK(frame_is(&f, 160));
  ml_jitter_stats_get(jb, &st);
  CHECK_EQ(st.resyncs, 1);
  ml_jitter_free(jb);
}

static void test_late(void)
{
  TEST_BEGIN("late packets");
  ml_jitter *jb = ml_jitter_create(NULL);
  ml_jitter_frame f;
  /* 0..4 in step; 5 comes 30 ms late, after 6 was due and played */
  for (int i = 0; i < 5; i++) {
    put(jb, i, 160, (uint64_t)i * 20 * MS);
    CHECK_EQ(ml_jitter_get(jb, &f), ML_JITTER_FRAME);
  }
  CHECK_EQ(ml_jitter_get(jb, &f), ML_JITTER_LOST); /* tick 5: nothing yet */
  CHECK_EQ(f.seq, 5);
  put(jb, 6, 160, 120 * MS);
  CHECK_EQ(ml_jitter_get(jb, &f), ML_JITTER_FRAME); /* tick 6: 5 given up */
  CHECK(frame_is(&f, 6));
  CHECK_EQ(put(jb, 5, 160, 130 * MS), ML_JITTER_LATE);
  ml_jitter_stats st;
  ml_jitter_stats_get(jb, &st);
  CHECK_EQ(st.late, 1);
  CHECK_EQ(st.lost, 1);
  /* the 30 ms lateness raised the target: ceil(30/20) + 1 frames */
  CHECK_EQ(st.target_ms, 60);
  CHECK(st.peak_us >= 29000 && st.peak_us <= 30000);
  /* the next loss is waited for, growing the delay to the target, instead of
   * being given up: 8 comes 30 ms late and is played */
  put(jb, 7, 160, 140 * MS);
  CHECK_EQ(ml_jitter_get(jb, &f), ML_JITTER_FRAME);
  CHECK(frame_is(&f, 7));
  CHECK_EQ(ml_jitter_get(jb, &f), ML_JITTER_LOST); /* tick 8 */
  put(jb, 9, 160, 180 * MS);
  CHECK_EQ(ml_jitter_get(jb, &f), ML_JITTER_LOST); /* tick 9: a stretch */
  put(jb, 8, 160, 190 * MS);
  int got = 0;
  for (int i = 0; i < 2; i++)
    if (ml_jitter_get(jb, &f) == ML_JITTER_FRAME) got += frame_is(&f, 8 + i);
  CHECK_EQ(got, 2);
  ml_jitter_stats_get(jb, &st);
  CHECK_EQ(st.late, 1);
  CHECK(st.stretched >= 1);
  /* many packets in a row from before the window: the sender went back in
   * sequence; merely late ones never restart it */
  ml_jitter_reset(jb);
  for (int i = 1000; i < 1010; i++) put(jb, i, 160, 0);
  for (int i = 0; i < 10; i++) ml_jitter_get(jb, &f);
  int rc = 0, resyncs = 0;
  for (int k = 0; k < 5; k++)
    for (int i = 990; i < 1000; i++) resyncs += put(jb, i, 160, 0) == ML_JITTER_RESYNC;
  CHECK_EQ(resyncs, 0);
  for (int i = 0; i < 10; i++) rc = put(jb, i, 160, 0);
  CHECK_EQ(rc, ML_JITTER_RESYNC);
  for (int i = 10; i < 20; i++) put(jb, i, 160, 0);
  rc = ML_JITTER_EMPTY;
  for (int i = 0; i < 20 && rc != ML_JITTER_FRAME; i++) rc = ml_jitter_get(jb, &f);
  CHECK_EQ(rc, ML_JITTER_FRAME);
  CHECK(frame_is(&f, 9)); /* the new sequence from its first packet */
  ml_jitter_free(jb);
}

static void test_ptime30(void)
{
  TEST_BEGIN("30 ms ptime learned from timestamps");
  ml_jitter *jb = ml_jitter_create(NULL);
  ml_jitter_frame f;
  int bad = 0;
  for (int i = 0; i < 50; i++) {
    put(jb, i, 240, (uint64_t)i * 30 * MS);
    if (ml_jitter_get(jb, &f) != ML_JITTER_FRAME || !frame_is(&f, i)) bad++;
    if (i == 2) CHECK_EQ(ml_jitter_ptime_ms(jb), 30);
  }
  CHECK_EQ(bad, 0);
  ml_jitter_stats st;
  ml_jitter_stats_get(jb, &st);
  CHECK_EQ(st.ptime_ms, 30);
  CHECK_EQ(st.target_ms, 30);
  CHECK_EQ(st.jitter_us, 0);
  /* the lost frame's expected timestamp follows the 30 ms step */
  put(jb, 51, 240, 51 * 30 * MS);
  CHECK_EQ(ml_jitter_get(jb, &f), ML_JITTER_FRAME); /* 50 skipped */
  ml_jitter_stats_get(jb, &st);
  CHECK_EQ(st.lost, 1);
  CHECK_EQ(ml_jitter_get(jb, &f), ML_JITTER_LOST);
  CHECK_EQ(f.ts, ts_base + 52 * 240);
  /* a silence gap (timestamps jump, sequence does not) does not change it */
  put(jb, 52, 240, 52 * 30 * MS);
  ml_rtp_packet p = {.seq = 53, .ts = ts_base + 100 * 240, .payload = (const uint8_t *)"", .payload_len = 0};
  ml_jitter_put(jb, &p, 100 * 30 * MS);
  CHECK_EQ(ml_jitter_ptime_ms(jb), 30);
  ml_jitter_free(jb);
}

/* A call over a network with jitter: packets every 20 ms, each delayed by a
 * random 0..max_jitter ms, playout ticking every 20 ms (5 ms after the
 * packets' nominal times). Time walks in 1 ms steps. */
enum { SIM_MAX = 20000 };

typedef struct sim {
  uint64_t t_ns;
  int sent, first_pending;
  uint64_t arrive[SIM_MAX];
  uint8_t delivered[SIM_MAX];
  int frames, order_bad, last_seq;
} sim;

static void simulate(ml_jitter *jb, sim *s, int packets, int max_jitter_ms)
{
  for (int i = s->sent; i < s->sent + packets && i < SIM_MAX; i++) {
    uint64_t jitter = max_jitter_ms ? rng() % ((uint64_t)max_jitter_ms * MS) : 0;
    s->arrive[i] = (uint64_t)i * 20 * MS + jitter;
  }
  s->sent += packets;
  for (uint64_t end = (uint64_t)s->sent * 20 * MS; s->t_ns < end; s->t_ns += MS) {
    for (int i = s->first_pending; i < s->sent; i++) {
      if (s->delivered[i] || s->arrive[i] > s->t_ns) continue;
      s->delivered[i] = 1;
      put(jb, i, 160, s->arrive[i]);
    }
    while (s->first_pending < s->sent && s->delivered[s->first_pending]) s->first_pending++;
    if (s->t_ns % (20 * MS) != 5 * MS) continue;
    ml_jitter_frame f;
    if (ml_jitter_get(jb, &f) != ML_JITTER_FRAME) continue;
    if (s->last_seq >= 0 && (uint16_t)(f.seq - s->last_seq) > 0x8000) s->order_bad++;
    s->last_seq = f.seq;
    s->frames++;
  }
}

static void test_adaptive(void)
{
  TEST_BEGIN("playout delay follows the jitter");
  ml_jitter *jb = ml_jitter_create(NULL);
  ml_jitter_stats st, calm, rough;
  static sim s;
  s.last_seq = -1;
  simulate(jb, &s, 500, 0);
  ml_jitter_stats_get(jb, &calm);
  CHECK_EQ(calm.target_ms, 20);
  CHECK_EQ(calm.lost + calm.late, 0);
  /* 0..60 ms of jitter for a minute */
  simulate(jb, &s, 3000, 60);
  ml_jitter_stats_get(jb, &rough);
  CHECK(rough.target_ms >= 60 && rough.target_ms <= 100);
  CHECK(rough.depth_ms <= 200);
  CHECK(rough.jitter_us > 10000);
  uint64_t late_rough = rough.late - calm.late, lost_rough = rough.lost - calm.lost;
  /* a few losses while it adapts, then < 1% */
  CHECK(lost_rough < 3000 / 50);
  /* calm again: the delay comes back down within a minute */
  simulate(jb, &s, 3000, 0);
  ml_jitter_stats_get(jb, &st);
  CHECK_EQ(st.target_ms, 20);
  CHECK(st.depth_ms <= 40);
  CHECK(st.dropped > 0);
  CHECK_EQ(s.order_bad, 0);
  /* no frame played twice or out of order, and every packet accounted for */
  CHECK_EQ(st.received, st.played + st.dropped + st.buffered + st.flushed);
  printf("adaptive: jitter 0..60 ms: target %u ms, RFC 3550 jitter %.1f ms, lost %llu, late %llu, concealed "
         "%llu "
         "(stretched %llu) of 3000; calm again: target %u ms, %llu frames dropped to shrink\n",
         rough.target_ms, rough.jitter_us / 1000.0, (unsigned long long)lost_rough,
         (unsigned long long)late_rough, (unsigned long long)(rough.concealed - calm.concealed),
         (unsigned long long)(rough.stretched - calm.stretched), st.target_ms,
         (unsigned long long)st.dropped);
  /* heavier jitter: 0..150 ms */
  ml_jitter_stats before = st;
  simulate(jb, &s, 3000, 150);
  ml_jitter_stats_get(jb, &st);
  CHECK(st.target_ms >= 160 && st.target_ms <= 200);
  CHECK(st.lost - before.lost < 3000 / 50);
  printf("adaptive: jitter 0..150 ms: target %u ms, lost %llu, late %llu, concealed %llu of 3000\n",
         st.target_ms, (unsigned long long)(st.lost - before.lost),
         (unsigned long long)(st.late - before.late), (unsigned long long)(st.concealed - before.concealed));
  /* spikes above the max delay are clamped */
  simulate(jb, &s, 500, 1000);
  ml_jitter_stats_get(jb, &st);
  CHECK_EQ(st.target_ms, 200);
  CHECK_EQ(s.order_bad, 0);
  CHECK_EQ(st.received, st.played + st.dropped + st.buffered + st.flushed);
  ml_jitter_free(jb);
}

static volatile uint64_t sink;

static void bench(void)
{
  TEST_BEGIN("costs");
  ml_jitter *jb = ml_jitter_create(NULL);
  enum { N = 1000000 };
  ml_jitter_frame f;
  uint8_t payload[160] = {0};
  ml_rtp_packet p = {.payload = payload, .payload_len = 160};
  uint64_t t0 = now_ns();
  for (int i = 0; i < N; i++) {
    p.seq = (uint16_t)i;
    p.ts = (uint32_t)i * 160;
    ml_jitter_put(jb, &p, (uint64_t)i * 20 * MS + (uint64_t)(i % 3) * MS);
    sink += (uint64_t)ml_jitter_get(jb, &f);
  }
  uint64_t t1 = now_ns();
  printf("cost: jitter buffer put + get %.1f ns/packet (160-byte frames)\n", (double)(t1 - t0) / N);
  ml_jitter_stats st;
  ml_jitter_stats_get(jb, &st);
  CHECK(st.played > N - 10);
  ml_jitter_free(jb);
}

int main(void)
{
  const char *seed = getenv("ML_TEST_SEED");
  if (seed) ml_test_rng_state = strtoull(seed, NULL, 0) | 1;
  test_config();
  test_in_order();
  test_reordered();
  test_burst_loss();
  test_late();
  test_ptime30();
  test_adaptive();
  bench();
  return ML_TEST_DONE("test_jitter");
}
