/* Writing "newc" cpio archives (the initramfs format, Documentation/driver-api/early-userspace). */
#ifndef EC1_CPIO_H
#define EC1_CPIO_H

#include <stddef.h>
#include <stdint.h>

struct cpio {
	uint8_t *buf;
	size_t len, cap;
	uint32_t next_ino;
};

void cpio_init(struct cpio *c);
void cpio_free(struct cpio *c);
/* Adds an entry; mode includes the file type (S_IFREG, S_IFDIR, S_IFLNK). Returns 0 or -ENOMEM. */
int cpio_add(struct cpio *c, const char *name, uint32_t mode, const void *data, size_t size)
	__attribute__((warn_unused_result));
/* Ends the archive with the TRAILER!!! entry. */
int cpio_finish(struct cpio *c) __attribute__((warn_unused_result));

#endif
