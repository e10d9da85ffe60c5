/* The peer's INVITEs and their 2xx (engine/sip/sip_call.c) on the virtual
 * clock: a UDP stack whose messages are injected with ml_sip_stack_receive
 * and whose answers a plain socket reads (UDP sends are synchronous).
 *
 *   - the 2xx to a re-INVITE is retransmitted at T1, 2*T1, … up to T2 until
 *     the ACK with its CSeq (RFC 3261 §13.3.1.4); an ACK with another CSeq
 *     does not stop it; a retransmitted re-INVITE gets it again
 *   - a re-INVITE before that ACK (or before the first INVITE's) gets 500
 *     with Retry-After 0-10 (§14.2); one while ours is out gets 491
 *   - no ACK within 64*T1: BYE, and the call ends ("no ACK", 408) — for a
 *     re-INVITE as for the first INVITE; the BYE's answer arriving after the
 *     owner let go touches nothing (ASan)
 *   - a re-offer we refuse (488) leaves the peer's previous SDP in place */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lauxlib.h"
#include "ml_internal.h"
#include "ml_test.h"
#include "sip_call.h"

#define MS 1000000ull
#define SEC 1000000000ull

static const char OFFER1[] = "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                             "m=audio 40000 RTP/AVP 0\r\n";
static const char OFFER2[] = "v=0\r\no=peer 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                             "m=audio 40000 RTP/AVP 0\r\na=sendonly\r\n";
static const char BAD_OFFER[] = "v=0\r\no=peer 1 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                                "m=audio 40000 RTP/AVP 18\r\n";
static const char ANSWER[] =
    "v=0\r\no=moonline 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 41000 RTP/AVP 0\r\n";

static lua_State *L;
static ml_loop *loop;
static ml_sip_stack stack;
static int stack_closed;
static int peer_fd, peer_port;
static ml_sip_addr peer;

/* what the owner saw */
static ml_sip_call *call;
static int confirmed, ended, reoffers;

/* ---- the peer --------------------------------------------------------------- */

#define MAX_RX 64
static char rx[MAX_RX][4096];
static int n_rx;

