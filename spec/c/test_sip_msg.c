/* The SIP message layer (engine/sip/sip_msg.c, sip_build.c): a torture
 * suite in the spirit of RFC 4475 — our own messages, one or more per point
 * of the RFC — then Content-Length handling, limits, the builder (every
 * response must parse back), stream framing, and the parse speed. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ml_test.h"
#include "sip_msg.h"

static ml_sip_msg M;
static char B[96 * 1024]; /* messages built at run time */
static char OUT[96 * 1024]; /* builder output */

/* a view as a C string, for CHECK_STR (a few rotating buffers) */
static const char *z(ml_str v)
{
  static char bufs[8][16 * 1024];
  static int next;
  char *b = bufs[next++ % 8];
  if (!v.p) return "";
  size_t n = v.n < sizeof bufs[0] - 1 ? v.n : sizeof bufs[0] - 1;
  memcpy(b, v.p, n);
  b[n] = 0;
  return b;
}

static int in_buf(ml_str v, const char *buf, size_t len)
{
  return v.n == 0 || (v.p >= buf && v.p + v.n <= buf + len);
}

/* every view of a parsed message lies inside the parsed buffer */
static int views_inside(const ml_sip_msg *m, const char *buf, size_t len)
{
  int ok = in_buf(m->method_name, buf, len) && in_buf(m->ruri.text, buf, len) &&
           in_buf(m->reason, buf, len) && in_buf(m->call_id, buf, len) && in_buf(m->body, buf, len) &&
           in_buf(m->from.tag, buf, len) && in_buf(m->to.tag, buf, len) && in_buf(m->via0.branch, buf, len) &&
           in_buf(m->content_type, buf, len);
  for (unsigned i = 0; i < m->n_headers; i++)
    ok = ok && in_buf(m->headers[i].name, buf, len) && in_buf(m->headers[i].value, buf, len);
  for (unsigned i = 0; i < m->n_via; i++) ok = ok && in_buf(m->via[i], buf, len);
  for (unsigned i = 0; i < m->n_contact; i++) ok = ok && in_buf(m->contact[i], buf, len);
  return ok;
}

static int accepts(const char *name, const char *buf, size_t len, int flags)
{
  int rc = ml_sip_parse(&M, buf, len, flags);
  if (rc != 0)
    fprintf(stderr, "  %s: rejected with %d (%s)\n", name, rc, M.err.detail);
  else if (!views_inside(&M, buf, len))
    fprintf(stderr, "  %s: a view points outside the message\n", name);
  return rc == 0 && views_inside(&M, buf, len);
}

/* rejected with that code, and a detail containing `detail` (if not NULL) */
static int rejects(const char *name, const char *buf, size_t len, int flags, int code, const char *detail)
{
  int rc = ml_sip_parse(&M, buf, len, flags);
  int ok = rc == code && M.err.code == code && M.err.reason && M.err.detail &&
           (!detail || strstr(M.err.detail, detail));
  if (!ok)
    fprintf(stderr, "  %s: got %d (%s), wanted %d (%s)\n", name, rc, M.err.detail ? M.err.detail : "-", code,
            detail ? detail : "-");
  return ok;
}

#define ACCEPTS(lit, flags) accepts(#lit, (lit), sizeof(lit) - 1, (flags))
#define REJECTS(lit, code, detail) rejects(#lit, (lit), sizeof(lit) - 1, ML_SIP_UDP, (code), (detail))

/* head lines (each with CRLF, no Content-Length), then Content-Length, the empty line, the body */
static size_t msg_make_to(char *out, size_t cap, const char *head, const char *body)
{
  return (size_t)snprintf(out, cap, "%sContent-Length: %zu\r\n\r\n%s", head, strlen(body), body);
}

static size_t msg_make(const char *head, const char *body) { return msg_make_to(B, sizeof B, head, body); }

static const char SDP[] = "v=0\r\n"
                          "o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\n"
                          "s=-\r\n"
                          "c=IN IP4 192.0.2.101\r\n"
                          "t=0 0\r\n"
                          "m=audio 49170 RTP/AVP 0 8 101\r\n"
                          "a=rtpmap:0 PCMU/8000\r\n"
                          "a=rtpmap:8 PCMA/8000\r\n"
                          "a=rtpmap:101 telephone-event/8000\r\n"
                          "a=fmtp:101 0-16\r\n"
                          "a=ptime:20\r\n"
                          "a=sendrecv\r\n";

static const char INVITE_HEAD[] =
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK74bf9;rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: \"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    "To: \"Bob\" <sip:bob@biloxi.example.com>\r\n"
    "Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:alice@192.0.2.101:5060;transport=udp>\r\n"
    "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY\r\n"
    "Supported: replaces, timer\r\n"
    "User-Agent: moonline-test/0.1\r\n"
    "Content-Type: application/sdp\r\n";

/* ---- a typical INVITE, every accessor -------------------------------------- */

static void test_typical(void)
{
  TEST_BEGIN("typical");
  size_t len = msg_make(INVITE_HEAD, SDP);
  CHECK(accepts("typical INVITE", B, len, ML_SIP_UDP));
  CHECK_EQ(M.is_request, 1);
  CHECK_EQ(M.method, ML_SIP_INVITE);
  CHECK_STR(z(M.method_name), "INVITE");
  CHECK_STR(z(M.ruri.text), "sip:bob@biloxi.example.com");
  CHECK_STR(z(M.ruri.user), "bob");
  CHECK_EQ(M.n_via, 1);
  CHECK_STR(z(M.via0.branch), "z9hG4bK74bf9");
  CHECK_EQ(M.via0.rport, 0);
  CHECK_EQ(M.via0.port, 5060);
  CHECK_EQ(M.via0.transport, ML_SIP_TP_UDP);
  CHECK_STR(z(M.from.display), "\"Alice\"");
  CHECK_STR(z(M.from.tag), "9fxced76sl");
  CHECK_EQ(M.to.tag.n, 0);
  CHECK_STR(z(M.to.uri.host), "biloxi.example.com");
  CHECK_STR(z(M.call_id), "3848276298220188511@atlanta.example.com");
  CHECK_EQ(M.cseq, 1);
  CHECK_EQ(M.cseq_method, ML_SIP_INVITE);
  CHECK_EQ(M.max_forwards, 70);
  CHECK_EQ(M.content_length, (long long)strlen(SDP));
  CHECK_STR(z(M.content_type), "application/sdp");
  CHECK_STR(z(M.body), SDP);
  CHECK_EQ(M.len, len);
  CHECK_EQ(M.n_contact, 1);
  CHECK_STR(z(M.contact[0]), "<sip:alice@192.0.2.101:5060;transport=udp>");
  CHECK_EQ(M.expires, -1);
  CHECK_EQ(M.n_headers, 12);
  CHECK_STR(z(M.headers[0].name), "Via");
  CHECK_STR(z(M.headers[11].name), "Content-Length");
  CHECK(ml_sip_header_has(&M, ML_SIP_H_SUPPORTED, "timer"));
  CHECK(ml_sip_header_has(&M, ML_SIP_H_SUPPORTED, "REPLACES"));
  CHECK(!ml_sip_header_has(&M, ML_SIP_H_SUPPORTED, "100rel"));
  CHECK(!ml_sip_header_has(&M, ML_SIP_H_REQUIRE, "timer"));
  CHECK(ml_sip_header_has(&M, ML_SIP_H_ALLOW, "REFER"));
  const ml_sip_header *h = ml_sip_header_get(&M, ML_SIP_H_USER_AGENT);
  CHECK(h && strcmp(z(h->value), "moonline-test/0.1") == 0);
  CHECK(h && ml_sip_header_next(&M, h) == NULL);
  CHECK(ml_sip_header_find(&M, ML_STR_LIT("user-agent")) == h);
  CHECK(ml_sip_header_find(&M, ML_STR_LIT("m")) == ml_sip_header_get(&M, ML_SIP_H_CONTACT));
  CHECK(ml_sip_header_find(&M, ML_STR_LIT("X-Nothing")) == NULL);
  CHECK(ml_sip_header_get(&M, ML_SIP_H_REQUIRE) == NULL);
  CHECK_EQ(ml_sip_can_respond(&M), 1);
  /* the same bytes framed as a stream message */
  CHECK(accepts("typical INVITE, stream", B, len, ML_SIP_STREAM));
}

/* ---- RFC 4475 §3.1.1: valid messages ---------------------------------------- */

/* §3.1.1.1: unusual but legal whitespace, folding in many places, compact
 * forms, mixed-case names, escaped quotes, params split across lines */
static void test_tortuous(void)
{
  TEST_BEGIN("tortuous");
  const char *body = "v=0\r\no=dan 53655765 2353687637 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\n"
                     "t=0 0\r\nm=audio 492 RTP/AVP 0\r\n";
  size_t len = (size_t)snprintf(B, sizeof B,
                                "INVITE sip:carol@chicago.example.com;unknownparam SIP/2.0\r\n"
                                "TO :\r\n"
                                " sip:carol@chicago.example.com ;   tag    = 1918181833n\r\n"
                                "fRoM   : \"Dan \\\"the \\\\ man\\\" D\"\r\n"
                                "\t <sip:dan@denver.example.org>\r\n"
                                "  ;\r\n"
                                "  tag = 98asjd8\r\n"
                                "MaX-fOrWaRdS: 0068\r\n"
                                "Call-ID: tortuous.8273.ndaksdj@192.0.2.1\r\n"
                                "Content-Length   : %zu\r\n"
                                "cseq: 0009\r\n"
                                "  INVITE\r\n"
                                "Via  : SIP  /   2.0\r\n"
                                " /UDP\r\n"
                                "    192.0.2.2;rport;branch=z9hG4bKtort1\r\n"
                                "s :\r\n"
                                "X-NewFangled:   some value\r\n"
                                " continued on the next line  \r\n"
                                "X-Unusual-Value: ;;,,;;,;\r\n"
                                "Content-Type: application/sdp\r\n"
                                "Route:\r\n"
                                " <sip:proxy.example.com;lr;unknownwith=value;unknown-no-value>\r\n"
                                "v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n"
                                "  branch  =   z9hG4bKtort2  ,\r\n"
                                " SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n"
                                " z9hG4bKtort3\r\n"
                                "m:\"Quoted \\\"\\\" string\" <sip:dan@denver.example.org> ; newparam =\r\n"
                                "      newvalue ;\r\n"
                                "  secondparam ; q = 0.33\r\n"
                                "\r\n%s",
                                strlen(body), body);
  CHECK(accepts("tortuous", B, len, ML_SIP_UDP));
  CHECK_EQ(M.n_via, 3);
  CHECK_STR(z(M.via0.host), "192.0.2.2");
  CHECK_STR(z(M.via0.branch), "z9hG4bKtort1");
  CHECK_EQ(M.via0.rport, 0);
  ml_sip_via v;
  CHECK(ml_sip_parse_via(M.via[1], &v) == 0 && v.transport == ML_SIP_TP_TCP);
  CHECK(ml_sip_parse_via(M.via[2], &v) == 0 && strcmp(z(v.branch), "z9hG4bKtort3") == 0);
  CHECK_STR(z(M.to.tag), "1918181833n");
  CHECK_STR(z(M.from.tag), "98asjd8");
  CHECK_STR(z(M.from.display), "\"Dan \\\"the \\\\ man\\\" D\"");
  CHECK_EQ(M.max_forwards, 68);
  CHECK_EQ(M.cseq, 9);
  CHECK_EQ(M.cseq_method, ML_SIP_INVITE);
  CHECK_STR(z(M.body), body);
  const ml_sip_header *h = ml_sip_header_get(&M, ML_SIP_H_SUBJECT);
  CHECK(h && h->value.n == 0);
  h = ml_sip_header_find(&M, ML_STR_LIT("x-newfangled"));
  char un[128];
  size_t n = h ? ml_sip_unfold(h->value, un, sizeof un) : 0;
  CHECK(n == 37 && memcmp(un, "some value continued on the next line", 37) == 0);
  CHECK_EQ(M.n_route, 1);
  CHECK_EQ(M.n_contact, 1);
  ml_sip_name_addr na;
  ml_str q;
  CHECK(ml_sip_parse_name_addr(M.contact[0], &na) == 0 && ml_sip_param(na.params, "q", &q) == 1 &&
        strcmp(z(q), "0.33") == 0);
  CHECK(ml_sip_param(na.params, "newparam", &q) == 1 && strcmp(z(q), "newvalue") == 0);
  CHECK(ml_sip_param(na.params, "secondparam", &q) == 1 && q.n == 0);
}

/* §3.1.1.2: every token character in a method, header names and params;
 * escaped control characters in a quoted display name; UTF-8 values */
