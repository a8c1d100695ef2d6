/*
 * init's DHCP client, the pure part (guest/init/dhcp.c): the DISCOVER, REQUEST and renewal it sends
 * are well-formed IPv4/UDP/DHCP (checksums that verify, the options a server needs), and replies
 * are taken only when they are ours and offer an address a host can use.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "../../guest/init/dhcp.h"
#include "check.h"

static const uint8_t mac[6] = {2, 0xec, 1, 0, 0, 7};
static const uint32_t xid = 0x78563412;

static uint32_t sum(const uint8_t *p, size_t n, uint32_t s)
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

static uint32_t ip4(const char *s)
{
	struct in_addr a;
	inet_pton(AF_INET, s, &a);
	return a.s_addr;
}

/* A server's reply (BOOTREPLY) to mac and xid offering yiaddr, options as given (no end). */
static size_t reply(uint8_t *p, const char *yiaddr, const uint8_t *opt, size_t opt_len, int udp_sum)
{
	memset(p, 0, 1500);
	uint8_t *udp = p + 20, *m = p + 28;
	m[0] = 2;
	m[1] = 1;
	m[2] = 6;
	memcpy(m + 4, &xid, 4);
	uint32_t y = ip4(yiaddr);
	memcpy(m + 16, &y, 4);
	memcpy(m + 28, mac, 6);
	m[236] = 99;
	m[237] = 130;
	m[238] = 83;
	m[239] = 99;
	memcpy(m + 240, opt, opt_len);
	m[240 + opt_len] = 255;
	size_t mlen = 240 + opt_len + 1, total = 28 + mlen;
	p[0] = 0x45;
	p[2] = (uint8_t)(total >> 8);
	p[3] = (uint8_t)total;
	p[8] = 64;
	p[9] = 17;
	uint32_t src = ip4("10.0.2.2");
	memcpy(p + 12, &src, 4);
	memset(p + 16, 0xff, 4);
	uint16_t c = fold(sum(p, 20, 0));
	p[10] = (uint8_t)(c >> 8);
	p[11] = (uint8_t)c;
	udp[1] = 67;
	udp[3] = 68;
	udp[4] = (uint8_t)((total - 20) >> 8);
	udp[5] = (uint8_t)(total - 20);
	if (udp_sum) {
		c = fold(sum(udp, total - 20, sum(p + 12, 8, 17 + (uint32_t)(total - 20))));
		c = c ? c : 0xffff;
		udp[6] = (uint8_t)(c >> 8);
		udp[7] = (uint8_t)c;
	}
	return total;
}

static const uint8_t lease_opts[] = {1,	 4, 255, 255, 255, 0, 3,  4,  10, 0, 2,	 2, 6, 16,
				     10, 0, 2,	 3,   8,   8, 8,  8,  1,  1, 1,	 1, 9, 9,
				     9,	 9, 51,	 4,   0,   0, 14, 16, 54, 4, 10, 0, 2, 2};

static size_t typed(uint8_t *p, int type, const char *yiaddr, const uint8_t *extra, size_t n,
		    int udp_sum)
{
	uint8_t opt[256] = {53, 1, (uint8_t)type};
	memcpy(opt + 3, extra, n);
	return reply(p, yiaddr, opt, 3 + n, udp_sum);
}

