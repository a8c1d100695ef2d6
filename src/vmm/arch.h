/* What the VMM core asks of the architecture code (src/vmm/x86/ for now). */
#ifndef EC1_ARCH_H
#define EC1_ARCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "x86/layout.h" /* ARCH_MMIO_*: where devices sit */

struct vm;
struct vcpu;

/* VM-wide set-up after memory exists: interrupt controllers, timers, firmware tables. */
int arch_vm_init(struct vm *vm, char *msg, size_t msg_size);
/* Frees what arch_vm_init made (safe after a partial set-up). */
void arch_vm_free(struct vm *vm);
/* A guest MMIO access to what the architecture emulates; false when addr is not its. */
bool arch_mmio(struct vm *vm, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);
/* An edge on a device interrupt line (ARCH_MMIO_IRQ_BASE + device index). */
void arch_irq(struct vm *vm, unsigned int line);
/*
 * Loads the kernel image at path into guest memory. Sets vm->entry, vm->entry_64bit,
 * vm->kernel_end and vm->initrd_max. Returns 0 or an EC1_E* code with msg filled.
 */
int arch_load_kernel(struct vm *vm, const char *path, char *msg, size_t msg_size);
/* Writes the command line and boot information (memory map, initrd); sets vm->boot_info. */
int arch_write_boot_info(struct vm *vm, const char *cmdline, uint64_t initrd_gpa,
			 uint64_t initrd_size, char *msg, size_t msg_size);
/* Lowest guest address the initrd may use (above the loaded kernel). */
uint64_t arch_initrd_floor(const struct vm *vm);
/* Highest guest address + 1 the initrd may reach. */
uint64_t arch_initrd_ceiling(const struct vm *vm);
/* Per-vCPU register, CPUID and LAPIC set-up. Returns 0 or -errno. */
int arch_vcpu_init(struct vm *vm, struct vcpu *vcpu);
/* Port I/O from the guest (serial console, reset). size is 1, 2 or 4. */
void arch_pio(struct vm *vm, uint16_t port, bool is_write, uint8_t *data, uint32_t size);
/* True when /dev/kvm is PVM (the kvm_pvm module), where an ordinary kernel cannot run. */
bool arch_kvm_is_pvm(void);
/*
 * In vCPU v's own thread, out of KVM_RUN: whether the vCPU stopped for good — halted with
 * interrupts off, as a kernel leaves each CPU when it halts or powers off where nothing can
 * power the machine off. Only an NMI or a reset could wake it.
 */
bool arch_vcpu_halted_for_good(struct vcpu *v);

#endif
