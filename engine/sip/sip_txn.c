/* SIP transactions (RFC 3261 §17, with RFC 6026's Accepted state).
 *
 * Server INVITE:  Proceeding -1xx-> Proceeding; -2xx-> Accepted (timer L;
 *                 the UA retransmits the 2xx until ACK); -3xx..6xx-> Completed
 *                 (timer G retransmits, H gives up, ACK -> Confirmed, timer I).
 * Server other:   Trying -1xx-> Proceeding -final-> Completed (timer J).
 * Client INVITE:  Calling (timer A retransmits, B gives up) -1xx-> Proceeding
 *                 -2xx-> Accepted (timer M) -3xx..6xx-> ACK, Completed (timer D).
 * Client other:   Trying (timer E, F) -1xx-> Proceeding -final-> Completed (K).
 *
 * Over TCP (a reliable transport, §17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2)
 * nothing is retransmitted (no timers A, E, G) and D, I, J, K are zero.
 *
 * A transaction is found by branch + method in an open hash (ACK and CANCEL
 * are matched to the INVITE by their callers). Timers are engine-clock
 * timers: no scan of all transactions ever happens. */
#include <stdlib.h>
#include <string.h>

#include "sip_stack.h"

static void txn_free(ml_sip_txn *t);

/* ---- the hash ------------------------------------------------------------------ */

static uint64_t hash_key(ml_str branch, ml_sip_method method, int server)
{
  uint64_t h = 1469598103934665603ull ^ (uint64_t)method ^ ((uint64_t)server << 8);
  for (size_t i = 0; i < branch.n; i++) {
    h ^= (unsigned char)branch.p[i];
    h *= 1099511628211ull;
  }
  return h;
}

static int is_server(const ml_sip_txn *t)
{
  return t->kind == ML_TXN_SERVER_INVITE || t->kind == ML_TXN_SERVER;
}

static ml_sip_txn **bucket(ml_sip_stack *s, ml_str branch, ml_sip_method method, int server)
{
  return &s->txns[hash_key(branch, method, server) & (s->txn_cap - 1)];
}

static void table_grow(ml_sip_stack *s)
{
  size_t old_cap = s->txn_cap;
  ml_sip_txn **old = s->txns;
  s->txn_cap = old_cap ? old_cap * 2 : 256;
  s->txns = calloc(s->txn_cap, sizeof *s->txns);
  if (!s->txns) abort();
  for (size_t i = 0; i < old_cap; i++) {
    ml_sip_txn *t = old[i];
    while (t) {
      ml_sip_txn *next = t->hash_next;
      ml_sip_txn **b = bucket(s, ml_str_c(t->branch), t->method, is_server(t));
      t->hash_next = *b;
      *b = t;
      t = next;
    }
  }
  free(old);
}

static void table_add(ml_sip_stack *s, ml_sip_txn *t)
{
  if (s->n_txns + 1 > s->txn_cap / 2) table_grow(s);
  ml_sip_txn **b = bucket(s, ml_str_c(t->branch), t->method, is_server(t));
  t->hash_next = *b;
  *b = t;
  s->n_txns++;
}

static void table_remove(ml_sip_stack *s, ml_sip_txn *t)
{
  for (ml_sip_txn **p = bucket(s, ml_str_c(t->branch), t->method, is_server(t)); *p; p = &(*p)->hash_next) {
    if (*p == t) {
      *p = t->hash_next;
      s->n_txns--;
      return;
    }
  }
}

ml_sip_txn *ml_sip_txn_find(ml_sip_stack *s, ml_str branch, ml_sip_method method, int server)
{
  if (!s->txn_cap || branch.n == 0 || branch.n >= sizeof((ml_sip_txn *)0)->branch) return NULL;
  for (ml_sip_txn *t = *bucket(s, branch, method, server); t; t = t->hash_next)
    if (t->method == method && is_server(t) == server && ml_str_eq(ml_str_c(t->branch), branch)) return t;
  return NULL;
}

/* ---- common ------------------------------------------------------------------- */

static void keep(ml_sip_txn *t, const char *buf, size_t len)
{
  char *copy = realloc(t->last, len);
  if (!copy) abort();
  memcpy(copy, buf, len);
  t->last = copy;
  t->last_len = len;
}

