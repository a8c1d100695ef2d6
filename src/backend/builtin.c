/* The builtin backend: ec1's own KVM engine (src/vmm). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

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
	if (ctx->kernel_format != EC1_KERNEL_ELF && ctx->kernel_format != EC1_KERNEL_RAW)
		return ec1_fail(
			ctx, EC1_EUNSUPPORTED,
			"kernel.format: the builtin engine boots ELF vmlinux (PVH) or a raw "
			"bzImage");
	return EC1_OK;
}

static int builtin_shutdown_eventfd(struct ec1_ctx *ctx, int *fd)
{
	if (ctx->shutdown_fd < 0 && (ctx->shutdown_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return ec1_fail(ctx, EC1_ENOMEM, "eventfd: %s", strerror(errno));
	*fd = ctx->shutdown_fd;
	return EC1_OK;
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
	struct vm_config cfg = {
		.cpus = ctx->vm.num_vcpus,
		.ram_mib = ctx->vm.ram_mib,
		.kernel_path = kernel,
		.initramfs_path = initramfs,
		.cmdline_extra = ctx->cmdline,
		.exec_path = ctx->exec_path,
		.argv = (const char *const *)ctx->argv,
		.envp = (const char *const *)ctx->envp,
		.workdir = ctx->workdir,
		.stdin_fd = ctx->stdio[0],
		.stdout_fd = ctx->stdio[1],
		.stderr_fd = ctx->stdio[2],
		.timeout_ms = ctx->timeout_ms,
		.shutdown_fd = ctx->shutdown_fd,
		.console = ctx->console,
		.timing = ctx->timing,
		.allow_pvm = getenv("EC1_ALLOW_PVM") != NULL,
		.setup_only = getenv("EC1_SETUP_ONLY") != NULL,
	};
	struct vm_result res;
	int err = vm_run(&cfg, &res, ctx->message, sizeof(ctx->message));
	if (!err)
		*status = res.status;
	return err;
}

const struct ec1_backend_ops ec1_backend_builtin = {
	.id = EC1_BACKEND_BUILTIN,
	/* Host directories (root, volumes, shares) arrive with virtio-fs; until then not offered.
	 */
	.features = EC1_F_SHUTDOWN_FD,
	.get_shutdown_eventfd = builtin_shutdown_eventfd,
	.set_kernel = builtin_set_kernel,
	.run = builtin_run,
	.builtin_extras = true,
};
