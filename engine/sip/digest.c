/* Digest authentication (see digest.h). Parsing is one pass over the header
 * value keeping views; hashing streams the views through one EVP context,
 * unescaping quoted-pairs on the way, so nothing is copied or allocated but
 * the EVP context itself. */
#include "digest.h"

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

/* ---- characters ------------------------------------------------------------ */

/* token of RFC 3261 §25.1 */
static int char_token(int c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != 0 && strchr("-.!%*_+`'~", c) != NULL);
}

static int char_hex(int c)
{
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int str_all(ml_str s, int (*ok)(int))
{
  if (s.n == 0) return 0;
  for (size_t i = 0; i < s.n; i++)
    if (!ok((unsigned char)s.p[i])) return 0;
  return 1;
}

static int str_present(ml_str s) { return s.p != NULL; }

/* ---- scanning a parameter list ----------------------------------------------- */

typedef struct dg_scan {
  const char *p, *end;
} dg_scan;

/* LWS: spaces, tabs, and a line break only when folded (followed by one) */
static void lws_skip(dg_scan *s)
{
  while (s->p < s->end) {
    size_t brk = 0;
    if (*s->p == ' ' || *s->p == '\t') {
      s->p++;
      continue;
    }
    if (s->end - s->p >= 2 && s->p[0] == '\r' && s->p[1] == '\n') brk = 2;
    if (*s->p == '\n') brk = 1;
    if (!brk || s->end - s->p <= (ptrdiff_t)brk || (s->p[brk] != ' ' && s->p[brk] != '\t')) return;
    s->p += brk;
  }
}

static int token_scan(dg_scan *s, ml_str *t)
{
  const char *start = s->p;
  while (s->p < s->end && char_token((unsigned char)*s->p)) s->p++;
  *t = ml_str_make(start, (size_t)(s->p - start));
  return t->n ? 0 : -1;
}

/* A quoted-string at s->p: the view is its content as written (escapes
 * kept). Control characters, line breaks and a NUL are refused, escaped or
 * not: none belongs in a realm, nonce or URI. */
static int quoted_scan(dg_scan *s, ml_str *v)
{
  const char *start = ++s->p;
  while (s->p < s->end) {
    unsigned char c = (unsigned char)*s->p;
    if (c == '"') {
      *v = ml_str_make(start, (size_t)(s->p - start));
      s->p++;
      return 0;
    }
    if (c == '\\') {
      if (s->end - s->p < 2) return -1;
      c = (unsigned char)*++s->p;
      if (c >= 0x80) return -1; /* quoted-pair is ASCII only */
    }
    if ((c < 0x20 && c != '\t') || c == 0x7f) return -1;
    s->p++;
  }
  return -1;
}

typedef ml_digest_err (*dg_param_fn)(void *obj, ml_str name, ml_str value, int quoted);

static int name_seen(const ml_str *names, size_t n, ml_str name)
{
  for (size_t i = 0; i < n; i++)
    if (ml_str_ieq(names[i], name)) return 1;
  return 0;
}

static ml_digest_err param_scan(dg_scan *s, ml_str *name, ml_str *value, int *quoted)
{
  if (token_scan(s, name)) return ML_DIGEST_ERR_SYNTAX;
  lws_skip(s);
  if (s->p == s->end || *s->p != '=') return ML_DIGEST_ERR_SYNTAX;
  s->p++;
  lws_skip(s);
  *quoted = s->p < s->end && *s->p == '"';
  if (*quoted ? quoted_scan(s, value) : token_scan(s, value)) return ML_DIGEST_ERR_SYNTAX;
  return ML_DIGEST_OK;
}

/* "Digest" LWS param *(LWS? "," LWS? param): each param goes to fn once */
static ml_digest_err params_parse(ml_str value, dg_param_fn fn, void *obj)
{
  ml_str scheme, names[ML_DIGEST_MAX_PARAMS];
  size_t n = 0;
  if (!value.p) return ML_DIGEST_ERR_SCHEME;
  dg_scan s = {value.p, value.p + value.n};
  lws_skip(&s);
  if (token_scan(&s, &scheme) || !ml_str_ieq_c(scheme, "Digest")) return ML_DIGEST_ERR_SCHEME;
  const char *after = s.p;
  lws_skip(&s);
  if (s.p == s.end) return ML_DIGEST_ERR_MISSING;
  if (s.p == after) return ML_DIGEST_ERR_SYNTAX;
  for (;;) {
    ml_str name, val;
    int quoted;
    ml_digest_err err = param_scan(&s, &name, &val, &quoted);
    if (err) return err;
    if (name_seen(names, n, name)) return ML_DIGEST_ERR_DUPLICATE;
    if (n == ML_DIGEST_MAX_PARAMS) return ML_DIGEST_ERR_LIMIT;
    names[n++] = name;
    if ((err = fn(obj, name, val, quoted))) return err;
    lws_skip(&s);
    if (s.p == s.end) return ML_DIGEST_OK;
    if (*s.p++ != ',') return ML_DIGEST_ERR_SYNTAX;
    lws_skip(&s);
  }
}

/* ---- challenge and credentials --------------------------------------------------- */

static ml_digest_alg alg_parse(ml_str v)
{
  if (!str_present(v) || ml_str_ieq_c(v, "MD5")) return ML_DIGEST_MD5;
  if (ml_str_ieq_c(v, "MD5-sess")) return ML_DIGEST_MD5_SESS;
  if (ml_str_ieq_c(v, "SHA-256")) return ML_DIGEST_SHA256;
  if (ml_str_ieq_c(v, "SHA-256-sess")) return ML_DIGEST_SHA256_SESS;
  return ML_DIGEST_ALG_UNKNOWN;
}

static unsigned qop_value(ml_str v)
{
  if (ml_str_ieq_c(v, "auth")) return ML_DIGEST_QOP_AUTH;
  if (ml_str_ieq_c(v, "auth-int")) return ML_DIGEST_QOP_AUTH_INT;
  return 0;
}

/* qop-options: a comma-separated list of tokens; unknown ones are skipped
 * (future qop values must not break auth) */
static int qop_list_parse(ml_str v, unsigned *qops)
{
  dg_scan s = {v.p, v.p + v.n};
  *qops = 0;
  for (;;) {
    ml_str item;
    lws_skip(&s);
    if (token_scan(&s, &item)) return -1;
    *qops |= qop_value(item);
    lws_skip(&s);
    if (s.p == s.end) return 0;
    if (*s.p++ != ',') return -1;
  }
}

/* a parameter that must be a quoted-string */
static ml_digest_err quoted_set(ml_str *field, ml_str v, int quoted)
{
  if (!quoted) return ML_DIGEST_ERR_SYNTAX;
  *field = v;
  return ML_DIGEST_OK;
}

static ml_digest_err chal_param(void *obj, ml_str name, ml_str v, int quoted)
{
  ml_digest_chal *c = obj;
  if (ml_str_ieq_c(name, "realm")) return quoted_set(&c->realm, v, quoted);
  if (ml_str_ieq_c(name, "nonce")) return quoted_set(&c->nonce, v, quoted);
  if (ml_str_ieq_c(name, "opaque")) return quoted_set(&c->opaque, v, quoted);
  if (ml_str_ieq_c(name, "domain")) return quoted_set(&c->domain, v, quoted);
  if (ml_str_ieq_c(name, "algorithm")) {
    c->algorithm = v;
    return ML_DIGEST_OK;
  }
  if (ml_str_ieq_c(name, "qop")) {
    c->qop = v;
    return qop_list_parse(v, &c->qops) ? ML_DIGEST_ERR_VALUE : ML_DIGEST_OK;
  }
  if (ml_str_ieq_c(name, "stale")) {
    if (!ml_str_ieq_c(v, "true") && !ml_str_ieq_c(v, "false")) return ML_DIGEST_ERR_VALUE;
    c->stale = ml_str_ieq_c(v, "true");
  }
  return ML_DIGEST_OK;
}

ml_digest_err ml_digest_chal_parse(ml_digest_chal *c, ml_str value)
{
  memset(c, 0, sizeof *c);
  ml_digest_err err = params_parse(value, chal_param, c);
  if (err) return err;
  if (!str_present(c->realm) || !str_present(c->nonce)) return ML_DIGEST_ERR_MISSING;
  c->alg = alg_parse(c->algorithm);
  return ML_DIGEST_OK;
}

/* nc-value = 8LHEX (uppercase tolerated) */
static int nc_parse(ml_str v, uint32_t *nc)
{
  uint32_t n = 0;
  if (v.n != 8 || !str_all(v, char_hex)) return -1;
  for (size_t i = 0; i < 8; i++) {
    int c = ml_ascii_lower((unsigned char)v.p[i]);
    n = n << 4 | (uint32_t)(c <= '9' ? c - '0' : c - 'a' + 10);
  }
  *nc = n;
  return 0;
}

static ml_digest_err cred_param(void *obj, ml_str name, ml_str v, int quoted)
{
  ml_digest_cred *c = obj;
  static const struct {
    const char *name;
    size_t off;
  } quoted_fields[] = {
      {"username", offsetof(ml_digest_cred, username)}, {"realm", offsetof(ml_digest_cred, realm)},
      {"nonce", offsetof(ml_digest_cred, nonce)},       {"uri", offsetof(ml_digest_cred, uri)},
      {"response", offsetof(ml_digest_cred, response)}, {"cnonce", offsetof(ml_digest_cred, cnonce)},
      {"opaque", offsetof(ml_digest_cred, opaque)},
  };
  for (size_t i = 0; i < sizeof quoted_fields / sizeof quoted_fields[0]; i++)
    if (ml_str_ieq_c(name, quoted_fields[i].name))
      return quoted_set((ml_str *)((char *)c + quoted_fields[i].off), v, quoted);
  if (ml_str_ieq_c(name, "algorithm")) {
    c->algorithm = v;
  } else if (ml_str_ieq_c(name, "qop")) {
    c->qop = v;
    if (!(c->qops = qop_value(v))) return ML_DIGEST_ERR_VALUE;
  } else if (ml_str_ieq_c(name, "nc")) {
    c->nc = v;
    if (nc_parse(v, &c->nc_value)) return ML_DIGEST_ERR_VALUE;
  }
  return ML_DIGEST_OK;
}

static size_t alg_hexlen(ml_digest_alg alg)
{
  switch (alg) {
  case ML_DIGEST_MD5:
  case ML_DIGEST_MD5_SESS:
    return 32;
  case ML_DIGEST_SHA256:
  case ML_DIGEST_SHA256_SESS:
    return 64;
  case ML_DIGEST_ALG_UNKNOWN:
    break;
  }
  return 0;
}

ml_digest_err ml_digest_cred_parse(ml_digest_cred *c, ml_str value)
{
  memset(c, 0, sizeof *c);
  ml_digest_err err = params_parse(value, cred_param, c);
  if (err) return err;
  if (!str_present(c->username) || !str_present(c->realm) || !str_present(c->nonce) || !str_present(c->uri) ||
      !str_present(c->response))
    return ML_DIGEST_ERR_MISSING;
  if (str_present(c->qop) && (!str_present(c->cnonce) || !str_present(c->nc))) return ML_DIGEST_ERR_MISSING;
  c->alg = alg_parse(c->algorithm);
  if (!str_all(c->response, char_hex)) return ML_DIGEST_ERR_VALUE;
  if (alg_hexlen(c->alg) && c->response.n != alg_hexlen(c->alg)) return ML_DIGEST_ERR_VALUE;
  return ML_DIGEST_OK;
}

const char *ml_digest_strerror(ml_digest_err err)
{
  switch (err) {
  case ML_DIGEST_OK:
    return "ok";
  case ML_DIGEST_ERR_SCHEME:
    return "not a Digest header";
  case ML_DIGEST_ERR_SYNTAX:
    return "syntax error";
  case ML_DIGEST_ERR_LIMIT:
    return "too many parameters";
  case ML_DIGEST_ERR_DUPLICATE:
    return "duplicate parameter";
  case ML_DIGEST_ERR_MISSING:
    return "missing parameter";
  case ML_DIGEST_ERR_VALUE:
    return "bad parameter value";
  case ML_DIGEST_ERR_ALGORITHM:
    return "unsupported algorithm";
  case ML_DIGEST_ERR_QOP:
    return "unsupported qop";
  case ML_DIGEST_ERR_INPUT:
    return "bad input";
  case ML_DIGEST_ERR_SPACE:
    return "buffer too small";
  case ML_DIGEST_ERR_CRYPTO:
    return "crypto failure";
  case ML_DIGEST_ERR_REALM:
    return "wrong realm";
  case ML_DIGEST_ERR_NONCE:
    return "wrong nonce";
  case ML_DIGEST_ERR_URI:
    return "uri does not match the request";
  case ML_DIGEST_ERR_OPAQUE:
    return "wrong opaque";
  case ML_DIGEST_ERR_RESPONSE:
    return "wrong response";
  }
  return "unknown error";
}

const char *ml_digest_alg_name(ml_digest_alg alg)
{
  switch (alg) {
  case ML_DIGEST_MD5:
    return "MD5";
  case ML_DIGEST_MD5_SESS:
    return "MD5-sess";
  case ML_DIGEST_SHA256:
    return "SHA-256";
  case ML_DIGEST_SHA256_SESS:
    return "SHA-256-sess";
  case ML_DIGEST_ALG_UNKNOWN:
    break;
  }
  return NULL;
}

/* ---- escaped views ------------------------------------------------------------- */

int ml_digest_unquote(char *buf, size_t cap, ml_str view)
{
  size_t n = 0;
  for (size_t i = 0; i < view.n; i++) {
    if (view.p[i] == '\\' && i + 1 < view.n) i++;
    if (n + 1 >= cap) return -1;
    buf[n++] = view.p[i];
  }
  if (n >= cap || n > INT_MAX) return -1;
  buf[n] = '\0';
  return (int)n;
}

/* does escaped view `esc` unescape to plain `plain`? */
static int esc_eq_plain(ml_str esc, ml_str plain)
{
  size_t j = 0;
  for (size_t i = 0; i < esc.n; i++, j++) {
    if (esc.p[i] == '\\' && i + 1 < esc.n) i++;
    if (j == plain.n || esc.p[i] != plain.p[j]) return 0;
  }
  return j == plain.n;
}

/* ---- hashing -------------------------------------------------------------------- */

typedef struct dg_part {
  ml_str s;
  int esc; /* s is an escaped view from a header */
} dg_part;

static dg_part plain(ml_str s) { return (dg_part){s, 0}; }
static dg_part escaped(ml_str s) { return (dg_part){s, 1}; }

static const EVP_MD *alg_md(ml_digest_alg alg)
{
  switch (alg) {
  case ML_DIGEST_MD5:
  case ML_DIGEST_MD5_SESS:
    return EVP_md5();
  case ML_DIGEST_SHA256:
  case ML_DIGEST_SHA256_SESS:
    return EVP_sha256();
  case ML_DIGEST_ALG_UNKNOWN:
    break;
  }
  return NULL;
}

static int alg_sess(ml_digest_alg alg) { return alg == ML_DIGEST_MD5_SESS || alg == ML_DIGEST_SHA256_SESS; }

/* feed the unescaped bytes of a part: the runs between backslashes */
static int md_update(EVP_MD_CTX *ctx, dg_part part)
{
  if (part.s.n == 0) return 1;
  const char *p = part.s.p, *end = p + part.s.n;
  int ok = 1;
  while (part.esc && p < end) {
    const char *bs = memchr(p, '\\', (size_t)(end - p));
    if (!bs || bs + 1 == end) break;
    ok &= EVP_DigestUpdate(ctx, p, (size_t)(bs - p));
    p = bs + 1; /* the escaped character starts the next run */
    ok &= EVP_DigestUpdate(ctx, p++, 1);
  }
  return ok & EVP_DigestUpdate(ctx, p, (size_t)(end - p));
}

static void hex_encode(const unsigned char *d, size_t n, char *hex)
{
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    hex[2 * i] = digits[d[i] >> 4];
    hex[2 * i + 1] = digits[d[i] & 15];
  }
  hex[2 * n] = '\0';
}

