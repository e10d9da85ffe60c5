/* The UA core: calls (dialogs) created by inbound INVITEs, and the requests
 * inside them (ACK, BYE, CANCEL, re-INVITE, OPTIONS, INFO), plus the
 * out-of-dialog requests a UA answers (OPTIONS, and 481/405/501/503 for the
 * rest). Calls are found by Call-ID in an open hash, then checked by tags. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "digest.h"
#include "sip_auth.h"
#include "sip_call.h"
#include "sipfrag.h"

#define ALLOW "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, REFER, NOTIFY"

/* ---- the call table ------------------------------------------------------------- */

static uint64_t hash_str(ml_str s)
{
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < s.n; i++) {
    h ^= (unsigned char)s.p[i];
    h *= 1099511628211ull;
  }
  return h;
}

static ml_sip_call **call_bucket(ml_sip_stack *s, ml_str call_id)
{
  return &s->calls[hash_str(call_id) & (s->call_cap - 1)];
}

static void calls_grow(ml_sip_stack *s)
{
  size_t old_cap = s->call_cap;
  ml_sip_call **old = s->calls;
  s->call_cap = old_cap ? old_cap * 2 : 64;
  s->calls = calloc(s->call_cap, sizeof *s->calls);
  if (!s->calls) abort();
  for (size_t i = 0; i < old_cap; i++) {
    for (ml_sip_call *c = old[i], *next; c; c = next) {
      next = c->hash_next;
      ml_sip_call **b = call_bucket(s, ml_str_c(c->call_id));
      c->hash_next = *b;
      *b = c;
    }
  }
  free(old);
}

static void call_add(ml_sip_stack *s, ml_sip_call *c)
{
  if (s->n_calls + 1 > s->call_cap / 2) calls_grow(s);
  ml_sip_call **b = call_bucket(s, ml_str_c(c->call_id));
  c->hash_next = *b;
  *b = c;
  s->n_calls++;
}

static void call_remove(ml_sip_stack *s, ml_sip_call *c)
{
  for (ml_sip_call **p = call_bucket(s, ml_str_c(c->call_id)); *p; p = &(*p)->hash_next) {
    if (*p == c) {
      *p = c->hash_next;
      s->n_calls--;
      return;
    }
  }
}

/* the call of an in-dialog request: Call-ID, and our tag in To */
static ml_sip_call *call_find(ml_sip_stack *s, const ml_sip_msg *req)
{
  if (!s->call_cap) return NULL;
  for (ml_sip_call *c = *call_bucket(s, req->call_id); c; c = c->hash_next)
    if (ml_str_eq(ml_str_c(c->call_id), req->call_id) &&
        (req->to.tag.n == 0 || ml_str_eq(ml_str_c(c->local_tag), req->to.tag)))
      return c;
  return NULL;
}

static void copy_str(char *dst, size_t cap, ml_str v)
{
  size_t n = v.n < cap - 1 ? v.n : cap - 1;
  memcpy(dst, v.p, n);
  dst[n] = '\0';
}

static void set_buf(char **dst, size_t *dst_len, const char *p, size_t n);

/* In-dialog requests go to the first Route when there is a route set
 * (loose routing, RFC 3261 §12.2.1.1); without one, to where the peer's
 * messages come from (symmetric, which also works behind NAT) — over TCP on
 * that connection — unless a UDP dialog's remote target asks for TCP. */
static void dialog_next_hop(ml_sip_call *c)
{
  ml_sip_name_addr na;
  ml_str tp;
  const char *next = c->n_route ? c->route[0] : c->remote_target;
  if (ml_sip_parse_name_addr(ml_str_c(next), &na) != 0 || na.uri.host.n == 0 || na.uri.host.n >= 64) return;
  int tcp = ml_sip_param(na.uri.params, "transport", &tp) == 1 && ml_str_ieq_c(tp, "tcp");
  if (!c->n_route && (!tcp || c->hop.tcp)) return;
  char host[64];
  memcpy(host, na.uri.host.p, na.uri.host.n);
  host[na.uri.host.n] = '\0';
  ml_sip_addr hop;
  if (ml_sip_addr_resolve(host, na.uri.port ? na.uri.port : 5060, &hop) != 0) return;
  hop.tcp = tcp;
  c->hop = hop;
}

static void call_free(ml_sip_call *c)
{
  ml_sip_stack *s = c->stack;
  ml_timer_stop(s->loop, &c->ok_timer);
  ml_timer_stop(s->loop, &c->ack_timeout);
  if (c->inv_txn) ml_sip_txn_detach(c->inv_txn);
  call_remove(s, c);
  if (c->dial_txn) ml_sip_txn_detach(c->dial_txn);
  if (c->reinvite_txn) ml_sip_txn_detach(c->reinvite_txn);
  if (c->refer_in_txn) ml_sip_txn_detach(c->refer_in_txn);
  free(c->reinvite_ack);
  free(c->reinvite_sdp);
  free(c->local_sdp);
  free(c->refer_in_req);
  free(c->invite);
  free(c->answer);
  free(c->ok);
  free(c->offer);
  free(c->ack);
  free(c->remote_sdp);
  free(c->username);
  free(c->password);
  free(c);
}

static void refer_in_close(ml_sip_call *c);
static void ok_stop(ml_sip_call *c);

static void call_end(ml_sip_call *c, const char *reason, int code)
{
  if (c->state == ML_CALL_ENDED) return;
  c->state = ML_CALL_ENDED;
  refer_in_close(c); /* an undecided REFER gets its answer (603) */
  c->reinvite_pending = 0;
  c->end_reason = reason;
  c->end_code = code;
  ok_stop(c);
  if (c->on_event && !c->released) {
    c->in_event = 1;
    c->on_event(c, ML_CALL_EV_ENDED, c->data);
    c->in_event = 0;
  }
  if (c->released) call_free(c);
}

void ml_sip_call_release(ml_sip_call *c)
{
  c->released = 1;
  c->on_event = NULL;
  if (c->state == ML_CALL_ENDED && !c->in_event) call_free(c);
}

void ml_sip_ua_free_all(ml_sip_stack *s)
{
  for (size_t i = 0; i < s->call_cap; i++) {
    while (s->calls[i]) {
      ml_sip_call *c = s->calls[i];
      c->released = 1;
      c->on_event = NULL;
      call_free(c);
    }
  }
  free(s->calls);
  s->calls = NULL;
  s->call_cap = s->n_calls = 0;
}

/* ---- responses ------------------------------------------------------------------ */

/* `to`: where the message goes; its transport is the Contact's */
static void add_common(ml_sip_stack *s, ml_sip_builder *b, const ml_sip_addr *to)
{
  ml_sip_builder_headerf(b, "Contact", "<sip:moonline@%s%s>", s->local_hostport, ml_sip_addr_uri_param(to));
  ml_sip_builder_header(b, "Allow", ML_STR_LIT(ALLOW));
  if (s->cfg.user_agent) ml_sip_builder_header(b, "Server", ml_str_c(s->cfg.user_agent));
}

