/*
 * The VM's life: open KVM, map memory, load the kernel, write the initramfs (base root + our init
 * + the process description), start vCPU threads, wait for init's report, a guest failure or the
 * timeout, then tear everything down.
 */
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/ec1_internal.h"
#include "arch.h"
#include "cpio.h"
#include "sandbox.h"
#include "fuse/server.h"
#include "virtio/console.h"
#include "virtio/fs.h"
#include "virtio/mmio.h"

int vm_log_level = EC1_LOG_WARN;

#define KICK_SIGNAL SIGUSR1

void vm_log(int level, const char *fmt, ...)
{
	if (level > vm_log_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

uint64_t vm_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct timespec vm_realtime_in_ms(long ms)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_nsec += ms * 1000000;
	t.tv_sec += t.tv_nsec / 1000000000;
	t.tv_nsec %= 1000000000;
	return t;
}

void vm_mark(struct vm *vm, uint64_t *slot)
{
	uint64_t zero = 0;
	(void)vm; /* the slot is one of vm->timing's */
	__atomic_compare_exchange_n(slot, &zero, vm_now_ns(), false, __ATOMIC_SEQ_CST,
				    __ATOMIC_SEQ_CST);
}

void vm_irq(struct vm *vm, unsigned int gsi)
{
	arch_irq(vm, gsi);
}

void vm_thread_signals(void)
{
	sigset_t set;
	sigfillset(&set);
	sigdelset(&set, KICK_SIGNAL);
	sigdelset(&set, SIGSYS); /* a blocked seccomp trap would kill without its handler */
	pthread_sigmask(SIG_SETMASK, &set, NULL);
}

bool vm_thread_sandbox(struct vm *vm, int kind, const char *what)
{
	int err = sandbox_enter((enum sandbox_kind)kind);
	if (err)
		vm_stop(vm, EC1_EBACKEND, "seccomp filter of the %s thread: %s", what,
			strerror(-err));
	return err == 0;
}

void vm_interrupt_thread(pthread_t thread)
{
	pthread_kill(thread, KICK_SIGNAL);
}

static void kick_vcpus(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (v->run)
			__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		if (v->started && !pthread_equal(v->thread, pthread_self()))
			vm_interrupt_thread(v->thread);
	}
}

void vm_stop(struct vm *vm, int code, const char *fmt, ...)
{
	pthread_mutex_lock(&vm->lock);
	if (!vm->stopping) {
		__atomic_store_n(&vm->stopping, true, __ATOMIC_RELEASE); /* vCPU threads poll it */
		vm->error_code = code;
		if (code && fmt) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(vm->error, sizeof(vm->error), fmt, ap);
			va_end(ap);
		}
		vm_mark(vm, &vm->timing.stopped);
		uint64_t one = 1;
		if (write(vm->stop_fd, &one, sizeof(one)) < 0)
			vm_log(EC1_LOG_ERROR, "ec1: waking the VM's main thread: %s\n",
			       strerror(errno));
	}
	bool first = !vm->stop_sent;
	vm->stop_sent = true;
	pthread_mutex_unlock(&vm->lock);
	if (first) {
		/* Device threads let go of the queues first: a vCPU may be waiting for them. */
		unsigned int n = __atomic_load_n(&vm->nr_devs, __ATOMIC_ACQUIRE);
		for (unsigned int i = 0; i < n; i++)
			if (vm->devs[i]->ops->stop)
				vm->devs[i]->ops->stop(vm->devs[i]);
	}
	kick_vcpus(vm);
}

void vm_report_status(struct vm *vm, int status)
{
	pthread_mutex_lock(&vm->lock);
	if (!vm->status_reported) {
		vm->status_reported = true;
		vm->exit_status = status;
	}
	pthread_mutex_unlock(&vm->lock);
	vm_stop(vm, 0, "exit");
}

static void handle_mmio(struct vm *vm, struct kvm_run *run)
{
	uint64_t addr = run->mmio.phys_addr;
	uint32_t len = run->mmio.len;

	if (arch_mmio(vm, addr, run->mmio.data, len, run->mmio.is_write))
		return;
	if (addr >= VM_MMIO_BASE && len <= 8) {
		uint64_t idx = (addr - VM_MMIO_BASE) / VM_MMIO_STRIDE;
		if (idx < vm->nr_devs) {
			virtio_mmio_access(vm->devs[idx], (addr - VM_MMIO_BASE) % VM_MMIO_STRIDE,
					   run->mmio.data, len, run->mmio.is_write);
			return;
		}
	}
	if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
}

