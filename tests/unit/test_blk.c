/*
 * Disk images and virtio-blk requests (src/vmm/disk, src/vmm/virtio/blk_req.c) on scratch files:
 * each request type, what the guest may get wrong (past the end, unaligned, split headers, no
 * status byte, bad segments), read-only images, locks, and what a path may name.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/vmm/disk/disk.h"
#include "../../src/vmm/virtio/blk_req.h"
#include "check.h"

#define DISK_SIZE (1 << 20)

static char dir[] = "/tmp/ec1-test-blk-XXXXXX";
static char img[256];
static struct blk_target target;
static struct virtq_chain chain;

/* A scratch image of DISK_SIZE bytes, byte i = i * 7 mod 251. */
static void make_image(const char *path, size_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	char *buf = malloc(size);
	for (size_t i = 0; i < size; i++)
		buf[i] = (char)(i * 7 % 251);
	CHECK(fd >= 0 && write(fd, buf, size) == (ssize_t)size);
	free(buf);
	close(fd);
}

static struct disk *open_disk(const char *path, enum disk_format fmt, bool ro)
{
	struct disk *d = NULL;
	char msg[256];
	int err = disk_open(path, fmt, ro, &d, msg, sizeof(msg));
	if (err)
		printf("    disk_open: %s\n", msg);
	return d;
}

struct hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

/* A chain: header (split in two descriptors), data out or in, one status byte. */
static uint8_t status;
static void build(uint32_t type, uint64_t sector, void *out_data, size_t out_len, void *in_data,
		  size_t in_len)
{
	static struct hdr h;
	h = (struct hdr){type, 0, sector};
	memset(&chain, 0, sizeof(chain));
	chain.out[0] = (struct iovec){&h, 5};
	chain.out[1] = (struct iovec){(char *)&h + 5, sizeof(h) - 5};
	chain.n_out = 2;
	chain.out_len = sizeof(h);
	if (out_len) {
		chain.out[chain.n_out++] = (struct iovec){out_data, out_len};
		chain.out_len += out_len;
	}
	if (in_len) {
		chain.in[chain.n_in++] = (struct iovec){in_data, in_len};
		chain.in_len += in_len;
	}
	status = 0xff;
	chain.in[chain.n_in++] = (struct iovec){&status, 1};
	chain.in_len += 1;
}

static void setup(void)
{
	snprintf(img, sizeof(img), "%s/a.img", dir);
	make_image(img, DISK_SIZE);
	memset(&target, 0, sizeof(target));
	target.disk = open_disk(img, DISK_RAW, false);
	memcpy(target.id, "data-1", 6);
}

static void teardown(void)
{
	disk_close(target.disk);
	target.disk = NULL;
	unlink(img);
}

static void reads_and_writes(void)
{
	setup();
	CHECK(target.disk && target.disk->size == DISK_SIZE);
	char buf[1024], want[1024];
	build(0, 3, NULL, 0, buf, sizeof(buf));
	CHECK(blk_handle(&target, &chain) == 1025 && status == 0);
	for (size_t i = 0; i < sizeof(want); i++)
		want[i] = (char)((3 * 512 + i) * 7 % 251);
	CHECK(memcmp(buf, want, sizeof(buf)) == 0);
	/* A write, split over two buffers, read back through the file. */
	memset(buf, 'w', sizeof(buf));
	build(1, 10, buf, 512, NULL, 0);
	chain.out[chain.n_out++] = (struct iovec){buf + 512, 512};
	chain.out_len += 512;
	CHECK(blk_handle(&target, &chain) == 1 && status == 0);
	int fd = open(img, O_RDONLY);
	CHECK(pread(fd, want, 1024, 10 * 512) == 1024 && memcmp(want, buf, 1024) == 0);
	close(fd);
	/* The last sector reads; one past it does not, nor does a request over the end. */
	build(0, DISK_SIZE / 512 - 1, NULL, 0, buf, 512);
	CHECK(blk_handle(&target, &chain) == 513 && status == 0);
	build(0, DISK_SIZE / 512, NULL, 0, buf, 512);
	CHECK(blk_handle(&target, &chain) == 1 && status == 1);
	build(0, DISK_SIZE / 512 - 1, NULL, 0, buf, 1024);
	CHECK(blk_handle(&target, &chain) == 1 && status == 1);
	build(1, UINT64_MAX / 256, buf, 512, NULL, 0); /* sector * 512 overflows */
	CHECK(blk_handle(&target, &chain) == 1 && status == 1);
	/* Lengths that are not whole sectors. */
	build(0, 0, NULL, 0, buf, 100);
	CHECK(blk_handle(&target, &chain) == 1 && status == 1);
	build(1, 0, buf, 700, NULL, 0);
	CHECK(blk_handle(&target, &chain) == 1 && status == 1);
	CHECK(target.stats.errors == 5);
	teardown();
}

