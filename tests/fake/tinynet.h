/*
 * A network of one host for the fakes of what ec1's guests talk to (netpeer for passt's stream
 * and gvproxy's datagrams, the fake vmnet-helper): it answers ARP for every address but the
 * asker's, ICMP echo, and DHCP (RFC 2131: DISCOVER -> OFFER, REQUEST -> ACK or NAK) the way
 * passt, gvproxy and vmnet do: one address for the guest, the gateway as router, server and DNS.
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
	unsigned long frames, arps, echoes, dhcp_offers, dhcp_acks, bad;
};

/* One frame from the guest; answers through net->send. */
void tinynet_frame(struct tinynet *net, const uint8_t *f, size_t len);

#endif
