/* A call: one SIP dialog created by an INVITE (RFC 3261 §12-15) and what
 * the UA core does with it. Inbound: 100 and 180 go out at once; the owner
 * answers (200 + SDP, retransmitted until ACK), rejects, or the caller
 * cancels. Either side may hang up (BYE). The stack owns the object; the
 * owner releases it when done, and it is freed once it also ended. */
#ifndef ML_SIP_CALL_H
#define ML_SIP_CALL_H

#include "sip_stack.h"

enum ml_sip_call_state {
  ML_CALL_CALLING, /* outbound: INVITE sent, nothing back yet */
  ML_CALL_PROGRESS, /* outbound: a provisional response (180, 183) */
  ML_CALL_RINGING, /* inbound, 180 sent, waiting for the owner */
  ML_CALL_ANSWERED, /* 2xx sent, waiting for the ACK */
  ML_CALL_CONFIRMED, /* the dialog is up */
  ML_CALL_ENDING, /* our BYE is out */
  ML_CALL_ENDED,
};

enum ml_sip_call_event {
  ML_CALL_EV_PROGRESS, /* outbound: c->last_code is 1xx (183: remote_sdp may be set) */
  ML_CALL_EV_CONFIRMED, /* ACK received (inbound) or 2xx received and ACKed (outbound) */
  ML_CALL_EV_ENDED, /* c->end_reason, c->end_code say why */
  ML_CALL_EV_REFER, /* c->refer_code: the REFER's response, then each NOTIFY's sipfrag */
  ML_CALL_EV_REINVITE, /* c->reinvite_code: the final response to our re-INVITE */
  ML_CALL_EV_REFER_IN, /* the peer sent a REFER: c->refer_in_to, c->refer_in_by; the owner decides */
};

/* an inbound REFER (RFC 3515) while the owner decides and acts on it */
enum ml_sip_refer_in_state {
  ML_REFER_IN_NONE, /* none, or the last one is over */
  ML_REFER_IN_PENDING, /* received, not answered yet */
  ML_REFER_IN_ACCEPTED, /* 202 sent, NOTIFY 100 sent; the final NOTIFY is owed */
};

#define ML_SIP_MAX_ROUTESET 8

struct ml_sip_call {
  ml_sip_stack *stack;
  enum ml_sip_call_state state;
  int released; /* the owner let go */
  int in_event; /* inside on_event: a release there frees after it returns */
  char *invite; /* a copy of the INVITE we answer (inbound) or sent last (outbound) */
  size_t invite_len;
  char *answer; /* outbound: a copy of the 2xx that answered it */
  size_t answer_len;
  char auth_user[128]; /* inbound with digest auth: the authenticated username */
  ml_sip_txn *inv_txn;
  char call_id[128], local_tag[40], remote_tag[64];
  char local_party[256]; /* our To (UAS) with the tag */
  char remote_party[256]; /* their From */
  char remote_target[256]; /* their Contact URI */
  char route[ML_SIP_MAX_ROUTESET][256];
  int n_route;
  uint32_t local_cseq, remote_cseq;
  ml_sip_addr peer; /* where the INVITE came from / went to: responses, CANCEL */
  ml_sip_addr hop; /* where in-dialog requests go: the first Route, else peer */
  /* our 2xx to the peer's INVITE (the first or a re-INVITE), retransmitted
   * to ok_to until the ACK with CSeq ok_cseq (RFC 3261 §13.3.1.4) */
  char *ok;
  size_t ok_len;
  int awaiting_ack;
  uint32_t ok_cseq;
  ml_sip_addr ok_to;
  char *offer; /* outbound: our SDP offer, sent again after a challenge */
  size_t offer_len;
  uint64_t ok_interval;
  ml_timer ok_timer, ack_timeout;
  const char *end_reason; /* static: "remote hangup", "cancelled", … */
  int end_code;
  char *remote_sdp;
  size_t remote_sdp_len;
  /* outbound */
  int outgoing;
  int last_code; /* the last response to our INVITE */
  int cancel_pending; /* CANCEL as soon as a provisional response arrives (RFC 3261 §9.1) */
  int auth_tries;
  ml_sip_txn *dial_txn;
  char *ack; /* the ACK for the 2xx, re-sent when the 2xx is retransmitted */
  size_t ack_len;
  char *username, *password;
  /* transfer (REFER, RFC 3515): the REFER's response, then the sipfrag of
   * each NOTIFY; refer_final when the subscription is over */
  int refer_code, refer_final;
  /* our re-INVITE (hold/resume): one at a time; reinvite_code is 0 while it
   * is pending, then its final status (408 on a timeout) */
  ml_sip_txn *reinvite_txn;
  int reinvite_pending, reinvite_code;
  char *reinvite_ack; /* the ACK for its 2xx, re-sent when the 2xx is retransmitted */
  size_t reinvite_ack_len;
  char *reinvite_sdp; /* its offer: our SDP once a 2xx accepts it */
  size_t reinvite_sdp_len;
  /* our current SDP (what a refresh without an offer gets) */
  char *local_sdp;
  size_t local_sdp_len;
  /* an inbound REFER: a copy of the request (to answer it), its URIs */
  enum ml_sip_refer_in_state refer_in;
  char *refer_in_req;
  size_t refer_in_req_len;
  ml_sip_txn *refer_in_txn;
  char refer_in_to[512], refer_in_by[256];
  void (*on_event)(ml_sip_call *c, int ev, void *data);
  /* a re-INVITE's offer (in remote_sdp): write the answer into out and
   * return its length, or -1 for 488. NULL: the first answer is repeated. */
  int (*on_reoffer)(ml_sip_call *c, char *out, size_t cap, void *data);
  void *data;
  ml_sip_call *hash_next;
};