static void malformed_requests(void)
{
	setup();
	char buf[512];
	/* No device-writable byte: nowhere to put a status. */
	build(0, 0, NULL, 0, NULL, 0);
	chain.n_in = 0;
	chain.in_len = 0;
	CHECK(blk_handle(&target, &chain) == -1);
	/* A header cut short: IOERR. */
	build(0, 0, NULL, 0, buf, 512);
	chain.n_out = 1;
	chain.out_len = 5;
	CHECK(blk_handle(&target, &chain) == 1 && status == 1);
	/* Unknown and unoffered types: UNSUPP. */
	build(10, 0, NULL, 0, buf, 512);
	CHECK(blk_handle(&target, &chain) == 1 && status == 2);
	build(0xdeadbeef, 0, NULL, 0, NULL, 0);
	CHECK(blk_handle(&target, &chain) == 1 && status == 2);
	teardown();
}

static void flush_and_get_id(void)
{
	setup();
	build(4, 0, NULL, 0, NULL, 0);
	CHECK(blk_handle(&target, &chain) == 1 && status == 0);
	char id[20];
	memset(id, 'x', sizeof(id));
	build(8, 0, NULL, 0, id, sizeof(id));
	CHECK(blk_handle(&target, &chain) == 21 && status == 0);
	CHECK(memcmp(id, "data-1\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20) == 0);
	/* Less room than 20 bytes: as much as fits. */
	memset(id, 'x', sizeof(id));
	build(8, 0, NULL, 0, id, 4);
	CHECK(blk_handle(&target, &chain) == 5 && status == 0 && memcmp(id, "data", 4) == 0 &&
	      id[4] == 'x');
	teardown();
}

struct seg {
	uint64_t sector;
	uint32_t num, flags;
};

static blkcnt_t blocks(void)
{
	struct stat st;
	return stat(img, &st) == 0 ? st.st_blocks : -1;
}

static void discard_and_write_zeroes(void)
{
	setup();
	fsync(target.disk->fd);
	blkcnt_t before = blocks();
	/* Discard 256 KiB from 64 KiB on: a hole the host sees, zeroes the guest reads. */
	struct seg s[2] = {{128, 512, 0}};
	build(11, 0, s, sizeof(s[0]), NULL, 0);
	CHECK(blk_handle(&target, &chain) == 1 && status == 0);
	CHECK(blocks() <= before - 256 * 1024 / 512);
	char buf[512];
	build(0, 200, NULL, 0, buf, sizeof(buf));
	CHECK(blk_handle(&target, &chain) == 513 && status == 0 && buf[0] == 0 && buf[511] == 0);
	/* Unmap on a discard, reserved flags, segments past the end: refused, nothing done. */
	s[0] = (struct seg){1000, 8, 1};
	build(11, 0, s, sizeof(s[0]), NULL, 0);
	CHECK(blk_handle(&target, &chain) == 1 && status == 2);
	s[0] = (struct seg){1000, 8, 4};
	build(13, 0, s, sizeof(s[0]), NULL, 0);
	CHECK(blk_handle(&target, &chain) == 1 && status == 2);
	s[0] = (struct seg){1000, 8, 0};
	s[1] = (struct seg){DISK_SIZE / 512 - 4, 8, 0};
	build(13, 0, s, sizeof(s), NULL, 0);
	CHECK(blk_handle(&target, &chain) == 1 && status == 1);
	build(0, 1000, NULL, 0, buf, sizeof(buf));
	CHECK(blk_handle(&target, &chain) == 513 && buf[0] == (char)(1000 * 512 * 7 % 251));
	build(13, 0, s, 7, NULL, 0); /* not whole segments */
	CHECK(blk_handle(&target, &chain) == 1 && status == 1);
	/* Write zeroes, with and without unmap. */
	s[0] = (struct seg){1000, 8, 0};
	s[1] = (struct seg){1500, 16, 1};
	build(13, 0, s, sizeof(s), NULL, 0);
	CHECK(blk_handle(&target, &chain) == 1 && status == 0);
	build(0, 1000, NULL, 0, buf, sizeof(buf));
	CHECK(blk_handle(&target, &chain) == 513 && buf[0] == 0 && buf[100] == 0);
	build(0, 1515, NULL, 0, buf, sizeof(buf));
	CHECK(blk_handle(&target, &chain) == 513 && buf[0] == 0 && buf[511] == 0);
	build(0, 1516, NULL, 0, buf, sizeof(buf));
	CHECK(blk_handle(&target, &chain) == 513 && buf[0] == (char)(1516 * 512 * 7 % 251));
	teardown();
}

static void read_only_images(void)
{
	snprintf(img, sizeof(img), "%s/ro.img", dir);
	make_image(img, DISK_SIZE);
	memset(&target, 0, sizeof(target));
	target.disk = open_disk(img, DISK_RAW, true);
	CHECK(target.disk && target.disk->read_only);
	CHECK(target.disk && (fcntl(target.disk->fd, F_GETFL) & O_ACCMODE) == O_RDONLY);
	char buf[512];
	memset(buf, 'w', sizeof(buf));
	build(1, 0, buf, sizeof(buf), NULL, 0);
	CHECK(blk_handle(&target, &chain) == 1 && status == 1);
	struct seg s = {0, 8, 0};
	build(11, 0, &s, sizeof(s), NULL, 0);
	CHECK(blk_handle(&target, &chain) == 1 && status == 1);
	build(0, 0, NULL, 0, buf, sizeof(buf));
	CHECK(blk_handle(&target, &chain) == 513 && status == 0 && buf[1] == 7);
	teardown();
}

/* Whether another process can open path as the given mode (a lock is per open file). */
static int child_open(const char *path, bool ro)
{
	pid_t pid = fork();
	if (pid == 0) {
		struct disk *d = NULL;
		char msg[256];
		_exit(disk_open(path, DISK_RAW, ro, &d, msg, sizeof(msg)) == 0 ? 0 : 1);
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void locks(void)
{
	snprintf(img, sizeof(img), "%s/lock.img", dir);
	make_image(img, 4096);
	struct disk *rw = open_disk(img, DISK_RAW, false);
	CHECK(rw);
	CHECK(child_open(img, false) == 1);
	CHECK(child_open(img, true) == 1);
	/* The same image twice in one VM is refused too. */
	struct disk *again = NULL;
	char msg[256] = "";
	CHECK(disk_open(img, DISK_RAW, true, &again, msg, sizeof(msg)) == -EBUSY);
	CHECK_STR_CONTAINS(msg, "in use");
	disk_close(rw);
	struct disk *ro = open_disk(img, DISK_RAW, true);
	CHECK(ro);
	CHECK(child_open(img, true) == 0);
	CHECK(child_open(img, false) == 1);
	disk_close(ro);
	CHECK(child_open(img, false) == 0);
	unlink(img);
}

static void what_a_path_may_name(void)
{
	char path[256], msg[256] = "";
	struct disk *d = NULL;
	/* A FIFO: refused at once, never waited on. */
	snprintf(path, sizeof(path), "%s/fifo", dir);
	CHECK(mkfifo(path, 0644) == 0);
	CHECK(disk_open(path, DISK_RAW, false, &d, msg, sizeof(msg)) == -EINVAL);
	CHECK_STR_CONTAINS(msg, "not a regular file or block device");
	unlink(path);
	/* A character device. */
	CHECK(disk_open("/dev/null", DISK_RAW, true, &d, msg, sizeof(msg)) == -EINVAL);
	CHECK(disk_open(dir, DISK_RAW, true, &d, msg, sizeof(msg)) < 0);
	CHECK(disk_open("/no/such.img", DISK_RAW, true, &d, msg, sizeof(msg)) == -ENOENT);
	/* qcow2 named for an image without its header; a size in part sectors. */
	snprintf(path, sizeof(path), "%s/odd.img", dir);
	make_image(path, 4096 + 100);
	CHECK(disk_open(path, DISK_QCOW2, true, &d, msg, sizeof(msg)) == -EINVAL);
	CHECK_STR_CONTAINS(msg, "no qcow2 header");
	d = open_disk(path, DISK_RAW, true);
	CHECK(d && d->size == 4096);
	disk_close(d);
	enum disk_format f = DISK_QCOW2;
	CHECK(disk_probe(path, &f) == 0 && f == DISK_RAW);
	int fd = open(path, O_WRONLY);
	CHECK(write(fd, "QFI\xfb", 4) == 4);
	close(fd);
	CHECK(disk_probe(path, &f) == 0 && f == DISK_QCOW2);
	/* Named raw, it is raw, whatever its first bytes. */
	d = open_disk(path, DISK_RAW, true);
	CHECK(d != NULL);
	disk_close(d);
	unlink(path);
}

/* A random number for the direct I/O test's sequence (xorshift: the same sequence every run). */
static uint64_t rnd(void)
{
	static uint64_t x = 88172645463325252ull;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

/*
 * EC1_DISK_DIRECT_IO (DISK_DIRECT): the image is opened O_DIRECT; aligned transfers go straight
 * to it, others (buffers at odd addresses, 512-byte requests where the file system's block is
 * larger, transfers larger than the bounce buffer) through the bounce buffer, a partial block
 * read-modify-written; every byte lands where a buffered write would put it (checked against a
 * shadow copy and against the file read back). A size that is not a multiple of the block is
 * refused; with sync=none a FLUSH is answered UNSUPP and nothing is flushed.
 */
static void direct_io(void)
{
	const size_t size = 4u << 20;
	char path[300];
	snprintf(path, sizeof(path), "%s/direct.img", dir);
	make_image(path, size);
	int probe = open(path, O_RDONLY | O_DIRECT);
	if (probe < 0) {
		printf("    SKIP: %s takes no O_DIRECT (%s)\n", dir, strerror(errno));
		unlink(path);
		return;
	}
	close(probe);
	struct disk *d = NULL;
	char msg[256];
	CHECK(disk_open(path, DISK_RAW, DISK_DIRECT, &d, msg, sizeof(msg)) == 0);
	if (!d)
		return;
	CHECK((fcntl(d->fd, F_GETFL) & O_DIRECT) && d->dio_align >= 512 && d->dio_align <= 4096);
	uint8_t *shadow = malloc(size), *mem = aligned_alloc(4096, 2u << 20);
	for (size_t i = 0; i < size; i++)
		shadow[i] = (uint8_t)(i * 7 % 251);
	static const size_t skews[] = {0, 1, 511, 512, 4095};
	unsigned int bounced = 0;
	for (int i = 0; i < 800; i++) {
		/* The second half as on a file system of 4 KiB blocks: partial blocks written. */
		if (i == 400)
			d->dio_align = 4096;
		uint64_t r = rnd();
		/* Mostly small, some past the bounce buffer (256 KiB), up to 1 MiB. */
		size_t sectors = r % 4 ? 1 + (size_t)(r >> 8) % 64 : 1 + (size_t)(r >> 8) % 2048;
		uint64_t sector = (r >> 24) % (size / 512 - sectors + 1);
		size_t skew = skews[(r >> 40) % 5], len = sectors * 512;
		/* Two segments, split at a sector boundary, as a guest's chain may be. */
		size_t cut = 512 * ((r >> 48) % sectors);
		struct iovec iov[2] = {{mem + skew, cut}, {mem + skew + cut, len - cut}};
		unsigned int n = cut ? 2 : 1;
		if (!cut)
			iov[0] = iov[1];
		bool write = r & (1ull << 62);
		bounced +=
			skew % d->dio_align || (sector * 512) % d->dio_align || len % d->dio_align;
		if (write) {
			for (size_t k = 0; k < len; k++)
				mem[skew + k] = (uint8_t)rnd();
			CHECK(d->ops->write(d, iov, n, sector * 512) == 0);
			memcpy(shadow + sector * 512, mem + skew, len);
		} else {
			memset(mem, 0xee, 2u << 20);
			CHECK(d->ops->read(d, iov, n, sector * 512) == 0);
			CHECK(memcmp(mem + skew, shadow + sector * 512, len) == 0);
			CHECK(skew == 0 || mem[skew - 1] == 0xee);
			CHECK(mem[skew + len] == 0xee);
		}
	}
	CHECK(bounced > 300);
	/* The file, read back past the disk layer, is the shadow. */
	uint8_t *back = malloc(size);
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0 && pread(fd, back, size, 0) == (ssize_t)size &&
	      memcmp(back, shadow, size) == 0);
	close(fd);
	/* Through a request: a 512-byte read at an odd sector into an odd buffer. */
	memset(&target, 0, sizeof(target));
	target.disk = d;
	char one[513];
	build(0, 9, NULL, 0, one + 1, 512);
	CHECK(blk_handle(&target, &chain) == 513 && status == 0 &&
	      memcmp(one + 1, shadow + 9 * 512, 512) == 0);
	/* sync=none: no flush offered, one asked anyway is answered UNSUPP and not made. */
	target.no_flush = true;
	build(4, 0, NULL, 0, NULL, 0);
	CHECK(blk_handle(&target, &chain) == 1 && status == 2 && target.stats.flushes == 0);
	target.disk = NULL;
	disk_close(d);
	/* Refused: a size O_DIRECT cannot cover whole. */
	d = NULL;
	CHECK(truncate(path, (off_t)size + 512) == 0);
	int err = disk_open(path, DISK_RAW, DISK_DIRECT, &d, msg, sizeof(msg));
	struct stat st;
	CHECK(stat(path, &st) == 0);
	if (err == 0) { /* a file system whose direct-I/O block is 512 bytes: nothing to refuse */
		CHECK(d->dio_align == 512);
		disk_close(d);
	} else {
		CHECK_STR_CONTAINS(msg, "direct I/O needs a size that is a multiple of");
	}
	free(shadow);
	free(mem);
	free(back);
	unlink(path);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	TEST(reads_and_writes);
	TEST(malformed_requests);
	TEST(flush_and_get_id);
	TEST(discard_and_write_zeroes);
	TEST(read_only_images);
	TEST(locks);
	TEST(what_a_path_may_name);
	TEST(direct_io);
	rmdir(dir);
	return tests_failed ? 1 : 0;
}
