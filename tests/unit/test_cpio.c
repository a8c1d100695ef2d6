/* The newc writer: headers, padding and trailer as the kernel's initramfs unpacker expects. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "../../src/vmm/cpio.h"
#include "check.h"

static unsigned long field(const unsigned char *hdr, int i)
{
	char buf[9];
	memcpy(buf, hdr + 6 + 8 * i, 8);
	buf[8] = 0;
	return strtoul(buf, NULL, 16);
}

static void cpio_writes_newc_entries_with_padding(void)
{
	struct cpio c;
	cpio_init(&c);
	CHECK(cpio_add(&c, "dir", S_IFDIR | 0755, NULL, 0) == 0);
	CHECK(cpio_add(&c, "dir/file", S_IFREG | 0644, "hello", 5) == 0);
	CHECK(cpio_finish(&c) == 0);
	CHECK(c.len % 4 == 0);
	const unsigned char *p = c.buf;
	CHECK(memcmp(p, "070701", 6) == 0);
	CHECK(field(p, 1) == (S_IFDIR | 0755));
	CHECK(field(p, 11) == 4); /* namesize "dir\0" */
	size_t off = (110 + 4 + 3) & ~3u;
	p = c.buf + off;
	CHECK(memcmp(p, "070701", 6) == 0);
	CHECK(field(p, 6) == 5);  /* filesize */
	CHECK(field(p, 11) == 9); /* "dir/file\0" */
	CHECK(memcmp(p + 110, "dir/file", 9) == 0);
	size_t data = off + ((110 + 9 + 3) & ~3u);
	CHECK(memcmp(c.buf + data, "hello", 5) == 0);
	p = c.buf + data + 8;
	CHECK(memcmp(p + 110, "TRAILER!!!", 11) == 0);
	CHECK(field(p, 0) != field(c.buf, 0)); /* distinct inode numbers */
	cpio_free(&c);
}

static int entries(struct cpio *c)
{
	static const char data[] = "0123456789abc";
	int err = cpio_add(c, "a", S_IFDIR | 0755, NULL, 0);
	err = err ?: cpio_add(c, "a/odd-length-name", S_IFREG | 0600, data, 13);
	err = err ?: cpio_add(c, "a/b", S_IFREG | 0644, data, 4);
	return err ?: cpio_finish(c);
}

/* Measured, then written in place: the same bytes as the growing archive, and never past cap. */
static void cpio_measures_and_writes_in_place(void)
{
	struct cpio grown, measured, placed;
	cpio_init(&grown);
	CHECK(entries(&grown) == 0);
	cpio_init_at(&measured, NULL, 0);
	CHECK(entries(&measured) == 0 && measured.len == grown.len);
	uint8_t buf[1024];
	memset(buf, 0xee, sizeof(buf));
	cpio_init_at(&placed, buf, grown.len);
	CHECK(entries(&placed) == 0 && placed.len == grown.len);
	CHECK(memcmp(buf, grown.buf, grown.len) == 0 && buf[grown.len] == 0xee);
	/* One byte short: the last entry does not fit, and nothing is written past the end. */
	memset(buf, 0xee, sizeof(buf));
	cpio_init_at(&placed, buf, grown.len - 1);
	CHECK(entries(&placed) == -ENOSPC);
	CHECK(buf[grown.len - 1] == 0xee);
	cpio_free(&placed);
	cpio_free(&grown);
}

int main(void)
{
	TEST(cpio_writes_newc_entries_with_padding);
	TEST(cpio_measures_and_writes_in_place);
	return tests_failed != 0;
}
