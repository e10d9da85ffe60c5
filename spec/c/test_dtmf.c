/* RFC 4733 telephone-events (engine/media/dtmf.c): payload parse/write,
 * digit mapping, the receiver's one-digit-per-event rule under repeated end
 * packets, lost starts, duplicates, reordering and long events, and the
 * sender's packet sequence. */
#include <stdint.h>
#include <stdlib.h>

#include "dtmf.h"
#include "ml_test.h"

static void test_parse(void)
{
  TEST_BEGIN("payload parse and write");
  ml_dtmf_event ev;
  static const uint8_t p1[] = {5, 0x8a, 0x03, 0x20};
  CHECK_EQ(ml_dtmf_parse(p1, 4, &ev), 0);
  CHECK_EQ(ev.event, 5);
  CHECK_EQ(ev.end, 1);
  CHECK_EQ(ev.volume, 10);
  CHECK_EQ(ev.duration, 800);
  static const uint8_t p2[] = {11, 0x7f, 0xff, 0xff, 0xee}; /* R bit set, trailing byte */
  CHECK_EQ(ml_dtmf_parse(p2, 5, &ev), 0);
  CHECK_EQ(ev.event, 11);
  CHECK_EQ(ev.end, 0);
  CHECK_EQ(ev.volume, 63);
  CHECK_EQ(ev.duration, 65535);
  CHECK_EQ(ml_dtmf_parse(p1, 3, &ev), -1);
  CHECK_EQ(ml_dtmf_parse(p1, 0, &ev), -1);
  uint8_t out[4];
  ml_dtmf_event w = {.event = 15, .end = 1, .volume = 7, .duration = 0x1234};
  ml_dtmf_write(out, &w);
  CHECK_EQ(out[0], 15);
  CHECK_EQ(out[1], 0x87);
  CHECK_EQ(out[2], 0x12);
  CHECK_EQ(out[3], 0x34);

  static const char all[] = "0123456789*#ABCD";
  int bad = 0;
  for (int i = 0; i < 16; i++) {
    if (ml_dtmf_digit((uint8_t)i) != all[i]) bad++;
    if (ml_dtmf_event_code(all[i]) != i) bad++;
  }
  CHECK_EQ(bad, 0);
  CHECK_EQ(ml_dtmf_digit(16), 0);
  CHECK_EQ(ml_dtmf_digit(255), 0);
  CHECK_EQ(ml_dtmf_event_code('d'), 15);
  CHECK_EQ(ml_dtmf_event_code('E'), -1);
  CHECK_EQ(ml_dtmf_event_code(0), -1);
  CHECK_EQ(ml_dtmf_event_code('-'), -1);
}

/* ---- receiver ------------------------------------------------------------- */

typedef struct pkt {
  uint32_t ts;
  int marker;
  uint8_t event, end;
  uint16_t duration;
} pkt;

/* Feed packets; the digits reported, in order, into out. */
static int feed(ml_dtmf_receiver *r, const pkt *ps, int n, char *out)
{
  int k = 0;
  for (int i = 0; i < n; i++) {
    uint8_t b[4];
    ml_dtmf_event ev = {.event = ps[i].event, .end = ps[i].end, .volume = 10, .duration = ps[i].duration};
    ml_dtmf_write(b, &ev);
    char d = 0;
    if (ml_dtmf_receiver_feed(r, ps[i].ts, ps[i].marker, b, 4, &d) == 1) out[k++] = d;
  }
  out[k] = 0;
  return k;
}

/* A whole event as a sender makes it: marker start, updates, 3× end. */
static int event_packets(pkt *ps, uint32_t ts, uint8_t event, int updates)
{
  int n = 0;
  for (int i = 0; i < updates; i++)
    ps[n++] = (pkt){.ts = ts, .marker = i == 0, .event = event, .duration = (uint16_t)(160 * (i + 1))};
  for (int i = 0; i < 3; i++)
    ps[n++] = (pkt){.ts = ts, .event = event, .end = 1, .duration = (uint16_t)(160 * (updates + 1))};
  return n;
}

static void test_receiver_basic(void)
{
  TEST_BEGIN("receiver: one digit per event");
  ml_dtmf_receiver r;
  ml_dtmf_receiver_init(&r);
  pkt ps[64];
  char out[64];
  int n = event_packets(ps, 1000, 1, 5);
  CHECK_EQ(feed(&r, ps, n, out), 1);
  CHECK_STR(out, "1");
  CHECK_EQ(r.active, 0); /* ended */
  /* the 3× end again (a retransmitting peer): nothing new */
  CHECK_EQ(feed(&r, ps + n - 3, 3, out), 0);
  /* two digits back to back, the second right after the first's end */
  ml_dtmf_receiver_init(&r);
  n = event_packets(ps, 8000, 2, 4);
  n += event_packets(ps + n, 8000 + 800, 2, 4); /* the same key twice */
  n += event_packets(ps + n, 8000 + 1600, 11, 4);
  CHECK_EQ(feed(&r, ps, n, out), 3);
  CHECK_STR(out, "22#");
  CHECK_EQ(r.digits, 3);
  CHECK_EQ(r.packets, (uint64_t)n);
}

