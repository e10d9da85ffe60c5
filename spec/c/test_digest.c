/* Digest auth (engine/sip/digest.c). The expected hashes were computed
 * independently when this test was written, with coreutils:
 *   h() { printf '%s' "$2" | ${1}sum | cut -d' ' -f1; }
 *   ha1=$(h md5 "alice:atlanta.example:secret"); ha2=$(h md5 "REGISTER:sip:atlanta.example")
 *   h md5 "$ha1:ea9c8e88df84f1cec4341ae6cbe5a359:00000001:0a4f113b:auth:$ha2"
 * and likewise for each vector below (the RFC 7616 §3.9.1 ones match the RFC). */
#include <stdint.h>
#include <string.h>

#include "digest.h"
#include "ml_test.h"

static int str_is(ml_str s, const char *c) { return s.p != NULL && ml_str_eq(s, ml_str_c(c)); }

#define NONCE1 "ea9c8e88df84f1cec4341ae6cbe5a359"
#define NONCE2 "dcd98b7102dd2f0e8b11d0f600bfb0c093"

/* ---- parsing ------------------------------------------------------------------- */

static void test_chal_parse(void)
{
  TEST_BEGIN("chal_parse");
  ml_digest_chal c;
  CHECK_EQ(ml_digest_chal_parse(&c, ML_STR_LIT("Digest realm=\"atlanta.example\", nonce=\"" NONCE1 "\", "
                                               "qop=\"auth,auth-int\", algorithm=SHA-256, opaque=\"5ccc\", "
                                               "stale=TRUE, domain=\"sip:atlanta.example\"")),
           ML_DIGEST_OK);
  CHECK(str_is(c.realm, "atlanta.example") && str_is(c.nonce, NONCE1) && str_is(c.opaque, "5ccc"));
  CHECK(str_is(c.domain, "sip:atlanta.example") && str_is(c.algorithm, "SHA-256"));
  CHECK_EQ(c.alg, ML_DIGEST_SHA256);
  CHECK_EQ(c.qops, ML_DIGEST_QOP_AUTH | ML_DIGEST_QOP_AUTH_INT);
  CHECK(str_is(c.qop, "auth,auth-int"));
  CHECK_EQ(c.stale, 1);

  /* any order, LWS and folding, unknown parameters ignored, no qop, no algorithm */
  CHECK_EQ(
      ml_digest_chal_parse(&c, ML_STR_LIT("  digest   charset=UTF-8 ,userhash=false,\r\n\tnonce = \"n,1\" , "
                                          "foo=\"a, \\\"b\\\"\",REALM=\"r\"  ")),
      ML_DIGEST_OK);
  CHECK(str_is(c.realm, "r") && str_is(c.nonce, "n,1"));
  CHECK(c.alg == ML_DIGEST_MD5 && c.algorithm.p == NULL && c.qop.p == NULL && c.qops == 0 && !c.stale);
  CHECK(c.opaque.p == NULL);
  /* empty values are present */
  CHECK_EQ(ml_digest_chal_parse(&c, ML_STR_LIT("Digest realm=\"\", nonce=\"x\", opaque=\"\"")), ML_DIGEST_OK);
  CHECK(c.realm.p != NULL && c.realm.n == 0 && c.opaque.p != NULL);
  /* algorithms: -sess recognised, unknown kept as such */
  CHECK_EQ(ml_digest_chal_parse(&c, ML_STR_LIT("Digest realm=\"r\", nonce=\"n\", algorithm=md5-SESS")),
           ML_DIGEST_OK);
  CHECK_EQ(c.alg, ML_DIGEST_MD5_SESS);
  CHECK_EQ(
      ml_digest_chal_parse(&c, ML_STR_LIT("Digest realm=\"r\", nonce=\"n\", algorithm=\"SHA-256-sess\"")),
      ML_DIGEST_OK);
  CHECK_EQ(c.alg, ML_DIGEST_SHA256_SESS);
  CHECK_EQ(ml_digest_chal_parse(&c, ML_STR_LIT("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256")),
           ML_DIGEST_OK);
  CHECK_EQ(c.alg, ML_DIGEST_ALG_UNKNOWN);
  /* qop lists: unknown values skipped, a token tolerated */
  CHECK_EQ(ml_digest_chal_parse(&c, ML_STR_LIT("Digest realm=\"r\", nonce=\"n\", qop=\"auth-conf, auth\"")),
           ML_DIGEST_OK);
  CHECK_EQ(c.qops, ML_DIGEST_QOP_AUTH);
  CHECK_EQ(ml_digest_chal_parse(&c, ML_STR_LIT("Digest realm=\"r\", nonce=\"n\", qop=auth-int")),
           ML_DIGEST_OK);
  CHECK_EQ(c.qops, ML_DIGEST_QOP_AUTH_INT);
}

