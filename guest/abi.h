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
 * Under libkrun, libkrun's own init is PID 1 and runs ec1's init as its workload, from a staging
 * root of ec1's (src/backend/libkrun.c: init at EC1_ABI_INIT, the description at
 * EC1_ABI_PROCESS, mount points), with this one argument: it mounts the description's shares
 * (the caller's root as "/" at EC1_ABI_ROOT, volumes under it), switches to that root and
 * executes the process in its own place; libkrun's init reports its exit status.
 */
#define EC1_ABI_KRUN_STAGE "--krun-stage"

/*
 * The process description: NUL-terminated fields: EC1_ABI_PROCESS_MAGIC, exec path, workdir,
 * argc, argv[0..argc), envc, env[0..envc), mount count, then per mount: file system type, source,
 * guest path ("/": the root), "ro" or "rw", partition. Type EC1_ABI_FS_VIRTIOFS: the source is a
 * virtio-fs tag (partition "0"); any other (empty: each block file system the kernel has, in
 * turn): the source is a disk's block id, the serial of a /sys/block/vd* device, and partition
 * N (1..EC1_ABI_MAX_PARTITION) its /dev/vdXN, "0" the whole disk. Then the network: the guest's
 * address with its prefix length ("10.0.2.15/24"; empty: no network), the gateway and the DNS
 * server (both may be empty), which init gives the first Ethernet interface. Last, the vsock port
 * of init's exec agent ("0": none; see below). Counts and the port are decimal digits; nothing
 * follows the port. An empty exec path (only with an agent) means no main process: the VM stays up,
 * serving exec requests, until the VMM asks it to stop.
 */
#define EC1_ABI_PROCESS_MAGIC	"EC1P6"
#define EC1_ABI_FS_VIRTIOFS	"virtiofs"
#define EC1_ABI_MAX_DISK_MOUNTS 64  /* disks init mounts, at most */
#define EC1_ABI_MAX_PARTITION	128 /* a disk's partitions init can mount: GPT's usual table */

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
 * start, ns since boot), "ready" (the exec agent listens), "exec" (the process is about to
 * start), "exit STATUS" (0..255, after everything the process wrote is queued). The VMM to init:
 * "term" (SIGTERM to the process and to everything exec started), "kill" (SIGKILL to them all).
 */
#define EC1_CTL_START "start"
#define EC1_CTL_READY "ready" /* init's exec agent listens: the VM takes exec requests */
#define EC1_CTL_EXEC  "exec"
#define EC1_CTL_EXIT  "exit"
#define EC1_CTL_TERM  "term"
#define EC1_CTL_KILL  "kill"

/*
 * The exec agent: init's child that listens on vsock port EC1_ABI_EXEC_PORT and runs a process
 * for each connection (ec1 exec). Each way, frames: an 8-byte header, type then payload length
 * (both 32-bit little-endian), and the payload, at most EC1_EXEC_MAX_PAYLOAD bytes.
 *
 * The host first sends one REQUEST: NUL-terminated fields EC1_EXEC_MAGIC, flags (decimal
 * EC1_EXEC_F_* bits), rows, cols (the terminal's size with EC1_EXEC_F_TTY), exec path, workdir
 * ("": "/"), argc, argv[0..argc), envc, env[0..envc) (added to the VM's environment, replacing
 * entries of the same name); nothing follows. Then STDIN (bytes for the process; an empty one
 * ends its input), SIGNAL (4 bytes: a signal number for the process's group), RESIZE (4 bytes:
 * rows, cols, 16-bit each) and CLOSE (1 byte: 1 stdout, 2 stderr; the host's reader of it went
 * away, so the process's writes to it fail from then on, EPIPE or SIGPIPE, or, with a terminal,
 * the terminal hangs up) in any order. The guest sends STDOUT and STDERR (non-empty), and last
 * EXIT (4 bytes: the status, 0..255, with the rules below), after all the process wrote; then it
 * closes. A host that closes first has the process group killed. With EC1_EXEC_F_TTY the
 * process has a terminal for stdin, stdout and stderr, and all its output comes as STDOUT.
 */
#define EC1_ABI_EXEC_PORT     15474369u /* 0xec1ec1 */
#define EC1_EXEC_MAGIC	      "EC1X1"
#define EC1_EXEC_MAX_PAYLOAD  65536
#define EC1_EXEC_HEADER	      8
#define EC1_EXEC_F_TTY	      1u /* a terminal, rows x cols */
#define EC1_EXEC_F_STDIN      2u /* STDIN frames follow; without it stdin is /dev/null */
#define EC1_EXEC_MAX_SESSIONS 64 /* at once; one more is told so and ends with 125 */
enum ec1_exec_frame_type {
	EC1_EXEC_REQUEST = 1,
	EC1_EXEC_STDIN = 2,
	EC1_EXEC_SIGNAL = 3,
	EC1_EXEC_RESIZE = 4,
	EC1_EXEC_CLOSE = 5,
	EC1_EXEC_STDOUT = 16,
	EC1_EXEC_STDERR = 17,
	EC1_EXEC_EXIT = 18,
};
/* A header's fields, and a 4-byte payload's value: 32-bit little-endian. */
static inline void ec1_exec_put32(unsigned char *p, unsigned int v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}
static inline unsigned int ec1_exec_get32(const unsigned char *p)
{
	return (unsigned int)p[0] | (unsigned int)p[1] << 8 | (unsigned int)p[2] << 16 |
	       (unsigned int)p[3] << 24;
}
/* A frame (its header, then len bytes of data) written at buf, which has room: its size. */
static inline unsigned long ec1_exec_frame_put(unsigned char *buf, unsigned int type,
					       const void *data, unsigned int len)
{
	ec1_exec_put32(buf, type);
	ec1_exec_put32(buf + 4, len);
	if (len)
		__builtin_memcpy(buf + EC1_EXEC_HEADER, data, len);
	return EC1_EXEC_HEADER + (unsigned long)len;
}

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
