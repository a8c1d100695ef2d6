/*
 * The qcow2 layer (src/vmm/disk/qcow2.c) against QEMU's own tools (Debian qemu-utils): images
 * made by qemu-img create (compat 0.10 and 1.1, clusters of 512 B to 2 MiB), compressed by
 * qemu-img convert -c, and a backing chain, take a random sequence of reads, writes, discards
 * and write-zeroes mirrored on a raw shadow; every read must agree with the shadow, and
 * afterwards qemu-img check must find no error (nor leak) and qemu-img compare the two identical.
 * Then damaged headers and tables: clear errors, no crash. Skipped without qemu-img.
 *
 * A soak: EC1_QCOW2_SEED=N starts the random sequence elsewhere (not 0), EC1_QCOW2_SOAK=K makes
 * each sequence K times as long; e.g. for s in $(seq 1 100); do EC1_QCOW2_SEED=$s
 * EC1_QCOW2_SOAK=4 build/tests/unit/test_qcow2 | grep -v PASS; done
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/vmm/disk/disk.h"
#include "check.h"

#define SIZE (24ull << 20)

static char dir[] = "/tmp/ec1-test-qcow2-XXXXXX";
static unsigned char *shadow, *buf;
static uint64_t rng = 88172645463325252ull;
static unsigned int soak = 1; /* EC1_QCOW2_SOAK */

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int sh(const char *fmt, const char *a, const char *b)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), fmt, a, b);
	int rc = system(cmd);
	if (rc)
		printf("    `%s`: exit %d\n", cmd, rc);
	return rc;
}

static struct disk *open_img(const char *path, unsigned int flags)
{
	struct disk *d = NULL;
	char msg[512] = "";
	if (disk_open(path, DISK_QCOW2, flags, &d, msg, sizeof(msg)))
		printf("    disk_open %s: %s\n", path, msg);
	return d;
}

static void fill(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = next();
		memcpy(p + i, &v, n - i < 8 ? n - i : 8);
	}
}

/* n random operations, in sectors, biased to cluster edges; each read checked. */
static void exercise(struct disk *d, unsigned int n, uint64_t cluster)
{
	n *= soak;
	for (unsigned int i = 0; i < n && !check_failed; i++) {
		uint64_t max = 4 * cluster < (1 << 20) ? 4 * cluster : (1 << 20);
		uint64_t len = (1 + next() % (max / 512)) * 512;
		uint64_t off = (next() % ((SIZE - len) / 512)) * 512;
		if (next() % 3 == 0) /* on a cluster boundary */
			off = off / cluster * cluster;
		if (off + len > SIZE)
			len = SIZE - off;
		struct iovec iov[2] = {{buf, len / 2 & ~511ull}, {buf + (len / 2 & ~511ull), 0}};
		iov[1].iov_len = len - iov[0].iov_len;
		switch (next() % 5) {
		case 0:
		case 1:
			fill(buf, len);
			CHECK(d->ops->write(d, iov, 2, off) == 0);
			memcpy(shadow + off, buf, len);
			break;
		case 2:
			CHECK(d->ops->read(d, iov, 2, off) == 0);
			if (memcmp(buf, shadow + off, len)) {
				printf("    read of %llu at %llu differs\n",
				       (unsigned long long)len, (unsigned long long)off);
				check_failed = 1;
			}
			break;
		case 3:
			CHECK(d->ops->write_zeroes(d, off, len, next() & 1) == 0);
			memset(shadow + off, 0, len);
			break;
		case 4:
			/* Discard: the guest may read old data or zeroes; keep the shadow honest.
			 */
			CHECK(d->ops->discard(d, off, len) == 0);
			CHECK(d->ops->read(d, iov, 2, off) == 0);
			memcpy(shadow + off, buf, len);
			break;
		}
	}
	CHECK(d->ops->flush(d) == 0);
	/* Everything, in 1 MiB reads. */
	for (uint64_t off = 0; off < SIZE && !check_failed; off += 1 << 20) {
		struct iovec iov = {buf, 1 << 20};
		CHECK(d->ops->read(d, &iov, 1, off) == 0);
		CHECK(memcmp(buf, shadow + off, 1 << 20) == 0);
	}
}

