/*
 * ec1 — run a program inside a KVM microVM.
 *
 * Usage: ec1_ctx_new(), then ec1_ctx_set_* calls to describe the VM and the process, then
 * ec1_run() (returns the guest process's exit status) or ec1_start_enter() (exits this process
 * with it, as libkrun's krun_start_enter does), then ec1_ctx_free().
 *
 * Every call returns EC1_OK (0) or a negative EC1_E* code; ec1_ctx_message() then names the field
 * or path and the reason. Paths are checked when they are set. Strings and arrays passed in are
 * copied: the caller may free them as soon as the call returns.
 */
#ifndef EC1_EC1_H
#define EC1_EC1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Result codes: stable values, never reused. */
enum ec1_error {
	EC1_OK = 0,
	EC1_ENOTAVAIL = -1,    /* backend not available (stub, or libkrun not found) */
	EC1_EVMNET = -2,       /* vmnet networking not available here */
	EC1_EUNSUPPORTED = -3, /* not supported by this backend or variant */
	EC1_EINVAL = -4,       /* invalid argument: the message names the field */
	EC1_EBACKEND = -5,     /* the backend failed; ec1_ctx_backend_errno() has its errno */
	EC1_EALREADY = -6,     /* already done (a second ec1_set_log_level call) */
	EC1_ENOMEM = -7,       /* out of memory */
	EC1_EKVM = -8,	       /* /dev/kvm missing, not permitted, or unable to run a guest */
	EC1_EGUEST = -9,       /* the guest failed: kernel panic, triple fault, broken driver */
	EC1_ETIMEDOUT = -10,   /* the run exceeded its timeout */
	EC1_ESTATE = -11,      /* call out of order (e.g. running a context twice) */
};

/* Short English description of a code; never NULL. */
const char *ec1_strerror(int code);

/* Log levels, libkrun's values. */
enum ec1_log_level {
	EC1_LOG_OFF = 0,
	EC1_LOG_ERROR = 1,
	EC1_LOG_WARN = 2,
	EC1_LOG_INFO = 3,
	EC1_LOG_DEBUG = 4,
	EC1_LOG_TRACE = 5,
};

/*
 * Sets the process-wide log level. May succeed once per process (libkrun's logger cannot be
 * initialised twice); later calls return EC1_EALREADY and change nothing. Default: EC1_LOG_WARN.
 */
int ec1_set_log_level(enum ec1_log_level level);

/* Backends. */
enum ec1_backend {
	EC1_BACKEND_DEFAULT = 0, /* EC1_BACKEND environment variable, else the build's default */
	EC1_BACKEND_BUILTIN = 1, /* ec1's own KVM engine (Linux x86_64) */
	EC1_BACKEND_LIBKRUN = 2, /* libkrun loaded at run time (generic variant) */
	EC1_BACKEND_LIBKRUN_SEV = 3, /* libkrun-sev loaded at run time */
	EC1_BACKEND_LIBKRUN_EFI = 4, /* libkrun-efi loaded at run time */
	EC1_BACKEND_STUB = 5,	     /* every call returns EC1_ENOTAVAIL */
};

/* Name of a backend ("builtin", "libkrun", "libkrun-sev", "libkrun-efi", "stub"). */
const char *ec1_backend_name(enum ec1_backend backend);
/* Parses a backend name; returns EC1_EINVAL for an unknown one. */
int ec1_backend_parse(const char *name, enum ec1_backend *out);

