/*
 * virtio-console, multiport (virtio 1.2 §5.3). Four ports carry the guest process's stdin, stdout
 * and stderr as separate streams, and init's control messages ("start", "exec", "exit N").
 *
 * Guest-to-host data (stdout, stderr, control) is written out by one transmit thread: a kick only
 * wakes it and turns further kicks off, so a process writing in small pieces costs a VM exit per
 * burst, not per write (§2.7.10). That thread handles init's exit report too, after it has written
 * out everything the process wrote. Host-to-guest stdin is fed by a thread that reads straight
 * into the guest's buffers.
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
#include <sys/eventfd.h>
#include <unistd.h>

#include "../../lib/ec1_internal.h"
#include "../sandbox.h"
#include "../vm.h"
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
	struct virtio_mmio_dev *dev;
	int fds[CONSOLE_PORTS];	  /* host side of each port, -1 for none */
	pthread_mutex_t ctl_lock; /* control receive queue and pending messages */
	struct ctl_msg pending[PENDING_MAX];
	unsigned int nr_pending;
	bool port_ready[CONSOLE_PORTS];
	bool guest_open[CONSOLE_PORTS]; /* the guest holds the port open (atomic access) */
	bool stdin_eof;
	char line[128]; /* partial control line from init */
	unsigned int line_len;
	int wake_fd;	/* stdin queue kicked, or stop */
	int tx_wake_fd; /* a transmit queue kicked, or stop */
	bool stopping;
	pthread_t stdin_thread, tx_thread;
	bool thread_started, tx_started;
	/* The transmit thread's: the control port's own, as an exit report drains the others. */
	struct virtq_chain tx_chain, ctl_chain;
	/* console_quiesce() asks for drain number drain_asked and waits until drain_done gets
	 * there. */
	pthread_mutex_t drain_lock;
	pthread_cond_t drain_cond;
	uint64_t drain_asked, drain_done;
};

static const char *const port_names[CONSOLE_PORTS] = {
	[CONSOLE_STDIN] = "ec1.stdin",
	[CONSOLE_STDOUT] = "ec1.stdout",
	[CONSOLE_STDERR] = "ec1.stderr",
	[CONSOLE_CONTROL] = "ec1.control",
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
		int r = c->nr_pending ? virtq_pop(q, &d->vm->mem, &chain) : 0;
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
			size_t n = strlen(port_names[m.id]);
			memcpy(buf + sizeof(m), port_names[m.id], n);
			len += n;
		}
		uint32_t done = (uint32_t)iov_from_buf(chain.in, chain.n_in, buf, len);
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
	return port != CONSOLE_STDIN || !c->stdin_eof;
}

/* Messages from the guest driver (§5.3.6.2). ctl_lock held. */
static void ctl_handle(struct console *c, const struct ctl_msg *m)
{
	switch (m->event) {
	case CTL_DEVICE_READY:
		if (m->value != 1)
			break;
		for (uint32_t p = CONSOLE_STDIN; p < CONSOLE_PORTS; p++)
			ctl_send(c, p, CTL_DEVICE_ADD, 0);
		break;
	case CTL_PORT_READY:
		if (m->id < CONSOLE_STDIN || m->id >= CONSOLE_PORTS || m->value != 1 ||
		    c->port_ready[m->id])
			break;
		c->port_ready[m->id] = true;
		ctl_send(c, m->id, CTL_PORT_NAME, 1);
		if (host_open(c, m->id))
			ctl_send(c, m->id, CTL_PORT_OPEN, 1);
		break;
	case CTL_PORT_OPEN:
		if (m->id >= CONSOLE_PORTS)
			break;
		/* The guest driver drops data that arrives for a port nobody holds open. */
		__atomic_store_n(&c->guest_open[m->id], m->value != 0, __ATOMIC_RELEASE);
		if (m->id == CONSOLE_STDIN && m->value) {
			uint64_t one = 1;
			ssize_t n = write(c->wake_fd, &one, sizeof(one));
			(void)n;
		}
		break;
	default:
		break;
	}
}

