/*
 * The libkrun backends: the real libkrun (generic, SEV or EFI build) loaded at run time with
 * dlopen.
 *
 * Each ec1 call checks what it can at once (the loaded library has the krun_* call it needs, the
 * variant takes the option) and keeps its setting in the context; at start a fresh libkrun
 * context gets the whole configuration, each call once, in one order (ec1_krun_enter). libkrun
 * keeps what a call set and has no call to undo it: applying everything at the end is how a
 * second ec1 call replaces the first (a process without a workdir, a network without a MAC or
 * port map) instead of leaving the old setting behind.
 *
 * ec1_run() starts the VM in a clean process: the helper ec1-krun (src/backend/krun_helper.c),
 * exec'd, one thread, since krun_start_enter() never returns and libkrun's threads must not run
 * in a forked copy of a threaded process (POSIX leaves that undefined; every Go program is one).
 *
 * Volumes: libkrun's krun_set_mapped_volumes answers -EINVAL since 1.8 (before, it worked on
 * macOS alone). ec1 gives each volume and the caller's root a virtio-fs device of its own
 * (krun_add_virtiofs; krun_add_virtiofs3 read-only, libkrun >= 1.18) and starts the guest from a
 * staging root of its own: ec1's init, run by libkrun's init as the workload, mounts them, makes
 * the caller's root "/" and executes the process (guest/abi.h, EC1_ABI_KRUN_STAGE).
 */
#include "libkrun.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../guest/abi.h"
#include "../vmm/disk/disk.h"
#include "../vmm/initramfs.h"
#include "../vmm/vm.h"

static void remove_stage(const char *dir);

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

/* The file to load: EC1_LIBKRUN_PATH (tests use recording fakes), else the variant's soname. */
static const char *lib_file(enum ec1_backend b)
{
	const char *path = getenv("EC1_LIBKRUN_PATH");
	return path && *path ? path : soname(b);
}

/* A libkrun return value: 0 and positive pass, negative errno becomes EC1_EBACKEND. */
static int krun_result(struct ec1_ctx *ctx, const char *call, int32_t r)
{
	if (r >= 0)
		return EC1_OK;
	ctx->backend_errno = r;
	return ec1_fail(ctx, EC1_EBACKEND, "krun_%s: %s (%d)", call, strerror(-r), r);
}

static int missing(struct ec1_ctx *ctx, const char *call, const char *why)
{
	return ec1_fail(ctx, EC1_EUNSUPPORTED, "krun_%s: not in the loaded %s%s", call,
			soname(ctx->ops->id), why);
}

/* Calls krun_<fn> (the caller checked the library has it). */
#define KCALL(ctx, fn, ...) krun_result((ctx), #fn, K(ctx)->fn(K(ctx)->id, __VA_ARGS__))

/*
 * What a loaded library can do of what its variant offers: a call ec1 needs for a capability
 * missing from it (an older libkrun) takes the capability away.
 */
static unsigned int lib_features(const struct krun *k, unsigned int offered)
{
	unsigned int f = offered;
	if (!k->set_root)
		f &= ~EC1_F_ROOT;
	if (!k->add_virtiofs)
		f &= ~EC1_F_VOLUMES;
	if (!k->add_disk && !k->add_disk2)
		f &= ~EC1_F_DISKS;
	if (!k->add_vsock_port && !k->add_vsock_port2)
		f &= ~EC1_F_VSOCK;
	if (!k->add_net_unixgram)
		f &= ~EC1_F_VMNET;
	if (!k->set_port_map && !k->set_passt_fd && !k->set_gvproxy_path)
		f &= ~EC1_F_NETWORK;
	if (!k->set_tee_config_file)
		f &= ~EC1_F_SEV;
	if (!k->get_shutdown_eventfd)
		f &= ~EC1_F_SHUTDOWN_FD;
	return f;
}

static void load_funcs(struct krun *k)
{
#define LOAD(name, ret, args) *(void **)&k->name = dlsym(k->dl, "krun_" #name);
	KRUN_FUNCS(LOAD)
#undef LOAD
}

/*
 * The library's version from its file's name (libkrun.so.1.17.0 -> "1.17.0", the links point
 * there), "" when the name does not say.
 */
