/*
 * One run of the VM, in order: open KVM, map memory, load the kernel, the interrupt controllers,
 * the devices (devices.c's table), the command line, the initramfs (initramfs.c), the vCPUs; then
 * run until init's report, a guest failure, the timeout or a shutdown request; then tear it all
 * down.
 */
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
#include <time.h>
#include <unistd.h>

#include "../../guest/abi.h"
#include "arch.h"
#include "bus.h"
#include "devices.h"
#include "ec1/ec1.h"
#include "initramfs.h"
#include "sandbox.h"
#include "vm.h"
#include "worker.h"

static void handle_mmio(struct vm *vm, struct kvm_run *run)
{
	uint64_t addr = run->mmio.phys_addr;
	uint32_t len = run->mmio.len;

	if (arch_mmio(vm, addr, run->mmio.data, len, run->mmio.is_write) ||
	    vm_bus_mmio(vm, addr, run->mmio.data, len, run->mmio.is_write))
		return;
	if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
}

/* Out of KVM_RUN by a kick: answers the latest halt probe if this vCPU has not yet. */
static void answer_halt_probe(struct vm *vm, struct vcpu *v)
{
	uint32_t probe = __atomic_load_n(&vm->halt_probe, __ATOMIC_ACQUIRE);
	if (!probe || __atomic_load_n(&v->probe_answer, __ATOMIC_RELAXED) >> 1 == probe)
		return;
	uint32_t answer = probe << 1 | (arch_vcpu_halted_for_good(v) ? 1u : 0u);
	__atomic_store_n(&v->probe_answer, answer, __ATOMIC_RELEASE);
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
		int ran = ioctl(v->fd, KVM_RUN, 0);
		/* Writes that waited in the ring come first, in their order, before this exit's
		 * access (a read of a register they changed among them). */
		vm_bus_flush_coalesced(vm);
		if (ran < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
				answer_halt_probe(vm, v);
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
			VM_FAIL(EC1_EKVM,
				"%s: No such file or directory: this machine offers no KVM "
				"(enable virtualization in the firmware or the host, then load "
				"kvm-intel or kvm-amd)",
				dev);
		if (errno == EACCES || errno == EPERM)
			VM_FAIL(EC1_EKVM,
				"%s: Permission denied: add the user to the group that owns "
				"it (usermod -aG kvm USER, then log in again) or run as root",
				dev);
		VM_FAIL(EC1_EKVM, "%s: %s", dev, strerror(errno));
	}
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		VM_FAIL(EC1_EKVM, "%s: not a KVM device, or an unsupported KVM API version", dev);
	if (arch_kvm_is_pvm() && !vm->cfg->allow_pvm)
		VM_FAIL(EC1_EKVM,
			"/dev/kvm is PVM (module kvm_pvm), not hardware KVM: guest kernel code is "
			"instruction-emulated there and an unmodified Linux kernel cannot boot; "
			"run ec1 on hardware KVM or inside the test rig (tests/rig/run-in-rig)");
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		VM_FAIL(EC1_EKVM, "KVM_CREATE_VM: %s", strerror(errno));
	int size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size <= 0)
		VM_FAIL(EC1_EKVM, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
	vm->run_size = (size_t)size;
	/* The coalesced-MMIO ring's page inside each vCPU's mapping (bus.c uses it). */
	int page = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_MMIO);
	long psz = sysconf(_SC_PAGESIZE);
	if (page > 0 && psz > 0 && ((size_t)page + 1) * (size_t)psz <= vm->run_size)
		vm->coalesced_page = page;
	return 0;
}

