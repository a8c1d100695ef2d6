/*
 * virtio-net (virtio 1.2 §5.1): one receive and one transmit queue, MAC, STATUS (link up), MTU
 * (the backend's: 32,768 for the NAT, 65,520 for passt started by ec1, else 1,500) and
 * mergeable receive buffers (a large frame spread over the driver's page-sized buffers);
 * checksum and TCP segmentation offloads both ways where the backend takes them (a TAP),
 * served by the device's own thread, which polls its kick eventfd and the backend's
 * descriptors together (net/backend.h). Frames are checked by net/frame.c; what the guest has
 * no receive buffer for waits in a small bounded buffer, beyond it is dropped and counted (TCP
 * sends it again), so neither a flooding guest nor a flooding peer grows the VMM.
 */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../bus.h"
#include "../net/backend.h"
#include "../net/frame.h"
#include "../sandbox.h"
#include "../vm.h"
#include "../worker.h"
#include "ec1/ec1.h"
#include "mmio.h"

#define VIRTIO_ID_NET  1
#define QUEUE_SIZE     256
#define RXQ	       0
#define TXQ	       1
#define PENDING_MIN    (64u << 10)	 /* bytes of frames waiting for receive buffers, at least */
#define PENDING_FRAMES 4		 /* and room for this many of the largest frames */
#define PENDING_REC    (2 + NET_HDR_LEN) /* a waiting frame's length (host order) and header */
#define TX_BATCH       64		 /* transmit chains per pass before input gets a turn */

#define NET_F_CSUM	 (1ull << 0)
#define NET_F_GUEST_CSUM (1ull << 1)
#define NET_F_GUEST_TSO4 (1ull << 7)
#define NET_F_GUEST_TSO6 (1ull << 8)
#define NET_F_HOST_TSO4	 (1ull << 11)
#define NET_F_HOST_TSO6	 (1ull << 12)
#define NET_F_MTU	 (1ull << 3)
#define NET_F_MAC	 (1ull << 5)
#define NET_F_MRG_RXBUF	 (1ull << 15)
#define NET_F_STATUS	 (1ull << 16)
#define NET_S_LINK_UP	 1

/* Configuration layout (§5.1.4). */
#define CFG_MAC	   0
#define CFG_STATUS 6
#define CFG_PAIRS  8
#define CFG_MTU	   10
#define CFG_SIZE   12

struct virtio_net {
	struct virtio_mmio_dev *dev;
	struct worker worker;
	struct net_backend *be;
	struct pollfd *fds; /* the kick eventfd, then the backend's */
	bool be_failed;
	bool rx_signal;
	unsigned int tx_empty; /* passes in a row the ring said it had more, and had none */
	/*
	 * One each: a frame sent can be answered at once (the NAT's ARP, RST...), inside send. A
	 * mergeable frame's first receive chain stays in rx_chain (its header is written last);
	 * the others pass through rx_more.
	 */
	struct virtq_chain rx_chain, rx_more, tx_chain;
	struct virtq_used_elem used[QUEUE_SIZE];
	size_t max_frame; /* the backend's MTU and an Ethernet header */
	struct net_stats stats;
	uint64_t pending_dropped;
	size_t pending_len, pending_max;
	uint8_t frame[NET_FRAME_MAX];
	uint8_t *pending; /* records: length (2 bytes, host order), header, frame */
};

static void net_notify(struct virtio_mmio_dev *d, unsigned int q)
{
	struct virtio_net *n = d->priv;
	(void)q;
	worker_kick(&n->worker);
}

/*
 * With mergeable receive buffers: the frame over as many chains as it takes, returned together.
 * 1: done (or dropped as unfit), 0: not chains enough yet (none is taken).
 */
static int rx_put_merged(struct virtio_net *n, struct virtq *q, const uint8_t *hdr,
			 const uint8_t *frame, size_t len)
{
	size_t total = NET_HDR_LEN + len, done = 0;
	unsigned int k = 0;
	while (done < total) {
		struct virtq_chain *c = k ? &n->rx_more : &n->rx_chain;
		int r = k < q->num ? virtq_pop(q, n->dev->host->mem, c) : 0;
		if (r < 0) {
			virtio_mmio_fail(n->dev, "malformed descriptor chain");
			n->be_failed = true;
			return 1;
		}
		size_t part = r ? net_rx_part(c, hdr, frame, len, done) : 0;
		if (!part) {
			/* Out of chains (or the ring is too small for the frame), or one that is no
			 * receive buffer: every chain stays the guest's. */
			for (unsigned int i = k + (unsigned int)r; i; i--)
				virtq_unpop(q);
			if (!r && k < q->num)
				return 0;
			n->stats.rx_dropped++;
			return 1;
		}
		n->used[k++] = (struct virtq_used_elem){c->head, (uint32_t)part};
		done += part;
	}
	net_rx_buffers(&n->rx_chain, (uint16_t)k);
	virtq_push_many(q, n->used, k);
	n->stats.rx_frames++;
	n->stats.rx_bytes += len;
	n->rx_signal = true;
	return 1;
}

