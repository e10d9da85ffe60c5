/* SDP (RFC 8866) for a voice user agent: a strict zero-copy parser, the
 * RFC 3264 offer/answer for one audio stream (PCMU, PCMA, telephone-event)
 * and a writer.
 *
 * Everything lives in fixed-size arrays with the limits below: a description
 * over a limit is an error (ML_SDP_ERR_LIMIT), never an allocation. Views
 * (ml_str) point into the parsed buffer and are valid as long as it is.
 *
 * Only audio m= lines are parsed in detail (payload types, rtpmap, fmtp, ptime,
 * direction, rtcp); other m= lines (video, image/T.38, ...) are checked for
 * syntax and kept so that an answer can reject them with port 0. */
#ifndef ML_SDP_H
#define ML_SDP_H

#include <stddef.h>
#include <stdint.h>

#include "ml_str.h"

#define ML_SDP_MAX_MEDIA 8 /* m= lines in one description */
#define ML_SDP_MAX_PT 32 /* payload types on one audio m= line */
#define ML_SDP_MAX_RTPMAP 32 /* a=rtpmap lines of one audio m= line */
#define ML_SDP_MAX_FMTP 16 /* a=fmtp lines of one audio m= line */
#define ML_SDP_MAX_FMT 8 /* formats the writer puts on our m= line */
#define ML_SDP_MAX_PTIME 1000 /* ms: a larger ptime/maxptime is malformed */

typedef enum ml_sdp_err {
  ML_SDP_OK = 0,
  ML_SDP_ERR_SYNTAX, /* a line is not "<letter>=<value>", has a NUL or a bare CR, or a blank line in between
                      */
  ML_SDP_ERR_TYPE, /* a type letter RFC 8866 does not define */
  ML_SDP_ERR_VERSION, /* the first line is not v=0 */
  ML_SDP_ERR_ORIGIN, /* o= missing or malformed */
  ML_SDP_ERR_NAME, /* s= missing */
  ML_SDP_ERR_TIMING, /* t= missing or malformed */
  ML_SDP_ERR_CONNECTION, /* c= malformed, or none for an m= line whose port is not 0 */
  ML_SDP_ERR_MEDIA, /* m= malformed */
  ML_SDP_ERR_PORT, /* m= port not a number in 0..65535 */
  ML_SDP_ERR_PAYLOAD, /* an RTP payload type not a number in 0..127 */
  ML_SDP_ERR_RTPMAP, /* a=rtpmap malformed */
  ML_SDP_ERR_FMTP, /* a=fmtp malformed */
  ML_SDP_ERR_PTIME, /* a=ptime or a=maxptime malformed */
  ML_SDP_ERR_RTCP, /* a=rtcp malformed */
  ML_SDP_ERR_ATTRIBUTE, /* a= malformed, or a direction attribute with a value */
  ML_SDP_ERR_DUPLICATE, /* v, o, s, c, a direction, a=rtpmap/fmtp of one payload type, ... given twice */
  ML_SDP_ERR_ORDER, /* a session-only line (o s t r z u e p) after the first m= */
  ML_SDP_ERR_LIMIT, /* more than an ML_SDP_MAX_* limit */
} ml_sdp_err;

typedef enum ml_sdp_dir {
  ML_SDP_DIR_NONE = 0, /* no direction attribute: sendrecv is implied */
  ML_SDP_SENDRECV,
  ML_SDP_SENDONLY,
  ML_SDP_RECVONLY,
  ML_SDP_INACTIVE,
} ml_sdp_dir;

typedef enum ml_sdp_addrtype { ML_SDP_ADDR_NONE = 0, ML_SDP_IP4 = 4, ML_SDP_IP6 = 6 } ml_sdp_addrtype;

/* a "IN IP4|IP6 <address>" triple (c=, o=, a=rtcp); addr is a literal address
 * or a host name as written, without the "/ttl" of a multicast c= */
typedef struct ml_sdp_conn {
  ml_sdp_addrtype addrtype; /* ML_SDP_ADDR_NONE: absent */
  ml_str addr;
} ml_sdp_conn;

typedef struct ml_sdp_rtpmap {
  uint8_t pt;
  uint8_t channels; /* 1 when absent */
  uint32_t clock; /* Hz */
  ml_str encoding; /* "PCMU", "telephone-event", ... (compare case-insensitively) */
} ml_sdp_rtpmap;

typedef struct ml_sdp_fmtp {
  uint8_t pt;
  ml_str params; /* everything after "<pt> " */
} ml_sdp_fmtp;

