/* The builtin VMM: one microVM, from configuration to the guest process's exit status. */
#ifndef EC1_VM_H
#define EC1_VM_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "clock.h"
#include "disk/disk.h"
#include "ec1/ec1.h"
#include "guest_mem.h"
#include "net/backend.h"
#include "vsock/vsock.h"
#include "serial.h"
#include "virtio/mmio.h"

#define VM_MAX_VCPUS   EC1_MAX_VCPUS
#define VM_MAX_DEVICES 18 /* lines 5..22 (ARCH_MMIO_IRQ_BASE on), of the IOAPIC's 24 */
/* The KVM memory slot of the devices' register pages (guest RAM has slots 0 and 1). */
#define VM_REGISTERS_SLOT 2
#define VM_MAX_SHARES	  EC1_MAX_SHARES
_Static_assert(VM_MAX_SHARES + 3 <= VM_MAX_DEVICES,
	       "a device for each share, the console, the network and vsock");

/* A host directory shared with the guest through virtio-fs. */
struct vm_share {
	const char *tag;      /* virtio-fs tag, 1..36 bytes, unique */
	const char *host_dir; /* the directory served */
	const char
		*guest_path; /* where init mounts it ("/": the root), or NULL: the guest decides */
	bool read_only;	     /* the server refuses every change (EROFS) */
	bool guest_ids; /* the guest's owners and set-id bits on host files (FUSE_SERVER_GUEST_IDS)
			 */
};

/* A disk image given to the guest through virtio-blk. */
struct vm_disk {
	const char *block_id;	 /* 1..20 bytes: the guest's /sys/block/vdX/serial, unique */
	const char *path;	 /* the image */
	enum disk_format format; /* as named by the caller; the header must agree for qcow2 */
	bool read_only;
	bool allow_backing;	/* a qcow2 image may name a backing file (read-only chain) */
	bool direct;		/* O_DIRECT on the image (not on a qcow2 one's backing files) */
	bool no_flush;		/* FLUSH not offered: the guest's flushes are not made */
	const char *guest_path; /* where init mounts it ("/": the root), or NULL: not mounted */
	const char *fstype;	/* its file system, or NULL: init tries those the kernel has */
	unsigned int partition; /* which partition init mounts; 0: the whole disk */
};

/*
 * The guest's network interface (virtio-net): frames go to the user-mode NAT, a host TAP
 * interface, a connected stream socket in stream framing (passt's --fd, QEMU's -netdev stream)
 * or a connected datagram socket (vmnet-helper, gvproxy); init configures the guest statically
 * or by DHCP (guest_cidr "dhcp").
 */
enum vm_net_kind {
	VM_NET_NAT,    /* user-mode NAT (libslirp) */
	VM_NET_STREAM, /* a connected stream socket in passt's framing */
	VM_NET_TAP,    /* a host TAP interface */
	VM_NET_DGRAM,  /* a connected datagram socket, a frame per datagram */
};

struct vm_net {
	enum vm_net_kind kind;
	const char *tap; /* VM_NET_TAP: the interface's name */
	int fd; /* VM_NET_STREAM, VM_NET_DGRAM: the socket (borrowed: the device takes a duplicate)
		 */
	bool restricted;	      /* VM_NET_NAT: published ports only */
	const struct net_port *ports; /* VM_NET_NAT: published ports (net/backend.h) */
	unsigned int nr_ports;
	const struct net_allow *allow; /* VM_NET_NAT, restricted: destinations let through */
	unsigned int nr_allow;
	uint8_t mac[6];	  /* the guest's address */
	unsigned int mtu; /* VM_NET_STREAM: the link's MTU (0: 1,500) */
	/* for init: "10.0.2.15/24", "10.0.2.2", "10.0.2.3"; or "dhcp", "", "" */
	const char *guest_cidr, *gateway, *dns;
};

/* The vsock device: the guest's CID and what its ports reach (vsock/vsock.h). */
struct vm_vsock {
	uint64_t guest_cid;
	const struct vsock_port *ports;
	unsigned int nr_ports;
	const char *uds; /* Firecracker's convention on this path, or NULL */
};

