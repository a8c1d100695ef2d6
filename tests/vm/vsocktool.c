/*
 * vsocktool: the VM suite's vsock programs, static, for the guest side (AF_VSOCK, which busybox
 * lacks) and the host side (unix sockets, which the rig's busybox lacks too).
 *
 *   vsocktool connect PORT          connects to the host (CID 2) port PORT, copies stdin to it
 *                                   (then shuts its sending side) and it to stdout until it
 *                                   ends; "vsocktool: connect: REASON" and exit 1 when refused
 *   vsocktool listen PORT N         listens on vsock port PORT ("vsocktool: listening" on
 *                                   stdout), echoes N connections, each in a process of its own,
 *                                   then exits
 *   vsocktool many PORT N           N connections to the host's PORT open at once, a line sent
 *                                   on each and its echo read back; "vsocktool: A of N answered"
 *   vsocktool unix-echo PATH        a unix socket server at PATH echoing every connection (a
 *                                   process each) until killed; "vsocktool: ended" on stdout as
 *                                   each connection ends
 *   vsocktool unix-connect PATH [PORT]  connects to the unix socket PATH (again every 200 ms,
 *                                   60 s at most, until a connection is answered), with PORT
 *                                   first says "CONNECT PORT\n" and reads the "OK N\n" answer
 *                                   (printed on stderr); then copies as connect does
 *   vsocktool send PORT MIB         (bench/vsock) MIB MiB of zeros to the host's PORT, then waits
 *                                   for the far end to close; prints "tx MB/s"
 *   vsocktool recv PORT             (bench/vsock) reads the host's PORT until it ends; prints
 *                                   "rx MB/s"
 *   vsocktool unix-sink PATH        (bench/vsock) a unix server at PATH reading each connection
 *                                   to its end, one after another, until killed
 *   vsocktool unix-source PATH MIB  (bench/vsock) a unix server at PATH writing MIB MiB of zeros
 *                                   to each connection, one after another, until killed
 *   vsocktool unix-send PATH MIB, unix-recv PATH  as send and recv, to a unix socket (the
 *                                   host's own figure)
 *   vsocktool gen MIB               (bench/vsock) MIB MiB of zeros to stdout (the console's
 *                                   stream); prints "stdout MB/s" on stderr
 * exit 0, 1 when what it was to do failed, 2 on bad usage.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* linux/vm_sockets.h, which musl's headers do not carry. */
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
struct sockaddr_vm {
	unsigned short svm_family;
	unsigned short svm_reserved1;
	unsigned int svm_port;
	unsigned int svm_cid;
	unsigned char svm_zero[4];
};

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* stdin to fd (then shutdown), fd to stdout, both at once, until fd ends. */
static int copy(int fd)
{
	static char buf[65536];
	bool in_open = true;
	for (;;) {
		struct pollfd p[2] = {{fd, POLLIN, 0}, {0, in_open ? POLLIN : 0, 0}};
		if (poll(p, in_open ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (p[0].revents) {
			ssize_t r = read(fd, buf, sizeof(buf));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return r < 0;
			if (write_all(1, buf, (size_t)r) < 0)
				return 1;
		}
		if (in_open && p[1].revents) {
			ssize_t r = read(0, buf, sizeof(buf));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				shutdown(fd, SHUT_WR);
				in_open = false;
			} else if (write_all(fd, buf, (size_t)r) < 0) {
				return 1;
			}
		}
	}
}

static void echo(int fd)
{
	static char buf[65536];
	ssize_t r;
	while ((r = read(fd, buf, sizeof(buf))) > 0 || (r < 0 && errno == EINTR))
		if (r > 0 && write_all(fd, buf, (size_t)r) < 0)
			break;
	close(fd);
}

static int vsock_connect(unsigned int port)
{
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
	struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_port = port, .svm_cid = 2};
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		printf("vsocktool: connect: %s\n", strerror(errno));
		fflush(stdout);
		return -1;
	}
	return fd;
}