typedef struct ml_sdp_media {
  ml_str type; /* "audio", "video", "image", ... */
  uint16_t port; /* 0: disabled (offer) or rejected (answer) */
  uint16_t nports; /* the n of "port/n"; 1 when absent */
  ml_str proto; /* "RTP/AVP", "RTP/SAVP", "udptl", ... */
  ml_str fmts; /* the format list as written ("0 8 101"), echoed when rejecting */
  int rtp; /* proto is RTP-based: every format was checked to be a payload type 0..127 */
  int audio; /* type is "audio": the fields below are filled */
  uint8_t pt[ML_SDP_MAX_PT]; /* payload types in the offerer's order of preference */
  size_t npt;
  ml_sdp_rtpmap rtpmap[ML_SDP_MAX_RTPMAP];
  size_t nrtpmap;
  ml_sdp_fmtp fmtp[ML_SDP_MAX_FMTP];
  size_t nfmtp;
  ml_sdp_conn conn; /* media-level c=; ML_SDP_ADDR_NONE when the session's applies */
  ml_sdp_dir dir; /* media-level direction; NONE when the session's applies */
  uint32_t ptime, maxptime; /* ms; 0 when absent */
  uint16_t rtcp_port; /* a=rtcp; 0 when absent */
  ml_sdp_conn rtcp_conn; /* the optional address of a=rtcp */
} ml_sdp_media;

/* A parsed description (about 10 KiB: keep it in a long-lived object or on a
 * stack that can take it). */
typedef struct ml_sdp {
  unsigned line; /* after an error: the 1-based line where parsing stopped */
  ml_str origin_user; /* o= username ("-" when the offerer has none) */
  ml_str sess_id; /* o= sess-id: digits, kept as text (only ever compared) */
  uint64_t sess_version; /* o= sess-version: changes when the offerer's SDP changes */
  ml_sdp_conn origin; /* o= address */
  ml_str name; /* s= */
  ml_sdp_conn conn; /* session-level c=; ML_SDP_ADDR_NONE when absent */
  uint64_t t_start, t_stop; /* the first t= */
  ml_sdp_dir dir; /* session-level direction attribute */
  ml_sdp_media media[ML_SDP_MAX_MEDIA];
  size_t nmedia;
} ml_sdp;

/* RFC 4733 events (0..255) of a telephone-event fmtp, as a bit set */
typedef struct ml_sdp_events {
  uint32_t bits[8];
} ml_sdp_events;

typedef enum ml_sdp_codec {
  ML_SDP_CODEC_NONE = 0,
  ML_SDP_PCMU, /* G.711 µ-law, static pt 0 */
  ML_SDP_PCMA, /* G.711 A-law, static pt 8 */
  ML_SDP_TELEPHONE_EVENT, /* RFC 4733 */
} ml_sdp_codec;

/* ---- parsing ------------------------------------------------------------- */

/* Parse buf[0..len) (a SIP body) into *sdp. Lines end in CRLF or LF (the last
 * one may have neither); trailing blanks at the end of a line and blank lines
 * at the end of the body are tolerated, nothing else is.
 * Returns ML_SDP_OK or the first error (sdp->line says where); on error the
 * content of *sdp is unspecified. Views point into buf. */
ml_sdp_err ml_sdp_parse(ml_sdp *sdp, const char *buf, size_t len);

/* a static English text for an error code */
const char *ml_sdp_strerror(ml_sdp_err err);

/* The direction that applies to m (its own, else the session's, else
 * sendrecv) and the connection that applies to it (its own c=, else the
 * session's; addrtype NONE if neither). */
ml_sdp_dir ml_sdp_media_dir(const ml_sdp *sdp, const ml_sdp_media *m);
ml_sdp_conn ml_sdp_media_conn(const ml_sdp *sdp, const ml_sdp_media *m);

/* the rtpmap / fmtp of a payload type on m; NULL if it has none */
const ml_sdp_rtpmap *ml_sdp_media_rtpmap(const ml_sdp_media *m, uint8_t pt);
const ml_sdp_fmtp *ml_sdp_media_fmtp(const ml_sdp_media *m, uint8_t pt);

/* Parse a telephone-event fmtp ("0-15", "0-11,16") into *ev (cleared first).
 * Returns 0, or -1 if it is not a list of events/ranges in 0..255. */
int ml_sdp_events_parse(ml_sdp_events *ev, ml_str params);
void ml_sdp_events_add(ml_sdp_events *ev, unsigned lo, unsigned hi); /* lo..hi, clamped to 255 */
int ml_sdp_events_has(const ml_sdp_events *ev, unsigned event);
int ml_sdp_events_empty(const ml_sdp_events *ev);

/* ---- offer/answer (RFC 3264) ---------------------------------------------- */

/* What we can do: the codecs we take, the events we handle, the direction we
 * want (NONE: sendrecv) and the ptime we want when the offer names none. */
typedef struct ml_sdp_caps {
  int pcmu, pcma; /* non-zero: accepted */
  ml_sdp_events events; /* telephone-events we take (usually 0-15); empty: no telephone-event */
  ml_sdp_dir dir;
  uint32_t ptime; /* 20 or 30; 0: 20 */
} ml_sdp_caps;

