/*
 * virtio-net frames (src/vmm/net/frame.c): a guest's transmit chains checked (truncated,
 * oversized, writable parts, headers asking for offloads: dropped and counted), frames written
 * into receive chains, and stream framing parsed from reads cut anywhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/vmm/net/backend.h"
#include "../../src/vmm/net/frame.h"
#include "check.h"

static uint8_t mem[3 * 65536], out[NET_FRAME_MAX];
static struct virtq_chain chain;

/* A chain of device-readable parts of the given sizes over mem (header first). */
static void tx_chain(const size_t *sizes, unsigned int n)
{
	memset(&chain, 0, sizeof(chain));
	size_t off = 0;
	for (unsigned int i = 0; i < n; i++) {
		chain.out[i] = (struct iovec){mem + off, sizes[i]};
		off += sizes[i];
		chain.out_len += sizes[i];
	}
	chain.n_out = n;
}

static void fill(size_t n)
{
	for (size_t i = 0; i < n; i++)
		mem[i] = (uint8_t)(i * 7 + 1);
	memset(mem, 0, NET_HDR_LEN);
}

static void tx_frames_checked(void)
{
	struct net_stats s = {0};
	fill(sizeof(mem));
	/* Header and a 60-byte frame in three parts, cut inside the header and the frame. */
	size_t parts[] = {5, 27, 40};
	tx_chain(parts, 3);
	CHECK(net_tx_frame(&chain, out, NET_MAX_FRAME, &s) == 60);
	CHECK(memcmp(out, mem + NET_HDR_LEN, 60) == 0);
	CHECK(s.tx_frames == 1 && s.tx_bytes == 60 && s.tx_dropped == 0);
	/* The largest frame passes, one byte more does not. */
	size_t max[] = {NET_HDR_LEN + NET_MAX_FRAME};
	tx_chain(max, 1);
	CHECK(net_tx_frame(&chain, out, NET_MAX_FRAME, &s) == NET_MAX_FRAME);
	max[0]++;
	tx_chain(max, 1);
	CHECK(net_tx_frame(&chain, out, NET_MAX_FRAME, &s) == -1);
	/* No Ethernet header, no header at all. */
	size_t small[] = {NET_HDR_LEN + NET_ETH_HDR - 1};
	tx_chain(small, 1);
	CHECK(net_tx_frame(&chain, out, NET_MAX_FRAME, &s) == -1);
	small[0] = 4;
	tx_chain(small, 1);
	CHECK(net_tx_frame(&chain, out, NET_MAX_FRAME, &s) == -1);
	/* A device-writable part. */
	size_t ok[] = {NET_HDR_LEN + 60};
	tx_chain(ok, 1);
	chain.in[0] = (struct iovec){mem + 65536, 16};
	chain.n_in = 1;
	chain.in_len = 16;
	CHECK(net_tx_frame(&chain, out, NET_MAX_FRAME, &s) == -1);
	/* Checksum and GSO asked for, never offered. */
	tx_chain(ok, 1);
	mem[0] = 1; /* VIRTIO_NET_HDR_F_NEEDS_CSUM */
	CHECK(net_tx_frame(&chain, out, NET_MAX_FRAME, &s) == -1);
	mem[0] = 0;
	mem[1] = 1; /* VIRTIO_NET_HDR_GSO_TCPV4 */
	CHECK(net_tx_frame(&chain, out, NET_MAX_FRAME, &s) == -1);
	mem[1] = 0;
	CHECK(net_tx_frame(&chain, out, NET_MAX_FRAME, &s) == 60);
	CHECK(s.tx_frames == 3 && s.tx_dropped == 6);
}

