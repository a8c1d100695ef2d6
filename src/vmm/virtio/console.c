/*
 * virtio-console, multiport (virtio 1.2 §5.3). Four ports carry the guest process's stdin, stdout
 * and stderr as separate streams, and init's control messages ("start", "exec", "exit N").
 *
 * Guest-to-host data is handled in the vCPU thread that kicked the queue, so that everything a
 * process wrote has reached the host before init can report its exit. Host-to-guest stdin is fed
 * by a thread that reads straight into the guest's buffers.
 */
#include "console.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../../lib/ec1_internal.h"
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
	int wake_fd; /* stdin queue kicked, or stop */
	bool stopping;
	pthread_t stdin_thread;
	bool thread_started;
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

	while (c->nr_pending) {
		int r = virtq_pop(q, &d->vm->mem, &chain);
		if (r < 0) {
			virtio_mmio_fail(d, "bad control receive chain");
			return;
		}
		if (r == 0)
			break;
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

static void ctl_tx(struct console *c)
{
	struct virtio_mmio_dev *d = c->dev;
	struct virtq_chain chain;
	int r;

	pthread_mutex_lock(&c->ctl_lock);
	while ((r = virtq_pop(&d->queues[CTL_TX], &d->vm->mem, &chain)) > 0) {
		struct ctl_msg m;
		if (iov_to_buf(chain.out, chain.n_out, &m, sizeof(m)) == sizeof(m))
			ctl_handle(c, &m);
		virtq_push(&d->queues[CTL_TX], chain.head, 0);
	}
	if (r < 0)
		virtio_mmio_fail(d, "bad control transmit chain");
	virtio_mmio_signal(d, CTL_TX);
	ctl_flush(c);
	pthread_mutex_unlock(&c->ctl_lock);
}

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

/* Writes a whole chain to fd; a closed or failing fd drops the data (as a closed pipe would). */
static void write_all(int fd, struct iovec *iov, unsigned int n)
{
	while (n && fd >= 0) {
		ssize_t w = writev(fd, iov, (int)n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd p = {.fd = fd, .events = POLLOUT};
				poll(&p, 1, -1);
				continue;
			}
			return;
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
}

static void port_tx(struct console *c, unsigned int port)
{
	struct virtio_mmio_dev *d = c->dev;
	unsigned int qi = tx_queue(port);
	struct virtq_chain chain;
	int r;

	/* One vCPU at a time per queue: two kicks racing must not reorder a stream. */
	pthread_mutex_lock(&c->ctl_lock);
	while ((r = virtq_pop(&d->queues[qi], &d->vm->mem, &chain)) > 0) {
		if (port == CONSOLE_CONTROL)
			control_data(c, chain.out, chain.n_out);
		else if (port != CONSOLE_STDIN)
			write_all(c->fds[port], chain.out, chain.n_out);
		virtq_push(&d->queues[qi], chain.head, 0);
	}
	if (r < 0)
		virtio_mmio_fail(d, "bad transmit chain");
	virtio_mmio_signal(d, qi);
	pthread_mutex_unlock(&c->ctl_lock);
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
		ssize_t n = write(c->wake_fd, &one, sizeof(one));
		(void)n; /* the counter cannot overflow in practice; a lost wake-up is re-sent */
	} else if (!(q & 1)) {
		/*
		 * The driver fills every port's receive queue one buffer and one kick at a time.
		 * Only stdin's buffers matter to us: for the others, ask for no more kicks
		 * (§2.7.7).
		 */
		virtq_set_no_notify(&d->queues[q], true);
	} else {
		int port = queue_port(q);
		if (port >= 0 && port < CONSOLE_PORTS)
			port_tx(c, (unsigned int)port);
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

static void *stdin_main(void *arg)
{
	struct console *c = arg;
	struct virtio_mmio_dev *d = c->dev;
	struct virtq *q = &d->queues[rx_queue(CONSOLE_STDIN)];
	struct virtq_chain *chain = malloc(sizeof(*chain));
	int fd = c->fds[CONSOLE_STDIN];

	if (!chain || fd < 0) {
		stdin_eof(c);
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
		int r = virtq_pop(q, &d->vm->mem, chain);
		virtio_mmio_queues_end(d);
		if (r < 0) {
			virtio_mmio_fail(d, "bad stdin receive chain");
			break;
		}
		if (r == 0) {
			/* No guest buffer yet: wait for a kick. */
			if (!wait_readable(c, -1))
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
		if (n <= 0) {
			virtq_unpop(q);
			stdin_eof(c);
			break;
		}
		virtio_mmio_queues_begin(d);
		virtq_push(q, chain->head, (uint32_t)n);
		virtio_mmio_signal(d, rx_queue(CONSOLE_STDIN));
		virtio_mmio_queues_end(d);
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
	.features = VIRTIO_CONSOLE_F_MULTIPORT,
	.num_queues = 2 * (CONSOLE_PORTS + 1),
	.queue_max = QUEUE_SIZE,
	.config_size = 12,
	.notify = console_notify,
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
	c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->wake_fd < 0) {
		err = -errno;
		free(c);
		return err;
	}
	err = virtio_mmio_add(vm, &console_ops, c, &c->dev);
	if (err) {
		close(c->wake_fd);
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
	return 0;
}

void console_destroy(struct console *c)
{
	uint64_t one = 1;

	if (!c)
		return;
	__atomic_store_n(&c->stopping, true, __ATOMIC_RELEASE);
	ssize_t n = write(c->wake_fd, &one, sizeof(one));
	(void)n;
	if (c->thread_started)
		pthread_join(c->stdin_thread, NULL);
	close(c->wake_fd);
	pthread_mutex_destroy(&c->ctl_lock);
	free(c);
}