static void test_wide_chars(void)
{
  TEST_BEGIN("wide_chars");
  static const char msg[] =
      "!odd-Method0123456789_*+`.%indeed'~ "
      "sip:odd_user.name~(yes!)&more+$/x?,/;;*:pa&ss=w0rd,x!*$~_.(y)@example.net:5060;lr;x-odd=v%20x;x-flag "
      "SIP/2.0\r\n"
      "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\r\n"
      "To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f end\" <sip:odd_user.name~(yes!)&more+$/x?,/;;*@example.net>\r\n"
      "From: word1~` word2'+_ word3*%!.- <sip:plain@example.com>;fromParam''~+*_!.-%="
      "\"\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82\";tag=_tok~1'+`*%!-.\r\n"
      "Call-ID: wide.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\r\n"
      "CSeq: 139122385 !odd-Method0123456789_*+`.%indeed'~\r\n"
      "Max-Forwards: 255\r\n"
      "X-Ext-!.%*+_`'~:\xef\xbb\xbf\xe6\x9c\x88\xe5\x85\x89\xe3\x81\xae\xe9\x81\x93\r\n"
      "Content-Length: 0\r\n"
      "\r\n";
  CHECK(ACCEPTS(msg, ML_SIP_UDP));
  CHECK_EQ(M.method, ML_SIP_OTHER);
  CHECK_STR(z(M.method_name), "!odd-Method0123456789_*+`.%indeed'~");
  CHECK_STR(z(M.ruri.user), "odd_user.name~(yes!)&more+$/x?,/;;*");
  CHECK_STR(z(M.ruri.password), "pa&ss=w0rd,x!*$~_.(y)");
  CHECK_STR(z(M.ruri.params), "lr;x-odd=v%20x;x-flag");
  CHECK_EQ(M.ruri.port, 5060);
  /* the escaped NUL survives in the display name view */
  CHECK_EQ(M.to.display.n, 26);
  CHECK(M.to.display.n == 26 && memcmp(M.to.display.p, "\"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f end\"", 26) == 0);
  CHECK_STR(z(M.from.display), "word1~` word2'+_ word3*%!.-");
  CHECK_STR(z(M.from.tag), "_tok~1'+`*%!-.");
  CHECK_STR(z(M.call_id), "wide.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
  CHECK_EQ(M.cseq, 139122385);
  CHECK_EQ(M.max_forwards, 255);
  CHECK_EQ(M.n_headers, 8);
  CHECK_STR(z(M.headers[6].name), "X-Ext-!.%*+_`'~");
  CHECK_EQ(M.headers[6].value.n, 15);
}

/* §3.1.1.3-5: %-escapes in URIs (valid ones, %00), and '%' where it is not
 * an escape (a method, a display name, a Call-ID, a header name) */
static void test_escapes(void)
{
  TEST_BEGIN("escapes");
  char out[64];
  size_t len = msg_make("INVITE sip:sips%3Acarol%40example.org@example.net SIP/2.0\r\n"
                        "To: sip:%63arol@example.net\r\n"
                        "From: <sip:I%20have%20spaces@example.net>;tag=938\r\n"
                        "Max-Forwards: 87\r\n"
                        "i: esc01.239409asdfakjkn23onasd0-3234\r\n"
                        "CSeq: 234234 INVITE\r\n"
                        "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw\r\n"
                        "C: application/sdp\r\n"
                        "Contact:\r\n"
                        "  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\r\n",
                        SDP);
  CHECK(accepts("esc01", B, len, ML_SIP_UDP));
  long n = ml_sip_unescape(M.ruri.user, out, sizeof out);
  CHECK(n == 22 && memcmp(out, "sips:carol@example.org", 22) == 0);
  n = ml_sip_unescape(M.to.uri.user, out, sizeof out);
  CHECK(n == 5 && memcmp(out, "carol", 5) == 0);
  n = ml_sip_unescape(M.from.uri.user, out, sizeof out);
  CHECK(n == 13 && memcmp(out, "I have spaces", 13) == 0);
  CHECK_STR(z(M.call_id), "esc01.239409asdfakjkn23onasd0-3234");
  CHECK_STR(z(M.content_type), "application/sdp");

  static const char escnull[] = "REGISTER sip:example.com SIP/2.0\r\n"
                                "To: sip:null-%00-null@example.com\r\n"
                                "From: sip:null-%00-null@example.com;tag=839923423\r\n"
                                "Max-Forwards: 70\r\n"
                                "Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd\r\n"
                                "CSeq: 14398234 REGISTER\r\n"
                                "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\r\n"
                                "Contact: <sip:%00@host5.example.com>\r\n"
                                "Contact: <sip:%00%00@host5.example.com>\r\n"
                                "L:0\r\n"
                                "\r\n";
  CHECK(ACCEPTS(escnull, ML_SIP_UDP));
  n = ml_sip_unescape(M.to.uri.user, out, sizeof out);
  CHECK(n == 11 && out[5] == 0 && memcmp(out, "null-\0-null", 11) == 0);
  CHECK_EQ(M.n_contact, 2);
  CHECK_EQ(M.content_length, 0);

  static const char esc02[] = "RE%47IST%45R sip:registrar.example.com SIP/2.0\r\n"
                              "To: \"%Z%45\" <sip:resource@example.com>\r\n"
                              "From: \"%Z%45\" <sip:resource@example.com>;tag=f232jadfj23\r\n"
                              "Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf\r\n"
                              "Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209823\r\n"
                              "CSeq: 29344 RE%47IST%45R\r\n"
                              "Max-Forwards: 70\r\n"
                              "Contact: <sip:alias1@host1.example.com>\r\n"
                              "C%6Fntact: <sip:alias2@host2.example.com>\r\n"
                              "Contact: <sip:alias3@host3.example.com>\r\n"
                              "l: 0\r\n"
                              "\r\n";
  CHECK(ACCEPTS(esc02, ML_SIP_UDP));
  CHECK_EQ(M.method, ML_SIP_OTHER); /* not REGISTER: methods are not unescaped */
  CHECK_EQ(M.n_contact, 2);
  CHECK_STR(z(M.to.display), "\"%Z%45\"");
  CHECK(ml_sip_header_find(&M, ML_STR_LIT("C%6Fntact")) != NULL);
}

/* §3.1.1.6: no LWS between the display name and '<' */
static void test_lws_display(void)
{
  TEST_BEGIN("lws_display");
  static const char msg[] = "OPTIONS sip:user@example.com SIP/2.0\r\n"
                            "To: sip:user@example.com\r\n"
                            "From: \"caller\"<sip:caller@example.com>;tag=323\r\n"
                            "Max-Forwards: 70\r\n"
                            "Call-ID: lwsdisp.1234abcd@funky.example.com\r\n"
                            "CSeq: 60 OPTIONS\r\n"
                            "Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\r\n"
                            "l: 0\r\n"
                            "\r\n";
  CHECK(ACCEPTS(msg, ML_SIP_UDP));
  CHECK_STR(z(M.from.display), "\"caller\"");
  CHECK_STR(z(M.from.tag), "323");
  CHECK_EQ(M.to.bracketed, 0);
}

/* §3.1.1.7: long values everywhere: URI user, display name, tag, Call-ID,
 * branches, a long header name, a ~7 KB value, many Vias and headers */
static size_t long_message(char *out, size_t cap)
{
  char big[7200], user[1001], disp[2001], tag[501], cid[1001], branch[301], name[201];
  memset(big, 'v', sizeof big - 1), big[sizeof big - 1] = 0;
  memset(user, 'u', sizeof user - 1), user[sizeof user - 1] = 0;
  memset(disp, 'D', sizeof disp - 1), disp[sizeof disp - 1] = 0;
  memset(tag, 't', sizeof tag - 1), tag[sizeof tag - 1] = 0;
  memset(cid, 'c', sizeof cid - 1), cid[sizeof cid - 1] = 0;
  memset(branch, 'b', sizeof branch - 1), branch[sizeof branch - 1] = 0;
  memset(name, 'N', sizeof name - 1), name[sizeof name - 1] = 0;
  size_t n = (size_t)snprintf(out, cap,
                              "INVITE sip:%s@example.com SIP/2.0\r\n"
                              "To: \"%s\" <sip:%s@example.com>\r\n"
                              "From: <sip:caller@example.net>;tag=%s\r\n"
                              "Call-ID: %s\r\n"
                              "CSeq: 1 INVITE\r\n"
                              "Max-Forwards: 70\r\n"
                              "X-%s: %s\r\n",
                              user, disp, user, tag, cid, name, big);
  for (int i = 0; i < 15; i++)
    n += (size_t)snprintf(out + n, cap - n, "Via: SIP/2.0/TCP host%d.example.com:%d;branch=z9hG4bK%s%d\r\n",
                          i, 5060 + i, branch, i);
  for (int i = 0; i < 30; i++) n += (size_t)snprintf(out + n, cap - n, "X-Repeat: value %d\r\n", i);
  n += (size_t)snprintf(out + n, cap - n,
                        "Contact: \"%s\" <sip:caller@host.example.net>\r\nContent-Type: application/sdp\r\n"
                        "Content-Length: %zu\r\n\r\n%s",
                        disp, strlen(SDP), SDP);
  return n;
}

static void test_long_values(void)
{
  TEST_BEGIN("long_values");
  size_t len = long_message(B, sizeof B);
  CHECK(accepts("longreq", B, len, ML_SIP_UDP));
  CHECK_EQ(M.ruri.user.n, 1000);
  CHECK_EQ(M.to.display.n, 2002);
  CHECK_EQ(M.from.tag.n, 500);
  CHECK_EQ(M.call_id.n, 1000);
  CHECK_EQ(M.n_via, 15);
  CHECK_EQ(M.n_headers, 54);
  CHECK_EQ(M.via0.branch.n, 308);
  CHECK_EQ(M.headers[5].name.n, 202);
  CHECK_EQ(M.headers[5].value.n, 7199);
  CHECK_STR(z(M.body), SDP);
  int repeats = 0;
  for (const ml_sip_header *h = ml_sip_header_find(&M, ML_STR_LIT("X-Repeat")); h;
       h = ml_sip_header_next(&M, h))
    repeats++;
  CHECK_EQ(repeats, 30);
}

/* §3.1.1.8: a datagram with bytes after the message (another message!) */
static void test_extra_octets(void)
{
  TEST_BEGIN("extra_octets");
  static const char first[] = "REGISTER sip:example.com SIP/2.0\r\n"
                              "To: sip:j.user@example.com\r\n"
                              "From: sip:j.user@example.com;tag=43251j3j324\r\n"
                              "Max-Forwards: 8\r\n"
                              "I: dblreq.0ha0isndaksdj99sdfafnl3lk233412\r\n"
                              "Contact: sip:j.user@host.example.com\r\n"
                              "CSeq: 8 REGISTER\r\n"
                              "Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492\r\n"
                              "Content-Length: 0\r\n"
                              "\r\n";
  size_t n1 = sizeof first - 1;
  memcpy(B, first, n1);
  size_t len = n1 + msg_make_to(B + n1, sizeof B - n1, INVITE_HEAD, SDP);
  CHECK(accepts("dblreq", B, len, ML_SIP_UDP));
  CHECK_EQ(M.method, ML_SIP_REGISTER);
  CHECK_EQ(M.len, n1);
  CHECK_EQ(M.body.n, 0);
  CHECK(accepts("dblreq second", B + n1, len - n1, ML_SIP_UDP));
  CHECK_EQ(M.method, ML_SIP_INVITE);
}

/* §3.1.1.9: ';' inside the user part of a URI */
static void test_semicolon_user(void)
{
  TEST_BEGIN("semicolon_user");
  static const char msg[] = "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\r\n"
                            "To: sip:j_user@example.com\r\n"
                            "From: sip:caller@example.org;tag=33242\r\n"
                            "Max-Forwards: 3\r\n"
                            "Call-ID: semiuri.0ha0isndaksdj\r\n"
                            "CSeq: 8 OPTIONS\r\n"
                            "Accept: application/sdp, application/pkcs7-mime,\r\n"
                            "        multipart/mixed, multipart/signed,\r\n"
                            "        message/sip, message/sipfrag\r\n"
                            "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\r\n"
                            "l: 0\r\n"
                            "\r\n";
  CHECK(ACCEPTS(msg, ML_SIP_UDP));
  CHECK_STR(z(M.ruri.user), "user;par=u%40example.net");
  CHECK_STR(z(M.ruri.host), "example.com");
  CHECK_EQ(M.ruri.params.n, 0);
  ml_sip_iter it;
  ml_str v;
  int n = 0;
  ml_sip_iter_init(&it, &M, ML_SIP_H_ACCEPT);
  while (ml_sip_iter_next(&it, &v) == 1) n++;
  CHECK_EQ(n, 6);
  CHECK(ml_sip_header_has(&M, ML_SIP_H_ACCEPT, "message/sipfrag"));
}

/* §3.1.1.10: known, unusual and unknown transports */
static void test_transports(void)
{
  TEST_BEGIN("transports");
  static const char msg[] =
      "OPTIONS sip:user@example.com SIP/2.0\r\n"
      "To: sip:user@example.com\r\n"
      "From: <sip:caller@example.com>;tag=323\r\n"
      "Max-Forwards: 70\r\n"
      "Call-ID: transports.kijh4akdnaqjkwendsasfdj\r\n"
      "Accept: application/sdp\r\n"
      "CSeq: 60 OPTIONS\r\n"
      "Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw\r\n"
      "Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf\r\n"
      "Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj\r\n"
      "Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en\r\n"
      "Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee, SIP/2.0/TLS-SCTP t6.example.com\r\n"
      "l: 0\r\n"
      "\r\n";
  CHECK(ACCEPTS(msg, ML_SIP_UDP));
  CHECK_EQ(M.n_via, 6);
  static const ml_sip_transport want[] = {ML_SIP_TP_UDP,   ML_SIP_TP_SCTP, ML_SIP_TP_TLS,
                                          ML_SIP_TP_OTHER, ML_SIP_TP_TCP,  ML_SIP_TP_OTHER};
  int bad = 0;
  for (unsigned i = 0; i < M.n_via && i < 6; i++) {
    ml_sip_via v;
    if (ml_sip_parse_via(M.via[i], &v) != 0 || v.transport != want[i]) bad++;
  }
  CHECK_EQ(bad, 0);
}

/* §3.1.1.11: a multipart body with binary parts (NUL, CRLFCRLF inside) */
static void test_multipart(void)
{
  TEST_BEGIN("multipart");
  static const char body[] = "--boundary42\r\n"
                             "Content-Type: application/sdp\r\n"
                             "\r\n"
                             "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n"
                             "m=audio 4000 RTP/AVP 0\r\n"
                             "\r\n"
                             "--boundary42\r\n"
                             "Content-Type: application/octet-stream\r\n"
                             "Content-Transfer-Encoding: binary\r\n"
                             "\r\n"
                             "\x00\x01\x02\r\n\r\n\xff\xfe\x80 binary\x00\r\n"
                             "--boundary42--\r\n";
  size_t n = (size_t)snprintf(B, sizeof B,
                              "MESSAGE sip:kumiko@example.org SIP/2.0\r\n"
                              "Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK7hjk2\r\n"
                              "Max-Forwards: 70\r\n"
                              "From: \"Gerd\" <sip:gerd@example.com>;tag=238230\r\n"
                              "To: <sip:kumiko@example.org>\r\n"
                              "Call-ID: mpart01.32ljjk@192.0.2.9\r\n"
                              "CSeq: 5 MESSAGE\r\n"
                              "Content-Type: multipart/mixed; boundary=boundary42\r\n"
                              "Content-Length: %zu\r\n"
                              "\r\n",
                              sizeof body - 1);
  memcpy(B + n, body, sizeof body - 1);
  CHECK(accepts("mpart01", B, n + sizeof body - 1, ML_SIP_UDP));
  CHECK_EQ(M.method, ML_SIP_MESSAGE);
  CHECK(M.body.n == sizeof body - 1 && memcmp(M.body.p, body, sizeof body - 1) == 0);
  CHECK_STR(z(M.content_type), "multipart/mixed; boundary=boundary42");
}

/* §3.1.1.12-13: reason phrases with UTF-8 and punctuation, and empty */
static void test_reason_phrases(void)
{
  TEST_BEGIN("reason_phrases");
  static const char unusual[] = "SIP/2.0 200 = 2**3 * 5**2 \xc3\xa7"
                                "a marche \xe2\x80\x94 (ok) ;-) \xe2\x9c\x93\r\n"
                                "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\r\n"
                                "Call-ID: unreason.1234ksdfak3j2erwedfsASdf\r\n"
                                "CSeq: 35 INVITE\r\n"
                                "From: sip:user@example.com;tag=11141343\r\n"
                                "To: sip:user@example.edu;tag=2229\r\n"
                                "Content-Length: 0\r\n"
                                "Contact: <sip:user@host198.example.com>\r\n"
                                "\r\n";
  CHECK(ACCEPTS(unusual, ML_SIP_UDP));
  CHECK_EQ(M.is_request, 0);
  CHECK_EQ(M.status, 200);
  CHECK_STR(z(M.reason), "= 2**3 * 5**2 \xc3\xa7"
                         "a marche \xe2\x80\x94 (ok) ;-) \xe2\x9c\x93");
  CHECK_EQ(M.cseq_method, ML_SIP_INVITE);
  CHECK_STR(z(M.to.tag), "2229");
  CHECK_EQ(ml_sip_can_respond(&M), 0); /* a response is never answered */

  static const char empty[] = "SIP/2.0 100 \r\n"
                              "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\n"
                              "Call-ID: noreason.asndj203insdf99223ndf\r\n"
                              "CSeq: 35 INVITE\r\n"
                              "From: <sip:user@example.com>;tag=39ansfi3\r\n"
                              "To: <sip:user@example.edu>;tag=902jndnke3\r\n"
                              "Content-Length: 0\r\n"
                              "Contact: <sip:user@host105.example.com>\r\n"
                              "\r\n";
  CHECK(ACCEPTS(empty, ML_SIP_UDP));
  CHECK_EQ(M.status, 100);
  CHECK(M.reason.n == 0 && M.reason.p != NULL);
}

/* IPv6 references in the Request-URI, Via, Contact, Route (RFC 5118) */
static void test_ipv6(void)
{
  TEST_BEGIN("ipv6");
  static const char msg[] =
      "INVITE sip:user@[2001:db8::10]:5070;transport=udp SIP/2.0\r\n"
      "To: sip:user@[2001:db8::10]\r\n"
      "From: sip:user@example.com;tag=81x2\r\n"
      "Via: SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bKas3-111;received=2001:db8::9;rport=5061\r\n"
      "Via: SIP/2.0/UDP [::ffff:192.0.2.1];branch=z9hG4bKv4mapped\r\n"
      "Route: <sip:[2001:db8::20];lr>\r\n"
      "Call-ID: SSG9559905523997077@hlggdhj\r\n"
      "CSeq: 1 INVITE\r\n"
      "Max-Forwards: 70\r\n"
      "Contact: \"Caller\" <sip:caller@[2001:db8::9]:5060>\r\n"
      "Content-Length: 0\r\n"
      "\r\n";
  CHECK(ACCEPTS(msg, ML_SIP_UDP));
  CHECK_EQ(M.ruri.host_type, ML_SIP_HOST_IPV6);
  CHECK_STR(z(M.ruri.host), "2001:db8::10");
  CHECK_EQ(M.ruri.port, 5070);
  CHECK_EQ(M.via0.host_type, ML_SIP_HOST_IPV6);
  CHECK_STR(z(M.via0.host), "2001:db8::9");
  CHECK_STR(z(M.via0.received), "2001:db8::9");
  CHECK_EQ(M.via0.rport, 5061);
  CHECK_EQ(M.n_via, 2);
  CHECK_EQ(M.n_route, 1);
  CHECK_EQ(M.to.uri.host_type, ML_SIP_HOST_IPV6);

  static const char bad[] = "OPTIONS sip:user@[2001:db8::10 SIP/2.0\r\n"
                            "To: sip:user@example.com\r\n"
                            "From: sip:user@example.com;tag=81x2\r\n"
                            "Via: SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bKas3-111\r\n"
                            "Call-ID: ipv6bad.1@x\r\n"
                            "CSeq: 1 OPTIONS\r\n"
                            "Content-Length: 0\r\n"
                            "\r\n";
  CHECK(REJECTS(bad, 400, "Request-URI"));
  static const char badvia[] = "OPTIONS sip:user@example.com SIP/2.0\r\n"
                               "To: sip:user@example.com\r\n"
                               "From: sip:user@example.com;tag=81x2\r\n"
                               "Via: SIP/2.0/UDP 2001:db8::9:5060;branch=z9hG4bKas3-111\r\n"
                               "Call-ID: ipv6bad.2@x\r\n"
                               "CSeq: 1 OPTIONS\r\n"
                               "Content-Length: 0\r\n"
                               "\r\n";
  CHECK(REJECTS(badvia, 400, "Via"));
  CHECK_EQ(ml_sip_can_respond(&M), 0); /* no Via to answer along */
}

/* §3.3.2-4: URI schemes nobody knows parse fine (416 is the UA's call) */
static void test_unknown_schemes(void)
{
  TEST_BEGIN("unknown_schemes");
  static const char unkscm[] = "OPTIONS nobodyknowsthisscheme:totallyopaquecontent SIP/2.0\r\n"
                               "To: sip:user@example.com\r\n"
                               "From: sip:user@example.com;tag=384\r\n"
                               "Max-Forwards: 3\r\n"
                               "Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34\r\n"
                               "CSeq: 3923423 OPTIONS\r\n"
                               "Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234\r\n"
                               "Content-Length: 0\r\n"
                               "\r\n";
  CHECK(ACCEPTS(unkscm, ML_SIP_UDP));
  CHECK_EQ(M.ruri.scheme, ML_SIP_URI_OTHER);
  CHECK_STR(z(M.ruri.scheme_name), "nobodyknowsthisscheme");

  static const char novelsc[] = "OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0\r\n"
                                "To: sip:user@example.com\r\n"
                                "From: sip:user@example.com;tag=384\r\n"
                                "Max-Forwards: 3\r\n"
                                "Call-ID: novelsc.asdfasser0q239nwsdfasdkl34\r\n"
                                "CSeq: 3923423 OPTIONS\r\n"
                                "Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw342\r\n"
                                "Content-Length: 0\r\n"
                                "\r\n";
  CHECK(ACCEPTS(novelsc, ML_SIP_UDP));
  CHECK_STR(z(M.ruri.text), "soap.beep://192.0.2.103:3002");

  static const char unksm2[] = "REGISTER sip:example.com SIP/2.0\r\n"
                               "To: isbn:2983792873\r\n"
                               "From: <http://www.example.com>;tag=3234233\r\n"
                               "Call-ID: unksm2.daksdj@hyphenated-host.example.com\r\n"
                               "CSeq: 234902 REGISTER\r\n"
                               "Max-Forwards: 70\r\n"
                               "Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw\r\n"
                               "Contact: <name:John_Smith>\r\n"
                               "l: 0\r\n"
                               "\r\n";
  CHECK(ACCEPTS(unksm2, ML_SIP_UDP));
  CHECK_EQ(M.to.uri.scheme, ML_SIP_URI_OTHER);
  CHECK_EQ(M.from.uri.scheme, ML_SIP_URI_OTHER);
  CHECK_STR(z(M.from.tag), "3234233");
}

/* §3.3.11: Max-Forwards 0 is valid syntax; 483 is the proxy/UA's business */
static void test_max_forwards(void)
{
  TEST_BEGIN("max_forwards");
  static const char zero[] = "OPTIONS sip:user@example.com SIP/2.0\r\n"
                             "To: sip:user@example.com\r\n"
                             "From: sip:caller@example.net;tag=3ghsd41\r\n"
                             "Call-ID: zeromf.jfasdlfnm2o2l43r5u0asdfas\r\n"
                             "CSeq: 39234321 OPTIONS\r\n"
                             "Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw2349i\r\n"
                             "Max-Forwards: 0\r\n"
                             "Content-Length: 0\r\n"
                             "\r\n";
  CHECK(ACCEPTS(zero, ML_SIP_UDP));
  CHECK_EQ(M.max_forwards, 0);
}

/* §3.4.1: RFC 2543 syntax: no branch, no Max-Forwards, no From tag, bare
 * URIs, no Content-Length on UDP */
static void test_rfc2543(void)
{
  TEST_BEGIN("rfc2543");
  static const char msg[] = "INVITE sip:UserB@example.com SIP/2.0\r\n"
                            "Via: SIP/2.0/UDP iftgw.example.com\r\n"
                            "From: <sip:+13035551111@ift.client.example.net;user=phone>\r\n"
                            "Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>\r\n"
                            "To: sip:+16505552222@ss1.example.net;user=phone\r\n"
                            "Call-ID: inv2543.1717@ift.client.example.com\r\n"
                            "CSeq: 56 INVITE\r\n"
                            "Content-Type: application/sdp\r\n"
                            "\r\n"
                            "v=0\r\n"
                            "o=mhandley 29739 7272939 IN IP4 192.0.2.5\r\n"
                            "s=-\r\n"
                            "c=IN IP4 192.0.2.5\r\n"
                            "t=0 0\r\n"
                            "m=audio 49217 RTP/AVP 0\r\n";
  CHECK(ACCEPTS(msg, ML_SIP_UDP));
  CHECK_EQ(M.max_forwards, -1);
  CHECK_EQ(M.from.tag.n, 0);
  CHECK_EQ(M.via0.branch.n, 0);
  CHECK_EQ(M.content_length, -1);
  CHECK(M.body.p == strstr(msg, "\r\n\r\n") + 4 && M.body.n == sizeof msg - 1 - (size_t)(M.body.p - msg));
  CHECK_EQ(M.len, sizeof msg - 1);
  ml_str v;
  CHECK(ml_sip_param(M.to.params, "user", &v) == 1 && strcmp(z(v), "phone") == 0);
  CHECK_EQ(M.n_record_route, 1);
  /* on a stream the same message cannot be framed */
  CHECK(rejects("inv2543 stream", msg, sizeof msg - 1, ML_SIP_STREAM, 400, "Content-Length"));
}

/* §3.2-3.3: transaction and application layer cases the parser must let
 * through, exposing what those layers need */
static void test_application_cases(void)
{
  TEST_BEGIN("application_cases");
  static const char bext01[] = "OPTIONS sip:user@example.com SIP/2.0\r\n"
                               "To: sip:j_user@example.com\r\n"
                               "From: sip:caller@example.net;tag=242etr\r\n"
                               "Max-Forwards: 6\r\n"
                               "Call-ID: bext01.0ha0isndaksdj\r\n"
                               "Require: nothingSupportsThis, nothingSupportsThisEither\r\n"
                               "Proxy-Require: noProxiesSupportThis, norDoAnyProxiesSupportThis\r\n"
                               "CSeq: 8 OPTIONS\r\n"
                               "Via: SIP/2.0/TLS fold-and-staple.example.com;branch=z9hG4bKkdjuw\r\n"
                               "Content-Length: 0\r\n"
                               "\r\n";
  CHECK(ACCEPTS(bext01, ML_SIP_UDP));
  CHECK(ml_sip_header_has(&M, ML_SIP_H_REQUIRE, "nothingsupportsthiseither"));
  CHECK(ml_sip_header_has(&M, ML_SIP_H_PROXY_REQUIRE, "noProxiesSupportThis"));

  static const char invut[] = "INVITE sip:user@example.com SIP/2.0\r\n"
                              "Contact: <sip:caller@host5.example.net>\r\n"
                              "To: sip:j.user@example.com\r\n"
                              "From: sip:caller@example.net;tag=8392034\r\n"
                              "Max-Forwards: 70\r\n"
                              "Call-ID: invut.0ha0isndaksdjadsfij34n23d\r\n"
                              "CSeq: 235448 INVITE\r\n"
                              "Via: SIP/2.0/UDP somehost.example.com;branch=z9hG4bKkdjuw\r\n"
                              "Content-Type: application/unknownformat\r\n"
                              "Content-Length: 40\r\n"
                              "\r\n"
                              "<audio>\r\n <pcmu port=\"443\"/>\r\n</audio>\r\n";
  CHECK(ACCEPTS(invut, ML_SIP_UDP));
  CHECK_STR(z(M.content_type), "application/unknownformat");

  static const char regaut01[] = "REGISTER sip:example.com SIP/2.0\r\n"
                                 "To: sip:j.user@example.com\r\n"
                                 "From: sip:j.user@example.com;tag=87321hj23128\r\n"
                                 "Max-Forwards: 8\r\n"
                                 "Call-ID: regaut01.0ha0isndaksdj\r\n"
                                 "CSeq: 9338 REGISTER\r\n"
                                 "Via: SIP/2.0/TCP 192.0.2.253;branch=z9hG4bKkdjuw\r\n"
                                 "Authorization: NoOneKnowsThisScheme opaque-data=here\r\n"
                                 "Content-Length:0\r\n"
                                 "\r\n";
  CHECK(ACCEPTS(regaut01, ML_SIP_UDP));
  const ml_sip_header *h = ml_sip_header_get(&M, ML_SIP_H_AUTHORIZATION);
  CHECK(h && strcmp(z(h->value), "NoOneKnowsThisScheme opaque-data=here") == 0);

  static const char bcast[] =
      "SIP/2.0 200 OK\r\n"
      "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\r\n"
      "Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23;received=255.255.255.255;rport=5\r\n"
      "Call-ID: bcast.0384840201234ksdfak3j2erwedfsASdf\r\n"
      "CSeq: 35 INVITE\r\n"
      "From: sip:user@example.com;tag=11141343\r\n"
      "To: sip:user@example.edu;tag=2229\r\n"
      "Content-Length: 0\r\n"
      "Contact: <sip:user@host28.example.com>\r\n"
      "\r\n";
  CHECK(ACCEPTS(bcast, ML_SIP_UDP));
  CHECK_EQ(M.n_via, 2);

  static const char cparam[] =
      "REGISTER sip:example.com SIP/2.0\r\n"
      "Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\r\n"
      "Max-Forwards: 70\r\n"
      "From: sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe\r\n"
      "To: sip:watson@example.com\r\n"
      "Call-ID: cparam01.70710@saturn.example.com\r\n"
      "CSeq: 2 REGISTER\r\n"
      "Contact: sip:+19725552222@gw1.example.net;unknownparam\r\n"
      "Contact: <sip:+19725552222@gw1.example.net;user=phone>;expires=3600;q=0.5\r\n"
      "Contact: <sip:watson@[2001:db8::7];transport=tcp>;+sip.instance=\"<urn:uuid:1234>\"\r\n"
      "Expires: 4294967296\r\n"
      "l: 0\r\n"
      "\r\n";
  CHECK(ACCEPTS(cparam, ML_SIP_UDP));
  CHECK_EQ(M.n_contact, 3);
  CHECK_EQ(M.expires, 4294967295LL); /* capped, RFC 3261 §20.19 */
  ml_sip_name_addr na;
  ml_str v;
  CHECK(ml_sip_parse_name_addr(M.contact[0], &na) == 0 && ml_sip_param(na.params, "unknownparam", &v) == 1);
  CHECK(ml_sip_parse_name_addr(M.contact[1], &na) == 0 && ml_sip_param(na.uri.params, "user", &v) == 1 &&
        ml_sip_param(na.params, "expires", &v) == 1 && strcmp(z(v), "3600") == 0);

  static const char regescrt[] = "REGISTER sip:example.com SIP/2.0\r\n"
                                 "To: sip:user@example.com\r\n"
                                 "From: sip:user@example.com;tag=8\r\n"
                                 "Max-Forwards: 70\r\n"
                                 "Call-ID: regescrt.k345asrl3fdbv@192.0.2.1\r\n"
                                 "CSeq: 14398234 REGISTER\r\n"
                                 "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\r\n"
                                 "M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>\r\n"
                                 "L:0\r\n"
                                 "\r\n";
  CHECK(ACCEPTS(regescrt, ML_SIP_UDP));
  CHECK(ml_sip_parse_name_addr(M.contact[0], &na) == 0 &&
        ml_sip_uri_header(na.uri.headers, "route", &v) == 1 &&
        strcmp(z(v), "%3Csip:sip.example.com%3E") == 0);

  static const char star[] = "REGISTER sip:example.com SIP/2.0\r\n"
                             "To: sip:user@example.com\r\n"
                             "From: sip:user@example.com;tag=8\r\n"
                             "Call-ID: star.1@192.0.2.1\r\n"
                             "CSeq: 3 REGISTER\r\n"
                             "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKstar\r\n"
                             "Contact: *\r\n"
                             "Expires: 0\r\n"
                             "L:0\r\n"
                             "\r\n";
  CHECK(ACCEPTS(star, ML_SIP_UDP));
  CHECK_EQ(M.contact_star, 1);
  CHECK_EQ(M.n_contact, 0);
  CHECK_EQ(M.expires, 0);

  /* §3.2.1: a branch without the magic cookie is still a branch; §3.1.2.12: a
   * Date with a bad time zone is not the parser's concern */
  static const char badbranch[] = "OPTIONS sip:user@example.com SIP/2.0\r\n"
                                  "To: sip:user@example.com\r\n"
                                  "From: sip:caller@example.org;tag=33242\r\n"
                                  "Max-Forwards: 3\r\n"
                                  "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK\r\n"
                                  "Via: SIP/2.0/UDP 192.0.2.2;branch=noCookieHere\r\n"
                                  "Date: Fri, 01 Jan 2010 16:00:00 EST\r\n"
                                  "Accept: text/nobodyknowsthis\r\n"
                                  "Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n\r\n"
                                  "CSeq: 8 OPTIONS\r\n"
                                  "l: 0\r\n"
                                  "\r\n";
  CHECK(ACCEPTS(badbranch, ML_SIP_UDP));
  CHECK_STR(z(M.via0.branch), "z9hG4bK");

  /* non-UTF-8 bytes (Latin-1) in a display name: passed through as bytes */
  static const char latin1[] = "INVITE sip:bob@example.com SIP/2.0\r\n"
                               "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKlat1\r\n"
                               "From: \"\xe9t\xe9 caf\xe9 \xff\xfe\" <sip:cafe@example.com>;tag=l1\r\n"
                               "To: <sip:bob@example.com>\r\n"
                               "Call-ID: latin1@x\r\n"
                               "CSeq: 1 INVITE\r\n"
                               "Subject: \xc0\xc1 not UTF-8 either\r\n"
                               "Content-Length: 0\r\n"
                               "\r\n";
  CHECK(ACCEPTS(latin1, ML_SIP_UDP));
  CHECK_STR(z(M.from.display), "\"\xe9t\xe9 caf\xe9 \xff\xfe\"");

  /* leading CRLFs (RFC 3261 §7.5), a lower-case version, refer/notify */
  static const char refer[] =
      "\r\n\r\n"
      "REFER sip:bob@192.0.2.4 sip/2.0\r\n"
      "v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKrefer\r\n"
      "f: <sip:alice@example.com>;tag=a1\r\n"
      "t: <sip:bob@example.com>;tag=b1\r\n"
      "i: refer.1@192.0.2.1\r\n"
      "CSeq: 93809824 REFER\r\n"
      "r: <sip:carol@example.com?Replaces=12345%40192.0.2.2%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n"
      "b: <sip:alice@example.com>\r\n"
      "k: replaces\r\n"
      "l: 0\r\n"
      "\r\n";
  CHECK(ACCEPTS(refer, ML_SIP_UDP));
  CHECK_EQ(M.method, ML_SIP_REFER);
  CHECK_STR(z(M.method_name), "REFER");
  h = ml_sip_header_get(&M, ML_SIP_H_REFER_TO);
  CHECK(h && ml_sip_parse_name_addr(h->value, &na) == 0 &&
        ml_sip_uri_header(na.uri.headers, "Replaces", &v) == 1);
  CHECK(ml_sip_header_get(&M, ML_SIP_H_REFERRED_BY) != NULL);
  CHECK_EQ(M.len, sizeof refer - 1);

  static const char notify[] = "NOTIFY sip:alice@192.0.2.1 SIP/2.0\r\n"
                               "Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnotify\r\n"
                               "From: <sip:bob@example.com>;tag=b1\r\n"
                               "To: <sip:alice@example.com>;tag=a1\r\n"
                               "Call-ID: refer.1@192.0.2.1\r\n"
                               "CSeq: 1993402 NOTIFY\r\n"
                               "o: refer;id=93809824\r\n"
                               "Subscription-State: active;expires=60\r\n"
                               "c: message/sipfrag;version=2.0\r\n"
                               "l: 21\r\n"
                               "\r\n"
                               "SIP/2.0 180 Ringing\r\n";
  CHECK(ACCEPTS(notify, ML_SIP_UDP));
  CHECK_STR(z(M.body), "SIP/2.0 180 Ringing\r\n");
  h = ml_sip_header_get(&M, ML_SIP_H_EVENT);
  CHECK(h && ml_sip_param(h->value, "id", &v) == 1 && strcmp(z(v), "93809824") == 0);
  CHECK(ml_sip_header_get(&M, ML_SIP_H_SUBSCRIPTION_STATE) != NULL);
}

/* ---- RFC 4475 §3.1.2, §3.3: invalid messages -------------------------------- */

/* A valid OPTIONS with one line replaced (or removed when `with` is NULL):
 * most invalid cases differ from a good message in one header. */
static const char *const BASE_LINES[] = {
    "OPTIONS sip:bob@example.org SIP/2.0",
    "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKbase1",
    "To: <sip:bob@example.org>",
    "From: \"Alice\" <sip:alice@example.com>;tag=a1b2",
    "Call-ID: base.72h3@192.0.2.15",
    "CSeq: 42 OPTIONS",
    "Max-Forwards: 70",
    "Content-Length: 0",
};
#define N_BASE (sizeof BASE_LINES / sizeof BASE_LINES[0])

static size_t base_with(int line, const char *with, const char *extra)
{
  size_t n = 0;
  for (size_t i = 0; i < N_BASE; i++) {
    const char *l = (int)i == line ? with : BASE_LINES[i];
    if (l) n += (size_t)snprintf(B + n, sizeof B - n, "%s\r\n", l);
  }
  if (extra) n += (size_t)snprintf(B + n, sizeof B - n, "%s", extra);
  n += (size_t)snprintf(B + n, sizeof B - n, "\r\n");
  return n;
}

typedef struct bad_case {
  const char *name;
  int line; /* BASE_LINES index to replace, -1 for none */
  const char *with; /* NULL: drop the line */
  const char *extra; /* extra header lines (CRLF each) */
  int code;
  const char *detail;
  int respondable; /* ml_sip_can_respond after the error */
} bad_case;

static const bad_case bad_cases[] = {
    /* §3.1.2.1 extraneous separators */
    {"badinv01 via", 1, "Via: SIP/2.0/UDP 192.0.2.15;;,;,,", NULL, 400, "Via", 0},
    {"badinv01 contact", -1, NULL, "Contact: ,,<sip:alice@192.0.2.15>\r\n", 400, "Contact", 1},
    {"badinv01 to", 2, "To: <sip:bob@example.org>;;tag=1", NULL, 400, "To", 1},
    /* §3.1.2.3 negative Content-Length */
    {"ncl", 7, "Content-Length: -999", NULL, 400, "Content-Length", 1},
    {"cl plus", 7, "Content-Length: +5", NULL, 400, "Content-Length", 1},
    {"cl hex", 7, "Content-Length: 0x10", NULL, 400, "Content-Length", 1},
    {"cl empty", 7, "Content-Length:", NULL, 400, "Content-Length", 1},
    {"cl words", 7, "Content-Length: zero", NULL, 400, "Content-Length", 1},
    /* §3.3.9 multiple Content-Length values */
    {"mcl01 two lines", -1, NULL, "Content-Length: 0\r\n", 400, "duplicate Content-Length", 1},
    {"mcl01 compact", -1, NULL, "l: 0\r\n", 400, "duplicate Content-Length", 1},
    {"mcl01 list", 7, "Content-Length: 0, 0", NULL, 400, "Content-Length", 1},
    /* §3.1.2.4 overlarge scalars */
    {"scalar02 cseq", 5, "CSeq: 36893488147419103232 OPTIONS", NULL, 400, "CSeq", 1},
    {"cseq 2^31", 5, "CSeq: 2147483648 OPTIONS", NULL, 400, "CSeq", 1},
    {"scalar02 max-forwards", 6, "Max-Forwards: 300", NULL, 400, "Max-Forwards", 1},
    {"max-forwards word", 6, "Max-Forwards: seventy", NULL, 400, "Max-Forwards", 1},
    /* bad CSeq */
    {"cseq no method", 5, "CSeq: 42", NULL, 400, "CSeq", 1},
    {"cseq no number", 5, "CSeq: OPTIONS", NULL, 400, "CSeq", 1},
    {"cseq negative", 5, "CSeq: -1 OPTIONS", NULL, 400, "CSeq", 1},
    /* §3.1.2.17 CSeq method differs */
    {"cseqmeth", 5, "CSeq: 42 INVITE", NULL, 400, "CSeq method", 1},
    {"cseq case", 5, "CSeq: 42 options", NULL, 400, "CSeq method", 1},
    /* §3.1.2.6 unterminated quoted string */
    {"quotbal", 3, "From: \"Alice <sip:alice@example.com>;tag=a1b2", NULL, 400, "From", 1},
    /* §3.1.2.13 bare URI with '?' */
    {"regbadct", -1, NULL, "Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E\r\n", 400,
     "Contact", 1},
    /* §3.1.2.14 spaces inside <> */
    {"badaspec", 2, "To: \"Bob\" < sip:bob@example.org >", NULL, 400, "To", 1},
    /* §3.1.2.15 non-token display name */
    {"baddn", 3, "From: Bell, Alexander <sip:a.g.bell@example.com>;tag=43", NULL, 400, "From", 1},
    /* §3.3.1 missing mandatory headers */
    {"insuf via", 1, NULL, NULL, 400, "missing Via", 0},
    {"insuf to", 2, NULL, NULL, 400, "missing To", 0},
    {"insuf from", 3, NULL, NULL, 400, "missing From", 0},
    {"insuf call-id", 4, NULL, NULL, 400, "missing Call-ID", 0},
    {"insuf cseq", 5, NULL, NULL, 400, "missing CSeq", 0},
    /* §3.3.8 multiple values in single-value headers */
    {"multi01 call-id", -1, NULL, "Call-ID: other.1@192.0.2.15\r\n", 400, "duplicate Call-ID", 1},
    {"multi01 call-id list", 4, "Call-ID: a@b, c@d", NULL, 400, "Call-ID", 1},
    {"multi01 to", -1, NULL, "t: <sip:carol@example.org>\r\n", 400, "duplicate To", 1},
    {"multi01 to list", 2, "To: <sip:bob@example.org>, <sip:carol@example.org>", NULL, 400, "To", 1},
    {"multi01 from", -1, NULL, "From: <sip:eve@example.com>;tag=e\r\n", 400, "duplicate From", 1},
    {"multi01 cseq", -1, NULL, "CSeq: 43 OPTIONS\r\n", 400, "duplicate CSeq", 1},
    {"multi01 max-forwards", -1, NULL, "Max-Forwards: 69\r\n", 400, "duplicate Max-Forwards", 1},
    {"content-type twice", -1, NULL, "Content-Type: text/plain\r\nc: text/plain\r\n", 400,
     "duplicate Content-Type", 1},
    /* bad values of well-known headers */
    {"call-id space", 4, "Call-ID: two words", NULL, 400, "Call-ID", 1},
    {"call-id two @", 4, "Call-ID: a@b@c", NULL, 400, "Call-ID", 1},
    {"call-id empty", 4, "Call-ID:", NULL, 400, "Call-ID", 1},
    {"via empty", 1, "Via:", NULL, 400, "Via", 0},
    {"via no branch value", 1, "Via: SIP/2.0/UDP 192.0.2.15;branch", NULL, 400, "Via", 0},
    {"via trailing comma", 1, "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKx,", NULL, 400, "Via", 0},
    {"route bare", -1, NULL, "Route: sip:proxy.example.com;lr\r\n", 400, "Route", 1},
    {"record-route bad", -1, NULL, "Record-Route: <sip:proxy.example.com;lr\r\n", 400, "Record-Route", 1},
    {"contact star and uri", -1, NULL, "Contact: *, <sip:a@example.com>\r\n", 400, "Contact", 1},
    {"contact uri then star", -1, NULL, "Contact: <sip:a@example.com>\r\nContact: *\r\n", 400, "Contact", 1},
    {"content-type empty", -1, NULL, "Content-Type:\r\n", 400, "Content-Type", 1},
    /* header line structure */
    {"no colon", -1, NULL, "NoColonHere\r\n", 400, "header line", 1},
    {"empty name", -1, NULL, ": value\r\n", 400, "header line", 1},
    {"space in name", -1, NULL, "Bad Name: value\r\n", 400, "header line", 1},
    {"utf-8 name", -1, NULL, "X-\xc3\xa9: value\r\n", 400, "header line", 1},
    {"bare LF", -1, NULL, "X-A: 1\nX-B: 2\r\n", 400, "bare CR/LF", 1},
    {"bare CR", -1, NULL, "X-A: 1\rX-B: 2\r\n", 400, "bare CR/LF", 1},
    {"NUL in value", -1, NULL, "X-A: a\x01z\r\n", 400, "control character", 1},
    {"DEL in value", -1, NULL, "X-A: a\x7fz\r\n", 400, "control character", 1},
    {"escape outside quotes", -1, NULL, "X-A: a\\\x01z\r\n", 400, "control character", 1},
    /* §3.1.2.7-11 request lines */
    {"ltgtruri", 0, "OPTIONS <sip:bob@example.org> SIP/2.0", NULL, 400, "Request-URI", 1},
    {"lwsruri", 0, "OPTIONS sip:bob@example.org; lr SIP/2.0", NULL, 400, "request line", 0},
    {"lwsstart", 0, "OPTIONS  sip:bob@example.org  SIP/2.0", NULL, 400, "request line", 0},
    {"trws", 0, "OPTIONS sip:bob@example.org SIP/2.0 ", NULL, 400, "request line", 0},
    {"tab separator", 0, "OPTIONS\tsip:bob@example.org SIP/2.0", NULL, 400, "request line", 0},
    {"escruri", 0, "OPTIONS sip:bob@example.org?Route=%3Csip:example.com%3E SIP/2.0", NULL, 400,
     "Request-URI", 1},
    {"no version", 0, "OPTIONS sip:bob@example.org", NULL, 400, "request line", 0},
    {"method not token", 0, "OPT(IONS sip:bob@example.org SIP/2.0", NULL, 400, "request line", 0},
    {"bad version", 0, "OPTIONS sip:bob@example.org SIP/2", NULL, 400, "request line", 0},
    {"version letters", 0, "OPTIONS sip:bob@example.org SIP/x.y", NULL, 400, "request line", 0},
    {"http", 0, "OPTIONS sip:bob@example.org HTTP/1.1", NULL, 400, "request line", 0},
    {"empty start line", 0, "", NULL, 400, "request line", 0},
    {"folded start", 1, " continued", NULL, 400, "continuation", 0},
    /* §3.1.2.16 version 7.0, §3.1.2.18 unknown method + CSeq mismatch */
    {"badvers", 0, "OPTIONS sip:bob@example.org SIP/7.0", NULL, 505, "version", 1},
    {"version 2.1", 0, "OPTIONS sip:bob@example.org SIP/2.1", NULL, 505, "version", 1},
    {"unkmeth", 0, "NEWMETHOD sip:bob@example.org SIP/2.0", NULL, 400, "CSeq method", 1},
};

static void test_invalid(void)
{
  TEST_BEGIN("invalid");
  int bad = 0;
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
    const bad_case *c = &bad_cases[i];
    size_t len = base_with(c->line, c->with, c->extra);
    if (!rejects(c->name, B, len, ML_SIP_UDP, c->code, c->detail))
      bad++;
    else if (ml_sip_can_respond(&M) != c->respondable) {
      fprintf(stderr, "  %s: can_respond %d\n", c->name, ml_sip_can_respond(&M));
      bad++;
    } else if (c->respondable) {
      /* the error response itself must be well-formed */
      ml_sip_builder b;
      ml_sip_msg r;
      ml_sip_builder_init(&b, OUT, sizeof OUT);
      size_t n = ml_sip_build_response(&M, M.err.code, NULL, ML_STR_LIT("err1"), &b) == 0
                     ? ml_sip_builder_finish(&b, ML_STR_NULL)
                     : 0;
      /* a response echoing a bad header is bad too: only check it is built */
      if (!n) {
        fprintf(stderr, "  %s: no %d response built\n", c->name, M.err.code);
        bad++;
      } else if (ml_sip_parse(&r, OUT, n, ML_SIP_STREAM) != 0 && M.err.code == 505) {
        fprintf(stderr, "  %s: 505 response does not parse (%s)\n", c->name, r.err.detail);
        bad++;
      }
    }
  }
  CHECK_EQ(bad, 0);
  /* the base message itself is fine */
  size_t len = base_with(-1, NULL, NULL);
  CHECK(accepts("base", B, len, ML_SIP_UDP));

  /* a duplicate is indexed, not decoded: the first values stay, and they
   * are the ones a 400 echoes */
  len = base_with(-1, NULL, "From: <sip:eve@example.com>;tag=eve\r\nCSeq: 99 OPTIONS\r\n");
  CHECK(rejects("duplicate From and CSeq", B, len, ML_SIP_UDP, 400, "duplicate From"));
  CHECK_STR(z(M.from.tag), "a1b2");
  CHECK_EQ(M.cseq, 42);
  const ml_sip_header *dup = ml_sip_header_get(&M, ML_SIP_H_FROM);
  CHECK(dup && ml_sip_header_next(&M, dup) && strstr(z(ml_sip_header_next(&M, dup)->value), "eve"));
  /* a To that does not parse is echoed without a tag */
  len = base_with(2, "To: <sip:bob@example.org", NULL);
  CHECK(rejects("unterminated To", B, len, ML_SIP_UDP, 400, "bad To"));
  ml_sip_builder bb;
  ml_sip_builder_init(&bb, OUT, sizeof OUT);
  CHECK_EQ(ml_sip_build_response(&M, 400, NULL, ML_STR_LIT("x1"), &bb), 0);
  size_t rn = ml_sip_builder_finish(&bb, ML_STR_NULL);
  CHECK(rn > 0 && strstr(OUT, "To: <sip:bob@example.org\r\n") && !strstr(OUT, "tag=x1"));

  /* §3.1.2.19, §3.1.2.5: status lines */
  static const char *const status_lines[] = {
      "SIP/2.0 4294967301 better not break the receiver",
      "SIP/2.0 99 Too Small",
      "SIP/2.0 700 Too Big",
      "SIP/2.0 099 Leading Zero",
      "SIP/2.0 20 Short",
      "SIP/2.0 200",
      "SIP/2.0  200 OK",
      "SIP/2.0 2x0 OK",
      "SIP/2.0",
  };
  for (size_t i = 0; i < sizeof status_lines / sizeof status_lines[0]; i++) {
    len = (size_t)snprintf(
        B, sizeof B,
        "%s\r\nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\nCall-ID: bigcode.1\r\n"
        "CSeq: 353494 INVITE\r\nFrom: <sip:user@example.com>;tag=39ansfi3\r\n"
        "To: <sip:user@example.edu>;tag=902jndnke3\r\nContent-Length: 0\r\n\r\n",
        status_lines[i]);
    CHECK(rejects(status_lines[i], B, len, ML_SIP_UDP, 400, "status"));
    CHECK_EQ(ml_sip_can_respond(&M), 0);
  }
  static const char scalarlg[] =
      "SIP/2.0 503 Service Unavailable\r\n"
      "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129\r\n"
      "To: <sip:user@example.com>\r\n"
      "From: <sip:other@example.net>;tag=2easdjfejw\r\n"
      "CSeq: 9292394834772304023312 OPTIONS\r\n"
      "Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r\r\n"
      "Retry-After: 949302838503028349304023988\r\n"
      "Warning: 1812 overture \"In Progress\"\r\n"
      "Content-Length: 0\r\n"
      "\r\n";
  CHECK(REJECTS(scalarlg, 400, "CSeq"));
  static const char badvers_resp[] = "SIP/7.0 200 OK\r\n"
                                     "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKv\r\n"
                                     "To: <sip:a@example.com>;tag=1\r\nFrom: <sip:b@example.com>;tag=2\r\n"
                                     "Call-ID: v7@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
  CHECK(REJECTS(badvers_resp, 505, "version"));
  CHECK_EQ(ml_sip_can_respond(&M), 0);

  /* NULs: in the start line, a header name, a value; fine in a body */
  static const char nul_start[] = "OPTIONS sip:bob@exa\0mple.org SIP/2.0\r\n"
                                  "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKn\r\nContent-Length: 0\r\n\r\n";
  CHECK(REJECTS(nul_start, 400, "control character"));
  static const char nul_name[] =
      "OPTIONS sip:bob@example.org SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKn\r\nX-\0Nul: v\r\nContent-Length: 0\r\n\r\n";
  CHECK(REJECTS(nul_name, 400, "control character"));
  static const char nul_value[] = "OPTIONS sip:bob@example.org SIP/2.0\r\n"
                                  "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKn\r\n"
                                  "To: <sip:bob@example.org>\r\nFrom: <sip:a@example.com>;tag=1\r\n"
                                  "Call-ID: nul@x\r\nCSeq: 1 OPTIONS\r\nSubject: a\0b\r\n"
                                  "Content-Length: 0\r\n\r\n";
  CHECK(REJECTS(nul_value, 400, "control character"));
  CHECK_EQ(ml_sip_can_respond(&M), 1);
  static const char nul_body[] =
      "OPTIONS sip:bob@example.org SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKn\r\n"
      "To: <sip:bob@example.org>\r\nFrom: <sip:a@example.com>;tag=1\r\n"
      "Call-ID: nul@x\r\nCSeq: 1 OPTIONS\r\nContent-Type: application/octet-stream\r\n"
      "Content-Length: 3\r\n\r\n\0\0\0";
  CHECK(ACCEPTS(nul_body, ML_SIP_UDP));
  CHECK_EQ(M.body.n, 3);

  /* structure */
  CHECK(REJECTS("", 400, "empty"));
  CHECK(REJECTS("\r\n\r\n", 400, "empty"));
  static const char no_blank[] = "OPTIONS sip:bob@example.org SIP/2.0\r\n"
                                 "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKn\r\nContent-Length: 0\r\n";
  CHECK(REJECTS(no_blank, 400, "empty line"));
  static const char lf_only[] = "OPTIONS sip:bob@example.org SIP/2.0\n"
                                "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKn\n\n";
  CHECK(REJECTS(lf_only, 400, NULL));
}

