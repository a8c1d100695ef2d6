/*
 * libFuzzer target: virtio-net frames (src/vmm/net/frame.c). The input is a mode byte, then:
 * mode 0 (streams): chunk lengths (u16 each, cut from the input as it goes) and the bytes read,
 * fed to a stream as reads of those lengths; every frame delivered must be 14 to NET_MAX_FRAME
 * bytes and lie inside what was read, and the buffered part never exceeds its room.
 * mode 1 (chains): the number of device-readable and device-writable buffers (a byte each, at
 * most 8), their lengths (u16 each) and the readable bytes; the chain is taken as a transmit
 * chain, as a receive chain for a frame of the remaining bytes, and as a mergeable receive
 * buffer's first and a later part, and as a transmit chain with offloads (TAP: checksum and TSO
 * headers). A transmit frame is at most NET_MAX_FRAME bytes (NET_FRAME_MAX with TSO), a receive
 * answer fits the writable buffers, a part never runs past them or past the frame; the first
 * bytes of the remaining ones, as a TAP's receive header for a frame of the remaining length
 * (receive offloads): a header that passes has its checksum place inside the frame, a frame
 * past NET_MAX_FRAME only with GSO, num_buffers zeroed, and goes into the chain as it is.
 * mode 2 (the NAT's readers, inet.c): a frame length (u16) and the frame, then the rest as a
 * resolver's reply; a query found lies inside the frame, and the reply frame built for it is a
 * whole frame of at most NET_MAX_FRAME bytes; the flow read for the allow-list and the reset
 * built for a refused SYN read nothing outside the frame; a TCP segment readdressed for DNS over
 * TCP (both ways) is the same length, and its IPv4 and TCP checksums are as valid as they were.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/vmm/net/frame.h"
#include "../../src/vmm/net/inet.h"

#define MAX_BUFS 8

static struct net_stream st;
static struct virtq_chain chain;
static uint8_t frame[NET_FRAME_MAX];
static uint8_t bufs[2 * MAX_BUFS][65536];
static size_t delivered;

static void deliver(void *ctx, const uint8_t *f, size_t len)
{
	(void)ctx;
	if (len < NET_ETH_HDR || len > NET_MAX_FRAME || f < st.buf || f + len > st.buf + st.have)
		abort();
	delivered += len;
}

static uint64_t take(const uint8_t **p, size_t *left, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n && *left; i++, (*left)--)
		v |= (uint64_t) * (*p)++ << (8 * i);
	return v;
}

static void streams(const uint8_t *p, size_t left)
{
	memset(&st, 0, sizeof(st));
	while (left >= 2) {
		size_t n = (size_t)take(&p, &left, 2);
		size_t room = NET_STREAM_BUF - st.have;
		n = n < left ? n : left;
		n = n < room ? n : room;
		memcpy(st.buf + st.have, p, n);
		p += n;
		left -= n;
		size_t before = st.have;
		if (net_stream_received(&st, n, deliver, NULL))
			return;
		if (st.have > before + n || st.have > NET_STREAM_BUF)
			abort();
	}
}

static void chains(const uint8_t *p, size_t left)
{
	memset(&chain, 0, sizeof(chain));
	unsigned int n_out = (unsigned int)take(&p, &left, 1) % (MAX_BUFS + 1);
	unsigned int n_in = (unsigned int)take(&p, &left, 1) % (MAX_BUFS + 1);
	for (unsigned int i = 0; i < n_out + n_in; i++) {
		size_t len = (size_t)take(&p, &left, 2);
		struct iovec v = {bufs[i], len};
		if (i < n_out) {
			chain.out[chain.n_out++] = v;
			chain.out_len += len;
		} else {
			chain.in[chain.n_in++] = v;
			chain.in_len += len;
		}
	}
	for (unsigned int i = 0; i < chain.n_out && left; i++) {
		size_t k = chain.out[i].iov_len < left ? chain.out[i].iov_len : left;
		memcpy(chain.out[i].iov_base, p, k);
		p += k;
		left -= k;
	}
	struct net_stats s = {0};
	int64_t len = net_tx_frame(&chain, frame, NET_MAX_FRAME, &s);
	if (len > NET_MAX_FRAME || (len >= 0 && (uint64_t)len + NET_HDR_LEN != chain.out_len))
		abort();
	/* The offload path (TAP): a frame of its own length, a header as it came, num_buffers 0. */
	uint8_t hdr[NET_HDR_LEN];
	struct net_stats so = {0};
	len = net_tx_frame_offload(&chain, frame, NET_MAX_FRAME,
				   NET_GSO_OK_TCPV4 | NET_GSO_OK_TCPV6, hdr, &so);
	if (len > NET_FRAME_MAX || (len >= 0 && (uint64_t)len + NET_HDR_LEN != chain.out_len) ||
	    (len > NET_MAX_FRAME && !hdr[1]) || (len >= 0 && (hdr[10] || hdr[11])) ||
	    so.tx_frames + so.tx_dropped != 1)
		abort();
	if (len >= 0 && (hdr[0] & 1)) { /* the checksum's place is inside the frame */
		size_t start = (size_t)(hdr[6] | hdr[7] << 8), off = (size_t)(hdr[8] | hdr[9] << 8);
		if (start + off + 2 > (size_t)len)
			abort();
	}
	int64_t w = net_rx_frame(&chain, NULL, p, left, &s);
	if (w > (int64_t)chain.in_len || (w >= 0 && (uint64_t)w != NET_HDR_LEN + left))
		abort();
	if (s.tx_frames + s.tx_dropped != 1 || s.rx_frames + s.rx_dropped != 1)
		abort();
	/* A TAP's receive header (any of the offloads taken, by the low bits of its last byte). */
	uint8_t rh[NET_HDR_LEN] = {0};
	memcpy(rh, p, left < NET_HDR_LEN ? left : NET_HDR_LEN);
	unsigned int ok = rh[NET_HDR_LEN - 1] & 7;
	struct net_stats sr = {0};
	const uint8_t *use = NULL;
	if (net_rx_hdr_check(rh, left, NET_MAX_FRAME, ok, &sr) == 0) {
		size_t start = (size_t)(rh[6] | rh[7] << 8), off = (size_t)(rh[8] | rh[9] << 8);
		if (rh[10] || rh[11] || (rh[0] & 1 && start + off + 2 > left) ||
		    (left > NET_MAX_FRAME && !rh[1]) || left < NET_ETH_HDR ||
		    (rh[0] && !(ok & 1)) || sr.rx_dropped)
			abort();
		use = rh;
		if (net_rx_frame(&chain, rh, p, left, &sr) > (int64_t)chain.in_len)
			abort();
	} else if (sr.rx_dropped != 1) {
		abort();
	}
	/* The same chain as a mergeable receive buffer, from the start and from the middle. */
	size_t part = net_rx_part(&chain, use, p, left, 0);
	if (part > chain.in_len || part > NET_HDR_LEN + left || (part && part < NET_HDR_LEN) ||
	    (part && chain.n_out))
		abort();
	if (part)
		net_rx_buffers(&chain, 1);
	size_t from = left / 2 + 1;
	part = net_rx_part(&chain, NULL, p, left, from);
	if (part > chain.in_len || (part && from + part > NET_HDR_LEN + left))
		abort();
}

