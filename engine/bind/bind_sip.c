/* moonline.sip (C half): a listener resource (one SIP stack on a UDP port)
 * and call resources. An inbound call waits in the listener's queue until a
 * task accepts it; the call then belongs to that task's scope, so the end of
 * the scope — normal, error or cancellation — hangs up and closes its RTP.
 *
 *   core.sip_listen(host, port, ua, transport, tcp_idle, tcp_max, auth) -> listener
 *     auth: nil | { realm =, users = table | function(username) -> password, algorithms =, nonce_ttl = }
 *   listener:accept() -> true, call | false, "closed"     listener:port()
 *   listener:set_draining(bool)    listener:stats()        listener:close()
 *   call:info()  call:header(name)  call:headers(name)  call:answer()  call:reject(code)  call:hangup()
 * call:state() call:wait("confirmed"|"ended")  call:tone(hz, level, seconds) call:read_dtmf()
 * call:rtp_stats()  call:close() call:reinvite(hold)  call:reinvite_status()  call:holding()   (our
 * hold/resume) call:refer_request()  call:refer_reply(what, code)             (a REFER from the peer) */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ml_bind.h"
#include "rtp_stream.h"
#include "sdp.h"
#include "sip_auth.h"
#include "sip_call.h"
#include "sip_register.h"

static const char LISTENER_MT[] = "moonline.sip_listener";
static const char CALL_MT[] = "moonline.sip_call";
static const char REG_MT[] = "moonline.sip_registration";

#define PENDING_MAX 256
#define DTMF_QUEUE 32

typedef struct sip_callres sip_callres;

typedef struct sip_listener {
  ml_res res; /* first */
  ml_sip_stack stack;
  char host[64];
  ml_sip_call *pending[PENDING_MAX]; /* FIFO of calls nobody accepted yet */
  unsigned head, count;
  ml_waitq acceptors;
  ml_list calls; /* sip_callres of accepted calls */
  ml_list regs; /* sip_regres registering this listener's address */
  /* digest auth of inbound INVITEs (NULL: none); the users table or
   * function, called on a thread of its own from the stack's receive path */
  ml_sip_auth *auth;
  lua_State *auth_L;
  int auth_thread_ref, users_ref;
} sip_listener;

typedef struct sip_regres {
  ml_res res; /* first */
  ml_list link; /* in listener->regs */
  sip_listener *listener;
  ml_sip_reg reg;
  int started;
  ml_waitq waiters;
  ml_timer linger; /* bound for the unregister at close */
} sip_regres;

struct sip_callres {
  ml_res res; /* first */
  ml_list link; /* in listener->calls */
  sip_listener *listener;
  ml_sip_call *call; /* NULL once the listener let go of it */
  ml_rtp_stream rtp;
  int rtp_open;
  ml_waitq waiters; /* call:wait, call:read_dtmf */
  char dtmf[DTMF_QUEUE];
  unsigned dtmf_head, dtmf_count;
  const char *end_reason;
  int end_code, ended, confirmed;
  int progress; /* outbound: the last provisional code */
  int held; /* the peer put us on hold (sendonly/inactive/c=0.0.0.0) */
  int holding, want_hold; /* we hold the peer (our re-INVITE sendonly was accepted) / asked to */
  int refer_code, refer_final, referring; /* call:transfer in progress */
  uint64_t sdp_version; /* of our last SDP */
  uint64_t sdp_id;
  ml_sip_stack *own_stack; /* outbound without a listener: a stack of its own */
  int closes; /* asynchronous closes still running (RTP socket, own stack) */
  ml_timer linger; /* own stack: how long the CANCEL/BYE exchange may take */
};

/* ---- listener -------------------------------------------------------------------- */

static void on_call(ml_sip_stack *st, ml_sip_call *c, void *data)
{
  (void)st;
  sip_listener *l = data;
  if (l->count == PENDING_MAX || l->res.state != ML_RES_OPEN) {
    ml_log(ML_LOG_WARN, "sip: call %s from %s: busy (486), %s", c->call_id, c->remote_party,
           l->res.state != ML_RES_OPEN ? "the listener is closing" : "256 calls already wait for a handler");
    ml_sip_call_reject(c, 486); /* busy here: nobody can take it */
    return;
  }
  ml_log(ML_LOG_INFO, "sip: call %s from %s to %s", c->call_id, c->remote_party, c->local_party);
  l->pending[(l->head + l->count++) % PENDING_MAX] = c;
  ml_waitq_wake(&l->acceptors, 1);
}

static void on_stack_closed(ml_sip_stack *st)
{
  sip_listener *l = ml_container_of(st, sip_listener, stack);
  ml_res_closed(&l->res);
}

/* ---- digest auth of inbound INVITEs -------------------------------------------- */

/* users[username] (a table, raw) or users(username) (a function: it must not
 * wait; an error or a value that is not a string or nil is a 500) */
static int auth_lookup(const char *user, char *pw, size_t cap, void *data)
{
  sip_listener *l = data;
  lua_State *L = l->auth_L;
  if (!L) return 1;
  int top = lua_gettop(L), rc = -1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, l->users_ref);
  lua_pushstring(L, user);
  if (lua_istable(L, -2)) {
    lua_rawget(L, -2);
  } else if (lua_pcall(L, 1, 1, 0) != 0) {
    ml_log(ML_LOG_WARN, "sip: auth users(%s) failed: %s", user, lua_tostring(L, -1));
    lua_settop(L, top);
    return -1;
  }
  size_t n;
  if (lua_type(L, -1) == LUA_TSTRING) {
    const char *p = lua_tolstring(L, -1, &n);
    if (n < cap && !memchr(p, '\0', n)) {
      memcpy(pw, p, n + 1);
      rc = 0;
    }
  } else if (lua_isnil(L, -1) || (lua_isboolean(L, -1) && !lua_toboolean(L, -1))) {
    rc = 1;
  }
  if (rc < 0) ml_log(ML_LOG_WARN, "sip: auth users(%s) gave no usable password", user);
  lua_settop(L, top);
  return rc;
}

static void auth_unref(sip_listener *l)
{
  if (!l->auth_L) return;
  luaL_unref(l->res.loop->L, LUA_REGISTRYINDEX, l->users_ref);
  luaL_unref(l->res.loop->L, LUA_REGISTRYINDEX, l->auth_thread_ref);
  l->auth_L = NULL;
}

/* the auth table at idx -> an ml_sip_auth (the users value is left on the
 * stack top for the caller to keep); raises on a bad table */
static ml_sip_auth *auth_from_table(lua_State *L, int idx)
{
  luaL_checktype(L, idx, LUA_TTABLE);
  char realm[128];
  lua_getfield(L, idx, "realm");
  snprintf(realm, sizeof realm, "%s", luaL_optstring(L, -1, "moonline"));
  lua_pop(L, 1);
  unsigned algs = 0;
  lua_getfield(L, idx, "algorithms");
  if (!lua_isnil(L, -1)) {
    luaL_checktype(L, -1, LUA_TTABLE);
    for (int i = 1;; i++) {
      lua_rawgeti(L, -1, i);
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        break;
      }
      const char *a = lua_tostring(L, -1);
      if (a && !strcasecmp(a, "SHA-256"))
        algs |= ML_SIP_AUTH_SHA256;
      else if (a && !strcasecmp(a, "MD5"))
        algs |= ML_SIP_AUTH_MD5;
      else
        luaL_error(L, "sip.listen: auth.algorithms: \"SHA-256\" and/or \"MD5\"");
      lua_pop(L, 1);
    }
    if (!algs) luaL_error(L, "sip.listen: auth.algorithms is empty");
  }
  lua_pop(L, 1);
  lua_getfield(L, idx, "nonce_ttl");
  lua_Number ttl = luaL_optnumber(L, -1, 0);
  lua_pop(L, 1);
  if (ttl < 0 || ttl > 86400) luaL_error(L, "sip.listen: auth.nonce_ttl is 0 to 86400 seconds");
  lua_getfield(L, idx, "users");
  if (!lua_istable(L, -1) && !lua_isfunction(L, -1))
    luaL_error(L, "sip.listen: auth.users is a table or a function(username) -> password");
  ml_sip_auth *a = malloc(sizeof *a);
  if (!a) luaL_error(L, "out of memory");
  if (ml_sip_auth_init(a, realm, algs, (uint64_t)(ttl * 1e9), auth_lookup, NULL) != 0) {
    free(a);
    luaL_error(L, "sip.listen: bad auth.realm (no quotes, backslashes or control characters)");
  }
  return a;
}

