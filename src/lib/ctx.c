/* The public API: argument checks, copies, the availability table, dispatch to the backend. */
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../../guest/abi.h"
#include "ec1_internal.h"

int ec1_fail(struct ec1_ctx *ctx, int code, const char *fmt, ...)
{
	if (ctx) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(ctx->message, sizeof(ctx->message), fmt, ap);
		va_end(ap);
	}
	return code;
}

const char *ec1_strerror(int code)
{
	switch (code) {
	case EC1_OK:
		return "success";
	case EC1_ENOTAVAIL:
		return "backend not available";
	case EC1_EVMNET:
		return "vmnet not available";
	case EC1_EUNSUPPORTED:
		return "not supported by this backend or variant";
	case EC1_EINVAL:
		return "invalid argument";
	case EC1_EBACKEND:
		return "backend error";
	case EC1_EALREADY:
		return "already done";
	case EC1_ENOMEM:
		return "out of memory";
	case EC1_EKVM:
		return "KVM not usable";
	case EC1_EGUEST:
		return "guest failure";
	case EC1_ETIMEDOUT:
		return "timed out";
	case EC1_ESTATE:
		return "call out of order";
	default:
		return "unknown error";
	}
}

static const char *const backend_names[] = {
	[EC1_BACKEND_DEFAULT] = "default",	   [EC1_BACKEND_BUILTIN] = "builtin",
	[EC1_BACKEND_LIBKRUN] = "libkrun",	   [EC1_BACKEND_LIBKRUN_SEV] = "libkrun-sev",
	[EC1_BACKEND_LIBKRUN_EFI] = "libkrun-efi", [EC1_BACKEND_STUB] = "stub",
};

const char *ec1_backend_name(enum ec1_backend backend)
{
	if ((unsigned int)backend < sizeof(backend_names) / sizeof(backend_names[0]))
		return backend_names[backend];
	return "unknown";
}

int ec1_backend_parse(const char *name, enum ec1_backend *out)
{
	for (unsigned int i = 0; name && i < sizeof(backend_names) / sizeof(backend_names[0]);
	     i++) {
		if (strcmp(name, backend_names[i]) == 0) {
			*out = (enum ec1_backend)i;
			return EC1_OK;
		}
	}
	return EC1_EINVAL;
}

static enum ec1_backend default_backend(void);

/* Process-wide: libkrun's logger panics when initialised twice, so every backend gets one call. */
static int log_level_set;
static int log_level_requested = -1;

int ec1_set_log_level(enum ec1_log_level level)
{
	if ((unsigned int)level > EC1_LOG_TRACE)
		return EC1_EINVAL;
	if (default_backend() == EC1_BACKEND_STUB)
		return EC1_ENOTAVAIL;
	if (__atomic_exchange_n(&log_level_set, 1, __ATOMIC_SEQ_CST))
		return EC1_EALREADY;
	ec1_builtin_set_log_level(level);
	__atomic_store_n(&log_level_requested, (int)level, __ATOMIC_SEQ_CST);
	return EC1_OK;
}

int ec1_log_level_requested(void)
{
	return __atomic_load_n(&log_level_requested, __ATOMIC_SEQ_CST);
}

static const struct ec1_backend_ops *backend_ops(enum ec1_backend b)
{
	switch (b) {
	case EC1_BACKEND_BUILTIN:
		return &ec1_backend_builtin;
	case EC1_BACKEND_LIBKRUN:
		return &ec1_backend_libkrun;
	case EC1_BACKEND_LIBKRUN_SEV:
		return &ec1_backend_libkrun_sev;
	case EC1_BACKEND_LIBKRUN_EFI:
		return &ec1_backend_libkrun_efi;
	case EC1_BACKEND_STUB:
		return &ec1_backend_stub;
	default:
		return NULL;
	}
}

unsigned int ec1_backend_capabilities(enum ec1_backend backend)
{
	const struct ec1_backend_ops *ops = backend_ops(backend);
	if (!ops)
		return 0;
	return ops->installed ? ops->installed(ops->id, ops->features) : ops->features;
}

const char *ec1_backend_version(enum ec1_backend backend)
{
	const struct ec1_backend_ops *ops = backend_ops(backend);
	if (!ops || ops->id == EC1_BACKEND_STUB)
		return NULL;
	return ops->version ? ops->version(ops->id, ops->features) : EC1_VERSION;
}

#ifndef EC1_DEFAULT_BACKEND
#define EC1_DEFAULT_BACKEND EC1_BACKEND_BUILTIN
#endif

int ec1_ctx_new(struct ec1_ctx **out)
{
	return ec1_ctx_new_backend(EC1_BACKEND_DEFAULT, out);
}

/* EC1_BACKEND, else the build's default; EC1_BACKEND_DEFAULT for an unknown name. */
static enum ec1_backend default_backend(void)
{
	const char *env = getenv("EC1_BACKEND");
	enum ec1_backend backend = EC1_DEFAULT_BACKEND;
	if (env && *env && ec1_backend_parse(env, &backend))
		return EC1_BACKEND_DEFAULT;
	return backend == EC1_BACKEND_DEFAULT ? EC1_DEFAULT_BACKEND : backend;
}

int ec1_ctx_new_backend(enum ec1_backend backend, struct ec1_ctx **out)
{
	if (!out)
		return EC1_EINVAL;
	*out = NULL;
	if (backend == EC1_BACKEND_DEFAULT && (backend = default_backend()) == EC1_BACKEND_DEFAULT)
		return EC1_EINVAL;
	const struct ec1_backend_ops *ops = backend_ops(backend);
	if (!ops)
		return EC1_EINVAL;
	struct ec1_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return EC1_ENOMEM;
	ctx->ops = ops;
	ctx->features = ops->features;
	ctx->vm = (struct ec1_vm_config){.num_vcpus = 1, .ram_mib = 512};
	ctx->stdio[0] = 0;
	ctx->stdio[1] = 1;
	ctx->stdio[2] = 2;
	ctx->shutdown_fd = -1;
	ctx->bg.ready_fd = ctx->bg.done_fd = -1;
	ctx->vmnet.fd = ctx->vmnet.out_fd = -1;
	ctx->net.fd = ctx->passt.fd = -1;
	const char *t = getenv("EC1_TIMING");
	ctx->timing = t && *t && strcmp(t, "0") != 0;
	const char *c = getenv("EC1_CONSOLE");
	ctx->console = c && *c && strcmp(c, "0") != 0;
	int err = ops->open ? ops->open(ctx) : EC1_OK;
	if (err) {
		free(ctx);
		return err;
	}
	*out = ctx;
	return EC1_OK;
}

static void free_list(char **list)
{
	for (size_t i = 0; list && list[i]; i++)
		free(list[i]);
	free(list);
}

static void free_volumes(struct ec1_volume *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].host);
		free(v[i].guest);
	}
	free(v);
}

static void free_disk(struct ec1_disk *d)
{
	free(d->block_id);
	free(d->path);
	free(d->guest_path);
	free(d->fstype);
	memset(d, 0, sizeof(*d));
}

void ec1_ctx_free(struct ec1_ctx *ctx)
{
	if (!ctx)
		return;
	if (ctx->bg.on && !ctx->bg.joined)
		ec1_ctx_stop(ctx, 0, NULL);
	if (ctx->bg.ready_fd >= 0)
		close(ctx->bg.ready_fd);
	if (ctx->bg.done_fd >= 0)
		close(ctx->bg.done_fd);
	if (ctx->exec_dir) {
		unlink(ctx->exec_socket);
		rmdir(ctx->exec_dir);
		free(ctx->exec_dir);
	}
	free(ctx->exec_socket);
	if (ctx->ops->close)
		ctx->ops->close(ctx);
	ec1_vmnet_stop(&ctx->vmnet);
	free(ctx->root);
	free_volumes(ctx->volumes, ctx->nr_volumes);
	for (size_t i = 0; i < ctx->nr_shares; i++) {
		free(ctx->shares[i].tag);
		free(ctx->shares[i].dir);
	}
	for (size_t i = 0; i < ctx->nr_disks; i++)
		free_disk(&ctx->disks[i]);
	for (size_t i = 0; i < ctx->nr_vsock_ports; i++)
		free(ctx->vsock_ports[i].path);
	free(ctx->vsock_uds);
	free(ctx->exec_path);
	free(ctx->workdir);
	free_list(ctx->argv);
	free_list(ctx->envp);
	free(ctx->kernel_path);
	free(ctx->initramfs);
	free(ctx->cmdline);
	ec1_net_reset(ctx);
	free(ctx->net.cidr);
	free(ctx->net.gateway);
	free(ctx->net.dns);
	if (ctx->shutdown_fd >= 0)
		close(ctx->shutdown_fd);
	free(ctx);
}