static void lib_version(void *dl, char *out, size_t size)
{
	struct link_map *lm = NULL;
	char real[4096];
	*out = 0;
	if (dlinfo(dl, RTLD_DI_LINKMAP, &lm) != 0 || !lm || !lm->l_name ||
	    !realpath(lm->l_name, real))
		return;
	const char *base = strrchr(real, '/') ? strrchr(real, '/') + 1 : real;
	const char *so = strstr(base, ".so.");
	if (so && strchr(so + 4, '.') && strspn(so + 4, "0123456789.") == strlen(so + 4))
		snprintf(out, size, "%.31s", so + 4);
}

/* The variant's library as installed here: features and version, looked up once. */
struct installed {
	bool looked, found;
	unsigned int features;
	char version[32];
};

static const struct installed *installed(enum ec1_backend b, unsigned int offered)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static struct installed seen[3];
	static char path_seen[3][256];
	int i = b == EC1_BACKEND_LIBKRUN_SEV ? 1 : b == EC1_BACKEND_LIBKRUN_EFI ? 2 : 0;
	pthread_mutex_lock(&lock);
	/* EC1_LIBKRUN_PATH may change between calls (tests): looked up again then. */
	if (!seen[i].looked || strncmp(path_seen[i], lib_file(b), sizeof(path_seen[i])) != 0) {
		struct krun k = {0};
		snprintf(path_seen[i], sizeof(path_seen[i]), "%s", lib_file(b));
		seen[i] = (struct installed){.looked = true};
		if ((k.dl = dlopen(lib_file(b), RTLD_NOW | RTLD_LOCAL))) {
			load_funcs(&k);
			seen[i].found = k.create_ctx && k.start_enter;
			seen[i].features = lib_features(&k, offered);
			lib_version(k.dl, seen[i].version, sizeof(seen[i].version));
			/* Left loaded: libkrun keeps process-wide state once used. */
		}
	}
	const struct installed *r = &seen[i];
	pthread_mutex_unlock(&lock);
	return r;
}

static unsigned int ec1_libkrun_capabilities(enum ec1_backend b, unsigned int offered)
{
	const struct installed *in = installed(b, offered);
	return in->found ? in->features : offered;
}

static const char *ec1_libkrun_version(enum ec1_backend b, unsigned int offered)
{
	const struct installed *in = installed(b, offered);
	return in->found ? in->version : NULL;
}

/* Whether the library behind handle dl is opened here for the first time. */
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
	struct krun *k = calloc(1, sizeof(*k));
	if (!k)
		return EC1_ENOMEM;
	k->net.passt_fd = -1;
	k->dl = dlopen(lib_file(ctx->ops->id), RTLD_NOW | RTLD_LOCAL);
	if (!k->dl) {
		free(k);
		return EC1_ENOTAVAIL;
	}
	load_funcs(k);
	if (!k->create_ctx || !k->free_ctx || !k->start_enter || !k->set_exec ||
	    !k->set_vm_config) {
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
	ctx->features = lib_features(k, ctx->features);
	ctx->backend = k;
	return EC1_OK;
}

static void free_map(char **map)
{
	for (size_t i = 0; map && map[i]; i++)
		free(map[i]);
	free(map);
}

static void libkrun_close(struct ec1_ctx *ctx)
{
	struct krun *k = K(ctx);
	if (!k)
		return;
	if (k->have_ctx)
		k->free_ctx(k->id);
	/* The library stays loaded: libkrun keeps process-wide state (its logger, threads). */
	free(k->net.gvproxy_path);
	free_map(k->net.map);
	free(k->tee_config_file);
	if (k->stage)
		remove_stage(k->stage);
	free(k->stage);
	free(k);
	ctx->backend = NULL;
}

/* The loaded library's version for messages: " (1.17.0)", or "". */
static const char *version_note(struct ec1_ctx *ctx)
{
	static __thread char buf[48];
	const char *v = ec1_libkrun_version(ctx->ops->id, ctx->ops->features);
	snprintf(buf, sizeof(buf), "%s%s%s", v && *v ? " (" : "", v && *v ? v : "",
		 v && *v ? ")" : "");
	return buf;
}