static void *vcpu_main(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	struct kvm_run *run = v->run;

	vm_thread_signals(); /* only the kick signal interrupts KVM_RUN */
	if (!vm_thread_sandbox(vm, SANDBOX_VCPU, "vCPU"))
		return NULL;
	if (v->index == 0)
		vm_mark(vm, &vm->timing.first_run);
	for (;;) {
		if (__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE))
			break;
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
				continue;
			}
			vm_stop(vm, EC1_EKVM, "KVM_RUN on vCPU %u: %s", v->index, strerror(errno));
			break;
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO: {
			uint8_t *data = (uint8_t *)run + run->io.data_offset;
			if (run->io.data_offset > vm->run_size ||
			    (uint64_t)run->io.size * run->io.count >
				    vm->run_size - run->io.data_offset)
				break;
			for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size)
				arch_pio(vm, run->io.port, run->io.direction == KVM_EXIT_IO_OUT,
					 data, run->io.size);
			break;
		}
		case KVM_EXIT_MMIO:
			handle_mmio(vm, run);
			break;
		case KVM_EXIT_SHUTDOWN:
			vm_stop(vm, 0, "triple fault");
			break;
		case KVM_EXIT_SYSTEM_EVENT:
		case KVM_EXIT_HLT:
			vm_stop(vm, 0, "guest halted");
			break;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_FAIL_ENTRY:
			vm_stop(vm, EC1_EKVM, "vCPU %u: entry failed, hardware reason 0x%llx",
				v->index,
				(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			vm_stop(vm, EC1_EGUEST, "vCPU %u: KVM internal error, suberror %u%s",
				v->index, run->internal.suberror,
				arch_kvm_is_pvm() ? " (PVM /dev/kvm cannot run this guest)" : "");
			break;
		default:
			vm_stop(vm, EC1_EGUEST, "vCPU %u: unexpected exit reason %u", v->index,
				run->exit_reason);
			break;
		}
	}
	return NULL;
}

static void kick_handler(int sig)
{
	(void)sig; /* only here to make KVM_RUN return EINTR */
}

static const char *default_env[] = {
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "TERM=linux",
	NULL};

/*
 * The process description init reads: NUL-separated fields (see guest/init/init.c): "EC1P2",
 * exec path, workdir, argc, argv..., envc, env..., mount count, then tag, guest path and "ro" or
 * "rw" for each share init mounts.
 */
static int process_blob(const struct vm_config *cfg, char **out, size_t *out_len)
{
	const char *const *env = cfg->envp ? cfg->envp : default_env;
	size_t argc = 0, envc = 0, mounts = 0, len = 0;
	char num[3][24];

	while (cfg->argv[argc])
		len += strlen(cfg->argv[argc++]) + 1;
	while (env[envc])
		len += strlen(env[envc++]) + 1;
	for (unsigned int i = 0; i < cfg->nr_shares; i++) {
		if (!cfg->shares[i].guest_path)
			continue;
		mounts++;
		len += strlen(cfg->shares[i].tag) + strlen(cfg->shares[i].guest_path) + 5;
	}
	snprintf(num[0], sizeof(num[0]), "%zu", argc);
	snprintf(num[1], sizeof(num[1]), "%zu", envc);
	snprintf(num[2], sizeof(num[2]), "%zu", mounts);
	const char *workdir = cfg->workdir ? cfg->workdir : "/";
	len += strlen("EC1P2") + strlen(cfg->exec_path) + strlen(workdir) + strlen(num[0]) +
	       strlen(num[1]) + strlen(num[2]) + 6;
	char *p = malloc(len), *w = p;
	if (!p)
		return -ENOMEM;
#define PUT(s) (w = stpcpy(w, (s)) + 1)
	PUT("EC1P2");
	PUT(cfg->exec_path);
	PUT(workdir);
	PUT(num[0]);
	for (size_t i = 0; i < argc; i++)
		PUT(cfg->argv[i]);
	PUT(num[1]);
	for (size_t i = 0; i < envc; i++)
		PUT(env[i]);
	PUT(num[2]);
	for (unsigned int i = 0; i < cfg->nr_shares; i++) {
		if (!cfg->shares[i].guest_path)
			continue;
		PUT(cfg->shares[i].tag);
		PUT(cfg->shares[i].guest_path);
		PUT(cfg->shares[i].read_only ? "ro" : "rw");
	}
#undef PUT
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
		      ?: cpio_add(c, ".ec1/init", S_IFREG | 0755, ec1_init_binary,
				  ec1_init_binary_size);
	err = err ?: cpio_add(c, ".ec1/process", S_IFREG | 0600, blob, blob_len);
	err = err ?: cpio_add(c, "dev", S_IFDIR | 0755, NULL, 0);
	err = err ?: cpio_add(c, "proc", S_IFDIR | 0555, NULL, 0);
	err = err ?: cpio_add(c, "sys", S_IFDIR | 0555, NULL, 0);
	err = err ?: cpio_add(c, "tmp", S_IFDIR | 01777, NULL, 0);
	err = err ?: cpio_add(c, ".ec1/root", S_IFDIR | 0755, NULL, 0);
	return err ?: cpio_finish(c);
}

