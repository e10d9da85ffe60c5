/* Logging to stderr. One line per event, prefixed with the level, so tests and
 * operators can grep; MOONLINE_LOG=error|warn|info|debug sets the level. */
#include <stdarg.h>
#include <stdio.h>

#include "ml_runtime.h"

static int log_level = ML_LOG_WARN;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void ml_log_set_level(int level) { log_level = level; }
int ml_log_level(void) { return log_level; }

void ml_log(int level, const char *fmt, ...)
{
  if (level > log_level) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "moonline %s: ", level_names[level]);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}
