/* What every image format shares (disk.h): opening, locking, probing, file I/O. */
#include "disk.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h> /* BLKGETSIZE64 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../iov.h"

#define QCOW2_MAGIC  "QFI\xfb"
#define DISK_IOV_MAX 1024 /* the kernel's UIO_MAXIOV: what one preadv takes */

const char *disk_format_name(enum disk_format fmt)
{
	return fmt == DISK_QCOW2 ? "qcow2" : "raw";
}

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

int disk_file_read(int fd, const struct iovec *iov, unsigned int n, uint64_t off)
{
	return file_io(fd, iov, n, off, false);
}

int disk_file_write(int fd, const struct iovec *iov, unsigned int n, uint64_t off)
{
	return file_io(fd, iov, n, off, true);
}

static int probe_fd(int fd, enum disk_format *fmt)
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
	err = err ?: probe_fd(fd, fmt);
	close(fd);
	return err;
}

#define FAIL(err, ...)                                \
	do {                                          \
		snprintf(msg, msg_size, __VA_ARGS__); \
		rc = (err);                           \
		goto out;                             \
	} while (0)

int disk_open(const char *path, enum disk_format fmt, unsigned int flags, struct disk **out,
	      char *msg, size_t msg_size)
{
	return disk_open_chain(path, fmt, flags, 0, out, msg, msg_size);
}

int disk_open_chain(const char *path, enum disk_format fmt, unsigned int flags, int depth,
		    struct disk **out, char *msg, size_t msg_size)
{
	int rc = 0;
	bool read_only = flags & DISK_READ_ONLY;
	struct disk *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(msg, msg_size, "out of memory");
		return -ENOMEM;
	}
	d->read_only = read_only;
	/* O_NONBLOCK: a FIFO must not block the open; it is refused just after. */
	d->fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (d->fd < 0)
		FAIL(-errno, "%s", strerror(errno));
	struct stat st;
	if (fstat(d->fd, &st) < 0)
		FAIL(-errno, "%s", strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		FAIL(-EINVAL, "not a regular file or block device");
	if (fcntl(d->fd, F_SETFL, 0) < 0)
		FAIL(-errno, "%s", strerror(errno));
	/* flock: per open file, so a second open of the same image in this VM is refused too. */
	if (flock(d->fd, (read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			FAIL(-EBUSY, "in use by another VM or program (it holds a lock on it%s)",
			     read_only ? " for writing" : "");
		FAIL(-errno, "lock: %s", strerror(errno));
	}
	uint64_t size = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode) && ioctl(d->fd, BLKGETSIZE64, &size) < 0)
		FAIL(-errno, "size of the block device: %s", strerror(errno));
	d->size = size;
	enum disk_format found;
	if ((rc = probe_fd(d->fd, &found)))
		FAIL(rc, "reading the header: %s", strerror(-rc));
	if (fmt == DISK_QCOW2 && found != DISK_QCOW2)
		FAIL(-EINVAL, "format qcow2, but the image has no qcow2 header");
	rc = fmt == DISK_QCOW2 ? disk_qcow2_open(d, path, flags, depth, msg, msg_size)
			       : disk_raw_open(d, msg, msg_size);
out:
	if (rc) {
		if (d->ops && d->ops->close)
			d->ops->close(d);
		if (d->fd >= 0)
			close(d->fd);
		free(d);
		return rc;
	}
	*out = d;
	return 0;
}

void disk_close(struct disk *d)
{
	if (!d)
		return;
	if (d->ops && d->ops->close)
		d->ops->close(d);
	close(d->fd);
	free(d);
}
