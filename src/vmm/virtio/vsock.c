/*
 * virtio-vsock (virtio 1.2 §5.10): the guest's CID, a receive, a transmit and an event queue,
 * served by the device's own thread, which polls its kick eventfd and the host sockets of
 * vsock/ (the connections and their protocol) together. Packets from the guest are handed to
 * vsock/ as they come; receive buffers are taken only while vsock/ has a packet for the guest,
 * and what it reads from a host socket goes straight into them. The event queue is left as the
 * driver fills it (no transport reset is ever sent: no snapshots yet).
 */
#include "vsock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../bus.h"
#include "../sandbox.h"
#include "../vm.h"
#include "../vsock/vsock.h"
#include "../worker.h"
#include "ec1/ec1.h"
#include "mmio.h"

#define VIRTIO_ID_VSOCK 19
#define QUEUE_SIZE	256
#define RXQ		0
#define TXQ		1
#define TX_BATCH	64 /* transmit chains per pass before the host sockets get a turn */
#define RX_BATCH	(2 * QUEUE_SIZE) /* receive chains per pass, the same */
#define CFG_SIZE	8		 /* le64 guest_cid */

struct virtio_vsock {
	struct virtio_mmio_dev *dev;
	struct worker worker;
	struct vsock *v;
	struct pollfd *fds; /* the kick eventfd, then vsock/'s */
	bool failed;
	bool reset;		  /* the driver reset the device: the connections are over */
	unsigned int tx_empty;	  /* passes in a row the ring said it had more, and had none */
	struct virtq_chain chain; /* transmit */
	struct virtq_chain chains[VSOCK_RX_BATCH]; /* receive, a batch */
	struct vsock_rxbuf bufs[VSOCK_RX_BATCH];
	size_t written[VSOCK_RX_BATCH];
	struct virtq_used_elem used[VSOCK_RX_BATCH];
};

static void vsock_notify(struct virtio_mmio_dev *d, unsigned int q)
{
	struct virtio_vsock *s = d->priv;
	(void)q;
	worker_kick(&s->worker);
}

/*
 * Packets for the guest into its receive buffers, while both last: up to VSOCK_RX_BATCH buffers
 * at a time, so that one host read fills several (vsock_rx_batch); those left unfilled go back
 * to the ring as they were. Returns whether it stopped at its bound with both left (the thread
 * then comes back at once).
 */
static bool rx_fill(struct virtio_vsock *s)
{
	struct virtq *q = &s->dev->queues[RXQ];
	bool used = false, retried = false;
	int n = 0;
	/* Bounded: a driver that keeps adding buffers (or unfit ones) leaves the host a turn. */
	while (n < RX_BATCH && q->ready && vsock_rx_pending(s->v)) {
		unsigned int k = 0;
		int r = 1;
		while (k < VSOCK_RX_BATCH && n < RX_BATCH &&
		       (r = virtq_pop(q, s->dev->host->mem, &s->chains[k])) > 0) {
			struct virtq_chain *c = &s->chains[k];
			if (c->n_out || c->in_len < VSOCK_HDR_LEN) {
				if (k) { /* behind fit ones that may go back: its turn comes next */
					virtq_unpop(q);
					break;
				}
				virtq_push(q, c->head,
					   0); /* no receive buffer: given back unused */
				used = true;
				n++;
				continue;
			}
			s->bufs[k++] = (struct vsock_rxbuf){c->in, c->n_in, c->in_len};
			n++;
		}
		if (r < 0) {
			while (k--)
				virtq_unpop(q);
			virtio_mmio_fail(s->dev, "malformed descriptor chain");
			s->failed = true;
			break;
		}
		if (!k) {
			if (r > 0)
				continue; /* only unfit buffers so far */
			/* Buffers that came meanwhile are taken; an index that moves back and forth
			 * is not chased: kicks are on, the driver's next one wakes the thread. */
			if (!retried && virtq_notify_on_if_empty(q)) {
				retried = true;
				continue;
			}
			virtq_set_no_notify(q, false);
			break;
		}
		retried = false;
		unsigned int got = vsock_rx_batch(s->v, s->bufs, k, s->written);
		for (unsigned int i = 0; i < got; i++)
			s->used[i] = (struct virtq_used_elem){s->chains[i].head,
							      (uint32_t)s->written[i]};
		if (got) {
			virtq_push_many(q, s->used, got);
			used = true;
		}
		for (unsigned int i = got; i < k; i++) /* the last popped first */
			virtq_unpop(q);
		n -= (int)(k - got);
		if (!got)
			break;
	}
	if (used)
		virtio_mmio_signal(s->dev, RXQ);
	return n >= RX_BATCH;
}

/* The guest's packets to vsock/. Returns whether more may be waiting. */
static bool tx_serve(struct virtio_vsock *s)
{
	struct virtq *q = &s->dev->queues[TXQ];
	if (!q->ready)
		return false;
	int served = 0, r = 0;
	virtq_set_no_notify(q, true);
	while (served < TX_BATCH && (r = virtq_pop(q, s->dev->host->mem, &s->chain)) > 0) {
		vsock_tx(s->v, s->chain.out, s->chain.n_out, s->chain.out_len);
		virtq_push(q, s->chain.head, 0);
		served++;
		(void)rx_fill(s); /* answers (a response, a reset) go out as they are made */
	}
	if (served)
		virtio_mmio_signal(s->dev, TXQ);
	if (r < 0) {
		virtio_mmio_fail(s->dev, "malformed descriptor chain");
		s->failed = true;
		return false;
	}
	if (served == TX_BATCH)
		return true;
	return virtq_pass_again(q, served, &s->tx_empty);
}

