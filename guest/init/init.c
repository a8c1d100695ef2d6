/*
 * ec1's guest init: PID 1 of every ec1 microVM.
 *
 * Mounts /proc, /sys, /dev and /tmp, reads the process description the VMM put in the initramfs
 * (/.ec1/process), mounts the shared host directories (virtio-fs) and disks (virtio-blk, found by
 * serial) it names — a root directory or disk becomes / through a switch of root, init itself
 * staying in the initramfs — connects the process's stdin, stdout and stderr to their
 * virtio-console ports (stdout and stderr through a pipe each, see relay()), runs it, reaps every
 * child, forwards termination signals, and reports the process's exit status on the control port
 * once all it wrote is on its way. The VMM stops the VM when it reads that report.
 *
 * Exit status (libkrun's convention): the process's own status; 125 when init cannot set up the
 * environment; 126 found but not executable; 127 not found; 128+N killed by signal N.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../abi.h"
#include "agent.h"
#include "net.h"
#include "process.h"

#define PROCESS_FILE  EC1_ABI_PROCESS
#define EXIT_SETUP    EC1_EXIT_SETUP
#define EXIT_NOEXEC   EC1_EXIT_NOEXEC
#define EXIT_NOTFOUND EC1_EXIT_NOTFOUND

/* virtio-console port ids, as the VMM numbers them (port 0 is unused). */
enum {
	PORT_STDIN = EC1_PORT_STDIN,
	PORT_STDOUT = EC1_PORT_STDOUT,
	PORT_STDERR = EC1_PORT_STDERR,
	PORT_CONTROL = EC1_PORT_CONTROL,
	NR_PORTS = EC1_NR_PORTS
};

static int control_fd = -1;
static int err_fd = -1;	   /* the process's stderr port once open, else the kernel log */
static bool err_port_took; /* a message of ours went out on the stderr port */

void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	if (err_fd >= 0) {
		if (write(err_fd, buf, (size_t)n) > 0)
			err_port_took = true;
		return;
	}
	/* Before the ports exist: the kernel log, which the VMM shows when the guest fails. */
	int kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (kmsg >= 0) {
		if (write(kmsg, buf, (size_t)n) < 0)
			n = 0;
		close(kmsg);
	}
}