static void write_shadow(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, shadow, SIZE) == (ssize_t)SIZE);
	close(fd);
}

/* qemu-img check clean (exit 0: no errors, no leaks) and compare identical to the shadow. */
static void verify(const char *img, const char *raw)
{
	write_shadow(raw);
	CHECK(sh("qemu-img check -q %s%s", img, "") == 0);
	CHECK(sh("qemu-img compare -q -f qcow2 -F raw %s %s", img, raw) == 0);
}

/* The whole disk reads back as the shadow, a MiB at a time. */
static void reads_as_shadow(struct disk *d)
{
	struct iovec iov = {buf, 1 << 20};
	for (uint64_t off = 0; off < SIZE; off += 1 << 20)
		CHECK(d->ops->read(d, &iov, 1, off) == 0 &&
		      memcmp(buf, shadow + off, 1 << 20) == 0);
}

/* How one_image opens its image: flags (DISK_DIRECT), and a direct-I/O block to use instead of
 * the file system's (0: its own). */
static unsigned int open_flags;
static uint32_t force_align;

static void one_image(const char *opts, uint64_t cluster, unsigned int ops)
{
	char img[256], raw[256], cmd[512];
	snprintf(img, sizeof(img), "%s/t.qcow2", dir);
	snprintf(raw, sizeof(raw), "%s/t.raw", dir);
	snprintf(cmd, sizeof(cmd), "qemu-img create -q -f qcow2 -o %s %%s %llu%%s", opts,
		 (unsigned long long)SIZE);
	CHECK(sh(cmd, img, "") == 0);
	memset(shadow, 0, SIZE);
	struct disk *d = open_img(img, open_flags);
	CHECK(d && d->size == SIZE);
	if (!d)
		return;
	if (open_flags & DISK_DIRECT) {
		CHECK(d->dio_align && (fcntl(d->fd, F_GETFL) & O_DIRECT));
		if (force_align)
			d->dio_align = force_align;
	}
	exercise(d, ops, cluster);
	disk_close(d);
	verify(img, raw);
	/* Opened again: what was written is there. */
	d = open_img(img, DISK_READ_ONLY);
	struct iovec iov = {buf, 1 << 20};
	for (uint64_t off = 0; d && off < SIZE; off += 1 << 20)
		CHECK(d->ops->read(d, &iov, 1, off) == 0 &&
		      memcmp(buf, shadow + off, 1 << 20) == 0);
	disk_close(d);
	unlink(img);
	unlink(raw);
}

static void v2_4k(void)
{
	one_image("compat=0.10,cluster_size=4096", 4096, 3000);
}
static void v3_64k(void)
{
	one_image("compat=1.1,cluster_size=65536", 65536, 2000);
}
static void v3_2m(void)
{
	one_image("compat=1.1,cluster_size=2097152", 2 << 20, 300);
}
/* 512-byte clusters outgrow the refcount table qemu-img makes: it must grow. */
static void v3_512(void)
{
	one_image("compat=1.1,cluster_size=512", 512, 3000);
}
/*
 * Direct I/O (O_DIRECT): the same random operations, then the same checks; with 4 KiB blocks for
 * O_DIRECT, 512-byte clusters and every table entry (2 and 8 bytes) are read-modify-written.
 */
static void direct_io_images(void)
{
	char probe[300];
	snprintf(probe, sizeof(probe), "%s/probe", dir);
	int fd = open(probe, O_RDWR | O_CREAT | O_DIRECT, 0644);
	unlink(probe);
	if (fd < 0) {
		printf("    SKIP: %s takes no O_DIRECT\n", dir);
		return;
	}
	close(fd);
	open_flags = DISK_DIRECT;
	force_align = 4096;
	one_image("compat=1.1,cluster_size=512", 512, 2000);
	one_image("compat=1.1,cluster_size=65536", 65536, 1000);
	force_align = 0;
	one_image("compat=0.10,cluster_size=4096", 4096, 1000);
	open_flags = 0;
}

