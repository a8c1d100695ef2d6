/*
 * vsock connections (src/vmm/vsock/conn.c) on the host, no VM: packets as a guest driver would
 * send them, the packets the guest is sent read back from receive buffers, real unix sockets
 * in a scratch directory on the host side. Unmapped ports and packets of no connection are
 * reset; wrong CIDs, short packets and lengths past the chain are dropped; data goes both ways
 * with credit kept; a guest past its credit is reset; a shutdown both ways closes the host
 * side; a listen port and Firecracker's handshake start connections towards the guest; the
 * table's bound holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../src/vmm/vsock/vsock.h"
#include "check.h"

#define GUEST 3
enum { REQUEST = 1, RESPONSE, RST, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST };

static char dir[64];

struct pkt {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

static void put(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get(const uint8_t *p, int n)
{
	uint64_t v = 0;
	while (n--)
		v = v << 8 | p[n];
	return v;
}

/* A guest packet from guest_port to host_port with payload (len bytes), sent. */
static int send_pkt(struct vsock *v, uint32_t guest_port, uint32_t host_port, uint16_t op,
		    uint32_t flags, const void *payload, uint32_t len)
{
	static uint8_t b[VSOCK_HDR_LEN + 65536];
	put(b, GUEST, 8);
	put(b + 8, 2, 8);
	put(b + 16, guest_port, 4);
	put(b + 20, host_port, 4);
	put(b + 24, len, 4);
	put(b + 28, 1, 2);
	put(b + 30, op, 2);
	put(b + 32, flags, 4);
	put(b + 36, 65536, 4);
	put(b + 40, 0, 4);
	if (len)
		memcpy(b + VSOCK_HDR_LEN, payload, len);
	/* Cut in two parts inside the header, as a driver may. */
	struct iovec iov[2] = {{b, 10}, {b + 10, VSOCK_HDR_LEN - 10 + len}};
	return vsock_tx(v, iov, 2, VSOCK_HDR_LEN + len);
}

/* The next packet for the guest (0 when none), its payload into data. */
static size_t recv_pkt(struct vsock *v, struct pkt *p, uint8_t *data, size_t room)
{
	static uint8_t b[VSOCK_HDR_LEN + 4096];
	struct iovec iov = {b, VSOCK_HDR_LEN + (room < 4096 ? room : 4096)};
	size_t n = vsock_rx(v, &iov, 1, iov.iov_len);
	if (!n)
		return 0;
	*p = (struct pkt){get(b, 8),
			  get(b + 8, 8),
			  (uint32_t)get(b + 16, 4),
			  (uint32_t)get(b + 20, 4),
			  (uint32_t)get(b + 24, 4),
			  (uint16_t)get(b + 28, 2),
			  (uint16_t)get(b + 30, 2),
			  (uint32_t)get(b + 32, 4),
			  (uint32_t)get(b + 36, 4),
			  (uint32_t)get(b + 40, 4)};
	if (data)
		memcpy(data, b + VSOCK_HDR_LEN, n - VSOCK_HDR_LEN);
	return n;
}

/* One round of the device's poll loop (wait_ms at most). */
static void pump(struct vsock *v, int wait_ms)
{
	static struct pollfd fds[VSOCK_MAX_CONNS + VSOCK_MAX_PORTS + 1];
	int timeout = wait_ms;
	unsigned int n = vsock_poll_fill(v, fds, vsock_max_fds(v), &timeout);
	poll(fds, n, timeout < wait_ms ? timeout : wait_ms);
	vsock_poll_done(v, fds, n);
}

static int unix_server(const char *name)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/%s", dir, name);
	unlink(a.sun_path);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 256) == 0);
	return l;
}

static int unix_client(const char *name)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/%s", dir, name);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	return fd;
}

static char path_echo[128], path_listen[128], path_uds[128];