/* The offload path (TAP): checksum and TSO headers pass when well-formed, nothing else. */
static void tx_offload_headers_checked(void)
{
	struct net_stats s = {0};
	uint8_t hdr[NET_HDR_LEN];
	const unsigned int both = NET_GSO_OK_TCPV4 | NET_GSO_OK_TCPV6;
	fill(sizeof(mem));
	size_t ok[] = {NET_HDR_LEN + 60};
#define HDR(flags, gso, size, start, off)                                                \
	(tx_chain(ok, 1), mem[0] = (flags), mem[1] = (gso), mem[4] = (size), mem[5] = 0, \
	 mem[6] = (start), mem[7] = 0, mem[8] = (off), mem[9] = 0)
	HDR(0, 0, 0, 0, 0);
	CHECK(net_tx_frame_offload(&chain, out, NET_MAX_FRAME, both, hdr, &s) == 60);
	HDR(NET_HDR_F_NEEDS_CSUM, 0, 0, 34, 16); /* TCP's checksum, at 34 + 16 */
	CHECK(net_tx_frame_offload(&chain, out, NET_MAX_FRAME, both, hdr, &s) == 60);
	CHECK(hdr[0] == 1 && hdr[6] == 34 && hdr[8] == 16 && hdr[10] == 0 && hdr[11] == 0);
	HDR(NET_HDR_F_NEEDS_CSUM, 0, 0, 34, 25); /* 34 + 25 + 2 > 60: past the frame */
	CHECK(net_tx_frame_offload(&chain, out, NET_MAX_FRAME, both, hdr, &s) == -1);
	HDR(NET_HDR_F_NEEDS_CSUM, 0, 0, 10, 2); /* inside the Ethernet header */
	CHECK(net_tx_frame_offload(&chain, out, NET_MAX_FRAME, both, hdr, &s) == -1);
	HDR(NET_HDR_F_NEEDS_CSUM | 2, 0, 0, 34, 16); /* DATA_VALID: a receive flag */
	CHECK(net_tx_frame_offload(&chain, out, NET_MAX_FRAME, both, hdr, &s) == -1);
	HDR(NET_HDR_F_NEEDS_CSUM, NET_HDR_GSO_TCPV4, 200, 34, 16);
	CHECK(net_tx_frame_offload(&chain, out, NET_MAX_FRAME, both, hdr, &s) == 60);
	CHECK(net_tx_frame_offload(&chain, out, NET_MAX_FRAME, NET_GSO_OK_TCPV6, hdr, &s) == -1);
	HDR(0, NET_HDR_GSO_TCPV4, 200, 34, 16); /* GSO without a checksum to fill */
	CHECK(net_tx_frame_offload(&chain, out, NET_MAX_FRAME, both, hdr, &s) == -1);
	HDR(NET_HDR_F_NEEDS_CSUM, NET_HDR_GSO_TCPV4, 0, 34, 16); /* no segment size */
	CHECK(net_tx_frame_offload(&chain, out, NET_MAX_FRAME, both, hdr, &s) == -1);
	HDR(NET_HDR_F_NEEDS_CSUM, 3, 200, 34, 16); /* UDP (UFO): not offered */
	CHECK(net_tx_frame_offload(&chain, out, NET_MAX_FRAME, both, hdr, &s) == -1);
	HDR(NET_HDR_F_NEEDS_CSUM, NET_HDR_GSO_TCPV4 | 0x80, 200, 34, 16); /* ECN: not offered */
	CHECK(net_tx_frame_offload(&chain, out, NET_MAX_FRAME, both, hdr, &s) == -1);
	/* A TSO frame may pass the MTU; a plain one may not. */
	size_t big[] = {NET_HDR_LEN + 9000};
	tx_chain(big, 1);
	mem[0] = NET_HDR_F_NEEDS_CSUM, mem[1] = NET_HDR_GSO_TCPV4, mem[4] = 0xa8, mem[5] = 5;
	mem[6] = 34, mem[7] = 0, mem[8] = 16, mem[9] = 0;
	CHECK(net_tx_frame_offload(&chain, out, NET_MAX_FRAME, both, hdr, &s) == 9000);
	mem[1] = 0;
	CHECK(net_tx_frame_offload(&chain, out, NET_MAX_FRAME, both, hdr, &s) == -1);
#undef HDR
	CHECK(s.tx_frames == 4 && s.tx_gso == 2 && s.tx_csum == 3 && s.tx_dropped == 9);
}