/* hex = H(part ":" part ":" ...) */
static int hash_parts(EVP_MD_CTX *ctx, const EVP_MD *md, const dg_part *parts, size_t n, char *hex)
{
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  int ok = EVP_DigestInit_ex(ctx, md, NULL);
  for (size_t i = 0; ok && i < n; i++) {
    if (i) ok &= EVP_DigestUpdate(ctx, ":", 1);
    ok &= md_update(ctx, parts[i]);
  }
  if (!ok || !EVP_DigestFinal_ex(ctx, d, &len)) return -1;
  hex_encode(d, len, hex);
  return 0;
}

/* everything a response depends on, each part plain or escaped */
typedef struct dg_input {
  ml_digest_alg alg;
  dg_part user, realm, nonce, cnonce, uri;
  ml_str password, ha1, method, nc;
  int qop; /* qop=auth */
} dg_input;

/* HA1, from the password or the stored one; -sess binds it to the nonces */
static ml_digest_err input_ha1(EVP_MD_CTX *ctx, const EVP_MD *md, const dg_input *in, char *ha1)
{
  if (in->ha1.n) {
    if (in->ha1.n != alg_hexlen(in->alg) || !str_all(in->ha1, char_hex)) return ML_DIGEST_ERR_ALGORITHM;
    for (size_t i = 0; i < in->ha1.n; i++) ha1[i] = (char)ml_ascii_lower((unsigned char)in->ha1.p[i]);
    ha1[in->ha1.n] = '\0';
  } else {
    dg_part parts[] = {in->user, in->realm, plain(in->password)};
    if (hash_parts(ctx, md, parts, 3, ha1)) return ML_DIGEST_ERR_CRYPTO;
  }
  if (!alg_sess(in->alg)) return ML_DIGEST_OK;
  if (!in->cnonce.s.p) return ML_DIGEST_ERR_MISSING;
  dg_part sess[] = {plain(ml_str_c(ha1)), in->nonce, in->cnonce};
  return hash_parts(ctx, md, sess, 3, ha1) ? ML_DIGEST_ERR_CRYPTO : ML_DIGEST_OK;
}