static const struct {
  const char *text;
  ml_digest_err err;
} bad_chal[] = {
    {"", ML_DIGEST_ERR_SCHEME},
    {"Basic realm=\"r\"", ML_DIGEST_ERR_SCHEME},
    {"Digestrealm=\"r\", nonce=\"n\"", ML_DIGEST_ERR_SCHEME},
    {"Digest", ML_DIGEST_ERR_MISSING},
    {"Digest   ", ML_DIGEST_ERR_MISSING},
    {"Digest,realm=\"r\"", ML_DIGEST_ERR_SYNTAX},
    {"Digest realm=\"r\"", ML_DIGEST_ERR_MISSING},
    {"Digest nonce=\"n\"", ML_DIGEST_ERR_MISSING},
    {"Digest realm=\"r\", nonce=\"n\", Realm=\"s\"", ML_DIGEST_ERR_DUPLICATE},
    {"Digest realm=\"r\", nonce=\"n\", foo=1, foo=2", ML_DIGEST_ERR_DUPLICATE},
    {"Digest realm=r, nonce=\"n\"", ML_DIGEST_ERR_SYNTAX},
    {"Digest realm=\"r, nonce=\"n\"", ML_DIGEST_ERR_SYNTAX},
    {"Digest realm=\"r\", nonce=\"n\\\"", ML_DIGEST_ERR_SYNTAX},
    {"Digest realm=\"r\", nonce=\"n\",", ML_DIGEST_ERR_SYNTAX},
    {"Digest realm=\"r\",, nonce=\"n\"", ML_DIGEST_ERR_SYNTAX},
    {"Digest realm=\"r\" nonce=\"n\"", ML_DIGEST_ERR_SYNTAX},
    {"Digest realm\"r\", nonce=\"n\"", ML_DIGEST_ERR_SYNTAX},
    {"Digest realm=, nonce=\"n\"", ML_DIGEST_ERR_SYNTAX},
    {"Digest realm=\"a\r\nb\", nonce=\"n\"", ML_DIGEST_ERR_SYNTAX},
    {"Digest realm=\"r\",\r\nnonce=\"n\"", ML_DIGEST_ERR_SYNTAX}, /* a line break that is not a fold */
    {"Digest realm=\"\x01\", nonce=\"n\"", ML_DIGEST_ERR_SYNTAX},
    {"Digest realm=\"\\\x01\", nonce=\"n\"", ML_DIGEST_ERR_SYNTAX},
    {"Digest realm=\"r\", nonce=\"n\", stale=maybe", ML_DIGEST_ERR_VALUE},
    {"Digest realm=\"r\", nonce=\"n\", qop=\"auth,,auth\"", ML_DIGEST_ERR_VALUE},
    {"Digest realm=\"r\", nonce=\"n\", qop=\"\"", ML_DIGEST_ERR_VALUE},
};

static void test_chal_errors(void)
{
  TEST_BEGIN("chal_errors");
  ml_digest_chal c;
  for (size_t i = 0; i < sizeof bad_chal / sizeof bad_chal[0]; i++) {
    ml_digest_err err = ml_digest_chal_parse(&c, ml_str_c(bad_chal[i].text));
    if (err != bad_chal[i].err)
      fprintf(stderr, "  case %zu: got %s, want %s\n", i, ml_digest_strerror(err),
              ml_digest_strerror(bad_chal[i].err));
    CHECK_EQ(err, bad_chal[i].err);
  }
  static const char nul[] = "Digest realm=\"a\0b\", nonce=\"n\"";
  CHECK_EQ(ml_digest_chal_parse(&c, ml_str_make(nul, sizeof nul - 1)), ML_DIGEST_ERR_SYNTAX);
  CHECK_EQ(ml_digest_chal_parse(&c, ML_STR_NULL), ML_DIGEST_ERR_SCHEME);
  /* too many parameters */
  char many[2048];
  size_t n = (size_t)snprintf(many, sizeof many, "Digest realm=\"r\", nonce=\"n\"");
  for (int i = 0; i < ML_DIGEST_MAX_PARAMS - 2; i++)
    n += (size_t)snprintf(many + n, sizeof many - n, ", p%d=1", i);
  CHECK_EQ(ml_digest_chal_parse(&c, ml_str_make(many, n)), ML_DIGEST_OK);
  n += (size_t)snprintf(many + n, sizeof many - n, ", last=1");
  CHECK_EQ(ml_digest_chal_parse(&c, ml_str_make(many, n)), ML_DIGEST_ERR_LIMIT);
  for (int e = ML_DIGEST_OK; e <= ML_DIGEST_ERR_RESPONSE; e++)
    CHECK(strcmp(ml_digest_strerror((ml_digest_err)e), "unknown error"));
}