static void test_receiver_losses(void)
{
  TEST_BEGIN("receiver: lost start, only ends, duplicates, reorder");
  ml_dtmf_receiver r;
  pkt ps[64];
  char out[64];
  /* start (marker) lost: the first update reports the digit */
  ml_dtmf_receiver_init(&r);
  int n = event_packets(ps, 5000, 9, 5);
  CHECK_EQ(feed(&r, ps + 1, n - 1, out), 1);
  CHECK_STR(out, "9");
  /* everything lost but one end packet */
  ml_dtmf_receiver_init(&r);
  n = event_packets(ps, 5000, 10, 5);
  CHECK_EQ(feed(&r, ps + n - 1, 1, out), 1);
  CHECK_STR(out, "*");
  CHECK_EQ(r.active, 0);
  /* every packet twice, in order */
  ml_dtmf_receiver_init(&r);
  pkt dup[64];
  n = event_packets(ps, 7000, 3, 4);
  for (int i = 0; i < n; i++) dup[2 * i] = dup[2 * i + 1] = ps[i];
  CHECK_EQ(feed(&r, dup, 2 * n, out), 1);
  CHECK_STR(out, "3");
  /* two events with their packets interleaved: the late packets of the first
   * arrive after the second started */
  ml_dtmf_receiver_init(&r);
  pkt a[16], b[16], mix[32];
  int na = event_packets(a, 20000, 4, 3), nb = event_packets(b, 20960, 5, 3);
  int m = 0;
  mix[m++] = a[0], mix[m++] = a[1], mix[m++] = b[0], mix[m++] = a[2], mix[m++] = a[3];
  mix[m++] = b[1], mix[m++] = a[4], mix[m++] = b[2], mix[m++] = a[5];
  for (int i = 3; i < nb; i++) mix[m++] = b[i];
  CHECK_EQ(na, 6);
  CHECK_EQ(feed(&r, mix, m, out), 2);
  CHECK_STR(out, "45");
  CHECK_EQ(r.active, 0);
  CHECK_EQ(r.active_ts, 20960); /* the newest event stays the reference */
  /* the first event's packets only arrive after the second's (its first
   * sighting is late): still reported once, and it does not hijack */
  ml_dtmf_receiver_init(&r);
  m = 0;
  for (int i = 0; i < 2; i++) mix[m++] = b[i];
  for (int i = 0; i < na; i++) mix[m++] = a[i];
  for (int i = 2; i < nb; i++) mix[m++] = b[i];
  CHECK_EQ(feed(&r, mix, m, out), 2);
  CHECK_STR(out, "54");
  CHECK_EQ(r.active_ts, 20960);
  CHECK_EQ(r.active, 0);
  /* short payloads are counted, never reported */
  uint8_t shortp[3] = {1, 0, 0};
  char d = 0;
  CHECK_EQ(ml_dtmf_receiver_feed(&r, 1, 1, shortp, 3, &d), -1);
  CHECK_EQ(r.malformed, 1);
  CHECK_EQ(d, 0);
}

static void test_receiver_long_and_other(void)
{
  TEST_BEGIN("receiver: long events and non-digit events");
  ml_dtmf_receiver r;
  ml_dtmf_receiver_init(&r);
  pkt ps[8];
  char out[16];
  /* a 10 s '0' at 8 kHz: segment one ends at 0xFFFF without E, segment two
   * carries on at ts + 0xFFFF without a marker */
  int n = 0;
  ps[n++] = (pkt){.ts = 100, .marker = 1, .event = 0, .duration = 160};
  ps[n++] = (pkt){.ts = 100, .event = 0, .duration = 65535};
  ps[n++] = (pkt){.ts = 100 + 65535, .event = 0, .duration = 160};
  ps[n++] = (pkt){.ts = 100 + 65535, .event = 0, .end = 1, .duration = 14465};
  ps[n++] = (pkt){.ts = 100 + 65535, .event = 0, .end = 1, .duration = 14465};
  CHECK_EQ(feed(&r, ps, n, out), 1);
  CHECK_STR(out, "0");
  /* a new press of the same key with its marker is a new digit */
  ps[0] = (pkt){.ts = 100 + 65535 + 20000, .marker = 1, .event = 0, .duration = 160};
  CHECK_EQ(feed(&r, ps, 1, out), 1);
  /* flash (16) and other tones are tracked, not reported */
  ps[0] = (pkt){.ts = 200000, .marker = 1, .event = 16, .duration = 160};
  ps[1] = (pkt){.ts = 200000, .event = 16, .end = 1, .duration = 800};
  CHECK_EQ(feed(&r, ps, 2, out), 0);
  CHECK_EQ(r.digits, 2);
}