/*
 * Puts a frame (behind hdr, or a zeroed header when NULL) in the next receive chain. 1: done
 * (or dropped as unfit), 0: no chain.
 */
static int rx_put(struct virtio_net *n, const uint8_t *hdr, const uint8_t *frame, size_t len)
{
	struct virtq *q = &n->dev->queues[RXQ];
	if (!q->ready)
		return 0;
	if (n->dev->driver_features & NET_F_MRG_RXBUF)
		return rx_put_merged(n, q, hdr, frame, len);
	int r = virtq_pop(q, n->dev->host->mem, &n->rx_chain);
	if (r < 0) {
		virtio_mmio_fail(n->dev, "malformed descriptor chain");
		n->be_failed = true;
		return 1;
	}
	if (r == 0)
		return 0;
	int64_t used = net_rx_frame(&n->rx_chain, hdr, frame, len, &n->stats);
	if (used < 0) {
		virtq_unpop(q); /* the buffer stays the guest's; the frame is gone */
		return 1;
	}
	virtq_push(q, n->rx_chain.head, (uint32_t)used);
	n->rx_signal = true;
	return 1;
}

/* Frames that waited, into receive chains, oldest first. */
static void rx_flush(struct virtio_net *n)
{
	size_t pos = 0;
	while (pos < n->pending_len) {
		uint16_t len;
		memcpy(&len, n->pending + pos, 2);
		if (!rx_put(n, n->pending + pos + 2, n->pending + pos + PENDING_REC, len))
			break; /* no buffer */
		pos += PENDING_REC + (size_t)len;
	}
	memmove(n->pending, n->pending + pos, n->pending_len - pos);
	n->pending_len -= pos;
	n->be->rx_waiting = n->pending_len != 0;
}

/* A frame for the guest (behind hdr, checked, or a zeroed header): in, or waiting, or dropped. */
static void rx_frame(struct virtio_net *n, const uint8_t *hdr, const uint8_t *frame, size_t len)
{
	static const uint8_t zero[NET_HDR_LEN];
	if (!n->pending_len && rx_put(n, hdr, frame, len))
		return;
	if (len > NET_FRAME_MAX || n->pending_len + PENDING_REC + len > n->pending_max) {
		n->pending_dropped++;
		return;
	}
	uint16_t l = (uint16_t)len;
	memcpy(n->pending + n->pending_len, &l, 2);
	memcpy(n->pending + n->pending_len + 2, hdr ? hdr : zero, NET_HDR_LEN);
	memcpy(n->pending + n->pending_len + PENDING_REC, frame, len);
	n->pending_len += PENDING_REC + len;
	n->be->rx_waiting = true;
}

static void deliver(void *ctx, const uint8_t *frame, size_t len)
{
	struct virtio_net *n = ctx;
	if (len > n->max_frame) {
		n->pending_dropped++;
		return;
	}
	rx_frame(n, NULL, frame, len);
}

/* The receive offloads the driver took (NET_RX_OK_*). */
static unsigned int rx_offloads(const struct virtio_net *n)
{
	uint64_t f = n->dev->driver_features;
	return (f & NET_F_GUEST_CSUM ? NET_RX_OK_CSUM : 0) |
	       (f & NET_F_GUEST_TSO4 ? NET_RX_OK_TSO4 : 0) |
	       (f & NET_F_GUEST_TSO6 ? NET_RX_OK_TSO6 : 0);
}

/* A frame behind the header the host put before it (a TAP's): checked against what the driver
 * took (a frame read before the offloads changed may not fit them: dropped, counted). */
static void deliver_hdr(void *ctx, const uint8_t *hdr, const uint8_t *frame, size_t len)
{
	struct virtio_net *n = ctx;
	uint8_t h[NET_HDR_LEN];
	memcpy(h, hdr, NET_HDR_LEN);
	if (net_rx_hdr_check(h, len, n->max_frame, rx_offloads(n), &n->stats) == 0)
		rx_frame(n, h, frame, len);
}

