/*
 * A fake VM for tests and fuzz targets that drive the virtio-mmio transport alone (it links with
 * nothing of the VM): guest memory of its own, and the failures and interrupts it is asked for
 * recorded instead of done.
 */
#ifndef EC1_TEST_MMIO_HOST_H
#define EC1_TEST_MMIO_HOST_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../src/vmm/guest_mem.h"
#include "../../src/vmm/virtio/mmio.h"

static struct guest_mem fake_mem;
static int fake_failed; /* the driver broke the protocol (the first time wins, as in the VMM) */
static char fake_fail_msg[512];
static unsigned int fake_irqs;

static void fake_irq(void *ctx, unsigned int gsi)
{
	(void)ctx;
	(void)gsi;
	fake_irqs++;
}

static int fake_ioeventfd(void *ctx, uint64_t addr, uint32_t len, int fd)
{
	(void)ctx;
	(void)addr;
	(void)len;
	(void)fd;
	return -ENOSYS;
}

/* The zones devices asked to coalesce (their writes wait in KVM's ring, applied at the next exit).
 */
static struct {
	uint64_t addr;
	uint32_t len;
} fake_zones[16];
static unsigned int fake_nr_zones;

static int fake_coalesce(void *ctx, uint64_t addr, uint32_t len)
{
	(void)ctx;
	for (unsigned int i = 0; i < fake_nr_zones; i++)
		if (fake_zones[i].addr == addr && fake_zones[i].len == len)
			return 0; /* the same device again */
	if (fake_nr_zones == sizeof(fake_zones) / sizeof(fake_zones[0]))
		return -ENOSPC;
	fake_zones[fake_nr_zones].addr = addr;
	fake_zones[fake_nr_zones++].len = len;
	return 0;
}

/* Whether a write of len bytes at addr would wait in the ring. */
static inline int fake_coalesced(uint64_t addr, uint32_t len)
{
	for (unsigned int i = 0; i < fake_nr_zones; i++)
		if (addr >= fake_zones[i].addr &&
		    addr + len <= fake_zones[i].addr + fake_zones[i].len)
			return 1;
	return 0;
}

static void fake_fail(void *ctx, const char *device, const char *what)
{
	(void)ctx;
	if (fake_failed)
		return;
	fake_failed = 1;
	snprintf(fake_fail_msg, sizeof(fake_fail_msg), "guest driver error on virtio-%s: %s",
		 device, what);
}

/* The page a device made next mirrors its registers in (register_page); NULL: reads exit. */
static uint8_t *fake_page;

static uint8_t *fake_register_page(void *ctx, uint64_t base)
{
	(void)ctx;
	(void)base;
	return fake_page;
}

static const struct virtio_mmio_host fake_host = {
	.mem = &fake_mem,
	.irq = fake_irq,
	.ioeventfd = fake_ioeventfd,
	.coalesce = fake_coalesce,
	.fail = fake_fail,
	.register_page = fake_register_page,
};

static inline void fake_reset(void)
{
	fake_failed = 0;
	fake_fail_msg[0] = 0;
	fake_irqs = 0;
}

static inline uint32_t mmio_read(struct virtio_mmio_dev *d, uint64_t off)
{
	uint32_t v = 0;
	virtio_mmio_access(d, off, (uint8_t *)&v, 4, false);
	return v;
}

/* A register write, through the coalesced ring where the device asked for one (as KVM does:
 * applied before the next access that exits). */
static inline void mmio_write(struct virtio_mmio_dev *d, uint64_t off, uint32_t v)
{
	if (fake_coalesced(d->base + off, 4))
		virtio_mmio_write_coalesced(d, off, (uint8_t *)&v, 4);
	else
		virtio_mmio_access(d, off, (uint8_t *)&v, 4, true);
}

/*
 * Whether the device's page shows what a read of each register and of its config space (and a
 * little past it) returns; InterruptStatus, which the page keeps apart, is not compared.
 */
static inline int fake_page_matches(struct virtio_mmio_dev *d)
{
	for (uint64_t off = 0; off < 0x100 + d->ops->config_size + 16; off += 4) {
		uint32_t p;
		memcpy(&p, d->page + off, 4);
		if (off != 0x060 && p != mmio_read(d, off))
			return 0;
	}
	return 1;
}

#endif
