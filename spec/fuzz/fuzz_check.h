/* What the fuzz harnesses share: ASSERT checks an invariant of the code under
 * test and aborts with its text, so libFuzzer keeps the input that broke it. */
#ifndef ML_FUZZ_CHECK_H
#define ML_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define ASSERT(c)                                                                                            \
  do {                                                                                                       \
    if (!(c)) {                                                                                              \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c);                              \
      abort();                                                                                               \
    }                                                                                                        \
  } while (0)

#endif
