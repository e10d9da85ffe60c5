/* REGISTER with refresh (see sip_register.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "sip_register.h"

#define RETRY_NS 5000000000ull /* after a failure */

static void send_register(ml_sip_reg *r, int expires, const char *auth_name, const char *auth_value);

static void changed(ml_sip_reg *r)
{
  if (r->on_change) r->on_change(r, r->data);
}

static void on_refresh(ml_timer *tm)
{
  ml_sip_reg *r = ml_container_of(tm, ml_sip_reg, refresh);
  r->auth_tries = 0;
  send_register(r, r->expires, NULL, NULL);
}

/* the lease the registrar granted: an expires param on the Contact it
 * returns (we register one), else its Expires header, else what we asked */
static int granted_expires(const ml_sip_reg *r, const ml_sip_msg *rsp)
{
  for (unsigned i = 0; i < rsp->n_contact; i++) {
    ml_sip_name_addr na;
    ml_str v;
    uint64_t e;
    if (ml_sip_parse_name_addr(rsp->contact[i], &na) == 0 && ml_sip_param(na.params, "expires", &v) == 1 &&
        ml_str_to_u64(v, 1u << 30, &e) == 0)
      return (int)e;
  }
  return rsp->expires >= 0 ? (int)rsp->expires : r->expires;
}

static int answer_challenge(ml_sip_reg *r, const ml_sip_msg *rsp, int expires)
{
  if (!r->username || !r->password || r->auth_tries++ > 0) return -1;
  int proxy = rsp->status == 407;
  const ml_sip_header *h =
      ml_sip_header_get(rsp, proxy ? ML_SIP_H_PROXY_AUTHENTICATE : ML_SIP_H_WWW_AUTHENTICATE);
  ml_digest_chal ch;
  if (!h || ml_digest_chal_parse(&ch, h->value) != 0) return -1;
  ml_digest_auth a;
  memset(&a, 0, sizeof a);
  a.username = ml_str_c(r->username);
  a.password = ml_str_c(r->password);
  a.method = ML_STR_LIT("REGISTER");
  a.uri = ml_str_c(r->ruri);
  char value[1024];
  uint32_t nc = 0;
  if (ml_digest_authorize(value, sizeof value, &ch, &a, &nc) <= 0) return -1;
  send_register(r, expires, proxy ? "Proxy-Authorization" : "Authorization", value);
  return 0;
}

static void on_response(ml_sip_txn *t, const ml_sip_msg *rsp, int timeout, void *data)
{
  ml_sip_reg *r = data;
  if (t != r->txn) return;
  int stopping = r->state == ML_REG_UNREGISTERING;
  if (!timeout && rsp->status < 200) return;
  r->txn = NULL;
  r->last_code = timeout ? 408 : rsp->status;
  if (!timeout && (rsp->status == 401 || rsp->status == 407) &&
      answer_challenge(r, rsp, stopping ? 0 : r->expires) == 0)
    return;
  if (stopping) {
    r->state = ML_REG_DONE;
    changed(r);
    return;
  }
  if (!timeout && rsp->status >= 200 && rsp->status < 300) {
    r->state = ML_REG_REGISTERED;
    r->granted = granted_expires(r, rsp);
    r->auth_tries = 0;
    uint64_t refresh_ns = (uint64_t)r->granted * 800000000ull; /* 80% of the lease */
    if (refresh_ns < 1000000000ull) refresh_ns = 1000000000ull;
    ml_timer_start(r->stack->loop, &r->refresh, refresh_ns);
  } else {
    r->state = ML_REG_FAILED;
    ml_timer_start(r->stack->loop, &r->refresh, RETRY_NS);
  }
  changed(r);
}

