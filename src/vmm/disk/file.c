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

int disk_file_read(int fd, const struct iovec *iov, unsigned int n, uint64_t off)
{
	return file_io(fd, iov, n, off, false);
}

int disk_file_write(int fd, const struct iovec *iov, unsigned int n, uint64_t off)
{
	return file_io(fd, iov, n, off, true);
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
	free(d);
}
