/* Ethernet frames to and from virtio-net chains and streams (frame.h). */
#include "frame.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "../iov.h"

/* struct virtio_net_hdr (virtio 1.2 §5.1.6), little-endian, as the driver lays it out. */
struct net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
};
_Static_assert(sizeof(struct net_hdr) == NET_HDR_LEN, "virtio_net_hdr is 12 bytes");

/* The frame after the header, gathered into buf, and counted. */
static int64_t tx_take(const struct virtq_chain *c, uint8_t *buf, struct net_stats *s)
{
	size_t len = (size_t)(c->out_len - NET_HDR_LEN);
	iov_to_buf(c->out, c->n_out, NET_HDR_LEN, buf, len);
	s->tx_frames++;
	s->tx_bytes += len;
	return (int64_t)len;
}

int64_t net_tx_frame(const struct virtq_chain *c, uint8_t *buf, size_t max, struct net_stats *s)
{
	struct net_hdr h;
	if (c->n_in || c->out_len < NET_HDR_LEN + NET_ETH_HDR || c->out_len > NET_HDR_LEN + max)
		goto drop;
	iov_to_buf(c->out, c->n_out, 0, &h, sizeof(h));
	/* No checksum or segmentation offload is offered: a header asking for one lies. */
	if (h.flags || h.gso_type)
		goto drop;
	return tx_take(c, buf, s);
drop:
	s->tx_dropped++;
	return -1;
}

/*
 * What an offload header says of a frame of len bytes, both ways: a checksum place (NEEDS_CSUM)
 * inside the frame past the Ethernet header; no segmentation and at most max bytes, or TCPv4 or
 * TCPv6 segmentation as allowed, with a segment size.
 */
static bool offload_fits(const struct net_hdr *h, size_t len, size_t max, bool tso4, bool tso6)
{
	if ((h->flags & NET_HDR_F_NEEDS_CSUM) &&
	    (le16toh(h->csum_start) < NET_ETH_HDR ||
	     (size_t)le16toh(h->csum_start) + le16toh(h->csum_offset) + 2 > len))
		return false;
	if (h->gso_type == 0)
		return len <= max;
	return ((h->gso_type == NET_HDR_GSO_TCPV4 && tso4) ||
		(h->gso_type == NET_HDR_GSO_TCPV6 && tso6)) &&
	       le16toh(h->gso_size);
}

int64_t net_tx_frame_offload(const struct virtq_chain *c, uint8_t *buf, size_t max,
			     unsigned int gso_ok, uint8_t hdr[NET_HDR_LEN], struct net_stats *s)
{
	struct net_hdr h;
	if (c->n_in || c->out_len < NET_HDR_LEN + NET_ETH_HDR ||
	    c->out_len > NET_HDR_LEN + NET_FRAME_MAX)
		goto drop;
	iov_to_buf(c->out, c->n_out, 0, &h, sizeof(h));
	size_t len = (size_t)(c->out_len - NET_HDR_LEN);
	bool csum = h.flags & NET_HDR_F_NEEDS_CSUM;
	/* Segmentation only with a checksum to fill in (the host kernel wants one). */
	if (h.flags & ~NET_HDR_F_NEEDS_CSUM || (h.gso_type && !csum) ||
	    !offload_fits(&h, len, max, gso_ok & NET_GSO_OK_TCPV4, gso_ok & NET_GSO_OK_TCPV6))
		goto drop;
	s->tx_gso += h.gso_type != 0;
	s->tx_csum += csum;
	h.num_buffers = 0;
	memcpy(hdr, &h, NET_HDR_LEN);
	return tx_take(c, buf, s);
drop:
	s->tx_dropped++;
	return -1;
}