static ml_digest_err input_response(char *out, const dg_input *in)
{
  const EVP_MD *md = alg_md(in->alg);
  char ha1[ML_DIGEST_HEX_MAX], ha2[ML_DIGEST_HEX_MAX];
  if (!md) return ML_DIGEST_ERR_ALGORITHM;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx) return ML_DIGEST_ERR_CRYPTO;
  ml_digest_err err = input_ha1(ctx, md, in, ha1);
  dg_part a2[] = {plain(in->method), in->uri};
  if (!err && hash_parts(ctx, md, a2, 2, ha2)) err = ML_DIGEST_ERR_CRYPTO;
  dg_part with_qop[] = {plain(ml_str_c(ha1)),      in->nonce,           plain(in->nc), in->cnonce,
                        plain(ML_STR_LIT("auth")), plain(ml_str_c(ha2))};
  dg_part without[] = {plain(ml_str_c(ha1)), in->nonce, plain(ml_str_c(ha2))};
  if (!err && hash_parts(ctx, md, in->qop ? with_qop : without, in->qop ? 6 : 3, out))
    err = ML_DIGEST_ERR_CRYPTO;
  EVP_MD_CTX_free(ctx);
  return err;
}

ml_digest_err ml_digest_ha1(char out[ML_DIGEST_HEX_MAX], ml_digest_alg alg, ml_str username, ml_str realm,
                            ml_str password)
{
  const EVP_MD *md = alg_md(alg);
  if (!md) return ML_DIGEST_ERR_ALGORITHM;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx) return ML_DIGEST_ERR_CRYPTO;
  dg_part parts[] = {plain(username), plain(realm), plain(password)};
  int rc = hash_parts(ctx, md, parts, 3, out);
  EVP_MD_CTX_free(ctx);
  return rc ? ML_DIGEST_ERR_CRYPTO : ML_DIGEST_OK;
}

