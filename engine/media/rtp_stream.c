/* RTP stream of a call (see rtp_stream.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "g711.h"
#include "rtp_stream.h"

#define NS_PER_MS 1000000ull

const uint32_t ml_rtp_lag_edges_us[ML_RTP_LAG_BUCKETS - 1] = {500, 1000, 2000, 3000, 5000, 10000, 20000};

static socklen_t addr_len(const struct sockaddr *sa)
{
  return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static int same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
  if (a->sa_family != b->sa_family) return 0;
  if (a->sa_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->sa_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr);
  }
  return 0;
}

/* Send to cfg.remote, and receive only from it: the kernel keeps the route
 * on the socket and drops datagrams from other sources. */
static void lock_remote(ml_rtp_stream *s)
{
  s->connected = connect(s->fd, (const struct sockaddr *)&s->cfg.remote, s->cfg.remote_len) == 0;
}

/* Listen to any source again. The socket keeps its port only because it was
 * bound to an explicit one (see bind_port). */
static void unlock_remote(ml_rtp_stream *s)
{
  if (!s->connected) return;
  struct sockaddr_storage none;
  memset(&none, 0, sizeof none);
  none.ss_family = AF_UNSPEC;
  connect(s->fd, (const struct sockaddr *)&none, sizeof none);
  s->connected = 0;
}

static void on_packet(ml_rtp_stream *s, size_t n, const struct sockaddr *from)
{
  ml_rtp_packet p;
  int r = ml_rtp_parse(s->rbuf, n, &p);
  if (r == ML_RTP_RTCP) return;
  if (r != ML_RTP_OK) {
    s->rx_bad++;
    return;
  }
  s->rx_packets++;
  uint64_t now = ml_clock_now(s->loop);
  s->last_rx_ns = now;
  if (!s->learned) {
    /* symmetric RTP: answer where the peer's packets come from (NAT) */
    s->learned = 1;
    s->cfg.remote_len = addr_len(from);
    memcpy(&s->cfg.remote, from, s->cfg.remote_len);
    lock_remote(s);
  }
  int rx = ml_rtp_receiver_update(&s->rx, &p, now);
  if (s->member.room && p.pt == s->cfg.pt && rx != ML_RTP_RX_BAD) {
    if (rx == ML_RTP_RX_NEW_SSRC || rx == ML_RTP_RX_RESYNC) ml_jitter_reset(s->jb);
    ml_jitter_put(s->jb, &p, now);
  }
  if (s->cfg.te_pt >= 0 && p.pt == (uint8_t)s->cfg.te_pt) {
    char digit;
    if (ml_dtmf_receiver_feed(&s->dtmf, p.ts, p.marker, p.payload, p.payload_len, &digit) == 1 && s->on_dtmf)
      s->on_dtmf(s, digit, s->data);
  }
}

/* One datagram per readiness: epoll is level-triggered, so if more are
 * queued the next loop turn comes back here, and the common case (one packet
 * per socket per ptime) costs one recvfrom, not a second one for EAGAIN. */
static void on_readable(uv_poll_t *h, int status, int events)
{
  ml_rtp_stream *s = h->data;
  (void)events;
  if (status < 0) {
    /* POLLERR: a pending socket error, an ICMP port unreachable for a
     * connected socket. libuv has stopped the handle: clear it, go on. */
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (s->open) uv_poll_start(&s->poll, UV_READABLE, on_readable);
    return;
  }
  struct sockaddr_storage from;
  socklen_t from_len = sizeof from;
  ssize_t n = recvfrom(s->fd, s->rbuf, sizeof s->rbuf, 0, (struct sockaddr *)&from, &from_len);
  if (n <= 0) return; /* EAGAIN, or an ICMP error of a connected socket (now cleared) */
  on_packet(s, (size_t)n, (const struct sockaddr *)&from);
}