static void rx_frames_written(void)
{
	struct net_stats s = {0};
	uint8_t frame[100];
	for (size_t i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)(i + 3);
	memset(mem, 0xee, sizeof(mem));
	memset(&chain, 0, sizeof(chain));
	chain.in[0] = (struct iovec){mem, 7};
	chain.in[1] = (struct iovec){mem + 100, 200};
	chain.n_in = 2;
	chain.in_len = 207;
	CHECK(net_rx_frame(&chain, NULL, frame, sizeof(frame), &s) == NET_HDR_LEN + 100);
	uint8_t hdr[NET_HDR_LEN];
	memcpy(hdr, mem, 7);
	memcpy(hdr + 7, mem + 100, 5);
	static const uint8_t want[NET_HDR_LEN] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0};
	CHECK(memcmp(hdr, want, NET_HDR_LEN) == 0);
	CHECK(memcmp(mem + 105, frame, sizeof(frame)) == 0);
	CHECK(mem[205] == 0xee);
	/* Too small a chain, too short or too long a frame: dropped, nothing written. */
	chain.in_len = NET_HDR_LEN + 99;
	chain.in[1].iov_len = NET_HDR_LEN + 99 - 7;
	memset(mem, 0xee, sizeof(mem));
	CHECK(net_rx_frame(&chain, NULL, frame, sizeof(frame), &s) == -1);
	CHECK(mem[0] == 0xee);
	CHECK(net_rx_frame(&chain, NULL, frame, NET_ETH_HDR - 1, &s) == -1);
	CHECK(net_rx_frame(&chain, NULL, mem, NET_FRAME_MAX + 1, &s) == -1);
	CHECK(s.rx_frames == 1 && s.rx_bytes == 100 && s.rx_dropped == 3);
}

/*
 * Mergeable receive buffers: a 9,000-byte frame over chains of 4,096 bytes (the first cut inside
 * the header), read back whole with num_buffers; a first chain smaller than the header, and a
 * chain with readable parts, take nothing.
 */
static void rx_frames_merged(void)
{
	static uint8_t frame[9000], back[NET_HDR_LEN + 9000];
	for (size_t i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)(i * 13 + 5);
	memset(mem, 0xee, sizeof(mem));
	struct virtq_chain first = {0};
	first.in[0] = (struct iovec){mem, 5};
	first.in[1] = (struct iovec){mem + 5, 4091};
	first.n_in = 2;
	first.in_len = 4096;
	size_t pos = net_rx_part(&first, NULL, frame, sizeof(frame), 0), chains = 1;
	CHECK(pos == 4096);
	memcpy(back, mem, 4096);
	while (pos < NET_HDR_LEN + sizeof(frame)) {
		memset(&chain, 0, sizeof(chain));
		chain.in[0] = (struct iovec){mem + 8192 * chains, 4096};
		chain.n_in = 1;
		chain.in_len = 4096;
		size_t k = net_rx_part(&chain, NULL, frame, sizeof(frame), pos);
		CHECK(k > 0 && k <= 4096);
		if (!k)
			return;
		memcpy(back + pos, mem + 8192 * chains, k);
		pos += k;
		chains++;
	}
	CHECK(pos == NET_HDR_LEN + sizeof(frame) && chains == 3);
	CHECK(mem[8192 * 2 + (pos - 8192)] == 0xee); /* nothing past the frame's end */
	net_rx_buffers(&first, (uint16_t)chains);
	memcpy(back, mem, 5);
	memcpy(back + 5, mem + 5, NET_HDR_LEN - 5);
	static const uint8_t want[NET_HDR_LEN] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0};
	CHECK(memcmp(back, want, NET_HDR_LEN) == 0);
	CHECK(memcmp(back + NET_HDR_LEN, frame, sizeof(frame)) == 0);
	/* The run's end: nothing more to write. */
	CHECK(net_rx_part(&chain, NULL, frame, sizeof(frame), NET_HDR_LEN + sizeof(frame)) == 0);
	first.in_len = NET_HDR_LEN - 1;
	first.in[1].iov_len = NET_HDR_LEN - 1 - 5;
	CHECK(net_rx_part(&first, NULL, frame, sizeof(frame), 0) == 0);
	chain.out[0] = (struct iovec){mem, 10};
	chain.n_out = 1;
	CHECK(net_rx_part(&chain, NULL, frame, sizeof(frame), 100) == 0);
}

