/* Digest authentication of inbound requests, as a UAS (RFC 3261 §22.2,
 * RFC 8760 SHA-256, RFC 7616): the 401 challenges and the check of the
 * Authorization header of a retried request. qop=auth only.
 *
 * Nonces are stateless: nothing is stored per challenge. A nonce is the hex
 * of its issue time (engine clock, ms), a counter (so that each one is
 * fresh) and the first 128 bits of HMAC-SHA256(secret, time | counter |
 * realm), the secret being random per ml_sip_auth. It is ours when the MAC
 * checks, and current while younger than ttl_ns (default 5 min).
 *
 * Replays: the nonce count of a good request must grow per nonce. The
 * highest count seen is kept in a direct-mapped cache of
 * ML_SIP_AUTH_NC_SLOTS entries indexed by the nonce's MAC: O(1), bounded,
 * written only after the response checked. Best effort: a nonce whose slot
 * was taken by another one since can be replayed until it expires (and
 * only as the same request: the response covers method and Request-URI).
 *
 * Outcomes (ml_sip_auth_check):
 *   no credentials for our realm, an algorithm or qop we did not offer, our
 *   nonce with an opaque not ours, a replayed nonce count -> 401, fresh challenges
 *   a nonce not ours or expired, right password      -> 401 stale=true
 *   a nonce not ours or expired, wrong password      -> 401 (not stale)
 *   our nonce, wrong password or unknown user        -> 403 (both alike: no
 *                                                        user enumeration)
 *   uri that is not the Request-URI                  -> 400 (RFC 7616 §3.4.6)
 *   the password lookup failed                       -> 500 */
#ifndef ML_SIP_AUTH_H
#define ML_SIP_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "sip_msg.h"

#define ML_SIP_AUTH_TTL_NS 300000000000ull /* a nonce is current for 5 minutes */
#define ML_SIP_AUTH_NC_SLOTS 256
#define ML_SIP_AUTH_NONCE_HEX 56 /* 8 bytes time, 4 counter, 16 MAC */
#define ML_SIP_AUTH_USER_MAX 128 /* a username, NUL included */
#define ML_SIP_AUTH_PASSWORD_MAX 256

typedef enum ml_sip_auth_result {
  ML_SIP_AUTH_OK = 0, /* good credentials: the username is in user */
  ML_SIP_AUTH_CHALLENGE, /* 401 */
  ML_SIP_AUTH_STALE, /* 401 stale=true */
  ML_SIP_AUTH_FORBIDDEN, /* 403 */
  ML_SIP_AUTH_BAD_REQUEST, /* 400 */
  ML_SIP_AUTH_ERROR, /* 500 */
} ml_sip_auth_result;

/* The password of `username` (plain text) into pw with a NUL: 0; 1 when the
 * user is unknown; -1 when the lookup failed. */
typedef int (*ml_sip_auth_lookup)(const char *username, char *pw, size_t cap, void *data);

/* ml_sip_auth.algs */
#define ML_SIP_AUTH_SHA256 1u
#define ML_SIP_AUTH_MD5 2u

typedef struct ml_sip_auth {
  char realm[128];
  unsigned algs; /* ML_SIP_AUTH_* offered: SHA-256 first (RFC 8760 §2.4), then MD5 */
  uint64_t ttl_ns;
  uint8_t secret[32];
  char opaque[33];
  uint32_t counter;
  struct {
    uint8_t mac[16];
    uint32_t nc;
  } nc_cache[ML_SIP_AUTH_NC_SLOTS];
  ml_sip_auth_lookup lookup;
  void *lookup_data;
  /* figures */
  uint64_t challenged, accepted, rejected, stale;
} ml_sip_auth;

/* realm: plain text, no quote, backslash or control character; algs 0:
 * both; ttl_ns 0: ML_SIP_AUTH_TTL_NS. Draws the secret. Returns 0 or -1. */
int ml_sip_auth_init(ml_sip_auth *a, const char *realm, unsigned algs, uint64_t ttl_ns,
                     ml_sip_auth_lookup lookup, void *lookup_data);
/* wipe the secret */
void ml_sip_auth_clear(ml_sip_auth *a);

/* Append one WWW-Authenticate header per algorithm offered, each with a
 * fresh nonce, qop="auth" and our opaque; stale=true when asked. */
void ml_sip_auth_challenge(ml_sip_auth *a, ml_sip_builder *b, uint64_t now_ns, int stale);

/* Check the Authorization headers of req (the first Digest one for our
 * realm) at engine time now_ns. On ML_SIP_AUTH_OK the username is copied
 * into user (ML_SIP_AUTH_USER_MAX bytes). */
ml_sip_auth_result ml_sip_auth_check(ml_sip_auth *a, const ml_sip_msg *req, uint64_t now_ns, char *user);

/* The status code of a result: 0 (OK), 401, 403, 400 or 500. */
int ml_sip_auth_status(ml_sip_auth_result r);

/* for tests: a nonce issued at now_ns, as ml_sip_auth_challenge writes it
 * (ML_SIP_AUTH_NONCE_HEX + 1 bytes) */
void ml_sip_auth_nonce(ml_sip_auth *a, uint64_t now_ns, char *out);

#endif
