/* virtio-mmio transport, version 2 ("modern") register layout, virtio 1.2 §4.2.2. */
#include "mmio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../guest_mem.h"
#include "mmio_regs.h"

#define MAGIC		   0x74726976 /* "virt" */
#define VENDOR		   0x00ec1ec1
#define STATUS_DRIVER_OK   4
#define STATUS_FEATURES_OK 8
#define STATUS_NEEDS_RESET 64

struct virtio_mmio_dev *virtio_mmio_new(const struct virtio_mmio_host *host,
					const struct virtio_dev_ops *ops, void *priv, uint64_t base,
					unsigned int gsi)
{
	if (ops->num_queues > VIRTIO_MMIO_MAX_QUEUES || ops->config_size > VIRTIO_MMIO_CONFIG_MAX)
		return NULL;
	struct virtio_mmio_dev *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->host = host;
	d->ops = ops;
	d->priv = priv;
	d->base = base;
	d->gsi = gsi;
	pthread_mutex_init(&d->lock, NULL);
	pthread_rwlock_init(&d->qlock, NULL);
	/*
	 * Writes that need no exit of their own wait in KVM's coalesced ring and are applied, in
	 * order, at the vCPU's next exit, which comes before any access that could show their
	 * effect: InterruptACK before the driver's next InterruptStatus read (isr_signals keeps
	 * that safe); the selectors, the driver's features, a queue's size and ring addresses
	 * before the DeviceFeatures/QueueNumMax read, the FEATURES_OK or the QueueReady write
	 * that uses them. A driver sets up a queue with 3 exits instead of 11. Where the guest
	 * reads the registers from a page (d->page), which must show a selector's effect at the
	 * read that follows it with no exit between, the two selectors exit.
	 */
	static const struct {
		uint16_t offset, len;
		bool selects; /* what a read returns depends on it */
	} zones[] = {
		{REG_INTERRUPT_ACK, 4, false},
		{REG_DEVICE_FEATURES_SEL, 4, true},
		{REG_DRIVER_FEATURES, 8, false}, /* and REG_DRIVER_FEATURES_SEL */
		{REG_QUEUE_SEL, 4, true},
		{REG_QUEUE_NUM, 4, false},
		{REG_QUEUE_DESC_LOW, REG_QUEUE_DEVICE_HIGH + 4 - REG_QUEUE_DESC_LOW, false},
	};
	d->page = host->register_page ? host->register_page(host->ctx, base) : NULL;
	if (d->page)
		memset(d->page, 0, VIRTIO_MMIO_WINDOW);
	for (size_t i = 0; host->coalesce && i < sizeof(zones) / sizeof(zones[0]); i++)
		if (!(d->page && zones[i].selects))
			(void)host->coalesce(host->ctx, base + zones[i].offset, zones[i].len);
	virtio_mmio_sync_page(d);
	return d;
}

void virtio_mmio_free(struct virtio_mmio_dev *d)
{
	if (!d)
		return;
	pthread_mutex_destroy(&d->lock);
	pthread_rwlock_destroy(&d->qlock);
	free(d);
}

int virtio_mmio_cmdline(const struct virtio_mmio_dev *d, char *buf, size_t size)
{
	_Static_assert(VIRTIO_MMIO_WINDOW == 4096, "the window the command line names");
	return snprintf(buf, size, " virtio_mmio.device=4K@0x%llx:%u", (unsigned long long)d->base,
			d->gsi);
}

void virtio_mmio_queues_begin(struct virtio_mmio_dev *d)
{
	pthread_rwlock_rdlock(&d->qlock);
}

void virtio_mmio_queues_end(struct virtio_mmio_dev *d)
{
	pthread_rwlock_unlock(&d->qlock);
}

int virtio_mmio_notify_eventfd(struct virtio_mmio_dev *d, int fd)
{
	return d->host->ioeventfd(d->host->ctx, d->base + REG_QUEUE_NOTIFY, 4, fd);
}

void virtio_mmio_signal(struct virtio_mmio_dev *d, unsigned int queue)
{
	if (!virtq_should_interrupt(&d->queues[queue]))
		return;
	__atomic_fetch_add(&d->isr_signals, 1, __ATOMIC_SEQ_CST);
	__atomic_fetch_or(&d->isr, 1, __ATOMIC_SEQ_CST);
	if (d->page)
		__atomic_fetch_or((uint32_t *)(d->page + REG_INTERRUPT_STATUS), 1,
				  __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&d->nr_irqs, 1, __ATOMIC_RELAXED);
	d->host->irq(d->host->ctx, d->gsi);
}

