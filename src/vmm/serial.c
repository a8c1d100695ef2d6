/* 16550A UART, transmit side only (no interrupts: the kernel console polls LSR). */
#include "serial.h"

#include <string.h>
#include <unistd.h>

enum { RBR_THR = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };
#define LCR_DLAB	0x80
#define LSR_THRE_TEMT	0x60
#define IIR_NO_INT	0x01
#define MSR_DCD_DSR_CTS 0xb0

void serial_init(struct serial *s, int echo_fd)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->echo_fd = echo_fd;
}

void serial_free(struct serial *s)
{
	pthread_mutex_destroy(&s->lock);
}

/* Keeps c in the tail; returns the length of a line to echo, copied into echo. */
static size_t serial_keep(struct serial *s, char c, char *echo)
{
	if (s->tail_len == sizeof(s->tail)) {
		memmove(s->tail, s->tail + sizeof(s->tail) / 2, sizeof(s->tail) / 2);
		s->tail_len = sizeof(s->tail) / 2;
	}
	s->tail[s->tail_len++] = c;
	if (s->echo_fd < 0)
		return 0;
	s->line[s->line_len++] = c;
	if (c != '\n' && s->line_len < sizeof(s->line))
		return 0;
	size_t n = s->line_len;
	memcpy(echo, s->line, n);
	s->line_len = 0;
	return n;
}

static size_t serial_access(struct serial *s, unsigned int reg, bool is_write, uint8_t *data,
			    char *echo);

void serial_io(struct serial *s, uint16_t port, bool is_write, uint8_t *data)
{
	char echo[SERIAL_LINE];
	pthread_mutex_lock(&s->lock);
	size_t n = serial_access(s, port - SERIAL_BASE, is_write, data, echo);
	int fd = s->echo_fd;
	pthread_mutex_unlock(&s->lock);
	if (n) {
		ssize_t w = write(fd, echo, n);
		(void)w; /* console echo is best effort */
	}
}

static size_t serial_access(struct serial *s, unsigned int reg, bool is_write, uint8_t *data,
			    char *echo)
{
	bool dlab = s->lcr & LCR_DLAB;
	size_t n = 0;

	if (is_write) {
		switch (reg) {
		case RBR_THR:
			if (dlab)
				s->dll = *data;
			else if (*data != '\r')
				n = serial_keep(s, (char)*data, echo);
			break;
		case IER:
			if (dlab)
				s->dlm = *data;
			else
				s->ier = *data & 0x0f;
			break;
		case LCR:
			s->lcr = *data;
			break;
		case MCR:
			s->mcr = *data;
			break;
		case SCR:
			s->scr = *data;
			break;
		default:
			break;
		}
		return n;
	}
	switch (reg) {
	case RBR_THR:
		*data = dlab ? s->dll : 0;
		break;
	case IER:
		*data = dlab ? s->dlm : s->ier;
		break;
	case IIR_FCR:
		*data = IIR_NO_INT;
		break;
	case LCR:
		*data = s->lcr;
		break;
	case MCR:
		*data = s->mcr;
		break;
	case LSR:
		*data = LSR_THRE_TEMT;
		break;
	case MSR:
		*data = MSR_DCD_DSR_CTS;
		break;
	case SCR:
		*data = s->scr;
		break;
	default:
		*data = 0xff;
	}
	return 0;
}

void serial_tail(const struct serial *s, char *buf, unsigned int size)
{
	if (size == 0)
		return;
	unsigned int n = s->tail_len < size - 1 ? s->tail_len : size - 1;
	memcpy(buf, s->tail + s->tail_len - n, n);
	buf[n] = 0;
}
