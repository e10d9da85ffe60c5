/* Rooms (engine/media/room.c) with fake members and the real track and
 * endpoint members: N−1 (nobody hears themselves), mute, join/leave/move
 * between rooms, a full room refusing a join, ml_room_free kicking who is
 * still inside; tone tracks (frequency, level, timed end), clip tracks (once
 * with the last frame padded, looped without a gap, empty), endpoints (speak
 * ring accepting part of a long write, hear ring dropping the oldest for a
 * slow reader, clear); and the tick timer on the virtual and the real clock. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "endpoint.h"
#include "lauxlib.h"
#include "ml_internal.h"
#include "ml_test.h"
#include "room.h"
#include "track.h"

#define MS 1000000ull

/* ---- a fake member: publishes a constant, records what it hears ------------ */

typedef struct fake {
  ml_room_member m;
  int16_t value; /* published every tick when publish is set */
  int publish;
  int pulls, pushes;
  int16_t heard[ML_MIX_FRAME];
  int kicks;
  ml_room *room_at_kick;
} fake;

static int fake_pull(ml_room_member *m, int16_t *frame)
{
  fake *f = ml_container_of(m, fake, m);
  f->pulls++;
  if (!f->publish) return 0;
  for (int i = 0; i < ML_MIX_FRAME; i++) frame[i] = f->value;
  return 1;
}

static void fake_push(ml_room_member *m, const int16_t *frame)
{
  fake *f = ml_container_of(m, fake, m);
  f->pushes++;
  memcpy(f->heard, frame, sizeof f->heard);
}

static void fake_kick(ml_room_member *m, void *data)
{
  fake *f = data;
  CHECK(&f->m == m);
  f->kicks++;
  f->room_at_kick = m->room;
}

static const ml_room_member_ops fake_ops = {fake_pull, fake_push};

static void fake_init(fake *f, int16_t value, int listens)
{
  memset(f, 0, sizeof *f);
  ml_room_member_init(&f->m, &fake_ops, listens);
  f->value = value;
  f->publish = 1;
  f->m.kick = fake_kick;
  f->m.kick_data = f;
  for (int i = 0; i < ML_MIX_FRAME; i++) f->heard[i] = 0x5555; /* not a value any mix gives here */
}

/* every sample of what f heard last is v? */
static int heard_all(const fake *f, int v)
{
  for (int i = 0; i < ML_MIX_FRAME; i++)
    if (f->heard[i] != v) return 0;
  return 1;
}

/* a virtual-clock loop: rooms start their tick timer on it, and it only fires
 * when a test advances the clock */
static ml_loop *new_loop(lua_State *L, int virtual_clock)
{
  ml_loop *loop = ml_loop_new(NULL, L);
  MUST(loop != NULL);
  if (virtual_clock) MUST(ml_clock_set_virtual(loop, 1) == 0);
  return loop;
}

/* ---- room mechanics ----------------------------------------------------------- */

static void test_n_minus_one(ml_loop *loop)
{
  TEST_BEGIN("N-1");
  CHECK(ml_room_create(loop, 0) == NULL);
  ml_room *r = ml_room_create(loop, 8);
  MUST(r != NULL);
  fake f[4], track;
  const int16_t values[4] = {100, 200, 400, 800};
  for (int i = 0; i < 4; i++) {
    fake_init(&f[i], values[i], 1);
    CHECK_EQ(ml_room_join(r, &f[i].m), 0);
    CHECK(f[i].m.room == r);
  }
  fake_init(&track, 1600, 0); /* publish-only */
  CHECK_EQ(ml_room_join(r, &track.m), 0);
  CHECK_EQ(ml_room_members(r), 5);
  CHECK_EQ(ml_mixer_count(r->mixer), 5);
  ml_room_mix_once(r);
  CHECK_EQ(r->stats.ticks, 1);
  for (int i = 0; i < 4; i++) {
    CHECK_EQ(f[i].pulls, 1);
    CHECK_EQ(f[i].pushes, 1);
    CHECK(heard_all(&f[i], 3100 - values[i]));
  }
  CHECK_EQ(track.pulls, 1);
  CHECK_EQ(track.pushes, 0); /* a publish-only member is never pushed */

  /* a member publishing nothing is silence, and still hears the others */
  f[3].publish = 0;
  ml_room_mix_once(r);
  CHECK(heard_all(&f[0], 200 + 400 + 1600));
  CHECK(heard_all(&f[3], 100 + 200 + 400 + 1600));
  /* nobody publishes: everybody hears silence (the last tick does not linger) */
  for (int i = 0; i < 4; i++) f[i].publish = 0;
  track.publish = 0;
  ml_room_mix_once(r);
  int silent = 1;
  for (int i = 0; i < 4; i++) silent &= heard_all(&f[i], 0);
  CHECK(silent);

  /* two members hear exactly each other */
  ml_room *two = ml_room_create(loop, 2);
  fake a, b;
  fake_init(&a, 0, 1);
  fake_init(&b, 0, 1);
  ml_room_join(two, &a.m);
  ml_room_join(two, &b.m);
  int16_t pa[ML_MIX_FRAME];
  a.publish = 1;
  a.value = -1234;
  b.value = 4321;
  ml_room_mix_once(two);
  for (int i = 0; i < ML_MIX_FRAME; i++) pa[i] = a.heard[i];
  CHECK(heard_all(&b, -1234));
  CHECK_EQ(pa[0], 4321);
  CHECK_EQ(pa[ML_MIX_FRAME - 1], 4321);

  /* saturation: two loud members clip what a third hears, not the sum */
  ml_room *three = ml_room_create(loop, 3);
  fake l1, l2, l3;
  fake_init(&l1, 30000, 1);
  fake_init(&l2, 30000, 1);
  fake_init(&l3, -5, 1);
  ml_room_join(three, &l1.m);
  ml_room_join(three, &l2.m);
  ml_room_join(three, &l3.m);
  ml_room_mix_once(three);
  CHECK(heard_all(&l3, 32767));
  CHECK(heard_all(&l1, 29995));

  ml_room_free(three);
  ml_room_free(two);
  ml_room_free(r);
  CHECK_EQ(loop->heap_len, 0); /* every room's timer stopped */
}

