/*
 * libFuzzer target: the split-virtqueue walker (src/vmm/virtio/queue.c) over guest memory the
 * fuzzer writes: ring sizes and addresses, descriptor tables, indirect tables, loops, indices,
 * and the guest changing the rings between two pops. Every buffer handed out must lie inside
 * guest memory and no chain may be longer than VIRTQ_MAX_SIZE.
 *
 * Input: num (2), flags (1: bit 0 indirect, bit 1 event index), desc, avail, used (2 each:
 * guest addresses), 64 KiB of guest memory at most, then 6-byte patches (offset 2, value 4)
 * applied one after each pop.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/vmm/guest_mem.h"
#include "../../src/vmm/virtio/queue.h"

#define MEM_BYTES (1u << 20)
#define FILLED	  (64u << 10)

static struct guest_mem mem;
static struct virtq_chain chain;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return guest_mem_init(&mem, MEM_BYTES) ? -1 : 0;
}

static uint16_t u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static void check_iov(const struct iovec *iov, unsigned int n, uint64_t total)
{
	uint8_t *lo = mem.regions[0].host, *hi = lo + mem.regions[0].size;
	uint64_t sum = 0;
	for (unsigned int i = 0; i < n; i++) {
		uint8_t *b = iov[i].iov_base;
		if (b < lo || b > hi || iov[i].iov_len > (size_t)(hi - b))
			abort();
		sum += iov[i].iov_len;
	}
	if (sum != total)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 9)
		return 0;
	struct virtq q;
	virtq_reset(&q);
	q.num = u16(data);
	q.indirect_ok = data[2] & 1;
	q.event_idx = data[2] & 2;
	q.desc_gpa = u16(data + 3) * 16ull;
	q.avail_gpa = u16(data + 5) * 2ull;
	q.used_gpa = u16(data + 7) * 4ull;
	data += 9;
	size -= 9;
	size_t fill = size < FILLED ? size : FILLED;
	memset(mem.regions[0].host, 0, FILLED);
	memcpy(mem.regions[0].host, data, fill);
	data += fill;
	size -= fill;
	if (virtq_enable(&q, &mem))
		return 0;
	for (unsigned int round = 0; round < 2u * q.num + 4; round++) {
		int r = virtq_pop(&q, &mem, &chain);
		if (r < 0 || r == 0) {
			if (!virtq_notify_on_if_empty(&q))
				break;
			continue;
		}
		if (chain.n_out + chain.n_in > VIRTQ_MAX_SIZE)
			abort();
		check_iov(chain.out, chain.n_out, chain.out_len);
		check_iov(chain.in, chain.n_in, chain.in_len);
		if (round % 7 == 3) {
			virtq_unpop(&q);
		} else {
			/* The device writes what it may into the guest's buffers. */
			for (unsigned int i = 0; i < chain.n_in; i++) {
				size_t n = chain.in[i].iov_len < 64 ? chain.in[i].iov_len : 64;
				memset(chain.in[i].iov_base, 0xa5, n);
				memset((uint8_t *)chain.in[i].iov_base + chain.in[i].iov_len - n,
				       0xa5, n);
			}
			virtq_push(&q, chain.head, (uint32_t)chain.in_len);
		}
		virtq_should_interrupt(&q);
		(void)virtq_outstanding(&q);
		virtq_set_no_notify(&q, round & 1);
		/* The guest changes its memory behind our back. */
		if (size >= 6) {
			uint32_t off = u16(data) % (FILLED - 4), v;
			memcpy(&v, data + 2, 4);
			memcpy(mem.regions[0].host + off, &v, 4);
			data += 6;
			size -= 6;
		}
	}
	return 0;
}