/* The whole disk written in order: the refcount table grows several times, leaking nothing. */
static void refcount_table_grows(void)
{
	char img[256], raw[256];
	snprintf(img, sizeof(img), "%s/g.qcow2", dir);
	snprintf(raw, sizeof(raw), "%s/g.raw", dir);
	CHECK(sh("qemu-img create -q -f qcow2 -o cluster_size=512 %s 24M%s", img, "") == 0);
	struct disk *d = open_img(img, 0);
	if (!d)
		return;
	for (uint64_t off = 0; off < SIZE; off += 1 << 20) {
		fill(shadow + off, 1 << 20);
		struct iovec iov = {shadow + off, 1 << 20};
		CHECK(d->ops->write(d, &iov, 1, off) == 0);
	}
	disk_close(d);
	verify(img, raw);
	unlink(img);
	unlink(raw);
}

static void v2_64k(void)
{
	one_image("compat=0.10,cluster_size=65536", 65536, 2000);
}

static void compressed_image(void)
{
	char raw[256], img[256], raw2[256];
	snprintf(raw, sizeof(raw), "%s/c.raw", dir);
	snprintf(img, sizeof(img), "%s/c.qcow2", dir);
	snprintf(raw2, sizeof(raw2), "%s/c2.raw", dir);
	/* Compressible data with some zero runs. */
	for (uint64_t i = 0; i < SIZE; i++)
		shadow[i] = (unsigned char)(i % 4099 < 3000 ? (i / 512) % 7 : 0);
	fill(shadow + (3 << 20), 1 << 20); /* incompressible: stored plain */
	write_shadow(raw);
	CHECK(sh("qemu-img convert -q -c -f raw -O qcow2 %s %s", raw, img) == 0);
	struct disk *d = open_img(img, 0);
	if (!d)
		return;
	reads_as_shadow(d);
	/* Writes into compressed clusters make them plain ones. */
	exercise(d, 1500, 65536);
	disk_close(d);
	verify(img, raw2);
	unlink(raw);
	unlink(img);
	unlink(raw2);
}