/* A share's options on libkrun: ro needs krun_add_virtiofs3 (1.18); guest-ids is ec1's own. */
static int check_share_flags(struct ec1_ctx *ctx, const char *field, unsigned int flags)
{
	if (flags & EC1_SHARE_GUEST_IDS)
		return ec1_fail(ctx, EC1_EUNSUPPORTED,
				"%s: guest-ids: the builtin engine's option (libkrun's virtio-fs "
				"has no such mode)",
				field);
	if ((flags & EC1_SHARE_READ_ONLY) && !K(ctx)->add_virtiofs3)
		return ec1_fail(ctx, EC1_EUNSUPPORTED,
				"%s: ro needs krun_add_virtiofs3 (libkrun 1.18 or later); the "
				"loaded %s%s has none",
				field, soname(ctx->ops->id), version_note(ctx));
	return EC1_OK;
}

static int libkrun_set_root_flags(struct ec1_ctx *ctx)
{
	return check_share_flags(ctx, "root.flags", ctx->root_flags);
}

static int libkrun_set_mapped_volumes(struct ec1_ctx *ctx)
{
	if (ctx->ops->id == EC1_BACKEND_LIBKRUN_EFI && ctx->nr_volumes)
		return ec1_fail(ctx, EC1_EUNSUPPORTED,
				"volumes: libkrun-efi boots the guest's own system, whose init ec1 "
				"does not control: give directories with ec1_ctx_add_virtiofs and "
				"mount their tags in the guest");
	for (size_t i = 0; i < ctx->nr_volumes; i++) {
		char field[32];
		snprintf(field, sizeof(field), "volumes[%zu]", i);
		int err = check_share_flags(ctx, field, ctx->volumes[i].flags);
		if (err)
			return err;
	}
	return EC1_OK;
}

static int libkrun_add_disk(struct ec1_ctx *ctx, const struct ec1_disk_config *d)
{
	if (d->format != EC1_DISK_RAW && !K(ctx)->add_disk2)
		return missing(ctx, "add_disk2", " (needed for qcow2)");
	return EC1_OK;
}

/* Direct I/O and sync=none are krun_add_disk3's (libkrun >= 1.19); backing files libkrun's own. */
static int libkrun_set_disk_flags(struct ec1_ctx *ctx, const struct ec1_disk *d, unsigned int flags)
{
	if ((flags & (EC1_DISK_DIRECT_IO | EC1_DISK_NO_FLUSH)) && !K(ctx)->add_disk3)
		return ec1_fail(ctx, EC1_EUNSUPPORTED,
				"disk_flags: disk \"%s\": %s needs krun_add_disk3 (libkrun 1.19 or "
				"later); the loaded %s%s has none",
				d->block_id,
				flags & EC1_DISK_DIRECT_IO ? "direct I/O" : "sync=none",
				soname(ctx->ops->id), version_note(ctx));
	return EC1_OK;
}

/*
 * libkrun opens every file a qcow2 image names (its backing chain, an external data file) and
 * gives the guest what they hold, so an image from elsewhere, or a raw one a guest rewrote as
 * qcow2 and then probed, could hand the guest any host file. As on the builtin engine, an image
 * that names a backing file is taken only where the caller allowed backing files
 * (EC1_DISK_ALLOW_BACKING), and one with an external data file never (the builtin engine has
 * none). Checked at the start, on the image as it is then.
 */
static int check_disk_files(struct ec1_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nr_disks; i++) {
		const struct ec1_disk *d = &ctx->disks[i];
		if (d->format != EC1_DISK_QCOW2)
			continue;
		uint8_t first[4096];
		int fd = open(d->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		ssize_t n = fd < 0 ? -1 : pread(fd, first, sizeof(first), 0);
		if (fd >= 0)
			close(fd);
		/* Not readable, or no qcow2 header: libkrun says so itself. */
		if (n < 4 || memcmp(first, "QFI\xfb", 4) != 0)
			continue;
		char name[1024], msg[256];
		bool data_file;
		if (disk_qcow2_refs(first, (size_t)n, name, sizeof(name), &data_file, msg,
				    sizeof(msg)) < 0)
			return ec1_fail(ctx, EC1_EINVAL, "disk \"%s\": %s: %s", d->block_id,
					d->path, msg);
		if (data_file)
			return ec1_fail(
				ctx, EC1_EUNSUPPORTED,
				"disk \"%s\": %s: the image keeps its data in an external "
				"file, which libkrun would open for the guest; ec1 takes no "
				"such image",
				d->block_id, d->path);
		if (name[0] && !(d->flags & EC1_DISK_ALLOW_BACKING))
			return ec1_fail(
				ctx, EC1_EINVAL,
				"disk \"%s\": %s: the image names a backing file (%s), "
				"which libkrun would open for the guest: allow backing files "
				"to use it (EC1_DISK_ALLOW_BACKING; --disk PATH,backing)",
				d->block_id, d->path, name);
	}
	return EC1_OK;
}