static int serve(struct virtio_mmio_dev *d, unsigned int qi, struct virtq_chain *chain,
		 int64_t (*handle)(void *ctx, struct virtq_chain *chain), void *ctx, bool signal)
{
	struct virtq *q = &d->queues[qi];
	int served = 0, r, batch;
	unsigned int empty = 0; /* passes in a row that found nothing (virtq_pass_again) */

	if (!q->ready)
		return 0;
	uint32_t gen = q->gen;
	virtq_set_no_notify(q, true);
	do {
		batch = 0;
		int64_t len = 0;
		while (len >= 0 && (r = virtq_pop(q, d->host->mem, chain)) > 0) {
			len = handle(ctx, chain);
			if (q->gen != gen)
				return served; /* handle() let go of the queues, and it was reset */
			if (len >= 0) {
				virtq_push(q, chain->head, (uint32_t)len);
				batch++;
			}
		}
		if (batch && signal)
			virtio_mmio_signal(d, qi);
		served += batch;
		if (len < 0)
			return -1;
		if (r < 0) {
			virtio_mmio_fail(d, "malformed descriptor chain");
			return -1;
		}
	} while (virtq_pass_again(q, batch, &empty));
	return served;
}

int virtio_mmio_serve(struct virtio_mmio_dev *d, unsigned int qi, struct virtq_chain *chain,
		      int64_t (*handle)(void *ctx, struct virtq_chain *chain), void *ctx)
{
	return serve(d, qi, chain, handle, ctx, true);
}

int virtio_mmio_serve_unsignalled(struct virtio_mmio_dev *d, unsigned int qi,
				  struct virtq_chain *chain,
				  int64_t (*handle)(void *ctx, struct virtq_chain *chain),
				  void *ctx)
{
	return serve(d, qi, chain, handle, ctx, false);
}

void virtio_mmio_fail(struct virtio_mmio_dev *d, const char *what)
{
	__atomic_fetch_or(&d->status, STATUS_NEEDS_RESET, __ATOMIC_SEQ_CST);
	/* (A write being applied may put the page's old Status back; the VM stops anyway.) */
	if (d->page)
		__atomic_fetch_or((uint32_t *)(d->page + REG_STATUS), STATUS_NEEDS_RESET,
				  __ATOMIC_SEQ_CST);
	d->host->fail(d->host->ctx, d->ops->name, what);
}

