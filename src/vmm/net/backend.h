/*
 * What a virtio-net device's frames go to and come from, behind one small interface: the
 * device's thread polls the backend's descriptors with its own, hands it the guest's frames and
 * takes the frames it delivers. A backend never blocks the thread: a frame it cannot take now
 * is queued (bounded) or dropped and counted, as a real network would.
 */
#ifndef EC1_VMM_NET_BACKEND_H
#define EC1_VMM_NET_BACKEND_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_BACKEND_MAX_FDS 8

struct net_backend;

typedef void (*net_deliver_fn)(void *ctx, const uint8_t *frame, size_t len);

struct net_backend_ops {
	const char *name;
	/*
	 * The descriptors to poll and how long to wait (ms, -1: no limit; only lowered). want_rx:
	 * whether the guest has room for frames now (when not, input stays where it is).
	 */
	unsigned int (*poll_fill)(struct net_backend *b, struct pollfd *fds, unsigned int max,
				  bool want_rx, int *timeout_ms);
	/*
	 * After poll (fds as filled, with their revents): does the I/O; frames for the guest go to
	 * deliver. Returns 0, or -errno when the backend is gone for good (the peer closed, the
	 * stream is out of step): the device then stops passing frames and says so once.
	 */
	int (*poll_done)(struct net_backend *b, const struct pollfd *fds, unsigned int n,
			 net_deliver_fn deliver, void *ctx);
	/* A frame from the guest: sent, queued or dropped; never blocks. */
	void (*send)(struct net_backend *b, const uint8_t *frame, size_t len);
	void (*close)(struct net_backend *b);
};

struct net_backend {
	const struct net_backend_ops *ops;
	uint64_t dropped; /* frames from the guest the backend could not take */
	char why[128];	  /* what went wrong, once poll_done failed */
};

/*
 * A connected stream socket carrying frames in stream framing (4-byte big-endian lengths):
 * passt's --fd, QEMU's -netdev stream. Takes the descriptor (closed by close()). NULL when out of
 * memory.
 */
struct net_backend *net_stream_backend(int fd);

/*
 * The host TAP interface iface (created when it does not exist, gone with the VM then; an
 * existing one, persistent or not, is attached to). NULL with msg set when it cannot be had.
 */
struct net_backend *net_tap_backend(const char *iface, char *msg, size_t msg_size);

#endif