static void resend(ml_sip_txn *t)
{
  if (!t->last) return;
  t->stack->retransmits++;
  ml_sip_stack_send(t->stack, &t->peer, t->last, t->last_len);
}

static void terminate(ml_sip_txn *t)
{
  t->state = ML_TXN_TERMINATED;
  txn_free(t);
}

static void on_retransmit(ml_timer *tm);
static void on_timeout(ml_timer *tm);

static ml_sip_txn *txn_new(ml_sip_stack *s, enum ml_sip_txn_kind kind, ml_sip_method method, ml_str branch,
                           const ml_sip_addr *peer)
{
  ml_sip_txn *t = calloc(1, sizeof *t);
  if (!t) abort();
  t->stack = s;
  t->kind = kind;
  t->method = method;
  size_t n = branch.n < sizeof t->branch - 1 ? branch.n : sizeof t->branch - 1;
  memcpy(t->branch, branch.p, n);
  t->peer = *peer;
  ml_timer_init(&t->retransmit, on_retransmit);
  ml_timer_init(&t->timeout, on_timeout);
  table_add(s, t);
  return t;
}

static void txn_free(ml_sip_txn *t)
{
  ml_sip_stack *s = t->stack;
  if (t->slot && *t->slot == t) *t->slot = NULL;
  ml_timer_stop(s->loop, &t->retransmit);
  ml_timer_stop(s->loop, &t->timeout);
  table_remove(s, t);
  free(t->last);
  free(t);
}

void ml_sip_txn_detach(ml_sip_txn *t)
{
  t->slot = NULL;
  t->cb = NULL;
  t->cb_data = NULL;
  t->call = NULL;
}

void ml_sip_txn_transport_error(ml_sip_stack *s, const ml_sip_addr *peer)
{
  /* rare (a connection failed): a scan is fine. Timer B/F fires now and
   * reports the failure from the loop, not from inside the transport. */
  for (size_t i = 0; i < s->txn_cap; i++)
    for (ml_sip_txn *t = s->txns[i]; t; t = t->hash_next)
      if (!is_server(t) && ml_sip_addr_eq(&t->peer, peer) &&
          (t->state == ML_TXN_CALLING || t->state == ML_TXN_TRYING || t->state == ML_TXN_PROCEEDING))
        ml_timer_start(s->loop, &t->timeout, 0);
}

void ml_sip_txn_free_all(ml_sip_stack *s)
{
  for (size_t i = 0; i < s->txn_cap; i++)
    while (s->txns[i]) txn_free(s->txns[i]);
  free(s->txns);
  s->txns = NULL;
  s->txn_cap = s->n_txns = 0;
}

/* ---- timers ------------------------------------------------------------------- */

static void on_retransmit(ml_timer *tm)
{
  ml_sip_txn *t = ml_container_of(tm, ml_sip_txn, retransmit);
  ml_loop *loop = t->stack->loop;
  switch (t->kind) {
  case ML_TXN_CLIENT_INVITE: /* timer A: doubles without cap */
    if (t->state != ML_TXN_CALLING) return;
    resend(t);
    t->interval_ns *= 2;
    break;
  case ML_TXN_CLIENT: /* timer E: doubles up to T2; T2 once proceeding */
    if (t->state != ML_TXN_TRYING && t->state != ML_TXN_PROCEEDING) return;
    resend(t);
    t->interval_ns = t->state == ML_TXN_PROCEEDING       ? ML_SIP_T2_NS
                     : t->interval_ns * 2 < ML_SIP_T2_NS ? t->interval_ns * 2
                                                         : ML_SIP_T2_NS;
    break;
  case ML_TXN_SERVER_INVITE: /* timer G: the final non-2xx until ACK */
    if (t->state != ML_TXN_COMPLETED) return;
    resend(t);
    t->interval_ns = t->interval_ns * 2 < ML_SIP_T2_NS ? t->interval_ns * 2 : ML_SIP_T2_NS;
    break;
  default:
    return;
  }
  ml_timer_start(loop, &t->retransmit, t->interval_ns);
}