static void test_build_discover_and_request(void)
{
	uint8_t b[DHCP_PACKET_MAX];
	size_t n = dhcp_build(b, DHCP_DISCOVER, xid, mac, NULL);
	CHECK(n >= 28 + 300 && n <= DHCP_PACKET_MAX);
	CHECK(b[0] == 0x45 && b[9] == 17 && (size_t)(b[2] << 8 | b[3]) == n);
	CHECK(fold(sum(b, 20, 0)) == 0);
	CHECK(memcmp(b + 16, "\xff\xff\xff\xff", 4) == 0);
	CHECK(b[20] == 0 && b[21] == 68 && b[22] == 0 && b[23] == 67);
	CHECK(fold(sum(b + 20, n - 20, sum(b + 12, 8, 17 + (uint32_t)(n - 20)))) == 0);
	CHECK(b[28] == 1 && memcmp(b + 28 + 4, &xid, 4) == 0 && memcmp(b + 28 + 28, mac, 6) == 0);
	CHECK(b[28 + 240] == 53 && b[28 + 242] == DHCP_DISCOVER);
	struct dhcp_lease l = {.addr = ip4("10.0.2.15"), .server = ip4("10.0.2.2")};
	n = dhcp_build(b, DHCP_REQUEST, xid, mac, &l);
	CHECK(b[28 + 242] == DHCP_REQUEST);
	/* Options 50 (requested address) and 54 (server) carry the offer. */
	const uint8_t *o = b + 28 + 240;
	int saw50 = 0, saw54 = 0;
	for (size_t i = 0; i < n - 28 - 240 && o[i] != 255; i += 2u + o[i + 1]) {
		if (o[i] == 50 && memcmp(o + i + 2, &l.addr, 4) == 0)
			saw50 = 1;
		if (o[i] == 54 && memcmp(o + i + 2, &l.server, 4) == 0)
			saw54 = 1;
	}
	CHECK(saw50 && saw54);
	/* A renewal (RFC 2131 §4.3.2): a REQUEST from the address, ciaddr it, neither option. */
	n = dhcp_build(b, DHCP_RENEW, xid, mac, &l);
	CHECK(b[28 + 242] == DHCP_REQUEST && fold(sum(b, 20, 0)) == 0);
	CHECK(memcmp(b + 12, &l.addr, 4) == 0 && memcmp(b + 16, "\xff\xff\xff\xff", 4) == 0);
	CHECK(memcmp(b + 28 + 12, &l.addr, 4) == 0);
	CHECK(fold(sum(b + 20, n - 20, sum(b + 12, 8, 17 + (uint32_t)(n - 20)))) == 0);
	saw50 = saw54 = 0;
	for (size_t i = 0; i < n - 28 - 240 && o[i] != 255; i += 2u + o[i + 1])
		saw50 |= o[i] == 50, saw54 |= o[i] == 54;
	CHECK(!saw50 && !saw54);
}

static void test_offer_and_ack_parsed(void)
{
	uint8_t p[1500];
	struct dhcp_lease l;
	size_t n = typed(p, DHCP_OFFER, "10.0.2.15", lease_opts, sizeof(lease_opts), 1);
	CHECK(dhcp_parse(p, n, xid, mac, &l) == DHCP_OFFER);
	CHECK(l.addr == ip4("10.0.2.15") && l.mask == ip4("255.255.255.0"));
	CHECK(l.router == ip4("10.0.2.2") && l.server == ip4("10.0.2.2"));
	/* Four servers listed: the first three kept. */
	CHECK(l.nr_dns == 3 && l.dns[0] == ip4("10.0.2.3") && l.dns[2] == ip4("1.1.1.1"));
	CHECK(l.lease_s == 3600);
	/* No UDP checksum (0) is allowed in IPv4. */
	n = typed(p, DHCP_ACK, "10.0.2.15", lease_opts, sizeof(lease_opts), 0);
	CHECK(dhcp_parse(p, n, xid, mac, &l) == DHCP_ACK);
	/* A packet socket may hand over an Ethernet pad after the IP packet. */
	CHECK(dhcp_parse(p, n + 18, xid, mac, &l) == DHCP_ACK);
	uint8_t nak[] = {54, 4, 10, 0, 2, 2};
	n = typed(p, DHCP_NAK, "0.0.0.0", nak, sizeof(nak), 1);
	CHECK(dhcp_parse(p, n, xid, mac, &l) == DHCP_NAK);
}

static void test_no_mask_is_classful(void)
{
	uint8_t p[1500], opt[] = {54, 4, 10, 0, 2, 2};
	struct dhcp_lease l;
	size_t n = typed(p, DHCP_OFFER, "192.168.7.9", opt, sizeof(opt), 1);
	CHECK(dhcp_parse(p, n, xid, mac, &l) == DHCP_OFFER && l.mask == ip4("255.255.255.0"));
	CHECK(l.router == 0 && l.nr_dns == 0);
	n = typed(p, DHCP_OFFER, "10.1.2.3", opt, sizeof(opt), 1);
	CHECK(dhcp_parse(p, n, xid, mac, &l) == DHCP_OFFER && l.mask == ip4("255.0.0.0"));
}

