/* Remote TTS over an OpenAI-compatible HTTP API (see tts_http.h).
 *
 * A request: JSON body -> POST through http_client -> the connection's notify
 * arms `kick` (a zero-delay engine timer) -> pump() on the next timer turn
 * turns queued body bytes into 24 kHz samples, resamples them in blocks and
 * offers them to on_audio. When on_audio takes fewer than offered, the rest
 * of the block stays in the request, the HTTP client's queue fills up to
 * max_buffer and lws stops reading; resume() pumps again.
 *
 * Timers: `deadline` runs the response-headers timeout, then the idle
 * timeout while pump() waits for body bytes with nothing held back (a
 * paused request is waiting on its consumer, not on the server). Firing
 * aborts the connection with an error.
 *
 * The resampler's delay is dropped from the head and flushed with zeros at
 * the end, so the output is exactly in_samples * 2/3 long and aligned with
 * the input, as the local engine does. */
#include "tts_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_client.h"
#include "resample.h"

#define IN_BLOCK 1536 /* 24 kHz samples per step: 64 ms */
#define OUT_BLOCK 1040 /* 16 kHz: IN_BLOCK * 2/3, plus the resampler's rounding */
#define QUALITY 5 /* as the local engine: a steep edge under 8 kHz */

#define DEF_TIMEOUT_MS 10000
#define DEF_IDLE_MS 5000
#define DEF_MAX_BUFFER 65536
#define ERR_MAX 320
#define ERRBODY_MAX 400

typedef struct http_req http_req;

struct ml_tts_http {
  ml_tts_engine base; /* first */
  ml_loop *loop;
  ml_list reqs; /* live requests */
  char *url; /* {base}/audio/speech */
  char *model, *voice, *auth, *ca_file;
  int insecure;
  unsigned timeout_ms, idle_ms, max_buffer;
  int closing;
  void (*on_closed)(void *data);
  void *data;
};

struct http_req {
  ml_list link;
  ml_tts_http *h;
  ml_http_conn conn;
  ml_tts_audio_cb on_audio;
  ml_tts_done_cb on_done;
  void *ud;
  char *body; /* the JSON request, kept until the request ends */
  ml_resampler *rs;
  ml_timer kick; /* zero delay: pump outside lws callbacks */
  ml_timer deadline; /* response headers, then idle */
  int started; /* a connection was started (else: no HTTP at all) */
  int cancelled, paused, timed_out, done;
  int result; /* set before the end when known (blank text, start failure) */
  unsigned char odd_byte; /* half a sample split across body chunks */
  int have_odd;
  size_t skip; /* resampler delay still to drop */
  uint64_t in_total, out_total;
  int flushing;
  int16_t in[IN_BLOCK];
  size_t in_off, in_len;
  int16_t out[OUT_BLOCK];
  size_t out_off, out_len;
  char errbody[ERRBODY_MAX]; /* an error response's body (its start) */
  size_t errbody_len;
  char err[ERR_MAX];
};

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

static void engine_maybe_closed(ml_tts_http *h)
{
  if (!h->closing || !ml_list_empty(&h->reqs)) return;
  void (*cb)(void *) = h->on_closed;
  void *data = h->data;
  free(h->url);
  free(h->model);
  free(h->voice);
  free(h->auth);
  free(h->ca_file);
  free(h);
  if (cb) cb(data);
}

/* on_done, then free the request (and perhaps the engine, if closing). */
static void finish(http_req *r, int status)
{
  ml_tts_http *h = r->h;
  ml_timer_stop(h->loop, &r->kick);
  ml_timer_stop(h->loop, &r->deadline);
  ml_http_conn_abort(&r->conn, NULL);
  ml_list_remove(&r->link);
  r->done = 1;
  if (status == ML_TTS_CANCELLED) r->err[0] = '\0';
  r->on_done((ml_tts_request *)r, status, r->ud);
  ml_http_conn_free(&r->conn);
  ml_resampler_free(r->rs);
  free(r->body);
  free(r);
  engine_maybe_closed(h);
}