static int64_t serve_ctl(void *ctx, struct virtq_chain *chain)
{
	struct ctl_msg m;
	if (iov_to_buf(chain->out, chain->n_out, &m, sizeof(m)) == sizeof(m))
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

static bool port_drain(struct console *c, unsigned int port);

/* A line from init on the control port. */
static void control_line(struct console *c, const char *line)
{
	struct vm *vm = c->dev->vm;
	unsigned long long v;

	if (sscanf(line, "start %llu", &v) == 1) {
		vm_mark(vm, &vm->timing.init_start);
		vm->timing.guest_boot_ns = v;
	} else if (strcmp(line, "exec") == 0) {
		vm_mark(vm, &vm->timing.exec);
	} else if (sscanf(line, "exit %llu", &v) == 1 && v <= 255) {
		vm_mark(vm, &vm->timing.exit);
		/* All the process wrote was queued before init saw it exit. */
		port_drain(c, CONSOLE_STDOUT);
		port_drain(c, CONSOLE_STDERR);
		vm_report_status(vm, (int)v);
	} else {
		vm_log(EC1_LOG_DEBUG, "ec1: unknown control line from init: %s\n", line);
	}
}

static void control_data(struct console *c, const struct iovec *iov, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		const char *p = iov[i].iov_base;
		for (size_t k = 0; k < iov[i].iov_len; k++) {
			if (p[k] == '\n' || c->line_len == sizeof(c->line) - 1) {
				c->line[c->line_len] = 0;
				control_line(c, c->line);
				c->line_len = 0;
			} else {
				c->line[c->line_len++] = p[k];
			}
		}
	}
}

/*
 * Writes a whole chain to fd; a closed or failing fd drops the data (as a closed pipe would).
 * Returns false when the console is being stopped and fd blocks: give up.
 */
