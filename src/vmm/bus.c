/* The device manager (bus.h): windows, lines, command line, lifecycle walks. */
#include "bus.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "arch.h"
#include "ec1/ec1.h"
#include "virtio/mmio.h"
#include "vm.h"

static void host_irq(void *ctx, unsigned int gsi)
{
	arch_irq(ctx, gsi);
}

static int host_ioeventfd(void *ctx, uint64_t addr, uint32_t len, int fd)
{
	struct vm *vm = ctx;
	struct kvm_ioeventfd io = {.addr = addr, .len = len, .fd = fd};
	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

/* A zone whose writes wait in the coalesced ring (only where the VM has one). */
static int host_coalesce(void *ctx, uint64_t addr, uint32_t len)
{
	struct vm *vm = ctx;
	if (!vm->coalesced_page)
		return -ENOTSUP;
	struct kvm_coalesced_mmio_zone z = {.addr = addr, .size = len};
	return ioctl(vm->vm_fd, KVM_REGISTER_COALESCED_MMIO, &z) < 0 ? -errno : 0;
}

static void host_fail(void *ctx, const char *device, const char *what)
{
	vm_stop(ctx, EC1_EGUEST, "guest driver error on virtio-%s: %s", device, what);
}

static uint8_t *host_register_page(void *ctx, uint64_t base)
{
	struct vm *vm = ctx;
	_Static_assert(ARCH_MMIO_STRIDE == VIRTIO_MMIO_WINDOW, "a page per window");
	return vm->reg_pages ? vm->reg_pages + (base - ARCH_MMIO_BASE) : NULL;
}

/* The pages of every window the VM may have, where the guest can read them without exits. */
static void alloc_register_pages(struct vm *vm)
{
	const char *how = getenv("EC1_REGISTERS");
	if ((how && !strcmp(how, "exit")) ||
	    ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0)
		return;
	void *p = mmap(NULL, VM_MAX_DEVICES * ARCH_MMIO_STRIDE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	vm->reg_pages = p == MAP_FAILED ? NULL : p;
}

int vm_add_mmio(struct vm *vm, const struct virtio_dev_ops *ops, void *priv,
		struct virtio_mmio_dev **out)
{
	unsigned int i = vm->nr_devs;
	if (i == VM_MAX_DEVICES)
		return -ENOSPC;
	if (i == 0) { /* once: the devices added before already use it */
		alloc_register_pages(vm);
		vm->mmio_host = (struct virtio_mmio_host){
			.mem = &vm->mem,
			.ctx = vm,
			.irq = host_irq,
			.ioeventfd = host_ioeventfd,
			.coalesce = host_coalesce,
			.fail = host_fail,
			.register_page = host_register_page,
		};
	}
	struct virtio_mmio_dev *d =
		virtio_mmio_new(&vm->mmio_host, ops, priv, ARCH_MMIO_BASE + ARCH_MMIO_STRIDE * i,
				ARCH_MMIO_IRQ_BASE + i);
	if (!d)
		return -ENOMEM;
	vm->devs[i] = d;
	__atomic_store_n(&vm->nr_devs, i + 1, __ATOMIC_RELEASE); /* vm_stop reads it */
	*out = d;
	return 0;
}

bool vm_bus_mmio(struct vm *vm, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	if (addr < ARCH_MMIO_BASE || len > 8)
		return false;
	uint64_t i = (addr - ARCH_MMIO_BASE) / ARCH_MMIO_STRIDE;
	if (i >= vm->nr_devs)
		return false;
	virtio_mmio_access(vm->devs[i], (addr - ARCH_MMIO_BASE) % ARCH_MMIO_STRIDE, data, len,
			   is_write);
	return true;
}

void vm_bus_flush_coalesced(struct vm *vm)
{
	struct kvm_coalesced_mmio_ring *ring = vm->coalesced;
	if (!ring || __atomic_load_n(&ring->first, __ATOMIC_ACQUIRE) ==
			     __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE))
		return;
	const uint32_t max = vm->coalesced_max;
	pthread_mutex_lock(&vm->coalesced_lock);
	uint32_t first = ring->first;
	while (first < max && first != __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE)) {
		struct kvm_coalesced_mmio e = ring->coalesced_mmio[first];
		uint64_t i = (e.phys_addr - ARCH_MMIO_BASE) / ARCH_MMIO_STRIDE;
		if (e.phys_addr >= ARCH_MMIO_BASE && e.len <= sizeof(e.data) && i < vm->nr_devs)
			virtio_mmio_write_coalesced(
				vm->devs[i], (e.phys_addr - ARCH_MMIO_BASE) % ARCH_MMIO_STRIDE,
				e.data, e.len);
		first = (first + 1) % max;
		__atomic_store_n(&ring->first, first, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&vm->coalesced_lock);
}

int vm_bus_map_registers(struct vm *vm)
{
	if (!vm->reg_pages || !vm->nr_devs)
		return 0;
	for (unsigned int i = 0; i < vm->nr_devs; i++)
		virtio_mmio_sync_page(vm->devs[i]);
	struct kvm_userspace_memory_region r = {
		.slot = VM_REGISTERS_SLOT,
		.flags = KVM_MEM_READONLY,
		.guest_phys_addr = ARCH_MMIO_BASE,
		.memory_size = vm->nr_devs * ARCH_MMIO_STRIDE,
		.userspace_addr = (uint64_t)(uintptr_t)vm->reg_pages,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		/* The pages stay current; the guest's reads exit and are answered as before. */
		vm_log(EC1_LOG_INFO, "virtio-mmio: registers read through exits: %s",
		       strerror(errno));
	return 0;
}

size_t vm_bus_cmdline(const struct vm *vm, char *buf, size_t size)
{
	size_t n = 0;
	for (unsigned int i = 0; i < vm->nr_devs; i++)
		n += (size_t)virtio_mmio_cmdline(vm->devs[i], n < size ? buf + n : NULL,
						 n < size ? size - n : 0);
	return n;
}

void vm_bus_finish(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_devs; i++)
		if (vm->devs[i]->ops->finish)
			vm->devs[i]->ops->finish(vm->devs[i]);
}

void vm_bus_destroy(struct vm *vm, bool stats)
{
	for (unsigned int i = 0; i < vm->nr_devs; i++) {
		struct virtio_mmio_dev *d = vm->devs[i];
		if (stats) {
			virtio_mmio_print_stats(d);
			if (d->ops->print_stats)
				d->ops->print_stats(d);
		}
		if (d->ops->destroy)
			d->ops->destroy(d);
		virtio_mmio_free(d);
	}
	vm->nr_devs = 0;
	if (vm->reg_pages)
		munmap(vm->reg_pages, VM_MAX_DEVICES * ARCH_MMIO_STRIDE);
	vm->reg_pages = NULL;
}