static void test_mute(ml_loop *loop)
{
  TEST_BEGIN("mute");
  ml_room *r = ml_room_create(loop, 4);
  fake a, b, c;
  fake_init(&a, 10, 1);
  fake_init(&b, 20, 1);
  fake_init(&c, 40, 1);
  ml_room_join(r, &a.m);
  ml_room_join(r, &b.m);
  ml_room_join(r, &c.m);
  ml_room_set_mute(&b.m, 1);
  CHECK_EQ(b.m.muted, 1);
  ml_room_mix_once(r);
  CHECK(heard_all(&a, 40)); /* b is not heard */
  CHECK(heard_all(&c, 10));
  CHECK(heard_all(&b, 50)); /* but b still hears */
  ml_room_set_mute(&b.m, 0);
  ml_room_mix_once(r);
  CHECK(heard_all(&a, 60));
  CHECK(heard_all(&c, 30));
  /* any non-zero is "muted" */
  ml_room_set_mute(&b.m, 7);
  CHECK_EQ(b.m.muted, 1);

  /* mute follows the member: set outside any room, kept through a move */
  ml_room *r2 = ml_room_create(loop, 4);
  fake d, e;
  fake_init(&d, 1000, 1);
  fake_init(&e, 3, 1);
  ml_room_set_mute(&d.m, 1);
  CHECK(d.m.room == NULL);
  ml_room_join(r2, &d.m);
  ml_room_join(r2, &e.m);
  ml_room_mix_once(r2);
  CHECK(heard_all(&e, 0));
  CHECK(heard_all(&d, 3));
  ml_room_join(r2, &b.m); /* muted b moves from r to r2 */
  ml_room_mix_once(r2);
  CHECK(heard_all(&e, 0));
  CHECK(heard_all(&b, 3));
  /* and a slot freed by a muted member is not muted for the next one */
  ml_room_leave(&d.m);
  fake g;
  fake_init(&g, 500, 1);
  CHECK_EQ(ml_room_join(r2, &g.m), 0);
  ml_room_mix_once(r2);
  CHECK(heard_all(&e, 500));
  ml_room_free(r2);
  ml_room_free(r);
}

