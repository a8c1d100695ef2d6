/*
 * A network of one host for the fakes of what ec1's guests talk to (netpeer for passt's stream
 * and gvproxy's datagrams, the fake vmnet-helper): it answers ARP for every address but the
 * asker's, ICMP echo, and DHCP (RFC 2131: DISCOVER -> OFFER, REQUEST -> ACK or NAK, a REQUEST
 * that renews the guest's lease from its address -> ACK) the way passt, gvproxy and vmnet do: one
 * address for the guest, the gateway as router, server and DNS.
 * Replies go to the client's MAC and offered address, not to broadcast (as passt does), so a
 * client must take them before it has an address.
 */
#ifndef EC1_TEST_TINYNET_H
#define EC1_TEST_TINYNET_H

#include <stddef.h>
#include <stdint.h>

struct tinynet {
	uint8_t mac[6];		      /* the network's (gateway's) MAC */
	uint8_t gateway[4], guest[4]; /* addresses, in order on the wire */
	uint8_t prefix;		      /* the guest's network prefix length */
	void (*send)(const uint8_t *frame, size_t len);
	uint32_t lease_s; /* the lease DHCP gives; 0: 3600 (gvproxy's hour) */
	int nak_renewals; /* answer a renewal (a REQUEST naming ciaddr) with a NAK */
	unsigned long frames, arps, echoes, dhcp_offers, dhcp_acks, dhcp_renewals, bad;
};

/* One frame from the guest; answers through net->send. */
void tinynet_frame(struct tinynet *net, const uint8_t *f, size_t len);

#endif