/* krun_add_vsock_port2 (libkrun >= 1.10); the older call knows no listen. */
static int libkrun_add_vsock_port(struct ec1_ctx *ctx, uint32_t port, const char *path, bool listen)
{
	(void)port;
	(void)path;
	if (listen && !K(ctx)->add_vsock_port2)
		return missing(ctx, "add_vsock_port2", " (needed for listen)");
	if (!listen && !K(ctx)->add_vsock_port && !K(ctx)->add_vsock_port2)
		return missing(ctx, "add_vsock_port", "");
	return EC1_OK;
}

/* The network, kept whole (replacing the last one) and applied at start. */
static int libkrun_set_network(struct ec1_ctx *ctx, const struct ec1_network_config *n)
{
	struct krun *k = K(ctx);
	bool nic = n->passt_fd >= 0 || n->gvproxy_path;
	if (n->passt_fd >= 0 && !k->set_passt_fd)
		return missing(ctx, "set_passt_fd", "");
	if (n->gvproxy_path && !k->set_gvproxy_path)
		return missing(ctx, "set_gvproxy_path", "");
	if ((n->mac || nic) && !k->set_net_mac)
		return missing(ctx, "set_net_mac", "");
	if (!nic && n->port_map && !k->set_port_map)
		return missing(ctx, "set_port_map", "");
	char *gv = n->gvproxy_path ? strdup(n->gvproxy_path) : NULL;
	/* TSI's port map: NULL keeps libkrun's default (every port the guest listens on). */
	char **map = !nic && n->port_map ? calloc(n->port_map_count + 1, sizeof(char *)) : NULL;
	bool oom = (n->gvproxy_path && !gv) || (!nic && n->port_map && !map);
	for (size_t i = 0; map && i < n->port_map_count && !oom; i++)
		oom = !(map[i] = strdup(n->port_map[i]));
	if (oom) {
		free(gv);
		free_map(map);
		return ec1_fail(ctx, EC1_ENOMEM, "network: out of memory");
	}
	free(k->net.gvproxy_path);
	free_map(k->net.map);
	k->net.set = true;
	k->net.passt_fd = n->passt_fd;
	k->net.gvproxy_path = gv;
	k->net.map_set = map != NULL;
	k->net.map = map;
	/*
	 * A virtio-net interface (passt, gvproxy) without a MAC: libkrun would give every VM the
	 * same one (5a:94:ef:e4:0c:ee); ec1 generates one, as ec1.h says.
	 */
	k->net.mac_set = n->mac || nic;
	if (n->mac)
		memcpy(k->net.mac, n->mac, 6);
	else if (nic)
		ec1_random_mac(k->net.mac);
	return EC1_OK;
}

/*
 * libkrun packs the program, its arguments, environment and working directory into the guest
 * kernel's command line (krun_set_exec: each entry wrapped in double quotes, joined by spaces),
 * which is 2,048 bytes on x86 (COMMAND_LINE_SIZE) and holds libkrun's own options too. An entry
 * with a double quote would end its quoting early and spill into the kernel's options; too much
 * would be cut. Both are refused at start, naming the entry (not when the process is set: volumes
 * set later lift the limit, since ec1's init then starts the process from the staging root's
 * description).
 */
#define LIBKRUN_CMDLINE_BUDGET 1536

static const char *const default_env[] = EC1_ABI_DEFAULT_ENV;

