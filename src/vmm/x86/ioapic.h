/*
 * The I/O APIC, emulated in this process: KVM keeps only the local APICs (split irqchip), so
 * destroying a VM costs no in-kernel PIC/IOAPIC/PIT teardown, and device interrupts go to the
 * guest as MSIs built from the redirection entries the guest programmed.
 */
#ifndef EC1_X86_IOAPIC_H
#define EC1_X86_IOAPIC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "layout.h"

/* Sends one message-signalled interrupt (Intel SDM vol. 3 §11.11 address and data). */
typedef void ioapic_deliver_fn(void *opaque, uint32_t msi_addr, uint32_t msi_data);

struct ioapic {
	pthread_mutex_t lock; /* guards what follows: vCPUs program, device threads raise */
	uint32_t regsel;
	uint32_t id;
	uint64_t rte[X86_IOAPIC_PINS];
	uint32_t pending; /* pins raised while masked, delivered when unmasked */
	ioapic_deliver_fn *deliver;
	void *opaque;
};

void ioapic_init(struct ioapic *io, uint8_t id, ioapic_deliver_fn *deliver, void *opaque);
void ioapic_destroy(struct ioapic *io);
/* A guest access at offset into the I/O APIC's page; reads fill data. */
void ioapic_mmio(struct ioapic *io, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* An edge on pin: delivered now, or when the guest unmasks the pin. */
void ioapic_raise(struct ioapic *io, unsigned int pin);

#endif