/* Closing a listener stops accepting (new INVITEs and OPTIONS get 503,
 * queued calls are refused); calls in progress keep their dialog until their
 * handlers let go of them, then the stack closes. */
static void listener_close(ml_res *r)
{
  sip_listener *l = (sip_listener *)r;
  l->stack.draining = 1;
  ml_waitq_wake(&l->acceptors, 0x7fffffff);
  while (l->count) { /* queued calls nobody took: the service is going away */
    ml_sip_call *c = l->pending[l->head];
    l->head = (l->head + 1) % PENDING_MAX;
    l->count--;
    ml_sip_call_reject(c, 503);
  }
  while (!ml_list_empty(&l->regs)) { /* their stack goes away: no more callbacks */
    sip_regres *rr = ml_container_of(l->regs.next, sip_regres, link);
    ml_list_remove(&rr->link);
    ml_sip_reg_abandon(&rr->reg);
    rr->listener = NULL;
    ml_waitq_wake(&rr->waiters, 0x7fffffff);
  }
  auth_unref(l); /* draining: INVITEs get 503 before any auth */
  if (ml_list_empty(&l->calls)) ml_sip_stack_close(&l->stack, on_stack_closed);
}

/* the last call of a closing listener is gone: the stack can close */
static void listener_call_gone(sip_listener *l)
{
  if (l->res.state == ML_RES_CLOSING && ml_list_empty(&l->calls) && !l->stack.closing)
    ml_sip_stack_close(&l->stack, on_stack_closed);
}

static void listener_free(ml_res *r)
{
  sip_listener *l = (sip_listener *)r;
  if (l->auth) ml_sip_auth_clear(l->auth);
  free(l->auth);
  free((char *)l->stack.cfg.user_agent);
  free(l);
}

static ml_res_type listener_type = {"sip_listener", 0, listener_close, listener_free};

/* a stack that failed to open is freed once its handles are closed */
static void on_failed_listener_closed(ml_sip_stack *st) { free(ml_container_of(st, sip_listener, stack)); }
static void on_failed_own_stack_closed(ml_sip_stack *st) { free(st); }

/* "udp" | "tcp" | "both" -> ML_SIP_LISTEN_* bits, 0 when unknown */
static int transports_of(const char *name)
{
  if (!strcmp(name, "udp")) return ML_SIP_LISTEN_UDP;
  if (!strcmp(name, "tcp")) return ML_SIP_LISTEN_TCP;
  if (!strcmp(name, "both")) return ML_SIP_LISTEN_UDP | ML_SIP_LISTEN_TCP;
  return 0;
}

