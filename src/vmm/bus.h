/*
 * The device manager: hands each device its MMIO window, interrupt line and kernel command-line
 * fragment, owns every device of a VM (vm->devs), and walks them for guest accesses and for each
 * step of their lifecycle. Devices never know their address.
 */
#ifndef EC1_VMM_BUS_H
#define EC1_VMM_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;
struct virtio_dev_ops;
struct virtio_mmio_dev;

/*
 * Adds a virtio-mmio device (ops, priv) at the next free window and line. From here the VM owns
 * it: ops->finish and ops->destroy run at teardown, on set-up errors too. Returns 0 or -errno
 * (-ENOSPC: no window left; ops->destroy is not called then, priv stays the caller's).
 */
int vm_add_mmio(struct vm *vm, const struct virtio_dev_ops *ops, void *priv,
		struct virtio_mmio_dev **out) __attribute__((warn_unused_result));
/* A guest MMIO access: true when a device's window holds addr (the access is then done). */
bool vm_bus_mmio(struct vm *vm, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);
/*
 * Drains KVM's coalesced-MMIO ring (writes the guest made without an exit: the devices'
 * InterruptACK), in order, into the devices; any vCPU thread, at each exit.
 */
void vm_bus_flush_coalesced(struct vm *vm);
/*
 * Once every device is made: maps their register windows into the guest read-only, so that the
 * guest reads registers without an exit (writes still exit). Where KVM refuses, reads exit as
 * before. Returns 0.
 */
int vm_bus_map_registers(struct vm *vm);
/* Writes every device's command-line fragment into buf; returns the length it needed. */
size_t vm_bus_cmdline(const struct vm *vm, char *buf, size_t size);
/* Teardown, once the VM stopped: each device's ops->finish (before the vCPUs are joined). */
void vm_bus_finish(struct vm *vm);
/* Teardown, once no vCPU runs: statistics (with stats), then ops->destroy, and frees each. */
void vm_bus_destroy(struct vm *vm, bool stats);

#endif