static void test_join_leave_move(ml_loop *loop)
{
  TEST_BEGIN("join/leave/move");
  ml_room *r1 = ml_room_create(loop, 4), *r2 = ml_room_create(loop, 4);
  fake a, b, c, d;
  fake_init(&a, 1, 1);
  fake_init(&b, 10, 1);
  fake_init(&c, 100, 1);
  fake_init(&d, 1000, 1);
  CHECK_EQ(ml_room_join(r1, &a.m), 0);
  CHECK_EQ(ml_room_join(r1, &b.m), 0);
  CHECK_EQ(ml_room_join(r1, &c.m), 0);
  CHECK_EQ(ml_room_join(r2, &d.m), 0);
  CHECK_EQ(ml_room_members(r1), 3);
  CHECK_EQ(ml_room_members(r2), 1);
  /* joining the room it is in changes nothing */
  int id = b.m.id;
  CHECK_EQ(ml_room_join(r1, &b.m), 0);
  CHECK_EQ(b.m.id, id);
  CHECK_EQ(ml_room_members(r1), 3);
  CHECK_EQ(ml_mixer_count(r1->mixer), 3);

  /* b moves to r2 */
  CHECK_EQ(ml_room_join(r2, &b.m), 0);
  CHECK(b.m.room == r2);
  CHECK_EQ(ml_room_members(r1), 2);
  CHECK_EQ(ml_room_members(r2), 2);
  CHECK_EQ(ml_mixer_count(r1->mixer), 2);
  CHECK_EQ(ml_mixer_count(r2->mixer), 2);
  ml_room_mix_once(r1);
  ml_room_mix_once(r2);
  CHECK(heard_all(&b, 1000)); /* only the new room */
  CHECK(heard_all(&d, 10));
  CHECK(heard_all(&a, 100)); /* the old room no longer hears b */
  CHECK(heard_all(&c, 1));
  CHECK_EQ(b.pulls, 1); /* pulled by r2 only (it joined r2 before either tick) */
  CHECK_EQ(b.pushes, 1);

  /* leave: out of both, twice is harmless */
  ml_room_leave(&b.m);
  CHECK(b.m.room == NULL);
  CHECK_EQ(b.m.id, -1);
  ml_room_leave(&b.m);
  CHECK_EQ(ml_room_members(r2), 1);
  CHECK_EQ(ml_mixer_count(r2->mixer), 1);
  ml_room_mix_once(r1);
  ml_room_mix_once(r2);
  CHECK_EQ(b.pulls, 1);
  CHECK(heard_all(&d, 0)); /* alone */

  /* many moves back and forth keep every count right */
  fake *all[4] = {&a, &b, &c, &d};
  for (int k = 0; k < 200; k++) {
    fake *f = all[rng() % 4];
    switch (rng() % 3) {
    case 0:
      ml_room_join(r1, &f->m);
      break;
    case 1:
      ml_room_join(r2, &f->m);
      break;
    default:
      ml_room_leave(&f->m);
      break;
    }
  }
  int in1 = 0, in2 = 0;
  for (int i = 0; i < 4; i++) in1 += all[i]->m.room == r1, in2 += all[i]->m.room == r2;
  CHECK_EQ(ml_room_members(r1), in1);
  CHECK_EQ(ml_room_members(r2), in2);
  CHECK_EQ(ml_mixer_count(r1->mixer), in1);
  CHECK_EQ(ml_mixer_count(r2->mixer), in2);
  /* everyone in r1 hears exactly the other members of r1 */
  ml_room_mix_once(r1);
  ml_room_mix_once(r2);
  int bad = 0;
  for (int i = 0; i < 4; i++) {
    if (!all[i]->m.room) continue;
    int expect = 0;
    for (int j = 0; j < 4; j++)
      if (j != i && all[j]->m.room == all[i]->m.room) expect += all[j]->value;
    bad += !heard_all(all[i], expect);
  }
  CHECK_EQ(bad, 0);
  ml_room_free(r1);
  ml_room_free(r2);
}

static void test_full(ml_loop *loop)
{
  TEST_BEGIN("full room");
  ml_room *r = ml_room_create(loop, 2), *other = ml_room_create(loop, 2);
  fake a, b, c, d;
  fake_init(&a, 1, 1);
  fake_init(&b, 2, 1);
  fake_init(&c, 4, 1);
  fake_init(&d, 8, 1);
  CHECK_EQ(ml_room_join(r, &a.m), 0);
  CHECK_EQ(ml_room_join(r, &b.m), 0);
  CHECK_EQ(ml_room_join(other, &c.m), 0);
  int cid = c.m.id;
  CHECK_EQ(ml_room_join(r, &c.m), -1); /* full: c stays where it was */
  CHECK(c.m.room == other);
  CHECK_EQ(c.m.id, cid);
  CHECK_EQ(ml_room_members(other), 1);
  CHECK_EQ(ml_room_members(r), 2);
  CHECK_EQ(ml_room_join(r, &d.m), -1); /* in no room: stays in none */
  CHECK(d.m.room == NULL);
  CHECK_EQ(d.m.id, -1);
  ml_room_join(other, &d.m);
  ml_room_mix_once(other);
  CHECK(heard_all(&c, 8)); /* c still plays in its room */
  ml_room_mix_once(r);
  CHECK(heard_all(&a, 2));
  /* a leaves: now c fits */
  ml_room_leave(&a.m);
  CHECK_EQ(ml_room_join(r, &c.m), 0);
  CHECK(c.m.room == r);
  CHECK_EQ(ml_room_members(other), 1);
  ml_room_free(r);
  ml_room_free(other);
}

