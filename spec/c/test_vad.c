/* Voice activity detection (engine/voice/vad.c) on real speech and on what
 * must not be speech.
 *
 * The speech is espeak-ng committed as 16 kHz mono WAVs (spec/fixtures), so
 * the test needs no TTS at run time:
 *   speech_phrase.wav  "What's the weather in Paris?", 250 ms of silence
 *                      either side
 *   speech_pause.wav   "Turn left." 700 ms of silence "Then stop.", 200 ms
 *                      of silence either side
 * made with espeak-ng -v en-us -s 170 -w, sox to 16 kHz/16-bit, leading and
 * trailing silence trimmed (sox silence 1 0.005 0.1%) and padded back to the
 * amounts above. The true onset and end are measured here from the clean
 * audio (5 ms blocks over -44 dBFS), not assumed from the padding.
 *
 * Checked: silence, white noise at four levels (from the start and switching
 * on after silence), a 1 kHz tone, a 50 Hz hum and DTMF digits give no edges; the phrase
 * starts within 100 ms of its onset and ends within 150 ms of its end, the
 * END edge within min_silence + 100 ms; the padded start and the audio kept
 * for it; the 700 ms pause splits the utterance at min_silence 500 but not
 * at 1000, a 300 ms one never; the phrase at 10 dB SNR in white noise after
 * 2 s of noise, after a noise switched on 2 s before, and 26 dB quieter;
 * 10, 20 and 60 ms frames agree; reset; bad frame sizes. Prints the onset
 * and end errors and the cost of a 20 ms frame. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "ml_test.h"
#include "vad.h"
#include "wav.h"

#define RATE 16000
#define MS(x) ((uint64_t)(x)*RATE / 1000)
#define MAX_UTT 8

static char err[512];

/* ---- signals ------------------------------------------------------------- */

typedef struct sig {
  int16_t *x;
  size_t n;
} sig;

static sig sig_new(size_t n)
{
  n = (n + ML_VAD_STEP - 1) / ML_VAD_STEP * ML_VAD_STEP; /* whole steps */
  sig s = {calloc(n, sizeof(int16_t)), n};
  MUST(s.x);
  return s;
}