/* respond on a server transaction (created here when missing) */
static void respond(ml_sip_stack *s, ml_sip_txn *t, const ml_sip_msg *req, int code, const char *tag,
                    const char *ctype, const char *body, size_t body_len)
{
  char buf[8192];
  ml_sip_builder b;
  ml_sip_builder_init(&b, buf, sizeof buf);
  if (ml_sip_build_response(req, code, NULL, ml_str_c(tag ? tag : ""), &b) != 0) return;
  add_common(s, &b, &t->peer);
  if (ctype) ml_sip_builder_header(&b, "Content-Type", ml_str_c(ctype));
  size_t n = ml_sip_builder_finish(&b, ml_str_make(body, body_len));
  if (n) ml_sip_txn_respond(t, code, buf, n);
}

/* RFC 4028 §9: a 2xx to a request with Session-Expires carries it back, with
 * the refresher the request chose (uac when it chose none: the peer keeps
 * refreshing), and Require: timer when the refresher is the uac. */
static void add_session_timer(ml_sip_builder *b, const ml_sip_msg *req)
{
  ml_sip_builder_header(b, "Supported", ML_STR_LIT("timer"));
  const ml_sip_header *se = ml_sip_header_get(req, ML_SIP_H_SESSION_EXPIRES);
  if (!se) return;
  ml_str v = se->value, params = ML_STR_NULL, refresher;
  for (size_t i = 0; i < v.n; i++)
    if (v.p[i] == ';') {
      params = ml_str_make(v.p + i, v.n - i);
      break;
    }
  if (ml_sip_param(params, "refresher", &refresher) == 1) {
    ml_sip_builder_header(b, "Session-Expires", v);
    if (!ml_str_ieq_c(refresher, "uac")) return;
  } else {
    ml_sip_builder_headerf(b, "Session-Expires", "%.*s;refresher=uac", (int)v.n, v.p);
  }
  ml_sip_builder_header(b, "Require", ML_STR_LIT("timer"));
}

static int send_ok(ml_sip_call *c, ml_sip_txn *t, uint32_t cseq, const char *buf, size_t n);

/* 200 to an offer or a session refresh (re-INVITE, UPDATE): our SDP when
 * there is one, the session timer echoed; a re-INVITE's is retransmitted
 * until its ACK, like the first INVITE's */
static void respond_session(ml_sip_call *c, ml_sip_txn *t, const ml_sip_msg *req, const char *sdp, size_t n)
{
  ml_sip_stack *s = c->stack;
  char buf[8192];
  ml_sip_builder b;
  ml_sip_builder_init(&b, buf, sizeof buf);
  if (ml_sip_build_response(req, 200, NULL, ML_STR_NULL, &b) != 0) return;
  add_common(s, &b, &t->peer);
  add_session_timer(&b, req);
  if (n) ml_sip_builder_header(&b, "Content-Type", ML_STR_LIT("application/sdp"));
  size_t len = ml_sip_builder_finish(&b, ml_str_make(sdp, n));
  if (!len) return;
  if (req->method != ML_SIP_INVITE || send_ok(c, t, req->cseq, buf, len) != 0)
    ml_sip_txn_respond(t, 200, buf, len);
}

static void respond_new(ml_sip_stack *s, const ml_sip_msg *req, const ml_sip_addr *from, int code)
{
  ml_sip_txn *t = ml_sip_txn_server_new(s, req, from);
  char tag[40] = "";
  if (req->to.tag.n == 0) ml_sip_make_tag(s, tag, sizeof tag);
  respond(s, t, req, code, tag, NULL, NULL, 0);
}

/* 500 with Retry-After: a random 0-10 s (RFC 3261 §14.2) */
static void respond_retry_after(ml_sip_stack *s, const ml_sip_msg *req, const ml_sip_addr *from)
{
  ml_sip_txn *t = ml_sip_txn_server_new(s, req, from);
  uint32_t r;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) r = (uint32_t)(uv_hrtime() ^ s->tag_seq);
  char buf[4096];
  ml_sip_builder b;
  ml_sip_builder_init(&b, buf, sizeof buf);
  if (ml_sip_build_response(req, 500, NULL, ML_STR_NULL, &b) != 0) return;
  add_common(s, &b, &t->peer);
  ml_sip_builder_headerf(&b, "Retry-After", "%u", (unsigned)(r % 11));
  size_t n = ml_sip_builder_finish(&b, ML_STR_NULL);
  if (n) ml_sip_txn_respond(t, 500, buf, n);
}

/* An INVITE without good credentials (sip_auth.h): 401 with our challenges
 * (stale=true when only the nonce was old), 403, 400 or 500. */
static void respond_auth(ml_sip_stack *s, const ml_sip_msg *req, const ml_sip_addr *from,
                         ml_sip_auth_result r)
{
  int code = ml_sip_auth_status(r);
  if (code != 401) {
    respond_new(s, req, from, code);
    return;
  }
  ml_sip_txn *t = ml_sip_txn_server_new(s, req, from);
  char tag[40] = "", buf[8192];
  if (req->to.tag.n == 0) ml_sip_make_tag(s, tag, sizeof tag);
  ml_sip_builder b;
  ml_sip_builder_init(&b, buf, sizeof buf);
  if (ml_sip_build_response(req, 401, NULL, ml_str_c(tag), &b) != 0) return;
  add_common(s, &b, &t->peer);
  ml_sip_auth_challenge(s->cfg.auth, &b, ml_clock_now(s->loop), r == ML_SIP_AUTH_STALE);
  size_t n = ml_sip_builder_finish(&b, ML_STR_NULL);
  if (n) ml_sip_txn_respond(t, 401, buf, n);
}

/* ---- 2xx retransmission (RFC 3261 §13.3.1.4) ------------------------------------ */

/* The UA core, not the transaction, keeps a 2xx to an INVITE (the first or
 * a re-INVITE) going until the ACK with the INVITE's CSeq number arrives:
 * sent on the transaction, then again every T1, 2*T1, … up to T2; after
 * 64*T1 without the ACK the dialog is ended with a BYE. One at a time: a
 * re-INVITE arriving meanwhile gets 500 (handle_offer). */
static int send_ok(ml_sip_call *c, ml_sip_txn *t, uint32_t cseq, const char *buf, size_t n)
{
  ml_sip_stack *s = c->stack;
  set_buf(&c->ok, &c->ok_len, buf, n);
  if (!c->ok) return -1;
  ml_sip_txn_respond(t, 200, buf, n);
  c->ok_to = t->peer;
  c->ok_cseq = cseq;
  c->awaiting_ack = 1;
  c->ok_interval = ML_SIP_T1_NS;
  ml_timer_start(s->loop, &c->ok_timer, c->ok_interval);
  ml_timer_start(s->loop, &c->ack_timeout, 64 * ML_SIP_T1_NS);
  return 0;
}

static void ok_stop(ml_sip_call *c)
{
  c->awaiting_ack = 0;
  ml_timer_stop(c->stack->loop, &c->ok_timer);
  ml_timer_stop(c->stack->loop, &c->ack_timeout);
}

