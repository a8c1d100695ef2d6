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

bool serial_halt_line(const char *line, size_t len)
{
	static const char *const last[] = {"reboot: System halted", "reboot: Power down"};
	/* printk's time stamp, "[    1.234567] ", when the kernel has one. */
	if (len && line[0] == '[') {
		const char *end = memchr(line, ']', len);
		if (!end || (size_t)(end - line) + 2 > len || end[1] != ' ')
			return false;
		len -= (size_t)(end + 2 - line);
		line = end + 2;
	}
	for (size_t i = 0; i < sizeof(last) / sizeof(last[0]); i++)
		if (len == strlen(last[i]) && memcmp(line, last[i], len) == 0)
			return true;
	return false;
}

/*
 * Keeps c in the tail and in the line; returns the length of a line to echo, copied into echo,
 * and sets *halt when c ended the kernel's halt line.
 */
static size_t serial_keep(struct serial *s, char c, char *echo, bool *halt)
{
	if (s->tail_len == sizeof(s->tail)) {
		memmove(s->tail, s->tail + sizeof(s->tail) / 2, sizeof(s->tail) / 2);
		s->tail_len = sizeof(s->tail) / 2;
	}
	s->tail[s->tail_len++] = c;
	s->line[s->line_len++] = c;
	if (c != '\n' && s->line_len < sizeof(s->line))
		return 0;
	size_t n = s->line_len;
	bool cut = s->line_cut;
	s->line_cut = c != '\n'; /* a full buffer: what follows is the same line's rest */
	s->line_len = 0;
	if (c == '\n' && !cut)
		*halt = serial_halt_line(s->line, n - 1);
	if (s->echo_fd < 0)
		return 0;
	memcpy(echo, s->line, n);
	return n;
}

static size_t serial_access(struct serial *s, unsigned int reg, bool is_write, uint8_t *data,
			    char *echo, bool *halt);

bool serial_io(struct serial *s, uint16_t port, bool is_write, uint8_t *data)
{
	char echo[SERIAL_LINE];
	bool halt = false;
	pthread_mutex_lock(&s->lock);
	size_t n = serial_access(s, port - SERIAL_BASE, is_write, data, echo, &halt);
	int fd = s->echo_fd;
	pthread_mutex_unlock(&s->lock);
	if (n) {
		ssize_t w = write(fd, echo, n);
		(void)w; /* console echo is best effort */
	}
	return halt;
}

static size_t serial_access(struct serial *s, unsigned int reg, bool is_write, uint8_t *data,
			    char *echo, bool *halt)
{
	bool dlab = s->lcr & LCR_DLAB;
	size_t n = 0;

	if (is_write) {
		switch (reg) {
		case RBR_THR:
			if (dlab)
				s->dll = *data;
			else if (*data != '\r')
				n = serial_keep(s, (char)*data, echo, halt);
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
