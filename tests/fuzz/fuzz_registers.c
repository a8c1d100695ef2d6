/*
 * libFuzzer target: the x86 registers the VMM emulates for the guest beside virtio-mmio — the
 * I/O APIC (src/vmm/x86/ioapic.c: any access in its page, of 1 to 8 bytes) and the 16550 UART
 * (src/vmm/serial.c, built in here: any of its 8 ports) — and the device lines raised meanwhile.
 * Input: records of 8 bytes: kind (0-2 an I/O APIC access, 3 a line raised, 4-7 a UART access),
 * offset (2; the pin for a line), width (1 + its low 3 bits; a write when its top bit is set),
 * value (4; for a line, whether the guest then unmasks its pin: bit 0).
 * Checked: every interrupt delivered is an MSI to the local APICs' address range; a line raised
 * while its pin is masked is not delivered, and is delivered once when the guest unmasks it, one
 * raised while unmasked at once; IOREGSEL reads back what was written to it; the UART's line and
 * tail stay inside their buffers (ASan finds any access outside them).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/vmm/serial.c"
#include "../../src/vmm/x86/ioapic.h"

static struct ioapic io;
static struct serial uart;
static unsigned int delivered;
static int echo_pipe[2] = {-1, -1};

static void deliver(void *opaque, uint32_t addr, uint32_t data)
{
	(void)opaque;
	(void)data;
	if ((addr & 0xfff00000u) != 0xfee00000u)
		abort();
	delivered++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* The echo goes to a pipe the target empties: each read is one line at most. */
	if (pipe2(echo_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	return 0;
}

/* Empties the echo's pipe (a full one would only drop the echo: both ends are non-blocking). */
static void drain_echo(void)
{
	char buf[4096];
	while (read(echo_pipe[0], buf, sizeof(buf)) > 0) {
	}
}

static uint64_t rte(unsigned int pin)
{
	uint32_t lo = 0x10 + 2 * pin, v;
	ioapic_mmio(&io, 0, (uint8_t *)&lo, 4, true);
	ioapic_mmio(&io, 0x10, (uint8_t *)&v, 4, false);
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ioapic_init(&io, 0, deliver, NULL);
	serial_init(&uart, echo_pipe[1]);
	delivered = 0;
	for (size_t at = 0; at + 8 <= size; at += 8) {
		uint8_t kind = data[at] % 8;
		uint16_t off = (uint16_t)(data[at + 1] | data[at + 2] << 8);
		uint32_t width = 1 + (data[at + 3] & 7), v;
		bool write = data[at + 3] & 0x80;
		memcpy(&v, data + at + 4, 4);
		uint8_t buf[8] = {0};
		memcpy(buf, &v, 4);
		if (kind < 3) {
			ioapic_mmio(&io, off % 0x1000, buf, width, write);
			if (write && width == 4 && off % 0x1000 == 0) {
				uint32_t sel;
				ioapic_mmio(&io, 0, (uint8_t *)&sel, 4, false);
				if (sel != (v & 0xff))
					abort();
			}
		} else if (kind == 3) {
			unsigned int pin = off % 32; /* past the last pin too */
			bool masked = pin >= X86_IOAPIC_PINS || (rte(pin) & (1u << 16));
			unsigned int before = delivered;
			ioapic_raise(&io, pin);
			if (masked && delivered != before)
				abort(); /* delivered through a mask */
			if (!masked && delivered == before && ((rte(pin) >> 8) & 7) != 7)
				abort(); /* lost (only ExtINT has no MSI form) */
			if (masked && pin < X86_IOAPIC_PINS && (v & 1)) {
				/* The guest unmasks it: the waiting edge comes now, once. */
				uint32_t lo = (uint32_t)rte(pin) & ~(1u << 16) & ~(7u << 8),
					 sel = 0x10 + 2 * pin;
				ioapic_mmio(&io, 0, (uint8_t *)&sel, 4, true);
				ioapic_mmio(&io, 0x10, (uint8_t *)&lo, 4, true);
				if (delivered != before + 1)
					abort();
			}
		} else {
			serial_io(&uart, (uint16_t)(SERIAL_BASE + off % SERIAL_PORTS), write, buf);
			if (uart.tail_len > SERIAL_TAIL || uart.line_len >= SERIAL_LINE)
				abort();
		}
		drain_echo();
	}
	char tail[64];
	serial_tail(&uart, tail, sizeof(tail));
	serial_free(&uart);
	ioapic_destroy(&io);
	return 0;
}