static void on_ok_timer(ml_timer *tm)
{
  ml_sip_call *c = ml_container_of(tm, ml_sip_call, ok_timer);
  if (!c->awaiting_ack) return;
  c->stack->retransmits++;
  ml_sip_stack_send(c->stack, &c->ok_to, c->ok, c->ok_len);
  c->ok_interval = c->ok_interval * 2 < ML_SIP_T2_NS ? c->ok_interval * 2 : ML_SIP_T2_NS;
  ml_timer_start(c->stack->loop, &c->ok_timer, c->ok_interval);
}

static void send_bye(ml_sip_call *c, int wait);

static void on_ack_timeout(ml_timer *tm)
{
  ml_sip_call *c = ml_container_of(tm, ml_sip_call, ack_timeout);
  if (!c->awaiting_ack) return;
  ok_stop(c);
  /* no ACK within 64*T1: the dialog is confirmed and ended with a BYE; the
   * call ends now (the BYE's transaction finishes on its own) */
  ml_log(ML_LOG_WARN, "sip: call %s: no ACK for the 200 (CSeq %u); hanging up", c->call_id,
         (unsigned)c->ok_cseq);
  send_bye(c, 0);
  call_end(c, "no ACK", 408);
}

/* ---- owner actions --------------------------------------------------------------- */

static int reparse_invite(ml_sip_call *c, ml_sip_msg *m)
{
  return c->invite ? ml_sip_parse(m, c->invite, c->invite_len, ML_SIP_UDP) : -1;
}

int ml_sip_call_answer(ml_sip_call *c, const char *sdp, size_t sdp_len)
{
  ml_sip_stack *s = c->stack;
  if (c->state != ML_CALL_RINGING || !c->inv_txn) return -1;
  ml_sip_msg *inv = malloc(sizeof *inv);
  if (!inv) return -1;
  if (reparse_invite(c, inv) != 0) {
    free(inv);
    return -1;
  }
  char buf[8192];
  ml_sip_builder b;
  ml_sip_builder_init(&b, buf, sizeof buf);
  uint32_t cseq = inv->cseq;
  int ok = ml_sip_build_response(inv, 200, NULL, ml_str_c(c->local_tag), &b) == 0;
  if (ok) {
    add_common(s, &b, &c->peer);
    add_session_timer(&b, inv);
  }
  free(inv);
  if (!ok) return -1;
  ml_sip_call_set_local_sdp(c, sdp, sdp_len);
  if (sdp_len) ml_sip_builder_header(&b, "Content-Type", ML_STR_LIT("application/sdp"));
  size_t n = ml_sip_builder_finish(&b, ml_str_make(sdp, sdp_len));
  if (!n || send_ok(c, c->inv_txn, cseq, buf, n) != 0) return -1;
  c->state = ML_CALL_ANSWERED;
  return 0;
}

int ml_sip_call_reject(ml_sip_call *c, int code)
{
  if (c->state != ML_CALL_RINGING || !c->inv_txn || code < 300 || code > 699) return -1;
  ml_sip_msg *inv = malloc(sizeof *inv);
  if (!inv) return -1;
  if (reparse_invite(c, inv) == 0) respond(c->stack, c->inv_txn, inv, code, c->local_tag, NULL, NULL, 0);
  free(inv);
  call_end(c, "rejected", code);
  return 0;
}

static void on_bye_done(ml_sip_txn *t, const ml_sip_msg *rsp, int timeout, void *data)
{
  (void)t;
  (void)rsp;
  (void)timeout;
  ml_sip_call *c = data;
  call_end(c, "local hangup", 0);
}

/* The start of a request inside the dialog (RFC 3261 §12.2.1.1): to the
 * remote target, a new branch, our and their parties, the next CSeq (the
 * INVITE's number for an ACK), the route set. The caller adds the rest. */
static void dialog_request(ml_sip_call *c, const char *method, uint32_t cseq, char *branch, size_t branch_cap,
                           ml_sip_builder *b)
{
  ml_sip_stack *s = c->stack;
  ml_sip_make_branch(s, branch, branch_cap);
  ml_sip_builder_request_line(b, ml_str_c(method), ml_str_c(c->remote_target));
  ml_sip_builder_headerf(b, "Via", "SIP/2.0/%s %s;branch=%s;rport", ml_sip_addr_via(&c->hop),
                         s->local_hostport, branch);
  ml_sip_builder_header(b, "Max-Forwards", ML_STR_LIT("70"));
  ml_sip_builder_header(b, "From", ml_str_c(c->local_party));
  ml_sip_builder_header(b, "To", ml_str_c(c->remote_party));
  ml_sip_builder_header(b, "Call-ID", ml_str_c(c->call_id));
  ml_sip_builder_headerf(b, "CSeq", "%u %s", (unsigned)cseq, method);
  for (int i = 0; i < c->n_route; i++) ml_sip_builder_header(b, "Route", ml_str_c(c->route[i]));
}

/* BYE (RFC 3261 §15): to the remote target, through the route set, with the
 * dialog's identifiers; UAS roles: our To is From now and their From is To.
 * wait: the call ends when it is answered (or times out); otherwise the call
 * is ended by the caller and the transaction runs without it. */
static void send_bye(ml_sip_call *c, int wait)
{
  ml_sip_stack *s = c->stack;
  char branch[48], buf[4096];
  ml_sip_builder b;
  ml_sip_builder_init(&b, buf, sizeof buf);
  dialog_request(c, "BYE", ++c->local_cseq, branch, sizeof branch, &b);
  if (s->cfg.user_agent) ml_sip_builder_header(&b, "User-Agent", ml_str_c(s->cfg.user_agent));
  size_t n = ml_sip_builder_finish(&b, ML_STR_NULL);
  if (n)
    ml_sip_txn_client_new(s, ML_SIP_BYE, branch, &c->hop, buf, n, wait ? on_bye_done : NULL, wait ? c : NULL);
}

static void send_cancel(ml_sip_call *c);

void ml_sip_call_hangup(ml_sip_call *c)
{
  switch (c->state) {
  case ML_CALL_CALLING: /* no provisional yet: CANCEL as soon as one arrives */
    c->cancel_pending = 1;
    break;
  case ML_CALL_PROGRESS:
    send_cancel(c);
    break;
  case ML_CALL_RINGING:
    ml_sip_call_reject(c, 603);
    break;
  case ML_CALL_ANSWERED:
  case ML_CALL_CONFIRMED:
    refer_in_close(c); /* while the dialog still stands */
    c->state = ML_CALL_ENDING;
    ok_stop(c);
    send_bye(c, 1);
    break;
  default:
    break;
  }
}

/* ---- outbound calls (UAC) -------------------------------------------------------- */

static void set_buf(char **dst, size_t *dst_len, const char *p, size_t n)
{
  free(*dst);
  *dst = NULL;
  if (dst_len) *dst_len = 0;
  if (!n) return;
  *dst = malloc(n);
  if (!*dst) return;
  memcpy(*dst, p, n);
  if (dst_len) *dst_len = n;
}

static char *dup_c(const char *v) { return v ? strdup(v) : NULL; }

static void on_invite_rsp(ml_sip_txn *t, const ml_sip_msg *rsp, int timeout, void *data);

