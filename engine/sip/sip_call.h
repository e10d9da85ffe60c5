/* A call: one SIP dialog created by an INVITE (RFC 3261 §12-15) and what
 * the UA core does with it. Inbound: 100 and 180 go out at once; the owner
 * answers (200 + SDP, retransmitted until ACK), rejects, or the caller
 * cancels. Either side may hang up (BYE). The stack owns the object; the
 * owner releases it when done, and it is freed once it also ended. */
#ifndef ML_SIP_CALL_H
#define ML_SIP_CALL_H

#include "sip_stack.h"

enum ml_sip_call_state {
  ML_CALL_RINGING, /* inbound, 180 sent, waiting for the owner */
  ML_CALL_ANSWERED, /* 2xx sent, waiting for the ACK */
  ML_CALL_CONFIRMED, /* the dialog is up */
  ML_CALL_ENDING, /* our BYE is out */
  ML_CALL_ENDED,
};

enum ml_sip_call_event {
  ML_CALL_EV_CONFIRMED, /* ACK received */
  ML_CALL_EV_ENDED, /* c->end_reason, c->end_code say why */
};

#define ML_SIP_MAX_ROUTESET 8

struct ml_sip_call {
  ml_sip_stack *stack;
  enum ml_sip_call_state state;
  int released; /* the owner let go */
  char *invite; /* a copy of the INVITE we answer */
  size_t invite_len;
  ml_sip_txn *inv_txn;
  char call_id[128], local_tag[40], remote_tag[64];
  char local_party[256]; /* our To (UAS) with the tag */
  char remote_party[256]; /* their From */
  char remote_target[256]; /* their Contact URI */
  char route[ML_SIP_MAX_ROUTESET][256];
  int n_route;
  uint32_t local_cseq, remote_cseq;
  ml_sip_addr peer;
  /* 2xx retransmission until ACK (RFC 3261 §13.3.1.4) */
  char *ok;
  size_t ok_len;
  uint64_t ok_interval;
  ml_timer ok_timer, ack_timeout;
  const char *end_reason; /* static: "remote hangup", "cancelled", … */
  int end_code;
  char *remote_sdp;
  size_t remote_sdp_len;
  void (*on_event)(ml_sip_call *c, int ev, void *data);
  void *data;
  ml_sip_call *hash_next;
};

/* the stack received a request (sip_stack.c calls this for everything the
 * transaction layer does not absorb) */
void ml_sip_ua_request(ml_sip_stack *s, const ml_sip_msg *req, const ml_sip_addr *from);
void ml_sip_ua_free_all(ml_sip_stack *s);

int ml_sip_call_answer(ml_sip_call *c, const char *sdp, size_t sdp_len);
int ml_sip_call_reject(ml_sip_call *c, int code);
/* BYE when confirmed, 487-free reject (603) while ringing; no-op once ended */
void ml_sip_call_hangup(ml_sip_call *c);
/* the owner is done with it: no more events; freed when it has ended */
void ml_sip_call_release(ml_sip_call *c);

#endif
