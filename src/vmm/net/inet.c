/* IPv4, UDP and DNS as the NAT reads them in a guest's frames (inet.h). */
#include "inet.h"

#include <string.h>

#include "frame.h"

#define ETH_TYPE_IPV4 0x0800
#define ETH_TYPE_ARP  0x0806
#define IP_PROTO_ICMP 1
#define IP_PROTO_TCP  6
#define IP_PROTO_UDP  17
#define IP_HDR	      20
#define UDP_HDR	      8
#define TCP_FIN	      0x01
#define TCP_SYN	      0x02
#define TCP_RST	      0x04
#define TCP_ACK	      0x10
#define DNS_QR	      0x80 /* in the third byte */
#define DNS_TC	      0x02

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/*
 * The IPv4 packet in an Ethernet frame: its header length and the length it claims, checked
 * against the frame. NULL when the frame holds none (or a broken one).
 */
static const uint8_t *ipv4(const uint8_t *frame, size_t len, size_t *hdr_len, size_t *total)
{
	if (len < NET_ETH_HDR + IP_HDR || be16(frame + 12) != ETH_TYPE_IPV4)
		return NULL;
	const uint8_t *ip = frame + NET_ETH_HDR;
	size_t ihl = (size_t)(ip[0] & 0x0f) * 4, tot = be16(ip + 2);
	if ((ip[0] >> 4) != 4 || ihl < IP_HDR || tot < ihl || tot > len - NET_ETH_HDR)
		return NULL;
	*hdr_len = ihl;
	*total = tot;
	return ip;
}

bool net_frame_opens_socket(const uint8_t *frame, size_t len)
{
	size_t ihl, tot;
	const uint8_t *ip = ipv4(frame, len, &ihl, &tot);
	if (!ip)
		return false;
	switch (ip[9]) {
	case IP_PROTO_UDP:
	case IP_PROTO_ICMP:
		return true;
	case IP_PROTO_TCP:
		/* A first fragment too short for the flags is taken as the worst case. */
		if ((be16(ip + 6) & 0x1fff) != 0)
			return false; /* later fragments carry no TCP header */
		if (tot < ihl + 14)
			return true;
		return (ip[ihl + 13] & (TCP_SYN | TCP_ACK)) == TCP_SYN;
	default:
		return false;
	}
}

enum net_flow_kind net_frame_flow(const uint8_t *frame, size_t len, struct net_flow *f)
{
	if (len < NET_ETH_HDR)
		return NET_FLOW_BAD;
	if (be16(frame + 12) == ETH_TYPE_ARP)
		return NET_FLOW_OLD;
	size_t ihl, tot;
	const uint8_t *ip = ipv4(frame, len, &ihl, &tot);
	if (!ip || (be16(ip + 6) & 0x3fff)) /* not IPv4, broken, or a fragment */
		return NET_FLOW_BAD;
	*f = (struct net_flow){.proto = ip[9]};
	memcpy(f->src, ip + 12, 4);
	memcpy(f->dst, ip + 16, 4);
	switch (ip[9]) {
	case IP_PROTO_ICMP:
		return NET_FLOW_NEW;
	case IP_PROTO_UDP:
		if (tot < ihl + UDP_HDR)
			return NET_FLOW_BAD;
		break;
	case IP_PROTO_TCP:
		if (tot < ihl + 20)
			return NET_FLOW_BAD;
		if ((ip[ihl + 13] & (TCP_SYN | TCP_ACK)) != TCP_SYN)
			return NET_FLOW_OLD;
		break;
	default:
		return NET_FLOW_BAD;
	}
	f->src_port = be16(ip + ihl);
	f->dst_port = be16(ip + ihl + 2);
	return NET_FLOW_NEW;
}

int net_frame_udp_in(const uint8_t *frame, size_t len, struct net_flow *f)
{
	return net_frame_flow(frame, len, f) == NET_FLOW_NEW && f->proto == IP_PROTO_UDP;
}

