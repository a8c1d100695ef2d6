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
	char line[SERIAL_LINE]; /* the line being written, for echoing whole lines */
	unsigned int line_len;
};

void serial_init(struct serial *s, int echo_fd);
void serial_free(struct serial *s);
/*
 * A guest access to one of the UART's ports. The echo of a finished line is written out here,
 * after the UART's lock is released: a blocked stderr blocks only this vCPU, and the VM's stop
 * signal interrupts it.
 */
void serial_io(struct serial *s, uint16_t port, bool is_write, uint8_t *data);
/* The last lines the guest wrote, NUL-terminated in buf. */
void serial_tail(const struct serial *s, char *buf, unsigned int size);

#endif
