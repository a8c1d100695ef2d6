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
#include <stdio.h>
#include <netinet/in.h>

struct net_backend;

typedef void (*net_deliver_fn)(void *ctx, const uint8_t *frame, size_t len);
/* A frame with the virtio_net_hdr the backend's host side put before it (12 bytes, unchecked). */
typedef void (*net_deliver_hdr_fn)(void *ctx, const uint8_t *hdr, const uint8_t *frame, size_t len);

struct net_backend_ops {
	const char *name;
	/*
	 * The descriptors to poll and how long to wait (ms, -1: no limit; only lowered). want_rx:
	 * whether the guest has room for frames now (when not, input stays where it is).
	 */
	unsigned int (*poll_fill)(struct net_backend *b, struct pollfd *fds, unsigned int max,
				  bool want_rx, int *timeout_ms);
	/*
	 * After poll (fds as filled, with their revents): does the I/O. Returns 0, or -errno when
	 * the backend is gone for good (the peer closed, the stream is out of step): the device
	 * then stops passing frames and says so once.
	 */
	int (*poll_done)(struct net_backend *b, const struct pollfd *fds, unsigned int n);
	/* A frame from the guest: sent, queued or dropped; never blocks (answers may be delivered
	 * at once). */
	void (*send)(struct net_backend *b, const uint8_t *frame, size_t len);
	/*
	 * Optional: a frame with its virtio_net_hdr (12 bytes, checked: net_tx_frame_offload), for
	 * a backend that takes checksum and segmentation offloads (the device then offers the guest
	 * VIRTIO_NET_F_CSUM, HOST_TSO4 and HOST_TSO6). Never blocks.
	 */
	void (*send_offload)(struct net_backend *b, const uint8_t *hdr, const uint8_t *frame,
			     size_t len);
	/*
	 * Optional, with send_offload: the receive offloads the driver took (NET_RX_OK_* of
	 * frame.h; 0 after a reset), set where frames come from. The backend then hands frames on
	 * with their header (deliver_hdr), and the device offers the guest GUEST_CSUM, GUEST_TSO4
	 * and GUEST_TSO6. Called from the vCPU thread that wrote DRIVER_OK or the reset. Returns 0
	 * or -errno.
	 */
	int (*set_rx_offload)(struct net_backend *b, unsigned int ok);
	void (*close)(struct net_backend *b);
	/* One line of the backend's own counts for --timing, or NULL. */
	void (*print_stats)(const struct net_backend *b, FILE *f);
};

struct net_backend {
	const struct net_backend_ops *ops;
	unsigned int max_fds; /* the most descriptors poll_fill fills */
	unsigned int mtu;     /* the MTU the device offers the guest; 0: NET_MTU (1500) */
	/* Where frames for the guest go, set by the device before the first call; called only
	 * from the device's thread, inside poll_done and send. */
	net_deliver_fn deliver;
	net_deliver_hdr_fn deliver_hdr; /* set for (and used by) a backend with set_rx_offload */
	void *deliver_ctx;
	/* Set by the device: frames wait for the guest's receive buffers; a backend reading a few
	 * frames a pass stops there (they would only be dropped). */
	bool rx_waiting;
	uint64_t dropped; /* frames from the guest the backend could not take */
	char why[256];	  /* what went wrong, once poll_done failed */
};

/*
 * A connected stream socket carrying frames in stream framing (4-byte big-endian lengths):
 * passt's --fd, QEMU's -netdev stream, at mtu (0: NET_MTU). Takes the descriptor (closed by
 * close()). NULL when out of memory.
 */
struct net_backend *net_stream_backend(int fd, unsigned int mtu);

/*
 * The host TAP interface iface (created when it does not exist, gone with the VM then; an
 * existing one, persistent or not, is attached to). NULL with msg set when it cannot be had.
 */
struct net_backend *net_tap_backend(const char *iface, char *msg, size_t msg_size);

/*
 * A connected unix datagram socket carrying one frame per datagram (vmnet-helper's socket pair,
 * gvproxy's vfkit listener). Takes the descriptor (closed by close()). NULL with msg set when it
 * is no datagram socket.
 */
struct net_backend *net_dgram_backend(int fd, char *msg, size_t msg_size);

/* A published port: the host's address (network order) and port, to the guest's port. */
struct net_port {
	uint32_t host_addr;
	uint16_t host_port, guest_port;
	bool udp;
};

/* A destination a restricted NAT lets the guest reach: address (network order, as the guest
 * sees it: 10.0.2.2 is the host's loopback) and port. */
struct net_allow {
	uint32_t addr;
	uint16_t port;
	bool udp;
};

struct net_nat_config {
	bool restricted; /* the guest reaches nothing but its published ports: no DNS either */
	const struct net_port *ports;
	unsigned int nr_ports;
	const struct net_allow *allow; /* restricted: and these destinations */
	unsigned int nr_allow;
	const struct sockaddr_in *resolver; /* where 10.0.2.3's queries go; NULL: the host's */
	/*
	 * Runs fn(arg) on a thread the device's sandbox does not restrict and waits for it (false:
	 * not run, the VM is stopping): what starts a NAT at its guest's first frame (see
	 * net_nat_preload). NULL: the NAT starts at set-up.
	 */
	bool (*unsandboxed)(void *ctx, void (*fn)(void *arg), void *arg);
	void *unsandboxed_ctx;
};

/*
 * User-mode NAT on libslirp (nat.c): 10.0.2.15/24 for the guest, 10.0.2.2 the host's loopback,
 * 10.0.2.3 the host's resolver. Listens on the published ports and opens the resolver's socket
 * now (before the thread's sandbox). NULL with msg set when a port cannot be had. Where the
 * loader starts NATs on demand (net_nat_preload), one without published ports starts (libslirp
 * loaded, its instance made) at the guest's first frame.
 */
struct net_backend *net_nat_backend(const struct net_nat_config *cfg, char *msg, size_t msg_size);
/*
 * Once per process: where the process may run on two CPUs or more, loads libslirp and glib on
 * a thread of their own (1.3-2 ms natively, which set-up's other steps overlap; the first NAT
 * waits for it then instead of loading them itself); where it has one CPU, nothing: a NAT
 * without published ports (and with cfg->unsandboxed) is started, the library loaded, when its
 * guest sends the first frame. EC1_NAT_LOAD=set-up or first-frame chooses instead.
 */
void net_nat_preload(void);

#endif
