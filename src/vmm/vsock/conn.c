/* vsock connections between the guest and host unix sockets (vsock.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../fd_budget.h"
#include "../iov.h"
#include "vsock.h"

/* virtio 1.2 §5.10.6: operations, the one socket type offered, shutdown flags. */
#define OP_REQUEST	  1
#define OP_RESPONSE	  2
#define OP_RST		  3
#define OP_SHUTDOWN	  4
#define OP_RW		  5
#define OP_CREDIT_UPDATE  6
#define OP_CREDIT_REQUEST 7
#define TYPE_STREAM	  1
#define SHUT_RCV_F	  1
#define SHUT_SEND_F	  2

#define RSTS_MAX	 64    /* resets waiting for the guest, for packets of no connection */
#define WAIT_MS		 10000 /* for a guest to answer a host's connection, a handshake line */
#define HANDSHAKE_MAX	 32    /* "CONNECT 4294967295\n" and then some */
#define HOST_PORT_FIRST	 1024  /* the host ports of connections the host starts */
#define ACCEPTS_PER_PASS 16
#define IOV_MAX_PARTS	 1024 /* a chain's parts, at most (the device's longest chain) */

enum state {
	FREE,
	HANDSHAKE, /* a client of UDS: its "CONNECT PORT\n" line comes */
	REQUESTED, /* the guest is asked (REQUEST) and has not answered */
	OPEN,
	RESETTING, /* the host side is closed; a reset for the guest waits */
};

struct conn {
	enum state state;
	int fd;
	uint32_t guest_port, host_port;
	/* To the guest: payload sent, and the guest's credit as its last packet told. */
	uint32_t tx_cnt, peer_buf_alloc, peer_fwd_cnt;
	/* From the guest: payload received, passed on to the host, and fwd_cnt last told. */
	uint32_t rx_cnt, fwd_cnt, credit_sent;
	uint8_t *buf; /* what the host socket did not take yet (VSOCK_BUF bytes, when needed) */
	size_t buf_off, buf_len;
	char ok[24]; /* a UDS client's "OK N\n", written before anything else */
	size_t ok_off, ok_len;
	bool want_request, want_response, want_credit;
	uint32_t want_shutdown; /* flags to tell the guest */
	uint32_t guest_shut;	/* flags the guest told */
	bool host_eof, host_shut_wr, readable, uds;
	int64_t deadline; /* ms; HANDSHAKE and REQUESTED */
	char line[HANDSHAKE_MAX];
	size_t line_len;
};

struct listener {
	int fd;
	uint32_t port; /* the guest port (not for UDS) */
	bool uds;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

struct hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

struct vsock {
	uint64_t guest_cid;
	struct vsock_port ports[VSOCK_MAX_PORTS];
	unsigned int nr_ports;
	char *uds;
	struct listener ls[VSOCK_MAX_PORTS + 1];
	unsigned int nr_ls;
	struct conn conns[VSOCK_MAX_CONNS];
	unsigned int next; /* where the next receive buffer's search starts (round robin) */
	uint32_t next_host_port;
	struct {
		uint32_t guest_port, host_port;
	} rsts[RSTS_MAX];
	unsigned int rst_head, rst_len;
	/* What vsock_poll_fill put where: listener i, or conns[i] with i + VSOCK_MAX_PORTS + 1. */
	unsigned int polled[VSOCK_MAX_PORTS + 1 + VSOCK_MAX_CONNS];
	struct iovec part[IOV_MAX_PARTS]; /* a payload's slice of a chain */
	struct vsock_stats stats;
};

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static uint64_t le(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;
	while (n--)
		v = v << 8 | p[n];
	return v;
}

static void put_le(uint8_t *p, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static void parse_hdr(const uint8_t b[VSOCK_HDR_LEN], struct hdr *h)
{
	h->src_cid = le(b, 8);
	h->dst_cid = le(b + 8, 8);
	h->src_port = (uint32_t)le(b + 16, 4);
	h->dst_port = (uint32_t)le(b + 20, 4);
	h->len = (uint32_t)le(b + 24, 4);
	h->type = (uint16_t)le(b + 28, 2);
	h->op = (uint16_t)le(b + 30, 2);
	h->flags = (uint32_t)le(b + 32, 4);
	h->buf_alloc = (uint32_t)le(b + 36, 4);
	h->fwd_cnt = (uint32_t)le(b + 40, 4);
}

/* A header from the host (CID 2, host_port) to the guest's guest_port, into iov. */
static void put_hdr(const struct vsock *v, const struct iovec *iov, unsigned int n,
		    uint32_t host_port, uint32_t guest_port, uint16_t op, uint32_t flags,
		    uint32_t len, uint32_t fwd_cnt)
{
	uint8_t b[VSOCK_HDR_LEN];
	put_le(b, VSOCK_HOST_CID, 8);
	put_le(b + 8, v->guest_cid, 8);
	put_le(b + 16, host_port, 4);
	put_le(b + 20, guest_port, 4);
	put_le(b + 24, len, 4);
	put_le(b + 28, TYPE_STREAM, 2);
	put_le(b + 30, op, 2);
	put_le(b + 32, flags, 4);
	put_le(b + 36, VSOCK_BUF, 4);
	put_le(b + 40, fwd_cnt, 4);
	iov_from_buf(iov, n, 0, b, sizeof(b));
}

static struct conn *find(struct vsock *v, uint32_t guest_port, uint32_t host_port)
{
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct conn *c = &v->conns[i];
		if (c->state != FREE && c->state != HANDSHAKE && c->guest_port == guest_port &&
		    c->host_port == host_port)
			return c;
	}
	return NULL;
}

/*
 * A free slot for a connection on host socket fd, whose descriptor comes out of the process's
 * budget (fd_budget.h, shared with the shares and the NAT). NULL when the table is full or the
 * budget spent (the caller closes fd).
 */
static struct conn *new_conn(struct vsock *v, int fd)
{
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++)
		if (v->conns[i].state == FREE) {
			if (!fd_budget_take())
				return NULL;
			struct conn *c = &v->conns[i];
			*c = (struct conn){.fd = fd};
			return c;
		}
	return NULL;
}

