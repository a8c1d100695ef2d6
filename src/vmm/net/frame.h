/*
 * Ethernet frames between a virtio-net device and its backend, where both are outside input:
 * - a guest's transmit chains (virtio 1.2 §5.1.6: a 12-byte virtio_net_hdr, then the frame),
 *   checked before anything is sent (truncated, oversized, or a header that asks for offloads
 *   the device did not offer: dropped and counted);
 * - the receive side, a frame written into a guest's receive chain behind a zeroed header;
 * - stream framing (passt's and QEMU's "-netdev stream": each frame preceded by its length as 4
 *   big-endian bytes), parsed from whatever a stream read returned, frames cut anywhere.
 */
#ifndef EC1_VMM_NET_FRAME_H
#define EC1_VMM_NET_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "../virtio/queue.h"

#define NET_HDR_LEN   12   /* struct virtio_net_hdr with num_buffers (VERSION_1) */
#define NET_ETH_HDR   14   /* destination, source, ethertype */
#define NET_MTU	      1500 /* what the device offers (VIRTIO_NET_F_MTU) unless the backend says */
#define NET_MAX_FRAME (NET_MTU + NET_ETH_HDR + 4) /* one VLAN tag allowed */
#define NET_MTU_MAX   65520 /* the largest MTU a backend may ask for (libslirp's and passt's) */
#define NET_FRAME_MAX 65535 /* the largest frame at any MTU (lengths are 16 bits) */

/* The largest frame at mtu: the MTU, an Ethernet header and one VLAN tag. */
static inline size_t net_max_frame(unsigned int mtu)
{
	size_t m = (size_t)mtu + NET_ETH_HDR + 4;
	return m > NET_FRAME_MAX ? NET_FRAME_MAX : m;
}
#define NET_STREAM_MAX 65535 /* the largest length a stream may announce */
#define NET_STREAM_BUF (4 + NET_STREAM_MAX)

struct net_stats {
	uint64_t tx_frames, tx_bytes, tx_dropped, tx_gso, tx_csum; /* the last two: offloaded */
	uint64_t rx_frames, rx_bytes, rx_dropped, rx_gso, rx_csum; /* the last two: offloaded */
};

/*
 * A transmit chain's frame, gathered into buf (at least max bytes). Returns its length, or -1
 * when it was dropped (counted in s->tx_dropped): shorter than a header and an Ethernet header,
 * longer than max, device-writable parts, or a header with flags or GSO set.
 */
int64_t net_tx_frame(const struct virtq_chain *c, uint8_t *buf, size_t max, struct net_stats *s);

/*
 * The same with the transmit offloads a TAP interface takes (VIRTIO_NET_F_CSUM, HOST_TSO4/6,
 * virtio 1.2 §5.1.6.2): the header may ask for a checksum (NEEDS_CSUM, csum_start and
 * csum_offset inside the frame) and for TCP segmentation (GSO_TCPV4 or TCPV6, with NEEDS_CSUM and
 * a segment size; then the frame may reach NET_FRAME_MAX bytes, else max). Anything else in the
 * header (other flags or GSO types, ECN, a checksum place past the frame) drops the frame. hdr
 * gets the header as the driver wrote it, num_buffers zeroed: what a TAP's IFF_VNET_HDR takes;
 * buf must hold NET_FRAME_MAX bytes.
 */
#define NET_HDR_F_NEEDS_CSUM 1
#define NET_HDR_GSO_TCPV4    1
#define NET_HDR_GSO_TCPV6    4
#define NET_GSO_OK_TCPV4     1u /* gso_ok: the driver took HOST_TSO4 */
#define NET_GSO_OK_TCPV6     2u /* and HOST_TSO6 */
int64_t net_tx_frame_offload(const struct virtq_chain *c, uint8_t *buf, size_t max,
			     unsigned int gso_ok, uint8_t hdr[NET_HDR_LEN], struct net_stats *s);

/*
 * The receive offloads a TAP interface gives (VIRTIO_NET_F_GUEST_CSUM, GUEST_TSO4/6, virtio 1.2
 * §5.1.6.4.1): frames behind a header that says their checksum is still to be completed
 * (NEEDS_CSUM) or was checked already (DATA_VALID), and TCP segments of up to 64 KiB the guest
 * takes whole (GSO). check looks at the header hdr of a frame of len bytes for the offloads the
 * driver took (ok): flags NEEDS_CSUM (its place inside the frame) or DATA_VALID, not both, only
 * with GUEST_CSUM; GSO only TCPv4 or TCPv6 as taken, with a segment size, and then the frame may
 * reach NET_FRAME_MAX bytes, else max. num_buffers is zeroed. Returns 0, or -1: not for this
 * guest (dropped, counted in s->rx_dropped).
 */
#define NET_HDR_F_DATA_VALID 2
#define NET_RX_OK_CSUM	     1u /* the driver took GUEST_CSUM */
#define NET_RX_OK_TSO4	     2u /* GUEST_TSO4 */
#define NET_RX_OK_TSO6	     4u /* GUEST_TSO6 */
int net_rx_hdr_check(uint8_t hdr[NET_HDR_LEN], size_t len, size_t max, unsigned int ok,
		     struct net_stats *s);

/*
 * Writes a header (hdr, or zeroes when NULL; num_buffers 1) and frame into a receive chain.
 * Returns the bytes written (the used length), or -1 when the frame does not fit or is not a
 * frame (dropped, counted in s->rx_dropped; the chain may be returned with length 0).
 */
int64_t net_rx_frame(const struct virtq_chain *c, const uint8_t *hdr, const uint8_t *frame,
		     size_t len, struct net_stats *s);

/*
 * Mergeable receive buffers (VIRTIO_NET_F_MRG_RXBUF, §5.1.6.4): a frame spread over as many
 * receive chains as it needs. Seen as one run of bytes, a header (hdr, or zeroes when NULL) then
 * the frame, part writes what it can of that run from offset pos into chain c and returns how
 * much (0 when c has no room or readable parts: not a receive buffer); the first chain must take
 * the whole header. buffers then puts the number of chains used into the first chain's header.
 */
size_t net_rx_part(const struct virtq_chain *c, const uint8_t *hdr, const uint8_t *frame,
		   size_t len, size_t pos);
void net_rx_buffers(const struct virtq_chain *first, uint16_t n);

/* Stream framing: bytes read go into buf + have (room: NET_STREAM_BUF - have). */
struct net_stream {
	uint8_t buf[NET_STREAM_BUF];
	size_t have;
	size_t max_frame; /* the longest frame delivered; 0: NET_MAX_FRAME */
	uint64_t skip;	  /* bytes still to throw away of a frame too long for the guest */
	uint64_t dropped; /* frames thrown away */
};

/*
 * After n more bytes arrived at buf + have: calls deliver for each whole frame (len 14 to
 * max_frame), skips longer ones (counted), keeps a partial one for the next read. Returns 0,
 * or -EPROTO when the stream announced a length of 0 or more than NET_STREAM_MAX (it is out of
 * step and cannot be trusted any further).
 */
int net_stream_received(struct net_stream *s, size_t n,
			void (*deliver)(void *ctx, const uint8_t *frame, size_t len), void *ctx);

/* The 4-byte length that precedes a frame of len bytes on a stream. */
void net_stream_header(uint8_t out[4], size_t len);

#endif