/* Everything the engine needs to run one VM; strings and arrays are borrowed for the call. */
struct vm_config {
	unsigned int cpus;	    /* vCPUs, 1..VM_MAX_VCPUS */
	uint32_t ram_mib;	    /* guest RAM in MiB */
	const char *kernel_path;    /* vmlinux (ELF with a PVH note) or bzImage */
	const char *initramfs_path; /* base root archive (newc cpio), or NULL for none */
	const char *cmdline_extra;  /* appended to the kernel command line, or NULL */
	const char *exec_path;	    /* program to run in the guest; "" none (agent_port set) */
	const char *const *argv;    /* NULL-terminated, argv[0] included */
	const char *const *envp;    /* NULL-terminated, or NULL for the default */
	const char *workdir;	    /* or NULL for "/" */
	const struct vm_share *shares;
	unsigned int nr_shares;
	const struct vm_disk *disks;
	unsigned int nr_disks;
	const struct vm_net *net;     /* or NULL: no network */
	const struct vm_vsock *vsock; /* or NULL: no vsock device */
	int stdin_fd, stdout_fd, stderr_fd;
	uint32_t timeout_ms; /* 0: no limit */
	int shutdown_fd;     /* eventfd: a write asks for an orderly shutdown; -1 for none */
	uint32_t agent_port; /* vsock port of init's exec agent, or 0 for none */
	int ready_fd;	     /* eventfd written once init's agent listens; -1 for none */
	bool console;	     /* copy the guest kernel's serial console to stderr */
	bool timing;	     /* print boot-phase timing to stderr */
	bool allow_pvm;	     /* set up the VM even on a PVM /dev/kvm (benchmarks) */
	bool setup_only;     /* set the VM up and tear it down without running it */
};

/* Boot-phase timestamps, CLOCK_MONOTONIC nanoseconds; 0 when the phase was not reached. */
#define VM_SETUP_STEPS_MAX 16

struct vm_timing {
	uint64_t start, first_run, init_start, exec, exit, stopped, torn_down;
	uint64_t guest_boot_ns; /* guest clock at init start: kernel entry to init */
	uint64_t rss_bytes, guest_resident_bytes; /* measured at teardown when timing is on */
	uint64_t measure_ns; /* what measuring them took, left out of the teardown figure */
	unsigned int nr_setup_steps;
	uint64_t setup_ns[VM_SETUP_STEPS_MAX];	     /* each step of the set-up, in order */
	const char *setup_names[VM_SETUP_STEPS_MAX]; /* and its name */
};

struct vcpu {
	struct vm *vm;
	unsigned int index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	/* Its answer to the latest halt probe (vm->halt_probe): the probe's number << 1, and
	 * whether it stopped for good (arch_vcpu_halted_for_good) in bit 0. */
	uint32_t probe_answer;
};

/* How the VM talks to the guest's init (the console's control port registers itself). */
struct vm_control {
	/* Sends one line; -EAGAIN when the guest cannot take it yet. */
	int (*send)(void *ctx, const char *line);
	void *ctx;
};

struct vm {
	const struct vm_config *cfg;
	int kvm_fd, vm_fd;
	size_t run_size;
	struct guest_mem mem;
	struct vcpu vcpus[VM_MAX_VCPUS];
	unsigned int nr_vcpus;
	struct serial serial;
	struct virtio_mmio_dev *devs[VM_MAX_DEVICES]; /* every device (bus.c owns them) */
	unsigned int nr_devs;
	struct virtio_mmio_host mmio_host; /* what the transport may ask of the VM (bus.c) */
	/*
	 * The devices' register windows as the guest reads them (one page each, from
	 * ARCH_MMIO_BASE), mapped into the guest read-only once the devices are made
	 * (vm_bus_map_registers), so that a read costs no exit; NULL where KVM has no read-only
	 * memory or EC1_REGISTERS=exit. bus.c owns it.
	 */
	uint8_t *reg_pages;
	/*
	 * KVM's coalesced-MMIO ring (the page KVM_CAP_COALESCED_MMIO names in each vCPU's
	 * mapping; one ring per VM): writes to the registered zones wait there instead of exiting,
	 * and every exit drains it first (bus.c). NULL: none, every write exits.
	 */
	int coalesced_page; /* the page's index in the vCPU mapping; 0: no ring */
	void *coalesced;
	unsigned int coalesced_max; /* entries the ring holds */
	pthread_mutex_t coalesced_lock;
	struct vm_control control;
	uint64_t entry;	     /* guest entry point */
	uint64_t boot_info;  /* guest address of the boot information (start_info or boot_params) */
	bool entry_64bit;    /* bzImage: enter in long mode; vmlinux/PVH: 32-bit protected mode */
	uint64_t kernel_end; /* first guest address above the loaded kernel */
	uint64_t initrd_max; /* highest address + 1 the kernel accepts for the initrd */
	char cmdline[4096];
	struct arch_vm *arch; /* interrupt controller state (arch_vm_init) */

