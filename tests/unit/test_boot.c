/*
 * The kernel loader (src/vmm/x86/boot.c): a kernel is the user's file, outside input. Small
 * ELF vmlinux and bzImage files built here load where they say; broken ones are refused with
 * the field and the reason; a FIFO is refused without waiting; the build's own vmlinux loads.
 */
#include <elf.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/vmm/arch.h"
#include "../../src/vmm/vm.h"
#include "../../src/vmm/x86/layout.h"
#include "check.h"
#include "ec1/ec1.h"

#define RAM_MIB	    64
#define ELF_LOAD    0x1000000 /* 16 MiB */
#define ELF_ENTRY   (ELF_LOAD + 0x40)
#define XEN_PHYS32  18
#define BZ_SETUP    2 /* setup sectors: the kernel starts at (2 + 1) * 512 */
#define BZ_KERNEL   (3 * 512)
#define BZ_FILE	    8192
#define BZ_INITSIZE 0x20000

static char dir[] = "/tmp/ec1-test-boot-XXXXXX";
static struct vm_config cfg = {.ram_mib = RAM_MIB};
static struct vm vm;
static char msg[512];

static void fresh_vm(void)
{
	guest_mem_free(&vm.mem);
	memset(&vm, 0, sizeof(vm));
	vm.cfg = &cfg;
	vm.nr_vcpus = 1;
	if (guest_mem_init(&vm.mem, (uint64_t)RAM_MIB << 20)) {
		printf("guest memory: cannot map %d MiB\n", RAM_MIB);
		exit(1);
	}
}

static const char *file(const char *name, const void *data, size_t len)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f)) {
		printf("cannot write %s\n", path);
		exit(1);
	}
	return path;
}

static int load(const char *path)
{
	fresh_vm();
	msg[0] = 0;
	return arch_load_kernel(&vm, path, msg, sizeof(msg));
}

/* An ELF vmlinux: one PT_LOAD of 64 bytes (memsz 4 KiB) at ELF_LOAD, one PT_NOTE with the PVH
 * entry. */
struct elf_kernel {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[2];
	Elf64_Nhdr nh;
	char name[4];
	uint32_t entry;
	uint8_t code[64];
};

static struct elf_kernel elf_kernel(void)
{
	struct elf_kernel k;
	memset(&k, 0, sizeof(k));
	memcpy(k.eh.e_ident, ELFMAG, SELFMAG);
	k.eh.e_ident[EI_CLASS] = ELFCLASS64;
	k.eh.e_ident[EI_DATA] = ELFDATA2LSB;
	k.eh.e_machine = EM_X86_64;
	k.eh.e_phoff = offsetof(struct elf_kernel, ph);
	k.eh.e_phentsize = sizeof(Elf64_Phdr);
	k.eh.e_phnum = 2;
	k.ph[0] = (Elf64_Phdr){.p_type = PT_LOAD,
			       .p_offset = offsetof(struct elf_kernel, code),
			       .p_paddr = ELF_LOAD,
			       .p_filesz = 64,
			       .p_memsz = 4096};
	k.ph[1] = (Elf64_Phdr){.p_type = PT_NOTE,
			       .p_offset = offsetof(struct elf_kernel, nh),
			       .p_filesz = sizeof(Elf64_Nhdr) + 8};
	k.nh = (Elf64_Nhdr){.n_namesz = 4, .n_descsz = 4, .n_type = XEN_PHYS32};
	memcpy(k.name, "Xen", 4);
	k.entry = ELF_ENTRY;
	for (int i = 0; i < 64; i++)
		k.code[i] = (uint8_t)(0xa0 + i);
	return k;
}

