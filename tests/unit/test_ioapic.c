/* The emulated I/O APIC: registers as the guest programs them, and the MSIs that come out. */
#include <stdint.h>

#include "../../src/vmm/x86/ioapic.h"
#include "check.h"

struct sent {
	unsigned int count;
	uint32_t addr, data;
};

static void record(void *opaque, uint32_t addr, uint32_t data)
{
	struct sent *s = opaque;
	s->count++;
	s->addr = addr;
	s->data = data;
}

static void put(struct ioapic *io, uint64_t offset, uint32_t v)
{
	ioapic_mmio(io, offset, (uint8_t *)&v, 4, true);
}

static uint32_t get(struct ioapic *io, uint64_t offset)
{
	uint32_t v = 0xdeadbeef;
	ioapic_mmio(io, offset, (uint8_t *)&v, 4, false);
	return v;
}

static void set_reg(struct ioapic *io, uint32_t idx, uint32_t v)
{
	put(io, 0x00, idx);
	put(io, 0x10, v);
}

static uint32_t reg(struct ioapic *io, uint32_t idx)
{
	put(io, 0x00, idx);
	return get(io, 0x10);
}

static void ioapic_reports_id_version_and_reset_state(void)
{
	struct sent s = {0};
	struct ioapic io;
	ioapic_init(&io, 3, record, &s);
	CHECK(reg(&io, 0x00) == 3u << 24);
	CHECK(reg(&io, 0x01) == 0x00170011); /* 24 entries, version 0x11 */
	set_reg(&io, 0x00, 5u << 24);
	CHECK(reg(&io, 0x00) == 5u << 24);
	set_reg(&io, 0x01, 0);
	CHECK(reg(&io, 0x01) == 0x00170011); /* read-only */
	for (uint32_t pin = 0; pin < 24; pin++)
		CHECK(reg(&io, 0x10 + 2 * pin) == 1u << 16); /* masked */
	CHECK(get(&io, 0x00) == 0x10 + 2 * 23);
	ioapic_destroy(&io);
}

static void ioapic_delivers_programmed_entries_as_msis(void)
{
	struct sent s = {0};
	struct ioapic io;
	ioapic_init(&io, 1, record, &s);
	/* Pin 5: vector 0x31, fixed, physical destination APIC 2, edge. */
	set_reg(&io, 0x10 + 2 * 5 + 1, 2u << 24);
	set_reg(&io, 0x10 + 2 * 5, 0x31);
	ioapic_raise(&io, 5);
	CHECK(s.count == 1 && s.addr == 0xfee02000 && s.data == 0x31);
	/* Pin 6: vector 0x40, lowest priority, logical destination 0x0f. */
	set_reg(&io, 0x10 + 2 * 6 + 1, 0x0fu << 24);
	set_reg(&io, 0x10 + 2 * 6, 0x40 | 1u << 8 | 1u << 11);
	ioapic_raise(&io, 6);
	CHECK(s.count == 2 && s.addr == (0xfee0f000 | 1u << 3 | 1u << 2) &&
	      s.data == (0x40 | 1u << 8));
	/* Delivery status and remote IRR are the device's to set, never the guest's. */
	set_reg(&io, 0x10 + 2 * 7, 0x41 | 1u << 12 | 1u << 14 | 1u << 15);
	CHECK(reg(&io, 0x10 + 2 * 7) == (0x41 | 1u << 15));
	/* ExtINT has no MSI form (there is no PIC): nothing is sent. */
	set_reg(&io, 0x10 + 2 * 8, 0x42 | 7u << 8);
	ioapic_raise(&io, 8);
	CHECK(s.count == 2);
	ioapic_destroy(&io);
}

static void ioapic_keeps_an_edge_raised_while_masked(void)
{
	struct sent s = {0};
	struct ioapic io;
	ioapic_init(&io, 1, record, &s);
	ioapic_raise(&io, 9); /* masked since reset */
	ioapic_raise(&io, 9);
	CHECK(s.count == 0);
	set_reg(&io, 0x10 + 2 * 9, 0x51); /* unmask: the waiting edge goes out once */
	CHECK(s.count == 1 && s.data == 0x51);
	set_reg(&io, 0x10 + 2 * 9, 0x51);
	CHECK(s.count == 1);
	set_reg(&io, 0x10 + 2 * 9, 0x51 | 1u << 16);
	set_reg(&io, 0x10 + 2 * 9, 0x52);
	CHECK(s.count == 1); /* nothing was raised while masked this time */
	ioapic_destroy(&io);
}

static void ioapic_ignores_what_does_not_exist(void)
{
	struct sent s = {0};
	struct ioapic io;
	ioapic_init(&io, 1, record, &s);
	set_reg(&io, 0x10 + 2 * 24, 0x60); /* past the last entry */
	CHECK(reg(&io, 0x10 + 2 * 24) == 0);
	put(&io, 0x00, 0x1234);
	CHECK(get(&io, 0x00) == 0x34); /* an 8-bit index */
	ioapic_raise(&io, 24);
	ioapic_raise(&io, 1000);
	CHECK(s.count == 0);
	uint8_t b[8];
	memset(b, 0xaa, sizeof(b));
	ioapic_mmio(&io, 0x10, b, 1, false); /* only 32-bit accesses are defined */
	CHECK(b[0] == 0 && b[1] == 0xaa);
	ioapic_mmio(&io, 0x11, b, 4, false);
	CHECK(b[0] == 0 && b[3] == 0);
	ioapic_mmio(&io, 0x20, b, 8, true);
	ioapic_mmio(&io, 0xfff, b, 1, true);
	CHECK(reg(&io, 0x10) == 1u << 16);
	ioapic_destroy(&io);
}

int main(void)
{
	TEST(ioapic_reports_id_version_and_reset_state);
	TEST(ioapic_delivers_programmed_entries_as_msis);
	TEST(ioapic_keeps_an_edge_raised_while_masked);
	TEST(ioapic_ignores_what_does_not_exist);
	return tests_failed != 0;
}
