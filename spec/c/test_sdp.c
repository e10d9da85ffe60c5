/* SDP (engine/sip/sdp.c): the strict parser, RFC 3264 negotiation and the
 * writer, with round trips between them. */
#include <stdint.h>
#include <string.h>

#include "ml_test.h"
#include "sdp.h"

static ml_sdp sdp; /* ~10 KiB: static, not on the stack of every test */
static ml_sdp sdp2;

static ml_sdp_err parse(const char *text) { return ml_sdp_parse(&sdp, text, strlen(text)); }

static int str_is(ml_str s, const char *c) { return ml_str_eq(s, ml_str_c(c)); }

static ml_sdp_caps caps_default(void)
{
  ml_sdp_caps caps = {.pcmu = 1, .pcma = 1};
  ml_sdp_events_add(&caps.events, 0, 15);
  return caps;
}

#define HEAD "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"

/* ---- parsing ----------------------------------------------------------------- */

static void test_parse_full(void)
{
  TEST_BEGIN("parse_full");
  const char *text = "v=0\r\n"
                     "o=alice 2890844526 2890844527 IN IP4 host.atlanta.example\r\n"
                     "s=Call\r\n"
                     "i=a session\r\n"
                     "c=IN IP4 198.51.100.7\r\n"
                     "b=AS:64\r\n"
                     "t=0 0\r\n"
                     "a=sendonly\r\n"
                     "a=tool:x\r\n"
                     "m=audio 49170 RTP/AVP 0 8 97 101\r\n"
                     "c=IN IP6 2001:db8::7\r\n"
                     "a=rtpmap:0 PCMU/8000\r\n"
                     "a=rtpmap:97 iLBC/8000\r\n"
                     "a=rtpmap:101 telephone-event/8000\r\n"
                     "a=fmtp:101 0-15\r\n"
                     "a=fmtp:97 mode=30\r\n"
                     "a=ptime:30\r\n"
                     "a=maxptime:60\r\n"
                     "a=rtcp:49171 IN IP4 198.51.100.8\r\n"
                     "a=recvonly\r\n"
                     "m=video 0 RTP/AVP 31\r\n";
  CHECK_EQ(parse(text), ML_SDP_OK);
  CHECK(str_is(sdp.origin_user, "alice"));
  CHECK(str_is(sdp.sess_id, "2890844526"));
  CHECK_EQ(sdp.sess_version, 2890844527u);
  CHECK_EQ(sdp.origin.addrtype, ML_SDP_IP4);
  CHECK(str_is(sdp.origin.addr, "host.atlanta.example"));
  CHECK(str_is(sdp.name, "Call"));
  CHECK_EQ(sdp.conn.addrtype, ML_SDP_IP4);
  CHECK(str_is(sdp.conn.addr, "198.51.100.7"));
  CHECK_EQ(sdp.dir, ML_SDP_SENDONLY);
  CHECK_EQ(sdp.nmedia, 2);
  const ml_sdp_media *m = &sdp.media[0];
  CHECK(str_is(m->type, "audio"));
  CHECK(m->audio && m->rtp);
  CHECK_EQ(m->port, 49170);
  CHECK_EQ(m->nports, 1);
  CHECK(str_is(m->proto, "RTP/AVP"));
  CHECK(str_is(m->fmts, "0 8 97 101"));
  CHECK_EQ(m->npt, 4);
  CHECK(m->pt[0] == 0 && m->pt[1] == 8 && m->pt[2] == 97 && m->pt[3] == 101);
  CHECK_EQ(m->nrtpmap, 3);
  const ml_sdp_rtpmap *r = ml_sdp_media_rtpmap(m, 101);
  CHECK(r && str_is(r->encoding, "telephone-event") && r->clock == 8000 && r->channels == 1);
  CHECK(ml_sdp_media_rtpmap(m, 8) == NULL);
  const ml_sdp_fmtp *f = ml_sdp_media_fmtp(m, 97);
  CHECK(f && str_is(f->params, "mode=30"));
  CHECK_EQ(m->ptime, 30);
  CHECK_EQ(m->maxptime, 60);
  CHECK_EQ(m->rtcp_port, 49171);
  CHECK(m->rtcp_conn.addrtype == ML_SDP_IP4 && str_is(m->rtcp_conn.addr, "198.51.100.8"));
  CHECK_EQ(m->dir, ML_SDP_RECVONLY);
  CHECK_EQ(ml_sdp_media_dir(&sdp, m), ML_SDP_RECVONLY); /* media overrides session */
  ml_sdp_conn c = ml_sdp_media_conn(&sdp, m);
  CHECK(c.addrtype == ML_SDP_IP6 && str_is(c.addr, "2001:db8::7"));
  const ml_sdp_media *v = &sdp.media[1];
  CHECK(str_is(v->type, "video") && !v->audio && v->port == 0 && v->npt == 0 && str_is(v->fmts, "31"));
  CHECK_EQ(ml_sdp_media_dir(&sdp, v), ML_SDP_SENDONLY); /* the session's */
}