static struct vsock *engine(bool uds)
{
	static struct vsock_port ports[2];
	snprintf(path_echo, sizeof(path_echo), "%s/echo", dir);
	snprintf(path_listen, sizeof(path_listen), "%s/listen", dir);
	snprintf(path_uds, sizeof(path_uds), "%s/fc", dir);
	ports[0] = (struct vsock_port){.port = 5000, .path = path_echo};
	ports[1] = (struct vsock_port){.port = 6000, .path = path_listen, .listen = true};
	struct vsock_config cfg = {
		.guest_cid = GUEST, .ports = ports, .nr_ports = 2, .uds = uds ? path_uds : NULL};
	char msg[256] = "";
	struct vsock *v = vsock_new(&cfg, msg, sizeof(msg));
	if (!v)
		printf("    vsock_new: %s\n", msg);
	return v;
}

static void unmapped_and_malformed(void)
{
	struct vsock *v = engine(false);
	CHECK(v != NULL);
	if (!v)
		return;
	struct pkt p;
	/* An unmapped port, and the listen port (the host's to start): reset. */
	CHECK(send_pkt(v, 1234, 7777, REQUEST, 0, NULL, 0) == 0);
	CHECK(recv_pkt(v, &p, NULL, 0) == VSOCK_HDR_LEN && p.op == RST && p.src_port == 7777 &&
	      p.dst_port == 1234 && p.src_cid == 2 && p.dst_cid == GUEST);
	send_pkt(v, 1234, 6000, REQUEST, 0, NULL, 0);
	CHECK(recv_pkt(v, &p, NULL, 0) && p.op == RST);
	/* Data of no connection: reset; a reset of none: nothing (no echo of resets). */
	send_pkt(v, 1, 5000, RW, 0, "x", 1);
	CHECK(recv_pkt(v, &p, NULL, 0) && p.op == RST);
	send_pkt(v, 1, 5000, RST, 0, NULL, 0);
	CHECK(!vsock_rx_pending(v));
	/* Shorter than a header, a length past the chain: not packets. */
	uint8_t b[VSOCK_HDR_LEN] = {0};
	struct iovec iov = {b, sizeof(b)};
	CHECK(vsock_tx(v, &iov, 1, VSOCK_HDR_LEN - 1) == -1);
	put(b + 24, 100, 4);
	CHECK(vsock_tx(v, &iov, 1, VSOCK_HDR_LEN) == -1);
	/* Another CID: dropped without an answer. */
	put(b, 4, 8);
	put(b + 8, 2, 8);
	put(b + 24, 0, 4);
	put(b + 30, REQUEST, 2);
	CHECK(vsock_tx(v, &iov, 1, VSOCK_HDR_LEN) == 0 && !vsock_rx_pending(v));
	CHECK(vsock_stats(v)->bad == 3 && vsock_stats(v)->refused == 2);
	/* A receive buffer shorter than a header takes nothing. */
	send_pkt(v, 1, 7777, REQUEST, 0, NULL, 0);
	struct iovec small = {b, VSOCK_HDR_LEN - 1};
	CHECK(vsock_rx(v, &small, 1, small.iov_len) == 0 && vsock_rx_pending(v));
	vsock_free(v);
}

static void data_both_ways_with_credit(void)
{
	int srv = unix_server("echo");
	struct vsock *v = engine(false);
	CHECK(v != NULL);
	if (!v)
		return;
	struct pkt p;
	uint8_t data[4096];
	send_pkt(v, 40000, 5000, REQUEST, 0, NULL, 0);
	CHECK(recv_pkt(v, &p, NULL, 0) && p.op == RESPONSE && p.buf_alloc == VSOCK_BUF);
	int host = accept(srv, NULL, NULL);
	CHECK(host >= 0);
	send_pkt(v, 40000, 5000, RW, 0, "hello host", 10);
	char got[64] = "";
	CHECK(read(host, got, sizeof(got)) == 10 && memcmp(got, "hello host", 10) == 0);
	CHECK(write(host, "hello guest", 11) == 11);
	pump(v, 100);
	CHECK(recv_pkt(v, &p, data, sizeof(data)) == VSOCK_HDR_LEN + 11 && p.op == RW &&
	      p.len == 11 && memcmp(data, "hello guest", 11) == 0 && p.fwd_cnt == 10);
	/* The guest asks for credit: told. */
	send_pkt(v, 40000, 5000, CREDIT_REQUEST, 0, NULL, 0);
	CHECK(recv_pkt(v, &p, NULL, 0) && p.op == CREDIT_UPDATE && p.fwd_cnt == 10);
	/* The host reads nothing: what the socket does not take waits, up to the credit. */
	static uint8_t chunk[65536];
	memset(chunk, 'z', sizeof(chunk));
	size_t sent = 10;
	while (sent + sizeof(chunk) - 10 <= VSOCK_BUF + 10)
		send_pkt(v, 40000, 5000, RW, 0, chunk, sizeof(chunk)), sent += sizeof(chunk);
	CHECK(vsock_stats(v)->overruns == 0);
	/* Past the credit (what is held plus this would pass VSOCK_BUF): reset. */
	uint32_t held = (uint32_t)(sent - 10);
	for (int i = 0; i < 8 && vsock_stats(v)->overruns == 0; i++)
		send_pkt(v, 40000, 5000, RW, 0, chunk, sizeof(chunk)), held += sizeof(chunk);
	CHECK(vsock_stats(v)->overruns == 1);
	while (recv_pkt(v, &p, NULL, 0) && p.op != RST)
		;
	CHECK(p.op == RST && p.dst_port == 40000);
	/* The host side is closed: the server reads what was written, then the end. */
	size_t total = 0;
	ssize_t r;
	while ((r = read(host, chunk, sizeof(chunk))) > 0)
		total += (size_t)r;
	CHECK(r == 0 && total > 0);
	close(host);
	vsock_free(v);
	close(srv);
}

