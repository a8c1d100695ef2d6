/* newc cpio writer: 110-byte ASCII header, name, data, each padded to 4 bytes. */
#include "cpio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cpio_init(struct cpio *c)
{
	memset(c, 0, sizeof(*c));
	c->next_ino = 0x100000; /* clear of inode numbers a base archive is likely to use */
}

void cpio_free(struct cpio *c)
{
	free(c->buf);
	memset(c, 0, sizeof(*c));
}

static int reserve(struct cpio *c, size_t more)
{
	if (c->len + more <= c->cap)
		return 0;
	size_t cap = c->cap ? c->cap : 4096;
	while (cap < c->len + more)
		cap *= 2;
	uint8_t *p = realloc(c->buf, cap);
	if (!p)
		return -ENOMEM;
	c->buf = p;
	c->cap = cap;
	return 0;
}

static void pad4(struct cpio *c)
{
	while (c->len & 3)
		c->buf[c->len++] = 0;
}

int cpio_add(struct cpio *c, const char *name, uint32_t mode, const void *data, size_t size)
{
	size_t namesize = strlen(name) + 1;
	if (size > UINT32_MAX || reserve(c, 110 + namesize + size + 8))
		return -ENOMEM;
	char hdr[111];
	/* magic, ino, mode, uid, gid, nlink, mtime, filesize, maj, min, rmaj, rmin, namesize, check
	 */
	snprintf(hdr, sizeof(hdr), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		 c->next_ino++, mode, 0, 0, 1, 0, (uint32_t)size, 0, 0, 0, 0, (uint32_t)namesize,
		 0);
	memcpy(c->buf + c->len, hdr, 110);
	c->len += 110;
	memcpy(c->buf + c->len, name, namesize);
	c->len += namesize;
	pad4(c);
	if (size) {
		memcpy(c->buf + c->len, data, size);
		c->len += size;
		pad4(c);
	}
	return 0;
}

int cpio_finish(struct cpio *c)
{
	return cpio_add(c, "TRAILER!!!", 0, NULL, 0);
}
