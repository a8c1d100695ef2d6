/*
 * ec1_run() on libkrun: the VM starts in another process, since krun_start_enter() exits the
 * process that calls it. That process is the helper ec1-krun (tools/ec1-krun.c): exec'd, so it
 * has one thread and nothing of the caller's state, where a forked copy of a threaded caller
 * (every Go program) would run libkrun's threads in a state POSIX leaves undefined.
 *
 * The caller writes its context's configuration (NUL-terminated fields, below) into a memfd, the
 * helper's fd 3; the helper rebuilds the context through the same API calls, which check every
 * field again, and starts it. An error before the guest runs comes back on the status pipe (fd
 * 4): "E", the code, the backend's errno and the message, as if the caller's own call had failed;
 * otherwise the helper exits with the guest's status, as krun_start_enter makes it.
 *
 * The configuration: "EC1K1", then records, each a keyword and its fields, then "end":
 *   log LEVEL | backend NAME | vm CPUS RAM | root DIR FLAGS | volumes N SPEC... | virtiofs TAG DIR
 *   | disk ID PATH FORMAT RO FLAGS | vsock PORT PATH LISTEN | net PASST_FD GVPROXY MAC MAPPED N
 *   MAP... | vmnet FD MAC | process PATH WORKDIR ARGC ARGV... ENVC ENV... | kernel PATH FORMAT
 *   INITRD CMDLINE | sev FILE
 * Numbers are decimal ("-1" for none), strings may be empty for none, MAC is 12 hex digits.
 */
#include "libkrun.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../guest/abi.h"

extern char **environ;

#define CONFIG_MAGIC "EC1K1"
#define CONFIG_MAX   (16u << 20) /* bytes */

struct wr {
	char *buf;
	size_t len, cap;
	bool oom;
};