/* (Re)send the INVITE: a new branch and CSeq, the offer, and credentials
 * when a challenge came back. */
static int send_invite(ml_sip_call *c, const char *ruri, const char *to, const char *extra,
                       const char *auth_name, const char *auth_value, const char *sdp, size_t sdp_len)
{
  ml_sip_stack *s = c->stack;
  char branch[48], buf[8192];
  ml_sip_make_branch(s, branch, sizeof branch);
  ml_sip_builder b;
  ml_sip_builder_init(&b, buf, sizeof buf);
  ml_sip_builder_request_line(&b, ML_STR_LIT("INVITE"), ml_str_c(ruri));
  ml_sip_builder_headerf(&b, "Via", "SIP/2.0/%s %s;branch=%s;rport", ml_sip_addr_via(&c->peer),
                         s->local_hostport, branch);
  ml_sip_builder_header(&b, "Max-Forwards", ML_STR_LIT("70"));
  ml_sip_builder_header(&b, "From", ml_str_c(c->local_party));
  ml_sip_builder_header(&b, "To", ml_str_c(to));
  ml_sip_builder_header(&b, "Call-ID", ml_str_c(c->call_id));
  ml_sip_builder_headerf(&b, "CSeq", "%u INVITE", (unsigned)c->local_cseq);
  ml_sip_builder_headerf(&b, "Contact", "<sip:moonline@%s%s>", s->local_hostport,
                         ml_sip_addr_uri_param(&c->hop));
  ml_sip_builder_header(&b, "Allow", ML_STR_LIT(ALLOW));
  if (s->cfg.user_agent) ml_sip_builder_header(&b, "User-Agent", ml_str_c(s->cfg.user_agent));
  if (auth_name) ml_sip_builder_header(&b, auth_name, ml_str_c(auth_value));
  if (sdp_len) ml_sip_builder_header(&b, "Content-Type", ML_STR_LIT("application/sdp"));
  /* extra headers are appended raw: they were checked by the binding */
  size_t n = 0;
  if (extra && *extra) {
    size_t el = strlen(extra);
    if (!b.failed && b.len + el < b.cap) {
      memcpy(b.buf + b.len, extra, el);
      b.len += el;
    } else {
      b.failed = 1;
    }
  }
  n = ml_sip_builder_finish(&b, ml_str_make(sdp, sdp_len));
  if (!n) return -1;
  set_buf(&c->invite, &c->invite_len, buf, n);
  if (c->dial_txn) ml_sip_txn_detach(c->dial_txn);
  c->dial_txn = ml_sip_txn_client_new(s, ML_SIP_INVITE, branch, &c->peer, buf, n, on_invite_rsp, c);
  c->dial_txn->slot = &c->dial_txn;
  return 0;
}

ml_sip_call *ml_sip_call_dial(ml_sip_stack *s, const ml_sip_dial *d,
                              void (*on_event)(ml_sip_call *, int, void *), void *data)
{
  ml_sip_call *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->stack = s;
  c->outgoing = 1;
  c->state = ML_CALL_CALLING;
  c->peer = c->hop = d->dest;
  c->on_event = on_event;
  c->data = data;
  ml_sip_make_tag(s, c->local_tag, sizeof c->local_tag);
  char id[40];
  ml_sip_make_tag(s, id, sizeof id);
  snprintf(c->call_id, sizeof c->call_id, "%s@moonline", id);
  snprintf(c->local_party, sizeof c->local_party, "%s;tag=%s", d->from, c->local_tag);
  snprintf(c->remote_party, sizeof c->remote_party, "%s", d->to);
  snprintf(c->remote_target, sizeof c->remote_target, "%s", d->ruri);
  c->local_cseq = 1;
  c->username = dup_c(d->username);
  c->password = dup_c(d->password);
  set_buf(&c->offer, &c->offer_len, d->sdp, d->sdp_len);
  set_buf(&c->local_sdp, &c->local_sdp_len, d->sdp, d->sdp_len);
  ml_timer_init(&c->ok_timer, on_ok_timer);
  ml_timer_init(&c->ack_timeout, on_ack_timeout);
  call_add(s, c);
  if (send_invite(c, d->ruri, d->to, d->extra_headers, NULL, NULL, d->sdp, d->sdp_len) != 0) {
    call_remove(s, c);
    free(c->offer);
    free(c->local_sdp);
    free(c->username);
    free(c->password);
    free(c);
    return NULL;
  }
  /* what a retry needs: the extra headers ride in the stored INVITE */
  return c;
}

/* CANCEL (RFC 3261 §9.1): same Request-URI, top Via (branch), From, To,
 * Call-ID and CSeq number as the INVITE; its own transaction. */
static void send_cancel(ml_sip_call *c)
{
  ml_sip_stack *s = c->stack;
  ml_sip_msg *inv = malloc(sizeof *inv);
  if (!inv) return;
  if (!c->invite || ml_sip_parse(inv, c->invite, c->invite_len, ML_SIP_UDP) != 0) {
    free(inv);
    return;
  }
  char buf[4096];
  ml_sip_builder b;
  ml_sip_builder_init(&b, buf, sizeof buf);
  ml_sip_builder_request_line(&b, ML_STR_LIT("CANCEL"), inv->ruri.text);
  ml_sip_builder_header(&b, "Via", inv->via[0]);
  ml_sip_builder_header(&b, "Max-Forwards", ML_STR_LIT("70"));
  const ml_sip_header *h;
  if ((h = ml_sip_header_get(inv, ML_SIP_H_FROM))) ml_sip_builder_header(&b, "From", h->value);
  if ((h = ml_sip_header_get(inv, ML_SIP_H_TO))) ml_sip_builder_header(&b, "To", h->value);
  ml_sip_builder_header(&b, "Call-ID", inv->call_id);
  ml_sip_builder_headerf(&b, "CSeq", "%u CANCEL", (unsigned)inv->cseq);
  size_t n = ml_sip_builder_finish(&b, ML_STR_NULL);
  char branch[64];
  snprintf(branch, sizeof branch, "%.*s", (int)inv->via0.branch.n, inv->via0.branch.p);
  free(inv);
  c->cancel_pending = 0;
  if (n) ml_sip_txn_client_new(s, ML_SIP_CANCEL, branch, &c->peer, buf, n, NULL, NULL);
}

/* ACK for a 2xx (RFC 3261 §13.2.2.4): a new transaction-less request to the
 * remote target through the route set, CSeq number of the INVITE. */
static void send_ack(ml_sip_call *c, uint32_t cseq, char **keep, size_t *keep_len)
{
  char branch[48], buf[4096];
  ml_sip_builder b;
  ml_sip_builder_init(&b, buf, sizeof buf);
  dialog_request(c, "ACK", cseq, branch, sizeof branch, &b);
  size_t n = ml_sip_builder_finish(&b, ML_STR_NULL);
  if (!n) return;
  set_buf(keep, keep_len, buf, n);
  ml_sip_stack_send(c->stack, &c->hop, buf, n);
}