static void control(const char *fmt, ...)
{
	char buf[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (control_fd >= 0 && write(control_fd, buf, (size_t)n) < 0)
		say("ec1-init: control port: %s\n", strerror(errno));
}

static void power_off(void)
{
	sync();
	reboot(RB_AUTOBOOT); /* reboot=t: a triple fault, which ends the VM (KVM_EXIT_SHUTDOWN) */
	for (;;)
		pause();
}

/*
 * The process's stdout and stderr are pipes, not the ports themselves: a process writing in small
 * pieces would cost a VM exit (a queue notification) per write() on a port, while init hands a
 * port everything that piled up in a pipe with one splice: one notification for up to PIPE_BYTES,
 * and no copy (the pipe's pages go into the virtqueue as they are). Init runs as SCHED_BATCH so
 * that a write does not wake it at once: the writer goes on filling the pipe meanwhile.
 */
#define PIPE_BYTES (256 * 1024)

struct stream {
	bool active;
	int pipe[2];	/* [0] init's end, non-blocking; [1] the process's */
	int port;	/* non-blocking */
	bool port_full; /* the port has taken all it can for now: wait for POLLOUT */
	bool eof;	/* every writer closed the pipe and it is empty, or the host's end closed */
	bool taken;	/* the port took data once: the host's end was open */
};
static struct stream streams[2]; /* stdout, stderr */

static int stream_open(struct stream *s, int port)
{
	if (pipe2(s->pipe, O_CLOEXEC))
		return -1;
	fcntl(s->pipe[1], F_SETPIPE_SZ, PIPE_BYTES); /* a smaller pipe only means smaller batches */
	fcntl(s->pipe[0], F_SETFL, O_NONBLOCK);
	fcntl(port, F_SETFL, O_NONBLOCK);
	s->port = port;
	s->active = true;
	return 0;
}

/*
 * The host closed its end of the port for good (PORT_OPEN 0: whoever read the output there went
 * away), which the port's poll says with POLLHUP and no POLLOUT. Before the port ever took data
 * (the process's, or one of our messages on stderr) that is only the host's end not opened yet.
 * Then the pipe closes as well: the process's next write fails (EPIPE, SIGPIPE) as it would with
 * its reader gone, instead of filling nothing.
 */
static bool host_gone(struct stream *s, short revents)
{
	bool took = s->taken || (s == &streams[1] && err_port_took);
	if (!took || !(revents & (POLLHUP | POLLERR)) || (revents & POLLOUT))
		return false;
	close(s->pipe[0]);
	s->eof = true;
	s->port_full = false;
	return true;
}

/* Moves what waits in the pipe on to the port, until the pipe is empty or the port is full. */
static void relay(struct stream *s)
{
	while (s->active && !s->eof) {
		ssize_t n = splice(s->pipe[0], NULL, s->port, NULL, PIPE_BYTES, SPLICE_F_NONBLOCK);
		if (n > 0) {
			s->taken = true;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		int queued = 0;
		if (ioctl(s->pipe[0], FIONREAD, &queued) < 0 || queued == 0) {
			s->port_full = false;
			return;
		}
		if (n < 0 && errno == EAGAIN) {
			s->port_full = true;
			return;
		}
		/* The port refuses splice (not our kernel's driver): copy instead. */
		char buf[4096];
		n = read(s->pipe[0], buf, sizeof(buf));
		if (n <= 0)
			return;
		for (ssize_t done = 0; done < n;) {
			ssize_t w = write(s->port, buf + done, (size_t)(n - done));
			if (w > 0) {
				done += w;
				s->taken = true;
			} else if (w < 0 && errno == EAGAIN) {
				struct pollfd p = {.fd = s->port, .events = POLLOUT};
				if (poll(&p, 1, -1) > 0 && host_gone(s, p.revents))
					return;
			} else if (w < 0 && errno != EINTR) {
				break; /* the port is gone: the data with it */
			}
		}
	}
}

/* Everything the process wrote so far, on its way to the host; waits while a port is full. */
static void drain_streams(void)
{
	for (int i = 0; i < 2; i++) {
		for (relay(&streams[i]); streams[i].port_full; relay(&streams[i])) {
			struct pollfd p = {.fd = streams[i].port, .events = POLLOUT};
			if (poll(&p, 1, -1) > 0 && host_gone(&streams[i], p.revents))
				break;
		}
	}
}

/* What mount_shares() mounted from disks, for release_disks(). */
static const struct mount_spec *disk_mounts[EC1_ABI_MAX_DISK_MOUNTS];
static int nr_disk_mounts;
static bool root_disk;	  /* one of them is at "/" */
static bool root_pending; /* a root is mounted at EC1_ABI_ROOT, not switched to yet */

/*
 * Before the VM goes: every other process killed, then each disk's file system unmounted (the
 * root one remounted read-only) and everything written flushed to the disks, so that the images
 * are clean for their next user. Directories need none of it: the host has their data already.
 */
static void release_disks(void)
{
	if (!nr_disk_mounts) {
		/* Disks written directly (dd of=/dev/vda): what the guest's cache holds goes out.
		 */
		if (access("/sys/block/vda", F_OK) == 0)
			sync();
		return;
	}
	kill(-1, SIGKILL);
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
	sync();
	for (int i = nr_disk_mounts - 1; i >= 0; i--) {
		const struct mount_spec *m = disk_mounts[i];
		char at[4096];
		bool root = strcmp(m->path, "/") == 0;
		if (root && !root_pending)
			continue; /* it is /: remounted read-only below */
		snprintf(at, sizeof(at), "%s%s", root_pending ? EC1_ABI_ROOT : "",
			 root ? "" : m->path);
		if (umount(at) < 0)
			say("ec1-init: unmounting %s: %s\n", at, strerror(errno));
	}
	if (root_disk && !root_pending && mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
		say("ec1-init: remounting / read-only: %s\n", strerror(errno));
	sync();
}

static void finish(int status)
{
	drain_streams();
	release_disks();
	control(EC1_CTL_EXIT " %d\n", status);
	power_off();
}

/*
 * Ports appear once the console driver has processed the VMM's PORT_ADD messages; the device node
 * exists a moment before the port can be opened (ENXIO until the driver lists it).
 */
static int open_port(int id, int flags)
{
	char path[32];
	snprintf(path, sizeof(path), EC1_ABI_PORT_DEV, id);
	for (int tries = 0; tries < 20000; tries++) {
		int fd = open(path, flags | O_CLOEXEC);
		if (fd >= 0 || (errno != ENOENT && errno != ENXIO && errno != ENODEV))
			return fd;
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
	}
	return -1;
}

static int mount_basics(void)
{
	/* EBUSY: already mounted (by the kernel's devtmpfs.mount or a root file system). */
	if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, NULL) && errno != EBUSY)
		return -1;
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) &&
	    errno != EBUSY)
		return -1;
	if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) &&
	    errno != EBUSY)
		return -1;
	mkdir("/tmp", 01777);
	mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mkdir("/dev/pts", 0755);
	mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "ptmxmode=0666,mode=0620");
	mkdir("/dev/shm", 01777);
	mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	symlink("/proc/self/fd", "/dev/fd");
	return 0;
}

