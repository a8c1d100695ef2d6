/*
 * The VMM threads' seccomp allow-lists (sandbox.h): the BPF programs tools/sandbox-bpf made of
 * sandbox_rules.c at build time, installed with one system call.
 */
#include "sandbox.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox_bpf.h"

/* EC1_SECCOMP=kill: name the refused call and the thread on stderr, then end the process (125). */
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	char msg[160] = "ec1: seccomp: a VMM thread (", num[16], name[17] = "";
	prctl(PR_GET_NAME, name, 0, 0, 0);
	size_t len = strlen(msg), k = strnlen(name, 16);
	memcpy(msg + len, name, k);
	len += k;
	static const char mid[] = ") made system call ";
	memcpy(msg + len, mid, sizeof(mid) - 1);
	len += sizeof(mid) - 1;
	int n = 0, v = si->si_syscall;
	do
		num[n++] = (char)('0' + v % 10);
	while ((v /= 10) && n < 15);
	while (n)
		msg[len++] = num[--n];
	memcpy(msg + len, ", outside its allow-list\n", 26);
	ssize_t w = write(STDERR_FILENO, msg, len + 26);
	(void)w;
	_exit(125);
}

/* Which program: 0 refuses with EPERM, 1 traps (EC1_SECCOMP=kill); -1: none (off). */
static int mode(void)
{
	const char *e = getenv("EC1_SECCOMP");
	if (e && strcmp(e, "off") == 0)
		return -1;
	if (e && strcmp(e, "kill") == 0) {
		struct sigaction sa = {.sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO};
		sigemptyset(&sa.sa_mask);
		sigaction(SIGSYS, &sa, NULL);
		return 1;
	}
	return 0;
}

int sandbox_enter(enum sandbox_kind kind)
{
	if ((unsigned int)kind >= SANDBOX_KINDS)
		return -EINVAL;
	int m = mode();
	if (m < 0)
		return 0;
	struct sock_fprog prog = {.len = sandbox_bpf[kind][m].len,
				  .filter = (struct sock_filter *)sandbox_bpf[kind][m].filter};
	/* This thread alone (no TSYNC), as libseccomp's seccomp_load would install it. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		return -errno;
	return 0;
}