#define FAIL(code, ...)                               \
	do {                                          \
		snprintf(msg, msg_size, __VA_ARGS__); \
		return code;                          \
	} while (0)

/* Places base archive + runtime archive at the top of low RAM and writes the boot information. */
static int setup_initrd(struct vm *vm, char *msg, size_t msg_size)
{
	const struct vm_config *cfg = vm->cfg;
	uint64_t base_size = 0, file_size = 0;
	int fd = -1;

	if (cfg->initramfs_path) {
		struct stat st;
		fd = open(cfg->initramfs_path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0) {
			int e = errno;
			if (fd >= 0)
				close(fd);
			FAIL(EC1_EINVAL, "kernel.initramfs: %s: %s", cfg->initramfs_path,
			     strerror(e));
		}
		file_size = (uint64_t)st.st_size;
		base_size = (file_size + 3) & ~3ull; /* the next archive starts 4-byte aligned */
	}
	char *blob;
	size_t blob_len;
	if (process_blob(cfg, &blob, &blob_len)) {
		if (fd >= 0)
			close(fd);
		FAIL(EC1_ENOMEM, "initramfs: out of memory");
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

static int open_kvm(struct vm *vm, char *msg, size_t msg_size)
{
	/* EC1_KVM_DEVICE: another KVM device node (tests use it to check the missing-device error).
	 */
	const char *dev = getenv("EC1_KVM_DEVICE");
	if (!dev || !*dev)
		dev = "/dev/kvm";
	vm->kvm_fd = open(dev, O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		if (errno == ENOENT)
			FAIL(EC1_EKVM,
			     "%s: No such file or directory: this machine offers no KVM "
			     "(enable virtualization in the firmware or the host, then load "
			     "kvm-intel or kvm-amd)",
			     dev);
		if (errno == EACCES || errno == EPERM)
			FAIL(EC1_EKVM,
			     "%s: Permission denied: add the user to the group that owns "
			     "it (usermod -aG kvm USER, then log in again) or run as root",
			     dev);
		FAIL(EC1_EKVM, "%s: %s", dev, strerror(errno));
	}
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		FAIL(EC1_EKVM, "%s: not a KVM device, or an unsupported KVM API version", dev);
	if (arch_kvm_is_pvm() && !vm->cfg->allow_pvm)
		FAIL(EC1_EKVM,
		     "/dev/kvm is PVM (module kvm_pvm), not hardware KVM: guest kernel code is "
		     "instruction-emulated there and an unmodified Linux kernel cannot boot; "
		     "run ec1 on hardware KVM or inside the test rig (tests/rig/run-in-rig)");
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		FAIL(EC1_EKVM, "KVM_CREATE_VM: %s", strerror(errno));
	int size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size <= 0)
		FAIL(EC1_EKVM, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
	vm->run_size = (size_t)size;
	return 0;
}

static int setup_memory(struct vm *vm, char *msg, size_t msg_size)
{
	int err = guest_mem_init(&vm->mem, (uint64_t)vm->cfg->ram_mib << 20);
	if (err)
		FAIL(EC1_ENOMEM, "vm.ram_mib: cannot map %u MiB: %s", vm->cfg->ram_mib,
		     strerror(-err));
	for (unsigned int i = 0; i < vm->mem.nr_regions; i++) {
		struct kvm_userspace_memory_region r = {
			.slot = i,
			.guest_phys_addr = vm->mem.regions[i].gpa,
			.memory_size = vm->mem.regions[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)vm->mem.regions[i].host,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			FAIL(EC1_EKVM, "KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
	}
	return 0;
}

int vm_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, int fd)
{
	struct kvm_ioeventfd io = {.addr = addr, .len = len, .fd = fd};
	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

static int setup_vcpus(struct vm *vm, char *msg, size_t msg_size)
{
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		v->vm = vm;
		v->index = i;
		v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, i);
		if (v->fd < 0)
			FAIL(EC1_EKVM, "KVM_CREATE_VCPU %u: %s", i, strerror(errno));
		v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
		if (v->run == MAP_FAILED) {
			v->run = NULL;
			FAIL(EC1_EKVM, "mmap of vCPU %u: %s", i, strerror(errno));
		}
		int err = arch_vcpu_init(vm, v);
		if (err)
			FAIL(EC1_EKVM, "vCPU %u set-up: %s", i, strerror(-err));
	}
	return 0;
}

static int build_cmdline(struct vm *vm, char *msg, size_t msg_size)
{
	const struct vm_config *cfg = vm->cfg;
	size_t n = (size_t)snprintf(
		vm->cmdline, sizeof(vm->cmdline),
		"console=ttyS0 %s reboot=t panic=-1 rdinit=/.ec1/init tsc=reliable "
		"no_timer_check cryptomgr.notests",
		cfg->console ? "loglevel=7" : "quiet");
	for (unsigned int i = 0; i < vm->nr_devs && n < sizeof(vm->cmdline); i++)
		n += (size_t)virtio_mmio_cmdline(vm->devs[i], vm->cmdline + n,
						 sizeof(vm->cmdline) - n);
	if (cfg->cmdline_extra && n < sizeof(vm->cmdline))
		n += (size_t)snprintf(vm->cmdline + n, sizeof(vm->cmdline) - n, " %s",
				      cfg->cmdline_extra);
	if (n >= sizeof(vm->cmdline))
		FAIL(EC1_EINVAL, "kernel.cmdline: too long");
	return 0;
}

/* One virtio-fs device per shared directory. */
static int add_shares(struct vm *vm, char *msg, size_t msg_size)
{
	const struct vm_config *cfg = vm->cfg;
	for (unsigned int i = 0; i < cfg->nr_shares; i++) {
		const struct vm_share *sh = &cfg->shares[i];
		if (vm->nr_devs >= VM_MAX_DEVICES)
			FAIL(EC1_EINVAL, "shares: at most %d directories per VM",
			     VM_MAX_DEVICES - 1);
		unsigned int flags = (sh->read_only ? FUSE_SERVER_READ_ONLY : 0) |
				     (sh->guest_ids ? FUSE_SERVER_GUEST_IDS : 0);
		int err = virtio_fs_create(vm, sh->tag, sh->host_dir, flags, &vm->fs[vm->nr_fs]);
		if (err == 0 || vm->fs[vm->nr_fs])
			vm->nr_fs++;
		if (err)
			FAIL(EC1_EINVAL, "%s: %s", sh->host_dir, strerror(-err));
	}
	return 0;
}

/* Resident set of the process, and the part of it that is guest RAM. */
static void measure_memory(struct vm *vm)
{
	long rss_pages = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		long size_pages;
		if (fscanf(f, "%ld %ld", &size_pages, &rss_pages) != 2)
			rss_pages = 0;
		fclose(f);
	}
	vm->timing.rss_bytes = (uint64_t)rss_pages * (uint64_t)sysconf(_SC_PAGESIZE);
	vm->timing.guest_resident_bytes = guest_mem_resident(&vm->mem);
}

static int create_console(struct vm *vm, struct console **con, char *msg, size_t msg_size)
{
	const struct vm_config *cfg = vm->cfg;
	int err = console_create(vm, cfg->stdin_fd, cfg->stdout_fd, cfg->stderr_fd, con);
	if (err)
		FAIL(EC1_ENOMEM, "virtio-console: %s", strerror(-err));
	return 0;
}

static void print_timing(const struct vm_timing *t)
{
	static const char *const steps[VM_SETUP_STEPS] = {
		"kvm",	  "memory",  "kernel", "irqchip", "console",
		"shares", "cmdline", "initrd", "vcpus",
	};
	fprintf(stderr, "ec1 vmm-setup (ms):");
	for (unsigned int i = 0; i < VM_SETUP_STEPS; i++)
		fprintf(stderr, "%s %s %.3f", i ? " |" : "", steps[i], t->setup_ns[i] / 1e6);
	fputc('\n', stderr);
#define MS(a, b) ((a) && (b) ? ((double)((int64_t)(b) - (int64_t)(a))) / 1e6 : -1.0)
	fprintf(stderr,
		"ec1 timing (ms): vmm-setup %.3f | kernel-entry->init %.3f (guest clock %.3f) | "
		"init->exec %.3f | exec->exit %.3f | teardown %.3f | total %.3f\n",
		MS(t->start, t->first_run), MS(t->first_run, t->init_start),
		(double)t->guest_boot_ns / 1e6, MS(t->init_start, t->exec), MS(t->exec, t->exit),
		MS(t->stopped + t->measure_ns, t->torn_down), MS(t->start, t->torn_down));
	fprintf(stderr,
		"ec1 memory (MiB): process RSS %.2f | guest RAM touched %.2f | VMM own %.2f\n",
		(double)t->rss_bytes / 1048576.0, (double)t->guest_resident_bytes / 1048576.0,
		((double)t->rss_bytes - (double)t->guest_resident_bytes) / 1048576.0);
#undef MS
}

static void teardown(struct vm *vm, struct console *con)
{
	vm_stop(vm, 0, "teardown");
	if (vm->cfg->timing) {
		uint64_t t0 = vm_now_ns();
		measure_memory(vm);
		vm->timing.measure_ns = vm_now_ns() - t0;
	}
	console_stop(con);
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i].started)
			pthread_join(vm->vcpus[i].thread, NULL);
	console_destroy(con);
	for (unsigned int i = 0; i < vm->nr_fs; i++)
		virtio_fs_destroy(vm->fs[i]);
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].run)
			munmap(vm->vcpus[i].run, vm->run_size);
		if (vm->vcpus[i].fd > 0)
			close(vm->vcpus[i].fd);
	}
	for (unsigned int i = 0; i < vm->nr_devs; i++) {
		if (vm->cfg->timing && !vm->cfg->setup_only)
			virtio_mmio_print_stats(vm->devs[i]);
		virtio_mmio_free(vm->devs[i]);
	}
	if (vm->vm_fd > 0)
		close(vm->vm_fd);
	if (vm->kvm_fd > 0)
		close(vm->kvm_fd);
	arch_vm_free(vm);
	guest_mem_free(&vm->mem);
	pthread_mutex_destroy(&vm->lock);
	close(vm->stop_fd);
	serial_free(&vm->serial);
}