	/*
	 * When the guest kernel's console last said it halts for good (serial_halt_line; 0:
	 * never). For a while after it, the thread in vm_run asks every vCPU whether it stopped
	 * with interrupts off (halt_probe: the probe's number, answered in vcpu->probe_answer)
	 * and ends the run once all have: nothing else would, the kernel has no way to say it.
	 */
	uint64_t halt_line_ns;
	uint32_t halt_probe;
	int stop_fd; /* eventfd: written once when the VM stops */
	/* eventfd: a job waits for the thread in vm_run (vm_run_on_caller), or the guest's halt
	 * line does (vm_guest_halting): either wakes wait_for_stop. */
	int call_fd;
	pthread_cond_t call_done;
	struct vm_call *calls; /* waiting, under lock */
	pthread_mutex_t lock;  /* guards what follows, and calls */
	bool stopping;
	bool stop_sent; /* the devices were told to stop (their ops->stop) */
	bool status_reported;
	int exit_status;
	int error_code; /* 0, or the EC1_E* code of the first error */
	char error[512];
	struct vm_timing timing;
};

struct vm_result {
	int status; /* guest process exit status (libkrun convention) */
	struct vm_timing timing;
};

/* Runs the VM to completion. Returns 0 (result filled) or an EC1_E* code with msg filled. */
int vm_run(const struct vm_config *cfg, struct vm_result *result, char *msg, size_t msg_size);

/* Ends the run: the first call's code and message win. code 0 means a normal stop. */
void vm_stop(struct vm *vm, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Runs fn(arg) on the thread in vm_run (the caller's, which no sandbox restricts) and waits for
 * it: for a device thread that needs, once, calls its sandbox refuses (the NAT's start at the
 * guest's first frame). Returns false, fn not run, when the VM stops first.
 */
struct vm_call {
	void (*fn)(void *arg);
	void *arg;
	bool taken, done;
	struct vm_call *next;
};
bool vm_run_on_caller(struct vm *vm, void (*fn)(void *arg), void *arg);
/* The thread in vm_run: runs the jobs waiting (when call_fd is readable). */
void vm_run_calls(struct vm *vm);
/* The guest's init reported the process's exit status. */
void vm_report_status(struct vm *vm, int status);
/* The guest kernel's console wrote its halt line (from the vCPU thread that wrote it). */
void vm_guest_halting(struct vm *vm);
/* Brings every vCPU thread out of KVM_RUN once (it goes back in unless the VM is stopping). */
void vm_kick_vcpus(struct vm *vm);
/* Guest memory pointer or NULL; see guest_mem_ptr. */
static inline void *vm_ptr(struct vm *vm, uint64_t gpa, uint64_t len)
{
	return guest_mem_ptr(&vm->mem, gpa, len);
}
/* Records a boot phase (first call per phase wins). */
void vm_mark(struct vm *vm, uint64_t *slot);
/* Installs the handler of the signal vm_interrupt_thread() sends (once per run). */
void vm_signals_init(void);
/*
 * For the VMM's own threads: blocks every signal but the one vm_interrupt_thread() sends, which
 * makes a blocking system call in the thread return EINTR (SIGPIPE then becomes EPIPE).
 */
void vm_thread_signals(void);
/*
 * For a VMM thread whose set-up is done: its seccomp allow-list (sandbox.h, kind a
 * SANDBOX_* value). On failure the VM stops with a message naming what; returns false then.
 */
bool vm_thread_sandbox(struct vm *vm, int kind, const char *what);
void vm_interrupt_thread(pthread_t thread);
/* Logs to stderr when the log level (an EC1_LOG_* value) allows it. */
void vm_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vm_set_log_level(int level);

/* For functions that fill (msg, msg_size) and return an EC1_E* code: both at once. */
#define VM_FAIL(code, ...)                            \
	do {                                          \
		snprintf(msg, msg_size, __VA_ARGS__); \
		return code;                          \
	} while (0)

#endif