static char *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return NULL;
	char *buf = malloc((size_t)st.st_size + 1);
	size_t done = 0;
	while (buf && done < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + done, (size_t)st.st_size - done);
		if (r <= 0) {
			free(buf);
			buf = NULL;
			break;
		}
		done += (size_t)r;
	}
	close(fd);
	if (buf)
		buf[done] = 0;
	*len = done;
	return buf;
}

static int parse_process(struct process *p)
{
	size_t len;
	char *buf = read_file(PROCESS_FILE, &len);
	return buf ? process_parse(buf, len, p) : -1;
}

/* mkdir -p; existing directories are fine. */
static int make_dirs(const char *path)
{
	char buf[4096];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *s = buf + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -1;
		if (!c)
			return 0;
		*s = c;
	}
}

#define NEW_ROOT EC1_ABI_ROOT

/*
 * A FUSE mount reads ahead 128 KiB at a time, a request each. 4 MiB (up to four 1 MiB requests,
 * the server's maximum) cuts the round trips of sequential reads eightfold and keeps the next
 * requests in flight while the reader copies the last (measured in the rig: 1 MiB requests with
 * 4 MiB read-ahead read 205-261 MB/s where 512 KiB with 1 MiB read 150-190).
 */
static void set_readahead(const char *mountpoint)
{
	struct stat st;
	char path[64];
	if (stat(mountpoint, &st) < 0)
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major(st.st_dev),
		 minor(st.st_dev));
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "4096", 4) < 0)
			say("ec1-init: %s: %s\n", path, strerror(errno));
		close(fd);
	}
}

/* Up to size - 1 bytes of a small file (proc, sysfs), NUL-terminated; -1 when unreadable. */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = 0, r;
	while ((size_t)n < size - 1 && (r = read(fd, buf + n, size - 1 - (size_t)n)) > 0)
		n += r;
	close(fd);
	buf[n] = 0;
	return n;
}