static int setup_memory(struct vm *vm, char *msg, size_t msg_size)
{
	int err = guest_mem_init(&vm->mem, (uint64_t)vm->cfg->ram_mib << 20);
	if (err)
		VM_FAIL(EC1_ENOMEM, "vm.ram_mib: cannot map %u MiB: %s", vm->cfg->ram_mib,
			strerror(-err));
	for (unsigned int i = 0; i < vm->mem.nr_regions; i++) {
		struct kvm_userspace_memory_region r = {
			.slot = i,
			.guest_phys_addr = vm->mem.regions[i].gpa,
			.memory_size = vm->mem.regions[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)vm->mem.regions[i].host,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			VM_FAIL(EC1_EKVM, "KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
	}
	return 0;
}

static int setup_vcpus(struct vm *vm, char *msg, size_t msg_size)
{
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		v->vm = vm;
		v->index = i;
		v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, i);
		if (v->fd < 0)
			VM_FAIL(EC1_EKVM, "KVM_CREATE_VCPU %u: %s", i, strerror(errno));
		v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
		if (v->run == MAP_FAILED) {
			v->run = NULL;
			VM_FAIL(EC1_EKVM, "mmap of vCPU %u: %s", i, strerror(errno));
		}
		int err = arch_vcpu_init(vm, v);
		if (err)
			VM_FAIL(EC1_EKVM, "vCPU %u set-up: %s", i, strerror(-err));
		if (i == 0 && vm->coalesced_page) {
			/* The ring fills its page after its two indices (KVM_COALESCED_MMIO_MAX).
			 */
			size_t psz = (size_t)sysconf(_SC_PAGESIZE);
			vm->coalesced = (uint8_t *)v->run + (size_t)vm->coalesced_page * psz;
			vm->coalesced_max =
				(unsigned int)((psz - sizeof(struct kvm_coalesced_mmio_ring)) /
					       sizeof(struct kvm_coalesced_mmio));
		}
	}
	return 0;
}

static int build_cmdline(struct vm *vm, char *msg, size_t msg_size)
{
	const struct vm_config *cfg = vm->cfg;
	size_t n = (size_t)snprintf(vm->cmdline, sizeof(vm->cmdline),
				    "console=ttyS0 %s reboot=t panic=-1 " EC1_ABI_RDINIT_PARAM
				    " tsc=reliable "
				    "no_timer_check cryptomgr.notests",
				    cfg->console ? "loglevel=7" : "quiet");
	if (n < sizeof(vm->cmdline))
		n += vm_bus_cmdline(vm, vm->cmdline + n, sizeof(vm->cmdline) - n);
	if (cfg->cmdline_extra && n < sizeof(vm->cmdline))
		n += (size_t)snprintf(vm->cmdline + n, sizeof(vm->cmdline) - n, " %s",
				      cfg->cmdline_extra);
	if (n >= sizeof(vm->cmdline))
		VM_FAIL(EC1_EINVAL, "kernel.cmdline: too long");
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

static void print_timing(const struct vm_timing *t)
{
	fprintf(stderr, "ec1 vmm-setup (ms):");
	for (unsigned int i = 0; i < t->nr_setup_steps; i++)
		fprintf(stderr, "%s %s %.3f", i ? " |" : "", t->setup_names[i],
			t->setup_ns[i] / 1e6);
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

static void teardown(struct vm *vm)
{
	vm_stop(vm, 0, "teardown");
	if (vm->cfg->timing) {
		uint64_t t0 = clock_ns();
		measure_memory(vm);
		vm->timing.measure_ns = clock_ns() - t0;
	}
	/* Device threads first: a vCPU may be waiting for the queues one of them holds. */
	vm_bus_finish(vm);
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i].started)
			pthread_join(vm->vcpus[i].thread, NULL);
	vm_bus_destroy(vm, vm->cfg->timing && !vm->cfg->setup_only);
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i].run)
			munmap(vm->vcpus[i].run, vm->run_size);
		if (vm->vcpus[i].fd > 0)
			close(vm->vcpus[i].fd);
	}
	if (vm->vm_fd > 0)
		close(vm->vm_fd);
	if (vm->kvm_fd > 0)
		close(vm->kvm_fd);
	arch_vm_free(vm);
	guest_mem_free(&vm->mem);
	pthread_mutex_destroy(&vm->lock);
	pthread_mutex_destroy(&vm->coalesced_lock);
	pthread_cond_destroy(&vm->call_done);
	close(vm->stop_fd);
	close(vm->call_fd);
	serial_free(&vm->serial);
}

