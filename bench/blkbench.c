/*
 * blkbench: what bench/blk runs in the guest (and on the host, for the host's own figure): on
 * one block device or image file, sequential read and sequential write in 1 MiB requests, then
 * 4 KiB random reads, each timed with the monotonic clock. O_DIRECT in the guest, so the guest's
 * page cache is out of the way; on the host without it where the file system refuses it
 * (tmpfs). Static (musl), so it runs from the initramfs.
 *
 * usage: blkbench PATH MIB [RANDOM_READS]
 * prints: "seqread MB/s", "seqwrite MB/s", "randread IOPS" lines.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: blkbench PATH MIB [RANDOM_READS]\n");
		return 2;
	}
	const char *path = argv[1];
	uint64_t mib = strtoull(argv[2], NULL, 10);
	long reads = argc > 3 ? atol(argv[3]) : 20000;
	int fd = open(path, O_RDWR | O_DIRECT);
	const char *mode = "O_DIRECT";
	if (fd < 0 && errno == EINVAL) {
		fd = open(path, O_RDWR);
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
	uint64_t seed = 88172645463325252ull, blocks = mib * 256;
	t = now();
	for (long i = 0; i < reads; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		if (pread(fd, buf, 4096, (off_t)((seed % blocks) * 4096)) != 4096) {
			perror("random read");
			return 1;
		}
	}
	double rr = now() - t;
	printf("mode %s\n", mode);
	printf("seqwrite %.1f MB/s\n", mib * 1.048576 / w);
	printf("seqread %.1f MB/s\n", mib * 1.048576 / r);
	printf("randread %.0f IOPS\n", reads / rr);
	close(fd);
	return 0;
}
