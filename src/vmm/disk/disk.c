/* Opening an image (disk.h): what the path names, its lock, its format, then the format's own open.
 */
#include "disk.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>	/* BLKGETSIZE64, BLKSSZGET */
#include <linux/stat.h> /* statx's direct I/O alignment */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

const char *disk_format_name(enum disk_format fmt)
{
	return fmt == DISK_QCOW2 ? "qcow2" : "raw";
}

/*
 * QEMU's image locks (its block/file-posix.c; facts of its on-disk protocol): open file
 * description locks on single bytes, read locks all; byte 100 + n says "I hold permission n",
 * byte 200 + n "nobody else may hold permission n". Permissions: 0 consistent read, 1 write,
 * 2 write of unchanged data, 3 resize. ec1 takes them as a QEMU guest disk does, so that QEMU
 * and ec1 refuse each other's images as two QEMUs or two ec1s do: a reader holds 0 and denies
 * 1 and 3; a writer holds 0, 1 and 2 and denies 1 and 3.
 */
#define QLOCK_HOLD   100
#define QLOCK_DENY   200
#define QPERM_READ   (1u << 0)
#define QPERM_WRITE  (1u << 1)
#define QPERM_SAME   (1u << 2)
#define QPERM_RESIZE (1u << 3)
#define QPERMS	     4

/* Whether another open file holds a lock on byte off that a write lock would conflict with. */
static int byte_locked(int fd, off_t off, bool *locked)
{
	struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = off, .l_len = 1};
	if (fcntl(fd, F_OFD_GETLK, &l) < 0)
		return -errno;
	*locked = l.l_type != F_UNLCK;
	return 0;
}

/* A file system without byte-range locks (QEMU goes on without them there too; flock holds). */
static bool no_byte_locks(int err)
{
	return err == -ENOLCK || err == -EINVAL || err == -EOPNOTSUPP || err == -ENOSYS;
}

static int qemu_locks(int fd, bool read_only, const char **conflict)
{
	unsigned int hold = read_only ? QPERM_READ : QPERM_READ | QPERM_WRITE | QPERM_SAME;
	unsigned int deny = QPERM_WRITE | QPERM_RESIZE;
	static const char *const names[QPERMS] = {"read", "write", "write", "resize"};
	for (unsigned int n = 0; n < QPERMS; n++) {
		bool locked = false;
		int err;
		/* Someone denies what we would hold, or holds what we would deny. */
		if ((hold & (1u << n)) && (err = byte_locked(fd, QLOCK_DENY + n, &locked)))
			return no_byte_locks(err) ? 0 : err;
		if (!locked && (deny & (1u << n)) &&
		    (err = byte_locked(fd, QLOCK_HOLD + n, &locked)))
			return no_byte_locks(err) ? 0 : err;
		if (locked) {
			*conflict = names[n];
			return -EBUSY;
		}
	}
	for (unsigned int n = 0; n < QPERMS; n++)
		for (unsigned int base = QLOCK_HOLD; base <= QLOCK_DENY; base += 100) {
			if (!((base == QLOCK_HOLD ? hold : deny) & (1u << n)))
				continue;
			struct flock l = {.l_type = F_RDLCK,
					  .l_whence = SEEK_SET,
					  .l_start = (off_t)(base + n),
					  .l_len = 1};
			if (fcntl(fd, F_OFD_SETLK, &l) < 0)
				return errno == EAGAIN || errno == EACCES ? -EBUSY
				       : no_byte_locks(-errno)		  ? 0
									  : -errno;
		}
	return 0;
}

/*
 * What O_DIRECT needs of a transfer on fd: the file system's own figures where statx has them
 * (offset and buffer alignment; 0 there: no direct I/O on this file), else a block device's
 * logical block size, else 4 KiB. Returns 0 when the file cannot be read directly.
 */
static uint32_t dio_alignment(int fd, const struct stat *st)
{
	struct statx sx;
	if (syscall(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN)) {
		uint32_t a = sx.stx_dio_offset_align > sx.stx_dio_mem_align
				     ? sx.stx_dio_offset_align
				     : sx.stx_dio_mem_align;
		return a == 0 ? 0 : a < 512 ? 512 : a;
	}
	int sector = 0;
	if (S_ISBLK(st->st_mode) && ioctl(fd, BLKSSZGET, &sector) == 0 && sector >= 512)
		return (uint32_t)sector;
	return 4096;
}

/* Direct I/O for d (DISK_DIRECT): O_DIRECT on, its alignment, the bounce buffer. */
static int direct_on(struct disk *d, const struct stat *st, enum disk_format fmt, char *msg,
		     size_t msg_size)
{
	uint32_t a = dio_alignment(d->fd, st);
	/* A raw image's end (a qcow2 image only grows, in clusters). */
	if (a && fmt == DISK_RAW && d->size % a) {
		snprintf(
			msg, msg_size,
			"direct I/O needs a size that is a multiple of %u bytes (the file system's "
			"block for O_DIRECT); it is %llu",
			a, (unsigned long long)d->size);
		return -EINVAL;
	}
	if (a == 0 || a > DISK_BOUNCE || (a & (a - 1)) || fcntl(d->fd, F_SETFL, O_DIRECT) < 0) {
		snprintf(msg, msg_size,
			 "direct I/O (O_DIRECT): its file system does not take it; leave out "
			 "\"direct\" there");
		return -EINVAL;
	}
	d->dio_bounce = aligned_alloc(a, DISK_BOUNCE);
	if (!d->dio_bounce) {
		(void)fcntl(d->fd, F_SETFL, 0); /* as it was: the format's close may write */
		snprintf(msg, msg_size, "out of memory");
		return -ENOMEM;
	}
	d->dio_align = a;
	return 0;
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
	const char *conflict = "";
	rc = qemu_locks(d->fd, read_only, &conflict);
	if (rc == -EBUSY)
		FAIL(rc,
		     "in use by QEMU or another program that takes QEMU's image locks (its %s "
		     "lock is held)",
		     conflict);
	if (rc)
		FAIL(rc, "QEMU's image locks: %s", strerror(-rc));
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
	if (!rc && (flags & DISK_DIRECT))
		rc = direct_on(d, &st, fmt, msg, msg_size);
out:
	if (rc) {
		if (d->ops && d->ops->close)
			d->ops->close(d);
		if (d->fd >= 0)
			close(d->fd);
		free(d->dio_bounce);
		free(d);
		return rc;
	}
	*out = d;
	return 0;
}
