/* The RTP stream's socket (engine/media/rtp_stream.c) on a real loop, with
 * plain POSIX sockets as peers: paced packets to the signalled address, the
 * peer learned from its first packet and the socket connected to it (other
 * sources dropped), a new signalled address learned again on the same port,
 * an ICMP error (the peer's port closed) not ending the receiving, and close
 * (poll handle, then the socket) leaving no handle. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lauxlib.h"
#include "ml_test.h"
#include "rtp_stream.h"

static ml_loop *loop;
static int closed;

static void pump(int ms)
{
  uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;
  do {
    uv_run(loop->uv, UV_RUN_NOWAIT);
    usleep(1000);
  } while (now_ns() < end);
}

static int peer(struct sockaddr_in *a, int port)
{
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, "127.0.0.1", &a->sin_addr);
  if (bind(fd, (struct sockaddr *)a, sizeof *a) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof *a;
  getsockname(fd, (struct sockaddr *)a, &len);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

static void send_rtp(int fd, int port, uint16_t seq)
{
  uint8_t p[12 + 160];
  memset(p, 0xff, sizeof p);
  p[0] = 0x80;
  p[1] = 0; /* PCMU */
  p[2] = (uint8_t)(seq >> 8);
  p[3] = (uint8_t)seq;
  uint32_t ts = seq * 160u, ssrc = 0x1234;
  for (int i = 0; i < 4; i++) {
    p[4 + i] = (uint8_t)(ts >> (24 - 8 * i));
    p[8 + i] = (uint8_t)(ssrc >> (24 - 8 * i));
  }
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  sendto(fd, p, sizeof p, 0, (struct sockaddr *)&to, sizeof to);
}

static int drain(int fd)
{
  uint8_t buf[1500];
  int n = 0;
  while (recv(fd, buf, sizeof buf, 0) > 0) n++;
  return n;
}

static void on_closed(ml_rtp_stream *s, void *data)
{
  (void)s;
  (void)data;
  closed++;
}

static void test_stream(void)
{
  TEST_BEGIN("learn, connect, relearn, ICMP, close");
  int handles0 = ml_loop_handles(loop);
  ml_rtp_stream s;
  int port = 0;
  MUST(ml_rtp_stream_open(&s, loop, "127.0.0.1", &port) == 0);
  s.on_closed = on_closed;
  CHECK(port > 0);
  CHECK_EQ(s.local_port, port);
  CHECK_EQ(ml_loop_handles(loop), handles0 + 1);

  struct sockaddr_in a, b;
  int fa = peer(&a, 0), fb = peer(&b, 0);
  MUST(fa >= 0 && fb >= 0);
  ml_rtp_stream_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.pt = 0;
  cfg.te_pt = -1;
  cfg.ptime_ms = 20;
  cfg.send = 1;
  memcpy(&cfg.remote, &a, sizeof a);
  cfg.remote_len = sizeof a;
  ml_rtp_stream_start(&s, &cfg);
  pump(100);
  CHECK(drain(fa) >= 3); /* to the signalled address, not connected yet */
  CHECK(!s.learned && !s.connected);

  /* the first packet teaches the peer's address: connected to it */
  send_rtp(fa, port, 1);
  pump(30);
  CHECK_EQ(s.rx_packets, 1);
  CHECK(s.learned && s.connected);
  /* anyone else is dropped by the kernel */
  send_rtp(fb, port, 2);
  pump(30);
  CHECK_EQ(s.rx_packets, 1);
  CHECK_EQ(s.rx_bad, 0);
  drain(fa);
  pump(60);
  CHECK(drain(fa) >= 2);

  /* the same address again (a refresh): still connected */
  ml_rtp_stream_set_remote(&s, (struct sockaddr *)&a, sizeof a);
  CHECK(s.connected);
  /* a re-INVITE moves the peer to b: learned again, on the same port */
  ml_rtp_stream_set_remote(&s, (struct sockaddr *)&b, sizeof b);
  CHECK(!s.learned && !s.connected);
  pump(60);
  CHECK(drain(fb) >= 2);
  send_rtp(fb, port, 3);
  pump(30);
  CHECK_EQ(s.rx_packets, 2);
  CHECK(s.learned && s.connected);
  struct sockaddr_in local;
  socklen_t len = sizeof local;
  CHECK_EQ(getsockname(s.fd, (struct sockaddr *)&local, &len), 0);
  CHECK_EQ(ntohs(local.sin_port), port);

  /* b's port closes: our sends get ICMP port unreachable (a socket error,
   * POLLERR); a new socket on that port is heard again */
  int bport = ntohs(b.sin_port);
  close(fb);
  uint64_t tx = s.tx_packets;
  pump(100);
  fb = peer(&b, bport);
  MUST(fb >= 0);
  send_rtp(fb, port, 4);
  pump(60);
  CHECK_EQ(s.rx_packets, 3);
  CHECK(s.tx_packets > tx);
  CHECK(drain(fb) >= 1);
  /* send lag counted per packet */
  uint64_t hist = 0;
  for (int i = 0; i < ML_RTP_LAG_BUCKETS; i++) hist += s.lag_hist[i];
  CHECK(hist >= s.tx_packets);

  ml_rtp_stream_close(&s);
  CHECK_EQ(closed, 0); /* the poll handle closes first, then the socket */
  pump(20);
  CHECK_EQ(closed, 1);
  CHECK_EQ(s.fd, -1);
  CHECK_EQ(ml_loop_handles(loop), handles0);
  close(fa);
  close(fb);
}

/* a peer that goes quiet is learned again (its NAT mapping may have moved) */
static void test_relearn_quiet(void)
{
  TEST_BEGIN("relearn after silence");
  ml_rtp_stream s;
  int port = 0;
  MUST(ml_rtp_stream_open(&s, loop, "127.0.0.1", &port) == 0);
  s.on_closed = on_closed;
  struct sockaddr_in a, b;
  int fa = peer(&a, 0), fb = peer(&b, 0);
  ml_rtp_stream_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.te_pt = -1;
  cfg.ptime_ms = 20;
  cfg.send = 1;
  memcpy(&cfg.remote, &a, sizeof a);
  cfg.remote_len = sizeof a;
  ml_rtp_stream_start(&s, &cfg);
  send_rtp(fa, port, 1);
  pump(30);
  CHECK(s.connected);
  pump(ML_RTP_RELEARN_MS + 100);
  CHECK(!s.connected && !s.learned);
  send_rtp(fb, port, 2);
  pump(30);
  CHECK(s.connected);
  CHECK_EQ(s.rx_packets, 2);
  drain(fb);
  pump(60);
  CHECK(drain(fb) >= 2);
  ml_rtp_stream_close(&s);
  pump(20);
  CHECK_EQ(closed, 2);
  close(fa);
  close(fb);
}

int main(void)
{
  lua_State *L = luaL_newstate();
  REQUIRE(L != NULL);
  loop = ml_loop_new(NULL, L);
  REQUIRE(loop != NULL);
  test_stream();
  test_relearn_quiet();
  CHECK_EQ(loop->heap_len, 0);
  ml_loop_free(loop);
  lua_close(L);
  return ML_TEST_DONE("test_rtp_stream");
}
