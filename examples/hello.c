/* The seed's example in C: log level, context, VM config, process, run. */
#include <stdio.h>

#include "ec1/ec1.h"

int main(void)
{
	struct ec1_ctx *ctx;
	int status, err;

	/* Once per process. */
	ec1_set_log_level(EC1_LOG_INFO);
	err = ec1_ctx_new(&ctx);
	if (err) {
		fprintf(stderr, "hello: create context: %s\n", ec1_strerror(err));
		return 1;
	}
	struct ec1_vm_config vm = {.num_vcpus = 2, .ram_mib = 1024};
	const char *const argv[] = {"echo", "Hello World", NULL};
	const char *const env[] = {"PATH=/bin", NULL};
	struct ec1_process_config process = {.exec_path = "/bin/echo", .argv = argv, .envp = env};
	if ((err = ec1_ctx_set_vm(ctx, &vm)) || (err = ec1_ctx_set_process(ctx, &process)) ||
	    (err = ec1_run(ctx, &status))) {
		fprintf(stderr, "hello: %s: %s\n", ec1_strerror(err), ec1_ctx_message(ctx));
		ec1_ctx_free(ctx);
		return 1;
	}
	ec1_ctx_free(ctx);
	return status;
}
