/* SIP over TCP (engine/sip/sip_tcp.c): a stack on a real libuv loop and
 * plain POSIX sockets as peers. Framing (several messages in one segment,
 * one message split over many, keep-alive), 400 and close for a stream
 * without Content-Length, the connection bound, the idle timeout, outbound
 * connections reused, the connection table growing past its first size,
 * and closing the stack closing every connection (no handle left, no leak
 * under ASan). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ml_test.h"
#include "ml_test_lua.h"
#include "sip_call.h"

static uv_loop_t uv;
static lua_State *L;
static ml_sip_stack stack;
static int stack_closed;

/* run the loop for about `ms` milliseconds */
static void pump(int ms)
{
  uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;
  do {
    uv_run(&uv, UV_RUN_NOWAIT);
    usleep(1000);
  } while (now_ns() < end);
}

static int client(int port)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

/* read what arrived within `ms` while the loop runs; *eof when the peer closed */
static size_t drain(int fd, char *buf, size_t cap, int ms, int *eof)
{
  size_t len = 0;
  *eof = 0;
  uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;
  while (now_ns() < end && !*eof) {
    uv_run(&uv, UV_RUN_NOWAIT);
    ssize_t n = read(fd, buf + len, cap - 1 - len);
    if (n > 0) len += (size_t)n;
    if (n == 0 || (n < 0 && errno != EAGAIN)) *eof = 1;
    if (n <= 0) usleep(1000);
  }
  buf[len] = '\0';
  return len;
}

static int count(const char *text, const char *what)
{
  int n = 0;
  for (const char *p = text; (p = strstr(p, what)) != NULL; p++) n++;
  return n;
}

static int options(char *buf, size_t cap, int n, const char *length_line)
{
  return snprintf(buf, cap,
                  "OPTIONS sip:agent@127.0.0.1;transport=tcp SIP/2.0\r\n"
                  "Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKtcp%d;rport\r\n"
                  "From: <sip:probe@127.0.0.1>;tag=p%d\r\n"
                  "To: <sip:agent@127.0.0.1>\r\n"
                  "Call-ID: tcp-%d@test\r\n"
                  "CSeq: %d OPTIONS\r\n"
                  "Max-Forwards: 70\r\n"
                  "%s\r\n\r\n",
                  n, n, n, n, length_line ? length_line : "Content-Length: 0");
}

static void on_closed(ml_sip_stack *s)
{
  (void)s;
  stack_closed = 1;
}

static int open_stack(unsigned max_conns, uint64_t idle_ns)
{
  ml_sip_stack_cfg cfg = {.host = "127.0.0.1",
                          .port = 0,
                          .transports = ML_SIP_LISTEN_UDP | ML_SIP_LISTEN_TCP,
                          .tcp_max_conns = max_conns,
                          .tcp_idle_ns = idle_ns};
  stack_closed = 0;
  if (ml_sip_stack_open(&stack, ml_loop_get(L), &cfg) != 0) return -1;
  return ml_sip_addr_port(&stack.local);
}

static void close_stack(void)
{
  ml_sip_stack_close(&stack, on_closed);
  for (int i = 0; i < 100 && !stack_closed; i++) pump(1);
  CHECK(stack_closed);
  CHECK_EQ(stack.handles, 0);
}

static void test_framing(void)
{
  TEST_BEGIN("framing");
  int port = open_stack(0, 0);
  CHECK(port > 0);
  int fd = client(port);
  CHECK(fd >= 0);
  char out[4096], in[16384];
  int eof;
  /* three requests and a keep-alive ping in one segment */
  size_t len = 0;
  for (int n = 1; n <= 3; n++) {
    len += (size_t)options(out + len, sizeof out - len, n, NULL);
    if (n == 2) len += (size_t)snprintf(out + len, sizeof out - len, "\r\n\r\n");
  }
  CHECK_EQ(write(fd, out, len), (long long)len);
  drain(fd, in, sizeof in, 200, &eof);
  CHECK_EQ(count(in, "SIP/2.0 200 OK"), 3);
  CHECK_EQ(count(in, "CSeq: 3 OPTIONS"), 1);
  CHECK(strstr(in, "transport=tcp") != NULL);
  CHECK(strncmp(in + strcspn(in, "\n") + 1, "Via: SIP/2.0/TCP", 16) == 0);
  CHECK(!eof);
  /* one request a byte at a time */
  len = (size_t)options(out, sizeof out, 4, NULL);
  int short_writes = 0;
  for (size_t i = 0; i < len; i++) {
    if (write(fd, out + i, 1) != 1) short_writes++;
    uv_run(&uv, UV_RUN_NOWAIT);
  }
  CHECK_EQ(short_writes, 0);
  drain(fd, in, sizeof in, 200, &eof);
  CHECK_EQ(count(in, "SIP/2.0 200 OK"), 1);
  CHECK_EQ(count(in, "CSeq: 4 OPTIONS"), 1);
  CHECK_EQ(stack.n_conns, 1);
  CHECK_EQ(stack.rx_errors, 0);
  CHECK_EQ(stack.retransmits, 0);
  /* no Content-Length on a stream: 400, then the connection is closed */
  len = (size_t)options(out, sizeof out, 5, "X-Length: none");
  CHECK_EQ(write(fd, out, len), (long long)len);
  drain(fd, in, sizeof in, 500, &eof);
  CHECK(strncmp(in, "SIP/2.0 400", 11) == 0);
  CHECK(eof);
  close(fd);
  pump(20);
  CHECK_EQ(stack.n_conns, 0);
  close_stack();
}