static void test_parse_lenient(void)
{
  TEST_BEGIN("parse_lenient");
  /* LF endings, no final line break */
  CHECK_EQ(parse("v=0\no=- 1 1 IN IP4 h\ns=x\nc=IN IP4 1.2.3.4\nt=0 0\nm=audio 4000 RTP/AVP 0"), ML_SDP_OK);
  CHECK(sdp.nmedia == 1 && sdp.media[0].npt == 1);
  /* trailing blanks at line ends, blank lines at the end */
  CHECK_EQ(parse("v=0 \r\no=- 1 1 IN IP4 h\t\r\ns= \r\nt=0 0\r\n\r\n\r\n"), ML_SDP_OK);
  CHECK_EQ(sdp.name.n, 0);
  /* multicast ttl, port count, a real ptime, unknown attributes and lines */
  CHECK_EQ(parse("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 224.2.1.1/127/3\r\nt=0 0\r\nr=7d 1h 0 25h\r\n"
                 "z=2882844526 -1h\r\nk=prompt\r\nm=audio 4000/2 RTP/AVP 0\r\na=ptime:20.5\r\na=x-foo\r\n"
                 "a=rtcp:4001\r\nb=AS:80\r\n"),
           ML_SDP_OK);
  CHECK(str_is(sdp.conn.addr, "224.2.1.1"));
  CHECK_EQ(sdp.media[0].nports, 2);
  CHECK_EQ(sdp.media[0].ptime, 20);
  CHECK(sdp.media[0].rtcp_port == 4001 && sdp.media[0].rtcp_conn.addrtype == ML_SDP_ADDR_NONE);
  /* non-RTP media keep token formats; a rejected stream needs no c= */
  CHECK_EQ(
      parse("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=image 0 udptl t38\r\n"
            "m=application 0 UDP/BFCP *\r\nm=video 0 UDP/TLS/RTP/SAVPF 96 97\r\na=rtpmap:96 garbage\r\n"),
      ML_SDP_OK);
  CHECK(sdp.nmedia == 3 && !sdp.media[0].rtp && sdp.media[2].rtp && str_is(sdp.media[0].fmts, "t38"));
}

