/*
 * Loading a Linux kernel on x86_64:
 *  - an uncompressed vmlinux (ELF) entered through PVH: 32-bit protected mode at the address of
 *    its XEN_ELFNOTE_PHYS32_ENTRY note, %ebx = hvm_start_info (xen/arch-x86/hvm/start_info.h);
 *  - a bzImage entered through the 64-bit boot protocol (Documentation/x86/boot.rst): long mode,
 *    identity-mapped, at load address + 0x200, %rsi = boot_params.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../arch.h"
#include "ec1/ec1.h"
#include "../vm.h"
#include "layout.h"
#include "mptable.h"

#define E820_RAM      1
#define E820_RESERVED 2
#define E820_MAX      8

struct e820_entry {
	uint64_t addr, size;
	uint32_t type;
} __attribute__((packed));

/* The guest's memory map: low RAM, the EBDA/BIOS hole, RAM up to the MMIO hole, RAM above 4G. */
static unsigned int e820_build(const struct vm *vm, struct e820_entry *e)
{
	const struct guest_mem *mem = &vm->mem;
	unsigned int n = 0;

	e[n++] = (struct e820_entry){0, X86_EBDA_START, E820_RAM};
	e[n++] =
		(struct e820_entry){X86_EBDA_START, X86_HIGH_START - X86_EBDA_START, E820_RESERVED};
	e[n++] = (struct e820_entry){X86_HIGH_START, mem->regions[0].size - X86_HIGH_START,
				     E820_RAM};
	if (mem->nr_regions > 1)
		e[n++] = (struct e820_entry){mem->regions[1].gpa, mem->regions[1].size, E820_RAM};
	return n;
}

static int read_at(int fd, void *buf, size_t len, off_t off)
{
	while (len) {
		ssize_t r = pread(fd, buf, len, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		buf = (char *)buf + r;
		len -= (size_t)r;
		off += r;
	}
	return 0;
}

#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* Finds the PVH entry note in a PT_NOTE segment. */
static int pvh_entry(int fd, const Elf64_Phdr *ph, uint64_t *entry)
{
	uint8_t notes[4096];
	size_t len = ph->p_filesz < sizeof(notes) ? ph->p_filesz : sizeof(notes);

	if (read_at(fd, notes, len, (off_t)ph->p_offset))
		return -EIO;
	for (size_t off = 0; off + sizeof(Elf64_Nhdr) <= len;) {
		Elf64_Nhdr nh;
		memcpy(&nh, notes + off, sizeof(nh));
		size_t name_off = off + sizeof(nh);
		size_t desc_off = name_off + ((nh.n_namesz + 3) & ~3u);
		size_t next = desc_off + ((nh.n_descsz + 3) & ~3u);
		if (next > len)
			break;
		if (nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh.n_namesz == 4 &&
		    memcmp(notes + name_off, "Xen", 4) == 0 &&
		    (nh.n_descsz == 4 || nh.n_descsz == 8)) {
			uint64_t v = 0;
			memcpy(&v, notes + desc_off, nh.n_descsz);
			*entry = v;
			return 0;
		}
		off = next;
	}
	return -ENOENT;
}

static int load_elf(struct vm *vm, int fd, const char *path, char *msg, size_t msg_size)
{
	Elf64_Ehdr eh;
	bool have_entry = false;

	if (read_at(fd, &eh, sizeof(eh), 0) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_machine != EM_X86_64 || eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 64)
		VM_FAIL(EC1_EINVAL, "kernel.path: %s: not an x86_64 ELF kernel", path);
	Elf64_Phdr ph[64];
	if (read_at(fd, ph, eh.e_phnum * sizeof(Elf64_Phdr), (off_t)eh.e_phoff))
		VM_FAIL(EC1_EINVAL, "kernel.path: %s: truncated ELF program headers", path);
	vm->kernel_end = 0;
	for (unsigned int i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type == PT_NOTE && !have_entry)
			have_entry = pvh_entry(fd, &ph[i], &vm->entry) == 0;
		if (ph[i].p_type != PT_LOAD)
			continue;
		void *dst = vm_ptr(vm, ph[i].p_paddr, ph[i].p_memsz);
		if (!dst || ph[i].p_filesz > ph[i].p_memsz)
			VM_FAIL(EC1_EINVAL,
				"kernel.path: %s: segment at 0x%llx (%llu bytes) does not fit in "
				"%u "
				"MiB of "
				"guest RAM",
				path, (unsigned long long)ph[i].p_paddr,
				(unsigned long long)ph[i].p_memsz, vm->cfg->ram_mib);
		if (guest_mem_load_file(&vm->mem, ph[i].p_paddr, fd, ph[i].p_offset,
					ph[i].p_filesz))
			VM_FAIL(EC1_EINVAL, "kernel.path: %s: truncated segment", path);
		/* Guest RAM is fresh anonymous memory: the rest of p_memsz is already zero. */
		if (ph[i].p_paddr + ph[i].p_memsz > vm->kernel_end)
			vm->kernel_end = ph[i].p_paddr + ph[i].p_memsz;
	}
	if (!have_entry)
		VM_FAIL(EC1_EINVAL,
			"kernel.path: %s: no PVH entry note (build the kernel with CONFIG_PVH)",
			path);
	vm->entry_64bit = false;
	vm->initrd_max = GUEST_MEM_LOW_END;
	return 0;
}