static void kick_soon(http_req *r) { ml_timer_start(r->h->loop, &r->kick, 0); }

static void set_err(http_req *r, const char *fmt, const char *a)
{
  snprintf(r->err, sizeof r->err, "%s: ", r->h->url);
  size_t n = strlen(r->err);
  snprintf(r->err + n, sizeof r->err - n, fmt, a);
}

/* The server's error.message, from a JSON error body (OpenAI's shape); else
 * the body's first line. Written into out. */
static void error_text(const char *body, size_t len, char *out, size_t cap)
{
  const char *m = NULL, *end = body + len;
  for (const char *p = body; p + 9 <= end; p++)
    if (!memcmp(p, "\"message\"", 9)) {
      const char *q = p + 9;
      while (q < end && (*q == ' ' || *q == ':' || *q == '\t' || *q == '\n' || *q == '\r')) q++;
      if (q < end && *q == '"') m = q + 1;
      break;
    }
  size_t k = 0;
  if (m) {
    for (const char *q = m; q < end && *q != '"' && k + 1 < cap; q++) {
      if (*q == '\\' && q + 1 < end) q++;
      out[k++] = (unsigned char)*q < ' ' ? ' ' : *q;
    }
  } else {
    for (const char *q = body; q < end && *q != '\n' && *q != '\r' && k + 1 < cap; q++)
      out[k++] = (unsigned char)*q < ' ' ? ' ' : *q;
  }
  out[k] = '\0';
}

/* Body bytes -> 24 kHz samples into r->in, at most max. */
static size_t take_samples(http_req *r, size_t max)
{
  size_t k = 0;
  while (k < max) {
    const char *p;
    size_t n = ml_http_conn_peek(&r->conn, &p), i = 0;
    if (!n) break;
    const unsigned char *u = (const unsigned char *)p;
    if (r->have_odd) {
      r->in[k++] = (int16_t)(uint16_t)(r->odd_byte | (u[0] << 8));
      r->have_odd = 0;
      i = 1;
    }
    for (; k < max && n - i >= 2; i += 2) r->in[k++] = (int16_t)(uint16_t)(u[i] | (u[i + 1] << 8));
    if (k < max && n - i == 1) {
      r->odd_byte = u[i++];
      r->have_odd = 1;
    }
    ml_http_conn_consume(&r->conn, i); /* may let lws read again */
  }
  return k;
}

/* The 16 kHz length the input so far stands for. */
static uint64_t out_due(const http_req *r) { return r->in_total * ML_TTS_RATE / ML_TTS_HTTP_RATE; }

/* Resample what is pending in r->in into r->out. -1: the resampler failed. */
static int resample_step(http_req *r)
{
  size_t in_n = r->in_len - r->in_off, out_n = OUT_BLOCK;
  if (ml_resampler_process(r->rs, r->in + r->in_off, &in_n, r->out, &out_n) < 0) return -1;
  if (!in_n && !out_n) return -1; /* no progress: never spin */
  r->in_off += in_n;
  size_t s = min_sz(r->skip, out_n);
  r->skip -= s;
  r->out_off = s;
  r->out_len = out_n;
  uint64_t due = out_due(r), have = out_n - s;
  if (r->out_total + have > due) have = due > r->out_total ? due - r->out_total : 0; /* the flush's tail */
  r->out_len = s + (size_t)have;
  r->out_total += have;
  return 0;
}

/* Offer r->out to on_audio. 1: all taken; 0: paused or cancelled. */
static int deliver(http_req *r)
{
  while (r->out_off < r->out_len) {
    size_t offered = r->out_len - r->out_off;
    size_t took = r->on_audio((ml_tts_request *)r, r->out + r->out_off, offered, r->ud);
    if (r->cancelled) return 0;
    r->out_off += min_sz(took, offered);
    if (took < offered) {
      r->paused = 1;
      return 0;
    }
  }
  r->out_off = r->out_len = 0;
  return 1;
}

