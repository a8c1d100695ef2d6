/* virtio-console with multiple ports: the guest process's stdin, stdout, stderr and init's control. */
#ifndef EC1_VIRTIO_CONSOLE_H
#define EC1_VIRTIO_CONSOLE_H

struct vm;
struct console;

/* Port ids; the guest sees /dev/vport0p<id>. */
enum console_port { CONSOLE_STDIN, CONSOLE_STDOUT, CONSOLE_STDERR, CONSOLE_CONTROL, CONSOLE_PORTS };

/* Adds the device; fds may be -1. Starts its stdin thread. Returns 0 or -errno. */
int console_create(struct vm *vm, int stdin_fd, int stdout_fd, int stderr_fd, struct console **out)
	__attribute__((warn_unused_result));
/* Stops the stdin thread and frees the device state. */
void console_destroy(struct console *c);

#endif