/* The /dev node of the disk whose serial (the VMM's block id) is id; -1 with ENODEV if none. */
static int find_disk(const char *id, char *dev, size_t size)
{
	/* The kernel names virtio disks vda..vdz, then vdaa...: a walk of names, no directory. */
	for (int i = 0; i < 26 * 27; i++) {
		char name[8], path[64], serial[64];
		if (i < 26)
			snprintf(name, sizeof(name), "vd%c", 'a' + i);
		else
			snprintf(name, sizeof(name), "vd%c%c", 'a' + i / 26 - 1, 'a' + i % 26);
		snprintf(path, sizeof(path), "/sys/block/%s/serial", name);
		ssize_t n = read_small(path, serial, sizeof(serial));
		if (n < 0)
			break; /* the kernel names disks in turn: no more */
		while (n > 0 && serial[n - 1] == '\n')
			serial[--n] = 0;
		if (strcmp(serial, id) == 0) {
			snprintf(dev, size, "/dev/%s", name);
			return 0;
		}
	}
	errno = ENODEV;
	return -1;
}

/* What a failed disk mount was about, when more than its path: for mount_shares' message. */
static char mount_why[96];

/* A disk's file system: the type given, else each block file system the kernel has in turn. */
static int mount_disk(const struct mount_spec *m, const char *at)
{
	char dev[32];
	if (find_disk(m->source, dev, sizeof(dev)) < 0)
		return -1;
	if (m->partition) {
		/* The kernel read the partition table as it added the disk: /dev/vdXN is there. */
		size_t l = strlen(dev);
		snprintf(dev + l, sizeof(dev) - l, "%u", m->partition);
		if (access(dev, F_OK) < 0) {
			snprintf(mount_why, sizeof(mount_why), "disk \"%s\" (%.8s): partition %u",
				 m->source, dev + 5, m->partition);
			errno = ENOENT;
			return -1;
		}
	}
	unsigned long flags = m->read_only ? MS_RDONLY : 0;
	if (*m->fstype)
		return mount(dev, at, m->fstype, flags, NULL);
	char list[4096];
	if (read_small("/proc/filesystems", list, sizeof(list)) < 0)
		return -1;
	int err = EINVAL;
	for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
		if (strncmp(line, "nodev", 5) == 0)
			continue;
		while (*line == '\t' || *line == ' ')
			line++;
		if (mount(dev, at, line, flags, NULL) == 0)
			return 0;
		/* EINVAL: not this type; anything else (EROFS, EIO, ...) is worth reporting. */
		if (errno != EINVAL || err == EINVAL)
			err = errno;
	}
	errno = err;
	return -1;
}

static int mount_one(const struct mount_spec *m, const char *at)
{
	if (strcmp(m->fstype, EC1_ABI_FS_VIRTIOFS) != 0) {
		if (nr_disk_mounts == EC1_ABI_MAX_DISK_MOUNTS) {
			errno = E2BIG;
			return -1;
		}
		if (mount_disk(m, at) < 0)
			return -1;
		disk_mounts[nr_disk_mounts++] = m;
		root_disk |= strcmp(m->path, "/") == 0;
		return 0;
	}
	if (mount(m->source, at, "virtiofs", m->read_only ? MS_RDONLY : 0, NULL) < 0)
		return -1;
	set_readahead(at);
	return 0;
}

/*
 * Mounts the shares and disks: the root one ("/") at NEW_ROOT, the others under it (or under /
 * when the root stays the initramfs), creating mount points; then, with a root, moves /dev,
 * /proc and /sys into it and makes it / (what switch_root does). Returns 0, or -1 with errno set
 * and the failing step in *what.
 */
