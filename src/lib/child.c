/*
 * Helper processes the library starts for a network (vmnet-helper, passt): what starting and
 * stopping one takes, shared by vmnet.c and passt.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ec1_internal.h"

long ec1_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

bool ec1_reap_within(pid_t pid, long ms, int *status)
{
	long deadline = ec1_now_ms() + ms;
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD))
			return true;
		if (ec1_now_ms() >= deadline)
			return false;
		nanosleep(&(struct timespec){.tv_nsec = 2 * 1000 * 1000}, NULL);
	}
}

void ec1_child_stop(pid_t pid, long grace_ms)
{
	if (pid <= 0)
		return;
	int status;
	kill(pid, SIGTERM);
	if (!ec1_reap_within(pid, grace_ms, &status)) {
		kill(pid, SIGKILL);
		ec1_reap_within(pid, 60 * 1000, &status);
	}
}

int ec1_high_fd(int fd)
{
	if (fd < 0 || fd > 3)
		return fd;
	int h = fcntl(fd, F_DUPFD_CLOEXEC, 4);
	close(fd);
	return h;
}

void ec1_child_reset(void)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setpgid(0, 0); /* the terminal's ^C is ours to handle; ec1 stops the helper */
}