/* Transmit chains to the backend. Returns whether more may be waiting. */
static bool tx_serve(struct virtio_net *n)
{
	struct virtq *q = &n->dev->queues[TXQ];
	if (!q->ready)
		return false;
	int served = 0, r = 0;
	virtq_set_no_notify(q, true);
	while (served < TX_BATCH && (r = virtq_pop(q, n->dev->host->mem, &n->tx_chain)) > 0) {
		if (n->dev->driver_features & NET_F_CSUM) {
			uint8_t hdr[NET_HDR_LEN];
			uint64_t f = n->dev->driver_features;
			unsigned int gso_ok = (f & NET_F_HOST_TSO4 ? NET_GSO_OK_TCPV4 : 0) |
					      (f & NET_F_HOST_TSO6 ? NET_GSO_OK_TCPV6 : 0);
			int64_t len = net_tx_frame_offload(&n->tx_chain, n->frame, n->max_frame,
							   gso_ok, hdr, &n->stats);
			if (len >= 0 && !n->be_failed)
				n->be->ops->send_offload(n->be, hdr, n->frame, (size_t)len);
		} else {
			int64_t len = net_tx_frame(&n->tx_chain, n->frame, n->max_frame, &n->stats);
			if (len >= 0 && !n->be_failed)
				n->be->ops->send(n->be, n->frame, (size_t)len);
		}
		virtq_push(q, n->tx_chain.head, 0);
		served++;
	}
	if (served)
		virtio_mmio_signal(n->dev, TXQ);
	if (r < 0) {
		virtio_mmio_fail(n->dev, "malformed descriptor chain");
		n->be_failed = true;
		return false;
	}
	if (served == TX_BATCH)
		return true;
	return virtq_pass_again(q, served, &n->tx_empty);
}

/* Rx interrupt, if frames went in since the last. */
static void rx_signal(struct virtio_net *n)
{
	if (n->rx_signal) {
		n->rx_signal = false;
		virtio_mmio_signal(n->dev, RXQ);
	}
}

/*
 * Frames that waited go in; then whether the guest has a receive buffer left. When it has none,
 * it is asked to kick when it adds one.
 */
static bool rx_room(struct virtio_net *n)
{
	struct virtq *q = &n->dev->queues[RXQ];
	bool room = false;
	/* Twice at most: buffers that came as kicks were turned on are taken the second time. */
	for (int pass = 0; q->ready && pass < 2; pass++) {
		rx_flush(n);
		if (!virtq_notify_on_if_empty(q))
			break; /* none: kicks are on */
		if (!n->pending_len) {
			room = true; /* buffers there (kicks off again), nothing waiting */
			break;
		}
		/* Still there and still nothing taken: an index that moves back; wait for a kick.
		 */
		if (pass == 1)
			virtq_set_no_notify(q, false);
	}
	rx_signal(n);
	return room;
}

static void net_main(struct worker *w, void *arg)
{
	struct virtio_net *n = arg;
	struct pollfd *fds = n->fds;
	bool more_tx = false;
	while (!worker_stopping(w)) {
		virtio_mmio_queues_begin(n->dev);
		bool want_rx = !n->be_failed && rx_room(n);
		virtio_mmio_queues_end(n->dev);
		int timeout = more_tx ? 0 : -1;
		fds[0] = (struct pollfd){w->kick_fd, POLLIN, 0};
		unsigned int nb = n->be_failed
					  ? 0
					  : n->be->ops->poll_fill(n->be, fds + 1, n->be->max_fds,
								  want_rx, &timeout);
		if (poll(fds, 1 + nb, timeout) < 0 && errno != EINTR) {
			vm_log(EC1_LOG_WARN, "virtio-net: poll: %s; the device stops",
			       strerror(errno));
			break;
		}
		if (worker_stopping(w))
			break;
		if (fds[0].revents)
			worker_clear(w);
		virtio_mmio_queues_begin(n->dev);
		more_tx = tx_serve(n);
		if (!n->be_failed) { /* also with nothing polled: a backend may have failed */
			int err = n->be->ops->poll_done(n->be, fds + 1, nb);
			if (err) {
				n->be_failed = true;
				vm_log(EC1_LOG_WARN,
				       "virtio-net: %s backend: %s; the guest's link is down",
				       n->be->ops->name, n->be->why);
			}
		}
		rx_flush(n);
		rx_signal(n);
		virtio_mmio_queues_end(n->dev);
	}
}