/* n bytes of s at the end of the configuration. */
static void append(struct wr *w, const char *s, size_t n)
{
	if (w->oom)
		return;
	if (w->len + n > w->cap) {
		size_t cap = (w->cap ? w->cap * 2 : 4096) + n;
		char *b = realloc(w->buf, cap);
		if (!b) {
			w->oom = true;
			return;
		}
		w->buf = b;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

/* A field: s and its NUL. */
static void put(struct wr *w, const char *s)
{
	append(w, s, strlen(s) + 1);
}

static void putf(struct wr *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct wr *w, const char *fmt, ...)
{
	char s[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s, sizeof(s), fmt, ap);
	va_end(ap);
	put(w, s);
}

static void put_list(struct wr *w, char *const *list)
{
	size_t n = 0;
	while (list[n])
		n++;
	putf(w, "%zu", n);
	for (size_t i = 0; i < n; i++)
		put(w, list[i]);
}

static void put_mac(struct wr *w, const uint8_t *m)
{
	putf(w, "%02x%02x%02x%02x%02x%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

int ec1_krun_config_write(struct ec1_ctx *ctx, char **out, size_t *len)
{
	struct krun *k = K(ctx);
	struct wr w = {0};
	put(&w, CONFIG_MAGIC);
	put(&w, "log");
	putf(&w, "%d", ec1_log_level_requested());
	put(&w, "backend");
	put(&w, ec1_backend_name(ctx->ops->id));
	put(&w, "vm");
	putf(&w, "%u", ctx->vm.num_vcpus);
	putf(&w, "%u", ctx->vm.ram_mib);
	if (ctx->root) {
		put(&w, "root");
		put(&w, ctx->root);
		putf(&w, "%u", ctx->root_flags);
	}
	if (ctx->nr_volumes) {
		/* "HOST:GUEST[:ro]", as ec1_ctx_set_mapped_volumes takes them (guest-ids: refused).
		 */
		put(&w, "volumes");
		putf(&w, "%zu", ctx->nr_volumes);
		for (size_t i = 0; i < ctx->nr_volumes; i++) {
			const struct ec1_volume *v = &ctx->volumes[i];
			const char *ro = v->flags & EC1_SHARE_READ_ONLY ? ":ro" : "";
			append(&w, v->host, strlen(v->host));
			append(&w, ":", 1);
			append(&w, v->guest, strlen(v->guest));
			put(&w, ro);
		}
	}
	for (size_t i = 0; i < ctx->nr_shares; i++) {
		put(&w, "virtiofs");
		put(&w, ctx->shares[i].tag);
		put(&w, ctx->shares[i].dir);
	}
	for (size_t i = 0; i < ctx->nr_disks; i++) {
		put(&w, "disk");
		put(&w, ctx->disks[i].block_id);
		put(&w, ctx->disks[i].path);
		putf(&w, "%d", (int)ctx->disks[i].format);
		putf(&w, "%d", ctx->disks[i].read_only);
		putf(&w, "%u", ctx->disks[i].flags);
	}
	for (size_t i = 0; i < ctx->nr_vsock_ports; i++) {
		put(&w, "vsock");
		putf(&w, "%u", ctx->vsock_ports[i].port);
		put(&w, ctx->vsock_ports[i].path);
		putf(&w, "%d", ctx->vsock_ports[i].listen);
	}
	if (k->net.set) {
		put(&w, "net");
		putf(&w, "%d", k->net.passt_fd >= 0 ? EC1_KRUN_FD_PASST : -1);
		put(&w, k->net.gvproxy_path ? k->net.gvproxy_path : "");
		if (k->net.mac_set)
			put_mac(&w, k->net.mac);
		else
			put(&w, "");
		putf(&w, "%d", k->net.map_set);
		if (k->net.map_set)
			put_list(&w, k->net.map);
		else
			put(&w, "0");
	}
	if (ctx->vmnet.fd >= 0) {
		put(&w, "vmnet");
		putf(&w, "%d", EC1_KRUN_FD_VMNET);
		put_mac(&w, ctx->vmnet.info.mac);
	}
	if (ctx->process_set) {
		put(&w, "process");
		put(&w, ctx->exec_path);
		put(&w, ctx->workdir ? ctx->workdir : "");
		put_list(&w, ctx->argv);
		if (ctx->envp)
			put_list(&w, ctx->envp);
		else
			put(&w, "-1");
	}
	if (ctx->kernel_path) {
		put(&w, "kernel");
		put(&w, ctx->kernel_path);
		putf(&w, "%d", (int)ctx->kernel_format);
		put(&w, ctx->initramfs ? ctx->initramfs : "");
		put(&w, ctx->cmdline ? ctx->cmdline : "");
	}
	if (k->tee_config_file) {
		put(&w, "sev");
		put(&w, k->tee_config_file);
	}
	put(&w, "end");
	if (w.oom) {
		free(w.buf);
		return ec1_fail(ctx, EC1_ENOMEM, "out of memory");
	}
	*out = w.buf;
	*len = w.len;
	return EC1_OK;
}

/* Reading: fields in place, every count and number checked. */
struct rd {
	char *p, *end;
	char *msg;
	size_t msg_size;
};

static int bad(struct rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct rd *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->msg, r->msg_size, fmt, ap);
	va_end(ap);
	return EC1_EINVAL;
}

/* The next NUL-terminated field, or NULL at the end or when the last one has no NUL. */
static char *field(struct rd *r)
{
	if (r->p >= r->end)
		return NULL;
	char *f = r->p, *nul = memchr(f, 0, (size_t)(r->end - f));
	if (!nul)
		return NULL;
	r->p = nul + 1;
	return f;
}

/* A decimal number in [min, max]: digits only, an optional leading '-'. */
static bool number(struct rd *r, long min, long max, long *out)
{
	const char *f = field(r);
	if (!f || !*f || strspn(f + (*f == '-'), "0123456789") != strlen(f + (*f == '-')) ||
	    strlen(f) > 12)
		return false;
	long v = strtol(f, NULL, 10);
	if (v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool mac_field(struct rd *r, bool *set, uint8_t mac[6])
{
	const char *f = field(r);
	if (!f)
		return false;
	*set = *f != 0;
	if (!*set)
		return true;
	if (strlen(f) != 12 || strspn(f, "0123456789abcdef") != 12)
		return false;
	for (int i = 0; i < 6; i++) {
		char byte[3] = {f[2 * i], f[2 * i + 1], 0};
		mac[i] = (uint8_t)strtoul(byte, NULL, 16);
	}
	return true;
}

/* A list: its count (-1 allowed with nullable: *out NULL), then the entries; *out malloc'd. */
static bool list_field(struct rd *r, bool nullable, const char ***out)
{
	long n;
	*out = NULL;
	/* Each entry takes at least its NUL: no more entries than bytes left. */
	if (!number(r, nullable ? -1 : 0, r->end - r->p, &n))
		return false;
	if (n < 0)
		return true;
	const char **list = calloc((size_t)n + 1, sizeof(char *));
	if (!list)
		return false;
	for (long i = 0; i < n; i++)
		if (!(list[i] = field(r))) {
			free(list);
			return false;
		}
	*out = list;
	return true;
}

/* A string field, "" read as NULL where empty means none. */
static const char *opt(const char *f)
{
	return f && *f ? f : NULL;
}

/* Applies one record to ctx (NULL: only reads it); the keyword already read. */
static int record(struct rd *r, const char *kw, struct ec1_ctx *ctx)
{
	long a, b, c;
	const char *s, *t;
	int err = EC1_OK;
	if (strcmp(kw, "vm") == 0) {
		if (!number(r, 1, EC1_MAX_VCPUS, &a) || !number(r, 1, UINT32_MAX, &b))
			return bad(r, "vm: bad fields");
		if (ctx)
			err = ec1_ctx_set_vm(ctx, &(struct ec1_vm_config){(uint8_t)a, (uint32_t)b});
	} else if (strcmp(kw, "root") == 0) {
		if (!(s = field(r)) || !number(r, 0, 3, &a))
			return bad(r, "root: bad fields");
		if (ctx && !(err = ec1_ctx_set_root(ctx, s)) && a)
			err = ec1_ctx_set_root_flags(ctx, (unsigned int)a);
	} else if (strcmp(kw, "volumes") == 0) {
		const char **specs;
		if (!list_field(r, false, &specs))
			return bad(r, "volumes: bad fields");
		size_t n = 0;
		while (specs[n])
			n++;
		if (ctx)
			err = ec1_ctx_set_mapped_volumes(ctx, specs, n);
		free(specs);
	} else if (strcmp(kw, "virtiofs") == 0) {
		if (!(s = field(r)) || !(t = field(r)))
			return bad(r, "virtiofs: bad fields");
		if (ctx)
			err = ec1_ctx_add_virtiofs(ctx, s, t);
	} else if (strcmp(kw, "disk") == 0) {
		if (!(s = field(r)) || !(t = field(r)) || !number(r, 0, 1, &a) ||
		    !number(r, 0, 1, &b) || !number(r, 0, UINT32_MAX, &c))
			return bad(r, "disk: bad fields");
		if (ctx &&
		    !(err = ec1_ctx_add_disk(
			      ctx,
			      &(struct ec1_disk_config){s, t, (enum ec1_disk_format)a, b != 0})) &&
		    c)
			err = ec1_ctx_set_disk_flags(ctx, s, (unsigned int)c);
	} else if (strcmp(kw, "vsock") == 0) {
		if (!number(r, 0, UINT32_MAX, &a) || !(s = field(r)) || !number(r, 0, 1, &b))
			return bad(r, "vsock: bad fields");
		if (ctx)
			err = ec1_ctx_add_vsock_port(ctx, (uint32_t)a, s, b != 0);
	} else if (strcmp(kw, "net") == 0) {
		const char **map;
		bool mac_set;
		uint8_t mac[6];
		if (!number(r, -1, EC1_KRUN_FD_PASST, &a) || (a >= 0 && a != EC1_KRUN_FD_PASST) ||
		    !(s = field(r)) || !mac_field(r, &mac_set, mac) || !number(r, 0, 1, &b) ||
		    !list_field(r, false, &map))
			return bad(r, "net: bad fields");
		if (ctx) {
			size_t n = 0;
			while (map[n])
				n++;
			struct ec1_network_config net = {.passt_fd = (int)a,
							 .gvproxy_path = opt(s),
							 .mac = mac_set ? mac : NULL,
							 .port_map = b ? map : NULL,
							 .port_map_count = b ? n : 0};
			err = ec1_ctx_set_network(ctx, &net);
		}
		free(map);
	} else if (strcmp(kw, "vmnet") == 0) {
		bool mac_set;
		uint8_t mac[6];
		if (!number(r, EC1_KRUN_FD_VMNET, EC1_KRUN_FD_VMNET, &a) ||
		    !mac_field(r, &mac_set, mac) || !mac_set)
			return bad(r, "vmnet: bad fields");
		if (ctx) {
			/* The caller's vmnet-helper socket, inherited: libkrun gets a copy. */
			if (fcntl((int)a, F_GETFD) < 0)
				return bad(r, "vmnet: fd %ld: %s", a, strerror(errno));
			ctx->vmnet.fd = (int)a;
			memcpy(ctx->vmnet.info.mac, mac, 6);
		}
	} else if (strcmp(kw, "process") == 0) {
		const char **argv, **envp;
		if (!(s = field(r)) || !(t = field(r)))
			return bad(r, "process: bad fields");
		if (!list_field(r, false, &argv))
			return bad(r, "process: bad argv");
		if (!list_field(r, true, &envp)) {
			free(argv);
			return bad(r, "process: bad envp");
		}
		if (ctx)
			err = ec1_ctx_set_process(ctx,
						  &(struct ec1_process_config){.exec_path = s,
									       .argv = argv,
									       .envp = envp,
									       .workdir = opt(t)});
		free(argv);
		free(envp);
	} else if (strcmp(kw, "kernel") == 0) {
		if (!(s = field(r)) || !number(r, 0, EC1_KERNEL_BZIMAGE, &c) || !(t = field(r)))
			return bad(r, "kernel: bad fields");
		const char *cmdline = field(r);
		if (!cmdline)
			return bad(r, "kernel: bad fields");
		if (ctx)
			err = ec1_ctx_set_kernel(ctx, &(struct ec1_kernel_config){
							      .path = s,
							      .format = (enum ec1_kernel_format)c,
							      .initramfs = opt(t),
							      .cmdline = opt(cmdline)});
	} else if (strcmp(kw, "sev") == 0) {
		if (!(s = field(r)))
			return bad(r, "sev: bad fields");
		if (ctx)
			err = ec1_ctx_set_sev(ctx, &(struct ec1_sev_config){.tee_config_file = s});
	} else {
		return bad(r, "unknown record \"%.32s\"", kw);
	}
	if (err)
		snprintf(r->msg, r->msg_size, "%s", ec1_ctx_message(ctx));
	return err;
}

int ec1_krun_config_read(char *buf, size_t len, struct ec1_ctx **out, char *msg, size_t msg_size)
{
	struct rd r = {buf, buf + len, msg, msg_size};
	struct ec1_ctx *ctx = NULL;
	const char *f;
	long level;
	enum ec1_backend backend;
	int err = EC1_OK;
	*msg = 0;
	if (out)
		*out = NULL;
	if (len > CONFIG_MAX)
		return bad(&r, "configuration of %zu bytes, at most %u", len, CONFIG_MAX);
	if (!(f = field(&r)) || strcmp(f, CONFIG_MAGIC) != 0)
		return bad(&r, "not an ec1-krun configuration");
	if (!(f = field(&r)) || strcmp(f, "log") != 0 || !number(&r, -1, EC1_LOG_TRACE, &level))
		return bad(&r, "log: missing or bad");
	if (!(f = field(&r)) || strcmp(f, "backend") != 0 || !(f = field(&r)) ||
	    ec1_backend_parse(f, &backend) || backend == EC1_BACKEND_DEFAULT)
		return bad(&r, "backend: missing or bad");
	if (out) {
		if (level >= 0)
			ec1_set_log_level((enum ec1_log_level)level);
		if ((err = ec1_ctx_new_backend(backend, &ctx)))
			return bad(&r, "backend %s: %s", ec1_backend_name(backend),
				   ec1_strerror(err)),
			       err;
	}
	for (;;) {
		if (!(f = field(&r))) {
			err = bad(&r, "no end");
			break;
		}
		if (strcmp(f, "end") == 0) {
			if (r.p != r.end)
				err = bad(&r, "bytes after the end");
			break;
		}
		if ((err = record(&r, f, ctx)))
			break;
	}
	if (err) {
		ec1_ctx_free(ctx);
		return err;
	}
	if (out)
		*out = ctx;
	return EC1_OK;
}

/* The status pipe's error record: "E", code, backend errno, message. */
static void report(int fd, int code, int backend_errno, const char *msg)
{
	char buf[1200];
	int n = snprintf(buf, sizeof(buf), "E%d %d %s", code, backend_errno, msg);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	if (write(fd, buf, (size_t)n) < 0)
		return;
}

int ec1_krun_helper_main(int argc, char **argv);
int ec1_krun_helper_main(int argc, char **argv)
{
	(void)argv;
	struct stat st;
	char msg[1024];
	static struct ec1_ctx *ctx; /* until the process ends, which krun_start_enter does */
	if (argc != 1 || fstat(EC1_KRUN_FD_CONFIG, &st) < 0 ||
	    fcntl(EC1_KRUN_FD_STATUS, F_GETFD) < 0) {
		fprintf(stderr, "ec1-krun: started by ec1_run (libkrun backends), not by hand\n");
		return EC1_EXIT_SETUP;
	}
	fcntl(EC1_KRUN_FD_CONFIG, F_SETFD, FD_CLOEXEC);
	fcntl(EC1_KRUN_FD_STATUS, F_SETFD, FD_CLOEXEC);
	size_t len = st.st_size > 0 && st.st_size <= CONFIG_MAX ? (size_t)st.st_size : 0;
	char *buf = malloc(len + 1);
	ssize_t got = buf && len ? pread(EC1_KRUN_FD_CONFIG, buf, len, 0) : -1;
	close(EC1_KRUN_FD_CONFIG);
	if (got != (ssize_t)len || !len) {
		free(buf);
		report(EC1_KRUN_FD_STATUS, EC1_EBACKEND, 0, "ec1-krun: configuration unreadable");
		return EC1_EXIT_SETUP;
	}
	int err = ec1_krun_config_read(buf, len, &ctx, msg, sizeof(msg));
	free(buf); /* the context has its own copies */
	if (err) {
		report(EC1_KRUN_FD_STATUS, err, 0, msg);
		return EC1_EXIT_SETUP;
	}
	/* Returns only when libkrun could not start the VM. */
	err = ec1_start_enter(ctx);
	report(EC1_KRUN_FD_STATUS, err, ec1_ctx_backend_errno(ctx), ec1_ctx_message(ctx));
	return EC1_EXIT_SETUP;
}

/* What the status pipe said, once the process behind it is gone: an error, or none. */
static int read_status(struct ec1_ctx *ctx, int fd, const char *who, int *status, int wst)
{
	char buf[1200];
	ssize_t n = 0, r;
	while ((size_t)n < sizeof(buf) - 1 &&
	       (r = read(fd, buf + n, sizeof(buf) - 1 - (size_t)n)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		n += r;
	}
	buf[n] = 0;
	close(fd);
	int code, backend_errno, at = 0;
	if (n > 0 && buf[0] == 'X') {
		int e = 0;
		if (n >= (ssize_t)(1 + sizeof(e)))
			memcpy(&e, buf + 1, sizeof(e));
		return ec1_fail(ctx, EC1_ENOTAVAIL, "%s: exec: %s", who, strerror(e));
	}
	if (n > 0 && sscanf(buf, "E%d %d %n", &code, &backend_errno, &at) == 2 && at > 0 &&
	    code < 0) {
		ctx->backend_errno = backend_errno;
		return ec1_fail(ctx, code, "%s", buf + at);
	}
	*status = WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + WTERMSIG(wst);
	return EC1_OK;
}

static int wait_child(struct ec1_ctx *ctx, pid_t pid, int *wst)
{
	while (waitpid(pid, wst, 0) < 0)
		if (errno != EINTR)
			return ec1_fail(ctx, EC1_EBACKEND, "waitpid: %s", strerror(errno));
	return EC1_OK;
}

int ec1_krun_spawn(struct ec1_ctx *ctx, const char *path, int *status)
{
	char *cfg;
	size_t len;
	int err = ec1_krun_config_write(ctx, &cfg, &len);
	if (err)
		return err;
	int cfd = memfd_create("ec1-krun-config", MFD_CLOEXEC), sp[2] = {-1, -1};
	bool ok = cfd >= 0 && pipe2(sp, O_CLOEXEC) == 0;
	for (size_t done = 0; ok && done < len;) {
		ssize_t w = write(cfd, cfg + done, len - done);
		ok = w > 0 || (w < 0 && errno == EINTR);
		done += w > 0 ? (size_t)w : 0;
	}
	free(cfg);
	if (!ok) {
		err = ec1_fail(ctx, EC1_EBACKEND, "libkrun helper: configuration: %s",
			       strerror(errno));
		if (cfd >= 0)
			close(cfd);
		if (sp[0] >= 0) {
			close(sp[0]);
			close(sp[1]);
		}
		return err;
	}
	int src[4] = {cfd, sp[1], K(ctx)->net.set ? K(ctx)->net.passt_fd : -1, ctx->vmnet.fd};
	static const int dst[4] = {EC1_KRUN_FD_CONFIG, EC1_KRUN_FD_STATUS, EC1_KRUN_FD_PASST,
				   EC1_KRUN_FD_VMNET};
	char *const argv[] = {"ec1-krun", NULL};
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		/* Only async-signal-safe calls until the exec: this process may have threads. */
		for (int i = 0; i < 4; i++)
			if (src[i] >= 0)
				src[i] = fcntl(src[i], F_DUPFD, 16);
		for (int i = 0; i < 4; i++)
			if (src[i] >= 0)
				dup2(src[i], dst[i]);
			else
				close(dst[i]); /* none of the caller's own fds there */
		syscall(SYS_close_range, 7u, ~0u, 0u);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execve(path, argv, environ);
		char x[1 + sizeof(int)] = {'X'};
		int e = errno;
		memcpy(x + 1, &e, sizeof(e));
		if (write(EC1_KRUN_FD_STATUS, x, sizeof(x)) < 0)
			_exit(EC1_EXIT_SETUP);
		_exit(EC1_EXIT_SETUP);
	}
	int fork_errno = errno;
	close(cfd);
	close(sp[1]);
	if (pid < 0) {
		close(sp[0]);
		return ec1_fail(ctx, EC1_EBACKEND, "fork: %s", strerror(fork_errno));
	}
	int wst;
	if ((err = wait_child(ctx, pid, &wst))) {
		close(sp[0]);
		return err;
	}
	return read_status(ctx, sp[0], path, status, wst);
}

int ec1_krun_fork(struct ec1_ctx *ctx, int *status)
{
	int sp[2];
	if (pipe2(sp, O_CLOEXEC) < 0)
		return ec1_fail(ctx, EC1_EBACKEND, "pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(sp[0]);
		int err = ec1_krun_enter(ctx); /* returns only on a failure */
		report(sp[1], err, ctx->backend_errno, ctx->message);
		_exit(EC1_EXIT_SETUP);
	}
	int fork_errno = errno;
	close(sp[1]);
	if (pid < 0) {
		close(sp[0]);
		return ec1_fail(ctx, EC1_EBACKEND, "fork: %s", strerror(fork_errno));
	}
	int wst, err = wait_child(ctx, pid, &wst);
	if (err) {
		close(sp[0]);
		return err;
	}
	return read_status(ctx, sp[0], "libkrun", status, wst);
}