static void fail_conn(http_req *r)
{
  ml_http_conn *c = &r->conn;
  if (r->timed_out) {
    char what[64];
    unsigned ms = c->have_headers ? r->h->idle_ms : r->h->timeout_ms;
    snprintf(what, sizeof what, "%s %.1f s", c->have_headers ? "the audio stalled for" : "no response within",
             ms / 1000.0);
    set_err(r, "%s", what);
    finish(r, ML_TTS_ERR_TIMEOUT);
    return;
  }
  set_err(r, c->have_headers ? "the audio stream broke: %s" : "%s", c->err);
  finish(r, ML_TTS_ERR_CONNECT);
}

static void pump(http_req *r)
{
  ml_tts_http *h = r->h;
  ml_http_conn *c = &r->conn;
  if (r->cancelled) {
    finish(r, ML_TTS_CANCELLED);
    return;
  }
  if (!r->started) { /* blank text, or the connection could not start */
    finish(r, r->result);
    return;
  }
  if (c->have_headers) ml_timer_stop(h->loop, &r->deadline);
  if (c->have_headers && c->status != 200) { /* keep the start of the error body, drop the rest */
    const char *p;
    size_t n;
    while ((n = ml_http_conn_peek(c, &p))) {
      size_t k = min_sz(n, sizeof r->errbody - 1 - r->errbody_len);
      memcpy(r->errbody + r->errbody_len, p, k);
      r->errbody_len += k;
      ml_http_conn_consume(c, n);
    }
    if (c->state != ML_HTTP_DONE && c->state != ML_HTTP_FAILED) {
      ml_timer_start(h->loop, &r->deadline, (uint64_t)h->idle_ms * 1000000u);
      return;
    }
    char msg[200], line[260];
    error_text(r->errbody, r->errbody_len, msg, sizeof msg);
    snprintf(line, sizeof line, "HTTP %d%s%s", c->status, *msg ? ": " : "", msg);
    set_err(r, "%s", line);
    finish(r, ML_TTS_ERR_HTTP);
    return;
  }
  if (r->paused) return;
  for (;;) {
    if (!deliver(r)) return; /* paused (resume pumps again) or cancelled (kick is armed) */
    if (r->in_off < r->in_len) {
      if (resample_step(r) < 0) {
        set_err(r, "%s", "the resampler failed");
        finish(r, ML_TTS_ERR_ENGINE);
        return;
      }
      continue;
    }
    r->in_off = r->in_len = 0;
    if (r->flushing) break;
    size_t k = take_samples(r, IN_BLOCK);
    if (k) {
      r->in_len = k;
      r->in_total += k;
      continue;
    }
    if (c->state == ML_HTTP_DONE && r->out_total < out_due(r) && r->in_total) {
      memset(r->in, 0, sizeof r->in); /* push the resampler's delay out: the last samples */
      r->in_len = IN_BLOCK;
      r->flushing = 1;
      continue;
    }
    break;
  }
  if (c->state == ML_HTTP_DONE) {
    finish(r, ML_TTS_OK);
  } else if (c->state == ML_HTTP_FAILED) {
    fail_conn(r);
  } else if (c->have_headers) {
    ml_timer_start(h->loop, &r->deadline, (uint64_t)h->idle_ms * 1000000u);
  }
}

static void on_kick(ml_timer *t) { pump(ml_container_of(t, http_req, kick)); }

static void on_deadline(ml_timer *t)
{
  http_req *r = ml_container_of(t, http_req, deadline);
  r->timed_out = 1;
  ml_http_conn_abort(&r->conn, "timeout");
  if (r->conn.state == ML_HTTP_FAILED)
    fail_conn(r);
  else
    pump(r); /* it completed meanwhile */
}

static void on_notify(ml_http_conn *c) { kick_soon(ml_container_of(c, http_req, conn)); }

/* ---- the request body ----------------------------------------------------------- */