static void test_cred_parse(void)
{
  TEST_BEGIN("cred_parse");
  ml_digest_cred c;
  CHECK_EQ(ml_digest_cred_parse(
               &c, ML_STR_LIT("Digest username=\"alice\", realm=\"atlanta.example\", nonce=\"" NONCE1
                              "\", uri=\"sip:atlanta.example\", "
                              "response=\"525d1528eb15061e7c3872e4b76c59b9\", algorithm=MD5, "
                              "cnonce=\"0a4f113b\", opaque=\"5ccc\", qop=auth, nc=0000001F")),
           ML_DIGEST_OK);
  CHECK(str_is(c.username, "alice") && str_is(c.realm, "atlanta.example") && str_is(c.nonce, NONCE1));
  CHECK(str_is(c.uri, "sip:atlanta.example") && str_is(c.response, "525d1528eb15061e7c3872e4b76c59b9"));
  CHECK(str_is(c.cnonce, "0a4f113b") && str_is(c.opaque, "5ccc") && str_is(c.nc, "0000001F"));
  CHECK(c.alg == ML_DIGEST_MD5 && c.qops == ML_DIGEST_QOP_AUTH && c.nc_value == 31);
  /* no qop (RFC 2069), quoted qop tolerated */
  CHECK_EQ(ml_digest_cred_parse(&c, ML_STR_LIT("Digest response=\"9d9bfe43c8062ce3ca739ff0272ac862\", "
                                               "uri=\"sip:bob@biloxi.example\", nonce=\"n\", realm=\"r\", "
                                               "username=\"bob\"")),
           ML_DIGEST_OK);
  CHECK(c.qop.p == NULL && c.qops == 0 && c.cnonce.p == NULL);
  CHECK_EQ(ml_digest_cred_parse(&c, ML_STR_LIT("Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", "
                                               "response=\"00000000000000000000000000000000\", qop=\"auth\", "
                                               "nc=\"00000001\", cnonce=\"c\"")),
           ML_DIGEST_OK);
  CHECK_EQ(c.qops, ML_DIGEST_QOP_AUTH);

  static const struct {
    const char *text;
    ml_digest_err err;
  } bad[] = {
      {"Digest realm=\"r\", nonce=\"n\", uri=\"u\", response=\"00000000000000000000000000000000\"",
       ML_DIGEST_ERR_MISSING},
      {"Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\"", ML_DIGEST_ERR_MISSING},
      {"Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", "
       "response=\"00000000000000000000000000000000\", "
       "qop=auth, cnonce=\"c\"",
       ML_DIGEST_ERR_MISSING},
      {"Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", "
       "response=\"00000000000000000000000000000000\", "
       "qop=auth, nc=00000001",
       ML_DIGEST_ERR_MISSING},
      {"Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", "
       "response=\"00000000000000000000000000000000\", "
       "qop=auth, nc=1, cnonce=\"c\"",
       ML_DIGEST_ERR_VALUE},
      {"Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", "
       "response=\"00000000000000000000000000000000\", "
       "qop=auth, nc=0000000g, cnonce=\"c\"",
       ML_DIGEST_ERR_VALUE},
      {"Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", "
       "response=\"00000000000000000000000000000000\", "
       "qop=auth-conf, nc=00000001, cnonce=\"c\"",
       ML_DIGEST_ERR_VALUE},
      {"Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", "
       "response=\"0000000000000000000000000000000\"",
       ML_DIGEST_ERR_VALUE},
      {"Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", "
       "response=\"0000000000000000000000000000000z\"",
       ML_DIGEST_ERR_VALUE},
      {"Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", "
       "response=\"00000000000000000000000000000000\", "
       "algorithm=SHA-256",
       ML_DIGEST_ERR_VALUE},
      {"Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=sip:x, "
       "response=\"00000000000000000000000000000000\"",
       ML_DIGEST_ERR_SYNTAX},
      {"Digest username=\"u\", username=\"v\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"00\"",
       ML_DIGEST_ERR_DUPLICATE},
      {"Basic dXNlcjpwYXNz", ML_DIGEST_ERR_SCHEME},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ml_digest_err err = ml_digest_cred_parse(&c, ml_str_c(bad[i].text));
    if (err != bad[i].err)
      fprintf(stderr, "  case %zu: got %s, want %s\n", i, ml_digest_strerror(err),
              ml_digest_strerror(bad[i].err));
    CHECK_EQ(err, bad[i].err);
  }
  /* an unknown algorithm parses (the UAS refuses it in verify) */
  CHECK_EQ(ml_digest_cred_parse(&c, ML_STR_LIT("Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", "
                                               "response=\"abcd\", algorithm=SHA-512-256")),
           ML_DIGEST_OK);
  CHECK_EQ(c.alg, ML_DIGEST_ALG_UNKNOWN);
}

static void test_unquote(void)
{
  TEST_BEGIN("unquote");
  char buf[16];
  CHECK_EQ(ml_digest_unquote(buf, sizeof buf, ML_STR_LIT("a\\\"b\\\\c")), 5);
  CHECK_STR(buf, "a\"b\\c");
  CHECK_EQ(ml_digest_unquote(buf, 6, ML_STR_LIT("a\\\"b\\\\c")), 5);
  CHECK_EQ(ml_digest_unquote(buf, 5, ML_STR_LIT("a\\\"b\\\\c")), -1);
  CHECK_EQ(ml_digest_unquote(buf, 1, ML_STR_LIT("")), 0);
  CHECK_EQ(ml_digest_unquote(buf, 0, ML_STR_LIT("")), -1);
}

/* ---- known vectors ------------------------------------------------------------------ */

