/* virtio-console with multiple ports: the guest process's stdin, stdout, stderr and init's control.
 */
#ifndef EC1_VIRTIO_CONSOLE_H
#define EC1_VIRTIO_CONSOLE_H

struct vm;
struct console;

/*
 * Port ids; the guest sees /dev/vport0p<id>. Port 0 stays unused: QEMU reserves it for a console
 * port, and keeping the same numbering lets the same init run under QEMU in bench/boot.
 */
enum console_port {
	CONSOLE_STDIN = 1,
	CONSOLE_STDOUT = 2,
	CONSOLE_STDERR = 3,
	CONSOLE_CONTROL = 4,
	CONSOLE_PORTS = 5
};

/* Adds the device; fds may be -1. Starts its stdin and transmit threads. Returns 0 or -errno. */
int console_create(struct vm *vm, int stdin_fd, int stdout_fd, int stderr_fd, struct console **out)
	__attribute__((warn_unused_result));
/* Sends one line to init on the control port. -EAGAIN when the guest cannot take it yet. */
int console_send_control(struct console *c, const char *line);
/*
 * Stops the device's threads, once the VM is stopping: whatever the guest still queued for stdout
 * and stderr is written out unless the output blocks. Before the vCPUs are joined: a vCPU may be
 * waiting for the queues the transmit thread holds.
 */
void console_stop(struct console *c);
/* Stops the threads if need be and frees the device state. */
void console_destroy(struct console *c);

#endif