typedef struct sbuf {
  char *p;
  size_t len, cap;
  int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* a JSON string (s is UTF-8: bytes >= 0x80 pass through) */
static void sb_json(sbuf *b, const char *s)
{
  sb_put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    char esc[8];
    if (ch == '"' || ch == '\\') {
      esc[0] = '\\';
      esc[1] = (char)ch;
      sb_put(b, esc, 2);
    } else if (ch < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", ch);
      sb_put(b, esc, 6);
    } else {
      sb_put(b, s, 1);
    }
  }
  sb_put(b, "\"", 1);
}

static char *request_json(ml_tts_http *h, const char *text, const ml_tts_options *opts)
{
  sbuf b = {0};
  sb_str(&b, "{\"model\":");
  sb_json(&b, h->model);
  sb_str(&b, ",\"input\":");
  sb_json(&b, text);
  sb_str(&b, ",\"voice\":");
  sb_json(&b, opts && opts->voice && *opts->voice ? opts->voice : h->voice);
  sb_str(&b, ",\"response_format\":\"pcm\"");
  if (opts && opts->rate_wpm > 0) { /* espeak-ng's 175 wpm is speed 1 */
    char sp[48];
    double speed = opts->rate_wpm / 175.0;
    snprintf(sp, sizeof sp, ",\"speed\":%.2f", speed < 0.25 ? 0.25 : speed > 4 ? 4 : speed);
    sb_str(&b, sp);
  }
  sb_str(&b, "}");
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  return b.p;
}

/* "name\0value\0" for http_client */
static int add_header(ml_http_conn *c, const char *name, const char *value)
{
  size_t nl = strlen(name), vl = strlen(value);
  char *p = realloc(c->req_headers, c->req_headers_len + nl + vl + 2);
  if (!p) return -1;
  memcpy(p + c->req_headers_len, name, nl + 1);
  memcpy(p + c->req_headers_len + nl + 1, value, vl + 1);
  c->req_headers = p;
  c->req_headers_len += nl + vl + 2;
  return 0;
}