/*
 * Receive offloads (a TAP's headers): each flag and GSO type only as the driver took it; a
 * checksum place inside the frame; both checksum flags together, ECN, UDP, a GSO frame without a
 * segment size, a whole frame past max: dropped. A header that passes reaches the guest as it
 * was, num_buffers set by the device.
 */
static void rx_offload_headers_checked(void)
{
	struct net_stats s = {0};
	const unsigned int all = NET_RX_OK_CSUM | NET_RX_OK_TSO4 | NET_RX_OK_TSO6;
	uint8_t h[NET_HDR_LEN];
#define HDR(fl, gso, gsz, cs, co)                                                   \
	(memset(h, 0, sizeof(h)), h[0] = (fl), h[1] = (gso), h[4] = (uint8_t)(gsz), \
	 h[5] = (uint8_t)((gsz) >> 8), h[6] = (cs), h[8] = (co), h[10] = 7, h)
	CHECK(net_rx_hdr_check(HDR(0, 0, 0, 0, 0), 1514, 1518, 0, &s) == 0);
	CHECK(h[10] == 0);
	CHECK(net_rx_hdr_check(HDR(0, 0, 0, 0, 0), 1519, 1518, all, &s) == -1);
	CHECK(net_rx_hdr_check(HDR(NET_HDR_F_NEEDS_CSUM, 0, 0, 34, 16), 100, 1518, all, &s) == 0);
	CHECK(net_rx_hdr_check(HDR(NET_HDR_F_NEEDS_CSUM, 0, 0, 34, 16), 100, 1518, 0, &s) == -1);
	CHECK(net_rx_hdr_check(HDR(NET_HDR_F_NEEDS_CSUM, 0, 0, 34, 16), 51, 1518, all, &s) == -1);
	CHECK(net_rx_hdr_check(HDR(NET_HDR_F_NEEDS_CSUM, 0, 0, 10, 16), 100, 1518, all, &s) == -1);
	CHECK(net_rx_hdr_check(HDR(NET_HDR_F_DATA_VALID, 0, 0, 0, 0), 100, 1518, all, &s) == 0);
	CHECK(net_rx_hdr_check(HDR(NET_HDR_F_DATA_VALID, 0, 0, 0, 0), 100, 1518, 0, &s) == -1);
	CHECK(net_rx_hdr_check(HDR(3, 0, 0, 34, 16), 100, 1518, all, &s) == -1);
	CHECK(net_rx_hdr_check(HDR(4, 0, 0, 0, 0), 100, 1518, all, &s) == -1);
	/* 64 KiB TCP segments, as taken. */
	CHECK(net_rx_hdr_check(HDR(NET_HDR_F_NEEDS_CSUM, NET_HDR_GSO_TCPV4, 1448, 34, 16), 65000,
			       1518, all, &s) == 0);
	CHECK(net_rx_hdr_check(HDR(NET_HDR_F_DATA_VALID, NET_HDR_GSO_TCPV6, 1428, 0, 0), 65000,
			       1518, all, &s) == 0);
	CHECK(net_rx_hdr_check(HDR(NET_HDR_F_NEEDS_CSUM, NET_HDR_GSO_TCPV4, 1448, 34, 16), 65000,
			       1518, NET_RX_OK_CSUM | NET_RX_OK_TSO6, &s) == -1);
	CHECK(net_rx_hdr_check(HDR(NET_HDR_F_NEEDS_CSUM, NET_HDR_GSO_TCPV6, 1428, 54, 16), 65000,
			       1518, NET_RX_OK_CSUM | NET_RX_OK_TSO4, &s) == -1);
	CHECK(net_rx_hdr_check(HDR(NET_HDR_F_NEEDS_CSUM, NET_HDR_GSO_TCPV4, 0, 34, 16), 65000, 1518,
			       all, &s) == -1);
	CHECK(net_rx_hdr_check(HDR(NET_HDR_F_NEEDS_CSUM, NET_HDR_GSO_TCPV4 | 0x80, 1448, 34, 16),
			       65000, 1518, all, &s) == -1);
	CHECK(net_rx_hdr_check(HDR(NET_HDR_F_NEEDS_CSUM, 3 /* UDP */, 1448, 34, 6), 65000, 1518,
			       all, &s) == -1);
	CHECK(net_rx_hdr_check(HDR(0, 0, 0, 0, 0), NET_FRAME_MAX + 1, NET_FRAME_MAX, all, &s) ==
	      -1);
	CHECK(s.rx_gso == 2 && s.rx_csum == 2 && s.rx_dropped == 13);
	/* Through a mergeable buffer: the header as it was, num_buffers from net_rx_buffers. */
	uint8_t frame[64] = {1, 2, 3};
	HDR(NET_HDR_F_NEEDS_CSUM, NET_HDR_GSO_TCPV4, 1448, 34, 16);
	memset(mem, 0xee, sizeof(mem));
	memset(&chain, 0, sizeof(chain));
	chain.in[0] = (struct iovec){mem, 4096};
	chain.n_in = 1;
	chain.in_len = 4096;
	CHECK(net_rx_part(&chain, h, frame, sizeof(frame), 0) == NET_HDR_LEN + sizeof(frame));
	net_rx_buffers(&chain, 1);
	h[10] = 1;
	CHECK(memcmp(mem, h, NET_HDR_LEN) == 0 && mem[NET_HDR_LEN] == 1);
	/* And whole into one chain. */
	h[10] = 9;
	CHECK(net_rx_frame(&chain, h, frame, sizeof(frame), &s) == NET_HDR_LEN + sizeof(frame));
	h[10] = 1;
	CHECK(memcmp(mem, h, NET_HDR_LEN) == 0);
#undef HDR
}

