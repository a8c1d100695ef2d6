/*
 * The initramfs: the base root archive, then ours (init and the process description it reads),
 * placed at the top of low RAM, and the boot information that points the kernel at it.
 */
#include "initramfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../guest/abi.h"
#include "arch.h"
#include "cpio.h"
#include "ec1/ec1.h"
#include "vm.h"

static const char *default_env[] = EC1_ABI_DEFAULT_ENV;

/* One mount of the description: type, source, guest path, mode. */
struct mount_rec {
	const char *fstype, *source, *path;
	bool read_only;
	unsigned int partition;
};

/* The shares and disks init mounts (it takes the root one first, wherever it is); the count. */
static size_t mount_list(const struct vm_config *cfg, struct mount_rec *m)
{
	size_t n = 0;
	for (unsigned int i = 0; i < cfg->nr_shares; i++)
		if (cfg->shares[i].guest_path)
			m[n++] = (struct mount_rec){EC1_ABI_FS_VIRTIOFS, cfg->shares[i].tag,
						    cfg->shares[i].guest_path,
						    cfg->shares[i].read_only, 0};
	for (unsigned int i = 0; i < cfg->nr_disks; i++)
		if (cfg->disks[i].guest_path)
			m[n++] = (struct mount_rec){
				cfg->disks[i].fstype ? cfg->disks[i].fstype : "",
				cfg->disks[i].block_id, cfg->disks[i].guest_path,
				cfg->disks[i].read_only, cfg->disks[i].partition};
	return n;
}

/*
 * The process description init reads (its layout: guest/abi.h): NUL-separated fields: the magic,
 * exec path, workdir, argc, argv..., envc, env..., mount count, then type, source, guest path,
 * "ro" or "rw" and the partition for each share or disk init mounts, the network, the exec
 * agent's port.
 */
int vm_process_blob(const struct vm_config *cfg, char **out, size_t *out_len)
{
	const char *const *env = cfg->envp ? cfg->envp : default_env;
	size_t argc = 0, envc = 0, len = 0;
	char num[4][24];
	struct mount_rec *mounts = calloc(cfg->nr_shares + cfg->nr_disks + 1, sizeof(*mounts));
	if (!mounts)
		return -ENOMEM;
	size_t nr_mounts = mount_list(cfg, mounts);

	while (cfg->argv[argc])
		len += strlen(cfg->argv[argc++]) + 1;
	while (env[envc])
		len += strlen(env[envc++]) + 1;
	for (size_t i = 0; i < nr_mounts; i++)
		len += strlen(mounts[i].fstype) + strlen(mounts[i].source) +
		       strlen(mounts[i].path) + 6 + /* 4 NULs, "ro"/"rw"; the partition: */
		       (size_t)snprintf(NULL, 0, "%u", mounts[i].partition) + 1;
	snprintf(num[0], sizeof(num[0]), "%zu", argc);
	snprintf(num[1], sizeof(num[1]), "%zu", envc);
	snprintf(num[2], sizeof(num[2]), "%zu", nr_mounts);
	snprintf(num[3], sizeof(num[3]), "%u", (unsigned int)cfg->agent_port);
	const char *workdir = cfg->workdir ? cfg->workdir : "/";
	const char *net[3] = {"", "", ""};
	if (cfg->net) {
		net[0] = cfg->net->guest_cidr ? cfg->net->guest_cidr : "";
		net[1] = cfg->net->gateway ? cfg->net->gateway : "";
		net[2] = cfg->net->dns ? cfg->net->dns : "";
	}
	len += strlen(EC1_ABI_PROCESS_MAGIC) + strlen(cfg->exec_path) + strlen(workdir) +
	       strlen(num[0]) + strlen(num[1]) + strlen(num[2]) + 6;
	len += strlen(net[0]) + strlen(net[1]) + strlen(net[2]) + 3;
	len += strlen(num[3]) + 1;
	char *p = malloc(len), *w = p;
	if (!p) {
		free(mounts);
		return -ENOMEM;
	}
#define PUT(s) (w = stpcpy(w, (s)) + 1)
	PUT(EC1_ABI_PROCESS_MAGIC);
	PUT(cfg->exec_path);
	PUT(workdir);
	PUT(num[0]);
	for (size_t i = 0; i < argc; i++)
		PUT(cfg->argv[i]);
	PUT(num[1]);
	for (size_t i = 0; i < envc; i++)
		PUT(env[i]);
	PUT(num[2]);
	for (size_t i = 0; i < nr_mounts; i++) {
		PUT(mounts[i].fstype);
		PUT(mounts[i].source);
		PUT(mounts[i].path);
		PUT(mounts[i].read_only ? "ro" : "rw");
		char part[11];
		snprintf(part, sizeof(part), "%u", mounts[i].partition);
		PUT(part);
	}
	for (int i = 0; i < 3; i++)
		PUT(net[i]);
	PUT(num[3]);
#undef PUT
	free(mounts);
	*out = p;
	*out_len = len;
	return 0;
}