bool net_dns_parse_query(const uint8_t *frame, size_t len, const uint8_t server_ip[4],
			 struct net_dns_query *q)
{
	size_t ihl, tot;
	const uint8_t *ip = ipv4(frame, len, &ihl, &tot);
	if (!ip || ip[9] != IP_PROTO_UDP || memcmp(ip + 16, server_ip, 4) != 0)
		return false;
	if (be16(ip + 6) & 0x3fff) /* more fragments, or an offset: not one datagram */
		return false;
	const uint8_t *udp = ip + ihl;
	if (tot < ihl + UDP_HDR || be16(udp + 2) != NET_DNS_PORT)
		return false;
	size_t ulen = be16(udp + 4);
	if (ulen < UDP_HDR + NET_DNS_HDR || ulen > tot - ihl)
		return false;
	const uint8_t *dns = udp + UDP_HDR;
	if (dns[2] & DNS_QR)
		return false; /* a reply, not a query */
	memcpy(q->server_mac, frame, 6);
	memcpy(q->guest_mac, frame + 6, 6);
	memcpy(q->guest_ip, ip + 12, 4);
	memcpy(q->server_ip, ip + 16, 4);
	q->guest_port = be16(udp);
	q->id = be16(dns);
	q->payload = dns;
	q->payload_len = ulen - UDP_HDR;
	return true;
}

static uint16_t ip_checksum(const uint8_t *p, size_t n)
{
	uint32_t sum = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += be16(p + i);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

size_t net_dns_reply_frame(uint8_t *out, const struct net_dns_query *q, const uint8_t *reply,
			   size_t reply_len)
{
	if (reply_len < NET_DNS_HDR)
		return 0;
	size_t n = reply_len;
	uint8_t *dns = out + NET_ETH_HDR + IP_HDR + UDP_HDR;
	if (n > NET_DNS_MAX_PAYLOAD) {
		n = NET_DNS_HDR;
		memcpy(dns, reply, NET_DNS_HDR);
		dns[2] |= DNS_TC;
		memset(dns + 4, 0, 8); /* no records: the guest asks again over TCP */
	} else {
		memcpy(dns, reply, n);
	}
	memcpy(out, q->guest_mac, 6);
	memcpy(out + 6, q->server_mac, 6);
	put16(out + 12, ETH_TYPE_IPV4);
	uint8_t *ip = out + NET_ETH_HDR;
	memset(ip, 0, IP_HDR);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(IP_HDR + UDP_HDR + n));
	put16(ip + 6, 0x4000); /* don't fragment */
	ip[8] = 64;
	ip[9] = IP_PROTO_UDP;
	memcpy(ip + 12, q->server_ip, 4);
	memcpy(ip + 16, q->guest_ip, 4);
	put16(ip + 10, ip_checksum(ip, IP_HDR));
	uint8_t *udp = ip + IP_HDR;
	put16(udp, NET_DNS_PORT);
	put16(udp + 2, q->guest_port);
	put16(udp + 4, (uint16_t)(UDP_HDR + n));
	put16(udp + 6, 0); /* no checksum, as IPv4 allows */
	return NET_ETH_HDR + IP_HDR + UDP_HDR + n;
}