/* Variant-dependent calls (SEED.md's availability table); see ec1_backend_capabilities(). */
enum ec1_capability {
	EC1_CAP_ROOT = 1 << 0,	      /* ec1_ctx_set_root */
	EC1_CAP_VOLUMES = 1 << 1,     /* ec1_ctx_set_mapped_volumes, ec1_ctx_add_virtiofs */
	EC1_CAP_SEV = 1 << 2,	      /* ec1_ctx_set_sev */
	EC1_CAP_SHUTDOWN_FD = 1 << 3, /* ec1_ctx_get_shutdown_eventfd */
	EC1_CAP_VMNET = 1 << 4,	      /* ec1_ctx_set_vmnet* */
	EC1_CAP_DISKS = 1 << 5,	      /* ec1_ctx_add_disk */
	EC1_CAP_DISK_MOUNTS = 1 << 6, /* ec1_ctx_mount_disk (init mounts disks, one as the root) */
	EC1_CAP_NETWORK = 1 << 7,     /* ec1_ctx_set_network: a guest network, published ports */
	EC1_CAP_NAT = 1 << 8,	      /* ec1_ctx_set_network_nat/_none: ec1's user-mode NAT */
	EC1_CAP_VSOCK = 1 << 9,	      /* ec1_ctx_add_vsock_port: vsock ports to host unix sockets */
	EC1_CAP_VSOCK_UDS = 1 << 10,  /* ec1_ctx_set_vsock_uds: Firecracker's hybrid vsock */
	EC1_CAP_EXEC = 1 << 11,	      /* ec1_ctx_start/_stop, ec1_exec_*: a VM that stays up */
};
/*
 * The EC1_CAP_* bits a backend offers: for a libkrun variant installed here, what the library
 * found can do (an older libkrun lacks calls: no vmnet before 1.15, ...); for one that is not,
 * what the variant offers.
 */
unsigned int ec1_backend_capabilities(enum ec1_backend backend);
/*
 * The version of a backend found here: ec1's for the builtin engine; a libkrun library's from its
 * file name (libkrun.so.1.17.0: "1.17.0"), "" when the name does not say; NULL when the backend
 * is not installed (libkrun) or never available (stub).
 */
const char *ec1_backend_version(enum ec1_backend backend);

/* An opaque configuration and run of one microVM. */
struct ec1_ctx;

/* Creates a context on the default backend. */
int ec1_ctx_new(struct ec1_ctx **out);
/* Creates a context on the given backend. EC1_ENOTAVAIL if it cannot be used here. */
int ec1_ctx_new_backend(enum ec1_backend backend, struct ec1_ctx **out);
/* Frees a context (NULL is fine); stops helpers it started. */
void ec1_ctx_free(struct ec1_ctx *ctx);
/* The backend this context uses. */
enum ec1_backend ec1_ctx_backend(const struct ec1_ctx *ctx);
/* Message of the last failed call on ctx: field or path, and reason. "" if none. */
const char *ec1_ctx_message(const struct ec1_ctx *ctx);
/* errno-style value of the last EC1_EBACKEND error (libkrun's negative return), else 0. */
int ec1_ctx_backend_errno(const struct ec1_ctx *ctx);

/* Limits, checked by every call that takes such a value. */
#define EC1_MAX_VCPUS	     64
#define EC1_MIN_RAM_MIB	     32
#define EC1_MAX_RAM_MIB	     65536
#define EC1_MAX_SHARES	     15 /* root, volumes and shares together (builtin backend) */
#define EC1_MAX_TAG_LEN	     36 /* bytes of a virtio-fs tag (virtio 1.2 §5.11.4) */
#define EC1_MAX_DISKS	     8
#define EC1_MAX_BLOCK_ID_LEN 20 /* bytes of a block id: the guest's serial (virtio-blk GET_ID) */

/* VM size. */
struct ec1_vm_config {
	uint8_t num_vcpus; /* virtual CPUs, 1..EC1_MAX_VCPUS; default 1 */
	uint32_t ram_mib;  /* guest RAM in MiB, EC1_MIN_RAM_MIB..EC1_MAX_RAM_MIB; default 512 */
};
int ec1_ctx_set_vm(struct ec1_ctx *ctx, const struct ec1_vm_config *config);

/* Uses a host directory as the guest's root file system (not in the SEV variant). */
int ec1_ctx_set_root(struct ec1_ctx *ctx, const char *dir);
/*
 * How a shared directory treats the guest's changes (builtin backend). By default, when ec1 runs
 * as root, objects the guest creates belong to the directory's owner on the host, chown/chgrp to
 * anyone else is refused (EPERM) and setuid (setgid but on directories) is never set on a host
 * file: a guest cannot hand host files to host users or plant set-id programs.
 */