ml_digest_err ml_digest_cred_response(char out[ML_DIGEST_HEX_MAX], const ml_digest_cred *c, ml_str method,
                                      ml_str password, ml_str ha1)
{
  if (c->qops & ML_DIGEST_QOP_AUTH_INT) return ML_DIGEST_ERR_QOP;
  dg_input in = {
      .alg = c->alg,
      .user = escaped(c->username),
      .realm = escaped(c->realm),
      .nonce = escaped(c->nonce),
      .cnonce = escaped(c->cnonce),
      .uri = escaped(c->uri),
      .password = password,
      .ha1 = ha1,
      .method = method,
      .nc = c->nc,
      .qop = c->qops == ML_DIGEST_QOP_AUTH,
  };
  return input_response(out, &in);
}

/* ---- writing headers ------------------------------------------------------------- */

/* An append-only cursor: once something does not fit, the write fails. */
typedef struct dg_out {
  char *p;
  size_t n, cap;
  int full;
} dg_out;

static void out_mem(dg_out *o, const char *s, size_t n)
{
  if (o->full || n > o->cap - o->n) {
    o->full = 1;
    return;
  }
  memcpy(o->p + o->n, s, n);
  o->n += n;
}

static void out_cstr(dg_out *o, const char *s) { out_mem(o, s, strlen(s)); }