static void test_free_kicks(ml_loop *loop)
{
  TEST_BEGIN("free kicks");
  ml_room *r = ml_room_create(loop, 4);
  fake a, b, c, out;
  fake_init(&a, 1, 1);
  fake_init(&b, 2, 0);
  fake_init(&c, 3, 1);
  fake_init(&out, 4, 1);
  c.m.kick = NULL; /* an owner with nothing to do */
  ml_room_join(r, &a.m);
  ml_room_join(r, &b.m);
  ml_room_join(r, &c.m);
  ml_room_join(r, &out.m);
  ml_room_leave(&out.m);
  ml_room_mix_once(r);
  ml_room_free(r);
  CHECK_EQ(a.kicks, 1);
  CHECK_EQ(b.kicks, 1);
  CHECK_EQ(out.kicks, 0); /* it had left */
  CHECK(a.room_at_kick == NULL); /* already let go when kicked */
  CHECK(b.room_at_kick == NULL);
  CHECK(a.m.room == NULL && b.m.room == NULL && c.m.room == NULL);
  CHECK(a.m.id == -1 && b.m.id == -1 && c.m.id == -1);
  CHECK_EQ(loop->heap_len, 0);
  /* they can join another room afterwards */
  ml_room *r2 = ml_room_create(loop, 4);
  CHECK_EQ(ml_room_join(r2, &a.m), 0);
  CHECK_EQ(ml_room_join(r2, &c.m), 0);
  ml_room_mix_once(r2);
  CHECK(heard_all(&a, 3));
  ml_room_free(r2);
  CHECK_EQ(a.kicks, 2);
  CHECK_EQ(c.kicks, 0);
  ml_room_free(NULL);
  /* an empty room frees quietly */
  ml_room_free(ml_room_create(loop, 1));
}

/* ---- tracks ------------------------------------------------------------------- */

static int done_calls;
static ml_track *done_track;
static uint64_t done_at_tick;
static ml_room *done_room;
static void on_done(ml_track *t, void *data)
{
  done_calls++;
  done_track = t;
  CHECK(data == &done_calls);
  done_at_tick = done_room ? done_room->stats.ticks : 0;
}

/* the tone as a listener hears it, n frames */
static void listen_frames(ml_room *r, fake *ear, int16_t *out, int frames)
{
  for (int k = 0; k < frames; k++) {
    ml_room_mix_once(r);
    memcpy(out + (size_t)k * ML_MIX_FRAME, ear->heard, sizeof ear->heard);
  }
}

static void test_tone(ml_loop *loop)
{
  TEST_BEGIN("tone track");
  static int16_t pcm[100 * ML_MIX_FRAME];
  const size_t n = 50 * ML_MIX_FRAME; /* one second */
  ml_room *r = ml_room_create(loop, 4);
  fake ear;
  fake_init(&ear, 0, 1);
  ear.publish = 0;
  ml_room_join(r, &ear.m);

  const double freqs[] = {440, 1000, 3125.5};
  for (size_t fi = 0; fi < sizeof freqs / sizeof *freqs; fi++) {
    ml_track t;
    ml_track_init_tone(&t, freqs[fi], 0.5, 0);
    CHECK_EQ(t.member.listens, 0);
    CHECK_EQ(ml_room_join(r, &t.member), 0);
    listen_frames(r, &ear, pcm, 50);
    /* frequency: sign changes, two per cycle */
    long crossings = 0;
    for (size_t i = 1; i < n; i++) crossings += (pcm[i - 1] < 0) != (pcm[i] < 0);
    CHECK(labs(crossings - lround(2 * freqs[fi])) <= 2);
    /* ... and the energy is at hz, not 20 Hz away */
    double at = goertzel(pcm, n, freqs[fi], ML_MIX_RATE), off = goertzel(pcm, n, freqs[fi] + 20, ML_MIX_RATE);
    CHECK(at > 1000 * off);
    /* level: half of full scale, peak and RMS */
    int peak = 0;
    double sq = 0;
    for (size_t i = 0; i < n; i++) {
      int v = abs(pcm[i]);
      if (v > peak) peak = v;
      sq += (double)pcm[i] * pcm[i];
    }
    double rms = sqrt(sq / (double)n), want = 32767.0 * 0.5;
    CHECK(peak <= (int)want + 1 && peak >= (int)(want * 0.99));
    CHECK(fabs(rms - want / sqrt(2)) < want * 0.005);
    /* no click at frame joins: the phasor runs on across frames */
    double max_step = want * 2 * M_PI * freqs[fi] / ML_MIX_RATE + 2;
    int jumps = 0;
    for (size_t i = 1; i < n; i++) jumps += fabs((double)pcm[i] - pcm[i - 1]) > max_step;
    CHECK_EQ(jumps, 0);
    CHECK_EQ(t.frames, 50);
    CHECK_EQ(t.done, 0); /* untimed: plays on */
    ml_track_release(&t);
    CHECK(t.member.room == NULL);
  }

  /* the level is clamped to full scale, and a long tone stays at its level */
  ml_track loud;
  ml_track_init_tone(&loud, 997, 5.0, 0);
  ml_room_join(r, &loud.member);
  for (int k = 0; k < 3000; k++) ml_room_mix_once(r); /* a minute */
  listen_frames(r, &ear, pcm, 50);
  int peak = 0;
  for (size_t i = 0; i < n; i++)
    if (abs(pcm[i]) > peak) peak = abs(pcm[i]);
  CHECK(peak >= 32700 && peak <= 32767);
  ml_track_release(&loud);
  ml_track zero;
  ml_track_init_tone(&zero, 440, -1, 0);
  ml_room_join(r, &zero.member);
  ml_room_mix_once(r);
  CHECK(heard_all(&ear, 0));
  ml_track_release(&zero);

  /* timed: 0.1 s is five frames, then on_done once and silence */
  ml_track t;
  ml_track_init_tone(&t, 500, 0.3, 0.1);
  t.on_done = on_done;
  t.data = &done_calls;
  done_calls = 0;
  done_room = r;
  ml_room_join(r, &t.member);
  uint64_t start = r->stats.ticks;
  int loud_ticks = 0, bad_done = 0;
  for (int k = 0; k < 10; k++) {
    ml_room_mix_once(r);
    int nz = !heard_all(&ear, 0);
    loud_ticks += nz;
    if (k < 4) bad_done += done_calls != 0;
    if (k >= 5) bad_done += nz; /* silent once done */
  }
  CHECK_EQ(loud_ticks, 5);
  CHECK_EQ(bad_done, 0);
  CHECK_EQ(done_calls, 1);
  CHECK(done_track == &t);
  CHECK_EQ(done_at_tick, start + 4); /* during the fifth tick */
  CHECK_EQ(t.frames, 5);
  CHECK_EQ(t.done, 1);
  CHECK(t.member.room == r); /* done does not leave the room: the owner does */
  ml_track_release(&t);

  /* rounding to whole frames, at least one */
  const struct {
    double s;
    uint64_t frames;
  } timed[] = {{0.001, 1}, {0.02, 1}, {0.029, 1}, {0.031, 2}, {1.0, 50}, {2.5, 125}};
  for (size_t i = 0; i < sizeof timed / sizeof *timed; i++) {
    ml_track_init_tone(&t, 440, 0.3, timed[i].s);
    t.on_done = on_done;
    t.data = &done_calls;
    done_calls = 0;
    ml_room_join(r, &t.member);
    for (int k = 0; k < 200; k++) ml_room_mix_once(r);
    CHECK_EQ(t.frames, timed[i].frames);
    CHECK_EQ(done_calls, 1);
    ml_track_release(&t);
  }
  done_room = NULL;
  ml_room_free(r);
}

