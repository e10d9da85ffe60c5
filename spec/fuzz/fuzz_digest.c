/* libFuzzer harness for engine/sip/digest.c. The input is tried as a
 * challenge and as credentials:
 *   challenge: views stay in the input; our own challenge builder given its
 *     plain values writes one that parses back to them; when we can answer it, the
 *     Authorization we write parses back and verifies against the
 *     challenge's own (unescaped) realm, nonce and opaque;
 *   credentials: the computed response has the algorithm's length, verify
 *     agrees with comparing it, and the stored-HA1 path gives the same
 *     response as the password path (so escapes are handled the same way). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "digest.h"
#include "fuzz_check.h"

#define MAX_INPUT 4096

static const uint8_t *in_data;
static size_t in_size;
static char out[4 * MAX_INPUT];
static char realm[MAX_INPUT + 1], nonce[MAX_INPUT + 1], opaque[MAX_INPUT + 1], user[MAX_INPUT + 1],
    uri[MAX_INPUT + 1];

static int view_in(ml_str s)
{
  return s.n == 0 || ((const uint8_t *)s.p >= in_data && (const uint8_t *)s.p + s.n <= in_data + in_size);
}

/* an escaped view as plain text (a view of the static buffer) */
static ml_str unquote(char *buf, ml_str view)
{
  int n = ml_digest_unquote(buf, MAX_INPUT + 1, view);
  ASSERT(n >= 0 && (size_t)n <= view.n);
  return ml_str_make(buf, (size_t)n);
}

/* our challenge builder, given the plain values of a parsed challenge,
 * writes a challenge that parses back to the same values */
static void rechallenge(const ml_digest_chal *ch)
{
  static char r2[MAX_INPUT + 1], n2[MAX_INPUT + 1], o2[MAX_INPUT + 1];
  ml_digest_chal_params p = {.realm = unquote(realm, ch->realm),
                             .alg = ch->alg == ML_DIGEST_ALG_UNKNOWN ? ML_DIGEST_MD5 : ch->alg,
                             .qop_auth = (ch->qops & ML_DIGEST_QOP_AUTH) != 0,
                             .stale = ch->stale,
                             .opaque = ch->opaque.p ? unquote(opaque, ch->opaque) : ML_STR_NULL,
                             .nonce = unquote(nonce, ch->nonce)};
  char fresh[ML_DIGEST_NONCE_LEN + 1];
  int n = ml_digest_challenge(out, sizeof out, &p, fresh);
  ASSERT(n > 0 && out[n] == '\0');
  ml_digest_chal back;
  ASSERT(ml_digest_chal_parse(&back, ml_str_make(out, (size_t)n)) == ML_DIGEST_OK);
  ASSERT(ml_str_eq(unquote(r2, back.realm), p.realm) && back.alg == p.alg && back.stale == ch->stale);
  ASSERT(back.qops == (p.qop_auth ? (unsigned)ML_DIGEST_QOP_AUTH : 0u));
  ASSERT(p.nonce.n ? ml_str_eq(unquote(n2, back.nonce), p.nonce) : back.nonce.n == ML_DIGEST_NONCE_LEN);
  ASSERT(p.opaque.n ? ml_str_eq(unquote(o2, back.opaque), p.opaque) : back.opaque.p == NULL);
}

