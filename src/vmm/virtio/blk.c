/*
 * virtio-blk (virtio 1.2 §5.2): one request queue, served by the device's own thread (a kick
 * only wakes it; the vCPU goes back to the guest at once). Requests are parsed and answered by
 * blk_req.c against the disk image (disk/), with preadv/pwritev straight into guest memory. The
 * interrupt is held while the driver keeps adding requests (coalesce.h).
 */
#include "blk.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "../bus.h"
#include "../clock.h"
#include "../disk/disk.h"
#include "../sandbox.h"
#include "../vm.h"
#include "../worker.h"
#include "blk_req.h"
#include "coalesce.h"
#include "ec1/ec1.h"
#include "mmio.h"

#define VIRTIO_ID_BLOCK 2
#define QUEUE_SIZE	256

/* Feature bits (§5.2.3). */
#define BLK_F_SEG_MAX	   (1ull << 2)
#define BLK_F_RO	   (1ull << 5)
#define BLK_F_BLK_SIZE	   (1ull << 6)
#define BLK_F_FLUSH	   (1ull << 9)
#define BLK_F_DISCARD	   (1ull << 13)
#define BLK_F_WRITE_ZEROES (1ull << 14)

/* Configuration layout (§5.2.4), the offsets of the fields we fill. */
#define CFG_CAPACITY		   0
#define CFG_SEG_MAX		   12
#define CFG_BLK_SIZE		   20
#define CFG_MAX_DISCARD_SECTORS	   36
#define CFG_MAX_DISCARD_SEG	   40
#define CFG_DISCARD_ALIGN	   44
#define CFG_MAX_WRITE_ZEROES_SECT  48
#define CFG_MAX_WRITE_ZEROES_SEG   52
#define CFG_WRITE_ZEROES_MAY_UNMAP 56
#define CFG_SIZE		   60

struct virtio_blk {
	struct virtio_mmio_dev *dev;
	struct worker worker;
	char path[256]; /* for messages and --timing */
	struct virtq_chain chain;
	struct blk_target target;
	struct coalesce coalesce;
	bool spin; /* the thread may run on more than one CPU: a hold looks before it sleeps */
};

static void blk_notify(struct virtio_mmio_dev *d, unsigned int q)
{
	struct virtio_blk *b = d->priv;
	(void)q;
	worker_kick(&b->worker);
}

static int64_t serve_request(void *ctx, struct virtq_chain *chain)
{
	struct virtio_blk *b = ctx;
	if (worker_stopping(&b->worker))
		return -1;
	int64_t len = blk_handle(&b->target, chain);
	if (len < 0)
		virtio_mmio_fail(b->dev, "a request with no room for its status");
	return len;
}

/*
 * Serves what is there, signalling after each batch or not (the caller then signals): chains
 * served, or -1 (stopped, or failed). When it served some, *gen is the generation of the queue
 * they were served on.
 */
static int serve_pass(struct virtio_blk *b, bool signal, uint32_t *gen)
{
	virtio_mmio_queues_begin(b->dev);
	uint32_t g = b->dev->queues[0].gen; /* (blk's requests never let go of the queues) */
	int n = signal ? virtio_mmio_serve(b->dev, 0, &b->chain, serve_request, b)
		       : virtio_mmio_serve_unsignalled(b->dev, 0, &b->chain, serve_request, b);
	virtio_mmio_queues_end(b->dev);
	if (n > 0)
		*gen = g;
	return n;
}

static void kicks_off(struct virtio_blk *b)
{
	virtio_mmio_queues_begin(b->dev);
	virtq_kicks_off(&b->dev->queues[0]);
	virtio_mmio_queues_end(b->dev);
}

/*
 * Waits up to window ns for the driver to add a request (coalesce.h): first looking at the ring
 * with kicks off, yielding as it looks, for half the window where the thread has a CPU of its own
 * to spin on; then asleep until a kick, kicks on. Returns whether one came.
 */
static bool await_request(struct virtio_blk *b, int64_t window)
{
	struct virtq *q = &b->dev->queues[0];
	int64_t start = (int64_t)clock_ns(), t = start, spin = b->spin ? window / 2 : 0;
	bool more;
	for (;;) {
		virtio_mmio_queues_begin(b->dev);
		more = virtq_outstanding(q) != 0;
		virtio_mmio_queues_end(b->dev);
		if (more || t - start >= spin || worker_stopping(&b->worker))
			break;
		sched_yield();
		t = (int64_t)clock_ns();
	}
	if (!more && !worker_stopping(&b->worker)) {
		virtio_mmio_queues_begin(b->dev);
		more = virtq_notify_on_if_empty(q);
		virtio_mmio_queues_end(b->dev);
		t = (int64_t)clock_ns();
		if (!more && t - start < window)
			more = worker_wait_ns(&b->worker, (long)(window - (t - start))) > 0;
	}
	if (more)
		coalesce_caught(&b->coalesce, (int64_t)clock_ns() - start);
	return more;
}