static int16_t *clip_of(size_t n, int16_t base)
{
  int16_t *c = malloc((n ? n : 1) * sizeof *c);
  MUST(c != NULL);
  for (size_t i = 0; i < n; i++) c[i] = (int16_t)(base + (int)(i % 20000));
  return c;
}

static void test_clip(ml_loop *loop)
{
  TEST_BEGIN("clip track");
  static int16_t pcm[40 * ML_MIX_FRAME];
  ml_room *r = ml_room_create(loop, 4);
  fake ear;
  fake_init(&ear, 0, 1);
  ear.publish = 0;
  ml_room_join(r, &ear.m);

  /* once: 700 samples = 320 + 320 + 60, the last frame padded with zeros */
  ml_track t;
  ml_track_init_clip(&t, clip_of(700, 1), 700, 0);
  t.on_done = on_done;
  t.data = &done_calls;
  done_calls = 0;
  done_room = r;
  ml_room_join(r, &t.member);
  uint64_t start = r->stats.ticks;
  listen_frames(r, &ear, pcm, 2);
  CHECK_EQ(done_calls, 0);
  listen_frames(r, &ear, pcm + 2 * ML_MIX_FRAME, 3);
  int bad = 0;
  for (int i = 0; i < 5 * ML_MIX_FRAME; i++) bad += pcm[i] != (i < 700 ? 1 + i : 0);
  CHECK_EQ(bad, 0);
  CHECK_EQ(done_calls, 1);
  CHECK_EQ(done_at_tick, start + 2); /* during the third tick */
  CHECK_EQ(t.frames, 3);
  CHECK_EQ(t.done, 1);
  ml_track_release(&t);
  CHECK(t.clip == NULL);

  /* once, a whole number of frames: done on the last one, no extra frame */
  ml_track_init_clip(&t, clip_of(640, -300), 640, 0);
  t.on_done = on_done;
  t.data = &done_calls;
  done_calls = 0;
  ml_room_join(r, &t.member);
  start = r->stats.ticks;
  listen_frames(r, &ear, pcm, 4);
  bad = 0;
  for (int i = 0; i < 4 * ML_MIX_FRAME; i++) bad += pcm[i] != (i < 640 ? -300 + i : 0);
  CHECK_EQ(bad, 0);
  CHECK_EQ(done_calls, 1);
  CHECK_EQ(done_at_tick, start + 1);
  CHECK_EQ(t.frames, 2);
  ml_track_release(&t);

  /* looped: the samples run on across the wrap, no gap, no repeat */
  const size_t lens[] = {700, 320, 100, 1, 3 * ML_MIX_FRAME + 7};
  for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
    size_t len = lens[li];
    ml_track_init_clip(&t, clip_of(len, 7), len, 1);
    t.on_done = on_done;
    t.data = &done_calls;
    done_calls = 0;
    ml_room_join(r, &t.member);
    listen_frames(r, &ear, pcm, 40);
    bad = 0;
    for (size_t i = 0; i < 40 * ML_MIX_FRAME; i++) bad += pcm[i] != 7 + (int)((i % len) % 20000);
    CHECK_EQ(bad, 0);
    CHECK_EQ(done_calls, 0);
    CHECK_EQ(t.done, 0);
    CHECK_EQ(t.frames, 40);
    ml_track_release(&t);
  }

  /* an empty clip played once ends at once (a track:wait() must not hang);
   * looped, it is silence until stopped */
  ml_track_init_clip(&t, clip_of(0, 0), 0, 0);
  t.on_done = on_done;
  t.data = &done_calls;
  done_calls = 0;
  ml_room_join(r, &t.member);
  listen_frames(r, &ear, pcm, 3);
  CHECK_EQ(done_calls, 1);
  CHECK_EQ(t.done, 1);
  CHECK(heard_all(&ear, 0));
  ml_track_release(&t);
  ml_track_init_clip(&t, clip_of(0, 0), 0, 1);
  t.on_done = on_done;
  t.data = &done_calls;
  done_calls = 0;
  ml_room_join(r, &t.member);
  listen_frames(r, &ear, pcm, 3);
  CHECK_EQ(done_calls, 0);
  CHECK(heard_all(&ear, 0));
  ml_track_release(&t);
  ml_track_release(&t); /* twice is harmless */

  /* a track kicked by ml_room_free is let go; its owner releases it later */
  ml_track_init_clip(&t, clip_of(500, 0), 500, 1);
  ml_room_join(r, &t.member);
  done_room = NULL;
  ml_room_free(r);
  CHECK(t.member.room == NULL);
  ml_track_release(&t);
}

