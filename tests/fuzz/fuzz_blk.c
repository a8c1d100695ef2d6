/*
 * libFuzzer target: virtio-blk requests (src/vmm/virtio/blk_req.c) against a scratch raw image.
 * The input is a flag byte (1 read-only, 2 direct I/O where /tmp takes O_DIRECT, 4 that as on a
 * file system of 4 KiB blocks, 8 sync=none), then requests: type (u32), sector (u64), the number of
 * device-readable and device-writable buffers (a byte each, at most 8), their lengths (u16
 * each), then the device-readable bytes (the header first, as the guest lays it out). Checked
 * after each request: the answer's length fits the device-writable buffers, the status is OK,
 * IOERR or UNSUPP, the image never grows, and a read-only image never changes.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/vmm/disk/disk.h"
#include "../../src/vmm/virtio/blk_req.h"

#define IMAGE_SIZE (64 * 1024 + 300) /* a tail that is not a whole sector */
#define MAX_BUFS   8

static char path[64];
static struct blk_target target;
static struct virtq_chain chain;

static uint64_t checksum(void)
{
	static unsigned char buf[IMAGE_SIZE];
	uint64_t h = 1469598103934665603ull;
	int fd = open(path, O_RDONLY); /* buffered: the disk's own may be O_DIRECT */
	ssize_t n = fd < 0 ? -1 : pread(fd, buf, sizeof(buf), 0);
	if (fd >= 0)
		close(fd);
	for (ssize_t i = 0; i < n; i++)
		h = (h ^ buf[i]) * 1099511628211ull;
	return h ^ (uint64_t)n;
}

static void make_image(void)
{
	snprintf(path, sizeof(path), "/tmp/ec1-fuzz-blk-%d.img", (int)getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	static unsigned char buf[IMAGE_SIZE];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 13);
	if (fd < 0 || write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		abort();
	close(fd);
}

struct reader {
	const uint8_t *p;
	size_t left;
};

static uint64_t take(struct reader *r, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n && r->left; i++, r->left--)
		v |= (uint64_t)*r->p++ << (8 * i);
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct reader r = {data + 1, size - 1};
	bool ro = data[0] & 1;
	make_image();
	char msg[256];
	memset(&target, 0, sizeof(target));
	unsigned int flags = (ro ? DISK_READ_ONLY : 0) | (data[0] & 2 ? DISK_DIRECT : 0);
	if (disk_open(path, DISK_RAW, flags, &target.disk, msg, sizeof(msg)) &&
	    (!(flags & DISK_DIRECT) ||
	     disk_open(path, DISK_RAW, flags & ~DISK_DIRECT, &target.disk, msg, sizeof(msg))))
		abort();
	if (target.disk->dio_align && (data[0] & 4))
		target.disk->dio_align = 4096;
	target.no_flush = data[0] & 8;
	memcpy(target.id, "fuzz", 4);
	uint64_t before = checksum();
	while (r.left >= 14) {
		uint32_t type = (uint32_t)take(&r, 4);
		uint64_t sector = take(&r, 8);
		unsigned int n_out = (unsigned int)take(&r, 1) % (MAX_BUFS + 1);
		unsigned int n_in = (unsigned int)take(&r, 1) % (MAX_BUFS + 1);
		size_t out_len[MAX_BUFS], in_len[MAX_BUFS];
		for (unsigned int i = 0; i < n_out; i++)
			out_len[i] = take(&r, 2) % 8193;
		for (unsigned int i = 0; i < n_in; i++)
			in_len[i] = take(&r, 2) % 8193;
		memset(&chain, 0, sizeof(chain));
		/* The header the fuzzer chose goes first into the readable bytes. */
		unsigned char header[16];
		memcpy(header, &type, 4);
		memset(header + 4, 0, 4);
		memcpy(header + 8, &sector, 8);
		size_t hdr_done = 0;
		for (unsigned int i = 0; i < n_out; i++) {
			unsigned char *b = malloc(out_len[i] ? out_len[i] : 1);
			for (size_t k = 0; k < out_len[i]; k++)
				b[k] = hdr_done < 16 ? header[hdr_done++]
						     : (unsigned char)take(&r, 1);
			chain.out[chain.n_out++] = (struct iovec){b, out_len[i]};
			chain.out_len += out_len[i];
		}
		for (unsigned int i = 0; i < n_in; i++) {
			unsigned char *b = malloc(in_len[i] ? in_len[i] : 1);
			memset(b, 0xee, in_len[i]);
			chain.in[chain.n_in++] = (struct iovec){b, in_len[i]};
			chain.in_len += in_len[i];
		}
		int64_t len = blk_handle(&target, &chain);
		if (chain.in_len == 0 ? len != -1 : (len < 1 || (uint64_t)len > chain.in_len))
			abort();
		if (chain.in_len) {
			uint8_t status = 0xee;
			iov_to_buf(chain.in, chain.n_in, chain.in_len - 1, &status, 1);
			if (status > BLK_S_UNSUPP)
				abort();
		}
		for (unsigned int i = 0; i < chain.n_out; i++)
			free(chain.out[i].iov_base);
		for (unsigned int i = 0; i < chain.n_in; i++)
			free(chain.in[i].iov_base);
		struct stat st;
		if (fstat(target.disk->fd, &st) < 0 || st.st_size != IMAGE_SIZE)
			abort();
	}
	if (ro && checksum() != before)
		abort();
	disk_close(target.disk);
	unlink(path);
	return 0;
}
