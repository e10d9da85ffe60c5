/* SIP messages (RFC 3261 §7, §20, §25): a strict zero-copy parser, sub-parsers
 * for URIs, name-addrs, Via and CSeq values, stream framing, and a builder
 * for outgoing messages. Nothing here allocates.
 *
 * Views. Every ml_str filled by these functions points into the buffer that
 * was parsed (or, for a sub-parser, into the view it was given): it stays
 * valid exactly as long as that buffer is alive and unchanged. A view that
 * was not found is ML_STR_NULL ({NULL, 0}).
 *
 * Folding. A header value may span lines (CRLF followed by SP or HTAB). The
 * parser does not copy to unfold, so a value view can contain such CRLFs;
 * the sub-parsers treat CR and LF as whitespace, ml_sip_unfold copies a
 * value with each fold replaced by one SP, and the builder unfolds what it
 * copies.
 *
 * Errors. ml_sip_parse returns 0 or the status code a server sends back
 * for a bad request: 400, 505 (not SIP/2.0) or 513 (over ML_SIP_MAX_MSG).
 * Everything else (483, 420, 481, 486, 488, 500, 503) is for the layers
 * above, which find what they need in ml_sip_msg. A bad response is dropped,
 * never answered; a bad ACK is dropped too (ml_sip_can_respond says when a
 * reply is possible at all). */
#ifndef ML_SIP_MSG_H
#define ML_SIP_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "ml_str.h"

/* ---- limits: over one is a parse error, never an allocation --------------- */

#define ML_SIP_MAX_MSG (64 * 1024) /* head + body: 513 above */
#define ML_SIP_MAX_LINE (8 * 1024) /* start line, or one header with its folds */
#define ML_SIP_MAX_HEADERS 64 /* header lines (not values) */
#define ML_SIP_MAX_VIA 16 /* Via values, all lines together */
#define ML_SIP_MAX_CONTACT 16 /* Contact values */
#define ML_SIP_MAX_ROUTE 16 /* Route values, and Record-Route values */

/* ---- methods --------------------------------------------------------------- */

typedef enum ml_sip_method {
  ML_SIP_OTHER = 0, /* an extension method: see method_name */
  ML_SIP_INVITE,
  ML_SIP_ACK,
  ML_SIP_BYE,
  ML_SIP_CANCEL,
  ML_SIP_OPTIONS,
  ML_SIP_REGISTER,
  ML_SIP_REFER,
  ML_SIP_NOTIFY,
  ML_SIP_INFO,
  ML_SIP_UPDATE,
  ML_SIP_PRACK,
  ML_SIP_SUBSCRIBE,
  ML_SIP_MESSAGE,
} ml_sip_method;

/* Methods are case-sensitive (RFC 3261 §7.1): "invite" is ML_SIP_OTHER. */
ml_sip_method ml_sip_method_lookup(ml_str name);
/* "INVITE"...; "" for ML_SIP_OTHER */
const char *ml_sip_method_name(ml_sip_method m);

/* ---- headers --------------------------------------------------------------- */

/* The headers the stack looks at, indexed for O(1) access. Compact forms
 * (RFC 3261 §7.3.3 and later RFCs) map to the same id as the full name. */