enum ec1_backend ec1_ctx_backend(const struct ec1_ctx *ctx)
{
	return ctx ? ctx->ops->id : EC1_BACKEND_DEFAULT;
}

const char *ec1_ctx_message(const struct ec1_ctx *ctx)
{
	return ctx ? ctx->message : "no context";
}

int ec1_ctx_backend_errno(const struct ec1_ctx *ctx)
{
	return ctx ? ctx->backend_errno : 0;
}

/* Common entry checks; clears the previous message. */
#define ENTER(ctx)                                                                 \
	do {                                                                       \
		if (!(ctx))                                                        \
			return EC1_EINVAL;                                         \
		(ctx)->message[0] = 0;                                             \
		(ctx)->backend_errno = 0;                                          \
		if ((ctx)->ran)                                                    \
			return ec1_fail((ctx), EC1_ESTATE, "context already ran"); \
	} while (0)

static int need_feature(struct ec1_ctx *ctx, unsigned int feature, const char *call)
{
	if (ctx->features & feature)
		return EC1_OK;
	if (ctx->ops->features & feature) /* the variant's, not the library's found here */
		return ec1_fail(ctx, EC1_EUNSUPPORTED,
				"%s: the %s library found here lacks what it needs (an older "
				"version; ec1 variants says which)",
				call, ec1_backend_name(ctx->ops->id));
	return ec1_fail(ctx, EC1_EUNSUPPORTED, "%s: not available in the %s variant", call,
			ec1_backend_name(ctx->ops->id));
}

/* What a path must name: a directory, or a file (a regular file or a device) to read. */
enum path_kind { PATH_DIR, PATH_FILE };

/*
 * Checks that path names an existing object of the kind wanted. A FIFO or a socket is refused
 * where a file is wanted: opening the one waits for a writer, the other cannot be opened.
 */
static int check_path(struct ec1_ctx *ctx, const char *field, const char *path, enum path_kind want)
{
	struct stat st;
	if (!path || !*path)
		return ec1_fail(ctx, EC1_EINVAL, "%s: empty path", field);
	if (stat(path, &st) < 0)
		return ec1_fail(ctx, EC1_EINVAL, "%s: %s: %s", field, path, strerror(errno));
	if (want == PATH_DIR && !S_ISDIR(st.st_mode))
		return ec1_fail(ctx, EC1_EINVAL, "%s: %s: Not a directory", field, path);
	if (want == PATH_FILE && S_ISDIR(st.st_mode))
		return ec1_fail(ctx, EC1_EINVAL, "%s: %s: Is a directory", field, path);
	if (want == PATH_FILE && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		return ec1_fail(ctx, EC1_EINVAL, "%s: %s: a %s, not a file", field, path,
				S_ISFIFO(st.st_mode) ? "FIFO or pipe" : "socket");
	return EC1_OK;
}

static int replace_str(struct ec1_ctx *ctx, char **slot, const char *value)
{
	char *copy = NULL;
	if (value && !(copy = strdup(value)))
		return ec1_fail(ctx, EC1_ENOMEM, "out of memory");
	free(*slot);
	*slot = copy;
	return EC1_OK;
}

/* Copies a list given as (array, count) or NULL-terminated (count == SIZE_MAX). */
static int copy_list(struct ec1_ctx *ctx, const char *field, const char *const *src, size_t count,
		     char ***out)
{
	if (count == SIZE_MAX)
		for (count = 0; src && src[count]; count++)
			;
	if (count && !src)
		return ec1_fail(ctx, EC1_EINVAL, "%s: NULL array with %zu entries", field, count);
	char **list = calloc(count + 1, sizeof(char *));
	if (!list)
		return ec1_fail(ctx, EC1_ENOMEM, "out of memory");
	for (size_t i = 0; i < count; i++) {
		if (!src[i]) {
			free_list(list);
			return ec1_fail(ctx, EC1_EINVAL, "%s[%zu]: NULL entry", field, i);
		}
		if (!(list[i] = strdup(src[i]))) {
			free_list(list);
			return ec1_fail(ctx, EC1_ENOMEM, "out of memory");
		}
	}
	*out = list;
	return EC1_OK;
}

static int call(struct ec1_ctx *ctx, int (*hook)(struct ec1_ctx *))
{
	return hook ? hook(ctx) : EC1_OK;
}

int ec1_ctx_set_vm(struct ec1_ctx *ctx, const struct ec1_vm_config *config)
{
	ENTER(ctx);
	if (!config)
		return ec1_fail(ctx, EC1_EINVAL, "vm: NULL config");
	if (config->num_vcpus < 1 || config->num_vcpus > EC1_MAX_VCPUS)
		return ec1_fail(ctx, EC1_EINVAL, "vm.num_vcpus: %u: must be 1..%d",
				config->num_vcpus, EC1_MAX_VCPUS);
	if (config->ram_mib < EC1_MIN_RAM_MIB || config->ram_mib > EC1_MAX_RAM_MIB)
		return ec1_fail(ctx, EC1_EINVAL, "vm.ram_mib: %u: must be %d..%d", config->ram_mib,
				EC1_MIN_RAM_MIB, EC1_MAX_RAM_MIB);
	struct ec1_vm_config old = ctx->vm;
	ctx->vm = *config;
	int err = call(ctx, ctx->ops->set_vm);
	if (err)
		ctx->vm = old;
	return err;
}

int ec1_ctx_set_root(struct ec1_ctx *ctx, const char *dir)
{
	ENTER(ctx);
	int err = check_path(ctx, "root", dir, PATH_DIR);
	err = err ?: need_feature(ctx, EC1_F_ROOT, "set_root");
	err = err ?: replace_str(ctx, &ctx->root, dir);
	return err ?: call(ctx, ctx->ops->set_root);
}

int ec1_ctx_set_root_flags(struct ec1_ctx *ctx, unsigned int flags)
{
	ENTER(ctx);
	if (flags & ~(EC1_SHARE_READ_ONLY | EC1_SHARE_GUEST_IDS))
		return ec1_fail(ctx, EC1_EINVAL, "root.flags: 0x%x: unknown flags", flags);
	int err = need_feature(ctx, EC1_F_ROOT, "set_root_flags");
	if (err)
		return err;
	if (flags && !ctx->ops->set_root_flags)
		return ec1_fail(ctx, EC1_EUNSUPPORTED,
				"set_root_flags: not available in the %s variant",
				ec1_backend_name(ctx->ops->id));
	unsigned int old = ctx->root_flags;
	ctx->root_flags = flags;
	if (ctx->ops->set_root_flags && (err = ctx->ops->set_root_flags(ctx)))
		ctx->root_flags = old;
	return err;
}

int ec1_check_root_flags(struct ec1_ctx *ctx)
{
	if (ctx->root_flags && !ctx->root)
		return ec1_fail(
			ctx, EC1_EINVAL,
			"root.flags: set, but there is no root directory (ec1_ctx_set_root); "
			"a root disk is read-only through its ec1_disk_config.read_only");
	return EC1_OK;
}

int ec1_share_flags_parse(const char *opts, unsigned int *flags)
{
	*flags = 0;
	for (const char *o = opts; *o;) {
		size_t n = strcspn(o, ",");
		if (n == 2 && strncmp(o, "ro", 2) == 0)
			*flags |= EC1_SHARE_READ_ONLY;
		else if (n == 2 && strncmp(o, "rw", 2) == 0)
			*flags &= ~EC1_SHARE_READ_ONLY;
		else if (n == 9 && strncmp(o, "guest-ids", 9) == 0)
			*flags |= EC1_SHARE_GUEST_IDS;
		else
			return -1;
		o += n;
		if (*o == ',' && *++o == 0)
			return -1; /* a trailing comma */
	}
	return 0;
}

/*
 * "HOST:GUEST[:OPTS]": HOST an existing directory, GUEST absolute, OPTS ro, rw, guest-ids. Parsed
 * into *out (its strings the caller's to free).
 */
static int parse_volume(struct ec1_ctx *ctx, size_t i, const char *spec, struct ec1_volume *out)
{
	char field[32];
	snprintf(field, sizeof(field), "volumes[%zu]", i);
	const char *colon = strchr(spec, ':');
	if (!colon || colon == spec)
		return ec1_fail(ctx, EC1_EINVAL, "%s: \"%s\": expected HOST:GUEST[:ro]", field,
				spec);
	const char *guest = colon + 1, *opt = strchr(guest, ':');
	if (*guest != '/')
		return ec1_fail(ctx, EC1_EINVAL, "%s: \"%s\": guest path must be absolute", field,
				spec);
	size_t glen = opt ? (size_t)(opt - guest) : strlen(guest);
	if (glen == 1)
		return ec1_fail(ctx, EC1_EINVAL, "%s: \"%s\": a volume cannot be / (use set_root)",
				field, spec);
	for (const char *c = guest; c < guest + glen; c = strchr(c + 1, '/')) {
		size_t n = strcspn(c + 1, "/:");
		if ((n == 2 && strncmp(c + 1, "..", 2) == 0) || (n == 1 && c[1] == '.'))
			return ec1_fail(ctx, EC1_EINVAL,
					"%s: \"%s\": guest path must not contain . or ..", field,
					spec);
		if (!strchr(c + 1, '/'))
			break;
	}
	unsigned int flags = 0;
	if (opt && (!opt[1] || ec1_share_flags_parse(opt + 1, &flags) < 0))
		return ec1_fail(ctx, EC1_EINVAL,
				"%s: \"%s\": unknown option in \"%s\" (ro, rw, guest-ids)", field,
				spec, opt + 1);
	char host[4096];
	snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	int err = check_path(ctx, field, host, PATH_DIR);
	if (err)
		return err;
	*out = (struct ec1_volume){.host = strndup(spec, (size_t)(colon - spec)),
				   .guest = strndup(guest, glen),
				   .flags = flags};
	if (!out->host || !out->guest)
		return ec1_fail(ctx, EC1_ENOMEM, "%s: out of memory", field);
	return EC1_OK;
}

int ec1_ctx_set_mapped_volumes(struct ec1_ctx *ctx, const char *const *volumes, size_t count)
{
	ENTER(ctx);
	int err;
	if (count && !volumes)
		return ec1_fail(ctx, EC1_EINVAL, "volumes: NULL array with %zu entries", count);
	if ((err = need_feature(ctx, EC1_F_VOLUMES, "set_mapped_volumes")))
		return err;
	if (count > EC1_MAX_LIST)
		return ec1_fail(ctx, EC1_EINVAL, "volumes: %zu entries, at most %d", count,
				EC1_MAX_LIST);
	struct ec1_volume *list = calloc(count ? count : 1, sizeof(*list));
	if (!list)
		return ec1_fail(ctx, EC1_ENOMEM, "volumes: out of memory");
	for (size_t i = 0; i < count; i++) {
		if (!volumes[i])
			err = ec1_fail(ctx, EC1_EINVAL, "volumes[%zu]: NULL entry", i);
		else
			err = parse_volume(ctx, i, volumes[i], &list[i]);
		if (err) {
			free_volumes(list, count);
			return err;
		}
	}
	struct ec1_volume *old = ctx->volumes;
	size_t nr_old = ctx->nr_volumes;
	ctx->volumes = list;
	ctx->nr_volumes = count;
	if ((err = call(ctx, ctx->ops->set_mapped_volumes))) {
		/* Refused: the earlier list stays. */
		ctx->volumes = old;
		ctx->nr_volumes = nr_old;
		free_volumes(list, count);
		return err;
	}
	free_volumes(old, nr_old);
	return EC1_OK;
}

int ec1_ctx_add_virtiofs(struct ec1_ctx *ctx, const char *tag, const char *dir)
{
	ENTER(ctx);
	int err;
	/* virtio 1.2 §5.11.4: the tag is at most 36 bytes, and not empty. */
	if (!tag || !*tag || strlen(tag) > EC1_MAX_TAG_LEN)
		return ec1_fail(ctx, EC1_EINVAL, "virtiofs.tag: \"%s\": must be 1..%d bytes",
				tag ? tag : "", EC1_MAX_TAG_LEN);
	for (size_t i = 0; i < ctx->nr_shares; i++)
		if (strcmp(ctx->shares[i].tag, tag) == 0)
			return ec1_fail(ctx, EC1_EINVAL, "virtiofs.tag: \"%s\": already used", tag);
	if (ctx->nr_shares == EC1_MAX_LIST)
		return ec1_fail(ctx, EC1_EINVAL, "virtiofs: at most %d shares", EC1_MAX_LIST);
	if ((err = check_path(ctx, "virtiofs.dir", dir, PATH_DIR)) ||
	    (err = need_feature(ctx, EC1_F_VOLUMES, "add_virtiofs")))
		return err;
	if (ctx->ops->add_virtiofs && (err = ctx->ops->add_virtiofs(ctx, tag, dir)))
		return err;
	struct ec1_share *s = &ctx->shares[ctx->nr_shares];
	s->tag = strdup(tag);
	s->dir = strdup(dir);
	if (!s->tag || !s->dir) {
		free(s->tag);
		free(s->dir);
		return ec1_fail(ctx, EC1_ENOMEM, "out of memory");
	}
	ctx->nr_shares++;
	return EC1_OK;
}

/* A block id: 1..20 printable bytes without spaces (the guest reads it back as the serial). */
static bool block_id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > EC1_MAX_BLOCK_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)id[i] <= ' ' || (unsigned char)id[i] > '~')
			return false;
	return true;
}