/* The guest's port gport connects to the echo port (5000): the host's end of it. */
static int guest_connects(struct vsock *v, int srv, uint32_t gport)
{
	struct pkt p;
	send_pkt(v, gport, 5000, REQUEST, 0, NULL, 0);
	CHECK(recv_pkt(v, &p, NULL, 0) && p.op == RESPONSE);
	return accept(srv, NULL, NULL);
}

/*
 * 40 KiB the host wrote reach the guest in one read spread over ten 4 KiB receive buffers (and
 * a bit of an eleventh), each an RW packet of its own, in order, none past its buffer; a
 * control packet waiting takes one buffer alone.
 */
static void data_batched_into_many_buffers(void)
{
	int srv = unix_server("echo");
	struct vsock *v = engine(false);
	CHECK(v != NULL);
	if (!v)
		return;
	int host = guest_connects(v, srv, 40001);
	static uint8_t out[41000], bufs[VSOCK_RX_BATCH][4096], back[41000];
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 7);
	CHECK(write(host, out, sizeof(out)) == (ssize_t)sizeof(out));
	pump(v, 100);
	struct iovec iov[VSOCK_RX_BATCH];
	struct vsock_rxbuf rb[VSOCK_RX_BATCH];
	size_t written[VSOCK_RX_BATCH];
	for (int i = 0; i < VSOCK_RX_BATCH; i++) {
		iov[i] = (struct iovec){bufs[i], sizeof(bufs[i])};
		rb[i] = (struct vsock_rxbuf){&iov[i], 1, sizeof(bufs[i])};
	}
	unsigned int got = vsock_rx_batch(v, rb, VSOCK_RX_BATCH, written);
	size_t total = 0;
	bool ok = got == 11;
	for (unsigned int i = 0; i < got; i++) {
		uint32_t len = (uint32_t)get(bufs[i] + 24, 4), op = (uint32_t)get(bufs[i] + 30, 2);
		ok = ok && op == RW && written[i] == VSOCK_HDR_LEN + len && written[i] <= 4096;
		if (ok && total + len <= sizeof(back))
			memcpy(back + total, bufs[i] + VSOCK_HDR_LEN, len);
		total += len;
	}
	CHECK(ok && total == sizeof(out) && memcmp(back, out, sizeof(out)) == 0);
	/* A credit request waiting: one buffer, a CREDIT_UPDATE. */
	send_pkt(v, 40001, 5000, CREDIT_REQUEST, 0, NULL, 0);
	CHECK(vsock_rx_batch(v, rb, VSOCK_RX_BATCH, written) == 1 && written[0] == VSOCK_HDR_LEN &&
	      get(bufs[0] + 30, 2) == CREDIT_UPDATE);
	close(host);
	vsock_free(v);
	close(srv);
}