typedef enum ml_sip_hdr_id {
  ML_SIP_H_OTHER = 0, /* any header not in this list */
  ML_SIP_H_VIA, /* v */
  ML_SIP_H_FROM, /* f */
  ML_SIP_H_TO, /* t */
  ML_SIP_H_CALL_ID, /* i */
  ML_SIP_H_CSEQ,
  ML_SIP_H_MAX_FORWARDS,
  ML_SIP_H_CONTENT_LENGTH, /* l */
  ML_SIP_H_CONTENT_TYPE, /* c */
  ML_SIP_H_CONTENT_ENCODING, /* e */
  ML_SIP_H_CONTACT, /* m */
  ML_SIP_H_ROUTE,
  ML_SIP_H_RECORD_ROUTE,
  ML_SIP_H_REQUIRE,
  ML_SIP_H_PROXY_REQUIRE,
  ML_SIP_H_SUPPORTED, /* k */
  ML_SIP_H_UNSUPPORTED,
  ML_SIP_H_EXPIRES,
  ML_SIP_H_MIN_EXPIRES,
  ML_SIP_H_WWW_AUTHENTICATE,
  ML_SIP_H_PROXY_AUTHENTICATE,
  ML_SIP_H_AUTHORIZATION,
  ML_SIP_H_PROXY_AUTHORIZATION,
  ML_SIP_H_REFER_TO, /* r (RFC 3515) */
  ML_SIP_H_REFERRED_BY, /* b (RFC 3892) */
  ML_SIP_H_EVENT, /* o (RFC 6665) */
  ML_SIP_H_ALLOW_EVENTS, /* u (RFC 6665) */
  ML_SIP_H_SUBSCRIPTION_STATE,
  ML_SIP_H_SESSION_EXPIRES, /* x (RFC 4028) */
  ML_SIP_H_MIN_SE,
  ML_SIP_H_ALLOW,
  ML_SIP_H_ACCEPT,
  ML_SIP_H_USER_AGENT,
  ML_SIP_H_SERVER,
  ML_SIP_H_SUBJECT, /* s */
  ML_SIP_H_IDENTITY, /* y (RFC 8224) */
  ML_SIP_H_IDENTITY_INFO, /* n (RFC 4474, historic) */
  ML_SIP_H_ACCEPT_CONTACT, /* a (RFC 3841) */
  ML_SIP_H_REJECT_CONTACT, /* j (RFC 3841) */
  ML_SIP_H_REQUEST_DISPOSITION, /* d (RFC 3841) */
  ML_SIP_H_RETRY_AFTER,
  ML_SIP_H_TIMESTAMP,
  ML_SIP_H_WARNING,
  ML_SIP_H_REASON,
  ML_SIP_H_REPLACES,
  ML_SIP_H_RSEQ,
  ML_SIP_H_RACK,
  ML_SIP_H__COUNT
} ml_sip_hdr_id;

/* Case-insensitive, full or compact name; ML_SIP_H_OTHER when unknown. */
ml_sip_hdr_id ml_sip_hdr_lookup(ml_str name);
/* The canonical full name ("Call-ID"); "" for ML_SIP_H_OTHER. */
const char *ml_sip_hdr_name(ml_sip_hdr_id id);

#define ML_SIP_NONE 0xff /* "no header" in the uint8_t header indexes */

typedef struct ml_sip_header {
  ml_str name; /* as written: "CALL-ID", "i" */
  ml_str value; /* without surrounding whitespace; may contain folds */
  uint8_t id; /* ml_sip_hdr_id */
  uint8_t next; /* index of the next header with the same id, or ML_SIP_NONE */
} ml_sip_header;

/* ---- URIs, name-addrs, Via ------------------------------------------------- */

typedef enum ml_sip_scheme {
  ML_SIP_URI_OTHER = 0, /* any other absolute URI: only text and scheme are set */
  ML_SIP_URI_SIP,
  ML_SIP_URI_SIPS,
  ML_SIP_URI_TEL,
} ml_sip_scheme;

typedef enum ml_sip_host_type {
  ML_SIP_HOST_NONE = 0, /* tel: and other schemes */
  ML_SIP_HOST_NAME,
  ML_SIP_HOST_IPV4,
  ML_SIP_HOST_IPV6, /* host holds the address without the brackets */
} ml_sip_host_type;

typedef struct ml_sip_uri {
  ml_str text; /* the whole URI */
  ml_sip_scheme scheme;
  ml_str scheme_name; /* as written, e.g. "SIP" */
  ml_str user; /* still %-escaped (ml_sip_unescape); tel: the number */
  ml_str password;
  ml_str host;
  ml_sip_host_type host_type;
  int port; /* 0 when absent (port 0 itself is rejected) */
  ml_str params; /* after the first ';', up to '?': "transport=tcp;lr" */
  ml_str headers; /* after '?': "Subject=x&Priority=urgent" */
} ml_sip_uri;

