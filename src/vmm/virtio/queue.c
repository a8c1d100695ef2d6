/* Split virtqueue processing (virtio 1.2 §2.7). */
#include "queue.h"

#include <errno.h>
#include <string.h>

void virtq_reset(struct virtq *q)
{
	uint32_t gen = q->gen;
	memset(q, 0, sizeof(*q));
	q->gen = gen + 1;
}

/* Whether [a, a + alen) and [b, b + blen) share a byte (no wrap: the caller checks bounds after).
 */
static bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

int virtq_enable(struct virtq *q, const struct guest_mem *mem)
{
	uint64_t n = q->num;

	/* §2.7: a split queue's size is a power of 2 (the ring indices wrap at 65536). */
	if (n == 0 || n > VIRTQ_MAX_SIZE || (n & (n - 1)))
		return -EINVAL;
	/* §2.7: descriptor table 16-byte aligned, available ring 2, used ring 4. */
	if ((q->desc_gpa & 15) || (q->avail_gpa & 1) || (q->used_gpa & 3))
		return -EINVAL;
	/*
	 * The three parts must not overlap: what the device writes into the used ring (flags,
	 * avail_event) would otherwise change the indices it reads back, and a queue whose used
	 * flags sit on the available index flips it for ever under the device.
	 */
	if (overlap(q->desc_gpa, 16 * n, q->avail_gpa, 6 + 2 * n) ||
	    overlap(q->desc_gpa, 16 * n, q->used_gpa, 6 + 8 * n) ||
	    overlap(q->avail_gpa, 6 + 2 * n, q->used_gpa, 6 + 8 * n))
		return -EINVAL;
	q->desc = guest_mem_ptr(mem, q->desc_gpa, 16 * n);
	q->avail = guest_mem_ptr(mem, q->avail_gpa, 6 + 2 * n);
	q->used = guest_mem_ptr(mem, q->used_gpa, 6 + 8 * n);
	if (!q->desc || !q->avail || !q->used)
		return -EINVAL;
	q->last_avail = 0;
	q->used_idx = 0;
	q->signalled = false;
	q->gen++;
	q->ready = true;
	return 0;
}

static int chain_add(struct virtq_chain *c, const struct guest_mem *mem, const struct virtq_desc *d,
		     unsigned int *total)
{
	void *p = guest_mem_ptr(mem, d->addr, d->len);

	if (!p || ++*total > VIRTQ_MAX_SIZE)
		return -EINVAL;
	if (d->flags & VIRTQ_DESC_F_WRITE) {
		c->in[c->n_in].iov_base = p;
		c->in[c->n_in++].iov_len = d->len;
		c->in_len += d->len;
	} else {
		/* §2.7.4.2: device-readable descriptors come before device-writable ones. */
		if (c->n_in)
			return -EINVAL;
		c->out[c->n_out].iov_base = p;
		c->out[c->n_out++].iov_len = d->len;
		c->out_len += d->len;
	}
	return 0;
}

/* Walks a table of n descriptors from index i; the loop bound stops cycles. */
static int walk(struct virtq_chain *c, const struct guest_mem *mem, const struct virtq_desc *table,
		uint32_t n, uint16_t i, bool indirect_ok, unsigned int *total)
{
	for (uint32_t steps = 0;; steps++) {
		struct virtq_desc d;
		if (i >= n || steps >= n)
			return -EINVAL;
		memcpy(&d, (const void *)&table[i],
		       sizeof(d)); /* read once: the guest may change it */
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			/* §2.7.5.3.1: one indirect table per chain, not nested, no NEXT with it. */
			if (!indirect_ok || (d.flags & VIRTQ_DESC_F_NEXT) || d.len % 16 ||
			    d.len == 0 || d.len / 16 > VIRTQ_MAX_SIZE)
				return -EINVAL;
			const struct virtq_desc *sub = guest_mem_ptr(mem, d.addr, d.len);
			if (!sub || (d.addr & 7))
				return -EINVAL;
			return walk(c, mem, sub, d.len / 16, 0, false, total);
		}
		if (chain_add(c, mem, &d, total))
			return -EINVAL;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		i = d.next;
	}
}

