/*
 * libFuzzer target: published-port specifications, "[ADDR:]HOST:GUEST[/udp|/tcp]" (ADDR IPv4,
 * or IPv6 in brackets; ec1_parse_publish in src/lib/ctx.c), as --publish and the API's publish
 * and port_map entries give them, and a restricted NAT's allowed destinations,
 * "ADDR:PORT[/udp|/tcp]" (ec1_parse_allow, --allow). The input is the string; a spec taken has
 * ports 1..65535 and a reason otherwise.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lib/ec1_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	struct ec1_port p;
	const char *why = NULL;
	if (ec1_parse_publish(s, &p, &why) == 0) {
		/* An IPv6 address only from a spec that gives one in brackets. */
		if (!p.host_port || !p.guest_port || (p.v6 && (s[0] != '[' || p.host_addr)))
			abort();
	} else if (!why || !*why) {
		abort();
	}
	struct ec1_allow a;
	why = NULL;
	if (ec1_parse_allow(s, &a, &why) == 0) {
		if (!a.port)
			abort();
	} else if (!why || !*why) {
		abort();
	}
	free(s);
	return 0;
}
