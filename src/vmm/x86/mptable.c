/*
 * Intel MultiProcessor Specification 1.4 tables: how a guest without ACPI finds its CPUs, the
 * I/O APIC and the routing of ISA interrupt lines (MP spec §4).
 */
#include "mptable.h"

#include <string.h>

#include "layout.h"

struct mpf { /* floating pointer, §4.1 */
	char signature[4];
	uint32_t physptr;
	uint8_t length, spec, checksum, feature1;
	uint8_t feature2, feature3, feature4, feature5;
} __attribute__((packed));

struct mpc_header { /* configuration table header, §4.2 */
	char signature[4];
	uint16_t length;
	uint8_t spec, checksum;
	char oem[8], product[12];
	uint32_t oemptr;
	uint16_t oemsize, count;
	uint32_t lapic;
	uint16_t ext_length;
	uint8_t ext_checksum, reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type, apicid, apicver, cpuflag;
	uint32_t cpufeature, featureflag, reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type, busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type, apicid, apicver, flags;
	uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc { /* I/O (type 3) and local (type 4) interrupt assignments */
	uint8_t type, irqtype;
	uint16_t irqflag;
	uint8_t srcbus, srcbusirq, dstapic, dstirq;
} __attribute__((packed));

enum { MP_PROCESSOR, MP_BUS, MP_IOAPIC, MP_INTSRC, MP_LINTSRC };
enum { MP_INT, MP_NMI, MP_SMI, MP_EXTINT };
#define CPU_ENABLED    1
#define CPU_BSP	       2
#define APIC_VERSION   0x14
#define IOAPIC_VERSION 0x11

static uint8_t checksum(const void *p, size_t n)
{
	uint8_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += ((const uint8_t *)p)[i];
	return (uint8_t)-sum;
}

size_t mptable_size(unsigned int cpus)
{
	return sizeof(struct mpf) + sizeof(struct mpc_header) + cpus * sizeof(struct mpc_cpu) +
	       sizeof(struct mpc_bus) + sizeof(struct mpc_ioapic) +
	       (X86_IOAPIC_PINS + 2) * sizeof(struct mpc_intsrc);
}

void mptable_write(void *dst, uint32_t gpa, unsigned int cpus)
{
	uint8_t *base = dst;
	struct mpf *mpf = dst;
	struct mpc_header *h = (void *)(mpf + 1);
	uint8_t *p = (uint8_t *)(h + 1);
	uint8_t ioapic_id = (uint8_t)cpus;
	uint16_t count = 0;

	memset(dst, 0, mptable_size(cpus));
	for (unsigned int i = 0; i < cpus; i++) {
		struct mpc_cpu *c = (void *)p;
		c->type = MP_PROCESSOR;
		c->apicid = (uint8_t)i;
		c->apicver = APIC_VERSION;
		c->cpuflag = CPU_ENABLED | (i == 0 ? CPU_BSP : 0);
		c->cpufeature = 0x600;		 /* family 6 */
		c->featureflag = (1u << 9) | 1u; /* APIC, FPU */
		p += sizeof(*c);
		count++;
	}
	struct mpc_bus *bus = (void *)p;
	bus->type = MP_BUS;
	bus->busid = 0;
	memcpy(bus->bustype, "ISA   ", 6);
	p += sizeof(*bus);
	count++;
	struct mpc_ioapic *io = (void *)p;
	io->type = MP_IOAPIC;
	io->apicid = ioapic_id;
	io->apicver = IOAPIC_VERSION;
	io->flags = 1;
	io->apicaddr = X86_IOAPIC_ADDR;
	p += sizeof(*io);
	count++;
	/* ISA lines 0..23 straight to the same I/O APIC pins; flags 0: conforms to bus (edge,
	 * high). */
	for (unsigned int irq = 0; irq < X86_IOAPIC_PINS; irq++) {
		struct mpc_intsrc *s = (void *)p;
		s->type = MP_INTSRC;
		s->irqtype = MP_INT;
		s->srcbusirq = (uint8_t)irq;
		s->dstapic = ioapic_id;
		s->dstirq = (uint8_t)irq;
		p += sizeof(*s);
		count++;
	}
	struct mpc_intsrc *lint = (void *)p;
	lint[0] = (struct mpc_intsrc){.type = MP_LINTSRC, .irqtype = MP_EXTINT, .dstapic = 0xff};
	lint[1] = (struct mpc_intsrc){
		.type = MP_LINTSRC, .irqtype = MP_NMI, .dstapic = 0xff, .dstirq = 1};
	p += 2 * sizeof(*lint);
	count += 2;

	memcpy(h->signature, "PCMP", 4);
	h->length = (uint16_t)(p - (uint8_t *)h);
	h->spec = 4;
	memcpy(h->oem, "EC1     ", 8);
	memcpy(h->product, "MICROVM     ", 12);
	h->count = count;
	h->lapic = X86_LAPIC_ADDR;
	h->checksum = checksum(h, h->length);

	memcpy(mpf->signature, "_MP_", 4);
	mpf->physptr = gpa + (uint32_t)((uint8_t *)h - base);
	mpf->length = 1; /* in 16-byte units */
	mpf->spec = 4;
	mpf->checksum = checksum(mpf, sizeof(*mpf));
}
