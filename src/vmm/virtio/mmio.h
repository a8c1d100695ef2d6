/* virtio-mmio transport (virtio 1.2 §4.2): knows registers and queues, nothing of device types. */
#ifndef EC1_VIRTIO_MMIO_H
#define EC1_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue.h"

#define VIRTIO_MMIO_WINDOW     0x1000 /* a device's registers and config space */
#define VIRTIO_MMIO_MAX_QUEUES 16
#define VIRTIO_MMIO_CONFIG_MAX 256
#define VIRTIO_F_INDIRECT_DESC (1ull << 28)
#define VIRTIO_F_EVENT_IDX     (1ull << 29)
#define VIRTIO_F_VERSION_1     (1ull << 32)

struct guest_mem;
struct virtio_mmio_dev;

/*
 * What the transport needs of the VM, given by the device manager (bus.c): guest memory, an edge
 * on the device's interrupt line, kicks delivered inside KVM, and the end of the run when the
 * driver breaks the protocol. The transport knows nothing else of the VM, so it links alone.
 */
struct virtio_mmio_host {
	const struct guest_mem *mem;
	void *ctx;
	void (*irq)(void *ctx, unsigned int gsi);
	int (*ioeventfd)(void *ctx, uint64_t addr, uint32_t len, int fd); /* 0 or -errno */
	/* Writes to [addr, addr + len) need not exit: they come later, in order, through
	 * virtio_mmio_write_coalesced (before any later access of the same vCPU). 0 or -errno;
	 * optional. */
	int (*coalesce)(void *ctx, uint64_t addr, uint32_t len);
	void (*fail)(void *ctx, const char *device, const char *what);
	/*
	 * The page the guest reads the window at base from, without an exit (a read-only memory
	 * slot over the window; its writes still exit, or wait in the coalesced ring), or NULL:
	 * reads exit too. Optional.
	 */
	uint8_t *(*register_page)(void *ctx, uint64_t base);
};

/*
 * What a device type provides; the transport and the device manager call nothing else. The
 * lifecycle, walked over every device by the device manager: the device's file creates it with
 * vm_add_mmio() during set-up; stop (vm_stop), finish (teardown, before the vCPUs are joined),
 * destroy (after them); print_stats with --timing.
 */
struct virtio_dev_ops {
	const char *name;
	uint32_t device_id; /* virtio 1.2 §5 */
	uint64_t features;  /* device feature bits (VERSION_1, EVENT_IDX added by the transport) */
	unsigned int num_queues;
	uint16_t queue_max;
	/*
	 * The most buffers queue q takes, where it is less than queue_max (a power of 2; 0:
	 * queue_max). A driver fills a receive queue to its size at once: one the device writes
	 * little into needs few. Optional.
	 */
	uint16_t (*queue_size)(const struct virtio_mmio_dev *d, unsigned int q);
	uint32_t config_size; /* bytes of d->config the driver may read */
	/* A queue was kicked (vCPU thread). */
	void (*notify)(struct virtio_mmio_dev *d, unsigned int queue);
	/* The driver set DRIVER_OK. Optional. */
	void (*driver_ok)(struct virtio_mmio_dev *d);
	/*
	 * The driver is about to reset the device (it writes 0 to Status, as Linux does at reboot):
	 * finish what it handed over, its last output included. Called in the vCPU thread with no
	 * lock held, before reset. Optional.
	 */
	void (*quiesce)(struct virtio_mmio_dev *d);
	/* The driver wrote 0 to Status: forget all queue state. Optional. */
	void (*reset)(struct virtio_mmio_dev *d);
	/*
	 * The VM is stopping (vm_stop, any thread, once): make the device's threads give up what
	 * they are doing, blocking system calls included, and let go of the queues, so that no
	 * vCPU waits on them. Must not block. Optional.
	 */
	void (*stop)(struct virtio_mmio_dev *d);
	/*
	 * Teardown, after stop: wait until the device's threads are gone (interrupting what they
	 * block in), so that no vCPU waits on them any more. Optional.
	 */
	void (*finish)(struct virtio_mmio_dev *d);
	/* Teardown, once no vCPU runs: free d->priv. Optional. */
	void (*destroy)(struct virtio_mmio_dev *d);
	/* --timing: the device's own line(s) on stderr, after the transport's. Optional. */
	void (*print_stats)(const struct virtio_mmio_dev *d);
	/*
	 * Snapshots (to come): the device's own state beyond the transport's (registers and queue
	 * positions are in struct virtio_mmio_dev), written into buf / read back. Returns the
	 * bytes used, or -errno. NULL: the device cannot be saved yet, and a snapshot is refused.
	 */
	long (*save)(const struct virtio_mmio_dev *d, void *buf, size_t size);
	int (*restore)(struct virtio_mmio_dev *d, const void *buf, size_t size);
};

