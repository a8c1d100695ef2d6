/*
 * Disk images behind virtio-blk: one interface over each format (raw.c; qcow2 to come), with the
 * open-time checks every format shares: what the path names, the advisory lock, the format
 * named against the header. The caller (virtio/blk.c) bounds every guest offset and length by
 * size before it calls in; the formats never see an access past it.
 */
#ifndef EC1_VMM_DISK_H
#define EC1_VMM_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum disk_format {
	DISK_RAW = 0, /* libkrun's values (EC1_DISK_*) */
	DISK_QCOW2 = 1,
};

struct disk;

struct disk_ops {
	const char *name;
	/* The whole of [off, off + length of iov): 0 or -errno. */
	int (*read)(struct disk *d, const struct iovec *iov, unsigned int n, uint64_t off);
	int (*write)(struct disk *d, const struct iovec *iov, unsigned int n, uint64_t off);
	/* What was written reaches stable storage. */
	int (*flush)(struct disk *d);
	/* [off, off + len) may be forgotten (reads give zeroes or the old data). */
	int (*discard)(struct disk *d, uint64_t off, uint64_t len);
	/* [off, off + len) reads as zeroes; unmap: its space may be freed. */
	int (*write_zeroes)(struct disk *d, uint64_t off, uint64_t len, bool unmap);
	void (*close)(struct disk *d);
};

struct disk {
	const struct disk_ops *ops;
	int fd;		/* the image file */
	uint64_t size;	/* bytes the guest sees, a multiple of 512 */
	bool read_only; /* opened O_RDONLY: every change fails with -EROFS */
	void *priv;	/* the format's */
	/* Direct I/O (DISK_DIRECT): what O_DIRECT needs of a transfer's offset, length and buffer
	 * addresses, and an aligned buffer of DISK_BOUNCE bytes for those that do not have it. */
	uint32_t dio_align;
	uint8_t *dio_bounce;
};

#define DISK_READ_ONLY	   1u /* O_RDONLY; every change fails with -EROFS */
#define DISK_ALLOW_BACKING 2u /* a qcow2 image may name a backing file (opened read-only) */
/*
 * O_DIRECT, past the host's page cache (a transfer O_DIRECT cannot take as it is, as a guest's
 * 512-byte write on a file system of 4 KiB blocks, or a qcow2 table entry, goes through
 * dio_bounce, a write read-modify-written). A qcow2 image's backing files stay cached.
 */
#define DISK_DIRECT (1u << 2)
#define DISK_BOUNCE (256u << 10)

/*
 * Opens path as an image of format fmt: a regular file or block device (never a FIFO, socket or
 * other device), O_RDONLY with DISK_READ_ONLY, locked against other users (shared when
 * read-only, exclusive otherwise: an image in use by another run is refused unless both are
 * read-only). Returns 0, or -errno with msg saying why (without the path: the caller names the
 * disk).
 */
int disk_open(const char *path, enum disk_format fmt, unsigned int flags, struct disk **out,
	      char *msg, size_t msg_size) __attribute__((warn_unused_result));
/* The same, as the depth-th image of a backing chain (disk_open: 0). */
int disk_open_chain(const char *path, enum disk_format fmt, unsigned int flags, int depth,
		    struct disk **out, char *msg, size_t msg_size)
	__attribute__((warn_unused_result));
void disk_close(struct disk *d);
/*
 * The format an image's header says: qcow2 when it starts with qcow2's magic, else raw. Returns
 * 0, or -errno when the file cannot be read.
 */
int disk_probe(const char *path, enum disk_format *fmt);
int disk_probe_fd(int fd, enum disk_format *fmt);
const char *disk_format_name(enum disk_format fmt);
/*
 * The files outside a qcow2 image its header names, for a backend that opens images itself and
 * every file they name (libkrun): the backing file's name in name ("" when none; name_size 1024
 * takes any) and whether the data is in an external file. image: the image's first len bytes
 * (4 KiB holds every name). 0, or -EINVAL with msg saying why the header is unreadable.
 */
int disk_qcow2_refs(const uint8_t *image, size_t len, char *name, size_t name_size, bool *data_file,
		    char *msg, size_t msg_size);

/*
 * For the formats: the image file's bytes, whole or failed (short reads past EOF: zeroes); with
 * DISK_DIRECT, O_DIRECT, through dio_bounce where a transfer is not aligned.
 */
int disk_io(struct disk *d, const struct iovec *iov, unsigned int n, uint64_t off, bool write);
/*
 * The formats' open functions, called by disk_open with d->fd, d->read_only and d->size (the
 * file's) set; they set d->ops (then d->ops->close runs on any later failure) and d->size.
 */
int disk_raw_open(struct disk *d, char *msg, size_t msg_size);
/* A backing image is opened through open_backing (disk_open_chain: formats never call up). */
typedef int disk_open_fn(const char *path, enum disk_format fmt, unsigned int flags, int depth,
			 struct disk **out, char *msg, size_t msg_size);
int disk_qcow2_open(struct disk *d, const char *path, unsigned int flags, int depth,
		    disk_open_fn *open_backing, char *msg, size_t msg_size);

#endif
