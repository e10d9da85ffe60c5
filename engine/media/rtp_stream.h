/* One RTP stream of a call: its UDP socket, the G.711 encoder and the send
 * clock (one packet per ptime, paced by the engine clock against a fixed
 * schedule so timing errors do not accumulate), and the receive side
 * (validation, symmetric RTP, telephone-event digits). No allocation per
 * packet: one send buffer and one receive buffer per stream.
 *
 * The socket is our own, watched by a uv_poll: one recvfrom per readiness
 * (level-triggered, so a second queued packet wakes us again), not libuv's
 * read-until-EAGAIN. Once symmetric RTP has learned the peer's address the
 * socket is connect()ed to it: sends carry no address (the route is cached
 * on the socket) and the kernel drops datagrams from anyone else. A new
 * address in a re-INVITE, or no packet for ML_RTP_RELEARN_MS, disconnects
 * it so the next packet is learned again. */
#ifndef ML_RTP_STREAM_H
#define ML_RTP_STREAM_H

#include <netinet/in.h>

#include "dtmf.h"
#include "jitter.h"
#include "ml_runtime.h"
#include "resample.h"
#include "room.h"
#include "rtp.h"
#include "tone.h"

typedef struct ml_rtp_stream ml_rtp_stream;

/* send lag histogram: < 0.5, 1, 2, 3, 5, 10, 20 ms, and the rest */
#define ML_RTP_LAG_BUCKETS 8
extern const uint32_t ml_rtp_lag_edges_us[ML_RTP_LAG_BUCKETS - 1];

typedef struct ml_rtp_stream_cfg {
  uint8_t pt; /* 0 PCMU, 8 PCMA (static), or the negotiated dynamic pt */
  int alaw; /* encode A-law instead of µ-law */
  int te_pt; /* telephone-event payload type, -1: none */
  uint32_t ptime_ms; /* 20 or 30 */
  struct sockaddr_storage remote; /* from SDP; replaced by the source of incoming RTP */
  socklen_t remote_len;
  int send; /* the answer lets us send */
} ml_rtp_stream_cfg;

/* connected to a learned peer that has sent nothing for this long: listen to
 * any source again (the peer's NAT mapping may have moved) */
#define ML_RTP_RELEARN_MS 2000

struct ml_rtp_stream {
  ml_loop *loop;
  uv_poll_t poll; /* readiness of fd; closing it closes fd */
  uv_os_sock_t fd;
  int open; /* poll is live */
  int local_port;
  ml_rtp_stream_cfg cfg; /* cfg.remote: where packets go */
  struct sockaddr_storage signalled; /* the peer's address from SDP, last seen */
  socklen_t signalled_len;
  int learned; /* the remote address comes from received RTP (symmetric RTP) */
  int connected; /* fd is connect()ed to cfg.remote */
  uint64_t last_rx_ns;
  ml_rtp_sender tx;
  ml_rtp_receiver rx;
  ml_dtmf_receiver dtmf;
  /* sending */
  ml_timer tick;
  uint64_t next_ns; /* when the next packet is due */
  ml_tone tone;
  uint64_t tone_until_ns; /* 0: until stopped */
  int tone_on;
  /* RFC 4733 digits to send: a queue, one event at a time, a pause between */
  char dtmf_queue[64];
  unsigned dtmf_len, dtmf_pos;
  ml_dtmf_sender dtmf_tx;
  int dtmf_active;
  unsigned dtmf_gap_ticks; /* silence left before the next digit ('w': 0.5 s) */
  uint64_t tx_packets, rx_packets, rx_bad, late_ticks, dtmf_sent;
  uint64_t max_send_lag_ns; /* how late a packet went out, worst case */
  uint32_t lag_hist[ML_RTP_LAG_BUCKETS]; /* packets by send lag, see ml_rtp_lag_edges_us */
  /* in a room (ml_rtp_stream_room_member): received audio goes through the
   * jitter buffer and up to 16 kHz; the mix comes down to 8 kHz and waits in
   * out8 for the next packet. Allocated at the first join. */
  ml_room_member member;
  ml_jitter *jb;
  ml_resampler *up, *down;
  int16_t in8[640], out8[960];
  unsigned in_n, out_n;
  uint64_t room_overruns, room_underruns;
  uint8_t sbuf[12 + 480];
  uint8_t rbuf[1500];
  /* owner */
  void (*on_dtmf)(ml_rtp_stream *s, char digit, void *data);
  void (*on_closed)(ml_rtp_stream *s, void *data);
  void *data;
};

/* Bind a socket on host (numeric) with an ephemeral port; *port gets it
 * (also s->local_port). 0 or a libuv error code. */
int ml_rtp_stream_open(ml_rtp_stream *s, ml_loop *loop, const char *host, int *port);
/* Start (or restart) media with the negotiated parameters (packets go out
 * every ptime). cfg->remote is the signalled address: see set_remote. */
void ml_rtp_stream_start(ml_rtp_stream *s, const ml_rtp_stream_cfg *cfg);
/* The peer's address from a new SDP (re-INVITE, UPDATE). The same address
 * again changes nothing; a new one becomes the remote and is learned again
 * from the next packet (the socket is disconnected until then). */
void ml_rtp_stream_set_remote(ml_rtp_stream *s, const struct sockaddr *addr, socklen_t len);
/* A sine at hz and level (0..1), for seconds (0: until stopped); silence otherwise. */
void ml_rtp_stream_tone(ml_rtp_stream *s, double hz, double level, double seconds);
/* Queue digits (0-9 * # A-D; 'w' waits 0.5 s) as RFC 4733 events, 100 ms
 * each with 60 ms between; needs a telephone-event pt. -1 if not possible. */
int ml_rtp_stream_send_dtmf(ml_rtp_stream *s, const char *digits);
/* The stream as a listening room member, made ready (jitter buffer,
 * resamplers) at the first call; NULL when out of memory. Join it with
 * ml_room_join; closing the stream leaves the room. */
ml_room_member *ml_rtp_stream_room_member(ml_rtp_stream *s);
/* on_closed runs once the poll handle, then the socket, are closed */
void ml_rtp_stream_close(ml_rtp_stream *s);

#endif