/* hvm_start_info and friends, xen/include/public/arch-x86/hvm/start_info.h, version 1. */
struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};
struct hvm_modlist_entry {
	uint64_t paddr, size, cmdline_paddr, reserved;
};
struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};
#define HVM_START_MAGIC 0x336ec578

static void pvh_boot_info(struct vm *vm, uint64_t initrd_gpa, uint64_t initrd_size)
{
	struct hvm_start_info *si = vm_ptr(vm, X86_BOOT_INFO_ADDR, sizeof(*si));
	struct hvm_modlist_entry *mod = (void *)(si + 1);
	struct hvm_memmap_entry *mm = vm_ptr(vm, X86_MEMMAP_ADDR, E820_MAX * sizeof(*mm));
	struct e820_entry e[E820_MAX];
	unsigned int n = e820_build(vm, e);

	memset(si, 0, sizeof(*si) + sizeof(*mod));
	si->magic = HVM_START_MAGIC;
	si->version = 1;
	si->cmdline_paddr = X86_CMDLINE_ADDR;
	si->memmap_paddr = X86_MEMMAP_ADDR;
	si->memmap_entries = n;
	for (unsigned int i = 0; i < n; i++)
		mm[i] = (struct hvm_memmap_entry){e[i].addr, e[i].size, e[i].type, 0};
	if (initrd_size) {
		si->nr_modules = 1;
		si->modlist_paddr = X86_BOOT_INFO_ADDR + sizeof(*si);
		mod->paddr = initrd_gpa;
		mod->size = initrd_size;
	}
	vm->boot_info = X86_BOOT_INFO_ADDR;
}

/* boot_params offsets, Documentation/x86/zero-page.rst and boot.rst. */
#define BP_E820_ENTRIES	   0x1e8
#define BP_SETUP_SECTS	   0x1f1
#define BP_HEADER	   0x202
#define BP_VERSION	   0x206
#define BP_TYPE_OF_LOADER  0x210
#define BP_LOADFLAGS	   0x211
#define BP_CODE32_START	   0x214
#define BP_RAMDISK_IMAGE   0x218
#define BP_RAMDISK_SIZE	   0x21c
#define BP_HEAP_END_PTR	   0x224
#define BP_CMD_LINE_PTR	   0x228
#define BP_INITRD_ADDR_MAX 0x22c
#define BP_XLOADFLAGS	   0x236
#define BP_INIT_SIZE	   0x260
#define BP_E820_TABLE	   0x2d0
#define XLF_KERNEL_64	   1
#define LOADED_HIGH	   1
#define CAN_USE_HEAP	   0x80