typedef struct ml_sip_name_addr {
  ml_str display; /* as written, quotes included when quoted; empty if none */
  ml_sip_uri uri;
  int bracketed; /* the URI was inside <> */
  ml_str params; /* header params after the URI, after the first ';' */
  ml_str tag; /* the tag param's value (convenience) */
} ml_sip_name_addr;

typedef enum ml_sip_transport {
  ML_SIP_TP_OTHER = 0,
  ML_SIP_TP_UDP,
  ML_SIP_TP_TCP,
  ML_SIP_TP_TLS,
  ML_SIP_TP_SCTP,
  ML_SIP_TP_WS,
  ML_SIP_TP_WSS,
} ml_sip_transport;

typedef struct ml_sip_via {
  ml_str transport_name; /* "UDP", as written */
  ml_sip_transport transport;
  ml_str host; /* sent-by host; an IPv6 address without brackets */
  ml_sip_host_type host_type;
  int port; /* 0 when absent */
  ml_str params; /* after the first ';' */
  ml_str branch, received, maddr; /* empty when absent */
  int rport; /* -1 absent, 0 present without a value, else the value (RFC 3581) */
  int ttl; /* -1 absent */
} ml_sip_via;

/* ---- the message ----------------------------------------------------------- */

/* ml_sip_parse flags. ML_SIP_STREAM: one message framed by ml_sip_frame;
 * Content-Length is mandatory. ML_SIP_UDP: a datagram (RFC 3261 §18.3):
 * bytes past Content-Length are dropped, a body shorter than it is an
 * error, no Content-Length means the rest of the datagram. */
#define ML_SIP_STREAM 0
#define ML_SIP_UDP 1

typedef struct ml_sip_error {
  int code; /* 0, 400, 505, 513 */
  const char *reason; /* reason phrase for that code */
  const char *detail; /* what was wrong, static text: for the log or a Warning */
} ml_sip_error;

typedef struct ml_sip_msg {
  const char *buf; /* what was parsed */
  size_t len; /* bytes of buf this message used (leading CRLFs + head + body); on an
                 error after the headers were read, the head only */
  ml_sip_error err;

  int is_request;
  /* request line */
  ml_sip_method method;
  ml_str method_name;
  ml_sip_uri ruri; /* Request-URI; ruri.text always set for a request */
  /* status line */
  int status; /* 100..699 */
  ml_str reason;

  /* every header line, in order */
  ml_sip_header headers[ML_SIP_MAX_HEADERS];
  unsigned n_headers;
  uint8_t first[ML_SIP_H__COUNT]; /* first header with that id, or ML_SIP_NONE */

  /* list headers, split into values, all lines in order */
  ml_str via[ML_SIP_MAX_VIA];
  unsigned n_via;
  ml_str contact[ML_SIP_MAX_CONTACT];
  unsigned n_contact;
  int contact_star; /* "Contact: *" (REGISTER, RFC 3261 §10.2.2) */
  ml_str route[ML_SIP_MAX_ROUTE];
  unsigned n_route;
  ml_str record_route[ML_SIP_MAX_ROUTE];
  unsigned n_record_route;

  /* decoded well-known values */
  ml_sip_via via0; /* the top Via */
  ml_sip_name_addr from, to; /* from.tag, to.tag */
  ml_str call_id;
  uint32_t cseq; /* < 2^31 */
  ml_sip_method cseq_method;
  ml_str cseq_method_name;
  int max_forwards; /* -1 when absent (RFC 2543 peers); 0 is valid here */
  int64_t content_length; /* -1 when absent */
  int64_t expires; /* Expires header: -1 absent or malformed; capped at 2^32-1 */
  ml_str content_type;
  ml_str body;
} ml_sip_msg;

