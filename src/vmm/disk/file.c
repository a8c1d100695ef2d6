/* What the image formats share beneath them (disk.h): whole-transfer file I/O, probing, closing. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../iov.h"
#include "disk.h"

#define QCOW2_MAGIC  "QFI\xfb"
#define DISK_IOV_MAX 1024 /* the kernel's UIO_MAXIOV: what one preadv takes */

/* Whole transfers: a system call moves at most 2 GiB, and a read may stop at EOF. */
static int file_io(int fd, const struct iovec *iov, unsigned int n, uint64_t off, bool write)
{
	if (n > DISK_IOV_MAX)
		return -EINVAL;
	size_t total = iov_length(iov, n), done = 0;
	struct iovec rest[DISK_IOV_MAX];
	while (done < total) {
		unsigned int k = iov_slice(iov, n, done, SIZE_MAX, rest);
		ssize_t r = write ? pwritev(fd, rest, (int)k, (off_t)(off + done))
				  : preadv(fd, rest, (int)k, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) {
			if (write)
				return -EIO;
			/* Past the end of the file (a host truncated it): zeroes. */
			for (unsigned int i = 0; i < k; i++)
				memset(rest[i].iov_base, 0, rest[i].iov_len);
			return 0;
		}
		done += (size_t)r;
	}
	return 0;
}

int disk_probe_fd(int fd, enum disk_format *fmt)
{
	char magic[4];
	ssize_t r = pread(fd, magic, sizeof(magic), 0);
	if (r < 0)
		return -errno;
	*fmt = r == 4 && memcmp(magic, QCOW2_MAGIC, 4) == 0 ? DISK_QCOW2 : DISK_RAW;
	return 0;
}

int disk_probe(const char *path, enum disk_format *fmt)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	struct stat st;
	int err = fstat(fd, &st) < 0 ? -errno : 0;
	if (!err && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		err = -EINVAL;
	err = err ?: disk_probe_fd(fd, fmt);
	close(fd);
	return err;
}

void disk_close(struct disk *d)
{
	if (!d)
		return;
	if (d->ops && d->ops->close)
		d->ops->close(d);
	close(d->fd);
	free(d->dio_bounce);
	free(d);
}

/* Whether O_DIRECT takes the transfer as it is: offset, lengths and addresses aligned. */
static bool dio_aligned(const struct iovec *iov, unsigned int n, uint64_t off, uint32_t a)
{
	if (off % a)
		return false;
	for (unsigned int i = 0; i < n; i++)
		if ((uintptr_t)iov[i].iov_base % a || iov[i].iov_len % a)
			return false;
	return true;
}

/* Whole or failed, bounced where not aligned. */
static int direct_io(struct disk *d, const struct iovec *iov, unsigned int n, uint64_t off,
		     bool write)
{
	const uint32_t a = d->dio_align;
	if (dio_aligned(iov, n, off, a))
		return file_io(d->fd, iov, n, off, write);
	/* Through the bounce buffer, a window at a time: the aligned blocks around each part. */
	size_t len = iov_length(iov, n), done = 0;
	while (done < len) {
		uint64_t pos = off + done, start = pos - pos % a;
		size_t head = (size_t)(pos - start);
		size_t k = len - done < DISK_BOUNCE - head ? len - done : DISK_BOUNCE - head;
		size_t span = (head + k + a - 1) / a * a; /* at most DISK_BOUNCE, a multiple of a */
		struct iovec b = {d->dio_bounce, span};
		int err = 0;
		if (!write) {
			err = file_io(d->fd, &b, 1, start, false);
		} else {
			/* A block written in part is read first: the window's first, its last. */
			struct iovec first = {d->dio_bounce, a},
				     last = {d->dio_bounce + span - a, a};
			if (head)
				err = file_io(d->fd, &first, 1, start, false);
			if (!err && (head + k) % a && !(head && span == a))
				err = file_io(d->fd, &last, 1, start + span - a, false);
		}
		if (!err && write) {
			iov_to_buf(iov, n, done, d->dio_bounce + head, k);
			err = file_io(d->fd, &b, 1, start, true);
		} else if (!err) {
			iov_from_buf(iov, n, done, d->dio_bounce + head, k);
		}
		if (err)
			return err;
		done += k;
	}
	return 0;
}

int disk_io(struct disk *d, const struct iovec *iov, unsigned int n, uint64_t off, bool write)
{
	return d->dio_align ? direct_io(d, iov, n, off, write) : file_io(d->fd, iov, n, off, write);
}
