/* RTP (RFC 3550) packets and per-stream state: a strict header parser that
 * returns views into the caller's buffer, a header writer, and the sender and
 * receiver state of one stream (sequence numbers, timestamps, loss, jitter).
 *
 * Pure C: no I/O, no clock, no allocation. The transport owns the sockets and
 * the packet buffers; it passes arrival times in and takes headers out. Every
 * function here is O(1) per packet. RTP and RTCP may share one port (RFC 5761):
 * ml_rtp_parse tells them apart and the caller skips RTCP for now. */
#ifndef ML_RTP_H
#define ML_RTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ML_RTP_HEADER_SIZE 12 /* fixed header, no CSRC, no extension */
#define ML_RTP_MAX_CSRC 15

/* ml_rtp_parse results: >= 0 is a packet, < 0 is a reason to drop it */
enum ml_rtp_result {
  ML_RTP_OK = 0, /* an RTP packet: every field of ml_rtp_packet is set */
  ML_RTP_RTCP = 1, /* a well-formed RTCP packet (compound or not): skip it */
  ML_RTP_ESHORT = -1, /* shorter than the fixed header */
  ML_RTP_EVERSION = -2, /* version is not 2 */
  ML_RTP_ECSRC = -3, /* the CSRC list runs past the end */
  ML_RTP_EEXT = -4, /* the extension header or its data runs past the end */
  ML_RTP_EPADDING = -5, /* padding count 0 or larger than what follows the header */
  ML_RTP_ERTCP = -6, /* looks like RTCP (muxed) but its length is wrong */
};

/* A parsed packet: views into the buffer given to ml_rtp_parse, valid as long
 * as that buffer is. Multi-byte fields are in host order. */
typedef struct ml_rtp_packet {
  uint8_t marker, pt, csrc_count, has_ext;
  uint16_t seq;
  uint32_t ts, ssrc;
  const uint8_t *csrc; /* csrc_count 32-bit big-endian identifiers */
  uint16_t ext_profile; /* "defined by profile" field; 0 when !has_ext */
  const uint8_t *ext; /* extension data after its 4-byte header */
  size_t ext_len; /* bytes (a multiple of 4) */
  const uint8_t *payload; /* never NULL on ML_RTP_OK, may be empty */
  size_t payload_len; /* padding excluded */
  size_t padding; /* padding bytes, including the count byte */
} ml_rtp_packet;

/* Parse and validate one datagram. Returns ML_RTP_OK (out filled),
 * ML_RTP_RTCP (out untouched: second byte 192..223 per RFC 5761 §4, version 2,
 * the first RTCP length fits) or a negative enum ml_rtp_result. Never reads
 * outside buf[0..len). */
int ml_rtp_parse(const uint8_t *buf, size_t len, ml_rtp_packet *out);

/* Short English name of a result code, for logs ("ok", "short", ...). */
const char *ml_rtp_strerror(int result);

/* The fields ml_rtp_write_header writes: version 2, no padding, no extension,
 * no CSRC. */
typedef struct ml_rtp_header {
  uint8_t marker, pt; /* pt 0..127 */
  uint16_t seq;
  uint32_t ts, ssrc;
} ml_rtp_header;

/* Write the 12-byte fixed header into buf. Returns ML_RTP_HEADER_SIZE, or 0
 * when cap is too small (buf untouched). The payload goes right after it. */
size_t ml_rtp_write_header(uint8_t *buf, size_t cap, const ml_rtp_header *h);

/* ---- sender: one outgoing stream ------------------------------------------
 *
 * `ts` is the media clock: the RTP timestamp of the next audio frame, in the
 * stream's clock units (8000 Hz for G.711 and telephone-event). It moves by the
 * samples of each frame sent, and by ml_rtp_sender_advance while nothing is
 * sent (hold, DTMF, silence), so sequence numbers stay continuous and
 * timestamps stay on the wall clock whatever the codec or ptime in use. */
typedef struct ml_rtp_sender {
  uint32_t ssrc;
  uint16_t seq; /* of the next packet */
  uint32_t ts; /* of the next audio frame */
  uint8_t marker_next; /* set the marker on the next audio packet (talkspurt start) */
  uint64_t packets; /* headers written */
} ml_rtp_sender;

/* Random SSRC, initial sequence number and timestamp (RFC 3550 §5.1, from
 * getrandom); the first audio packet will carry the marker. Tests may
 * overwrite the fields afterwards. */
void ml_rtp_sender_init(ml_rtp_sender *s);

/* Header of the next audio packet carrying `samples` samples of payload:
 * seq and ts of the stream, then seq += 1 and ts += samples. The marker is
 * `marker` or a pending talkspurt start. Returns ML_RTP_HEADER_SIZE, or 0 when
 * cap is too small (state unchanged). */