/* The one's complement sum of n bytes (an odd last byte padded), as it sits in a header. */
static uint32_t ones(const uint8_t *b, size_t n, uint32_t s)
{
	for (size_t i = 0; i < n; i += 2)
		s += (uint32_t)(b[i] << 8 | (i + 1 < n ? b[i + 1] : 0));
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s;
}

/* Whether frame f's IPv4 header (ihl from it) and TCP segment sum to 0xffff: (ip ok) + 2 (tcp). */
static int sums_ok(const uint8_t *f, size_t n)
{
	const uint8_t *ip = f + NET_ETH_HDR;
	size_t ihl = (size_t)(ip[0] & 15) * 4, tot = (size_t)(ip[2] << 8 | ip[3]);
	if (ihl > n - NET_ETH_HDR || tot > n - NET_ETH_HDR || tot < ihl)
		abort(); /* net_tcp_redirect took a packet that is not whole */
	uint8_t pseudo[12] = {0};
	memcpy(pseudo, ip + 12, 8);
	pseudo[9] = 6;
	pseudo[10] = (uint8_t)((tot - ihl) >> 8), pseudo[11] = (uint8_t)(tot - ihl);
	return (ones(ip, ihl, 0) == 0xffff) +
	       2 * (ones(ip + ihl, tot - ihl, ones(pseudo, 12, 0)) == 0xffff);
}

static void redirect(const uint8_t *f, size_t n)
{
	static const uint8_t a[4] = {10, 0, 2, 3}, b[4] = {127, 0, 0, 53};
	uint8_t *out = malloc(n ? n : 1);
	if (!out)
		return;
	for (int to_dst = 0; to_dst < 2; to_dst++)
		if (net_tcp_redirect(out, f, n, to_dst, to_dst ? a : b, 53, to_dst ? b : a, 5353) &&
		    sums_ok(f, n) != sums_ok(out, n))
			abort();
	free(out);
}

static void inet(const uint8_t *p, size_t left)
{
	static const uint8_t server[4] = {10, 0, 2, 3};
	static uint8_t out[NET_ETH_HDR + 28 + NET_DNS_MAX_PAYLOAD];
	size_t n = (size_t)take(&p, &left, 2);
	n = n < left ? n : left;
	/* A copy of its own length, so that a read past the frame is caught. */
	uint8_t *f = malloc(n ? n : 1);
	if (!f)
		return;
	memcpy(f, p, n);
	(void)net_frame_opens_socket(f, n);
	struct net_flow fl;
	enum net_flow_kind k = net_frame_flow(f, n, &fl);
	if (k != NET_FLOW_OLD && k != NET_FLOW_NEW && k != NET_FLOW_BAD)
		abort();
	if (net_frame_udp_in(f, n, &fl) && (k != NET_FLOW_NEW || fl.proto != 17))
		abort();
	redirect(f, n);
	uint8_t rst[NET_TCP_RESET_LEN];
	size_t r = net_tcp_reset_frame(rst, f, n);
	if (r && (r != NET_TCP_RESET_LEN || (rst[34 + 13] & 0x04) == 0))
		abort();
	struct net_dns_query q;
	if (net_dns_parse_query(f, n, server, &q)) {
		if (q.payload < f || q.payload_len < NET_DNS_HDR ||
		    q.payload + q.payload_len > f + n)
			abort();
		size_t len = net_dns_reply_frame(out, &q, p + n, left - n);
		if (len > NET_MAX_FRAME || (len && len < NET_ETH_HDR + 28 + NET_DNS_HDR) ||
		    (!len && left - n >= NET_DNS_HDR))
			abort();
	}
	free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		streams(data + 1, size - 1);
		break;
	case 1:
		chains(data + 1, size - 1);
		break;
	default:
		inet(data + 1, size - 1);
	}
	return 0;
}