static const struct {
  const char *header;
  const char *method;
  const char *password;
  const char *response;
} vectors[] = {
    /* MD5, qop=auth */
    {"Digest username=\"alice\", realm=\"atlanta.example\", nonce=\"" NONCE1
     "\", uri=\"sip:atlanta.example\", "
     "response=\"525d1528eb15061e7c3872e4b76c59b9\", qop=auth, nc=00000001, cnonce=\"0a4f113b\"",
     "REGISTER", "secret", "525d1528eb15061e7c3872e4b76c59b9"},
    /* MD5, no qop */
    {"Digest username=\"bob\", realm=\"biloxi.example\", nonce=\"" NONCE2
     "\", uri=\"sip:bob@biloxi.example\", "
     "response=\"9d9bfe43c8062ce3ca739ff0272ac862\"",
     "INVITE", "zanzibar", "9d9bfe43c8062ce3ca739ff0272ac862"},
    /* SHA-256, qop=auth */
    {"Digest username=\"alice\", realm=\"atlanta.example\", nonce=\"" NONCE1
     "\", uri=\"sip:atlanta.example\", "
     "response=\"3234abd8e651ae2de186e7564af11f640fabbf006937ae7625123de57cedcfb8\", algorithm=SHA-256, "
     "qop=auth, "
     "nc=00000001, cnonce=\"0a4f113b\"",
     "REGISTER", "secret", "3234abd8e651ae2de186e7564af11f640fabbf006937ae7625123de57cedcfb8"},
    /* SHA-256, no qop */
    {"Digest username=\"bob\", realm=\"biloxi.example\", nonce=\"" NONCE2
     "\", uri=\"sip:bob@biloxi.example\", "
     "algorithm=SHA-256, response=\"51096b610a2ca1fbda3fb48963debe839dca9ca7cd713d525dc9c1e90e3273ff\"",
     "INVITE", "zanzibar", "51096b610a2ca1fbda3fb48963debe839dca9ca7cd713d525dc9c1e90e3273ff"},
    /* MD5-sess and SHA-256-sess, qop=auth, nc 2 */
    {"Digest username=\"alice\", realm=\"atlanta.example\", nonce=\"" NONCE1 "\", uri=\"sip:bob@192.0.2.4\", "
     "response=\"8e1b02d190dea90045533c6133817a3c\", algorithm=MD5-sess, qop=auth, nc=00000002, "
     "cnonce=\"0a4f113b\"",
     "BYE", "secret", "8e1b02d190dea90045533c6133817a3c"},
    {"Digest username=\"alice\", realm=\"atlanta.example\", nonce=\"" NONCE1 "\", uri=\"sip:bob@192.0.2.4\", "
     "response=\"30914d7442a03fe10f765e6a167586f208d5dfaa0cc9b21621c7cf57b3a17d6e\", algorithm=SHA-256-sess, "
     "qop=auth, nc=00000002, cnonce=\"0a4f113b\"",
     "BYE", "secret", "30914d7442a03fe10f765e6a167586f208d5dfaa0cc9b21621c7cf57b3a17d6e"},
    /* RFC 7616 §3.9.1 (HTTP, but the same computation) */
    {"Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", algorithm=MD5, "
     "nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, "
     "cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, "
     "response=\"8ca523f5e9506fed4657c9700eebdbec\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
     "GET", "Circle of Life", "8ca523f5e9506fed4657c9700eebdbec"},
    {"Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", "
     "algorithm=SHA-256, "
     "nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, "
     "cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, "
     "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", "
     "opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
     "GET", "Circle of Life", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
    /* escapes: username a"l\ice, realm my "realm", nonce n"1, password p\w (hashed unescaped) */
    {"Digest username=\"a\\\"l\\\\ice\", realm=\"my \\\"realm\\\"\", nonce=\"n\\\"1\", uri=\"sip:x@y\", "
     "response=\"bc851519d79ea1d1c6ea5b08e26fb41e\", qop=auth, nc=0000000a, cnonce=\"c1\"",
     "INVITE", "p\\w", "bc851519d79ea1d1c6ea5b08e26fb41e"},
};

static void test_vectors(void)
{
  TEST_BEGIN("vectors");
  for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
    ml_digest_cred c;
    char out[ML_DIGEST_HEX_MAX];
    CHECK_EQ(ml_digest_cred_parse(&c, ml_str_c(vectors[i].header)), ML_DIGEST_OK);
    CHECK_EQ(ml_digest_cred_response(out, &c, ml_str_c(vectors[i].method), ml_str_c(vectors[i].password),
                                     ML_STR_NULL),
             ML_DIGEST_OK);
    if (strcmp(out, vectors[i].response)) fprintf(stderr, "  vector %zu\n", i);
    CHECK_STR(out, vectors[i].response);
  }
  char ha1[ML_DIGEST_HEX_MAX];
  CHECK_EQ(ml_digest_ha1(ha1, ML_DIGEST_MD5, ML_STR_LIT("alice"), ML_STR_LIT("atlanta.example"),
                         ML_STR_LIT("secret")),
           ML_DIGEST_OK);
  CHECK_STR(ha1, "54dbab4076e8d42619a50491f052e6d2");
  CHECK_EQ(ml_digest_ha1(ha1, ML_DIGEST_SHA256, ML_STR_LIT("alice"), ML_STR_LIT("atlanta.example"),
                         ML_STR_LIT("secret")),
           ML_DIGEST_OK);
  CHECK_STR(ha1, "260dd07eb39b45aa44fa38fc672999fe0ff5e78b5fa39b10080fa678fb46296b");
  CHECK_EQ(ml_digest_ha1(ha1, ML_DIGEST_ALG_UNKNOWN, ML_STR_LIT("a"), ML_STR_LIT("b"), ML_STR_LIT("c")),
           ML_DIGEST_ERR_ALGORITHM);
  /* from a stored HA1 (any case) instead of the password */
  ml_digest_cred c;
  char out[ML_DIGEST_HEX_MAX];
  CHECK_EQ(ml_digest_cred_parse(&c, ml_str_c(vectors[0].header)), ML_DIGEST_OK);
  CHECK_EQ(ml_digest_cred_response(out, &c, ML_STR_LIT("REGISTER"), ML_STR_NULL,
                                   ML_STR_LIT("54DBAB4076E8D42619A50491F052E6D2")),
           ML_DIGEST_OK);
  CHECK_STR(out, vectors[0].response);
  CHECK_EQ(ml_digest_cred_parse(&c, ml_str_c(vectors[4].header)), ML_DIGEST_OK); /* MD5-sess */
  CHECK_EQ(ml_digest_cred_response(out, &c, ML_STR_LIT("BYE"), ML_STR_NULL,
                                   ML_STR_LIT("54dbab4076e8d42619a50491f052e6d2")),
           ML_DIGEST_OK);
  CHECK_STR(out, vectors[4].response);
}

