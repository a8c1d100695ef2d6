/* The libkrun backend: the real libkrun, loaded at run time with dlopen. */
#include <dlfcn.h>
#include <stdlib.h>

#include "../lib/ec1_internal.h"

static int libkrun_open(struct ec1_ctx *ctx)
{
	(void)ctx;
	return EC1_ENOTAVAIL;
}

const struct ec1_backend_ops ec1_backend_libkrun = {
	.id = EC1_BACKEND_LIBKRUN,
	.features = EC1_F_ROOT | EC1_F_VOLUMES,
	.open = libkrun_open,
};
const struct ec1_backend_ops ec1_backend_libkrun_sev = {
	.id = EC1_BACKEND_LIBKRUN_SEV,
	.features = EC1_F_SEV,
	.open = libkrun_open,
};
const struct ec1_backend_ops ec1_backend_libkrun_efi = {
	.id = EC1_BACKEND_LIBKRUN_EFI,
	.features = EC1_F_ROOT | EC1_F_VOLUMES | EC1_F_SHUTDOWN_FD,
	.open = libkrun_open,
};