static void test_replies_not_ours_or_malformed_ignored(void)
{
	uint8_t p[1500];
	struct dhcp_lease l;
	size_t n = typed(p, DHCP_OFFER, "10.0.2.15", lease_opts, sizeof(lease_opts), 1);
	uint8_t other[6] = {2, 0, 0, 0, 0, 9};
	CHECK(dhcp_parse(p, n, xid + 1, mac, &l) == 0);
	CHECK(dhcp_parse(p, n, xid, other, &l) == 0);
	CHECK(dhcp_parse(p, n - 1, xid, mac, &l) == 0); /* IP length past what was read */
	CHECK(dhcp_parse(p, 19, xid, mac, &l) == 0);
	uint8_t q[1500];
	memcpy(q, p, n);
	q[11] ^= 1; /* IP header checksum */
	CHECK(dhcp_parse(q, n, xid, mac, &l) == 0);
	memcpy(q, p, n);
	q[28 + 100] ^= 1; /* a byte under the UDP checksum */
	CHECK(dhcp_parse(q, n, xid, mac, &l) == 0);
	memcpy(q, p, n);
	q[6] = 0x20; /* a first fragment */
	q[10] = q[11] = 0;
	uint16_t c = fold(sum(q, 20, 0));
	q[10] = (uint8_t)(c >> 8);
	q[11] = (uint8_t)c;
	CHECK(dhcp_parse(q, n, xid, mac, &l) == 0);
	/* An option running past the message. */
	uint8_t past[] = {6, 200, 10, 0, 2, 3};
	n = typed(p, DHCP_OFFER, "10.0.2.15", past, sizeof(past), 1);
	CHECK(dhcp_parse(p, n, xid, mac, &l) == 0);
	/* No type, no server id, a request echoed back. */
	n = reply(p, "10.0.2.15", lease_opts, sizeof(lease_opts), 1);
	CHECK(dhcp_parse(p, n, xid, mac, &l) == 0);
	uint8_t noserver[] = {1, 4, 255, 255, 255, 0};
	n = typed(p, DHCP_OFFER, "10.0.2.15", noserver, sizeof(noserver), 1);
	CHECK(dhcp_parse(p, n, xid, mac, &l) == 0);
	uint8_t b[DHCP_PACKET_MAX];
	n = dhcp_build(b, DHCP_DISCOVER, xid, mac, NULL);
	CHECK(dhcp_parse(b, n, xid, mac, &l) == 0);
}

static void test_unusable_addresses_refused(void)
{
	uint8_t p[1500];
	struct dhcp_lease l;
	const char *bad[] = {"0.0.0.0",		"127.0.0.5", "224.0.0.1",
			     "255.255.255.255", "10.0.2.0",  "10.0.2.255"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = typed(p, DHCP_OFFER, bad[i], lease_opts, sizeof(lease_opts), 1);
		CHECK(dhcp_parse(p, n, xid, mac, &l) == 0);
	}
	/* Masks that are not ones-then-zeros, or leave no host. */
	uint8_t holes[] = {54, 4, 10, 0, 2, 2, 1, 4, 255, 0, 255, 0};
	size_t n = typed(p, DHCP_OFFER, "10.0.2.15", holes, sizeof(holes), 1);
	CHECK(dhcp_parse(p, n, xid, mac, &l) == 0);
	uint8_t all[] = {54, 4, 10, 0, 2, 2, 1, 4, 255, 255, 255, 255};
	n = typed(p, DHCP_OFFER, "10.0.2.15", all, sizeof(all), 1);
	CHECK(dhcp_parse(p, n, xid, mac, &l) == 0);
	/* A router that is the host itself, or multicast, is no router. */
	uint8_t selfgw[] = {54, 4, 10, 0, 2, 2, 3, 4, 10, 0, 2, 15, 6, 4, 224, 0, 0, 1};
	n = typed(p, DHCP_OFFER, "10.0.2.15", selfgw, sizeof(selfgw), 1);
	CHECK(dhcp_parse(p, n, xid, mac, &l) == DHCP_OFFER && l.router == 0 && l.nr_dns == 0);
}

int main(void)
{
	TEST(test_build_discover_and_request);
	TEST(test_offer_and_ack_parsed);
	TEST(test_no_mask_is_classful);
	TEST(test_replies_not_ours_or_malformed_ignored);
	TEST(test_unusable_addresses_refused);
	return tests_failed ? 1 : 0;
}