/* In the thread, before its sandbox: a hold's sleep ends on time, not up to 50 us late. */
static void blk_setup(void *arg)
{
	(void)arg;
	prctl(PR_SET_TIMERSLACK, 1000ul, 0, 0, 0);
}

static void blk_main(struct worker *w, void *arg)
{
	struct virtio_blk *b = arg;
	struct coalesce *c = &b->coalesce;
	struct virtq *q = &b->dev->queues[0];
	bool ok = true;
	while (ok && worker_wait(w)) {
		int64_t window = coalesce_window(c);
		uint32_t gen = 0; /* the queue's generation the last chains were served on */
		int n = serve_pass(b, !window, &gen);
		ok = n >= 0;
		if (!window) { /* served and signalled batch by batch, as every device is */
			if (n > 0)
				coalesce_served(c, (unsigned int)n);
			continue;
		}
		if (n <= 0)
			continue; /* nothing to signal; on a failure the device is failed */
		/* Held while the driver goes on adding requests, its kicks off (coalesce.h). */
		int64_t start = (int64_t)clock_ns();
		unsigned int caught = 0;
		kicks_off(b);
		while (ok && (unsigned int)n + caught < COALESCE_CHAINS &&
		       (int64_t)clock_ns() - start < 4 * window && await_request(b, window)) {
			int m = serve_pass(b, false, &gen); /* (ends with kicks on) */
			ok = m >= 0;
			if (m > 0)
				caught += (unsigned int)m;
			kicks_off(b);
		}
		/*
		 * Signalled unless the driver reset the queue since the last chains were served
		 * (the rings are gone, or new ones that hold none of them); kicks on again in any
		 * case, on whichever rings are there, and what came since the last look is served
		 * at once.
		 */
		virtio_mmio_queues_begin(b->dev);
		if (q->ready && q->gen == gen)
			virtio_mmio_signal(b->dev, 0);
		bool more = virtq_notify_on_if_empty(q);
		virtio_mmio_queues_end(b->dev);
		if (more)
			worker_kick(w);
		coalesce_signalled(c, window, caught);
	}
}

static void blk_stop(struct virtio_mmio_dev *d)
{
	struct virtio_blk *b = d->priv;
	worker_stop(&b->worker);
}

static void blk_finish(struct virtio_mmio_dev *d)
{
	struct virtio_blk *b = d->priv;
	worker_join(&b->worker, 0);
}

static void blk_destroy(struct virtio_mmio_dev *d)
{
	struct virtio_blk *b = d->priv;
	worker_free(&b->worker);
	disk_close(b->target.disk);
	free(b);
}

static void blk_print_stats(const struct virtio_mmio_dev *d)
{
	const struct virtio_blk *b = d->priv;
	const struct blk_stats *s = &b->target.stats;
	fprintf(stderr,
		"ec1 virtio-blk %s: %llu reads (%.1f MiB), %llu writes (%.1f MiB), %llu flushes, "
		"%llu discards, %llu failed; %.1f ms in the image's reads, %.1f in its writes; "
		"%llu batches, %llu requests more in held ones; holding on after %llu batches of "
		"several (%llu of them not borne out) and %llu of %llu probes\n",
		b->path, (unsigned long long)s->reads, s->read_bytes / 1048576.0,
		(unsigned long long)s->writes, s->written_bytes / 1048576.0,
		(unsigned long long)s->flushes, (unsigned long long)s->discards,
		(unsigned long long)s->errors, s->read_ns / 1e6, s->write_ns / 1e6,
		(unsigned long long)b->coalesce.batches,
		(unsigned long long)b->coalesce.held_chains,
		(unsigned long long)b->coalesce.evidence,
		(unsigned long long)b->coalesce.trials_missed,
		(unsigned long long)b->coalesce.probes_caught,
		(unsigned long long)b->coalesce.probes);
}

#define BLK_OPS(features_)                                                                         \
	{                                                                                          \
		.name = "blk", .device_id = VIRTIO_ID_BLOCK,                                       \
		.features = VIRTIO_F_INDIRECT_DESC | BLK_F_SEG_MAX | BLK_F_BLK_SIZE | (features_), \
		.num_queues = 1, .queue_max = QUEUE_SIZE, .config_size = CFG_SIZE,                 \
		.notify = blk_notify, .stop = blk_stop, .finish = blk_finish,                      \
		.destroy = blk_destroy, .print_stats = blk_print_stats,                            \
	}

/*
 * A read-only disk offers RO and neither DISCARD nor WRITE_ZEROES; one whose flushes the user
 * turned off (sync=none) no FLUSH: the guest then sees a write-through disk and sends none.
 */