static void reset_locked(struct virtio_mmio_dev *d)
{
	if (d->ops->reset)
		d->ops->reset(d);
	for (unsigned int i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
		virtq_reset(&d->queues[i]);
	d->status = 0;
	d->driver_features = 0;
	d->isr = 0;
	if (d->page)
		__atomic_store_n((uint32_t *)(d->page + REG_INTERRUPT_STATUS), 0, __ATOMIC_SEQ_CST);
}

/* The most buffers queue q takes (a device may ask for fewer than queue_max on some). */
static uint16_t queue_max(const struct virtio_mmio_dev *d, unsigned int q)
{
	uint16_t n = d->ops->queue_size ? d->ops->queue_size(d, q) : 0;
	return n && n < d->ops->queue_max ? n : d->ops->queue_max;
}

static uint32_t read_reg(struct virtio_mmio_dev *d, uint64_t off)
{
	uint64_t features = d->ops->features | VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX;
	struct virtq *q = d->queue_sel < d->ops->num_queues ? &d->queues[d->queue_sel] : NULL;

	switch (off) {
	case REG_MAGIC:
		return MAGIC;
	case REG_VERSION:
		return 2;
	case REG_DEVICE_ID:
		return d->ops->device_id;
	case REG_VENDOR_ID:
		return VENDOR;
	case REG_DEVICE_FEATURES:
		return d->dev_features_sel == 0	  ? (uint32_t)features
		       : d->dev_features_sel == 1 ? (uint32_t)(features >> 32)
						  : 0;
	case REG_QUEUE_NUM_MAX:
		return q ? queue_max(d, d->queue_sel) : 0;
	case REG_QUEUE_READY:
		return q ? q->ready : 0;
	case REG_INTERRUPT_STATUS:
		d->isr_seen = __atomic_load_n(&d->isr_signals, __ATOMIC_SEQ_CST);
		return __atomic_load_n(&d->isr, __ATOMIC_SEQ_CST);
	case REG_STATUS:
		return d->status;
	case REG_SHM_LEN_LOW:
	case REG_SHM_LEN_HIGH:
		return 0xffffffff; /* §4.2.2: no shared memory region with this id */
	case REG_CONFIG_GENERATION:
		return d->config_generation;
	default:
		return 0;
	}
}

static void set_addr_half(uint64_t *addr, uint32_t v, bool high)
{
	if (high)
		*addr = (*addr & 0xffffffffull) | ((uint64_t)v << 32);
	else
		*addr = (*addr & ~0xffffffffull) | v;
}

static void write_reg(struct virtio_mmio_dev *d, uint64_t off, uint32_t v)
{
	struct virtq *q = d->queue_sel < d->ops->num_queues ? &d->queues[d->queue_sel] : NULL;
	/* Ring addresses and sizes are fixed once a queue is ready (§4.2.3.2). */
	struct virtq *setup = q && !q->ready ? q : NULL;

	switch (off) {
	case REG_DEVICE_FEATURES_SEL:
		d->dev_features_sel = v;
		break;
	case REG_DRIVER_FEATURES_SEL:
		d->drv_features_sel = v;
		break;
	case REG_DRIVER_FEATURES:
		if (d->status & STATUS_FEATURES_OK)
			break;
		if (d->drv_features_sel < 2)
			set_addr_half(&d->driver_features, v, d->drv_features_sel == 1);
		break;
	case REG_QUEUE_SEL:
		d->queue_sel = v;
		break;
	case REG_QUEUE_NUM:
		if (setup)
			setup->num = v <= queue_max(d, d->queue_sel) ? (uint16_t)v : 0;
		break;
	case REG_QUEUE_READY:
		if (!q)
			break;
		if (v == 1 && !q->ready) {
			/* §3.1.1: features are settled (FEATURES_OK) before any queue is set up. */
			if (!(d->status & STATUS_FEATURES_OK)) {
				virtio_mmio_fail(d, "queue enabled before FEATURES_OK");
				break;
			}
			q->indirect_ok = d->driver_features & VIRTIO_F_INDIRECT_DESC;
			q->event_idx = d->driver_features & VIRTIO_F_EVENT_IDX;
			if (virtq_enable(q, d->host->mem))
				virtio_mmio_fail(d, "queue size not a power of 2, or rings outside "
						    "guest memory, overlapping or misaligned");
		} else if (v == 0) {
			q->ready = false;
		}
		break;
	case REG_QUEUE_DESC_LOW:
	case REG_QUEUE_DESC_HIGH:
		if (setup)
			set_addr_half(&setup->desc_gpa, v, off == REG_QUEUE_DESC_HIGH);
		break;
	case REG_QUEUE_DRIVER_LOW:
	case REG_QUEUE_DRIVER_HIGH:
		if (setup)
			set_addr_half(&setup->avail_gpa, v, off == REG_QUEUE_DRIVER_HIGH);
		break;
	case REG_QUEUE_DEVICE_LOW:
	case REG_QUEUE_DEVICE_HIGH:
		if (setup)
			set_addr_half(&setup->used_gpa, v, off == REG_QUEUE_DEVICE_HIGH);
		break;
	case REG_QUEUE_RESET:
		if (q && v == 1)
			virtq_reset(q);
		break;
	case REG_INTERRUPT_ACK:
		/* An interrupt signalled since the driver's last read keeps its bit: the driver
		 * has not seen it (the bit stays set at worst once too often, which costs it a
		 * look at its rings). */
		if (d->isr_seen == __atomic_load_n(&d->isr_signals, __ATOMIC_SEQ_CST))
			__atomic_fetch_and(&d->isr, ~v, __ATOMIC_SEQ_CST);
		break;
	case REG_STATUS:
		if (v == 0) {
			reset_locked(d);
			break;
		}
		/* §2.1: only a reset clears status bits; NEEDS_RESET is the device's own. */
		v = (v & ~STATUS_NEEDS_RESET) | d->status;
		if ((v & STATUS_FEATURES_OK) && !(d->status & STATUS_FEATURES_OK)) {
			uint64_t offered =
				d->ops->features | VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX;
			/* §2.2: the driver may accept only offered bits; we require VERSION_1. */
			if ((d->driver_features & ~offered) ||
			    !(d->driver_features & VIRTIO_F_VERSION_1))
				v &= ~STATUS_FEATURES_OK;
		}
		bool now_ok = (v & STATUS_DRIVER_OK) && !(d->status & STATUS_DRIVER_OK);
		if (now_ok && !(v & STATUS_FEATURES_OK)) {
			/* §3.1.1: DRIVER_OK only once the device accepted the features. */
			virtio_mmio_fail(d, "DRIVER_OK without FEATURES_OK");
			break;
		}
		d->status = v;
		if (now_ok && d->ops->driver_ok)
			d->ops->driver_ok(d);
		break;
	default:
		break;
	}
}

/* Under d->lock, or before the guest runs. InterruptStatus is kept apart (struct's comment). */
static void sync_page_locked(struct virtio_mmio_dev *d)
{
	if (!d->page)
		return;
	for (uint32_t off = 0; off < REG_CONFIG; off += 4)
		if (off != REG_INTERRUPT_STATUS)
			__atomic_store_n((uint32_t *)(d->page + off), read_reg(d, off),
					 __ATOMIC_RELEASE);
	memcpy(d->page + REG_CONFIG, d->config, d->ops->config_size);
}

void virtio_mmio_sync_page(struct virtio_mmio_dev *d)
{
	pthread_mutex_lock(&d->lock);
	sync_page_locked(d);
	pthread_mutex_unlock(&d->lock);
}

void virtio_mmio_print_stats(const struct virtio_mmio_dev *d)
{
	fprintf(stderr,
		"ec1 virtio-%s: %llu register exits (%llu notifications), %llu interrupts, %llu "
		"written without an exit\n",
		d->ops->name, (unsigned long long)__atomic_load_n(&d->nr_exits, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&d->nr_kicks, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&d->nr_irqs, __ATOMIC_RELAXED),
		(unsigned long long)__atomic_load_n(&d->nr_coalesced, __ATOMIC_RELAXED));
}

static void reg_access(struct virtio_mmio_dev *d, uint64_t offset, uint8_t *data, uint32_t len,
		       bool is_write)
{
	if (offset >= REG_CONFIG) {
		uint64_t off = offset - REG_CONFIG;
		pthread_mutex_lock(&d->lock);
		if (off < d->ops->config_size && len <= d->ops->config_size - off) {
			if (is_write) {
				memcpy(d->config + off, data, len);
				sync_page_locked(d);
			} else {
				memcpy(data, d->config + off, len);
			}
		} else if (!is_write) {
			memset(data, 0, len);
		}
		pthread_mutex_unlock(&d->lock);
		return;
	}
	/* §4.2.2.2: registers are 32 bits wide and accessed as such. */
	if (len != 4 || (offset & 3)) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	uint32_t v;
	if (!is_write) {
		pthread_mutex_lock(&d->lock);
		v = read_reg(d, offset);
		pthread_mutex_unlock(&d->lock);
		memcpy(data, &v, 4);
		return;
	}
	memcpy(&v, data, 4);
	if (offset == REG_QUEUE_NOTIFY) {
		/* Notifications run outside the register lock: devices do their own locking. */
		__atomic_fetch_add(&d->nr_kicks, 1, __ATOMIC_RELAXED);
		virtio_mmio_queues_begin(d);
		if (v < d->ops->num_queues && d->queues[v].ready && (d->status & STATUS_DRIVER_OK))
			d->ops->notify(d, v);
		virtio_mmio_queues_end(d);
		return;
	}
	/* Writes that can change a ring in use wait until no device is processing queues. */
	bool rings = offset == REG_QUEUE_READY || offset == REG_QUEUE_RESET || offset == REG_STATUS;
	if (offset == REG_STATUS && v == 0 && d->ops->quiesce &&
	    (__atomic_load_n(&d->status, __ATOMIC_ACQUIRE) & STATUS_DRIVER_OK))
		d->ops->quiesce(d);
	pthread_mutex_lock(&d->lock);
	if (rings)
		pthread_rwlock_wrlock(&d->qlock);
	write_reg(d, offset, v);
	/* The page's InterruptStatus is kept apart, and an acknowledgement, the one write of every
	 * interrupt, changes nothing else a read returns. */
	if (offset != REG_INTERRUPT_ACK)
		sync_page_locked(d);
	if (rings)
		pthread_rwlock_unlock(&d->qlock);
	pthread_mutex_unlock(&d->lock);
}

void virtio_mmio_access(struct virtio_mmio_dev *d, uint64_t offset, uint8_t *data, uint32_t len,
			bool is_write)
{
	__atomic_fetch_add(&d->nr_exits, 1, __ATOMIC_RELAXED);
	reg_access(d, offset, data, len, is_write);
}

void virtio_mmio_write_coalesced(struct virtio_mmio_dev *d, uint64_t offset, uint8_t *data,
				 uint32_t len)
{
	__atomic_fetch_add(&d->nr_coalesced, 1, __ATOMIC_RELAXED);
	reg_access(d, offset, data, len, true);
}
