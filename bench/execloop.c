/*
 * bench/execloop: the exec round trip without a process's start: starts a VM through the API,
 * runs /bin/true in it N times with ec1_exec (each a new connection, request, exit status), and
 * prints each round trip's milliseconds, then "median MS" (timeit's format).
 * usage: execloop N [SOCKET]   (SOCKET: a running VM's exec socket, e.g. `ec1 start`'s, instead
 * of a VM of its own)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ec1/ec1.h"

#include "ms.h"

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 30;
	if (n < 1 || n > 100000)
		return 2;
	struct ec1_ctx *ctx = NULL;
	struct ec1_vm_config vm = {.num_vcpus = 1, .ram_mib = 512};
	int err = argc > 2 ? 0 : ec1_ctx_new(&ctx);
	err = err || argc > 2 ? err : ec1_ctx_set_vm(ctx, &vm);
	err = err || argc > 2 ? err : ec1_ctx_start(ctx);
	const char *sock = argc > 2 ? argv[2] : ec1_ctx_exec_socket(ctx);
	if (err) {
		fprintf(stderr, "execloop: %s: %s\n", ec1_strerror(err), ec1_ctx_message(ctx));
		return 1;
	}
	double *ms = calloc((size_t)n, sizeof(double));
	struct ec1_exec_config c = {
		.exec_path = "/bin/true", .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
	for (int i = 0; i < n && !err; i++) {
		struct ec1_exec *e;
		int status = -1;
		double t0 = now_ms();
		err = ec1_exec_new(sock, &e);
		err = err ?: ec1_exec_start(e, &c);
		err = err ?: ec1_exec_wait(e, &status);
		ms[i] = now_ms() - t0;
		if (err || status)
			fprintf(stderr, "execloop: %s (status %d)\n", e ? ec1_exec_message(e) : "",
				status);
		ec1_exec_free(e);
		printf("%.3f\n", ms[i]);
	}
	qsort(ms, (size_t)n, sizeof(double), cmp_ms);
	printf("median %.3f\n", ms[n / 2]);
	if (ctx)
		ec1_ctx_stop(ctx, 1000, NULL);
	ec1_ctx_free(ctx);
	return err ? 1 : 0;
}