/* A connection's host socket closed, its descriptor given back to the budget. */
static void close_host(struct conn *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		fd_budget_give();
	}
	c->fd = -1;
}

static void free_conn(struct conn *c)
{
	close_host(c);
	free(c->buf);
	*c = (struct conn){.state = FREE, .fd = -1};
}

/* The host side goes; the guest is told with a reset. */
static void reset_conn(struct conn *c)
{
	close_host(c);
	c->state = RESETTING;
}

/* A reset for a packet of no connection (none for a reset: two ends could echo forever). */
static void queue_rst(struct vsock *v, const struct hdr *h)
{
	if (h->op == OP_RST || v->rst_len == RSTS_MAX)
		return;
	unsigned int i = (v->rst_head + v->rst_len++) % RSTS_MAX;
	v->rsts[i].guest_port = h->src_port;
	v->rsts[i].host_port = h->dst_port;
}

/* What the guest may still be sent on c. */
static uint32_t guest_credit(const struct conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
	return in_flight > c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static bool out_waiting(const struct conn *c)
{
	return c->buf_len || c->ok_off < c->ok_len;
}

static void note_forwarded(struct conn *c, size_t n)
{
	c->fwd_cnt += (uint32_t)n;
	/* The guest learns of it in every packet; a one-way stream needs telling. */
	if (c->fwd_cnt - c->credit_sent >= VSOCK_BUF / 4)
		c->want_credit = true;
}

/* Writes what waits for the host socket; resets c when the host side is gone. */
static void flush_out(struct vsock *v, struct conn *c)
{
	while (c->fd >= 0 && out_waiting(c)) {
		bool ok = c->ok_off < c->ok_len;
		const void *p = ok ? (const void *)(c->ok + c->ok_off) : c->buf + c->buf_off;
		size_t len = ok ? c->ok_len - c->ok_off : c->buf_len;
		ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				reset_conn(c);
			return;
		}
		if (ok) {
			c->ok_off += (size_t)w;
			continue;
		}
		c->buf_off += (size_t)w;
		c->buf_len -= (size_t)w;
		v->stats.to_host += (uint64_t)w;
		note_forwarded(c, (size_t)w);
	}
	if (c->fd < 0 || out_waiting(c))
		return;
	/* Everything the guest sent is written: its shutdown reaches the host now. */
	if ((c->guest_shut & SHUT_SEND_F) && !c->host_shut_wr) {
		shutdown(c->fd, SHUT_WR);
		c->host_shut_wr = true;
	}
	/* Both ways shut: closed, confirmed with a reset, as Linux's transport does. */
	if (c->guest_shut == (SHUT_RCV_F | SHUT_SEND_F))
		reset_conn(c);
}