/* read every datagram the stack sent since the last call */
static int drain(void)
{
  n_rx = 0;
  for (;;) {
    char buf[4096];
    ssize_t n = recv(peer_fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    if (n <= 0) break;
    buf[n] = '\0';
    if (n_rx < MAX_RX) memcpy(rx[n_rx++], buf, (size_t)n + 1);
  }
  return n_rx;
}

/* how many of the drained messages start with `start` and contain `part` */
static int count(const char *start, const char *part)
{
  int k = 0;
  for (int i = 0; i < n_rx; i++)
    if (strncmp(rx[i], start, strlen(start)) == 0 && (!part || strstr(rx[i], part))) k++;
  return k;
}

static const char *find(const char *start, const char *part)
{
  for (int i = 0; i < n_rx; i++)
    if (strncmp(rx[i], start, strlen(start)) == 0 && (!part || strstr(rx[i], part))) return rx[i];
  return NULL;
}

static int branch_seq;

/* a request from the peer; to_tag NULL: none (a new INVITE). branch NULL: a
 * new one (written to out_branch when given) */
static void send_req(const char *method, unsigned cseq, const char *cseq_method, const char *to_tag,
                     const char *branch, const char *body)
{
  char buf[4096], br[32];
  if (!branch) {
    snprintf(br, sizeof br, "z9hG4bKpeer%d", ++branch_seq);
    branch = br;
  }
  char to_tag_param[96] = "";
  if (to_tag) snprintf(to_tag_param, sizeof to_tag_param, ";tag=%s", to_tag);
  size_t blen = body ? strlen(body) : 0;
  int n = snprintf(buf, sizeof buf,
                   "%s sip:agent@127.0.0.1 SIP/2.0\r\n"
                   "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport\r\n"
                   "From: <sip:peer@127.0.0.1>;tag=peertag\r\n"
                   "To: <sip:agent@127.0.0.1>%s\r\n"
                   "Call-ID: reinvite-test@peer\r\n"
                   "CSeq: %u %s\r\n"
                   "Contact: <sip:peer@127.0.0.1:%d>\r\n"
                   "Max-Forwards: 70\r\n"
                   "%s"
                   "Content-Length: %zu\r\n\r\n%s",
                   method, peer_port, branch, to_tag_param, cseq, cseq_method, peer_port,
                   body ? "Content-Type: application/sdp\r\n" : "", blen, body ? body : "");
  ml_sip_stack_receive(&stack, buf, (size_t)n, &peer);
}

static void send_invite(unsigned cseq, const char *to_tag, const char *branch, const char *body)
{
  send_req("INVITE", cseq, "INVITE", to_tag, branch, body);
}

static void send_ack(unsigned cseq, const char *branch)
{
  send_req("ACK", cseq, "ACK", call ? call->local_tag : NULL, branch, NULL);
}

/* a response to one of the stack's requests (its Via, Call-ID, CSeq) */
static void send_response(const char *req, int code)
{
  char via[256] = "", cseq[64] = "";
  const char *p = strstr(req, "Via: ");
  if (p) snprintf(via, sizeof via, "%.*s", (int)strcspn(p, "\r\n"), p);
  p = strstr(req, "CSeq: ");
  if (p) snprintf(cseq, sizeof cseq, "%.*s", (int)strcspn(p, "\r\n"), p);
  char buf[2048];
  int n = snprintf(buf, sizeof buf,
                   "SIP/2.0 %d Whatever\r\n%s\r\nFrom: <sip:agent@127.0.0.1>;tag=%s\r\n"
                   "To: <sip:peer@127.0.0.1>;tag=peertag\r\nCall-ID: reinvite-test@peer\r\n%s\r\n"
                   "Content-Length: 0\r\n\r\n",
                   code, via, call ? call->local_tag : "x", cseq);
  ml_sip_stack_receive(&stack, buf, (size_t)n, &peer);
}

/* ---- the owner ---------------------------------------------------------------- */

static void on_event(ml_sip_call *c, int ev, void *data)
{
  (void)c;
  (void)data;
  if (ev == ML_CALL_EV_CONFIRMED) confirmed++;
  if (ev == ML_CALL_EV_ENDED) ended++;
}

/* answers every offer but the one with only G.729 (payload type 18) */
static int on_reoffer(ml_sip_call *c, char *out, size_t cap, void *data)
{
  (void)data;
  reoffers++;
  for (size_t i = 0; i + 6 <= c->remote_sdp_len; i++)
    if (memcmp(c->remote_sdp + i, "AVP 18", 6) == 0) return -1;
  size_t n = sizeof ANSWER - 1;
  if (n > cap) return -1;
  memcpy(out, ANSWER, n);
  return (int)n;
}

static int answer_calls = 1;

static void on_call(ml_sip_stack *s, ml_sip_call *c, void *data)
{
  (void)s;
  (void)data;
  call = c;
  c->on_event = on_event;
  c->on_reoffer = on_reoffer;
  if (answer_calls) ml_sip_call_answer(c, ANSWER, sizeof ANSWER - 1);
}

/* ---- setup -------------------------------------------------------------------- */

static void on_closed(ml_sip_stack *s)
{
  (void)s;
  stack_closed = 1;
}

static void setup(void)
{
  call = NULL;
  confirmed = ended = reoffers = 0;
  answer_calls = 1;
  ml_sip_stack_cfg cfg = {.host = "127.0.0.1", .port = 0, .on_call = on_call};
  stack_closed = 0;
  CHECK_EQ(ml_sip_stack_open(&stack, loop, &cfg), 0);
  peer_fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  CHECK_EQ(bind(peer_fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  getsockname(peer_fd, (struct sockaddr *)&a, &len);
  peer_port = ntohs(a.sin_port);
  ml_sip_addr_from_sockaddr((struct sockaddr *)&a, &peer);
}

static void teardown(void)
{
  if (call) ml_sip_call_release(call);
  call = NULL;
  ml_sip_stack_close(&stack, on_closed);
  for (int i = 0; i < 100 && !stack_closed; i++) uv_run(loop->uv, UV_RUN_NOWAIT);
  CHECK(stack_closed);
  close(peer_fd);
}

/* an answered, confirmed call (CSeq 1) */
static void confirmed_call(void)
{
  send_invite(1, NULL, NULL, OFFER1);
  drain();
  CHECK(call != NULL);
  CHECK_EQ(count("SIP/2.0 200", "CSeq: 1 INVITE"), 1);
  send_ack(1, NULL);
  CHECK_EQ(confirmed, 1);
  CHECK(call && call->state == ML_CALL_CONFIRMED);
}

/* ---- tests --------------------------------------------------------------------- */

static void test_retransmit_until_ack(void)
{
  TEST_BEGIN("re-INVITE 2xx retransmitted until its ACK");
  setup();
  confirmed_call();
  ml_clock_advance(loop, 40 * SEC); /* the first 2xx was ACKed: nothing more */
  CHECK_EQ(drain(), 0);

  send_invite(2, call->local_tag, "z9hG4bKre2", OFFER2);
  drain();
  CHECK_EQ(count("SIP/2.0 200", "CSeq: 2 INVITE"), 1);
  CHECK(find("SIP/2.0 200", "o=moonline 7 7") != NULL);
  CHECK_EQ(reoffers, 1);
  /* T1, then doubling: 0.5, 1.5, 3.5, 7.5 s after the first */
  static const uint64_t at_ms[] = {500, 1500, 3500, 7500, 11500};
  uint64_t t0 = ml_clock_now(loop);
  for (size_t i = 0; i < sizeof at_ms / sizeof at_ms[0]; i++) {
    ml_clock_advance(loop, t0 + at_ms[i] * MS - 1 * MS - ml_clock_now(loop));
    CHECK_EQ(drain(), 0);
    ml_clock_advance(loop, 1 * MS);
    drain();
    CHECK_EQ(count("SIP/2.0 200", "CSeq: 2 INVITE"), 1);
  }
  /* the re-INVITE again (same branch): the transaction repeats the 2xx */
  send_invite(2, call->local_tag, "z9hG4bKre2", OFFER2);
  drain();
  CHECK_EQ(count("SIP/2.0 200", "CSeq: 2 INVITE"), 1);
  CHECK_EQ(reoffers, 1);
  /* an ACK for another INVITE does not stop it */
  send_ack(1, NULL);
  ml_clock_advance(loop, 4 * SEC);
  drain();
  CHECK_EQ(count("SIP/2.0 200", "CSeq: 2 INVITE"), 1);
  /* another re-INVITE before the ACK: 500 with Retry-After 0-10 */
  send_invite(3, call->local_tag, "z9hG4bKre3", OFFER1);
  drain();
  const char *r500 = find("SIP/2.0 500", "CSeq: 3 INVITE");
  CHECK(r500 != NULL);
  const char *ra = r500 ? strstr(r500, "\r\nRetry-After: ") : NULL;
  CHECK(ra != NULL);
  if (ra) {
    int secs = atoi(ra + 15);
    CHECK(secs >= 0 && secs <= 10);
  }
  CHECK_EQ(reoffers, 1);
  send_ack(3, "z9hG4bKre3"); /* the ACK for the 500: its transaction's */
  /* our own re-INVITE must wait for that ACK (RFC 3261 §14.1) */
  CHECK_EQ(ml_sip_call_reinvite(call, OFFER1, sizeof OFFER1 - 1), -2);
  CHECK_EQ(count("INVITE sip:", NULL), 0);
  /* the ACK: no more retransmissions, no BYE */
  send_ack(2, NULL);
  ml_clock_advance(loop, 40 * SEC);
  drain();
  CHECK_EQ(count("SIP/2.0 200", NULL), 0);
  CHECK_EQ(count("SIP/2.0 500", NULL), 0); /* its ACK ended the 500's retransmissions */
  CHECK_EQ(count("BYE", NULL), 0);
  CHECK(call->state == ML_CALL_CONFIRMED);
  CHECK_EQ(ended, 0);
  /* the next re-INVITE is taken again */
  send_invite(4, call->local_tag, NULL, OFFER1);
  drain();
  CHECK_EQ(count("SIP/2.0 200", "CSeq: 4 INVITE"), 1);
  send_ack(4, NULL);
  ml_clock_advance(loop, 2 * SEC);
  CHECK_EQ(drain(), 0);
  /* ACKed: our own re-INVITE may go now */
  CHECK_EQ(ml_sip_call_reinvite(call, OFFER1, sizeof OFFER1 - 1), 0);
  drain();
  CHECK_EQ(count("INVITE sip:", NULL), 1);
  teardown();
}

static void test_no_ack_bye(void)
{
  TEST_BEGIN("re-INVITE 2xx never ACKed: BYE after 64*T1");
  setup();
  confirmed_call();
  send_invite(2, call->local_tag, NULL, OFFER2);
  drain();
  CHECK_EQ(count("SIP/2.0 200", "CSeq: 2 INVITE"), 1);
  /* 0.5, 1.5, 3.5, 7.5, then every T2: 11.5 … 31.5 s — 10 times */
  ml_clock_advance(loop, 64 * ML_SIP_T1_NS - 1 * MS);
  drain();
  CHECK_EQ(count("SIP/2.0 200", "CSeq: 2 INVITE"), 10);
  CHECK_EQ(count("BYE", NULL), 0);
  CHECK_EQ(ended, 0);
  ml_clock_advance(loop, 1 * MS);
  drain();
  const char *bye = find("BYE sip:peer@127.0.0.1", "CSeq: 2 BYE");
  CHECK(bye != NULL);
  CHECK_EQ(ended, 1);
  CHECK(call->state == ML_CALL_ENDED);
  CHECK_STR(call->end_reason, "no ACK");
  CHECK_EQ(call->end_code, 408);
  /* the owner lets go; the BYE's answer comes later */
  char bye_copy[4096];
  snprintf(bye_copy, sizeof bye_copy, "%s", bye ? bye : "");
  ml_sip_call_release(call);
  call = NULL;
  ml_clock_advance(loop, 1 * SEC);
  drain();
  CHECK(count("BYE", NULL) >= 1); /* the BYE's own retransmissions (timer E) */
  if (bye) send_response(bye_copy, 200);
  send_ack(2, NULL); /* too late: for no call any more */
  ml_clock_advance(loop, 40 * SEC);
  drain();
  CHECK_EQ(count("SIP/2.0", NULL), 0);
  CHECK_EQ(count("BYE", NULL), 0);
  teardown();
}

static void test_first_invite(void)
{
  TEST_BEGIN("first INVITE: 500 to a re-INVITE before its ACK; BYE without one");
  setup();
  send_invite(1, NULL, NULL, OFFER1);
  drain();
  CHECK_EQ(count("SIP/2.0 200", "CSeq: 1 INVITE"), 1);
  CHECK(call && call->state == ML_CALL_ANSWERED);
  send_invite(2, call->local_tag, NULL, OFFER2);
  drain();
  CHECK(find("SIP/2.0 500", "Retry-After: ") != NULL);
  CHECK_EQ(reoffers, 0);
  ml_clock_advance(loop, 64 * ML_SIP_T1_NS);
  drain();
  CHECK_EQ(count("SIP/2.0 200", "CSeq: 1 INVITE"), 10);
  CHECK(find("BYE", "CSeq: 2 BYE") != NULL);
  CHECK_EQ(ended, 1);
  CHECK_STR(call->end_reason, "no ACK");
  ml_sip_call_release(call);
  call = NULL;
  ml_clock_advance(loop, 40 * SEC); /* the BYE times out without its call */
  teardown();

  TEST_BEGIN("a re-INVITE before the first INVITE is answered: 500");
  setup();
  answer_calls = 0;
  send_invite(1, NULL, NULL, OFFER1);
  drain();
  CHECK(call && call->state == ML_CALL_RINGING);
  send_invite(2, call->local_tag, NULL, OFFER2);
  drain();
  CHECK(find("SIP/2.0 500", "Retry-After: ") != NULL);
  CHECK(call->state == ML_CALL_RINGING);
  CHECK_EQ(ml_sip_call_answer(call, ANSWER, sizeof ANSWER - 1), 0);
  send_ack(1, NULL);
  CHECK_EQ(confirmed, 1);
  teardown();
}

static void test_glare(void)
{
  TEST_BEGIN("a re-INVITE while ours is out: 491");
  setup();
  confirmed_call();
  CHECK_EQ(ml_sip_call_reinvite(call, OFFER2, sizeof OFFER2 - 1), 0);
  drain();
  CHECK_EQ(count("INVITE sip:peer@", NULL), 1);
  send_invite(2, call->local_tag, NULL, OFFER1);
  drain();
  CHECK_EQ(count("SIP/2.0 491", "CSeq: 2 INVITE"), 1);
  CHECK_EQ(reoffers, 0);
  teardown();
}

static void test_rejected_reoffer(void)
{
  TEST_BEGIN("a refused re-offer (488) keeps the previous remote SDP");
  setup();
  confirmed_call();
  CHECK_EQ(call->remote_sdp_len, sizeof OFFER1 - 1);
  send_invite(2, call->local_tag, "z9hG4bKbad", BAD_OFFER);
  drain();
  CHECK_EQ(count("SIP/2.0 488", "CSeq: 2 INVITE"), 1);
  CHECK_EQ(reoffers, 1);
  CHECK(call->remote_sdp && call->remote_sdp_len == sizeof OFFER1 - 1 &&
        memcmp(call->remote_sdp, OFFER1, sizeof OFFER1 - 1) == 0);
  CHECK(!call->awaiting_ack);
  send_ack(2, "z9hG4bKbad"); /* the 488's ACK: its transaction's */
  /* an accepted one replaces it */
  send_invite(3, call->local_tag, NULL, OFFER2);
  drain();
  CHECK_EQ(count("SIP/2.0 200", "CSeq: 3 INVITE"), 1);
  CHECK(call->remote_sdp && call->remote_sdp_len == sizeof OFFER2 - 1 &&
        memcmp(call->remote_sdp, OFFER2, sizeof OFFER2 - 1) == 0);
  send_ack(3, NULL);
  ml_clock_advance(loop, 40 * SEC);
  drain();
  CHECK_EQ(count("SIP/2.0", NULL), 0);
  CHECK(call->state == ML_CALL_CONFIRMED);
  teardown();
}

int main(void)
{
  L = luaL_newstate();
  REQUIRE(L != NULL);
  loop = ml_loop_new(NULL, L);
  REQUIRE(loop != NULL);
  REQUIRE(ml_clock_set_virtual(loop, 1) == 0);
  test_retransmit_until_ack();
  test_no_ack_bye();
  test_first_invite();
  test_glare();
  test_rejected_reoffer();
  ml_loop_free(loop);
  lua_close(L);
  return ML_TEST_DONE("test_sip_reinvite");
}