/* 401/407: answer the challenge once with the credentials */
static int retry_with_auth(ml_sip_call *c, const ml_sip_msg *rsp)
{
  if (!c->username || !c->password || c->auth_tries++ > 0) return -1;
  int proxy = rsp->status == 407;
  const ml_sip_header *h =
      ml_sip_header_get(rsp, proxy ? ML_SIP_H_PROXY_AUTHENTICATE : ML_SIP_H_WWW_AUTHENTICATE);
  ml_digest_chal ch;
  if (!h || ml_digest_chal_parse(&ch, h->value) != 0) return -1;
  ml_sip_msg *inv = malloc(sizeof *inv);
  if (!inv || ml_sip_parse(inv, c->invite, c->invite_len, ML_SIP_UDP) != 0) {
    free(inv);
    return -1;
  }
  char ruri[512], to[512], extra[2048] = "";
  snprintf(ruri, sizeof ruri, "%.*s", (int)inv->ruri.text.n, inv->ruri.text.p);
  const ml_sip_header *th = ml_sip_header_get(inv, ML_SIP_H_TO);
  snprintf(to, sizeof to, "%.*s", (int)th->value.n, th->value.p);
  /* keep the caller's extra headers (the ones the stack does not write) */
  size_t el = 0;
  for (unsigned i = 0; i < inv->n_headers; i++) {
    const ml_sip_header *x = &inv->headers[i];
    if (x->id != ML_SIP_H_OTHER) continue;
    int w = snprintf(extra + el, sizeof extra - el, "%.*s: %.*s\r\n", (int)x->name.n, x->name.p,
                     (int)x->value.n, x->value.p);
    if (w < 0 || (size_t)w >= sizeof extra - el) break;
    el += (size_t)w;
  }
  free(inv);
  ml_digest_auth a;
  memset(&a, 0, sizeof a);
  a.username = ml_str_c(c->username);
  a.password = ml_str_c(c->password);
  a.method = ML_STR_LIT("INVITE");
  a.uri = ml_str_c(ruri);
  char value[1024];
  uint32_t nc = 0;
  if (ml_digest_authorize(value, sizeof value, &ch, &a, &nc) <= 0) return -1;
  c->local_cseq++;
  return send_invite(c, ruri, to, extra, proxy ? "Proxy-Authorization" : "Authorization", value, c->offer,
                     c->offer_len);
}

static void on_invite_rsp(ml_sip_txn *t, const ml_sip_msg *rsp, int timeout, void *data)
{
  ml_sip_call *c = data;
  if (t != c->dial_txn) return; /* an older INVITE (before an auth retry) */
  if (timeout) {
    ml_sip_txn_detach(t);
    c->dial_txn = NULL;
    call_end(c, "timeout", 408);
    return;
  }
  int code = rsp->status;
  c->last_code = code;
  if (code < 200) {
    if (c->state == ML_CALL_CALLING) c->state = ML_CALL_PROGRESS;
    if (c->cancel_pending) {
      send_cancel(c);
      return;
    }
    if (rsp->body.n) set_buf(&c->remote_sdp, &c->remote_sdp_len, rsp->body.p, rsp->body.n);
    if (c->on_event && !c->released) c->on_event(c, ML_CALL_EV_PROGRESS, c->data);
    return;
  }
  if (code < 300) {
    if (c->state == ML_CALL_CONFIRMED || c->state == ML_CALL_ENDING || c->state == ML_CALL_ENDED) {
      if (c->ack) ml_sip_stack_send(c->stack, &c->hop, c->ack, c->ack_len); /* a retransmitted 2xx */
      return;
    }
    copy_str(c->remote_tag, sizeof c->remote_tag, rsp->to.tag);
    const ml_sip_header *h = ml_sip_header_get(rsp, ML_SIP_H_TO);
    if (h) copy_str(c->remote_party, sizeof c->remote_party, h->value);
    ml_sip_name_addr contact;
    if (rsp->n_contact > 0 && ml_sip_parse_name_addr(rsp->contact[0], &contact) == 0)
      copy_str(c->remote_target, sizeof c->remote_target, contact.uri.text);
    c->n_route = 0; /* the route set is the Record-Route in reverse (§12.1.2) */
    for (unsigned i = rsp->n_record_route; i > 0 && c->n_route < ML_SIP_MAX_ROUTESET; i--)
      copy_str(c->route[c->n_route++], sizeof c->route[0], rsp->record_route[i - 1]);
    dialog_next_hop(c);
    set_buf(&c->remote_sdp, &c->remote_sdp_len, rsp->body.p, rsp->body.n);
    set_buf(&c->answer, &c->answer_len, rsp->buf, rsp->len);
    send_ack(c, rsp->cseq, &c->ack, &c->ack_len);
    if (c->cancel_pending || c->released) { /* answered after we gave up: hang up (D5) */
      c->state = ML_CALL_ENDING;
      send_bye(c, 1);
      return;
    }
    c->state = ML_CALL_CONFIRMED;
    if (c->on_event) c->on_event(c, ML_CALL_EV_CONFIRMED, c->data);
    return;
  }
  if ((code == 401 || code == 407) && retry_with_auth(c, rsp) == 0) return;
  ml_sip_txn_detach(t);
  c->dial_txn = NULL;
  call_end(c, code == 487 ? "cancelled" : code == 401 || code == 407 ? "auth failed" : "rejected", code);
}

/* ---- transfer (REFER, RFC 3515) ---------------------------------------------------- */

static void refer_event(ml_sip_call *c, int code, int final)
{
  c->refer_code = code;
  c->refer_final = final;
  if (c->on_event && !c->released) c->on_event(c, ML_CALL_EV_REFER, c->data);
}

static void on_refer_rsp(ml_sip_txn *t, const ml_sip_msg *rsp, int timeout, void *data)
{
  (void)t;
  ml_sip_call *c = data;
  if (timeout) {
    refer_event(c, 408, 1);
    return;
  }
  if (rsp->status < 200) return;
  /* 202: accepted, NOTIFYs follow; anything else ends the attempt */
  refer_event(c, rsp->status, rsp->status >= 300);
}

int ml_sip_call_refer(ml_sip_call *c, const char *target, const char *referred_by)
{
  if (c->state != ML_CALL_CONFIRMED) return -1;
  ml_sip_stack *s = c->stack;
  char branch[48], buf[4096];
  ml_sip_builder b;
  ml_sip_builder_init(&b, buf, sizeof buf);
  dialog_request(c, "REFER", ++c->local_cseq, branch, sizeof branch, &b);
  ml_sip_builder_headerf(&b, "Contact", "<sip:moonline@%s%s>", s->local_hostport,
                         ml_sip_addr_uri_param(&c->hop));
  ml_sip_builder_headerf(&b, "Refer-To", "<%s>", target);
  if (referred_by) ml_sip_builder_headerf(&b, "Referred-By", "<%s>", referred_by);
  if (s->cfg.user_agent) ml_sip_builder_header(&b, "User-Agent", ml_str_c(s->cfg.user_agent));
  size_t n = ml_sip_builder_finish(&b, ML_STR_NULL);
  if (!n) return -1;
  c->refer_code = 0;
  c->refer_final = 0;
  ml_sip_txn_client_new(s, ML_SIP_REFER, branch, &c->hop, buf, n, on_refer_rsp, c);
  return 0;
}

