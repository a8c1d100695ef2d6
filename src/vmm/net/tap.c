/*
 * The TAP backend (backend.h): a host TAP interface (/dev/net/tun, IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR), one frame per read and write behind a 12-byte virtio_net_hdr. The guest's
 * transmit offloads pass through (send_offload: a checksum to fill in, a TCP segment of up to
 * 64 KiB to cut, which the host kernel does and checks again); so do its receive offloads: the
 * ones the driver took are set on the interface (TUNSETOFFLOAD), and the host's kernel then
 * hands over unfinished checksums and whole TCP segments of up to 64 KiB, which go to the guest
 * with their header (the device checks it against what the driver took). A frame the kernel
 * cannot take now (its queue full) is dropped, as a NIC would. Input is read only while the
 * guest has room, a few frames a pass.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend.h"
#include "frame.h"

#define READS_PER_PASS 16

struct tap_backend {
	struct net_backend b;
	int fd;
	uint8_t buf[NET_HDR_LEN + NET_FRAME_MAX + 1]; /* a read that fills it was cut short */
};

/* A frame behind its virtio_net_hdr; one the kernel cannot take now is dropped and counted. */
static void tap_write(struct net_backend *b, const uint8_t *hdr, const uint8_t *frame, size_t len)
{
	struct tap_backend *t = (struct tap_backend *)b;
	struct iovec iov[2] = {{(void *)hdr, NET_HDR_LEN}, {(void *)frame, len}};
	ssize_t n;
	do
		n = writev(t->fd, iov, 2);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)(NET_HDR_LEN + len))
		b->dropped++;
}

static void tap_send(struct net_backend *b, const uint8_t *frame, size_t len)
{
	static const uint8_t hdr[NET_HDR_LEN];
	tap_write(b, hdr, frame, len);
}

/* Checksum and segmentation left to the host kernel, which checks the header again. */
static void tap_send_offload(struct net_backend *b, const uint8_t *hdr, const uint8_t *frame,
			     size_t len)
{
	tap_write(b, hdr, frame, len);
}

static int tap_set_rx_offload(struct net_backend *b, unsigned int ok)
{
	struct tap_backend *t = (struct tap_backend *)b;
	unsigned long f = 0;
	if (ok & NET_RX_OK_CSUM) /* segmentation only with checksums (as the kernel has it) */
		f = TUN_F_CSUM | (ok & NET_RX_OK_TSO4 ? TUN_F_TSO4 : 0) |
		    (ok & NET_RX_OK_TSO6 ? TUN_F_TSO6 : 0);
	return ioctl(t->fd, TUNSETOFFLOAD, f) < 0 ? -errno : 0;
}

static unsigned int tap_poll_fill(struct net_backend *b, struct pollfd *fds, unsigned int max,
				  bool want_rx, int *timeout_ms)
{
	struct tap_backend *t = (struct tap_backend *)b;
	(void)timeout_ms;
	if (!max)
		return 0;
	fds[0] = (struct pollfd){t->fd, (short)(want_rx ? POLLIN : 0), 0};
	return 1;
}

static int tap_poll_done(struct net_backend *b, const struct pollfd *fds, unsigned int n)
{
	struct tap_backend *t = (struct tap_backend *)b;
	if (!n)
		return 0;
	if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
		snprintf(b->why, sizeof(b->why), "the TAP interface went away");
		return -ENODEV;
	}
	if (!(fds[0].revents & POLLIN))
		return 0;
	for (int i = 0; i < READS_PER_PASS && !b->rx_waiting; i++) {
		ssize_t r = read(t->fd, t->buf, sizeof(t->buf));
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			snprintf(b->why, sizeof(b->why), "reading the TAP interface: %s",
				 strerror(errno));
			return -errno;
		}
		if (r < NET_HDR_LEN || (size_t)r == sizeof(t->buf))
			continue;
		/* With its header: the device checks it against the offloads the driver took. */
		b->deliver_hdr(b->deliver_ctx, t->buf, t->buf + NET_HDR_LEN,
			       (size_t)r - NET_HDR_LEN);
	}
	return 0;
}

static void tap_close(struct net_backend *b)
{
	struct tap_backend *t = (struct tap_backend *)b;
	close(t->fd);
	free(t);
}

static const struct net_backend_ops tap_ops = {
	.name = "tap",
	.poll_fill = tap_poll_fill,
	.poll_done = tap_poll_done,
	.send = tap_send,
	.send_offload = tap_send_offload,
	.set_rx_offload = tap_set_rx_offload,
	.close = tap_close,
};

struct net_backend *net_tap_backend(const char *iface, char *msg, size_t msg_size)
{
	if (!iface[0] || strlen(iface) >= IFNAMSIZ) {
		snprintf(msg, msg_size, "interface name: 1 to %d bytes", IFNAMSIZ - 1);
		return NULL;
	}
	struct tap_backend *t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(msg, msg_size, "out of memory");
		return NULL;
	}
	t->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (t->fd < 0) {
		snprintf(msg, msg_size, "/dev/net/tun: %s", strerror(errno));
		free(t);
		return NULL;
	}
	struct ifreq r = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
	memcpy(r.ifr_name, iface, strlen(iface));
	int hdr = NET_HDR_LEN;
	if (ioctl(t->fd, TUNSETIFF, &r) < 0 || ioctl(t->fd, TUNSETVNETHDRSZ, &hdr) < 0 ||
	    ioctl(t->fd, TUNSETOFFLOAD, 0) < 0) {
		snprintf(msg, msg_size, "%s: %s", iface,
			 errno == EPERM ? "not allowed (CAP_NET_ADMIN, or a TAP owned by this user)"
					: strerror(errno));
		close(t->fd);
		free(t);
		return NULL;
	}
	t->b.ops = &tap_ops;
	t->b.max_fds = 1;
	return &t->b;
}
