/*
 * I/O APIC register model after the Intel 82093AA datasheet: IOREGSEL at 0x00, IOWIN at 0x10;
 * registers 0x00 ID, 0x01 version, 0x02 arbitration, 0x10 + 2n / 0x11 + 2n the low and high
 * halves of redirection entry n. Every line is delivered as an edge: the guest's drivers read
 * and acknowledge device status themselves, and a line raised while masked is kept pending.
 */
#include "ioapic.h"

#include <string.h>

#define IOAPIC_VERSION 0x11 /* no EOI register (that came with version 0x20) */

enum { REG_SELECT = 0x00, REG_WINDOW = 0x10 };
enum { IDX_ID = 0x00, IDX_VERSION = 0x01, IDX_ARB = 0x02, IDX_RTE = 0x10 };

#define RTE_VECTOR	 0xffull
#define RTE_DELIVERY(r)	 (((r) >> 8) & 7)
#define RTE_DEST_LOGICAL (1ull << 11)
#define RTE_READ_ONLY	 ((1ull << 12) | (1ull << 14)) /* delivery status, remote IRR */
#define RTE_MASKED	 (1ull << 16)
#define RTE_EXT_DEST(r)	 (((r) >> 49) & 0x7f) /* KVM's extended destination ID */
#define RTE_DEST(r)	 ((r) >> 56)
#define DELIVERY_LOWEST	 1
#define DELIVERY_EXTINT	 7
#define MSI_ADDRESS_BASE 0xfee00000u

void ioapic_init(struct ioapic *io, uint8_t id, ioapic_deliver_fn *deliver, void *opaque)
{
	memset(io, 0, sizeof(*io));
	pthread_mutex_init(&io->lock, NULL);
	io->id = id;
	for (unsigned int i = 0; i < X86_IOAPIC_PINS; i++)
		io->rte[i] = RTE_MASKED; /* the reset state */
	io->deliver = deliver;
	io->opaque = opaque;
}

void ioapic_destroy(struct ioapic *io)
{
	pthread_mutex_destroy(&io->lock);
}

/* The MSI an entry describes; false for what has no MSI form (ExtINT: there is no PIC). */
static bool rte_to_msi(uint64_t rte, uint32_t *addr, uint32_t *data)
{
	uint32_t mode = (uint32_t)RTE_DELIVERY(rte);
	if (mode == DELIVERY_EXTINT)
		return false;
	*addr = MSI_ADDRESS_BASE | (uint32_t)RTE_DEST(rte) << 12 |
		(uint32_t)RTE_EXT_DEST(rte) << 5 | (mode == DELIVERY_LOWEST ? 1u << 3 : 0) |
		((rte & RTE_DEST_LOGICAL) ? 1u << 2 : 0);
	*data = (uint32_t)(rte & RTE_VECTOR) | mode << 8;
	return true;
}

static uint32_t read_reg(struct ioapic *io, uint32_t idx)
{
	switch (idx) {
	case IDX_ID:
	case IDX_ARB:
		return io->id << 24;
	case IDX_VERSION:
		return (X86_IOAPIC_PINS - 1) << 16 | IOAPIC_VERSION;
	default:
		if (idx >= IDX_RTE && idx < IDX_RTE + 2 * X86_IOAPIC_PINS) {
			uint64_t rte = io->rte[(idx - IDX_RTE) / 2];
			return (uint32_t)(idx & 1 ? rte >> 32 : rte);
		}
		return 0;
	}
}

/* Returns true with the MSI filled when the write unmasked a pin that has an edge waiting. */
static bool write_reg(struct ioapic *io, uint32_t idx, uint32_t v, uint32_t *addr, uint32_t *data)
{
	if (idx == IDX_ID) {
		io->id = (v >> 24) & 0xf;
		return false;
	}
	if (idx < IDX_RTE || idx >= IDX_RTE + 2 * X86_IOAPIC_PINS)
		return false; /* version and arbitration are read-only; the rest does not exist */
	unsigned int pin = (idx - IDX_RTE) / 2;
	uint64_t rte = io->rte[pin];
	if (idx & 1)
		rte = (rte & 0xffffffffull) | (uint64_t)v << 32;
	else
		rte = (rte & ~0xffffffffull) | (v & ~(uint32_t)RTE_READ_ONLY);
	io->rte[pin] = rte;
	if ((rte & RTE_MASKED) || !(io->pending & (1u << pin)))
		return false;
	io->pending &= ~(1u << pin);
	return rte_to_msi(rte, addr, data);
}

void ioapic_mmio(struct ioapic *io, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	uint32_t v = 0, msi_addr = 0, msi_data = 0;
	bool deliver = false;

	if (len != 4 || (offset != REG_SELECT && offset != REG_WINDOW)) {
		if (!is_write)
			memset(data, 0, len); /* only aligned 32-bit accesses are defined */
		return;
	}
	if (is_write)
		memcpy(&v, data, 4);
	pthread_mutex_lock(&io->lock);
	if (offset == REG_SELECT) {
		if (is_write)
			io->regsel = v & 0xff;
		else
			v = io->regsel;
	} else if (is_write) {
		deliver = write_reg(io, io->regsel, v, &msi_addr, &msi_data);
	} else {
		v = read_reg(io, io->regsel);
	}
	pthread_mutex_unlock(&io->lock);
	if (!is_write)
		memcpy(data, &v, 4);
	if (deliver)
		io->deliver(io->opaque, msi_addr, msi_data);
}

void ioapic_raise(struct ioapic *io, unsigned int pin)
{
	uint32_t addr, data;
	bool deliver = false;

	if (pin >= X86_IOAPIC_PINS)
		return;
	pthread_mutex_lock(&io->lock);
	uint64_t rte = io->rte[pin];
	if (rte & RTE_MASKED)
		io->pending |= 1u << pin;
	else
		deliver = rte_to_msi(rte, &addr, &data);
	pthread_mutex_unlock(&io->lock);
	if (deliver)
		io->deliver(io->opaque, addr, data);
}
