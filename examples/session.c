/*
 * A VM that stays up, through the API: start it, run processes in it with ec1_exec (stdin from
 * a pipe, a signal, their statuses), stop it. Prints what each process said and its status.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ec1/ec1.h"

/* One process in the VM: stdin_fd as its stdin, sig (if any) sent once it runs; its status. */
static int exec_one(struct ec1_ctx *ctx, const char *script, int stdin_fd, int sig)
{
	struct ec1_exec *e;
	const char *const argv[] = {"sh", "-c", script, NULL};
	struct ec1_exec_config c = {.exec_path = "/bin/sh",
				    .argv = argv,
				    .stdin_fd = stdin_fd,
				    .stdout_fd = STDOUT_FILENO,
				    .stderr_fd = STDERR_FILENO};
	int status = -1, err = ec1_exec_new(ec1_ctx_exec_socket(ctx), &e);
	err = err ?: ec1_exec_start(e, &c);
	if (!err && sig)
		err = ec1_exec_signal(e, sig); /* sent by ec1_exec_wait, after the request */
	err = err ?: ec1_exec_wait(e, &status);
	if (err)
		fprintf(stderr, "session: exec: %s: %s\n", ec1_strerror(err),
			e ? ec1_exec_message(e) : "");
	ec1_exec_free(e);
	return err ? -1 : status;
}

int main(void)
{
	struct ec1_ctx *ctx;
	int err = ec1_ctx_new(&ctx);
	struct ec1_vm_config vm = {.num_vcpus = 1, .ram_mib = 256};
	err = err ?: ec1_ctx_set_vm(ctx, &vm);
	err = err ?: ec1_ctx_start(ctx);
	if (err) {
		fprintf(stderr, "session: start: %s: %s\n", ec1_strerror(err),
			ec1_ctx_message(ctx));
		ec1_ctx_free(ctx);
		return 1;
	}
	int p[2];
	if (pipe(p) < 0 || write(p[1], "from the host\n", 14) != 14)
		return 1;
	close(p[1]);
	int a = exec_one(ctx, "read line; echo \"got: $line\"; exit 5", p[0], 0);
	close(p[0]);
	/* A process that sleeps, killed by the signal sent as soon as it runs. */
	int b = exec_one(ctx, "sleep 30", -1, SIGKILL);
	int vm_status = -1;
	err = ec1_ctx_stop(ctx, 1000, &vm_status);
	printf("statuses: %d %d; vm %d (%s)\n", a, b, vm_status, err ? ec1_ctx_message(ctx) : "ok");
	ec1_ctx_free(ctx);
	return 0;
}
