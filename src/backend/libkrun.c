/*
 * The libkrun backends: the real libkrun (generic, SEV or EFI build) loaded at run time with
 * dlopen. Each ec1 call maps to its krun_* call at once, so libkrun's own errors surface where the
 * caller made the mistake. Functions the loaded library lacks answer EC1_EUNSUPPORTED.
 *
 * Differences from the seed's Go package, on purpose: argv[0] is not passed to krun_set_exec
 * (which takes the arguments after the program name); a port map goes to libkrun only with the
 * default (TSI) network, never with passt or gvproxy; ec1_run() returns the guest's status by
 * running krun_start_enter() in a child process, since krun_start_enter() exits the process.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../guest/abi.h"
#include "../lib/ec1_internal.h"

/* The krun_* functions ec1 uses, with libkrun.h's signatures. */
#define KRUN_FUNCS(X)                                                                              \
	X(set_log_level, int32_t, (uint32_t))                                                      \
	X(create_ctx, int32_t, (void))                                                             \
	X(free_ctx, int32_t, (uint32_t))                                                           \
	X(set_vm_config, int32_t, (uint32_t, uint8_t, uint32_t))                                   \
	X(set_root, int32_t, (uint32_t, const char *))                                             \
	X(set_mapped_volumes, int32_t, (uint32_t, const char *const *))                            \
	X(add_virtiofs, int32_t, (uint32_t, const char *, const char *))                           \
	X(add_disk, int32_t, (uint32_t, const char *, const char *, bool))                         \
	X(add_disk2, int32_t, (uint32_t, const char *, const char *, uint32_t, bool))              \
	X(add_vsock_port, int32_t, (uint32_t, uint32_t, const char *))                             \
	X(add_vsock_port2, int32_t, (uint32_t, uint32_t, const char *, bool))                      \
	X(set_passt_fd, int32_t, (uint32_t, int))                                                  \
	X(set_gvproxy_path, int32_t, (uint32_t, const char *))                                     \
	X(set_net_mac, int32_t, (uint32_t, const uint8_t *))                                       \
	X(set_port_map, int32_t, (uint32_t, const char *const *))                                  \
	X(set_workdir, int32_t, (uint32_t, const char *))                                          \
	X(set_exec, int32_t, (uint32_t, const char *, const char *const *, const char *const *))   \
	X(set_kernel, int32_t, (uint32_t, const char *, uint32_t, const char *, const char *))     \
	X(set_tee_config_file, int32_t, (uint32_t, const char *))                                  \
	X(get_shutdown_eventfd, int32_t, (uint32_t))                                               \
	X(add_net_unixgram, int32_t, (uint32_t, const char *, int, uint8_t *, uint32_t, uint32_t)) \
	X(start_enter, int32_t, (uint32_t))

struct krun {
	void *dl;
	uint32_t id;
	bool tee_set;	   /* krun_set_tee_config_file succeeded (SEV) */
	bool workdir_set;  /* krun_set_workdir was called: a later process without one resets it */
	bool nic_set;	   /* passt or gvproxy given: libkrun cannot go back to TSI */
	bool port_map_set; /* krun_set_port_map was called: libkrun cannot go back to "every port"
			    */
#define FIELD(name, ret, args) ret(*name) args;
	KRUN_FUNCS(FIELD)
#undef FIELD
};

static const char *soname(enum ec1_backend b)
{
	switch (b) {
	case EC1_BACKEND_LIBKRUN_SEV:
		return "libkrun-sev.so.1";
	case EC1_BACKEND_LIBKRUN_EFI:
		return "libkrun-efi.so.1";
	default:
		return "libkrun.so.1";
	}
}

/* A libkrun return value: 0 and positive pass, negative errno becomes EC1_EBACKEND. */
static int krun_result(struct ec1_ctx *ctx, const char *call, int32_t r)
{
	if (r >= 0)
		return EC1_OK;
	ctx->backend_errno = r;
	return ec1_fail(ctx, EC1_EBACKEND, "krun_%s: %s (%d)", call, strerror(-r), r);
}

static int missing(struct ec1_ctx *ctx, const char *call)
{
	return ec1_fail(ctx, EC1_EUNSUPPORTED, "krun_%s: not in the loaded %s", call,
			soname(ctx->ops->id));
}