static sig fixture(const char *name)
{
  char path[1024];
  snprintf(path, sizeof path, "%s/spec/fixtures/%s", ML_SOURCE_DIR, name);
  int16_t *x;
  size_t n;
  if (ml_wav_load(path, RATE, &x, &n, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    MUST(0);
  }
  sig s = sig_new(n);
  memcpy(s.x, x, n * sizeof *x);
  free(x);
  return s;
}

/* p with lead and tail of silence */
static sig placed(const sig *p, size_t lead, size_t tail)
{
  sig s = sig_new(lead + p->n + tail);
  memcpy(s.x + lead, p->x, p->n * sizeof *p->x);
  return s;
}

static int16_t sat(double v) { return (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : lrint(v)); }

/* add src × gain at sample `at` of dst */
static void mix_in(sig *dst, size_t at, const sig *src, double gain)
{
  for (size_t i = 0; i < src->n && at + i < dst->n; i++)
    dst->x[at + i] = sat(dst->x[at + i] + gain * src->x[i]);
}

/* uniform white noise of the given rms (full scale = 32768) on [from, to) */
static void add_noise(sig *s, size_t from, size_t to, double rms)
{
  double a = rms * sqrt(3.0);
  for (size_t i = from; i < to && i < s->n; i++) {
    double u = (double)(rng() >> 11) / (double)(1ull << 53) * 2.0 - 1.0;
    s->x[i] = sat(s->x[i] + a * u);
  }
}

static void add_sine(sig *s, size_t from, size_t to, double hz, double peak)
{
  for (size_t i = from; i < to && i < s->n; i++)
    s->x[i] = sat(s->x[i] + peak * sin(2 * M_PI * hz * (double)(i - from) / RATE));
}

static double db_to_amp(double dbfs) { return 32768.0 * pow(10.0, dbfs / 20.0); }

/* ---- the truth, from the clean speech -------------------------------------- */

#define BLOCK 80 /* 5 ms */
#define LOUD 200.0 /* rms: -44 dBFS */

static double block_rms(const sig *s, size_t b)
{
  double e = 0;
  for (size_t i = b * BLOCK; i < (b + 1) * BLOCK; i++) e += (double)s->x[i] * s->x[i];
  return sqrt(e / BLOCK);
}

/* the loud stretches of a clean signal: gaps under 250 ms are inside words */
typedef struct span {
  uint64_t start, end;
} span;

static int spans_of(const sig *s, span *out, int cap)
{
  int n = 0;
  for (size_t b = 0; b < s->n / BLOCK; b++) {
    if (block_rms(s, b) < LOUD) continue;
    uint64_t at = b * BLOCK;
    if (n && at - out[n - 1].end < MS(250))
      out[n - 1].end = at + BLOCK;
    else if (n < cap)
      out[n++] = (span){at, at + BLOCK};
  }
  return n;
}

/* the rms of the loud blocks: the active speech level, for SNRs */
static double active_rms(const sig *s)
{
  double e = 0;
  size_t k = 0;
  for (size_t b = 0; b < s->n / BLOCK; b++) {
    double r = block_rms(s, b);
    if (r >= LOUD) e += r * r, k++;
  }
  return k ? sqrt(e / (double)k) : 0;
}

/* ---- running the detector --------------------------------------------------- */

typedef struct utt {
  uint64_t start, padded, end; /* end 0: still open */
  uint64_t start_at, end_at; /* where the stream was when the edge came */
} utt;

typedef struct run {
  utt u[MAX_UTT];
  int n;
  int bad; /* inconsistent states or edges */
  float max_score;
} run;

static void on_result(run *r, const ml_vad_result *res, uint64_t now, ml_vad_state *was)
{
  unsigned e = res->edges;
  /* both in one frame: an end then a new start, or a start then its end */
  int end_first = (e & ML_VAD_END) && (e & ML_VAD_START) && res->end_pos <= res->start_pos;
  if ((e & ML_VAD_END) && end_first) {
    if (*was != ML_VAD_SPEECH || !r->n)
      r->bad++;
    else
      r->u[r->n - 1].end = res->end_pos, r->u[r->n - 1].end_at = now;
    *was = ML_VAD_SILENCE;
  }
  if (e & ML_VAD_START) {
    if (*was != ML_VAD_SILENCE) r->bad++;
    if (r->n < MAX_UTT) r->u[r->n++] = (utt){res->start_pos, res->padded_start_pos, 0, now, 0};
    if (res->padded_start_pos > res->start_pos) r->bad++;
    *was = ML_VAD_SPEECH;
  }
  if ((e & ML_VAD_END) && !end_first) {
    if (*was != ML_VAD_SPEECH || !r->n)
      r->bad++;
    else
      r->u[r->n - 1].end = res->end_pos, r->u[r->n - 1].end_at = now;
    *was = ML_VAD_SILENCE;
  }
  if (res->state != *was) r->bad++;
  if (res->score > r->max_score) r->max_score = res->score;
}

static run run_vad(const ml_vad_config *cfg, const sig *s, size_t frame)
{
  run r = {0};
  ml_vad *v = ml_vad_create(cfg);
  MUST(v);
  ml_vad_state was = ML_VAD_SILENCE;
  for (size_t at = 0; at + frame <= s->n; at += frame) {
    ml_vad_result res;
    MUST(ml_vad_process(v, s->x + at, frame, &res) == 0);
    on_result(&r, &res, at + frame, &was);
  }
  ml_vad_free(v);
  return r;
}

static double ms_of(int64_t samples) { return (double)samples * 1000.0 / RATE; }

/* one utterance matching the truth: returns the onset error (ms) and prints */
static void check_one(const char *what, const run *r, span truth, const ml_vad_config *cfg)
{
  CHECK_EQ(r->n, 1);
  CHECK_EQ(r->bad, 0);
  if (r->n < 1) return;
  const utt *u = &r->u[0];
  double onset = ms_of((int64_t)u->start - (int64_t)truth.start);
  double end = u->end ? ms_of((int64_t)u->end - (int64_t)truth.end) : 1e9;
  double edge = u->end ? ms_of((int64_t)u->end_at - (int64_t)truth.end) : 1e9;
  double latency = ms_of((int64_t)u->start_at - (int64_t)truth.start);
  printf("  %-28s onset %+5.0f ms, end %+5.0f ms, START edge %+4.0f ms after onset, END edge %+4.0f ms "
         "after end\n",
         what, onset, end, latency, edge);
  CHECK(fabs(onset) <= 100);
  CHECK(fabs(end) <= 150);
  CHECK(u->end != 0 && edge <= cfg->min_silence_ms + 100);
  uint64_t pad = MS(cfg->prefix_padding_ms);
  CHECK_EQ(u->padded, u->start > pad ? u->start - pad : 0);
}

/* no edges, and the score never reached the threshold */
static void check_quiet(const char *what, const sig *s)
{
  run r = run_vad(NULL, s, 320);
  if (r.n)
    fprintf(stderr, "  %s: %d utterance(s), the first at %.0f ms\n", what, r.n, ms_of((int64_t)r.u[0].start));
  CHECK_EQ(r.n, 0);
  CHECK_EQ(r.bad, 0);
  printf("  %-28s no edges (max frame score %.2f)\n", what, r.max_score);
}

/* ---- the tests ---------------------------------------------------------------- */

static void test_not_speech(void)
{
  TEST_BEGIN("not speech");
  sig s = sig_new(MS(3000));
  check_quiet("digital silence", &s);
  static const double levels[] = {-70, -50, -30, -15};
  for (size_t i = 0; i < sizeof levels / sizeof *levels; i++) {
    char what[64];
    memset(s.x, 0, s.n * sizeof *s.x);
    add_noise(&s, 0, s.n, db_to_amp(levels[i]));
    snprintf(what, sizeof what, "white noise %.0f dBFS", levels[i]);
    check_quiet(what, &s);
    /* switching on after a second of silence: a jump of 30-85 dB over the floor */
    memset(s.x, 0, s.n * sizeof *s.x);
    add_noise(&s, MS(1000), s.n, db_to_amp(levels[i]));
    snprintf(what, sizeof what, "white noise %.0f dBFS at 1 s", levels[i]);
    check_quiet(what, &s);
  }
  memset(s.x, 0, s.n * sizeof *s.x);
  add_sine(&s, MS(500), s.n, 1000, db_to_amp(-10));
  check_quiet("1 kHz tone -13 dBFS at 0.5 s", &s);
  memset(s.x, 0, s.n * sizeof *s.x);
  add_noise(&s, 0, s.n, db_to_amp(-60));
  add_sine(&s, MS(500), s.n, 1000, db_to_amp(-20));
  check_quiet("1 kHz tone in -60 dBFS noise", &s);
  memset(s.x, 0, s.n * sizeof *s.x);
  add_sine(&s, MS(500), s.n, 50, db_to_amp(-10));
  add_sine(&s, MS(500), s.n, 150, db_to_amp(-20));
  add_noise(&s, 0, s.n, db_to_amp(-65));
  check_quiet("50 Hz hum + 150 Hz at 0.5 s", &s);
  /* ten DTMF digits, 100 ms on, 100 ms off, each tone -13 dBFS */
  memset(s.x, 0, s.n * sizeof *s.x);
  static const double low[] = {697, 770, 852, 941}, high[] = {1209, 1336, 1477, 1633};
  for (int d = 0; d < 10; d++) {
    size_t at = MS(500) + (size_t)d * MS(200);
    add_sine(&s, at, at + MS(100), low[d % 4], db_to_amp(-10));
    add_sine(&s, at, at + MS(100), high[(d * 3 + 1) % 4], db_to_amp(-10));
  }
  check_quiet("DTMF, 10 digits 100/100 ms", &s);
  free(s.x);
}

static void test_phrase(void)
{
  TEST_BEGIN("phrase");
  ml_vad_config c;
  ml_vad_config_default(&c);
  sig f = fixture("speech_phrase.wav"), s = placed(&f, 0, MS(1000)); /* room for the END */
  free(f.x);
  span truth[4];
  int k = spans_of(&s, truth, 4);
  MUST(k == 1);
  printf("  phrase: speech %.0f..%.0f ms of %.0f\n", ms_of((int64_t)truth[0].start),
         ms_of((int64_t)truth[0].end), ms_of((int64_t)s.n));
  run r10 = run_vad(NULL, &s, 160), r20 = run_vad(NULL, &s, 320), r60 = run_vad(NULL, &s, 960);
  check_one("phrase (20 ms frames)", &r20, truth[0], &c);
  /* the frame size changes when edges are seen, never the positions */
  CHECK(r10.n == r20.n && r60.n == r20.n);
  for (int i = 0; i < r20.n && i < r10.n && i < r60.n; i++) {
    CHECK(r10.u[i].start == r20.u[i].start && r60.u[i].start == r20.u[i].start);
    CHECK(r10.u[i].end == r20.u[i].end && r60.u[i].end == r20.u[i].end);
  }
  free(s.x);
}

/* At START the ring still holds the audio from the padded start. */
static void test_recent(void)
{
  TEST_BEGIN("recent audio");
  sig s = fixture("speech_phrase.wav");
  sig lead = sig_new(MS(1000)); /* so the padding is whole */
  sig all = sig_new(lead.n + s.n);
  mix_in(&all, lead.n, &s, 1.0);
  ml_vad *v = ml_vad_create(NULL);
  MUST(v);
  int16_t got[MS(1000)];
  int starts = 0;
  for (size_t at = 0; at + 320 <= all.n; at += 320) {
    ml_vad_result res;
    CHECK_EQ(ml_vad_process(v, all.x + at, 320, &res), 0);
    if (!(res.edges & ML_VAD_START)) continue;
    starts++;
    uint64_t first;
    size_t n = ml_vad_recent(v, res.padded_start_pos, got, sizeof got / sizeof *got, &first);
    CHECK_EQ(first, res.padded_start_pos);
    CHECK_EQ(first + n, at + 320);
    CHECK(memcmp(got, all.x + first, n * sizeof *got) == 0);
    CHECK_EQ(res.start_pos - res.padded_start_pos, MS(300));
    /* older than the ring: from its oldest sample; a cap: the oldest first */
    n = ml_vad_recent(v, 0, got, 10, &first);
    CHECK_EQ(n, 10);
    CHECK(first > 0 && first < res.padded_start_pos);
    CHECK(memcmp(got, all.x + first, n * sizeof *got) == 0);
  }
  CHECK_EQ(starts, 1);
  CHECK_EQ(ml_vad_position(v), all.n / 320 * 320);
  ml_vad_free(v);
  free(all.x);
  free(lead.x);
  free(s.x);
}

static void test_pause(void)
{
  TEST_BEGIN("pause");
  ml_vad_config c;
  ml_vad_config_default(&c);
  sig f = fixture("speech_pause.wav"), s = placed(&f, 0, MS(1000));
  free(f.x);
  span truth[4];
  int k = spans_of(&s, truth, 4);
  MUST(k == 2);
  double gap = ms_of((int64_t)(truth[1].start - truth[0].end));
  run r = run_vad(&c, &s, 320);
  CHECK_EQ(r.n, 2);
  CHECK_EQ(r.bad, 0);
  for (int i = 0; i < r.n && i < 2; i++) {
    CHECK(fabs(ms_of((int64_t)r.u[i].start - (int64_t)truth[i].start)) <= 100);
    CHECK(r.u[i].end && fabs(ms_of((int64_t)r.u[i].end - (int64_t)truth[i].end)) <= 150);
  }
  /* the second's padding stops at the first's end */
  if (r.n == 2) CHECK(r.u[1].padded >= r.u[0].end);
  printf("  pause of %.0f ms, min_silence %u: %d utterances\n", gap, c.min_silence_ms, r.n);
  c.min_silence_ms = 1000;
  r = run_vad(&c, &s, 320);
  CHECK_EQ(r.n, 1);
  CHECK_EQ(r.bad, 0);
  printf("  pause of %.0f ms, min_silence %u: %d utterance\n", gap, c.min_silence_ms, r.n);

  /* the phrase twice, 300 ms apart: one utterance; 900 ms apart: two */
  ml_vad_config_default(&c);
  sig p = fixture("speech_phrase.wav");
  span pt[4];
  MUST(spans_of(&p, pt, 4) == 1);
  const double gaps[] = {300, 900};
  for (int g = 0; g < 2; g++) {
    size_t second = pt[0].end + MS(gaps[g]) - pt[0].start;
    sig two = sig_new(second + p.n + MS(1000));
    mix_in(&two, 0, &p, 1.0);
    mix_in(&two, second, &p, 1.0);
    r = run_vad(&c, &two, 320);
    CHECK_EQ(r.n, g ? 2 : 1);
    CHECK_EQ(r.bad, 0);
    printf("  phrase, %.0f ms, phrase: %d utterance(s)\n", gaps[g], r.n);
    free(two.x);
  }
  free(p.x);
  free(s.x);
}

static void test_conditions(void)
{
  TEST_BEGIN("conditions");
  ml_vad_config c;
  ml_vad_config_default(&c);
  sig p = fixture("speech_phrase.wav");
  span pt[4];
  MUST(spans_of(&p, pt, 4) == 1);
  double level = active_rms(&p);
  size_t lead = MS(2000), tail = MS(1000);

  /* 10 dB SNR, the noise running 2 s before the phrase */
  sig s = sig_new(lead + p.n + tail);
  add_noise(&s, 0, s.n, level / sqrt(10.0));
  mix_in(&s, lead, &p, 1.0);
  span t = {pt[0].start + lead, pt[0].end + lead};
  run r = run_vad(&c, &s, 320);
  check_one("10 dB SNR after 2 s noise", &r, t, &c);
  free(s.x);

  /* 20 dB SNR, the noise switched on 2 s before the phrase: the floor has to
   * climb from digital silence */
  s = sig_new(MS(1000) + lead + p.n + tail);
  add_noise(&s, MS(1000), s.n, level / 10.0);
  mix_in(&s, MS(1000) + lead, &p, 1.0);
  t = (span){pt[0].start + MS(1000) + lead, pt[0].end + MS(1000) + lead};
  r = run_vad(&c, &s, 320);
  check_one("20 dB SNR, noise from 1 s", &r, t, &c);
  free(s.x);

  /* a quiet speaker: 26 dB down (~-45 dBFS active level), faint hiss */
  s = sig_new(lead + p.n + tail);
  add_noise(&s, 0, s.n, db_to_amp(-80));
  mix_in(&s, lead, &p, 0.05);
  t = (span){pt[0].start + lead, pt[0].end + lead};
  r = run_vad(&c, &s, 320);
  char what[64];
  snprintf(what, sizeof what, "quiet, %.0f dBFS", 20 * log10(level * 0.05 / 32768));
  check_one(what, &r, t, &c);
  free(s.x);
  free(p.x);
}

static void test_reset(void)
{
  TEST_BEGIN("reset");
  sig p = fixture("speech_phrase.wav");
  ml_vad *v = ml_vad_create(NULL);
  MUST(v);
  ml_vad_result res;
  uint64_t starts[2] = {0, 0};
  for (int round = 0; round < 2; round++) {
    /* stop mid-utterance the first time: reset forgets it */
    size_t stop = round ? p.n : p.n / 2;
    for (size_t at = 0; at + 320 <= stop; at += 320) {
      CHECK_EQ(ml_vad_process(v, p.x + at, 320, &res), 0);
      if (res.edges & ML_VAD_START) starts[round] = res.start_pos;
    }
    if (!round) CHECK_EQ(res.state, ML_VAD_SPEECH);
    ml_vad_reset(v);
    CHECK_EQ(ml_vad_position(v), 0);
  }
  CHECK(starts[0] != 0 && starts[0] == starts[1]);

  TEST_BEGIN("frame sizes");
  int16_t z[ML_VAD_MAX_FRAME + ML_VAD_STEP] = {0};
  CHECK_EQ(ml_vad_process(v, z, 0, &res), -1);
  CHECK_EQ(ml_vad_process(v, z, 100, &res), -1);
  CHECK_EQ(ml_vad_process(v, z, 330, &res), -1);
  CHECK_EQ(ml_vad_process(v, z, ML_VAD_MAX_FRAME + ML_VAD_STEP, &res), -1);
  CHECK_EQ(ml_vad_position(v), 0);
  CHECK_EQ(ml_vad_process(v, z, ML_VAD_MAX_FRAME, &res), 0);
  CHECK_EQ(ml_vad_position(v), ML_VAD_MAX_FRAME);
  ml_vad_free(v);
  ml_vad_free(NULL);
  free(p.x);
}

/* the cost of one 20 ms frame, over 10 s of speech in noise */
static void test_cost(void)
{
  TEST_BEGIN("cost");
  sig p = fixture("speech_phrase.wav");
  sig s = sig_new(MS(10000));
  for (size_t at = 0; at + p.n <= s.n; at += p.n) mix_in(&s, at, &p, 1.0);
  add_noise(&s, 0, s.n, db_to_amp(-50));
  ml_vad *v = ml_vad_create(NULL);
  MUST(v);
  ml_vad_result res;
  int edges = 0;
  uint64_t best = UINT64_MAX;
  for (int rep = 0; rep < 5; rep++) { /* the best of five: the least disturbed */
    ml_vad_reset(v);
    uint64_t t0 = now_ns();
    for (size_t at = 0; at + 320 <= s.n; at += 320) {
      ml_vad_process(v, s.x + at, 320, &res);
      edges += res.edges != 0;
    }
    uint64_t t = now_ns() - t0;
    if (t < best) best = t;
  }
  CHECK(edges > 0);
  printf("  %.0f ns per 20 ms frame (%zu frames)\n", (double)best / (double)(s.n / 320), s.n / 320);
  ml_vad_free(v);
  free(s.x);
  free(p.x);
}

int main(void)
{
  const char *seed = getenv("ML_TEST_SEED");
  if (seed) ml_test_rng_state = strtoull(seed, NULL, 0) | 1;
  test_not_speech();
  test_phrase();
  test_recent();
  test_pause();
  test_conditions();
  test_reset();
  test_cost();
  return ML_TEST_DONE("test_vad");
}
