/* The builtin backend: ec1's own KVM engine (src/vmm). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../guest/abi.h"
#include "../lib/ec1_internal.h"
#include "../vmm/vm.h"

#ifndef EC1_DATADIR
#define EC1_DATADIR "/usr/local/share/ec1"
#endif
#ifndef EC1_KERNEL_PATH
#define EC1_KERNEL_PATH EC1_DATADIR "/vmlinux"
#endif
#ifndef EC1_INITRAMFS_PATH
#define EC1_INITRAMFS_PATH EC1_DATADIR "/rootfs.cpio"
#endif

/* The environment's choice, else the build tree's file, else the installed one. */
static const char *default_file(const char *env_name, const char *built, const char *installed)
{
	const char *env = getenv(env_name);
	if (env && *env)
		return env;
	return access(built, R_OK) == 0 ? built : installed;
}

const char *ec1_default_kernel(void)
{
	return default_file("EC1_KERNEL", EC1_KERNEL_PATH, EC1_DATADIR "/vmlinux");
}

const char *ec1_default_initramfs(void)
{
	return default_file("EC1_INITRAMFS", EC1_INITRAMFS_PATH, EC1_DATADIR "/rootfs.cpio");
}

static int builtin_set_kernel(struct ec1_ctx *ctx)
{
	if (ctx->kernel_format != EC1_KERNEL_ELF && ctx->kernel_format != EC1_KERNEL_BZIMAGE)
		return ec1_fail(ctx, EC1_EUNSUPPORTED,
				"kernel.format: %d: the builtin engine boots an ELF vmlinux "
				"(EC1_KERNEL_ELF) or a bzImage (EC1_KERNEL_BZIMAGE)%s",
				(int)ctx->kernel_format,
				ctx->kernel_format == EC1_KERNEL_RAW
					? "; RAW is libkrun's flat image entered at 0x80000000"
					: "");
	return EC1_OK;
}