/* The guest's payload for the host: written at once where the socket takes it, else kept. */
static void to_host(struct vsock *v, struct conn *c, const struct iovec *iov, unsigned int n,
		    size_t len)
{
	size_t done = 0;
	if (!out_waiting(c)) {
		struct msghdr m = {.msg_iov = v->part,
				   .msg_iovlen = iov_slice(iov, n, VSOCK_HDR_LEN, len, v->part)};
		ssize_t w;
		do
			w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (w < 0 && errno == EINTR);
		if (w < 0 && errno != EAGAIN) {
			reset_conn(c);
			return;
		}
		done = w > 0 ? (size_t)w : 0;
		v->stats.to_host += done;
		note_forwarded(c, done);
	}
	if (done == len)
		return;
	if (!c->buf && !(c->buf = malloc(VSOCK_BUF))) {
		reset_conn(c);
		return;
	}
	/* Credit was checked: what is not yet forwarded fits VSOCK_BUF. */
	if (c->buf_off + c->buf_len + (len - done) > VSOCK_BUF) {
		memmove(c->buf, c->buf + c->buf_off, c->buf_len);
		c->buf_off = 0;
	}
	iov_to_buf(iov, n, VSOCK_HDR_LEN + done, c->buf + c->buf_off + c->buf_len, len - done);
	c->buf_len += len - done;
}

/* The path a guest connection to port reaches, into out; false when none does. */
static bool guest_target(const struct vsock *v, uint32_t port, char *out, size_t size)
{
	for (unsigned int i = 0; i < v->nr_ports; i++)
		if (v->ports[i].port == port)
			return !v->ports[i].listen &&
			       (size_t)snprintf(out, size, "%s", v->ports[i].path) < size;
	return v->uds && (size_t)snprintf(out, size, "%s_%u", v->uds, port) < size;
}

/* The guest connects to the host's port h->dst_port from its h->src_port. */
static void guest_connect(struct vsock *v, const struct hdr *h)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (!guest_target(v, h->dst_port, a.sun_path, sizeof(a.sun_path))) {
		v->stats.refused++;
		queue_rst(v, h);
		return;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct conn *c = fd >= 0 ? new_conn(v, fd) : NULL;
	/* A server whose backlog is full answers EAGAIN: refused, as a full TCP server would. */
	if (!c || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (c)
			free_conn(c);
		else if (fd >= 0)
			close(fd);
		v->stats.refused++;
		queue_rst(v, h);
		return;
	}
	c->state = OPEN;
	c->guest_port = h->src_port;
	c->host_port = h->dst_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->want_response = true;
	v->stats.conns++;
}

/* A packet on connection c (h's ports are its own). */
static void on_packet(struct vsock *v, struct conn *c, const struct hdr *h, const struct iovec *iov,
		      unsigned int n)
{
	if (c->state == RESETTING)
		return; /* a reset is on its way to the guest */
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	switch (h->op) {
	case OP_REQUEST: /* one already open: both ends start over */
		reset_conn(c);
		break;
	case OP_RESPONSE:
		if (c->state != REQUESTED) {
			reset_conn(c);
			break;
		}
		c->state = OPEN;
		v->stats.conns++;
		if (c->uds)
			c->ok_len = (size_t)snprintf(c->ok, sizeof(c->ok), "OK %u\n", c->host_port);
		flush_out(v, c);
		break;
	case OP_RST:
		free_conn(c);
		break;
	case OP_SHUTDOWN:
		c->guest_shut |= h->flags & (SHUT_RCV_F | SHUT_SEND_F);
		if (c->state == OPEN)
			flush_out(v, c); /* the host sees it once what waits is written */
		else
			reset_conn(c);
		break;
	case OP_RW:
		if (c->state != OPEN || (c->guest_shut & SHUT_SEND_F)) {
			reset_conn(c);
			break;
		}
		if (h->len > VSOCK_BUF - (c->rx_cnt - c->fwd_cnt)) {
			v->stats.overruns++;
			reset_conn(c);
			break;
		}
		c->rx_cnt += h->len;
		if (h->len)
			to_host(v, c, iov, n, h->len);
		break;
	case OP_CREDIT_UPDATE:
		break;
	case OP_CREDIT_REQUEST:
		c->want_credit = true;
		break;
	default:
		v->stats.bad++;
	}
}

