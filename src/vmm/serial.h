/* A 16550A UART at COM1, output only: the guest kernel's console, kept for error reports. */
#ifndef EC1_SERIAL_H
#define EC1_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SERIAL_BASE  0x3f8
#define SERIAL_PORTS 8
#define SERIAL_TAIL  2048
#define SERIAL_LINE  256

struct serial {
	pthread_mutex_t lock; /* vCPUs share the UART; never held across the echo's write() */
	uint8_t ier, lcr, mcr, scr, dll, dlm;
	int echo_fd; /* -1: keep the output only in the tail buffer */
	char tail[SERIAL_TAIL];
	unsigned int tail_len;
	char line[SERIAL_LINE]; /* the line being written: echoed whole, and looked at */
	unsigned int line_len;
	bool line_cut; /* the line being written began in a longer one: no halt line */
};

void serial_init(struct serial *s, int echo_fd);
void serial_free(struct serial *s);
/*
 * A guest access to one of the UART's ports. The echo of a finished line is written out here,
 * after the UART's lock is released: a blocked stderr blocks only this vCPU, and the VM's stop
 * signal interrupts it. Returns true when the access finished the line the kernel writes as it
 * halts for good (serial_halt_line).
 */
bool serial_io(struct serial *s, uint16_t port, bool is_write, uint8_t *data);
/*
 * Whether a console line (without its newline) is the kernel's last word before it stops its
 * CPUs for good: "reboot: System halted" (halt, and poweroff where nothing can power off, as on
 * ec1's machine without ACPI) or "reboot: Power down", after printk's time stamp if any.
 */
bool serial_halt_line(const char *line, size_t len);
/* The last lines the guest wrote, NUL-terminated in buf. */
void serial_tail(const struct serial *s, char *buf, unsigned int size);

#endif