static void on_timeout(ml_timer *tm)
{
  ml_sip_txn *t = ml_container_of(tm, ml_sip_txn, timeout);
  int reported = t->state == ML_TXN_CALLING || t->state == ML_TXN_TRYING || t->state == ML_TXN_PROCEEDING;
  if (t->kind == ML_TXN_CLIENT_INVITE || t->kind == ML_TXN_CLIENT) {
    /* B or F: no final response in time — the owner hears a timeout (408) */
    if (reported && t->cb) {
      ml_sip_txn_cb cb = t->cb;
      t->cb = NULL;
      cb(t, NULL, 1, t->cb_data);
    }
  } else if (t->kind == ML_TXN_SERVER_INVITE && t->state == ML_TXN_COMPLETED) {
    /* H: the ACK never came (the UA may care; the transaction just ends) */
  }
  terminate(t);
}

/* ---- server transactions ------------------------------------------------------ */

ml_sip_txn *ml_sip_txn_server_new(ml_sip_stack *s, const ml_sip_msg *req, const ml_sip_addr *peer)
{
  int invite = req->method == ML_SIP_INVITE;
  ml_sip_txn *t =
      txn_new(s, invite ? ML_TXN_SERVER_INVITE : ML_TXN_SERVER, req->method, req->via0.branch, peer);
  t->state = invite ? ML_TXN_PROCEEDING : ML_TXN_TRYING;
  return t;
}

void ml_sip_txn_respond(ml_sip_txn *t, int code, const char *buf, size_t len)
{
  ml_sip_stack *s = t->stack;
  if (t->state == ML_TXN_COMPLETED || t->state == ML_TXN_CONFIRMED || t->state == ML_TXN_TERMINATED) return;
  keep(t, buf, len);
  t->last_code = code;
  ml_sip_stack_send(s, &t->peer, buf, len);
  if (code < 200) {
    t->state = ML_TXN_PROCEEDING;
    return;
  }
  if (t->kind == ML_TXN_SERVER_INVITE) {
    if (code < 300) {
      /* RFC 6026: Accepted; the UA core retransmits the 2xx until ACK */
      t->state = ML_TXN_ACCEPTED;
      ml_timer_start(s->loop, &t->timeout, 64 * ML_SIP_T1_NS); /* L */
    } else {
      t->state = ML_TXN_COMPLETED;
      t->interval_ns = ML_SIP_T1_NS;
      if (!t->peer.tcp) ml_timer_start(s->loop, &t->retransmit, t->interval_ns); /* G */
      ml_timer_start(s->loop, &t->timeout, 64 * ML_SIP_T1_NS); /* H */
    }
  } else {
    t->state = ML_TXN_COMPLETED;
    ml_timer_start(s->loop, &t->timeout, t->peer.tcp ? 0 : 64 * ML_SIP_T1_NS); /* J */
  }
}

void ml_sip_txn_server_recv(ml_sip_txn *t, const ml_sip_msg *req)
{
  if (req->method == ML_SIP_ACK) {
    if (t->kind == ML_TXN_SERVER_INVITE && t->state == ML_TXN_COMPLETED) {
      t->state = ML_TXN_CONFIRMED;
      ml_timer_stop(t->stack->loop, &t->retransmit);
      ml_timer_start(t->stack->loop, &t->timeout, t->peer.tcp ? 0 : ML_SIP_T4_NS); /* I */
    }
    return;
  }
  /* a retransmitted request: repeat the last response, if any */
  if (t->state == ML_TXN_PROCEEDING || t->state == ML_TXN_COMPLETED || t->state == ML_TXN_ACCEPTED) resend(t);
}

/* ---- client transactions ------------------------------------------------------ */

ml_sip_txn *ml_sip_txn_client_new(ml_sip_stack *s, ml_sip_method method, const char *branch,
                                  const ml_sip_addr *peer, const char *buf, size_t len, ml_sip_txn_cb cb,
                                  void *data)
{
  int invite = method == ML_SIP_INVITE;
  ml_sip_txn *t = txn_new(s, invite ? ML_TXN_CLIENT_INVITE : ML_TXN_CLIENT, method, ml_str_c(branch), peer);
  t->state = invite ? ML_TXN_CALLING : ML_TXN_TRYING;
  t->cb = cb;
  t->cb_data = data;
  keep(t, buf, len);
  ml_sip_stack_send(s, peer, buf, len);
  t->interval_ns = ML_SIP_T1_NS;
  if (!peer->tcp) ml_timer_start(s->loop, &t->retransmit, t->interval_ns); /* A or E */
  ml_timer_start(s->loop, &t->timeout, 64 * ML_SIP_T1_NS); /* B or F */
  return t;
}