static void send_register(ml_sip_reg *r, int expires, const char *auth_name, const char *auth_value)
{
  ml_sip_stack *s = r->stack;
  char branch[48], buf[4096];
  ml_sip_make_branch(s, branch, sizeof branch);
  ml_sip_builder b;
  ml_sip_builder_init(&b, buf, sizeof buf);
  ml_sip_builder_request_line(&b, ML_STR_LIT("REGISTER"), ml_str_c(r->ruri));
  ml_sip_builder_headerf(&b, "Via", "SIP/2.0/%s %s;branch=%s;rport", ml_sip_addr_via(&r->registrar),
                         s->local_hostport, branch);
  ml_sip_builder_header(&b, "Max-Forwards", ML_STR_LIT("70"));
  ml_sip_builder_headerf(&b, "From", "<%s>;tag=%s", r->aor, r->from_tag);
  ml_sip_builder_headerf(&b, "To", "<%s>", r->aor);
  ml_sip_builder_header(&b, "Call-ID", ml_str_c(r->call_id)); /* the same for every refresh (§10.2) */
  ml_sip_builder_headerf(&b, "CSeq", "%u REGISTER", (unsigned)++r->cseq);
  ml_sip_builder_headerf(&b, "Contact", "<sip:%s@%s>", r->user, s->local_hostport);
  ml_sip_builder_headerf(&b, "Expires", "%d", expires);
  if (auth_name) ml_sip_builder_header(&b, auth_name, ml_str_c(auth_value));
  if (s->cfg.user_agent) ml_sip_builder_header(&b, "User-Agent", ml_str_c(s->cfg.user_agent));
  size_t n = ml_sip_builder_finish(&b, ML_STR_NULL);
  if (!n) return;
  if (r->txn) ml_sip_txn_detach(r->txn);
  r->txn = ml_sip_txn_client_new(s, ML_SIP_REGISTER, branch, &r->registrar, buf, n, on_response, r);
  r->txn->slot = &r->txn;
}

int ml_sip_reg_start(ml_sip_reg *r, ml_sip_stack *s, const ml_sip_reg_cfg *cfg,
                     void (*on_change)(ml_sip_reg *, void *), void *data)
{
  memset(r, 0, sizeof *r);
  r->stack = s;
  if (ml_sip_addr_resolve(cfg->registrar_host, cfg->registrar_port ? cfg->registrar_port : 5060,
                          &r->registrar))
    return -1;
  const char *domain = cfg->domain ? cfg->domain : cfg->registrar_host;
  snprintf(r->ruri, sizeof r->ruri, "sip:%s", domain);
  snprintf(r->aor, sizeof r->aor, "sip:%s@%s", cfg->user, domain);
  snprintf(r->user, sizeof r->user, "%s", cfg->user);
  char id[40];
  ml_sip_make_tag(s, id, sizeof id);
  snprintf(r->call_id, sizeof r->call_id, "%s@moonline", id);
  ml_sip_make_tag(s, r->from_tag, sizeof r->from_tag);
  r->username = cfg->username ? strdup(cfg->username) : NULL;
  r->password = cfg->password ? strdup(cfg->password) : NULL;
  r->expires = cfg->expires > 0 ? cfg->expires : 3600;
  r->on_change = on_change;
  r->data = data;
  ml_timer_init(&r->refresh, on_refresh);
  r->state = ML_REG_REGISTERING;
  send_register(r, r->expires, NULL, NULL);
  return 0;
}

void ml_sip_reg_stop(ml_sip_reg *r)
{
  ml_timer_stop(r->stack->loop, &r->refresh);
  if (r->state == ML_REG_DONE || r->state == ML_REG_UNREGISTERING) return;
  r->state = ML_REG_UNREGISTERING;
  r->auth_tries = 0;
  send_register(r, 0, NULL, NULL);
}

void ml_sip_reg_abandon(ml_sip_reg *r)
{
  ml_timer_stop(r->stack->loop, &r->refresh);
  if (r->txn) ml_sip_txn_detach(r->txn);
  r->txn = NULL;
  r->on_change = NULL;
  free(r->username);
  free(r->password);
  r->username = r->password = NULL;
  r->state = ML_REG_DONE;
}
