/* Split virtqueues (virtio 1.2 §2.7), device side, over guest memory the guest may change at will.
 */
#ifndef EC1_VIRTIO_QUEUE_H
#define EC1_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../iov.h"

#include "../guest_mem.h"

#define VIRTQ_MAX_SIZE 1024 /* the largest ring, and the longest chain, accepted */

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
#define VIRTQ_DESC_F_NEXT	   1
#define VIRTQ_DESC_F_WRITE	   2
#define VIRTQ_DESC_F_INDIRECT	   4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY	   1

struct virtq {
	/* Set by the driver through the transport. */
	uint16_t num;
	bool ready;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	/* Host views, valid once the queue is ready. */
	struct virtq_desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[num], used_event */
	volatile uint8_t *used;	  /* flags, idx, ring[num] of {id, len}, avail_event */
	uint16_t last_avail;
	uint16_t used_idx;
	bool indirect_ok; /* VIRTIO_F_INDIRECT_DESC negotiated */
	bool event_idx; /* VIRTIO_F_EVENT_IDX negotiated: the rings' event fields rule (§2.7.10) */
	bool signalled; /* an interrupt decision was made since the queue was enabled */
	uint16_t signalled_used; /* used_idx at that decision */
	/*
	 * Changes at every reset and enable: a chain popped under another generation is void (a
	 * device thread that let go of the queues while it worked on one must not return it).
	 */
	uint32_t gen;
};

/* One descriptor chain, split into the parts the device reads and the parts it writes. */
struct virtq_chain {
	uint16_t head;
	unsigned int n_out, n_in;
	struct iovec out[VIRTQ_MAX_SIZE]; /* device-readable */
	struct iovec in[VIRTQ_MAX_SIZE];  /* device-writable */
	uint64_t out_len, in_len;
};

/*
 * Validates the size (a power of 2, at most VIRTQ_MAX_SIZE) and the rings' addresses; on success
 * the queue is ready. Returns 0 or -EINVAL.
 */
int virtq_enable(struct virtq *q, const struct guest_mem *mem) __attribute__((warn_unused_result));
void virtq_reset(struct virtq *q);
/*
 * Takes the next available chain. Returns 1 with c filled, 0 when the ring is empty, -EINVAL when
 * the guest handed over a malformed chain (bad index, address, length or loop).
 */
int virtq_pop(struct virtq *q, const struct guest_mem *mem, struct virtq_chain *c)
	__attribute__((warn_unused_result));
/* Gives the last popped chain back unconsumed. */
void virtq_unpop(struct virtq *q);
/* Returns a chain to the driver with len bytes written into it. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);
/* A used element: a chain's head and the bytes written into it. */
struct virtq_used_elem {
	uint32_t id, len;
};
/*
 * Returns n chains at once: the driver sees all of them or none (a mergeable receive buffer's
 * parts, which the driver takes together, §5.1.6.4).
 */
void virtq_push_many(struct virtq *q, const struct virtq_used_elem *e, unsigned int n);
/* Tells the driver whether to notify (kick) us about new buffers. */
void virtq_set_no_notify(struct virtq *q, bool no_notify);
/*
 * No kick at all until notifications are turned on again (with VIRTIO_F_EVENT_IDX
 * virtq_set_no_notify lets one more through): for a device that looks at the ring itself.
 */
void virtq_kicks_off(struct virtq *q);
/*
 * For a device thread that drains q with notifications off (§2.7.10): once the ring looks empty,
 * turns them back on, then looks again. Returns true when buffers arrived in between (notifications
 * are off again: drain on), false when the thread may wait for the next kick.
 */
bool virtq_notify_on_if_empty(struct virtq *q);
/*
 * The same, asking for the kick only once the driver has added n buffers (n >= 1; with
 * VIRTIO_F_EVENT_IDX, else after the next one). The caller must know the driver will add that
 * many before it needs the device.
 */
bool virtq_notify_after_if_empty(struct virtq *q, uint16_t n);
/*
 * For a device thread's pass over q with kicks off, which popped until the ring looked empty
 * and served `served` chains: whether to make another pass (kicks off) or wait for a kick (kicks
 * on). Buffers that came meanwhile call for another pass; but two passes in a row that served
 * nothing although the ring said more mean a driver moving its index back and forth, and the
 * thread waits rather than spin. *empty counts those passes (0 to start).
 */
bool virtq_pass_again(struct virtq *q, int served, unsigned int *empty);
/* Buffers the driver has made available and not got back yet. */
uint16_t virtq_outstanding(const struct virtq *q);
/*
 * Whether the driver wants an interrupt for the buffers used so far; called once per signal
 * (with VIRTIO_F_EVENT_IDX it remembers where the last decision was).
 */
bool virtq_should_interrupt(struct virtq *q);

#endif