static size_t got_n, got_len[64];
static uint8_t got_first[64];

static void deliver(void *ctx, const uint8_t *frame, size_t len)
{
	(void)ctx;
	if (got_n < 64) {
		got_len[got_n] = len;
		got_first[got_n] = frame[0];
	}
	got_n++;
}

/* Appends a frame of len bytes (first byte tag) in stream framing; returns the new end. */
static size_t put_frame(uint8_t *p, size_t at, size_t len, uint8_t tag)
{
	net_stream_header(p + at, len);
	memset(p + at + 4, tag, len);
	return at + 4 + len;
}

/* Feeds data to a fresh stream in pieces of step bytes. */
static int feed(struct net_stream *st, const uint8_t *data, size_t n, size_t step)
{
	memset(st, 0, sizeof(*st));
	got_n = 0;
	for (size_t off = 0; off < n; off += step) {
		size_t k = n - off < step ? n - off : step;
		memcpy(st->buf + st->have, data + off, k);
		int err = net_stream_received(st, k, deliver, NULL);
		if (err)
			return err;
	}
	return 0;
}

static void stream_framing(void)
{
	static struct net_stream st;
	static uint8_t data[16384];
	size_t n = put_frame(data, 0, 60, 'a');
	n = put_frame(data, n, NET_MAX_FRAME, 'b');
	n = put_frame(data, n, 3000, 'x'); /* well framed, too long for the guest */
	n = put_frame(data, n, 14, 'c');
	n = put_frame(data, n, 5, 'y'); /* too short to be a frame */
	n = put_frame(data, n, 1000, 'd');
	static const size_t steps[] = {1, 3, 4, 5, 7, 1000, 1522, 16384};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		CHECK(feed(&st, data, n, steps[i]) == 0);
		CHECK(got_n == 4);
		CHECK(got_len[0] == 60 && got_first[0] == 'a');
		CHECK(got_len[1] == NET_MAX_FRAME && got_first[1] == 'b');
		CHECK(got_len[2] == 14 && got_first[2] == 'c');
		CHECK(got_len[3] == 1000 && got_first[3] == 'd');
		CHECK(st.dropped == 2 && st.have == 0 && st.skip == 0);
	}
	/* A partial frame stays for the next read. */
	CHECK(feed(&st, data, 30, 30) == 0 && got_n == 0 && st.have == 30);
	/* A length of 0 or past 65535: the stream is out of step. */
	uint8_t bad[8] = {0, 0, 0, 0};
	CHECK(feed(&st, bad, 4, 4) == -EPROTO);
	net_stream_header(bad, 65536);
	CHECK(feed(&st, bad, 4, 4) == -EPROTO);
	net_stream_header(bad, 65535);
	CHECK(feed(&st, bad, 4, 4) == 0 && st.skip == 65535 && st.dropped == 1);
	/* More bytes than the room it was given. */
	memset(&st, 0, sizeof(st));
	CHECK(net_stream_received(&st, NET_STREAM_BUF + 1, deliver, NULL) == -EPROTO);
}

