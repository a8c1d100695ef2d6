/* Guest physical layout: below 1 MiB (the boot code's), and where devices sit. */
#ifndef EC1_X86_LAYOUT_H
#define EC1_X86_LAYOUT_H

#define X86_GDT_ADDR	   0x500
#define X86_BOOT_INFO_ADDR 0x7000 /* hvm_start_info (PVH) or boot_params (bzImage) */
#define X86_MEMMAP_ADDR	   0x8000 /* PVH memory map */
#define X86_PML4_ADDR	   0x9000 /* identity page tables for the 64-bit entry: PML4, PDPT, 4 PDs */
#define X86_CMDLINE_ADDR   0x20000
#define X86_CMDLINE_MAX	   4096
#define X86_EBDA_START	   0x9fc00 /* reserved from here to 1 MiB; the MP table lives here */
#define X86_HIGH_START	   0x100000
#define X86_IOAPIC_ADDR	   0xfec00000u
#define X86_LAPIC_ADDR	   0xfee00000u
#define X86_IOAPIC_PINS	   24

/*
 * Devices (handed out by the device manager, bus.c): one 4 KiB virtio-mmio window each from
 * ARCH_MMIO_BASE, in the hole below 4 GiB, and interrupt lines from ARCH_MMIO_IRQ_BASE.
 */
#define ARCH_MMIO_BASE	   0xd0000000ull
#define ARCH_MMIO_STRIDE   0x1000ull
#define ARCH_MMIO_IRQ_BASE 5

#endif