/* ---- endpoints ---------------------------------------------------------------- */

static int ep_ticks;
static void on_ep_tick(ml_endpoint *e, void *data)
{
  (void)e;
  (*(int *)data)++;
}

static void test_endpoint(ml_loop *loop)
{
  TEST_BEGIN("endpoint");
  ml_room *r = ml_room_create(loop, 4);
  ml_endpoint e;
  MUST(ml_endpoint_init(&e, 100, 100) == 0);
  CHECK_EQ(e.member.listens, 1);
  CHECK(e.speak.cap >= 5 * ML_MIX_FRAME && e.speak.cap % ML_MIX_FRAME == 0);
  CHECK(e.hear.cap >= 5 * ML_MIX_FRAME && e.hear.cap % ML_MIX_FRAME == 0);
  e.on_tick = on_ep_tick;
  e.data = &ep_ticks;
  fake peer;
  fake_init(&peer, 0, 1);
  peer.publish = 0;
  ml_room_join(r, &e.member);
  ml_room_join(r, &peer.m);

  /* write more than the speak ring holds: part is taken */
  size_t big = e.speak.cap + 1000;
  int16_t *src = malloc(big * sizeof *src);
  for (size_t i = 0; i < big; i++) src[i] = (int16_t)(i % 30000 + 1);
  size_t took = ml_endpoint_write(&e, src, big);
  CHECK_EQ(took, e.speak.cap);
  CHECK_EQ(ml_endpoint_write(&e, src, 10), 0); /* full */
  /* the peer hears it a frame a tick, in order */
  int bad = 0;
  size_t frames = e.speak.cap / ML_MIX_FRAME;
  for (size_t k = 0; k < frames; k++) {
    ml_room_mix_once(r);
    for (int i = 0; i < ML_MIX_FRAME; i++) bad += peer.heard[i] != src[k * ML_MIX_FRAME + (size_t)i];
  }
  CHECK_EQ(bad, 0);
  CHECK_EQ(e.spoken, e.speak.cap);
  CHECK_EQ(e.speak.len, 0);
  ml_room_mix_once(r); /* ran dry: silence */
  CHECK(heard_all(&peer, 0));
  CHECK_EQ((size_t)ep_ticks, frames + 1); /* on_tick on every tick */

  /* a partial frame is padded; the rest of the ring wraps correctly */
  CHECK_EQ(ml_endpoint_write(&e, src, 100), 100);
  ml_room_mix_once(r);
  bad = 0;
  for (int i = 0; i < ML_MIX_FRAME; i++) bad += peer.heard[i] != (i < 100 ? src[i] : 0);
  CHECK_EQ(bad, 0);
  CHECK_EQ(e.spoken, e.speak.cap + 100);

  /* read returns what was heard, in order; the endpoint does not hear itself */
  int16_t *got = malloc((e.hear.cap + ML_MIX_FRAME) * sizeof *got);
  size_t drained = ml_endpoint_read(&e, got, e.hear.cap + ML_MIX_FRAME); /* what piled up */
  CHECK(drained <= e.hear.cap);
  CHECK_EQ(ml_endpoint_read(&e, got, 100), 0);
  CHECK_EQ(e.hear.len, 0);
  ml_endpoint_clear(&e);
  peer.publish = 1;
  e.heard_dropped = 0;
  for (int k = 0; k < 3; k++) {
    peer.value = (int16_t)(100 + k);
    ml_room_mix_once(r);
  }
  CHECK_EQ(e.hear.len, 3 * ML_MIX_FRAME);
  CHECK_EQ(ml_endpoint_read(&e, got, 500), 500); /* any block size */
  size_t rest = ml_endpoint_read(&e, got + 500, 10000);
  CHECK_EQ(rest, 3 * ML_MIX_FRAME - 500);
  bad = 0;
  for (int i = 0; i < 3 * ML_MIX_FRAME; i++) bad += got[i] != 100 + i / ML_MIX_FRAME;
  CHECK_EQ(bad, 0);
  CHECK_EQ(e.heard_dropped, 0);

  /* a slow reader loses the oldest, counted */
  size_t hear_frames = e.hear.cap / ML_MIX_FRAME, extra = 4;
  for (size_t k = 0; k < hear_frames + extra; k++) {
    peer.value = (int16_t)(1000 + k);
    ml_room_mix_once(r);
  }
  CHECK_EQ(e.heard_dropped, extra * ML_MIX_FRAME);
  CHECK_EQ(e.hear.len, e.hear.cap);
  size_t n = ml_endpoint_read(&e, got, e.hear.cap + ML_MIX_FRAME);
  CHECK_EQ(n, e.hear.cap);
  bad = 0;
  for (size_t i = 0; i < n; i++) bad += got[i] != (int16_t)(1000 + extra + i / ML_MIX_FRAME);
  CHECK_EQ(bad, 0);
  /* the same with the ring's head mid-frame (a reader taking odd blocks) */
  peer.value = 1;
  ml_room_mix_once(r);
  CHECK_EQ(ml_endpoint_read(&e, got, 77), 77);
  e.heard_dropped = 0;
  for (size_t k = 0; k < hear_frames; k++) {
    peer.value = (int16_t)(2000 + k);
    ml_room_mix_once(r);
  }
  CHECK_EQ(e.heard_dropped, ML_MIX_FRAME - 77);
  n = ml_endpoint_read(&e, got, e.hear.cap);
  CHECK_EQ(n, e.hear.cap);
  bad = 0;
  for (size_t i = 0; i < n; i++) bad += got[i] != (int16_t)(2000 + i / ML_MIX_FRAME);
  CHECK_EQ(bad, 0);

  /* clear empties the speak ring (barge-in): nothing more is published */
  peer.publish = 0;
  CHECK_EQ(ml_endpoint_write(&e, src, 1000), 1000);
  ml_room_mix_once(r);
  CHECK_EQ(ml_endpoint_clear(&e), 1000 - ML_MIX_FRAME);
  CHECK_EQ(e.speak.len, 0);
  CHECK_EQ(ml_endpoint_clear(&e), 0);
  ml_room_mix_once(r);
  CHECK(heard_all(&peer, 0));
  /* and the ring takes a full load again after the clear */
  CHECK_EQ(ml_endpoint_write(&e, src, big), e.speak.cap);

  /* two endpoints talk to each other */
  ml_endpoint e2;
  MUST(ml_endpoint_init(&e2, 20, 20) == 0);
  ml_endpoint_clear(&e);
  ml_room_join(r, &e2.member);
  ml_endpoint_read(&e, got, e.hear.cap);
  CHECK_EQ(ml_endpoint_write(&e2, src, ML_MIX_FRAME), ML_MIX_FRAME);
  ml_room_mix_once(r);
  CHECK_EQ(ml_endpoint_read(&e, got, e.hear.cap), ML_MIX_FRAME);
  CHECK(memcmp(got, src, ML_MIX_FRAME * sizeof *got) == 0);
  CHECK_EQ(ml_endpoint_read(&e2, got, e2.hear.cap), ML_MIX_FRAME);
  bad = 0;
  for (int i = 0; i < ML_MIX_FRAME; i++) bad += got[i] != 0;
  CHECK_EQ(bad, 0);

  /* released: out of the room, every call returns 0 */
  ml_endpoint_release(&e);
  CHECK(e.member.room == NULL);
  CHECK_EQ(ml_endpoint_write(&e, src, 10), 0);
  CHECK_EQ(ml_endpoint_read(&e, got, 10), 0);
  CHECK_EQ(ml_endpoint_clear(&e), 0);
  ml_endpoint_release(&e);
  CHECK_EQ(ml_room_members(r), 2);
  ml_room_free(r);
  CHECK(e2.member.room == NULL);
  ml_endpoint_release(&e2);
  free(got);
  free(src);
}

