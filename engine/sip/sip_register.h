/* Registration of a listener's address at a registrar (RFC 3261 §10): the
 * REGISTER carries our Contact; a 401/407 is answered once with digest
 * credentials; the binding is refreshed before it expires (at 80% of what
 * the registrar granted); closing removes it (Expires: 0). Failures are
 * retried with a backoff. */
#ifndef ML_SIP_REGISTER_H
#define ML_SIP_REGISTER_H

#include "sip_stack.h"

typedef struct ml_sip_reg ml_sip_reg;

enum ml_sip_reg_state {
  ML_REG_REGISTERING,
  ML_REG_REGISTERED,
  ML_REG_FAILED,
  ML_REG_UNREGISTERING,
  ML_REG_DONE
};

struct ml_sip_reg {
  ml_sip_stack *stack;
  enum ml_sip_reg_state state;
  ml_sip_addr registrar;
  char ruri[256], aor[256], user[64], call_id[96], from_tag[40];
  char *username, *password;
  uint32_t cseq;
  int expires; /* asked */
  int granted; /* what the registrar gave */
  int last_code;
  int auth_tries; /* answers to challenges since the last success */
  ml_timer refresh;
  ml_sip_txn *txn;
  void (*on_change)(ml_sip_reg *r, void *data);
  void *data;
};

typedef struct ml_sip_reg_cfg {
  const char *registrar_host; /* numeric */
  int registrar_port;
  const char *domain; /* Request-URI host; default registrar_host */
  const char *user; /* the AOR is sip:user@domain */
  const char *username, *password; /* digest; may be NULL */
  int expires; /* seconds asked for; default 3600 */
} ml_sip_reg_cfg;

int ml_sip_reg_start(ml_sip_reg *r, ml_sip_stack *s, const ml_sip_reg_cfg *cfg,
                     void (*on_change)(ml_sip_reg *, void *), void *data);
/* Remove the binding (REGISTER with Expires: 0); on_change reports DONE. */
void ml_sip_reg_stop(ml_sip_reg *r);
/* Forget it at once (the stack is closing): no more callbacks. */
void ml_sip_reg_abandon(ml_sip_reg *r);

#endif
