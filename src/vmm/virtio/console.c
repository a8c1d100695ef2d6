/*
 * virtio-console, multiport (virtio 1.2 §5.3), knowing nothing of what its ports carry: each is a
 * named stream to a host fd, from a host fd, or to a callback (console.h). ec1's own use of it
 * (the process's stdio and init's control port) is control.c's.
 *
 * Guest-to-host data is written out (or handed to the callbacks) by one transmit thread: a kick
 * only wakes it and turns further kicks off, so a process writing in small pieces costs a VM exit
 * per burst, not per write (§2.7.10). Host-to-guest data of the input port is fed by a thread
 * that reads straight into the guest's buffers.
 */
#include "console.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../bus.h"
#include "../sandbox.h"
#include "../vm.h"
#include "../worker.h"
#include "mmio.h"

#define VIRTIO_ID_CONSOLE	   3
#define VIRTIO_CONSOLE_F_MULTIPORT (1ull << 1)
#define QUEUE_SIZE		   256

/* §5.3.6.2 control events. */
enum {
	CTL_DEVICE_READY = 0,
	CTL_DEVICE_ADD = 1,
	CTL_PORT_READY = 3,
	CTL_PORT_OPEN = 6,
	CTL_PORT_NAME = 7,
};

struct ctl_msg {
	uint32_t id;
	uint16_t event;
	uint16_t value;
};

#define PENDING_MAX 32

struct console {
	struct vm *vm;
	struct virtio_mmio_dev *dev;
	struct console_port ports[CONSOLE_MAX_PORTS]; /* [0] unused */
	unsigned int nr_ports;			      /* ids 1..nr_ports-1 */
	unsigned int in_port;			      /* the one with in_fd, 0 if none */
	void *ctx;				      /* the callbacks' */
	void (*release)(void *ctx);
	pthread_mutex_t ctl_lock; /* control receive queue and pending messages */
	struct ctl_msg pending[PENDING_MAX];
	unsigned int nr_pending;
	bool port_ready[CONSOLE_MAX_PORTS];
	bool guest_open[CONSOLE_MAX_PORTS]; /* the guest holds the port open (atomic access) */
	/*
	 * The host end is closed for good (atomic access; set under ctl_lock): the input port's
	 * at the end of its input, an output port's once its fd failed (its reader gone: EPIPE).
	 */
	bool host_closed[CONSOLE_MAX_PORTS];
	struct worker rx; /* input: its queue kicked, the guest opened the port, or stop */
	struct worker tx; /* a transmit queue kicked, a drain asked, or stop */
	/* The transmit thread's; callback ports have their own, as a callback may drain the rest.
	 */
	struct virtq_chain tx_chain, cb_chain;
	/* console_quiesce() asks for drain number drain_asked and waits until drain_done gets
	 * there. */
	pthread_mutex_t drain_lock;
	pthread_cond_t drain_cond;
	uint64_t drain_asked, drain_done;
};

/* Queue numbers (§5.3.2): port 0 uses 0/1, the control queues are 2/3, port N uses 2N+2/2N+3. */
static unsigned int rx_queue(unsigned int port)
{
	return port == 0 ? 0 : 2 * port + 2;
}
static unsigned int tx_queue(unsigned int port)
{
	return rx_queue(port) + 1;
}
#define CTL_RX 2
#define CTL_TX 3

static int queue_port(unsigned int q)
{
	if (q < 2)
		return 0;
	if (q < 4)
		return -1;
	return (int)(q - 2) / 2;
}

