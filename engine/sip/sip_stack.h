/* The SIP stack of one listener: transport (UDP and TCP), transactions (RFC 3261 §17,
 * RFC 6026) and the user-agent core (dialogs, calls). Everything runs on the
 * engine loop; timers are engine-clock timers (virtual in tests).
 *
 *   transport  -> ml_sip_stack_receive(): parse, validate, find the transaction
 *   txn layer  -> retransmissions and timeouts; hands requests/responses up
 *   UA core    -> calls (ml_sip_call): answer, reject, hang up, CANCEL, BYE
 *
 * Lookups are O(1): transactions by branch+method, calls by Call-ID+tags, in
 * open hash tables; timers are entries in the engine's heap. */
#ifndef ML_SIP_STACK_H
#define ML_SIP_STACK_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "ml_runtime.h"
#include "sip_msg.h"

#define ML_SIP_T1_NS 500000000ull /* RTT estimate */
#define ML_SIP_T2_NS 4000000000ull /* max retransmit interval for non-INVITE / responses */
#define ML_SIP_T4_NS 5000000000ull /* max duration a message stays in the network */

typedef struct ml_sip_stack ml_sip_stack;
typedef struct ml_sip_txn ml_sip_txn;
typedef struct ml_sip_call ml_sip_call;
typedef struct ml_sip_auth ml_sip_auth;

typedef struct ml_sip_conn ml_sip_conn;

/* A peer address and the transport to reach it: over TCP a message goes on
 * the open connection to that address (one is made when there is none). */
typedef struct ml_sip_addr {
  struct sockaddr_storage ss;
  socklen_t len;
  int tcp;
} ml_sip_addr;

/* "ip:port" of an address, for logs and Via/Contact */
void ml_sip_addr_format(const ml_sip_addr *a, char *buf, size_t cap, int with_port);
int ml_sip_addr_port(const ml_sip_addr *a);
int ml_sip_addr_eq(const ml_sip_addr *a, const ml_sip_addr *b);
int ml_sip_addr_resolve(const char *host, int port, ml_sip_addr *out); /* numeric only */
void ml_sip_addr_set_port(ml_sip_addr *a, int port);
/* family, address and port only (the same bytes for the same peer: a hash key) */
void ml_sip_addr_from_sockaddr(const struct sockaddr *sa, ml_sip_addr *out);

/* ---- transactions ----------------------------------------------------------- */

enum ml_sip_txn_kind { ML_TXN_SERVER_INVITE, ML_TXN_SERVER, ML_TXN_CLIENT_INVITE, ML_TXN_CLIENT };

enum ml_sip_txn_state {
  ML_TXN_TRYING, /* non-INVITE: request received/sent, no response yet */
  ML_TXN_CALLING, /* client INVITE sent */
  ML_TXN_PROCEEDING, /* a provisional response */
  ML_TXN_ACCEPTED, /* INVITE 2xx (RFC 6026): 2xx retransmissions belong to the UA */
  ML_TXN_COMPLETED, /* final response: absorb retransmissions */
  ML_TXN_CONFIRMED, /* server INVITE: ACK for the non-2xx received */
  ML_TXN_TERMINATED,
};

/* What a client transaction reports to its owner. */
typedef void (*ml_sip_txn_cb)(ml_sip_txn *t, const ml_sip_msg *rsp, int timeout, void *data);

struct ml_sip_txn {
  ml_sip_stack *stack;
  enum ml_sip_txn_kind kind;
  enum ml_sip_txn_state state;
  ml_sip_method method;
  char branch[64];
  ml_sip_addr peer;
  char *last; /* the message we retransmit (request, or last response) */
  size_t last_len;
  int last_code; /* server: last response code sent */
  uint64_t interval_ns; /* current retransmit interval */
  ml_timer retransmit; /* A, E, G */
  ml_timer timeout; /* B, F, H, J, K, D, I, L, M */
  ml_sip_txn_cb cb; /* client transactions */
  void *cb_data;
  ml_sip_call *call; /* server INVITE: its call */
  ml_sip_txn **slot; /* the owner's pointer to it, cleared when it goes away */
  ml_sip_txn *hash_next;
};

/* ---- the stack --------------------------------------------------------------- */

/* ml_sip_stack_cfg.transports */
#define ML_SIP_LISTEN_UDP 1
#define ML_SIP_LISTEN_TCP 2

#define ML_SIP_TCP_MAX_CONNS 1024 /* default bound on open connections */
#define ML_SIP_TCP_IDLE_NS 300000000000ull /* default: close after 5 min without traffic */
#define ML_SIP_TCP_MAX_OUT (1024 * 1024) /* unsent bytes a connection may hold */

typedef struct ml_sip_stack_cfg {
  const char *host; /* listen address (numeric) */
  int port; /* 0: ephemeral (the same port for UDP and TCP) */
  int transports; /* ML_SIP_LISTEN_* bits; 0: UDP only */
  unsigned tcp_max_conns; /* 0: ML_SIP_TCP_MAX_CONNS */
  uint64_t tcp_idle_ns; /* 0: ML_SIP_TCP_IDLE_NS */
  const char *user_agent;
  /* digest auth of new inbound INVITEs (sip_auth.h), owned by the caller;
   * NULL: none. In-dialog requests, CANCEL and OPTIONS are not challenged. */
  ml_sip_auth *auth;
  /* an inbound INVITE created this call: the owner decides (answer/reject) */
  void (*on_call)(ml_sip_stack *s, ml_sip_call *c, void *data);
  void *data;
} ml_sip_stack_cfg;

