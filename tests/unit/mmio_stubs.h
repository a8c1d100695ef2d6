/*
 * What virtio/mmio.c needs of the VM, for tests and fuzz targets that drive the transport alone:
 * a VM with guest memory, whose stop and interrupts are recorded instead of done.
 */
#ifndef EC1_TEST_MMIO_STUBS_H
#define EC1_TEST_MMIO_STUBS_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "../../src/vmm/virtio/mmio.h"
#include "../../src/vmm/vm.h"

static int stub_stop_code = -1;
static char stub_stop_msg[512];
static unsigned int stub_irqs;

void vm_stop(struct vm *vm, int code, const char *fmt, ...)
{
	(void)vm;
	if (stub_stop_code != -1)
		return; /* the first call wins, as in vm.c */
	stub_stop_code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(stub_stop_msg, sizeof(stub_stop_msg), fmt, ap);
	va_end(ap);
}

void vm_irq(struct vm *vm, unsigned int gsi)
{
	(void)vm;
	(void)gsi;
	stub_irqs++;
}

int vm_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, int fd)
{
	(void)vm;
	(void)addr;
	(void)len;
	(void)fd;
	return -ENOSYS;
}

static inline void stub_reset(void)
{
	stub_stop_code = -1;
	stub_stop_msg[0] = 0;
	stub_irqs = 0;
}

static inline uint32_t mmio_read(struct virtio_mmio_dev *d, uint64_t off)
{
	uint32_t v = 0;
	virtio_mmio_access(d, off, (uint8_t *)&v, 4, false);
	return v;
}

static inline void mmio_write(struct virtio_mmio_dev *d, uint64_t off, uint32_t v)
{
	virtio_mmio_access(d, off, (uint8_t *)&v, 4, true);
}

#endif