/* Sends queued control messages into buffers the guest has posted. ctl_lock held. */
static void ctl_flush(struct console *c)
{
	struct virtio_mmio_dev *d = c->dev;
	struct virtq *q = &d->queues[CTL_RX];
	struct virtq_chain chain;
	bool sent = false;

	for (;;) {
		int r = c->nr_pending ? virtq_pop(q, d->host->mem, &chain) : 0;
		if (r < 0) {
			virtio_mmio_fail(d, "bad control receive chain");
			return;
		}
		if (r == 0) {
			/*
			 * The driver fills this queue one buffer and one kick at a time: kicks are
			 * wanted only while messages wait for buffers.
			 */
			if (!c->nr_pending) {
				virtq_set_no_notify(q, true);
				break;
			}
			if (!virtq_notify_on_if_empty(q))
				break;
			continue;
		}
		struct ctl_msg m = c->pending[0];
		char buf[sizeof(m) + 32];
		size_t len = sizeof(m);
		memcpy(buf, &m, sizeof(m));
		if (m.event == CTL_PORT_NAME) {
			/* The name follows the header in the same buffer, without a NUL. */
			const char *name = c->ports[m.id].name;
			size_t n = strlen(name) < 32 ? strlen(name) : 32;
			memcpy(buf + sizeof(m), name, n);
			len += n;
		}
		uint32_t done = (uint32_t)iov_from_buf(chain.in, chain.n_in, 0, buf, len);
		virtq_push(q, chain.head, done);
		memmove(c->pending, c->pending + 1, --c->nr_pending * sizeof(m));
		sent = true;
	}
	if (sent)
		virtio_mmio_signal(d, CTL_RX);
}

static void ctl_send(struct console *c, uint32_t id, uint16_t event, uint16_t value)
{
	if (c->nr_pending == PENDING_MAX) {
		virtio_mmio_fail(c->dev, "control messages not consumed");
		return;
	}
	c->pending[c->nr_pending++] = (struct ctl_msg){id, event, value};
}

static bool host_open(const struct console *c, unsigned int port)
{
	return !__atomic_load_n(&c->host_closed[port], __ATOMIC_ACQUIRE);
}

/*
 * Closes the host end of a port for good (§5.3.6.2 PORT_OPEN 0): the guest's reads of the input
 * port then return 0 (EOF); an output port polls POLLHUP in the guest and takes no more writes.
 * Queues held (virtio_mmio_queues_begin).
 */
static void close_host_end(struct console *c, unsigned int port)
{
	pthread_mutex_lock(&c->ctl_lock);
	bool was = __atomic_exchange_n(&c->host_closed[port], true, __ATOMIC_ACQ_REL);
	if (!was && c->port_ready[port])
		ctl_send(c, port, CTL_PORT_OPEN, 0);
	ctl_flush(c);
	pthread_mutex_unlock(&c->ctl_lock);
}

/* Messages from the guest driver (§5.3.6.2). ctl_lock held. */
static void ctl_handle(struct console *c, const struct ctl_msg *m)
{
	switch (m->event) {
	case CTL_DEVICE_READY:
		if (m->value != 1)
			break;
		for (uint32_t p = 1; p < c->nr_ports; p++)
			ctl_send(c, p, CTL_DEVICE_ADD, 0);
		break;
	case CTL_PORT_READY:
		if (m->id < 1 || m->id >= c->nr_ports || m->value != 1 || c->port_ready[m->id])
			break;
		c->port_ready[m->id] = true;
		ctl_send(c, m->id, CTL_PORT_NAME, 1);
		if (host_open(c, m->id))
			ctl_send(c, m->id, CTL_PORT_OPEN, 1);
		break;
	case CTL_PORT_OPEN:
		if (m->id >= c->nr_ports)
			break;
		/* The guest driver drops data that arrives for a port nobody holds open. */
		__atomic_store_n(&c->guest_open[m->id], m->value != 0, __ATOMIC_RELEASE);
		if (m->id == c->in_port && m->value)
			worker_kick(&c->rx);
		break;
	default:
		break;
	}
}

static int64_t serve_ctl(void *ctx, struct virtq_chain *chain)
{
	struct ctl_msg m;
	if (iov_to_buf(chain->out, chain->n_out, 0, &m, sizeof(m)) == sizeof(m))
		ctl_handle(ctx, &m);
	return 0;
}

static void ctl_tx(struct console *c)
{
	struct virtq_chain chain;

	pthread_mutex_lock(&c->ctl_lock);
	virtio_mmio_serve(c->dev, CTL_TX, &chain, serve_ctl, c);
	ctl_flush(c);
	pthread_mutex_unlock(&c->ctl_lock);
}