static int is_blank(const char *s)
{
  for (; *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return 0;
  return 1;
}

/* ---- the engine interface -------------------------------------------------------- */

static ml_tts_request *op_speak(ml_tts_engine *e, const char *utf8_text, const ml_tts_options *opts,
                                ml_tts_audio_cb on_audio, ml_tts_done_cb on_done, void *ud)
{
  ml_tts_http *h = (ml_tts_http *)e;
  if (!h || h->closing || !utf8_text || !on_audio || !on_done) return NULL;
  http_req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->h = h;
  r->on_audio = on_audio;
  r->on_done = on_done;
  r->ud = ud;
  ml_timer_init(&r->kick, on_kick);
  ml_timer_init(&r->deadline, on_deadline);
  ml_list_push(&h->reqs, &r->link);
  r->result = ML_TTS_OK;
  if (is_blank(utf8_text)) {
    kick_soon(r); /* done, no audio, on the next turn */
    return (ml_tts_request *)r;
  }
  r->rs = ml_resampler_create(ML_TTS_HTTP_RATE, ML_TTS_RATE, QUALITY);
  r->body = request_json(h, utf8_text, opts);
  ml_http_conn *c = &r->conn;
  if (!r->rs || !r->body || ml_http_conn_init(c, "POST", h->url) != 0 ||
      add_header(c, "content-type", "application/json") != 0 ||
      (h->auth && add_header(c, "authorization", h->auth) != 0) ||
      (h->ca_file && !(c->ca_file = strdup(h->ca_file)))) {
    ml_http_conn_free(c);
    ml_resampler_free(r->rs);
    free(r->body);
    ml_list_remove(&r->link);
    free(r);
    return NULL;
  }
  r->skip = (size_t)ml_resampler_latency(r->rs);
  c->insecure = h->insecure;
  c->max_buffer = h->max_buffer;
  c->body = r->body;
  c->body_len = strlen(r->body);
  if (ml_http_conn_start(c, h->loop, on_notify) != 0) { /* no notify follows */
    set_err(r, "%s", c->err);
    r->result = ML_TTS_ERR_CONNECT;
    kick_soon(r);
    return (ml_tts_request *)r;
  }
  r->started = 1;
  if (c->state == ML_HTTP_CONNECTING)
    ml_timer_start(h->loop, &r->deadline, (uint64_t)h->timeout_ms * 1000000u);
  return (ml_tts_request *)r;
}

static void op_cancel(ml_tts_request *req)
{
  http_req *r = (http_req *)req;
  if (!r || r->done || r->cancelled) return;
  r->cancelled = 1;
  ml_timer_stop(r->h->loop, &r->deadline);
  ml_http_conn_abort(&r->conn, NULL); /* the server sees the connection close */
  kick_soon(r);
}

static void op_resume(ml_tts_request *req)
{
  http_req *r = (http_req *)req;
  if (!r || r->done || r->cancelled || !r->paused) return;
  r->paused = 0;
  kick_soon(r);
}

static const char *op_error(ml_tts_request *req) { return ((http_req *)req)->err; }

static void op_close(ml_tts_engine *e, void (*on_closed)(void *data), void *data)
{
  ml_tts_http *h = (ml_tts_http *)e;
  if (h->closing) return;
  h->closing = 1;
  h->on_closed = on_closed;
  h->data = data;
  for (ml_list *n = h->reqs.next; n != &h->reqs; n = n->next)
    op_cancel((ml_tts_request *)ml_container_of(n, http_req, link));
  engine_maybe_closed(h); /* now if idle, else after the last on_done */
}

static const ml_tts_engine_ops http_ops = {
    .name = "openai-http",
    .speak = op_speak,
    .cancel = op_cancel,
    .resume = op_resume,
    .error = op_error,
    .close = op_close,
};

static char *dup_or(const char *s, const char *def) { return strdup(s && *s ? s : def); }

ml_tts_http *ml_tts_http_create(ml_loop *loop, const ml_tts_http_config *cfg, char *err, size_t errlen)
{
  if (!cfg || !cfg->url || !*cfg->url) {
    snprintf(err, errlen, "bad url: none given");
    return NULL;
  }
  size_t ul = strlen(cfg->url);
  while (ul && cfg->url[ul - 1] == '/') ul--;
  ml_http_conn probe = {0}; /* checks the URL now rather than at the first speak */
  char *url = malloc(ul + sizeof "/audio/speech");
  if (url) {
    memcpy(url, cfg->url, ul);
    memcpy(url + ul, "/audio/speech", sizeof "/audio/speech");
    if (ml_http_conn_init(&probe, "POST", url) != 0) {
      snprintf(err, errlen, "%s", probe.err);
      ml_http_conn_free(&probe);
      free(url);
      return NULL;
    }
    ml_http_conn_free(&probe);
  }
  ml_tts_http *h = calloc(1, sizeof *h);
  if (h) {
    h->base.ops = &http_ops;
    h->loop = loop;
    ml_list_init(&h->reqs);
    h->url = url;
    h->model = dup_or(cfg->model, "tts-1");
    h->voice = dup_or(cfg->voice, "alloy");
    if (cfg->api_key && *cfg->api_key && (h->auth = malloc(strlen(cfg->api_key) + 8)))
      sprintf(h->auth, "Bearer %s", cfg->api_key);
    if (cfg->ca_file) h->ca_file = strdup(cfg->ca_file);
    h->insecure = cfg->insecure;
    h->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEF_TIMEOUT_MS;
    h->idle_ms = cfg->idle_ms ? cfg->idle_ms : DEF_IDLE_MS;
    h->max_buffer = cfg->max_buffer >= 4096 ? cfg->max_buffer : DEF_MAX_BUFFER;
  }
  if (!h || !url || !h->model || !h->voice || (cfg->api_key && *cfg->api_key && !h->auth) ||
      (cfg->ca_file && !h->ca_file)) {
    if (h) {
      h->closing = 1;
      engine_maybe_closed(h); /* frees what was allocated */
    } else {
      free(url);
    }
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  return h;
}

ml_tts_engine *ml_tts_http_engine(ml_tts_http *h) { return h ? &h->base : NULL; }