static const struct {
  const char *text;
  ml_sdp_err err;
  unsigned line;
} bad_sdp[] = {
    {"", ML_SDP_ERR_VERSION, 0},
    {"o=- 1 1 IN IP4 h\r\n", ML_SDP_ERR_VERSION, 1},
    {"v=1\r\n", ML_SDP_ERR_VERSION, 1},
    {"v=0\r\nv=0\r\n", ML_SDP_ERR_DUPLICATE, 2},
    {"v=0\r\ns=-\r\nt=0 0\r\n", ML_SDP_ERR_ORIGIN, 3},
    {"v=0\r\no=- 1 1 IN IP4\r\n", ML_SDP_ERR_ORIGIN, 2},
    {"v=0\r\no=- 1 x IN IP4 h\r\n", ML_SDP_ERR_ORIGIN, 2},
    {"v=0\r\no=- 1a 1 IN IP4 h\r\n", ML_SDP_ERR_ORIGIN, 2},
    {"v=0\r\no=- 1 1 IN IP5 h\r\n", ML_SDP_ERR_ORIGIN, 2},
    {"v=0\r\no=- 1 1 ATM IP4 h\r\n", ML_SDP_ERR_ORIGIN, 2},
    {"v=0\r\no=- 1  1 IN IP4 h\r\n", ML_SDP_ERR_ORIGIN, 2},
    {"v=0\r\no=- 1 1 IN IP4 h x\r\n", ML_SDP_ERR_ORIGIN, 2},
    {"v=0\r\no=- 1 1 IN IP4 h\r\no=- 1 1 IN IP4 h\r\n", ML_SDP_ERR_DUPLICATE, 3},
    {"v=0\r\no=- 1 1 IN IP4 h\r\nt=0 0\r\n", ML_SDP_ERR_NAME, 3},
    {"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\n", ML_SDP_ERR_TIMING, 3},
    {"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0\r\n", ML_SDP_ERR_TIMING, 4},
    {"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 x\r\n", ML_SDP_ERR_TIMING, 4},
    {"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=audio 4000 RTP/AVP 0\r\n", ML_SDP_ERR_TIMING, 4},
    {HEAD "c=IN IP4 1.2.3.4\r\n", ML_SDP_ERR_DUPLICATE, 6},
    {"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4\r\n", ML_SDP_ERR_CONNECTION, 4},
    {"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP7 1.2.3.4\r\n", ML_SDP_ERR_CONNECTION, 4},
    {"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 1.2.3.4 5\r\n", ML_SDP_ERR_CONNECTION, 4},
    {"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 1.2.3.4/x\r\n", ML_SDP_ERR_CONNECTION, 4},
    {"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 a;b\r\n", ML_SDP_ERR_CONNECTION, 4},
    {"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n", ML_SDP_ERR_CONNECTION, 5},
    {HEAD "m=audio abc RTP/AVP 0\r\n", ML_SDP_ERR_PORT, 6},
    {HEAD "m=audio 70000 RTP/AVP 0\r\n", ML_SDP_ERR_PORT, 6},
    {HEAD "m=audio -1 RTP/AVP 0\r\n", ML_SDP_ERR_PORT, 6},
    {HEAD "m=audio 4000/0 RTP/AVP 0\r\n", ML_SDP_ERR_PORT, 6},
    {HEAD "m=audio 4000 RTP/AVP x\r\n", ML_SDP_ERR_PAYLOAD, 6},
    {HEAD "m=audio 4000 RTP/AVP 128\r\n", ML_SDP_ERR_PAYLOAD, 6},
    {HEAD "m=video 4000 RTP/AVP 0 H261\r\n", ML_SDP_ERR_PAYLOAD, 6},
    {HEAD "m=audio 4000 RTP/AVP\r\n", ML_SDP_ERR_MEDIA, 6},
    {HEAD "m=audio 4000 RTP/AVP 0  8\r\n", ML_SDP_ERR_MEDIA, 6},
    {HEAD "m=au\"dio 4000 RTP/AVP 0\r\n", ML_SDP_ERR_MEDIA, 6},
    {HEAD "m=audio 4000 RTP/AVP 0\r\na=rtpmap:x PCMU/8000\r\n", ML_SDP_ERR_RTPMAP, 7},
    {HEAD "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n", ML_SDP_ERR_RTPMAP, 7},
    {HEAD "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/abc\r\n", ML_SDP_ERR_RTPMAP, 7},
    {HEAD "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000/0\r\n", ML_SDP_ERR_RTPMAP, 7},
    {HEAD "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000/1/2\r\n", ML_SDP_ERR_RTPMAP, 7},
    {HEAD "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0\r\n", ML_SDP_ERR_RTPMAP, 7},
    {HEAD "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:0 PCMU/8000\r\n", ML_SDP_ERR_DUPLICATE,
     8},
    {HEAD "m=audio 4000 RTP/AVP 101\r\na=fmtp:101\r\n", ML_SDP_ERR_FMTP, 7},
    {HEAD "m=audio 4000 RTP/AVP 101\r\na=fmtp:x 0-15\r\n", ML_SDP_ERR_FMTP, 7},
    {HEAD "m=audio 4000 RTP/AVP 101\r\na=fmtp:101 0-15\r\na=fmtp:101 0-16\r\n", ML_SDP_ERR_DUPLICATE, 8},
    {HEAD "m=audio 4000 RTP/AVP 0\r\na=ptime:abc\r\n", ML_SDP_ERR_PTIME, 7},
    {HEAD "m=audio 4000 RTP/AVP 0\r\na=ptime:0\r\n", ML_SDP_ERR_PTIME, 7},
    {HEAD "m=audio 4000 RTP/AVP 0\r\na=ptime:20.x\r\n", ML_SDP_ERR_PTIME, 7},
    {HEAD "m=audio 4000 RTP/AVP 0\r\na=maxptime:99999\r\n", ML_SDP_ERR_PTIME, 7},
    {HEAD "m=audio 4000 RTP/AVP 0\r\na=ptime:20\r\na=ptime:30\r\n", ML_SDP_ERR_DUPLICATE, 8},
    {HEAD "m=audio 4000 RTP/AVP 0\r\na=rtcp:x\r\n", ML_SDP_ERR_RTCP, 7},
    {HEAD "m=audio 4000 RTP/AVP 0\r\na=rtcp:4001 IN IP4\r\n", ML_SDP_ERR_RTCP, 7},
    {HEAD "a=sendonly\r\na=recvonly\r\n", ML_SDP_ERR_DUPLICATE, 7},
    {HEAD "m=audio 4000 RTP/AVP 0\r\na=sendonly\r\na=inactive\r\n", ML_SDP_ERR_DUPLICATE, 8},
    {HEAD "a=sendrecv:yes\r\n", ML_SDP_ERR_ATTRIBUTE, 6},
    {HEAD "a=\r\n", ML_SDP_ERR_ATTRIBUTE, 6},
    {HEAD "a=:x\r\n", ML_SDP_ERR_ATTRIBUTE, 6},
    {HEAD "x=foo\r\n", ML_SDP_ERR_TYPE, 6},
    {HEAD "m=audio 4000 RTP/AVP 0\r\nt=0 0\r\n", ML_SDP_ERR_ORDER, 7},
    {HEAD "m=audio 4000 RTP/AVP 0\r\ns=x\r\n", ML_SDP_ERR_ORDER, 7},
    {"V=0\r\n", ML_SDP_ERR_SYNTAX, 1},
    {"v = 0\r\n", ML_SDP_ERR_SYNTAX, 1},
    {"v=0\r\nx\r\n", ML_SDP_ERR_SYNTAX, 2},
    {"v=0\ro=- 1 1 IN IP4 h\r\n", ML_SDP_ERR_SYNTAX, 1},
    {"v=0\r\ns=a\rb\r\n", ML_SDP_ERR_SYNTAX, 2},
    {"v=0\r\n\r\no=- 1 1 IN IP4 h\r\n", ML_SDP_ERR_SYNTAX, 2},
};

