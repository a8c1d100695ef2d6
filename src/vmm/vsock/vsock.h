/*
 * vsock connections between the guest and host unix sockets (virtio 1.2 §5.10, stream sockets
 * only), the protocol half of the virtio-vsock device (virtio/vsock.c), which hands it the
 * guest's packets and its receive buffers and polls the descriptors it names.
 *
 * What reaches what:
 * - a guest connect(CID 2, PORT) reaches a host server at the path mapped to PORT (a port
 *   mapped without listen), or, with the Firecracker convention (uds), at "UDS_PORT";
 * - a host client connecting to the path of a port mapped with listen reaches the guest's
 *   listener on PORT; one connecting to UDS says "CONNECT PORT\n" first and is answered
 *   "OK N\n" (N: the connection's host port) once the guest accepted, or closed.
 *
 * The guest is hostile: every packet's CIDs, type, op, ports and length are checked; a packet
 * for no connection is answered with a reset, a malformed one is dropped and counted. Credit
 * (§5.10.6.3) bounds what each connection may hold: the guest is given VSOCK_BUF bytes, and
 * what the host socket does not take at once waits in at most that much (allocated only then);
 * a guest that sends past its credit gets a reset. At most VSOCK_MAX_CONNS connections, each
 * host socket out of the process's descriptor budget (fd_budget.h, as the shares' and the
 * NAT's: beyond it, a reset); what the guest is sent is read from the host only as far as the
 * guest's own credit allows.
 */
#ifndef EC1_VMM_VSOCK_VSOCK_H
#define EC1_VMM_VSOCK_VSOCK_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define VSOCK_HOST_CID	2
#define VSOCK_HDR_LEN	44	     /* struct virtio_vsock_hdr */
#define VSOCK_MAX_CONNS 128	     /* connections at once */
#define VSOCK_BUF	(256u << 10) /* the credit each connection gives the guest */
#define VSOCK_MAX_PORTS 17	     /* mapped ports: 16 of the caller's, exec's */
#define VSOCK_MAX_PKT	(64u << 10)  /* the longest payload a packet may carry */

struct vsock_port {
	uint32_t port;
	const char *path; /* a host unix socket's path */
	bool listen;	  /* ec1 listens on path for the host; else the guest connects to it */
};

struct vsock_config {
	uint64_t guest_cid;
	const struct vsock_port *ports;
	unsigned int nr_ports;
	const char *uds; /* Firecracker's convention on this path, or NULL */
};

struct vsock_stats {
	uint64_t conns, refused, resets_sent, bad, overruns;
	uint64_t closed_by_reset;   /* connections the driver's device reset ended */
	uint64_t to_host, to_guest; /* payload bytes */
};

struct vsock;

/*
 * Listens on the paths of the listen ports and UDS (made now, before the device's sandbox; a
 * socket file left at the path by an earlier run is replaced, anything else there is an
 * error). NULL with msg set naming the path and the reason.
 */
struct vsock *vsock_new(const struct vsock_config *cfg, char *msg, size_t msg_size);
/* Closes every connection (their host peers see the end) and listener, removes its paths. */
void vsock_free(struct vsock *v);

/*
 * A packet the guest transmitted: a chain of len device-readable bytes in iov. Returns 0, or -1
 * when it is not a packet at all (shorter than a header, or a length beyond the chain): dropped
 * and counted; the device goes on.
 */
int vsock_tx(struct vsock *v, const struct iovec *iov, unsigned int n, size_t len);

/* Whether a packet waits for the guest (a receive buffer is worth taking). */
bool vsock_rx_pending(const struct vsock *v);
/*
 * The next packet for the guest written into a receive buffer (iov, len device-writable bytes).
 * Returns the bytes written, 0 when nothing was to send (or the buffer is shorter than a header:
 * then nothing ever fits it).
 */
size_t vsock_rx(struct vsock *v, const struct iovec *iov, unsigned int n, size_t len);

/* A receive buffer: a chain's device-writable parts and their bytes. */
struct vsock_rxbuf {
	const struct iovec *iov;
	unsigned int n;
	size_t len;
};
#define VSOCK_RX_BATCH 16 /* receive buffers one host read may fill */
/*
 * Packets for the guest into bufs[0..nbufs) (at most VSOCK_RX_BATCH used): a connection's data
 * read from its host socket with one readv across the buffers, each then an RW packet of its
 * own; a control packet or a reset takes one buffer. Returns how many buffers were filled, in
 * order from bufs[0], each one's size in written[]; 0 when nothing was to send.
 */
unsigned int vsock_rx_batch(struct vsock *v, const struct vsock_rxbuf *bufs, unsigned int nbufs,
			    size_t *written);

/* The descriptors to poll (at most max) and the time to wait (ms; only lowered). */
unsigned int vsock_poll_fill(struct vsock *v, struct pollfd *fds, unsigned int max, int *timeout);
/* After poll: accepts, connects, writes what waits for host sockets, notes what is readable. */
void vsock_poll_done(struct vsock *v, const struct pollfd *fds, unsigned int n);
/* The most descriptors vsock_poll_fill fills. */
unsigned int vsock_max_fds(const struct vsock *v);

const struct vsock_stats *vsock_stats(const struct vsock *v);

/*
 * The driver reset the device: the guest's side of every connection is gone, so the host side
 * of each goes too (its peer sees the end), and the resets waiting for the guest are dropped.
 * A host client still sending its "CONNECT PORT" line (UDS) stays: no guest was asked yet.
 * Listeners stay.
 */
void vsock_reset(struct vsock *v);

#endif
