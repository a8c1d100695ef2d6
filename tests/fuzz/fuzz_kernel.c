/*
 * libFuzzer target: the kernel loader (src/vmm/x86/boot.c), whose input is the user's kernel
 * file: an ELF vmlinux (program headers, PVH note) or a bzImage (setup header). The input is the
 * file, given to the loader through a memfd, into 32 MiB of guest RAM. Checked: a refusal says
 * "kernel.path: ..."; a kernel that loads ends inside guest RAM, and the boot information for a
 * command line and an initramfs is written.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../src/vmm/arch.h"
#include "../../src/vmm/vm.h"

#define RAM (32ull << 20)

static struct vm_config cfg = {.ram_mib = RAM >> 20};
static struct vm vm;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	if (fd < 0) {
		if ((fd = memfd_create("fuzz-kernel", 0)) < 0 || guest_mem_init(&vm.mem, RAM))
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		vm.cfg = &cfg;
		vm.nr_vcpus = 1;
	}
	if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	vm.entry = vm.kernel_end = vm.initrd_max = vm.boot_info = 0;
	char msg[512] = "";
	int err = arch_load_kernel(&vm, path, msg, sizeof(msg));
	if (err) {
		if (strncmp(msg, "kernel.path: ", 13) != 0)
			abort();
		return 0;
	}
	if (vm.kernel_end > RAM || !vm.initrd_max)
		abort();
	/* An initramfs between the kernel and the ceiling, as initramfs.c places it, if any fits. */
	uint64_t top = arch_initrd_ceiling(&vm), floor = arch_initrd_floor(&vm);
	uint64_t gpa = top > floor + 4096 ? (top - 4096) & ~0xfffull : 0;
	if (arch_write_boot_info(&vm, "console=hvc0 quiet", gpa, gpa ? 4096 : 0, msg, sizeof(msg)))
		abort();
	if (!vm.boot_info)
		abort();
	return 0;
}