/*
 * Writes a whole chain to fd. Returns 0 when written, -1 when the console is being stopped and
 * fd blocks (give up), or the errno of a write that failed (EPIPE: nobody reads fd any more).
 */
static int write_all(struct console *c, int fd, struct iovec *iov, unsigned int n)
{
	while (n && fd >= 0) {
		ssize_t w = writev(fd, iov, n < IOV_MAX ? (int)n : IOV_MAX);
		if (w < 0) {
			if (worker_stopping(&c->tx) && (errno == EINTR || errno == EAGAIN))
				return -1;
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd p = {.fd = fd, .events = POLLOUT};
				poll(&p, 1, -1);
				continue;
			}
			return errno;
		}
		while (n && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

struct tx_ctx {
	struct console *c;
	unsigned int port;
};

static int64_t serve_tx(void *ctx, struct virtq_chain *chain)
{
	struct tx_ctx *t = ctx;
	const struct console_port *port = &t->c->ports[t->port];
	if (port->on_data) {
		port->on_data(t->c->ctx, chain->out, chain->n_out);
		return 0;
	}
	if (!host_open(t->c, t->port))
		return 0; /* its fd failed: the rest is dropped */
	/*
	 * The write may block for as long as nobody reads the output: not while holding the
	 * queues, which a driver's reset waits for. The buffers are guest RAM, mapped for the VM's
	 * life; if the driver reset the queue meanwhile, the chain is not returned.
	 */
	virtio_mmio_queues_end(t->c->dev);
	int err = write_all(t->c, port->out_fd, chain->out, chain->n_out);
	virtio_mmio_queues_begin(t->c->dev);
	if (err > 0) {
		/*
		 * As with a pipe whose reader left, the writer learns of it: the guest's end
		 * closes, so that the process's next write fails (EPIPE, SIGPIPE) instead of
		 * writing into nothing for ever. A reader that went away is no error to report.
		 */
		if (err != EPIPE)
			vm_log(EC1_LOG_ERROR,
			       "ec1: console port %s: writing to its host fd: %s; the guest's "
			       "further writes there fail\n",
			       port->name, strerror(err));
		close_host_end(t->c, t->port);
	}
	return err < 0 ? -1 : 0; /* -1: stopping */
}

/*
 * Takes everything the guest queued on a port's transmit queue (dropped for a port with no
 * out_fd). Transmit thread only. Returns whether anything was taken.
 */
static bool port_drain(struct console *c, unsigned int port)
{
	struct tx_ctx t = {c, port};
	return virtio_mmio_serve(c->dev, tx_queue(port),
				 c->ports[port].on_data ? &c->cb_chain : &c->tx_chain, serve_tx,
				 &t) > 0;
}

void console_flush_outputs(struct console *c)
{
	for (unsigned int port = 1; port < c->nr_ports; port++)
		if (!c->ports[port].on_data)
			port_drain(c, port);
}

static void tx_main(struct worker *w, void *arg)
{
	struct console *c = arg;
	struct virtio_mmio_dev *d = c->dev;

	for (;;) {
		bool stop = worker_stopping(w); /* once told, one last drain */
		uint64_t asked = __atomic_load_n(&c->drain_asked, __ATOMIC_ACQUIRE);
		virtio_mmio_queues_begin(d);
		bool took;
		do {
			took = false;
			for (unsigned int port = 1; port < c->nr_ports; port++)
				took |= port_drain(c, port);
		} while (took && !worker_stopping(w));
		virtio_mmio_queues_end(d);
		pthread_mutex_lock(&c->drain_lock);
		c->drain_done = asked;
		pthread_cond_broadcast(&c->drain_cond);
		pthread_mutex_unlock(&c->drain_lock);
		if (stop)
			break;
		worker_wait(w); /* a kick, console_quiesce(), or the stop */
	}
}

static void console_notify(struct virtio_mmio_dev *d, unsigned int q)
{
	struct console *c = d->priv;

	if (q == CTL_TX) {
		ctl_tx(c);
	} else if (q == CTL_RX) {
		pthread_mutex_lock(&c->ctl_lock);
		ctl_flush(c);
		pthread_mutex_unlock(&c->ctl_lock);
	} else if (c->in_port && q == rx_queue(c->in_port)) {
		/* The input thread turns kicks back on when it runs out of buffers. */
		virtq_set_no_notify(&d->queues[q], true);
		worker_kick(&c->rx);
	} else if (!(q & 1)) {
		/*
		 * The driver fills every port's receive queue one buffer and one kick at a time.
		 * Only the input port's buffers matter to us: for the others, ask for no more kicks
		 * (§2.7.7).
		 */
		virtq_set_no_notify(&d->queues[q], true);
	} else if (queue_port(q) > 0 && queue_port(q) < (int)c->nr_ports) {
		/* The transmit thread turns kicks back on once it has emptied the queue. */
		virtq_set_no_notify(&d->queues[q], true);
		worker_kick(&c->tx);
	}
}

static void stdin_eof(struct console *c)
{
	if (!c->in_port)
		return;
	virtio_mmio_queues_begin(c->dev);
	close_host_end(c, c->in_port);
	virtio_mmio_queues_end(c->dev);
}

/* Waits for fd readable; false when asked to stop. */
static bool wait_readable(struct console *c, int fd)
{
	struct pollfd p[2] = {{.fd = c->rx.kick_fd, .events = POLLIN},
			      {.fd = fd, .events = POLLIN}};

	for (;;) {
		if (worker_stopping(&c->rx))
			return false;
		if (poll(p, fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
			return false;
		if (p[0].revents & POLLIN) {
			worker_clear(&c->rx);
			if (fd < 0)
				return true;
		}
		if (fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
			return true;
	}
}

/* Whether fd has data (or end of file) to read right now. */
static bool readable_now(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) > 0;
}

/* Gives the chain popped under generation gen back unused, unless the queue was reset since. */
static void give_back(struct virtio_mmio_dev *d, struct virtq *q, uint32_t gen)
{
	virtio_mmio_queues_begin(d);
	if (q->gen == gen)
		virtq_unpop(q);
	virtio_mmio_queues_end(d);
}

/*
 * Fills the guest's stdin buffers as data comes. Buffers filled back to back are signalled once,
 * when the data or the buffers run out; and the guest hands buffers back without a kick while we
 * hold some (§2.7.10).
 */
static void stdin_main(struct worker *w, void *arg)
{
	struct console *c = arg;
	(void)w;
	struct virtio_mmio_dev *d = c->dev;
	unsigned int qi = rx_queue(c->in_port);
	struct virtq *q = &d->queues[qi];
	struct virtq_chain *chain = malloc(sizeof(*chain));
	int fd = c->in_port ? c->ports[c->in_port].in_fd : -1;
	bool owed = false; /* buffers filled and not signalled yet */
	uint16_t bufs = 0; /* the most buffers the driver has had out at once */

	if (!chain || fd < 0) {
		stdin_eof(c);
		free(chain);
		return;
	}
	for (;;) {
		if (!__atomic_load_n(&c->guest_open[c->in_port], __ATOMIC_ACQUIRE)) {
			if (!wait_readable(c, -1))
				break;
			continue;
		}
		virtio_mmio_queues_begin(d);
		uint16_t held = virtq_outstanding(q);
		if (held > q->num)
			held = q->num; /* the guest's index says more: it cannot have them */
		bufs = held > bufs ? held : bufs;
		int r = virtq_pop(q, d->host->mem, chain);
		uint32_t gen = q->gen; /* the chain belongs to this generation of the queue */
		bool more = false;
		if (r == 0) {
			if (owed)
				virtio_mmio_signal(d, qi);
			owed = false;
			/*
			 * Every buffer is with the driver now, and it gives each back once read:
			 * by the time the process needs more, all have come back. Be kicked when
			 * half of them have (not at each one), the other half still to read.
			 */
			more = virtq_notify_after_if_empty(q, (uint16_t)(bufs / 2));
		} else if (r > 0) {
			virtq_set_no_notify(q, true);
		}
		virtio_mmio_queues_end(d);
		if (r < 0) {
			virtio_mmio_fail(d, "bad stdin receive chain");
			break;
		}
		if (r == 0) {
			/* No guest buffer: wait for a kick. */
			if (!more && !wait_readable(c, -1))
				break;
			continue;
		}
		if (!wait_readable(c, fd)) {
			give_back(d, q, gen);
			break;
		}
		/* The chain's buffers are guest RAM, mapped for the VM's life: safe even if reset.
		 */
		ssize_t n = readv(fd, chain->in, (int)chain->n_in);
		if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
			give_back(d, q, gen);
			continue;
		}
		virtio_mmio_queues_begin(d);
		if (q->gen != gen) {
			/* The driver reset the queue while we read: the chain is void, data
			 * dropped. */
		} else if (n > 0) {
			virtq_push(q, chain->head, (uint32_t)n);
			owed = true;
		} else {
			virtq_unpop(q);
		}
		/* More to read at once: fill the next buffer first, signal both together. */
		if (owed && (n <= 0 || !readable_now(fd))) {
			virtio_mmio_signal(d, qi);
			owed = false;
		}
		virtio_mmio_queues_end(d);
		if (n <= 0) {
			stdin_eof(c);
			break;
		}
	}
	free(chain);
}

int console_send(struct console *c, unsigned int port, const void *data, size_t len)
{
	struct virtio_mmio_dev *d = c->dev;
	if (port < 1 || port >= c->nr_ports || port == c->in_port)
		return -EINVAL;
	struct virtq *q = &d->queues[rx_queue(port)];
	struct virtq_chain *chain = malloc(sizeof(*chain));
	int err = -EAGAIN;

	if (!chain)
		return -ENOMEM;
	virtio_mmio_queues_begin(d);
	pthread_mutex_lock(&c->ctl_lock);
	/* Data for a port nobody holds open would be dropped by the driver. */
	if (__atomic_load_n(&c->guest_open[port], __ATOMIC_ACQUIRE)) {
		int r = virtq_pop(q, d->host->mem, chain);
		if (r < 0) {
			virtio_mmio_fail(d, "bad port receive chain");
			err = -EINVAL;
		} else if (r > 0 && chain->in_len < len) {
			virtq_unpop(q);
		} else if (r > 0) {
			virtq_push(q, chain->head,
				   (uint32_t)iov_from_buf(chain->in, chain->n_in, 0, data, len));
			virtio_mmio_signal(d, rx_queue(port));
			err = 0;
		}
	}
	pthread_mutex_unlock(&c->ctl_lock);
	virtio_mmio_queues_end(d);
	free(chain);
	return err;
}

/*
 * Before a reset the transmit thread writes out all the guest queued: at reboot Linux resets the
 * device right after init's exit report, which must not be lost, nor the output before it. Waits
 * as long as the output blocks, unless the VM or the console is stopping.
 */
static void console_quiesce(struct virtio_mmio_dev *d)
{
	struct console *c = d->priv;

	pthread_mutex_lock(&c->drain_lock);
	uint64_t want = __atomic_add_fetch(&c->drain_asked, 1, __ATOMIC_ACQ_REL);
	worker_kick(&c->tx);
	while (__atomic_load_n(&c->tx.started, __ATOMIC_ACQUIRE) && c->drain_done < want &&
	       !worker_stopping(&c->tx) && !__atomic_load_n(&c->vm->stopping, __ATOMIC_ACQUIRE)) {
		struct timespec t = clock_realtime_in_ms(10);
		pthread_cond_timedwait(&c->drain_cond, &c->drain_lock, &t);
	}
	pthread_mutex_unlock(&c->drain_lock);
}

static void console_reset(struct virtio_mmio_dev *d)
{
	struct console *c = d->priv;
	memset(c->port_ready, 0, sizeof(c->port_ready));
	memset(c->guest_open, 0, sizeof(c->guest_open));
	c->nr_pending = 0;
}

/*
 * Teardown: the threads stop; whatever the guest still queued for stdout and stderr is written
 * out unless the output blocks (2 ms of grace, then the write is interrupted). Before the vCPUs
 * are joined: a vCPU may be waiting for the queues the transmit thread holds.
 */
static void console_finish(struct virtio_mmio_dev *d)
{
	struct console *c = d->priv;
	worker_join(&c->rx, 1000);
	worker_join(&c->tx, 2);
}

static void console_destroy(struct virtio_mmio_dev *d)
{
	struct console *c = d->priv;
	worker_free(&c->rx);
	worker_free(&c->tx);
	pthread_mutex_destroy(&c->ctl_lock);
	pthread_mutex_destroy(&c->drain_lock);
	pthread_cond_destroy(&c->drain_cond);
	if (c->release)
		c->release(c->ctx);
	free(c);
}

/*
 * Receive queues take as many buffers as the host has to say on them: the driver fills each one
 * to its size when the port is added (a page a buffer), and five full queues were 1,280 pages and
 * most of the device's probe. Input takes QUEUE_SIZE (up to 1 MiB in flight), control messages
 * few (what does not fit waits in pending[]), a port the host only reads from one.
 */
#define CTL_RX_SIZE  16
#define PORT_RX_SIZE 8 /* a port with a data callback: the host may send it lines */
static uint16_t console_queue_size(const struct virtio_mmio_dev *d, unsigned int q)
{
	const struct console *c = d->priv;
	if (q % 2)
		return 0; /* transmit queues: the driver's, as many as it likes */
	if (q == 2)
		return CTL_RX_SIZE;
	int port = queue_port(q);
	if (port > 0 && (unsigned int)port == c->in_port)
		return 0;
	if (port > 0 && (unsigned int)port < c->nr_ports && c->ports[port].on_data)
		return PORT_RX_SIZE;
	return 1;
}

static const struct virtio_dev_ops console_ops = {
	.name = "console",
	.device_id = VIRTIO_ID_CONSOLE,
	/* Indirect tables: init splices up to 64 pages at a time, one descriptor each. */
	.features = VIRTIO_CONSOLE_F_MULTIPORT | VIRTIO_F_INDIRECT_DESC,
	.num_queues = 2 * CONSOLE_MAX_PORTS + 2, /* port 0, control, ports 1.. */
	.queue_max = QUEUE_SIZE,
	.queue_size = console_queue_size,
	.config_size = 12,
	.notify = console_notify,
	.quiesce = console_quiesce,
	.reset = console_reset,
	.finish = console_finish,
	.destroy = console_destroy,
};

int console_add_ports(struct vm *vm, const struct console_port *ports, unsigned int nr_ports,
		      void *ctx, void (*release)(void *ctx), struct console **out)
{
	if (nr_ports < 2 || nr_ports > CONSOLE_MAX_PORTS)
		return -EINVAL;
	struct console *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->vm = vm;
	c->nr_ports = nr_ports;
	c->ctx = ctx;
	for (unsigned int i = 1; i < nr_ports; i++) {
		c->ports[i] = ports[i];
		if (ports[i].in_fd >= 0 && !c->in_port)
			c->in_port = i;
	}
	pthread_mutex_init(&c->ctl_lock, NULL);
	pthread_mutex_init(&c->drain_lock, NULL);
	pthread_cond_init(&c->drain_cond, NULL);
	int e1 = worker_init(&c->rx), e2 = worker_init(&c->tx);
	int err = e1 ?: e2 ?: vm_add_mmio(vm, &console_ops, c, &c->dev);
	if (err) {
		worker_free(&c->rx);
		worker_free(&c->tx);
		pthread_mutex_destroy(&c->ctl_lock);
		pthread_mutex_destroy(&c->drain_lock);
		pthread_cond_destroy(&c->drain_cond);
		free(c);
		return err;
	}
	/* From here the VM owns c (and ctx: release runs at teardown). */
	c->release = release;
	*out = c;
	/* Config (§5.3.4): cols, rows, max_nr_ports, emerg_wr. */
	uint32_t max_ports = nr_ports;
	memcpy(c->dev->config + 4, &max_ports, 4);
	err = worker_start(&c->rx, vm, SANDBOX_CONSOLE, "console input", NULL, stdin_main, c);
	return err ?: worker_start(&c->tx, vm, SANDBOX_CONSOLE, "console output", NULL, tx_main, c);
}
