/* Digest auth as a UAS (engine/sip/sip_auth.c): challenges, stateless
 * nonces, expiry, replays, and the 401/403/400/500 decisions. Credentials
 * are made by our UAC side (ml_digest_authorize), whose hashes test_digest.c
 * checks against independent vectors. */
#include <stdio.h>
#include <string.h>

#include "ml_test.h"
#include "sip_auth.h"

#define SEC 1000000000ull
/* a precondition of the rest of a test function (evaluated once): counted
 * as a check; when it fails, the function gives up */
#define NEED(cond)                                                                                           \
  do {                                                                                                       \
    if (cond) {                                                                                              \
      ml_test_passed++;                                                                                      \
    } else {                                                                                                 \
      ml_test_failed++;                                                                                      \
      fprintf(stderr, "%s:%d: [%s] NEED failed: %s\n", __FILE__, __LINE__, ml_test_current, #cond);          \
      return;                                                                                                \
    }                                                                                                        \
  } while (0)
#define RURI "sip:agent@127.0.0.1:5060"

static int lookup(const char *user, char *pw, size_t cap, void *data)
{
  (void)data;
  if (!strcmp(user, "broken")) return -1;
  if (strcmp(user, "alice") && strcmp(user, "bob")) return 1;
  snprintf(pw, cap, "%s", !strcmp(user, "alice") ? "secret" : "hunter2");
  return 0;
}

/* the 401 a challenge makes, parsed: its WWW-Authenticate values */
static int challenge(ml_sip_auth *a, uint64_t now, int stale, char *buf, size_t cap, ml_sip_msg *m)
{
  ml_sip_builder b;
  ml_sip_builder_init(&b, buf, cap);
  ml_sip_builder_status_line(&b, 401, NULL);
  ml_sip_builder_header(&b, "Via", ML_STR_LIT("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1"));
  ml_sip_builder_header(&b, "From", ML_STR_LIT("<sip:c@127.0.0.1>;tag=1"));
  ml_sip_builder_header(&b, "To", ML_STR_LIT("<sip:agent@127.0.0.1>;tag=2"));
  ml_sip_builder_header(&b, "Call-ID", ML_STR_LIT("x"));
  ml_sip_builder_header(&b, "CSeq", ML_STR_LIT("1 INVITE"));
  ml_sip_auth_challenge(a, &b, now, stale);
  size_t n = ml_sip_builder_finish(&b, ML_STR_NULL);
  if (!n) return -1;
  return ml_sip_parse(m, buf, n, ML_SIP_UDP);
}

/* the first (which = 0) or second challenge of a fresh 401 */
static void get_chal(ml_sip_auth *a, uint64_t now, int which, ml_digest_chal *ch, char *buf, size_t cap,
                     ml_sip_msg *m)
{
  NEED(challenge(a, now, 0, buf, cap, m) == 0);
  const ml_sip_header *h = ml_sip_header_get(m, ML_SIP_H_WWW_AUTHENTICATE);
  if (which) h = ml_sip_header_next(m, h);
  NEED(h != NULL);
  NEED(ml_digest_chal_parse(ch, h->value) == ML_DIGEST_OK);
}

/* an INVITE with Authorization answering ch; returns the parse result */
static int invite(ml_sip_msg *m, char *buf, size_t cap, const ml_digest_chal *ch, const char *user,
                  const char *pw, const char *uri, uint32_t *nc)
{
  char cred[1024];
  ml_digest_auth da = {ml_str_c(user), ml_str_c(pw), ML_STR_LIT("INVITE"), ml_str_c(uri), ML_STR_NULL};
  if (ml_digest_authorize(cred, sizeof cred, ch, &da, nc) <= 0) return -1;
  int n = snprintf(buf, cap,
                   "INVITE " RURI " SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK2\r\n"
                   "From: <sip:c@127.0.0.1>;tag=1\r\nTo: <sip:agent@127.0.0.1>\r\nCall-ID: x\r\n"
                   "CSeq: 2 INVITE\r\nMax-Forwards: 70\r\nAuthorization: %s\r\nContent-Length: 0\r\n\r\n",
                   cred);
  return ml_sip_parse(m, buf, (size_t)n, ML_SIP_UDP);
}

static void test_challenge_headers(void)
{
  TEST_BEGIN("challenge");
  static ml_sip_auth a;
  static ml_sip_msg m;
  static char buf[4096];
  CHECK_EQ(ml_sip_auth_init(&a, "moonline", 0, 0, lookup, NULL), 0);
  NEED(challenge(&a, 7 * SEC, 0, buf, sizeof buf, &m) == 0);
  const ml_sip_header *h1 = ml_sip_header_get(&m, ML_SIP_H_WWW_AUTHENTICATE);
  NEED(h1 != NULL);
  const ml_sip_header *h2 = ml_sip_header_next(&m, h1);
  NEED(h2 != NULL);
  CHECK(ml_sip_header_next(&m, h2) == NULL);
  ml_digest_chal c1, c2;
  NEED(ml_digest_chal_parse(&c1, h1->value) == ML_DIGEST_OK);
  NEED(ml_digest_chal_parse(&c2, h2->value) == ML_DIGEST_OK);
  /* SHA-256 first (RFC 8760 §2.4), then MD5; qop=auth; one opaque; two fresh nonces */
  CHECK_EQ(c1.alg, ML_DIGEST_SHA256);
  CHECK_EQ(c2.alg, ML_DIGEST_MD5);
  CHECK(c1.qops == ML_DIGEST_QOP_AUTH && c2.qops == ML_DIGEST_QOP_AUTH);
  CHECK(ml_str_eq(c1.realm, ML_STR_LIT("moonline")) && !c1.stale && !c2.stale);
  CHECK(ml_str_eq(c1.opaque, c2.opaque) && c1.opaque.n == 32);
  CHECK(c1.nonce.n == ML_SIP_AUTH_NONCE_HEX && !ml_str_eq(c1.nonce, c2.nonce));
  /* stale=true when asked */
  NEED(challenge(&a, 7 * SEC, 1, buf, sizeof buf, &m) == 0);
  NEED(ml_digest_chal_parse(&c1, ml_sip_header_get(&m, ML_SIP_H_WWW_AUTHENTICATE)->value) == ML_DIGEST_OK);
  CHECK_EQ(c1.stale, 1);
  /* MD5 only */
  CHECK_EQ(ml_sip_auth_init(&a, "moonline", ML_SIP_AUTH_MD5, 0, lookup, NULL), 0);
  NEED(challenge(&a, 0, 0, buf, sizeof buf, &m) == 0);
  h1 = ml_sip_header_get(&m, ML_SIP_H_WWW_AUTHENTICATE);
  NEED(h1 != NULL && ml_digest_chal_parse(&c1, h1->value) == ML_DIGEST_OK);
  CHECK(c1.alg == ML_DIGEST_MD5 && ml_sip_header_next(&m, h1) == NULL);
  /* bad realms and algorithm bits */
  CHECK_EQ(ml_sip_auth_init(&a, "", 0, 0, lookup, NULL), -1);
  CHECK_EQ(ml_sip_auth_init(&a, "a\"b", 0, 0, lookup, NULL), -1);
  CHECK_EQ(ml_sip_auth_init(&a, "a\r\nb", 0, 0, lookup, NULL), -1);
  CHECK_EQ(ml_sip_auth_init(&a, "r", 8, 0, lookup, NULL), -1);
  ml_sip_auth_clear(&a);
}

static void test_check(void)
{
  TEST_BEGIN("check");
  static ml_sip_auth a;
  static ml_sip_msg m, inv;
  static char buf[4096], ibuf[4096];
  char user[ML_SIP_AUTH_USER_MAX];
  ml_digest_chal ch;
  uint32_t nc = 0;
  NEED(ml_sip_auth_init(&a, "moonline", 0, 60 * SEC, lookup, NULL) == 0);
  uint64_t now = 1000 * SEC;

  /* no credentials: a challenge */
  snprintf(ibuf, sizeof ibuf,
           "INVITE " RURI " SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK3\r\nFrom: <sip:c@h>;tag=1\r\n"
           "To: <sip:a@h>\r\nCall-ID: y\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
  NEED(ml_sip_parse(&inv, ibuf, strlen(ibuf), ML_SIP_UDP) == 0);
  CHECK_EQ(ml_sip_auth_check(&a, &inv, now, user), ML_SIP_AUTH_CHALLENGE);
  CHECK_EQ(ml_sip_auth_status(ML_SIP_AUTH_CHALLENGE), 401);

  /* SHA-256, then the next request on the same nonce (nc 2), then a replay of nc 2 */
  get_chal(&a, now, 0, &ch, buf, sizeof buf, &m);
  NEED(invite(&inv, ibuf, sizeof ibuf, &ch, "alice", "secret", RURI, &nc) == 0);
  CHECK_EQ(ml_sip_auth_check(&a, &inv, now + SEC, user), ML_SIP_AUTH_OK);
  CHECK_STR(user, "alice");
  CHECK_EQ(ml_sip_auth_status(ML_SIP_AUTH_OK), 0);
  CHECK_EQ(ml_sip_auth_check(&a, &inv, now + SEC, user), ML_SIP_AUTH_CHALLENGE); /* the same again */
  NEED(invite(&inv, ibuf, sizeof ibuf, &ch, "alice", "secret", RURI, &nc) == 0);
  CHECK_EQ(nc, 2u);
  CHECK_EQ(ml_sip_auth_check(&a, &inv, now + SEC, user), ML_SIP_AUTH_OK);
  CHECK_EQ(ml_sip_auth_check(&a, &inv, now + SEC, user), ML_SIP_AUTH_CHALLENGE);
  nc = 0; /* nc going backwards */
  NEED(invite(&inv, ibuf, sizeof ibuf, &ch, "alice", "secret", RURI, &nc) == 0);
  CHECK_EQ(ml_sip_auth_check(&a, &inv, now + SEC, user), ML_SIP_AUTH_CHALLENGE);
  CHECK_STR(user, "");

  /* MD5, another user */
  get_chal(&a, now, 1, &ch, buf, sizeof buf, &m);
  CHECK_EQ(ch.alg, ML_DIGEST_MD5);
  nc = 0;
  NEED(invite(&inv, ibuf, sizeof ibuf, &ch, "bob", "hunter2", RURI, &nc) == 0);
  CHECK_EQ(ml_sip_auth_check(&a, &inv, now, user), ML_SIP_AUTH_OK);
  CHECK_STR(user, "bob");

  /* wrong password and unknown user: 403 alike */
  get_chal(&a, now, 0, &ch, buf, sizeof buf, &m);
  nc = 0;
  NEED(invite(&inv, ibuf, sizeof ibuf, &ch, "alice", "wrong", RURI, &nc) == 0);
  CHECK_EQ(ml_sip_auth_check(&a, &inv, now, user), ML_SIP_AUTH_FORBIDDEN);
  CHECK_EQ(ml_sip_auth_status(ML_SIP_AUTH_FORBIDDEN), 403);
  nc = 0;
  NEED(invite(&inv, ibuf, sizeof ibuf, &ch, "mallory", "secret", RURI, &nc) == 0);
  CHECK_EQ(ml_sip_auth_check(&a, &inv, now, user), ML_SIP_AUTH_FORBIDDEN);
  /* a failing lookup: 500 */
  nc = 0;
  NEED(invite(&inv, ibuf, sizeof ibuf, &ch, "broken", "x", RURI, &nc) == 0);
  CHECK_EQ(ml_sip_auth_check(&a, &inv, now, user), ML_SIP_AUTH_ERROR);
  CHECK_EQ(ml_sip_auth_status(ML_SIP_AUTH_ERROR), 500);
  /* uri is not the Request-URI: 400 */
  nc = 0;
  NEED(invite(&inv, ibuf, sizeof ibuf, &ch, "alice", "secret", "sip:other@127.0.0.1", &nc) == 0);
  CHECK_EQ(ml_sip_auth_check(&a, &inv, now, user), ML_SIP_AUTH_BAD_REQUEST);
  CHECK_EQ(ml_sip_auth_status(ML_SIP_AUTH_BAD_REQUEST), 400);

  /* expired: right password -> stale, wrong -> a plain challenge */
  get_chal(&a, now, 0, &ch, buf, sizeof buf, &m);
  nc = 0;
  NEED(invite(&inv, ibuf, sizeof ibuf, &ch, "alice", "secret", RURI, &nc) == 0);
  CHECK_EQ(ml_sip_auth_check(&a, &inv, now + 61 * SEC, user), ML_SIP_AUTH_STALE);
  CHECK_EQ(ml_sip_auth_status(ML_SIP_AUTH_STALE), 401);
  CHECK_EQ(ml_sip_auth_check(&a, &inv, now + 59 * SEC, user), ML_SIP_AUTH_OK); /* still current */
  nc = 0;
  NEED(invite(&inv, ibuf, sizeof ibuf, &ch, "alice", "wrong", RURI, &nc) == 0);
  CHECK_EQ(ml_sip_auth_check(&a, &inv, now + 61 * SEC, user), ML_SIP_AUTH_CHALLENGE);
  /* issued "in the future" (a clock going back): not current */
  CHECK_EQ(ml_sip_auth_check(&a, &inv, now - SEC, user), ML_SIP_AUTH_CHALLENGE);

  /* a nonce that is not ours (another listener's secret), right password: stale */
  static ml_sip_auth other;
  NEED(ml_sip_auth_init(&other, "moonline", 0, 0, lookup, NULL) == 0);
  get_chal(&other, now, 0, &ch, buf, sizeof buf, &m);
  nc = 0;
  NEED(invite(&inv, ibuf, sizeof ibuf, &ch, "alice", "secret", RURI, &nc) == 0);
  CHECK_EQ(ml_sip_auth_check(&a, &inv, now, user), ML_SIP_AUTH_STALE);
  CHECK_EQ(ml_sip_auth_check(&other, &inv, now, user), ML_SIP_AUTH_OK);
  /* a nonce of garbage: stale with the right password too (the client retries once) */
  ch.nonce = ML_STR_LIT("0123");
  nc = 0;
  NEED(invite(&inv, ibuf, sizeof ibuf, &ch, "alice", "secret", RURI, &nc) == 0);
  CHECK_EQ(ml_sip_auth_check(&a, &inv, now, user), ML_SIP_AUTH_STALE);

  /* another realm, or an algorithm we did not offer: a challenge */
  get_chal(&a, now, 0, &ch, buf, sizeof buf, &m);
  ch.realm = ML_STR_LIT("elsewhere");
  nc = 0;
  NEED(invite(&inv, ibuf, sizeof ibuf, &ch, "alice", "secret", RURI, &nc) == 0);
  CHECK_EQ(ml_sip_auth_check(&a, &inv, now, user), ML_SIP_AUTH_CHALLENGE);
  static ml_sip_auth md5only;
  NEED(ml_sip_auth_init(&md5only, "moonline", ML_SIP_AUTH_MD5, 0, lookup, NULL) == 0);
  char nonce[ML_SIP_AUTH_NONCE_HEX + 1], chv[512];
  ml_sip_auth_nonce(&md5only, now, nonce);
  snprintf(chv, sizeof chv, "Digest realm=\"moonline\", nonce=\"%s\", algorithm=SHA-256, qop=\"auth\"",
           nonce);
  NEED(ml_digest_chal_parse(&ch, ml_str_c(chv)) == ML_DIGEST_OK);
  nc = 0;
  NEED(invite(&inv, ibuf, sizeof ibuf, &ch, "alice", "secret", RURI, &nc) == 0);
  CHECK_EQ(ml_sip_auth_check(&md5only, &inv, now, user), ML_SIP_AUTH_CHALLENGE);
  /* no qop (RFC 2069 style): we offered qop=auth, so a challenge */
  snprintf(chv, sizeof chv, "Digest realm=\"moonline\", nonce=\"%s\", algorithm=MD5", nonce);
  NEED(ml_digest_chal_parse(&ch, ml_str_c(chv)) == ML_DIGEST_OK);
  nc = 0;
  NEED(invite(&inv, ibuf, sizeof ibuf, &ch, "alice", "secret", RURI, &nc) == 0);
  CHECK_EQ(ml_sip_auth_check(&md5only, &inv, now, user), ML_SIP_AUTH_CHALLENGE);
  /* an opaque that is not ours */
  snprintf(chv, sizeof chv, "Digest realm=\"moonline\", nonce=\"%s\", qop=\"auth\", opaque=\"x\"", nonce);
  NEED(ml_digest_chal_parse(&ch, ml_str_c(chv)) == ML_DIGEST_OK);
  nc = 0;
  NEED(invite(&inv, ibuf, sizeof ibuf, &ch, "alice", "secret", RURI, &nc) == 0);
  CHECK_EQ(ml_sip_auth_check(&md5only, &inv, now, user), ML_SIP_AUTH_CHALLENGE);
  CHECK(a.accepted >= 4 && a.rejected >= 4 && a.stale >= 3 && a.challenged > 0);
}

int main(void)
{
  test_challenge_headers();
  test_check();
  return ML_TEST_DONE("test_sip_auth");
}
