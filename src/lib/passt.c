/*
 * passt (Debian's `passt`) started for a context: `passt -f -q -F 3` on one end of a stream
 * socket pair, the published ports as -t/-u "ADDR/HOST:GUEST", our end then serves as passt_fd.
 * The link's MTU is passt's own default, 65,520, said to passt (--mtu) and to the guest (the
 * device's MTU): a TCP segment of up to 64 KiB a frame.
 *
 * Readiness: passt writes its pid file (-P) only after it has bound every published port, and
 * exits 1 naming the port when one is taken, so the call waits for the one or the other. passt
 * drops to an unprivileged user when started as root; it is told which (--runas nobody) and
 * given a directory of that user's for the pid file. Its stderr goes to a file there, read
 * back for the error message (at start, and at stop when it ended on its own with a failure).
 * It ends when our end closes (ec1_passt_stop also signals it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ec1_internal.h"

#define PASST_READY_MS	 10000
#define PASST_MAX_ARGS	 (16 + 2 * EC1_MAX_LIST)
#define PASST_SOCKET_BUF (4 << 20) /* bytes each end may have waiting in the socket pair */

/* passt's own words from its stderr file, the syslog complaints left out. */
static void passt_said(const char *dir, char *out, size_t size)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/stderr", dir);
	out[0] = 0;
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	char line[256];
	size_t n = 0;
	while (fgets(line, sizeof(line), f) && n + 2 < size) {
		line[strcspn(line, "\n")] = 0;
		if (!line[0] || strncmp(line, "Failed to send ", 15) == 0 ||
		    strstr(line, "Changing to nobody"))
			continue;
		n += (size_t)snprintf(out + n, size - n, "%s%s", n ? "; " : "", line);
	}
	fclose(f);
	if (n >= size)
		out[size - 1] = 0;
}

static void remove_dir(struct ec1_passt *p)
{
	if (!p->dir[0])
		return;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/pid", p->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/stderr", p->dir);
	unlink(path);
	rmdir(p->dir);
	p->dir[0] = 0;
}

void ec1_passt_stop(struct ec1_passt *p)
{
	/*
	 * passt that ended on its own while the VM ran (its sandbox refused, say) showed the guest
	 * only a closed link: its own words say why.
	 */
	int status;
	if (p->pid > 0 && waitpid(p->pid, &status, WNOHANG) == p->pid) {
		p->pid = 0;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			char said[512];
			passt_said(p->dir, said, sizeof(said));
			fprintf(stderr, "ec1: network: passt exited (status %d)%s%s\n",
				WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
				said[0] ? ": " : "", said);
		}
	}
	if (p->fd >= 0)
		close(p->fd);
	ec1_child_stop(p->pid, 1000);
	remove_dir(p);
	p->fd = -1;
	p->pid = 0;
}

/* The -t/-u argument for one port: "ADDR/HOST:GUEST" (ADDR IPv4 or IPv6). */
static void port_spec(const struct ec1_port *port, char *out, size_t size)
{
	char addr[INET6_ADDRSTRLEN];
	struct in_addr a = {port->host_addr};
	if (port->v6)
		inet_ntop(AF_INET6, port->host_addr6, addr, sizeof(addr));
	else
		inet_ntop(AF_INET, &a, addr, sizeof(addr));
	snprintf(out, size, "%s/%u:%u", addr, port->host_port, port->guest_port);
}