#define K(ctx) ((struct krun *)(ctx)->backend)
/* Calls krun_<fn> if the library has it. */
#define KCALL(ctx, fn, ...)                                                        \
	(K(ctx)->fn ? krun_result((ctx), #fn, K(ctx)->fn(K(ctx)->id, __VA_ARGS__)) \
		    : missing((ctx), #fn))

/* Whether the library behind handle dl is opened here for the first time (dlopen gives one
 * handle per library). */
static bool first_open(void *dl)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static void *seen[8];
	static unsigned int n;
	bool first = true;
	pthread_mutex_lock(&lock);
	for (unsigned int i = 0; i < n && first; i++)
		first = seen[i] != dl;
	if (first && n < 8)
		seen[n++] = dl;
	pthread_mutex_unlock(&lock);
	return first;
}

static int libkrun_open(struct ec1_ctx *ctx)
{
	/* EC1_LIBKRUN_PATH: load this file instead (tests use a recording fake). */
	const char *path = getenv("EC1_LIBKRUN_PATH");
	struct krun *k = calloc(1, sizeof(*k));
	if (!k)
		return EC1_ENOMEM;
	k->dl = dlopen(path && *path ? path : soname(ctx->ops->id), RTLD_NOW | RTLD_LOCAL);
	if (!k->dl) {
		free(k);
		return EC1_ENOTAVAIL;
	}
#define LOAD(name, ret, args) *(void **)&k->name = dlsym(k->dl, "krun_" #name);
	KRUN_FUNCS(LOAD)
#undef LOAD
	if (!k->create_ctx || !k->free_ctx || !k->start_enter) {
		dlclose(k->dl);
		free(k);
		return EC1_ENOTAVAIL;
	}
	/*
	 * Each libkrun library has a logger of its own that may be initialised once: the level
	 * asked for (ec1_set_log_level), else ec1's default, WARN, goes to each library the first
	 * time it is opened, so that its errors are not silent.
	 */
	int level = ec1_log_level_requested();
	if (k->set_log_level && first_open(k->dl)) {
		int32_t r = k->set_log_level((uint32_t)(level >= 0 ? level : EC1_LOG_WARN));
		if (r < 0)
			fprintf(stderr,
				"ec1: krun_set_log_level: %s (%d); libkrun logs as it was\n",
				strerror(-r), r);
	}
	int32_t id = k->create_ctx();
	if (id < 0) {
		dlclose(k->dl);
		free(k);
		return EC1_EBACKEND;
	}
	k->id = (uint32_t)id;
	ctx->backend = k;
	return EC1_OK;
}

static void libkrun_close(struct ec1_ctx *ctx)
{
	struct krun *k = K(ctx);
	if (!k)
		return;
	k->free_ctx(k->id);
	/* The library stays loaded: libkrun keeps process-wide state (its logger, threads). */
	free(k);
	ctx->backend = NULL;
}

static int libkrun_set_vm(struct ec1_ctx *ctx)
{
	return KCALL(ctx, set_vm_config, ctx->vm.num_vcpus, ctx->vm.ram_mib);
}

static int libkrun_set_root(struct ec1_ctx *ctx)
{
	return KCALL(ctx, set_root, ctx->root);
}

static int libkrun_set_mapped_volumes(struct ec1_ctx *ctx)
{
	char *list[EC1_MAX_LIST + 1] = {0};
	int err = EC1_OK;
	for (size_t i = 0; i < ctx->nr_volumes && !err; i++) {
		const struct ec1_volume *v = &ctx->volumes[i];
		if (v->flags)
			err = ec1_fail(ctx, EC1_EUNSUPPORTED,
				       "volumes[%zu]: libkrun maps volumes read-write, with no "
				       "options (ro, guest-ids)",
				       i);
		else if (asprintf(&list[i], "%s:%s", v->host, v->guest) < 0)
			list[i] = NULL, err = ec1_fail(ctx, EC1_ENOMEM, "volumes: out of memory");
	}
	if (!err)
		err = KCALL(ctx, set_mapped_volumes, (const char *const *)list);
	for (size_t i = 0; i < ctx->nr_volumes; i++)
		free(list[i]);
	return err;
}

static int libkrun_add_virtiofs(struct ec1_ctx *ctx, const char *tag, const char *dir)
{
	return KCALL(ctx, add_virtiofs, tag, dir);
}

static int libkrun_add_disk(struct ec1_ctx *ctx, const struct ec1_disk_config *d)
{
	if (K(ctx)->add_disk2)
		return KCALL(ctx, add_disk2, d->block_id, d->path, (uint32_t)d->format,
			     d->read_only);
	if (d->format != EC1_DISK_RAW)
		return missing(ctx, "add_disk2 (needed for qcow2)");
	return KCALL(ctx, add_disk, d->block_id, d->path, d->read_only);
}

/* krun_add_vsock_port2 (libkrun >= 1.10); the older call knows no listen. */
static int libkrun_add_vsock_port(struct ec1_ctx *ctx, uint32_t port, const char *path, bool listen)
{
	if (K(ctx)->add_vsock_port2)
		return KCALL(ctx, add_vsock_port2, port, path, listen);
	if (listen)
		return missing(ctx, "add_vsock_port2 (needed for listen)");
	return KCALL(ctx, add_vsock_port, port, path);
}

static int libkrun_set_network(struct ec1_ctx *ctx, const struct ec1_network_config *n)
{
	/*
	 * libkrun keeps what an earlier call set and has no call to undo it: a network that would
	 * silently keep the old one's interface or port map is refused, naming what stays.
	 */
	bool nic = n->passt_fd >= 0 || n->gvproxy_path;
	if (K(ctx)->nic_set && !nic)
		return ec1_fail(ctx, EC1_ESTATE,
				"network: libkrun cannot go back to TSI once passt or gvproxy was "
				"given (a new context can)");
	if (K(ctx)->port_map_set && !nic && !n->port_map)
		return ec1_fail(
			ctx, EC1_ESTATE,
			"network.port_map: NULL after a port map was set: libkrun cannot go "
			"back to its default (every port the guest listens on); pass the list");
	int err = EC1_OK;
	if (n->passt_fd >= 0)
		err = KCALL(ctx, set_passt_fd, n->passt_fd);
	else if (n->gvproxy_path)
		err = KCALL(ctx, set_gvproxy_path, n->gvproxy_path);
	/*
	 * A virtio-net interface (passt, gvproxy) without a MAC: libkrun would give every VM the
	 * same one (5a:94:ef:e4:0c:ee); ec1 generates one, as ec1.h says.
	 */
	uint8_t mac[6];
	K(ctx)->nic_set |= nic && !err;
	if (nic && !n->mac)
		ec1_random_mac(mac);
	if (!err && (n->mac || nic))
		err = KCALL(ctx, set_net_mac, n->mac ? n->mac : mac);
	/*
	 * TSI's port map: without a krun_set_port_map call libkrun exposes every port the guest
	 * listens on; an empty list (port_map non-NULL, count 0) exposes none.
	 */
	if (!err && !nic && n->port_map) {
		/* ec1_ctx_set_network already refused a port map with passt or gvproxy. */
		const char **map = calloc(n->port_map_count + 1, sizeof(char *));
		if (!map)
			return ec1_fail(ctx, EC1_ENOMEM, "out of memory");
		memcpy(map, n->port_map, n->port_map_count * sizeof(char *));
		err = KCALL(ctx, set_port_map, map);
		free(map);
		K(ctx)->port_map_set |= !err;
	}
	return err;
}

/*
 * libkrun packs the program, its arguments, environment and working directory into the guest
 * kernel's command line (krun_set_exec: each entry wrapped in double quotes, joined by spaces),
 * which is 2,048 bytes on x86 (COMMAND_LINE_SIZE) and holds libkrun's own options too. An entry
 * with a double quote would end its quoting early and spill into the kernel's options; too much
 * would be cut. Both are refused here, naming the entry.
 */
#define LIBKRUN_CMDLINE_BUDGET 1536

static int check_packing(struct ec1_ctx *ctx, const char *const *envp)
{
	size_t total = strlen(ctx->exec_path) + 12 + (ctx->workdir ? strlen(ctx->workdir) + 14 : 0);
	const char *what[2] = {"process.argv", "process.envp"};
	const char *const *lists[2] = {(const char *const *)ctx->argv + 1, envp};
	if (strchr(ctx->exec_path, '"') || (ctx->workdir && strchr(ctx->workdir, '"')))
		return ec1_fail(ctx, EC1_EINVAL,
				"process.%s: contains a double quote, which libkrun cannot pass "
				"(it packs the process into the guest kernel's command line)",
				strchr(ctx->exec_path, '"') ? "exec_path" : "workdir");
	for (int l = 0; l < 2; l++) {
		for (size_t i = 0; lists[l][i]; i++) {
			if (strchr(lists[l][i], '"'))
				return ec1_fail(ctx, EC1_EINVAL,
						"%s[%zu]: contains a double quote, which libkrun "
						"cannot pass (it packs the process into the guest "
						"kernel's command line, each entry in quotes)",
						what[l], i + (l == 0));
			total += strlen(lists[l][i]) + 3;
		}
	}
	if (total > LIBKRUN_CMDLINE_BUDGET)
		return ec1_fail(
			ctx, EC1_EINVAL,
			"process: program, arguments, environment and workdir take %zu bytes "
			"of the guest kernel's command line, where libkrun packs them; at most "
			"%d fit (2,048 bytes on x86, with libkrun's own options)",
			total, LIBKRUN_CMDLINE_BUDGET);
	return EC1_OK;
}

static int libkrun_set_process(struct ec1_ctx *ctx)
{
	/*
	 * krun_set_exec takes the arguments after the program name: skip argv[0]. Given no
	 * environment (NULL), libkrun copies the whole host environment into the guest: ec1's
	 * default (PATH, HOME=/, TERM, as on the builtin engine) goes instead.
	 */
	static const char *const default_env[] = EC1_ABI_DEFAULT_ENV;
	const char *const *envp = ctx->envp ? (const char *const *)ctx->envp : default_env;
	int err = check_packing(ctx, envp);
	if (err)
		return err;
	err = KCALL(ctx, set_exec, ctx->exec_path, (const char *const *)ctx->argv + 1, envp);
	/* A process without a workdir after one with: "/" again, not the old one libkrun keeps. */
	if (!err && (ctx->workdir || K(ctx)->workdir_set))
		err = KCALL(ctx, set_workdir, ctx->workdir ? ctx->workdir : "/");
	if (!err && ctx->workdir)
		K(ctx)->workdir_set = true;
	return err;
}

static int libkrun_set_kernel(struct ec1_ctx *ctx)
{
	if (ctx->kernel_format == EC1_KERNEL_BZIMAGE)
		return ec1_fail(ctx, EC1_EUNSUPPORTED,
				"kernel.format: libkrun boots no bzImage (its RAW is a flat image "
				"entered at 0x80000000; ELF takes a vmlinux)");
	return KCALL(ctx, set_kernel, ctx->kernel_path, (uint32_t)ctx->kernel_format,
		     ctx->initramfs, ctx->cmdline);
}

/* libkrun-sev starts no SEV guest without a TEE configuration: refused here, not at start. */
static int libkrun_set_sev(struct ec1_ctx *ctx, const struct ec1_sev_config *sev)
{
	if (!sev->tee_config_file)
		return ec1_fail(
			ctx, EC1_EINVAL,
			"sev.tee_config_file: libkrun-sev needs one (it starts no SEV guest "
			"without it)");
	int err = KCALL(ctx, set_tee_config_file, sev->tee_config_file);
	K(ctx)->tee_set = !err;
	return err;
}

/* Before start: what libkrun would otherwise only find inside krun_start_enter. */
static int check_startable(struct ec1_ctx *ctx)
{
	if (ctx->ops->id == EC1_BACKEND_LIBKRUN_SEV && !K(ctx)->tee_set)
		return ec1_fail(ctx, EC1_EINVAL,
				"sev: no TEE configuration file set (ec1_ctx_set_sev): libkrun-sev "
				"starts no guest without one");
	return EC1_OK;
}

static int libkrun_shutdown_eventfd(struct ec1_ctx *ctx, int *fd)
{
	struct krun *k = K(ctx);
	if (!k->get_shutdown_eventfd)
		return missing(ctx, "get_shutdown_eventfd");
	int32_t r = k->get_shutdown_eventfd(k->id);
	if (r < 0)
		return krun_result(ctx, "get_shutdown_eventfd", r);
	*fd = r;
	return EC1_OK;
}

/*
 * vmnet: a virtio-net device on our end of the helper's datagram socket (raw Ethernet frames, one
 * per datagram, no virtio-net header, no offloads) with the MAC vmnet assigned. The seed handed
 * this socket to krun_set_passt_fd, which expects passt's length-prefixed stream.
 */
static int libkrun_set_vmnet(struct ec1_ctx *ctx)
{
	if (!K(ctx)->add_net_unixgram)
		return ec1_fail(ctx, EC1_EUNSUPPORTED,
				"vmnet: krun_add_net_unixgram is not in the loaded %s (vmnet needs "
				"libkrun 1.15 or later)",
				soname(ctx->ops->id));
	/* libkrun owns the fd it is given; the context keeps its own until ec1_ctx_free. */
	int fd = fcntl(ctx->vmnet.fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return ec1_fail(ctx, EC1_EBACKEND, "vmnet: dup: %s", strerror(errno));
	uint8_t mac[6];
	memcpy(mac, ctx->vmnet.info.mac, sizeof(mac));
	int err = KCALL(ctx, add_net_unixgram, NULL, fd, mac, 0, 0);
	if (err)
		close(fd);
	return err;
}

/* krun_start_enter exits the process: run it in a child and return the child's status. */
static int libkrun_run(struct ec1_ctx *ctx, int *status)
{
	struct krun *k = K(ctx);
	int err = check_startable(ctx);
	if (err)
		return err;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return ec1_fail(ctx, EC1_EBACKEND, "fork: %s", strerror(errno));
	if (pid == 0) {
		int32_t r = k->start_enter(k->id);
		/* Only reached when libkrun could not start the VM. */
		fprintf(stderr, "ec1: krun_start_enter: %s (%d)\n", strerror(-r), r);
		_exit(125);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return ec1_fail(ctx, EC1_EBACKEND, "waitpid: %s", strerror(errno));
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return EC1_OK;
}

static int libkrun_start_enter(struct ec1_ctx *ctx)
{
	struct krun *k = K(ctx);
	int err = check_startable(ctx);
	if (err)
		return err;
	return krun_result(ctx, "start_enter", k->start_enter(k->id));
}

#define LIBKRUN_OPS(backend, feats)                                                             \
	{                                                                                       \
		.id = (backend), .features = (feats), .open = libkrun_open,                     \
		.close = libkrun_close, .set_vm = libkrun_set_vm, .set_root = libkrun_set_root, \
		.set_mapped_volumes = libkrun_set_mapped_volumes,                               \
		.add_virtiofs = libkrun_add_virtiofs, .add_disk = libkrun_add_disk,             \
		.add_vsock_port = libkrun_add_vsock_port, .set_network = libkrun_set_network,   \
		.set_process = libkrun_set_process, .set_kernel = libkrun_set_kernel,           \
		.set_sev = libkrun_set_sev, .get_shutdown_eventfd = libkrun_shutdown_eventfd,   \
		.set_vmnet = libkrun_set_vmnet, .run = libkrun_run,                             \
		.start_enter = libkrun_start_enter,                                             \
	}

/*
 * SEED.md's availability table. Its "VMNet" column is the generic build with vmnet-helper; ec1
 * offers vmnet with libkrun-efi too, where vmnet can work as well (krunkit pairs the two).
 */
const struct ec1_backend_ops ec1_backend_libkrun =
	LIBKRUN_OPS(EC1_BACKEND_LIBKRUN, EC1_F_ROOT | EC1_F_VOLUMES | EC1_F_VMNET | EC1_F_DISKS |
						 EC1_F_NETWORK | EC1_F_VSOCK);
const struct ec1_backend_ops ec1_backend_libkrun_sev =
	LIBKRUN_OPS(EC1_BACKEND_LIBKRUN_SEV, EC1_F_SEV | EC1_F_DISKS | EC1_F_NETWORK | EC1_F_VSOCK);
/*
 * krun_get_shutdown_eventfd works in macOS builds of libkrun only (libkrun-efi existed there
 * alone); on Linux every variant answers -EINVAL, so the capability is not claimed here.
 */
#ifdef __APPLE__
#define LIBKRUN_EFI_SHUTDOWN_FD EC1_F_SHUTDOWN_FD
#else
#define LIBKRUN_EFI_SHUTDOWN_FD 0u
#endif
const struct ec1_backend_ops ec1_backend_libkrun_efi = LIBKRUN_OPS(
	EC1_BACKEND_LIBKRUN_EFI, EC1_F_ROOT | EC1_F_VOLUMES | LIBKRUN_EFI_SHUTDOWN_FD |
					 EC1_F_VMNET | EC1_F_DISKS | EC1_F_NETWORK | EC1_F_VSOCK);