/*
 * Under the queue lock, held for writing (the thread is out of the queues): the thread ends the
 * connections itself, inside its next hold of the lock and before it touches a queue, so no
 * packet of the old driver's reaches the new one.
 */
static void vsock_reset_dev(struct virtio_mmio_dev *d)
{
	struct virtio_vsock *s = d->priv;
	__atomic_store_n(&s->reset, true, __ATOMIC_RELEASE);
	worker_kick(&s->worker);
}

static void vsock_main(struct worker *w, void *arg)
{
	struct virtio_vsock *s = arg;
	bool more = false;
	unsigned int max = vsock_max_fds(s->v);
	while (!worker_stopping(w) && !s->failed) {
		virtio_mmio_queues_begin(s->dev);
		if (__atomic_exchange_n(&s->reset, false, __ATOMIC_ACQ_REL))
			vsock_reset(s->v);
		more = tx_serve(s);
		more = rx_fill(s) || more;
		virtio_mmio_queues_end(s->dev);
		int timeout = more ? 0 : -1;
		s->fds[0] = (struct pollfd){w->kick_fd, POLLIN, 0};
		unsigned int n = vsock_poll_fill(s->v, s->fds + 1, max, &timeout);
		if (poll(s->fds, 1 + n, timeout) < 0 && errno != EINTR) {
			vm_log(EC1_LOG_WARN, "virtio-vsock: poll: %s; the device stops",
			       strerror(errno));
			break;
		}
		if (worker_stopping(w))
			break;
		if (s->fds[0].revents)
			worker_clear(w);
		vsock_poll_done(s->v, s->fds + 1, n);
	}
}

static void vsock_stop(struct virtio_mmio_dev *d)
{
	struct virtio_vsock *s = d->priv;
	worker_stop(&s->worker);
}

static void vsock_finish(struct virtio_mmio_dev *d)
{
	struct virtio_vsock *s = d->priv;
	worker_join(&s->worker, 0);
}

static void vsock_destroy(struct virtio_mmio_dev *d)
{
	struct virtio_vsock *s = d->priv;
	worker_free(&s->worker);
	vsock_free(s->v); /* every host peer sees its connection end */
	free(s->fds);
	free(s);
}

static void vsock_print_stats(const struct virtio_mmio_dev *d)
{
	const struct virtio_vsock *s = d->priv;
	const struct vsock_stats *st = vsock_stats(s->v);
	fprintf(stderr,
		"ec1 virtio-vsock: %llu connections, %llu refused, %llu resets sent, %llu bad "
		"packets, %llu credit overruns, %llu closed by a device reset; %.1f MiB to the "
		"host, %.1f MiB to the guest\n",
		(unsigned long long)st->conns, (unsigned long long)st->refused,
		(unsigned long long)st->resets_sent, (unsigned long long)st->bad,
		(unsigned long long)st->overruns, (unsigned long long)st->closed_by_reset,
		st->to_host / 1048576.0, st->to_guest / 1048576.0);
}

static const struct virtio_dev_ops vsock_ops = {
	.name = "vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.features = VIRTIO_F_INDIRECT_DESC,
	.num_queues = 3,
	.queue_max = QUEUE_SIZE,
	.config_size = CFG_SIZE,
	.notify = vsock_notify,
	.reset = vsock_reset_dev,
	.stop = vsock_stop,
	.finish = vsock_finish,
	.destroy = vsock_destroy,
	.print_stats = vsock_print_stats,
};

int virtio_vsock_add(struct vm *vm, char *msg, size_t msg_size)
{
	const struct vm_vsock *cfg = vm->cfg->vsock;
	if (!cfg)
		return 0;
	struct virtio_vsock *s = calloc(1, sizeof(*s));
	if (!s)
		VM_FAIL(EC1_ENOMEM, "vsock: out of memory");
	struct vsock_config vc = {.guest_cid = cfg->guest_cid,
				  .ports = cfg->ports,
				  .nr_ports = cfg->nr_ports,
				  .uds = cfg->uds};
	char why[256];
	if (!(s->v = vsock_new(&vc, why, sizeof(why)))) {
		free(s);
		VM_FAIL(EC1_EINVAL, "vsock: %s", why);
	}
	s->fds = calloc(1 + vsock_max_fds(s->v), sizeof(*s->fds));
	int err = s->fds ? worker_init(&s->worker) : -ENOMEM;
	err = err ?: vm_add_mmio(vm, &vsock_ops, s, &s->dev);
	if (err) {
		worker_free(&s->worker);
		vsock_free(s->v);
		free(s->fds);
		free(s);
		if (err == -ENOSPC)
			VM_FAIL(EC1_EINVAL, "vsock: no device slot left (at most %d devices)",
				VM_MAX_DEVICES);
		VM_FAIL(EC1_ENOMEM, "vsock: %s", strerror(-err));
	}
	memcpy(s->dev->config, &cfg->guest_cid, 8);
	if (virtio_mmio_notify_eventfd(s->dev, s->worker.kick_fd) < 0)
		vm_log(EC1_LOG_INFO,
		       "virtio-vsock: no ioeventfd, notifications go through the VMM");
	err = worker_start(&s->worker, vm, SANDBOX_VSOCK, "virtio-vsock", NULL, vsock_main, s);
	if (err)
		VM_FAIL(EC1_ENOMEM, "vsock: thread: %s", strerror(-err));
	return 0;
}