static bool write_all(struct console *c, int fd, struct iovec *iov, unsigned int n)
{
	while (n && fd >= 0) {
		ssize_t w = writev(fd, iov, n < IOV_MAX ? (int)n : IOV_MAX);
		if (w < 0) {
			if (__atomic_load_n(&c->stopping, __ATOMIC_ACQUIRE) &&
			    (errno == EINTR || errno == EAGAIN))
				return false;
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd p = {.fd = fd, .events = POLLOUT};
				poll(&p, 1, -1);
				continue;
			}
			return true;
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
	return true;
}

struct tx_ctx {
	struct console *c;
	unsigned int port;
};

static int64_t serve_tx(void *ctx, struct virtq_chain *chain)
{
	struct tx_ctx *t = ctx;
	if (t->port == CONSOLE_CONTROL)
		control_data(t->c, chain->out, chain->n_out);
	else if (t->port != CONSOLE_STDIN &&
		 !write_all(t->c, t->c->fds[t->port], chain->out, chain->n_out))
		return -1; /* stopping */
	return 0;
}

/*
 * Takes everything the guest queued on a port's transmit queue (nothing is written for stdin's).
 * Transmit thread only. Returns whether anything was taken.
 */
static bool port_drain(struct console *c, unsigned int port)
{
	struct tx_ctx t = {c, port};
	return virtio_mmio_serve(c->dev, tx_queue(port),
				 port == CONSOLE_CONTROL ? &c->ctl_chain : &c->tx_chain, serve_tx,
				 &t) > 0;
}

static void *tx_main(void *arg)
{
	struct console *c = arg;
	struct virtio_mmio_dev *d = c->dev;

	vm_thread_signals(); /* console_stop() interrupts a write that blocks */
	if (!vm_thread_sandbox(d->vm, SANDBOX_CONSOLE, "console output"))
		return NULL;
	for (;;) {
		bool stop = __atomic_load_n(&c->stopping, __ATOMIC_ACQUIRE);
		uint64_t asked = __atomic_load_n(&c->drain_asked, __ATOMIC_ACQUIRE);
		virtio_mmio_queues_begin(d);
		bool took;
		do {
			took = false;
			for (unsigned int port = CONSOLE_STDIN; port < CONSOLE_PORTS; port++)
				took |= port_drain(c, port);
		} while (took && !__atomic_load_n(&c->stopping, __ATOMIC_ACQUIRE));
		virtio_mmio_queues_end(d);
		pthread_mutex_lock(&c->drain_lock);
		c->drain_done = asked;
		pthread_cond_broadcast(&c->drain_cond);
		pthread_mutex_unlock(&c->drain_lock);
		if (stop)
			break;
		uint64_t v; /* a blocking eventfd: wait for a kick or console_stop() */
		if (read(c->tx_wake_fd, &v, sizeof(v)) < 0 && errno != EINTR)
			break;
	}
	return NULL;
}

static void console_notify(struct virtio_mmio_dev *d, unsigned int q)
{
	struct console *c = d->priv;
	uint64_t one = 1;

	if (q == CTL_TX) {
		ctl_tx(c);
	} else if (q == CTL_RX) {
		pthread_mutex_lock(&c->ctl_lock);
		ctl_flush(c);
		pthread_mutex_unlock(&c->ctl_lock);
	} else if (q == rx_queue(CONSOLE_STDIN)) {
		/* The stdin thread turns kicks back on when it runs out of buffers. */
		virtq_set_no_notify(&d->queues[q], true);
		ssize_t n = write(c->wake_fd, &one, sizeof(one));
		(void)n; /* the counter cannot overflow in practice; a lost wake-up is re-sent */
	} else if (!(q & 1)) {
		/*
		 * The driver fills every port's receive queue one buffer and one kick at a time.
		 * Only stdin's buffers matter to us: for the others, ask for no more kicks
		 * (§2.7.7).
		 */
		virtq_set_no_notify(&d->queues[q], true);
	} else if (queue_port(q) > 0 && queue_port(q) < CONSOLE_PORTS) {
		/* The transmit thread turns kicks back on once it has emptied the queue. */
		virtq_set_no_notify(&d->queues[q], true);
		ssize_t n = write(c->tx_wake_fd, &one, sizeof(one));
		(void)n;
	}
}

static void stdin_eof(struct console *c)
{
	virtio_mmio_queues_begin(c->dev);
	pthread_mutex_lock(&c->ctl_lock);
	c->stdin_eof = true;
	/* §5.3.6.2 PORT_OPEN 0: the host end is closed; the guest's reads then return 0 (EOF). */
	if (c->port_ready[CONSOLE_STDIN])
		ctl_send(c, CONSOLE_STDIN, CTL_PORT_OPEN, 0);
	ctl_flush(c);
	pthread_mutex_unlock(&c->ctl_lock);
	virtio_mmio_queues_end(c->dev);
}

/* Waits for fd readable; false when asked to stop. */
static bool wait_readable(struct console *c, int fd)
{
	struct pollfd p[2] = {{.fd = c->wake_fd, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
	uint64_t v;

	for (;;) {
		if (__atomic_load_n(&c->stopping, __ATOMIC_ACQUIRE))
			return false;
		if (poll(p, fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
			return false;
		if (p[0].revents & POLLIN) {
			ssize_t n = read(c->wake_fd, &v, sizeof(v));
			(void)n;
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

/*
 * Fills the guest's stdin buffers as data comes. Buffers filled back to back are signalled once,
 * when the data or the buffers run out; and the guest hands buffers back without a kick while we
 * hold some (§2.7.10).
 */
static void *stdin_main(void *arg)
{
	struct console *c = arg;
	struct virtio_mmio_dev *d = c->dev;
	unsigned int qi = rx_queue(CONSOLE_STDIN);
	struct virtq *q = &d->queues[qi];
	struct virtq_chain *chain = malloc(sizeof(*chain));
	int fd = c->fds[CONSOLE_STDIN];
	bool owed = false; /* buffers filled and not signalled yet */
	uint16_t bufs = 0; /* the most buffers the driver has had out at once */

	if (!chain || fd < 0) {
		stdin_eof(c);
		free(chain);
		return NULL;
	}
	if (!vm_thread_sandbox(d->vm, SANDBOX_CONSOLE, "console input")) {
		free(chain);
		return NULL;
	}
	for (;;) {
		if (!__atomic_load_n(&c->guest_open[CONSOLE_STDIN], __ATOMIC_ACQUIRE)) {
			if (!wait_readable(c, -1))
				break;
			continue;
		}
		virtio_mmio_queues_begin(d);
		uint16_t held = virtq_outstanding(q);
		if (held > q->num)
			held = q->num; /* the guest's index says more: it cannot have them */
		bufs = held > bufs ? held : bufs;
		int r = virtq_pop(q, &d->vm->mem, chain);
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
			virtq_unpop(q);
			break;
		}
		/* The chain's buffers are guest RAM, mapped for the VM's life: safe even if reset.
		 */
		ssize_t n = readv(fd, chain->in, (int)chain->n_in);
		if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
			virtq_unpop(q);
			continue;
		}
		virtio_mmio_queues_begin(d);
		if (n > 0) {
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
	return NULL;
}

int console_send_control(struct console *c, const char *line)
{
	struct virtio_mmio_dev *d = c->dev;
	struct virtq *q = &d->queues[rx_queue(CONSOLE_CONTROL)];
	struct virtq_chain *chain = malloc(sizeof(*chain));
	size_t len = strlen(line);
	int err = -EAGAIN;

	if (!chain)
		return -ENOMEM;
	virtio_mmio_queues_begin(d);
	pthread_mutex_lock(&c->ctl_lock);
	/* Data for a port nobody holds open would be dropped by the driver. */
	if (__atomic_load_n(&c->guest_open[CONSOLE_CONTROL], __ATOMIC_ACQUIRE)) {
		int r = virtq_pop(q, &d->vm->mem, chain);
		if (r < 0) {
			virtio_mmio_fail(d, "bad control port receive chain");
			err = -EINVAL;
		} else if (r > 0 && chain->in_len < len) {
			virtq_unpop(q);
		} else if (r > 0) {
			virtq_push(q, chain->head,
				   (uint32_t)iov_from_buf(chain->in, chain->n_in, line, len));
			virtio_mmio_signal(d, rx_queue(CONSOLE_CONTROL));
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
	uint64_t one = 1;

	pthread_mutex_lock(&c->drain_lock);
	uint64_t want = __atomic_add_fetch(&c->drain_asked, 1, __ATOMIC_ACQ_REL);
	ssize_t n = write(c->tx_wake_fd, &one, sizeof(one));
	(void)n;
	while (c->tx_started && c->drain_done < want &&
	       !__atomic_load_n(&c->stopping, __ATOMIC_ACQUIRE) &&
	       !__atomic_load_n(&d->vm->stopping, __ATOMIC_ACQUIRE)) {
		struct timespec t = vm_realtime_in_ms(10);
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

static const struct virtio_dev_ops console_ops = {
	.name = "console",
	.device_id = VIRTIO_ID_CONSOLE,
	/* Indirect tables: init splices up to 64 pages at a time, one descriptor each. */
	.features = VIRTIO_CONSOLE_F_MULTIPORT | VIRTIO_F_INDIRECT_DESC,
	.num_queues = 2 * (CONSOLE_PORTS + 1),
	.queue_max = QUEUE_SIZE,
	.config_size = 12,
	.notify = console_notify,
	.quiesce = console_quiesce,
	.reset = console_reset,
};

int console_create(struct vm *vm, int stdin_fd, int stdout_fd, int stderr_fd, struct console **out)
{
	struct console *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	c->fds[CONSOLE_STDIN] = stdin_fd;
	c->fds[CONSOLE_STDOUT] = stdout_fd;
	c->fds[CONSOLE_STDERR] = stderr_fd;
	c->fds[CONSOLE_CONTROL] = -1;
	pthread_mutex_init(&c->ctl_lock, NULL);
	pthread_mutex_init(&c->drain_lock, NULL);
	pthread_cond_init(&c->drain_cond, NULL);
	c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->tx_wake_fd = eventfd(0, EFD_CLOEXEC);
	err = c->wake_fd < 0 || c->tx_wake_fd < 0 ? -errno : 0;
	err = err ?: virtio_mmio_add(vm, &console_ops, c, &c->dev);
	if (err) {
		if (c->wake_fd >= 0)
			close(c->wake_fd);
		if (c->tx_wake_fd >= 0)
			close(c->tx_wake_fd);
		pthread_mutex_destroy(&c->ctl_lock);
		pthread_mutex_destroy(&c->drain_lock);
		pthread_cond_destroy(&c->drain_cond);
		free(c);
		return err;
	}
	/* Config (§5.3.4): cols, rows, max_nr_ports, emerg_wr. */
	uint32_t max_ports = CONSOLE_PORTS;
	memcpy(c->dev->config + 4, &max_ports, 4);
	/* From here the caller owns c and frees it with console_destroy(), on error too. */
	*out = c;
	err = pthread_create(&c->stdin_thread, NULL, stdin_main, c);
	if (err)
		return -err;
	c->thread_started = true;
	err = pthread_create(&c->tx_thread, NULL, tx_main, c);
	if (err)
		return -err;
	c->tx_started = true;
	return 0;
}

void console_stop(struct console *c)
{
	uint64_t one = 1;

	if (!c || __atomic_exchange_n(&c->stopping, true, __ATOMIC_ACQ_REL))
		return;
	ssize_t n = write(c->wake_fd, &one, sizeof(one));
	n = write(c->tx_wake_fd, &one, sizeof(one));
	(void)n;
	if (c->thread_started)
		pthread_join(c->stdin_thread, NULL);
	/* The transmit thread writes what is still queued unless its output blocks: interrupt it.
	 */
	while (c->tx_started) {
		struct timespec t = vm_realtime_in_ms(2);
		if (pthread_timedjoin_np(c->tx_thread, NULL, &t) == 0)
			break;
		vm_interrupt_thread(c->tx_thread);
	}
	c->thread_started = c->tx_started = false;
}

void console_destroy(struct console *c)
{
	if (!c)
		return;
	console_stop(c);
	close(c->wake_fd);
	close(c->tx_wake_fd);
	pthread_mutex_destroy(&c->ctl_lock);
	pthread_mutex_destroy(&c->drain_lock);
	pthread_cond_destroy(&c->drain_cond);
	free(c);
}