size_t ml_rtp_sender_write(ml_rtp_sender *s, uint8_t *buf, size_t cap, uint8_t pt, int marker,
                           uint32_t samples);

/* Header of a packet with an explicit timestamp (RFC 4733 events: every
 * packet of one event carries the event's start time). seq += 1; the media
 * clock does not move: call ml_rtp_sender_advance once per ptime meanwhile.
 * Returns as ml_rtp_sender_write. */
size_t ml_rtp_sender_write_at(ml_rtp_sender *s, uint8_t *buf, size_t cap, uint8_t pt, int marker,
                              uint32_t ts);

/* The media clock moved by `samples` without an audio packet (hold, DTMF,
 * silence): the next audio packet starts a talkspurt and carries the marker. */
void ml_rtp_sender_advance(ml_rtp_sender *s, uint32_t samples);

/* ---- receiver: one incoming stream -----------------------------------------
 *
 * Sequence tracking and statistics of RFC 3550 A.1, A.3 and A.8: extended
 * highest sequence number (wraps counted), expected/received/lost, and the
 * interarrival jitter. The first packet is accepted at once (no probation:
 * the peer was negotiated by SDP). A jump of more than ML_RTP_MAX_DROPOUT is
 * believed only when the next packet follows it (a restarted sender). */
#define ML_RTP_MAX_DROPOUT 3000
#define ML_RTP_MAX_MISORDER 100

enum ml_rtp_rx {
  ML_RTP_RX_OK = 0, /* in order, or a gap forward (loss) */
  ML_RTP_RX_FIRST, /* first packet of the stream (or of a new SSRC, see below) */
  ML_RTP_RX_NEW_SSRC, /* the SSRC changed: stream state restarted from this packet;
                         reset whatever depends on it (jitter buffer, DTMF) */
  ML_RTP_RX_OLD, /* behind the highest: reordered or duplicate (the jitter buffer decides) */
  ML_RTP_RX_RESYNC, /* the sender restarted its sequence: state restarted, use the packet */
  ML_RTP_RX_BAD, /* a large jump not (yet) confirmed: drop the packet */
};

typedef struct ml_rtp_receiver {
  uint32_t clock_rate; /* Hz of the payload's RTP clock, for the jitter */
  uint8_t started;
  uint32_t ssrc;
  uint16_t max_seq; /* highest sequence number seen */
  uint32_t cycles; /* wraps of max_seq, << 16 */
  uint32_t base_seq; /* first sequence number (extended) */
  uint32_t bad_seq; /* the sequence number after a suspicious jump */
  uint64_t received; /* packets counted since start or restart */
  uint32_t expected_prior, received_prior; /* at the last fraction-lost report */
  uint32_t last_ts; /* RTP timestamp of the last packet used for jitter */
  uint32_t transit; /* of that packet, in clock units */
  uint32_t jitter; /* A.8 estimate, clock units << 4 */
  uint8_t have_transit;
  uint64_t ssrc_changes, resyncs, bad; /* counters over the whole call */
  /* Symmetric RTP (RFC 4961): where the peer's packets come from, i.e. where
   * to send. Owned and filled by the transport (source_len 0 = not learned
   * yet); cleared by init, never read or written by the other functions,
   * not even when the SSRC changes. */
  struct sockaddr_storage source;
  socklen_t source_len;
} ml_rtp_receiver;

/* Zero the state (source slot included); clock_rate in Hz (8000 for G.711).
 * Once per stream: an SSRC change or restart is handled by update. */
void ml_rtp_receiver_init(ml_rtp_receiver *r, uint32_t clock_rate);

/* Account one parsed RTP packet that arrived at `arrival_ns` (any monotonic
 * clock in nanoseconds, the same for every call). Returns an enum ml_rtp_rx.
 * Jitter is updated on every packet except the first of a stream and those
 * repeating the previous timestamp (RFC 4733 events, which do not advance
 * it). */
int ml_rtp_receiver_update(ml_rtp_receiver *r, const ml_rtp_packet *p, uint64_t arrival_ns);

typedef struct ml_rtp_rx_stats {
  uint32_t ext_max_seq; /* extended highest sequence number */
  uint64_t expected, received;
  int64_t lost; /* expected - received: negative with duplicates */
  uint32_t jitter; /* clock units */
  uint32_t jitter_us;
  uint64_t ssrc_changes, resyncs, bad;
} ml_rtp_rx_stats;

/* Cumulative statistics since the stream (re)started; counters since init. */
void ml_rtp_receiver_stats(const ml_rtp_receiver *r, ml_rtp_rx_stats *out);

/* RTCP fraction lost (A.3): packets lost since the previous call as a
 * fraction of those expected, in 1/256; starts a new interval. */
uint8_t ml_rtp_receiver_fraction_lost(ml_rtp_receiver *r);

#endif