static int load_bzimage(struct vm *vm, int fd, const char *path, uint64_t file_size, char *msg,
			size_t msg_size)
{
	uint8_t *bp = vm_ptr(vm, X86_BOOT_INFO_ADDR, 4096);
	uint8_t hdr[1024];

	if (read_at(fd, hdr, sizeof(hdr), 0) || memcmp(hdr + BP_HEADER, "HdrS", 4) != 0)
		VM_FAIL(EC1_EINVAL, "kernel.path: %s: neither an ELF vmlinux nor a bzImage", path);
	uint16_t version;
	memcpy(&version, hdr + BP_VERSION, 2);
	uint16_t xload;
	memcpy(&xload, hdr + BP_XLOADFLAGS, 2);
	if (version < 0x20c || !(xload & XLF_KERNEL_64))
		VM_FAIL(EC1_EINVAL,
			"kernel.path: %s: bzImage without a 64-bit entry point (boot "
			"protocol 2.12+ needed)",
			path);
	unsigned int setup_sects = hdr[BP_SETUP_SECTS] ? hdr[BP_SETUP_SECTS] : 4;
	uint64_t kernel_off = (setup_sects + 1) * 512ull;
	if (kernel_off >= file_size)
		VM_FAIL(EC1_EINVAL, "kernel.path: %s: truncated bzImage", path);
	uint64_t kernel_size = file_size - kernel_off;
	uint32_t init_size;
	memcpy(&init_size, hdr + BP_INIT_SIZE, 4);
	uint64_t span = init_size > kernel_size ? init_size : kernel_size;
	void *dst = vm_ptr(vm, X86_HIGH_START, span);
	if (!dst)
		VM_FAIL(EC1_EINVAL, "kernel.path: %s: needs %llu MiB, more than the guest RAM",
			path, (unsigned long long)(span >> 20) + 1);
	if (guest_mem_load_file(&vm->mem, X86_HIGH_START, fd, kernel_off, kernel_size))
		VM_FAIL(EC1_EINVAL, "kernel.path: %s: read failed", path);
	vm->kernel_end = X86_HIGH_START + span;

	/* The setup header is copied as is; the loader fields are ours (boot.rst "loader"). */
	memset(bp, 0, 4096);
	unsigned int hdr_end = 0x202 + hdr[0x201];
	memcpy(bp + BP_SETUP_SECTS, hdr + BP_SETUP_SECTS, hdr_end - BP_SETUP_SECTS);
	bp[BP_TYPE_OF_LOADER] = 0xff;
	bp[BP_LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP;
	uint32_t v32 = X86_HIGH_START;
	memcpy(bp + BP_CODE32_START, &v32, 4);
	uint16_t heap = 0xfe00;
	memcpy(bp + BP_HEAP_END_PTR, &heap, 2);
	v32 = X86_CMDLINE_ADDR;
	memcpy(bp + BP_CMD_LINE_PTR, &v32, 4);
	uint32_t max;
	memcpy(&max, hdr + BP_INITRD_ADDR_MAX, 4);
	vm->initrd_max = (uint64_t)max + 1;
	struct e820_entry e[E820_MAX];
	unsigned int n = e820_build(vm, e);
	memcpy(bp + BP_E820_TABLE, e, n * sizeof(e[0]));
	bp[BP_E820_ENTRIES] = (uint8_t)n;
	vm->entry = X86_HIGH_START + 0x200;
	vm->entry_64bit = true;
	vm->boot_info = X86_BOOT_INFO_ADDR;
	return 0;
}

int arch_load_kernel(struct vm *vm, const char *path, char *msg, size_t msg_size)
{
	/* Never waits: a FIFO put in the file's place since it was set is refused below. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		VM_FAIL(EC1_EINVAL, "kernel.path: %s: %s", path, strerror(errno));
	struct stat st;
	unsigned char magic[4] = {0};
	int err;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode))
		err = EC1_EINVAL,
		snprintf(msg, msg_size, "kernel.path: %s: not a regular file", path);
	else if (read_at(fd, magic, 4, 0))
		err = EC1_EINVAL, snprintf(msg, msg_size, "kernel.path: %s: unreadable", path);
	else if (memcmp(magic, ELFMAG, 4) == 0)
		err = load_elf(vm, fd, path, msg, msg_size);
	else
		err = load_bzimage(vm, fd, path, (uint64_t)st.st_size, msg, msg_size);
	close(fd);
	return err;
}

int arch_write_boot_info(struct vm *vm, const char *cmdline, uint64_t initrd_gpa,
			 uint64_t initrd_size, char *msg, size_t msg_size)
{
	size_t cmdline_len = strlen(cmdline);
	if (cmdline_len >= X86_CMDLINE_MAX)
		VM_FAIL(EC1_EINVAL, "kernel.cmdline: %zu bytes, more than the %d allowed",
			cmdline_len, X86_CMDLINE_MAX - 1);
	memcpy(vm_ptr(vm, X86_CMDLINE_ADDR, X86_CMDLINE_MAX), cmdline, cmdline_len + 1);
	if (!vm->entry_64bit) {
		pvh_boot_info(vm, initrd_gpa, initrd_size);
		return 0;
	}
	uint8_t *bp = vm_ptr(vm, X86_BOOT_INFO_ADDR, 4096);
	uint32_t v = (uint32_t)initrd_gpa;
	memcpy(bp + BP_RAMDISK_IMAGE, &v, 4);
	v = (uint32_t)initrd_size;
	memcpy(bp + BP_RAMDISK_SIZE, &v, 4);
	return 0;
}

uint64_t arch_initrd_floor(const struct vm *vm)
{
	return vm->kernel_end;
}

uint64_t arch_initrd_ceiling(const struct vm *vm)
{
	uint64_t top = vm->mem.regions[0].size;
	return top < vm->initrd_max ? top : vm->initrd_max;
}

int x86_write_mptable(struct vm *vm)
{
	size_t size = mptable_size(vm->nr_vcpus);
	void *p = vm_ptr(vm, X86_EBDA_START, size);
	if (!p || X86_EBDA_START + size > X86_HIGH_START)
		return -ENOSPC;
	mptable_write(p, X86_EBDA_START, vm->nr_vcpus);
	return 0;
}
