/* The stub backend: nothing runs, every call says so (the seed's default build). */
#include "../lib/ec1_internal.h"

static int stub_open(struct ec1_ctx *ctx)
{
	(void)ctx;
	return EC1_ENOTAVAIL;
}

const struct ec1_backend_ops ec1_backend_stub = {
	.id = EC1_BACKEND_STUB,
	.open = stub_open,
};