#define EC1_SHARE_READ_ONLY 1u /* every change refused (EROFS); volume option "ro" */
#define EC1_SHARE_GUEST_IDS 2u /* the guest's owners and set-id bits kept: "guest-ids" */
/* An option list ("ro,guest-ids"; also rw) as EC1_SHARE_* flags; 0, or -1 on an unknown one. */
int ec1_share_flags_parse(const char *opts, unsigned int *flags);
/* Flags EC1_SHARE_* for the root directory (default 0; without one, the start is refused). */
int ec1_ctx_set_root_flags(struct ec1_ctx *ctx, unsigned int flags);
/*
 * Maps host directories into the guest: "HOST:GUEST[:OPTS]" each, OPTS a comma-separated list of
 * ro, rw and guest-ids (not in the SEV variant; libkrun takes none of them).
 */
int ec1_ctx_set_mapped_volumes(struct ec1_ctx *ctx, const char *const *volumes, size_t count);
/* Adds a virtio-fs share the guest mounts itself with `mount -t virtiofs TAG DIR`. */
int ec1_ctx_add_virtiofs(struct ec1_ctx *ctx, const char *tag, const char *dir);

/* Disk image formats, libkrun's values. */
enum ec1_disk_format {
	EC1_DISK_RAW = 0,
	EC1_DISK_QCOW2 = 1,
};

/*
 * A block device (virtio-blk). The builtin engine shows the guest block_id as the disk's serial
 * (/sys/block/vdX/serial), opens a read-only image O_RDONLY, and refuses an image another VM or
 * program holds locked (unless both are read-only). The format is taken as given: an image named
 * raw is raw whatever its first bytes say (ec1_disk_detect_format reads them, for a caller that
 * wants to ask); one named qcow2 must have qcow2's header.
 */
struct ec1_disk_config {
	const char *block_id; /* guest-visible id, required: 1..20 printable bytes, no space */
	const char *path;     /* host image file or block device, required, must exist */
	enum ec1_disk_format format; /* default EC1_DISK_RAW */
	bool read_only;		     /* default false */
};
int ec1_ctx_add_disk(struct ec1_ctx *ctx, const struct ec1_disk_config *config);
/*
 * ec1's init mounts the disk added as block_id at guest_path (an absolute path, created if
 * missing; "/" makes it the guest's root file system, as ec1_ctx_set_root does for a directory,
 * and libkrun's krun_set_root_disk), read-only when the disk is. fstype: the file system
 * ("ext4", ...), or NULL to try each one the guest kernel has. Builtin backend
 * (EC1_CAP_DISK_MOUNTS).
 */
int ec1_ctx_mount_disk(struct ec1_ctx *ctx, const char *block_id, const char *guest_path,
		       const char *fstype);
/*
 * Per-disk options, EC1_DISK_* flags, for a disk added as block_id (on libkrun: direct I/O and
 * no flush through krun_add_disk3, libkrun >= 1.19, refused with an older one; a qcow2 image that
 * names a backing file, which libkrun opens, is refused at start without EC1_DISK_ALLOW_BACKING,
 * one with an external data file always).
 * EC1_DISK_ALLOW_BACKING: a qcow2 image may name a backing file (opened read-only, as may its
 * own, up to 8 deep); without it such an image is refused, so an image from elsewhere cannot make
 * ec1 read a host file it names.
 * EC1_DISK_DIRECT_IO: the image is read and written with O_DIRECT, past the host's page cache
 * (libkrun's direct_io, QEMU's cache.direct): the guest's own cache is the only one, so a VM
 * reading a large image does not fill the host's memory. An image on a file system or block
 * device that takes O_DIRECT (else refused at start, naming the disk), a raw one's size a multiple
 * of its direct-I/O block; a transfer O_DIRECT cannot take as it is goes through a buffer. A qcow2
 * image's backing files stay cached (shared by the VMs that use them).
 * EC1_DISK_NO_FLUSH: the disk offers the guest no flush (libkrun's KRUN_SYNC_NONE, QEMU's
 * cache.no-flush): the guest sees a write-through disk and its syncs cost nothing, and what it
 * wrote may be lost if the host crashes (not if ec1 is killed: every write has reached the host
 * kernel when the guest sees it done). For scratch disks.
 */