static void shutdown_closes_host_side(void)
{
	int srv = unix_server("echo");
	struct vsock *v = engine(false);
	CHECK(v != NULL);
	if (!v)
		return;
	struct pkt p;
	int host = guest_connects(v, srv, 40001);
	/* The guest's send side: the host reads the end, and may still write. */
	send_pkt(v, 40001, 5000, SHUTDOWN, 2, NULL, 0);
	char c;
	CHECK(read(host, &c, 1) == 0);
	CHECK(write(host, "late", 4) == 4);
	pump(v, 100);
	uint8_t data[16];
	CHECK(recv_pkt(v, &p, data, sizeof(data)) && p.op == RW && p.len == 4);
	/* The host closes: the guest is told with a shutdown of the host's send side. */
	close(host);
	pump(v, 100);
	CHECK(recv_pkt(v, &p, data, sizeof(data)) && p.op == SHUTDOWN && p.flags == 2);
	/* Both ways: answered with a reset, the connection gone. */
	send_pkt(v, 40001, 5000, SHUTDOWN, 3, NULL, 0);
	CHECK(recv_pkt(v, &p, NULL, 0) && p.op == RST);
	send_pkt(v, 40001, 5000, RW, 0, "x", 1);
	CHECK(recv_pkt(v, &p, NULL, 0) && p.op == RST); /* no connection any more */
	vsock_free(v);
	close(srv);
}

static void host_starts_connections(void)
{
	struct vsock *v = engine(true);
	CHECK(v != NULL);
	if (!v)
		return;
	struct stat st;
	CHECK(stat(path_listen, &st) == 0 && (st.st_mode & 0777) == 0600);
	struct pkt p;
	/* A listen port: a host client there is offered to the guest's port 6000. */
	int c = unix_client("listen");
	pump(v, 100);
	CHECK(recv_pkt(v, &p, NULL, 0) && p.op == REQUEST && p.dst_port == 6000 &&
	      p.src_port >= 1024);
	uint32_t hp = p.src_port;
	send_pkt(v, 6000, hp, RESPONSE, 0, NULL, 0);
	send_pkt(v, 6000, hp, RW, 0, "welcome", 7);
	char got[64] = "";
	CHECK(read(c, got, sizeof(got)) == 7 && memcmp(got, "welcome", 7) == 0);
	close(c);
	/* Firecracker's handshake: CONNECT 52, OK N once the guest answered; a bad line closes. */
	c = unix_client("fc");
	CHECK(write(c, "CONNECT 52\n", 11) == 11);
	pump(v, 100);
	pump(v, 0);
	CHECK(recv_pkt(v, &p, NULL, 0) && p.op == REQUEST && p.dst_port == 52);
	hp = p.src_port;
	send_pkt(v, 52, hp, RESPONSE, 0, NULL, 0);
	memset(got, 0, sizeof(got));
	CHECK(read(c, got, sizeof(got)) > 0);
	char want[32];
	snprintf(want, sizeof(want), "OK %u\n", hp);
	CHECK(strcmp(got, want) == 0);
	close(c);
	c = unix_client("fc");
	CHECK(write(c, "CONNECT x\n", 10) == 10);
	pump(v, 100); /* accepted */
	pump(v, 100); /* its line read */
	CHECK(read(c, got, sizeof(got)) == 0);
	close(c);
	uint8_t data[64];
	while (recv_pkt(v, &p, data, sizeof(data))) /* port 52's end; no request for "x" */
		CHECK(p.op != REQUEST);
	/* Refused by the guest: the client sees its connection end without an OK. */
	c = unix_client("fc");
	CHECK(write(c, "CONNECT 53\n", 11) == 11);
	pump(v, 100);
	pump(v, 0);
	while (recv_pkt(v, &p, NULL, 0) && p.op != REQUEST)
		;
	send_pkt(v, 53, p.src_port, RST, 0, NULL, 0);
	CHECK(read(c, got, sizeof(got)) == 0);
	close(c);
	vsock_free(v);
	CHECK(stat(path_listen, &st) < 0 && stat(path_uds, &st) < 0); /* removed */
}

