/*
 * qcow2 images (versions 2 and 3; the format as QEMU's docs/interop/qcow2.txt describes it):
 * two-level cluster tables (L1 in memory, L2 tables in a bounded cache), 16-bit refcounts,
 * allocation on write, zero clusters, compressed clusters read (zlib deflate), discards that
 * free clusters, and a read-only backing chain. Everything on disk is big-endian.
 *
 * Metadata is written through, in an order that survives ec1 dying at any point: a cluster's
 * refcount is raised before anything points at it, its data are written before the L2 entry
 * that points at it, and a pointer is cleared before the refcount is dropped. Killed in the
 * middle, an image has at worst leaked clusters (qemu-img check reports them; -r leaks
 * repairs). A guest flush makes everything before it durable (fdatasync).
 *
 * The image is untrusted input like the guest: every offset read from it is checked (aligned,
 * inside the file, never onto the header, the L1 or refcount tables, an L2 table or a refcount
 * block) before it is used, and what fails the checks is an I/O error naming the image.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../iov.h"
#include "disk.h"

#define HDR_V2_LEN	     72
#define HDR_V3_LEN	     104
#define INCOMPAT_DIRTY	     (1ull << 0)
#define INCOMPAT_CORRUPT     (1ull << 1)
#define INCOMPAT_DATA_FILE   (1ull << 2)
#define INCOMPAT_COMPRESSION (1ull << 3)
#define INCOMPAT_EXTL2	     (1ull << 4)
#define EXT_END		     0
#define EXT_BACKING_FORMAT   0xe2792acau
#define L1E_OFFSET_MASK	     0x00fffffffffffe00ull
#define L2E_OFFSET_MASK	     0x00fffffffffffe00ull
#define L2E_COMPRESSED	     (1ull << 62)
#define OFLAG_COPIED	     (1ull << 63)
#define L2E_ZERO	     1ull
#define MAX_L1_BYTES	     (32u << 20)
#define MAX_RT_BYTES	     (8u << 20)
#define BACKING_DEPTH	     8
#define CACHE_BYTES	     (4u << 20) /* L2 tables kept, at most (at least 4 tables) */

struct table_slot {
	uint64_t offset; /* host offset of the table; 0: empty slot */
	uint64_t used;	 /* LRU stamp */
	uint8_t *data;	 /* the table as on disk (big-endian) */
};

struct cache {
	unsigned int n;
	struct table_slot *slots;
	uint64_t clock;
};

struct qcow2 {
	const char *name; /* for messages */
	struct disk *d;	  /* the image's own (its fd, its direct I/O) */
	unsigned int version, cluster_bits, l2_bits;
	uint64_t cluster_size, size;
	uint64_t *l1; /* host-endian */
	uint32_t l1_size;
	uint64_t l1_offset;
	uint64_t *rt; /* refcount table, host-endian */
	uint64_t rt_entries, rt_offset;
	uint32_t rt_clusters;
	unsigned int rb_bits; /* log2 of refcounts per block */
	struct cache l2, rb;
	uint64_t end;	    /* host bytes in use or allocated: new clusters go here */
	uint64_t free_hint; /* no free cluster below this index */
	struct disk *backing;
	uint64_t *meta; /* the L2 tables' and refcount blocks' offsets, sorted, no duplicates */
	size_t nr_meta, meta_cap;
	uint8_t *bounce;  /* one cluster */
	uint8_t *zbuf;	  /* compressed input, two clusters */
	uint64_t zcached; /* the L2 entry whose data bounce holds, decompressed, or 0 */
	z_stream z;
	bool z_ready;
};

static int corrupt(struct qcow2 *q, const char *what, uint64_t v)
{
	fprintf(stderr, "ec1: qcow2 image %s: %s (0x%llx): refusing the request\n", q->name, what,
		(unsigned long long)v);
	return -EIO;
}

/* The image file's bytes, through the disk's direct I/O where it has it (disk_io). */
static int pread_all(struct qcow2 *q, void *buf, size_t len, uint64_t off)
{
	struct iovec iov = {buf, len};
	return disk_io(q->d, &iov, 1, off, false);
}

static int pwrite_all(struct qcow2 *q, const void *buf, size_t len, uint64_t off)
{
	struct iovec iov = {(void *)buf, len};
	return disk_io(q->d, &iov, 1, off, true);
}