/* Parse one message from buf[0..len) into m (which needs no initialisation).
 * Leading CRLFs are skipped (RFC 3261 §7.5). Returns 0, or the error code
 * also in m->err. On error m holds what was read before the problem was
 * found; headers are still indexed after a semantic error (bad CSeq,
 * missing To, ...) so that a 400 can be built — see ml_sip_can_respond. */
int ml_sip_parse(ml_sip_msg *m, const char *buf, size_t len, int flags);

/* 1 when m is a request (not ACK) with Vias, From, To, Call-ID and CSeq
 * present, so an error response can be built even though parsing failed. */
int ml_sip_can_respond(const ml_sip_msg *m);

/* O(1): the first header with that id, NULL if none. */
const ml_sip_header *ml_sip_header_get(const ml_sip_msg *m, ml_sip_hdr_id id);
/* The next header with the same id as h, NULL after the last. */
const ml_sip_header *ml_sip_header_next(const ml_sip_msg *m, const ml_sip_header *h);
/* By name, case-insensitive, compact forms understood; also finds headers
 * not in ml_sip_hdr_id (linear scan). */
const ml_sip_header *ml_sip_header_find(const ml_sip_msg *m, ml_str name);

/* Comma-separated values (RFC 3261 §7.3.1): takes the next value of *rest,
 * splitting on commas outside quoted strings and <...>, trimmed of
 * whitespace. Returns 1 and advances *rest, 0 when *rest is used up, -1 on an
 * empty value or an unterminated quote or '<'. */
int ml_sip_split(ml_str *rest, ml_str *value);

/* Every value of every header with one id, in order: the values of
 * "Require: a, b" and a later "Require: c" are a, b, c. */
typedef struct ml_sip_iter {
  const ml_sip_msg *m;
  unsigned h; /* current header index, or ML_SIP_NONE */
  ml_str rest;
} ml_sip_iter;

void ml_sip_iter_init(ml_sip_iter *it, const ml_sip_msg *m, ml_sip_hdr_id id);
/* 1 with the next value, 0 at the end, -1 on a malformed list */
int ml_sip_iter_next(ml_sip_iter *it, ml_str *value);
/* 1 when a header of that id lists the token (case-insensitive), e.g.
 * ml_sip_header_has(m, ML_SIP_H_SUPPORTED, "timer") */
int ml_sip_header_has(const ml_sip_msg *m, ml_sip_hdr_id id, const char *token);

/* ---- stream framing (TCP) -------------------------------------------------- */

enum {
  ML_SIP_FRAME_ERROR = -1, /* cannot be framed (no/bad/duplicate Content-Length,
                              over ML_SIP_MAX_MSG): close the connection */
  ML_SIP_FRAME_MORE = 0, /* keep reading */
  ML_SIP_FRAME_OK = 1, /* one message in buf[0..*msg_len): parse it with ML_SIP_STREAM */
  ML_SIP_FRAME_KEEPALIVE = 2, /* buf starts with *msg_len bytes of CRLFs (RFC 5626
                                 keep-alive; 4 = a ping to answer with CRLF): drop them */
};

/* Finds the end of the first message of a byte stream without copying:
 * the empty line, then Content-Length bytes of body. Stateless: call it
 * again on the grown buffer after each read (each call rescans the head, at
 * most ML_SIP_MAX_MSG bytes). Checks only what framing needs: ml_sip_parse
 * with ML_SIP_STREAM validates the message, and when that fails the stream
 * cannot be trusted any more — answer 400 if possible and close it. */
int ml_sip_frame(const char *buf, size_t len, size_t *msg_len);

/* ---- sub-parsers (on views; every result is a view into the input) -------- */

/* A URI (RFC 3261 §19.1, §25; RFC 3966 for tel:): sip:/sips: with
 * userinfo, host (name, IPv4, [IPv6]), port, params and headers; tel: with
 * its number and params; any other scheme is checked for URI characters
 * only. Returns 0, or -1 on a malformed URI (u is then partly filled). */
int ml_sip_parse_uri(ml_str s, ml_sip_uri *u);