static int l_sip_listen(lua_State *L)
{
  const char *host = luaL_optstring(L, 1, "127.0.0.1");
  int port = (int)luaL_optinteger(L, 2, 5060);
  const char *ua = luaL_optstring(L, 3, "moonline/" MOONLINE_VERSION);
  int transports = transports_of(luaL_optstring(L, 4, "udp"));
  lua_Number idle = luaL_optnumber(L, 5, 0);
  lua_Integer max_conns = luaL_optinteger(L, 6, 0);
  if (!transports) return luaL_argerror(L, 4, "\"udp\", \"tcp\" or \"both\"");
  if (idle < 0 || idle > 1e6 || max_conns < 0 || max_conns > 1000000)
    return luaL_error(L, "sip.listen: tcp_idle_timeout and tcp_max_connections must be positive");
  ml_task *t = ml_bind_task(L, "sip.listen");
  /* last thing that may raise: the users value stays on the stack top */
  ml_sip_auth *auth = lua_isnoneornil(L, 7) ? NULL : auth_from_table(L, 7);
  sip_listener *l = calloc(1, sizeof *l);
  if (!l) {
    free(auth);
    return luaL_error(L, "out of memory");
  }
  if (auth) {
    auth->lookup_data = l;
    l->auth = auth;
  }
  ml_waitq_init(&l->acceptors);
  ml_list_init(&l->calls);
  ml_list_init(&l->regs);
  snprintf(l->host, sizeof l->host, "%s", host);
  ml_sip_stack_cfg cfg = {.host = host,
                          .port = port,
                          .user_agent = ua,
                          .transports = transports,
                          .tcp_idle_ns = (uint64_t)(idle * 1e9),
                          .tcp_max_conns = (unsigned)max_conns,
                          .auth = auth,
                          .on_call = on_call,
                          .data = l};
  int rc = ml_sip_stack_open(&l->stack, t->loop, &cfg);
  if (rc) {
    free(auth);
    l->auth = NULL;
    ml_sip_stack_close(&l->stack, on_failed_listener_closed);
    lua_pushboolean(L, 0);
    lua_pushfstring(L, "cannot listen on %s:%d: %s", host, port, uv_strerror(rc));
    return 2;
  }
  l->stack.cfg.user_agent = strdup(ua); /* the Lua string may go */
  if (auth) {
    l->users_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* pops the users value */
    l->auth_L = lua_newthread(L);
    l->auth_thread_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_pushboolean(L, 1);
  ml_bind_open(L, t->loop, &l->res, &listener_type, t->cur, LISTENER_MT);
  return 2;
}

static sip_listener *check_listener(lua_State *L)
{
  sip_listener *l = (sip_listener *)ml_box_get(L, 1, LISTENER_MT);
  if (!l) luaL_error(L, "moonline.sip: the listener is closed");
  return l;
}

static int l_listener_port(lua_State *L)
{
  lua_pushinteger(L, ml_sip_addr_port(&check_listener(L)->stack.local));
  return 1;
}

static int l_listener_draining(lua_State *L)
{
  check_listener(L)->stack.draining = lua_toboolean(L, 2);
  return 0;
}

static int l_listener_stats(lua_State *L)
{
  sip_listener *l = check_listener(L);
  lua_createtable(L, 0, 6);
  lua_pushnumber(L, (lua_Number)l->stack.rx);
  lua_setfield(L, -2, "rx");
  lua_pushnumber(L, (lua_Number)l->stack.tx);
  lua_setfield(L, -2, "tx");
  lua_pushnumber(L, (lua_Number)l->stack.rx_errors);
  lua_setfield(L, -2, "rx_errors");
  lua_pushnumber(L, (lua_Number)l->stack.retransmits);
  lua_setfield(L, -2, "retransmits");
  lua_pushnumber(L, (lua_Number)l->stack.n_calls);
  lua_setfield(L, -2, "calls");
  lua_pushnumber(L, (lua_Number)l->stack.n_txns);
  lua_setfield(L, -2, "transactions");
  lua_pushnumber(L, (lua_Number)l->stack.n_conns);
  lua_setfield(L, -2, "tcp_connections");
  lua_pushnumber(L, (lua_Number)l->stack.tcp_accepted);
  lua_setfield(L, -2, "tcp_accepted");
  lua_pushnumber(L, (lua_Number)l->stack.tcp_refused);
  lua_setfield(L, -2, "tcp_refused");
  if (l->auth) { /* 401s sent; credentials taken; 403/400/500; stale nonces with the right password */
    lua_pushnumber(L, (lua_Number)l->auth->challenged);
    lua_setfield(L, -2, "auth_challenges");
    lua_pushnumber(L, (lua_Number)l->auth->accepted);
    lua_setfield(L, -2, "auth_accepted");
    lua_pushnumber(L, (lua_Number)l->auth->rejected);
    lua_setfield(L, -2, "auth_rejected");
    lua_pushnumber(L, (lua_Number)l->auth->stale);
    lua_setfield(L, -2, "auth_stale");
  }
  return 1;
}

/* ---- calls ------------------------------------------------------------------------ */

static void callres_wake(sip_callres *cr) { ml_waitq_wake(&cr->waiters, 0x7fffffff); }

static void start_rtp_from_answer(sip_callres *cr, ml_sip_call *c);
static void apply_reinvite_answer(sip_callres *cr, ml_sip_call *c);

static void log_end(sip_callres *cr, ml_sip_call *c)
{
  ml_log(ML_LOG_INFO, "sip: call %s ended: %s (%d); RTP %llu packets out, %llu in", c->call_id,
         c->end_reason ? c->end_reason : "ended", c->end_code,
         (unsigned long long)(cr->rtp_open ? cr->rtp.tx_packets : 0),
         (unsigned long long)(cr->rtp_open ? cr->rtp.rx_packets : 0));
}

static void on_call_event(ml_sip_call *c, int ev, void *data)
{
  sip_callres *cr = data;
  if (ev == ML_CALL_EV_PROGRESS) cr->progress = c->last_code;
  if (ev == ML_CALL_EV_REFER) {
    cr->refer_code = c->refer_code;
    cr->refer_final = c->refer_final;
  }
  if (ev == ML_CALL_EV_REINVITE) apply_reinvite_answer(cr, c);
  if (ev == ML_CALL_EV_CONFIRMED) {
    cr->confirmed = 1;
    if (c->outgoing) start_rtp_from_answer(cr, c);
  }
  if (ev == ML_CALL_EV_ENDED) {
    cr->ended = 1;
    cr->end_reason = c->end_reason;
    cr->end_code = c->end_code;
    log_end(cr, c);
    if (cr->rtp_open) cr->rtp.cfg.send = 0; /* the call is over: stop sending */
  }
  callres_wake(cr);
}

static void on_dtmf(ml_rtp_stream *s, char digit, void *data)
{
  sip_callres *cr = data;
  (void)s;
  if (cr->dtmf_count < DTMF_QUEUE) cr->dtmf[(cr->dtmf_head + cr->dtmf_count++) % DTMF_QUEUE] = digit;
  callres_wake(cr);
}

static void callres_close_done(sip_callres *cr)
{
  if (--cr->closes == 0) ml_res_closed(&cr->res);
}

static void on_rtp_closed(ml_rtp_stream *s, void *data)
{
  (void)s;
  callres_close_done(data);
}

static void on_own_stack_closed(ml_sip_stack *st) { callres_close_done(st->cfg.data); }

/* the last part of a close: let go of the dialog, close our own stack */
static void callres_finish_close(sip_callres *cr)
{
  ml_timer_stop(cr->res.loop, &cr->linger);
  if (cr->call) {
    ml_sip_call_release(cr->call);
    cr->call = NULL;
  }
  if (cr->listener) { /* last: a closing listener may close its stack now */
    sip_listener *l = cr->listener;
    ml_list_remove(&cr->link);
    cr->listener = NULL;
    listener_call_gone(l);
  }
  if (cr->own_stack) ml_sip_stack_close(cr->own_stack, on_own_stack_closed);
  callres_close_done(cr);
}

/* the exchange is over; finish from the loop, not from inside the stack's
 * own callback (closing the stack there would free the call under it) */
static void on_linger_event(ml_sip_call *c, int ev, void *data)
{
  sip_callres *cr = data;
  if (ev == ML_CALL_EV_ENDED) {
    log_end(cr, c);
    ml_timer_start(cr->res.loop, &cr->linger, 0);
  }
}

static void on_linger_timeout(ml_timer *tm)
{
  callres_finish_close(ml_container_of(tm, sip_callres, linger));
}

#define LINGER_NS 4000000000ull

static void callres_close(ml_res *r)
{
  sip_callres *cr = (sip_callres *)r;
  cr->ended = 1;
  callres_wake(cr);
  /* ml_res_closed once the RTP socket and our own stack (if any) are closed */
  cr->closes = 1 + (cr->rtp_open ? 1 : 0) + (cr->own_stack ? 1 : 0);
  if (cr->rtp_open) ml_rtp_stream_close(&cr->rtp);
  ml_timer_init(&cr->linger, on_linger_timeout);
  if (cr->call) {
    ml_sip_call_hangup(cr->call); /* BYE, CANCEL, or 603 while ringing */
    if (cr->own_stack && cr->call->state != ML_CALL_ENDED) {
      /* our own socket must outlive the exchange (the ACK for the 487, the
       * 200 for the BYE): the call ends it, or the linger bound */
      cr->call->on_event = on_linger_event;
      cr->call->data = cr;
      ml_timer_start(r->loop, &cr->linger, LINGER_NS);
      return;
    }
  }
  callres_finish_close(cr);
}

static void callres_free(ml_res *r)
{
  sip_callres *cr = (sip_callres *)r;
  if (cr->own_stack) free((char *)cr->own_stack->cfg.user_agent);
  free(cr->own_stack);
  free(r);
}

static ml_res_type call_type = {"sip_call", 0, callres_close, callres_free};

static int l_listener_accept(lua_State *L)
{
  sip_listener *l = (sip_listener *)ml_box_get(L, 1, LISTENER_MT);
  ml_task *t = ml_bind_wait_task(L, "sip listener:accept");
  if (!l || l->res.state != ML_RES_OPEN) return ml_bind_fail(L, "closed");
  if (ml_bind_cancelled(t)) return lua_yield(L, 0);
  /* skip calls that ended (cancelled) while they waited */
  while (l->count && l->pending[l->head]->state == ML_CALL_ENDED) {
    ml_sip_call_release(l->pending[l->head]);
    l->head = (l->head + 1) % PENDING_MAX;
    l->count--;
  }
  if (!l->count) {
    ml_waitq_wait(&l->acceptors, t, "sip accept");
    return lua_yield(L, 0);
  }
  ml_sip_call *c = l->pending[l->head];
  l->head = (l->head + 1) % PENDING_MAX;
  l->count--;
  sip_callres *cr = calloc(1, sizeof *cr);
  if (!cr) return luaL_error(L, "out of memory");
  cr->listener = l;
  cr->call = c;
  ml_waitq_init(&cr->waiters);
  ml_list_push(&l->calls, &cr->link);
  c->on_event = on_call_event;
  c->data = cr;
  lua_pushboolean(L, 1);
  ml_bind_open(L, t->loop, &cr->res, &call_type, t->cur, CALL_MT);
  return 2;
}

static sip_callres *check_call(lua_State *L)
{
  sip_callres *cr = (sip_callres *)ml_box_get(L, 1, CALL_MT);
  if (!cr) luaL_error(L, "moonline.sip: the call is closed");
  return cr;
}

static const char *call_state_name(sip_callres *cr)
{
  if (cr->ended || !cr->call) return "ended";
  switch (cr->call->state) {
  case ML_CALL_CALLING:
    return "calling";
  case ML_CALL_PROGRESS:
    return cr->progress == 183 ? "early" : "ringing";
  case ML_CALL_RINGING:
    return "ringing";
  case ML_CALL_ANSWERED:
    return "answered";
  case ML_CALL_CONFIRMED:
    return "confirmed";
  case ML_CALL_ENDING:
    return "ending";
  default:
    return "ended";
  }
}

static int l_call_state(lua_State *L)
{
  sip_callres *cr = check_call(L);
  lua_pushstring(L, call_state_name(cr));
  if (!cr->ended) return 1;
  lua_pushstring(L, cr->end_reason ? cr->end_reason : "ended");
  lua_pushinteger(L, cr->end_code);
  return 3;
}

static void push_strfield(lua_State *L, const char *k, const char *v, size_t n)
{
  lua_pushlstring(L, v, n);
  lua_setfield(L, -2, k);
}

static int l_call_info(lua_State *L)
{
  sip_callres *cr = check_call(L);
  lua_createtable(L, 0, 6);
  ml_sip_call *c = cr->call;
  if (!c) return 1;
  push_strfield(L, "call_id", c->call_id, strlen(c->call_id));
  push_strfield(L, "from", c->remote_party, strlen(c->remote_party));
  push_strfield(L, "to", c->local_party, strlen(c->local_party));
  push_strfield(L, "remote_target", c->remote_target, strlen(c->remote_target));
  if (c->remote_sdp) push_strfield(L, "sdp", c->remote_sdp, c->remote_sdp_len);
  char peer[80];
  ml_sip_addr_format(&c->peer, peer, sizeof peer, 1);
  push_strfield(L, "peer", peer, strlen(peer));
  if (c->auth_user[0]) push_strfield(L, "user", c->auth_user, strlen(c->auth_user));
  return 1;
}

/* call:header(name) -> the first value | nil; call:headers(name) -> { values }
 * Inbound: the INVITE's headers; outbound: the 2xx answer's (none before).
 * The name is case-insensitive, a compact form is the same header ("i" is
 * Call-ID); each header line is one value, unfolded (a comma list is not
 * split). */
static int call_headers(lua_State *L, int all)
{
  sip_callres *cr = check_call(L);
  size_t nl;
  const char *name = luaL_checklstring(L, 2, &nl);
  ml_str want = ml_str_make(name, nl);
  ml_sip_hdr_id id = ml_sip_hdr_lookup(want);
  ml_sip_call *c = cr->call;
  const char *buf = !c ? NULL : c->outgoing ? c->answer : c->invite;
  size_t len = !c ? 0 : c->outgoing ? c->answer_len : c->invite_len;
  if (all) lua_newtable(L);
  int k = 0;
  ml_sip_msg *m = buf ? lua_newuserdata(L, sizeof *m) : NULL; /* collected: nothing leaks on a raise */
  if (m && ml_sip_parse(m, buf, len, ML_SIP_UDP) == 0) {
    for (unsigned i = 0; i < m->n_headers; i++) {
      const ml_sip_header *h = &m->headers[i];
      if (id != ML_SIP_H_OTHER ? h->id != id : h->id != ML_SIP_H_OTHER || !ml_str_ieq(h->name, want))
        continue;
      char v[ML_SIP_MAX_LINE];
      size_t vn = ml_sip_unfold(h->value, v, sizeof v);
      lua_pushlstring(L, v, vn < sizeof v ? vn : sizeof v);
      if (!all) return 1;
      lua_rawseti(L, -3, ++k);
    }
  }
  if (m) lua_pop(L, 1);
  if (!all) lua_pushnil(L);
  return 1;
}

static int l_call_header(lua_State *L) { return call_headers(L, 0); }
static int l_call_headers(lua_State *L) { return call_headers(L, 1); }

static void sdp_caps_default(ml_sdp_caps *caps);

/* our media address: the listener's host (or loopback) and the RTP port */
static const char *local_media(sip_callres *cr, int *port)
{
  *port = cr->rtp.local_port;
  return cr->listener ? cr->listener->host : "127.0.0.1";
}

static void desc_origin(sip_callres *cr, ml_sdp_desc *d, uint64_t version)
{
  int port;
  const char *host = local_media(cr, &port);
  d->username = ML_STR_LIT("moonline");
  d->sess_id = cr->sdp_id;
  d->sess_version = version;
  d->addrtype = strchr(host, ':') ? ML_SDP_IP6 : ML_SDP_IP4;
  d->addr = ml_str_c(host);
  d->port = (uint16_t)port;
}

/* the peer's media address in a new SDP: a changed one is learned again
 * from its packets (symmetric RTP); the same one (a refresh, hold and
 * resume) changes nothing */
static void set_rtp_remote(sip_callres *cr, const ml_sdp_answer_params *ap)
{
  char addr[64];
  snprintf(addr, sizeof addr, "%.*s", (int)ap->remote.addr.n, ap->remote.addr.p);
  ml_sip_addr remote;
  if (ml_sip_addr_resolve(addr, ap->remote_port, &remote) == 0)
    ml_rtp_stream_set_remote(&cr->rtp, (const struct sockaddr *)&remote.ss, remote.len);
}

/* we may send when the peer takes our audio and we do not hold it */
static void update_send(sip_callres *cr, int peer_takes)
{
  cr->rtp.cfg.send = peer_takes && !cr->holding && !cr->ended;
}

/* A re-INVITE or UPDATE offer (RFC 3264 §8): hold (sendonly, inactive,
 * c=0.0.0.0) stops our audio, resume starts it again; the answer mirrors the
 * direction (limited by our own hold), with the same origin. A refresh that
 * changes nothing gets the same answer, version included; a changed answer
 * gets the next version. */
static int on_reoffer(ml_sip_call *c, char *out, size_t cap, void *data)
{
  sip_callres *cr = data;
  if (!cr->rtp_open) return -1;
  ml_sdp *offer = malloc(sizeof *offer);
  if (!offer) return -1;
  ml_sdp_caps caps;
  sdp_caps_default(&caps);
  if (cr->holding) caps.dir = ML_SDP_SENDONLY;
  ml_sdp_answer_params ap;
  int n = -1;
  if (ml_sdp_parse(offer, c->remote_sdp, c->remote_sdp_len) == 0 &&
      ml_sdp_negotiate(offer, &caps, &ap) == ML_SDP_NEG_OK) {
    ml_sdp_desc d;
    ml_sdp_desc_answer(&d, offer, &ap);
    desc_origin(cr, &d, cr->sdp_version);
    n = ml_sdp_write(out, cap, &d);
    if (n >= 0 && !(c->local_sdp && (size_t)n == c->local_sdp_len && !memcmp(out, c->local_sdp, (size_t)n))) {
      desc_origin(cr, &d, ++cr->sdp_version);
      n = ml_sdp_write(out, cap, &d);
    }
    if (n >= 0) {
      cr->held = ap.held;
      update_send(cr, ap.send); /* on hold: stop sending */
      if (ap.send) set_rtp_remote(cr, &ap);
    }
  }
  free(offer);
  return n;
}

/* The 2xx to our re-INVITE: its answer says whether the peer takes our
 * audio; our own hold decides the rest. */
static void apply_reinvite_answer(sip_callres *cr, ml_sip_call *c)
{
  if (c->reinvite_code < 200 || c->reinvite_code >= 300) return;
  cr->holding = cr->want_hold;
  if (!cr->rtp_open) return;
  int peer_takes = 1;
  ml_sdp *ans = malloc(sizeof *ans);
  ml_sdp_caps caps;
  sdp_caps_default(&caps);
  ml_sdp_answer_params ap;
  /* read as an offer, the answer's direction says what the peer receives */
  if (ans && c->remote_sdp && ml_sdp_parse(ans, c->remote_sdp, c->remote_sdp_len) == 0 &&
      ml_sdp_negotiate(ans, &caps, &ap) == ML_SDP_NEG_OK) {
    peer_takes = ap.send;
    if (ap.send) set_rtp_remote(cr, &ap);
  }
  free(ans);
  update_send(cr, peer_takes);
}

/* reinvite(hold) -> true | false, err: sends a re-INVITE offering our
 * session with a=sendonly (hold) or a=sendrecv (resume), same codec and
 * payload types as now, the next o= version (RFC 3264 §8.4) */
static int l_call_reinvite(lua_State *L)
{
  sip_callres *cr = check_call(L);
  int hold = lua_toboolean(L, 2);
  ml_sip_call *c = cr->call;
  if (!c || cr->ended || c->state != ML_CALL_CONFIRMED || !cr->rtp_open)
    return ml_bind_fail(L, "the call is not up");
  if (c->reinvite_pending) return ml_bind_fail(L, "a re-INVITE is already pending");
  ml_sdp_caps caps;
  sdp_caps_default(&caps);
  caps.pcmu = !cr->rtp.cfg.alaw;
  caps.pcma = cr->rtp.cfg.alaw;
  if (cr->rtp.cfg.te_pt < 0) memset(&caps.events, 0, sizeof caps.events);
  caps.ptime = cr->rtp.cfg.ptime_ms;
  caps.dir = hold ? ML_SDP_SENDONLY : ML_SDP_SENDRECV;
  ml_sdp_desc d;
  ml_sdp_desc_offer(&d, &caps);
  for (size_t i = 0; i < d.nfmt; i++) /* the payload types in use, not our defaults */
    d.fmt[i].pt =
        d.fmt[i].codec == ML_SDP_TELEPHONE_EVENT ? (uint8_t)cr->rtp.cfg.te_pt : (uint8_t)cr->rtp.cfg.pt;
  desc_origin(cr, &d, cr->sdp_version + 1);
  char sdp[2048];
  int n = ml_sdp_write(sdp, sizeof sdp, &d);
  int rc = n < 0 ? -1 : ml_sip_call_reinvite(c, sdp, (size_t)n);
  if (rc == -2) return ml_bind_fail(L, "busy"); /* the peer's re-INVITE is not ACKed yet */
  if (rc != 0) return ml_bind_fail(L, "cannot send the re-INVITE");
  cr->sdp_version++;
  cr->want_hold = hold;
  return ml_bind_ok(L);
}

/* reinvite_status() -> code, pending, ours: the final status of our last
 * re-INVITE (0: none yet), whether it is still out, and whether the
 * Call-ID is ours (the glare retry delay depends on it, RFC 3261 §14.1) */
static int l_call_reinvite_status(lua_State *L)
{
  sip_callres *cr = check_call(L);
  ml_sip_call *c = cr->call;
  lua_pushinteger(L, c ? c->reinvite_code : 0);
  lua_pushboolean(L, c && c->reinvite_pending && !cr->ended);
  lua_pushboolean(L, c && c->outgoing);
  return 3;
}

/* holding() -> bool: we put the other side on hold (our re-INVITE sendonly
 * was accepted); held() is the other way round */
static int l_call_holding(lua_State *L)
{
  lua_pushboolean(L, check_call(L)->holding);
  return 1;
}

/* refer_request() -> nil | { refer_to =, referred_by = }: a REFER from the
 * peer waiting for accept or reject */
static int l_call_refer_request(lua_State *L)
{
  sip_callres *cr = check_call(L);
  ml_sip_call *c = cr->call;
  if (!c || cr->ended || c->refer_in != ML_REFER_IN_PENDING) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 2);
  push_strfield(L, "refer_to", c->refer_in_to, strlen(c->refer_in_to));
  if (c->refer_in_by[0]) push_strfield(L, "referred_by", c->refer_in_by, strlen(c->refer_in_by));
  return 1;
}