static struct ec1_disk *find_disk(struct ec1_ctx *ctx, const char *block_id)
{
	for (size_t i = 0; i < ctx->nr_disks; i++)
		if (strcmp(ctx->disks[i].block_id, block_id) == 0)
			return &ctx->disks[i];
	return NULL;
}

int ec1_ctx_add_disk(struct ec1_ctx *ctx, const struct ec1_disk_config *config)
{
	ENTER(ctx);
	if (!config)
		return ec1_fail(ctx, EC1_EINVAL, "disk: NULL config");
	if (!config->block_id || !block_id_ok(config->block_id))
		return ec1_fail(ctx, EC1_EINVAL,
				"disk.block_id: \"%s\": must be 1..%d printable bytes without "
				"spaces",
				config->block_id ? config->block_id : "", EC1_MAX_BLOCK_ID_LEN);
	if (find_disk(ctx, config->block_id))
		return ec1_fail(ctx, EC1_EINVAL, "disk.block_id: \"%s\": already used",
				config->block_id);
	if (config->format != EC1_DISK_RAW && config->format != EC1_DISK_QCOW2)
		return ec1_fail(ctx, EC1_EINVAL, "disk.format: %d: must be raw (0) or qcow2 (1)",
				(int)config->format);
	int err = check_path(ctx, "disk.path", config->path, PATH_FILE);
	err = err ?: need_feature(ctx, EC1_F_DISKS, "add_disk");
	if (err)
		return err;
	if (ctx->nr_disks == EC1_MAX_DISKS)
		return ec1_fail(ctx, EC1_EINVAL, "disk: at most %d disks", EC1_MAX_DISKS);
	if (ctx->ops->add_disk && (err = ctx->ops->add_disk(ctx, config)))
		return err;
	struct ec1_disk *d = &ctx->disks[ctx->nr_disks];
	d->block_id = strdup(config->block_id);
	d->path = strdup(config->path);
	d->format = config->format;
	d->read_only = config->read_only;
	if (!d->block_id || !d->path) {
		free_disk(d);
		return ec1_fail(ctx, EC1_ENOMEM, "out of memory");
	}
	ctx->nr_disks++;
	return EC1_OK;
}

