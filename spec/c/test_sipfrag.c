/* message/sipfrag bodies of REFER's NOTIFYs (engine/sip/sipfrag.c). */
#include <string.h>

#include "ml_test.h"
#include "sipfrag.h"

static ml_sipfrag frag;

static ml_sipfrag_err parse(const char *text) { return ml_sipfrag_parse(&frag, text, strlen(text)); }

static int str_is(ml_str s, const char *c) { return ml_str_eq(s, ml_str_c(c)); }

static void test_parse(void)
{
  TEST_BEGIN("parse");
  CHECK_EQ(parse("SIP/2.0 180 Ringing\r\n"), ML_SIPFRAG_OK);
  CHECK(frag.status == 180 && str_is(frag.reason, "Ringing") && frag.headers.n == 0);
  CHECK(!ml_sipfrag_final(&frag));
  CHECK_EQ(parse("SIP/2.0 200 OK"), ML_SIPFRAG_OK); /* no line break */
  CHECK(frag.status == 200 && str_is(frag.reason, "OK") && ml_sipfrag_final(&frag));
  CHECK_EQ(parse("SIP/2.0 100 Trying\n"), ML_SIPFRAG_OK);
  CHECK(frag.status == 100 && str_is(frag.reason, "Trying"));
  CHECK_EQ(parse("sip/2.0 487 Request Terminated\r\n"), ML_SIPFRAG_OK);
  CHECK(frag.status == 487 && str_is(frag.reason, "Request Terminated"));
  CHECK_EQ(parse("SIP/2.0 503 Service  Unavailable \t\r\n"), ML_SIPFRAG_OK);
  CHECK(str_is(frag.reason, "Service  Unavailable"));
  CHECK_EQ(parse("SIP/2.0 486\r\n"), ML_SIPFRAG_OK); /* no reason phrase */
  CHECK(frag.status == 486 && frag.reason.n == 0);
  CHECK_EQ(parse("SIP/2.0 603 \r\n"), ML_SIPFRAG_OK);
  CHECK(frag.status == 603 && frag.reason.n == 0);
  CHECK_EQ(parse("SIP/2.0 699 Ça marche pas\r\n"), ML_SIPFRAG_OK); /* UTF-8 */
  CHECK_EQ(frag.status, 699);
  /* headers after the status line are kept, not interpreted */
  const char *with = "SIP/2.0 200 OK\r\nFrom: <sip:a@b>;tag=1\r\nContent-Length: 0\r\n\r\n";
  CHECK_EQ(parse(with), ML_SIPFRAG_OK);
  CHECK(frag.status == 200 && str_is(frag.headers, "From: <sip:a@b>;tag=1\r\nContent-Length: 0\r\n\r\n"));
  CHECK(frag.headers.p == with + 16);
}

static void test_parse_errors(void)
{
  TEST_BEGIN("parse_errors");
  static const struct {
    const char *text;
    ml_sipfrag_err err;
  } bad[] = {
      {"", ML_SIPFRAG_ERR_EMPTY},
      {"\r\n", ML_SIPFRAG_ERR_EMPTY},
      {"\n", ML_SIPFRAG_ERR_EMPTY},
      {"SIP/3.0 200 OK\r\n", ML_SIPFRAG_ERR_VERSION},
      {"SIP/2.0\r\n", ML_SIPFRAG_ERR_VERSION},
      {"SIP/2.0200 OK\r\n", ML_SIPFRAG_ERR_VERSION},
      {"INVITE sip:bob@biloxi.example SIP/2.0\r\n", ML_SIPFRAG_ERR_VERSION},
      {" SIP/2.0 200 OK\r\n", ML_SIPFRAG_ERR_VERSION},
      {"SIP/2.0 \r\n", ML_SIPFRAG_ERR_STATUS},
      {"SIP/2.0 20 OK\r\n", ML_SIPFRAG_ERR_STATUS},
      {"SIP/2.0 2000 OK\r\n", ML_SIPFRAG_ERR_STATUS},
      {"SIP/2.0 099 Early\r\n", ML_SIPFRAG_ERR_STATUS},
      {"SIP/2.0 700 Late\r\n", ML_SIPFRAG_ERR_STATUS},
      {"SIP/2.0 abc OK\r\n", ML_SIPFRAG_ERR_STATUS},
      {"SIP/2.0  200 OK\r\n", ML_SIPFRAG_ERR_STATUS},
      {"SIP/2.0 200\tOK\r\n", ML_SIPFRAG_ERR_STATUS},
      {"SIP/2.0 200 O\rK\r\n", ML_SIPFRAG_ERR_SYNTAX},
      {"SIP/2.0 200 OK\r\r\n", ML_SIPFRAG_ERR_SYNTAX},
      {"SIP/2.0 200 O\x01K\r\n", ML_SIPFRAG_ERR_SYNTAX},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ml_sipfrag_err err = parse(bad[i].text);
    if (err != bad[i].err)
      fprintf(stderr, "  case %zu: got %s, want %s\n", i, ml_sipfrag_strerror(err),
              ml_sipfrag_strerror(bad[i].err));
    CHECK_EQ(err, bad[i].err);
  }
  static const char nul[] = "SIP/2.0 200 O\0K\r\n";
  CHECK_EQ(ml_sipfrag_parse(&frag, nul, sizeof nul - 1), ML_SIPFRAG_ERR_SYNTAX);
  static const char nul_status[] = "SIP/2.0 2\0";
  CHECK_EQ(ml_sipfrag_parse(&frag, nul_status, sizeof nul_status - 1), ML_SIPFRAG_ERR_STATUS);
  for (int e = ML_SIPFRAG_OK; e <= ML_SIPFRAG_ERR_SYNTAX; e++)
    CHECK(strcmp(ml_sipfrag_strerror((ml_sipfrag_err)e), "unknown error"));
}

