/*
 * virtio-console with multiple ports (virtio 1.2 §5.3): a generic device whose ports the caller
 * describes. ec1's own ports (the process's stdio, init's control) are set up by control.c.
 */
#ifndef EC1_VIRTIO_CONSOLE_H
#define EC1_VIRTIO_CONSOLE_H

#include <stddef.h>
#include <sys/uio.h>

struct vm;
struct console;

/*
 * Port ids 1..6 (the guest's /dev/vport0p<id>; port 0 stays unused: QEMU reserves it for a
 * console port, and keeping the same numbering lets the same init run under QEMU).
 */
#define CONSOLE_MAX_PORTS 7

/* One port: where what the guest writes goes, and what is fed to it. */
struct console_port {
	const char *name; /* sent to the guest (PORT_NAME), at most 32 bytes used; borrowed */
	/*
	 * What the guest writes is written here; -1: dropped. Once a write fails (its reader gone:
	 * EPIPE) the port's host end closes (PORT_OPEN 0): the guest's writes to it fail from then.
	 */
	int out_fd;
	int in_fd; /* read and fed to the guest; -1: none (one port at most has one) */
	/* Instead of out_fd: what the guest writes, in the transmit thread. Optional. */
	void (*on_data)(void *ctx, const struct iovec *iov, unsigned int n);
};

/*
 * Adds a console with ports[1..nr_ports) (ports[0] is not read; nr_ports 2..CONSOLE_MAX_PORTS)
 * and starts its input and output threads; ctx goes to the callbacks, and release(ctx) (or NULL)
 * runs when the device is destroyed. From a return of 0, or of an error with *out set, the VM
 * owns the device and ctx. Returns 0 or -errno.
 */
int console_add_ports(struct vm *vm, const struct console_port *ports, unsigned int nr_ports,
		      void *ctx, void (*release)(void *ctx), struct console **out)
	__attribute__((warn_unused_result));
/*
 * Sends len bytes to a port without in_fd, in one guest buffer (any thread). -EAGAIN when the
 * guest has not opened the port or has no buffer large enough yet.
 */
int console_send(struct console *c, unsigned int port, const void *data, size_t len);
/*
 * From an on_data callback: writes out everything the guest has queued so far on the ports that
 * go to fds (an exit report must come after the output before it).
 */
void console_flush_outputs(struct console *c);

#endif
