/* One RTP stream of a call: its UDP socket, the G.711 encoder and the send
 * clock (one packet per ptime, paced by the engine clock against a fixed
 * schedule so timing errors do not accumulate), and the receive side
 * (validation, symmetric RTP, telephone-event digits). No allocation per
 * packet: one send buffer and one receive buffer per stream. */
#ifndef ML_RTP_STREAM_H
#define ML_RTP_STREAM_H

#include <netinet/in.h>

#include "dtmf.h"
#include "jitter.h"
#include "ml_runtime.h"
#include "resample.h"
#include "room.h"
#include "rtp.h"

typedef struct ml_rtp_stream ml_rtp_stream;

typedef struct ml_rtp_stream_cfg {
  uint8_t pt; /* 0 PCMU, 8 PCMA (static), or the negotiated dynamic pt */
  int alaw; /* encode A-law instead of µ-law */
  int te_pt; /* telephone-event payload type, -1: none */
  uint32_t ptime_ms; /* 20 or 30 */
  struct sockaddr_storage remote; /* from SDP; replaced by the source of incoming RTP */
  socklen_t remote_len;
  int send; /* the answer lets us send */
} ml_rtp_stream_cfg;

struct ml_rtp_stream {
  ml_loop *loop;
  uv_udp_t udp;
  int open;
  ml_rtp_stream_cfg cfg;
  int learned; /* the remote address comes from received RTP (symmetric RTP) */
  ml_rtp_sender tx;
  ml_rtp_receiver rx;
  ml_dtmf_receiver dtmf;
  /* sending */
  ml_timer tick;
  uint64_t next_ns; /* when the next packet is due */
  double tone_hz, tone_level;
  double osc_re, osc_im, rot_re, rot_im; /* the tone as a rotating phasor: no sin() per sample */
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

/* Bind a socket on host (numeric) with an ephemeral port; *port gets it. */
int ml_rtp_stream_open(ml_rtp_stream *s, ml_loop *loop, const char *host, int *port);
/* Start media with the negotiated parameters (packets go out every ptime). */
void ml_rtp_stream_start(ml_rtp_stream *s, const ml_rtp_stream_cfg *cfg);
/* A sine at hz and level (0..1), for seconds (0: until stopped); silence otherwise. */
void ml_rtp_stream_tone(ml_rtp_stream *s, double hz, double level, double seconds);
/* Queue digits (0-9 * # A-D; 'w' waits 0.5 s) as RFC 4733 events, 100 ms
 * each with 60 ms between; needs a telephone-event pt. -1 if not possible. */
int ml_rtp_stream_send_dtmf(ml_rtp_stream *s, const char *digits);
/* The stream as a room member (listening), made ready at the first call;
 * NULL when out of memory. Join it with ml_room_join. */
ml_room_member *ml_rtp_stream_room_member(ml_rtp_stream *s);
/* The stream as a listening room member, made ready (jitter buffer,
 * resamplers) at the first call; NULL when out of memory. Join it with
 * ml_room_join; closing the stream leaves the room. */
ml_room_member *ml_rtp_stream_room_member(ml_rtp_stream *s);
void ml_rtp_stream_close(ml_rtp_stream *s); /* on_closed runs when the socket is closed */

#endif