/* `, name="value"` with value as written (an escaped view) or escaped now */
static void out_quoted(dg_out *o, const char *name, dg_part v)
{
  out_cstr(o, name), out_cstr(o, "=\"");
  for (size_t i = 0; i < v.s.n; i++) {
    if (!v.esc && (v.s.p[i] == '"' || v.s.p[i] == '\\')) out_mem(o, "\\", 1);
    out_mem(o, v.s.p + i, 1);
  }
  out_mem(o, "\"", 1);
}

static int out_finish(dg_out *o)
{
  if (o->full || o->n >= o->cap || o->n > INT_MAX) return -ML_DIGEST_ERR_SPACE;
  o->p[o->n] = '\0';
  return (int)o->n;
}

/* a plain string we will quote: no control characters (no header injection) */
static int text_safe(ml_str s)
{
  for (size_t i = 0; i < s.n; i++) {
    unsigned char c = (unsigned char)s.p[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f) return 0;
  }
  return 1;
}

static int random_hex(char out[ML_DIGEST_NONCE_LEN + 1])
{
  unsigned char r[ML_DIGEST_NONCE_LEN / 2];
  if (RAND_bytes(r, sizeof r) != 1) return -1;
  hex_encode(r, sizeof r, out);
  return 0;
}

static ml_digest_err auth_check(const ml_digest_chal *ch, const ml_digest_auth *a)
{
  if (!alg_md(ch->alg)) return ML_DIGEST_ERR_ALGORITHM;
  if (str_present(ch->qop) && !(ch->qops & ML_DIGEST_QOP_AUTH)) return ML_DIGEST_ERR_QOP;
  if (alg_sess(ch->alg) && !str_present(ch->qop)) return ML_DIGEST_ERR_ALGORITHM;
  if (!str_all(a->method, char_token) || !a->uri.n || !text_safe(a->uri) || !text_safe(a->username))
    return ML_DIGEST_ERR_INPUT;
  if (a->cnonce.n && !str_all(a->cnonce, char_token)) return ML_DIGEST_ERR_INPUT;
  return ML_DIGEST_OK;
}