static void test_write(void)
{
  TEST_BEGIN("write");
  char buf[64];
  CHECK_EQ(ml_sipfrag_write(buf, sizeof buf, 100, ML_STR_NULL), 20);
  CHECK_STR(buf, "SIP/2.0 100 Trying\r\n");
  CHECK_EQ(ml_sipfrag_write(buf, sizeof buf, 180, ML_STR_LIT("Ringing at Bob's")), 30);
  CHECK_STR(buf, "SIP/2.0 180 Ringing at Bob's\r\n");
  ml_sipfrag_write(buf, sizeof buf, 200, ML_STR_NULL);
  CHECK_STR(buf, "SIP/2.0 200 OK\r\n");
  ml_sipfrag_write(buf, sizeof buf, 486, ML_STR_NULL);
  CHECK_STR(buf, "SIP/2.0 486 Busy Here\r\n");
  ml_sipfrag_write(buf, sizeof buf, 299, ML_STR_NULL); /* unknown: the x00 phrase */
  CHECK_STR(buf, "SIP/2.0 299 OK\r\n");
  ml_sipfrag_write(buf, sizeof buf, 699, ML_STR_NULL);
  CHECK_STR(buf, "SIP/2.0 699 Busy Everywhere\r\n");
  ml_sipfrag_write(buf, sizeof buf, 199, ML_STR_NULL);
  CHECK_STR(buf, "SIP/2.0 199 Trying\r\n");
  CHECK_EQ(ml_sipfrag_write(buf, sizeof buf, 99, ML_STR_NULL), -1);
  CHECK_EQ(ml_sipfrag_write(buf, sizeof buf, 700, ML_STR_NULL), -1);
  CHECK_EQ(ml_sipfrag_write(buf, sizeof buf, 200, ML_STR_LIT("OK\r\nVia: x")), -1);
  /* room for the NUL */
  CHECK_EQ(ml_sipfrag_write(buf, 17, 200, ML_STR_NULL), 16);
  CHECK_EQ(ml_sipfrag_write(buf, 16, 200, ML_STR_NULL), -1);
  CHECK_EQ(ml_sipfrag_write(buf, 0, 200, ML_STR_NULL), -1);
  /* what we write parses back */
  for (unsigned status = 100; status <= 699; status++) {
    int n = ml_sipfrag_write(buf, sizeof buf, status, ML_STR_NULL);
    if (n < 0 || ml_sipfrag_parse(&frag, buf, (size_t)n) != ML_SIPFRAG_OK || frag.status != status) {
      CHECK(0);
      break;
    }
  }
  CHECK_STR(ML_SIPFRAG_CONTENT_TYPE, "message/sipfrag;version=2.0");
}

int main(void)
{
  test_parse();
  test_parse_errors();
  test_write();
  return ML_TEST_DONE("test_sipfrag");
}