/* refer_reply("accept" | "reject" | "notify", code) -> true | false, err */
static int l_call_refer_reply(lua_State *L)
{
  sip_callres *cr = check_call(L);
  const char *what = luaL_checkstring(L, 2);
  int code = (int)luaL_optinteger(L, 3, 0);
  ml_sip_call *c = cr->call;
  int rc;
  if (!c) return ml_bind_fail(L, "the call is closed");
  if (!strcmp(what, "accept"))
    rc = ml_sip_call_refer_accept(c);
  else if (!strcmp(what, "reject"))
    rc = code < 300 || code > 699 ? (luaL_argerror(L, 3, "a final error code 300..699"), -1)
                                  : ml_sip_call_refer_reject(c, code);
  else if (!strcmp(what, "notify"))
    rc = code < 100 || code > 699 ? (luaL_argerror(L, 3, "a status code 100..699"), -1)
                                  : ml_sip_call_refer_notify(c, code);
  else
    return luaL_argerror(L, 2, "\"accept\", \"reject\" or \"notify\"");
  if (rc != 0)
    return ml_bind_fail(
        L, cr->ended ? "the call has ended"
                     : "the transfer request is not in that state (answered already, or not accepted)");
  return ml_bind_ok(L);
}

/* answer: negotiate the offer, open RTP, send 200 + SDP; 488 when nothing fits */
static int l_call_answer(lua_State *L)
{
  sip_callres *cr = check_call(L);
  ml_sip_call *c = cr->call;
  if (!c || c->state != ML_CALL_RINGING) return ml_bind_fail(L, "the call is not ringing");
  if (!c->remote_sdp)
    return ml_bind_fail(L, "no SDP offer in the INVITE (offer in the 200 is not supported yet)");
  ml_sdp *offer = malloc(sizeof *offer);
  if (!offer) return luaL_error(L, "out of memory");
  ml_sdp_answer_params ap;
  ml_sdp_caps caps;
  memset(&caps, 0, sizeof caps);
  caps.pcmu = caps.pcma = 1;
  ml_sdp_events_add(&caps.events, 0, 15);
  caps.ptime = 20;
  ml_sdp_err perr = ml_sdp_parse(offer, c->remote_sdp, c->remote_sdp_len);
  if (perr != 0 || ml_sdp_negotiate(offer, &caps, &ap) != ML_SDP_NEG_OK) {
    free(offer);
    ml_sip_call_reject(c, 488);
    return ml_bind_fail(L, perr != 0 ? "488: the SDP offer is malformed" : "488: no common codec");
  }
  int port = 0;
  int rc =
      ml_rtp_stream_open(&cr->rtp, c->stack->loop, cr->listener ? cr->listener->host : "127.0.0.1", &port);
  if (rc) {
    free(offer);
    ml_sip_call_reject(c, 500);
    return ml_bind_fail(L, uv_strerror(rc));
  }
  cr->rtp_open = 1;
  cr->rtp.on_dtmf = on_dtmf;
  cr->rtp.on_closed = on_rtp_closed;
  cr->rtp.data = cr;
  ml_sdp_desc d;
  ml_sdp_desc_answer(&d, offer, &ap);
  const char *host = cr->listener ? cr->listener->host : "127.0.0.1";
  d.username = ML_STR_LIT("moonline");
  cr->sdp_id = d.sess_id = uv_hrtime() / 1000;
  cr->sdp_version = d.sess_version = 1;
  d.addrtype = strchr(host, ':') ? ML_SDP_IP6 : ML_SDP_IP4;
  d.addr = ml_str_c(host);
  d.port = (uint16_t)port;
  char sdp[2048];
  int n = ml_sdp_write(sdp, sizeof sdp, &d);
  c->on_reoffer = on_reoffer;
  ml_rtp_stream_cfg rc_cfg;
  memset(&rc_cfg, 0, sizeof rc_cfg);
  rc_cfg.pt = ap.pt;
  rc_cfg.alaw = ap.codec == ML_SDP_PCMA;
  rc_cfg.te_pt = ap.te_pt;
  rc_cfg.ptime_ms = ap.ptime;
  rc_cfg.send = ap.send;
  char addr[64];
  snprintf(addr, sizeof addr, "%.*s", (int)ap.remote.addr.n, ap.remote.addr.p);
  ml_sip_addr remote;
  if (ml_sip_addr_resolve(addr, ap.remote_port, &remote) == 0) {
    rc_cfg.remote = remote.ss;
    rc_cfg.remote_len = remote.len;
  } else {
    rc_cfg.send = 0; /* a name, not an address: wait for their RTP (symmetric) */
  }
  free(offer);
  if (n < 0 || ml_sip_call_answer(c, sdp, (size_t)n) != 0) return ml_bind_fail(L, "cannot build the 200 OK");
  ml_rtp_stream_start(&cr->rtp, &rc_cfg);
  return ml_bind_ok(L);
}