static int check_packing(struct ec1_ctx *ctx)
{
	const char *const *envp = ctx->envp ? (const char *const *)ctx->envp : default_env;
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

/* Whether the guest starts from ec1's staging root: volumes need ec1's init to mount them. */
static bool staged(const struct ec1_ctx *ctx)
{
	return ctx->nr_volumes > 0;
}

static int libkrun_set_kernel(struct ec1_ctx *ctx)
{
	if (ctx->ops->id == EC1_BACKEND_LIBKRUN_SEV)
		return ec1_fail(ctx, EC1_EUNSUPPORTED,
				"kernel: libkrun-sev boots its own firmware and kernel (its "
				"krun_set_kernel answers EOPNOTSUPP)");
	if (ctx->kernel_format == EC1_KERNEL_BZIMAGE)
		return ec1_fail(ctx, EC1_EUNSUPPORTED,
				"kernel.format: libkrun boots no bzImage (its RAW is a flat image "
				"entered at 0x80000000; ELF takes a vmlinux)");
	if (!K(ctx)->set_kernel)
		return missing(ctx, "set_kernel", "");
	return EC1_OK;
}

/* libkrun-sev starts no SEV guest without a TEE configuration: refused here, not at start. */
static int libkrun_set_sev(struct ec1_ctx *ctx, const struct ec1_sev_config *sev)
{
	if (!sev->tee_config_file)
		return ec1_fail(
			ctx, EC1_EINVAL,
			"sev.tee_config_file: libkrun-sev needs one (it starts no SEV guest "
			"without it)");
	char *copy = strdup(sev->tee_config_file);
	if (!copy)
		return ec1_fail(ctx, EC1_ENOMEM, "out of memory");
	free(K(ctx)->tee_config_file);
	K(ctx)->tee_config_file = copy;
	return EC1_OK;
}

/* Before start: what libkrun would otherwise only find inside krun_start_enter. */
static int check_startable(struct ec1_ctx *ctx)
{
	if (ctx->ops->id == EC1_BACKEND_LIBKRUN_SEV && !K(ctx)->tee_config_file)
		return ec1_fail(ctx, EC1_EINVAL,
				"sev: no TEE configuration file set (ec1_ctx_set_sev): libkrun-sev "
				"starts no guest without one");
	if (staged(ctx) && !ctx->root)
		return ec1_fail(ctx, EC1_EINVAL,
				"volumes: libkrun mounts volumes only under a root directory "
				"(ec1_ctx_set_root)");
	int err = ec1_check_root_flags(ctx);
	err = err ?: check_disk_files(ctx);
	if (err)
		return err;
	if (!staged(ctx))
		return check_packing(ctx);
	for (size_t i = 0; i < ctx->nr_shares; i++)
		if (strncmp(ctx->shares[i].tag, "ec1.", 4) == 0)
			return ec1_fail(ctx, EC1_EINVAL,
					"virtiofs.tag: \"%s\": ec1. tags are ec1's own with "
					"volumes on libkrun",
					ctx->shares[i].tag);
	return EC1_OK;
}

static int make_ctx(struct ec1_ctx *ctx)
{
	struct krun *k = K(ctx);
	if (k->have_ctx)
		return EC1_OK;
	int32_t id = k->create_ctx();
	if (id < 0)
		return krun_result(ctx, "create_ctx", id);
	k->id = (uint32_t)id;
	k->have_ctx = true;
	return EC1_OK;
}

static int libkrun_shutdown_eventfd(struct ec1_ctx *ctx, int *fd)
{
	struct krun *k = K(ctx);
	int err = make_ctx(ctx);
	if (err)
		return err;
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
		return ec1_fail(
			ctx, EC1_EUNSUPPORTED,
			"vmnet: krun_add_net_unixgram is not in the loaded %s%s (vmnet needs "
			"libkrun 1.15 or later)",
			soname(ctx->ops->id), version_note(ctx));
	return EC1_OK;
}

/* rm -r without following links; what a guest wrote into the staging root goes too. */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static pthread_mutex_t stage_lock = PTHREAD_MUTEX_INITIALIZER;
static char *stages[8]; /* copies of the staging roots this process made and has not removed */

/* At exit (krun_start_enter exits the process): this process's staging roots are removed. */
static void remove_stages(void)
{
	for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++)
		if (stages[i])
			nftw(stages[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A staging root removed now (its context is freed: no VM of this process uses it). */
static void remove_stage(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	pthread_mutex_lock(&stage_lock);
	for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++)
		if (stages[i] && strcmp(stages[i], dir) == 0) {
			free(stages[i]);
			stages[i] = NULL;
		}
	pthread_mutex_unlock(&stage_lock);
}

static int write_file(int dir, const char *name, mode_t mode, const void *data, size_t len)
{
	int fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -1;
	for (size_t done = 0; done < len;) {
		ssize_t w = write(fd, (const char *)data + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)w;
	}
	return close(fd);
}

/* The caller's root's and volume i's virtio-fs tags, in the description and to libkrun alike. */
#define STAGE_ROOT_TAG "ec1.root"
#define VOL_TAG_SIZE   32
static void vol_tag(char tag[VOL_TAG_SIZE], size_t i)
{
	snprintf(tag, VOL_TAG_SIZE, "ec1.vol%zu", i);
}

/*
 * The staging root (guest/abi.h): ec1's init and the process description, the mount point of the
 * caller's root and the directories libkrun's init mounts on, in a new private directory.
 * Shares: the caller's root as "ec1.root", volume i as "ec1.vol<i>".
 */
static int make_stage(struct ec1_ctx *ctx)
{
	struct vm_share *shares = calloc(ctx->nr_volumes + 1, sizeof(*shares));
	char(*tags)[VOL_TAG_SIZE] = calloc(ctx->nr_volumes + 1, sizeof(*tags));
	const char *tmp = getenv("TMPDIR");
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/ec1-krun-XXXXXX", tmp && *tmp == '/' ? tmp : "/tmp");
	if (!shares || !tags) {
		free(shares);
		free(tags);
		return ec1_fail(ctx, EC1_ENOMEM, "out of memory");
	}
	shares[0] = (struct vm_share){STAGE_ROOT_TAG, ctx->root, "/",
				      (ctx->root_flags & EC1_SHARE_READ_ONLY) != 0, false};
	for (size_t i = 0; i < ctx->nr_volumes; i++) {
		vol_tag(tags[i], i);
		shares[i + 1] = (struct vm_share){
			tags[i], ctx->volumes[i].host, ctx->volumes[i].guest,
			(ctx->volumes[i].flags & EC1_SHARE_READ_ONLY) != 0, false};
	}
	struct vm_config cfg = {.exec_path = ctx->exec_path,
				.argv = (const char *const *)ctx->argv,
				.envp = (const char *const *)ctx->envp,
				.workdir = ctx->workdir,
				.shares = shares,
				.nr_shares = (unsigned int)ctx->nr_volumes + 1};
	char *blob = NULL;
	size_t blob_len = 0;
	int err = vm_process_blob(&cfg, &blob, &blob_len) ? EC1_ENOMEM : EC1_OK;
	free(shares);
	free(tags);
	if (err)
		return ec1_fail(ctx, err, "out of memory");
	int d = -1;
	if (!mkdtemp(dir) || (d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    mkdirat(d, ".ec1", 0755) < 0 ||
	    write_file(d, &EC1_ABI_INIT[1], 0755, ec1_init_binary, ec1_init_binary_size) < 0 ||
	    write_file(d, &EC1_ABI_PROCESS[1], 0600, blob, blob_len) < 0 ||
	    mkdirat(d, &EC1_ABI_ROOT[1], 0755) < 0 || mkdirat(d, "dev", 0755) < 0 ||
	    mkdirat(d, "proc", 0555) < 0 || mkdirat(d, "sys", 0555) < 0)
		err = ec1_fail(ctx, EC1_EBACKEND, "volumes: staging root %s: %s", dir,
			       strerror(errno));
	free(blob);
	if (d >= 0)
		close(d);
	if (!err && !(K(ctx)->stage = strdup(dir)))
		err = ec1_fail(ctx, EC1_ENOMEM, "out of memory");
	if (err) {
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		return err;
	}
	static bool registered;
	pthread_mutex_lock(&stage_lock);
	if (!registered)
		registered = atexit(remove_stages) == 0;
	for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++)
		if (!stages[i]) {
			stages[i] = strdup(K(ctx)->stage);
			break;
		}
	pthread_mutex_unlock(&stage_lock);
	return EC1_OK;
}

/* A directory as a virtio-fs device: krun_add_virtiofs3 when read-only, else krun_add_virtiofs. */
static int add_fs(struct ec1_ctx *ctx, const char *tag, const char *dir, bool read_only)
{
	if (read_only)
		return KCALL(ctx, add_virtiofs3, tag, dir, 0, true);
	return KCALL(ctx, add_virtiofs, tag, dir);
}

/* The root and volumes: directly, or through the staging root. */
static int apply_root(struct ec1_ctx *ctx)
{
	bool ro = ctx->root_flags & EC1_SHARE_READ_ONLY;
	int err;
	if (!staged(ctx)) {
		if (!ctx->root)
			return EC1_OK;
		return ro ? KCALL(ctx, add_virtiofs3, KRUN_FS_ROOT_TAG, ctx->root, 0, true)
			  : KCALL(ctx, set_root, ctx->root);
	}
	if ((err = make_stage(ctx)) || (err = KCALL(ctx, set_root, K(ctx)->stage)) ||
	    (err = add_fs(ctx, STAGE_ROOT_TAG, ctx->root, ro)))
		return err;
	for (size_t i = 0; i < ctx->nr_volumes && !err; i++) {
		char tag[VOL_TAG_SIZE];
		vol_tag(tag, i);
		err = add_fs(ctx, tag, ctx->volumes[i].host,
			     ctx->volumes[i].flags & EC1_SHARE_READ_ONLY);
	}
	return err;
}

static int apply_network(struct ec1_ctx *ctx)
{
	struct krun *k = K(ctx);
	int err = EC1_OK;
	if (!k->net.set)
		return EC1_OK;
	if (k->net.passt_fd >= 0)
		err = KCALL(ctx, set_passt_fd, k->net.passt_fd);
	else if (k->net.gvproxy_path)
		err = KCALL(ctx, set_gvproxy_path, k->net.gvproxy_path);
	if (!err && k->net.mac_set)
		err = KCALL(ctx, set_net_mac, k->net.mac);
	/* TSI's port map: an empty list (not NULL) exposes no port. */
	if (!err && k->net.map_set)
		err = KCALL(ctx, set_port_map, (const char *const *)k->net.map);
	return err;
}

static int apply_process(struct ec1_ctx *ctx)
{
	if (staged(ctx)) {
		/* ec1's init from the staging root; the process is in the description. */
		static const char *const stage_argv[] = {EC1_ABI_KRUN_STAGE, NULL};
		return KCALL(ctx, set_exec, EC1_ABI_INIT, stage_argv, default_env);
	}
	/*
	 * krun_set_exec takes the arguments after the program name: argv[0] skipped. Given no
	 * environment (NULL), libkrun copies the whole host environment into the guest: ec1's
	 * default (PATH, HOME=/, TERM, as on the builtin engine) goes instead.
	 */
	const char *const *envp = ctx->envp ? (const char *const *)ctx->envp : default_env;
	int err = KCALL(ctx, set_exec, ctx->exec_path, (const char *const *)ctx->argv + 1, envp);
	if (!err && ctx->workdir)
		err = KCALL(ctx, set_workdir, ctx->workdir);
	return err;
}

/* krun_add_disk2's sync mode, for krun_add_disk3 without sync=none: relaxed on macOS, full here. */
#ifdef __APPLE__
#define SYNC_DEFAULT KRUN_SYNC_RELAXED
#else
#define SYNC_DEFAULT KRUN_SYNC_FULL
#endif

/* Everything, in this order, each call once, into a fresh libkrun context. */
static int apply(struct ec1_ctx *ctx)
{
	struct krun *k = K(ctx);
	int err = make_ctx(ctx);
	err = err ?: KCALL(ctx, set_vm_config, ctx->vm.num_vcpus, ctx->vm.ram_mib);
	err = err ?: apply_root(ctx);
	for (size_t i = 0; i < ctx->nr_shares && !err; i++)
		err = KCALL(ctx, add_virtiofs, ctx->shares[i].tag, ctx->shares[i].dir);
	for (size_t i = 0; i < ctx->nr_disks && !err; i++) {
		const struct ec1_disk *d = &ctx->disks[i];
		if (d->flags & (EC1_DISK_DIRECT_IO | EC1_DISK_NO_FLUSH))
			/* set_disk_flags took these flags only with krun_add_disk3 there. */
			err = KCALL(ctx, add_disk3, d->block_id, d->path, (uint32_t)d->format,
				    d->read_only, (d->flags & EC1_DISK_DIRECT_IO) != 0,
				    (d->flags & EC1_DISK_NO_FLUSH) ? KRUN_SYNC_NONE : SYNC_DEFAULT);
		else if (k->add_disk2)
			err = KCALL(ctx, add_disk2, d->block_id, d->path, (uint32_t)d->format,
				    d->read_only);
		else
			err = KCALL(ctx, add_disk, d->block_id, d->path, d->read_only);
	}
	for (size_t i = 0; i < ctx->nr_vsock_ports && !err; i++) {
		const struct ec1_vsock_port *p = &ctx->vsock_ports[i];
		if (k->add_vsock_port2)
			err = KCALL(ctx, add_vsock_port2, p->port, p->path, p->listen);
		else
			err = KCALL(ctx, add_vsock_port, p->port, p->path);
	}
	err = err ?: apply_network(ctx);
	if (!err && ctx->vmnet.fd >= 0) {
		/* libkrun owns the fd it is given; the context keeps its own until freed. */
		int fd = fcntl(ctx->vmnet.fd, F_DUPFD_CLOEXEC, 3);
		uint8_t mac[6];
		memcpy(mac, ctx->vmnet.info.mac, sizeof(mac));
		if (fd < 0)
			err = ec1_fail(ctx, EC1_EBACKEND, "vmnet: dup: %s", strerror(errno));
		else if ((err = KCALL(ctx, add_net_unixgram, NULL, fd, mac, 0, 0)))
			close(fd);
	}
	err = err ?: apply_process(ctx);
	if (!err && ctx->kernel_path)
		err = KCALL(ctx, set_kernel, ctx->kernel_path, (uint32_t)ctx->kernel_format,
			    ctx->initramfs, ctx->cmdline);
	if (!err && k->tee_config_file)
		err = KCALL(ctx, set_tee_config_file, k->tee_config_file);
	return err;
}

int ec1_krun_enter(struct ec1_ctx *ctx)
{
	int err = check_startable(ctx);
	err = err ?: apply(ctx);
	if (err)
		return err;
	fflush(NULL);
	return krun_result(ctx, "start_enter", K(ctx)->start_enter(K(ctx)->id));
}

/* The number of threads of this process (1 when /proc cannot say otherwise). */
static int thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;
	if (!d)
		return 1;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n ? n : 1;
}

/* The helper: EC1_KRUN_HELPER, else the build tree's, else the installed one. */
static const char *helper_path(void)
{
	const char *env = getenv("EC1_KRUN_HELPER");
	if (env && *env)
		return env;
	return access(EC1_KRUN_HELPER_BUILT, X_OK) == 0 ? EC1_KRUN_HELPER_BUILT
							: EC1_LIBEXECDIR "/ec1-krun";
}

/*
 * krun_start_enter exits the process: the VM runs in another one, and this one returns its status.
 * That process is the helper (a clean exec); a fork of this one only when it has one thread (or
 * libkrun's shutdown eventfd, which belongs to this process's libkrun, was taken).
 */
static int libkrun_run(struct ec1_ctx *ctx, int *status)
{
	int err = check_startable(ctx);
	if (err)
		return err;
	const char *helper = helper_path();
	if (K(ctx)->have_ctx)
		return ec1_krun_fork(ctx, status);
	if (access(helper, X_OK) == 0)
		return ec1_krun_spawn(ctx, helper, status);
	if (thread_count() == 1)
		return ec1_krun_fork(ctx, status);
	return ec1_fail(ctx, EC1_ENOTAVAIL,
			"libkrun: ec1_run in a process with threads needs the helper ec1-krun "
			"(%s: %s), since libkrun must not run in a forked copy of a threaded "
			"process; set EC1_KRUN_HELPER, or call ec1_start_enter",
			helper, strerror(errno));
}

static int libkrun_start_enter(struct ec1_ctx *ctx)
{
	return ec1_krun_enter(ctx);
}

#define LIBKRUN_OPS(backend, feats)                                                               \
	{                                                                                         \
		.id = (backend), .features = (feats), .open = libkrun_open,                       \
		.close = libkrun_close, .set_root_flags = libkrun_set_root_flags,                 \
		.set_mapped_volumes = libkrun_set_mapped_volumes, .add_disk = libkrun_add_disk,   \
		.set_disk_flags = libkrun_set_disk_flags,                                         \
		.add_vsock_port = libkrun_add_vsock_port, .set_network = libkrun_set_network,     \
		.set_kernel = libkrun_set_kernel, .set_sev = libkrun_set_sev,                     \
		.get_shutdown_eventfd = libkrun_shutdown_eventfd, .set_vmnet = libkrun_set_vmnet, \
		.run = libkrun_run, .start_enter = libkrun_start_enter,                           \
		.installed = ec1_libkrun_capabilities, .version = ec1_libkrun_version,            \
	}

/*
 * SEED.md's availability table. Its "VMNet" column is the generic build with vmnet-helper; ec1
 * offers vmnet with libkrun-efi too, where vmnet can work as well (krunkit pairs the two). What
 * a library found here lacks is taken away (lib_features).
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