static int new_socket(int family)
{
#ifdef SOCK_NONBLOCK
  return socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
#else
  int fd = socket(family, SOCK_DGRAM, 0);
  if (fd >= 0 && (fcntl(fd, F_SETFL, O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)) {
    close(fd);
    return -1;
  }
  return fd;
#endif
}

/* A socket bound to an ephemeral port of the kernel's choice, but bound
 * explicitly: a socket bound to port 0 loses its port when it is
 * disconnected (Linux unhashes it), so the port is taken from a first socket
 * and bound again by number. The port is free for the instant between the
 * two; if someone takes it, try again. -errno on failure. */
static int bind_port(struct sockaddr_storage *ss, int *fd_out)
{
  socklen_t len = addr_len((struct sockaddr *)ss);
  for (int attempt = 0; attempt < 8; attempt++) {
    int probe = new_socket(ss->ss_family);
    if (probe < 0) return -errno;
    struct sockaddr_storage local;
    socklen_t llen = sizeof local;
    if (bind(probe, (struct sockaddr *)ss, len) != 0 ||
        getsockname(probe, (struct sockaddr *)&local, &llen) != 0) {
      int e = errno;
      close(probe);
      return -e;
    }
    close(probe);
    int fd = new_socket(ss->ss_family);
    if (fd < 0) return -errno;
    if (bind(fd, (struct sockaddr *)&local, llen) == 0) {
      *fd_out = fd;
      memcpy(ss, &local, llen);
      return 0;
    }
    int e = errno;
    close(fd);
    if (e != EADDRINUSE) return -e;
  }
  return -EADDRINUSE;
}

int ml_rtp_stream_open(ml_rtp_stream *s, ml_loop *loop, const char *host, int *port)
{
  memset(s, 0, sizeof *s);
  s->loop = loop;
  s->fd = -1;
  s->cfg.te_pt = -1;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  int rc = uv_ip4_addr(host, 0, (struct sockaddr_in *)&ss);
  if (rc) rc = uv_ip6_addr(host, 0, (struct sockaddr_in6 *)&ss);
  if (rc) return rc;
  int fd = -1;
  if ((rc = bind_port(&ss, &fd)) != 0) return rc; /* -errno is libuv's error code on Unix */
  if ((rc = uv_poll_init_socket(loop->uv, &s->poll, fd)) != 0) {
    close(fd);
    return rc;
  }
  s->fd = fd;
  s->poll.data = s;
  s->open = 1;
  if ((rc = uv_poll_start(&s->poll, UV_READABLE, on_readable)) != 0) {
    ml_rtp_stream_close(s);
    return rc;
  }
  *port = s->local_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                                   : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  ml_rtp_sender_init(&s->tx);
  ml_rtp_receiver_init(&s->rx, 8000);
  ml_dtmf_receiver_init(&s->dtmf);
  return 0;
}

void ml_rtp_stream_set_remote(ml_rtp_stream *s, const struct sockaddr *addr, socklen_t len)
{
  int first = !s->signalled_len;
  if (len > sizeof s->signalled || (!first && same_addr((const struct sockaddr *)&s->signalled, addr)))
    return;
  memcpy(&s->signalled, addr, len);
  s->signalled_len = len;
  if (first && s->learned) return; /* its packets came first (early media): they say where it is */
  memcpy(&s->cfg.remote, addr, len);
  s->cfg.remote_len = len;
  s->learned = 0; /* learn it again from the next packet */
  unlock_remote(s);
}

/* One packet out: without an address once connected. A pending ICMP error
 * fails one send (and is cleared by it): try once more. */
static void xmit(ml_rtp_stream *s, size_t len)
{
  for (int i = 0; i < 2; i++) {
    ssize_t n = s->connected ? send(s->fd, s->sbuf, len, 0)
                             : sendto(s->fd, s->sbuf, len, 0, (const struct sockaddr *)&s->cfg.remote,
                                      s->cfg.remote_len);
    if (n > 0) {
      s->tx_packets++;
      return;
    }
    if (n < 0 && errno != ECONNREFUSED) return; /* EAGAIN: the packet is dropped, as on a wire */
  }
}

/* ---- in a room ----------------------------------------------------------- */

#define LEG_RATE 8000
#define LEG_FRAME (LEG_RATE / 50) /* 20 ms, the room's tick */

static void decode(const ml_rtp_stream *s, int16_t *out, const uint8_t *in, size_t n)
{
  if (s->cfg.alaw)
    ml_alaw_decode(out, in, n);
  else
    ml_ulaw_decode(out, in, n);
}

/* 20 ms of what the peer says, from the jitter buffer, at 16 kHz */
static int leg_pull(ml_room_member *m, int16_t *frame)
{
  ml_rtp_stream *s = ml_container_of(m, ml_rtp_stream, member);
  while (s->in_n < LEG_FRAME) { /* a 30 ms ptime needs a packet on two ticks of three */
    ml_jitter_frame f;
    int r = ml_jitter_get(s->jb, &f);
    size_t room = sizeof s->in8 / sizeof *s->in8 - s->in_n, k;
    if (r == ML_JITTER_FRAME) {
      k = f.len < room ? f.len : room;
      decode(s, s->in8 + s->in_n, f.data, k);
    } else if (r == ML_JITTER_LOST) { /* conceal with silence */
      k = ml_jitter_ptime_ms(s->jb) * (LEG_RATE / 1000);
      if (k > room) k = room;
      memset(s->in8 + s->in_n, 0, k * sizeof *s->in8);
    } else {
      break;
    }
    s->in_n += (unsigned)k;
  }
  if (!s->in_n) return 0; /* nothing playing */
  if (s->in_n < LEG_FRAME) { /* the stream stopped mid-frame */
    memset(s->in8 + s->in_n, 0, (LEG_FRAME - s->in_n) * sizeof *s->in8);
    s->in_n = LEG_FRAME;
  }
  size_t in = LEG_FRAME, out = ML_MIX_FRAME;
  ml_resampler_process(s->up, s->in8, &in, frame, &out);
  if (out < ML_MIX_FRAME) memset(frame + out, 0, (ML_MIX_FRAME - out) * sizeof *frame);
  s->in_n -= LEG_FRAME;
  memmove(s->in8, s->in8 + LEG_FRAME, s->in_n * sizeof *s->in8);
  return 1;
}

/* the mix the peer hears, down to 8 kHz, queued for the next packets */
static void leg_push(ml_room_member *m, const int16_t *frame)
{
  ml_rtp_stream *s = ml_container_of(m, ml_rtp_stream, member);
  int16_t pcm[LEG_FRAME];
  size_t in = ML_MIX_FRAME, out = LEG_FRAME;
  ml_resampler_process(s->down, frame, &in, pcm, &out);
  unsigned cap = sizeof s->out8 / sizeof *s->out8;
  if (s->out_n + out > cap) { /* the sender fell behind: keep the newest */
    unsigned drop = (unsigned)(s->out_n + out - cap);
    s->room_overruns++;
    s->out_n -= drop;
    memmove(s->out8, s->out8 + drop, s->out_n * sizeof *s->out8);
  }
  memcpy(s->out8 + s->out_n, pcm, out * sizeof *pcm);
  s->out_n += (unsigned)out;
}

static const ml_room_member_ops leg_ops = {leg_pull, leg_push};

ml_room_member *ml_rtp_stream_room_member(ml_rtp_stream *s)
{
  if (s->jb) {
    if (!s->member.room) { /* back in a room: what was received meanwhile is stale */
      ml_jitter_reset(s->jb);
      s->in_n = 0;
    }
    return &s->member;
  }
  /* 16 slots hold 320 ms at 20 ms (480 at 30), past the 200 ms delay cap:
   * half the default ring, 8 KB per leg instead of 16 */
  ml_jitter_config jc = {.clock_rate = LEG_RATE, .ptime_ms = s->cfg.ptime_ms, .capacity = 16};
  s->jb = ml_jitter_create(&jc);
  s->up = ml_resampler_create(LEG_RATE, ML_MIX_RATE, ML_RESAMPLE_QUALITY);
  s->down = ml_resampler_create(ML_MIX_RATE, LEG_RATE, ML_RESAMPLE_QUALITY);
  if (!s->jb || !s->up || !s->down) {
    ml_jitter_free(s->jb);
    ml_resampler_free(s->up);
    ml_resampler_free(s->down);
    s->jb = NULL;
    s->up = s->down = NULL;
    return NULL;
  }
  ml_room_member_init(&s->member, &leg_ops, 1);
  /* one tick of slack: the room's tick and ours run on the same clock but
   * in either order */
  memset(s->out8, 0, LEG_FRAME * sizeof *s->out8);
  s->out_n = LEG_FRAME;
  return &s->member;
}

/* one packet of the room's mix; silence where it has not arrived */
static void room_frame(ml_rtp_stream *s, int16_t *pcm, unsigned n)
{
  unsigned k = s->out_n < n ? s->out_n : n;
  memcpy(pcm, s->out8, k * sizeof *pcm);
  if (k < n) {
    memset(pcm + k, 0, (n - k) * sizeof *pcm);
    s->room_underruns++;
  }
  s->out_n -= k;
  memmove(s->out8, s->out8 + k, s->out_n * sizeof *s->out8);
}

/* One frame of the current source into pcm: the tone, the room's mix
 * (taken by on_tick), or silence. */
static void fill_frame(ml_rtp_stream *s, int16_t *pcm, const int16_t *room, unsigned n, uint64_t now)
{
  if (s->tone_on && s->tone_until_ns && now >= s->tone_until_ns) s->tone_on = 0;
  if (s->tone_on)
    ml_tone_fill(&s->tone, pcm, n);
  else if (room)
    memcpy(pcm, room, n * sizeof *pcm);
  else
    memset(pcm, 0, n * sizeof *pcm);
}

static void send_frame(ml_rtp_stream *s, const int16_t *room, uint64_t now)
{
  unsigned samples = s->cfg.ptime_ms * 8;
  int16_t pcm[240];
  fill_frame(s, pcm, room, samples, now);
  size_t h = ml_rtp_sender_write(&s->tx, s->sbuf, sizeof s->sbuf, s->cfg.pt, 0, samples);
  if (!h) return;
  if (s->cfg.alaw)
    ml_alaw_encode(s->sbuf + h, pcm, samples);
  else
    ml_ulaw_encode(s->sbuf + h, pcm, samples);
  xmit(s, h + samples);
}

#define DTMF_MS 100
#define DTMF_GAP_MS 60

/* One tick of telephone-events instead of audio; 0 when no digit is due. */
static int send_dtmf_tick(ml_rtp_stream *s)
{
  unsigned samples = s->cfg.ptime_ms * 8;
  if (!s->dtmf_active) {
    if (s->dtmf_gap_ticks) {
      s->dtmf_gap_ticks--;
      return 0;
    }
    while (s->dtmf_pos < s->dtmf_len) {
      char d = s->dtmf_queue[s->dtmf_pos++];
      if (d == 'w' || d == 'W') {
        s->dtmf_gap_ticks = 500 / s->cfg.ptime_ms;
        return 0;
      }
      if (ml_dtmf_sender_start(&s->dtmf_tx, d, DTMF_MS, s->cfg.ptime_ms, 8000, s->tx.ts) == 0) {
        s->dtmf_active = 1;
        break;
      }
    }
    if (!s->dtmf_active) return 0;
  }
  ml_dtmf_packet pkt;
  if (!ml_dtmf_sender_next(&s->dtmf_tx, &pkt)) {
    s->dtmf_active = 0;
    s->dtmf_sent++;
    s->dtmf_gap_ticks = DTMF_GAP_MS / s->cfg.ptime_ms;
    return 0;
  }
  size_t h =
      ml_rtp_sender_write_at(&s->tx, s->sbuf, sizeof s->sbuf, (uint8_t)s->cfg.te_pt, pkt.marker, pkt.ts);
  if (h) {
    memcpy(s->sbuf + h, pkt.payload, ML_DTMF_PAYLOAD_SIZE);
    xmit(s, h + ML_DTMF_PAYLOAD_SIZE);
  }
  ml_rtp_sender_advance(&s->tx, samples); /* the media clock keeps running */
  return 1;
}

int ml_rtp_stream_send_dtmf(ml_rtp_stream *s, const char *digits)
{
  if (s->cfg.te_pt < 0) return -1;
  size_t n = strlen(digits);
  if (s->dtmf_pos == s->dtmf_len) s->dtmf_pos = s->dtmf_len = 0;
  if (s->dtmf_len + n > sizeof s->dtmf_queue) return -1;
  for (size_t i = 0; i < n; i++)
    if (digits[i] != 'w' && digits[i] != 'W' && ml_dtmf_event_code(digits[i]) < 0) return -1;
  memcpy(s->dtmf_queue + s->dtmf_len, digits, n);
  s->dtmf_len += (unsigned)n;
  return 0;
}

static void on_tick(ml_timer *tm)
{
  ml_rtp_stream *s = ml_container_of(tm, ml_rtp_stream, tick);
  uint64_t now = ml_clock_now(s->loop), period = s->cfg.ptime_ms * NS_PER_MS;
  uint64_t lag = now > s->next_ns ? now - s->next_ns : 0;
  if (lag > s->max_send_lag_ns) s->max_send_lag_ns = lag;
  /* in a room, every tick takes its ptime of the mix, sent or not (a digit,
   * a tone, hold): what is not played is dropped, so the delay stays put */
  int16_t room[240];
  if (s->member.room) room_frame(s, room, s->cfg.ptime_ms * 8);
  if (s->cfg.send) {
    unsigned b = 0;
    while (b < ML_RTP_LAG_BUCKETS - 1 && lag >= ml_rtp_lag_edges_us[b] * 1000ull) b++;
    s->lag_hist[b]++;
    if (!send_dtmf_tick(s)) send_frame(s, s->member.room ? room : NULL, now);
  }
  if (s->connected && now - s->last_rx_ns > ML_RTP_RELEARN_MS * NS_PER_MS) {
    s->learned = 0; /* the peer went quiet: whoever sends next is the peer */
    unlock_remote(s);
  }
  s->next_ns += period;
  if (s->next_ns + period < now) { /* the loop stalled: skip, do not burst */
    s->late_ticks++;
    s->next_ns = now + period;
  }
  ml_timer_start(s->loop, &s->tick, s->next_ns > now ? s->next_ns - now : 0);
}

void ml_rtp_stream_start(ml_rtp_stream *s, const ml_rtp_stream_cfg *cfg)
{
  struct sockaddr_storage remote = s->cfg.remote;
  socklen_t remote_len = s->cfg.remote_len;
  s->cfg = *cfg;
  if (s->cfg.ptime_ms != 30) s->cfg.ptime_ms = 20;
  /* the signalled address, unless early packets taught us better */
  s->cfg.remote = remote;
  s->cfg.remote_len = remote_len;
  if (cfg->remote_len) ml_rtp_stream_set_remote(s, (const struct sockaddr *)&cfg->remote, cfg->remote_len);
  if (ml_timer_armed(&s->tick)) ml_timer_stop(s->loop, &s->tick);
  ml_timer_init(&s->tick, on_tick);
  s->next_ns = ml_clock_now(s->loop);
  ml_timer_start(s->loop, &s->tick, 0);
}

void ml_rtp_stream_tone(ml_rtp_stream *s, double hz, double level, double seconds)
{
  ml_tone_init(&s->tone, hz, level, 8000.0);
  s->tone_on = hz > 0 && level > 0;
  s->tone_until_ns = seconds > 0 ? ml_clock_now(s->loop) + (uint64_t)(seconds * 1e9) : 0;
}

static void on_poll_closed(uv_handle_t *h)
{
  ml_rtp_stream *s = h->data;
  close(s->fd); /* after the handle: libuv no longer watches it */
  s->fd = -1;
  if (s->on_closed) s->on_closed(s, s->data);
}

void ml_rtp_stream_close(ml_rtp_stream *s)
{
  if (s->tick.cb) ml_timer_stop(s->loop, &s->tick);
  if (s->jb) {
    ml_room_leave(&s->member);
    ml_jitter_free(s->jb);
    ml_resampler_free(s->up);
    ml_resampler_free(s->down);
    s->jb = NULL;
    s->up = s->down = NULL;
  }
  if (!s->open) {
    if (s->on_closed) s->on_closed(s, s->data);
    return;
  }
  s->open = 0;
  uv_close((uv_handle_t *)&s->poll, on_poll_closed);
}