/* An outbound call: the INVITE goes to `dest` with `sdp` as the offer. */
typedef struct ml_sip_dial {
  const char *ruri; /* Request-URI: "sip:bob@127.0.0.1:5080" */
  const char *to; /* To value: "<sip:bob@…>" */
  const char *from; /* From value without tag: "\"Agent\" <sip:agent@…>" */
  const char *extra_headers; /* "Name: value\r\n" lines, or NULL */
  const char *username, *password; /* digest credentials for 401/407, or NULL */
  const char *sdp;
  size_t sdp_len;
  ml_sip_addr dest;
} ml_sip_dial;

ml_sip_call *ml_sip_call_dial(ml_sip_stack *s, const ml_sip_dial *d,
                              void (*on_event)(ml_sip_call *, int, void *), void *data);

/* the stack received a request (sip_stack.c calls this for everything the
 * transaction layer does not absorb) */
void ml_sip_ua_request(ml_sip_stack *s, const ml_sip_msg *req, const ml_sip_addr *from);
void ml_sip_ua_free_all(ml_sip_stack *s);

int ml_sip_call_answer(ml_sip_call *c, const char *sdp, size_t sdp_len);
int ml_sip_call_reject(ml_sip_call *c, int code);
/* BYE when confirmed; inbound ringing: reject (603); outbound not yet
 * answered: CANCEL; no-op once ended */
void ml_sip_call_hangup(ml_sip_call *c);
/* REFER the other side to `target` (cold transfer); progress comes as
 * ML_CALL_EV_REFER events. -1 when the dialog is not up. */
int ml_sip_call_refer(ml_sip_call *c, const char *target, const char *referred_by);
/* a re-INVITE with `sdp` as our new offer (hold: a=sendonly, resume:
 * a=sendrecv); the outcome comes as ML_CALL_EV_REINVITE. A 2xx is ACKed and
 * its answer put in remote_sdp, local_sdp becomes `sdp`. -1 when the dialog
 * is not up or a re-INVITE is already pending; -2 while the peer's INVITE
 * still waits for its ACK (RFC 3261 §14.1: try again after it). */
int ml_sip_call_reinvite(ml_sip_call *c, const char *sdp, size_t sdp_len);
/* keep `sdp` as our current SDP (after answering a peer's offer) */
void ml_sip_call_set_local_sdp(ml_sip_call *c, const char *sdp, size_t sdp_len);
/* An inbound REFER (refer_in PENDING): accept (202, then NOTIFY "100
 * Trying"), or reject with a final code. Then, once accepted, report how
 * the referred call went: NOTIFY with the sipfrag of `code` (a final code
 * ends the subscription). -1 when the REFER is not in the right state. */
int ml_sip_call_refer_accept(ml_sip_call *c);
int ml_sip_call_refer_reject(ml_sip_call *c, int code);
int ml_sip_call_refer_notify(ml_sip_call *c, int code);
/* the owner is done with it: no more events; freed when it has ended */
void ml_sip_call_release(ml_sip_call *c);

#endif