/*
 * Waits until the VM stops, the timeout passes, or the caller asks for an orderly shutdown
 * through cfg->shutdown_fd: then init is asked to send SIGTERM to the process (SIGKILL on a
 * second request). A request made before init can hear it is retried.
 */
static void wait_for_stop(struct vm *vm, struct console *con)
{
	uint64_t deadline =
		vm->cfg->timeout_ms ? vm->timing.start + vm->cfg->timeout_ms * 1000000ull : 0;
	unsigned int requests = 0, delivered = 0;

	for (;;) {
		struct pollfd p[2] = {{.fd = vm->stop_fd, .events = POLLIN},
				      {.fd = vm->cfg->shutdown_fd, .events = POLLIN}};
		int wait_ms = -1;
		if (deadline) {
			uint64_t now = vm_now_ns();
			if (now >= deadline) {
				vm_stop(vm, EC1_ETIMEDOUT,
					"timeout: the guest was still running after %u ms",
					vm->cfg->timeout_ms);
				return;
			}
			wait_ms = (int)((deadline - now) / 1000000 + 1);
		}
		if (delivered < requests && (wait_ms < 0 || wait_ms > 50))
			wait_ms = 50; /* init not listening yet: try again shortly */
		int n = poll(p, vm->cfg->shutdown_fd >= 0 ? 2 : 1, wait_ms);
		if (n < 0 && errno != EINTR)
			return;
		if (__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE))
			return;
		if (n > 0 && (p[1].revents & POLLIN)) {
			uint64_t v;
			if (read(vm->cfg->shutdown_fd, &v, sizeof(v)) == sizeof(v))
				requests++;
		}
		if (delivered < requests &&
		    console_send_control(con, delivered == 0 ? "term\n" : "kill\n") == 0)
			delivered++;
	}
}