/* a NOTIFY of the refer subscription: its sipfrag says how the transfer goes */
static void handle_refer_notify(ml_sip_stack *s, ml_sip_call *c, const ml_sip_msg *req,
                                const ml_sip_addr *from)
{
  respond_new(s, req, from, 200);
  ml_sipfrag frag;
  if (req->body.n == 0 || ml_sipfrag_parse(&frag, req->body.p, req->body.n) != 0) return;
  const ml_sip_header *st = ml_sip_header_get(req, ML_SIP_H_SUBSCRIPTION_STATE);
  int terminated =
      st && st->value.n >= 10 && ml_str_ieq(ml_str_make(st->value.p, 10), ML_STR_LIT("terminated"));
  refer_event(c, (int)frag.status, terminated || frag.status >= 200);
}

/* ---- our re-INVITE (hold, resume; RFC 3261 §14, RFC 3264 §8.4) ------------------- */

void ml_sip_call_set_local_sdp(ml_sip_call *c, const char *sdp, size_t sdp_len)
{
  set_buf(&c->local_sdp, &c->local_sdp_len, sdp, sdp_len);
}

/* a 2xx or a re-INVITE may move the peer (target refresh, §12.2) */
static void target_refresh(ml_sip_call *c, const ml_sip_msg *m)
{
  ml_sip_name_addr contact;
  if (m->n_contact > 0 && ml_sip_parse_name_addr(m->contact[0], &contact) == 0)
    copy_str(c->remote_target, sizeof c->remote_target, contact.uri.text);
}

static void reinvite_done(ml_sip_call *c, int code)
{
  c->reinvite_pending = 0;
  c->reinvite_code = code;
  if (c->on_event && !c->released) c->on_event(c, ML_CALL_EV_REINVITE, c->data);
}

static void on_reinvite_rsp(ml_sip_txn *t, const ml_sip_msg *rsp, int timeout, void *data)
{
  ml_sip_call *c = data;
  if (t != c->reinvite_txn) return; /* an older one's late 2xx retransmission */
  if (timeout) {
    c->reinvite_txn = NULL;
    if (!c->reinvite_pending) return;
    reinvite_done(c, 408);
    /* no answer in a dialog: end it (RFC 3261 §12.2.1.2) */
    if (c->state == ML_CALL_CONFIRMED) {
      c->state = ML_CALL_ENDING;
      send_bye(c, 1);
    }
    return;
  }
  int code = rsp->status;
  if (code < 200) return;
  if (code >= 300) {
    ml_sip_txn_detach(t); /* the transaction ACKs the failure itself */
    c->reinvite_txn = NULL;
    if (!c->reinvite_pending) return;
    reinvite_done(c, code);
    if (code == 481) call_end(c, "dialog gone", 481); /* §12.2.1.2 */
    return;
  }
  if (!c->reinvite_pending) { /* a retransmitted 2xx: the same ACK again */
    if (c->reinvite_ack) ml_sip_stack_send(c->stack, &c->hop, c->reinvite_ack, c->reinvite_ack_len);
    return;
  }
  target_refresh(c, rsp);
  send_ack(c, rsp->cseq, &c->reinvite_ack, &c->reinvite_ack_len);
  if (rsp->body.n) set_buf(&c->remote_sdp, &c->remote_sdp_len, rsp->body.p, rsp->body.n);
  ml_sip_call_set_local_sdp(c, c->reinvite_sdp, c->reinvite_sdp_len);
  reinvite_done(c, code);
}

int ml_sip_call_reinvite(ml_sip_call *c, const char *sdp, size_t sdp_len)
{
  if (c->state != ML_CALL_CONFIRMED || c->reinvite_pending || !sdp_len) return -1;
  if (c->awaiting_ack) return -2; /* the peer's INVITE is not over until its ACK (RFC 3261 §14.1) */
  ml_sip_stack *s = c->stack;
  char branch[48], buf[8192];
  ml_sip_builder b;
  ml_sip_builder_init(&b, buf, sizeof buf);
  dialog_request(c, "INVITE", ++c->local_cseq, branch, sizeof branch, &b);
  ml_sip_builder_headerf(&b, "Contact", "<sip:moonline@%s%s>", s->local_hostport,
                         ml_sip_addr_uri_param(&c->hop));
  ml_sip_builder_header(&b, "Allow", ML_STR_LIT(ALLOW));
  ml_sip_builder_header(&b, "Supported", ML_STR_LIT("timer"));
  if (s->cfg.user_agent) ml_sip_builder_header(&b, "User-Agent", ml_str_c(s->cfg.user_agent));
  ml_sip_builder_header(&b, "Content-Type", ML_STR_LIT("application/sdp"));
  size_t n = ml_sip_builder_finish(&b, ml_str_make(sdp, sdp_len));
  if (!n) return -1;
  set_buf(&c->reinvite_sdp, &c->reinvite_sdp_len, sdp, sdp_len);
  if (c->reinvite_txn) ml_sip_txn_detach(c->reinvite_txn);
  c->reinvite_pending = 1;
  c->reinvite_code = 0;
  c->reinvite_txn = ml_sip_txn_client_new(s, ML_SIP_INVITE, branch, &c->hop, buf, n, on_reinvite_rsp, c);
  c->reinvite_txn->slot = &c->reinvite_txn;
  return 0;
}

/* ---- a REFER from the peer (RFC 3515) ----------------------------------------------- */

/* NOTIFY of the implicit refer subscription with the sipfrag of `code`;
 * a final code ends it */
static int send_refer_notify(ml_sip_call *c, int code)
{
  ml_sip_stack *s = c->stack;
  char frag[128], branch[48], buf[4096];
  int fl = ml_sipfrag_write(frag, sizeof frag, (unsigned)code, ML_STR_NULL);
  if (fl < 0) return -1;
  ml_sip_builder b;
  ml_sip_builder_init(&b, buf, sizeof buf);
  dialog_request(c, "NOTIFY", ++c->local_cseq, branch, sizeof branch, &b);
  ml_sip_builder_headerf(&b, "Contact", "<sip:moonline@%s%s>", s->local_hostport,
                         ml_sip_addr_uri_param(&c->hop));
  ml_sip_builder_header(&b, "Event", ML_STR_LIT("refer"));
  ml_sip_builder_header(&b, "Subscription-State",
                        code >= 200 ? ML_STR_LIT("terminated;reason=noresource")
                                    : ML_STR_LIT("active;expires=60"));
  if (s->cfg.user_agent) ml_sip_builder_header(&b, "User-Agent", ml_str_c(s->cfg.user_agent));
  ml_sip_builder_header(&b, "Content-Type", ML_STR_LIT(ML_SIPFRAG_CONTENT_TYPE));
  size_t n = ml_sip_builder_finish(&b, ml_str_make(frag, (size_t)fl));
  if (!n) return -1;
  ml_sip_txn_client_new(s, ML_SIP_NOTIFY, branch, &c->hop, buf, n, NULL, NULL);
  return 0;
}