/* The receive offloads the driver took, set where the frames come from. */
static void net_driver_ok(struct virtio_mmio_dev *d)
{
	struct virtio_net *n = d->priv;
	unsigned int ok = rx_offloads(n);
	int err = n->be->ops->set_rx_offload(n->be, ok);
	if (err)
		vm_log(EC1_LOG_WARN,
		       "virtio-net: %s backend: receive offloads: %s; frames come whole",
		       n->be->ops->name, strerror(-err));
}

static void net_reset(struct virtio_mmio_dev *d)
{
	struct virtio_net *n = d->priv;
	n->pending_len = 0; /* under the queue lock, held for writing: the thread is out of it */
	n->be->rx_waiting = false;
	if (n->be->ops->set_rx_offload)
		(void)n->be->ops->set_rx_offload(n->be, 0);
}

static void net_stop(struct virtio_mmio_dev *d)
{
	struct virtio_net *n = d->priv;
	worker_stop(&n->worker);
}

static void net_finish(struct virtio_mmio_dev *d)
{
	struct virtio_net *n = d->priv;
	worker_join(&n->worker, 0);
}

static void net_destroy(struct virtio_mmio_dev *d)
{
	struct virtio_net *n = d->priv;
	worker_free(&n->worker);
	if (n->be)
		n->be->ops->close(n->be);
	free(n->fds);
	free(n->pending);
	free(n);
}

static void net_print_stats(const struct virtio_mmio_dev *d)
{
	const struct virtio_net *n = d->priv;
	const struct net_stats *s = &n->stats;
	fprintf(stderr,
		"ec1 virtio-net: sent %llu frames (%llu bytes, %llu dropped as malformed, %llu by "
		"the "
		"backend), received %llu (%llu bytes, %llu unfit, %llu with no buffer)\n",
		(unsigned long long)s->tx_frames, (unsigned long long)s->tx_bytes,
		(unsigned long long)s->tx_dropped, (unsigned long long)n->be->dropped,
		(unsigned long long)s->rx_frames, (unsigned long long)s->rx_bytes,
		(unsigned long long)s->rx_dropped, (unsigned long long)n->pending_dropped);
	if (n->dev->driver_features & NET_F_CSUM)
		fprintf(stderr,
			"ec1 virtio-net: offloads: %llu frames sent for the host to segment (TSO), "
			"%llu to checksum\n",
			(unsigned long long)s->tx_gso, (unsigned long long)s->tx_csum);
	if (n->dev->driver_features & NET_F_GUEST_CSUM)
		fprintf(stderr,
			"ec1 virtio-net: offloads: %llu frames received whole for the guest to "
			"segment (GSO), %llu to checksum\n",
			(unsigned long long)s->rx_gso, (unsigned long long)s->rx_csum);
	if (n->be->ops->print_stats)
		n->be->ops->print_stats(n->be, stderr);
}

#define NET_OPS(more_features, on_driver_ok)                                                \
	{                                                                                   \
		.name = "net", .device_id = VIRTIO_ID_NET,                                  \
		.features = VIRTIO_F_INDIRECT_DESC | NET_F_MAC | NET_F_STATUS | NET_F_MTU | \
			    NET_F_MRG_RXBUF | (more_features),                              \
		.num_queues = 2, .queue_max = QUEUE_SIZE, .config_size = CFG_SIZE,          \
		.notify = net_notify, .driver_ok = (on_driver_ok), .reset = net_reset,      \
		.stop = net_stop, .finish = net_finish, .destroy = net_destroy,             \
		.print_stats = net_print_stats,                                             \
	}
static const struct virtio_dev_ops net_ops = NET_OPS(0, NULL);
/* A backend that takes offloads both ways (TAP): the guest may leave checksums and TCP
 * segmentation to it, and takes checksums to complete and whole TCP segments from it. */
static const struct virtio_dev_ops net_ops_offload =
	NET_OPS(NET_F_CSUM | NET_F_HOST_TSO4 | NET_F_HOST_TSO6 | NET_F_GUEST_CSUM |
			NET_F_GUEST_TSO4 | NET_F_GUEST_TSO6,
		net_driver_ok);

void virtio_net_prepare(const struct vm_config *cfg)
{
	if (cfg->net && cfg->net->kind == VM_NET_NAT)
		net_nat_preload();
}

/* The NAT's start at the guest's first frame, on the thread in vm_run (net_nat_config). */
static bool on_caller(void *ctx, void (*fn)(void *arg), void *arg)
{
	return vm_run_on_caller(ctx, fn, arg);
}