/* ---- sender --------------------------------------------------------------- */

static void test_sender(void)
{
  TEST_BEGIN("sender: packet sequence");
  ml_dtmf_sender s;
  ml_dtmf_packet pk[32];
  CHECK_EQ(ml_dtmf_sender_start(&s, 'x', 100, 20, 8000, 0), -1);
  CHECK_EQ(ml_dtmf_sender_start(&s, '5', 100, 0, 8000, 0), -1);
  CHECK_EQ(ml_dtmf_sender_start(&s, '5', 0, 20, 8000, 0), -1);
  /* 100 ms at 20 ms / 8 kHz: 160, 320, 480, 640, then 800 three times */
  CHECK_EQ(ml_dtmf_sender_start(&s, '#', 100, 20, 8000, 123456), 0);
  CHECK_EQ(ml_dtmf_sender_packets(&s), 7);
  int n = 0;
  while (n < 32 && ml_dtmf_sender_next(&s, &pk[n])) n++;
  CHECK_EQ(n, 7);
  static const uint16_t dur[] = {160, 320, 480, 640, 800, 800, 800};
  int bad = 0;
  for (int i = 0; i < n && i < 7; i++) {
    ml_dtmf_event ev;
    ml_dtmf_parse(pk[i].payload, 4, &ev);
    if (pk[i].ts != 123456 || pk[i].duration != dur[i] || ev.duration != dur[i]) bad++;
    if (pk[i].marker != (i == 0) || pk[i].end != (i >= 4) || ev.end != pk[i].end) bad++;
    if (ev.event != 11 || ev.volume != 10) bad++;
  }
  CHECK_EQ(bad, 0);
  CHECK_EQ(ml_dtmf_sender_next(&s, &pk[0]), 0); /* stays over */

  /* 16 kHz clock and 30 ms ptime: steps of 480, total 1600 */
  CHECK_EQ(ml_dtmf_sender_start(&s, 'a', 100, 30, 16000, 7), 0);
  n = 0;
  while (n < 32 && ml_dtmf_sender_next(&s, &pk[n])) n++;
  CHECK_EQ(n, 3 + 3);
  CHECK_EQ(pk[0].duration, 480);
  CHECK_EQ(pk[2].duration, 1440);
  CHECK_EQ(pk[3].duration, 1600);
  CHECK_EQ(pk[5].end, 1);
  /* shorter than one ptime: still a marker packet before the ends */
  CHECK_EQ(ml_dtmf_sender_start(&s, '1', 10, 20, 8000, 0), 0);
  n = 0;
  while (n < 32 && ml_dtmf_sender_next(&s, &pk[n])) n++;
  CHECK_EQ(n, 4);
  CHECK_EQ(pk[0].marker, 1);
  CHECK_EQ(pk[0].end, 0);
  CHECK_EQ(pk[0].duration, 80);
  CHECK_EQ(pk[3].duration, 80);
  /* longer than one timestamp segment: capped at 0xFFFF */
  CHECK_EQ(ml_dtmf_sender_start(&s, '1', 10000, 20, 8000, 0), 0);
  n = 0;
  ml_dtmf_packet last = {0};
  while (ml_dtmf_sender_next(&s, &last)) n++;
  CHECK_EQ(last.duration, 65535);
  CHECK_EQ(n, (int)ml_dtmf_sender_packets(&s));

  /* what the sender makes, the receiver reports once, even with the first
   * two packets lost */
  ml_dtmf_receiver r;
  ml_dtmf_receiver_init(&r);
  CHECK_EQ(ml_dtmf_sender_start(&s, '7', 60, 20, 8000, 999), 0);
  int digits = 0, k = 0;
  char d = 0, got = 0;
  while (ml_dtmf_sender_next(&s, &last)) {
    if (k++ < 2) continue;
    if (ml_dtmf_receiver_feed(&r, last.ts, last.marker, last.payload, 4, &d) == 1) digits++, got = d;
  }
  CHECK_EQ(digits, 1);
  CHECK_EQ(got, '7');
}

int main(void)
{
  test_parse();
  test_receiver_basic();
  test_receiver_losses();
  test_receiver_long_and_other();
  test_sender();
  return ML_TEST_DONE("test_dtmf");
}