/* ---- Content-Length on datagrams and streams (RFC 3261 §18.3) -------------- */

static void test_content_length(void)
{
  TEST_BEGIN("content_length");
  const char *head = "MESSAGE sip:bob@example.org SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKcl\r\n"
                     "To: <sip:bob@example.org>\r\nFrom: <sip:a@example.com>;tag=1\r\n"
                     "Call-ID: cl@x\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\n";
  size_t hl = strlen(head), len;

  /* longer datagram than Content-Length: truncated */
  len = (size_t)snprintf(B, sizeof B, "%sContent-Length: 5\r\n\r\nhello, world", head);
  CHECK(accepts("cl shorter than body", B, len, ML_SIP_UDP));
  CHECK_STR(z(M.body), "hello");
  CHECK_EQ(M.len, len - 7);
  /* Content-Length: 0 with trailing bytes */
  len = (size_t)snprintf(B, sizeof B, "%sContent-Length: 0\r\n\r\ntrailing junk", head);
  CHECK(accepts("cl 0 junk", B, len, ML_SIP_UDP));
  CHECK_EQ(M.body.n, 0);
  CHECK(M.body.p == B + len - 13);
  /* §3.1.2.2 shorter datagram than Content-Length: 400 (dropped if a response) */
  len = (size_t)snprintf(B, sizeof B, "%sContent-Length: 9999\r\n\r\nhello", head);
  CHECK(rejects("clerr", B, len, ML_SIP_UDP, 400, "shorter"));
  CHECK_EQ(ml_sip_can_respond(&M), 1);
  CHECK(rejects("clerr stream", B, len, ML_SIP_STREAM, 400, "shorter"));
  /* missing: the rest of the datagram; mandatory on a stream */
  len = (size_t)snprintf(B, sizeof B, "%s\r\nhello", head);
  CHECK(accepts("no cl udp", B, len, ML_SIP_UDP));
  CHECK_STR(z(M.body), "hello");
  CHECK_EQ(M.content_length, -1);
  CHECK(rejects("no cl stream", B, len, ML_SIP_STREAM, 400, "missing Content-Length"));
  /* exact */
  len = (size_t)snprintf(B, sizeof B, "%sl:5\r\n\r\nhello", head);
  CHECK(accepts("exact stream", B, len, ML_SIP_STREAM));
  CHECK_STR(z(M.body), "hello");
  /* folded value, leading zeros */
  len = (size_t)snprintf(B, sizeof B, "%sContent-Length:\r\n   005\r\n\r\nhello", head);
  CHECK(accepts("folded cl", B, len, ML_SIP_STREAM));
  CHECK_EQ(M.content_length, 5);
  /* over the message limit: 513 */
  len = (size_t)snprintf(B, sizeof B, "%sContent-Length: 70000\r\n\r\nhello", head);
  CHECK(rejects("cl too large", B, len, ML_SIP_UDP, 513, "too large"));
  len = (size_t)snprintf(B, sizeof B, "%sContent-Length: 99999999999\r\n\r\nhello", head);
  CHECK(rejects("cl overflow", B, len, ML_SIP_UDP, 400, "Content-Length"));
  (void)hl;
}