#define EC1_DISK_ALLOW_BACKING 1u
#define EC1_DISK_DIRECT_IO     2u
#define EC1_DISK_NO_FLUSH      4u
int ec1_ctx_set_disk_flags(struct ec1_ctx *ctx, const char *block_id, unsigned int flags);
/*
 * Which partition of the disk added as block_id init mounts (ec1_ctx_mount_disk): 1..128, the
 * kernel's /dev/vdXN (an MBR or GPT partition table; a cloud image's root is usually 1), or 0,
 * the default: the whole disk; a partition of a disk init does not mount is refused at the
 * start. Builtin backend (EC1_CAP_DISK_MOUNTS).
 */
int ec1_ctx_set_disk_partition(struct ec1_ctx *ctx, const char *block_id, unsigned int partition);
/* The format an image's header says: EC1_DISK_QCOW2 when it has qcow2's magic, else raw. */
int ec1_disk_detect_format(const char *path, enum ec1_disk_format *format);

/*
 * Networking. Leave passt_fd at -1 and gvproxy_path NULL for the default network: TSI on
 * libkrun, the user-mode NAT on the builtin engine (ec1_ctx_set_network_nat), where port_map's
 * "HOST:GUEST" entries publish TCP port GUEST on 127.0.0.1:HOST. passt_fd: a connected stream
 * socket to passt (4-byte big-endian frame lengths). gvproxy_path: gvproxy's -listen-vfkit
 * unixgram socket (ec1 binds its end in a directory of its own, connects, greets with "VFKT").
 * With either, the builtin guest asks the network's DHCP server for its address
 * (ec1_ctx_set_network_address to fix one). port_map NULL: the backend's default, which on
 * libkrun's TSI publishes every port the guest listens on (on the same host port), and on the
 * builtin NAT none; non-NULL with port_map_count 0: none on either. mac NULL: a random one
 * (locally administered), also on libkrun, which would otherwise give every VM the same.
 */
struct ec1_network_config {
	int passt_fd;		     /* connected passt socket, or -1 for none */
	const char *gvproxy_path;    /* gvproxy unix socket path, or NULL for none */
	const uint8_t *mac;	     /* 6 bytes, or NULL to generate one */
	const char *const *port_map; /* "HOST:GUEST" entries; only with the default backend */
	size_t port_map_count;
};
int ec1_ctx_set_network(struct ec1_ctx *ctx, const struct ec1_network_config *config);
/*
 * Networking through the host TAP interface iface (builtin backend): attached to when it exists
 * (a persistent one the caller configured, or one it may use), else created for the VM's
 * lifetime (CAP_NET_ADMIN). mac: 6 bytes, or NULL to generate one.
 */
int ec1_ctx_set_network_tap(struct ec1_ctx *ctx, const char *iface, const uint8_t *mac);
/*
 * The user-mode NAT of the builtin engine (libslirp; on by default): the guest is 10.0.2.15/24,
 * 10.0.2.2 is the host's loopback, 10.0.2.3 the host's resolver. publish: "[ADDR:]HOST:GUEST
 * [/udp]" entries, the guest's port GUEST reachable at the host's ADDR (default 127.0.0.1; an
 * IPv6 one, "[::1]:8080:80", is EC1_EINVAL here: the NAT's guest side is IPv4) port HOST, TCP
 * unless /udp. restricted: the guest reaches nothing (no host, no DNS) but what is published, and
 * the allow entries: "ADDR:PORT[/udp]", a destination as the guest sees it (10.0.2.2 is the host's
 * loopback), TCP unless /udp; only with restricted. mac: 6 bytes, or NULL to generate one.
 */
