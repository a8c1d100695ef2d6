/* x86 VM and vCPU set-up on KVM, and the few legacy ports a Linux guest touches. */
#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../arch.h"
#include "ec1/ec1.h"
#include "../vm.h"
#include "ioapic.h"
#include "layout.h"

int x86_write_mptable(struct vm *vm);

struct arch_vm {
	struct ioapic ioapic;
};

_Static_assert(ARCH_MMIO_IRQ_BASE + VM_MAX_DEVICES <= X86_IOAPIC_PINS,
	       "every virtio-mmio device needs its own I/O APIC pin");

/* Just below 4 GiB, out of the way of RAM and devices (KVM needs 3 pages for the TSS, 1 for EPT).
 */
#define TSS_ADDR	  0xfffbd000
#define IDENTITY_MAP_ADDR 0xfffbc000

bool arch_kvm_is_pvm(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

static void deliver_msi(void *opaque, uint32_t addr, uint32_t data)
{
	struct vm *vm = opaque;
	struct kvm_msi msi = {.address_lo = addr, .data = data};
	/* 0 means the guest's local APIC refused it (disabled): nothing to do either way. */
	if (ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi) < 0)
		vm_log(EC1_LOG_DEBUG, "ec1: KVM_SIGNAL_MSI: %s\n", strerror(errno));
}

/*
 * Interrupts: the local APICs in KVM, the I/O APIC here (KVM_CAP_SPLIT_IRQCHIP), no PIC and no
 * PIT. The guest finds no 8259 (its probe reads back all ones) and, offered the TSC-deadline
 * timer, needs no PIT. An in-kernel PIC, I/O APIC and PIT would cost some 20 ms at VM teardown
 * (measured on Linux 6.18) and a kernel thread per VM for the PIT.
 */
static int setup_irqchip(struct vm *vm, char *msg, size_t msg_size)
{
	struct kvm_enable_cap cap = {.cap = KVM_CAP_SPLIT_IRQCHIP, .args = {X86_IOAPIC_PINS}};
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) <= 0) {
		snprintf(msg, msg_size,
			 "KVM has no TSC-deadline timer, which the guest needs (there is no PIT)");
		return EC1_EKVM;
	}
	if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0) {
		snprintf(msg, msg_size, "KVM_CAP_SPLIT_IRQCHIP: %s", strerror(errno));
		return EC1_EKVM;
	}
	vm->arch = calloc(1, sizeof(*vm->arch));
	if (!vm->arch) {
		snprintf(msg, msg_size, "out of memory");
		return EC1_ENOMEM;
	}
	/* The MP table gives the I/O APIC the id after the CPUs'. */
	ioapic_init(&vm->arch->ioapic, (uint8_t)vm->nr_vcpus, deliver_msi, vm);
	return 0;
}

void arch_vm_free(struct vm *vm)
{
	if (vm->arch)
		ioapic_destroy(&vm->arch->ioapic);
	free(vm->arch);
	vm->arch = NULL;
}

bool arch_mmio(struct vm *vm, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	if (addr < X86_IOAPIC_ADDR || addr >= X86_IOAPIC_ADDR + 0x1000 || !vm->arch)
		return false;
	ioapic_mmio(&vm->arch->ioapic, addr - X86_IOAPIC_ADDR, data, len, is_write);
	return true;
}

void arch_irq(struct vm *vm, unsigned int line)
{
	if (vm->arch)
		ioapic_raise(&vm->arch->ioapic, line);
}

int arch_vm_init(struct vm *vm, char *msg, size_t msg_size)
{
	uint64_t identity = IDENTITY_MAP_ADDR;

	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, TSS_ADDR) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0) {
		snprintf(msg, msg_size, "KVM_SET_TSS_ADDR: %s", strerror(errno));
		return EC1_EKVM;
	}
	int err = setup_irqchip(vm, msg, msg_size);
	if (err)
		return err;
	if (x86_write_mptable(vm)) {
		snprintf(msg, msg_size, "vm.num_vcpus: %u CPUs do not fit in the MP table",
			 vm->nr_vcpus);
		return EC1_EINVAL;
	}
	/* GDT for both entry modes (null, null, code, data, TSS); entries from the Intel SDM
	 * §3.4.5. */
	uint64_t *gdt = vm_ptr(vm, X86_GDT_ADDR, 5 * 8);
	gdt[0] = 0;
	gdt[1] = 0;
	gdt[2] = vm->entry_64bit ? 0x00af9b000000ffffull : 0x00cf9b000000ffffull;
	gdt[3] = 0x00cf93000000ffffull;
	gdt[4] = 0x00008b0000000067ull;
	if (vm->entry_64bit) {
		/* Identity map of the first 4 GiB with 2 MiB pages: PML4 -> PDPT -> 4 PDs. */
		uint64_t *pml4 = vm_ptr(vm, X86_PML4_ADDR, 6 * 4096);
		uint64_t *pdpt = pml4 + 512, *pd = pml4 + 1024;
		memset(pml4, 0, 6 * 4096);
		pml4[0] = (X86_PML4_ADDR + 0x1000) | 3;
		for (unsigned int i = 0; i < 4; i++)
			pdpt[i] = (X86_PML4_ADDR + 0x2000 + i * 0x1000ull) | 3;
		for (unsigned int i = 0; i < 4 * 512; i++)
			pd[i] = ((uint64_t)i << 21) | 0x83; /* present, writable, 2 MiB page */
	}
	return 0;
}