typedef enum ml_sdp_neg {
  ML_SDP_NEG_OK = 0,
  ML_SDP_NEG_NO_AUDIO, /* no audio m= line with a port and RTP/AVP: answer 488 */
  ML_SDP_NEG_NO_CODEC, /* audio, but no PCMU/PCMA that we accept: answer 488 */
} ml_sdp_neg;

/* The outcome of a negotiation: what to put in the answer and how to run the
 * media. Views point into the offer's buffer. */
typedef struct ml_sdp_answer_params {
  size_t media; /* index of the offer's m= line we take; every other one is rejected */
  ml_sdp_codec codec; /* ML_SDP_PCMU or ML_SDP_PCMA */
  uint8_t pt; /* its payload type in the offer (0, 8, or a dynamic one) */
  int te_pt; /* the offer's telephone-event payload type (clock 8000), -1: none */
  ml_sdp_events events; /* events both sides take (offer ∩ ours); empty when te_pt is -1 */
  uint32_t ptime; /* 20 or 30 */
  ml_sdp_dir dir; /* the direction we answer with (never NONE) */
  int send, recv; /* we may send RTP / we expect RTP */
  int held; /* the offerer does not want our audio (sendonly, inactive, c=0.0.0.0) */
  ml_sdp_conn remote; /* where to send RTP: the m= line's c= (or the session's) */
  uint16_t remote_port;
  uint16_t remote_rtcp_port; /* a=rtcp, else remote_port + 1 */
} ml_sdp_answer_params;

/* Answer an offer: take the first audio m= line (port not 0, RTP/AVP) that has
 * a codec we accept, the offerer's first such codec (PCMU/PCMA by static pt 0/8
 * or by a dynamic pt's rtpmap at 8000 Hz, mono), telephone-event at 8000 Hz if
 * both sides want events, the offer's ptime if it is 20 or 30 (else ours,
 * within the offer's maxptime), and the direction that mirrors the offer's
 * (sendonly -> recvonly, recvonly -> sendonly, inactive -> inactive; c=0.0.0.0
 * is RFC 2543 hold: the offerer does not receive). Returns ML_SDP_NEG_OK and
 * fills *out, or the reason to answer 488 (*out is then unspecified). */
ml_sdp_neg ml_sdp_negotiate(const ml_sdp *offer, const ml_sdp_caps *local, ml_sdp_answer_params *out);

const char *ml_sdp_neg_strerror(ml_sdp_neg neg);

/* ---- writing ----------------------------------------------------------- */

typedef struct ml_sdp_fmt {
  uint8_t pt;
  ml_sdp_codec codec;
} ml_sdp_fmt;

/* One description to write: ours (offer) or our answer to an offer. Strings
 * are plain text and are checked (no spaces in username/addr, no CR/LF/NUL
 * anywhere); views need to live only during ml_sdp_write. */
typedef struct ml_sdp_desc {
  ml_str username; /* o= username; empty: "-" */
  uint64_t sess_id;
  uint64_t sess_version; /* increment it for each new offer or changed answer (RFC 3264 §8) */
  ml_sdp_addrtype addrtype;
  ml_str addr; /* our media address, for o= and c= */
  ml_str name; /* s=; empty: "-" */
  uint16_t port; /* our RTP port; 0 rejects our m= line too */
  uint16_t rtcp_port; /* 0: no a=rtcp line */
  ml_sdp_fmt fmt[ML_SDP_MAX_FMT]; /* on our m= line, in order of preference */
  size_t nfmt;
  ml_sdp_events events; /* the fmtp of telephone-event */
  uint32_t ptime; /* 0: no a=ptime */
  ml_sdp_dir dir; /* NONE: no direction attribute */
  /* answers: the offer's m= lines are mirrored in order, ours at index
   * `media`, the others with port 0, and its t= is copied; NULL for an
   * offer (one audio m= line, t=0 0) */
  const ml_sdp *offer;
  size_t media;
} ml_sdp_desc;

/* Start a desc for an offer: the whole *d is reset, then filled with PCMU 0,
 * PCMA 8 (those caps accepts) and telephone-event 101 with caps' events,
 * caps' ptime (20 when 0) and direction (sendrecv when NONE). Call it first,
 * then set the origin, the address and the port. */
void ml_sdp_desc_offer(ml_sdp_desc *d, const ml_sdp_caps *caps);

/* Start a desc for the answer negotiated by ml_sdp_negotiate: the whole *d
 * is reset, then filled with the chosen codec (and telephone-event) under the
 * offer's payload types, the ptime, the direction, and the offer's m= lines
 * to mirror. Call it first, then set the origin, the address and the port;
 * offer must outlive the write. */
void ml_sdp_desc_answer(ml_sdp_desc *d, const ml_sdp *offer, const ml_sdp_answer_params *a);

/* Write d as SDP text (CRLF lines) into buf and a NUL after it. Returns the
 * length (without the NUL), or -1 if it does not fit in cap bytes or a field
 * is invalid (bad string, no address, no format, media index out of range). */
int ml_sdp_write(char *buf, size_t cap, const ml_sdp_desc *d);

#endif