static void out_authorization(dg_out *o, const ml_digest_chal *ch, const ml_digest_auth *a,
                              const dg_input *in, const char *response)
{
  out_cstr(o, "Digest ");
  out_quoted(o, "username", plain(a->username));
  out_quoted(o, ", realm", escaped(ch->realm));
  out_quoted(o, ", nonce", escaped(ch->nonce));
  out_quoted(o, ", uri", plain(a->uri));
  out_quoted(o, ", response", plain(ml_str_c(response)));
  out_cstr(o, ", algorithm="), out_cstr(o, ml_digest_alg_name(ch->alg));
  if (in->qop) {
    out_quoted(o, ", cnonce", in->cnonce);
    out_cstr(o, ", qop=auth, nc="), out_mem(o, in->nc.p, in->nc.n);
  }
  if (str_present(ch->opaque)) out_quoted(o, ", opaque", escaped(ch->opaque));
}

int ml_digest_authorize(char *buf, size_t cap, const ml_digest_chal *ch, const ml_digest_auth *a,
                        uint32_t *nc)
{
  static const char digits[] = "0123456789abcdef";
  char cnonce[ML_DIGEST_NONCE_LEN + 1], ncs[9], response[ML_DIGEST_HEX_MAX];
  dg_out o = {buf, 0, cap, 0};
  ml_digest_err err = auth_check(ch, a);
  if (err) return -(int)err;
  dg_input in = {
      .alg = ch->alg,
      .user = plain(a->username),
      .realm = escaped(ch->realm),
      .nonce = escaped(ch->nonce),
      .uri = plain(a->uri),
      .password = a->password,
      .method = a->method,
      .qop = str_present(ch->qop),
  };
  if (in.qop) {
    if (!a->cnonce.n && random_hex(cnonce)) return -ML_DIGEST_ERR_CRYPTO;
    in.cnonce = plain(a->cnonce.n ? a->cnonce : ml_str_c(cnonce));
    uint32_t count = ++*nc;
    for (int i = 7; i >= 0; i--, count >>= 4) ncs[i] = digits[count & 15];
    in.nc = ml_str_make(ncs, 8);
  }
  if ((err = input_response(response, &in))) return -(int)err;
  out_authorization(&o, ch, a, &in, response);
  return out_finish(&o);
}

