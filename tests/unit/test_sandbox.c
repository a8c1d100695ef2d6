/*
 * The VMM threads' seccomp allow-lists: in a thread that entered one, what no VMM thread needs is
 * refused (exec, sockets, ptrace, fork, device nodes), what its kind needs works, and the other
 * threads of the process are not filtered.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../src/vmm/sandbox.h"
#include "check.h"

static char dir[] = "/tmp/ec1-sandbox-XXXXXX";

/* A system call's errno, 0 when it succeeded. */
#define ERRNO_OF(call) ((call) < 0 ? errno : 0)

static void *in_thread(void *arg)
{
	enum sandbox_kind kind = (enum sandbox_kind)(long)arg;
	int dfd = open(dir, O_PATH | O_DIRECTORY); /* as the server opens its share: before */
	CHECK(sandbox_enter(kind) == 0);
	if (kind == SANDBOX_VSOCK) {
		/* Unix stream sockets of its own, and no other kind. */
		int u = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		CHECK(u >= 0);
		close(u);
		CHECK(ERRNO_OF(socket(AF_UNIX, SOCK_DGRAM, 0)) == EPERM);
		CHECK(ERRNO_OF(socket(AF_INET, SOCK_STREAM, 0)) == EPERM);
		CHECK(ERRNO_OF(socket(AF_NETLINK, SOCK_RAW, 0)) == EPERM);
		CHECK(ERRNO_OF(openat(AT_FDCWD, "/etc/passwd", O_RDONLY)) == EPERM);
		char *const argv[] = {"true", NULL};
		CHECK(ERRNO_OF(execve("/bin/true", argv, argv + 1)) == EPERM);
		close(dfd);
		return NULL;
	}
	CHECK(ERRNO_OF(socket(AF_UNIX, SOCK_STREAM, 0)) == EPERM);
	CHECK(ERRNO_OF(socket(AF_NETLINK, SOCK_RAW, 0)) == EPERM);
	CHECK(ERRNO_OF(socket(AF_PACKET, SOCK_RAW, 0)) == EPERM);
	if (kind == SANDBOX_NAT) {
		/* Its own internet sockets, and nothing that names a path. */
		int s = socket(AF_INET, SOCK_DGRAM, 0), s6 = socket(AF_INET6, SOCK_STREAM, 0);
		CHECK(s >= 0 && s6 >= 0);
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_addr.s_addr = htonl(0x7f000001)};
		CHECK(ERRNO_OF(bind(s, (struct sockaddr *)&a, sizeof(a))) == 0);
		close(s);
		close(s6);
		CHECK(ERRNO_OF(openat(AT_FDCWD, "/etc/passwd", O_RDONLY)) == EACCES);
		CHECK(ERRNO_OF(openat(dfd, ".", O_RDONLY | O_DIRECTORY)) == EACCES);
		close(dfd);
		return NULL;
	}
	CHECK(ERRNO_OF(socket(AF_INET, SOCK_DGRAM, 0)) == EPERM);
	char *const argv[] = {"true", NULL};
	CHECK(ERRNO_OF(execve("/bin/true", argv, argv + 1)) == EPERM);
	CHECK(ERRNO_OF(ptrace(PTRACE_ATTACH, getppid(), 0, 0)) == EPERM);
	CHECK(ERRNO_OF(syscall(SYS_fork)) == EPERM);
	CHECK(ERRNO_OF(syscall(SYS_clone, 0, 0, 0, 0, 0)) == EPERM);
	/* Its own work: memory, descriptors it holds. */
	void *p = malloc(1 << 20);
	CHECK(p != NULL);
	free(p);
	if (kind != SANDBOX_FS) {
		CHECK(ERRNO_OF(openat(dfd, ".", O_RDONLY | O_DIRECTORY)) == EPERM);
		close(dfd);
		return NULL;
	}
	CHECK(dfd >= 0);
	CHECK(ERRNO_OF(mknodat(dfd, "fifo", S_IFIFO | 0600, 0)) == 0);
	CHECK(ERRNO_OF(mknodat(dfd, "null", S_IFCHR | 0600, makedev(1, 3))) == EPERM);
	CHECK(ERRNO_OF(mknodat(dfd, "blk", S_IFBLK | 0600, makedev(7, 0))) == EPERM);
	int fd = openat(dfd, "file", O_RDWR | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0 && pwrite(fd, "x", 1, 0) == 1);
	CHECK(ERRNO_OF(unlinkat(dfd, "file", 0)) == 0 && ERRNO_OF(unlinkat(dfd, "fifo", 0)) == 0);
	/* Paths from the working directory: never (every call names a descriptor it holds). */
	CHECK(ERRNO_OF(openat(AT_FDCWD, dir, O_PATH)) == EPERM);
	CHECK(ERRNO_OF(unlinkat(AT_FDCWD, "/tmp/ec1-sandbox-none", 0)) == EPERM);
	CHECK(ERRNO_OF(mkdirat(AT_FDCWD, "/tmp/ec1-sandbox-none", 0700)) == EPERM);
	CHECK(ERRNO_OF(renameat2(dfd, "a", AT_FDCWD, "/tmp/x", 0)) == EPERM);
	close(fd);
	close(dfd);
	return NULL;
}

static void run_kind(enum sandbox_kind kind)
{
	pthread_t t;
	CHECK(pthread_create(&t, NULL, in_thread, (void *)(long)kind) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	/* The filter was the thread's own: this one still may. */
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(s >= 0);
	close(s);
}

static void sandbox_vcpu_thread_refuses_exec_sockets_and_opens(void)
{
	run_kind(SANDBOX_VCPU);
}

static void sandbox_console_thread_refuses_exec_sockets_and_opens(void)
{
	run_kind(SANDBOX_CONSOLE);
}

static void sandbox_fs_thread_works_in_the_share_but_makes_no_devices(void)
{
	run_kind(SANDBOX_FS);
}

static void sandbox_nat_thread_has_inet_sockets_only(void)
{
	run_kind(SANDBOX_NAT);
}

static void sandbox_vsock_thread_has_unix_stream_sockets_only(void)
{
	run_kind(SANDBOX_VSOCK);
}

int main(void)
{
	unsetenv("EC1_SECCOMP");
	if (!mkdtemp(dir))
		return 1;
	TEST(sandbox_vcpu_thread_refuses_exec_sockets_and_opens);
	TEST(sandbox_console_thread_refuses_exec_sockets_and_opens);
	TEST(sandbox_fs_thread_works_in_the_share_but_makes_no_devices);
	TEST(sandbox_nat_thread_has_inet_sockets_only);
	TEST(sandbox_vsock_thread_has_unix_stream_sockets_only);
	rmdir(dir);
	return tests_failed != 0;
}