/* A bzImage: boot protocol 2.15 with a 64-bit entry, BZ_SETUP setup sectors, then the kernel. */
static uint8_t *bzimage(void)
{
	static uint8_t b[BZ_FILE];
	memset(b, 0, sizeof(b));
	b[0x1f1] = BZ_SETUP;
	b[0x201] = 0x6a; /* the setup header ends at 0x202 + this */
	memcpy(b + 0x202, "HdrS", 4);
	uint16_t version = 0x20f, xload = 1;
	memcpy(b + 0x206, &version, 2);
	memcpy(b + 0x236, &xload, 2);
	uint32_t init_size = BZ_INITSIZE, max = 0x7fffffff;
	memcpy(b + 0x260, &init_size, 4);
	memcpy(b + 0x22c, &max, 4);
	for (int i = BZ_KERNEL; i < BZ_FILE; i++)
		b[i] = (uint8_t)i;
	return b;
}

static void elf_loads_where_it_says(void)
{
	struct elf_kernel k = elf_kernel();
	CHECK(load(file("vmlinux", &k, sizeof(k))) == 0);
	CHECK(vm.entry == ELF_ENTRY && !vm.entry_64bit);
	CHECK(vm.kernel_end == ELF_LOAD + 4096);
	uint8_t *p = vm_ptr(&vm, ELF_LOAD, 4096);
	CHECK(p && !memcmp(p, k.code, 64) && p[64] == 0 && p[4095] == 0);
	CHECK(arch_write_boot_info(&vm, "console=hvc0", 0x2000000, 4096, msg, sizeof(msg)) == 0);
	CHECK(!strcmp(vm_ptr(&vm, X86_CMDLINE_ADDR, 16), "console=hvc0"));
	uint32_t magic;
	memcpy(&magic, vm_ptr(&vm, X86_BOOT_INFO_ADDR, 4), 4);
	CHECK(magic == 0x336ec578); /* hvm_start_info */
}

static void bzimage_loads_with_the_64bit_protocol(void)
{
	uint8_t *b = bzimage();
	CHECK(load(file("bzImage", b, BZ_FILE)) == 0);
	CHECK(vm.entry == X86_HIGH_START + 0x200 && vm.entry_64bit);
	CHECK(vm.kernel_end == X86_HIGH_START + BZ_INITSIZE);
	CHECK(vm.initrd_max == 0x80000000ull);
	uint8_t *p = vm_ptr(&vm, X86_HIGH_START, BZ_FILE - BZ_KERNEL);
	CHECK(p && !memcmp(p, b + BZ_KERNEL, BZ_FILE - BZ_KERNEL));
	uint8_t *bp = vm_ptr(&vm, X86_BOOT_INFO_ADDR, 4096);
	CHECK(!memcmp(bp + 0x202, "HdrS", 4) && bp[0x210] == 0xff && (bp[0x211] & 0x81) == 0x81);
	CHECK(bp[0x1e8] >= 2); /* e820 entries */
	CHECK(arch_write_boot_info(&vm, "quiet", 0x2000000, 12345, msg, sizeof(msg)) == 0);
	uint32_t image, size;
	memcpy(&image, bp + 0x218, 4);
	memcpy(&size, bp + 0x21c, 4);
	CHECK(image == 0x2000000 && size == 12345);
	char *long_line = malloc(X86_CMDLINE_MAX + 1);
	memset(long_line, 'x', X86_CMDLINE_MAX);
	long_line[X86_CMDLINE_MAX] = 0;
	CHECK(arch_write_boot_info(&vm, long_line, 0, 0, msg, sizeof(msg)) == EC1_EINVAL);
	CHECK_STR_CONTAINS(msg, "kernel.cmdline");
	free(long_line);
}

static void refused(const char *name, const void *data, size_t len, const char *want)
{
	if (load(file(name, data, len)) != EC1_EINVAL) {
		printf("    %s: loaded\n", name);
		check_failed = 1;
		return;
	}
	CHECK_STR_CONTAINS(msg, "kernel.path: ");
	CHECK_STR_CONTAINS(msg, want);
}

