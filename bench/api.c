/*
 * bench/api: nanoseconds per operation of the public API — context create/free and each set
 * call — on the builtin backend (and on libkrun when EC1_BACKEND names it and one is found).
 * usage: api [ITERATIONS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ec1/ec1.h"

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

#define BENCH(label, setup, op, teardown)                                     \
	do {                                                                  \
		double total = 0;                                             \
		for (long i = 0; i < iters; i++) {                            \
			setup;                                                \
			double t0 = now_ns();                                 \
			op;                                                   \
			total += now_ns() - t0;                               \
			teardown;                                             \
		}                                                             \
		printf("%-28s %10.1f ns/op\n", label, total / (double)iters); \
	} while (0)

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 20000;
	struct ec1_ctx *ctx = NULL;
	if (ec1_ctx_new(&ctx)) {
		fprintf(stderr, "api: no backend available\n");
		return 1;
	}
	printf("backend %s, %ld iterations\n", ec1_backend_name(ec1_ctx_backend(ctx)), iters);
	ec1_ctx_free(ctx);
	struct ec1_vm_config vm = {.num_vcpus = 2, .ram_mib = 1024};
	const char *const argv_[] = {"echo", "hello", NULL};
	const char *const env[] = {"PATH=/bin", "HOME=/", NULL};
	struct ec1_process_config proc = {
		.exec_path = "/bin/echo", .argv = argv_, .envp = env, .workdir = "/tmp"};
	struct ec1_kernel_config kernel = {.path = "/proc/self/exe", .format = EC1_KERNEL_ELF};

	BENCH("ctx_new + ctx_free", , (ec1_ctx_new(&ctx), ec1_ctx_free(ctx)), );
	BENCH("ctx_set_vm", ec1_ctx_new(&ctx), ec1_ctx_set_vm(ctx, &vm), ec1_ctx_free(ctx));
	BENCH("ctx_set_process", ec1_ctx_new(&ctx), ec1_ctx_set_process(ctx, &proc),
	      ec1_ctx_free(ctx));
	BENCH("ctx_set_kernel (stat)", ec1_ctx_new(&ctx), ec1_ctx_set_kernel(ctx, &kernel),
	      ec1_ctx_free(ctx));
	BENCH("ctx_set_timeout", ec1_ctx_new(&ctx), ec1_ctx_set_timeout(ctx, 1000),
	      ec1_ctx_free(ctx));
	BENCH("ctx_set_vm (invalid)", ec1_ctx_new(&ctx),
	      ec1_ctx_set_vm(ctx, &(struct ec1_vm_config){0}), ec1_ctx_free(ctx));
	return 0;
}
