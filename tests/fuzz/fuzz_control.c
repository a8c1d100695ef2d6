/*
 * libFuzzer target: the VMM's parser of what the guest's init writes on the control port
 * (src/vmm/virtio/control.c, built in here with the VM services it calls stubbed). The input is
 * cut into guest buffers as the console would hand them over: its first byte gives the buffer
 * size (1..256). Checked: a status is reported only as 0..255, only for an "exit N" line, at most
 * once per line; a timing mark only for "start N" or "exec"; a status report comes after the
 * outputs were flushed. ASan finds any read or write past the line buffer.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/vmm/virtio/control.c"

static unsigned int nr_lines_cut; /* lines handed over so far: a bound on reports */
static unsigned int nr_reports, nr_marks, nr_flushes;

void vm_mark(struct vm *vm, uint64_t *slot)
{
	if (slot != &vm->timing.init_start && slot != &vm->timing.exec && slot != &vm->timing.exit)
		abort();
	nr_marks++;
}

void vm_report_status(struct vm *vm, int status)
{
	(void)vm;
	if (status < 0 || status > 255 || nr_flushes <= nr_reports)
		abort();
	nr_reports++;
}

void vm_log(int level, const char *fmt, ...)
{
	(void)level;
	(void)fmt;
}

void console_flush_outputs(struct console *c)
{
	(void)c;
	nr_flushes++;
}

int console_send(struct console *c, unsigned int port, const void *data, size_t len)
{
	(void)c;
	(void)port;
	(void)data;
	(void)len;
	return 0;
}

int console_add_ports(struct vm *vm, const struct console_port *ports, unsigned int nr_ports,
		      void *ctx, void (*release)(void *ctx), struct console **out)
{
	(void)vm;
	(void)ports;
	(void)nr_ports;
	(void)ctx;
	(void)release;
	*out = NULL;
	return -ENOSYS;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t piece = (size_t)data[0] + 1;
	data++;
	size--;
	static struct vm_config cfg = {.ready_fd = -1, .shutdown_fd = -1};
	static struct vm vm = {.cfg = &cfg};
	struct control ctl = {.vm = &vm};
	nr_reports = nr_marks = nr_flushes = 0;
	/* The guest's buffers, each a copy of its own so that ASan sees reads past one. */
	for (size_t off = 0; off < size; off += piece) {
		size_t n = size - off < piece ? size - off : piece;
		char *buf = malloc(n);
		if (!buf)
			return 0;
		memcpy(buf, data + off, n);
		struct iovec iov[2] = {{buf, n / 2}, {buf + n / 2, n - n / 2}};
		control_data(&ctl, iov, 2);
		free(buf);
		if (ctl.line_len >= sizeof(ctl.line))
			abort();
	}
	/* Each line ends at a newline or at 127 bytes; each yields one action at most. */
	unsigned int newlines = 0;
	for (size_t i = 0; i < size; i++)
		newlines += data[i] == '\n';
	nr_lines_cut = newlines + (unsigned int)(size / (sizeof(ctl.line) - 1));
	if (nr_reports + nr_marks > 2 * nr_lines_cut || nr_reports > nr_flushes)
		abort();
	return 0;
}