/*
 * How long after the guest kernel's halt line the vCPUs are probed (a kernel stops its other
 * CPUs first, waiting up to a second for them), and how often.
 */
#define HALT_PROBE_FOR_NS   (10ull * 1000000000)
#define HALT_PROBE_EVERY_MS 50

/*
 * A round of the halt probe (see vm->halt_line_ns): true when every vCPU answered the last
 * probe that it stopped for good; otherwise a new probe goes out when the last is
 * HALT_PROBE_EVERY_MS old (*last_ns: when it was sent).
 */
static bool halt_probe_round(struct vm *vm, uint64_t *last_ns)
{
	uint32_t probe = __atomic_load_n(&vm->halt_probe, __ATOMIC_RELAXED);
	unsigned int halted = 0;
	for (unsigned int i = 0; probe && i < vm->nr_vcpus; i++)
		halted += __atomic_load_n(&vm->vcpus[i].probe_answer, __ATOMIC_ACQUIRE) ==
			  (probe << 1 | 1u);
	if (probe && halted == vm->nr_vcpus)
		return true;
	uint64_t now = clock_ns();
	if (!probe || now - *last_ns >= (uint64_t)HALT_PROBE_EVERY_MS * 1000000) {
		__atomic_store_n(&vm->halt_probe, probe + 1, __ATOMIC_RELEASE);
		*last_ns = now;
		vm_kick_vcpus(vm);
	}
	return false;
}

/*
 * Waits until the VM stops, the timeout passes, or the caller asks for an orderly shutdown
 * through cfg->shutdown_fd: the first request has init send SIGTERM to the process (and to
 * everything exec started), the second SIGKILL, and a third stops the VM at once, its status
 * 128+SIGKILL. A request made before init can hear it is retried. After the guest kernel's
 * halt line it also probes the vCPUs (halt_probe_round), and ends the run once all halted.
 */
static void wait_for_stop(struct vm *vm)
{
	uint64_t deadline =
		vm->cfg->timeout_ms ? vm->timing.start + vm->cfg->timeout_ms * 1000000ull : 0;
	uint64_t requests = 0, delivered = 0, probe_ns = 0;

	for (;;) {
		struct pollfd p[3] = {{.fd = vm->stop_fd, .events = POLLIN},
				      {.fd = vm->call_fd, .events = POLLIN},
				      {.fd = vm->cfg->shutdown_fd, .events = POLLIN}};
		int wait_ms = -1;
		if (deadline) {
			uint64_t now = clock_ns();
			if (now >= deadline) {
				vm_stop(vm, EC1_ETIMEDOUT,
					"timeout: the guest was still running after %u ms",
					vm->cfg->timeout_ms);
				return;
			}
			wait_ms = (int)((deadline - now) / 1000000 + 1);
		}
		if (delivered < requests && delivered < 2 && (wait_ms < 0 || wait_ms > 50))
			wait_ms = 50; /* init not listening yet: try again shortly */
		uint64_t halt_line = __atomic_load_n(&vm->halt_line_ns, __ATOMIC_ACQUIRE);
		if (halt_line && clock_ns() - halt_line < HALT_PROBE_FOR_NS) {
			if (halt_probe_round(vm, &probe_ns)) {
				vm_stop(vm, EC1_EGUEST,
					"the guest halted: its kernel stopped every CPU (halt, or "
					"poweroff, which a machine without ACPI turns into a halt) "
					"without init reporting an exit status");
				return;
			}
			if (wait_ms < 0 || wait_ms > HALT_PROBE_EVERY_MS / 5)
				wait_ms = HALT_PROBE_EVERY_MS / 5;
		}
		int n = poll(p, vm->cfg->shutdown_fd >= 0 ? 3 : 2, wait_ms);
		if (n < 0 && errno != EINTR)
			return;
		if (__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE))
			return;
		if (n > 0 && (p[1].revents & POLLIN))
			vm_run_calls(vm);
		if (n > 0 && (p[2].revents & POLLIN)) {
			uint64_t v;
			/* An eventfd adds up writes: two quick requests read as one value 2. */
			if (read(vm->cfg->shutdown_fd, &v, sizeof(v)) == sizeof(v))
				requests += v;
		}
		if (requests >= 3) {
			vm_report_status(vm, EC1_EXIT_SIGNAL + SIGKILL);
			vm_stop(vm, 0, "stopped by request");
			return;
		}
		while (delivered < requests && vm->control.send &&
		       vm->control.send(vm->control.ctx, delivered == 0 ? EC1_CTL_TERM "\n"
									: EC1_CTL_KILL "\n") == 0)
			delivered++;
	}
}