/* ---- the tick timer ----------------------------------------------------------- */

static void test_tick_virtual(lua_State *L)
{
  TEST_BEGIN("tick (virtual clock)");
  ml_loop *loop = new_loop(L, 1);
  ml_room *r = ml_room_create(loop, 4);
  fake a, b;
  fake_init(&a, 5, 1);
  fake_init(&b, 6, 1);
  ml_room_join(r, &a.m);
  ml_room_join(r, &b.m);
  ml_clock_advance(loop, 19 * MS);
  CHECK_EQ(r->stats.ticks, 0);
  ml_clock_advance(loop, 1 * MS);
  CHECK_EQ(r->stats.ticks, 1);
  CHECK(heard_all(&a, 6));
  ml_clock_advance(loop, 200 * MS);
  CHECK_EQ(r->stats.ticks, 11);
  CHECK_EQ(a.pushes, 11);
  CHECK_EQ(r->stats.late_ticks, 0);
  CHECK_EQ(r->stats.max_tick_lag_ns, 0);
  /* a stalled loop: the late tick runs once, the schedule skips ahead
   * rather than bursting the ticks it missed */
  loop->virtual_now += 150 * MS;
  ml_clock_advance(loop, 0);
  CHECK_EQ(r->stats.ticks, 12);
  CHECK_EQ(r->stats.late_ticks, 1);
  CHECK_EQ(r->stats.max_tick_lag_ns, 130 * MS); /* due at 240 ms, ran at 370 */
  ml_clock_advance(loop, 19 * MS);
  CHECK_EQ(r->stats.ticks, 12);
  ml_clock_advance(loop, 1 * MS);
  CHECK_EQ(r->stats.ticks, 13);
  ml_clock_advance(loop, 1000 * MS);
  CHECK_EQ(r->stats.ticks, 63);
  ml_room_free(r);
  CHECK_EQ(loop->heap_len, 0);
  ml_clock_advance(loop, 1000 * MS); /* nothing fires after free */
  ml_loop_free(loop);
}

