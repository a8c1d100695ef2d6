/* Writing "newc" cpio archives (the initramfs format, Documentation/driver-api/early-userspace). */
#ifndef EC1_CPIO_H
#define EC1_CPIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cpio {
	uint8_t *buf;
	size_t len, cap;
	uint32_t next_ino;
	bool fixed; /* buf is the caller's and does not grow; NULL only counts */
};

/* An archive in a buffer of its own that grows as needed (cpio_free() releases it). */
void cpio_init(struct cpio *c);
/*
 * An archive written straight into buf[0, cap) (an entry that does not fit fails with -ENOSPC),
 * or, with buf NULL, only measured: the same entries then give the same len, so a caller can
 * size the space first and write the archive in place after.
 */
void cpio_init_at(struct cpio *c, uint8_t *buf, size_t cap);
void cpio_free(struct cpio *c);
/* Adds an entry; mode includes the file type (S_IFREG, S_IFDIR, S_IFLNK). Returns 0, -ENOMEM or
 * -ENOSPC. */
int cpio_add(struct cpio *c, const char *name, uint32_t mode, const void *data, size_t size)
	__attribute__((warn_unused_result));
/* Ends the archive with the TRAILER!!! entry. */
int cpio_finish(struct cpio *c) __attribute__((warn_unused_result));

#endif