int vsock_tx(struct vsock *v, const struct iovec *iov, unsigned int n, size_t len)
{
	uint8_t b[VSOCK_HDR_LEN];
	struct hdr h;
	if (len < VSOCK_HDR_LEN || n > IOV_MAX_PARTS ||
	    iov_to_buf(iov, n, 0, b, sizeof(b)) != sizeof(b)) {
		v->stats.bad++;
		return -1;
	}
	parse_hdr(b, &h);
	if (h.len > len - VSOCK_HDR_LEN || h.len > VSOCK_MAX_PKT) {
		v->stats.bad++;
		return -1;
	}
	/* Another CID is another machine, or a lie: no answer at all. */
	if (h.src_cid != v->guest_cid || h.dst_cid != VSOCK_HOST_CID) {
		v->stats.bad++;
		return 0;
	}
	struct conn *c = find(v, h.src_port, h.dst_port);
	if (h.type != TYPE_STREAM) {
		if (c)
			reset_conn(c);
		else
			queue_rst(v, &h);
		return 0;
	}
	if (c)
		on_packet(v, c, &h, iov, n);
	else if (h.op == OP_REQUEST)
		guest_connect(v, &h);
	else if (h.op >= OP_REQUEST && h.op <= OP_CREDIT_REQUEST)
		queue_rst(v, &h);
	else
		v->stats.bad++;
	return 0;
}

static bool conn_has_rx(const struct conn *c)
{
	switch (c->state) {
	case RESETTING:
		return true;
	case REQUESTED:
		return c->want_request;
	case OPEN:
		return c->want_response || c->want_shutdown || c->want_credit ||
		       (c->readable && !c->host_eof && !(c->guest_shut & SHUT_RCV_F) &&
			guest_credit(c));
	default:
		return false;
	}
}

bool vsock_rx_pending(const struct vsock *v)
{
	if (v->rst_len)
		return true;
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++)
		if (conn_has_rx(&v->conns[i]))
			return true;
	return false;
}

/* A control packet of c's into the buffer. */
static size_t control(struct vsock *v, struct conn *c, const struct iovec *iov, unsigned int n,
		      uint16_t op, uint32_t flags)
{
	put_hdr(v, iov, n, c->host_port, c->guest_port, op, flags, 0, c->fwd_cnt);
	c->credit_sent = c->fwd_cnt;
	return VSOCK_HDR_LEN;
}

static unsigned int conn_rx_data(struct vsock *v, struct conn *c, const struct vsock_rxbuf *bufs,
				 unsigned int nbufs, size_t *written);

/* c's next packet for the guest into the buffer, or 0. */
static size_t conn_rx(struct vsock *v, struct conn *c, const struct iovec *iov, unsigned int n,
		      size_t len)
{
	if (c->state == RESETTING) {
		control(v, c, iov, n, OP_RST, 0);
		v->stats.resets_sent++;
		free_conn(c);
		return VSOCK_HDR_LEN;
	}
	if (c->state == REQUESTED && c->want_request) {
		c->want_request = false;
		return control(v, c, iov, n, OP_REQUEST, 0);
	}
	if (c->state != OPEN)
		return 0;
	if (c->want_response) {
		c->want_response = false;
		return control(v, c, iov, n, OP_RESPONSE, 0);
	}
	if (c->want_shutdown) {
		uint32_t f = c->want_shutdown;
		c->want_shutdown = 0;
		return control(v, c, iov, n, OP_SHUTDOWN, f);
	}
	if (c->want_credit) {
		c->want_credit = false;
		return control(v, c, iov, n, OP_CREDIT_UPDATE, 0);
	}
	struct vsock_rxbuf one = {iov, n, len};
	size_t w = 0;
	return conn_rx_data(v, c, &one, 1, &w) ? w : 0;
}

/*
 * c's data for the guest: one readv of the host socket into the payload areas of bufs, in order,
 * as far as the guest's credit and VSOCK_MAX_PKT each allow; then each buffer that got some is
 * an RW packet of its own (written[i]: its size). Returns how many; at the end of the host's
 * data a SHUTDOWN in bufs[0] (1); when nothing is to read, 0.
 */
