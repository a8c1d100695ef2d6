/* newc cpio writer: 110-byte ASCII header, name, data, each padded to 4 bytes. */
#include "cpio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_INO 0x100000 /* clear of inode numbers a base archive is likely to use */

void cpio_init(struct cpio *c)
{
	memset(c, 0, sizeof(*c));
	c->next_ino = FIRST_INO;
}

void cpio_init_at(struct cpio *c, uint8_t *buf, size_t cap)
{
	cpio_init(c);
	c->buf = buf;
	c->cap = buf ? cap : SIZE_MAX;
	c->fixed = true;
}

void cpio_free(struct cpio *c)
{
	if (!c->fixed)
		free(c->buf);
	memset(c, 0, sizeof(*c));
}

static int reserve(struct cpio *c, size_t more)
{
	if (more <= c->cap - c->len)
		return 0;
	if (c->fixed)
		return -ENOSPC;
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

/* Appends n bytes of src (zeros when src is NULL); a measuring archive only counts them. */
static void put(struct cpio *c, const void *src, size_t n)
{
	if (c->buf) {
		if (src)
			memcpy(c->buf + c->len, src, n);
		else
			memset(c->buf + c->len, 0, n);
	}
	c->len += n;
}

static void pad4(struct cpio *c)
{
	put(c, NULL, (4 - (c->len & 3)) & 3);
}

int cpio_add(struct cpio *c, const char *name, uint32_t mode, const void *data, size_t size)
{
	size_t namesize = strlen(name) + 1;
	if (size > UINT32_MAX)
		return -ENOMEM;
	/* Exactly what the entry takes: header and name, padded, then the data, padded. */
	size_t head = ((c->len + 110 + namesize + 3) & ~(size_t)3) - c->len;
	int err = reserve(c, head + ((size + 3) & ~(size_t)3));
	if (err)
		return err;
	char hdr[111];
	/* magic, ino, mode, uid, gid, nlink, mtime, filesize, maj, min, rmaj, rmin, namesize, check
	 */
	snprintf(hdr, sizeof(hdr), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		 c->next_ino++, mode, 0, 0, 1, 0, (uint32_t)size, 0, 0, 0, 0, (uint32_t)namesize,
		 0);
	put(c, hdr, 110);
	put(c, name, namesize);
	pad4(c);
	if (size) {
		put(c, data, size);
		pad4(c);
	}
	return 0;
}

int cpio_finish(struct cpio *c)
{
	return cpio_add(c, "TRAILER!!!", 0, NULL, 0);
}
