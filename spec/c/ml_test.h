/* A tiny test harness for the C unit tests: no framework, no allocation.
 *
 *   CHECK(cond)            counts a pass or prints file:line and counts a failure
 *   CHECK_EQ(a, b)         integers (compared as long long), prints both values
 *   CHECK_STR(a, b)        C strings
 *   REQUIRE(cond)          in main: a broken precondition ends the test (returns 2)
 *   MUST(cond)             the same outside main (exit(2))
 *   ML_TEST_DONE("name")   prints "name: N passed, M failed" and returns the exit code
 *
 * and helpers: now_ns() (monotonic ns), rng() (fixed-seed), goertzel() (the
 * power of a tone in a signal).
 *
 * A failed check does not stop the test: later checks still run, so one run
 * shows every broken expectation. Loops over thousands of items should fold
 * their checks into one (count mismatches, CHECK the count) to keep the
 * output readable. */
#ifndef ML_TEST_H
#define ML_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* monotonic nanoseconds, for the per-operation costs tests print */
static inline uint64_t now_ns(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* a fixed-seed xorshift64*: randomised tests that replay the same way */
static uint64_t ml_test_rng_state = 0x9E3779B97F4A7C15ull;
static inline uint64_t rng(void)
{
  ml_test_rng_state ^= ml_test_rng_state >> 12;
  ml_test_rng_state ^= ml_test_rng_state << 25;
  ml_test_rng_state ^= ml_test_rng_state >> 27;
  return ml_test_rng_state * 0x2545F4914F6CDD1Dull;
}

/* Goertzel: the power of x[0 .. n) at hz (sampled at rate), normalised by n² */
static inline double goertzel(const int16_t *x, size_t n, double hz, double rate)
{
  double w = 2 * M_PI * hz / rate, c = 2 * cos(w), s1 = 0, s2 = 0;
  for (size_t i = 0; i < n; i++) {
    double s = x[i] + c * s1 - s2;
    s2 = s1;
    s1 = s;
  }
  return (s1 * s1 + s2 * s2 - c * s1 * s2) / ((double)n * (double)n);
}

static int ml_test_passed, ml_test_failed;
static const char *ml_test_current = "?";

#define TEST_BEGIN(name) (ml_test_current = (name))

#define CHECK(cond)                                                                                          \
  do {                                                                                                       \
    if (cond) {                                                                                              \
      ml_test_passed++;                                                                                      \
    } else {                                                                                                 \
      ml_test_failed++;                                                                                      \
      fprintf(stderr, "%s:%d: [%s] CHECK failed: %s\n", __FILE__, __LINE__, ml_test_current, #cond);         \
    }                                                                                                        \
  } while (0)

#define CHECK_EQ(a, b)                                                                                       \
  do {                                                                                                       \
    long long ml_a_ = (long long)(a), ml_b_ = (long long)(b);                                                \
    if (ml_a_ == ml_b_) {                                                                                    \
      ml_test_passed++;                                                                                      \
    } else {                                                                                                 \
      ml_test_failed++;                                                                                      \
      fprintf(stderr, "%s:%d: [%s] CHECK_EQ failed: %s == %s (%lld != %lld)\n", __FILE__, __LINE__,          \
              ml_test_current, #a, #b, ml_a_, ml_b_);                                                        \
    }                                                                                                        \
  } while (0)

#define CHECK_STR(a, b)                                                                                      \
  do {                                                                                                       \
    const char *ml_a_ = (a), *ml_b_ = (b);                                                                   \
    if (ml_a_ && ml_b_ && strcmp(ml_a_, ml_b_) == 0) {                                                       \
      ml_test_passed++;                                                                                      \
    } else {                                                                                                 \
      ml_test_failed++;                                                                                      \
      fprintf(stderr, "%s:%d: [%s] CHECK_STR failed: %s == %s (\"%s\" != \"%s\")\n", __FILE__, __LINE__,     \
              ml_test_current, #a, #b, ml_a_ ? ml_a_ : "(null)", ml_b_ ? ml_b_ : "(null)");                  \
    }                                                                                                        \
  } while (0)

/* Abort the whole binary: for broken preconditions after which nothing else
 * can be checked meaningfully (e.g. the Lua state could not be set up). */
#define REQUIRE(cond)                                                                                        \
  do {                                                                                                       \
    if (!(cond)) {                                                                                           \
      fprintf(stderr, "%s:%d: [%s] REQUIRE failed: %s\n", __FILE__, __LINE__, ml_test_current, #cond);       \
      fflush(stderr);                                                                                        \
      return 2;                                                                                              \
    }                                                                                                        \
  } while (0)

/* REQUIRE outside main: a broken precondition ends the binary */
#define MUST(cond)                                                                                           \
  do {                                                                                                       \
    if (!(cond)) {                                                                                           \
      fprintf(stderr, "%s:%d: [%s] MUST failed: %s\n", __FILE__, __LINE__, ml_test_current, #cond);          \
      exit(2);                                                                                               \
    }                                                                                                        \
  } while (0)

static inline int ml_test_done(const char *name)
{
  printf("%s: %d passed, %d failed\n", name, ml_test_passed, ml_test_failed);
  fflush(stdout);
  return ml_test_failed ? 1 : 0;
}

#define ML_TEST_DONE(name) ml_test_done(name)

#endif
