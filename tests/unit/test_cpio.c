/* The newc writer: headers, padding and trailer as the kernel's initramfs unpacker expects. */
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

int main(void)
{
	TEST(cpio_writes_newc_entries_with_padding);
	return tests_failed != 0;
}