/*
 * Our part of the initramfs: /.ec1/init and /.ec1/process, plus the mount points init needs,
 * into c as the caller set it up (measuring, or in place).
 */
static int runtime_archive(struct cpio *c, const char *blob, size_t blob_len)
{
	int err = cpio_add(c, ".ec1", S_IFDIR | 0755, NULL, 0);
	err = err
		      ?: cpio_add(c, &EC1_ABI_INIT[1], S_IFREG | 0755, ec1_init_binary,
				  ec1_init_binary_size);
	err = err ?: cpio_add(c, &EC1_ABI_PROCESS[1], S_IFREG | 0600, blob, blob_len);
	err = err ?: cpio_add(c, "dev", S_IFDIR | 0755, NULL, 0);
	err = err ?: cpio_add(c, "proc", S_IFDIR | 0555, NULL, 0);
	err = err ?: cpio_add(c, "sys", S_IFDIR | 0555, NULL, 0);
	err = err ?: cpio_add(c, "tmp", S_IFDIR | 01777, NULL, 0);
	err = err ?: cpio_add(c, &EC1_ABI_ROOT[1], S_IFDIR | 0755, NULL, 0);
	return err ?: cpio_finish(c);
}

/* Places base archive + runtime archive at the top of low RAM and writes the boot information. */
int vm_setup_initrd(struct vm *vm, char *msg, size_t msg_size)
{
	const struct vm_config *cfg = vm->cfg;
	uint64_t base_size = 0, file_size = 0;
	int fd = -1;

	if (cfg->initramfs_path) {
		struct stat st;
		/* A FIFO is refused, never waited on; any other file not regular too (its size
		 * would not be what it holds). */
		fd = open(cfg->initramfs_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			int e = fd < 0 ? errno : 0;
			if (fd >= 0)
				close(fd);
			VM_FAIL(EC1_EINVAL, "kernel.initramfs: %s: %s", cfg->initramfs_path,
				e ? strerror(e) : "not a regular file");
		}
		file_size = (uint64_t)st.st_size;
		base_size = (file_size + 3) & ~3ull; /* the next archive starts 4-byte aligned */
	}
	char *blob;
	size_t blob_len;
	if (vm_process_blob(cfg, &blob, &blob_len)) {
		if (fd >= 0)
			close(fd);
		VM_FAIL(EC1_ENOMEM, "initramfs: out of memory");
	}
	/* The runtime archive is measured, then written in place after the base archive. */
	struct cpio rt;
	cpio_init_at(&rt, NULL, 0);
	int err = 0;
	if (runtime_archive(&rt, blob, blob_len)) {
		snprintf(msg, msg_size, "exec: the process description is too large");
		err = EC1_EINVAL;
	}
	uint64_t total = base_size + rt.len;
	uint64_t top = arch_initrd_ceiling(vm);
	uint64_t gpa = top > total ? (top - total) & ~0xfffull : 0;
	if (!err && gpa < arch_initrd_floor(vm)) {
		snprintf(msg, msg_size,
			 "vm.ram_mib: %u MiB is too small for the kernel and a %llu KiB "
			 "initramfs",
			 cfg->ram_mib, (unsigned long long)(total >> 10));
		err = EC1_EINVAL;
	}
	uint8_t *dst = err ? NULL : vm_ptr(vm, gpa, total);
	if (!err && !dst) {
		snprintf(msg, msg_size, "vm.ram_mib: no room for a %llu KiB initramfs",
			 (unsigned long long)(total >> 10));
		err = EC1_EINVAL;
	}
	if (!err && fd >= 0 && guest_mem_load_file(&vm->mem, gpa, fd, 0, file_size)) {
		snprintf(msg, msg_size, "kernel.initramfs: %s: read failed", cfg->initramfs_path);
		err = EC1_EINVAL;
	}
	if (fd >= 0)
		close(fd);
	if (!err) {
		memset(dst + file_size, 0, base_size - file_size);
		cpio_init_at(&rt, dst + base_size, total - base_size);
		if (runtime_archive(&rt, blob, blob_len)) {
			snprintf(msg, msg_size, "initramfs: the runtime archive changed size");
			err = EC1_EINVAL;
		}
	}
	free(blob);
	if (!err)
		err = arch_write_boot_info(vm, vm->cmdline, gpa, total, msg, msg_size);
	/* EC1_DUMP_INITRD=FILE: keep a copy of the initramfs (bench/boot gives it to QEMU). */
	const char *dump = getenv("EC1_DUMP_INITRD");
	if (!err && dump && *dump) {
		FILE *f = fopen(dump, "wb");
		if (!f || fwrite(dst, 1, total, f) != total)
			vm_log(EC1_LOG_WARN, "ec1: EC1_DUMP_INITRD: %s: write failed\n", dump);
		if (f)
			fclose(f);
	}
	return err;
}
