/*
 * What the user-mode NAT (nat.c) reads in a guest's frames itself, all of it outside input:
 * - whether a frame would make the NAT open a host socket (a new TCP connection, any UDP or
 *   ICMP datagram), so that a guest cannot open more of them than the NAT allows;
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

#endif