static void test_parse_errors(void)
{
  TEST_BEGIN("parse_errors");
  for (size_t i = 0; i < sizeof bad_sdp / sizeof bad_sdp[0]; i++) {
    ml_sdp_err err = parse(bad_sdp[i].text);
    if (err != bad_sdp[i].err || sdp.line != bad_sdp[i].line)
      fprintf(stderr, "  case %zu: got %s at line %u, want %s at line %u\n", i, ml_sdp_strerror(err),
              sdp.line, ml_sdp_strerror(bad_sdp[i].err), bad_sdp[i].line);
    CHECK_EQ(err, bad_sdp[i].err);
    CHECK_EQ(sdp.line, bad_sdp[i].line);
  }
  /* a NUL inside a line */
  static const char nul[] = "v=0\r\ns=a\0b\r\n";
  CHECK_EQ(ml_sdp_parse(&sdp, nul, sizeof nul - 1), ML_SDP_ERR_SYNTAX);
  CHECK_EQ(ml_sdp_parse(&sdp, NULL, 0), ML_SDP_ERR_VERSION);
  for (int e = ML_SDP_OK; e <= ML_SDP_ERR_LIMIT; e++)
    CHECK(strcmp(ml_sdp_strerror((ml_sdp_err)e), "unknown error"));
}

static void test_parse_limits(void)
{
  TEST_BEGIN("parse_limits");
  char text[8192];
  size_t n = (size_t)snprintf(text, sizeof text, "%s", HEAD);
  for (int i = 0; i < ML_SDP_MAX_MEDIA; i++)
    n += (size_t)snprintf(text + n, sizeof text - n, "m=video 0 RTP/AVP 31\r\n");
  CHECK_EQ(ml_sdp_parse(&sdp, text, n), ML_SDP_OK);
  n += (size_t)snprintf(text + n, sizeof text - n, "m=video 0 RTP/AVP 31\r\n");
  CHECK_EQ(ml_sdp_parse(&sdp, text, n), ML_SDP_ERR_LIMIT);

  n = (size_t)snprintf(text, sizeof text, "%sm=audio 4000 RTP/AVP", HEAD);
  for (int i = 0; i < ML_SDP_MAX_PT; i++) n += (size_t)snprintf(text + n, sizeof text - n, " %d", 96 + i);
  CHECK_EQ(ml_sdp_parse(&sdp, text, n), ML_SDP_OK);
  CHECK_EQ(ml_sdp_parse(&sdp, text, n + (size_t)snprintf(text + n, sizeof text - n, " 0")), ML_SDP_ERR_LIMIT);

  n = (size_t)snprintf(text, sizeof text, "%sm=audio 4000 RTP/AVP 0\r\n", HEAD);
  for (int i = 0; i < ML_SDP_MAX_RTPMAP; i++)
    n += (size_t)snprintf(text + n, sizeof text - n, "a=rtpmap:%d X/8000\r\n", 96 + i);
  CHECK_EQ(ml_sdp_parse(&sdp, text, n), ML_SDP_OK);
  n += (size_t)snprintf(text + n, sizeof text - n, "a=rtpmap:0 PCMU/8000\r\n");
  CHECK_EQ(ml_sdp_parse(&sdp, text, n), ML_SDP_ERR_LIMIT);

  n = (size_t)snprintf(text, sizeof text, "%sm=audio 4000 RTP/AVP 0\r\n", HEAD);
  for (int i = 0; i <= ML_SDP_MAX_FMTP; i++)
    n += (size_t)snprintf(text + n, sizeof text - n, "a=fmtp:%d x\r\n", i);
  CHECK_EQ(ml_sdp_parse(&sdp, text, n), ML_SDP_ERR_LIMIT);
  /* other media are not detailed, so their attributes do not count */
  n = (size_t)snprintf(text, sizeof text, "%sm=video 4000 RTP/AVP 96\r\n", HEAD);
  for (int i = 0; i < 100; i++)
    n += (size_t)snprintf(text + n, sizeof text - n, "a=rtpmap:%d X/90000\r\n", i);
  CHECK_EQ(ml_sdp_parse(&sdp, text, n), ML_SDP_OK);
}

static void test_events(void)
{
  TEST_BEGIN("events");
  ml_sdp_events ev;
  CHECK_EQ(ml_sdp_events_parse(&ev, ML_STR_LIT("0-15")), 0);
  CHECK(ml_sdp_events_has(&ev, 0) && ml_sdp_events_has(&ev, 15) && !ml_sdp_events_has(&ev, 16));
  CHECK_EQ(ml_sdp_events_parse(&ev, ML_STR_LIT("0-11,16")), 0);
  CHECK(ml_sdp_events_has(&ev, 11) && !ml_sdp_events_has(&ev, 12) && ml_sdp_events_has(&ev, 16));
  CHECK_EQ(ml_sdp_events_parse(&ev, ML_STR_LIT("255")), 0);
  CHECK(ml_sdp_events_has(&ev, 255) && !ml_sdp_events_has(&ev, 256) && !ml_sdp_events_empty(&ev));
  const char *invalid[] = {"", "16-15", "0-256", "1,", ",1", "a", "1--2", "0-15 ", "-3"};
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
    CHECK_EQ(ml_sdp_events_parse(&ev, ml_str_c(invalid[i])), -1);
}

/* ---- negotiation ------------------------------------------------------------------- */

static ml_sdp_neg negotiate(const char *body, const ml_sdp_caps *caps, ml_sdp_answer_params *a)
{
  ml_sdp_err err = parse(body);
  if (err) {
    fprintf(stderr, "  offer does not parse: %s at line %u\n", ml_sdp_strerror(err), sdp.line);
    return (ml_sdp_neg)-1;
  }
  return ml_sdp_negotiate(&sdp, caps, a);
}

