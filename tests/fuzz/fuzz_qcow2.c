/*
 * libFuzzer target: the qcow2 layer (src/vmm/disk/qcow2.c) over an image the fuzzer writes. The
 * input's first byte picks the operations' seed (and, its top bit, direct I/O as on 4 KiB
 * blocks); the rest is the image file itself (its header,
 * tables and clusters), laid out as the fuzzer likes. The image is opened read-write (and, when
 * that fails, read-only); then reads, writes, discards and write-zeroes at offsets from the
 * seed. Checked: nothing crashes, reads or writes outside the image's buffers (ASan), or grows
 * the file without bound; a failed open leaves no descriptor behind. The header is also read as
 * the libkrun backend reads it (disk_qcow2_refs): an image that opens without backing files
 * allowed names no backing file and no external data file there either.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/vmm/disk/disk.h"

static char path[64];

static unsigned int open_fds(void)
{
	unsigned int n = 0;
	for (int fd = 0; fd < 256; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > (1 << 20))
		return 0;
	if (!path[0])
		snprintf(path, sizeof(path), "/tmp/ec1-fuzz-qcow2-%d.img", (int)getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	close(fd);
	unsigned int fds = open_fds();
	uint64_t seed = data[0] * 0x9e3779b97f4a7c15ull + 1;
	/* What the header names outside the image, as the libkrun backend asks before libkrun opens
	 * it: an image the builtin engine opens without backing files names neither. */
	char name[1024], msg[512];
	bool data_file;
	int refs = disk_qcow2_refs(data + 1, size - 1, name, sizeof(name), &data_file, msg,
				   sizeof(msg));
	if (!refs && strlen(name) >= sizeof(name))
		abort();
	struct disk *d = NULL;
	/* The seed's top bit: direct I/O (where /tmp takes it), as on 4 KiB blocks. */
	unsigned int direct = data[0] & 0x80 ? DISK_DIRECT : 0;
	if (disk_open(path, DISK_QCOW2, direct, &d, msg, sizeof(msg)) &&
	    disk_open(path, DISK_QCOW2, 0, &d, msg, sizeof(msg)) &&
	    disk_open(path, DISK_QCOW2, DISK_READ_ONLY, &d, msg, sizeof(msg))) {
		if (open_fds() != fds)
			abort();
		return 0;
	}
	if (refs || name[0] || data_file)
		abort();
	if (d->dio_align)
		d->dio_align = 4096;
	static unsigned char buf[1 << 16];
	for (int i = 0; i < 16 && d->size; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		uint64_t len = 512 * (1 + seed % 128);
		uint64_t off = (seed >> 8) % (d->size / 512) * 512;
		if (len > d->size - off)
			len = d->size - off;
		struct iovec iov = {buf, len};
		switch (seed >> 60 & 3) {
		case 0:
			d->ops->read(d, &iov, 1, off);
			break;
		case 1:
			memset(buf, (int)i, len);
			d->ops->write(d, &iov, 1, off);
			break;
		case 2:
			d->ops->discard(d, off, len);
			break;
		case 3:
			d->ops->write_zeroes(d, off, len, seed & 1);
			break;
		}
	}
	d->ops->flush(d);
	disk_close(d);
	struct stat st;
	/* Each write allocates a few clusters at most: the file stays within a bound. */
	if (stat(path, &st) == 0 && (uint64_t)st.st_size > size + 64ull * (16 * 3 + 8) * (2 << 20))
		abort();
	if (open_fds() != fds)
		abort();
	return 0;
}