struct ec1_nat_config {
	const char *const *publish;
	size_t publish_count;
	bool restricted;
	const uint8_t *mac;
	const char *const *allow;
	size_t allow_count;
};
int ec1_ctx_set_network_nat(struct ec1_ctx *ctx, const struct ec1_nat_config *config);
/* No network at all (the builtin engine's default is the NAT). */
int ec1_ctx_set_network_none(struct ec1_ctx *ctx);
/*
 * passt (Debian's `passt`) started by ec1 for this context, on a socket pair: the guest gets the
 * host's address, gateway and DNS servers from passt's DHCP, reaches the host's own services at
 * the gateway's address, and the published ports ("[ADDR:]HOST:GUEST[/udp]" as in
 * ec1_nat_config, bound by passt on ADDR, default 127.0.0.1; an IPv6 ADDR in brackets,
 * "[::1]:8080:80", reaches the guest's IPv6 address) reach the guest. Returns once passt
 * has bound them (a port taken: EC1_EINVAL with passt's words). passt runs as nobody when ec1
 * runs as root and ends with the context (or with the next network call).
 */
struct ec1_passt_config {
	const char *path; /* the passt program; NULL: "passt" on PATH */
	const char *const *publish;
	size_t publish_count;
	const uint8_t *mac; /* 6 bytes, or NULL to generate one */
};
int ec1_ctx_set_network_passt(struct ec1_ctx *ctx, const struct ec1_passt_config *config);
/*
 * The builtin guest's IPv4 set-up, fixed rather than asked of the network's DHCP server (passt,
 * gvproxy, TAP, vmnet): cidr "ADDR/PREFIX"; gateway (the default route) and dns: an address, or
 * NULL for none. cidr NULL: DHCP again, the default. Not with the NAT, whose guest is always
 * 10.0.2.15/24. Call after choosing the network; a later network call keeps it.
 */
int ec1_ctx_set_network_address(struct ec1_ctx *ctx, const char *cidr, const char *gateway,
				const char *dns);

/*
 * vsock (the guest's CID is 3, the host's 2). ec1_ctx_add_vsock_port connects the guest's vsock
 * port to a host unix socket at path (libkrun's krun_add_vsock_port2): without listen, a guest
 * connect(2, port) reaches a server listening at path; with listen, ec1 listens at path (mode
 * 0600; a socket left there is replaced, anything else is an error) and each host connection
 * reaches the guest's listener on port. Ports 1..4294967294, each once, at most
 * EC1_MAX_VSOCK_PORTS.
 */
#define EC1_MAX_VSOCK_PORTS 16
#define EC1_GUEST_CID	    3
int ec1_ctx_add_vsock_port(struct ec1_ctx *ctx, uint32_t port, const char *path, bool listen);
/*
 * Firecracker's hybrid vsock on path (builtin engine), beside the ports above: a host client
 * connects to path, writes "CONNECT PORT\n" and, once the guest's listener on PORT has accepted,
 * reads "OK N\n" and then talks to it (closed if the guest refuses); a guest connect(2, PORT)
 * for a port not added above reaches a server at "PATH_PORT". NULL: none.
 */
int ec1_ctx_set_vsock_uds(struct ec1_ctx *ctx, const char *path);

/* The process to run as the guest's main process. */
struct ec1_process_config {
	const char
		*exec_path; /* program path in the guest (searched in PATH if no '/'), required */
	const char *const *
		argv; /* NULL-terminated, argv[0] included (execve convention); NULL: {exec_path} */
	const char *const *envp; /* NULL-terminated "K=V"; NULL: PATH, HOME=/ and TERM */
	const char *workdir;	 /* working directory in the guest; NULL: "/" */
};
int ec1_ctx_set_process(struct ec1_ctx *ctx, const struct ec1_process_config *config);

/*
 * Kernel image formats: 0..5 are libkrun's values, each what libkrun means by it; 6 is ec1's own.
 * The builtin engine boots ELF (a vmlinux with a PVH note) and BZIMAGE, and reads which of the
 * two the file is; libkrun boots the others and ELF, but no bzImage.
 */
