/*
 * libFuzzer target: the virtio-mmio register protocol (src/vmm/virtio/mmio.c) with a device of
 * two queues, driven by any sequence of register reads and writes of any width and alignment,
 * queue service from the device side, and guest memory writes. Nothing may crash, and a device
 * the driver failed stays failed until a reset. An input of odd length runs the device with its
 * registers mirrored in a page (what the guest reads without exits): after every record the page
 * must show what a read of each register returns.
 *
 * Input: records of 8 bytes: kind (1: 0-3 read, 4-7 write, 8 serve a queue, 9 write guest
 * memory at 4 x offset), width (1: 1, 2, 4 or 8 bytes), offset (2), value (4).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/mmio_host.h"

#define MEM_BYTES (1u << 20)
#define PATCHED	  (64u << 10)

static struct virtq_chain chain;
static unsigned int notified;

static void fz_notify(struct virtio_mmio_dev *d, unsigned int q)
{
	(void)d;
	(void)q;
	notified++;
}

static const struct virtio_dev_ops fz_ops = {
	.name = "fuzz",
	.device_id = 3,
	.features = VIRTIO_F_INDIRECT_DESC,
	.num_queues = 2,
	.queue_max = 1024,
	.config_size = 12,
	.notify = fz_notify,
};

static int64_t fz_handle(void *ctx, struct virtq_chain *c)
{
	(void)ctx;
	uint64_t done = 0;
	for (unsigned int i = 0; i < c->n_in; i++) {
		size_t n = c->in[i].iov_len < 64 ? c->in[i].iov_len : 64; /* both ends of each */
		memset(c->in[i].iov_base, 0x5a, n);
		memset((uint8_t *)c->in[i].iov_base + c->in[i].iov_len - n, 0x5a, n);
		done += c->in[i].iov_len;
	}
	return (int64_t)done;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return guest_mem_init(&fake_mem, MEM_BYTES) ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t widths[4] = {1, 2, 4, 8};
	struct virtio_mmio_dev *d;
	static uint8_t page[VIRTIO_MMIO_WINDOW] __attribute__((aligned(4096)));
	fake_reset();
	memset(fake_mem.regions[0].host, 0, PATCHED);
	/* Each mode at a window of its own: which writes wait in the ring differs. */
	fake_page = size & 1 ? page : NULL;
	d = virtio_mmio_new(&fake_host, &fz_ops, NULL, fake_page ? 0xd0001000 : 0xd0000000, 5);
	fake_page = NULL;
	if (!d)
		abort();
	for (size_t at = 0; at + 8 <= size; at += 8) {
		uint8_t kind = data[at] % 10;
		uint32_t width = widths[data[at + 1] & 3];
		uint64_t off = (uint64_t)(data[at + 2] | data[at + 3] << 8) % 0x1000;
		uint8_t buf[8] = {0};
		memcpy(buf, data + at + 4, 4);
		if (kind < 4) {
			virtio_mmio_access(d, off, buf, width, false);
		} else if (kind < 8) {
			virtio_mmio_access(d, off, buf, width, true);
		} else if (kind == 8) {
			virtio_mmio_queues_begin(d);
			virtio_mmio_serve(d, buf[0] & 1, &chain, fz_handle, NULL);
			virtio_mmio_queues_end(d);
		} else {
			memcpy(fake_mem.regions[0].host + off * 4, buf, 4);
		}
		if (fake_failed && !(__atomic_load_n(&d->status, __ATOMIC_SEQ_CST) & 64) &&
		    d->status != 0)
			abort(); /* failed, yet not marked as needing a reset, and not reset */
		if (fake_failed && d->status == 0)
			fake_reset(); /* the driver reset the failed device: a new start */
		if (d->page && !fake_page_matches(d))
			abort(); /* the guest would read what a read through an exit does not give
				  */
	}
	virtio_mmio_free(d);
	return 0;
}