static void test_negotiate_codecs(void)
{
  TEST_BEGIN("negotiate_codecs");
  ml_sdp_caps caps = caps_default();
  ml_sdp_answer_params a;
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 0\r\n", &caps, &a), ML_SDP_NEG_OK);
  CHECK(a.codec == ML_SDP_PCMU && a.pt == 0 && a.te_pt == -1 && a.media == 0);
  CHECK(a.ptime == 20 && a.dir == ML_SDP_SENDRECV && a.send && a.recv && !a.held);
  CHECK(a.remote.addrtype == ML_SDP_IP4 && str_is(a.remote.addr, "192.0.2.1"));
  CHECK(a.remote_port == 4000 && a.remote_rtcp_port == 4001);
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 8\r\n", &caps, &a), ML_SDP_NEG_OK);
  CHECK(a.codec == ML_SDP_PCMA && a.pt == 8);
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 0 8\r\n", &caps, &a), ML_SDP_NEG_OK);
  CHECK(a.codec == ML_SDP_PCMU && a.pt == 0);
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 8 0\r\n", &caps, &a), ML_SDP_NEG_OK);
  CHECK(a.codec == ML_SDP_PCMA && a.pt == 8);
  /* an unknown codec first is skipped; our own limits apply */
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 9 18 8 0\r\n", &caps, &a), ML_SDP_NEG_OK);
  CHECK(a.codec == ML_SDP_PCMA);
  caps.pcma = 0;
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 8 0\r\n", &caps, &a), ML_SDP_NEG_OK);
  CHECK(a.codec == ML_SDP_PCMU && a.pt == 0);
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 8\r\n", &caps, &a), ML_SDP_NEG_NO_CODEC);
  caps = caps_default();
  /* dynamic payload types by rtpmap name (case-insensitive), at 8 kHz mono only */
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 96 97 98\r\na=rtpmap:96 opus/48000/2\r\n"
                          "a=rtpmap:97 PCMU/16000\r\na=rtpmap:98 pcma/8000\r\n",
                     &caps, &a),
           ML_SDP_NEG_OK);
  CHECK(a.codec == ML_SDP_PCMA && a.pt == 98);
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 PCMU/8000/2\r\n", &caps, &a),
           ML_SDP_NEG_NO_CODEC);
  /* an rtpmap on a static type is the peer's word */
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 G722/8000\r\n", &caps, &a),
           ML_SDP_NEG_NO_CODEC);
  /* no common codec: 488 */
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 9 18\r\na=rtpmap:18 G729/8000\r\n", &caps, &a),
           ML_SDP_NEG_NO_CODEC);
  /* no usable audio: none, port 0, SRTP */
  CHECK_EQ(negotiate(HEAD "m=video 4000 RTP/AVP 31\r\n", &caps, &a), ML_SDP_NEG_NO_AUDIO);
  CHECK_EQ(negotiate(HEAD "m=audio 0 RTP/AVP 0\r\n", &caps, &a), ML_SDP_NEG_NO_AUDIO);
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/SAVP 0\r\n", &caps, &a), ML_SDP_NEG_NO_AUDIO);
  CHECK_EQ(negotiate(HEAD, &caps, &a), ML_SDP_NEG_NO_AUDIO);
  CHECK(strcmp(ml_sdp_neg_strerror(ML_SDP_NEG_NO_CODEC), "no common codec") == 0);
}

static void test_negotiate_events(void)
{
  TEST_BEGIN("negotiate_events");
  ml_sdp_caps caps = caps_default();
  ml_sdp_answer_params a;
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
                          "a=fmtp:101 0-16\r\n",
                     &caps, &a),
           ML_SDP_NEG_OK);
  CHECK(a.te_pt == 101 && ml_sdp_events_has(&a.events, 15) && !ml_sdp_events_has(&a.events, 16));
  ml_sdp_events_add(&caps.events, 16, 16);
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 96 0\r\na=rtpmap:96 telephone-event/8000\r\n"
                          "a=fmtp:96 0-16\r\n",
                     &caps, &a),
           ML_SDP_NEG_OK);
  CHECK(a.te_pt == 96 && a.pt == 0 && ml_sdp_events_has(&a.events, 16));
  /* no fmtp: 0-15 (RFC 4733) */
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n", &caps, &a),
           ML_SDP_NEG_OK);
  CHECK(a.te_pt == 101 && ml_sdp_events_has(&a.events, 15) && !ml_sdp_events_has(&a.events, 16));
  /* the 8 kHz one among several */
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 0 100 101\r\na=rtpmap:100 telephone-event/16000\r\n"
                          "a=rtpmap:101 telephone-event/8000\r\n",
                     &caps, &a),
           ML_SDP_NEG_OK);
  CHECK_EQ(a.te_pt, 101);
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 0 100\r\na=rtpmap:100 telephone-event/16000\r\n", &caps, &a),
           ML_SDP_NEG_OK);
  CHECK_EQ(a.te_pt, -1);
  /* nothing in common, a broken fmtp, or we take no events */
  caps = caps_default();
  CHECK_EQ(negotiate(HEAD
                     "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 16\r\n",
                     &caps, &a),
           ML_SDP_NEG_OK);
  CHECK(a.te_pt == -1 && ml_sdp_events_empty(&a.events));
  CHECK_EQ(negotiate(HEAD
                     "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 x\r\n",
                     &caps, &a),
           ML_SDP_NEG_OK);
  CHECK_EQ(a.te_pt, -1);
  memset(&caps.events, 0, sizeof caps.events);
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n", &caps, &a),
           ML_SDP_NEG_OK);
  CHECK_EQ(a.te_pt, -1);
  /* telephone-event alone is no codec */
  caps = caps_default();
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 101\r\na=rtpmap:101 telephone-event/8000\r\n", &caps, &a),
           ML_SDP_NEG_NO_CODEC);
}