enum ec1_kernel_format {
	EC1_KERNEL_RAW = 0,	   /* libkrun: a flat image (on x86-64 entered at 0x80000000) */
	EC1_KERNEL_ELF = 1,	   /* an ELF vmlinux */
	EC1_KERNEL_PE_GZ = 2,	   /* libkrun: a gzip-compressed PE image (aarch64) */
	EC1_KERNEL_IMAGE_BZ2 = 3,  /* libkrun: a bzip2-compressed Image (aarch64) */
	EC1_KERNEL_IMAGE_GZ = 4,   /* libkrun: a gzip-compressed Image (aarch64) */
	EC1_KERNEL_IMAGE_ZSTD = 5, /* libkrun: a zstd-compressed Image (aarch64) */
	EC1_KERNEL_BZIMAGE = 6,	   /* builtin: a bzImage (the x86 boot protocol's) */
};

/* The guest kernel. Default (builtin): ec1's own kernel, found at build or install time. */
struct ec1_kernel_config {
	const char *path;	       /* kernel image, required, must exist */
	enum ec1_kernel_format format; /* builtin: ELF or BZIMAGE; libkrun: 0..5 */
	const char *initramfs;	       /* base root archive (newc cpio), or NULL for the default */
	const char *cmdline;	       /* appended to the kernel command line, or NULL */
};
int ec1_ctx_set_kernel(struct ec1_ctx *ctx, const struct ec1_kernel_config *config);

/* AMD SEV (SEV variant only). */
struct ec1_sev_config {
	const char *tee_config_file; /* TEE configuration file; libkrun-sev needs one */
};
int ec1_ctx_set_sev(struct ec1_ctx *ctx, const struct ec1_sev_config *config);

/*
 * An eventfd the caller writes to ask the guest for an orderly shutdown (EFI variant, builtin).
 * The fd belongs to the context and is closed by ec1_ctx_free().
 */
int ec1_ctx_get_shutdown_eventfd(struct ec1_ctx *ctx, int *fd);

/* vmnet (macOS vmnet-helper) operation modes. */
enum ec1_vmnet_mode {
	EC1_VMNET_SHARED = 0,  /* NAT: Internet, host, other shared VMs */
	EC1_VMNET_BRIDGED = 1, /* bridged to a physical interface (shared_interface required) */
	EC1_VMNET_HOST = 2,    /* host and other host-only VMs; optional isolation */
};

/*
 * vmnet networking through vmnet-helper (libkrun and libkrun-efi backends; needs libkrun >= 1.15
 * for krun_add_net_unixgram). ec1 starts the helper with one end of a datagram socket pair as its
 * fd 3 (`--fd 3`), reads the one JSON line it prints, and gives the guest a virtio-net device on
 * our end: one Ethernet frame per datagram. The helper is stopped by ec1_ctx_free(). Off macOS
 * the call answers EC1_EVMNET unless a helper is configured (helper_path or EC1_VMNET_HELPER),
 * e.g. a compatible program on Linux. NULL strings mean the helper's defaults.
 */
struct ec1_vmnet_config {
	const char *interface_id;     /* interface UUID (keeps the MAC across runs), or NULL */
	enum ec1_vmnet_mode mode;     /* default EC1_VMNET_SHARED */
	const char *start_address;    /* IPv4 DHCP range start (shared, host), or NULL */
	const char *end_address;      /* IPv4 DHCP range end, or NULL */
	const char *subnet_mask;      /* IPv4 subnet mask, or NULL */
	const char *shared_interface; /* bridged mode only, required: physical interface ("en0") */
	bool enable_isolation;	      /* host mode only: no VM-to-VM traffic */
	bool verbose;		      /* helper logs verbosely (to this process's stderr) */
	const char *const *port_map;  /* must be empty: the guest has its own address on vmnet */
	size_t port_map_count;
	const char
		*helper_path; /* NULL: $EC1_VMNET_HELPER, else /opt/vmnet-helper/bin/vmnet-helper */
};
int ec1_ctx_set_vmnet(struct ec1_ctx *ctx, const struct ec1_vmnet_config *config);
int ec1_ctx_set_vmnet_shared(struct ec1_ctx *ctx, const char *const *port_map, size_t count);
int ec1_ctx_set_vmnet_bridged(struct ec1_ctx *ctx, const char *iface, const char *const *port_map,
			      size_t count);
