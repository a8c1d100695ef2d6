/*
 * ec1's use of the console (control.h): the process's stdin, stdout and stderr as three ports,
 * and init's control port, whose protocol (guest/abi.h) is spoken here: timing marks, the exit
 * report, and the VMM's term/kill requests.
 */
#include "control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../../guest/abi.h"
#include "../vm.h"
#include "console.h"
#include "ec1/ec1.h"

struct control {
	struct vm *vm;
	struct console *con;
	char line[128]; /* a partial line from init */
	unsigned int line_len;
};

/* A line from init on the control port (transmit thread). */
static void control_line(struct control *ctl, const char *line)
{
	struct vm *vm = ctl->vm;
	unsigned long long v;

	if (sscanf(line, EC1_CTL_START " %llu", &v) == 1) {
		vm_mark(vm, &vm->timing.init_start);
		vm->timing.guest_boot_ns = v;
	} else if (strcmp(line, EC1_CTL_READY) == 0) {
		uint64_t one = 1;
		if (vm->cfg->ready_fd >= 0 && write(vm->cfg->ready_fd, &one, sizeof(one)) < 0)
			vm_log(EC1_LOG_WARN, "ec1: ready: %s\n", strerror(errno));
	} else if (strcmp(line, EC1_CTL_EXEC) == 0) {
		vm_mark(vm, &vm->timing.exec);
	} else if (sscanf(line, EC1_CTL_EXIT " %llu", &v) == 1 && v <= 255) {
		vm_mark(vm, &vm->timing.exit);
		/* All the process wrote was queued before init saw it exit. */
		console_flush_outputs(ctl->con);
		vm_report_status(vm, (int)v);
	} else {
		vm_log(EC1_LOG_DEBUG, "ec1: unknown control line from init: %s\n", line);
	}
}

/* What init writes on the control port: lines, cut at 127 bytes. */
static void control_data(void *ctx, const struct iovec *iov, unsigned int n)
{
	struct control *ctl = ctx;
	for (unsigned int i = 0; i < n; i++) {
		const char *p = iov[i].iov_base;
		for (size_t k = 0; k < iov[i].iov_len; k++) {
			if (p[k] == '\n' || ctl->line_len == sizeof(ctl->line) - 1) {
				ctl->line[ctl->line_len] = 0;
				control_line(ctl, ctl->line);
				ctl->line_len = 0;
			} else {
				ctl->line[ctl->line_len++] = p[k];
			}
		}
	}
}

static int control_send(void *ctx, const char *line)
{
	struct control *ctl = ctx;
	return console_send(ctl->con, EC1_PORT_CONTROL, line, strlen(line));
}

int control_add(struct vm *vm, char *msg, size_t msg_size)
{
	const struct vm_config *cfg = vm->cfg;
	static const char *const names[EC1_NR_PORTS] = EC1_ABI_PORT_NAMES;
	struct console_port ports[EC1_NR_PORTS] = {
		[EC1_PORT_STDIN] = {names[EC1_PORT_STDIN], -1, cfg->stdin_fd, NULL},
		[EC1_PORT_STDOUT] = {names[EC1_PORT_STDOUT], cfg->stdout_fd, -1, NULL},
		[EC1_PORT_STDERR] = {names[EC1_PORT_STDERR], cfg->stderr_fd, -1, NULL},
		[EC1_PORT_CONTROL] = {names[EC1_PORT_CONTROL], -1, -1, control_data},
	};
	_Static_assert(EC1_NR_PORTS <= CONSOLE_MAX_PORTS, "ec1's ports fit the console");
	struct control *ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		VM_FAIL(EC1_ENOMEM, "virtio-console: out of memory");
	ctl->vm = vm;
	int err = console_add_ports(vm, ports, EC1_NR_PORTS, ctl, free, &ctl->con);
	if (err && !ctl->con)
		free(ctl);
	if (err)
		VM_FAIL(EC1_ENOMEM, "virtio-console: %s", strerror(-err));
	vm->control = (struct vm_control){.send = control_send, .ctx = ctl};
	return 0;
}