/* A unix socket path: set, and short enough for sun_path. */
static int check_socket_path(struct ec1_ctx *ctx, const char *field, const char *path)
{
	if (!path || !*path)
		return ec1_fail(ctx, EC1_EINVAL, "%s: empty path", field);
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return ec1_fail(ctx, EC1_EINVAL,
				"%s: %s: longer than a unix socket path (%zu bytes)", field, path,
				sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	return EC1_OK;
}

int ec1_ctx_add_vsock_port(struct ec1_ctx *ctx, uint32_t port, const char *path, bool listen)
{
	ENTER(ctx);
	if (port == 0 || port == UINT32_MAX)
		return ec1_fail(ctx, EC1_EINVAL, "vsock.port: %u: must be 1..4294967294", port);
	if (port == EC1_ABI_EXEC_PORT)
		return ec1_fail(ctx, EC1_EINVAL, "vsock.port: %u: ec1's own (exec)", port);
	int err = check_socket_path(ctx, "vsock.path", path);
	err = err ?: need_feature(ctx, EC1_F_VSOCK, "add_vsock_port");
	if (err)
		return err;
	for (size_t i = 0; i < ctx->nr_vsock_ports; i++)
		if (ctx->vsock_ports[i].port == port)
			return ec1_fail(ctx, EC1_EINVAL, "vsock.port: %u: already added", port);
	if (ctx->nr_vsock_ports == EC1_MAX_VSOCK_PORTS)
		return ec1_fail(ctx, EC1_EINVAL, "vsock: at most %d ports", EC1_MAX_VSOCK_PORTS);
	if (ctx->ops->add_vsock_port && (err = ctx->ops->add_vsock_port(ctx, port, path, listen)))
		return err;
	struct ec1_vsock_port *p = &ctx->vsock_ports[ctx->nr_vsock_ports];
	if (!(p->path = strdup(path)))
		return ec1_fail(ctx, EC1_ENOMEM, "out of memory");
	p->port = port;
	p->listen = listen;
	ctx->nr_vsock_ports++;
	return EC1_OK;
}

int ec1_ctx_set_vsock_uds(struct ec1_ctx *ctx, const char *path)
{
	ENTER(ctx);
	int err = path ? check_socket_path(ctx, "vsock.uds", path) : EC1_OK;
	err = err ?: need_feature(ctx, EC1_F_VSOCK_UDS, "set_vsock_uds");
	if (err)
		return err;
	char *copy = path ? strdup(path) : NULL;
	if (path && !copy)
		return ec1_fail(ctx, EC1_ENOMEM, "out of memory");
	free(ctx->vsock_uds);
	ctx->vsock_uds = copy;
	return EC1_OK;
}

/* For the per-disk calls (call: their name, needing feature): the disk added as block_id. */
static int added_disk(struct ec1_ctx *ctx, unsigned int feature, const char *call,
		      const char *block_id, struct ec1_disk **out)
{
	int err = need_feature(ctx, feature, call);
	if (err)
		return err;
	if (!block_id || !(*out = find_disk(ctx, block_id)))
		return ec1_fail(ctx, EC1_EINVAL, "%s.block_id: \"%s\": no disk added with that id",
				call, block_id ? block_id : "");
	return EC1_OK;
}

int ec1_ctx_mount_disk(struct ec1_ctx *ctx, const char *block_id, const char *guest_path,
		       const char *fstype)
{
	ENTER(ctx);
	struct ec1_disk *d;
	int err = added_disk(ctx, EC1_F_DISK_MOUNTS, "mount_disk", block_id, &d);
	if (err)
		return err;
	if (!guest_path || guest_path[0] != '/' || strlen(guest_path) > 1024)
		return ec1_fail(ctx, EC1_EINVAL,
				"mount_disk.guest_path: \"%s\": must be an absolute path",
				guest_path ? guest_path : "");
	if (fstype && (!*fstype || strlen(fstype) > 31 ||
		       strspn(fstype, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(fstype)))
		return ec1_fail(
			ctx, EC1_EINVAL,
			"mount_disk.fstype: \"%s\": expected a file system name (ext4, ...)",
			fstype);
	for (size_t i = 0; i < ctx->nr_disks; i++)
		if (&ctx->disks[i] != d && ctx->disks[i].guest_path &&
		    strcmp(ctx->disks[i].guest_path, guest_path) == 0)
			return ec1_fail(ctx, EC1_EINVAL,
					"mount_disk.guest_path: %s: disk \"%s\" is mounted there",
					guest_path, ctx->disks[i].block_id);
	char *p = strdup(guest_path), *t = fstype ? strdup(fstype) : NULL;
	if (!p || (fstype && !t)) {
		free(p);
		free(t);
		return ec1_fail(ctx, EC1_ENOMEM, "out of memory");
	}
	free(d->guest_path);
	free(d->fstype);
	d->guest_path = p;
	d->fstype = t;
	return EC1_OK;
}

int ec1_ctx_set_disk_partition(struct ec1_ctx *ctx, const char *block_id, unsigned int partition)
{
	ENTER(ctx);
	struct ec1_disk *d;
	int err = added_disk(ctx, EC1_F_DISK_MOUNTS, "disk_partition", block_id, &d);
	if (err)
		return err;
	if (partition > EC1_ABI_MAX_PARTITION)
		return ec1_fail(ctx, EC1_EINVAL,
				"disk_partition: %u: expected 1..%d (0: the whole disk)", partition,
				EC1_ABI_MAX_PARTITION);
	d->partition = partition;
	return EC1_OK;
}

int ec1_ctx_set_disk_flags(struct ec1_ctx *ctx, const char *block_id, unsigned int flags)
{
	ENTER(ctx);
	struct ec1_disk *d;
	int err = added_disk(ctx, EC1_F_DISKS, "disk_flags", block_id, &d);
	if (err)
		return err;
	if (flags & ~(EC1_DISK_ALLOW_BACKING | EC1_DISK_DIRECT_IO | EC1_DISK_NO_FLUSH))
		return ec1_fail(ctx, EC1_EINVAL, "disk_flags: 0x%x: unknown flags", flags);
	if (ctx->ops->set_disk_flags && (err = ctx->ops->set_disk_flags(ctx, d, flags)))
		return err;
	d->flags = flags;
	return EC1_OK;
}

int ec1_disk_detect_format(const char *path, enum ec1_disk_format *format)
{
	if (!path || !format)
		return EC1_EINVAL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return EC1_EINVAL;
	unsigned char magic[4];
	ssize_t r = pread(fd, magic, sizeof(magic), 0);
	close(fd);
	if (r < 0)
		return EC1_EINVAL;
	*format = r == 4 && memcmp(magic, "QFI\xfb", 4) == 0 ? EC1_DISK_QCOW2 : EC1_DISK_RAW;
	return EC1_OK;
}

/* A port, 1..65535, of exactly the decimal digits between s and end. */
static bool parse_port(const char *s, const char *end, uint16_t *port)
{
	unsigned long v = 0;
	if (s == end || end - s > 5)
		return false;
	for (const char *c = s; c < end; c++) {
		if (*c < '0' || *c > '9')
			return false;
		v = v * 10 + (unsigned long)(*c - '0');
	}
	if (v < 1 || v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/*
 * The end of spec's address-and-port part: before a "/udp" (*udp set) or "/tcp", else its end.
 * NULL with why set when another protocol follows the '/'.
 */
static const char *parse_proto(const char *spec, bool *udp, const char **why)
{
	const char *slash = strchr(spec, '/');
	*udp = slash && strcmp(slash, "/udp") == 0;
	if (slash && !*udp && strcmp(slash, "/tcp") != 0)
		return *why = "the protocol after '/' is tcp or udp", NULL;
	return slash ? slash : spec + strlen(spec);
}

/* The address of family af (AF_INET: dotted, 4 bytes; AF_INET6: 16) in [s, end) into out,
 * network order. */
static bool parse_addr(const char *s, const char *end, int af, void *out)
{
	char text[INET6_ADDRSTRLEN] = "";
	size_t n = (size_t)(end - s);
	if (n >= sizeof(text))
		return false;
	memcpy(text, s, n);
	return inet_pton(af, text, out) == 1;
}

int ec1_parse_publish(const char *spec, struct ec1_port *p, const char **why)
{
	*p = (struct ec1_port){.host_addr = htonl(INADDR_LOOPBACK)};
	const char *end = parse_proto(spec, &p->udp, why);
	if (!end)
		return -1;
	const char *ports = spec;
	if (*spec == '[') { /* "[IPV6]:HOST:GUEST" */
		const char *close = memchr(spec, ']', (size_t)(end - spec));
		if (!close || close[1] != ':')
			return *why = "expected [IPV6]:HOST:GUEST", -1;
		if (!parse_addr(spec + 1, close, AF_INET6, p->host_addr6))
			return *why = "the address in brackets is not an IPv6 address", -1;
		p->v6 = true;
		p->host_addr = 0;
		ports = close + 2;
	}
	const char *c2 = NULL, *c1 = NULL; /* the last two colons */
	for (const char *c = ports; c < end; c++)
		if (*c == ':') {
			c1 = c2;
			c2 = c;
		}
	if (!c2 || (p->v6 && c1))
		return *why = "expected [ADDR:]HOST:GUEST", -1;
	const char *host = c1 ? c1 + 1 : ports;
	if (c1 && !parse_addr(ports, c1, AF_INET, &p->host_addr))
		return *why = "the address is neither dotted IPv4 nor IPv6 in brackets", -1;
	if (!parse_port(host, c2, &p->host_port) || !parse_port(c2 + 1, end, &p->guest_port))
		return *why = "ports are 1..65535", -1;
	return 0;
}

/* Whether two published ports' host addresses overlap: one family, the same or a wildcard. */
static bool same_host_addr(const struct ec1_port *a, const struct ec1_port *b)
{
	static const uint8_t any6[16];
	if (a->v6 != b->v6)
		return false;
	if (!a->v6)
		return a->host_addr == b->host_addr || !a->host_addr || !b->host_addr;
	return memcmp(a->host_addr6, b->host_addr6, 16) == 0 || !memcmp(a->host_addr6, any6, 16) ||
	       !memcmp(b->host_addr6, any6, 16);
}

int ec1_parse_allow(const char *spec, struct ec1_allow *a, const char **why)
{
	*a = (struct ec1_allow){0};
	const char *end = parse_proto(spec, &a->udp, why);
	if (!end)
		return -1;
	const char *colon = memchr(spec, ':', (size_t)(end - spec));
	if (!colon || memchr(colon + 1, ':', (size_t)(end - colon - 1)))
		return *why = "expected ADDR:PORT", -1;
	if (!parse_addr(spec, colon, AF_INET, &a->addr))
		return *why = "the address is not a dotted IPv4 address", -1;
	if (!parse_port(colon + 1, end, &a->port))
		return *why = "the port is 1..65535", -1;
	return 0;
}

/* "HOST:GUEST", both 1..65535. */
static int check_port_map(struct ec1_ctx *ctx, const char *field, const char *const *map,
			  size_t count)
{
	if (count && !map)
		return ec1_fail(ctx, EC1_EINVAL, "%s: NULL array with %zu entries", field, count);
	for (size_t i = 0; i < count; i++) {
		struct ec1_port p;
		const char *why;
		/* The plain form: one colon, no address, no protocol. */
		if (!map[i] || strchr(map[i], '/') || strchr(map[i], ':') != strrchr(map[i], ':') ||
		    ec1_parse_publish(map[i], &p, &why) < 0)
			return ec1_fail(ctx, EC1_EINVAL,
					"%s[%zu]: \"%s\": expected HOST:GUEST ports "
					"1..65535",
					field, i, map[i] ? map[i] : "(null)");
	}
	return EC1_OK;
}

/*
 * A guest MAC (or NULL: generated) must be unicast and not all zeroes (the guest's driver takes
 * neither: Linux's virtio-net makes up a random address instead, and the one fixed is lost).
 */
static int check_mac(struct ec1_ctx *ctx, const uint8_t *mac)
{
	if (mac && (mac[0] & 1))
		return ec1_fail(ctx, EC1_EINVAL,
				"network.mac: multicast address (low bit of the first byte set)");
	if (mac && !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return ec1_fail(ctx, EC1_EINVAL,
				"network.mac: 00:00:00:00:00:00 is no station's address");
	return EC1_OK;
}

int ec1_ctx_set_network(struct ec1_ctx *ctx, const struct ec1_network_config *config)
{
	ENTER(ctx);
	if (!config)
		return ec1_fail(ctx, EC1_EINVAL, "network: NULL config");
	if (config->passt_fd >= 0 && config->gvproxy_path)
		return ec1_fail(ctx, EC1_EINVAL,
				"network: passt_fd and gvproxy_path exclude each other");
	if (config->passt_fd >= 0 && fcntl(config->passt_fd, F_GETFD) < 0)
		return ec1_fail(ctx, EC1_EINVAL, "network.passt_fd: %d: %s", config->passt_fd,
				strerror(errno));
	if (config->gvproxy_path) {
		struct stat st;
		if (stat(config->gvproxy_path, &st) < 0)
			return ec1_fail(ctx, EC1_EINVAL, "network.gvproxy_path: %s: %s",
					config->gvproxy_path, strerror(errno));
	}
	int err = check_mac(ctx, config->mac);
	err = err
		      ?: check_port_map(ctx, "network.port_map", config->port_map,
					config->port_map_count);
	if (err)
		return err;
	/* libkrun rejects a port map together with passt or gvproxy: say so here, not at start. */
	if (config->port_map_count && (config->passt_fd >= 0 || config->gvproxy_path))
		return ec1_fail(ctx, EC1_EINVAL,
				"network.port_map: only with the default (TSI) "
				"network, not with passt or gvproxy");
	if (!ctx->ops->set_network)
		return ec1_fail(ctx, EC1_EUNSUPPORTED,
				"network: not supported by the %s backend yet",
				ec1_backend_name(ctx->ops->id));
	return ctx->ops->set_network(ctx, config);
}

int ec1_ctx_set_network_tap(struct ec1_ctx *ctx, const char *iface, const uint8_t *mac)
{
	ENTER(ctx);
	if (!iface || !iface[0] || strlen(iface) >= 16 || strchr(iface, '/'))
		return ec1_fail(ctx, EC1_EINVAL,
				"network.tap: \"%s\": an interface name of 1 to 15 bytes, no '/'",
				iface ? iface : "(null)");
	int err = check_mac(ctx, mac);
	if (err)
		return err;
	if (!ctx->ops->set_network_tap)
		return ec1_fail(ctx, EC1_EUNSUPPORTED,
				"network.tap: not supported by the %s backend",
				ec1_backend_name(ctx->ops->id));
	return ctx->ops->set_network_tap(ctx, iface, mac);
}

/* "[ADDR:]HOST:GUEST[/udp]" entries into ports; the message names field[i]. */
static int parse_publish_list(struct ec1_ctx *ctx, const char *field, const char *const *list,
			      size_t n, struct ec1_port *ports)
{
	if (n && !list)
		return ec1_fail(ctx, EC1_EINVAL, "%s: NULL array with %zu entries", field, n);
	if (n > EC1_MAX_LIST)
		return ec1_fail(ctx, EC1_EINVAL, "%s: %zu entries, at most %d", field, n,
				EC1_MAX_LIST);
	for (size_t i = 0; i < n; i++) {
		const char *why = "NULL entry", *spec = list[i];
		if (!spec || ec1_parse_publish(spec, &ports[i], &why) < 0)
			return ec1_fail(ctx, EC1_EINVAL, "%s[%zu]: \"%s\": %s", field, i,
					spec ? spec : "(null)", why);
		for (size_t j = 0; j < i; j++)
			if (ports[j].host_port == ports[i].host_port &&
			    ports[j].udp == ports[i].udp && same_host_addr(&ports[j], &ports[i]))
				return ec1_fail(ctx, EC1_EINVAL,
						"%s[%zu]: \"%s\": host port %u/%s published twice",
						field, i, spec, ports[i].host_port,
						ports[i].udp ? "udp" : "tcp");
	}
	return EC1_OK;
}

int ec1_ctx_set_network_nat(struct ec1_ctx *ctx, const struct ec1_nat_config *config)
{
	ENTER(ctx);
	if (!config)
		return ec1_fail(ctx, EC1_EINVAL, "network: NULL config");
	struct ec1_port ports[EC1_MAX_LIST];
	int err = check_mac(ctx, config->mac);
	err = err
		      ?: parse_publish_list(ctx, "network.publish", config->publish,
					    config->publish_count, ports);
	if (err)
		return err;
	/*
	 * libslirp carries a connection to the guest in the family it came in, and the NAT's guest
	 * side is IPv4 only: a port on an IPv6 address would take connections it cannot deliver.
	 */
	for (size_t i = 0; i < config->publish_count; i++)
		if (ports[i].v6)
			return ec1_fail(ctx, EC1_EINVAL,
					"network.publish[%zu]: \"%s\": an IPv6 address needs passt "
					"(the NAT's guest side is IPv4)",
					i, config->publish[i]);
	if (!ctx->ops->set_network_nat)
		return ec1_fail(ctx, EC1_EUNSUPPORTED,
				"network: the user-mode NAT is the builtin engine's, not the %s "
				"backend's",
				ec1_backend_name(ctx->ops->id));
	struct ec1_allow allow[EC1_MAX_LIST];
	if (config->allow_count && !config->restricted)
		return ec1_fail(ctx, EC1_EINVAL,
				"network.allow: only with restricted (an unrestricted NAT reaches "
				"everything)");
	if (config->allow_count && !config->allow)
		return ec1_fail(ctx, EC1_EINVAL, "network.allow: NULL array with %zu entries",
				config->allow_count);
	if (config->allow_count > EC1_MAX_LIST)
		return ec1_fail(ctx, EC1_EINVAL, "network.allow: %zu entries, at most %d",
				config->allow_count, EC1_MAX_LIST);
	for (size_t i = 0; i < config->allow_count; i++) {
		const char *why = "NULL entry", *spec = config->allow[i];
		if (!spec || ec1_parse_allow(spec, &allow[i], &why) < 0)
			return ec1_fail(ctx, EC1_EINVAL, "network.allow[%zu]: \"%s\": %s", i,
					spec ? spec : "(null)", why);
	}
	return ctx->ops->set_network_nat(ctx, ports, config->publish_count, allow,
					 config->allow_count, config);
}

int ec1_ctx_set_network_passt(struct ec1_ctx *ctx, const struct ec1_passt_config *config)
{
	ENTER(ctx);
	if (!config)
		return ec1_fail(ctx, EC1_EINVAL, "network.passt: NULL config");
	struct ec1_port ports[EC1_MAX_LIST];
	int err = check_mac(ctx, config->mac);
	err = err
		      ?: parse_publish_list(ctx, "network.publish", config->publish,
					    config->publish_count, ports);
	if (err)
		return err;
	if (!ctx->ops->set_network)
		return ec1_fail(ctx, EC1_EUNSUPPORTED,
				"network.passt: not supported by the %s backend",
				ec1_backend_name(ctx->ops->id));
	struct ec1_passt p;
	if ((err = ec1_passt_start(ctx, config->path, ports, config->publish_count, &p)))
		return err;
	struct ec1_network_config net = {
		.passt_fd = p.fd, .gvproxy_path = NULL, .mac = config->mac};
	if ((err = ctx->ops->set_network(ctx, &net))) {
		ec1_passt_stop(&p);
		return err;
	}
	/* The network now holds p.fd; the context keeps passt until the next network call. */
	ec1_passt_stop(&ctx->passt);
	ctx->passt = p;
	return EC1_OK;
}

/* "A.B.C.D" (at most 15 bytes), or with prefix "A.B.C.D/N" (N 0..32). */
static bool ipv4_text(const char *s, bool prefix)
{
	char buf[20];
	struct in_addr a;
	const char *slash = prefix ? strchr(s, '/') : NULL;
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if ((prefix && !slash) || n >= 16)
		return false;
	memcpy(buf, s, n);
	buf[n] = 0;
	if (inet_pton(AF_INET, buf, &a) != 1)
		return false;
	if (!slash)
		return true;
	const char *p = slash + 1;
	return *p && strlen(p) <= 2 && strspn(p, "0123456789") == strlen(p) && atoi(p) <= 32;
}

int ec1_ctx_set_network_address(struct ec1_ctx *ctx, const char *cidr, const char *gateway,
				const char *dns)
{
	ENTER(ctx);
	if (!ctx->ops->builtin_extras)
		return ec1_fail(ctx, EC1_EUNSUPPORTED,
				"network.address: the builtin engine's; %s configures its guest "
				"itself",
				ec1_backend_name(ctx->ops->id));
	if (cidr && !ipv4_text(cidr, true))
		return ec1_fail(ctx, EC1_EINVAL,
				"network.address: \"%s\": expected ADDR/PREFIX "
				"(IPv4, prefix 0..32)",
				cidr);
	if (!cidr && (gateway || dns))
		return ec1_fail(ctx, EC1_EINVAL,
				"network.address: a gateway or DNS server without an address");
	if (gateway && !ipv4_text(gateway, false))
		return ec1_fail(ctx, EC1_EINVAL,
				"network.gateway: \"%s\": expected an IPv4 "
				"address",
				gateway);
	if (dns && !ipv4_text(dns, false))
		return ec1_fail(ctx, EC1_EINVAL, "network.dns: \"%s\": expected an IPv4 address",
				dns);
	char *c = cidr ? strdup(cidr) : NULL, *g = gateway ? strdup(gateway) : NULL,
	     *d = dns ? strdup(dns) : NULL;
	if ((cidr && !c) || (gateway && !g) || (dns && !d)) {
		free(c);
		free(g);
		free(d);
		return ec1_fail(ctx, EC1_ENOMEM, "network.address: out of memory");
	}
	free(ctx->net.cidr);
	free(ctx->net.gateway);
	free(ctx->net.dns);
	ctx->net.cidr = c;
	ctx->net.gateway = g;
	ctx->net.dns = d;
	return EC1_OK;
}

void ec1_net_reset(struct ec1_ctx *ctx)
{
	if (ctx->net.fd_owned && ctx->net.fd >= 0)
		close(ctx->net.fd);
	if (ctx->net.local_path) {
		unlink(ctx->net.local_path);
		char *slash = strrchr(ctx->net.local_path, '/');
		if (slash) {
			*slash = 0;
			rmdir(ctx->net.local_path);
		}
		free(ctx->net.local_path);
	}
	free(ctx->net.tap);
	ctx->net.fd = -1;
	ctx->net.fd_owned = false;
	ctx->net.local_path = ctx->net.tap = NULL;
	ctx->net.on = false;
	ctx->net.kind = EC1_NET_NAT;
	ctx->net.restricted = false;
	ctx->net.nr_ports = 0;
	ctx->net.nr_allow = 0;
	ec1_passt_stop(&ctx->passt);
}

int ec1_ctx_set_network_none(struct ec1_ctx *ctx)
{
	ENTER(ctx);
	if (!ctx->ops->set_network_nat)
		return ec1_fail(ctx, EC1_EUNSUPPORTED,
				"network: none: not supported by the %s backend",
				ec1_backend_name(ctx->ops->id));
	return ctx->ops->set_network_nat(ctx, NULL, 0, NULL, 0, NULL);
}

int ec1_ctx_set_process(struct ec1_ctx *ctx, const struct ec1_process_config *config)
{
	ENTER(ctx);
	if (!config)
		return ec1_fail(ctx, EC1_EINVAL, "process: NULL config");
	if (!config->exec_path || !*config->exec_path)
		return ec1_fail(ctx, EC1_EINVAL, "process.exec_path: empty");
	if (config->workdir && config->workdir[0] != '/')
		return ec1_fail(ctx, EC1_EINVAL, "process.workdir: \"%s\": must be absolute",
				config->workdir);
	for (size_t i = 0; config->envp && config->envp[i]; i++)
		if (!strchr(config->envp[i], '=') || config->envp[i][0] == '=')
			return ec1_fail(ctx, EC1_EINVAL, "process.envp[%zu]: \"%s\": expected K=V",
					i, config->envp[i]);
	char **argv, **envp = NULL;
	const char *const def_argv[] = {config->exec_path, NULL};
	int err = copy_list(ctx, "process.argv", config->argv ? config->argv : def_argv, SIZE_MAX,
			    &argv);
	if (err)
		return err;
	if (!argv[0]) {
		free_list(argv);
		return ec1_fail(ctx, EC1_EINVAL, "process.argv: empty (argv[0] is required)");
	}
	if (config->envp && (err = copy_list(ctx, "process.envp", config->envp, SIZE_MAX, &envp))) {
		free_list(argv);
		return err;
	}
	char *exec_path = strdup(config->exec_path);
	char *workdir = config->workdir ? strdup(config->workdir) : NULL;
	if (!exec_path || (config->workdir && !workdir)) {
		free(exec_path);
		free(workdir);
		free_list(argv);
		free_list(envp);
		return ec1_fail(ctx, EC1_ENOMEM, "out of memory");
	}
	/* The new process replaces the old one only when the backend takes it. */
	char *old_path = ctx->exec_path, *old_workdir = ctx->workdir;
	char **old_argv = ctx->argv, **old_envp = ctx->envp;
	bool old_set = ctx->process_set;
	ctx->exec_path = exec_path;
	ctx->workdir = workdir;
	ctx->argv = argv;
	ctx->envp = envp;
	ctx->process_set = true;
	if ((err = call(ctx, ctx->ops->set_process))) {
		ctx->exec_path = old_path;
		ctx->workdir = old_workdir;
		ctx->argv = old_argv;
		ctx->envp = old_envp;
		ctx->process_set = old_set;
		old_path = exec_path;
		old_workdir = workdir;
		old_argv = argv;
		old_envp = envp;
	}
	free(old_path);
	free(old_workdir);
	free_list(old_argv);
	free_list(old_envp);
	return err;
}

int ec1_ctx_set_kernel(struct ec1_ctx *ctx, const struct ec1_kernel_config *config)
{
	ENTER(ctx);
	if (!config)
		return ec1_fail(ctx, EC1_EINVAL, "kernel: NULL config");
	if ((unsigned int)config->format > EC1_KERNEL_BZIMAGE)
		return ec1_fail(ctx, EC1_EINVAL, "kernel.format: %d: unknown", (int)config->format);
	int err = check_path(ctx, "kernel.path", config->path, PATH_FILE);
	if (!err && config->initramfs)
		err = check_path(ctx, "kernel.initramfs", config->initramfs, PATH_FILE);
	if (err)
		return err;
	/* The new kernel replaces the old one only when the backend takes it. */
	char *old[3] = {ctx->kernel_path, ctx->initramfs, ctx->cmdline};
	enum ec1_kernel_format old_format = ctx->kernel_format;
	ctx->kernel_path = ctx->initramfs = ctx->cmdline = NULL;
	err = replace_str(ctx, &ctx->kernel_path, config->path);
	err = err ?: replace_str(ctx, &ctx->initramfs, config->initramfs);
	err = err ?: replace_str(ctx, &ctx->cmdline, config->cmdline);
	ctx->kernel_format = config->format;
	if (err || (err = call(ctx, ctx->ops->set_kernel))) {
		char *bad[3] = {ctx->kernel_path, ctx->initramfs, ctx->cmdline};
		for (int i = 0; i < 3; i++)
			free(bad[i]);
		ctx->kernel_path = old[0];
		ctx->initramfs = old[1];
		ctx->cmdline = old[2];
		ctx->kernel_format = old_format;
		return err;
	}
	for (int i = 0; i < 3; i++)
		free(old[i]);
	return EC1_OK;
}

int ec1_ctx_set_sev(struct ec1_ctx *ctx, const struct ec1_sev_config *config)
{
	ENTER(ctx);
	int err = need_feature(ctx, EC1_F_SEV, "set_sev");
	if (err)
		return err;
	if (!config)
		return ec1_fail(ctx, EC1_EINVAL, "sev: NULL config");
	if (config->tee_config_file &&
	    (err = check_path(ctx, "sev.tee_config_file", config->tee_config_file, PATH_FILE)))
		return err;
	return ctx->ops->set_sev ? ctx->ops->set_sev(ctx, config) : EC1_OK;
}

int ec1_ctx_get_shutdown_eventfd(struct ec1_ctx *ctx, int *fd)
{
	ENTER(ctx);
	int err = need_feature(ctx, EC1_F_SHUTDOWN_FD, "get_shutdown_eventfd");
	if (err)
		return err;
	if (!fd)
		return ec1_fail(ctx, EC1_EINVAL, "fd: NULL");
	return ctx->ops->get_shutdown_eventfd(ctx, fd);
}

int ec1_ctx_set_vmnet(struct ec1_ctx *ctx, const struct ec1_vmnet_config *config)
{
	ENTER(ctx);
	if (!config)
		return ec1_fail(ctx, EC1_EINVAL, "vmnet: NULL config");
	int err = ec1_vmnet_check(ctx, config);
	if (err)
		return err;
	/* The variant's offer; a library too old for it says so (its set_vmnet hook). */
	if (!(ctx->ops->features & EC1_F_VMNET) || !ctx->ops->set_vmnet)
		return ec1_fail(ctx, EC1_EVMNET, "vmnet: not available with the %s backend",
				ec1_backend_name(ctx->ops->id));
	bool configured;
	const char *helper = ec1_vmnet_helper_path(config, &configured);
#ifndef __APPLE__
	if (!configured)
		return ec1_fail(ctx, EC1_EVMNET,
				"vmnet: macOS only (vmnet-helper); set helper_path or "
				"EC1_VMNET_HELPER to use a compatible helper here");
#endif
	if (ctx->vmnet.pid)
		return ec1_fail(ctx, EC1_ESTATE, "vmnet: already set for this context");
	if ((err = ec1_vmnet_start(ctx, config, helper, &ctx->vmnet)))
		return err;
	if ((err = call(ctx, ctx->ops->set_vmnet)))
		ec1_vmnet_stop(&ctx->vmnet);
	return err;
}

int ec1_ctx_get_vmnet_info(struct ec1_ctx *ctx, struct ec1_vmnet_info *info)
{
	ENTER(ctx);
	if (!info)
		return ec1_fail(ctx, EC1_EINVAL, "info: NULL");
	if (!ctx->vmnet.pid)
		return ec1_fail(ctx, EC1_ESTATE, "vmnet: not set (call ec1_ctx_set_vmnet first)");
	*info = ctx->vmnet.info;
	return EC1_OK;
}

int ec1_ctx_set_vmnet_shared(struct ec1_ctx *ctx, const char *const *port_map, size_t count)
{
	struct ec1_vmnet_config c = {
		.mode = EC1_VMNET_SHARED, .port_map = port_map, .port_map_count = count};
	return ec1_ctx_set_vmnet(ctx, &c);
}

int ec1_ctx_set_vmnet_bridged(struct ec1_ctx *ctx, const char *iface, const char *const *port_map,
			      size_t count)
{
	struct ec1_vmnet_config c = {.mode = EC1_VMNET_BRIDGED,
				     .shared_interface = iface,
				     .port_map = port_map,
				     .port_map_count = count};
	return ec1_ctx_set_vmnet(ctx, &c);
}

int ec1_ctx_set_vmnet_host(struct ec1_ctx *ctx, bool isolation, const char *const *port_map,
			   size_t count)
{
	struct ec1_vmnet_config c = {.mode = EC1_VMNET_HOST,
				     .enable_isolation = isolation,
				     .port_map = port_map,
				     .port_map_count = count};
	return ec1_ctx_set_vmnet(ctx, &c);
}

static int need_extras(struct ec1_ctx *ctx, const char *call)
{
	if (ctx->ops->builtin_extras)
		return EC1_OK;
	return ec1_fail(ctx, EC1_EUNSUPPORTED, "%s: only with the builtin backend", call);
}

int ec1_ctx_set_stdio(struct ec1_ctx *ctx, int stdin_fd, int stdout_fd, int stderr_fd)
{
	ENTER(ctx);
	int err = need_extras(ctx, "set_stdio");
	if (err)
		return err;
	const int fds[3] = {stdin_fd, stdout_fd, stderr_fd};
	static const char *const names[3] = {"stdin", "stdout", "stderr"};
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0 && fcntl(fds[i], F_GETFD) < 0)
			return ec1_fail(ctx, EC1_EINVAL, "stdio.%s: fd %d: %s", names[i], fds[i],
					strerror(errno));
	memcpy(ctx->stdio, fds, sizeof(fds));
	return EC1_OK;
}

int ec1_ctx_set_timeout(struct ec1_ctx *ctx, uint32_t timeout_ms)
{
	ENTER(ctx);
	int err = need_extras(ctx, "set_timeout");
	if (!err)
		ctx->timeout_ms = timeout_ms;
	return err;
}

int ec1_ctx_set_timing(struct ec1_ctx *ctx, bool enable)
{
	ENTER(ctx);
	int err = need_extras(ctx, "set_timing");
	if (!err)
		ctx->timing = enable;
	return err;
}

int ec1_ctx_set_console(struct ec1_ctx *ctx, bool enable)
{
	ENTER(ctx);
	int err = need_extras(ctx, "set_console");
	if (!err)
		ctx->console = enable;
	return err;
}

int ec1_run(struct ec1_ctx *ctx, int *status)
{
	ENTER(ctx);
	if (!status)
		return ec1_fail(ctx, EC1_EINVAL, "status: NULL");
	if (!ctx->process_set)
		return ec1_fail(ctx, EC1_ESTATE,
				"process: not set (call ec1_ctx_set_process first)");
	ctx->ran = true;
	return ctx->ops->run(ctx, status);
}

void ec1_random_mac(uint8_t mac[6])
{
	if (getrandom(mac, 6, 0) != 6) {
		uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
		memcpy(mac, &t, 6);
	}
	mac[0] = (uint8_t)((mac[0] & 0xfe) | 0x02); /* locally administered, unicast */
}

int ec1_ctx_set_exec_socket(struct ec1_ctx *ctx, const char *path)
{
	ENTER(ctx);
	int err = need_feature(ctx, EC1_F_EXEC, "set_exec_socket");
	err = err ?: check_socket_path(ctx, "exec_socket", path);
	return err ?: replace_str(ctx, &ctx->exec_socket, path);
}

const char *ec1_ctx_exec_socket(const struct ec1_ctx *ctx)
{
	return ctx && ctx->exec_socket ? ctx->exec_socket : "";
}

static void *start_thread(void *arg)
{
	struct ec1_ctx *ctx = arg;
	ctx->bg.err = ctx->ops->run(ctx, &ctx->bg.status);
	uint64_t one = 1;
	if (write(ctx->bg.done_fd, &one, sizeof(one)) < 0)
		abort(); /* an eventfd at 1 takes a write: not reached */
	return NULL;
}

#define EC1_START_READY_MS 120000 /* a boot under TCG takes seconds; this is a hang */

/* A directory of our own for the exec socket: $XDG_RUNTIME_DIR, else /tmp; mode 0700. */
static int private_exec_socket(struct ec1_ctx *ctx)
{
	const char *base = getenv("XDG_RUNTIME_DIR");
	char dir[80];
	if (!base || !*base || strlen(base) > 40 || access(base, W_OK) < 0)
		base = "/tmp";
	snprintf(dir, sizeof(dir), "%s/ec1-exec-XXXXXX", base);
	if (!mkdtemp(dir))
		return ec1_fail(ctx, EC1_EBACKEND, "exec socket: a directory in %s: %s", base,
				strerror(errno));
	char path[108];
	snprintf(path, sizeof(path), "%s/exec.sock", dir);
	ctx->exec_dir = strdup(dir);
	ctx->exec_socket = strdup(path);
	if (!ctx->exec_dir || !ctx->exec_socket) {
		rmdir(dir);
		free(ctx->exec_dir);
		ctx->exec_dir = NULL;
		return ec1_fail(ctx, EC1_ENOMEM, "out of memory");
	}
	return EC1_OK;
}

int ec1_ctx_start(struct ec1_ctx *ctx)
{
	ENTER(ctx);
	int err = need_feature(ctx, EC1_F_EXEC, "start");
	if (err)
		return err;
	if (!ctx->exec_socket && (err = private_exec_socket(ctx)))
		return err;
	int fd;
	if ((err = ctx->ops->get_shutdown_eventfd(ctx, &fd)))
		return err;
	ctx->bg.ready_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ctx->bg.done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ctx->bg.ready_fd < 0 || ctx->bg.done_fd < 0)
		return ec1_fail(ctx, EC1_ENOMEM, "eventfd: %s", strerror(errno));
	ctx->ran = true;
	int e = pthread_create(&ctx->bg.thread, NULL, start_thread, ctx);
	if (e)
		return ec1_fail(ctx, EC1_ENOMEM, "the VM's thread: %s", strerror(e));
	ctx->bg.on = true;
	/*
	 * The guest says when it takes exec requests; one that never does (a hung mount, a broken
	 * guest) does not keep the caller waiting: stopped after EC1_START_READY_MS.
	 */
	struct pollfd p[2] = {{.fd = ctx->bg.ready_fd, .events = POLLIN},
			      {.fd = ctx->bg.done_fd, .events = POLLIN}};
	long deadline = ec1_now_ms() + EC1_START_READY_MS, left;
	int n;
	do {
		left = deadline - ec1_now_ms();
		n = poll(p, 2, left > 0 ? (int)left : 0);
	} while (n < 0 && errno == EINTR);
	if (n == 0) {
		ec1_ctx_stop(ctx, 0, NULL);
		return ec1_fail(ctx, EC1_ETIMEDOUT,
				"start: the guest did not take exec requests within %d s; stopped",
				EC1_START_READY_MS / 1000);
	}
	if (!(p[1].revents & POLLIN))
		return EC1_OK;
	/* It ended before it was ready: its error, or the status it ended with. */
	pthread_join(ctx->bg.thread, NULL);
	ctx->bg.joined = true;
	if (ctx->bg.err)
		return ctx->bg.err; /* the run left its message */
	return ec1_fail(ctx, EC1_EGUEST, "the VM ended (status %d) before it took exec requests",
			ctx->bg.status);
}

int ec1_ctx_wait(struct ec1_ctx *ctx, int *status)
{
	if (!ctx || !status)
		return ec1_fail(ctx, EC1_EINVAL, "status: NULL");
	if (!ctx->bg.on)
		return ec1_fail(ctx, EC1_ESTATE, "wait: the VM was not started (ec1_ctx_start)");
	if (!ctx->bg.joined) {
		pthread_join(ctx->bg.thread, NULL);
		ctx->bg.joined = true;
	}
	if (!ctx->bg.err)
		*status = ctx->bg.status;
	return ctx->bg.err;
}

/* Waits up to ms for the run's thread to end; true when it has. */
static bool ended_within(struct ec1_ctx *ctx, long ms)
{
	struct pollfd p = {.fd = ctx->bg.done_fd, .events = POLLIN};
	long deadline = ec1_now_ms() + ms;
	for (;;) {
		long left = deadline - ec1_now_ms();
		int n = poll(&p, 1, left > 0 ? (int)left : 0);
		if (n > 0)
			return true;
		if (n == 0 || (errno != EINTR))
			return false;
	}
}

int ec1_ctx_stop(struct ec1_ctx *ctx, uint32_t grace_ms, int *status)
{
	if (!ctx)
		return EC1_EINVAL;
	if (!ctx->bg.on)
		return ec1_fail(ctx, EC1_ESTATE, "stop: the VM was not started (ec1_ctx_start)");
	/* term; kill after the grace period; the VM itself 2 s later (run.c's third request). */
	long wait_ms[3] = {(long)grace_ms, 2000, -1};
	for (int i = 0; i < 3 && !ctx->bg.joined; i++) {
		uint64_t one = 1;
		if (write(ctx->shutdown_fd, &one, sizeof(one)) < 0)
			break;
		if (wait_ms[i] >= 0 && ended_within(ctx, wait_ms[i]))
			break;
	}
	int st = 0, err = ec1_ctx_wait(ctx, &st);
	if (status && !err)
		*status = st;
	return err;
}

int ec1_start_enter(struct ec1_ctx *ctx)
{
	int status;
	if (ctx && ctx->ops->start_enter) {
		ENTER(ctx);
		if (!ctx->process_set)
			return ec1_fail(ctx, EC1_ESTATE,
					"process: not set (call ec1_ctx_set_process first)");
		ctx->ran = true;
		fflush(NULL);
		return ctx->ops->start_enter(ctx);
	}
	int err = ec1_run(ctx, &status);
	if (err)
		return err;
	fflush(NULL);
	exit(status);
}