static int mount_shares(const struct process *p, const char **what)
{
	const char *base = "";
	for (long i = 0; i < p->nr_mounts; i++) {
		const struct mount_spec *m = &p->mounts[i];
		if (strcmp(m->path, "/") != 0)
			continue;
		*what = m->source;
		if (mount_one(m, NEW_ROOT) < 0) {
			if (*mount_why)
				*what = mount_why;
			return -1;
		}
		base = NEW_ROOT;
		root_pending = true;
	}
	for (long i = 0; i < p->nr_mounts; i++) {
		const struct mount_spec *m = &p->mounts[i];
		char at[4096];
		if (strcmp(m->path, "/") == 0)
			continue;
		*what = m->path;
		snprintf(at, sizeof(at), "%s%s", base, m->path);
		if (make_dirs(at) < 0 || mount_one(m, at) < 0) {
			if (*mount_why)
				*what = mount_why;
			return -1;
		}
	}
	if (!*base)
		return 0;
	static const char *const moved[] = {"/dev", "/proc", "/sys"};
	for (size_t i = 0; i < sizeof(moved) / sizeof(moved[0]); i++) {
		char at[64];
		snprintf(at, sizeof(at), NEW_ROOT "%s", moved[i]);
		*what = moved[i];
		mkdir(at, 0755);
		if (mount(moved[i], at, NULL, MS_MOVE, NULL) < 0)
			return -1;
	}
	*what = "switching root";
	if (chdir(NEW_ROOT) < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
	    chdir("/") < 0)
		return -1;
	root_pending = false;
	return 0;
}

/* execve, or a search of PATH when the name has no '/'; returns the errno worth reporting. */
static int exec_process(const struct process *p)
{
	char **argv = p->argv[0] ? p->argv : (char *[]){p->exec_path, NULL};
	return exec_search(p->exec_path, argv, p->envp);
}

static pid_t child_pid; /* the main process, 0 if none */
static pid_t agent_pid; /* the exec agent, 0 if none */
static bool stopping;	/* the VMM asked for the end */

static void forward(int sig)
{
	if (child_pid > 0)
		kill(-child_pid, sig);
}

/* The end of the run, in order: SIGTERM to the process, and to what exec started. */
static void go_down(void)
{
	stopping = true;
	forward(SIGTERM);
	if (agent_pid > 0)
		kill(agent_pid, SIGTERM); /* it ends what exec started */
}

/*
 * The exec agent on its vsock port: listening before init says "ready", so that the VMM's first
 * exec finds it. A failure is the VM's: without an agent it cannot do what it was started for.
 */
static void start_agent(const struct process *p)
{
	struct sockaddr_vm {
		unsigned short svm_family, svm_reserved1;
		unsigned int svm_port, svm_cid;
		unsigned char svm_zero[4];
	} a = {.svm_family = 40 /* AF_VSOCK */,
	       .svm_port = p->agent_port,
	       .svm_cid = 0xffffffffu /* VMADDR_CID_ANY */};
	int fd = socket(40, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		say("ec1-init: exec agent: vsock port %u: %s\n", p->agent_port, strerror(errno));
		finish(EXIT_SETUP);
	}
	agent_pid = fork();
	if (agent_pid < 0) {
		say("ec1-init: exec agent: fork: %s\n", strerror(errno));
		finish(EXIT_SETUP);
	}
	if (agent_pid == 0)
		agent_main(fd, p);
	close(fd);
	control(EC1_CTL_READY "\n");
}

/*
 * Run by libkrun's init from ec1's staging root (EC1_ABI_KRUN_STAGE): the shares mounted and the
 * root switched as at boot, then the process in this one's place, with the description's
 * environment (not what libkrun's command line gave this program). libkrun's init relays the
 * streams and reports the status: 125 here for a failed set-up, 126/127 when the program
 * cannot be executed, as at boot.
 */
static int krun_stage(void)
{
	struct process p;
	const char *what = "";
	err_fd = 2;
	if (parse_process(&p)) {
		say("ec1-init: %s: unreadable or malformed\n", PROCESS_FILE);
		return EXIT_SETUP;
	}
	if (mount_shares(&p, &what) < 0) {
		say("ec1-init: mounting shares: %s: %s\n", what, strerror(errno));
		return EXIT_SETUP;
	}
	if (chdir(p.workdir) < 0) {
		say("ec1-init: workdir %s: %s\n", p.workdir, strerror(errno));
		return EXIT_SETUP;
	}
	int e = exec_process(&p);
	say("ec1-init: %s: %s\n", p.exec_path, strerror(e));
	return e == ENOENT || e == ENOTDIR ? EXIT_NOTFOUND : EXIT_NOEXEC;
}