static void test_tick_real(lua_State *L)
{
  TEST_BEGIN("tick (real clock)");
  ml_loop *loop = new_loop(L, 0);
  ml_room *r = ml_room_create(loop, 4);
  ml_track t;
  ml_track_init_tone(&t, 440, 0.2, 0);
  ml_room_join(r, &t.member);
  uint64_t t0 = uv_hrtime();
  while (uv_hrtime() - t0 < 200 * MS) uv_run(loop->uv, UV_RUN_ONCE);
  uint64_t ticks = r->stats.ticks;
  printf("real clock: %llu ticks in 200 ms, worst lag %.2f ms, %llu late\n", (unsigned long long)ticks,
         r->stats.max_tick_lag_ns / 1e6, (unsigned long long)r->stats.late_ticks);
  CHECK(ticks >= 8 && ticks <= 11);
  CHECK_EQ(t.frames, ticks);
  ml_room_free(r);
  ml_track_release(&t);
  CHECK(!uv_loop_alive(loop->uv));
  ml_loop_free(loop);
}

/* the cost of a tick for a few room sizes (fake members, all listening) */
static void bench(ml_loop *loop)
{
  static fake fs[100];
  const int sizes[] = {2, 10, 100};
  for (size_t s = 0; s < 3; s++) {
    ml_room *r = ml_room_create(loop, 100);
    for (int i = 0; i < sizes[s]; i++) {
      fake_init(&fs[i], (int16_t)i, 1);
      ml_room_join(r, &fs[i].m);
    }
    const int rounds = 2000;
    uint64_t t0 = now_ns();
    for (int k = 0; k < rounds; k++) ml_room_mix_once(r);
    printf("room tick, %3d members: %.1f us\n", sizes[s], (double)(now_ns() - t0) / rounds / 1000.0);
    ml_room_free(r);
  }
}

int main(void)
{
  const char *seed = getenv("ML_TEST_SEED");
  if (seed) ml_test_rng_state = strtoull(seed, NULL, 0) | 1;
  lua_State *L = luaL_newstate();
  REQUIRE(L != NULL);
  ml_loop *loop = new_loop(L, 1);
  test_n_minus_one(loop);
  test_mute(loop);
  test_join_leave_move(loop);
  test_full(loop);
  test_free_kicks(loop);
  test_tone(loop);
  test_clip(loop);
  test_endpoint(loop);
  bench(loop);
  CHECK_EQ(loop->heap_len, 0);
  ml_loop_free(loop);
  test_tick_virtual(L);
  test_tick_real(L);
  lua_close(L);
  return ML_TEST_DONE("test_room");
}