struct virtio_mmio_dev {
	const struct virtio_mmio_host *host;
	const struct virtio_dev_ops *ops;
	void *priv;
	uint64_t base;
	unsigned int gsi;
	/*
	 * Queue processing (notify handlers, device threads) holds qlock for reading; the driver's
	 * queue set-up, queue reset and device reset take it for writing, so rings never change
	 * under a device that is using them.
	 */
	pthread_rwlock_t qlock;
	pthread_mutex_t lock; /* register state below */
	uint32_t status, dev_features_sel, drv_features_sel, queue_sel, config_generation;
	uint64_t driver_features;
	uint32_t isr; /* InterruptStatus, updated atomically */
	/*
	 * Interrupts signalled, and their count when the driver last read InterruptStatus: an
	 * InterruptACK clears bits only when no interrupt came since that read, so an
	 * acknowledgement that arrives late (coalesced, below) never hides a newer one.
	 */
	uint32_t isr_signals, isr_seen;
	/* For --timing: register accesses (VM exits), notifications among them, interrupts sent,
	 * register writes that came without an exit (coalesced). */
	uint64_t nr_exits, nr_kicks, nr_irqs, nr_coalesced;
	uint8_t config[VIRTIO_MMIO_CONFIG_MAX];
	struct virtq queues[VIRTIO_MMIO_MAX_QUEUES];
	/*
	 * The window as the guest reads it, where the host gave one (register_page): each
	 * register's value and the config space, rewritten under lock after every write the
	 * driver makes and at reset. InterruptStatus there keeps its VRING bit once an interrupt
	 * came, until a reset: a read that does not exit cannot be matched with the
	 * acknowledgement that follows it (isr_seen), and a driver that finds the bit set only
	 * looks at its rings. NULL: every read exits.
	 */
	uint8_t *page;
};

/*
 * A device at MMIO window base, interrupt line gsi (the device manager hands both out). Returns
 * NULL when out of memory or when ops asks for more queues or config than the transport has.
 */
struct virtio_mmio_dev *virtio_mmio_new(const struct virtio_mmio_host *host,
					const struct virtio_dev_ops *ops, void *priv, uint64_t base,
					unsigned int gsi);
void virtio_mmio_free(struct virtio_mmio_dev *d);
/*
 * The device's page (d->page) made equal to what each read would return; the device manager
 * calls it once the device has filled its config space, before the guest runs.
 */
void virtio_mmio_sync_page(struct virtio_mmio_dev *d);
/* One line on stderr: the device's exits, notifications and interrupts (--timing). */
void virtio_mmio_print_stats(const struct virtio_mmio_dev *d);
/* A guest access inside the device's window. */
void virtio_mmio_access(struct virtio_mmio_dev *d, uint64_t offset, uint8_t *data, uint32_t len,
			bool is_write);
/*
 * A guest write that waited in KVM's coalesced ring (the zones virtio_mmio_new asks the host to
 * coalesce: InterruptACK, which the driver writes after every interrupt it takes, and the set-up
 * writes of features and queues; one VM exit less each).
 */
void virtio_mmio_write_coalesced(struct virtio_mmio_dev *d, uint64_t offset, uint8_t *data,
				 uint32_t len);
/* Brackets device-side use of the queues from a thread other than a notify handler. */
void virtio_mmio_queues_begin(struct virtio_mmio_dev *d);
void virtio_mmio_queues_end(struct virtio_mmio_dev *d);
/*
 * Delivers the driver's queue notifications (any queue) as a signal on eventfd fd, from inside
 * KVM: the vCPU does not leave the kernel. ops->notify then sees none. Returns 0 or -errno (the
 * caller keeps ops->notify as the fallback).
 */
int virtio_mmio_notify_eventfd(struct virtio_mmio_dev *d, int fd);
/*
 * Serves queue qi from a device thread, between queues_begin and queues_end: takes each available
 * chain into *chain, lets handle() answer it, returns it with the length handle() wrote into it,
 * and signals the driver after each batch. Kicks stay off while there is work (§2.7.10): a driver
 * adding buffers meanwhile costs no VM exit. handle() returns a negative value to stop (the chain
 * is then not returned). handle() may let go of the queues for a call that can block
 * (virtio_mmio_queues_end, then _begin again): if the driver reset the queue meanwhile, its chain
 * is dropped and serving ends there. Returns the number of chains served, or -1: stopped, or the
 * guest handed over a malformed chain (the device is then failed).
 */
int virtio_mmio_serve(struct virtio_mmio_dev *d, unsigned int qi, struct virtq_chain *chain,
		      int64_t (*handle)(void *ctx, struct virtq_chain *chain), void *ctx);
/*
 * The same without the signal: the chains are returned, the caller signals (virtio_mmio_signal)
 * when it chooses, between queues_begin and queues_end (a device that holds its interrupt while
 * the driver keeps adding requests, virtio/coalesce.h).
 */
int virtio_mmio_serve_unsignalled(struct virtio_mmio_dev *d, unsigned int qi,
				  struct virtq_chain *chain,
				  int64_t (*handle)(void *ctx, struct virtq_chain *chain),
				  void *ctx);
/* Signals used buffers to the driver (if it asked for interrupts on q). */
void virtio_mmio_signal(struct virtio_mmio_dev *d, unsigned int queue);
/* The driver broke the protocol: mark the device as needing reset and stop the VM. */
void virtio_mmio_fail(struct virtio_mmio_dev *d, const char *what);
/* Kernel command-line fragment that lets the guest find the device (snprintf's return). */
int virtio_mmio_cmdline(const struct virtio_mmio_dev *d, char *buf, size_t size);

#endif
