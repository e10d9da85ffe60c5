/* HTTP digest authentication for SIP (RFC 3261 §22, RFC 8760 SHA-256,
 * RFC 7616 syntax): parse challenges and credentials, compute responses,
 * authorize as a UAC, verify and challenge as a UAS. qop=auth or no qop;
 * auth-int is recognised and refused.
 *
 * Parsed values are views into the header value (zero copy). A view of a
 * quoted string is its text between the quotes *as written*: it may still hold
 * backslash escapes ("\"", "\\"). The functions of this module unescape on
 * the fly when they hash or compare; ml_digest_unquote copies a plain value
 * out (e.g. the username, to look up a password). Strings the caller passes in
 * (username, password, method, uri, realm) are plain text. */
#ifndef ML_DIGEST_H
#define ML_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "ml_str.h"

#define ML_DIGEST_HEX_MAX 65 /* a SHA-256 digest in hex and a NUL */
#define ML_DIGEST_NONCE_LEN 32 /* hex characters of the nonces and cnonces we make (128 bits) */
#define ML_DIGEST_MAX_PARAMS 32 /* parameters in one header value */

typedef enum ml_digest_alg {
  ML_DIGEST_MD5 = 0, /* also when no algorithm is given */
  ML_DIGEST_MD5_SESS,
  ML_DIGEST_SHA256,
  ML_DIGEST_SHA256_SESS,
  ML_DIGEST_ALG_UNKNOWN, /* parsed but not computable: pick another challenge */
} ml_digest_alg;

enum {
  ML_DIGEST_QOP_AUTH = 1,
  ML_DIGEST_QOP_AUTH_INT = 2,
};

typedef enum ml_digest_err {
  ML_DIGEST_OK = 0,
  ML_DIGEST_ERR_SCHEME, /* the scheme is not Digest */
  ML_DIGEST_ERR_SYNTAX, /* bad parameter list, quoted string or escape, control character */
  ML_DIGEST_ERR_LIMIT, /* more than ML_DIGEST_MAX_PARAMS parameters */
  ML_DIGEST_ERR_DUPLICATE, /* a parameter given twice */
  ML_DIGEST_ERR_MISSING, /* a required parameter is missing */
  ML_DIGEST_ERR_VALUE, /* a known parameter has a bad value (nc, response, qop, stale) */
  ML_DIGEST_ERR_ALGORITHM, /* an algorithm we do not compute, or a ha1 of the wrong length */
  ML_DIGEST_ERR_QOP, /* only auth-int offered or used: we do qop=auth */
  ML_DIGEST_ERR_INPUT, /* a caller's string is unusable (CR, LF or NUL; empty where required) */
  ML_DIGEST_ERR_SPACE, /* the output buffer is too small */
  ML_DIGEST_ERR_CRYPTO, /* OpenSSL failed (digest or random bytes) */
  ML_DIGEST_ERR_REALM, /* verify: not our realm */
  ML_DIGEST_ERR_NONCE, /* verify: not the nonce we issued */
  ML_DIGEST_ERR_URI, /* verify: uri is not the Request-URI */
  ML_DIGEST_ERR_OPAQUE, /* verify: not the opaque we issued */
  ML_DIGEST_ERR_RESPONSE, /* verify: wrong response (wrong password) */
} ml_digest_err;

/* A WWW-Authenticate / Proxy-Authenticate challenge. An absent parameter is
 * a view with p == NULL; a present empty one has p != NULL and n == 0. */
typedef struct ml_digest_chal {
  ml_str realm, nonce, opaque, domain; /* quoted-string contents (escaped form) */
  ml_str algorithm; /* as written; absent means MD5 */
  ml_digest_alg alg;
  ml_str qop; /* the qop list as written, absent: no qop (RFC 2069 compatibility) */
  unsigned qops; /* ML_DIGEST_QOP_* found in that list (unknown values are ignored) */
  int stale; /* stale=true: the credentials were good, only the nonce was old */
} ml_digest_chal;

/* An Authorization / Proxy-Authorization header (same conventions). */
typedef struct ml_digest_cred {
  ml_str username, realm, nonce, uri, response, cnonce, opaque; /* escaped form */
  ml_str algorithm;
  ml_digest_alg alg;
  ml_str qop; /* absent: no qop */
  unsigned qops; /* the one ML_DIGEST_QOP_* used, 0 without qop */
  ml_str nc; /* 8 hex digits when qop is present */
  uint32_t nc_value; /* the nonce count, to reject replays */
} ml_digest_cred;

/* Parse a header value ("Digest realm=..., nonce=..."): parameters in any
 * order, names case-insensitive, unknown ones ignored, any one twice is an
 * error. LWS (with CRLF folding) is allowed between items, not inside
 * quoted strings. Returns ML_DIGEST_OK or the first error; views point into
 * value's buffer.
 *   challenge: realm and nonce are required; qop is a quoted list.
 *   credentials: username, realm, nonce, uri and response are required, and
 *   cnonce and nc with qop; response must be hex of the algorithm's length. */