static void backing_chain(void)
{
	char base[256], mid[256], top[256], raw[256];
	snprintf(base, sizeof(base), "%s/base.raw", dir);
	snprintf(mid, sizeof(mid), "%s/mid.qcow2", dir);
	snprintf(top, sizeof(top), "%s/top.qcow2", dir);
	snprintf(raw, sizeof(raw), "%s/top.raw", dir);
	fill(shadow, SIZE);
	memset(shadow + SIZE / 2, 0, SIZE / 2);
	write_shadow(base);
	CHECK(truncate(base, SIZE / 2) == 0); /* a backing image shorter than its overlay */
	CHECK(sh("qemu-img create -q -f qcow2 -b base.raw -F raw %s%s", mid, "") == 0);
	CHECK(sh("qemu-img resize -q %s 24M%s", mid, "") == 0);
	CHECK(sh("qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 %s%s", top, "") == 0);
	/* Named, a backing file is refused unless allowed. */
	struct disk *d = NULL;
	char msg[512] = "";
	CHECK(disk_open(top, DISK_QCOW2, 0, &d, msg, sizeof(msg)) == -EINVAL);
	CHECK_STR_CONTAINS(msg, "names a backing file (mid.qcow2)");
	d = open_img(top, DISK_ALLOW_BACKING);
	if (!d)
		return;
	reads_as_shadow(d);
	exercise(d, 1500, 65536);
	disk_close(d);
	/* The chain below is untouched: base is as it was. */
	write_shadow(raw);
	CHECK(sh("qemu-img check -q %s%s", top, "") == 0);
	CHECK(sh("qemu-img compare -q -f qcow2 -F raw %s %s", top, raw) == 0);
	/* A chain that loops on itself ends at the depth limit. */
	CHECK(sh("qemu-img create -q -f qcow2 -u -b loop.qcow2 -F qcow2 %s/loop.qcow2 24M%s", dir,
		 "") == 0);
	snprintf(top, sizeof(top), "%s/loop.qcow2", dir);
	CHECK(disk_open(top, DISK_QCOW2, DISK_ALLOW_BACKING | DISK_READ_ONLY, &d, msg,
			sizeof(msg)) < 0);
	CHECK_STR_CONTAINS(msg, "deeper than");
	/* Opened for writing, it meets its own lock. */
	CHECK(disk_open(top, DISK_QCOW2, DISK_ALLOW_BACKING, &d, msg, sizeof(msg)) == -EBUSY);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -f %s/*.qcow2 %s/*.raw", dir, dir);
	CHECK(system(cmd) == 0);
}

/* Bytes at off of path replaced by len bytes of v (big-endian). */
static void poke(const char *path, off_t off, uint64_t v, int len)
{
	unsigned char b[8];
	for (int i = 0; i < len; i++)
		b[i] = (unsigned char)(v >> (8 * (len - 1 - i)));
	int fd = open(path, O_WRONLY);
	CHECK(fd >= 0 && pwrite(fd, b, (size_t)len, off) == len);
	close(fd);
}

static void damaged(const char *what, off_t off, uint64_t v, int len, const char *want)
{
	char img[256], msg[512] = "";
	snprintf(img, sizeof(img), "%s/bad.qcow2", dir);
	CHECK(sh("qemu-img create -q -f qcow2 -o compat=1.1 %s 16M%s", img, "") == 0);
	poke(img, off, v, len);
	struct disk *d = NULL;
	int err = disk_open(img, DISK_QCOW2, 0, &d, msg, sizeof(msg));
	if (err == 0) {
		printf("    %s: opened\n", what);
		check_failed = 1;
		disk_close(d);
	} else if (!strstr(msg, want)) {
		printf("    %s: \"%s\" lacks \"%s\"\n", what, msg, want);
		check_failed = 1;
	}
	unlink(img);
}

static void damaged_images_refused(void)
{
	damaged("version 4", 4, 4, 4, "version 4");
	damaged("cluster_bits 30", 20, 30, 4, "cluster_bits 30");
	damaged("encrypted", 32, 1, 4, "encrypted");
	damaged("L1 past the file", 40, 1ull << 40, 8, "L1 table");
	damaged("L1 unaligned", 40, 0x30001, 8, "L1 table");
	damaged("refcount table past the file", 48, 1ull << 40, 8, "refcount table");
	damaged("dirty", 72, 1, 8, "dirty");
	damaged("corrupt", 72, 2, 8, "corrupt");
	damaged("external data", 72, 4, 8, "external data");
	damaged("zstd", 72, 8, 8, "compression");
	damaged("extended L2", 72, 16, 8, "extended L2");
	damaged("refcount_order 5", 96, 5, 4, "refcount_order 5");
	damaged("l1_size 0", 36, 0, 4, "l1_size");
	damaged("backing name past the header", 8, 4000, 8, "backing file name");
	/* An L1 entry into nowhere, and one onto the header. */
	char img[256], msg[512] = "";
	snprintf(img, sizeof(img), "%s/bad.qcow2", dir);
	CHECK(sh("qemu-img create -q -f qcow2 %s 16M%s", img, "") == 0);
	poke(img, 0x30000, 0x8000000000100000ull, 8); /* L1[0], past the file */
	struct disk *d = NULL;
	CHECK(disk_open(img, DISK_QCOW2, 0, &d, msg, sizeof(msg)) == -EINVAL);
	CHECK_STR_CONTAINS(msg, "L1 entry 0");
	/* An L2 entry onto the L1 table: the request fails, nothing is overwritten. */
	CHECK(sh("qemu-img create -q -f qcow2 %s 16M%s", img, "") == 0);
	d = open_img(img, 0);
	struct iovec iov = {buf, 512};
	memset(buf, 0x5a, 512);
	CHECK(d && d->ops->write(d, &iov, 1, 0) == 0);
	disk_close(d);
	/* L1[0] (at 0x30000 on a fresh image) points at the L2 table; its entry 0 onto L1. */
	unsigned char l1[8];
	int fd = open(img, O_RDONLY);
	CHECK(fd >= 0 && pread(fd, l1, 8, 0x30000) == 8);
	close(fd);
	uint64_t l2 = 0;
	for (int i = 1; i < 8; i++)
		l2 = l2 << 8 | l1[i];
	CHECK(l2 >= 0x40000);
	poke(img, (off_t)l2, 0x8000000000030000ull, 8);
	d = open_img(img, 0);
	int w = d ? d->ops->write(d, &iov, 1, 0) : 0, r = d ? d->ops->read(d, &iov, 1, 0) : 0;
	if (w != -EIO || r != -EIO)
		printf("    write %d read %d\n", w, r);
	CHECK(w == -EIO && r == -EIO);
	disk_close(d);
	unlink(img);
	/* Internal snapshots: read-only only. */
	CHECK(sh("qemu-img create -q -f qcow2 %s 16M%s", img, "") == 0);
	CHECK(sh("qemu-img snapshot -c snap %s%s", img, "") == 0);
	CHECK(disk_open(img, DISK_QCOW2, 0, &d, msg, sizeof(msg)) == -EINVAL);
	CHECK_STR_CONTAINS(msg, "internal snapshots");
	d = open_img(img, DISK_READ_ONLY);
	CHECK(d != NULL);
	disk_close(d);
	unlink(img);
}

/*
 * The host's file system full (RLIMIT_FSIZE stands in for it: a write past the limit fails with
 * EFBIG): writes that need new clusters fail, the guest sees errors; nothing already written is
 * lost, writes into clusters it has still work, and the image checks clean but for leaked
 * clusters (qemu-img check: exit 0 or 3) — also after more writes with the space back.
 */
static void host_file_system_full(void)
{
	char img[256], raw[256];
	snprintf(img, sizeof(img), "%s/full.qcow2", dir);
	snprintf(raw, sizeof(raw), "%s/full.raw", dir);
	for (unsigned int cluster = 512; cluster <= 65536; cluster *= 128) {
		char opts[64];
		snprintf(opts, sizeof(opts), "cluster_size=%u", cluster);
		CHECK(sh("qemu-img create -q -f qcow2 -o %s %s 24M", opts, img) == 0);
		struct disk *d = open_img(img, 0);
		if (!d)
			return;
		memset(shadow, 0, SIZE);
		static bool known[SIZE >> 16]; /* each 64 KiB: its content is the shadow's */
		memset(known, 1, sizeof(known));
		struct rlimit old, lim;
		getrlimit(RLIMIT_FSIZE, &old);
		struct stat st;
		CHECK(fstat(d->fd, &st) == 0);
		lim = old;
		lim.rlim_cur = (rlim_t)st.st_size + (3 << 20);
		signal(SIGXFSZ, SIG_IGN);
		CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
		unsigned int ok = 0, failed = 0;
		for (uint64_t off = 0; off < SIZE; off += 65536) {
			fill(buf, 65536);
			struct iovec iov = {buf, 65536};
			int err = d->ops->write(d, &iov, 1, off);
			if (!err) {
				memcpy(shadow + off, buf, 65536);
				ok++;
			} else {
				CHECK(err == -EFBIG);
				known[off >> 16] = false; /* the guest may find either */
				failed++;
			}
		}
		/* Where the writes went in, the disk still takes them; reads agree. */
		for (uint64_t off = 0; off < SIZE; off += 65536) {
			if (!known[off >> 16])
				continue;
			struct iovec iov = {buf, 65536};
			CHECK(d->ops->read(d, &iov, 1, off) == 0 &&
			      memcmp(buf, shadow + off, 65536) == 0);
			fill(buf, 65536);
			if (off < (1 << 20) && d->ops->write(d, &iov, 1, off) == 0)
				memcpy(shadow + off, buf, 65536);
		}
		CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
		signal(SIGXFSZ, SIG_DFL);
		CHECK(ok > 8 && failed > 8);
		CHECK(d->ops->flush(d) == 0);
		disk_close(d);
		char check[512];
		snprintf(check, sizeof(check), "qemu-img check -q %s >/dev/null 2>&1", img);
		int rc = system(check); /* 3: leaked clusters, and nothing worse */
		CHECK(rc == 0 || rc == 3 << 8);
		/* The space back: every write goes in, and afterwards the whole disk is the shadow.
		 */
		d = open_img(img, 0);
		for (uint64_t off = 0; d && off < SIZE; off += 65536) {
			fill(buf, 65536);
			struct iovec iov = {buf, 65536};
			CHECK(d->ops->write(d, &iov, 1, off) == 0);
			memcpy(shadow + off, buf, 65536);
		}
		if (d)
			reads_as_shadow(d);
		disk_close(d);
		rc = system(check);
		CHECK(rc == 0 || rc == 3 << 8);
		write_shadow(raw);
		CHECK(sh("qemu-img compare -q -f qcow2 -F raw %s %s", img, raw) == 0);
		unlink(img);
		unlink(raw);
	}
}

/* ec1 and QEMU refuse each other's images as two of either do (QEMU's byte locks). */
static void locks_shared_with_qemu(void)
{
	char img[256], cmd[512], msg[512] = "";
	snprintf(img, sizeof(img), "%s/locked.qcow2", dir);
	CHECK(sh("qemu-img create -q -f qcow2 %s 4M%s", img, "") == 0);
	struct disk *d = open_img(img, 0);
	CHECK(d);
	/* ec1 writes: QEMU may neither read it (without -U, force-share) nor write it. */
	CHECK(sh("qemu-img info %s >/dev/null 2>&1%s", img, "") != 0);
	CHECK(sh("qemu-img info -U %s >/dev/null%s", img, "") == 0);
	disk_close(d);
	d = open_img(img, DISK_READ_ONLY);
	CHECK(d);
	/* ec1 reads: QEMU may read it too, not write it. */
	CHECK(sh("qemu-img info %s >/dev/null%s", img, "") == 0);
	CHECK(sh("qemu-io -f qcow2 -c 'write 0 512' %s >/dev/null 2>&1%s", img, "") != 0);
	disk_close(d);
	/* QEMU writes (qemu-io holding it open): ec1 may neither write nor read it. */
	snprintf(cmd, sizeof(cmd),
		 "qemu-io -f qcow2 -c 'sleep 20000' %s >/dev/null 2>&1 & echo $! >%s/qemu-io.pid",
		 img, dir);
	CHECK(system(cmd) == 0);
	int rc = 0;
	for (int i = 0; i < 400; i++) { /* up to 20 s for qemu-io to start on a loaded machine */
		d = NULL;
		rc = disk_open(img, DISK_QCOW2, DISK_READ_ONLY, &d, msg, sizeof(msg));
		if (rc)
			break;
		disk_close(d);
		usleep(50000);
	}
	CHECK(rc == -EBUSY);
	CHECK_STR_CONTAINS(msg, "QEMU");
	d = NULL;
	CHECK(disk_open(img, DISK_QCOW2, 0, &d, msg, sizeof(msg)) == -EBUSY);
	CHECK_STR_CONTAINS(msg, "lock is held");
	snprintf(cmd, sizeof(cmd),
		 "kill $(cat %s/qemu-io.pid); while kill -0 $(cat %s/qemu-io.pid) 2>/dev/null; do "
		 "sleep 0.05; done",
		 dir, dir);
	CHECK(system(cmd) == 0);
	d = open_img(img, 0);
	CHECK(d);
	disk_close(d);
}

int main(void)
{
	if (system("qemu-img --version >/dev/null 2>&1") != 0) {
		printf("SKIP: qcow2: no qemu-img (apt-get install qemu-utils)\n");
		return 0;
	}
	if (!mkdtemp(dir) || chdir(dir) < 0) {
		perror("mkdtemp");
		return 1;
	}
	const char *seed = getenv("EC1_QCOW2_SEED"), *k = getenv("EC1_QCOW2_SOAK");
	if (seed && strtoull(seed, NULL, 0)) {
		rng = strtoull(seed, NULL, 0);
		printf("qcow2: seed %s\n", seed);
	}
	if (k && atoi(k) > 0)
		soak = (unsigned int)atoi(k);
	shadow = malloc(SIZE);
	buf = malloc(4 << 20);
	TEST(v2_4k);
	TEST(v2_64k);
	TEST(v3_64k);
	TEST(v3_2m);
	TEST(v3_512);
	TEST(refcount_table_grows);
	TEST(direct_io_images);
	TEST(compressed_image);
	TEST(backing_chain);
	TEST(damaged_images_refused);
	TEST(host_file_system_full);
	TEST(locks_shared_with_qemu);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return tests_failed ? 1 : 0;
}
