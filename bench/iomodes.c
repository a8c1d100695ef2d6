/*
 * iomodes: the choice bench/iomodes measures for virtio-blk's worker: preadv/pwritev, one call
 * per request (what the worker does), against io_uring (liburing) at queue depth 1 (the same
 * requests, one in flight) and at queue depth DEPTH (as many in flight as a guest could queue),
 * on one image file: 4 KiB random reads, 1 MiB sequential reads and writes, and 4 KiB random
 * writes. Each figure is the median of three passes; DIRECT=1 opens the file with O_DIRECT
 * (the file's page cache out of the way, what a disk costs), otherwise it is read through the
 * page cache (warmed first: what a VM whose image is cached costs).
 *
 * usage: iomodes FILE MIB [DEPTH]   (FILE is created, filled and removed)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PASSES 3

enum pattern { RAND_READ_4K, SEQ_READ_1M, SEQ_WRITE_1M, RAND_WRITE_4K, NR_PATTERNS };
static const char *const pattern_names[] = {"4k-randread", "1m-seqread", "1m-seqwrite",
					    "4k-randwrite"};
static const size_t pattern_size[] = {4096, 1 << 20, 1 << 20, 4096};
static const int pattern_write[] = {0, 0, 1, 1};

static int fd;
static uint64_t file_size;
static unsigned int depth = 32;
static char *bufs;
static long requests_per_pass[NR_PATTERNS];

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t offset_of(enum pattern p, long i, uint64_t *seed)
{
	size_t size = pattern_size[p];
	uint64_t blocks = file_size / size;
	if (p == SEQ_READ_1M || p == SEQ_WRITE_1M)
		return ((uint64_t)i % blocks) * size;
	*seed ^= *seed << 13;
	*seed ^= *seed >> 7;
	*seed ^= *seed << 17;
	return (*seed % blocks) * size;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "iomodes: %s: %s\n", what, strerror(err));
	exit(1);
}

/* One request at a time, as the worker does now: the figure is requests per second. */
static double run_sync(enum pattern p)
{
	uint64_t seed = 88172645463325252ull;
	long n = requests_per_pass[p];
	double t = now();
	for (long i = 0; i < n; i++) {
		struct iovec iov = {bufs, pattern_size[p]};
		off_t off = (off_t)offset_of(p, i, &seed);
		ssize_t r = pattern_write[p] ? pwritev(fd, &iov, 1, off) : preadv(fd, &iov, 1, off);
		if (r != (ssize_t)pattern_size[p])
			die("preadv/pwritev", r < 0 ? errno : EIO);
	}
	return n / (now() - t);
}

static double run_uring(enum pattern p, unsigned int qd)
{
	struct io_uring ring;
	int err = io_uring_queue_init(qd, &ring, 0);
	if (err)
		die("io_uring_queue_init", -err);
	uint64_t seed = 88172645463325252ull;
	long n = requests_per_pass[p], submitted = 0, done = 0;
	struct iovec *iov = calloc(qd, sizeof(*iov));
	unsigned int *free_slots = calloc(qd, sizeof(*free_slots)), nr_free = qd;
	for (unsigned int s = 0; s < qd; s++) {
		free_slots[s] = s;
		iov[s].iov_base = bufs + (size_t)s * pattern_size[p];
		iov[s].iov_len = pattern_size[p];
	}
	double t = now();
	while (done < n) {
		while (submitted < n && nr_free) {
			unsigned int s = free_slots[--nr_free];
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			off_t off = (off_t)offset_of(p, submitted, &seed);
			if (pattern_write[p])
				io_uring_prep_writev(sqe, fd, &iov[s], 1, off);
			else
				io_uring_prep_readv(sqe, fd, &iov[s], 1, off);
			io_uring_sqe_set_data64(sqe, s);
			submitted++;
		}
		struct io_uring_cqe *cqe;
		err = io_uring_submit_and_wait(&ring, 1);
		if (err < 0)
			die("io_uring_submit_and_wait", -err);
		unsigned int head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			if (cqe->res != (int)pattern_size[p])
				die("io_uring request", cqe->res < 0 ? -cqe->res : EIO);
			free_slots[nr_free++] = (unsigned int)cqe->user_data;
			seen++;
		}
		io_uring_cq_advance(&ring, seen);
		done += seen;
	}
	double rate = n / (now() - t);
	io_uring_queue_exit(&ring);
	free(iov);
	free(free_slots);
	return rate;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double (*fn)(enum pattern, unsigned int), enum pattern p, unsigned int qd)
{
	double v[PASSES];
	for (int i = 0; i < PASSES; i++)
		v[i] = fn(p, qd);
	qsort(v, PASSES, sizeof(v[0]), cmp_double);
	return v[PASSES / 2];
}

static double sync_fn(enum pattern p, unsigned int qd)
{
	(void)qd;
	return run_sync(p);
}

static void print(enum pattern p, const char *method, double rate)
{
	if (pattern_size[p] >= (1 << 20))
		printf("  %-13s %-16s %10.1f MB/s\n", pattern_names[p], method,
		       rate * pattern_size[p] / 1e6);
	else
		printf("  %-13s %-16s %10.0f IOPS\n", pattern_names[p], method, rate);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: iomodes FILE MIB [DEPTH]\n");
		return 2;
	}
	const char *path = argv[1];
	uint64_t mib = strtoull(argv[2], NULL, 10);
	if (argc > 3)
		depth = (unsigned int)atoi(argv[3]);
	if (!mib || depth < 1 || depth > 256) {
		fprintf(stderr, "iomodes: MIB must be > 0 and DEPTH 1-256\n");
		return 2;
	}
	const char *direct = getenv("DIRECT");
	int use_direct = direct && *direct == '1';
	file_size = mib << 20;
	if (posix_memalign((void **)&bufs, 4096, (size_t)depth << 20))
		die("memory", ENOMEM);
	memset(bufs, 0x5a, (size_t)depth << 20);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | (use_direct ? O_DIRECT : 0), 0600);
	if (fd < 0)
		die(path, errno);
	for (uint64_t i = 0; i < mib; i++)
		if (pwrite(fd, bufs, 1 << 20, (off_t)(i << 20)) != 1 << 20)
			die("filling the file", errno);
	if (fdatasync(fd))
		die("fdatasync", errno);
	/* About a second of work per pass at hardware speed, fewer under emulation (MIB small). */
	requests_per_pass[RAND_READ_4K] = requests_per_pass[RAND_WRITE_4K] = (long)mib * 64;
	requests_per_pass[SEQ_READ_1M] = requests_per_pass[SEQ_WRITE_1M] = (long)mib;
	printf("iomodes: %s, %llu MiB, %s, queue depth %u for io_uring's deep figure\n", path,
	       (unsigned long long)mib, use_direct ? "O_DIRECT" : "page cache", depth);
	for (enum pattern p = 0; p < NR_PATTERNS; p++) {
		print(p, "preadv/pwritev", median(sync_fn, p, 1));
		print(p, "io_uring qd1", median(run_uring, p, 1));
		char name[32];
		snprintf(name, sizeof(name), "io_uring qd%u", depth);
		print(p, name, median(run_uring, p, depth));
	}
	unlink(path);
	return 0;
}
