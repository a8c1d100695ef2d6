/*
 * Fake libkrun builds for the tests, one per real version and variant (tests/fake/meson.build):
 * each exports the krun_* calls that version's libkrun.h declares and answers as that version
 * does on Linux, as far as ec1 uses them:
 *   FAKE_V = 109, 115, 117, 118, 119 (libkrun 1.9, 1.15, 1.17, 1.18, 1.19), FAKE_SEV for
 *   libkrun-sev.
 *   - krun_set_mapped_volumes: -EINVAL (since 1.8; before, macOS alone took it);
 *   - krun_get_shutdown_eventfd: -EINVAL (Linux builds: the eventfd is macOS's);
 *   - krun_set_exec: never checks the program (a missing one: the guest's init answers 127);
 *     envp NULL makes libkrun copy the host's whole environment (recorded as "NULL");
 *   - krun_add_vsock_port2 (listen) and krun_add_disk2 (qcow2) from 1.10/1.11 (in 1.15 here),
 *     krun_add_net_unixgram from 1.15, krun_add_virtiofs3 (read-only) from 1.18,
 *     krun_add_disk3 (direct I/O, sync mode) from 1.19; krun_add_disk2/3 answer -EINVAL to a
 *     format other than raw, qcow2, vmdk (0..2), krun_add_disk3 to a sync mode past 2;
 *   - libkrun-sev: no krun_set_root, krun_add_virtiofs or krun_set_mapped_volumes; a
 *     two-argument krun_set_kernel stub answering -EOPNOTSUPP; krun_set_tee_config_file.
 * There is none for libkrun-efi: it only ever existed for macOS.
 *
 * Every call appends a line with its arguments to the file FAKE_KRUN_LOG names. FAKE_KRUN_FAIL
 * names one call that answers -EINVAL (a fault to inject). krun_start_enter exits with
 * FAKE_KRUN_EXIT (default 0), as the real one exits with the guest's status; with FAKE_KRUN_VM
 * (the path of an ec1 binary) it boots what libkrun would: a VM (ec1's builtin engine) with the
 * root directory, the virtio-fs devices, the disks (libkrun's serial, direct I/O, no flush with
 * sync mode 0; a qcow2 image's backing files opened, as libkrun's imago opens them), the VM
 * size, the program, its arguments, environment and working directory it was given, and exits
 * with that run's status.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifndef FAKE_V
#define FAKE_V 118
#endif

static void rec(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#include <stdarg.h>
static void rec(const char *fmt, ...)
{
	const char *path = getenv("FAKE_KRUN_LOG");
	FILE *f = path ? fopen(path, "a") : NULL;
	if (!f)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fclose(f);
}

/* -EINVAL when FAKE_KRUN_FAIL names this call, else 0. */
static int32_t answer(const char *call)
{
	const char *fail = getenv("FAKE_KRUN_FAIL");
	return fail && strcmp(fail, call) == 0 ? -22 : 0;
}

/* "[a,b,c]" or "NULL" */
static const char *list(const char *const *v)
{
	static char buf[4][1024];
	static int slot;
	char *b = buf[slot++ % 4];
	if (!v)
		return "NULL";
	strcpy(b, "[");
	for (size_t i = 0; v[i]; i++) {
		if (i)
			strncat(b, ",", 1023 - strlen(b));
		strncat(b, v[i], 1023 - strlen(b));
	}
	strncat(b, "]", 1023 - strlen(b));
	return b;
}

static const char *str(const char *s)
{
	return s ? s : "NULL";
}

/* What the one context was given, for FAKE_KRUN_VM. */
static struct {
	unsigned int cpus, ram;
	char *root;
	struct {
		char *tag, *path;
	} fs[16];
	int nr_fs;
	struct {
		char *id, *path;
		unsigned int fmt, sync;
		bool ro, direct;
	} disk[16];
	int nr_disks;
	char *exec, *workdir;
	char **argv, **envp;
} vm = {.cpus = 1, .ram = 512};

