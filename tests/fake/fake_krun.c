/*
 * A fake libkrun for tests: every krun_* call appends one line with its arguments to the file
 * named by FAKE_KRUN_LOG. krun_start_enter exits with FAKE_KRUN_EXIT (default 0), as the real
 * one exits with the guest's status. Built once per variant soname; with -DFAKE_OLD it lacks the
 * newer calls (add_disk2, set_kernel, get_shutdown_eventfd, add_net_unixgram), like an old
 * libkrun.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

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

int32_t krun_set_log_level(uint32_t level)
{
	rec("krun_set_log_level %u", level);
	return 0;
}
int32_t krun_create_ctx(void)
{
	rec("krun_create_ctx");
	return 7;
}
int32_t krun_free_ctx(uint32_t id)
{
	rec("krun_free_ctx %u", id);
	return 0;
}
int32_t krun_set_vm_config(uint32_t id, uint8_t cpus, uint32_t ram)
{
	rec("krun_set_vm_config %u %u %u", id, cpus, ram);
	return 0;
}
int32_t krun_set_root(uint32_t id, const char *root)
{
	rec("krun_set_root %u %s", id, str(root));
	return 0;
}
int32_t krun_set_mapped_volumes(uint32_t id, const char *const *v)
{
	rec("krun_set_mapped_volumes %u %s", id, list(v));
	return 0;
}
int32_t krun_add_virtiofs(uint32_t id, const char *tag, const char *path)
{
	rec("krun_add_virtiofs %u %s %s", id, tag, path);
	return 0;
}
int32_t krun_add_disk(uint32_t id, const char *block, const char *path, bool ro)
{
	rec("krun_add_disk %u %s %s %d", id, block, path, ro);
	return 0;
}
int32_t krun_set_passt_fd(uint32_t id, int fd)
{
	rec("krun_set_passt_fd %u %d", id, fd);
	return 0;
}
int32_t krun_set_gvproxy_path(uint32_t id, const char *path)
{
	rec("krun_set_gvproxy_path %u %s", id, path);
	return 0;
}
int32_t krun_set_net_mac(uint32_t id, const uint8_t *m)
{
	rec("krun_set_net_mac %u %02x:%02x:%02x:%02x:%02x:%02x", id, m[0], m[1], m[2], m[3], m[4],
	    m[5]);
	return 0;
}
int32_t krun_set_port_map(uint32_t id, const char *const *map)
{
	rec("krun_set_port_map %u %s", id, list(map));
	return 0;
}
int32_t krun_set_workdir(uint32_t id, const char *dir)
{
	rec("krun_set_workdir %u %s", id, dir);
	return 0;
}
int32_t krun_set_exec(uint32_t id, const char *path, const char *const *argv,
		      const char *const *envp)
{
	rec("krun_set_exec %u %s %s %s", id, path, list(argv), list(envp));
	/* Like libkrun: a path it cannot use is EINVAL. */
	return strcmp(path, "/fail") == 0 ? -22 : 0;
}
int32_t krun_set_tee_config_file(uint32_t id, const char *path)
{
	rec("krun_set_tee_config_file %u %s", id, path);
	return 0;
}
int32_t krun_start_enter(uint32_t id)
{
	rec("krun_start_enter %u", id);
	const char *code = getenv("FAKE_KRUN_EXIT");
	exit(code ? atoi(code) : 0);
}
int32_t krun_add_vsock_port(uint32_t id, uint32_t port, const char *path)
{
	rec("krun_add_vsock_port %u %u %s", id, port, path);
	return 0;
}
#ifndef FAKE_OLD
int32_t krun_add_vsock_port2(uint32_t id, uint32_t port, const char *path, bool listen)
{
	rec("krun_add_vsock_port2 %u %u %s %d", id, port, path, listen);
	return 0;
}
int32_t krun_add_disk2(uint32_t id, const char *block, const char *path, uint32_t fmt, bool ro)
{
	rec("krun_add_disk2 %u %s %s %u %d", id, block, path, fmt, ro);
	return 0;
}
int32_t krun_set_kernel(uint32_t id, const char *path, uint32_t fmt, const char *initrd,
			const char *cmdline)
{
	rec("krun_set_kernel %u %s %u %s %s", id, path, fmt, str(initrd), str(cmdline));
	return 0;
}
/* As libkrun built for Linux (>= 1.16): the call exists, and answers -EINVAL in every variant. */
int32_t krun_get_shutdown_eventfd(uint32_t id)
{
	rec("krun_get_shutdown_eventfd %u", id);
	return -22;
}
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
	return 0;
}
#endif