size_t net_tcp_reset_frame(uint8_t out[NET_TCP_RESET_LEN], const uint8_t *frame, size_t len)
{
	size_t ihl, tot;
	const uint8_t *ip = ipv4(frame, len, &ihl, &tot);
	if (!ip || ip[9] != IP_PROTO_TCP || tot < ihl + 20 || (be16(ip + 6) & 0x3fff))
		return 0;
	const uint8_t *tcp = ip + ihl;
	uint8_t flags = tcp[13];
	if (flags & TCP_RST)
		return 0; /* never a reset for a reset */
	/* RFC 793's reset for a segment of no connection: seq from its ACK, else 0 with ACK. */
	uint32_t seq = 0, ack = 0;
	uint32_t their_seq = (uint32_t)be16(tcp + 4) << 16 | be16(tcp + 6);
	uint32_t their_ack = (uint32_t)be16(tcp + 8) << 16 | be16(tcp + 10);
	size_t data = tot - ihl - (size_t)(tcp[12] >> 4) * 4;
	if ((size_t)(tcp[12] >> 4) * 4 < 20 || (size_t)(tcp[12] >> 4) * 4 > tot - ihl)
		return 0;
	uint8_t rflags = TCP_RST;
	if (flags & TCP_ACK) {
		seq = their_ack;
	} else {
		ack = their_seq + (uint32_t)data + ((flags & TCP_SYN) ? 1 : 0) +
		      ((flags & TCP_FIN) ? 1 : 0);
		rflags |= TCP_ACK;
	}
	memcpy(out, frame + 6, 6);
	memcpy(out + 6, frame, 6);
	put16(out + 12, ETH_TYPE_IPV4);
	uint8_t *rip = out + NET_ETH_HDR, *rtcp = rip + IP_HDR;
	memset(rip, 0, IP_HDR + 20);
	rip[0] = 0x45;
	put16(rip + 2, IP_HDR + 20);
	put16(rip + 6, 0x4000);
	rip[8] = 64;
	rip[9] = IP_PROTO_TCP;
	memcpy(rip + 12, ip + 16, 4);
	memcpy(rip + 16, ip + 12, 4);
	put16(rip + 10, ip_checksum(rip, IP_HDR));
	memcpy(rtcp, tcp + 2, 2); /* from their destination port to their source port */
	memcpy(rtcp + 2, tcp, 2);
	put16(rtcp + 4, (uint16_t)(seq >> 16));
	put16(rtcp + 6, (uint16_t)seq);
	put16(rtcp + 8, (uint16_t)(ack >> 16));
	put16(rtcp + 10, (uint16_t)ack);
	rtcp[12] = 5 << 4;
	rtcp[13] = rflags;
	/* The checksum over the pseudo-header (addresses, protocol, length) and the segment. */
	uint8_t pseudo[12 + 20];
	memcpy(pseudo, rip + 12, 8);
	pseudo[8] = 0;
	pseudo[9] = IP_PROTO_TCP;
	put16(pseudo + 10, 20);
	memcpy(pseudo + 12, rtcp, 20);
	put16(rtcp + 16, ip_checksum(pseudo, sizeof(pseudo)));
	return NET_TCP_RESET_LEN;
}

/* RFC 1624's eqn. 3: the one's complement sum at sum after the n bytes (n even) old became new. */
static void sum_replace(uint8_t *sum, const uint8_t *old, const uint8_t *new, size_t n)
{
	uint32_t s = (uint16_t)~be16(sum);
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint16_t)~be16(old + i) + (uint32_t)be16(new + i);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	put16(sum, (uint16_t)~s);
}

uint16_t net_tcp_redirect(uint8_t *out, const uint8_t *frame, size_t len, bool to_dst,
			  const uint8_t ip[4], uint16_t port, const uint8_t new_ip[4],
			  uint16_t new_port)
{
	size_t ihl, tot;
	const uint8_t *in = ipv4(frame, len, &ihl, &tot);
	if (!in || in[9] != IP_PROTO_TCP || tot < ihl + 20 || (be16(in + 6) & 0x3fff))
		return 0;
	size_t addr_at = to_dst ? 16 : 12, port_at = to_dst ? 2 : 0;
	const uint8_t *tcp = in + ihl;
	if (memcmp(in + addr_at, ip, 4) != 0 || be16(tcp + port_at) != port)
		return 0;
	memcpy(out, frame, len);
	uint8_t *oip = out + NET_ETH_HDR, *otcp = oip + ihl, np[2];
	put16(np, new_port);
	/* The addresses are in the IPv4 header's sum and the TCP pseudo-header's; the port in
	 * TCP's. */
	sum_replace(oip + 10, oip + addr_at, new_ip, 4);
	sum_replace(otcp + 16, oip + addr_at, new_ip, 4);
	sum_replace(otcp + 16, otcp + port_at, np, 2);
	memcpy(oip + addr_at, new_ip, 4);
	memcpy(otcp + port_at, np, 2);
	return be16(tcp + (to_dst ? 0 : 2));
}
