/* Opening an image (disk.h): what the path names, its lock, its format, then the format's own open.
 */
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

const char *disk_format_name(enum disk_format fmt)
{
	return fmt == DISK_QCOW2 ? "qcow2" : "raw";
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
	if ((rc = disk_probe_fd(d->fd, &found)))
		FAIL(rc, "reading the header: %s", strerror(-rc));
	if (fmt == DISK_QCOW2 && found != DISK_QCOW2)
		FAIL(-EINVAL, "format qcow2, but the image has no qcow2 header");
	rc = fmt == DISK_QCOW2
		     ? disk_qcow2_open(d, path, flags, depth, disk_open_chain, msg, msg_size)
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
