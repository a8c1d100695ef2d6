/* init's DHCPv4 client, the pure part (dhcp.h). */
#include "dhcp.h"

#include <stdbool.h>
#include <string.h>

/* RFC 2131 §2: the fixed part of a BOOTP/DHCP message, then the magic cookie and options. */
#define B_OP	  0
#define B_XID	  4
#define B_FLAGS	  10
#define B_CIADDR  12
#define B_YIADDR  16
#define B_CHADDR  28
#define B_MAGIC	  236
#define B_OPTIONS 240
#define B_MIN	  300 /* RFC 1542: some servers drop shorter messages */

static const uint8_t magic[4] = {99, 130, 83, 99};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	return s;
}

static uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

size_t dhcp_build(uint8_t *buf, int type, uint32_t xid, const uint8_t mac[6],
		  const struct dhcp_lease *l)
{
	memset(buf, 0, DHCP_PACKET_MAX);
	uint8_t *ip = buf, *udp = buf + 20, *m = buf + 28;
	m[B_OP] = 1; /* BOOTREQUEST */
	m[1] = 1;    /* Ethernet */
	m[2] = 6;
	memcpy(m + B_XID, &xid, 4);
	memcpy(m + B_CHADDR, mac, 6);
	memcpy(m + B_MAGIC, magic, 4);
	uint8_t *o = m + B_OPTIONS;
	bool renew = type == DHCP_RENEW && l;
	if (renew) {
		type = DHCP_REQUEST;
		memcpy(m + B_CIADDR, &l->addr, 4);
	}
	*o++ = 53; /* message type */
	*o++ = 1;
	*o++ = (uint8_t)type;
	*o++ = 61; /* client identifier: hardware type and address */
	*o++ = 7;
	*o++ = 1;
	memcpy(o, mac, 6);
	o += 6;
	if (type == DHCP_REQUEST && l && !renew) {
		*o++ = 50; /* requested address */
		*o++ = 4;
		memcpy(o, &l->addr, 4);
		o += 4;
		*o++ = 54; /* the server chosen */
		*o++ = 4;
		memcpy(o, &l->server, 4);
		o += 4;
	}
	static const uint8_t wanted[] = {1, 3, 6, 51, 54};
	*o++ = 55; /* parameters wanted */
	*o++ = sizeof(wanted);
	memcpy(o, wanted, sizeof(wanted));
	o += sizeof(wanted);
	*o++ = 57; /* the largest message taken: a whole packet socket frame */
	*o++ = 2;
	put16(o, 1500);
	o += 2;
	*o++ = 255;
	size_t mlen = (size_t)(o - m) < B_MIN ? B_MIN : (size_t)(o - m);
	size_t total = 28 + mlen;

	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)total);
	ip[8] = 64;
	ip[9] = 17; /* UDP */
	if (renew)
		memcpy(ip + 12, &l->addr, 4);
	memset(ip + 16, 0xff, 4);
	put16(ip + 10, fold(sum16(ip, 20, 0)));
	put16(udp, DHCP_CLIENT_PORT);
	put16(udp + 2, DHCP_SERVER_PORT);
	put16(udp + 4, (uint16_t)(total - 20));
	/* Pseudo-header: addresses, protocol, UDP length (RFC 768). */
	uint32_t s = sum16(ip + 12, 8, 17u + (uint32_t)(total - 20));
	uint16_t c = fold(sum16(udp, total - 20, s));
	put16(udp + 6, c ? c : 0xffff);
	return total;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* An address a host may have: not 0/8, loopback, multicast, reserved or broadcast. */
static int host_addr(uint32_t a_be)
{
	uint32_t a = be32((const uint8_t *)&a_be);
	return a >> 24 != 0 && a >> 24 != 127 && a < 0xe0000000u;
}

/* A netmask is ones then zeros, /1 to /30 (room for a host, its network and its broadcast). */
static int good_mask(uint32_t m_be)
{
	uint32_t m = be32((const uint8_t *)&m_be);
	return m >= 0x80000000u && m <= 0xfffffffcu && (~m & (~m + 1)) == 0;
}