/* Records a set-up step: its name, and the time since *t (then now). */
static void step_done(struct vm_timing *tm, const char *name, uint64_t *t)
{
	uint64_t now = clock_ns();
	if (tm->nr_setup_steps < VM_SETUP_STEPS_MAX) {
		tm->setup_names[tm->nr_setup_steps] = name;
		tm->setup_ns[tm->nr_setup_steps++] = now - *t;
	}
	*t = now;
}

int vm_run(const struct vm_config *cfg, struct vm_result *result, char *msg, size_t msg_size)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	int err;

	if (!vm)
		VM_FAIL(EC1_ENOMEM, "out of memory");
	vm->timing.start = clock_ns();
	vm->cfg = cfg;
	vm->nr_vcpus = cfg->cpus;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->coalesced_lock, NULL);
	pthread_cond_init(&vm->call_done, NULL);
	vm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vm->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_fd < 0 || vm->call_fd < 0) {
		int e = errno;
		if (vm->stop_fd >= 0)
			close(vm->stop_fd);
		free(vm);
		VM_FAIL(EC1_ENOMEM, "eventfd: %s", strerror(e));
	}
	serial_init(&vm->serial, cfg->console ? STDERR_FILENO : -1);

	vm_signals_init();
	for (unsigned int i = 0; i < vm_nr_device_types; i++)
		if (vm_device_types[i].prepare)
			vm_device_types[i].prepare(cfg);

	/* Each step's time and name go to timing.setup_ns and setup_names, for --timing. */
	struct vm_timing *tm = &vm->timing;
	uint64_t t = tm->start;
#define STEP(name, expr) (err = err ?: (expr), step_done(tm, (name), &t))
	err = 0;
	STEP("kvm", open_kvm(vm, msg, msg_size));
	STEP("memory", setup_memory(vm, msg, msg_size));
	STEP("kernel", arch_load_kernel(vm, cfg->kernel_path, msg, msg_size));
	STEP("irqchip", arch_vm_init(vm, msg, msg_size));
	for (unsigned int i = 0; i < vm_nr_device_types; i++)
		STEP(vm_device_types[i].step, vm_device_types[i].add(vm, msg, msg_size));
	STEP("registers", vm_bus_map_registers(vm));
	STEP("cmdline", build_cmdline(vm, msg, msg_size));
	STEP("initrd", vm_setup_initrd(vm, msg, msg_size));
	STEP("vcpus", setup_vcpus(vm, msg, msg_size));
#undef STEP
	if (!err && !cfg->setup_only) {
		for (unsigned int i = 0; i < vm->nr_vcpus && !err; i++) {
			int e = vmm_thread_create(&vm->vcpus[i].thread, vcpu_main, &vm->vcpus[i],
						  false);
			if (e) {
				snprintf(msg, msg_size, "vCPU thread: %s", strerror(e));
				err = EC1_ENOMEM;
			} else {
				vm->vcpus[i].started = true;
			}
		}
		if (!err)
			wait_for_stop(vm);
	}
	if (cfg->setup_only)
		vm_mark(vm, &vm->timing.first_run);
	teardown(vm);
	vm->timing.torn_down = clock_ns();
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
