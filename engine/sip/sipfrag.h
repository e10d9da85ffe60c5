/* message/sipfrag bodies (RFC 3420) as the NOTIFYs of a REFER carry them
 * (RFC 3515 §2.4.5): a status line such as "SIP/2.0 180 Ringing", optionally
 * followed by headers we keep but do not interpret. */
#ifndef ML_SIPFRAG_H
#define ML_SIPFRAG_H

#include <stddef.h>

#include "ml_str.h"

/* the Content-Type of the NOTIFY bodies we send */
#define ML_SIPFRAG_CONTENT_TYPE "message/sipfrag;version=2.0"

typedef enum ml_sipfrag_err {
  ML_SIPFRAG_OK = 0,
  ML_SIPFRAG_ERR_EMPTY, /* no status line at all */
  ML_SIPFRAG_ERR_VERSION, /* does not start with "SIP/2.0 " (a request-line fragment is not a status) */
  ML_SIPFRAG_ERR_STATUS, /* the status code is not three digits in 100..699 */
  ML_SIPFRAG_ERR_SYNTAX, /* a control character, bare CR or NUL in the status line */
} ml_sipfrag_err;

typedef struct ml_sipfrag {
  unsigned status; /* 100..699 */
  ml_str reason; /* the reason phrase, possibly empty */
  ml_str headers; /* everything after the status line, unparsed (often empty) */
} ml_sipfrag;

/* Parse a sipfrag body in buf[0..len). The status line ends with CRLF, LF or
 * the end of the body (peers often leave the line break out); the version is
 * matched case-insensitively, a missing reason phrase is tolerated. Returns
 * ML_SIPFRAG_OK (views point into buf) or the first error. */
ml_sipfrag_err ml_sipfrag_parse(ml_sipfrag *f, const char *buf, size_t len);

const char *ml_sipfrag_strerror(ml_sipfrag_err err);

/* A final status ends the implicit subscription of a REFER (RFC 3515 §2.4.7). */
static inline int ml_sipfrag_final(const ml_sipfrag *f) { return f->status >= 200; }

/* Write the body of a NOTIFY reporting `status`: "SIP/2.0 <status>
 * <reason>\r\n" and a NUL. An empty reason gets the usual phrase (that of the
 * x00 code for codes we do not name). Returns the length, or -1 if status is
 * not in 100..699, reason has a control character, or it does not fit. */
int ml_sipfrag_write(char *buf, size_t cap, unsigned status, ml_str reason);

#endif