int vm_run(const struct vm_config *cfg, struct vm_result *result, char *msg, size_t msg_size)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct console *con = NULL;
	int err;

	if (!vm)
		FAIL(EC1_ENOMEM, "out of memory");
	vm->timing.start = vm_now_ns();
	vm->cfg = cfg;
	vm->nr_vcpus = cfg->cpus;
	pthread_mutex_init(&vm->lock, NULL);
	vm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_fd < 0) {
		free(vm);
		FAIL(EC1_ENOMEM, "eventfd: %s", strerror(errno));
	}
	serial_init(&vm->serial, cfg->console ? STDERR_FILENO : -1);

	struct sigaction sa = {.sa_handler = kick_handler};
	sigemptyset(&sa.sa_mask);
	sigaction(KICK_SIGNAL, &sa, NULL);

	/* Each step's time goes to timing.setup_ns (SETUP_STEP_NAMES) for --timing. */
	uint64_t *step = vm->timing.setup_ns, t = vm->timing.start;
#define STEP(expr) (err = err ?: (expr), *step++ = vm_now_ns() - t, t += step[-1])
	err = 0;
	STEP(open_kvm(vm, msg, msg_size));
	STEP(setup_memory(vm, msg, msg_size));
	STEP(arch_load_kernel(vm, cfg->kernel_path, msg, msg_size));
	STEP(arch_vm_init(vm, msg, msg_size));
	STEP(create_console(vm, &con, msg, msg_size));
	STEP(add_shares(vm, msg, msg_size));
	STEP(build_cmdline(vm, msg, msg_size));
	STEP(setup_initrd(vm, msg, msg_size));
	STEP(setup_vcpus(vm, msg, msg_size));