/* ---- UAC ----------------------------------------------------------------------------- */

static void test_authorize(void)
{
  TEST_BEGIN("authorize");
  ml_digest_chal ch;
  char buf[512];
  uint32_t nc = 0;
  CHECK_EQ(ml_digest_chal_parse(&ch, ML_STR_LIT("Digest realm=\"atlanta.example\", nonce=\"" NONCE1 "\", "
                                                "qop=\"auth\", opaque=\"5ccc\"")),
           ML_DIGEST_OK);
  ml_digest_auth a = {ML_STR_LIT("alice"), ML_STR_LIT("secret"), ML_STR_LIT("REGISTER"),
                      ML_STR_LIT("sip:atlanta.example"), ML_STR_LIT("0a4f113b")};
  int n = ml_digest_authorize(buf, sizeof buf, &ch, &a, &nc);
  const char *want =
      "Digest username=\"alice\", realm=\"atlanta.example\", nonce=\"" NONCE1 "\", "
      "uri=\"sip:atlanta.example\", response=\"525d1528eb15061e7c3872e4b76c59b9\", algorithm=MD5, "
      "cnonce=\"0a4f113b\", qop=auth, nc=00000001, opaque=\"5ccc\"";
  CHECK_EQ(n, (int)strlen(want));
  CHECK_STR(buf, want);
  CHECK_EQ(nc, 1);
  /* the next request with this nonce: nc 2, another response */
  n = ml_digest_authorize(buf, sizeof buf, &ch, &a, &nc);
  CHECK(n > 0 && nc == 2 && strstr(buf, "nc=00000002") && !strstr(buf, "525d1528"));
  /* exact room (NUL included) and too little */
  nc = 0;
  CHECK_EQ(ml_digest_authorize(buf, strlen(want) + 1, &ch, &a, &nc), (int)strlen(want));
  CHECK_EQ(ml_digest_authorize(buf, strlen(want), &ch, &a, &nc), -ML_DIGEST_ERR_SPACE);

  /* SHA-256 without qop: no cnonce, no nc */
  CHECK_EQ(ml_digest_chal_parse(&ch, ML_STR_LIT("Digest realm=\"biloxi.example\", nonce=\"" NONCE2 "\", "
                                                "algorithm=SHA-256")),
           ML_DIGEST_OK);
  ml_digest_auth b = {ML_STR_LIT("bob"), ML_STR_LIT("zanzibar"), ML_STR_LIT("INVITE"),
                      ML_STR_LIT("sip:bob@biloxi.example"), ML_STR_NULL};
  nc = 0;
  n = ml_digest_authorize(buf, sizeof buf, &ch, &b, &nc);
  CHECK_STR(
      buf,
      "Digest username=\"bob\", realm=\"biloxi.example\", nonce=\"" NONCE2 "\", "
      "uri=\"sip:bob@biloxi.example\", "
      "response=\"51096b610a2ca1fbda3fb48963debe839dca9ca7cd713d525dc9c1e90e3273ff\", algorithm=SHA-256");
  CHECK_EQ(nc, 0);

  /* escapes: the challenge's realm and nonce are echoed as written, ours are escaped */
  CHECK_EQ(ml_digest_chal_parse(
               &ch, ML_STR_LIT("Digest realm=\"my \\\"realm\\\"\", nonce=\"n\\\"1\", qop=\"auth\"")),
           ML_DIGEST_OK);
  ml_digest_auth e = {ML_STR_LIT("a\"l\\ice"), ML_STR_LIT("p\\w"), ML_STR_LIT("INVITE"),
                      ML_STR_LIT("sip:x@y"), ML_STR_LIT("c1")};
  nc = 9;
  n = ml_digest_authorize(buf, sizeof buf, &ch, &e, &nc);
  CHECK_STR(
      buf,
      "Digest username=\"a\\\"l\\\\ice\", realm=\"my \\\"realm\\\"\", nonce=\"n\\\"1\", uri=\"sip:x@y\", "
      "response=\"bc851519d79ea1d1c6ea5b08e26fb41e\", algorithm=MD5, cnonce=\"c1\", qop=auth, "
      "nc=0000000a");

  /* a fresh cnonce each time: 32 hex digits; the result verifies */
  CHECK_EQ(ml_digest_chal_parse(&ch, ML_STR_LIT("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int,auth\", "
                                                "algorithm=SHA-256-sess")),
           ML_DIGEST_OK);
  a.cnonce = ML_STR_NULL;
  nc = 0;
  ml_digest_cred c1, c2;
  char buf2[512];
  CHECK(ml_digest_authorize(buf, sizeof buf, &ch, &a, &nc) > 0);
  CHECK(ml_digest_authorize(buf2, sizeof buf2, &ch, &a, &nc) > 0);
  CHECK_EQ(ml_digest_cred_parse(&c1, ml_str_c(buf)), ML_DIGEST_OK);
  CHECK_EQ(ml_digest_cred_parse(&c2, ml_str_c(buf2)), ML_DIGEST_OK);
  CHECK(c1.cnonce.n == ML_DIGEST_NONCE_LEN && !ml_str_eq(c1.cnonce, c2.cnonce));
  CHECK(c1.alg == ML_DIGEST_SHA256_SESS && c1.nc_value == 1 && c2.nc_value == 2);
  ml_digest_check v = {.realm = ML_STR_LIT("r"),
                       .nonce = ML_STR_LIT("n"),
                       .method = ML_STR_LIT("REGISTER"),
                       .uri = ML_STR_LIT("sip:atlanta.example"),
                       .password = ML_STR_LIT("secret")};
  CHECK_EQ(ml_digest_verify(&c1, &v), ML_DIGEST_OK);
  CHECK_EQ(ml_digest_verify(&c2, &v), ML_DIGEST_OK);
  /* an empty password is a password */
  a.password = ML_STR_NULL;
  CHECK(ml_digest_authorize(buf, sizeof buf, &ch, &a, &nc) > 0);
  CHECK_EQ(ml_digest_cred_parse(&c1, ml_str_c(buf)), ML_DIGEST_OK);
  v.password = ML_STR_LIT("");
  CHECK_EQ(ml_digest_verify(&c1, &v), ML_DIGEST_OK);
  v.password = ML_STR_LIT("secret");
  CHECK_EQ(ml_digest_verify(&c1, &v), ML_DIGEST_ERR_RESPONSE);
}