static void test_bounds(void)
{
  TEST_BEGIN("connection bound and idle timeout");
  int port = open_stack(2, 150000000ull);
  int a = client(port), b = client(port);
  pump(30);
  CHECK_EQ(stack.n_conns, 2);
  int c = client(port); /* over the bound: closed at once */
  char in[4096];
  int eof;
  drain(c, in, sizeof in, 200, &eof);
  CHECK(eof);
  CHECK_EQ(stack.tcp_refused, 1);
  CHECK_EQ(stack.n_conns, 2);
  /* both idle: closed after 150 ms */
  drain(a, in, sizeof in, 400, &eof);
  CHECK(eof);
  pump(20);
  CHECK_EQ(stack.n_conns, 0);
  close(a);
  close(b);
  close(c);
  close_stack();
}

/* outbound: one connection per peer, reused; the table grows past 64 */
static void test_outbound_and_growth(void)
{
  TEST_BEGIN("outbound connections, table growth, close");
  int port = open_stack(0, 0);
  int srv = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  socklen_t alen = sizeof a;
  CHECK_EQ(bind(srv, (struct sockaddr *)&a, sizeof a), 0);
  CHECK_EQ(listen(srv, 8), 0);
  getsockname(srv, (struct sockaddr *)&a, &alen);
  ml_sip_addr to;
  ml_sip_addr_from_sockaddr((struct sockaddr *)&a, &to);
  to.tcp = 1;
  char out[1024];
  int len = options(out, sizeof out, 7, NULL);
  CHECK_EQ(ml_sip_stack_send(&stack, &to, out, (size_t)len), 0); /* queued while connecting */
  CHECK_EQ(ml_sip_stack_send(&stack, &to, out, (size_t)len), 0);
  CHECK_EQ(stack.n_conns, 1);
  pump(30);
  int peer = accept(srv, NULL, NULL);
  CHECK(peer >= 0);
  fcntl(peer, F_SETFL, O_NONBLOCK);
  CHECK_EQ(ml_sip_stack_send(&stack, &to, out, (size_t)len), 0); /* connected: straight out */
  char in[8192];
  int eof;
  drain(peer, in, sizeof in, 100, &eof);
  CHECK_EQ(count(in, "OPTIONS sip:"), 3);
  CHECK_EQ(stack.n_conns, 1);
  /* 100 inbound connections: the table grows, every one is found */
  int fds[100], nfd = 0;
  for (int i = 0; i < 100; i++)
    if ((fds[nfd] = client(port)) >= 0) nfd++;
  pump(50);
  CHECK_EQ(nfd, 100);
  CHECK_EQ(stack.n_conns, 101);
  CHECK(stack.conn_cap >= 256);
  CHECK(ml_sip_tcp_find(&stack, &to) != NULL);
  /* closing the stack closes them all */
  close_stack();
  drain(peer, in, sizeof in, 100, &eof);
  CHECK(eof);
  drain(fds[0], in, sizeof in, 100, &eof);
  CHECK(eof);
  for (int i = 0; i < nfd; i++) close(fds[i]);
  close(peer);
  close(srv);
}

int main(void)
{
  signal(SIGPIPE, SIG_IGN);
  (void)mlt_run_ready; /* a helper of ml_test_lua.h this test does not need */
  if (uv_loop_init(&uv) != 0) return 1;
  L = mlt_state_new(&uv);
  if (!L) return 1;
  test_framing();
  test_bounds();
  test_outbound_and_growth();
  lua_close(L);
  for (int i = 0; i < 8 && uv_run(&uv, UV_RUN_NOWAIT); i++) {
  }
  CHECK_EQ(uv_loop_close(&uv), 0);
  return ML_TEST_DONE("sip_tcp");
}