static int l_call_reject(lua_State *L)
{
  sip_callres *cr = check_call(L);
  int code = (int)luaL_optinteger(L, 2, 486);
  if (code < 300 || code > 699) return luaL_argerror(L, 2, "a final error code 300..699");
  if (!cr->call || ml_sip_call_reject(cr->call, code) != 0) return ml_bind_fail(L, "the call is not ringing");
  return ml_bind_ok(L);
}

static int l_call_hangup(lua_State *L)
{
  sip_callres *cr = check_call(L);
  if (cr->call) ml_sip_call_hangup(cr->call);
  if (cr->rtp_open) cr->rtp.cfg.send = 0;
  return 0;
}

static int l_call_tone(lua_State *L)
{
  sip_callres *cr = check_call(L);
  if (!cr->rtp_open) return luaL_error(L, "moonline.sip call:tone: answer the call first");
  ml_rtp_stream_tone(&cr->rtp, luaL_checknumber(L, 2), luaL_optnumber(L, 3, 0.5), luaL_optnumber(L, 4, 0));
  return 0;
}

/* wait("confirmed"|"ended") -> true, state | false, "ended" */
static int l_call_wait(lua_State *L)
{
  sip_callres *cr = check_call(L);
  const char *what = luaL_checkstring(L, 2);
  int want_ended = !strcmp(what, "ended");
  if (!want_ended && strcmp(what, "confirmed")) return luaL_argerror(L, 2, "\"confirmed\" or \"ended\"");
  ml_task *t = ml_bind_wait_task(L, "sip call:wait");
  if (cr->ended) {
    lua_pushboolean(L, want_ended);
    lua_pushstring(L, want_ended ? call_state_name(cr) : "ended");
    return 2;
  }
  if (!want_ended && cr->confirmed) {
    lua_pushboolean(L, 1);
    lua_pushstring(L, call_state_name(cr));
    return 2;
  }
  return ml_bind_park(L, t, &cr->waiters, want_ended ? "sip call end" : "sip call ACK");
}