/* ---- limits ----------------------------------------------------------------- */

static size_t with_headers(int extra, const char *fmt)
{
  size_t n = (size_t)snprintf(B, sizeof B,
                              "OPTIONS sip:bob@example.org SIP/2.0\r\n"
                              "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKlim\r\n"
                              "To: <sip:bob@example.org>\r\nFrom: <sip:a@example.com>;tag=1\r\n"
                              "Call-ID: lim@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n");
  for (int i = 0; i < extra; i++) n += (size_t)snprintf(B + n, sizeof B - n, fmt, i);
  n += (size_t)snprintf(B + n, sizeof B - n, "\r\n");
  return n;
}

static void test_limits(void)
{
  TEST_BEGIN("limits");
  size_t len;
  /* 6 base headers: 58 more reach 64 */
  len = with_headers(ML_SIP_MAX_HEADERS - 6, "X-H%d: v\r\n");
  CHECK(accepts("64 headers", B, len, ML_SIP_UDP));
  CHECK_EQ(M.n_headers, ML_SIP_MAX_HEADERS);
  len = with_headers(ML_SIP_MAX_HEADERS - 5, "X-H%d: v\r\n");
  CHECK(rejects("65 headers", B, len, ML_SIP_UDP, 400, "too many headers"));
  /* Vias: 1 + 15 = 16 on separate lines, then one more in a list */
  len = with_headers(ML_SIP_MAX_VIA - 1, "Via: SIP/2.0/UDP h%d.example.com;branch=z9hG4bKv\r\n");
  CHECK(accepts("16 vias", B, len, ML_SIP_UDP));
  CHECK_EQ(M.n_via, ML_SIP_MAX_VIA);
  len = with_headers(ML_SIP_MAX_VIA, "Via: SIP/2.0/UDP h%d.example.com;branch=z9hG4bKv\r\n");
  CHECK(rejects("17 vias", B, len, ML_SIP_UDP, 400, "too many Via"));
  CHECK_EQ(ml_sip_can_respond(&M), 0);
  len = with_headers(
      1, "Via: SIP/2.0/UDP a%d.example.com, SIP/2.0/UDP b.example.com, SIP/2.0/UDP c.example.com, "
         "SIP/2.0/UDP d.example.com, SIP/2.0/UDP e.example.com, SIP/2.0/UDP f.example.com, "
         "SIP/2.0/UDP g.example.com, SIP/2.0/UDP h.example.com, SIP/2.0/UDP i.example.com, "
         "SIP/2.0/UDP j.example.com, SIP/2.0/UDP k.example.com, SIP/2.0/UDP l.example.com, "
         "SIP/2.0/UDP m.example.com, SIP/2.0/UDP n.example.com, SIP/2.0/UDP o.example.com, "
         "SIP/2.0/UDP p.example.com\r\n");
  CHECK(rejects("17 vias in one line", B, len, ML_SIP_UDP, 400, "too many Via"));
  len = with_headers(ML_SIP_MAX_CONTACT + 1, "Contact: <sip:c%d@example.com>\r\n");
  CHECK(rejects("17 contacts", B, len, ML_SIP_UDP, 400, "too many Contact"));
  len = with_headers(ML_SIP_MAX_ROUTE + 1, "Record-Route: <sip:p%d.example.com;lr>\r\n");
  CHECK(rejects("17 record-routes", B, len, ML_SIP_UDP, 400, "too many"));

  /* one header of exactly ML_SIP_MAX_LINE bytes, name to end of value */
  static char line[ML_SIP_MAX_LINE + 16], extra[2 * ML_SIP_MAX_LINE];
  memcpy(line, "X-Long: ", 8);
  memset(line + 8, 'x', ML_SIP_MAX_LINE - 8);
  line[ML_SIP_MAX_LINE] = 0;
  snprintf(extra, sizeof extra, "%s\r\n", line);
  len = base_with(-1, NULL, extra);
  CHECK(accepts("8 KiB line", B, len, ML_SIP_UDP));
  snprintf(extra, sizeof extra, "%sx\r\n", line);
  len = base_with(-1, NULL, extra);
  CHECK(rejects("8 KiB + 1 line", B, len, ML_SIP_UDP, 400, "too long"));
  /* folding counts: two halves of a long value */
  snprintf(extra, sizeof extra, "X-Folded: %.4200s\r\n %.4200s\r\n", line + 8, line + 8);
  len = base_with(-1, NULL, extra);
  CHECK(rejects("folded too long", B, len, ML_SIP_UDP, 400, "too long"));
  /* a start line over the limit */
  len = (size_t)snprintf(B, sizeof B, "OPTIONS sip:%s@example.org SIP/2.0\r\n\r\n", line);
  CHECK(rejects("long start line", B, len, ML_SIP_UDP, 400, "start line too long"));

  /* 64 KiB: a head that never ends, a datagram without Content-Length */
  memset(B, 'a', 70000);
  memcpy(B, "OPTIONS sip:bob@example.org SIP/2.0\r\nX-Pad: ", 45);
  CHECK(rejects("70000 bytes, no end", B, 70000, ML_SIP_UDP, 513, "too large"));
  len = (size_t)snprintf(B, sizeof B,
                         "OPTIONS sip:bob@example.org SIP/2.0\r\n"
                         "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKlim\r\n"
                         "To: <sip:bob@example.org>\r\nFrom: <sip:a@example.com>;tag=1\r\n"
                         "Call-ID: lim@x\r\nCSeq: 1 OPTIONS\r\n\r\n");
  memset(B + len, 'b', ML_SIP_MAX_MSG - len);
  CHECK(accepts("exactly 64 KiB", B, ML_SIP_MAX_MSG, ML_SIP_UDP));
  B[ML_SIP_MAX_MSG] = 'b';
  CHECK(rejects("64 KiB + 1", B, ML_SIP_MAX_MSG + 1, ML_SIP_UDP, 513, "too large"));
}