static unsigned int conn_rx_data(struct vsock *v, struct conn *c, const struct vsock_rxbuf *bufs,
				 unsigned int nbufs, size_t *written)
{
	if (!c->readable || c->host_eof || (c->guest_shut & SHUT_RCV_F))
		return 0;
	size_t credit = guest_credit(c), total = 0, rooms[VSOCK_RX_BATCH];
	unsigned int k = 0, used = 0;
	for (unsigned int i = 0; i < nbufs && i < VSOCK_RX_BATCH && total < credit; i++) {
		const struct vsock_rxbuf *b = &bufs[i];
		if (b->len <= VSOCK_HDR_LEN || b->n > IOV_MAX_PARTS - k)
			break;
		size_t room = b->len - VSOCK_HDR_LEN;
		if (room > VSOCK_MAX_PKT)
			room = VSOCK_MAX_PKT;
		if (room > credit - total)
			room = credit - total;
		k += iov_slice(b->iov, b->n, VSOCK_HDR_LEN, room, v->part + k);
		rooms[i] = room;
		total += room;
		used = i + 1;
	}
	if (!used)
		return 0;
	ssize_t r;
	do
		r = readv(c->fd, v->part, (int)k);
	while (r < 0 && errno == EINTR);
	if (r > 0) {
		size_t left = (size_t)r;
		unsigned int filled = 0;
		for (; filled < used && left; filled++) {
			size_t got = left < rooms[filled] ? left : rooms[filled];
			put_hdr(v, bufs[filled].iov, bufs[filled].n, c->host_port, c->guest_port,
				OP_RW, 0, (uint32_t)got, c->fwd_cnt);
			written[filled] = VSOCK_HDR_LEN + got;
			left -= got;
		}
		c->credit_sent = c->fwd_cnt;
		c->tx_cnt += (uint32_t)r;
		v->stats.to_guest += (uint64_t)r;
		return filled;
	}
	const struct vsock_rxbuf *b = &bufs[0];
	if (r == 0) { /* the host will send no more */
		c->host_eof = true;
		written[0] = control(v, c, b->iov, b->n, OP_SHUTDOWN, SHUT_SEND_F);
		return 1;
	}
	if (errno == EAGAIN) {
		c->readable = false;
		return 0;
	}
	reset_conn(c);
	written[0] = conn_rx(v, c, b->iov, b->n, b->len);
	return written[0] ? 1 : 0;
}

unsigned int vsock_rx_batch(struct vsock *v, const struct vsock_rxbuf *bufs, unsigned int nbufs,
			    size_t *written)
{
	/* The first buffer takes any packet; one shorter than a header takes none. */
	if (!nbufs || bufs[0].n > IOV_MAX_PARTS || bufs[0].len < VSOCK_HDR_LEN)
		return 0;
	const struct vsock_rxbuf *b = &bufs[0];
	if (v->rst_len) {
		unsigned int i = v->rst_head;
		v->rst_head = (v->rst_head + 1) % RSTS_MAX;
		v->rst_len--;
		put_hdr(v, b->iov, b->n, v->rsts[i].host_port, v->rsts[i].guest_port, OP_RST, 0, 0,
			0);
		v->stats.resets_sent++;
		written[0] = VSOCK_HDR_LEN;
		return 1;
	}
	/* Control packets one buffer each (conn_rx); a connection's data as many as it fills. */
	for (unsigned int k = 0; k < VSOCK_MAX_CONNS; k++) {
		unsigned int i = (v->next + k) % VSOCK_MAX_CONNS;
		struct conn *c = &v->conns[i];
		if (!conn_has_rx(c))
			continue;
		unsigned int got;
		if (c->state != OPEN || c->want_response || c->want_shutdown || c->want_credit)
			got = (written[0] = conn_rx(v, c, b->iov, b->n, b->len)) != 0;
		else
			got = conn_rx_data(v, c, bufs, nbufs, written);
		if (got) {
			v->next = i + 1;
			return got;
		}
	}
	return 0;
}

size_t vsock_rx(struct vsock *v, const struct iovec *iov, unsigned int n, size_t len)
{
	struct vsock_rxbuf b = {iov, n, len};
	size_t w = 0;
	return vsock_rx_batch(v, &b, 1, &w) ? w : 0;
}