/* Polls the backend once (without waiting) and lets it do its I/O. */
static int pump(struct net_backend *b, bool want_rx)
{
	struct pollfd fds[8];
	int timeout = -1;
	b->deliver = deliver;
	unsigned int n =
		b->ops->poll_fill(b, fds, b->max_fds < 8 ? b->max_fds : 8, want_rx, &timeout);
	if (poll(fds, n, 0) < 0)
		return -errno;
	return b->ops->poll_done(b, fds, n);
}

/*
 * The stream backend over a socket pair: frames both ways in stream framing; a peer that reads
 * nothing makes it queue a bounded amount, then drop (never block); no input is read while the
 * guest has no room; a peer that closes, or sends a bad length, ends it with a reason.
 */
static void stream_backend(void)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	struct net_backend *b = net_stream_backend(sv[0], 0);
	CHECK(b != NULL);
	if (!b)
		return;
	uint8_t f[NET_MAX_FRAME];
	memset(f, 0x42, sizeof(f));
	b->ops->send(b, f, 60);
	uint8_t got[4 + 60];
	CHECK(read(sv[1], got, sizeof(got)) == (ssize_t)sizeof(got));
	CHECK(got[0] == 0 && got[1] == 0 && got[2] == 0 && got[3] == 60 && got[4] == 0x42);
	/* The peer reads nothing: sends never block, and beyond the buffer frames are dropped. */
	for (int i = 0; i < 2000; i++)
		b->ops->send(b, f, NET_MAX_FRAME);
	CHECK(b->dropped > 0);
	uint64_t dropped = b->dropped;
	/* It drains once the peer reads: every byte that arrives is a whole frame. */
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	static struct net_stream peer;
	memset(&peer, 0, sizeof(peer));
	got_n = 0;
	for (int round = 0; round < 10000; round++) {
		ssize_t r = read(sv[1], peer.buf + peer.have, NET_STREAM_BUF - peer.have);
		if (r > 0)
			CHECK(net_stream_received(&peer, (size_t)r, deliver, NULL) == 0);
		CHECK(pump(b, false) == 0);
		if (r <= 0 && got_n + dropped >= 2000)
			break;
	}
	CHECK(got_n + dropped == 2000 && peer.have == 0);
	/* Input: read only when the guest has room. */
	uint8_t in[4 + 100];
	net_stream_header(in, 100);
	memset(in + 4, 7, 100);
	CHECK(write(sv[1], in, sizeof(in)) == (ssize_t)sizeof(in));
	got_n = 0;
	CHECK(pump(b, false) == 0 && got_n == 0);
	CHECK(pump(b, true) == 0 && got_n == 1 && got_len[0] == 100 && got_first[0] == 7);
	/* A length of 0 puts the stream out of step: the backend ends, saying why. */
	uint8_t zero[4] = {0};
	CHECK(write(sv[1], zero, 4) == 4);
	CHECK(pump(b, true) == -EPROTO);
	CHECK_STR_CONTAINS(b->why, "out of step");
	b->ops->close(b);
	close(sv[1]);
	/* A peer that closes. */
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	b = net_stream_backend(sv[0], 0);
	close(sv[1]);
	CHECK(b && pump(b, true) == -ECONNRESET);
	CHECK(b && strstr(b->why, "closed"));
	if (b)
		b->ops->close(b);
}

int main(void)
{
	TEST(tx_frames_checked);
	TEST(tx_offload_headers_checked);
	TEST(rx_frames_written);
	TEST(rx_frames_merged);
	TEST(rx_offload_headers_checked);
	TEST(stream_framing);
	TEST(stream_backend);
	return tests_failed ? 1 : 0;
}