/* ---- the builder: everything it writes parses back ------------------------- */

static void test_build_request(void)
{
  TEST_BEGIN("build_request");
  ml_sip_builder b;
  ml_sip_builder_init(&b, OUT, sizeof OUT);
  ml_sip_builder_request_line(&b, ML_STR_LIT("INVITE"), ML_STR_LIT("sip:bob@[2001:db8::4]:5070"));
  ml_sip_builder_headerf(&b, "Via", "SIP/2.0/UDP %s:%d;branch=%s;rport", "192.0.2.1", 5060, "z9hG4bKb1");
  ml_sip_builder_header(&b, "Max-Forwards", ML_STR_LIT("70"));
  ml_sip_builder_header(&b, "From", ML_STR_LIT("\"Agent \\\"M\\\"\" <sip:agent@192.0.2.1>;tag=f00"));
  ml_sip_builder_header(&b, "To", ML_STR_LIT("<sip:bob@example.org>"));
  ml_sip_builder_headerf(&b, "Call-ID", "%08x@%s", 0xdeadbeefu, "192.0.2.1");
  ml_sip_builder_headerf(&b, "CSeq", "%u INVITE", 7u);
  ml_sip_builder_header(&b, "Contact", ML_STR_LIT("<sip:agent@192.0.2.1:5060>"));
  ml_sip_builder_header(&b, "Content-Type", ML_STR_LIT("application/sdp"));
  /* a folded value is unfolded on the way out */
  ml_sip_builder_header(&b, "X-Folded", ML_STR_LIT("one\r\n two\r\n\t three"));
  size_t n = ml_sip_builder_finish(&b, ml_str_c(SDP));
  CHECK(n > 0);
  CHECK(accepts("built INVITE", OUT, n, ML_SIP_STREAM));
  CHECK_EQ(M.len, n);
  CHECK_EQ(M.method, ML_SIP_INVITE);
  CHECK_EQ(M.ruri.port, 5070);
  CHECK_STR(z(M.via0.branch), "z9hG4bKb1");
  CHECK_STR(z(M.call_id), "deadbeef@192.0.2.1");
  CHECK_EQ(M.cseq, 7);
  CHECK_STR(z(M.from.tag), "f00");
  CHECK_STR(z(M.body), SDP);
  const ml_sip_header *h = ml_sip_header_find(&M, ML_STR_LIT("X-Folded"));
  CHECK(h && strcmp(z(h->value), "one two three") == 0);

  /* the exact size fits, one byte less does not */
  static char tight[4096];
  for (size_t cap = n - 1; cap <= n; cap++) {
    ml_sip_builder_init(&b, tight, cap);
    ml_sip_builder_request_line(&b, ML_STR_LIT("INVITE"), ML_STR_LIT("sip:bob@[2001:db8::4]:5070"));
    ml_sip_builder_headerf(&b, "Via", "SIP/2.0/UDP %s:%d;branch=%s;rport", "192.0.2.1", 5060, "z9hG4bKb1");
    ml_sip_builder_header(&b, "Max-Forwards", ML_STR_LIT("70"));
    ml_sip_builder_header(&b, "From", ML_STR_LIT("\"Agent \\\"M\\\"\" <sip:agent@192.0.2.1>;tag=f00"));
    ml_sip_builder_header(&b, "To", ML_STR_LIT("<sip:bob@example.org>"));
    ml_sip_builder_headerf(&b, "Call-ID", "%08x@%s", 0xdeadbeefu, "192.0.2.1");
    ml_sip_builder_headerf(&b, "CSeq", "%u INVITE", 7u);
    ml_sip_builder_header(&b, "Contact", ML_STR_LIT("<sip:agent@192.0.2.1:5060>"));
    ml_sip_builder_header(&b, "Content-Type", ML_STR_LIT("application/sdp"));
    ml_sip_builder_header(&b, "X-Folded", ML_STR_LIT("one\r\n two\r\n\t three"));
    size_t got = ml_sip_builder_finish(&b, ml_str_c(SDP));
    CHECK_EQ(got, cap == n ? n : 0);
    CHECK(cap < n || memcmp(tight, OUT, n) == 0);
  }

  /* anything that would change the framing is refused, and it sticks */
  static const struct {
    const char *name;
    ml_str value;
  } evil[] = {
      {"X-A", ML_STR_LIT("x\r\nEvil: 1")},
      {"X-A", ML_STR_LIT("x\nEvil: 1")},
      {"X-A", ML_STR_LIT("x\rEvil: 1")},
      {"X-A", ML_STR_LIT("x\r\n")},
      {"X-A", {"x\0y", 3}},
      {"Bad Name", ML_STR_LIT("v")},
      {"Bad:Name", ML_STR_LIT("v")},
      {"", ML_STR_LIT("v")},
  };
  for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
    ml_sip_builder_init(&b, OUT, sizeof OUT);
    ml_sip_builder_status_line(&b, 200, NULL);
    ml_sip_builder_header(&b, evil[i].name, evil[i].value);
    ml_sip_builder_header(&b, "X-After", ML_STR_LIT("fine"));
    CHECK_EQ(ml_sip_builder_finish(&b, ML_STR_NULL), 0);
  }
  ml_sip_builder_init(&b, OUT, sizeof OUT);
  ml_sip_builder_status_line(&b, 200, NULL);
  ml_sip_builder_headerf(&b, "X-A", "%s", "a\r\nEvil: 1");
  CHECK_EQ(ml_sip_builder_finish(&b, ML_STR_NULL), 0);
  ml_sip_builder_init(&b, OUT, sizeof OUT);
  ml_sip_builder_status_line(&b, 200, "OK\r\nEvil: 1");
  CHECK_EQ(ml_sip_builder_finish(&b, ML_STR_NULL), 0);
  ml_sip_builder_init(&b, OUT, sizeof OUT);
  ml_sip_builder_status_line(&b, 1000, NULL);
  CHECK_EQ(ml_sip_builder_finish(&b, ML_STR_NULL), 0);
  ml_sip_builder_init(&b, OUT, sizeof OUT);
  ml_sip_builder_request_line(&b, ML_STR_LIT("INVITE"), ML_STR_LIT("sip:a@b SIP/2.0\r\nEvil: 1\r\nX:"));
  CHECK_EQ(ml_sip_builder_finish(&b, ML_STR_NULL), 0);
  ml_sip_builder_init(&b, OUT, sizeof OUT);
  ml_sip_builder_request_line(&b, ML_STR_LIT("IN VITE"), ML_STR_LIT("sip:a@b"));
  CHECK_EQ(ml_sip_builder_finish(&b, ML_STR_NULL), 0);
  /* a response with a custom reason */
  ml_sip_builder_init(&b, OUT, sizeof OUT);
  ml_sip_builder_status_line(&b, 487, "Request Terminated \xe2\x9c\x93");
  CHECK(ml_sip_builder_finish(&b, ML_STR_NULL) > 0);
}