static const struct virtio_dev_ops blk_ops[2][2] = {
	{BLK_OPS(BLK_F_FLUSH | BLK_F_DISCARD | BLK_F_WRITE_ZEROES),
	 BLK_OPS(BLK_F_FLUSH | BLK_F_RO)},
	{BLK_OPS(BLK_F_DISCARD | BLK_F_WRITE_ZEROES), BLK_OPS(BLK_F_RO)},
};

static void put32(uint8_t *config, unsigned int off, uint32_t v)
{
	memcpy(config + off, &v, 4);
}

static void fill_config(struct virtio_blk *b)
{
	uint8_t *c = b->dev->config;
	uint64_t capacity = b->target.disk->size / BLK_SECTOR;
	memcpy(c + CFG_CAPACITY, &capacity, 8);
	/* A request is its header, its data and its status: the rest of a chain is data. */
	put32(c, CFG_SEG_MAX, VIRTQ_MAX_SIZE - 2);
	put32(c, CFG_BLK_SIZE, BLK_SECTOR);
	put32(c, CFG_MAX_DISCARD_SECTORS, BLK_MAX_DISCARD_SECTORS);
	put32(c, CFG_MAX_DISCARD_SEG, BLK_MAX_DISCARD_SEG);
	put32(c, CFG_DISCARD_ALIGN, BLK_DISCARD_ALIGN_SECTORS);
	put32(c, CFG_MAX_WRITE_ZEROES_SECT, BLK_MAX_DISCARD_SECTORS);
	put32(c, CFG_MAX_WRITE_ZEROES_SEG, BLK_MAX_DISCARD_SEG);
	c[CFG_WRITE_ZEROES_MAY_UNMAP] = 1;
}

static int blk_create(struct vm *vm, const struct vm_disk *cfg, char *msg, size_t msg_size)
{
	struct virtio_blk *b = calloc(1, sizeof(*b));
	if (!b)
		VM_FAIL(EC1_ENOMEM, "disk %s: out of memory", cfg->block_id);
	const char *hold = getenv("EC1_BLK_HOLD");
	if (coalesce_init(&b->coalesce, hold)) {
		free(b);
		VM_FAIL(EC1_EINVAL,
			"disk %s: EC1_BLK_HOLD \"%.40s\": not off, adaptive or 1 to 200 "
			"microseconds",
			cfg->block_id, hold);
	}
	snprintf(b->path, sizeof(b->path), "%s", cfg->path);
	/* NUL-padded (calloc), not terminated when 20 bytes long. */
	size_t id_len = strlen(cfg->block_id);
	memcpy(b->target.id, cfg->block_id, id_len < BLK_ID_BYTES ? id_len : BLK_ID_BYTES);
	char why[256];
	unsigned int flags = (cfg->read_only ? DISK_READ_ONLY : 0) |
			     (cfg->allow_backing ? DISK_ALLOW_BACKING : 0) |
			     (cfg->direct ? DISK_DIRECT : 0);
	b->target.no_flush = cfg->no_flush;
	int err = disk_open(cfg->path, cfg->format, flags, &b->target.disk, why, sizeof(why));
	if (err) {
		free(b);
		VM_FAIL(err == -ENOMEM ? EC1_ENOMEM : EC1_EINVAL, "disk %s: %s: %s", cfg->block_id,
			cfg->path, why);
	}
	cpu_set_t cpus;
	b->spin = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) > 1;
	err = worker_init(&b->worker);
	err = err ?: vm_add_mmio(vm, &blk_ops[cfg->no_flush][cfg->read_only], b, &b->dev);
	if (err) {
		worker_free(&b->worker);
		disk_close(b->target.disk);
		free(b);
		if (err == -ENOSPC)
			VM_FAIL(EC1_EINVAL, "disk %s: no device slot left (at most %d devices)",
				cfg->block_id, VM_MAX_DEVICES);
		VM_FAIL(EC1_ENOMEM, "disk %s: %s", cfg->block_id, strerror(-err));
	}
	fill_config(b);
	if (virtio_mmio_notify_eventfd(b->dev, b->worker.kick_fd) < 0)
		vm_log(EC1_LOG_INFO,
		       "virtio-blk %s: no ioeventfd, notifications go through the VMM",
		       cfg->block_id);
	err = worker_start(&b->worker, vm, SANDBOX_BLK, "virtio-blk", blk_setup, blk_main, b);
	if (err)
		VM_FAIL(EC1_ENOMEM, "disk %s: thread: %s", cfg->block_id, strerror(-err));
	return 0;
}

int virtio_blk_add(struct vm *vm, char *msg, size_t msg_size)
{
	const struct vm_config *cfg = vm->cfg;
	for (unsigned int i = 0; i < cfg->nr_disks; i++) {
		int err = blk_create(vm, &cfg->disks[i], msg, msg_size);
		if (err)
			return err;
	}
	return 0;
}
