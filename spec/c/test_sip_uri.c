/* The SIP sub-parsers (engine/sip/sip_uri.c): URIs, name-addrs, Via, CSeq,
 * parameter lists, and the split/escape/fold helpers. Pure C, no loop. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ml_test.h"
#include "sip_msg.h"

/* a view as a C string, for CHECK_STR (a few rotating buffers) */
static const char *z(ml_str v)
{
  static char bufs[8][2048];
  static int next;
  char *b = bufs[next++ % 8];
  if (!v.p) return "";
  size_t n = v.n < sizeof bufs[0] - 1 ? v.n : sizeof bufs[0] - 1;
  memcpy(b, v.p, n);
  b[n] = 0;
  return b;
}

/* the view lies inside s (or is empty) */
static int inside(ml_str v, ml_str s) { return v.n == 0 || (v.p >= s.p && v.p + v.n <= s.p + s.n); }

/* ---- URIs ------------------------------------------------------------------ */

typedef struct uri_case {
  const char *in;
  int ok;
  ml_sip_scheme scheme;
  const char *user, *password, *host;
  ml_sip_host_type host_type;
  int port;
  const char *params, *headers;
} uri_case;

static const uri_case uri_cases[] = {
    {"sip:alice@atlanta.example.com", 1, ML_SIP_URI_SIP, "alice", "", "atlanta.example.com", ML_SIP_HOST_NAME,
     0, "", ""},
    {"SIP:Alice@Atlanta.Example.COM:5070", 1, ML_SIP_URI_SIP, "Alice", "", "Atlanta.Example.COM",
     ML_SIP_HOST_NAME, 5070, "", ""},
    {"sips:bob:s3cr%65t@192.0.2.4:5061;transport=tcp;lr", 1, ML_SIP_URI_SIPS, "bob", "s3cr%65t", "192.0.2.4",
     ML_SIP_HOST_IPV4, 5061, "transport=tcp;lr", ""},
    {"sip:example.net", 1, ML_SIP_URI_SIP, "", "", "example.net", ML_SIP_HOST_NAME, 0, "", ""},
    {"sip:example.net.", 1, ML_SIP_URI_SIP, "", "", "example.net.", ML_SIP_HOST_NAME, 0, "", ""},
    {"sip:carol@[2001:db8::10]:5070;maddr=[2001:db8::1]", 1, ML_SIP_URI_SIP, "carol", "", "2001:db8::10",
     ML_SIP_HOST_IPV6, 5070, "maddr=[2001:db8::1]", ""},
    {"sip:[::1]", 1, ML_SIP_URI_SIP, "", "", "::1", ML_SIP_HOST_IPV6, 0, "", ""},
    {"sip:[::ffff:192.0.2.1]:5060", 1, ML_SIP_URI_SIP, "", "", "::ffff:192.0.2.1", ML_SIP_HOST_IPV6, 5060, "",
     ""},
    {"sip:[2001:db8:0:0:0:0:0:1]", 1, ML_SIP_URI_SIP, "", "", "2001:db8:0:0:0:0:0:1", ML_SIP_HOST_IPV6, 0, "",
     ""},
    /* ';' and '?' belong to the user part when an '@' follows */
    {"sip:user;par=u%40example.net@example.com", 1, ML_SIP_URI_SIP, "user;par=u%40example.net", "",
     "example.com", ML_SIP_HOST_NAME, 0, "", ""},
    {"sip:+1-212-555-0101:1234@gw.example.com;user=phone", 1, ML_SIP_URI_SIP, "+1-212-555-0101", "1234",
     "gw.example.com", ML_SIP_HOST_NAME, 0, "user=phone", ""},
    {"sip:odd_user.name~(yes!)&more+$/x?,/;;*:pa&ss=w0rd,x!*$~_.(y)@example.net", 1, ML_SIP_URI_SIP,
     "odd_user.name~(yes!)&more+$/x?,/;;*", "pa&ss=w0rd,x!*$~_.(y)", "example.net", ML_SIP_HOST_NAME, 0, "",
     ""},
    {"sip:dave@example.org;lr;x-flag;x-val=a%20b?Subject=hi%20there&Priority=urgent", 1, ML_SIP_URI_SIP,
     "dave", "", "example.org", ML_SIP_HOST_NAME, 0, "lr;x-flag;x-val=a%20b",
     "Subject=hi%20there&Priority=urgent"},
    {"sip:null-%00-null@example.com", 1, ML_SIP_URI_SIP, "null-%00-null", "", "example.com", ML_SIP_HOST_NAME,
     0, "", ""},
    {"sip:a@b:65535", 1, ML_SIP_URI_SIP, "a", "", "b", ML_SIP_HOST_NAME, 65535, "", ""},
    {"sip:a:@example.com", 1, ML_SIP_URI_SIP, "a", "", "example.com", ML_SIP_HOST_NAME, 0, "", ""},
    {"tel:+1-201-555-0123;ext=1234;phone-context=example.com", 1, ML_SIP_URI_TEL, "+1-201-555-0123", "", "",
     ML_SIP_HOST_NONE, 0, "ext=1234;phone-context=example.com", ""},
    {"tel:7042;phone-context=example.com", 1, ML_SIP_URI_TEL, "7042", "", "", ML_SIP_HOST_NONE, 0,
     "phone-context=example.com", ""},
    {"tel:*67#", 1, ML_SIP_URI_TEL, "*67#", "", "", ML_SIP_HOST_NONE, 0, "", ""},
    {"nobodyknowsthisscheme:totallyopaquecontent", 1, ML_SIP_URI_OTHER, "", "", "", ML_SIP_HOST_NONE, 0, "",
     ""},
    {"soap.beep://192.0.2.103:3002", 1, ML_SIP_URI_OTHER, "", "", "", ML_SIP_HOST_NONE, 0, "", ""},
    {"urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", 1, ML_SIP_URI_OTHER, "", "", "", ML_SIP_HOST_NONE, 0,
     "", ""},
    /* malformed */
    {"", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:@example.com", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@example.com:", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@example.com:0", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@example.com:65536", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@example.com:506000", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@example.com;", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@example.com;;lr", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@example.com;a=", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@example.com?", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@example.com?novalue", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@exa mple.com", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@example.com ", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:al ice@example.com", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:al%4ice@example.com", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice%@example.com", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@-example.com", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@example-.com", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@example..com", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@under_score.com", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@1.2.3", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@1.2.3.256", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@example.123", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@[2001:db8::1", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@2001:db8::1", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@[2001:db8::1::2]", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@[1:2:3:4:5:6:7:8:9]", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@[12345::1]", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@[:1]", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@[1:]", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@[]", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@[example.com]", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"<sip:alice@example.com>", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"sip:alice@example.com>", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"alice@example.com", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"1sip:alice@example.com", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"tel:", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"tel:+", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"tel:--", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"tel:12 34", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"tel:123;", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"tel:1+2", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"urn:", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"urn:a b", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
    {"urn:a\"b", 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL},
};

static void test_uri(void)
{
  TEST_BEGIN("uri");
  int bad = 0;
  for (size_t i = 0; i < sizeof uri_cases / sizeof uri_cases[0]; i++) {
    const uri_case *c = &uri_cases[i];
    ml_sip_uri u;
    ml_str in = ml_str_c(c->in);
    int rc = ml_sip_parse_uri(in, &u);
    int ok = (rc == 0) == c->ok;
    if (ok && c->ok) {
      ok = u.scheme == c->scheme && strcmp(z(u.user), c->user) == 0 &&
           strcmp(z(u.password), c->password) == 0 && strcmp(z(u.host), c->host) == 0 &&
           u.host_type == c->host_type && u.port == c->port && strcmp(z(u.params), c->params) == 0 &&
           strcmp(z(u.headers), c->headers) == 0 && ml_str_eq(u.text, in) && inside(u.user, in) &&
           inside(u.host, in) && inside(u.params, in) && inside(u.headers, in);
    }
    if (!ok) {
      bad++;
      fprintf(
          stderr,
          "uri case %zu \"%s\": rc %d, user \"%s\" password \"%s\" host \"%s\" (%d) port %d params \"%s\" "
          "headers \"%s\"\n",
          i, c->in, rc, z(u.user), z(u.password), z(u.host), u.host_type, u.port, z(u.params), z(u.headers));
    }
  }
  CHECK_EQ(bad, 0);

  /* scheme names are case-insensitive and kept as written */
  ml_sip_uri u;
  CHECK_EQ(ml_sip_parse_uri(ml_str_c("SiPs:x@example.com"), &u), 0);
  CHECK_EQ(u.scheme, ML_SIP_URI_SIPS);
  CHECK_STR(z(u.scheme_name), "SiPs");
  /* a view does not need a NUL after it: parse a prefix of a longer buffer */
  const char *longer = "sip:alice@example.com;lr>trailing";
  CHECK_EQ(ml_sip_parse_uri(ml_str_make(longer, 24), &u), 0);
  CHECK_STR(z(u.params), "lr");
  CHECK_EQ(ml_sip_parse_uri(ML_STR_NULL, &u), -1);
}

/* ---- parameters ------------------------------------------------------------ */

static void test_params(void)
{
  TEST_BEGIN("params");
  ml_str v;
  ml_str p = ml_str_c("transport=tcp;lr;maddr=[2001:db8::1];X-Odd=\"a;b,c\" ; spaced = value");
  CHECK_EQ(ml_sip_param(p, "transport", &v), 1);
  CHECK_STR(z(v), "tcp");
  /* a flag: found, with an empty view that still points into the list */
  CHECK_EQ(ml_sip_param(p, "lr", &v), 1);
  CHECK_EQ(v.n, 0);
  CHECK(v.p != NULL && inside(v, p));
  CHECK_EQ(ml_sip_param(p, "LR", &v), 1);
  CHECK_EQ(ml_sip_param(p, "maddr", &v), 1);
  CHECK_STR(z(v), "[2001:db8::1]");
  CHECK_EQ(ml_sip_param(p, "x-odd", &v), 1);
  CHECK_STR(z(v), "\"a;b,c\"");
  CHECK_STR(z(ml_sip_unquote(v)), "a;b,c");
  CHECK_EQ(ml_sip_param(p, "spaced", &v), 1);
  CHECK_STR(z(v), "value");
  CHECK_EQ(ml_sip_param(p, "l", &v), 0);
  CHECK_EQ(ml_sip_param(p, "transpor", &v), 0);
  /* a leading ';' is fine, as in a Via or name-addr tail */
  CHECK_EQ(ml_sip_param(ml_str_c(";tag=abc"), "tag", &v), 1);
  CHECK_STR(z(v), "abc");
  CHECK_EQ(ml_sip_param(ML_STR_NULL, "tag", &v), 0);

  /* iteration, and what it rejects */
  ml_str rest = ml_str_c("a=1;b;c=\"x y\""), n;
  int count = 0;
  while (ml_sip_param_next(&rest, &n, &v) == 1) count++;
  CHECK_EQ(count, 3);
  static const char *const bad[] = {";;a", "a;;b", "a;", "a=", "a=\"open", "a b", "=x", "a=b c"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc;
    rest = ml_str_c(bad[i]);
    while ((rc = ml_sip_param_next(&rest, &n, &v)) == 1) {
    }
    if (rc != -1) fprintf(stderr, "param list \"%s\" not rejected\n", bad[i]);
    CHECK_EQ(rc, -1);
  }

  /* URI headers */
  ml_str h = ml_str_c("Subject=hi&Replaces=abc%40host%3Bto-tag%3D1&empty=");
  CHECK_EQ(ml_sip_uri_header(h, "replaces", &v), 1);
  CHECK_STR(z(v), "abc%40host%3Bto-tag%3D1");
  CHECK_EQ(ml_sip_uri_header(h, "empty", &v), 1);
  CHECK_EQ(v.n, 0);
  CHECK_EQ(ml_sip_uri_header(h, "Priority", &v), 0);
  CHECK_EQ(ml_sip_uri_header(ML_STR_NULL, "x", &v), 0);
}

/* ---- name-addr ------------------------------------------------------------- */

typedef struct na_case {
  const char *in;
  int ok;
  const char *display, *uri, *params, *tag;
  int bracketed;
} na_case;

static const na_case na_cases[] = {
    {"<sip:alice@example.com>", 1, "", "sip:alice@example.com", "", "", 1},
    {"\"Alice\" <sip:alice@example.com>;tag=88sja8x", 1, "\"Alice\"", "sip:alice@example.com", "tag=88sja8x",
     "88sja8x", 1},
    /* no LWS between a quoted display name and '<' (RFC 4475 §3.1.1.6) */
    {"\"caller\"<sip:caller@example.com>;tag=323", 1, "\"caller\"", "sip:caller@example.com", "tag=323",
     "323", 1},
    {"caller<sip:caller@example.com>", 1, "caller", "sip:caller@example.com", "", "", 1},
    {"Alice  Liddell\t<sip:alice@example.com> ; tag = x1 ; foo", 1, "Alice  Liddell", "sip:alice@example.com",
     "tag = x1 ; foo", "x1", 1},
    {"\"Bob \\\"the builder\\\" \\\\ B\" <sip:bob@example.org;transport=udp>;tag=9", 1,
     "\"Bob \\\"the builder\\\" \\\\ B\"", "sip:bob@example.org;transport=udp", "tag=9", "9", 1},
    /* a bare URI: its ';' params are header params */
    {"sip:bob@example.org;tag=1928301774", 1, "", "sip:bob@example.org", "tag=1928301774", "1928301774", 0},
    {"sip:bob@example.org ;tag=abc", 1, "", "sip:bob@example.org", "tag=abc", "abc", 0},
    {"  sip:bob@example.org  ", 1, "", "sip:bob@example.org", "", "", 0},
    {"<sip:user;par=u%40example.net@example.com>", 1, "", "sip:user;par=u%40example.net@example.com", "", "",
     1},
    {"<sip:user@example.com?Route=%3Csip:sip.example.com%3E>", 1, "",
     "sip:user@example.com?Route=%3Csip:sip.example.com%3E", "", "", 1},
    {"<nobodyknowsthisscheme:totallyopaquecontent>;tag=z", 1, "",
     "nobodyknowsthisscheme:totallyopaquecontent", "tag=z", "z", 1},
    {"tel:+15551234;tag=t", 1, "", "tel:+15551234", "tag=t", "t", 0},
    {"\"\" <sip:anon@anonymous.invalid>", 1, "\"\"", "sip:anon@anonymous.invalid", "", "", 1},
    {"<sip:a@example.com>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\";expires=60", 1,
     "", "sip:a@example.com", "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\";expires=60",
     "", 1},
    {"\"\xc3\x89milie \xe9\" <sip:emilie@example.fr>", 1, "\"\xc3\x89milie \xe9\"", "sip:emilie@example.fr",
     "", "", 1},
    /* malformed */
    {"", 0, NULL, NULL, NULL, NULL, 0},
    {"\"Alice <sip:alice@example.com>", 0, NULL, NULL, NULL, NULL, 0},
    {"< sip:alice@example.com>", 0, NULL, NULL, NULL, NULL, 0},
    {"<sip:alice@example.com >", 0, NULL, NULL, NULL, NULL, 0},
    {"<sip:alice@example.com", 0, NULL, NULL, NULL, NULL, 0},
    {"Bell, Alexander <sip:a.g.bell@example.com>", 0, NULL, NULL, NULL, NULL, 0},
    {"sip:user@example.com?Route=%3Csip:sip.example.com%3E", 0, NULL, NULL, NULL, NULL, 0},
    {"<sip:a@example.com>;;tag=1", 0, NULL, NULL, NULL, NULL, 0},
    {"<sip:a@example.com>;tag=1;", 0, NULL, NULL, NULL, NULL, 0},
    /* a tag without a value, or two tags (found by fuzz_sip: a To of
     * "<sip:bob@example.com>;tag;tag=b1" read as untagged) */
    {"<sip:a@example.com>;tag", 0, NULL, NULL, NULL, NULL, 0},
    {"<sip:a@example.com>;tag;tag=b1", 0, NULL, NULL, NULL, NULL, 0},
    {"<sip:a@example.com>;tag=a1;TAG=b1", 0, NULL, NULL, NULL, NULL, 0},
    {"<sip:a@example.com> junk", 0, NULL, NULL, NULL, NULL, 0},
    {"<sip:a@example.com>>", 0, NULL, NULL, NULL, NULL, 0},
    {"sip:a@example.com, sip:b@example.com", 0, NULL, NULL, NULL, NULL, 0},
    {"\"Alice\" sip:alice@example.com", 0, NULL, NULL, NULL, NULL, 0},
    {"Alice", 0, NULL, NULL, NULL, NULL, 0},
    {"<>", 0, NULL, NULL, NULL, NULL, 0},
    {"<sip:>", 0, NULL, NULL, NULL, NULL, 0},
};

static void test_name_addr(void)
{
  TEST_BEGIN("name_addr");
  int bad = 0;
  for (size_t i = 0; i < sizeof na_cases / sizeof na_cases[0]; i++) {
    const na_case *c = &na_cases[i];
    ml_sip_name_addr na;
    ml_str in = ml_str_c(c->in);
    int rc = ml_sip_parse_name_addr(in, &na);
    int ok = (rc == 0) == c->ok;
    if (ok && c->ok) {
      ok = strcmp(z(na.display), c->display) == 0 && strcmp(z(na.uri.text), c->uri) == 0 &&
           strcmp(z(na.params), c->params) == 0 && strcmp(z(na.tag), c->tag) == 0 &&
           na.bracketed == c->bracketed && inside(na.display, in) && inside(na.uri.text, in) &&
           inside(na.params, in) && inside(na.tag, in);
    }
    if (!ok) {
      bad++;
      fprintf(stderr,
              "name-addr case %zu \"%s\": rc %d display \"%s\" uri \"%s\" params \"%s\" tag \"%s\" <%d>\n", i,
              c->in, rc, z(na.display), z(na.uri.text), z(na.params), z(na.tag), na.bracketed);
    }
  }
  CHECK_EQ(bad, 0);

  ml_sip_name_addr na;
  CHECK_EQ(ml_sip_parse_name_addr(ml_str_c("\"A\" <sips:a@[2001:db8::5]:5061;transport=tls>"), &na), 0);
  CHECK_EQ(na.uri.scheme, ML_SIP_URI_SIPS);
  CHECK_EQ(na.uri.host_type, ML_SIP_HOST_IPV6);
  CHECK_STR(z(na.uri.host), "2001:db8::5");
  CHECK_EQ(na.uri.port, 5061);
  /* folded, as the message parser hands it over */
  CHECK_EQ(
      ml_sip_parse_name_addr(ml_str_c("\"Bob\"\r\n  <sip:bob@example.org>\r\n\t;\r\n  tag = 19283"), &na), 0);
  CHECK_STR(z(na.tag), "19283");
}

/* ---- Via ------------------------------------------------------------------- */

typedef struct via_case {
  const char *in;
  int ok;
  ml_sip_transport tp;
  const char *transport, *host;
  ml_sip_host_type host_type;
  int port;
  const char *branch, *received, *maddr;
  int rport, ttl;
} via_case;

static const via_case via_cases[] = {
    {"SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds", 1, ML_SIP_TP_UDP, "UDP", "pc33.example.com",
     ML_SIP_HOST_NAME, 0, "z9hG4bK776asdhds", "", "", -1, -1},
    {"SIP/2.0/TCP 192.0.2.1:5070;branch=z9hG4bKx;rport", 1, ML_SIP_TP_TCP, "TCP", "192.0.2.1",
     ML_SIP_HOST_IPV4, 5070, "z9hG4bKx", "", "", 0, -1},
    {"SIP/2.0/UDP 192.0.2.1;rport=5061;received=198.51.100.7;branch=z9hG4bKy", 1, ML_SIP_TP_UDP, "UDP",
     "192.0.2.1", ML_SIP_HOST_IPV4, 0, "z9hG4bKy", "198.51.100.7", "", 5061, -1},
    {"SIP/2.0/TLS [2001:db8::9]:5061;branch=z9hG4bKv6;received=2001:db8::10", 1, ML_SIP_TP_TLS, "TLS",
     "2001:db8::9", ML_SIP_HOST_IPV6, 5061, "z9hG4bKv6", "2001:db8::10", "", -1, -1},
    {"SIP/2.0/UDP [::1];received=[::2];branch=b", 1, ML_SIP_TP_UDP, "UDP", "::1", ML_SIP_HOST_IPV6, 0, "b",
     "[::2]", "", -1, -1},
    {"sip / 2.0 / udp\r\n   host.example.com : 5062 ; branch = z9hG4bKws ; ttl=16;maddr=224.2.0.1", 1,
     ML_SIP_TP_UDP, "udp", "host.example.com", ML_SIP_HOST_NAME, 5062, "z9hG4bKws", "", "224.2.0.1", -1, 16},
    {"SIP/2.0/SCTP sctp.example.com;branch=s", 1, ML_SIP_TP_SCTP, "SCTP", "sctp.example.com",
     ML_SIP_HOST_NAME, 0, "s", "", "", -1, -1},
    {"SIP/2.0/WSS ws.example.com;branch=w", 1, ML_SIP_TP_WSS, "WSS", "ws.example.com", ML_SIP_HOST_NAME, 0,
     "w", "", "", -1, -1},
    {"SIP/2.0/UNKNOWN unknown.example.com;branch=u", 1, ML_SIP_TP_OTHER, "UNKNOWN", "unknown.example.com",
     ML_SIP_HOST_NAME, 0, "u", "", "", -1, -1},
    /* RFC 2543 peers send no branch */
    {"SIP/2.0/UDP old.example.com", 1, ML_SIP_TP_UDP, "UDP", "old.example.com", ML_SIP_HOST_NAME, 0, "", "",
     "", -1, -1},
    {"SIP/2.0/UDP 192.0.2.15;received=255.255.255.255;branch=z9hG4bKbc;x-ext=\"quoted;value\"", 1,
     ML_SIP_TP_UDP, "UDP", "192.0.2.15", ML_SIP_HOST_IPV4, 0, "z9hG4bKbc", "255.255.255.255", "", -1, -1},
    /* malformed */
    {"", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/2.0/UDP", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/2.0/UDP ", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/2.0/UDPhost", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/3.0/UDP host", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"HTTP/2.0/UDP host", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/2.0 host", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/2.0/ host", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/2.0/UDP 192.0.2.15;;", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/2.0/UDP 192.0.2.15;", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/2.0/UDP host:0", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/2.0/UDP host:99999", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/2.0/UDP host;branch", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/2.0/UDP host;branch=a;branch=b", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/2.0/UDP host;rport=0", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/2.0/UDP host;rport=x", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/2.0/UDP host;received=example.com", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/2.0/UDP host;ttl=256", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/2.0/UDP host junk", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/2.0/UDP [2001:db8::1", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
    {"SIP/2.0/UDP host, SIP/2.0/UDP other", 0, 0, NULL, NULL, 0, 0, NULL, NULL, NULL, 0, 0},
};

static void test_via(void)
{
  TEST_BEGIN("via");
  int bad = 0;
  for (size_t i = 0; i < sizeof via_cases / sizeof via_cases[0]; i++) {
    const via_case *c = &via_cases[i];
    ml_sip_via v;
    ml_str in = ml_str_c(c->in);
    int rc = ml_sip_parse_via(in, &v);
    int ok = (rc == 0) == c->ok;
    if (ok && c->ok) {
      ok = v.transport == c->tp && strcmp(z(v.transport_name), c->transport) == 0 &&
           strcmp(z(v.host), c->host) == 0 && v.host_type == c->host_type && v.port == c->port &&
           strcmp(z(v.branch), c->branch) == 0 && strcmp(z(v.received), c->received) == 0 &&
           strcmp(z(v.maddr), c->maddr) == 0 && v.rport == c->rport && v.ttl == c->ttl &&
           inside(v.host, in) && inside(v.branch, in) && inside(v.params, in);
    }
    if (!ok) {
      bad++;
      fprintf(stderr,
              "via case %zu \"%s\": rc %d tp %d \"%s\" host \"%s\" port %d branch \"%s\" received \"%s\" "
              "rport %d\n",
              i, c->in, rc, v.transport, z(v.transport_name), z(v.host), v.port, z(v.branch), z(v.received),
              v.rport);
    }
  }
  CHECK_EQ(bad, 0);
}

/* ---- CSeq, split, helpers -------------------------------------------------- */

static void test_cseq(void)
{
  TEST_BEGIN("cseq");
  uint32_t seq = 0;
  ml_str method;
  CHECK_EQ(ml_sip_parse_cseq(ml_str_c("4711 INVITE"), &seq, &method), 0);
  CHECK_EQ(seq, 4711);
  CHECK_STR(z(method), "INVITE");
  CHECK_EQ(ml_sip_parse_cseq(ml_str_c("  0009\r\n  INVITE  "), &seq, &method), 0);
  CHECK_EQ(seq, 9);
  CHECK_EQ(ml_sip_parse_cseq(ml_str_c("2147483647 NEWMETHOD"), &seq, &method), 0);
  CHECK_EQ(seq, 2147483647u);
  CHECK_EQ(ml_sip_parse_cseq(ml_str_c("0 ACK"), &seq, &method), 0);
  static const char *const bad[] = {
      "",
      "INVITE",
      "1",
      "1INVITE",
      "2147483648 INVITE",
      "36893488147419103232 INVITE",
      "-1 INVITE",
      "+1 INVITE",
      "1 INVITE BYE",
      "1 INV ITE",
      "1.5 INVITE",
      "1 <INVITE>",
      "0x10 INVITE",
  };
  int fails = 0;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (ml_sip_parse_cseq(ml_str_c(bad[i]), &seq, &method) != -1) {
      fails++;
      fprintf(stderr, "cseq \"%s\" not rejected\n", bad[i]);
    }
  }
  CHECK_EQ(fails, 0);
  CHECK_EQ(ml_sip_parse_cseq(ML_STR_NULL, &seq, &method), -1);
}

static void test_split(void)
{
  TEST_BEGIN("split");
  ml_str rest = ml_str_c(
             " \"Doe, John\" <sip:j@example.com;a=b,c>;q=0.5 ,sip:k@example.com,\r\n <sip:l@x.com> "),
         v;
  const char *want[] = {"\"Doe, John\" <sip:j@example.com;a=b,c>;q=0.5", "sip:k@example.com",
                        "<sip:l@x.com>"};
  int i = 0, rc;
  while ((rc = ml_sip_split(&rest, &v)) == 1) {
    if (i < 3) CHECK_STR(z(v), want[i]);
    i++;
  }
  CHECK_EQ(rc, 0);
  CHECK_EQ(i, 3);
  static const char *const bad[] = {",a", "a,", "a,,b", "a, ,b", "\"open", "<sip:x", "<a<b>>", " , "};
  int fails = 0;
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    rest = ml_str_c(bad[k]);
    while ((rc = ml_sip_split(&rest, &v)) == 1) {
    }
    if (rc != -1) {
      fails++;
      fprintf(stderr, "list \"%s\" not rejected\n", bad[k]);
    }
  }
  CHECK_EQ(fails, 0);
  rest = ml_str_c("   ");
  CHECK_EQ(ml_sip_split(&rest, &v), 0);
  rest = ML_STR_NULL;
  CHECK_EQ(ml_sip_split(&rest, &v), 0);
}

static void test_helpers(void)
{
  TEST_BEGIN("helpers");
  char out[64];
  CHECK_EQ(ml_sip_unescape(ml_str_c("sips%3Auser%40example.com"), out, sizeof out), 21);
  CHECK(memcmp(out, "sips:user@example.com", 21) == 0);
  long n = ml_sip_unescape(ml_str_c("null-%00-null"), out, sizeof out);
  CHECK_EQ(n, 11);
  CHECK(memcmp(out, "null-\0-null", 11) == 0);
  CHECK_EQ(ml_sip_unescape(ml_str_c("%4"), out, sizeof out), -1);
  CHECK_EQ(ml_sip_unescape(ml_str_c("%zz"), out, sizeof out), -1);
  CHECK_EQ(ml_sip_unescape(ml_str_c("abcdef"), out, 3), -1);
  CHECK_EQ(ml_sip_unescape(ML_STR_NULL, out, 0), 0);

  size_t len = ml_sip_unfold(ml_str_c("a\r\n b \r\n\t c"), out, sizeof out);
  CHECK_EQ(len, 5);
  CHECK(memcmp(out, "a b c", 5) == 0);
  /* the length does not depend on the room given */
  CHECK_EQ(ml_sip_unfold(ml_str_c("a\r\n b \r\n\t c"), out, 2), 5);
  CHECK_EQ(ml_sip_unfold(ml_str_c("plain"), out, sizeof out), 5);

  CHECK_STR(z(ml_sip_unquote(ml_str_c("\"x\""))), "x");
  CHECK_STR(z(ml_sip_unquote(ml_str_c("token"))), "token");
  CHECK_STR(z(ml_sip_unquote(ml_str_c("\""))), "\"");

  CHECK_EQ(ml_sip_method_lookup(ml_str_c("INVITE")), ML_SIP_INVITE);
  CHECK_EQ(ml_sip_method_lookup(ml_str_c("SUBSCRIBE")), ML_SIP_SUBSCRIBE);
  CHECK_EQ(ml_sip_method_lookup(ml_str_c("invite")), ML_SIP_OTHER); /* case-sensitive */
  CHECK_EQ(ml_sip_method_lookup(ml_str_c("INVITEX")), ML_SIP_OTHER);
  CHECK_STR(ml_sip_method_name(ML_SIP_PRACK), "PRACK");
  CHECK_STR(ml_sip_method_name(ML_SIP_OTHER), "");

  CHECK_STR(ml_sip_reason(180), "Ringing");
  CHECK_STR(ml_sip_reason(481), "Call/Transaction Does Not Exist");
  CHECK_STR(ml_sip_reason(499), "Client Error");
  CHECK_STR(ml_sip_reason(42), "Unknown");
}

/* every compact form, and full names in any case */
static void test_header_names(void)
{
  TEST_BEGIN("header_names");
  static const struct {
    const char *name;
    ml_sip_hdr_id id;
  } names[] = {
      {"i", ML_SIP_H_CALL_ID},
      {"m", ML_SIP_H_CONTACT},
      {"e", ML_SIP_H_CONTENT_ENCODING},
      {"l", ML_SIP_H_CONTENT_LENGTH},
      {"c", ML_SIP_H_CONTENT_TYPE},
      {"f", ML_SIP_H_FROM},
      {"s", ML_SIP_H_SUBJECT},
      {"k", ML_SIP_H_SUPPORTED},
      {"t", ML_SIP_H_TO},
      {"v", ML_SIP_H_VIA},
      {"r", ML_SIP_H_REFER_TO},
      {"b", ML_SIP_H_REFERRED_BY},
      {"o", ML_SIP_H_EVENT},
      {"u", ML_SIP_H_ALLOW_EVENTS},
      {"x", ML_SIP_H_SESSION_EXPIRES},
      {"y", ML_SIP_H_IDENTITY},
      {"a", ML_SIP_H_ACCEPT_CONTACT},
      {"j", ML_SIP_H_REJECT_CONTACT},
      {"d", ML_SIP_H_REQUEST_DISPOSITION},
      {"n", ML_SIP_H_IDENTITY_INFO},
      {"I", ML_SIP_H_CALL_ID},
      {"V", ML_SIP_H_VIA},
      {"call-id", ML_SIP_H_CALL_ID},
      {"CALL-ID", ML_SIP_H_CALL_ID},
      {"cSeQ", ML_SIP_H_CSEQ},
      {"www-authenticate", ML_SIP_H_WWW_AUTHENTICATE},
      {"Record-Route", ML_SIP_H_RECORD_ROUTE},
      {"Route", ML_SIP_H_ROUTE},
      {"subscription-state", ML_SIP_H_SUBSCRIPTION_STATE},
      {"Session-Expires", ML_SIP_H_SESSION_EXPIRES},
      {"User-Agent", ML_SIP_H_USER_AGENT},
      {"g", ML_SIP_H_OTHER},
      {"z", ML_SIP_H_OTHER},
      {"Via2", ML_SIP_H_OTHER},
      {"X-Custom", ML_SIP_H_OTHER},
      {"", ML_SIP_H_OTHER},
  };
  int bad = 0;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (ml_sip_hdr_lookup(ml_str_c(names[i].name)) != names[i].id) {
      bad++;
      fprintf(stderr, "header name \"%s\": got %d\n", names[i].name,
              ml_sip_hdr_lookup(ml_str_c(names[i].name)));
    }
  }
  CHECK_EQ(bad, 0);
  CHECK_EQ(ml_sip_hdr_lookup(ml_str_make("\0", 1)), ML_SIP_H_OTHER);
  /* every id's canonical name maps back to it */
  int back = 0;
  for (int id = 1; id < ML_SIP_H__COUNT; id++)
    if ((int)ml_sip_hdr_lookup(ml_str_c(ml_sip_hdr_name((ml_sip_hdr_id)id))) != id) back++;
  CHECK_EQ(back, 0);
  CHECK_STR(ml_sip_hdr_name(ML_SIP_H_CALL_ID), "Call-ID");
}

int main(void)
{
  test_uri();
  test_params();
  test_name_addr();
  test_via();
  test_cseq();
  test_split();
  test_helpers();
  test_header_names();
  return ML_TEST_DONE("test_sip_uri");
}