int virtio_net_add(struct vm *vm, char *msg, size_t msg_size)
{
	const struct vm_net *cfg = vm->cfg->net;
	if (!cfg)
		return 0;
	struct virtio_net *n = calloc(1, sizeof(*n));
	if (!n)
		VM_FAIL(EC1_ENOMEM, "network: out of memory");
	int fd = -1;
	char why[256] = "out of memory";
	switch (cfg->kind) {
	case VM_NET_TAP:
		n->be = net_tap_backend(cfg->tap, why, sizeof(why));
		break;
	case VM_NET_NAT: {
		struct net_nat_config nc = {.restricted = cfg->restricted,
					    .ports = cfg->ports,
					    .nr_ports = cfg->nr_ports,
					    .allow = cfg->allow,
					    .nr_allow = cfg->nr_allow,
					    .unsandboxed = on_caller,
					    .unsandboxed_ctx = vm};
		n->be = net_nat_backend(&nc, why, sizeof(why));
		break;
	}
	case VM_NET_STREAM:
	case VM_NET_DGRAM:
		if (cfg->fd < 0 || (fd = fcntl(cfg->fd, F_DUPFD_CLOEXEC, 3)) < 0) {
			free(n);
			VM_FAIL(EC1_EINVAL, "network: %s %d: %s",
				cfg->kind == VM_NET_STREAM ? "passt_fd" : "socket", cfg->fd,
				strerror(errno ?: EBADF));
		}
		n->be = cfg->kind == VM_NET_STREAM ? net_stream_backend(fd, cfg->mtu)
						   : net_dgram_backend(fd, why, sizeof(why));
		if (!n->be)
			close(fd);
		break;
	}
	if (!n->be) {
		free(n);
		static const char *const kinds[] = {"nat", "passt_fd", "tap", "datagram socket"};
		VM_FAIL(cfg->kind == VM_NET_STREAM ? EC1_ENOMEM : EC1_EINVAL, "network: %s: %s",
			kinds[cfg->kind], why);
	}
	/* Offloads both ways, or none. */
	bool offload = n->be->ops->send_offload && n->be->ops->set_rx_offload;
	n->be->deliver = deliver;
	n->be->deliver_hdr = offload ? deliver_hdr : NULL;
	n->be->deliver_ctx = n;
	unsigned int mtu = n->be->mtu ? n->be->mtu : NET_MTU;
	if (mtu > NET_MTU_MAX)
		mtu = NET_MTU_MAX;
	n->max_frame = net_max_frame(mtu);
	n->pending_max = PENDING_FRAMES * (PENDING_REC + (offload ? NET_FRAME_MAX : n->max_frame));
	if (n->pending_max < PENDING_MIN)
		n->pending_max = PENDING_MIN;
	n->fds = calloc(1 + n->be->max_fds, sizeof(*n->fds));
	n->pending = malloc(n->pending_max);
	int err = n->fds && n->pending ? worker_init(&n->worker) : -ENOMEM;
	err = err ?: vm_add_mmio(vm, offload ? &net_ops_offload : &net_ops, n, &n->dev);
	if (err) {
		n->be->ops->close(n->be);
		worker_free(&n->worker);
		free(n->fds);
		free(n->pending);
		free(n);
		if (err == -ENOSPC)
			VM_FAIL(EC1_EINVAL, "network: no device slot left (at most %d devices)",
				VM_MAX_DEVICES);
		VM_FAIL(EC1_ENOMEM, "network: %s", strerror(-err));
	}
	uint8_t *c = n->dev->config;
	memcpy(c + CFG_MAC, cfg->mac, 6);
	uint16_t v = NET_S_LINK_UP;
	memcpy(c + CFG_STATUS, &v, 2);
	v = 1;
	memcpy(c + CFG_PAIRS, &v, 2);
	v = (uint16_t)mtu;
	memcpy(c + CFG_MTU, &v, 2);
	if (virtio_mmio_notify_eventfd(n->dev, n->worker.kick_fd) < 0)
		vm_log(EC1_LOG_INFO, "virtio-net: no ioeventfd, notifications go through the VMM");
	err = worker_start(&n->worker, vm, cfg->kind == VM_NET_NAT ? SANDBOX_NAT : SANDBOX_NET,
			   "virtio-net", NULL, net_main, n);
	if (err)
		VM_FAIL(EC1_ENOMEM, "network: thread: %s", strerror(-err));
	return 0;
}
