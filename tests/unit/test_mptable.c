/* MP tables: signatures, checksums and entry counts the guest kernel validates. */
#include <stdint.h>
#include <stdlib.h>

#include "../../src/vmm/x86/mptable.h"
#include "check.h"

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	while (n--)
		s += *p++;
	return s;
}

static void mptable_has_valid_checksums_and_counts(void)
{
	for (unsigned int cpus = 1; cpus <= 64; cpus *= 4) {
		size_t size = mptable_size(cpus);
		uint8_t *buf = calloc(1, size);
		uint32_t gpa = 0x9fc00;
		mptable_write(buf, gpa, cpus);
		CHECK(memcmp(buf, "_MP_", 4) == 0);
		CHECK(sum(buf, 16) == 0);
		uint32_t phys;
		memcpy(&phys, buf + 4, 4);
		CHECK(phys == gpa + 16);
		uint8_t *h = buf + 16;
		CHECK(memcmp(h, "PCMP", 4) == 0);
		uint16_t len, count;
		memcpy(&len, h + 4, 2);
		memcpy(&count, h + 34, 2);
		CHECK(16 + (size_t)len == size);
		CHECK(sum(h, len) == 0);
		CHECK(count == cpus + 1 + 1 + 24 + 2);
		/* First processor entry is the enabled bootstrap processor. */
		CHECK(h[44] == 0 && h[44 + 3] == 3);
		free(buf);
	}
}

int main(void)
{
	TEST(mptable_has_valid_checksums_and_counts);
	return tests_failed != 0;
}