#undef STEP
	if (!err && !cfg->setup_only) {
		for (unsigned int i = 0; i < vm->nr_vcpus && !err; i++) {
			int e = pthread_create(&vm->vcpus[i].thread, NULL, vcpu_main,
					       &vm->vcpus[i]);
			if (e) {
				snprintf(msg, msg_size, "vCPU thread: %s", strerror(e));
				err = EC1_ENOMEM;
			} else {
				vm->vcpus[i].started = true;
			}
		}
		if (!err)
			wait_for_stop(vm, con);
	}
	if (cfg->setup_only)
		vm_mark(vm, &vm->timing.first_run);
	teardown(vm, con);
	vm->timing.torn_down = vm_now_ns();
	if (!err && !cfg->setup_only) {
		if (vm->error_code) {
			err = vm->error_code;
			char tail[512];
			serial_tail(&vm->serial, tail, sizeof(tail));
			snprintf(msg, msg_size, "%s%s%s", vm->error,
				 tail[0] ? "; guest console:\n" : "", tail);
		} else if (!vm->status_reported) {
			char tail[1024];
			serial_tail(&vm->serial, tail, sizeof(tail));
			err = EC1_EGUEST;
			snprintf(msg, msg_size,
				 "the guest stopped without reporting an exit status (kernel panic "
				 "or "
				 "reset)%s%s",
				 tail[0] ? "; guest console:\n" : "", tail);
		}
	}
	if (result) {
		result->status = vm->exit_status;
		result->timing = vm->timing;
	}
	if (cfg->timing)
		print_timing(&vm->timing);
	free(vm);
	return err;
}