int net_rx_hdr_check(uint8_t hdr[NET_HDR_LEN], size_t len, size_t max, unsigned int ok,
		     struct net_stats *s)
{
	struct net_hdr h;
	memcpy(&h, hdr, sizeof(h));
	bool csum = h.flags & NET_HDR_F_NEEDS_CSUM, valid = h.flags & NET_HDR_F_DATA_VALID;
	if (len < NET_ETH_HDR || len > NET_FRAME_MAX ||
	    h.flags & ~(NET_HDR_F_NEEDS_CSUM | NET_HDR_F_DATA_VALID) || (csum && valid) ||
	    ((csum || valid) && !(ok & NET_RX_OK_CSUM)) ||
	    !offload_fits(&h, len, max, ok & NET_RX_OK_TSO4, ok & NET_RX_OK_TSO6)) {
		s->rx_dropped++;
		return -1;
	}
	s->rx_gso += h.gso_type != 0;
	s->rx_csum += csum;
	hdr[10] = hdr[11] = 0; /* num_buffers */
	return 0;
}

int64_t net_rx_frame(const struct virtq_chain *c, const uint8_t *hdr, const uint8_t *frame,
		     size_t len, struct net_stats *s)
{
	if (len < NET_ETH_HDR || len > NET_FRAME_MAX || c->in_len < NET_HDR_LEN + len) {
		s->rx_dropped++;
		return -1;
	}
	struct net_hdr h = {0};
	if (hdr)
		memcpy(&h, hdr, sizeof(h));
	h.num_buffers = htole16(1);
	iov_from_buf(c->in, c->n_in, 0, &h, sizeof(h));
	iov_from_buf(c->in, c->n_in, NET_HDR_LEN, frame, len);
	s->rx_frames++;
	s->rx_bytes += len;
	return (int64_t)(NET_HDR_LEN + len);
}

size_t net_rx_part(const struct virtq_chain *c, const uint8_t *hdr, const uint8_t *frame,
		   size_t len, size_t pos)
{
	size_t total = NET_HDR_LEN + len;
	/* The header goes whole into the first chain: no part starts inside it. */
	if (c->n_out || pos >= total || (pos > 0 && pos < NET_HDR_LEN) ||
	    (pos == 0 && c->in_len < NET_HDR_LEN))
		return 0;
	size_t room = c->in_len < total - pos ? (size_t)c->in_len : total - pos, at = 0;
	if (pos == 0) {
		struct net_hdr h = {0};
		if (hdr)
			memcpy(&h, hdr, sizeof(h));
		h.num_buffers = 0; /* net_rx_buffers says how many */
		iov_from_buf(c->in, c->n_in, 0, &h, sizeof(h));
		at = NET_HDR_LEN;
	}
	iov_from_buf(c->in, c->n_in, at, frame + (pos + at - NET_HDR_LEN), room - at);
	return room;
}

void net_rx_buffers(const struct virtq_chain *first, uint16_t n)
{
	uint8_t le[2] = {(uint8_t)n, (uint8_t)(n >> 8)};
	iov_from_buf(first->in, first->n_in, offsetof(struct net_hdr, num_buffers), le, 2);
}

void net_stream_header(uint8_t out[4], size_t len)
{
	out[0] = (uint8_t)(len >> 24);
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
}

int net_stream_received(struct net_stream *s, size_t n,
			void (*deliver)(void *ctx, const uint8_t *frame, size_t len), void *ctx)
{
	if (n > NET_STREAM_BUF - s->have)
		return -EPROTO; /* the caller read past the room it was given */
	s->have += n;
	size_t pos = 0, max = s->max_frame ? s->max_frame : NET_MAX_FRAME;
	for (;;) {
		if (s->skip) {
			size_t k = s->have - pos < s->skip ? s->have - pos : (size_t)s->skip;
			pos += k;
			s->skip -= k;
			if (s->skip)
				break;
		}
		if (s->have - pos < 4)
			break;
		const uint8_t *p = s->buf + pos;
		uint32_t len =
			(uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
		if (len == 0 || len > NET_STREAM_MAX)
			return -EPROTO;
		if (len < NET_ETH_HDR || len > max) {
			/* Well framed but no frame for this guest: thrown away, however it arrives.
			 */
			s->dropped++;
			pos += 4;
			s->skip = len;
			continue;
		}
		if (s->have - pos < 4 + (size_t)len)
			break;
		deliver(ctx, p + 4, len);
		pos += 4 + (size_t)len;
	}
	memmove(s->buf, s->buf + pos, s->have - pos);
	s->have -= pos;
	return 0;
}