static const char DIALOG_INVITE[] =
    "INVITE sip:agent@192.0.2.10 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP proxy2.example.com;branch=z9hG4bK3,\r\n"
    "  SIP/2.0/UDP proxy1.example.com:5070;branch=z9hG4bK2;received=192.0.2.3\r\n"
    "Via: SIP/2.0/TCP [2001:db8::1];branch=z9hG4bK1;rport=5099\r\n"
    "Record-Route: <sip:proxy2.example.com;lr>, <sip:proxy1.example.com:5070;lr;transport=udp>\r\n"
    "Record-Route: <sip:[2001:db8::99];lr>\r\n"
    "From: \"Caller \\\"One\\\"\" <sip:caller@example.com>;tag=abc;x-p=\"q,r\"\r\n"
    "To: Agent <sip:agent@example.com>\r\n"
    "Call-ID: dlg-42@example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:caller@[2001:db8::1]:5099;transport=tcp>\r\n"
    "Max-Forwards: 68\r\n"
    "Content-Type: application/sdp\r\n";

/* parse `req`, build a response, parse it back; returns the response */
static int respond(const ml_sip_msg *req, int code, const char *tag, ml_sip_msg *rsp, size_t *len)
{
  ml_sip_builder b;
  ml_sip_builder_init(&b, OUT, sizeof OUT);
  if (ml_sip_build_response(req, code, NULL, ml_str_c(tag), &b) != 0) return -1;
  ml_sip_builder_header(&b, "Contact", ML_STR_LIT("<sip:agent@192.0.2.10>"));
  *len = ml_sip_builder_finish(&b, ML_STR_NULL);
  if (!*len) return -1;
  int rc = ml_sip_parse(rsp, OUT, *len, ML_SIP_STREAM);
  if (rc) fprintf(stderr, "  response %d does not parse: %s\n", code, rsp->err.detail);
  return rc;
}