static int set_cpuid(struct vm *vm, struct vcpu *vcpu)
{
	int nent = 256;
	struct kvm_cpuid2 *cpuid =
		calloc(1, sizeof(*cpuid) + nent * sizeof(struct kvm_cpuid_entry2));
	int err = 0;

	if (!cpuid)
		return -ENOMEM;
	cpuid->nent = (uint32_t)nent;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
		err = -errno;
		goto out;
	}
	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
		switch (e->function) {
		case 1:
			/* Initial APIC id, logical CPU count; we are a hypervisor guest (bit 31).
			 */
			e->ebx = (e->ebx & 0x0000ffff) | (vcpu->index << 24) | (vm->nr_vcpus << 16);
			e->ecx |= 1u << 31;
			/* KVM emulates the TSC-deadline timer (checked in setup_irqchip) though
			 * older hosts, Debian 12's among them, leave it out of the supported
			 * CPUID; without it the guest would calibrate its LAPIC timer against a
			 * PIT for some 200 ms of every boot. */
			e->ecx |= 1u << 24;
			if (vm->nr_vcpus > 1)
				e->edx |= 1u << 28; /* HTT: the count in ebx is valid */
			break;
		case 0xb:
		case 0x1f:
			e->edx = vcpu->index; /* x2APIC id */
			break;
		default:
			break;
		}
	}
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid) < 0)
		err = -errno;
out:
	free(cpuid);
	return err;
}

static void set_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code64)
{
	*s = (struct kvm_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = sel,
		.type = type,
		.present = 1,
		.dpl = 0,
		.db = code64 ? 0 : 1,
		.s = 1,
		.l = code64,
		.g = 1,
	};
}

/* LAPIC LVT entries for LINT0 (ExtINT) and LINT1 (NMI), as firmware leaves them. */
static int set_lint(struct vcpu *vcpu)
{
	struct kvm_lapic_state lapic;
	uint32_t v;

	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0)
		return -errno;
	memcpy(&v, lapic.regs + 0x350, 4);
	v = (v & ~0x700u) | (7u << 8);
	memcpy(lapic.regs + 0x350, &v, 4);
	memcpy(&v, lapic.regs + 0x360, 4);
	v = (v & ~0x700u) | (4u << 8);
	memcpy(lapic.regs + 0x360, &v, 4);
	return ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0 ? -errno : 0;
}

int arch_vcpu_init(struct vm *vm, struct vcpu *vcpu)
{
	int err = set_cpuid(vm, vcpu);
	if (!err)
		err = set_lint(vcpu);
	if (err || vcpu->index != 0)
		return err; /* application processors wait for INIT/SIPI in the in-kernel LAPIC */

	struct kvm_sregs sregs;
	struct kvm_regs regs = {.rflags = 2, .rip = vm->entry};
	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	set_seg(&sregs.cs, 0x10, 0xb, vm->entry_64bit);
	set_seg(&sregs.ds, 0x18, 0x3, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.tr = (struct kvm_segment){
		.base = 0, .limit = 0x67, .selector = 0x20, .type = 0xb, .present = 1, .s = 0};
	sregs.gdt.base = X86_GDT_ADDR;
	sregs.gdt.limit = 5 * 8 - 1;
	sregs.cr0 = 0x11; /* PE, ET */
	if (vm->entry_64bit) {
		/* boot.rst "64-bit boot protocol": long mode, paging on, %rsi = boot_params. */
		sregs.cr3 = X86_PML4_ADDR;
		sregs.cr4 = 0x20;	  /* PAE */
		sregs.cr0 |= 0x80000000u; /* PG */
		sregs.efer = 0x500;	  /* LME, LMA */
		regs.rsi = vm->boot_info;
	} else {
		/* PVH: 32-bit flat protected mode, paging off, %ebx = hvm_start_info. */
		sregs.cr4 = 0;
		sregs.efer = 0;
		regs.rbx = vm->boot_info;
	}
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0 ||
	    ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0 || ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;
	return 0;
}

#define RFLAGS_IF (1ull << 9)

bool arch_vcpu_halted_for_good(struct vcpu *v)
{
	struct kvm_mp_state mp;
	struct kvm_regs regs;
	return ioctl(v->fd, KVM_GET_MP_STATE, &mp) == 0 && mp.mp_state == KVM_MP_STATE_HALTED &&
	       ioctl(v->fd, KVM_GET_REGS, &regs) == 0 && !(regs.rflags & RFLAGS_IF);
}

#define I8042_COMMAND 0x64
#define I8042_RESET   0xfe

void arch_pio(struct vm *vm, uint16_t port, bool is_write, uint8_t *data, uint32_t size)
{
	if (port >= SERIAL_BASE && port < SERIAL_BASE + SERIAL_PORTS && size == 1) {
		if (serial_io(&vm->serial, port, is_write, data))
			vm_guest_halting(vm);
		return;
	}
	if (port == I8042_COMMAND && is_write && size == 1 && *data == I8042_RESET) {
		/* The keyboard-controller reset a kernel uses to reboot: the guest is done. */
		vm_stop(vm, 0, "guest reset");
		return;
	}
	if (!is_write)
		memset(data, 0xff, size); /* nothing there: a floating bus reads all ones */
}