static void try_challenge(void)
{
  ml_digest_chal ch;
  if (ml_digest_chal_parse(&ch, ml_str_make((const char *)in_data, in_size)) != ML_DIGEST_OK) return;
  ASSERT(ch.realm.p && ch.nonce.p && view_in(ch.realm) && view_in(ch.nonce) && view_in(ch.opaque));
  ASSERT(view_in(ch.domain) && view_in(ch.algorithm) && view_in(ch.qop));
  ASSERT(ch.alg <= ML_DIGEST_ALG_UNKNOWN && (ch.qops & ~3u) == 0);
  rechallenge(&ch);
  ml_digest_auth a = {ML_STR_LIT("al\"ice"), ML_STR_LIT("se\\cret"), ML_STR_LIT("INVITE"),
                      ML_STR_LIT("sip:bob@example.com"), ML_STR_NULL};
  uint32_t nc = 0;
  int n = ml_digest_authorize(out, sizeof out, &ch, &a, &nc);
  if (n < 0) {
    ASSERT(n == -ML_DIGEST_ERR_ALGORITHM || n == -ML_DIGEST_ERR_QOP);
    return;
  }
  ASSERT((size_t)n < sizeof out && out[n] == '\0' && nc == (ch.qop.p ? 1u : 0u));
  ml_digest_cred c;
  ASSERT(ml_digest_cred_parse(&c, ml_str_make(out, (size_t)n)) == ML_DIGEST_OK);
  ASSERT(c.alg == ch.alg && (c.qops == ML_DIGEST_QOP_AUTH) == (ch.qop.p != NULL));
  ml_digest_check v = {.realm = unquote(realm, ch.realm),
                       .nonce = unquote(nonce, ch.nonce),
                       .opaque = ch.opaque.p ? unquote(opaque, ch.opaque) : ML_STR_NULL,
                       .method = a.method,
                       .uri = a.uri,
                       .password = a.password};
  ASSERT(ml_digest_verify(&c, &v) == ML_DIGEST_OK);
  v.password = ML_STR_LIT("wrong");
  ASSERT(ml_digest_verify(&c, &v) == ML_DIGEST_ERR_RESPONSE);
}

static void try_credentials(void)
{
  ml_digest_cred c;
  if (ml_digest_cred_parse(&c, ml_str_make((const char *)in_data, in_size)) != ML_DIGEST_OK) return;
  ASSERT(view_in(c.username) && view_in(c.realm) && view_in(c.nonce) && view_in(c.uri) &&
         view_in(c.response));
  ASSERT(view_in(c.cnonce) && view_in(c.opaque) && view_in(c.nc) && view_in(c.qop) && view_in(c.algorithm));
  ASSERT(c.username.p && c.realm.p && c.nonce.p && c.uri.p && c.response.p);
  ASSERT(!c.qop.p || (c.cnonce.p && c.nc.n == 8));
  char resp[ML_DIGEST_HEX_MAX], resp2[ML_DIGEST_HEX_MAX], ha1[ML_DIGEST_HEX_MAX];
  ml_digest_err err =
      ml_digest_cred_response(resp, &c, ML_STR_LIT("REGISTER"), ML_STR_LIT("pw"), ML_STR_NULL);
  if (err) {
    ASSERT(err == ML_DIGEST_ERR_ALGORITHM || err == ML_DIGEST_ERR_QOP || err == ML_DIGEST_ERR_MISSING);
    return;
  }
  size_t hexlen = c.alg == ML_DIGEST_MD5 || c.alg == ML_DIGEST_MD5_SESS ? 32 : 64;
  ASSERT(strlen(resp) == hexlen);
  ml_str u = unquote(user, c.username), r = unquote(realm, c.realm);
  ASSERT(ml_digest_ha1(ha1, c.alg, u, r, ML_STR_LIT("pw")) == ML_DIGEST_OK);
  ASSERT(ml_digest_cred_response(resp2, &c, ML_STR_LIT("REGISTER"), ML_STR_NULL, ml_str_c(ha1)) ==
         ML_DIGEST_OK);
  ASSERT(strcmp(resp, resp2) == 0);
  ml_digest_check v = {.realm = r,
                       .nonce = unquote(nonce, c.nonce),
                       .method = ML_STR_LIT("REGISTER"),
                       .uri = unquote(uri, c.uri),
                       .password = ML_STR_LIT("pw")};
  int same = c.response.n == hexlen && strncasecmp(c.response.p, resp, hexlen) == 0;
  ASSERT(ml_digest_verify(&c, &v) == (same ? ML_DIGEST_OK : ML_DIGEST_ERR_RESPONSE));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size > MAX_INPUT) return 0;
  in_data = data, in_size = size;
  try_challenge();
  try_credentials();
  return 0;
}