static int listen_vsock(unsigned int port, int n)
{
	int l = socket(AF_VSOCK, SOCK_STREAM, 0);
	struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_port = port, .svm_cid = -1U};
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 128) < 0) {
		perror("vsocktool: listen");
		return 1;
	}
	printf("vsocktool: listening\n");
	fflush(stdout);
	for (int i = 0; i < n; i++) {
		int fd = accept(l, NULL, NULL);
		if (fd < 0)
			return 1;
		if (fork() == 0) {
			echo(fd);
			_exit(0);
		}
		close(fd);
	}
	while (wait(NULL) > 0)
		;
	return 0;
}

static int many(unsigned int port, int n)
{
	int *fds = calloc((size_t)n, sizeof(int)), answered = 0;
	for (int i = 0; i < n; i++)
		fds[i] = vsock_connect(port);
	for (int i = 0; i < n; i++) {
		char line[32], back[32];
		int len = snprintf(line, sizeof(line), "hello %d\n", i);
		if (fds[i] < 0 || write_all(fds[i], line, (size_t)len) < 0)
			continue;
		int got = 0;
		while (got < len) {
			ssize_t r = read(fds[i], back + got, (size_t)(len - got));
			if (r <= 0)
				break;
			got += (int)r;
		}
		answered += got == len && memcmp(line, back, (size_t)len) == 0;
		close(fds[i]);
	}
	printf("vsocktool: %d of %d answered\n", answered, n);
	return answered != n;
}

static int unix_addr(const char *path, struct sockaddr_un *a)
{
	*a = (struct sockaddr_un){.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(a->sun_path))
		return -1;
	strcpy(a->sun_path, path);
	return 0;
}

static int unix_echo(const char *path)
{
	struct sockaddr_un a;
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	unlink(path);
	if (unix_addr(path, &a) < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(l, 256) < 0) {
		perror("vsocktool: unix-echo");
		return 1;
	}
	signal(SIGCHLD, SIG_IGN); /* children reaped by the kernel */
	for (;;) {
		int fd = accept(l, NULL, NULL);
		if (fd < 0)
			continue;
		if (fork() == 0) {
			echo(fd);
			printf("vsocktool: ended\n");
			fflush(stdout);
			_exit(0);
		}
		close(fd);
	}
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int unix_connect(const char *path, const char *port)
{
	struct sockaddr_un a;
	if (unix_addr(path, &a) < 0)
		return 2;
	for (double end = now() + 60; now() < end; usleep(200000)) {
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			close(fd);
			continue;
		}
		if (!port)
			return copy(fd);
		char line[64], ok[32];
		int len = snprintf(line, sizeof(line), "CONNECT %s\n", port), got = 0;
		if (write_all(fd, line, (size_t)len) < 0) {
			close(fd);
			continue;
		}
		/* "OK N\n", a byte at a time: what follows is the guest's. */
		while (got < (int)sizeof(ok) - 1 && read(fd, ok + got, 1) == 1 && ok[got] != '\n')
			got++;
		ok[got] = 0;
		if (strncmp(ok, "OK ", 3) != 0) {
			close(fd); /* the guest does not listen yet */
			continue;
		}
		fprintf(stderr, "vsocktool: %s\n", ok);
		return copy(fd);
	}
	fprintf(stderr, "vsocktool: unix-connect: no answer at %s in 60 s\n", path);
	return 1;
}

/* MIB MiB of zeros to fd, then its end awaited; prints "tx MB/s" (MB = 10^6 bytes). */
static int send_mib(int fd, long mib)
{
	static char buf[1 << 16];
	double t0 = now();
	for (long left = mib << 20; left > 0; left -= (long)sizeof(buf))
		if (write_all(fd, buf, sizeof(buf)) < 0)
			return 1;
	shutdown(fd, SHUT_WR);
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	printf("tx %.0f\n", (double)(mib << 20) / (now() - t0) / 1e6);
	return 0;
}

