/*
 * The contract between the VMM and its init in the guest (guest/init/init.c), in one place: the
 * files in the initramfs, the process description, the console ports and their names, the words
 * of the control port, the exit codes, the default environment. Self-contained (no includes), so
 * that the static init (musl) and the VMM build against the same text. A change here is a change
 * of both sides: bump EC1_ABI_PROCESS_MAGIC when the description's layout changes.
 */
#ifndef EC1_GUEST_ABI_H
#define EC1_GUEST_ABI_H

/* The initramfs: init, the description it reads, the directory a root share is mounted on. */
#define EC1_ABI_INIT	     "/.ec1/init"
#define EC1_ABI_PROCESS	     "/.ec1/process"
#define EC1_ABI_ROOT	     "/.ec1/root"
#define EC1_ABI_RDINIT_PARAM "rdinit=" EC1_ABI_INIT

/*
 * The process description: NUL-terminated fields: EC1_ABI_PROCESS_MAGIC, exec path, workdir,
 * argc, argv[0..argc), envc, env[0..envc), mount count, then per mount: file system type, source,
 * guest path ("/": the root), "ro" or "rw". Type EC1_ABI_FS_VIRTIOFS: the source is a virtio-fs
 * tag; any other (empty: each block file system the kernel has, in turn): the source is a disk's
 * block id, the serial of a /sys/block/vd* device. Then the network: the guest's address with
 * its prefix length ("10.0.2.15/24"; empty: no network), the gateway and the DNS server (both
 * may be empty), which init gives the first Ethernet interface. Counts are decimal digits;
 * nothing follows the DNS server.
 */
#define EC1_ABI_PROCESS_MAGIC	"EC1P4"
#define EC1_ABI_FS_VIRTIOFS	"virtiofs"
#define EC1_ABI_MAX_DISK_MOUNTS 64 /* disks init mounts, at most */

/*
 * virtio-console ports (multiport), /dev/vport0p<id> in the guest, each named (§5.3.6.2 PORT_NAME)
 * so the guest can tell them apart. Port 0 stays unused: QEMU reserves it for a console port,
 * and the same numbering lets the same init run under QEMU (bench/boot).
 */
enum ec1_abi_port {
	EC1_PORT_STDIN = 1,
	EC1_PORT_STDOUT = 2,
	EC1_PORT_STDERR = 3,
	EC1_PORT_CONTROL = 4,
	EC1_NR_PORTS = 5
};
#define EC1_ABI_PORT_DEV "/dev/vport0p%d"
#define EC1_ABI_PORT_NAMES                                                   \
	{                                                                    \
		NULL, "ec1.stdin", "ec1.stdout", "ec1.stderr", "ec1.control" \
	}

/*
 * The control port, one line each way per message. Init to the VMM: "start NS" (its clock at
 * start, ns since boot), "exec" (the process is about to start), "exit STATUS" (0..255, after
 * everything the process wrote is queued). The VMM to init: "term" (SIGTERM to the process),
 * "kill" (SIGKILL).
 */
#define EC1_CTL_START "start"
#define EC1_CTL_EXEC  "exec"
#define EC1_CTL_EXIT  "exit"
#define EC1_CTL_TERM  "term"
#define EC1_CTL_KILL  "kill"

/*
 * Exit status (libkrun's convention): the process's own; 125 when the environment cannot be set
 * up (init's, or the VMM's errors); 126 found but not executable; 127 not found; 128+N killed by
 * signal N.
 */
#define EC1_EXIT_SETUP	  125
#define EC1_EXIT_NOEXEC	  126
#define EC1_EXIT_NOTFOUND 127
#define EC1_EXIT_SIGNAL	  128

/* The environment of a process given none. */
#define EC1_ABI_DEFAULT_ENV                                                                    \
	{                                                                                      \
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", \
			"TERM=linux", NULL                                                     \
	}

#endif