/* name-addr or addr-spec with header params (From, To, Contact, Route,
 * Record-Route, Refer-To, Referred-By): `"Display" <uri>;tag=x`, `Token
 * Words <uri>`, `uri;tag=x` (a bare URI ends at the first ';' and may not
 * contain '?' or ','). Returns 0 or -1. */
int ml_sip_parse_name_addr(ml_str s, ml_sip_name_addr *na);

/* One Via value: SIP/2.0/<transport> sent-by *(;param). Returns 0 or -1. */
int ml_sip_parse_via(ml_str s, ml_sip_via *v);

/* CSeq: a number < 2^31 and a method token. Returns 0 or -1. */
int ml_sip_parse_cseq(ml_str s, uint32_t *seq, ml_str *method);

/* Look a parameter up in a ';'-separated list (URI params, header params,
 * Via params; the list may start with ';'), name case-insensitive. Returns 1
 * when found — *value is then the value as written, quotes included, or an
 * empty view (p != NULL, n == 0) for a flag like ";lr" — and 0 when absent. */
int ml_sip_param(ml_str params, const char *name, ml_str *value);

/* Iterate over a ';'-separated list: 1 with the next name and value (empty
 * for a flag), 0 at the end, -1 on an empty or malformed entry. */
int ml_sip_param_next(ml_str *rest, ml_str *name, ml_str *value);

/* Look a header of a URI's '?' part up by name ("Replaces"); 1 or 0. */
int ml_sip_uri_header(ml_str headers, const char *name, ml_str *value);

/* Strip the quotes of a quoted-string (backslash escapes stay: display
 * names need no more); other views are returned as they are. */
ml_str ml_sip_unquote(ml_str s);

/* Decode %HH escapes into out. Returns the decoded length, or -1 on a bad
 * escape or when out (cap bytes) is too small. */
long ml_sip_unescape(ml_str s, char *out, size_t cap);

/* Copy a header value with each fold (CRLF + whitespace) replaced by one SP.
 * Returns the unfolded length; writes at most cap bytes. */
size_t ml_sip_unfold(ml_str s, char *out, size_t cap);

/* ---- building messages (into a caller buffer, no allocation) --------------- */

/* Appends are sticky on error: once one does not fit (or a value would break
 * the framing: a bare CR/LF, a NUL, a name that is not a token), every later
 * append is a no-op and ml_sip_builder_finish returns 0. */
typedef struct ml_sip_builder {
  char *buf;
  size_t cap, len;
  int failed;
} ml_sip_builder;

void ml_sip_builder_init(ml_sip_builder *b, char *buf, size_t cap);
void ml_sip_builder_request_line(ml_sip_builder *b, ml_str method, ml_str uri);
/* reason NULL: ml_sip_reason(code) */
void ml_sip_builder_status_line(ml_sip_builder *b, int code, const char *reason);
/* "Name: value" CRLF; folds in value are unfolded */
void ml_sip_builder_header(ml_sip_builder *b, const char *name, ml_str value);
void ml_sip_builder_headerf(ml_sip_builder *b, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Content-Length (of body), the empty line, the body. Returns the message
 * length, or 0 when anything failed. Do not call it twice. */
size_t ml_sip_builder_finish(ml_sip_builder *b, ml_str body);

/* Start a response to req (RFC 3261 §8.2.6): status line, every Via in order,
 * From, To (with ";tag=<to_tag>" added when To has no tag and to_tag is not
 * empty), Call-ID, CSeq, and for 101-299 to INVITE/SUBSCRIBE/REFER every
 * Record-Route value (§12.1.1). Header values are copied as received. The
 * caller adds its own headers (Contact, Allow, ...) and calls
 * ml_sip_builder_finish. Returns 0, or -1 if req cannot be answered
 * (ml_sip_can_respond) or b failed. */
int ml_sip_build_response(const ml_sip_msg *req, int code, const char *reason, ml_str to_tag,
                          ml_sip_builder *b);

/* Reason phrase for a status code ("Ringing"); a class phrase for unknown codes. */
const char *ml_sip_reason(int code);

#endif