/* fd read to its end; prints "rx MB/s". */
static int recv_all(int fd)
{
	static char buf[1 << 16];
	double t0 = now();
	long long got = 0;
	ssize_t r;
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		got += r;
	printf("rx %.0f\n", (double)got / (now() - t0) / 1e6);
	return r < 0;
}

/* A unix server at path: each connection read to its end (mib < 0) or sent mib MiB. */
static int unix_bench_server(const char *path, long mib)
{
	struct sockaddr_un a;
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	unlink(path);
	if (unix_addr(path, &a) < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(l, 16) < 0) {
		perror("vsocktool: unix server");
		return 1;
	}
	static char buf[1 << 16];
	for (;;) {
		int fd = accept(l, NULL, NULL);
		if (fd < 0)
			continue;
		if (mib < 0)
			while (read(fd, buf, sizeof(buf)) > 0)
				;
		else
			for (long left = mib << 20; left > 0; left -= (long)sizeof(buf))
				if (write_all(fd, buf, sizeof(buf)) < 0)
					break;
		close(fd);
	}
}

static int unix_dial(const char *path)
{
	struct sockaddr_un a;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	for (int i = 0; i < 300; i++, usleep(100000))
		if (unix_addr(path, &a) == 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			return fd;
	return -1;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	const char *m = argc > 1 ? argv[1] : "";
	if (argc == 3 && strcmp(m, "connect") == 0) {
		int fd = vsock_connect((unsigned int)atoi(argv[2]));
		return fd < 0 ? 1 : copy(fd);
	}
	if (argc == 4 && strcmp(m, "listen") == 0)
		return listen_vsock((unsigned int)atoi(argv[2]), atoi(argv[3]));
	if (argc == 4 && strcmp(m, "many") == 0)
		return many((unsigned int)atoi(argv[2]), atoi(argv[3]));
	if (argc == 3 && strcmp(m, "unix-echo") == 0)
		return unix_echo(argv[2]);
	if ((argc == 3 || argc == 4) && strcmp(m, "unix-connect") == 0)
		return unix_connect(argv[2], argc == 4 ? argv[3] : NULL);
	if (argc == 4 && strcmp(m, "send") == 0) {
		int fd = vsock_connect((unsigned int)atoi(argv[2]));
		return fd < 0 ? 1 : send_mib(fd, atol(argv[3]));
	}
	if (argc == 3 && strcmp(m, "recv") == 0) {
		int fd = vsock_connect((unsigned int)atoi(argv[2]));
		return fd < 0 ? 1 : recv_all(fd);
	}
	if (argc == 3 && strcmp(m, "gen") == 0) {
		static char buf[1 << 16];
		long mib = atol(argv[2]);
		double t0 = now();
		for (long left = mib << 20; left > 0; left -= (long)sizeof(buf))
			if (write_all(1, buf, sizeof(buf)) < 0)
				return 1;
		fprintf(stderr, "stdout %.0f\n", (double)(mib << 20) / (now() - t0) / 1e6);
		return 0;
	}
	if (argc == 3 && strcmp(m, "unix-sink") == 0)
		return unix_bench_server(argv[2], -1);
	if (argc == 4 && strcmp(m, "unix-source") == 0)
		return unix_bench_server(argv[2], atol(argv[3]));
	if (argc == 4 && strcmp(m, "unix-send") == 0) {
		int fd = unix_dial(argv[2]);
		return fd < 0 ? 1 : send_mib(fd, atol(argv[3]));
	}
	if (argc == 3 && strcmp(m, "unix-recv") == 0) {
		int fd = unix_dial(argv[2]);
		return fd < 0 ? 1 : recv_all(fd);
	}
	fprintf(stderr, "usage: see tests/vm/vsocktool.c\n");
	return 2;
}