/* Where off is in the sorted set of table offsets, or would go. */
static size_t meta_find(const struct qcow2 *q, uint64_t off)
{
	size_t lo = 0, hi = q->nr_meta;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (q->meta[mid] < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* A new L2 table or refcount block at off joins the set. */
static int meta_add(struct qcow2 *q, uint64_t off)
{
	size_t at = meta_find(q, off);
	if (at < q->nr_meta && q->meta[at] == off)
		return 0;
	if (q->nr_meta == q->meta_cap) {
		size_t cap = q->meta_cap ? 2 * q->meta_cap : 64;
		uint64_t *m = realloc(q->meta, cap * sizeof(*m));
		if (!m)
			return -ENOMEM;
		q->meta = m;
		q->meta_cap = cap;
	}
	memmove(q->meta + at + 1, q->meta + at, (q->nr_meta - at) * sizeof(*q->meta));
	q->meta[at] = off;
	q->nr_meta++;
	return 0;
}

/* The set made anew from the L1 and refcount tables (at open, and when the latter moves). */
static int meta_rebuild(struct qcow2 *q)
{
	q->nr_meta = 0;
	int err = 0;
	for (uint32_t i = 0; i < q->l1_size && !err; i++)
		if (q->l1[i] & L1E_OFFSET_MASK)
			err = meta_add(q, q->l1[i] & L1E_OFFSET_MASK);
	for (uint64_t i = 0; i < q->rt_entries && !err; i++)
		if (q->rt[i] & L1E_OFFSET_MASK)
			err = meta_add(q, q->rt[i] & L1E_OFFSET_MASK);
	return err;
}

/* Whether a host cluster offset is one of the image's own metadata clusters. */
static bool is_metadata(const struct qcow2 *q, uint64_t off)
{
	uint64_t cs = q->cluster_size;
	if (off < cs)
		return true; /* the header */
	uint64_t l1_bytes = (uint64_t)q->l1_size * 8, rt_bytes = (uint64_t)q->rt_clusters * cs;
	if (off + cs > q->l1_offset && off < q->l1_offset + l1_bytes)
		return true;
	if (off + cs > q->rt_offset && off < q->rt_offset + rt_bytes)
		return true;
	size_t at = meta_find(q, off);
	return at < q->nr_meta && q->meta[at] == off;
}

/* A table in the cache (loaded when missing); NULL with *err set when it cannot be read. */
static uint8_t *cache_get(struct qcow2 *q, struct cache *c, uint64_t off, bool zero, int *err)
{
	struct table_slot *victim = &c->slots[0];
	for (unsigned int i = 0; i < c->n; i++) {
		if (c->slots[i].offset == off) {
			c->slots[i].used = ++c->clock;
			return c->slots[i].data;
		}
		if (c->slots[i].used < victim->used)
			victim = &c->slots[i];
	}
	victim->offset = 0;
	if (zero)
		memset(victim->data, 0, q->cluster_size);
	else if ((*err = pread_all(q, victim->data, q->cluster_size, off)))
		return NULL;
	victim->offset = off;
	victim->used = ++c->clock;
	return victim->data;
}

static int cache_init(struct cache *c, unsigned int n, uint64_t size)
{
	c->n = n;
	c->slots = calloc(n, sizeof(*c->slots));
	if (!c->slots)
		return -ENOMEM;
	for (unsigned int i = 0; i < n; i++)
		if (!(c->slots[i].data = malloc(size)))
			return -ENOMEM;
	return 0;
}

static void cache_free(struct cache *c)
{
	for (unsigned int i = 0; c->slots && i < c->n; i++)
		free(c->slots[i].data);
	free(c->slots);
}

/* Refcounts. */

/* The refcount of host cluster idx; -errno on failure. */
static int64_t refcount_get(struct qcow2 *q, uint64_t idx)
{
	uint64_t t = idx >> q->rb_bits;
	if (t >= q->rt_entries || !(q->rt[t] & L1E_OFFSET_MASK))
		return 0;
	int err = 0;
	uint8_t *b = cache_get(q, &q->rb, q->rt[t] & L1E_OFFSET_MASK, false, &err);
	if (!b)
		return err;
	uint16_t v;
	memcpy(&v, b + 2 * (idx & ((1ull << q->rb_bits) - 1)), 2);
	return be16toh(v);
}

static int alloc_cluster(struct qcow2 *q, uint64_t *out);
static int free_cluster(struct qcow2 *q, uint64_t off);

/*
 * Doubles the refcount table (or more, to cover index t): the new table and the refcount blocks
 * it needs for itself go at the end of the file, their refcounts in those blocks, all written
 * before the header points at the new table; the old table is freed last.
 */
static int grow_refcount_table(struct qcow2 *q, uint64_t t)
{
	uint64_t cs = q->cluster_size, per_block = 1ull << q->rb_bits;
	uint64_t entries = q->rt_entries * 2 > t + 1 ? q->rt_entries * 2 : t + 1;
	uint64_t clusters = (entries * 8 + cs - 1) / cs;
	if (clusters * cs > MAX_RT_BYTES)
		return corrupt(q, "refcount table would grow past its bound", clusters);
	entries = clusters * cs / 8;
	uint64_t start = q->end / cs; /* first cluster of the new table */
	/* Blocks for the clusters from start on (the table and the blocks) that have none yet. */
	uint64_t nblocks = 0;
	for (;;) {
		uint64_t last = start + clusters + nblocks - 1;
		uint64_t need = 0;
		for (uint64_t b = start >> q->rb_bits; b <= last >> q->rb_bits; b++)
			if (b >= q->rt_entries || !q->rt[b])
				need++;
		if (need == nblocks)
			break;
		nblocks = need;
	}
	uint64_t *rt = calloc(entries, 8);
	uint8_t *blk = calloc(1, cs);
	if (!rt || !blk) {
		free(rt);
		free(blk);
		return -ENOMEM;
	}
	memcpy(rt, q->rt, q->rt_entries * 8);
	uint64_t first_block = start + clusters, k = 0;
	uint64_t last = start + clusters + nblocks - 1;
	int err = 0;
	for (uint64_t b = start >> q->rb_bits; b <= last >> q->rb_bits && !err; b++) {
		if (b < q->rt_entries && q->rt[b])
			continue;
		uint64_t at = (first_block + k++) * cs;
		rt[b] = at;
		memset(blk, 0, cs);
		for (uint64_t c = start; c <= last; c++)
			if (c >> q->rb_bits == b) {
				uint16_t one = htobe16(1);
				memcpy(blk + 2 * (c & (per_block - 1)), &one, 2);
			}
		err = pwrite_all(q, blk, cs, at);
	}
	/* Clusters of the new table whose blocks existed already: raise them there. */
	for (uint64_t c = start; c <= last && !err; c++) {
		uint64_t b = c >> q->rb_bits;
		if (b < q->rt_entries && q->rt[b]) {
			int e2 = 0;
			uint8_t *rb = cache_get(q, &q->rb, q->rt[b], false, &e2);
			uint16_t one = htobe16(1);
			if (!rb)
				err = e2;
			else {
				memcpy(rb + 2 * (c & (per_block - 1)), &one, 2);
				err = pwrite_all(q, &one, 2, q->rt[b] + 2 * (c & (per_block - 1)));
			}
		}
	}
	uint64_t *disk_rt = (uint64_t *)blk;
	for (uint64_t i = 0; i < entries && !err; i += cs / 8) {
		for (uint64_t j = 0; j < cs / 8; j++)
			disk_rt[j] = htobe64(rt[i + j]);
		err = pwrite_all(q, blk, cs, start * cs + i * 8);
	}
	if (!err && fdatasync(q->d->fd) < 0)
		err = -errno;
	struct {
		uint64_t off;
		uint32_t clusters;
	} __attribute__((packed)) h = {htobe64(start * cs), htobe32((uint32_t)clusters)};
	if (!err)
		err = pwrite_all(q, &h, sizeof(h), 48);
	if (!err && fdatasync(q->d->fd) < 0)
		err = -errno;
	free(blk);
	if (err) {
		free(rt);
		return err;
	}
	uint64_t old_off = q->rt_offset, old_clusters = q->rt_clusters;
	free(q->rt);
	q->rt = rt;
	q->rt_entries = entries;
	q->rt_offset = start * cs;
	q->rt_clusters = (uint32_t)clusters;
	q->end = (last + 1) * cs;
	err = meta_rebuild(q);
	/* The header points at the new table: the old one's clusters are free. */
	for (uint64_t i = 0; i < old_clusters && !err; i++)
		err = free_cluster(q, old_off + i * cs);
	return err;
}

/* Sets host cluster idx's refcount to v, making its refcount block if needed. */
static int refcount_set(struct qcow2 *q, uint64_t idx, uint16_t v)
{
	uint64_t t = idx >> q->rb_bits;
	int err;
	if (t >= q->rt_entries && (err = grow_refcount_table(q, t)))
		return err;
	if (!(q->rt[t] & L1E_OFFSET_MASK)) {
		/* A new block, at the end; it counts itself when it covers itself. */
		uint64_t at = q->end, at_idx = at >> q->cluster_bits;
		q->end += q->cluster_size;
		uint8_t *b = cache_get(q, &q->rb, at, true, &err);
		if (!b)
			return err;
		bool self = at_idx >> q->rb_bits == t;
		if (self) {
			uint16_t one = htobe16(1);
			memcpy(b + 2 * (at_idx & ((1ull << q->rb_bits) - 1)), &one, 2);
		}
		if ((err = pwrite_all(q, b, q->cluster_size, at)))
			return err;
		if (!self && (err = refcount_set(q, at_idx, 1)))
			return err;
		uint64_t be = htobe64(at);
		if ((err = pwrite_all(q, &be, 8, q->rt_offset + 8 * t)))
			return err;
		q->rt[t] = at;
		if ((err = meta_add(q, at)))
			return err;
	}
	uint8_t *b = cache_get(q, &q->rb, q->rt[t] & L1E_OFFSET_MASK, false, &err);
	if (!b)
		return err;
	uint64_t pos = 2 * (idx & ((1ull << q->rb_bits) - 1));
	uint16_t be = htobe16(v);
	memcpy(b + pos, &be, 2);
	return pwrite_all(q, &be, 2, (q->rt[t] & L1E_OFFSET_MASK) + pos);
}

/* A free host cluster, its refcount raised to 1 (its content is the caller's to write). */
static int alloc_cluster(struct qcow2 *q, uint64_t *out)
{
	uint64_t end_idx = q->end >> q->cluster_bits;
	for (uint64_t i = q->free_hint; i < end_idx; i++) {
		int64_t r = refcount_get(q, i);
		if (r < 0)
			return (int)r;
		if (r == 0 && !is_metadata(q, i << q->cluster_bits)) {
			q->free_hint = i + 1;
			*out = i << q->cluster_bits;
			return refcount_set(q, i, 1);
		}
	}
	q->free_hint = end_idx + 1;
	*out = q->end;
	q->end += q->cluster_size;
	return refcount_set(q, *out >> q->cluster_bits, 1);
}

/* Drops a reference to host cluster at off; the host space is freed when none is left. */
static int free_cluster(struct qcow2 *q, uint64_t off)
{
	uint64_t idx = off >> q->cluster_bits;
	int64_t r = refcount_get(q, idx);
	if (r <= 0)
		return r < 0 ? (int)r : corrupt(q, "freeing a cluster with no references", off);
	int err = refcount_set(q, idx, (uint16_t)(r - 1));
	if (err || r > 1)
		return err;
	if (idx < q->free_hint)
		q->free_hint = idx;
	fallocate(q->d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		  (off_t)q->cluster_size);
	return 0;
}

/* Host clusters a compressed cluster's data lie in: [*first, *last]. */
static void compressed_span(const struct qcow2 *q, uint64_t e, uint64_t *off, uint64_t *len)
{
	unsigned int x = 62 - (q->cluster_bits - 8);
	*off = e & ((1ull << x) - 1);
	uint64_t sectors = ((e & ~(L2E_COMPRESSED | OFLAG_COPIED)) >> x) + 1;
	*len = sectors * 512 - (*off & 511);
}

/*
 * An L2 entry that pointed at e's clusters no longer does: their references drop (a compressed
 * cluster holds one on each host cluster its data touch; a zero cluster may keep its space).
 */
static int drop_reference(struct qcow2 *q, uint64_t e)
{
	if (!(e & L2E_COMPRESSED))
		return e & L2E_OFFSET_MASK ? free_cluster(q, e & L2E_OFFSET_MASK) : 0;
	uint64_t coff, clen;
	int err = 0;
	compressed_span(q, e, &coff, &clen);
	for (uint64_t c = coff & ~(q->cluster_size - 1); c < coff + clen && !err;
	     c += q->cluster_size)
		err = free_cluster(q, c);
	q->zcached = 0;
	return err;
}

/* L2 tables. */

/*
 * The L2 table for guest offset off: its host offset in *table (0: none, and alloc is false) and
 * the entry's index. With alloc, a missing table is made (zeroed) and linked into L1.
 */
static int l2_table(struct qcow2 *q, uint64_t off, bool alloc, uint64_t *table, uint64_t *idx)
{
	uint64_t l1i = off >> (q->cluster_bits + q->l2_bits);
	*idx = (off >> q->cluster_bits) & ((1ull << q->l2_bits) - 1);
	if (l1i >= q->l1_size)
		return corrupt(q, "guest offset past the L1 table", off);
	uint64_t e = q->l1[l1i] & L1E_OFFSET_MASK;
	if (e) {
		if (e & (q->cluster_size - 1) || e >= q->end)
			return corrupt(q, "L1 entry off the clusters or past the file", e);
		*table = e;
		return 0;
	}
	*table = 0;
	if (!alloc)
		return 0;
	int err = alloc_cluster(q, &e);
	if (err)
		return err;
	uint8_t *t = cache_get(q, &q->l2, e, true, &err);
	if (!t)
		return err;
	if ((err = pwrite_all(q, t, q->cluster_size, e)))
		return err;
	uint64_t be = htobe64(e | OFLAG_COPIED);
	if ((err = pwrite_all(q, &be, 8, q->l1_offset + 8 * l1i)))
		return err;
	q->l1[l1i] = e | OFLAG_COPIED;
	*table = e;
	return meta_add(q, e);
}

/* The L2 entry of guest offset off (0: unallocated), checked. */
static int l2_get(struct qcow2 *q, uint64_t off, uint64_t *entry)
{
	uint64_t table, idx;
	int err = l2_table(q, off, false, &table, &idx);
	if (err || !table) {
		*entry = 0;
		return err;
	}
	uint8_t *t = cache_get(q, &q->l2, table, false, &err);
	if (!t)
		return err;
	uint64_t be;
	memcpy(&be, t + 8 * idx, 8);
	uint64_t e = be64toh(be);
	if (e & L2E_COMPRESSED) {
		uint64_t coff, clen;
		compressed_span(q, e, &coff, &clen);
		if (coff + clen > q->end || coff < q->cluster_size)
			return corrupt(q, "compressed cluster past the file", e);
	} else if (e & L2E_OFFSET_MASK) {
		uint64_t h = e & L2E_OFFSET_MASK;
		if (h & (q->cluster_size - 1) || h >= q->end || is_metadata(q, h))
			return corrupt(
				q, "L2 entry off the clusters, past the file or onto metadata", e);
		if (q->version < 3 && (e & L2E_ZERO))
			return corrupt(q, "zero flag in a version 2 image", e);
	} else if ((e & ~(OFLAG_COPIED | L2E_ZERO)) != 0) {
		return corrupt(q, "L2 entry with reserved bits", e);
	}
	*entry = e;
	return 0;
}

static int l2_set(struct qcow2 *q, uint64_t off, uint64_t entry)
{
	uint64_t table, idx;
	int err = l2_table(q, off, true, &table, &idx);
	if (err)
		return err;
	uint8_t *t = cache_get(q, &q->l2, table, false, &err);
	if (!t)
		return err;
	uint64_t be = htobe64(entry);
	memcpy(t + 8 * idx, &be, 8);
	return pwrite_all(q, &be, 8, table + 8 * idx);
}

/* Data. */

static int inflate_cluster(struct qcow2 *q, uint64_t e)
{
	if (q->zcached == e)
		return 0;
	uint64_t off, len;
	compressed_span(q, e, &off, &len);
	if (len > 2 * q->cluster_size)
		return corrupt(q, "compressed cluster longer than two clusters", e);
	int err = pread_all(q, q->zbuf, len, off);
	if (err)
		return err;
	if (!q->z_ready) {
		if (inflateInit2(&q->z, -12) != Z_OK)
			return -ENOMEM;
		q->z_ready = true;
	} else {
		inflateReset(&q->z);
	}
	q->z.next_in = q->zbuf;
	q->z.avail_in = (uInt)len;
	q->z.next_out = q->bounce;
	q->z.avail_out = (uInt)q->cluster_size;
	int r = inflate(&q->z, Z_FINISH);
	q->zcached = 0;
	if ((r != Z_STREAM_END && r != Z_BUF_ERROR) || q->z.avail_out != 0)
		return corrupt(q, "compressed cluster does not inflate to a cluster", e);
	q->zcached = e;
	return 0;
}

/* Reads [off, off + len) of one cluster's worth into iov from skip on. */
static int read_piece(struct qcow2 *q, const struct iovec *iov, unsigned int n, size_t skip,
		      uint64_t off, uint64_t len)
{
	uint64_t e;
	int err = l2_get(q, off, &e);
	if (err)
		return err;
	struct iovec part[1024];
	unsigned int k = iov_slice(iov, n, skip, len, part);
	uint64_t in = off & (q->cluster_size - 1);
	if (e & L2E_COMPRESSED) {
		if ((err = inflate_cluster(q, e)))
			return err;
		iov_from_buf(part, k, 0, q->bounce + in, len);
		return 0;
	}
	if (e & L2E_ZERO || (!(e & L2E_OFFSET_MASK) && !q->backing)) {
		for (unsigned int i = 0; i < k; i++)
			memset(part[i].iov_base, 0, part[i].iov_len);
		return 0;
	}
	if (!(e & L2E_OFFSET_MASK)) {
		/* From the backing image, which may be shorter: zeroes past its end. */
		struct disk *b = q->backing;
		uint64_t have = off < b->size ? b->size - off : 0;
		uint64_t from_b = have < len ? have : len;
		if (from_b) {
			struct iovec bpart[1024];
			unsigned int bk = iov_slice(part, k, 0, from_b, bpart);
			if ((err = b->ops->read(b, bpart, bk, off)))
				return err;
		}
		if (from_b < len) {
			struct iovec zpart[1024];
			unsigned int zk = iov_slice(part, k, from_b, len - from_b, zpart);
			for (unsigned int i = 0; i < zk; i++)
				memset(zpart[i].iov_base, 0, zpart[i].iov_len);
		}
		return 0;
	}
	return disk_io(q->d, part, k, (e & L2E_OFFSET_MASK) + in, false);
}

/*
 * The cluster of guest offset off as it reads now, whole, into q->bounce: for a write that
 * covers only part of a cluster that needs a new one.
 */
static int fill_bounce(struct qcow2 *q, uint64_t off)
{
	struct iovec iov = {q->bounce, q->cluster_size};
	q->zcached = 0;
	return read_piece(q, &iov, 1, 0, off & ~(q->cluster_size - 1), q->cluster_size);
}

/* Writes one cluster's piece [off, off + len) from iov at skip (or zeroes when iov is NULL). */
static int write_piece(struct qcow2 *q, const struct iovec *iov, unsigned int n, size_t skip,
		       uint64_t off, uint64_t len)
{
	uint64_t e;
	int err = l2_get(q, off, &e);
	if (err)
		return err;
	uint64_t in = off & (q->cluster_size - 1);
	struct iovec part[1024];
	unsigned int k = iov ? iov_slice(iov, n, skip, len, part) : 0;
	uint64_t host = e & L2E_OFFSET_MASK;
	if (!(e & L2E_COMPRESSED) && host && !(e & L2E_ZERO)) {
		/* Allocated here and ours alone (internal snapshots are refused for writing). */
		if (!iov) {
			memset(q->bounce, 0, len);
			q->zcached = 0;
			return pwrite_all(q, q->bounce, len, host + in);
		}
		return disk_io(q->d, part, k, host + in, true);
	}
	/* A new cluster: what the cluster reads as now, this piece written over it. */
	bool whole = in == 0 && len == q->cluster_size;
	if (!whole && (err = fill_bounce(q, off)))
		return err;
	uint64_t fresh;
	if ((err = alloc_cluster(q, &fresh)))
		return err;
	if (whole && iov) {
		err = disk_io(q->d, part, k, fresh, true);
	} else {
		if (iov)
			iov_to_buf(part, k, 0, q->bounce + in, len);
		else
			memset(q->bounce + in, 0, len);
		q->zcached = 0;
		err = pwrite_all(q, q->bounce, q->cluster_size, fresh);
	}
	err = err ?: l2_set(q, off, fresh | OFLAG_COPIED);
	if (err)
		return err;
	return drop_reference(q, e);
}

/* A request cut at cluster boundaries: each piece to piece() (read_piece or write_piece). */
static int for_each_piece(struct qcow2 *q, const struct iovec *iov, unsigned int n, uint64_t off,
			  uint64_t total,
			  int (*piece)(struct qcow2 *q, const struct iovec *iov, unsigned int n,
				       size_t skip, uint64_t off, uint64_t len))
{
	uint64_t done = 0;
	while (done < total) {
		uint64_t in = (off + done) & (q->cluster_size - 1);
		uint64_t len =
			q->cluster_size - in < total - done ? q->cluster_size - in : total - done;
		int err = piece(q, iov, n, done, off + done, len);
		if (err)
			return err;
		done += len;
	}
	return 0;
}

static int qcow2_read(struct disk *d, const struct iovec *iov, unsigned int n, uint64_t off)
{
	return for_each_piece(d->priv, iov, n, off, iov_length(iov, n), read_piece);
}

static int qcow2_write(struct disk *d, const struct iovec *iov, unsigned int n, uint64_t off)
{
	if (d->read_only)
		return -EROFS;
	return for_each_piece(d->priv, iov, n, off, iov_length(iov, n), write_piece);
}

static int qcow2_flush(struct disk *d)
{
	struct qcow2 *q = d->priv;
	if (d->read_only)
		return 0;
	while (fdatasync(q->d->fd) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/*
 * Whole clusters in [off, off + len) made to read as zeroes with their space freed: an
 * unallocated entry where nothing shows through (no backing image), else a zero cluster
 * (version 3). Returns -EOPNOTSUPP where neither can say it (version 2 over a backing image).
 */
static int unmap_cluster(struct qcow2 *q, uint64_t off)
{
	uint64_t e;
	int err = l2_get(q, off, &e);
	if (err)
		return err;
	uint64_t want = q->backing ? L2E_ZERO : 0;
	if (q->backing && q->version < 3)
		return -EOPNOTSUPP;
	if (e == want)
		return 0;
	if (!e && !want)
		return 0;
	if ((err = l2_set(q, off, want)))
		return err;
	return drop_reference(q, e);
}

static int qcow2_discard(struct disk *d, uint64_t off, uint64_t len)
{
	struct qcow2 *q = d->priv;
	if (d->read_only)
		return -EROFS;
	/* A hint: only the clusters it covers whole; the rest keeps its data. */
	uint64_t cs = q->cluster_size;
	uint64_t start = (off + cs - 1) & ~(cs - 1), end = (off + len) & ~(cs - 1);
	for (uint64_t c = start; c < end; c += cs) {
		int err = unmap_cluster(q, c);
		if (err == -EOPNOTSUPP)
			return 0;
		if (err)
			return err;
	}
	return 0;
}

static int qcow2_write_zeroes(struct disk *d, uint64_t off, uint64_t len, bool unmap)
{
	struct qcow2 *q = d->priv;
	(void)unmap; /* zeroes are best made by freeing: no data is written either way */
	if (d->read_only)
		return -EROFS;
	uint64_t cs = q->cluster_size, done = off, end = off + len;
	while (done < end) {
		uint64_t in = done & (cs - 1);
		uint64_t piece = cs - in < end - done ? cs - in : end - done;
		int err = piece == cs ? unmap_cluster(q, done) : -EOPNOTSUPP;
		if (err == -EOPNOTSUPP)
			err = for_each_piece(q, NULL, 0, done, piece, write_piece);
		if (err)
			return err;
		done += piece;
	}
	return 0;
}

static void qcow2_close(struct disk *d)
{
	struct qcow2 *q = d->priv;
	if (!q)
		return;
	cache_free(&q->l2);
	cache_free(&q->rb);
	if (q->z_ready)
		inflateEnd(&q->z);
	disk_close(q->backing);
	free(q->l1);
	free(q->rt);
	free(q->meta);
	free(q->bounce);
	free(q->zbuf);
	free(q);
	d->priv = NULL;
}

static const struct disk_ops qcow2_ops = {
	.name = "qcow2",
	.read = qcow2_read,
	.write = qcow2_write,
	.flush = qcow2_flush,
	.discard = qcow2_discard,
	.write_zeroes = qcow2_write_zeroes,
	.close = qcow2_close,
};

/* Opening. */

struct header {
	uint32_t magic, version;
	uint64_t backing_offset;
	uint32_t backing_size, cluster_bits;
	uint64_t size;
	uint32_t crypt, l1_size;
	uint64_t l1_offset, rt_offset;
	uint32_t rt_clusters, nb_snapshots;
	uint64_t snapshots_offset;
	/* version 3 */
	uint64_t incompat, compat, autoclear;
	uint32_t refcount_order, header_length;
	uint8_t compression_type;
} __attribute__((packed));

#define OPEN_FAIL(...)                                \
	do {                                          \
		snprintf(msg, msg_size, __VA_ARGS__); \
		return -EINVAL;                       \
	} while (0)

/* The header, checked field by field. */
static int read_header(struct disk *d, struct qcow2 *q, struct header *h, uint8_t *first, char *msg,
		       size_t msg_size)
{
	struct stat st;
	if (fstat(d->fd, &st) < 0)
		return -errno;
	memset(first, 0, 4096);
	if (pread(d->fd, first, 4096, 0) < HDR_V2_LEN)
		OPEN_FAIL("qcow2: header truncated");
	memcpy(h, first, sizeof(*h));
	q->version = be32toh(h->version);
	if (q->version != 2 && q->version != 3)
		OPEN_FAIL("qcow2: version %u (2 and 3 are supported)", q->version);
	q->cluster_bits = be32toh(h->cluster_bits);
	if (q->cluster_bits < 9 || q->cluster_bits > 21)
		OPEN_FAIL("qcow2: cluster_bits %u (9..21 are supported)", q->cluster_bits);
	q->cluster_size = 1ull << q->cluster_bits;
	q->l2_bits = q->cluster_bits - 3;
	if (be32toh(h->crypt))
		OPEN_FAIL("qcow2: encrypted images are not supported");
	uint64_t incompat = 0, autoclear = 0;
	uint32_t header_length = HDR_V2_LEN, refcount_order = 4;
	if (q->version == 3) {
		incompat = be64toh(h->incompat);
		autoclear = be64toh(h->autoclear);
		refcount_order = be32toh(h->refcount_order);
		header_length = be32toh(h->header_length);
		if (header_length < HDR_V3_LEN || header_length > 4096 || header_length % 8)
			OPEN_FAIL("qcow2: header_length %u", header_length);
		if (incompat & INCOMPAT_DIRTY)
			OPEN_FAIL("qcow2: the dirty flag is set (lazy refcounts): repair it with "
				  "qemu-img check -r all");
		if (incompat & INCOMPAT_CORRUPT)
			OPEN_FAIL(
				"qcow2: the corrupt flag is set: repair it with qemu-img check -r "
				"all");
		if (incompat & INCOMPAT_DATA_FILE)
			OPEN_FAIL("qcow2: external data files are not supported");
		if (incompat & INCOMPAT_COMPRESSION)
			OPEN_FAIL("qcow2: compression types other than zlib are not supported");
		if (incompat & INCOMPAT_EXTL2)
			OPEN_FAIL("qcow2: extended L2 entries are not supported");
		if (incompat)
			OPEN_FAIL("qcow2: unknown incompatible features 0x%llx",
				  (unsigned long long)incompat);
		if (refcount_order != 4)
			OPEN_FAIL("qcow2: refcount_order %u (only 4, 16-bit refcounts, is "
				  "supported)",
				  refcount_order);
	}
	(void)autoclear;
	q->rb_bits = q->cluster_bits - 1; /* 16-bit refcounts: cluster_size / 2 per block */
	q->size = be64toh(h->size);
	if (q->size > (1ull << 56))
		OPEN_FAIL("qcow2: virtual size 0x%llx", (unsigned long long)q->size);
	q->l1_size = be32toh(h->l1_size);
	q->l1_offset = be64toh(h->l1_offset);
	uint64_t per_l1 = 1ull << (q->cluster_bits + q->l2_bits);
	if ((uint64_t)q->l1_size * 8 > MAX_L1_BYTES ||
	    (uint64_t)q->l1_size < (q->size + per_l1 - 1) / per_l1)
		OPEN_FAIL("qcow2: l1_size %u for a virtual size of %llu bytes", q->l1_size,
			  (unsigned long long)q->size);
	uint64_t file = (uint64_t)st.st_size;
	if ((q->l1_offset & (q->cluster_size - 1)) || q->l1_offset < q->cluster_size ||
	    q->l1_offset + (uint64_t)q->l1_size * 8 > file)
		OPEN_FAIL("qcow2: L1 table at 0x%llx is off the clusters or past the file",
			  (unsigned long long)q->l1_offset);
	q->rt_offset = be64toh(h->rt_offset);
	q->rt_clusters = be32toh(h->rt_clusters);
	if ((q->rt_offset & (q->cluster_size - 1)) || q->rt_offset < q->cluster_size ||
	    q->rt_clusters == 0 || (uint64_t)q->rt_clusters * q->cluster_size > MAX_RT_BYTES ||
	    q->rt_offset + (uint64_t)q->rt_clusters * q->cluster_size > file)
		OPEN_FAIL("qcow2: refcount table at 0x%llx (%u clusters) is off the clusters or "
			  "past the file",
			  (unsigned long long)q->rt_offset, q->rt_clusters);
	q->end = (file + q->cluster_size - 1) & ~(q->cluster_size - 1);
	if (be32toh(h->nb_snapshots) && !d->read_only)
		OPEN_FAIL("qcow2: the image has internal snapshots: open it read-only");
	return (int)header_length;
}

static int load_tables(struct qcow2 *q, char *msg, size_t msg_size)
{
	q->l1 = calloc(q->l1_size ? q->l1_size : 1, 8);
	q->rt_entries = (uint64_t)q->rt_clusters * q->cluster_size / 8;
	q->rt = calloc(q->rt_entries, 8);
	if (!q->l1 || !q->rt)
		return -ENOMEM;
	int err = pread_all(q, q->l1, (size_t)q->l1_size * 8, q->l1_offset);
	err = err ?: pread_all(q, q->rt, q->rt_entries * 8, q->rt_offset);
	if (err)
		return err;
	for (uint32_t i = 0; i < q->l1_size; i++) {
		q->l1[i] = be64toh(q->l1[i]);
		uint64_t o = q->l1[i] & L1E_OFFSET_MASK;
		if ((q->l1[i] & ~(L1E_OFFSET_MASK | OFLAG_COPIED)) ||
		    (o && (o & (q->cluster_size - 1) || o < q->cluster_size || o >= q->end)))
			OPEN_FAIL(
				"qcow2: L1 entry %u (0x%llx) is off the clusters or past the file",
				i, (unsigned long long)q->l1[i]);
	}
	for (uint64_t i = 0; i < q->rt_entries; i++) {
		q->rt[i] = be64toh(q->rt[i]);
		uint64_t o = q->rt[i];
		if (o && ((o & (q->cluster_size - 1)) || o < q->cluster_size || o >= q->end))
			OPEN_FAIL(
				"qcow2: refcount table entry %llu (0x%llx) is off the clusters or "
				"past the file",
				(unsigned long long)i, (unsigned long long)o);
	}
	return 0;
}

/* The backing file's name and format (header extension), when the image names one. */
static int backing_name(struct qcow2 *q, const struct header *h, const uint8_t *first,
			int header_length, char *name, size_t name_size, char *fmt, size_t fmt_size,
			char *msg, size_t msg_size)
{
	uint64_t off = be64toh(h->backing_offset);
	uint32_t len = be32toh(h->backing_size);
	name[0] = fmt[0] = 0;
	/* Extensions: type, length, data padded to 8, up to an end marker, in the first 4 KiB. */
	for (uint64_t p = (uint64_t)header_length; p + 8 <= 4096;) {
		uint32_t type, elen;
		memcpy(&type, first + p, 4);
		memcpy(&elen, first + p + 4, 4);
		type = be32toh(type);
		elen = be32toh(elen);
		if (type == EXT_END)
			break;
		if (p + 8 + elen > 4096)
			OPEN_FAIL("qcow2: header extension 0x%x runs past the first 4 KiB", type);
		if (type == EXT_BACKING_FORMAT && elen < fmt_size) {
			memcpy(fmt, first + p + 8, elen);
			fmt[elen] = 0;
		}
		p += 8 + ((elen + 7ull) & ~7ull);
	}
	if (!off)
		return 0;
	if (len == 0 || len >= name_size || off + len > 4096 || off < (uint64_t)header_length)
		OPEN_FAIL("qcow2: backing file name at %llu (%u bytes) is not in the header",
			  (unsigned long long)off, len);
	memcpy(name, first + off, len);
	name[len] = 0;
	if (memchr(name, 0, len))
		OPEN_FAIL("qcow2: backing file name with a NUL byte");
	(void)q;
	return 0;
}

int disk_qcow2_refs(const uint8_t *image, size_t len, char *name, size_t name_size, bool *data_file,
		    char *msg, size_t msg_size)
{
	uint8_t first[4096] = {0};
	struct header h;
	name[0] = 0;
	*data_file = false;
	if (len < HDR_V2_LEN || memcmp(image, "QFI\xfb", 4) != 0)
		OPEN_FAIL("qcow2: header truncated");
	memcpy(first, image, len < sizeof(first) ? len : sizeof(first));
	memcpy(&h, first, sizeof(h));
	uint32_t version = be32toh(h.version), header_length = HDR_V2_LEN;
	if (version != 2 && version != 3)
		OPEN_FAIL("qcow2: version %u (2 and 3 are supported)", version);
	if (version == 3) {
		header_length = be32toh(h.header_length);
		if (header_length < HDR_V3_LEN || header_length > 4096 || header_length % 8)
			OPEN_FAIL("qcow2: header_length %u", header_length);
		*data_file = (be64toh(h.incompat) & INCOMPAT_DATA_FILE) != 0;
	}
	char fmt[16];
	return backing_name(NULL, &h, first, (int)header_length, name, name_size, fmt, sizeof(fmt),
			    msg, msg_size);
}

int disk_qcow2_open(struct disk *d, const char *path, unsigned int flags, int depth,
		    disk_open_fn *open_backing, char *msg, size_t msg_size)
{
	struct qcow2 *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	d->priv = q;
	d->ops = &qcow2_ops; /* from here, disk_close frees q */
	q->d = d;
	q->name = path;
	struct header h = {0};
	uint8_t first[4096];
	int hl = read_header(d, q, &h, first, msg, msg_size);
	if (hl < 0)
		return hl;
	int err = load_tables(q, msg, msg_size);
	if (err)
		return err;
	if ((err = meta_rebuild(q))) {
		snprintf(msg, msg_size, "out of memory");
		return err;
	}
	unsigned int slots = (unsigned int)(CACHE_BYTES / q->cluster_size);
	slots = slots < 4 ? 4 : slots > 64 ? 64 : slots;
	if ((err = cache_init(&q->l2, slots, q->cluster_size)) ||
	    (err = cache_init(&q->rb, slots < 16 ? slots : 16, q->cluster_size)) ||
	    !(q->bounce = malloc(q->cluster_size)) || !(q->zbuf = malloc(2 * q->cluster_size))) {
		snprintf(msg, msg_size, "out of memory");
		return err ? err : -ENOMEM;
	}
	q->free_hint = 1;
	char name[1024], fmt[16];
	if ((err = backing_name(q, &h, first, hl, name, sizeof(name), fmt, sizeof(fmt), msg,
				msg_size)))
		return err;
	if (name[0]) {
		if (!(flags & DISK_ALLOW_BACKING))
			OPEN_FAIL("qcow2: the image names a backing file (%s); allow backing files "
				  "to use it",
				  name);
		if (depth >= BACKING_DEPTH)
			OPEN_FAIL("qcow2: backing chain deeper than %d images", BACKING_DEPTH);
		/* Relative names are relative to the image's directory. */
		char full[4096];
		const char *slash = strrchr(path, '/');
		if (name[0] == '/' || !slash)
			snprintf(full, sizeof(full), "%s", name);
		else
			snprintf(full, sizeof(full), "%.*s/%s", (int)(slash - path), path, name);
		enum disk_format bf;
		if (strcmp(fmt, "raw") == 0)
			bf = DISK_RAW;
		else if (strcmp(fmt, "qcow2") == 0)
			bf = DISK_QCOW2;
		else if (!fmt[0] && disk_probe(full, &bf) == 0)
			;
		else
			OPEN_FAIL("qcow2: backing file %s: format \"%s\" (raw and qcow2 are "
				  "supported)",
				  full, fmt);
		char why[512];
		err = open_backing(full, bf, DISK_READ_ONLY | DISK_ALLOW_BACKING, depth + 1,
				   &q->backing, why, sizeof(why));
		if (err) {
			snprintf(msg, msg_size, "backing file %s: %s", full, why);
			return err;
		}
	}
	/* A writer clears the autoclear bits it does not keep up (bitmaps and the like). */
	if (q->version == 3 && !d->read_only && h.autoclear) {
		uint64_t zero = 0;
		if ((err = pwrite_all(q, &zero, 8, 88)))
			return err;
	}
	d->size = q->size & ~511ull;
	return 0;
}