ml_digest_err ml_digest_chal_parse(ml_digest_chal *c, ml_str value);
ml_digest_err ml_digest_cred_parse(ml_digest_cred *c, ml_str value);

const char *ml_digest_strerror(ml_digest_err err);

/* "MD5", "SHA-256", ...; NULL for ML_DIGEST_ALG_UNKNOWN */
const char *ml_digest_alg_name(ml_digest_alg alg);

/* Copy a parsed (escaped) view out as plain text with a NUL. Returns the
 * length, or -1 if it does not fit in cap bytes. */
int ml_digest_unquote(char *buf, size_t cap, ml_str view);

/* HA1 = H(username ":" realm ":" password) in lowercase hex, for a UAS that
 * stores HA1 instead of passwords (one per algorithm; the -sess variants
 * use their base HA1). Plain inputs. Returns ML_DIGEST_OK. */
ml_digest_err ml_digest_ha1(char out[ML_DIGEST_HEX_MAX], ml_digest_alg alg, ml_str username, ml_str realm,
                            ml_str password);

/* The response the credentials c should carry for a request with this
 * method, given the user's password or (when ha1 is not empty) the hex HA1.
 * Writes lowercase hex and a NUL into out. Needs qop absent or auth. */
ml_digest_err ml_digest_cred_response(char out[ML_DIGEST_HEX_MAX], const ml_digest_cred *c, ml_str method,
                                      ml_str password, ml_str ha1);

/* ---- UAC ---------------------------------------------------------------- */

typedef struct ml_digest_auth {
  ml_str username, password; /* plain */
  ml_str method, uri; /* the request's method and Request-URI */
  ml_str cnonce; /* empty: a fresh random one (set only to replay a known vector) */
} ml_digest_auth;

/* Write the Authorization/Proxy-Authorization value answering challenge ch
 * into buf (with a NUL): qop=auth when the challenge offers it (a cnonce and
 * nc = ++*nc; keep *nc per nonce, 0 after each new challenge), no qop when it
 * offers none. The realm, nonce and opaque are echoed as the challenge wrote
 * them. Returns the length, or a negative ml_digest_err: -ML_DIGEST_ERR_SPACE,
 * -ML_DIGEST_ERR_ALGORITHM (unknown, or -sess without qop), -ML_DIGEST_ERR_QOP
 * (auth-int only), -ML_DIGEST_ERR_INPUT. */
int ml_digest_authorize(char *buf, size_t cap, const ml_digest_chal *ch, const ml_digest_auth *a,
                        uint32_t *nc);

/* ---- UAS ---------------------------------------------------------------- */

typedef struct ml_digest_check {
  ml_str realm; /* ours */
  ml_str nonce; /* the one we issued (from ml_digest_challenge); p == NULL: already checked by the
                 * caller (e.g. a stateless nonce it can recompute) */
  ml_str opaque; /* the one we issued; p == NULL: not checked */
  ml_str method, uri; /* the request's method and Request-URI as received */
  ml_str password; /* the user's password (looked up by c->username), or */
  ml_str ha1; /* its HA1 for c->alg in hex; used when not empty */
} ml_digest_check;

/* Check credentials: algorithm, qop, realm, nonce, uri (== Request-URI),
 * opaque, then the response (constant-time). The nonce count (c->nc_value)
 * is the caller's to check against replays. Returns ML_DIGEST_OK or the first
 * mismatch: REALM/NONCE/URI/OPAQUE (re-challenge; a nonce we no longer know
 * means stale=true), RESPONSE (wrong password: 403 or re-challenge). */
ml_digest_err ml_digest_verify(const ml_digest_cred *c, const ml_digest_check *v);

typedef struct ml_digest_chal_params {
  ml_str realm; /* plain */
  ml_digest_alg alg; /* written as algorithm=... */
  int qop_auth; /* non-zero: qop="auth" (RFC 3261 SHOULD) */
  int stale; /* non-zero: stale=true */
  ml_str opaque; /* plain, empty: none */
  ml_str nonce; /* empty: a fresh random one (hex) */
} ml_digest_chal_params;

/* Write a WWW-Authenticate/Proxy-Authenticate value into buf (with a NUL).
 * When p->nonce is empty, the fresh nonce is also written with a NUL into
 * nonce_out (ML_DIGEST_NONCE_LEN + 1 bytes), for the later ml_digest_verify;
 * nonce_out may be NULL when p->nonce is set. Returns the length or a
 * negative ml_digest_err (SPACE, INPUT, ALGORITHM, CRYPTO). */
int ml_digest_challenge(char *buf, size_t cap, const ml_digest_chal_params *p, char *nonce_out);

#endif
