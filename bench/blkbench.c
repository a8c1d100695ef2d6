/*
 * blkbench: what bench/blk runs in the guest (and on the host, for the host's own figure): on
 * one block device or image file, sequential read and sequential write in 1 MiB requests, then
 * 4 KiB random reads one at a time, then 4 KiB random reads from JOBS processes at once (JOBS
 * requests in flight: what a database or a parallel build asks of a disk, and where a device
 * that takes several requests per notification pays), each timed with the monotonic clock.
 * O_DIRECT in the guest, so the guest's page cache is out of the way; on the host without it
 * where the file system refuses it (tmpfs). Static (musl), so it runs from the initramfs.
 *
 * usage: blkbench PATH MIB [RANDOM_READS [JOBS]]   (JOBS default 16, 0: none)
 * prints: "seqread MB/s", "seqwrite MB/s", "randread IOPS", "randreadqd IOPS" lines.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t next(uint64_t *seed)
{
	*seed ^= *seed << 13;
	*seed ^= *seed >> 7;
	*seed ^= *seed << 17;
	return *seed;
}

/* reads random 4 KiB blocks of blocks; 0, or -1 having said why. */
static int random_reads(int fd, void *buf, uint64_t seed, uint64_t blocks, long reads)
{
	for (long i = 0; i < reads; i++)
		if (pread(fd, buf, 4096, (off_t)((next(&seed) % blocks) * 4096)) != 4096) {
			perror("random read");
			return -1;
		}
	return 0;
}

/*
 * jobs processes, each with its own descriptor, buffer and seed, reads/jobs random reads each,
 * all let go at once: reads per second from the start to the last one's end, or -1.
 */
static double parallel_reads(const char *path, int flags, uint64_t blocks, long reads, int jobs)
{
	int go[2];
	if (pipe(go) < 0)
		return -1;
	int bad = 0, st;
	for (int j = 0; j < jobs && !bad; j++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			bad = 1; /* those started go at the close below, and are waited for */
		} else if (pid == 0) {
			close(go[1]);
			int fd = open(path, flags);
			void *buf;
			char c;
			if (fd < 0 || posix_memalign(&buf, 4096, 4096))
				_exit(1);
			if (read(go[0], &c, 1) < 0) /* 0 at the parent's close: go */
				_exit(1);
			_exit(random_reads(fd, buf, 0x9e3779b97f4a7c15ull * (uint64_t)(j + 1),
					   blocks, reads / jobs)
				      ? 1
				      : 0);
		}
	}
	close(go[0]);
	double t = now();
	close(go[1]);
	while (wait(&st) > 0)
		bad |= !WIFEXITED(st) || WEXITSTATUS(st);
	t = now() - t;
	return bad ? -1 : (double)(reads / jobs * jobs) / t;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: blkbench PATH MIB [RANDOM_READS [JOBS]]\n");
		return 2;
	}
	const char *path = argv[1];
	uint64_t mib = strtoull(argv[2], NULL, 10);
	long reads = argc > 3 ? atol(argv[3]) : 20000;
	int jobs = argc > 4 ? atoi(argv[4]) : 16;
	int flags = O_RDWR | O_DIRECT;
	int fd = open(path, flags);
	const char *mode = "O_DIRECT";
	if (fd < 0 && errno == EINVAL) {
		flags = O_RDWR;
		fd = open(path, flags);
		mode = "buffered";
	}
	if (fd < 0) {
		perror(path);
		return 1;
	}
	void *buf;
	if (posix_memalign(&buf, 4096, 1 << 20))
		return 1;
	memset(buf, 0xa5, 1 << 20);
	double t = now();
	for (uint64_t i = 0; i < mib; i++)
		if (pwrite(fd, buf, 1 << 20, (off_t)(i << 20)) != 1 << 20) {
			perror("write");
			return 1;
		}
	if (fdatasync(fd) < 0)
		perror("fdatasync");
	double w = now() - t;
	t = now();
	for (uint64_t i = 0; i < mib; i++)
		if (pread(fd, buf, 1 << 20, (off_t)(i << 20)) != 1 << 20) {
			perror("read");
			return 1;
		}
	double r = now() - t;
	uint64_t blocks = mib * 256;
	t = now();
	if (random_reads(fd, buf, 88172645463325252ull, blocks, reads))
		return 1;
	double rr = now() - t;
	double qd = 0;
	if (jobs > 0 && (qd = parallel_reads(path, flags, blocks, reads, jobs)) < 0) {
		fprintf(stderr, "blkbench: %d parallel readers failed\n", jobs);
		return 1;
	}
	printf("mode %s\n", mode);
	printf("seqwrite %.1f MB/s\n", mib * 1.048576 / w);
	printf("seqread %.1f MB/s\n", mib * 1.048576 / r);
	printf("randread %.0f IOPS\n", reads / rr);
	if (jobs > 0)
		printf("randreadqd %.0f IOPS %d jobs\n", qd, jobs);
	close(fd);
	return 0;
}
