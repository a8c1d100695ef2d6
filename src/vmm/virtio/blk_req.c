/* virtio-blk request handling (blk_req.h). */
#include "blk_req.h"

#include <errno.h>
#include <string.h>

#include "../clock.h"
#include "../disk/disk.h"
#include "../iov.h"

struct blk_header {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

/* A DISCARD or WRITE_ZEROES segment (struct virtio_blk_discard_write_zeroes). */
struct blk_segment {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};
#define BLK_SEG_F_UNMAP 1u

/* Whether [sector, sector + len bytes) lies inside the disk (no overflow on any input). */
static bool inside(const struct disk *d, uint64_t sector, uint64_t len)
{
	uint64_t sectors = d->size / BLK_SECTOR;
	return sector <= sectors && len <= (sectors - sector) * BLK_SECTOR;
}

static uint8_t segments(struct blk_target *t, const struct virtq_chain *c, uint32_t type)
{
	struct blk_segment seg[BLK_MAX_DISCARD_SEG];
	uint64_t len = c->out_len - sizeof(struct blk_header);
	if (len == 0 || len % sizeof(seg[0]) || len / sizeof(seg[0]) > BLK_MAX_DISCARD_SEG)
		return BLK_S_IOERR;
	unsigned int n = (unsigned int)(len / sizeof(seg[0]));
	iov_to_buf(c->out, c->n_out, sizeof(struct blk_header), seg, len);
	/* All checked before any is done: a bad request changes nothing. */
	for (unsigned int i = 0; i < n; i++) {
		uint32_t allowed = type == BLK_T_WRITE_ZEROES ? BLK_SEG_F_UNMAP : 0;
		if (seg[i].flags & ~allowed)
			return BLK_S_UNSUPP; /* §5.2.6.2: unmap on a discard, reserved bits */
		if (seg[i].num_sectors > BLK_MAX_DISCARD_SECTORS ||
		    !inside(t->disk, seg[i].sector, (uint64_t)seg[i].num_sectors * BLK_SECTOR))
			return BLK_S_IOERR;
	}
	for (unsigned int i = 0; i < n; i++) {
		uint64_t off = seg[i].sector * BLK_SECTOR;
		uint64_t bytes = (uint64_t)seg[i].num_sectors * BLK_SECTOR;
		int err = type == BLK_T_DISCARD
				  ? t->disk->ops->discard(t->disk, off, bytes)
				  : t->disk->ops->write_zeroes(t->disk, off, bytes,
							       seg[i].flags & BLK_SEG_F_UNMAP);
		if (err)
			return BLK_S_IOERR;
	}
	t->stats.discards++;
	return BLK_S_OK;
}

int64_t blk_handle(struct blk_target *t, const struct virtq_chain *c)
{
	if (c->in_len == 0)
		return -1;
	/* The status is the chain's last device-writable byte; the data are before it. */
	uint64_t in_data = c->in_len - 1;
	uint64_t written = 0;
	uint8_t status = BLK_S_IOERR;
	struct blk_header h;
	struct disk *d = t->disk;
	if (c->out_len < sizeof(h))
		goto out;
	iov_to_buf(c->out, c->n_out, 0, &h, sizeof(h));
	uint64_t out_data = c->out_len - sizeof(h);
	switch (h.type) {
	case BLK_T_IN: {
		if (in_data % BLK_SECTOR || !inside(d, h.sector, in_data))
			break;
		unsigned int n = iov_slice(c->in, c->n_in, 0, in_data, t->data);
		uint64_t t0 = clock_ns();
		int err = d->ops->read(d, t->data, n, h.sector * BLK_SECTOR);
		t->stats.read_ns += clock_ns() - t0;
		if (err == 0) {
			status = BLK_S_OK;
			written = in_data;
			t->stats.reads++;
			t->stats.read_bytes += in_data;
		}
		break;
	}
	case BLK_T_OUT: {
		if (out_data % BLK_SECTOR || !inside(d, h.sector, out_data) || d->read_only)
			break;
		unsigned int n = iov_slice(c->out, c->n_out, sizeof(h), out_data, t->data);
		uint64_t t0 = clock_ns();
		int err = d->ops->write(d, t->data, n, h.sector * BLK_SECTOR);
		t->stats.write_ns += clock_ns() - t0;
		if (err == 0) {
			status = BLK_S_OK;
			t->stats.writes++;
			t->stats.written_bytes += out_data;
		}
		break;
	}
	case BLK_T_FLUSH:
		if (t->no_flush) {
			status = BLK_S_UNSUPP; /* not offered: a driver that sends one anyway */
			break;
		}
		status = d->ops->flush(d) == 0 ? BLK_S_OK : BLK_S_IOERR;
		t->stats.flushes++;
		break;
	case BLK_T_GET_ID:
		/* The id, NUL-padded, in as much of the 20 bytes as the driver gave room for. */
		written = iov_from_buf(c->in, c->n_in, 0, t->id,
				       in_data < BLK_ID_BYTES ? in_data : BLK_ID_BYTES);
		status = BLK_S_OK;
		t->stats.other++;
		break;
	case BLK_T_DISCARD:
	case BLK_T_WRITE_ZEROES:
		status = d->read_only ? BLK_S_IOERR : segments(t, c, h.type);
		break;
	default:
		status = BLK_S_UNSUPP;
		t->stats.other++;
		break;
	}
out:
	if (status != BLK_S_OK)
		t->stats.errors++;
	iov_from_buf(c->in, c->n_in, in_data, &status, 1);
	return (int64_t)written + 1;
}