static void test_build_response(void)
{
  TEST_BEGIN("build_response");
  static ml_sip_msg rsp;
  size_t len = msg_make(DIALOG_INVITE, SDP), n;
  CHECK(accepts("dialog INVITE", B, len, ML_SIP_UDP));
  CHECK_EQ(M.n_via, 3);
  CHECK_EQ(M.n_record_route, 3);

  /* 180 with a tag: Vias in order, From as is, To + tag, Record-Route */
  CHECK_EQ(respond(&M, 180, "t0-42", &rsp, &n), 0);
  CHECK_EQ(rsp.is_request, 0);
  CHECK_EQ(rsp.status, 180);
  CHECK_STR(z(rsp.reason), "Ringing");
  CHECK_EQ(rsp.n_via, 3);
  int same = rsp.n_via == M.n_via;
  for (unsigned i = 0; same && i < rsp.n_via; i++) same = ml_str_eq(rsp.via[i], M.via[i]);
  CHECK(same);
  CHECK_STR(z(rsp.via0.branch), "z9hG4bK3");
  CHECK_STR(z(rsp.from.tag), "abc");
  CHECK_STR(z(rsp.from.display), "\"Caller \\\"One\\\"\"");
  CHECK_STR(z(rsp.to.tag), "t0-42");
  CHECK_STR(z(rsp.to.display), "Agent");
  CHECK_STR(z(rsp.call_id), "dlg-42@example.com");
  CHECK_EQ(rsp.cseq, 314159);
  CHECK_EQ(rsp.cseq_method, ML_SIP_INVITE);
  CHECK_EQ(rsp.n_record_route, 3);
  same = rsp.n_record_route == M.n_record_route;
  for (unsigned i = 0; same && i < rsp.n_record_route; i++)
    same = ml_str_eq(rsp.record_route[i], M.record_route[i]);
  CHECK(same);
  CHECK_EQ(rsp.content_length, 0);
  CHECK_EQ(rsp.n_contact, 1);
  CHECK_EQ(rsp.len, n);
  /* 200: Record-Route too; 100: no tag, no Record-Route; 486: no Record-Route */
  CHECK_EQ(respond(&M, 200, "t0-42", &rsp, &n), 0);
  CHECK_EQ(rsp.n_record_route, 3);
  CHECK_EQ(respond(&M, 100, "", &rsp, &n), 0);
  CHECK_EQ(rsp.to.tag.n, 0);
  CHECK_EQ(rsp.n_record_route, 0);
  CHECK_STR(z(rsp.reason), "Trying");
  CHECK_EQ(respond(&M, 486, "t0-42", &rsp, &n), 0);
  CHECK_EQ(rsp.n_record_route, 0);
  CHECK_STR(z(rsp.to.tag), "t0-42");
  /* a bad tag is refused */
  ml_sip_builder b;
  ml_sip_builder_init(&b, OUT, sizeof OUT);
  CHECK_EQ(ml_sip_build_response(&M, 200, NULL, ML_STR_LIT("bad tag"), &b), -1);

  /* in a dialog: To has a tag already, which is kept and not doubled */
  len = msg_make("BYE sip:agent@192.0.2.10 SIP/2.0\r\n"
                 "Via: SIP/2.0/UDP proxy2.example.com;branch=z9hG4bK9\r\n"
                 "Route: <sip:proxy2.example.com;lr>\r\n"
                 "Record-Route: <sip:proxy2.example.com;lr>\r\n"
                 "From: <sip:caller@example.com>;tag=abc\r\n"
                 "To: Agent <sip:agent@example.com>;tag=t0-42\r\n"
                 "Call-ID: dlg-42@example.com\r\n"
                 "CSeq: 314160 BYE\r\n",
                 "");
  CHECK(accepts("BYE", B, len, ML_SIP_UDP));
  CHECK_EQ(respond(&M, 200, "other", &rsp, &n), 0);
  CHECK_STR(z(rsp.to.tag), "t0-42");
  CHECK_EQ(rsp.n_record_route, 0);
  CHECK(strstr(OUT, "other") == NULL);

  /* SUBSCRIBE creates a dialog too */
  len = msg_make("SUBSCRIBE sip:agent@192.0.2.10 SIP/2.0\r\n"
                 "Via: SIP/2.0/UDP proxy2.example.com;branch=z9hG4bKs\r\n"
                 "Record-Route: <sip:proxy2.example.com;lr>\r\n"
                 "From: <sip:caller@example.com>;tag=abc\r\n"
                 "To: <sip:agent@example.com>\r\n"
                 "Call-ID: sub-1@example.com\r\n"
                 "CSeq: 1 SUBSCRIBE\r\n"
                 "Event: dialog\r\n",
                 "");
  CHECK(accepts("SUBSCRIBE", B, len, ML_SIP_UDP));
  CHECK_EQ(respond(&M, 202, "s1", &rsp, &n), 0);
  CHECK_EQ(rsp.n_record_route, 1);

  /* never to a response or an ACK */
  len = msg_make("ACK sip:agent@192.0.2.10 SIP/2.0\r\n"
                 "Via: SIP/2.0/UDP proxy2.example.com;branch=z9hG4bKa\r\n"
                 "From: <sip:caller@example.com>;tag=abc\r\n"
                 "To: <sip:agent@example.com>;tag=t\r\n"
                 "Call-ID: dlg-42@example.com\r\n"
                 "CSeq: 314159 ACK\r\n",
                 "");
  CHECK(accepts("ACK", B, len, ML_SIP_UDP));
  CHECK_EQ(ml_sip_can_respond(&M), 0);
  ml_sip_builder_init(&b, OUT, sizeof OUT);
  CHECK_EQ(ml_sip_build_response(&M, 200, NULL, ML_STR_NULL, &b), -1);
  CHECK_EQ(ml_sip_build_response(&rsp, 200, NULL, ML_STR_NULL, &b), -1);

  /* the folded, escaped, compact torture messages: a response to each parses */
  test_tortuous();
  TEST_BEGIN("build_response");
  CHECK_EQ(respond(&M, 200, "tt", &rsp, &n), 0);
  CHECK_EQ(rsp.n_via, 3);
  CHECK_STR(z(rsp.to.tag), "1918181833n");
  CHECK(memchr(rsp.via[0].p, '\r', rsp.via[0].n) == NULL);
  test_wide_chars();
  TEST_BEGIN("build_response");
  CHECK_EQ(respond(&M, 200, "wc", &rsp, &n), 0);
  CHECK(rsp.to.display.n == 26 &&
        memcmp(rsp.to.display.p, "\"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f end\"", 26) == 0);
  CHECK_STR(z(rsp.to.tag), "wc");
}

