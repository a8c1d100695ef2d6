/*
 * What the user-mode NAT (nat.c) reads in a guest's frames itself, all of it outside input:
 * - whether a frame would make the NAT open a host socket (a new TCP connection, any UDP or
 *   ICMP datagram), so that a guest cannot open more of them than the NAT allows;
 * - the flow a frame would start (protocol, addresses, ports), for a restricted NAT's
 *   allow-list;
 * - a DNS query to the NAT's resolver address (Ethernet, IPv4 without options or fragments,
 *   UDP to port 53), and the reply frame built for it.
 * Only IPv4 in Ethernet II frames; anything else is "not ours".
 */
#ifndef EC1_VMM_NET_INET_H
#define EC1_VMM_NET_INET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_DNS_PORT	    53
#define NET_DNS_HDR	    12
#define NET_DNS_MAX_PAYLOAD 1472 /* what fits one 1,500-byte IPv4 packet after IP and UDP */

/* Whether the frame would have the NAT open a host socket of its own. */
bool net_frame_opens_socket(const uint8_t *frame, size_t len);

/*
 * What a restricted NAT with an allow-list (nat.c) checks of a guest frame: the flow it would
 * start. NET_FLOW_OLD: nothing new (ARP; a TCP segment other than a bare SYN, which opens
 * nothing: libslirp answers one of no connection with a reset), let through; NET_FLOW_NEW: a TCP
 * SYN, a UDP or ICMP datagram, with *f filled (ports 0 for ICMP); NET_FLOW_BAD: anything else
 * (other ethertypes, VLAN tags, IPv6, a broken IPv4 header, fragments, which could put together
 * a header the check never saw), dropped.
 */
enum net_flow_kind { NET_FLOW_OLD, NET_FLOW_NEW, NET_FLOW_BAD };
struct net_flow {
	uint8_t proto; /* 6 TCP, 17 UDP, 1 ICMP */
	uint8_t src[4], dst[4];
	uint16_t src_port, dst_port;
};
enum net_flow_kind net_frame_flow(const uint8_t *frame, size_t len, struct net_flow *f);

/*
 * A UDP datagram to the guest (a frame libslirp delivers): 1 with *f filled (src the sender as
 * the guest sees it), else 0.
 */
int net_frame_udp_in(const uint8_t *frame, size_t len, struct net_flow *f);

/*
 * The reset a TCP segment of no connection gets (RFC 793), from its destination back to its
 * sender, as the frame's addressee: what a restricted NAT answers a SYN it does not let through,
 * so the guest's connect fails at once (libslirp's restricted mode answers the same). Returns
 * NET_TCP_RESET_LEN, or 0 for anything but an unfragmented TCP segment without RST.
 */
#define NET_TCP_RESET_LEN (14 + 20 + 20)
size_t net_tcp_reset_frame(uint8_t out[NET_TCP_RESET_LEN], const uint8_t *frame, size_t len);

/* A guest's DNS query, pointing into the frame it came in. */
struct net_dns_query {
	uint8_t guest_mac[6], server_mac[6];
	uint8_t guest_ip[4], server_ip[4];
	uint16_t guest_port;
	uint16_t id;
	const uint8_t *payload; /* the DNS message, NET_DNS_HDR bytes at least */
	size_t payload_len;
};

/*
 * Whether frame is a UDP datagram to server_ip (4 bytes, network order) port 53 that holds a DNS
 * query (QR clear, at least a header); fills *q when it is.
 */
bool net_dns_parse_query(const uint8_t *frame, size_t len, const uint8_t server_ip[4],
			 struct net_dns_query *q);

/*
 * The frame that carries reply (a DNS message from the host's resolver, its id already the
 * guest's) back to the guest that sent q: from the server's MAC, address and port 53. A reply
 * longer than NET_DNS_MAX_PAYLOAD goes as its header alone with TC set (the guest asks again
 * over TCP). Returns the frame's length (out needs NET_ETH_HDR + 28 + NET_DNS_MAX_PAYLOAD bytes),
 * or 0 when reply is shorter than a DNS header.
 */
size_t net_dns_reply_frame(uint8_t *out, const struct net_dns_query *q, const uint8_t *reply,
			   size_t reply_len);

/*
 * DNS over TCP (nat.c): the UDP relay cannot carry a stream, so the guest's TCP segments to the
 * resolver address (10.0.2.3 port 53) go to the host's resolver instead, which libslirp then
 * reaches as any outside address, and the resolver's segments back seem to come from 10.0.2.3
 * port 53 again. net_tcp_redirect copies frame to out (len bytes; out as large) with one end of
 * an unfragmented TCP segment rewritten — the destination when it is (ip, port) and to_dst, the
 * source when it is (ip, port) and !to_dst — to (new_ip, new_port), the IPv4 and TCP checksums
 * adjusted (RFC 1624). Returns the segment's other port (the guest's), or 0 (out untouched)
 * when frame is not such a segment.
 */
uint16_t net_tcp_redirect(uint8_t *out, const uint8_t *frame, size_t len, bool to_dst,
			  const uint8_t ip[4], uint16_t port, const uint8_t new_ip[4],
			  uint16_t new_port);

#endif