/* answer the stored REFER on its transaction */
static int refer_in_respond(ml_sip_call *c, int code)
{
  ml_sip_msg *m = malloc(sizeof *m);
  int rc = -1;
  if (m && c->refer_in_txn && c->refer_in_req &&
      ml_sip_parse(m, c->refer_in_req, c->refer_in_req_len, ML_SIP_UDP) == 0) {
    respond(c->stack, c->refer_in_txn, m, code, NULL, NULL, NULL, 0);
    rc = 0;
  }
  free(m);
  free(c->refer_in_req);
  c->refer_in_req = NULL;
  c->refer_in_req_len = 0;
  if (c->refer_in_txn) ml_sip_txn_detach(c->refer_in_txn);
  c->refer_in_txn = NULL;
  return rc;
}

int ml_sip_call_refer_accept(ml_sip_call *c)
{
  if (c->refer_in != ML_REFER_IN_PENDING) return -1;
  refer_in_respond(c, 202);
  c->refer_in = ML_REFER_IN_ACCEPTED;
  if (c->state == ML_CALL_CONFIRMED || c->state == ML_CALL_ANSWERED) send_refer_notify(c, 100);
  return 0;
}

int ml_sip_call_refer_reject(ml_sip_call *c, int code)
{
  if (c->refer_in != ML_REFER_IN_PENDING || code < 300 || code > 699) return -1;
  refer_in_respond(c, code);
  c->refer_in = ML_REFER_IN_NONE;
  return 0;
}

int ml_sip_call_refer_notify(ml_sip_call *c, int code)
{
  if (c->refer_in != ML_REFER_IN_ACCEPTED || code < 100 || code > 699) return -1;
  if (c->state != ML_CALL_CONFIRMED && c->state != ML_CALL_ANSWERED) {
    c->refer_in = ML_REFER_IN_NONE; /* the dialog is gone: nobody to tell */
    return -1;
  }
  if (send_refer_notify(c, code) != 0) return -1;
  if (code >= 200) c->refer_in = ML_REFER_IN_NONE;
  return 0;
}

/* the call ends (or we hang up): an undecided REFER is declined, an accepted
 * one whose outcome was never reported gets a final NOTIFY while the dialog
 * still stands */
static void refer_in_close(ml_sip_call *c)
{
  if (c->refer_in == ML_REFER_IN_PENDING) refer_in_respond(c, 603);
  if (c->refer_in == ML_REFER_IN_ACCEPTED && (c->state == ML_CALL_CONFIRMED || c->state == ML_CALL_ANSWERED))
    send_refer_notify(c, 487);
  c->refer_in = ML_REFER_IN_NONE;
}

static void handle_refer(ml_sip_stack *s, ml_sip_call *c, const ml_sip_msg *req, const ml_sip_addr *from)
{
  const ml_sip_header *to = ml_sip_header_get(req, ML_SIP_H_REFER_TO);
  ml_sip_name_addr target, by;
  /* exactly one Refer-To (RFC 3515 §2.4.1), a URI we can read */
  if (!to || ml_sip_header_next(req, to) || ml_sip_parse_name_addr(to->value, &target) != 0 ||
      target.uri.text.n >= sizeof c->refer_in_to) {
    respond_new(s, req, from, 400);
    return;
  }
  if (c->state != ML_CALL_CONFIRMED && c->state != ML_CALL_ANSWERED) {
    respond_new(s, req, from, 481);
    return;
  }
  if (c->released || !c->on_event) { /* nobody to act on it */
    respond_new(s, req, from, 603);
    return;
  }
  if (c->refer_in != ML_REFER_IN_NONE) { /* one transfer at a time */
    respond_new(s, req, from, 491);
    return;
  }
  c->refer_in_req = malloc(req->len);
  if (!c->refer_in_req) {
    respond_new(s, req, from, 500);
    return;
  }
  memcpy(c->refer_in_req, req->buf, req->len);
  c->refer_in_req_len = req->len;
  c->refer_in_txn = ml_sip_txn_server_new(s, req, from);
  c->refer_in_txn->slot = &c->refer_in_txn;
  copy_str(c->refer_in_to, sizeof c->refer_in_to, target.uri.text);
  c->refer_in_by[0] = '\0';
  const ml_sip_header *rb = ml_sip_header_get(req, ML_SIP_H_REFERRED_BY);
  if (rb && ml_sip_parse_name_addr(rb->value, &by) == 0)
    copy_str(c->refer_in_by, sizeof c->refer_in_by, by.uri.text);
  c->refer_in = ML_REFER_IN_PENDING;
  c->on_event(c, ML_CALL_EV_REFER_IN, c->data);
}

/* ---- inbound requests ------------------------------------------------------------ */

static void new_call(ml_sip_stack *s, const ml_sip_msg *req, const ml_sip_addr *from, const char *user)
{
  ml_sip_call *c = calloc(1, sizeof *c);
  if (!c) return;
  c->stack = s;
  snprintf(c->auth_user, sizeof c->auth_user, "%s", user);
  c->state = ML_CALL_RINGING;
  c->peer = c->hop = *from; /* symmetric: answer where it came from (RFC 3581) */
  copy_str(c->call_id, sizeof c->call_id, req->call_id);
  copy_str(c->remote_tag, sizeof c->remote_tag, req->from.tag);
  ml_sip_make_tag(s, c->local_tag, sizeof c->local_tag);
  const ml_sip_header *h = ml_sip_header_get(req, ML_SIP_H_FROM);
  copy_str(c->remote_party, sizeof c->remote_party, h->value);
  h = ml_sip_header_get(req, ML_SIP_H_TO);
  snprintf(c->local_party, sizeof c->local_party, "%.*s;tag=%s", (int)h->value.n, h->value.p, c->local_tag);
  ml_sip_name_addr contact;
  if (req->n_contact > 0 && ml_sip_parse_name_addr(req->contact[0], &contact) == 0)
    copy_str(c->remote_target, sizeof c->remote_target, contact.uri.text);
  else
    copy_str(c->remote_target, sizeof c->remote_target, req->from.uri.text);
  for (unsigned i = 0; i < req->n_record_route && c->n_route < ML_SIP_MAX_ROUTESET; i++)
    copy_str(c->route[c->n_route++], sizeof c->route[0], req->record_route[i]);
  dialog_next_hop(c);
  c->remote_cseq = req->cseq;
  c->local_cseq = 1;
  ml_timer_init(&c->ok_timer, on_ok_timer);
  ml_timer_init(&c->ack_timeout, on_ack_timeout);
  c->invite = malloc(req->len);
  if (c->invite) {
    memcpy(c->invite, req->buf, req->len);
    c->invite_len = req->len;
  }
  if (req->body.n) {
    c->remote_sdp = malloc(req->body.n);
    if (c->remote_sdp) {
      memcpy(c->remote_sdp, req->body.p, req->body.n);
      c->remote_sdp_len = req->body.n;
    }
  }
  call_add(s, c);
  c->inv_txn = ml_sip_txn_server_new(s, req, from);
  c->inv_txn->call = c;
  c->inv_txn->slot = &c->inv_txn;
  respond(s, c->inv_txn, req, 100, NULL, NULL, NULL, 0);
  respond(s, c->inv_txn, req, 180, c->local_tag, NULL, NULL, 0);
  if (s->cfg.on_call)
    s->cfg.on_call(s, c, s->cfg.data);
  else
    ml_sip_call_reject(c, 480);
}

