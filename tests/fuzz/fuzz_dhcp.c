/*
 * libFuzzer target: the guest init's DHCP reply parser (guest/init/dhcp.c), which reads what
 * any host on the guest's network may send. The transaction id and MAC it expects are taken
 * from the input itself (where a reply carries them), so the fuzzer reaches the options. A
 * lease it accepts is one a host can use: a host address of a contiguous netmask, and a REQUEST
 * built from it is well-formed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../guest/init/dhcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t xid = 0;
	uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
	if (size >= 20 + 8 + 34) {
		size_t ihl = (size_t)(data[0] & 15) * 4;
		if (size >= ihl + 8 + 34) {
			memcpy(&xid, data + ihl + 8 + 4, 4);
			memcpy(mac, data + ihl + 8 + 28, 6);
		}
	}
	uint8_t *pkt = malloc(size ? size : 1); /* exact size: ASan sees any read past it */
	if (!pkt)
		return 0;
	memcpy(pkt, data, size);
	struct dhcp_lease l;
	int type = dhcp_parse(pkt, size, xid, mac, &l);
	if (type == DHCP_OFFER || type == DHCP_ACK) {
		uint32_t m = __builtin_bswap32(l.mask), a = __builtin_bswap32(l.addr);
		if (!m || (~m & (~m + 1)) != 0 || !(a & ~m) || (a & ~m) == ~m ||
		    l.nr_dns > DHCP_MAX_DNS)
			abort();
		static uint8_t out[DHCP_PACKET_MAX];
		size_t n = dhcp_build(out, DHCP_REQUEST, xid, mac, &l);
		if (n < 28 + 300 || n > DHCP_PACKET_MAX)
			abort();
	} else if (type != 0 && type != DHCP_NAK) {
		abort();
	}
	free(pkt);
	return 0;
}