int dhcp_parse(const uint8_t *pkt, size_t len, uint32_t xid, const uint8_t mac[6],
	       struct dhcp_lease *l)
{
	if (len < 20 || pkt[0] >> 4 != 4)
		return 0;
	size_t ihl = (size_t)(pkt[0] & 15) * 4, tot = (size_t)(pkt[2] << 8 | pkt[3]);
	/* Fragments are not reassembled here: a reply fits in one frame. */
	if (ihl < 20 || tot < ihl + 8 || tot > len || pkt[9] != 17 ||
	    ((pkt[6] & 0x3f) | pkt[7]) != 0 || fold(sum16(pkt, ihl, 0)) != 0)
		return 0;
	const uint8_t *udp = pkt + ihl;
	size_t ulen = (size_t)(udp[4] << 8 | udp[5]);
	if ((udp[0] << 8 | udp[1]) != DHCP_SERVER_PORT ||
	    (udp[2] << 8 | udp[3]) != DHCP_CLIENT_PORT || ulen < 8 + B_OPTIONS || ulen > tot - ihl)
		return 0;
	if ((udp[6] | udp[7]) &&
	    fold(sum16(udp, ulen, sum16(pkt + 12, 8, 17u + (uint32_t)ulen))) != 0)
		return 0;
	const uint8_t *m = udp + 8;
	size_t mlen = ulen - 8;
	if (m[B_OP] != 2 || m[1] != 1 || m[2] != 6 || memcmp(m + B_XID, &xid, 4) != 0 ||
	    memcmp(m + B_CHADDR, mac, 6) != 0 || memcmp(m + B_MAGIC, magic, 4) != 0)
		return 0;
	struct dhcp_lease got = {0};
	memcpy(&got.addr, m + B_YIADDR, 4);
	int type = 0;
	for (size_t i = B_OPTIONS; i < mlen;) {
		uint8_t code = m[i];
		if (code == 0) {
			i++;
			continue;
		}
		if (code == 255)
			break;
		if (i + 2 > mlen || i + 2 + m[i + 1] > mlen)
			return 0; /* an option running past the message */
		const uint8_t *v = m + i + 2;
		size_t n = m[i + 1];
		i += 2 + n;
		switch (code) {
		case 53:
			if (n == 1)
				type = v[0];
			break;
		case 1:
			if (n == 4)
				memcpy(&got.mask, v, 4);
			break;
		case 3:
			if (n >= 4 && n % 4 == 0)
				memcpy(&got.router, v, 4);
			break;
		case 6:
			for (size_t k = 0; k + 4 <= n && n % 4 == 0 && got.nr_dns < DHCP_MAX_DNS;
			     k += 4) {
				uint32_t d;
				memcpy(&d, v + k, 4);
				if (host_addr(d))
					got.dns[got.nr_dns++] = d;
			}
			break;
		case 51:
			if (n == 4)
				got.lease_s = be32(v);
			break;
		case 54:
			if (n == 4)
				memcpy(&got.server, v, 4);
			break;
		}
	}
	if (type == DHCP_NAK)
		return type;
	if (type != DHCP_OFFER && type != DHCP_ACK)
		return 0;
	if (!host_addr(got.addr) || !got.server)
		return 0;
	if (!got.mask) {
		/* No mask given: the address's class's (RFC 2132 §3.3 leaves it to the client). */
		uint32_t a = be32((const uint8_t *)&got.addr);
		uint32_t mh = a < 0x80000000u	? 0xff000000u
			      : a < 0xc0000000u ? 0xffff0000u
						: 0xffffff00u;
		uint8_t mb[4] = {(uint8_t)(mh >> 24), (uint8_t)(mh >> 16), (uint8_t)(mh >> 8), 0};
		memcpy(&got.mask, mb, 4);
	}
	if (!good_mask(got.mask))
		return 0;
	/* The address must be a host of its network, not the network or its broadcast. */
	uint32_t host = be32((const uint8_t *)&got.addr) & ~be32((const uint8_t *)&got.mask);
	if (host == 0 || host == ~be32((const uint8_t *)&got.mask))
		return 0;
	if (got.router && (!host_addr(got.router) || got.router == got.addr))
		got.router = 0;
	*l = got;
	return type;
}