static int builtin_shutdown_eventfd(struct ec1_ctx *ctx, int *fd)
{
	if (ctx->shutdown_fd < 0 && (ctx->shutdown_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return ec1_fail(ctx, EC1_ENOMEM, "eventfd: %s", strerror(errno));
	*fd = ctx->shutdown_fd;
	return EC1_OK;
}

static int builtin_set_root_flags(struct ec1_ctx *ctx)
{
	(void)ctx; /* taken at run time (collect_shares) */
	return EC1_OK;
}

static int builtin_add_virtiofs(struct ec1_ctx *ctx, const char *tag, const char *dir)
{
	(void)dir;
	if (strncmp(tag, "ec1-", 4) == 0)
		return ec1_fail(ctx, EC1_EINVAL,
				"virtiofs.tag: \"%s\": the ec1- prefix is ec1's own (root and "
				"volumes)",
				tag);
	return EC1_OK;
}

/* The root, the volumes (parsed when set) and the shares, as virtio-fs. */
struct share_list {
	struct vm_share shares[VM_MAX_DEVICES];
	char tags[VM_MAX_DEVICES][32];
	unsigned int n;
};

static int collect_shares(struct ec1_ctx *ctx, struct share_list *l)
{
	size_t nr_volumes = ctx->nr_volumes;
	int err = ec1_check_root_flags(ctx);
	if (err)
		return err;
	if ((ctx->root ? 1 : 0) + nr_volumes + ctx->nr_shares > VM_MAX_SHARES)
		return ec1_fail(ctx, EC1_EINVAL,
				"shares: at most %d directories (root, volumes and shares) per VM",
				VM_MAX_SHARES);
	if (ctx->root)
		l->shares[l->n++] =
			(struct vm_share){.tag = "ec1-root",
					  .host_dir = ctx->root,
					  .guest_path = "/",
					  .read_only = ctx->root_flags & EC1_SHARE_READ_ONLY,
					  .guest_ids = ctx->root_flags & EC1_SHARE_GUEST_IDS};
	for (size_t i = 0; i < nr_volumes; i++) {
		const struct ec1_volume *v = &ctx->volumes[i];
		unsigned int k = l->n++;
		snprintf(l->tags[k], sizeof(l->tags[0]), "ec1-vol%zu", i);
		l->shares[k] = (struct vm_share){.tag = l->tags[k],
						 .host_dir = v->host,
						 .guest_path = v->guest,
						 .read_only = v->flags & EC1_SHARE_READ_ONLY,
						 .guest_ids = v->flags & EC1_SHARE_GUEST_IDS};
	}
	for (size_t i = 0; i < ctx->nr_shares; i++)
		l->shares[l->n++] = (struct vm_share){.tag = ctx->shares[i].tag,
						      .host_dir = ctx->shares[i].dir};
	return EC1_OK;
}

/* Whether the VM gets a vsock device: a port added, Firecracker's socket, or exec's. */
static bool has_vsock(const struct ec1_ctx *ctx)
{
	return ctx->nr_vsock_ports || ctx->vsock_uds || ctx->exec_socket;
}

/*
 * The disks as the VMM takes them; one as the root excludes a root directory, a partition is
 * only for a disk init mounts.
 */
static int collect_disks(struct ec1_ctx *ctx, const struct share_list *shares,
			 struct vm_disk disks[EC1_MAX_DISKS])
{
	for (size_t i = 0; i < ctx->nr_disks; i++) {
		const struct ec1_disk *d = &ctx->disks[i];
		if (d->guest_path && strcmp(d->guest_path, "/") == 0) {
			if (ctx->root)
				return ec1_fail(ctx, EC1_EINVAL,
						"mount_disk: disk \"%s\" as the root, and a root "
						"directory (%s): one root only",
						d->block_id, ctx->root);
		}
		if (d->partition && !d->guest_path)
			return ec1_fail(ctx, EC1_EINVAL,
					"disk_partition: disk \"%s\": partition %u of a disk init "
					"does not mount (ec1_ctx_mount_disk says where)",
					d->block_id, d->partition);
		disks[i] = (struct vm_disk){.block_id = d->block_id,
					    .path = d->path,
					    .format = d->format == EC1_DISK_QCOW2 ? DISK_QCOW2
										  : DISK_RAW,
					    .read_only = d->read_only,
					    .allow_backing = d->flags & EC1_DISK_ALLOW_BACKING,
					    .direct = d->flags & EC1_DISK_DIRECT_IO,
					    .no_flush = d->flags & EC1_DISK_NO_FLUSH,
					    .guest_path = d->guest_path,
					    .fstype = d->fstype,
					    .partition = d->partition};
	}
	/* The console, the network and vsock, then a device for each share and each disk. */
	unsigned int fixed = 1 + (ctx->net.on ? 1 : 0) + (has_vsock(ctx) ? 1 : 0);
	if (fixed + shares->n + ctx->nr_disks > VM_MAX_DEVICES)
		return ec1_fail(
			ctx, EC1_EINVAL,
			"disks: %zu disks and %u directories (root, volumes and shares) are "
			"more than the %u devices a VM has besides its console%s%s",
			ctx->nr_disks, shares->n, VM_MAX_DEVICES - fixed,
			ctx->net.on ? ", network" : "", has_vsock(ctx) ? ", vsock" : "");
	return EC1_OK;
}

/*
 * The network's backend: kind, a TAP's name (taken), a socket (owned or borrowed) and, for
 * gvproxy, our end's path (taken). What the previous one held is released first.
 */
static void set_net(struct ec1_ctx *ctx, enum ec1_net_kind kind, char *tap, int fd, bool owned,
		    char *local_path, const uint8_t *mac)
{
	ec1_net_reset(ctx);
	ctx->net.kind = kind;
	ctx->net.tap = tap;
	ctx->net.fd = fd;
	ctx->net.fd_owned = owned;
	ctx->net.local_path = local_path;
	ctx->net.on = true;
	ctx->net.mac_set = mac != NULL;
	if (mac)
		memcpy(ctx->net.mac, mac, 6);
}

/* Every context starts with the NAT, as libkrun's start with TSI. */
static int builtin_open(struct ec1_ctx *ctx)
{
	set_net(ctx, EC1_NET_NAT, NULL, -1, false, NULL, NULL);
	return EC1_OK;
}

static int builtin_set_network_nat(struct ec1_ctx *ctx, const struct ec1_port *ports, size_t n,
				   const struct ec1_allow *allow, size_t nr_allow,
				   const struct ec1_nat_config *config)
{
	set_net(ctx, EC1_NET_NAT, NULL, -1, false, NULL, config ? config->mac : NULL);
	ctx->net.on = config != NULL;
	if (config) {
		ctx->net.restricted = config->restricted;
		memcpy(ctx->net.ports, ports, n * sizeof(*ports));
		ctx->net.nr_ports = n;
		if (nr_allow)
			memcpy(ctx->net.allow, allow, nr_allow * sizeof(*allow));
		ctx->net.nr_allow = nr_allow;
	}
	return EC1_OK;
}

/*
 * The seed's network call: a passt socket (stream framing), gvproxy's vfkit socket (datagrams),
 * or the default network, the NAT, with port_map's "HOST:GUEST" entries published on 127.0.0.1.
 * ctx.c has checked the fields.
 */
static int builtin_set_network(struct ec1_ctx *ctx, const struct ec1_network_config *config)
{
	if (config->gvproxy_path) {
		int fd;
		char *local;
		int err = ec1_gvproxy_connect(ctx, config->gvproxy_path, &fd, &local);
		if (err)
			return err;
		set_net(ctx, EC1_NET_DGRAM, NULL, fd, true, local, config->mac);
		return EC1_OK;
	}
	if (config->passt_fd < 0) {
		if (config->port_map_count > EC1_MAX_LIST)
			return ec1_fail(ctx, EC1_EINVAL,
					"network.port_map: %zu entries, at most %d",
					config->port_map_count, EC1_MAX_LIST);
		struct ec1_nat_config nat = {.mac = config->mac};
		struct ec1_port ports[EC1_MAX_LIST];
		for (size_t i = 0; i < config->port_map_count; i++) {
			const char *why;
			if (ec1_parse_publish(config->port_map[i], &ports[i], &why) < 0)
				return ec1_fail(ctx, EC1_EINVAL, "network.port_map[%zu]: %s", i,
						why); /* checked already: not reached */
		}
		return builtin_set_network_nat(ctx, ports, config->port_map_count, NULL, 0, &nat);
	}
	int type = 0;
	socklen_t len = sizeof(type);
	if (getsockopt(config->passt_fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	    type != SOCK_STREAM)
		return ec1_fail(ctx, EC1_EINVAL, "network.passt_fd: %d: not a stream socket",
				config->passt_fd);
	set_net(ctx, EC1_NET_STREAM, NULL, config->passt_fd, false, NULL, config->mac);
	return EC1_OK;
}

static int builtin_set_network_tap(struct ec1_ctx *ctx, const char *iface, const uint8_t *mac)
{
	char *name = strdup(iface);
	if (!name)
		return ec1_fail(ctx, EC1_ENOMEM, "network.tap: out of memory");
	set_net(ctx, EC1_NET_TAP, name, -1, false, NULL, mac);
	return EC1_OK;
}

/* vmnet: the helper's datagram socket (the context's, borrowed) with the MAC vmnet gave. */
static int builtin_set_vmnet(struct ec1_ctx *ctx)
{
	set_net(ctx, EC1_NET_DGRAM, NULL, ctx->vmnet.fd, false, NULL, ctx->vmnet.info.mac);
	return EC1_OK;
}

/* The guest's MAC: the caller's, else a random one. */
static void guest_mac(const struct ec1_ctx *ctx, uint8_t mac[6])
{
	if (ctx->net.mac_set)
		memcpy(mac, ctx->net.mac, 6);
	else
		ec1_random_mac(mac);
}

static int builtin_run(struct ec1_ctx *ctx, int *status)
{
	const char *kernel = ctx->kernel_path ? ctx->kernel_path : ec1_default_kernel();
	const char *initramfs = ctx->initramfs;

	if (!ctx->kernel_path && access(kernel, R_OK) < 0)
		return ec1_fail(
			ctx, EC1_EINVAL,
			"kernel.path: default guest kernel %s: %s (build it with `make kernel`, "
			"set EC1_KERNEL, or call ec1_ctx_set_kernel)",
			kernel, strerror(errno));
	if (!initramfs) {
		initramfs = ec1_default_initramfs();
		if (access(initramfs, R_OK) < 0)
			return ec1_fail(
				ctx, EC1_EINVAL,
				"kernel.initramfs: default root %s: %s (build it with `make`, "
				"set EC1_INITRAMFS, or name one in ec1_ctx_set_kernel)",
				initramfs, strerror(errno));
	}
	struct share_list shares = {0};
	struct vm_disk disks[EC1_MAX_DISKS];
	int err = collect_shares(ctx, &shares);
	err = err ?: collect_disks(ctx, &shares, disks);
	if (err)
		return err;
	static const char *const no_argv[] = {NULL};
	struct vm_config cfg = {
		.cpus = ctx->vm.num_vcpus,
		.ram_mib = ctx->vm.ram_mib,
		.kernel_path = kernel,
		.initramfs_path = initramfs,
		.cmdline_extra = ctx->cmdline,
		/* ec1_ctx_start without a process: a VM that only takes exec requests */
		.exec_path = ctx->process_set ? ctx->exec_path : "",
		.argv = ctx->process_set ? (const char *const *)ctx->argv : no_argv,
		.envp = (const char *const *)ctx->envp,
		.workdir = ctx->workdir,
		.shares = shares.shares,
		.nr_shares = shares.n,
		.disks = disks,
		.nr_disks = (unsigned int)ctx->nr_disks,
		.stdin_fd = ctx->stdio[0],
		.stdout_fd = ctx->stdio[1],
		.stderr_fd = ctx->stdio[2],
		.timeout_ms = ctx->timeout_ms,
		.shutdown_fd = ctx->shutdown_fd,
		.ready_fd = ctx->bg.ready_fd,
		.console = ctx->console,
		.timing = ctx->timing,
		.allow_pvm = getenv("EC1_ALLOW_PVM") != NULL,
		.setup_only = getenv("EC1_SETUP_ONLY") != NULL,
	};
	struct vsock_port vports[EC1_MAX_VSOCK_PORTS + 1];
	unsigned int nr_vports = 0;
	for (size_t i = 0; i < ctx->nr_vsock_ports; i++)
		vports[nr_vports++] = (struct vsock_port){.port = ctx->vsock_ports[i].port,
							  .path = ctx->vsock_ports[i].path,
							  .listen = ctx->vsock_ports[i].listen};
	/* Exec: ec1 listens at the socket; each connection reaches init's agent. */
	if (ctx->exec_socket) {
		vports[nr_vports++] = (struct vsock_port){
			.port = EC1_ABI_EXEC_PORT, .path = ctx->exec_socket, .listen = true};
		cfg.agent_port = EC1_ABI_EXEC_PORT;
	}
	struct vm_vsock vsock = {.guest_cid = EC1_GUEST_CID,
				 .ports = vports,
				 .nr_ports = nr_vports,
				 .uds = ctx->vsock_uds};
	if (has_vsock(ctx))
		cfg.vsock = &vsock;
	struct net_port ports[EC1_MAX_LIST];
	for (size_t i = 0; i < ctx->net.nr_ports; i++)
		ports[i] = (struct net_port){.host_addr = ctx->net.ports[i].host_addr,
					     .host_port = ctx->net.ports[i].host_port,
					     .guest_port = ctx->net.ports[i].guest_port,
					     .udp = ctx->net.ports[i].udp};
	struct net_allow allow[EC1_MAX_LIST];
	for (size_t i = 0; i < ctx->net.nr_allow; i++)
		allow[i] = (struct net_allow){.addr = ctx->net.allow[i].addr,
					      .port = ctx->net.allow[i].port,
					      .udp = ctx->net.allow[i].udp};
	static const enum vm_net_kind kinds[] = {[EC1_NET_NAT] = VM_NET_NAT,
						 [EC1_NET_STREAM] = VM_NET_STREAM,
						 [EC1_NET_TAP] = VM_NET_TAP,
						 [EC1_NET_DGRAM] = VM_NET_DGRAM};
	struct vm_net net = {.kind = kinds[ctx->net.kind],
			     .tap = ctx->net.tap,
			     .fd = ctx->net.fd,
			     .restricted = ctx->net.restricted,
			     .ports = ports,
			     .nr_ports = (unsigned int)ctx->net.nr_ports,
			     .allow = allow,
			     .nr_allow = (unsigned int)ctx->net.nr_allow};
	/* passt that ec1 started takes frames as large as it was told (--mtu). */
	if (ctx->net.kind == EC1_NET_STREAM && ctx->passt.pid > 0 && ctx->net.fd == ctx->passt.fd)
		net.mtu = EC1_PASST_MTU;
	if (ctx->net.kind == EC1_NET_NAT) {
		if (ctx->net.on && ctx->net.cidr)
			return ec1_fail(ctx, EC1_EINVAL,
					"network.address: %s: the NAT's guest is always "
					"10.0.2.15/24 (a fixed address is for passt, gvproxy, TAP "
					"or vmnet)",
					ctx->net.cidr);
		net.guest_cidr = "10.0.2.15/24";
		net.gateway = "10.0.2.2";
		net.dns = ctx->net.restricted ? "" : "10.0.2.3";
	} else if (ctx->net.cidr) {
		net.guest_cidr = ctx->net.cidr;
		net.gateway = ctx->net.gateway ? ctx->net.gateway : "";
		net.dns = ctx->net.dns ? ctx->net.dns : "";
	} else {
		net.guest_cidr = "dhcp";
		net.gateway = net.dns = "";
	}
	if (ctx->net.on) {
		guest_mac(ctx, net.mac);
		cfg.net = &net;
	}
	struct vm_result res;
	err = vm_run(&cfg, &res, ctx->message, sizeof(ctx->message));
	if (!err)
		*status = res.status;
	return err;
}

const struct ec1_backend_ops ec1_backend_builtin = {
	.id = EC1_BACKEND_BUILTIN,
	/* Host directories (root, volumes, shares) through virtio-fs, disks through virtio-blk. */
	.features = EC1_F_ROOT | EC1_F_VOLUMES | EC1_F_SHUTDOWN_FD | EC1_F_DISKS |
		    EC1_F_DISK_MOUNTS | EC1_F_NETWORK | EC1_F_NAT | EC1_F_VMNET | EC1_F_VSOCK |
		    EC1_F_VSOCK_UDS | EC1_F_EXEC,
	.add_virtiofs = builtin_add_virtiofs,
	.set_root_flags = builtin_set_root_flags,
	.get_shutdown_eventfd = builtin_shutdown_eventfd,
	.set_kernel = builtin_set_kernel,
	.open = builtin_open,
	.set_network = builtin_set_network,
	.set_network_tap = builtin_set_network_tap,
	.set_network_nat = builtin_set_network_nat,
	.set_vmnet = builtin_set_vmnet,
	.run = builtin_run,
	.builtin_extras = true,
};

void ec1_builtin_set_log_level(enum ec1_log_level level)
{
	vm_set_log_level((int)level);
}