int ec1_passt_start(struct ec1_ctx *ctx, const char *path, const struct ec1_port *ports, size_t n,
		    struct ec1_passt *p)
{
	memset(p, 0, sizeof(*p));
	p->fd = -1;
	const char *tmp = getenv("TMPDIR");
	snprintf(p->dir, sizeof(p->dir), "%s/ec1-passt-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(p->dir)) {
		int e = errno;
		p->dir[0] = 0;
		return ec1_fail(ctx, EC1_EINVAL, "network.passt: a directory for passt: %s",
				strerror(e));
	}
	/* As root passt becomes nobody: the pid file's directory must be nobody's. */
	uid_t uid = geteuid();
	gid_t gid = getegid();
	if (uid == 0) {
		struct passwd *pw = getpwnam("nobody");
		uid = pw ? pw->pw_uid : 65534;
		gid = pw ? pw->pw_gid : 65534;
		if (chown(p->dir, uid, gid) < 0) {
			int e = errno;
			remove_dir(p);
			return ec1_fail(ctx, EC1_EINVAL, "network.passt: chown %s: %s", p->dir,
					strerror(e));
		}
	}
	char runas[32], pidfile[PATH_MAX], errfile[PATH_MAX];
	snprintf(runas, sizeof(runas), "%u:%u", (unsigned)uid, (unsigned)gid);
	snprintf(pidfile, sizeof(pidfile), "%s/pid", p->dir);
	snprintf(errfile, sizeof(errfile), "%s/stderr", p->dir);
	static char specs[EC1_MAX_LIST][64]; /* "IPV6/HOST:GUEST" at most 57 */
	const char *argv[PASST_MAX_ARGS];
	size_t argc = 0;
	const char *prog = path ? path : "passt";
	char mtu[8];
	snprintf(mtu, sizeof(mtu), "%d", EC1_PASST_MTU);
	const char *fixed[] = {prog,  "-f", "-q",    "-F",    "3", "--runas",
			       runas, "-P", pidfile, "--mtu", mtu};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		argv[argc++] = fixed[i];
	for (size_t i = 0; i < n && i < EC1_MAX_LIST; i++) {
		port_spec(&ports[i], specs[i], sizeof(specs[i]));
		argv[argc++] = ports[i].udp ? "-u" : "-t";
		argv[argc++] = specs[i];
	}
	argv[argc] = NULL;

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		remove_dir(p);
		return ec1_fail(ctx, EC1_EINVAL, "network.passt: socketpair: %s", strerror(errno));
	}
	/*
	 * Room in the socket for what passt sends the guest: passt drops a frame whose write finds
	 * the socket full and sends it again later, which cost half the host-to-guest throughput
	 * with the default size (bench/net). SO_SNDBUFFORCE goes past wmem_max for root.
	 */
	for (int i = 0; i < 2; i++) {
		int size = PASST_SOCKET_BUF;
		if (setsockopt(sv[i], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
			setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	}
	int null_fd = ec1_high_fd(open("/dev/null", O_RDWR | O_CLOEXEC));
	int err_fd = ec1_high_fd(open(errfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	int child_fd = ec1_high_fd(sv[1]);
	p->fd = ec1_high_fd(sv[0]);
	if (null_fd < 0 || err_fd < 0 || child_fd < 0 || p->fd < 0) {
		int e = errno;
		close(null_fd);
		close(err_fd);
		close(child_fd);
		ec1_passt_stop(p);
		return ec1_fail(ctx, EC1_EINVAL, "network.passt: %s", strerror(e));
	}
	pid_t pid = fork();
	if (pid == 0) {
		/* Only async-signal-safe calls from here to exec. */
		ec1_child_reset();
		if (dup2(null_fd, 0) < 0 || dup2(null_fd, 1) < 0 || dup2(err_fd, 2) < 0 ||
		    dup2(child_fd, 3) < 0)
			_exit(126);
		if (strchr(prog, '/'))
			execv(prog, (char *const *)argv);
		else
			execvp(prog, (char *const *)argv);
		_exit(127);
	}
	int e = errno;
	close(null_fd);
	close(err_fd);
	close(child_fd);
	if (pid < 0) {
		ec1_passt_stop(p);
		return ec1_fail(ctx, EC1_EINVAL, "network.passt: fork: %s", strerror(e));
	}
	p->pid = pid;
	long deadline = ec1_now_ms() + PASST_READY_MS;
	for (;;) {
		int status;
		if (access(pidfile, F_OK) == 0)
			return EC1_OK;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			p->pid = 0;
			char said[512];
			passt_said(p->dir, said, sizeof(said));
			ec1_passt_stop(p);
			if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
				return ec1_fail(ctx, EC1_EINVAL,
						"network.passt: %s: not found (Debian: apt-get "
						"install passt)",
						prog);
			return ec1_fail(
				ctx, EC1_EINVAL, "network.passt: %s exited (status %d)%s%s", prog,
				WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
				said[0] ? ": " : "", said);
		}
		if (ec1_now_ms() >= deadline) {
			ec1_passt_stop(p);
			return ec1_fail(ctx, EC1_EINVAL, "network.passt: %s not ready after %d s",
					prog, PASST_READY_MS / 1000);
		}
		nanosleep(&(struct timespec){.tv_nsec = 1000 * 1000}, NULL);
	}
}