/* A listen path: a live server's socket is refused, a stale one replaced, a file refused. */
static void listen_paths_checked(void)
{
	int live = unix_server("listen");
	char msg[256] = "";
	struct vsock_port port = {.port = 6000, .path = path_listen, .listen = true};
	struct vsock_config cfg = {.guest_cid = GUEST, .ports = &port, .nr_ports = 1};
	struct vsock *v = vsock_new(&cfg, msg, sizeof(msg));
	CHECK(v == NULL);
	CHECK_STR_CONTAINS(msg, "in use");
	close(live); /* the file stays, stale */
	v = vsock_new(&cfg, msg, sizeof(msg));
	CHECK(v != NULL);
	vsock_free(v);
	int fd = open(path_listen, O_CREAT | O_WRONLY, 0600);
	close(fd);
	CHECK(vsock_new(&cfg, msg, sizeof(msg)) == NULL);
	CHECK_STR_CONTAINS(msg, "exists and is not a socket");
	unlink(path_listen);
}

static void table_is_bounded(void)
{
	int srv = unix_server("echo");
	fcntl(srv, F_SETFL, O_NONBLOCK);
	struct vsock *v = engine(false);
	CHECK(v != NULL);
	if (!v)
		return;
	struct pkt p;
	unsigned int responses = 0, resets = 0;
	for (uint32_t i = 0; i < VSOCK_MAX_CONNS + 10; i++) {
		send_pkt(v, 10000 + i, 5000, REQUEST, 0, NULL, 0);
		if (recv_pkt(v, &p, NULL, 0))
			p.op == RESPONSE ? responses++ : p.op == RST ? resets++ : 0;
		int fd = accept(srv, NULL, NULL); /* keep the server's backlog free */
		if (fd >= 0)
			close(fd);
	}
	CHECK(responses == VSOCK_MAX_CONNS && resets == 10);
	vsock_free(v);
	close(srv);
}

/* Whether fd reads its end (0 bytes) within a second. */
static bool ended(int fd)
{
	struct pollfd pf = {fd, POLLIN, 0};
	char c;
	return poll(&pf, 1, 1000) == 1 && read(fd, &c, 1) == 0;
}

/*
 * The driver resets the device: the host side of each connection ends (an open one, one the
 * guest was asked for), what waited for the guest is dropped; a UDS client still sending its
 * line, the listeners and new connections go on.
 */
static void device_reset_ends_connections(void)
{
	int srv = unix_server("echo");
	struct vsock *v = engine(true);
	CHECK(v != NULL);
	if (!v)
		return;
	struct pkt p;
	int open_conn = guest_connects(v, srv, 40001);
	int asked = unix_client("listen");
	pump(v, 100); /* accepted: a REQUEST for the guest's port 6000 waits */
	int fc = unix_client("fc");
	pump(v, 100);			       /* accepted: its line has not come */
	send_pkt(v, 777, 9999, RW, 0, "x", 1); /* no connection: a reset waits */
	vsock_reset(v);
	CHECK(vsock_stats(v)->closed_by_reset == 2);
	CHECK(ended(open_conn));
	CHECK(ended(asked));
	CHECK(recv_pkt(v, &p, NULL, 0) == 0);
	CHECK(write(fc, "CONNECT 52\n", 11) == 11);
	pump(v, 100);
	pump(v, 0);
	CHECK(recv_pkt(v, &p, NULL, 0) && p.op == REQUEST && p.dst_port == 52);
	int again = unix_client("listen");
	pump(v, 100);
	CHECK(recv_pkt(v, &p, NULL, 0) && p.op == REQUEST && p.dst_port == 6000);
	int host = guest_connects(v, srv, 40001); /* the same ports, a new connection */
	send_pkt(v, 40001, 5000, RW, 0, "ping", 4);
	char got[8] = "";
	CHECK(host >= 0 && read(host, got, sizeof(got)) == 4 && !memcmp(got, "ping", 4));
	close(open_conn);
	close(asked);
	close(fc);
	close(again);
	close(host);
	vsock_free(v);
	close(srv);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ec1-test-vsock-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	TEST(unmapped_and_malformed);
	TEST(data_both_ways_with_credit);
	TEST(data_batched_into_many_buffers);
	TEST(shutdown_closes_host_side);
	TEST(host_starts_connections);
	TEST(listen_paths_checked);
	TEST(table_is_bounded);
	TEST(device_reset_ends_connections);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		return 1;
	return tests_failed ? 1 : 0;
}