/* read_dtmf() -> true, digit | false, "ended" */
static int l_call_read_dtmf(lua_State *L)
{
  sip_callres *cr = check_call(L);
  ml_task *t = ml_bind_wait_task(L, "sip call:read_dtmf");
  if (cr->dtmf_count) {
    char d = cr->dtmf[cr->dtmf_head];
    cr->dtmf_head = (cr->dtmf_head + 1) % DTMF_QUEUE;
    cr->dtmf_count--;
    lua_pushboolean(L, 1);
    lua_pushlstring(L, &d, 1);
    return 2;
  }
  if (cr->ended) return ml_bind_fail(L, "ended");
  return ml_bind_park(L, t, &cr->waiters, "sip call DTMF");
}

/* send_dtmf("12#") -> true | false, err */
static int l_call_send_dtmf(lua_State *L)
{
  sip_callres *cr = check_call(L);
  const char *digits = luaL_checkstring(L, 2);
  if (!cr->rtp_open || cr->ended) return ml_bind_fail(L, "the call has no media");
  if (ml_rtp_stream_send_dtmf(&cr->rtp, digits) != 0)
    return ml_bind_fail(
        L, "cannot send these digits (no telephone-event negotiated, a bad digit, or too many queued)");
  return ml_bind_ok(L);
}

/* transfer(uri [, referred_by]) -> true | false, err: sends the REFER */
static int l_call_transfer(lua_State *L)
{
  sip_callres *cr = check_call(L);
  const char *target = luaL_checkstring(L, 2);
  const char *by = luaL_optstring(L, 3, NULL);
  if (strpbrk(target, "\r\n<>") || (by && strpbrk(by, "\r\n<>")))
    return luaL_argerror(L, 2, "a bare SIP URI");
  if (!cr->call || ml_sip_call_refer(cr->call, target, by) != 0) return ml_bind_fail(L, "the call is not up");
  cr->referring = 1;
  cr->refer_code = 0;
  cr->refer_final = 0;
  return ml_bind_ok(L);
}

/* transfer_status() -> code, final: the REFER's response, then each NOTIFY's
 * sipfrag status; final once the transfer has an outcome */
static int l_call_transfer_status(lua_State *L)
{
  sip_callres *cr = check_call(L);
  lua_pushinteger(L, cr->refer_code);
  lua_pushboolean(L, cr->refer_final || (cr->ended && cr->referring));
  return 2;
}

/* wait_change(): until the next event of the call (state, transfer, DTMF) */
static int l_call_wait_change(lua_State *L)
{
  sip_callres *cr = check_call(L);
  ml_task *t = ml_bind_wait_task(L, "sip call:wait_change");
  if (cr->ended) return ml_bind_fail(L, "ended");
  return ml_bind_park(L, t, &cr->waiters, "sip call event");
}

static int l_call_held(lua_State *L)
{
  lua_pushboolean(L, check_call(L)->held);
  return 1;
}