int ec1_ctx_set_vmnet_host(struct ec1_ctx *ctx, bool isolation, const char *const *port_map,
			   size_t count);

/* What the running vmnet-helper reported. Empty strings where it said nothing. */
struct ec1_vmnet_info {
	uint8_t mac[6];		  /* the guest's MAC address (vmnet_mac_address) */
	char mac_address[18];	  /* the same, "xx:xx:xx:xx:xx:xx" */
	uint32_t mtu;		  /* bytes (vmnet_mtu) */
	uint32_t max_packet_size; /* bytes (vmnet_max_packet_size), 0 if not given */
	char start_address[16]; /* IPv4 range start; in shared mode the host's (gateway) address */
	char end_address[16];	/* IPv4 range end */
	char subnet_mask[16];	/* IPv4 subnet mask */
	char interface_id[40];	/* interface UUID: pass it again to keep the MAC address */
	char nat66_prefix[48];	/* IPv6 prefix in shared mode */
	int helper_pid;		/* the helper's process id */
	int fd;			/* our end of the frame socket; owned by the context */
};
/* Fills *info after a successful ec1_ctx_set_vmnet*; EC1_ESTATE before. */
int ec1_ctx_get_vmnet_info(struct ec1_ctx *ctx, struct ec1_vmnet_info *info);

/* Builtin-engine extras (EC1_EUNSUPPORTED elsewhere). */
/*
 * Guest process stdio: host fds for its stdin, stdout, stderr. Default: 0, 1, 2; -1 for none. An
 * output fd whose write fails (its reader gone: EPIPE) takes no more: the process's next write
 * to that stream fails in the guest (SIGPIPE, or EPIPE where it ignores SIGPIPE). The VMM's own
 * threads never take SIGPIPE.
 */
int ec1_ctx_set_stdio(struct ec1_ctx *ctx, int stdin_fd, int stdout_fd, int stderr_fd);
/* Stops the run with EC1_ETIMEDOUT after timeout_ms milliseconds (0: never, the default). */
int ec1_ctx_set_timeout(struct ec1_ctx *ctx, uint32_t timeout_ms);
/* Boot-phase timing printed to stderr after the run (also EC1_TIMING=1). Default off. */
int ec1_ctx_set_timing(struct ec1_ctx *ctx, bool enable);
/* Copies the guest kernel's console to stderr (also EC1_CONSOLE=1). Default off. */
int ec1_ctx_set_console(struct ec1_ctx *ctx, bool enable);

/*
 * Boots the VM, runs the process and waits for it. On EC1_OK *status is the process's exit
 * status: its own code; 125 init could not set up the environment; 126 not executable;
 * 127 not found; 128+N killed by signal N. A context runs once.
 * On the libkrun backends, whose krun_start_enter never returns, the VM runs in another process:
 * the helper ec1-krun (installed in libexec/ec1; EC1_KRUN_HELPER names another), exec'd, so that
 * libkrun's threads never run in a forked copy of a threaded caller (every Go program is one),
 * which POSIX leaves undefined; an error before the guest runs comes back as this call's. A
 * one-thread caller without the helper gets a fork; a threaded one EC1_ENOTAVAIL. libkrun gets
 * the whole configuration at this point, each call once (a setting given twice: the last one).
 */
int ec1_run(struct ec1_ctx *ctx, int *status);
/* Like ec1_run, then exit(status) as libkrun does; returns only on error. */
int ec1_start_enter(struct ec1_ctx *ctx);

/*
 * A VM that stays up, and processes started in it from outside (builtin engine, EC1_CAP_EXEC).
 *
 * ec1_ctx_start boots the VM in a thread of this process and returns once ec1's init in the
 * guest takes exec requests; the process set with ec1_ctx_set_process, if any, runs meanwhile
 * (the VM ends when it exits), and without one the VM runs until ec1_ctx_stop. Exec requests
 * reach the guest through a unix socket: ec1_ctx_set_exec_socket's path, else one in a private
 * directory made at start (ec1_ctx_exec_socket says which). The socket is mode 0600 whatever
 * the umask (set before it is bound), so only its owner (and root) can exec into the VM; a
 * directory of mode 0700 around it makes sure. A context given an exec socket and run with
 * ec1_run takes exec requests too.
 */