static char **copy_list(const char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	char **c = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; c && i < n; i++)
		c[i] = strdup(v[i]);
	return c;
}

static void free_list(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static __attribute__((unused)) void add_fs(const char *tag, const char *path)
{
	if (strcmp(tag, "/dev/root") == 0) {
		vm.root = strdup(path);
	} else if (vm.nr_fs < 16) {
		vm.fs[vm.nr_fs].tag = strdup(tag);
		vm.fs[vm.nr_fs++].path = strdup(path);
	}
}

/*
 * A disk as libkrun takes it: a qcow2 image's backing files opened, whatever they are; the
 * serial the guest reads (GET_ID) not the block id but the image's st_dev, st_rdev and st_ino
 * in decimal, one after the other, cut at 20 bytes (as kvmtool and Firecracker make it). (ec1's
 * engine takes no two disks with one serial, as libkrun would give one image added twice.)
 */
static void add_disk(const char *path, unsigned int fmt, bool ro, bool direct, unsigned int sync)
{
	struct stat st;
	char id[64] = "0";
	if (stat(path, &st) == 0)
		snprintf(id, sizeof(id), "%llu%llu%llu", (unsigned long long)st.st_dev,
			 (unsigned long long)st.st_rdev, (unsigned long long)st.st_ino);
	id[20] = 0;
	if (vm.nr_disks < 16)
		vm.disk[vm.nr_disks++] =
			(typeof(vm.disk[0])){strdup(id), strdup(path), fmt, sync, ro, direct};
}

int32_t krun_set_log_level(uint32_t level)
{
	rec("krun_set_log_level %u", level);
	return answer("krun_set_log_level");
}
int32_t krun_create_ctx(void)
{
	rec("krun_create_ctx");
	return answer("krun_create_ctx") ?: 7;
}
int32_t krun_free_ctx(uint32_t id)
{
	rec("krun_free_ctx %u", id);
	return 0;
}
int32_t krun_set_vm_config(uint32_t id, uint8_t cpus, uint32_t ram)
{
	rec("krun_set_vm_config %u %u %u", id, cpus, ram);
	vm.cpus = cpus;
	vm.ram = ram;
	return answer("krun_set_vm_config");
}
int32_t krun_add_disk(uint32_t id, const char *block, const char *path, bool ro)
{
	rec("krun_add_disk %u %s %s %d", id, block, path, ro);
	add_disk(path, 0, ro, false, 2);
	return answer("krun_add_disk");
}
int32_t krun_set_passt_fd(uint32_t id, int fd)
{
	rec("krun_set_passt_fd %u %d", id, fd);
	return answer("krun_set_passt_fd");
}
int32_t krun_set_gvproxy_path(uint32_t id, const char *path)
{
	rec("krun_set_gvproxy_path %u %s", id, path);
	return answer("krun_set_gvproxy_path");
}
int32_t krun_set_net_mac(uint32_t id, const uint8_t *m)
{
	rec("krun_set_net_mac %u %02x:%02x:%02x:%02x:%02x:%02x", id, m[0], m[1], m[2], m[3], m[4],
	    m[5]);
	return answer("krun_set_net_mac");
}
int32_t krun_set_port_map(uint32_t id, const char *const *map)
{
	rec("krun_set_port_map %u %s", id, list(map));
	return answer("krun_set_port_map");
}
int32_t krun_set_workdir(uint32_t id, const char *dir)
{
	rec("krun_set_workdir %u %s", id, dir);
	free(vm.workdir);
	vm.workdir = strdup(dir);
	return answer("krun_set_workdir");
}
int32_t krun_set_exec(uint32_t id, const char *path, const char *const *argv,
		      const char *const *envp)
{
	rec("krun_set_exec %u %s %s %s", id, path, list(argv), list(envp));
	free(vm.exec);
	free_list(vm.argv);
	free_list(vm.envp);
	vm.exec = strdup(path);
	vm.argv = copy_list(argv);
	vm.envp = envp ? copy_list(envp) : NULL;
	return answer("krun_set_exec");
}
int32_t krun_add_vsock_port(uint32_t id, uint32_t port, const char *path)
{
	rec("krun_add_vsock_port %u %u %s", id, port, path);
	return answer("krun_add_vsock_port");
}
/* As libkrun built for Linux: the call exists, and answers -EINVAL in every variant. */
int32_t krun_get_shutdown_eventfd(uint32_t id)
{
	rec("krun_get_shutdown_eventfd %u", id);
	return -22;
}

/* Boots what libkrun would have booted, on ec1's builtin engine; its status is ours. */
static int boot(const char *ec1)
{
	char *argv[128], num[2][16], shares[16][4200], disks[16][4200];
	int n = 0;
	snprintf(num[0], sizeof(num[0]), "%u", vm.cpus);
	snprintf(num[1], sizeof(num[1]), "%u", vm.ram);
	argv[n++] = (char *)ec1;
	argv[n++] = "run";
	argv[n++] = "--backend";
	argv[n++] = "builtin";
	argv[n++] = "--cpus";
	argv[n++] = num[0];
	argv[n++] = "--mem";
	argv[n++] = num[1];
	if (vm.root) {
		argv[n++] = "--root";
		argv[n++] = vm.root;
	}
	for (int i = 0; i < vm.nr_fs; i++) {
		snprintf(shares[i], sizeof(shares[i]), "%s:%s", vm.fs[i].tag, vm.fs[i].path);
		argv[n++] = "--share";
		argv[n++] = shares[i];
	}
	for (int i = 0; i < vm.nr_disks; i++) {
		/* VMDK: ec1 has none, and never names it. */
		snprintf(disks[i], sizeof(disks[i]), "%s,id=%s,format=%s%s%s%s%s", vm.disk[i].path,
			 vm.disk[i].id, vm.disk[i].fmt ? "qcow2" : "raw",
			 vm.disk[i].fmt ? ",backing" : "", vm.disk[i].ro ? ",ro" : "",
			 vm.disk[i].direct ? ",direct" : "",
			 vm.disk[i].sync == 0 ? ",sync=none" : "");
		argv[n++] = "--disk";
		argv[n++] = disks[i];
	}
	if (vm.workdir) {
		argv[n++] = "--workdir";
		argv[n++] = vm.workdir;
	}
	/* envp NULL: libkrun hands the guest this process's whole environment. */
	char **env = vm.envp ? vm.envp : environ;
	for (size_t i = 0; env && env[i] && n < 100; i++) {
		argv[n++] = "--env";
		argv[n++] = env[i];
	}
	argv[n++] = "--";
	argv[n++] = vm.exec;
	for (size_t i = 0; vm.argv && vm.argv[i] && n < 126; i++)
		argv[n++] = vm.argv[i];
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		unsetenv("EC1_BACKEND");
		execv(ec1, argv);
		_exit(125);
	}
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return 125;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int32_t krun_start_enter(uint32_t id)
{
	rec("krun_start_enter %u", id);
	if (answer("krun_start_enter"))
		return -22;
	const char *ec1 = getenv("FAKE_KRUN_VM");
	if (ec1 && *ec1)
		exit(boot(ec1));
	const char *code = getenv("FAKE_KRUN_EXIT");
	exit(code ? atoi(code) : 0);
}

#ifdef FAKE_SEV
int32_t krun_set_tee_config_file(uint32_t id, const char *path)
{
	rec("krun_set_tee_config_file %u %s", id, path);
	return answer("krun_set_tee_config_file");
}
/* libkrun-sev's stub: two arguments, and no kernel of the caller's. */
int32_t krun_set_kernel(uint32_t id, const char *path)
{
	rec("krun_set_kernel %u %s (sev stub)", id, path);
	return -95;
}
#else
int32_t krun_set_root(uint32_t id, const char *root)
{
	rec("krun_set_root %u %s", id, str(root));
	add_fs("/dev/root", root);
	return answer("krun_set_root");
}
/* Since 1.8: "NO LONGER SUPPORTED", -EINVAL whatever it is given. */
int32_t krun_set_mapped_volumes(uint32_t id, const char *const *v)
{
	rec("krun_set_mapped_volumes %u %s", id, list(v));
	return -22;
}
int32_t krun_add_virtiofs(uint32_t id, const char *tag, const char *path)
{
	rec("krun_add_virtiofs %u %s %s", id, tag, path);
	add_fs(tag, path);
	return answer("krun_add_virtiofs");
}
#endif

#if FAKE_V >= 115
int32_t krun_add_vsock_port2(uint32_t id, uint32_t port, const char *path, bool listen)
{
	rec("krun_add_vsock_port2 %u %u %s %d", id, port, path, listen);
	return answer("krun_add_vsock_port2");
}
int32_t krun_add_disk2(uint32_t id, const char *block, const char *path, uint32_t fmt, bool ro)
{
	rec("krun_add_disk2 %u %s %s %u %d", id, block, path, fmt, ro);
	if (fmt > 2)
		return -22;
	add_disk(path, fmt, ro, false, 2);
	return answer("krun_add_disk2");
}
#ifndef FAKE_SEV
int32_t krun_set_kernel(uint32_t id, const char *path, uint32_t fmt, const char *initrd,
			const char *cmdline)
{
	rec("krun_set_kernel %u %s %u %s %s", id, path, fmt, str(initrd), str(cmdline));
	return answer("krun_set_kernel");
}
#endif
/*
 * Records the call, then checks that fd is a datagram socket whose peer is a network: an ARP
 * request for the gateway (192.168.105.1, vmnet's shared range start) gets a reply (the fake
 * vmnet-helper answers as vmnet does). libkrun owns the fd it is given: closed here.
 */
int32_t krun_add_net_unixgram(uint32_t id, const char *path, int fd, uint8_t *m, uint32_t features,
			      uint32_t flags)
{
	int type = 0;
	socklen_t len = sizeof(type);
	getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len);
	uint8_t arp[42] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0a, 0xbb, 0xcc, 0xdd, 0xee,
			   0x0f, 0x08, 0x06, 0,	   1,	 0x08, 0,    6,	   4,	 0,    1,
			   0x0a, 0xbb, 0xcc, 0xdd, 0xee, 0x0f, 192,  168,  105,	 2,    0,
			   0,	 0,    0,    0,	   0,	 192,  168,  105,  1};
	uint8_t back[64] = {0};
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	bool echo = send(fd, arp, sizeof(arp), 0) == (ssize_t)sizeof(arp) &&
		    recv(fd, back, sizeof(back), 0) == (ssize_t)sizeof(arp) && back[21] == 2 &&
		    memcmp(back + 28, arp + 38, 4) == 0;
	rec("krun_add_net_unixgram %u %s %s %02x:%02x:%02x:%02x:%02x:%02x %u %u arp=%s", id,
	    str(path), type == SOCK_DGRAM ? "dgram" : "not-dgram", m[0], m[1], m[2], m[3], m[4],
	    m[5], features, flags, echo ? "ok" : "no");
	close(fd);
	return answer("krun_add_net_unixgram");
}
#endif

#if FAKE_V >= 119
int32_t krun_add_disk3(uint32_t id, const char *block, const char *path, uint32_t fmt, bool ro,
		       bool direct, uint32_t sync)
{
	rec("krun_add_disk3 %u %s %s %u %d %d %u", id, block, path, fmt, ro, direct, sync);
	if (fmt > 2 || sync > 2)
		return -22;
	add_disk(path, fmt, ro, direct, sync);
	return answer("krun_add_disk3");
}
#endif

#if FAKE_V >= 118 && !defined(FAKE_SEV)
int32_t krun_add_virtiofs3(uint32_t id, const char *tag, const char *path, uint64_t shm, bool ro)
{
	rec("krun_add_virtiofs3 %u %s %s %llu %d", id, tag, path, (unsigned long long)shm, ro);
	add_fs(tag, path);
	return answer("krun_add_virtiofs3");
}
#endif