int main(int argc, char **argv)
{
	struct process p;
	int fds[NR_PORTS];

	if (getpid() != 1)
		return argc == 2 && strcmp(argv[1], EC1_ABI_KRUN_STAGE) == 0 ? krun_stage()
									     : EXIT_SETUP;
	if (mount_basics()) {
		say("ec1-init: mounting /dev, /proc, /sys: %s\n", strerror(errno));
		power_off();
	}
	struct timespec boot;
	clock_gettime(CLOCK_BOOTTIME, &boot);
	static const int modes[NR_PORTS] = {
		[PORT_STDIN] = O_RDONLY,
		[PORT_STDOUT] = O_WRONLY,
		[PORT_STDERR] = O_WRONLY,
		[PORT_CONTROL] = O_RDWR,
	};
	for (int i = PORT_STDIN; i < NR_PORTS; i++) {
		fds[i] = open_port(i, modes[i]);
		if (fds[i] < 0) {
			say("ec1-init: /dev/vport0p%d: %s\n", i, strerror(errno));
			power_off();
		}
	}
	control_fd = fds[PORT_CONTROL];
	err_fd = fds[PORT_STDERR];
	control(EC1_CTL_START " %llu\n",
		(unsigned long long)boot.tv_sec * 1000000000ull + (unsigned long long)boot.tv_nsec);
	if (parse_process(&p)) {
		say("ec1-init: %s: unreadable or malformed\n", PROCESS_FILE);
		finish(EXIT_SETUP);
	}
	const char *what = "";
	if (mount_shares(&p, &what) < 0) {
		say("ec1-init: mounting shares and disks: %s: %s\n", what, strerror(errno));
		finish(EXIT_SETUP);
	}
	if (net_up(&p, &what) < 0) {
		say("ec1-init: network: %s: %s\n", what, strerror(errno));
		finish(EXIT_SETUP);
	}

	if (p.agent_port)
		start_agent(&p);
	streams[0].eof = streams[1].eof = true; /* no process, no streams */
	if (!*p.exec_path) {
		child_pid = 0;
		goto serve;
	}
	streams[0].eof = streams[1].eof = false;
	if (stream_open(&streams[0], fds[PORT_STDOUT]) ||
	    stream_open(&streams[1], fds[PORT_STDERR])) {
		say("ec1-init: pipe: %s\n", strerror(errno));
		finish(EXIT_SETUP);
	}
	/* A pipe that closes on a successful exec tells init when the process really started. */
	int status_pipe[2];
	if (pipe2(status_pipe, O_CLOEXEC)) {
		say("ec1-init: pipe: %s\n", strerror(errno));
		finish(EXIT_SETUP);
	}
	child_pid = fork();
	if (child_pid < 0) {
		say("ec1-init: fork: %s\n", strerror(errno));
		finish(EXIT_SETUP);
	}
	if (child_pid == 0) {
		setsid();
		if (dup2(fds[PORT_STDIN], 0) < 0 || dup2(streams[0].pipe[1], 1) < 0 ||
		    dup2(streams[1].pipe[1], 2) < 0)
			_exit(EXIT_SETUP);
		err_fd = 2; /* behind anything the process may write to it */
		if (chdir(p.workdir)) {
			say("ec1-init: workdir %s: %s\n", p.workdir, strerror(errno));
			int code = EXIT_SETUP;
			if (write(status_pipe[1], &code, sizeof(code)) < 0)
				_exit(EXIT_SETUP);
			_exit(EXIT_SETUP);
		}
		int e = exec_process(&p);
		int code = e == ENOENT || e == ENOTDIR ? EXIT_NOTFOUND : EXIT_NOEXEC;
		say("ec1-init: %s: %s\n", p.exec_path, strerror(e));
		if (write(status_pipe[1], &code, sizeof(code)) < 0)
			_exit(code);
		_exit(code);
	}
	close(status_pipe[1]);
	close(streams[0].pipe[1]);
	close(streams[1].pipe[1]);
	/* After the fork: the process keeps the normal policy. musl has no sched_setscheduler(). */
	struct sched_param batch = {0};
	syscall(SYS_sched_setscheduler, 0, SCHED_BATCH, &batch);
	int code;
	if (read(status_pipe[0], &code, sizeof(code)) == 0)
		control(EC1_CTL_EXEC "\n");
	close(status_pipe[0]);

serve:;
	struct sigaction sa = {.sa_handler = forward};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/*
	 * Children's exits arrive on a signalfd, so one poll also hears the VMM's requests; so do
	 * the requests to go down made inside the guest, which busybox's reboot, halt and poweroff
	 * send init (SIGTERM, SIGUSR1, SIGUSR2; `kill 1` too): each ends the run as the VMM's
	 * "term" does (SIGTERM to the process, and to what exec started).
	 */
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigaddset(&chld, SIGTERM);
	sigaddset(&chld, SIGUSR1);
	sigaddset(&chld, SIGUSR2);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	char line[64];
	size_t line_len = 0;
	for (;;) {
		int st;
		pid_t pid;
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			if (pid == agent_pid) {
				agent_pid = 0;
				if (!stopping)
					say("ec1-init: the exec agent ended (status %d)\n", code);
				if (!child_pid) /* it was all the VM did */
					finish(stopping ? code : EXIT_SETUP);
				continue;
			}
			if (pid != child_pid || !child_pid)
				continue; /* an orphan re-parented to us: reaped, nothing more */
			finish(code);
		}
		if (pid < 0 && errno == ECHILD)
			finish(EXIT_SETUP);
		struct pollfd pfd[4] = {{.fd = sfd, .events = POLLIN},
					{.fd = control_fd, .events = POLLIN}};
		for (int i = 0; i < 2; i++) {
			struct stream *s = &streams[i];
			pfd[2 + i].fd = s->eof ? -1 : s->port_full ? s->port : s->pipe[0];
			pfd[2 + i].events = s->port_full ? POLLOUT : POLLIN;
		}
		if (poll(pfd, 4, sfd < 0 ? 100 : -1) < 0)
			continue;
		for (int i = 0; i < 2; i++) {
			struct stream *s = &streams[i];
			if (s->port_full && host_gone(s, pfd[2 + i].revents))
				continue;
			if (pfd[2 + i].revents & (POLLIN | POLLOUT))
				relay(s);
			else if ((pfd[2 + i].revents & POLLHUP) && !s->port_full)
				s->eof = true; /* no writer left, nothing queued */
		}
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				if (si.ssi_signo != SIGCHLD)
					go_down();
		}
		if (!(pfd[1].revents & POLLIN))
			continue;
		/* Requests from the VMM, one per line: "term" (SIGTERM), "kill" (SIGKILL). */
		char c;
		while (read(control_fd, &c, 1) == 1) {
			if (c != '\n' && line_len < sizeof(line) - 1) {
				line[line_len++] = c;
				continue;
			}
			line[line_len] = 0;
			line_len = 0;
			if (strcmp(line, EC1_CTL_TERM) == 0) {
				go_down();
			} else if (strcmp(line, EC1_CTL_KILL) == 0) {
				stopping = true;
				forward(SIGKILL);
				/* The agent kills what exec started and reports each status. */
				if (agent_pid > 0)
					kill(agent_pid, SIGUSR1);
			}
			break;
		}
	}
}
