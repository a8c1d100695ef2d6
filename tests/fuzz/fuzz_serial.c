/*
 * libFuzzer target: the UART the guest kernel's console writes to (src/vmm/serial.c, built in
 * here), and its test for the kernel's last line before a halt (serial_halt_line). The input is
 * a sequence of accesses, two bytes each: the first is the register (low 3 bits) and whether it
 * is a write (bit 3), the second the value written. Checked: a halt is reported only when the
 * bytes written to THR since the last newline (carriage returns dropped, no divisor latch) are
 * one of the two lines, after a time stamp at most, and the line was not cut by the buffer;
 * every read stays in the registers; ASan finds any access past the tail or line buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/vmm/serial.c"

static int halt_expected(const char *line, size_t len, int cut)
{
	static const char *const last[] = {"reboot: System halted", "reboot: Power down"};
	if (cut)
		return 0;
	for (size_t i = 0; i < 2; i++) {
		size_t l = strlen(last[i]);
		if (len < l || memcmp(line + len - l, last[i], l))
			continue;
		if (len == l)
			return 1;
		/* "[...] " before it, with no other ']' ... the first ']' ends the stamp */
		const char *end = memchr(line, ']', len);
		if (line[0] == '[' && end && end + 2 == line + len - l && end[1] == ' ')
			return 1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct serial s;
	serial_init(&s, -1);
	char mine[SERIAL_LINE];
	size_t len = 0;
	int cut = 0;
	uint8_t lcr = 0;
	for (size_t i = 0; i + 1 < size; i += 2) {
		unsigned int reg = data[i] & 7;
		int is_write = (data[i] >> 3) & 1;
		uint8_t v = data[i + 1];
		int halt = serial_io(&s, (uint16_t)(SERIAL_BASE + reg), is_write, &v);
		if (is_write && reg == 3)
			lcr = data[i + 1];
		int expect = 0;
		if (is_write && reg == 0 && !(lcr & 0x80) && data[i + 1] != '\r') {
			char c = (char)data[i + 1];
			mine[len++] = c;
			if (c == '\n' || len == sizeof(mine)) {
				if (c == '\n')
					expect = halt_expected(mine, len - 1, cut);
				cut = c != '\n';
				len = 0;
			}
		}
		if (halt != expect)
			abort();
	}
	char tail[SERIAL_TAIL + 1];
	serial_tail(&s, tail, sizeof(tail));
	serial_free(&s);
	return 0;
}