static void handle_cancel(ml_sip_stack *s, const ml_sip_msg *req, const ml_sip_addr *from)
{
  ml_sip_txn *inv = ml_sip_txn_find(s, req->via0.branch, ML_SIP_INVITE, 1);
  if (!inv) {
    respond_new(s, req, from, 481);
    return;
  }
  respond_new(s, req, from, 200);
  ml_sip_call *c = inv->call;
  if (c && c->state == ML_CALL_RINGING) {
    ml_sip_msg *m = malloc(sizeof *m);
    if (m && reparse_invite(c, m) == 0) respond(s, inv, m, 487, c->local_tag, NULL, NULL, 0);
    free(m);
    call_end(c, "cancelled", 487);
  }
}

/* A re-INVITE or UPDATE. With an offer: the owner answers it (hold,
 * resume; a refresh repeating the same SDP gets the same answer). Without
 * one: a session refresh, answered with our current SDP (for a re-INVITE
 * it is our offer; the answer in the ACK changes nothing here). */
static void handle_offer(ml_sip_stack *s, ml_sip_call *c, const ml_sip_msg *req, const ml_sip_addr *from)
{
  int invite = req->method == ML_SIP_INVITE;
  if (c->reinvite_pending && (invite || req->body.n)) { /* glare: ours is out (RFC 3261 §14.2) */
    respond_new(s, req, from, 491);
    return;
  }
  if (invite && (c->awaiting_ack || c->state == ML_CALL_RINGING)) {
    /* an earlier INVITE is not done (no final response, or its 2xx not
     * ACKed yet): 500 with Retry-After 0-10 s (RFC 3261 §14.2) */
    respond_retry_after(s, req, from);
    return;
  }
  ml_sip_txn *t = ml_sip_txn_server_new(s, req, from);
  char sdp[2048];
  int n = -1;
  if (invite) target_refresh(c, req);
  if (req->body.n && c->on_reoffer && !c->released) {
    /* the offer is the peer's SDP only once we accept it: a 488 keeps the
     * previous one (RFC 3261 §14.2, RFC 3264 §8) */
    char *prev = c->remote_sdp;
    size_t prev_len = c->remote_sdp_len;
    c->remote_sdp = NULL;
    set_buf(&c->remote_sdp, &c->remote_sdp_len, req->body.p, req->body.n);
    n = c->remote_sdp ? c->on_reoffer(c, sdp, sizeof sdp, c->data) : -1;
    if (n >= 0) {
      ml_sip_call_set_local_sdp(c, sdp, (size_t)n);
      free(prev);
    } else {
      free(c->remote_sdp);
      c->remote_sdp = prev;
      c->remote_sdp_len = prev_len;
    }
  } else if (!req->body.n && !invite) {
    n = 0; /* UPDATE without an offer: nothing to answer */
  } else if (!req->body.n && c->local_sdp && c->local_sdp_len < sizeof sdp) {
    memcpy(sdp, c->local_sdp, c->local_sdp_len);
    n = (int)c->local_sdp_len;
  }
  if (n < 0)
    respond(s, t, req, 488, NULL, NULL, NULL, 0);
  else
    respond_session(c, t, req, sdp, (size_t)n);
}

static void handle_in_dialog(ml_sip_stack *s, ml_sip_call *c, const ml_sip_msg *req, const ml_sip_addr *from)
{
  if (req->method == ML_SIP_ACK) { /* for our 2xx to the INVITE with that CSeq */
    if (!c->awaiting_ack || req->cseq != c->ok_cseq) return;
    ok_stop(c);
    if (c->state == ML_CALL_ANSWERED) {
      c->state = ML_CALL_CONFIRMED;
      if (c->on_event && !c->released) c->on_event(c, ML_CALL_EV_CONFIRMED, c->data);
    }
    return;
  }
  if (req->cseq < c->remote_cseq) { /* RFC 3261 §12.2.2 */
    respond_new(s, req, from, 500);
    return;
  }
  c->remote_cseq = req->cseq;
  switch (req->method) {
  case ML_SIP_BYE:
    respond_new(s, req, from, 200);
    call_end(c, "remote hangup", 0);
    break;
  case ML_SIP_OPTIONS:
  case ML_SIP_INFO:
    respond_new(s, req, from, 200);
    break;
  case ML_SIP_NOTIFY:
    handle_refer_notify(s, c, req, from);
    break;
  case ML_SIP_REFER:
    handle_refer(s, c, req, from);
    break;
  case ML_SIP_INVITE: /* re-INVITE: hold, resume, or a session-timer refresh */
  case ML_SIP_UPDATE: /* a refresh (RFC 4028), with or without an offer */
    handle_offer(s, c, req, from);
    break;
  default:
    respond_new(s, req, from, 501);
    break;
  }
}

void ml_sip_ua_request(ml_sip_stack *s, const ml_sip_msg *req, const ml_sip_addr *from)
{
  if (req->method == ML_SIP_CANCEL) {
    handle_cancel(s, req, from);
    return;
  }
  ml_sip_call *c = req->to.tag.n ? call_find(s, req) : NULL;
  if (c) {
    handle_in_dialog(s, c, req, from);
    return;
  }
  if (req->method == ML_SIP_ACK) return; /* for nothing we know: absorb */
  if (req->to.tag.n) { /* in-dialog, but not a dialog of ours */
    respond_new(s, req, from, 481);
    return;
  }
  switch (req->method) {
  case ML_SIP_INVITE: {
    char user[ML_SIP_AUTH_USER_MAX] = "";
    ml_sip_auth_result r = ML_SIP_AUTH_OK;
    if (s->draining)
      respond_new(s, req, from, 503);
    else if (s->cfg.auth &&
             (r = ml_sip_auth_check(s->cfg.auth, req, ml_clock_now(s->loop), user)) != ML_SIP_AUTH_OK)
      respond_auth(s, req, from, r);
    else
      new_call(s, req, from, user);
    break;
  }
  case ML_SIP_OPTIONS:
    respond_new(s, req, from, s->draining ? 503 : 200);
    break;
  case ML_SIP_BYE:
  case ML_SIP_REFER: /* we take transfers only inside a call */
    respond_new(s, req, from, 481);
    break;
  case ML_SIP_REGISTER:
    respond_new(s, req, from, 405);
    break;
  default:
    respond_new(s, req, from, 501);
    break;
  }
}

int ml_sip_ua_uses(ml_sip_stack *s, const ml_sip_addr *peer)
{
  for (size_t i = 0; i < s->call_cap; i++)
    for (ml_sip_call *c = s->calls[i]; c; c = c->hash_next)
      if (c->state != ML_CALL_ENDED && (ml_sip_addr_eq(&c->peer, peer) || ml_sip_addr_eq(&c->hop, peer)))
        return 1;
  return 0;
}
