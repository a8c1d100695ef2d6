/*
 * The datagram backend (backend.h): one Ethernet frame per datagram on a connected unix
 * datagram socket, no header: vmnet-helper's socket pair, and gvproxy's vfkit listener (the
 * library binds, connects and sends the VFKT greeting before the VM starts). What the peer
 * cannot take now is dropped, as a NIC would; input is read only while the guest has room, a
 * few datagrams a pass; a datagram too long for a frame fills the buffer past a frame's length
 * and is dropped. Plain read and write, so the thread's sandbox stays the base one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"
#include "frame.h"

#define READS_PER_PASS 16

struct dgram_backend {
	struct net_backend b;
	int fd;
	uint64_t too_long;
	uint8_t buf[NET_MAX_FRAME + 1];
};

static void dgram_send(struct net_backend *b, const uint8_t *frame, size_t len)
{
	struct dgram_backend *d = (struct dgram_backend *)b;
	ssize_t n;
	do
		n = write(d->fd, frame, len);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)len)
		b->dropped++;
}

static unsigned int dgram_poll_fill(struct net_backend *b, struct pollfd *fds, unsigned int max,
				    bool want_rx, int *timeout_ms)
{
	struct dgram_backend *d = (struct dgram_backend *)b;
	(void)timeout_ms;
	if (!max)
		return 0;
	fds[0] = (struct pollfd){d->fd, (short)(want_rx ? POLLIN : 0), 0};
	return 1;
}

static int dgram_poll_done(struct net_backend *b, const struct pollfd *fds, unsigned int n)
{
	struct dgram_backend *d = (struct dgram_backend *)b;
	if (!n)
		return 0;
	if (fds[0].revents & (POLLERR | POLLNVAL)) {
		snprintf(b->why, sizeof(b->why), "the peer's socket failed");
		return -ECONNRESET;
	}
	if (!(fds[0].revents & (POLLIN | POLLHUP)))
		return 0;
	for (int i = 0; i < READS_PER_PASS && !b->rx_waiting; i++) {
		ssize_t r = read(d->fd, d->buf, sizeof(d->buf));
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			snprintf(b->why, sizeof(b->why), "reading the peer's socket: %s",
				 strerror(errno));
			return -errno;
		}
		if (r > NET_MAX_FRAME) {
			d->too_long++;
			continue;
		}
		if (r >= NET_ETH_HDR)
			b->deliver(b->deliver_ctx, d->buf, (size_t)r);
	}
	/* A socket pair's peer gone: hang-up with nothing left to read. */
	if ((fds[0].revents & POLLHUP) && !(fds[0].revents & POLLIN)) {
		snprintf(b->why, sizeof(b->why), "the peer closed its socket");
		return -ECONNRESET;
	}
	return 0;
}

static void dgram_close(struct net_backend *b)
{
	struct dgram_backend *d = (struct dgram_backend *)b;
	close(d->fd);
	free(d);
}

static void dgram_print_stats(const struct net_backend *b, FILE *f)
{
	const struct dgram_backend *d = (const struct dgram_backend *)b;
	fprintf(f, "ec1 virtio-net: dgram: %llu datagrams longer than a frame dropped\n",
		(unsigned long long)d->too_long);
}

static const struct net_backend_ops dgram_ops = {
	.name = "dgram",
	.poll_fill = dgram_poll_fill,
	.poll_done = dgram_poll_done,
	.send = dgram_send,
	.close = dgram_close,
	.print_stats = dgram_print_stats,
};

struct net_backend *net_dgram_backend(int fd, char *msg, size_t msg_size)
{
	int type = 0;
	socklen_t len = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_DGRAM) {
		snprintf(msg, msg_size, "descriptor %d is not a datagram socket", fd);
		return NULL;
	}
	int fl = fcntl(fd, F_GETFL);
	struct dgram_backend *d =
		fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? NULL : calloc(1, sizeof(*d));
	if (!d) {
		snprintf(msg, msg_size, "out of memory");
		return NULL;
	}
	d->b.ops = &dgram_ops;
	d->b.max_fds = 1;
	d->fd = fd;
	return &d->b;
}
