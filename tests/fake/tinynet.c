/* A network of one host for the test fakes (tinynet.h). */
#include "tinynet.h"

#include <stdbool.h>
#include <string.h>

static uint16_t csum(const uint8_t *p, size_t n, uint32_t s)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void arp(struct tinynet *net, const uint8_t *f)
{
	/* Who has f[38..42]? Everyone but the asker is us. */
	if (memcmp(f + 28, f + 38, 4) == 0)
		return;
	uint8_t r[42];
	memcpy(r, f + 6, 6);
	memcpy(r + 6, net->mac, 6);
	memcpy(r + 12, f + 12, 8); /* ethertype, htype, ptype, hlen, plen */
	r[20] = 0;
	r[21] = 2;
	memcpy(r + 22, net->mac, 6);
	memcpy(r + 28, f + 38, 4);
	memcpy(r + 32, f + 22, 10); /* the asker's MAC and address */
	net->send(r, 42);
	net->arps++;
}

static void echo(struct tinynet *net, const uint8_t *f, size_t ihl, size_t tot)
{
	static uint8_t r[65536];
	memcpy(r, f, 14 + tot);
	memcpy(r, f + 6, 6);
	memcpy(r + 6, net->mac, 6);
	memcpy(r + 26, f + 30, 4); /* addresses swapped */
	memcpy(r + 30, f + 26, 4);
	r[24] = r[25] = 0;
	put16(r + 24, csum(r + 14, ihl, 0));
	uint8_t *icmp = r + 14 + ihl;
	icmp[0] = 0; /* echo reply */
	icmp[2] = icmp[3] = 0;
	put16(icmp + 2, csum(icmp, tot - ihl, 0));
	net->send(r, 14 + tot);
	net->echoes++;
}

/* The DHCP option code's value in m[240, mlen), or NULL; *n its length. */
static const uint8_t *option(const uint8_t *m, size_t mlen, uint8_t code, size_t *n)
{
	for (size_t i = 240; i < mlen && m[i] != 255;) {
		if (m[i] == 0) {
			i++;
			continue;
		}
		if (i + 2 > mlen || i + 2 + m[i + 1] > mlen)
			return NULL;
		if (m[i] == code) {
			*n = m[i + 1];
			return m + i + 2;
		}
		i += 2u + m[i + 1];
	}
	return NULL;
}

static void dhcp(struct tinynet *net, const uint8_t *f, const uint8_t *m, size_t mlen)
{
	if (mlen < 240 || m[0] != 1 || memcmp(m + 236, "\x63\x82\x53\x63", 4) != 0)
		return;
	size_t n = 0;
	const uint8_t *t = option(m, mlen, 53, &n);
	if (!t || n != 1 || (t[0] != 1 && t[0] != 3))
		return;
	int type = 2; /* OFFER */
	bool renewal = false;
	if (t[0] == 3) {
		const uint8_t *want = option(m, mlen, 50, &n);
		/* §4.3.2: no address asked for, ciaddr filled: a renewal (or rebinding). */
		renewal = !want && memcmp(m + 12, net->guest, 4) == 0;
		bool ok = (want && n == 4 && memcmp(want, net->guest, 4) == 0) ||
			  (renewal && !net->nak_renewals);
		type = ok ? 5 : 6; /* ACK : NAK */
		net->dhcp_renewals += renewal;
	}
	uint32_t lease = net->lease_s ? net->lease_s : 3600;
	static uint8_t r[600];
	memset(r, 0, sizeof(r));
	uint8_t *ip = r + 14, *udp = ip + 20, *b = udp + 8;
	memcpy(r, f + 6, 6);
	memcpy(r + 6, net->mac, 6);
	r[12] = 0x08;
	b[0] = 2;
	b[1] = 1;
	b[2] = 6;
	memcpy(b + 4, m + 4, 4);    /* xid */
	memcpy(b + 28, m + 28, 16); /* chaddr */
	if (type != 6)
		memcpy(b + 16, net->guest, 4);
	memcpy(b + 236, "\x63\x82\x53\x63", 4);
	uint8_t *o = b + 240;
	uint32_t mask = net->prefix ? ~0u << (32 - net->prefix) : 0;
	uint8_t opts[] = {53,
			  1,
			  (uint8_t)type,
			  54,
			  4,
			  net->gateway[0],
			  net->gateway[1],
			  net->gateway[2],
			  net->gateway[3]};
	memcpy(o, opts, sizeof(opts));
	o += sizeof(opts);
	if (type != 6) {
		uint8_t more[] = {1,
				  4,
				  (uint8_t)(mask >> 24),
				  (uint8_t)(mask >> 16),
				  (uint8_t)(mask >> 8),
				  (uint8_t)mask,
				  3,
				  4,
				  net->gateway[0],
				  net->gateway[1],
				  net->gateway[2],
				  net->gateway[3],
				  6,
				  4,
				  net->gateway[0],
				  net->gateway[1],
				  net->gateway[2],
				  net->gateway[3],
				  51,
				  4,
				  (uint8_t)(lease >> 24),
				  (uint8_t)(lease >> 16),
				  (uint8_t)(lease >> 8),
				  (uint8_t)lease};
		memcpy(o, more, sizeof(more));
		o += sizeof(more);
	}
	*o++ = 255;
	size_t blen = (size_t)(o - b) < 300 ? 300 : (size_t)(o - b), tot = 28 + blen;
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)tot);
	ip[8] = 64;
	ip[9] = 17;
	memcpy(ip + 12, net->gateway, 4);
	if (type == 6)
		memset(ip + 16, 0xff, 4);
	else
		memcpy(ip + 16, net->guest, 4);
	put16(ip + 10, csum(ip, 20, 0));
	put16(udp, 67);
	put16(udp + 2, 68);
	put16(udp + 4, (uint16_t)(tot - 20));
	uint16_t c =
		csum(udp, tot - 20,
		     17u + (uint32_t)(tot - 20) + ((uint32_t)ip[12] << 8 | ip[13]) +
			     ((uint32_t)ip[14] << 8 | ip[15]) + ((uint32_t)ip[16] << 8 | ip[17]) +
			     ((uint32_t)ip[18] << 8 | ip[19]));
	put16(udp + 6, c ? c : 0xffff);
	net->send(r, 14 + tot);
	if (type == 2)
		net->dhcp_offers++;
	else if (type == 5)
		net->dhcp_acks++;
}

void tinynet_frame(struct tinynet *net, const uint8_t *f, size_t len)
{
	net->frames++;
	if (len < 14 || len > 65535) {
		net->bad++;
		return;
	}
	uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
	if (type == 0x0806 && len >= 42 && f[20] == 0 && f[21] == 1) {
		arp(net, f);
		return;
	}
	if (type != 0x0800 || len < 34)
		return;
	size_t ihl = (size_t)(f[14] & 15) * 4, tot = (size_t)(f[16] << 8 | f[17]);
	if (ihl < 20 || tot < ihl + 8 || 14 + tot > len) {
		net->bad++;
		return;
	}
	const uint8_t *l4 = f + 14 + ihl;
	if (f[23] == 1 && l4[0] == 8)
		echo(net, f, ihl, tot);
	else if (f[23] == 17 && l4[1] == 68 && l4[3] == 67 && l4[0] == 0 && l4[2] == 0)
		dhcp(net, f, l4 + 8, tot - ihl - 8);
}