int ec1_ctx_set_exec_socket(struct ec1_ctx *ctx, const char *path);
/*
 * Boots the VM; returns once it takes exec requests, or with why it could not start
 * (EC1_ETIMEDOUT, the VM stopped, when the guest has not said it is ready within 120 s).
 */
int ec1_ctx_start(struct ec1_ctx *ctx);
/* The exec socket's path ("" until there is one). */
const char *ec1_ctx_exec_socket(const struct ec1_ctx *ctx);
/* Waits for a started VM to end; *status as ec1_run's (0 for a VM stopped in order). */
int ec1_ctx_wait(struct ec1_ctx *ctx, int *status);
/*
 * Stops a started VM and waits for its end: SIGTERM to the main process and to everything exec
 * started, SIGKILL to them all after grace_ms, and the VM itself stopped 2 s after that (status
 * 137). status may be NULL. ec1_ctx_free stops a started VM the same way, without grace.
 */
int ec1_ctx_stop(struct ec1_ctx *ctx, uint32_t grace_ms, int *status);

/* A process to start in a running VM. */
struct ec1_exec_config {
	const char *exec_path;	 /* program in the guest (searched in PATH if no '/'), required */
	const char *const *argv; /* NULL-terminated, argv[0] included; NULL: {exec_path} */
	const char *const *envp; /* "K=V" added to the VM's environment (replacing the same K) */
	const char *workdir;	 /* absolute, or NULL: the VM's working directory */
	int stdin_fd;		 /* host fd copied to the process's stdin, or -1: /dev/null */
	int stdout_fd;		 /* host fd that gets its stdout, or -1: dropped */
	int stderr_fd;		 /* host fd that gets its stderr, or -1: dropped */
	/*
	 * An output fd whose write fails (its reader gone) takes no more, and the process's next
	 * write to that stream fails in the guest (SIGPIPE; a terminal hangs up). ec1_exec_wait
	 * writes in the caller's thread: a caller that does not ignore SIGPIPE gets it then.
	 */
	bool tty; /* a terminal in the guest for all three (output comes as stdout) */
	uint16_t tty_rows, tty_cols; /* its size */
};
/* An exec into a VM: one process, its streams, its exit status. */
struct ec1_exec;
/* An exec through the VM's exec socket (ec1_ctx_exec_socket, or `ec1 start`'s). */
int ec1_exec_new(const char *socket_path, struct ec1_exec **out);
/*
 * Starts the process. Errors: EC1_ESTATE when no VM listens at the socket (not running, or
 * stopped), EC1_EINVAL for a bad field (named in the message; argv and envp together are
 * limited to 64 KiB).
 */
int ec1_exec_start(struct ec1_exec *exec, const struct ec1_exec_config *config);
/*
 * Copies the streams until the process exits; *status as ec1_run's: its code, 125 when the
 * guest could not set it up (the reason on its stderr), 126, 127, 128+N. EC1_EGUEST when the VM
 * went away before saying it.
 */
int ec1_exec_wait(struct ec1_exec *exec, int *status);
/*
 * Sends signal sig (1..64) to the process's group; async-signal-safe (it only marks the signal
 * and wakes ec1_exec_wait, which sends it), so a SIGINT handler may forward Ctrl-C with it.
 */
int ec1_exec_signal(struct ec1_exec *exec, int sig);
/* The terminal's new size (with tty); async-signal-safe, as ec1_exec_signal. */
int ec1_exec_resize(struct ec1_exec *exec, uint16_t rows, uint16_t cols);
/* Why the last call on exec failed ("" if none). */
const char *ec1_exec_message(const struct ec1_exec *exec);
/* Frees exec (NULL is fine); a process still running in the guest is killed. */
void ec1_exec_free(struct ec1_exec *exec);

#ifdef __cplusplus
}
#endif

#endif
