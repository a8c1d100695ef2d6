/*
 * init's DHCPv4 client, the pure part (RFC 2131, options RFC 2132): building DISCOVER and
 * REQUEST as whole IPv4/UDP packets, and checking what comes back. The network is not trusted:
 * every length and offset in a reply is checked before use; fuzzed on the host (tests/fuzz).
 * init.c does the I/O, on a packet socket (eth0 has no address until the ACK).
 */
#ifndef EC1_INIT_DHCP_H
#define EC1_INIT_DHCP_H

#include <stddef.h>
#include <stdint.h>

enum {
	DHCP_DISCOVER = 1,
	DHCP_OFFER = 2,
	DHCP_REQUEST = 3,
	DHCP_ACK = 5,
	DHCP_NAK = 6,
};

#define DHCP_MAX_DNS	 3
#define DHCP_PACKET_MAX	 1500 /* what dhcp_build writes at most */
#define DHCP_CLIENT_PORT 68
#define DHCP_SERVER_PORT 67

/* What a server offered (addresses in network order; 0 where it said nothing). */
struct dhcp_lease {
	uint32_t addr, mask, router, server;
	uint32_t dns[DHCP_MAX_DNS];
	unsigned int nr_dns;
	uint32_t lease_s; /* 0xffffffff: forever */
};

/* dhcp_build's REQUEST that renews the lease on l->addr (RFC 2131 §4.3.2, §4.4.5). */
#define DHCP_RENEW 0x103

/*
 * A DISCOVER, or a REQUEST for l->addr from l->server, as an IPv4 packet from 0.0.0.0:68 to
 * 255.255.255.255:67 (checksums filled) into buf (DHCP_PACKET_MAX bytes); or, with DHCP_RENEW,
 * a REQUEST from l->addr:68 with l->addr as ciaddr and neither the address nor a server named,
 * which every server takes as a renewal of that client's lease. Returns its length.
 */
size_t dhcp_build(uint8_t *buf, int type, uint32_t xid, const uint8_t mac[6],
		  const struct dhcp_lease *l);

/*
 * An IPv4 packet as a packet socket gives it (no Ethernet header): when it is a well-formed
 * DHCP reply (OFFER, ACK or NAK) to xid and mac, its type, with the lease filled for an OFFER or
 * ACK that offers a usable address; 0 for anything else (not ours, malformed, an address that
 * cannot be a host's).
 */
int dhcp_parse(const uint8_t *pkt, size_t len, uint32_t xid, const uint8_t mac[6],
	       struct dhcp_lease *l);

#endif