/* A free host port for a connection the host starts towards guest_port. */
static uint32_t host_port_for(struct vsock *v, uint32_t guest_port)
{
	for (;;) {
		uint32_t p = v->next_host_port++;
		if (v->next_host_port < HOST_PORT_FIRST)
			v->next_host_port = HOST_PORT_FIRST;
		if (p >= HOST_PORT_FIRST && !find(v, guest_port, p))
			return p;
	}
}

static void on_accept(struct vsock *v, struct listener *l)
{
	for (int i = 0; i < ACCEPTS_PER_PASS; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct conn *c = new_conn(v, fd);
		if (!c) { /* full: the client sees its connection closed */
			close(fd);
			v->stats.refused++;
			continue;
		}
		c->deadline = now_ms() + WAIT_MS;
		c->uds = l->uds;
		if (l->uds) {
			c->state = HANDSHAKE;
			continue;
		}
		c->state = REQUESTED;
		c->guest_port = l->port;
		c->host_port = host_port_for(v, l->port);
		c->want_request = true;
	}
}

/* A UDS client's "CONNECT PORT\n", a byte at a time (what follows it is the guest's). */
static void on_handshake(struct vsock *v, struct conn *c)
{
	for (;;) {
		char ch;
		ssize_t r = recv(c->fd, &ch, 1, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0 || c->line_len == HANDSHAKE_MAX - 1) {
			free_conn(c);
			return;
		}
		if (ch != '\n') {
			c->line[c->line_len++] = ch;
			continue;
		}
		c->line[c->line_len] = 0;
		char *end;
		errno = 0;
		unsigned long port = strncmp(c->line, "CONNECT ", 8) == 0 && c->line[8] >= '0' &&
						     c->line[8] <= '9'
					     ? strtoul(c->line + 8, &end, 10)
					     : 0;
		if (!port || errno || *end || port > UINT32_MAX) {
			free_conn(c);
			return;
		}
		c->state = REQUESTED;
		c->guest_port = (uint32_t)port;
		c->host_port = host_port_for(v, c->guest_port);
		c->want_request = true;
		c->deadline = now_ms() + WAIT_MS;
		return;
	}
}

unsigned int vsock_max_fds(const struct vsock *v)
{
	return v->nr_ls + VSOCK_MAX_CONNS;
}

unsigned int vsock_poll_fill(struct vsock *v, struct pollfd *fds, unsigned int max, int *timeout)
{
	unsigned int n = 0;
	for (unsigned int i = 0; i < v->nr_ls && n < max; i++) {
		v->polled[n] = i;
		fds[n++] = (struct pollfd){v->ls[i].fd, POLLIN, 0};
	}
	int64_t now = now_ms();
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS && n < max; i++) {
		struct conn *c = &v->conns[i];
		short ev = 0;
		if (c->state == HANDSHAKE)
			ev = POLLIN;
		else if (c->state == OPEN) {
			if (!c->readable && !c->host_eof && !(c->guest_shut & SHUT_RCV_F) &&
			    guest_credit(c))
				ev |= POLLIN;
			if (out_waiting(c))
				ev |= POLLOUT;
		}
		if ((c->state == HANDSHAKE || c->state == REQUESTED) && timeout) {
			int64_t left = c->deadline > now ? c->deadline - now : 0;
			if (*timeout < 0 || left < *timeout)
				*timeout = (int)left;
		}
		if (!ev)
			continue;
		v->polled[n] = VSOCK_MAX_PORTS + 1 + i;
		fds[n++] = (struct pollfd){c->fd, ev, 0};
	}
	return n;
}

void vsock_poll_done(struct vsock *v, const struct pollfd *fds, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		if (!fds[i].revents)
			continue;
		if (v->polled[i] <= VSOCK_MAX_PORTS) {
			on_accept(v, &v->ls[v->polled[i]]);
			continue;
		}
		struct conn *c = &v->conns[v->polled[i] - VSOCK_MAX_PORTS - 1];
		if (c->fd != fds[i].fd)
			continue; /* closed and reused since */
		if (c->state == HANDSHAKE) {
			on_handshake(v, c);
			continue;
		}
		if (c->state != OPEN)
			continue;
		if (fds[i].revents & (POLLOUT | POLLERR))
			flush_out(v, c);
		if (c->state == OPEN && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
			c->readable = true;
	}
	/* Handshakes and guests that never answer. */
	int64_t now = now_ms();
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct conn *c = &v->conns[i];
		if (c->state == HANDSHAKE && now >= c->deadline)
			free_conn(c);
		else if (c->state == REQUESTED && now >= c->deadline)
			reset_conn(c);
	}
}