static void broken_kernels_refused_naming_the_reason(void)
{
	struct elf_kernel k = elf_kernel(), e;
	e = k, e.eh.e_ident[EI_CLASS] = ELFCLASS32;
	refused("class32", &e, sizeof(e), "not an x86_64 ELF kernel");
	e = k, e.eh.e_phnum = 65;
	refused("phnum", &e, sizeof(e), "not an x86_64 ELF kernel");
	e = k, e.eh.e_phoff = 1 << 20;
	refused("phoff", &e, sizeof(e), "truncated ELF program headers");
	e = k, e.ph[1].p_type = PT_NULL;
	refused("no-note", &e, sizeof(e), "no PVH entry note");
	e = k, e.nh.n_namesz = 0xfffffffd; /* rounds up past 2^32 */
	refused("note-namesz", &e, sizeof(e), "no PVH entry note");
	e = k, e.ph[0].p_paddr = (RAM_MIB << 20) - 2048;
	refused("past-ram", &e, sizeof(e), "does not fit");
	e = k, e.ph[0].p_paddr = 0xfffffffffffff000ull;
	refused("wraps", &e, sizeof(e), "does not fit");
	e = k, e.ph[0].p_filesz = 8192;
	refused("filesz", &e, sizeof(e), "does not fit");
	e = k, e.ph[0].p_offset = 1 << 20;
	refused("offset", &e, sizeof(e), "truncated segment");
	refused("short", &k, 40, "not an x86_64 ELF kernel");

	uint8_t *b = bzimage(), *c = malloc(BZ_FILE);
	memcpy(c, b, BZ_FILE);
	uint16_t old = 0x20b;
	memcpy(c + 0x206, &old, 2);
	refused("old-protocol", c, BZ_FILE, "boot protocol 2.12+");
	memcpy(c, b, BZ_FILE);
	c[0x236] = 0;
	refused("no-64bit", c, BZ_FILE, "64-bit entry point");
	memcpy(c, b, BZ_FILE);
	c[0x1f1] = 200;
	refused("setup-sects", c, BZ_FILE, "truncated bzImage");
	memcpy(c, b, BZ_FILE);
	memset(c + 0x260, 0xff, 4);
	refused("init-size", c, BZ_FILE, "more than the guest RAM");
	memcpy(c, b, BZ_FILE);
	memcpy(c + 0x202, "HdrX", 4);
	refused("no-magic", c, BZ_FILE, "neither an ELF vmlinux nor a bzImage");
	refused("empty", c, 0, "unreadable");
	free(c);
}

static void fifo_or_directory_refused_without_waiting(void)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/fifo", dir);
	CHECK(mkfifo(path, 0600) == 0);
	alarm(10); /* a loader that opens it for reading would wait for ever */
	CHECK(load(path) == EC1_EINVAL);
	CHECK_STR_CONTAINS(msg, "kernel.path: ");
	CHECK_STR_CONTAINS(msg, "not a regular file");
	CHECK(load(dir) == EC1_EINVAL);
	CHECK_STR_CONTAINS(msg, "not a regular file");
	CHECK(load("/nonexistent/vmlinux") == EC1_EINVAL);
	CHECK_STR_CONTAINS(msg, "No such file or directory");
	alarm(0);
	unlink(path);
}

static void the_builds_kernel_loads(void)
{
	struct stat st;
	if (stat(EC1_TEST_KERNEL, &st) || !S_ISREG(st.st_mode)) {
		printf("    (no kernel at %s: skipped)\n", EC1_TEST_KERNEL);
		return;
	}
	CHECK(load(EC1_TEST_KERNEL) == 0);
	CHECK(vm.entry >= X86_HIGH_START && vm.entry < vm.kernel_end);
	CHECK(vm.kernel_end <= arch_initrd_ceiling(&vm));
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	TEST(elf_loads_where_it_says);
	TEST(bzimage_loads_with_the_64bit_protocol);
	TEST(broken_kernels_refused_naming_the_reason);
	TEST(fifo_or_directory_refused_without_waiting);
	TEST(the_builds_kernel_loads);
	guest_mem_free(&vm.mem);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		return 1;
	return tests_failed ? 1 : 0;
}
