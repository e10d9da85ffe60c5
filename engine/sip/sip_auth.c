/* Digest authentication as a UAS: stateless HMAC nonces, challenges and the
 * check of credentials (see sip_auth.h for the outcomes). */
#include "sip_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#define NONCE_DATA 12 /* 8 bytes time (ms, big-endian), 4 bytes counter */
#define NONCE_MAC 16

static const char HEX[] = "0123456789abcdef";

static void to_hex(char *out, const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = HEX[p[i] >> 4];
    out[2 * i + 1] = HEX[p[i] & 15];
  }
  out[2 * n] = '\0';
}

static int hex_val(char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1; /* we write lowercase: anything else is not ours */
}

static int from_hex(uint8_t *out, const char *p, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    int hi = hex_val(p[2 * i]), lo = hex_val(p[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

static void nonce_mac(const ml_sip_auth *a, const uint8_t data[NONCE_DATA], uint8_t mac[NONCE_MAC])
{
  uint8_t msg[NONCE_DATA + sizeof a->realm], full[EVP_MAX_MD_SIZE];
  unsigned full_len = 0;
  size_t rl = strlen(a->realm);
  memcpy(msg, data, NONCE_DATA);
  memcpy(msg + NONCE_DATA, a->realm, rl);
  if (!HMAC(EVP_sha256(), a->secret, sizeof a->secret, msg, NONCE_DATA + rl, full, &full_len) ||
      full_len < NONCE_MAC)
    memset(full, 0, sizeof full); /* cannot happen; an all-zero MAC never verifies a random secret */
  memcpy(mac, full, NONCE_MAC);
}

void ml_sip_auth_nonce(ml_sip_auth *a, uint64_t now_ns, char *out)
{
  uint8_t raw[NONCE_DATA + NONCE_MAC];
  uint64_t ms = now_ns / 1000000u;
  for (int i = 0; i < 8; i++) raw[i] = (uint8_t)(ms >> (56 - 8 * i));
  uint32_t n = a->counter++;
  for (int i = 0; i < 4; i++) raw[8 + i] = (uint8_t)(n >> (24 - 8 * i));
  nonce_mac(a, raw, raw + NONCE_DATA);
  to_hex(out, raw, sizeof raw);
}

enum { NONCE_GOOD, NONCE_EXPIRED, NONCE_FOREIGN };

/* Is the nonce (a view as written, unquoted: we never write escapes) ours
 * and current? mac receives its MAC (the replay cache key). */
static int nonce_check(const ml_sip_auth *a, ml_str nonce, uint64_t now_ns, uint8_t mac[NONCE_MAC])
{
  uint8_t raw[NONCE_DATA + NONCE_MAC], want[NONCE_MAC];
  if (nonce.n != ML_SIP_AUTH_NONCE_HEX || from_hex(raw, nonce.p, sizeof raw) != 0) return NONCE_FOREIGN;
  nonce_mac(a, raw, want);
  if (CRYPTO_memcmp(want, raw + NONCE_DATA, NONCE_MAC) != 0) return NONCE_FOREIGN;
  memcpy(mac, want, NONCE_MAC);
  uint64_t ms = 0;
  for (int i = 0; i < 8; i++) ms = ms << 8 | raw[i];
  uint64_t now_ms = now_ns / 1000000u;
  if (ms > now_ms || now_ms - ms > a->ttl_ns / 1000000u) return NONCE_EXPIRED;
  return NONCE_GOOD;
}

static int realm_ok(const char *r)
{
  size_t n = strlen(r);
  if (n == 0 || n >= sizeof(((ml_sip_auth *)0)->realm)) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)r[i];
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') return 0;
  }
  return 1;
}

int ml_sip_auth_init(ml_sip_auth *a, const char *realm, unsigned algs, uint64_t ttl_ns,
                     ml_sip_auth_lookup lookup, void *lookup_data)
{
  memset(a, 0, sizeof *a);
  if (!realm || !realm_ok(realm) || (algs & ~(ML_SIP_AUTH_SHA256 | ML_SIP_AUTH_MD5))) return -1;
  uint8_t op[16];
  if (RAND_bytes(a->secret, sizeof a->secret) != 1 || RAND_bytes(op, sizeof op) != 1) return -1;
  snprintf(a->realm, sizeof a->realm, "%s", realm);
  to_hex(a->opaque, op, sizeof op);
  a->algs = algs ? algs : ML_SIP_AUTH_SHA256 | ML_SIP_AUTH_MD5;
  a->ttl_ns = ttl_ns ? ttl_ns : ML_SIP_AUTH_TTL_NS;
  a->lookup = lookup;
  a->lookup_data = lookup_data;
  return 0;
}

void ml_sip_auth_clear(ml_sip_auth *a) { OPENSSL_cleanse(a->secret, sizeof a->secret); }

static void add_one(ml_sip_auth *a, ml_sip_builder *b, uint64_t now_ns, int stale, ml_digest_alg alg)
{
  char nonce[ML_SIP_AUTH_NONCE_HEX + 1], value[512];
  ml_sip_auth_nonce(a, now_ns, nonce);
  ml_digest_chal_params p = {.realm = ml_str_c(a->realm),
                             .alg = alg,
                             .qop_auth = 1,
                             .stale = stale,
                             .opaque = ml_str_c(a->opaque),
                             .nonce = ml_str_c(nonce)};
  if (ml_digest_challenge(value, sizeof value, &p, NULL) > 0)
    ml_sip_builder_header(b, "WWW-Authenticate", ml_str_c(value));
  else
    b->failed = 1;
}

void ml_sip_auth_challenge(ml_sip_auth *a, ml_sip_builder *b, uint64_t now_ns, int stale)
{
  a->challenged++;
  if (a->algs & ML_SIP_AUTH_SHA256) add_one(a, b, now_ns, stale, ML_DIGEST_SHA256);
  if (a->algs & ML_SIP_AUTH_MD5) add_one(a, b, now_ns, stale, ML_DIGEST_MD5);
}

int ml_sip_auth_status(ml_sip_auth_result r)
{
  switch (r) {
  case ML_SIP_AUTH_OK:
    return 0;
  case ML_SIP_AUTH_FORBIDDEN:
    return 403;
  case ML_SIP_AUTH_BAD_REQUEST:
    return 400;
  case ML_SIP_AUTH_ERROR:
    return 500;
  default:
    return 401;
  }
}

static int offered(const ml_sip_auth *a, ml_digest_alg alg)
{
  return (alg == ML_DIGEST_SHA256 && (a->algs & ML_SIP_AUTH_SHA256)) ||
         (alg == ML_DIGEST_MD5 && (a->algs & ML_SIP_AUTH_MD5));
}

/* the first Digest credentials for our realm */
static int find_cred(const ml_sip_auth *a, const ml_sip_msg *req, ml_digest_cred *c)
{
  char realm[sizeof a->realm];
  for (const ml_sip_header *h = ml_sip_header_get(req, ML_SIP_H_AUTHORIZATION); h;
       h = ml_sip_header_next(req, h)) {
    if (ml_digest_cred_parse(c, h->value) != ML_DIGEST_OK) continue;
    if (ml_digest_unquote(realm, sizeof realm, c->realm) < 0) continue;
    if (!strcmp(realm, a->realm)) return 1;
  }
  return 0;
}

static ml_sip_auth_result done(ml_sip_auth *a, ml_sip_auth_result r)
{
  if (r == ML_SIP_AUTH_OK)
    a->accepted++;
  else if (r == ML_SIP_AUTH_STALE)
    a->stale++;
  else if (r != ML_SIP_AUTH_CHALLENGE)
    a->rejected++;
  return r;
}

ml_sip_auth_result ml_sip_auth_check(ml_sip_auth *a, const ml_sip_msg *req, uint64_t now_ns, char *user)
{
  ml_digest_cred c;
  user[0] = '\0';
  if (!find_cred(a, req, &c)) return ML_SIP_AUTH_CHALLENGE;
  if (!offered(a, c.alg) || c.qops != ML_DIGEST_QOP_AUTH || c.nc_value == 0) return ML_SIP_AUTH_CHALLENGE;
  uint8_t mac[NONCE_MAC];
  int nonce = nonce_check(a, c.nonce, now_ns, mac);
  char name[ML_SIP_AUTH_USER_MAX], pw[ML_SIP_AUTH_PASSWORD_MAX];
  if (ml_digest_unquote(name, sizeof name, c.username) <= 0)
    return done(a, nonce == NONCE_GOOD ? ML_SIP_AUTH_FORBIDDEN : ML_SIP_AUTH_CHALLENGE);
  int found = a->lookup ? a->lookup(name, pw, sizeof pw, a->lookup_data) : 1;
  if (found < 0) return done(a, ML_SIP_AUTH_ERROR);
  if (found > 0) return done(a, nonce == NONCE_GOOD ? ML_SIP_AUTH_FORBIDDEN : ML_SIP_AUTH_CHALLENGE);
  pw[sizeof pw - 1] = '\0';
  ml_digest_check v = {.realm = ml_str_c(a->realm),
                       .nonce = ML_STR_NULL, /* checked above */
                       /* the client must echo it (RFC 7616 §3.4): when it does with our
                        * nonce, it must be ours (a foreign nonce came with a foreign one) */
                       .opaque = c.opaque.p && nonce == NONCE_GOOD ? ml_str_c(a->opaque) : ML_STR_NULL,
                       .method = req->method_name,
                       .uri = req->ruri.text,
                       .password = ml_str_c(pw),
                       .ha1 = ML_STR_NULL};
  ml_digest_err err = ml_digest_verify(&c, &v);
  OPENSSL_cleanse(pw, sizeof pw);
  if (err == ML_DIGEST_ERR_URI) return done(a, ML_SIP_AUTH_BAD_REQUEST);
  if (err == ML_DIGEST_ERR_RESPONSE)
    return done(a, nonce == NONCE_GOOD ? ML_SIP_AUTH_FORBIDDEN : ML_SIP_AUTH_CHALLENGE);
  if (err != ML_DIGEST_OK) return ML_SIP_AUTH_CHALLENGE;
  if (nonce != NONCE_GOOD) return done(a, ML_SIP_AUTH_STALE); /* right password, old nonce */
  unsigned slot = ((unsigned)mac[0] << 8 | mac[1]) % ML_SIP_AUTH_NC_SLOTS;
  if (!memcmp(a->nc_cache[slot].mac, mac, NONCE_MAC) && c.nc_value <= a->nc_cache[slot].nc)
    return done(a, ML_SIP_AUTH_CHALLENGE); /* a replay */
  memcpy(a->nc_cache[slot].mac, mac, NONCE_MAC);
  a->nc_cache[slot].nc = c.nc_value;
  snprintf(user, ML_SIP_AUTH_USER_MAX, "%s", name);
  return done(a, ML_SIP_AUTH_OK);
}