const struct vsock_stats *vsock_stats(const struct vsock *v)
{
	return &v->stats;
}

/* Listens on path: a socket file left there is replaced, anything else is an error. */
static int listen_at(struct listener *l, const char *path, char *msg, size_t msg_size)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(a.sun_path)) {
		snprintf(msg, msg_size, "%s: longer than a unix socket path (%zu bytes)", path,
			 sizeof(a.sun_path) - 1);
		return -1;
	}
	memcpy(a.sun_path, path, strlen(path) + 1);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(msg, msg_size, "%s: exists and is not a socket", path);
			return -1;
		}
		/* A socket someone still listens on is theirs: only a stale one is replaced. */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int live = probe >= 0 && (connect(probe, (struct sockaddr *)&a, sizeof(a)) == 0 ||
					  errno == EAGAIN);
		if (probe >= 0)
			close(probe);
		if (live) {
			snprintf(msg, msg_size, "%s: in use (a server listens there)", path);
			return -1;
		}
		unlink(path);
	}
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	/*
	 * Only ec1's user may connect: on Linux the socket file takes the socket's own mode at
	 * bind, so it is set first (a chmod of the path afterwards could be led by a symlink
	 * swapped in meanwhile).
	 */
	if (l->fd < 0 || fchmod(l->fd, 0600) < 0 ||
	    bind(l->fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l->fd, 64) < 0) {
		snprintf(msg, msg_size, "%s: %s", path, strerror(errno));
		if (l->fd >= 0)
			close(l->fd);
		l->fd = -1;
		return -1;
	}
	memcpy(l->path, a.sun_path, sizeof(l->path));
	return 0;
}

struct vsock *vsock_new(const struct vsock_config *cfg, char *msg, size_t msg_size)
{
	fd_budget_init(); /* the guest's connections hold descriptors: the budget bounds them */
	struct vsock *v = calloc(1, sizeof(*v));
	if (!v || cfg->nr_ports > VSOCK_MAX_PORTS) {
		snprintf(msg, msg_size, v ? "more than %d ports" : "out of memory",
			 VSOCK_MAX_PORTS);
		free(v);
		return NULL;
	}
	v->guest_cid = cfg->guest_cid;
	v->next_host_port = HOST_PORT_FIRST;
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++)
		v->conns[i].fd = -1;
	for (unsigned int i = 0; i < cfg->nr_ports; i++) {
		v->ports[i] = cfg->ports[i];
		v->ports[i].path = strdup(cfg->ports[i].path);
		v->nr_ports++;
		if (!v->ports[i].path) {
			snprintf(msg, msg_size, "out of memory");
			vsock_free(v);
			return NULL;
		}
		if (!cfg->ports[i].listen)
			continue;
		struct listener *l = &v->ls[v->nr_ls];
		l->port = cfg->ports[i].port;
		if (listen_at(l, cfg->ports[i].path, msg, msg_size) < 0) {
			vsock_free(v);
			return NULL;
		}
		v->nr_ls++;
	}
	if (cfg->uds) {
		struct listener *l = &v->ls[v->nr_ls];
		l->uds = true;
		if (!(v->uds = strdup(cfg->uds)) || listen_at(l, cfg->uds, msg, msg_size) < 0) {
			if (!v->uds)
				snprintf(msg, msg_size, "out of memory");
			vsock_free(v);
			return NULL;
		}
		v->nr_ls++;
	}
	return v;
}

void vsock_reset(struct vsock *v)
{
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct conn *c = &v->conns[i];
		if (c->state != FREE && c->state != HANDSHAKE) {
			free_conn(c);
			v->stats.closed_by_reset++;
		}
	}
	v->rst_head = v->rst_len = 0;
}

void vsock_free(struct vsock *v)
{
	if (!v)
		return;
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++)
		if (v->conns[i].state != FREE)
			free_conn(&v->conns[i]);
	for (unsigned int i = 0; i < v->nr_ls; i++) {
		close(v->ls[i].fd);
		unlink(v->ls[i].path);
	}
	for (unsigned int i = 0; i < v->nr_ports; i++)
		free((char *)v->ports[i].path);
	free(v->uds);
	free(v);
}