/* ---- stream framing ---------------------------------------------------------- */

static void test_frame(void)
{
  TEST_BEGIN("frame");
  size_t a = msg_make(INVITE_HEAD, SDP), msg_len;
  int rc;
  /* every prefix of one message is "more", the whole of it is one message */
  int wrong = 0;
  for (size_t k = 0; k < a; k++)
    if (ml_sip_frame(B, k, &msg_len) != ML_SIP_FRAME_MORE) wrong++;
  CHECK_EQ(wrong, 0);
  CHECK_EQ(ml_sip_frame(B, a, &msg_len), ML_SIP_FRAME_OK);
  CHECK_EQ(msg_len, a);

  /* two back to back, then a third split at every position */
  size_t b = msg_make_to(B + a, sizeof B - a,
                         "OPTIONS sip:bob@example.org SIP/2.0\r\n"
                         "v: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKo\r\n"
                         "t: <sip:bob@example.org>\r\nf: <sip:a@example.com>;tag=1\r\n"
                         "i: o@x\r\nCSeq: 2 OPTIONS\r\n",
                         "");
  CHECK_EQ(ml_sip_frame(B, a + b, &msg_len), ML_SIP_FRAME_OK);
  CHECK_EQ(msg_len, a);
  CHECK(accepts("first of two", B, msg_len, ML_SIP_STREAM));
  CHECK_EQ(ml_sip_frame(B + a, b, &msg_len), ML_SIP_FRAME_OK);
  CHECK_EQ(msg_len, b);
  CHECK(accepts("second of two", B + a, msg_len, ML_SIP_STREAM));

  /* a transport reading a stream in chunks of every size: 5 messages and 2
   * keep-alives, each found exactly once, nothing copied until complete */
  size_t total = 0, lens[5];
  static char stream[16384], pending[16384];
  for (int i = 0; i < 5; i++) {
    if (i == 2) total += (size_t)snprintf(stream + total, sizeof stream - total, "\r\n\r\n");
    lens[i] = i % 2 ? msg_make_to(stream + total, sizeof stream - total, DIALOG_INVITE, SDP)
                    : msg_make_to(stream + total, sizeof stream - total, INVITE_HEAD, i == 4 ? "" : SDP);
    total += lens[i];
  }
  total += (size_t)snprintf(stream + total, sizeof stream - total, "\r\n\r\n");
  int bad_runs = 0;
  for (size_t chunk = 1; chunk <= 300; chunk += chunk < 40 ? 1 : 37) {
    size_t have = 0, fed = 0;
    int found = 0, keepalives = 0, errors = 0;
    while (fed < total || have) {
      size_t take = total - fed < chunk ? total - fed : chunk;
      memcpy(pending + have, stream + fed, take);
      have += take, fed += take;
      for (;;) {
        rc = ml_sip_frame(pending, have, &msg_len);
        if (rc == ML_SIP_FRAME_MORE) break;
        if (rc == ML_SIP_FRAME_ERROR) {
          errors++;
          have = 0;
          break;
        }
        if (rc == ML_SIP_FRAME_OK) {
          if (found >= 5 || msg_len != lens[found] || ml_sip_parse(&M, pending, msg_len, ML_SIP_STREAM) != 0)
            errors++;
          found++;
        } else {
          keepalives++;
        }
        memmove(pending, pending + msg_len, have - msg_len);
        have -= msg_len;
      }
      if (fed == total && rc == ML_SIP_FRAME_MORE && have) {
        errors++; /* left-over bytes */
        break;
      }
    }
    /* a keep-alive may arrive split in two (CRLF, CRLF): count bytes, not calls */
    if (found != 5 || errors || keepalives < 2) {
      bad_runs++;
      fprintf(stderr, "  chunk %zu: %d messages, %d keep-alives, %d errors\n", chunk, found, keepalives,
              errors);
    }
  }
  CHECK_EQ(bad_runs, 0);

  /* keep-alives (RFC 5626 §3.5.1) */
  CHECK_EQ(ml_sip_frame("\r\n\r\n", 4, &msg_len), ML_SIP_FRAME_KEEPALIVE);
  CHECK_EQ(msg_len, 4);
  CHECK_EQ(ml_sip_frame("\r\n", 2, &msg_len), ML_SIP_FRAME_KEEPALIVE);
  CHECK_EQ(msg_len, 2);
  CHECK_EQ(ml_sip_frame("\r", 1, &msg_len), ML_SIP_FRAME_MORE);
  CHECK_EQ(ml_sip_frame("", 0, &msg_len), ML_SIP_FRAME_MORE);
  CHECK_EQ(ml_sip_frame("\r\n\r\nINVITE", 10, &msg_len), ML_SIP_FRAME_KEEPALIVE);
  CHECK_EQ(msg_len, 4);

  /* what cannot be framed */
  static const struct {
    const char *name, *head;
    int want;
  } heads[] = {
      {"no content-length", "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n", ML_SIP_FRAME_ERROR},
      {"start line only", "OPTIONS sip:a@b SIP/2.0\r\n\r\n", ML_SIP_FRAME_ERROR},
      {"two", "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\nl: 0\r\n\r\n", ML_SIP_FRAME_ERROR},
      {"negative", "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n", ML_SIP_FRAME_ERROR},
      {"list", "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1, 1\r\n\r\n", ML_SIP_FRAME_ERROR},
      {"words", "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n", ML_SIP_FRAME_ERROR},
      {"too big", "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 65536\r\n\r\n", ML_SIP_FRAME_ERROR},
      {"compact", "OPTIONS sip:a@b SIP/2.0\r\nL  :  0\r\n\r\n", ML_SIP_FRAME_OK},
      {"case", "OPTIONS sip:a@b SIP/2.0\r\ncontent-LENGTH:0\r\n\r\n", ML_SIP_FRAME_OK},
      {"folded", "OPTIONS sip:a@b SIP/2.0\r\nContent-Length:\r\n 0\r\nX: y\r\n\r\n", ML_SIP_FRAME_OK},
      {"not a prefix", "OPTIONS sip:a@b SIP/2.0\r\nContent-Length-X: 5\r\nContent-Length: 0\r\n\r\n",
       ML_SIP_FRAME_OK},
      {"in a value", "OPTIONS sip:a@b SIP/2.0\r\nX: Content-Length: 5\r\nContent-Length: 0\r\n\r\n",
       ML_SIP_FRAME_OK},
      {"body waits", "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nabc", ML_SIP_FRAME_MORE},
  };
  for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
    rc = ml_sip_frame(heads[i].head, strlen(heads[i].head), &msg_len);
    if (rc != heads[i].want) fprintf(stderr, "  frame %s: %d\n", heads[i].name, rc);
    CHECK_EQ(rc, heads[i].want);
  }
  /* a head that does not end within 64 KiB */
  memset(B, 'a', ML_SIP_MAX_MSG + 10);
  CHECK_EQ(ml_sip_frame(B, ML_SIP_MAX_MSG - 1, &msg_len), ML_SIP_FRAME_MORE);
  CHECK_EQ(ml_sip_frame(B, ML_SIP_MAX_MSG + 10, &msg_len), ML_SIP_FRAME_ERROR);

  /* framing agrees with the parser on every torture message that has a length */
  size_t len = long_message(B, sizeof B);
  CHECK_EQ(ml_sip_frame(B, len, &msg_len), ML_SIP_FRAME_OK);
  CHECK_EQ(msg_len, len);
}

/* ---- speed (printed, not asserted) ------------------------------------------- */

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void test_speed(void)
{
  TEST_BEGIN("speed");
  size_t len = msg_make(INVITE_HEAD, SDP);
  int fails = 0, iters = 0;
  double t0 = now_s(), t;
  do {
    for (int i = 0; i < 10000; i++) fails += ml_sip_parse(&M, B, len, ML_SIP_UDP) != 0;
    iters += 10000;
    t = now_s() - t0;
  } while (t < 0.5);
  CHECK_EQ(fails, 0);
  printf("parse: %.0f messages/s, %.0f MB/s (%zu-byte INVITE with SDP, %d headers)\n", iters / t,
         iters * (double)len / t / 1e6, len, (int)M.n_headers);

  ml_sip_builder b;
  iters = 0;
  t0 = now_s();
  do {
    for (int i = 0; i < 10000; i++) {
      ml_sip_builder_init(&b, OUT, sizeof OUT);
      ml_sip_build_response(&M, 180, NULL, ML_STR_LIT("as8d7f"), &b);
      fails += ml_sip_builder_finish(&b, ML_STR_NULL) == 0;
    }
    iters += 10000;
    t = now_s() - t0;
  } while (t < 0.25);
  CHECK_EQ(fails, 0);
  printf("build_response: %.0f responses/s\n", iters / t);
}

int main(void)
{
  test_typical();
  test_tortuous();
  test_wide_chars();
  test_escapes();
  test_lws_display();
  test_long_values();
  test_extra_octets();
  test_semicolon_user();
  test_transports();
  test_multipart();
  test_reason_phrases();
  test_ipv6();
  test_unknown_schemes();
  test_max_forwards();
  test_rfc2543();
  test_application_cases();
  test_invalid();
  test_content_length();
  test_limits();
  test_build_request();
  test_build_response();
  test_frame();
  test_speed();
  return ML_TEST_DONE("test_sip_msg");
}