/* ACK for a non-2xx final response: same branch, the INVITE's Request-URI,
 * From, Call-ID, CSeq number, and the response's To (RFC 3261 §17.1.1.3). */
static void send_ack_for_failure(ml_sip_txn *t, const ml_sip_msg *rsp)
{
  ml_sip_msg inv;
  if (ml_sip_parse(&inv, t->last, t->last_len, ML_SIP_UDP) != 0) return;
  char buf[4096];
  ml_sip_builder b;
  ml_sip_builder_init(&b, buf, sizeof buf);
  ml_sip_builder_request_line(&b, ML_STR_LIT("ACK"), inv.ruri.text);
  ml_sip_builder_header(&b, "Via", inv.via[0]);
  const ml_sip_header *h;
  if ((h = ml_sip_header_get(&inv, ML_SIP_H_FROM))) ml_sip_builder_header(&b, "From", h->value);
  if ((h = ml_sip_header_get(rsp, ML_SIP_H_TO))) ml_sip_builder_header(&b, "To", h->value);
  ml_sip_builder_header(&b, "Call-ID", inv.call_id);
  ml_sip_builder_headerf(&b, "CSeq", "%u ACK", (unsigned)inv.cseq);
  for (unsigned i = 0; i < inv.n_route; i++) ml_sip_builder_header(&b, "Route", inv.route[i]);
  ml_sip_builder_header(&b, "Max-Forwards", ML_STR_LIT("70"));
  size_t n = ml_sip_builder_finish(&b, ML_STR_NULL);
  if (n) ml_sip_stack_send(t->stack, &t->peer, buf, n);
}

void ml_sip_txn_client_recv(ml_sip_txn *t, const ml_sip_msg *rsp)
{
  ml_sip_stack *s = t->stack;
  int code = rsp->status;
  if (t->state == ML_TXN_COMPLETED || t->state == ML_TXN_TERMINATED) {
    /* a retransmitted final response: an INVITE failure is ACKed again */
    if (t->kind == ML_TXN_CLIENT_INVITE && code >= 300) send_ack_for_failure(t, rsp);
    return;
  }
  if (t->state == ML_TXN_ACCEPTED) { /* 2xx retransmissions go to the UA (it ACKs) */
    if (code >= 200 && code < 300 && t->cb) t->cb(t, rsp, 0, t->cb_data);
    return;
  }
  if (code < 200) {
    t->state = ML_TXN_PROCEEDING;
    if (t->kind == ML_TXN_CLIENT_INVITE) ml_timer_stop(s->loop, &t->retransmit);
    if (t->cb) t->cb(t, rsp, 0, t->cb_data);
    return;
  }
  ml_timer_stop(s->loop, &t->retransmit);
  ml_timer_stop(s->loop, &t->timeout);
  ml_sip_txn_cb cb = t->cb;
  void *data = t->cb_data;
  if (t->kind == ML_TXN_CLIENT_INVITE) {
    if (code < 300) {
      t->state = ML_TXN_ACCEPTED;
      ml_timer_start(s->loop, &t->timeout, 64 * ML_SIP_T1_NS); /* M */
    } else {
      send_ack_for_failure(t, rsp);
      t->state = ML_TXN_COMPLETED;
      t->cb = NULL;
      ml_timer_start(s->loop, &t->timeout, t->peer.tcp ? 0 : 32000000000ull); /* D */
    }
  } else {
    t->state = ML_TXN_COMPLETED;
    t->cb = NULL;
    ml_timer_start(s->loop, &t->timeout, t->peer.tcp ? 0 : ML_SIP_T4_NS); /* K */
  }
  if (cb) cb(t, rsp, 0, data);
}