static void test_authorize_errors(void)
{
  TEST_BEGIN("authorize_errors");
  ml_digest_chal ch;
  char buf[512];
  uint32_t nc = 0;
  ml_digest_auth a = {ML_STR_LIT("alice"), ML_STR_LIT("secret"), ML_STR_LIT("REGISTER"),
                      ML_STR_LIT("sip:atlanta.example"), ML_STR_NULL};
  CHECK_EQ(ml_digest_chal_parse(&ch, ML_STR_LIT("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256")),
           ML_DIGEST_OK);
  CHECK_EQ(ml_digest_authorize(buf, sizeof buf, &ch, &a, &nc), -ML_DIGEST_ERR_ALGORITHM);
  CHECK_EQ(ml_digest_chal_parse(&ch, ML_STR_LIT("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess")),
           ML_DIGEST_OK);
  CHECK_EQ(ml_digest_authorize(buf, sizeof buf, &ch, &a, &nc), -ML_DIGEST_ERR_ALGORITHM);
  CHECK_EQ(ml_digest_chal_parse(&ch, ML_STR_LIT("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"")),
           ML_DIGEST_OK);
  CHECK_EQ(ml_digest_authorize(buf, sizeof buf, &ch, &a, &nc), -ML_DIGEST_ERR_QOP);
  CHECK_EQ(nc, 0);
  CHECK_EQ(ml_digest_chal_parse(&ch, ML_STR_LIT("Digest realm=\"r\", nonce=\"n\"")), ML_DIGEST_OK);
  ml_digest_auth bad = a;
  bad.username = ML_STR_LIT("alice\r\nVia: x");
  CHECK_EQ(ml_digest_authorize(buf, sizeof buf, &ch, &bad, &nc), -ML_DIGEST_ERR_INPUT);
  bad = a, bad.uri = ML_STR_NULL;
  CHECK_EQ(ml_digest_authorize(buf, sizeof buf, &ch, &bad, &nc), -ML_DIGEST_ERR_INPUT);
  bad = a, bad.method = ML_STR_LIT("REG ISTER");
  CHECK_EQ(ml_digest_authorize(buf, sizeof buf, &ch, &bad, &nc), -ML_DIGEST_ERR_INPUT);
  bad = a, bad.cnonce = ML_STR_LIT("a\"b");
  CHECK_EQ(ml_digest_authorize(buf, sizeof buf, &ch, &bad, &nc), -ML_DIGEST_ERR_INPUT);
  CHECK_EQ(ml_digest_authorize(buf, 10, &ch, &a, &nc), -ML_DIGEST_ERR_SPACE);
  CHECK_EQ(ml_digest_authorize(buf, 0, &ch, &a, &nc), -ML_DIGEST_ERR_SPACE);
}

/* ---- UAS ----------------------------------------------------------------------------- */

static void test_verify(void)
{
  TEST_BEGIN("verify");
  ml_digest_cred c;
  CHECK_EQ(ml_digest_cred_parse(&c, ml_str_c(vectors[2].header)), ML_DIGEST_OK); /* SHA-256, qop */
  ml_digest_check v = {.realm = ML_STR_LIT("atlanta.example"),
                       .nonce = ML_STR_LIT(NONCE1),
                       .method = ML_STR_LIT("REGISTER"),
                       .uri = ML_STR_LIT("sip:atlanta.example"),
                       .password = ML_STR_LIT("secret")};
  CHECK_EQ(ml_digest_verify(&c, &v), ML_DIGEST_OK);
  ml_digest_check w = v;
  w.password = ML_STR_LIT("Secret");
  CHECK_EQ(ml_digest_verify(&c, &w), ML_DIGEST_ERR_RESPONSE);
  w = v, w.method = ML_STR_LIT("INVITE");
  CHECK_EQ(ml_digest_verify(&c, &w), ML_DIGEST_ERR_RESPONSE);
  w = v, w.realm = ML_STR_LIT("atlanta.example2");
  CHECK_EQ(ml_digest_verify(&c, &w), ML_DIGEST_ERR_REALM);
  w = v, w.nonce = ML_STR_LIT("ea9c8e88df84f1cec4341ae6cbe5a358");
  CHECK_EQ(ml_digest_verify(&c, &w), ML_DIGEST_ERR_NONCE);
  w = v, w.nonce = ML_STR_NULL; /* checked by the caller */
  CHECK_EQ(ml_digest_verify(&c, &w), ML_DIGEST_OK);
  w = v, w.uri = ML_STR_LIT("sip:atlanta.example;transport=tcp");
  CHECK_EQ(ml_digest_verify(&c, &w), ML_DIGEST_ERR_URI);
  w = v, w.opaque = ML_STR_LIT("5ccc");
  CHECK_EQ(ml_digest_verify(&c, &w), ML_DIGEST_ERR_OPAQUE);
  /* with the stored HA1 of the right algorithm, in any case */
  w = v, w.password = ML_STR_NULL;
  w.ha1 = ML_STR_LIT("260DD07EB39B45AA44FA38FC672999FE0FF5E78B5FA39B10080FA678FB46296B");
  CHECK_EQ(ml_digest_verify(&c, &w), ML_DIGEST_OK);
  w.ha1 = ML_STR_LIT("54dbab4076e8d42619a50491f052e6d2"); /* the MD5 one */
  CHECK_EQ(ml_digest_verify(&c, &w), ML_DIGEST_ERR_ALGORITHM);
  /* the response compares case-insensitively */
  CHECK_EQ(ml_digest_cred_parse(
               &c, ML_STR_LIT("Digest username=\"alice\", realm=\"atlanta.example\", nonce=\"" NONCE1
                              "\", uri=\"sip:atlanta.example\", "
                              "response=\"525D1528EB15061E7C3872E4B76C59B9\", qop=auth, "
                              "nc=00000001, cnonce=\"0a4f113b\", opaque=\"5ccc\"")),
           ML_DIGEST_OK);
  w = v, w.opaque = ML_STR_LIT("5ccc");
  CHECK_EQ(ml_digest_verify(&c, &w), ML_DIGEST_OK);
  /* escaped realm, nonce and username compare unescaped */
  CHECK_EQ(ml_digest_cred_parse(&c, ml_str_c(vectors[8].header)), ML_DIGEST_OK);
  ml_digest_check e = {.realm = ML_STR_LIT("my \"realm\""),
                       .nonce = ML_STR_LIT("n\"1"),
                       .method = ML_STR_LIT("INVITE"),
                       .uri = ML_STR_LIT("sip:x@y"),
                       .password = ML_STR_LIT("p\\w")};
  CHECK_EQ(ml_digest_verify(&c, &e), ML_DIGEST_OK);
  e.realm = ML_STR_LIT("my \\\"realm\\\""); /* the escaped text is not the realm */
  CHECK_EQ(ml_digest_verify(&c, &e), ML_DIGEST_ERR_REALM);
  /* auth-int and unknown algorithms are refused */
  CHECK_EQ(ml_digest_cred_parse(&c, ML_STR_LIT("Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", "
                                               "response=\"00000000000000000000000000000000\", qop=auth-int, "
                                               "nc=00000001, cnonce=\"c\"")),
           ML_DIGEST_OK);
  ml_digest_check r = {.realm = ML_STR_LIT("r"), .nonce = ML_STR_LIT("n"), .uri = ML_STR_LIT("u")};
  CHECK_EQ(ml_digest_verify(&c, &r), ML_DIGEST_ERR_QOP);
  CHECK_EQ(ml_digest_cred_parse(&c, ML_STR_LIT("Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", "
                                               "response=\"00\", algorithm=SHA-512-256")),
           ML_DIGEST_OK);
  CHECK_EQ(ml_digest_verify(&c, &r), ML_DIGEST_ERR_ALGORITHM);
}

static void test_challenge(void)
{
  TEST_BEGIN("challenge");
  char buf[512], nonce[ML_DIGEST_NONCE_LEN + 1], nonce2[ML_DIGEST_NONCE_LEN + 1];
  ml_digest_chal_params p = {.realm = ML_STR_LIT("moonline"), .alg = ML_DIGEST_SHA256, .qop_auth = 1};
  int n = ml_digest_challenge(buf, sizeof buf, &p, nonce);
  CHECK(n > 0);
  CHECK_EQ(strlen(nonce), ML_DIGEST_NONCE_LEN);
  CHECK(strspn(nonce, "0123456789abcdef") == ML_DIGEST_NONCE_LEN);
  char want[256];
  snprintf(want, sizeof want, "Digest realm=\"moonline\", nonce=\"%s\", algorithm=SHA-256, qop=\"auth\"",
           nonce);
  CHECK_STR(buf, want);
  CHECK(ml_digest_challenge(buf, sizeof buf, &p, nonce2) > 0);
  CHECK(strcmp(nonce, nonce2) != 0);

  /* the round trip: challenge, authorize, verify */
  ml_digest_chal ch;
  CHECK_EQ(ml_digest_chal_parse(&ch, ml_str_c(buf)), ML_DIGEST_OK);
  CHECK(ch.alg == ML_DIGEST_SHA256 && ch.qops == ML_DIGEST_QOP_AUTH && str_is(ch.nonce, nonce2) && !ch.stale);
  ml_digest_auth a = {ML_STR_LIT("alice"), ML_STR_LIT("pw"), ML_STR_LIT("INVITE"),
                      ML_STR_LIT("sip:agent@moonline"), ML_STR_NULL};
  uint32_t nc = 0;
  char auth[512];
  CHECK(ml_digest_authorize(auth, sizeof auth, &ch, &a, &nc) > 0);
  ml_digest_cred c;
  CHECK_EQ(ml_digest_cred_parse(&c, ml_str_c(auth)), ML_DIGEST_OK);
  ml_digest_check v = {.realm = p.realm,
                       .nonce = ml_str_c(nonce2),
                       .method = ML_STR_LIT("INVITE"),
                       .uri = ML_STR_LIT("sip:agent@moonline"),
                       .password = ML_STR_LIT("pw")};
  CHECK_EQ(ml_digest_verify(&c, &v), ML_DIGEST_OK);
  v.nonce = ml_str_c(nonce); /* an older nonce of ours */
  CHECK_EQ(ml_digest_verify(&c, &v), ML_DIGEST_ERR_NONCE);

  /* a given nonce, opaque and stale, MD5 without qop; quotes are escaped */
  ml_digest_chal_params q = {.realm = ML_STR_LIT("a \"b\""),
                             .alg = ML_DIGEST_MD5,
                             .stale = 1,
                             .opaque = ML_STR_LIT("op"),
                             .nonce = ML_STR_LIT("fixed")};
  n = ml_digest_challenge(buf, sizeof buf, &q, NULL);
  CHECK_STR(buf, "Digest realm=\"a \\\"b\\\"\", nonce=\"fixed\", algorithm=MD5, opaque=\"op\", stale=true");
  CHECK_EQ(n, (int)strlen(buf));
  CHECK_EQ(ml_digest_chal_parse(&ch, ml_str_c(buf)), ML_DIGEST_OK);
  CHECK(ch.stale && ch.qop.p == NULL && str_is(ch.opaque, "op"));
  CHECK_EQ(ml_digest_challenge(buf, (size_t)n, &q, NULL), -ML_DIGEST_ERR_SPACE);
  CHECK_EQ(ml_digest_challenge(buf, (size_t)n + 1, &q, NULL), n);
  q.nonce = ML_STR_NULL;
  CHECK_EQ(ml_digest_challenge(buf, sizeof buf, &q, NULL), -ML_DIGEST_ERR_INPUT);
  q.realm = ML_STR_LIT("a\r\nb");
  CHECK_EQ(ml_digest_challenge(buf, sizeof buf, &q, nonce), -ML_DIGEST_ERR_INPUT);
  q.realm = ML_STR_LIT("r"), q.alg = ML_DIGEST_ALG_UNKNOWN;
  CHECK_EQ(ml_digest_challenge(buf, sizeof buf, &q, nonce), -ML_DIGEST_ERR_ALGORITHM);
  CHECK_STR(ml_digest_alg_name(ML_DIGEST_SHA256_SESS), "SHA-256-sess");
  CHECK(ml_digest_alg_name(ML_DIGEST_ALG_UNKNOWN) == NULL);
}

int main(void)
{
  test_chal_parse();
  test_chal_errors();
  test_cred_parse();
  test_unquote();
  test_vectors();
  test_authorize();
  test_authorize_errors();
  test_verify();
  test_challenge();
  return ML_TEST_DONE("test_digest");
}
