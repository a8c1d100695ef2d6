/*
 * Raw images: the guest's sector s is the file's byte 512 * s. Sparse files stay sparse (reads
 * of holes cost no space, discards punch holes); a size that is not a multiple of 512 shows the
 * guest its whole sectors only, and the tail is never touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk.h"

static int raw_read(struct disk *d, const struct iovec *iov, unsigned int n, uint64_t off)
{
	return disk_io(d, iov, n, off, false);
}

static int raw_write(struct disk *d, const struct iovec *iov, unsigned int n, uint64_t off)
{
	if (d->read_only)
		return -EROFS;
	return disk_io(d, iov, n, off, true);
}

static int raw_flush(struct disk *d)
{
	if (d->read_only)
		return 0;
	while (fdatasync(d->fd) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

static int falloc(int fd, int mode, uint64_t off, uint64_t len)
{
	while (fallocate(fd, mode, (off_t)off, (off_t)len) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* Zeroes written, a chunk at a time: where the file system can neither punch nor zero a range. */
static int write_zero_bytes(struct disk *d, uint64_t off, uint64_t len)
{
	static const char zeroes[65536];
	while (len) {
		size_t k = len < sizeof(zeroes) ? (size_t)len : sizeof(zeroes);
		struct iovec iov = {(void *)zeroes, k};
		int err = disk_io(d, &iov, 1, off, true);
		if (err)
			return err;
		off += k;
		len -= k;
	}
	return 0;
}

static int raw_discard(struct disk *d, uint64_t off, uint64_t len)
{
	if (d->read_only)
		return -EROFS;
	int err = falloc(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
	/* A discard is a hint: where holes cannot be punched, the data simply stays. */
	return err == -EOPNOTSUPP || err == -ENOTTY || err == -ENODEV ? 0 : err;
}

static int raw_write_zeroes(struct disk *d, uint64_t off, uint64_t len, bool unmap)
{
	if (d->read_only)
		return -EROFS;
	int err = -EOPNOTSUPP;
	if (unmap)
		err = falloc(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
	if (err == -EOPNOTSUPP)
		err = falloc(d->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, len);
	if (err == -EOPNOTSUPP || err == -ENODEV)
		err = write_zero_bytes(d, off, len);
	return err;
}

static const struct disk_ops raw_ops = {
	.name = "raw",
	.read = raw_read,
	.write = raw_write,
	.flush = raw_flush,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
};

int disk_raw_open(struct disk *d, char *msg, size_t msg_size)
{
	(void)msg;
	(void)msg_size;
	d->ops = &raw_ops;
	d->size &= ~511ull;
	return 0;
}