/* ---- UAS ---------------------------------------------------------------------------- */

/* response == want, case-insensitively, in time that does not depend on
 * where they differ */
static int response_eq(ml_str response, const char *want)
{
  size_t n = strlen(want);
  unsigned char diff = 0;
  if (response.n != n) return 0;
  for (size_t i = 0; i < n; i++)
    diff |= (unsigned char)(ml_ascii_lower((unsigned char)response.p[i]) ^ want[i]);
  return diff == 0;
}

ml_digest_err ml_digest_verify(const ml_digest_cred *c, const ml_digest_check *v)
{
  char want[ML_DIGEST_HEX_MAX];
  if (!alg_md(c->alg)) return ML_DIGEST_ERR_ALGORITHM;
  if (c->qops & ML_DIGEST_QOP_AUTH_INT) return ML_DIGEST_ERR_QOP;
  if (!esc_eq_plain(c->realm, v->realm)) return ML_DIGEST_ERR_REALM;
  if (str_present(v->nonce) && !esc_eq_plain(c->nonce, v->nonce)) return ML_DIGEST_ERR_NONCE;
  if (!esc_eq_plain(c->uri, v->uri)) return ML_DIGEST_ERR_URI;
  if (str_present(v->opaque) && (!str_present(c->opaque) || !esc_eq_plain(c->opaque, v->opaque)))
    return ML_DIGEST_ERR_OPAQUE;
  ml_digest_err err = ml_digest_cred_response(want, c, v->method, v->password, v->ha1);
  if (err) return err;
  return response_eq(c->response, want) ? ML_DIGEST_OK : ML_DIGEST_ERR_RESPONSE;
}

int ml_digest_challenge(char *buf, size_t cap, const ml_digest_chal_params *p, char *nonce_out)
{
  char fresh[ML_DIGEST_NONCE_LEN + 1];
  dg_out o = {buf, 0, cap, 0};
  const char *alg = ml_digest_alg_name(p->alg);
  if (!alg) return -ML_DIGEST_ERR_ALGORITHM;
  if (!text_safe(p->realm) || !text_safe(p->opaque) || !text_safe(p->nonce)) return -ML_DIGEST_ERR_INPUT;
  if (!p->nonce.n && !nonce_out) return -ML_DIGEST_ERR_INPUT;
  if (!p->nonce.n && random_hex(fresh)) return -ML_DIGEST_ERR_CRYPTO;
  out_cstr(&o, "Digest ");
  out_quoted(&o, "realm", plain(p->realm));
  out_quoted(&o, ", nonce", plain(p->nonce.n ? p->nonce : ml_str_c(fresh)));
  out_cstr(&o, ", algorithm="), out_cstr(&o, alg);
  if (p->qop_auth) out_cstr(&o, ", qop=\"auth\"");
  if (p->opaque.n) out_quoted(&o, ", opaque", plain(p->opaque));
  if (p->stale) out_cstr(&o, ", stale=true");
  int n = out_finish(&o);
  if (n >= 0 && !p->nonce.n) memcpy(nonce_out, fresh, sizeof fresh);
  return n;
}
