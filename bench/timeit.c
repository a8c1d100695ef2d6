/*
 * timeit N CMD [ARGS...]: runs CMD N times (stdout and stderr to /dev/null unless TIMEIT_SHOW=1)
 * and prints each run's wall time in milliseconds, then "median MS". Exits non-zero if a run
 * fails, or takes longer than TIMEIT_LIMIT seconds (default 120: the run is killed, so a hung
 * run names itself instead of hanging the benchmark). busybox's date has no sub-second clock, so
 * bench/ uses this inside the rig.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ms.h"

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: timeit N CMD [ARGS...]\n");
		return 2;
	}
	int n = atoi(argv[1]);
	if (n < 1 || n > 10000)
		return 2;
	double *t = calloc((size_t)n, sizeof(double));
	bool show = getenv("TIMEIT_SHOW") != NULL;
	int limit_s = getenv("TIMEIT_LIMIT") ? atoi(getenv("TIMEIT_LIMIT")) : 120;
	if (limit_s < 1)
		limit_s = 120;
	for (int i = 0; i < n; i++) {
		double start = now_ms();
		pid_t pid = fork();
		if (pid == 0) {
			if (!show) {
				int null = open("/dev/null", O_WRONLY);
				dup2(null, 1);
				dup2(null, 2);
			}
			execvp(argv[2], argv + 2);
			_exit(127);
		}
		if (pid < 0) {
			perror("timeit: fork");
			return 1;
		}
		/* Waits on a pidfd so that a hung run can be timed out without a signal handler. */
		int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pidfd >= 0) {
			struct pollfd p = {.fd = pidfd, .events = POLLIN};
			if (poll(&p, 1, limit_s * 1000) == 0) {
				kill(pid, SIGKILL);
				fprintf(stderr, "timeit: run %d of %s took over %d s; killed\n", i,
					argv[2], limit_s);
				waitpid(pid, NULL, 0);
				return 1;
			}
			close(pidfd);
		}
		int st;
		waitpid(pid, &st, 0);
		t[i] = now_ms() - start;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "timeit: run %d of %s failed (status 0x%x)\n", i, argv[2],
				st);
			return 1;
		}
		printf("%.3f\n", t[i]);
	}
	qsort(t, (size_t)n, sizeof(double), cmp_ms);
	printf("median %.3f\n", n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2);
	free(t);
	return 0;
}