struct ml_sip_stack {
  ml_loop *loop;
  uv_udp_t udp;
  int udp_open;
  uv_tcp_t tcp; /* the TCP listening socket */
  int tcp_open;
  /* TCP connections (inbound and outbound): open hash by peer address */
  ml_sip_conn **conns;
  size_t conn_cap, n_conns;
  int handles; /* libuv handles not closed yet: on_closed after the last */
  ml_sip_addr local;
  char local_hostport[64];
  ml_sip_stack_cfg cfg;
  int draining; /* OPTIONS and new INVITEs get 503 */
  /* transactions: open hash by branch+method */
  ml_sip_txn **txns;
  size_t txn_cap, n_txns;
  /* calls: open hash by Call-ID */
  ml_sip_call **calls;
  size_t call_cap, n_calls;
  char rbuf[ML_SIP_MAX_MSG]; /* receive buffer: one datagram at a time */
  ml_sip_msg msg; /* the message being handled (4 KB: not on the stack) */
  uint64_t tag_seq;
  /* figures */
  uint64_t rx, tx, rx_errors, retransmits;
  uint64_t tcp_accepted, tcp_refused; /* refused: over tcp_max_conns */
  void (*on_closed)(ml_sip_stack *s);
  int closing;
};

/* On failure the handles opened so far are closing: call ml_sip_stack_close
 * (again) with a callback before freeing s. */
int ml_sip_stack_open(ml_sip_stack *s, ml_loop *loop, const ml_sip_stack_cfg *cfg);
/* Close the sockets and every connection; every call must already be gone.
 * on_closed runs later, once every handle is closed. */
void ml_sip_stack_close(ml_sip_stack *s, void (*on_closed)(ml_sip_stack *s));
/* UDP: a datagram; TCP (to->tcp): on the connection to `to`, made if needed */
int ml_sip_stack_send(ml_sip_stack *s, const ml_sip_addr *to, const char *buf, size_t len);
/* for tests: handle one datagram as if received */
void ml_sip_stack_receive(ml_sip_stack *s, const char *buf, size_t len, const ml_sip_addr *from);
/* one framed message from a stream (parsed with ML_SIP_STREAM); -1 when it
 * is malformed (a 400 went back if possible): the stream must be closed */
int ml_sip_stack_receive_stream(ml_sip_stack *s, const char *buf, size_t len, const ml_sip_addr *from);
/* the head of a message that cannot be framed: a 400 if it can be answered */
void ml_sip_stack_reject_stream(ml_sip_stack *s, const char *head, size_t len, const ml_sip_addr *from);
/* "UDP" or "TCP", for Via */
static inline const char *ml_sip_addr_via(const ml_sip_addr *a) { return a->tcp ? "TCP" : "UDP"; }
/* ";transport=tcp" or "", for Contact */
static inline const char *ml_sip_addr_uri_param(const ml_sip_addr *a)
{
  return a->tcp ? ";transport=tcp" : "";
}

/* TCP (sip_tcp.c) */
int ml_sip_tcp_listen(ml_sip_stack *s, const ml_sip_addr *local);
int ml_sip_tcp_start(ml_sip_stack *s); /* s->tcp is open and bound: listen */
int ml_sip_tcp_send(ml_sip_stack *s, const ml_sip_addr *to, const char *buf, size_t len);
ml_sip_conn *ml_sip_tcp_find(ml_sip_stack *s, const ml_sip_addr *peer);
/* close the listening socket and every connection (handles counted in s->handles) */
void ml_sip_tcp_close_all(ml_sip_stack *s);
void ml_sip_stack_handle_closed(ml_sip_stack *s);
/* a call not ended sends to or hears from peer (sip_call.c; a scan: for the
 * idle check of a connection only) */
int ml_sip_ua_uses(ml_sip_stack *s, const ml_sip_addr *peer);
void ml_sip_make_tag(ml_sip_stack *s, char *buf, size_t cap);
void ml_sip_make_branch(ml_sip_stack *s, char *buf, size_t cap);

/* transactions (sip_txn.c) */
ml_sip_txn *ml_sip_txn_find(ml_sip_stack *s, ml_str branch, ml_sip_method method, int server);
ml_sip_txn *ml_sip_txn_server_new(ml_sip_stack *s, const ml_sip_msg *req, const ml_sip_addr *peer);
/* send a response on a server transaction (it keeps a copy for retransmission) */
void ml_sip_txn_respond(ml_sip_txn *t, int code, const char *buf, size_t len);
/* a request retransmission or ACK arrived for this server transaction */
void ml_sip_txn_server_recv(ml_sip_txn *t, const ml_sip_msg *req);
/* start a client transaction: msg already holds our Via with `branch` */
ml_sip_txn *ml_sip_txn_client_new(ml_sip_stack *s, ml_sip_method method, const char *branch,
                                  const ml_sip_addr *peer, const char *buf, size_t len, ml_sip_txn_cb cb,
                                  void *data);
void ml_sip_txn_client_recv(ml_sip_txn *t, const ml_sip_msg *rsp);
/* the owner is gone: no more callbacks; the transaction finishes on its own */
void ml_sip_txn_detach(ml_sip_txn *t);
void ml_sip_txn_free_all(ml_sip_stack *s);
/* the connection to peer failed or closed: its client transactions time out
 * now (RFC 3261 §17.1.4) instead of at timer B/F */
void ml_sip_txn_transport_error(ml_sip_stack *s, const ml_sip_addr *peer);

#endif