static int l_call_rtp_stats(lua_State *L)
{
  sip_callres *cr = check_call(L);
  lua_createtable(L, 0, 7);
  if (!cr->rtp_open) return 1;
  ml_rtp_rx_stats st;
  ml_rtp_receiver_stats(&cr->rtp.rx, &st);
  lua_pushnumber(L, (lua_Number)cr->rtp.tx_packets);
  lua_setfield(L, -2, "tx_packets");
  lua_pushnumber(L, (lua_Number)cr->rtp.rx_packets);
  lua_setfield(L, -2, "rx_packets");
  lua_pushnumber(L, (lua_Number)cr->rtp.rx_bad);
  lua_setfield(L, -2, "rx_bad");
  lua_pushnumber(L, (lua_Number)cr->rtp.max_send_lag_ns / 1e6);
  lua_setfield(L, -2, "max_send_lag_ms");
  lua_pushnumber(L, (lua_Number)cr->rtp.dtmf.digits);
  lua_setfield(L, -2, "dtmf_digits");
  lua_pushnumber(L, (lua_Number)cr->rtp.dtmf_sent);
  lua_setfield(L, -2, "dtmf_sent");
  lua_createtable(L, ML_RTP_LAG_BUCKETS, 0); /* packets by send lag: < 0.5, 1, 2, 3, 5, 10, 20 ms, more */
  for (int i = 0; i < ML_RTP_LAG_BUCKETS; i++) {
    lua_pushnumber(L, (lua_Number)cr->rtp.lag_hist[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "lag_hist");
  if (cr->rtp.jb) { /* it has been in a room */
    lua_pushnumber(L, cr->rtp.out_n / 8.0); /* the room's mix waiting to be sent */
    lua_setfield(L, -2, "room_queued_ms");
    lua_pushnumber(L, (lua_Number)cr->rtp.room_underruns);
    lua_setfield(L, -2, "room_underruns");
    lua_pushnumber(L, (lua_Number)cr->rtp.room_overruns);
    lua_setfield(L, -2, "room_overruns");
  }
  return 1;
}

/* ---- registrations ---------------------------------------------------------------- */

static const char *reg_state_name(const ml_sip_reg *r)
{
  static const char *const names[] = {"registering", "registered", "failed", "unregistering", "done"};
  return names[r->state];
}

static void regres_done(sip_regres *rr)
{
  ml_timer_stop(rr->res.loop, &rr->linger);
  if (rr->listener) {
    ml_list_remove(&rr->link);
    ml_sip_reg_abandon(&rr->reg);
    rr->listener = NULL;
  }
  ml_res_closed(&rr->res);
}

static void on_reg_change(ml_sip_reg *r, void *data)
{
  sip_regres *rr = data;
  ml_waitq_wake(&rr->waiters, 0x7fffffff);
  /* the unregister finished: finish the close from the loop */
  if (r->state == ML_REG_DONE && rr->res.state == ML_RES_CLOSING)
    ml_timer_start(rr->res.loop, &rr->linger, 0);
}

static void on_reg_linger(ml_timer *tm) { regres_done(ml_container_of(tm, sip_regres, linger)); }

static void regres_close(ml_res *r)
{
  sip_regres *rr = (sip_regres *)r;
  ml_waitq_wake(&rr->waiters, 0x7fffffff);
  if (!rr->listener || rr->reg.state == ML_REG_DONE) {
    regres_done(rr);
    return;
  }
  ml_sip_reg_stop(&rr->reg); /* Expires: 0, bounded below */
  ml_timer_start(r->loop, &rr->linger, 4000000000ull);
}

static void regres_free(ml_res *r) { free(r); }

static ml_res_type reg_type = {"sip_registration", 0, regres_close, regres_free};

/* listener:register(opts) -> true, registration | false, err
 * opts: registrar (host), port, user, domain, username, password, expires */
static int l_listener_register(lua_State *L)
{
  sip_listener *l = check_listener(L);
  ml_task *t = ml_bind_task(L, "sip listener:register");
  luaL_checktype(L, 2, LUA_TTABLE);
  ml_sip_reg_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  lua_getfield(L, 2, "registrar");
  cfg.registrar_host = lua_tostring(L, -1);
  lua_getfield(L, 2, "port");
  cfg.registrar_port = (int)luaL_optinteger(L, -1, 5060);
  lua_getfield(L, 2, "user");
  cfg.user = lua_tostring(L, -1);
  lua_getfield(L, 2, "domain");
  cfg.domain = lua_tostring(L, -1);
  lua_getfield(L, 2, "username");
  cfg.username = lua_tostring(L, -1);
  lua_getfield(L, 2, "password");
  cfg.password = lua_tostring(L, -1);
  lua_getfield(L, 2, "expires");
  cfg.expires = (int)luaL_optinteger(L, -1, 3600);
  if (!cfg.registrar_host || !cfg.user)
    return luaL_error(L, "sip listener:register: registrar and user are needed");
  if (!*cfg.user || strpbrk(cfg.user, "@:<>;?\"\\ \t\r\n") ||
      (cfg.domain && strpbrk(cfg.domain, "@<>;?\" \t\r\n")))
    return luaL_error(L, "sip listener:register: user and domain must be plain URI parts");
  sip_regres *rr = calloc(1, sizeof *rr);
  if (!rr) return luaL_error(L, "out of memory");
  ml_waitq_init(&rr->waiters);
  ml_timer_init(&rr->linger, on_reg_linger);
  if (ml_sip_reg_start(&rr->reg, &l->stack, &cfg, on_reg_change, rr) != 0) {
    free(rr);
    return ml_bind_fail(L, "the registrar must be a numeric address");
  }
  rr->listener = l;
  ml_list_push(&l->regs, &rr->link);
  lua_pushboolean(L, 1);
  ml_bind_open(L, t->loop, &rr->res, &reg_type, t->cur, REG_MT);
  return 2;
}

/* status() -> state, granted seconds, last code */
static int l_reg_status(lua_State *L)
{
  sip_regres *rr = (sip_regres *)ml_box_get(L, 1, REG_MT);
  if (!rr) {
    lua_pushliteral(L, "closed");
    return 1;
  }
  lua_pushstring(L, reg_state_name(&rr->reg));
  lua_pushinteger(L, rr->reg.granted);
  lua_pushinteger(L, rr->reg.last_code);
  return 3;
}

/* wait_change() -> true | false, "closed" */
static int l_reg_wait_change(lua_State *L)
{
  sip_regres *rr = (sip_regres *)ml_box_get(L, 1, REG_MT);
  ml_task *t = ml_bind_wait_task(L, "sip registration:wait_change");
  if (!rr || !rr->listener) return ml_bind_fail(L, "closed");
  return ml_bind_park(L, t, &rr->waiters, "sip registration");
}

/* ---- outbound calls ------------------------------------------------------------- */

static void sdp_caps_default(ml_sdp_caps *caps)
{
  memset(caps, 0, sizeof *caps);
  caps->pcmu = caps->pcma = 1;
  ml_sdp_events_add(&caps->events, 0, 15);
  caps->ptime = 20;
}

/* the 2xx's SDP answer sets the stream: codec, telephone-event, ptime, address */
static void start_rtp_from_answer(sip_callres *cr, ml_sip_call *c)
{
  if (!cr->rtp_open || !c->remote_sdp) return;
  ml_sdp *ans = malloc(sizeof *ans);
  if (!ans) return;
  ml_sdp_caps caps;
  sdp_caps_default(&caps);
  ml_sdp_answer_params ap;
  /* the answer read as an offer gives its codec, events, ptime and address */
  if (ml_sdp_parse(ans, c->remote_sdp, c->remote_sdp_len) != 0 ||
      ml_sdp_negotiate(ans, &caps, &ap) != ML_SDP_NEG_OK) {
    free(ans);
    ml_log(ML_LOG_WARN, "sip: call %s: unusable SDP answer; no media", c->call_id);
    return;
  }
  ml_rtp_stream_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.pt = ap.pt;
  cfg.alaw = ap.codec == ML_SDP_PCMA;
  cfg.te_pt = ap.te_pt;
  cfg.ptime_ms = ap.ptime;
  cfg.send = 1;
  char addr[64];
  snprintf(addr, sizeof addr, "%.*s", (int)ap.remote.addr.n, ap.remote.addr.p);
  ml_sip_addr remote;
  if (ml_sip_addr_resolve(addr, ap.remote_port, &remote) == 0) {
    cfg.remote = remote.ss;
    cfg.remote_len = remote.len;
  } else {
    cfg.send = 0;
  }
  free(ans);
  ml_rtp_stream_start(&cr->rtp, &cfg);
}

/* core.sip_dial(listener|nil, opts) -> true, call | false, err
 * opts: ruri, to, from, headers (raw lines), host, port (where to send),
 *       local_host, username, password */
static int l_sip_dial(lua_State *L)
{
  ml_task *t = ml_bind_task(L, "sip.dial");
  sip_listener *l = lua_isnoneornil(L, 1) ? NULL : (sip_listener *)ml_box_get(L, 1, LISTENER_MT);
  if (!lua_isnoneornil(L, 1) && (!l || l->res.state != ML_RES_OPEN))
    return ml_bind_fail(L, "the listener is closed");
  luaL_checktype(L, 2, LUA_TTABLE);
#define OPT(name) (lua_getfield(L, 2, name), lua_tostring(L, -1))
  const char *ruri = OPT("ruri"), *to = OPT("to"), *from = OPT("from"), *headers = OPT("headers");
  const char *host = OPT("host"), *local_host = OPT("local_host"), *user = OPT("username"),
             *pass = OPT("password"), *transport = OPT("transport");
#undef OPT
  lua_getfield(L, 2, "port");
  int port = (int)luaL_optinteger(L, -1, 5060);
  if (!ruri || !to || !from || !host)
    return luaL_error(L, "moonline.sip.dial: ruri, to, from and host are needed");
  ml_sip_dial d;
  memset(&d, 0, sizeof d);
  if (ml_sip_addr_resolve(host, port, &d.dest) != 0)
    return ml_bind_fail(L, "the destination must be a numeric address");
  if (transport && strcmp(transport, "udp") && strcmp(transport, "tcp"))
    return luaL_error(L, "moonline.sip.dial: transport is \"udp\" or \"tcp\"");
  d.dest.tcp = transport && !strcmp(transport, "tcp");
  sip_callres *cr = calloc(1, sizeof *cr);
  if (!cr) return luaL_error(L, "out of memory");
  ml_waitq_init(&cr->waiters);
  ml_list_init(&cr->link);
  ml_sip_stack *st;
  const char *media_host;
  if (l) {
    st = &l->stack;
    media_host = l->host;
  } else {
    cr->own_stack = calloc(1, sizeof *cr->own_stack);
    if (!cr->own_stack) {
      free(cr);
      return luaL_error(L, "out of memory");
    }
    media_host = local_host ? local_host : "127.0.0.1";
    /* over TCP it also listens on its port: our Contact must be reachable */
    ml_sip_stack_cfg cfg = {.host = media_host,
                            .port = 0,
                            .user_agent = "moonline/" MOONLINE_VERSION,
                            .transports = ML_SIP_LISTEN_UDP | (d.dest.tcp ? ML_SIP_LISTEN_TCP : 0)};
    int rc = ml_sip_stack_open(cr->own_stack, t->loop, &cfg);
    if (rc) {
      ml_sip_stack_close(cr->own_stack, on_failed_own_stack_closed);
      free(cr);
      return ml_bind_fail(L, uv_strerror(rc));
    }
    cr->own_stack->cfg.user_agent = strdup(cfg.user_agent);
    cr->own_stack->cfg.data = cr;
    st = cr->own_stack;
  }
  /* registered before anything can fail further: the scope owns it now */
  ml_bind_open(L, t->loop, &cr->res, &call_type, t->cur, CALL_MT);
  int box = lua_gettop(L);
  int rtp_port = 0;
  int rc = ml_rtp_stream_open(&cr->rtp, t->loop, media_host, &rtp_port);
  if (rc) {
    ml_res_close(&cr->res);
    return ml_bind_fail(L, uv_strerror(rc));
  }
  cr->rtp_open = 1;
  cr->rtp.on_dtmf = on_dtmf;
  cr->rtp.on_closed = on_rtp_closed;
  cr->rtp.data = cr;
  ml_sdp_caps caps;
  sdp_caps_default(&caps);
  ml_sdp_desc dsc;
  ml_sdp_desc_offer(&dsc, &caps);
  dsc.username = ML_STR_LIT("moonline");
  cr->sdp_id = dsc.sess_id = uv_hrtime() / 1000;
  cr->sdp_version = dsc.sess_version = 1;
  dsc.addrtype = strchr(media_host, ':') ? ML_SDP_IP6 : ML_SDP_IP4;
  dsc.addr = ml_str_c(media_host);
  dsc.port = (uint16_t)rtp_port;
  char sdp[2048];
  int n = ml_sdp_write(sdp, sizeof sdp, &dsc);
  d.ruri = ruri;
  d.to = to;
  d.from = from;
  d.extra_headers = headers;
  d.username = user;
  d.password = pass;
  d.sdp = sdp;
  d.sdp_len = n > 0 ? (size_t)n : 0;
  ml_sip_call *c = n > 0 ? ml_sip_call_dial(st, &d, on_call_event, cr) : NULL;
  if (!c) {
    ml_res_close(&cr->res);
    return ml_bind_fail(L, "cannot build the INVITE (a header too long?)");
  }
  cr->call = c;
  c->on_reoffer = on_reoffer;
  if (l) {
    cr->listener = l;
    ml_list_push(&l->calls, &cr->link);
  }
  lua_pushboolean(L, 1);
  lua_pushvalue(L, box);
  return 2;
}

/* ---- rooms ------------------------------------------------------------------------ */

/* the room closed with the call inside: hang up (the owner's scope still
 * closes the resource) */
static void on_room_kick(ml_room_member *m, void *data)
{
  (void)m;
  sip_callres *cr = data;
  if (cr->call) ml_sip_call_hangup(cr->call);
  if (cr->rtp_open) cr->rtp.cfg.send = 0;
}

ml_room_member *ml_bind_sip_room_member(lua_State *L, int idx, const char **err)
{
  if (!luaL_testudata(L, idx, CALL_MT)) return NULL;
  sip_callres *cr = (sip_callres *)ml_box_get(L, idx, CALL_MT);
  if (!cr) {
    *err = "the call is closed";
    return NULL;
  }
  if (cr->ended) {
    *err = "the call has ended";
    return NULL;
  }
  if (!cr->rtp_open) {
    *err = "the call has no media yet: answer it first";
    return NULL;
  }
  ml_room_member *m = ml_rtp_stream_room_member(&cr->rtp);
  if (!m) {
    *err = "out of memory";
    return NULL;
  }
  m->kick = on_room_kick;
  m->kick_data = cr;
  return m;
}

int ml_open_sip(lua_State *L)
{
  static const luaL_Reg listener_methods[] = {{"accept", l_listener_accept},
                                              {"port", l_listener_port},
                                              {"set_draining", l_listener_draining},
                                              {"stats", l_listener_stats},
                                              {"register", l_listener_register},
                                              {"close", ml_box_close},
                                              {NULL, NULL}};
  static const luaL_Reg call_methods[] = {{"info", l_call_info},
                                          {"header", l_call_header},
                                          {"headers", l_call_headers},
                                          {"answer", l_call_answer},
                                          {"reject", l_call_reject},
                                          {"hangup", l_call_hangup},
                                          {"state", l_call_state},
                                          {"wait", l_call_wait},
                                          {"tone", l_call_tone},
                                          {"read_dtmf", l_call_read_dtmf},
                                          {"rtp_stats", l_call_rtp_stats},
                                          {"send_dtmf", l_call_send_dtmf},
                                          {"held", l_call_held},
                                          {"holding", l_call_holding},
                                          {"reinvite", l_call_reinvite},
                                          {"reinvite_status", l_call_reinvite_status},
                                          {"refer_request", l_call_refer_request},
                                          {"refer_reply", l_call_refer_reply},
                                          {"transfer", l_call_transfer},
                                          {"transfer_status", l_call_transfer_status},
                                          {"wait_change", l_call_wait_change},
                                          {"close", ml_box_close},
                                          {NULL, NULL}};
  static const luaL_Reg reg_methods[] = {
      {"status", l_reg_status}, {"wait_change", l_reg_wait_change}, {"close", ml_box_close}, {NULL, NULL}};
  ml_res_type_register(&listener_type);
  ml_res_type_register(&call_type);
  ml_res_type_register(&reg_type);
  ml_bind_class(L, REG_MT, reg_methods);
  ml_bind_class(L, LISTENER_MT, listener_methods);
  ml_bind_class(L, CALL_MT, call_methods);
  lua_pushcfunction(L, l_sip_listen);
  lua_setfield(L, -2, "sip_listen");
  lua_pushcfunction(L, l_sip_dial);
  lua_setfield(L, -2, "sip_dial");
  return 0;
}