int virtq_pop(struct virtq *q, const struct guest_mem *mem, struct virtq_chain *c)
{
	if (!q->ready)
		return 0;
	uint16_t avail_idx = __atomic_load_n(&q->avail[1], __ATOMIC_ACQUIRE);
	if (avail_idx == q->last_avail)
		return 0;
	/* More new entries than the ring holds means the driver is broken or hostile. */
	if ((uint16_t)(avail_idx - q->last_avail) > q->num)
		return -EINVAL;
	uint16_t head = q->avail[2 + q->last_avail % q->num];
	c->head = head;
	c->n_in = c->n_out = 0;
	c->in_len = c->out_len = 0;
	unsigned int total = 0;
	if (walk(c, mem, q->desc, q->num, head, q->indirect_ok, &total))
		return -EINVAL;
	q->last_avail++;
	return 1;
}

void virtq_unpop(struct virtq *q)
{
	q->last_avail--;
}

bool virtq_pass_again(struct virtq *q, int served, unsigned int *empty)
{
	if (!virtq_notify_on_if_empty(q))
		return false;
	*empty = served ? 0 : *empty + 1;
	if (*empty < 2)
		return true;
	*empty = 0;
	virtq_set_no_notify(q, false);
	return false;
}

void virtq_push_many(struct virtq *q, const struct virtq_used_elem *e, unsigned int n)
{
	if (!q->ready)
		return;
	for (unsigned int i = 0; i < n; i++) {
		volatile uint32_t *elem =
			(volatile uint32_t *)(q->used + 4 +
					      8 * ((uint16_t)(q->used_idx + i) % q->num));
		elem[0] = e[i].id;
		elem[1] = e[i].len;
	}
	q->used_idx = (uint16_t)(q->used_idx + n);
	__atomic_store_n((uint16_t *)(q->used + 2), q->used_idx, __ATOMIC_RELEASE);
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	if (!q->ready)
		return; /* reset since the chain was popped: nothing to return it to */
	volatile uint32_t *elem = (volatile uint32_t *)(q->used + 4 + 8 * (q->used_idx % q->num));
	elem[0] = head;
	elem[1] = len;
	q->used_idx++;
	/* The entry must be visible before the index that publishes it (§2.7.8). */
	__atomic_store_n((uint16_t *)(q->used + 2), q->used_idx, __ATOMIC_RELEASE);
}

/* With VIRTIO_F_EVENT_IDX: the driver kicks when its index passes this value (§2.7.10). */
static void set_avail_event(struct virtq *q, uint16_t v)
{
	__atomic_store_n((uint16_t *)(q->used + 4 + 8 * q->num), v, __ATOMIC_RELEASE);
}

void virtq_set_no_notify(struct virtq *q, bool no_notify)
{
	if (!q->ready)
		return;
	if (q->event_idx) {
		/* Off: the event index stays behind, so the driver kicks no more after one kick. */
		if (!no_notify)
			set_avail_event(q, q->last_avail);
		return;
	}
	__atomic_store_n((uint16_t *)q->used, no_notify ? VIRTQ_USED_F_NO_NOTIFY : 0,
			 __ATOMIC_RELEASE);
}

void virtq_kicks_off(struct virtq *q)
{
	if (!q->ready)
		return;
	if (q->event_idx) /* an index the driver has passed: no kick at its next one either */
		set_avail_event(q, (uint16_t)(q->last_avail - 1));
	else
		virtq_set_no_notify(q, true);
}

bool virtq_notify_after_if_empty(struct virtq *q, uint16_t n)
{
	if (!q->ready)
		return false;
	if (q->event_idx)
		set_avail_event(q, (uint16_t)(q->last_avail + (n ? n : 1) - 1));
	else
		virtq_set_no_notify(q, false);
	/*
	 * The driver publishes its index, then reads our flag or event index; we write ours, then
	 * read its index. With a full fence on each side, one of us sees the other: no buffer is
	 * left unnoticed.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&q->avail[1], __ATOMIC_ACQUIRE) == q->last_avail)
		return false;
	virtq_set_no_notify(q, true);
	return true;
}

bool virtq_notify_on_if_empty(struct virtq *q)
{
	return virtq_notify_after_if_empty(q, 1);
}

uint16_t virtq_outstanding(const struct virtq *q)
{
	return q->ready ? (uint16_t)(__atomic_load_n(&q->avail[1], __ATOMIC_ACQUIRE) - q->used_idx)
			: 0;
}

bool virtq_should_interrupt(struct virtq *q)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(q->avail[0] & VIRTQ_AVAIL_F_NO_INTERRUPT);
	/* Interrupt when the used index passed the driver's used_event since the last decision. */
	uint16_t used_event = q->avail[2 + q->num];
	uint16_t now = q->used_idx, before = q->signalled_used;
	bool first = !q->signalled;
	q->signalled = true;
	q->signalled_used = now;
	return first || (uint16_t)(now - used_event - 1) < (uint16_t)(now - before);
}