static void test_negotiate_ptime(void)
{
  TEST_BEGIN("negotiate_ptime");
  ml_sdp_caps caps = caps_default();
  ml_sdp_answer_params a;
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 0\r\na=ptime:30\r\n", &caps, &a), ML_SDP_NEG_OK);
  CHECK_EQ(a.ptime, 30);
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 0\r\na=ptime:40\r\n", &caps, &a), ML_SDP_NEG_OK);
  CHECK_EQ(a.ptime, 20);
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 0\r\na=ptime:30\r\na=maxptime:20\r\n", &caps, &a),
           ML_SDP_NEG_OK);
  CHECK_EQ(a.ptime, 20);
  caps.ptime = 30;
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 0\r\n", &caps, &a), ML_SDP_NEG_OK);
  CHECK_EQ(a.ptime, 30);
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 0\r\na=ptime:20\r\n", &caps, &a), ML_SDP_NEG_OK);
  CHECK_EQ(a.ptime, 20);
}

static void test_negotiate_hold(void)
{
  TEST_BEGIN("negotiate_hold");
  ml_sdp_caps caps = caps_default();
  ml_sdp_answer_params a;
  static const struct {
    const char *body;
    ml_sdp_dir dir;
    int send, recv, held;
  } cases[] = {
      {HEAD "m=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n", ML_SDP_SENDRECV, 1, 1, 0},
      {HEAD "m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n", ML_SDP_RECVONLY, 0, 1, 1},
      {HEAD "m=audio 4000 RTP/AVP 0\r\na=recvonly\r\n", ML_SDP_SENDONLY, 1, 0, 0},
      {HEAD "m=audio 4000 RTP/AVP 0\r\na=inactive\r\n", ML_SDP_INACTIVE, 0, 0, 1},
      {HEAD "a=sendonly\r\nm=audio 4000 RTP/AVP 0\r\n", ML_SDP_RECVONLY, 0, 1, 1},
      {HEAD "a=inactive\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n", ML_SDP_SENDRECV, 1, 1, 0},
      /* RFC 2543 hold: the offerer receives nothing at 0.0.0.0 */
      {"v=0\r\no=- 1 2 IN IP4 h\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
       ML_SDP_RECVONLY, 0, 1, 1},
      {"v=0\r\no=- 1 2 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 "
       "0.0.0.0\r\na=sendonly\r\n",
       ML_SDP_RECVONLY, 0, 1, 1},
      {"v=0\r\no=- 1 2 IN IP4 h\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP "
       "0\r\na=recvonly\r\n",
       ML_SDP_INACTIVE, 0, 0, 1},
      /* the media c= wins over a held session c= */
      {"v=0\r\no=- 1 2 IN IP4 h\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 "
       "1.2.3.4\r\n",
       ML_SDP_SENDRECV, 1, 1, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CHECK_EQ(negotiate(cases[i].body, &caps, &a), ML_SDP_NEG_OK);
    if (a.dir != cases[i].dir) fprintf(stderr, "  hold case %zu\n", i);
    CHECK_EQ(a.dir, cases[i].dir);
    CHECK_EQ(a.send, cases[i].send);
    CHECK_EQ(a.recv, cases[i].recv);
    CHECK_EQ(a.held, cases[i].held);
  }
  /* our own direction limits the answer (we hold in an answer) */
  caps.dir = ML_SDP_SENDONLY;
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 0\r\n", &caps, &a), ML_SDP_NEG_OK);
  CHECK(a.dir == ML_SDP_SENDONLY && a.send && !a.recv && !a.held);
  caps.dir = ML_SDP_INACTIVE;
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 0\r\n", &caps, &a), ML_SDP_NEG_OK);
  CHECK_EQ(a.dir, ML_SDP_INACTIVE);
}

static void test_negotiate_media(void)
{
  TEST_BEGIN("negotiate_media");
  ml_sdp_caps caps = caps_default();
  ml_sdp_answer_params a;
  CHECK_EQ(negotiate(HEAD "m=video 5000 RTP/AVP 31\r\nm=audio 4000 RTP/AVP 0 101\r\nc=IN IP6 2001:db8::1\r\n"
                          "a=rtpmap:101 telephone-event/8000\r\na=rtcp:4005\r\nm=image 0 udptl t38\r\n",
                     &caps, &a),
           ML_SDP_NEG_OK);
  CHECK(a.media == 1 && a.pt == 0 && a.te_pt == 101);
  CHECK(a.remote.addrtype == ML_SDP_IP6 && str_is(a.remote.addr, "2001:db8::1"));
  CHECK(a.remote_port == 4000 && a.remote_rtcp_port == 4005);
  /* the first audio stream with a common codec */
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/AVP 18\r\nm=audio 4002 RTP/AVP 8\r\n", &caps, &a), ML_SDP_NEG_OK);
  CHECK(a.media == 1 && a.codec == ML_SDP_PCMA && a.remote_port == 4002);
  CHECK_EQ(negotiate(HEAD "m=audio 4000 RTP/SAVP 0\r\nm=audio 4002 RTP/AVP 0\r\n", &caps, &a), ML_SDP_NEG_OK);
  CHECK_EQ(a.media, 1);
}

/* ---- writing ----------------------------------------------------------------------- */

/* what the UA sets after ml_sdp_desc_offer/answer */
static void desc_ours(ml_sdp_desc *d, uint64_t version)
{
  d->username = ML_STR_LIT("moonline");
  d->sess_id = 4242;
  d->sess_version = version;
  d->addrtype = ML_SDP_IP4;
  d->addr = ML_STR_LIT("203.0.113.5");
  d->name = ML_STR_LIT("moonline");
  d->port = 30000;
}

static void test_write_offer(void)
{
  TEST_BEGIN("write_offer");
  char buf[1024];
  ml_sdp_caps caps = caps_default();
  ml_sdp_desc d;
  memset(&d, 0xa5, sizeof d); /* whatever was there before */
  ml_sdp_desc_offer(&d, &caps);
  desc_ours(&d, 1);
  int n = ml_sdp_write(buf, sizeof buf, &d);
  const char *want = "v=0\r\n"
                     "o=moonline 4242 1 IN IP4 203.0.113.5\r\n"
                     "s=moonline\r\n"
                     "c=IN IP4 203.0.113.5\r\n"
                     "t=0 0\r\n"
                     "m=audio 30000 RTP/AVP 0 8 101\r\n"
                     "a=rtpmap:0 PCMU/8000\r\n"
                     "a=rtpmap:8 PCMA/8000\r\n"
                     "a=rtpmap:101 telephone-event/8000\r\n"
                     "a=fmtp:101 0-15\r\n"
                     "a=ptime:20\r\n"
                     "a=sendrecv\r\n";
  CHECK_EQ(n, (int)strlen(want));
  CHECK_STR(buf, want);
  /* exactly enough room needs one byte for the NUL */
  CHECK_EQ(ml_sdp_write(buf, (size_t)n + 1, &d), n);
  CHECK_EQ(ml_sdp_write(buf, (size_t)n, &d), -1);
  CHECK_EQ(ml_sdp_write(buf, 10, &d), -1);
  CHECK_EQ(ml_sdp_write(buf, 0, &d), -1);

  /* our offer, parsed and answered by ourselves */
  CHECK_EQ(ml_sdp_write(buf, sizeof buf, &d), n);
  CHECK_EQ(ml_sdp_parse(&sdp, buf, (size_t)n), ML_SDP_OK);
  CHECK(str_is(sdp.origin_user, "moonline") && str_is(sdp.sess_id, "4242") && sdp.sess_version == 1);
  ml_sdp_answer_params a;
  CHECK_EQ(ml_sdp_negotiate(&sdp, &caps, &a), ML_SDP_NEG_OK);
  CHECK(a.codec == ML_SDP_PCMU && a.te_pt == 101 && a.ptime == 20 && a.dir == ML_SDP_SENDRECV);
  CHECK(str_is(a.remote.addr, "203.0.113.5") && a.remote_port == 30000);

  /* a re-offer to hold: new version, sendonly; IPv6, extra events, rtcp */
  d.sess_version++;
  d.dir = ML_SDP_SENDONLY;
  d.addrtype = ML_SDP_IP6;
  d.addr = ML_STR_LIT("2001:db8::5");
  d.rtcp_port = 30001;
  d.ptime = 30;
  ml_sdp_events_add(&d.events, 16, 16);
  ml_sdp_events_add(&d.events, 20, 22);
  n = ml_sdp_write(buf, sizeof buf, &d);
  CHECK(n > 0);
  CHECK(strstr(buf, "o=moonline 4242 2 IN IP6 2001:db8::5\r\n") != NULL);
  CHECK(strstr(buf, "c=IN IP6 2001:db8::5\r\n") != NULL);
  CHECK(strstr(buf, "a=fmtp:101 0-16,20-22\r\na=ptime:30\r\na=rtcp:30001\r\na=sendonly\r\n") != NULL);
  CHECK_EQ(ml_sdp_parse(&sdp2, buf, (size_t)n), ML_SDP_OK);
  CHECK_EQ(sdp2.sess_version, 2);
  CHECK_EQ(ml_sdp_media_dir(&sdp2, &sdp2.media[0]), ML_SDP_SENDONLY);
  CHECK_EQ(sdp2.media[0].ptime, 30);
  CHECK_EQ(sdp2.media[0].rtcp_port, 30001);
  ml_sdp_events ev;
  CHECK_EQ(ml_sdp_events_parse(&ev, ml_sdp_media_fmtp(&sdp2.media[0], 101)->params), 0);
  CHECK(memcmp(&ev, &d.events, sizeof ev) == 0);
  /* answering that hold */
  CHECK_EQ(ml_sdp_negotiate(&sdp2, &caps, &a), ML_SDP_NEG_OK);
  CHECK(a.dir == ML_SDP_RECVONLY && a.held && a.ptime == 30);
}

static void test_write_answer(void)
{
  TEST_BEGIN("write_answer");
  char buf[1024];
  ml_sdp_caps caps = caps_default();
  ml_sdp_answer_params a;
  CHECK_EQ(negotiate(HEAD "m=video 5000 RTP/AVP 31 34\r\nm=audio 4000 RTP/AVP 18 8 96\r\n"
                          "a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\na=ptime:30\r\na=sendonly\r\n"
                          "m=image 0 udptl t38\r\n",
                     &caps, &a),
           ML_SDP_NEG_OK);
  ml_sdp_desc d;
  memset(&d, 0xa5, sizeof d);
  ml_sdp_desc_answer(&d, &sdp, &a);
  desc_ours(&d, 7);
  int n = ml_sdp_write(buf, sizeof buf, &d);
  const char *want = "v=0\r\n"
                     "o=moonline 4242 7 IN IP4 203.0.113.5\r\n"
                     "s=moonline\r\n"
                     "c=IN IP4 203.0.113.5\r\n"
                     "t=0 0\r\n"
                     "m=video 0 RTP/AVP 31 34\r\n"
                     "m=audio 30000 RTP/AVP 8 96\r\n"
                     "a=rtpmap:8 PCMA/8000\r\n"
                     "a=rtpmap:96 telephone-event/8000\r\n"
                     "a=fmtp:96 0-15\r\n"
                     "a=ptime:30\r\n"
                     "a=recvonly\r\n"
                     "m=image 0 udptl t38\r\n";
  CHECK_EQ(n, (int)strlen(want));
  CHECK_STR(buf, want);
  CHECK_EQ(ml_sdp_parse(&sdp2, buf, (size_t)n), ML_SDP_OK);
  CHECK_EQ(sdp2.nmedia, 3);
  CHECK(sdp2.media[0].port == 0 && sdp2.media[1].port == 30000 && sdp2.media[2].port == 0);

  /* the offerer reads our answer: the same codec and events come back */
  ml_sdp_caps theirs = caps_default();
  ml_sdp_answer_params back;
  CHECK_EQ(ml_sdp_negotiate(&sdp2, &theirs, &back), ML_SDP_NEG_OK);
  CHECK(back.codec == ML_SDP_PCMA && back.pt == 8 && back.te_pt == 96 && back.dir == ML_SDP_SENDONLY);

  /* invalid descriptions */
  ml_sdp_desc bad = d;
  bad.addr = ML_STR_LIT("203.0.113.5 x");
  CHECK_EQ(ml_sdp_write(buf, sizeof buf, &bad), -1);
  bad = d, bad.addr = ML_STR_NULL;
  CHECK_EQ(ml_sdp_write(buf, sizeof buf, &bad), -1);
  bad = d, bad.name = ML_STR_LIT("a\r\nm=video 1 RTP/AVP 0");
  CHECK_EQ(ml_sdp_write(buf, sizeof buf, &bad), -1);
  bad = d, bad.username = ML_STR_LIT("a b");
  CHECK_EQ(ml_sdp_write(buf, sizeof buf, &bad), -1);
  bad = d, bad.nfmt = 0;
  CHECK_EQ(ml_sdp_write(buf, sizeof buf, &bad), -1);
  bad = d, bad.media = 3;
  CHECK_EQ(ml_sdp_write(buf, sizeof buf, &bad), -1);
  bad = d, bad.addrtype = ML_SDP_ADDR_NONE;
  CHECK_EQ(ml_sdp_write(buf, sizeof buf, &bad), -1);
  bad = d, bad.fmt[0].codec = ML_SDP_CODEC_NONE;
  CHECK_EQ(ml_sdp_write(buf, sizeof buf, &bad), -1);
  /* empty username and name are written as "-" */
  bad = d, bad.username = ML_STR_NULL, bad.name = ML_STR_NULL;
  CHECK(ml_sdp_write(buf, sizeof buf, &bad) > 0 && strstr(buf, "o=- 4242 7 ") && strstr(buf, "s=-\r\n"));
  /* t= follows the offer's */
  CHECK_EQ(negotiate("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=3034423619 3042462419\r\n"
                     "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
                     &caps, &a),
           ML_SDP_NEG_OK);
  ml_sdp_desc_answer(&d, &sdp, &a);
  desc_ours(&d, 8);
  CHECK(ml_sdp_write(buf, sizeof buf, &d) > 0 &&
        strstr(buf, "\r\nt=3034423619 3042462419\r\nm=audio 30000 "));
  CHECK_EQ(sdp.t_start, 3034423619u);
}

int main(void)
{
  test_parse_full();
  test_parse_lenient();
  test_parse_errors();
  test_parse_limits();
  test_events();
  test_negotiate_codecs();
  test_negotiate_events();
  test_negotiate_ptime();
  test_negotiate_hold();
  test_negotiate_media();
  test_write_offer();
  test_write_answer();
  return ML_TEST_DONE("test_sdp");
}
