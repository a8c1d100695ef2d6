/*
 * libFuzzer target: the console device (src/vmm/virtio/console.c, built in here with its threads
 * left unstarted) as a guest driver sees it. The target is the driver: it starts the device
 * (features, the control queues and three ports' queues in its own memory) and then does what
 * the input says, in records of 8 bytes (op, a, b, c, a 32-bit d):
 *   0 a control message on the control transmit queue (§5.3.6.2): event a, value b, id d, cut to
 *     c % 16 bytes, then a kick;
 *   1 a receive buffer on the control receive queue: a + 256 b bytes (at most 1 KiB), device-
 *     readable when c & 1 (a lie), a kick when c & 2;
 *   2 take what the device put in those buffers, and check it;
 *   3 a register access: offset a + 256 b (% 0x200), width c, read when d is even, else write d;
 *   4 a write of a, b, c into guest memory at d;
 *   5 the host sending a + 256 b bytes (% 300) to port c;
 *   6 the transmit thread's pass over the ports' queues;
 *   7 a reset and a fresh start of the driver;
 *   8 data on port c's transmit queue (a + 256 b bytes), then a kick;
 *   9 the end of the input port's host input.
 * Port 4's fd is a pipe nobody reads (EPIPE): the device closes its host end (PORT_OPEN 0) and
 * never opens it again.
 * Checked while the driver's view is its own (no raw register write or memory write since its
 * last start): each message the device writes is DEVICE_ADD (only after a DEVICE_READY), or
 * PORT_NAME (the port's name) or PORT_OPEN for a port 1..4 the driver said ready, never longer
 * than the buffer nor in a device-readable one; PORT_OPEN 0 only for port 3 after the end of its
 * input or for port 4, and no PORT_OPEN 1 for a port after its PORT_OPEN 0. ASan finds any access
 * outside the buffers; libFuzzer's timeout a loop that never ends.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/vmm/virtio/console.c"
#include "../../src/vmm/virtio/mmio_regs.h"
#include "../unit/mmio_host.h"

/* The VM services console.c calls, for a device whose threads never run. */
int vm_add_mmio(struct vm *vm, const struct virtio_dev_ops *ops, void *priv,
		struct virtio_mmio_dev **out)
{
	(void)vm;
	*out = virtio_mmio_new(&fake_host, ops, priv, 0xd0000000, 5);
	return *out ? 0 : -ENOMEM;
}
void vm_log(int level, const char *fmt, ...)
{
	(void)level, (void)fmt;
}
int worker_init(struct worker *w)
{
	*w = (struct worker){.kick_fd = -1};
	return 0;
}
int worker_start(struct worker *w, struct vm *vm, int sandbox, const char *name,
		 void (*setup)(void *arg), void (*main)(struct worker *w, void *arg), void *arg)
{
	(void)w, (void)vm, (void)sandbox, (void)name, (void)setup, (void)main, (void)arg;
	return 0; /* not started: the target runs the transmit pass itself (op 6) */
}
void worker_kick(struct worker *w)
{
	(void)w;
}
bool worker_wait(struct worker *w)
{
	(void)w;
	return false;
}
void worker_clear(struct worker *w)
{
	(void)w;
}
void worker_stop(struct worker *w)
{
	(void)w;
}
void worker_join(struct worker *w, long grace_ms)
{
	(void)w, (void)grace_ms;
}
void worker_free(struct worker *w)
{
	(void)w;
}

#define MEM_BYTES    (1u << 20)
#define NR_PORTS     5 /* ports 1..4: output to a file, a callback, the input port, a dead pipe */
#define NR_QUEUES    (2 * NR_PORTS + 2)
#define RING	     16
#define BUF_BYTES    1024u
#define RING_AT(q)   (0x10000u + 0x4000u * (q)) /* descriptors; +0x1000 available, +0x2000 used */
#define BUF_AT(q, i) (0x80000u + ((q)*RING + (i)) * BUF_BYTES)

static struct vm fake_vm;
static struct console *con;
static int null_fd = -1, dead_pipe = -1;
static unsigned int callback_bytes;
static const char *const names[NR_PORTS] = {NULL, "out", "callback", "in", "gone"};
/* The device's messages taken so far this input: each port's PORT_OPEN 0; op 9 done. */
static bool closed_seen[NR_PORTS], input_ended;

/* The driver's view. */
static struct {
	bool own;	   /* no raw register or memory write since the start */
	bool device_ready; /* DEVICE_READY 1 sent */
	bool said_ready[NR_PORTS];
	uint16_t num[NR_QUEUES]; /* each queue's size, 0: not set up */
	uint16_t avail[NR_QUEUES], used_seen[NR_QUEUES];
	uint32_t posted_len[RING]; /* the control receive buffers: writable bytes */
} drv;

static void on_data(void *ctx, const struct iovec *iov, unsigned int n)
{
	(void)ctx;
	callback_bytes += (unsigned int)iov_length(iov, n);
}

static uint8_t *gpa(uint64_t a)
{
	return fake_mem.regions[0].host + a;
}

static void wr(uint32_t off, uint32_t v)
{
	mmio_write(con->dev, off, v);
}

/* A driver's start (§3.1.1, §4.2.3.2): every queue the device has room for, at most RING. */
static void start_driver(void)
{
	memset(&drv, 0, sizeof(drv));
	memset(gpa(0), 0, MEM_BYTES);
	wr(REG_STATUS, 0);
	wr(REG_STATUS, 1 | 2);
	wr(REG_DEVICE_FEATURES_SEL, 0);
	uint32_t lo = mmio_read(con->dev, REG_DEVICE_FEATURES);
	wr(REG_DRIVER_FEATURES_SEL, 0);
	wr(REG_DRIVER_FEATURES, lo);
	wr(REG_DRIVER_FEATURES_SEL, 1);
	wr(REG_DRIVER_FEATURES, 1); /* VIRTIO_F_VERSION_1 */
	wr(REG_STATUS, 1 | 2 | 8);
	for (unsigned int q = 0; q < NR_QUEUES; q++) {
		wr(REG_QUEUE_SEL, q);
		uint32_t max = mmio_read(con->dev, REG_QUEUE_NUM_MAX);
		uint16_t num = max < RING ? (uint16_t)max : RING;
		if (num == 0)
			continue;
		wr(REG_QUEUE_NUM, num);
		wr(REG_QUEUE_DESC_LOW, RING_AT(q));
		wr(REG_QUEUE_DRIVER_LOW, RING_AT(q) + 0x1000);
		wr(REG_QUEUE_DEVICE_LOW, RING_AT(q) + 0x2000);
		wr(REG_QUEUE_READY, 1);
		drv.num[q] = num;
	}
	wr(REG_STATUS, 1 | 2 | 4 | 8);
	drv.own = !fake_failed;
}

/* Puts one buffer on queue q and, when kick, notifies. Returns false when the ring is full. */
static bool post(unsigned int q, uint32_t len, bool writable, bool kick)
{
	uint16_t num = drv.num[q];
	if (num && q != CTL_RX) /* the device's use of the others needs no look */
		drv.used_seen[q] =
			__atomic_load_n((uint16_t *)gpa(RING_AT(q) + 0x2000 + 2), __ATOMIC_ACQUIRE);
	if (!num || (uint16_t)(drv.avail[q] - drv.used_seen[q]) >= num)
		return false;
	uint16_t i = drv.avail[q] % num;
	struct {
		uint64_t addr;
		uint32_t len;
		uint16_t flags, next;
	} desc = {BUF_AT(q, i), len, writable ? 2 : 0, 0};
	memcpy(gpa(RING_AT(q) + 16u * i), &desc, sizeof(desc));
	memcpy(gpa(RING_AT(q) + 0x1000 + 4 + 2u * i), &i, 2);
	drv.avail[q]++;
	__atomic_store_n((uint16_t *)gpa(RING_AT(q) + 0x1000 + 2), drv.avail[q], __ATOMIC_RELEASE);
	if (q == CTL_RX)
		drv.posted_len[i] = writable ? len : 0;
	if (kick)
		wr(REG_QUEUE_NOTIFY, q);
	return true;
}

/* Takes the device's messages from the control receive queue, checking each. */
static void take_messages(void)
{
	uint16_t num = drv.num[CTL_RX];
	if (!num)
		return;
	uint8_t *used = gpa(RING_AT(CTL_RX) + 0x2000);
	uint16_t idx = __atomic_load_n((uint16_t *)(used + 2), __ATOMIC_ACQUIRE);
	for (; drv.used_seen[CTL_RX] != idx; drv.used_seen[CTL_RX]++) {
		uint32_t e[2];
		memcpy(e, used + 4 + 8u * (drv.used_seen[CTL_RX] % num), 8);
		if (!drv.own)
			continue;
		if (e[0] >= num || e[1] > drv.posted_len[e[0]])
			abort(); /* a head the driver never gave, or more than the buffer */
		if (e[1] < sizeof(struct ctl_msg))
			continue; /* the driver's buffer was short: the message is cut */
		struct ctl_msg m;
		memcpy(&m, gpa(BUF_AT(CTL_RX, e[0])), sizeof(m));
		if (m.id < 1 || m.id >= NR_PORTS)
			abort();
		if (m.event == CTL_DEVICE_ADD) {
			if (!drv.device_ready)
				abort();
		} else if (m.event == CTL_PORT_NAME) {
			size_t n = strlen(names[m.id]);
			if (!drv.said_ready[m.id] || e[1] > sizeof(m) + n ||
			    memcmp(gpa(BUF_AT(CTL_RX, e[0]) + sizeof(m)), names[m.id],
				   e[1] - sizeof(m)) != 0)
				abort();
		} else if (m.event == CTL_PORT_OPEN) {
			if (!drv.said_ready[m.id] || closed_seen[m.id])
				abort(); /* unasked, or opened again after its close */
			if (m.value == 0 && m.id != 4 && !(m.id == 3 && input_ended))
				abort(); /* a port closed with nothing failed */
			closed_seen[m.id] = m.value == 0;
		} else {
			abort();
		}
	}
}

static void control_message(uint8_t event, uint8_t value, uint8_t cut, uint32_t id)
{
	uint16_t num = drv.num[CTL_TX];
	if (!num)
		return;
	uint16_t i = drv.avail[CTL_TX] % num;
	struct ctl_msg m = {id, event, value};
	memcpy(gpa(BUF_AT(CTL_TX, i)), &m, sizeof(m));
	uint32_t len = cut % 16;
	if (!post(CTL_TX, len, false, true))
		return;
	if (len < sizeof(m))
		return;
	if (event == CTL_DEVICE_READY && value == 1)
		drv.device_ready = true;
	if (event == CTL_PORT_READY && value == 1 && id < NR_PORTS)
		drv.said_ready[id] = true;
}

static void new_console(void)
{
	struct console_port ports[NR_PORTS] = {
		{0},
		{names[1], null_fd, -1, NULL},
		{names[2], -1, -1, on_data},
		{names[3], -1, null_fd, NULL},
		{names[4], dead_pipe, -1, NULL},
	};
	memset(&fake_vm, 0, sizeof(fake_vm));
	if (console_add_ports(&fake_vm, ports, NR_PORTS, NULL, NULL, &con))
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	int p[2];
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK))
		return -1;
	close(p[0]);
	dead_pipe = p[1];
	signal(SIGPIPE, SIG_IGN); /* writes to it fail with EPIPE, as in the VMM's threads */
	return null_fd < 0 || guest_mem_init(&fake_mem, MEM_BYTES) ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t widths[4] = {1, 2, 4, 8};
	static const uint8_t filler[300];
	fake_reset();
	memset(closed_seen, 0, sizeof(closed_seen));
	input_ended = false;
	new_console();
	start_driver();
	for (size_t at = 0; at + 8 <= size; at += 8) {
		uint8_t op = data[at] % 10, a = data[at + 1], b = data[at + 2], c = data[at + 3];
		uint32_t d;
		memcpy(&d, data + at + 4, 4);
		uint32_t ab = (uint32_t)a | (uint32_t)b << 8;
		switch (op) {
		case 0:
			control_message(a, b, c, d);
			break;
		case 1:
			post(CTL_RX, ab % (BUF_BYTES + 1), !(c & 1), c & 2);
			break;
		case 2:
			take_messages();
			break;
		case 3: {
			uint8_t buf[8] = {0};
			memcpy(buf, &d, 4);
			bool write = d & 1;
			virtio_mmio_access(con->dev, ab % 0x200, buf, widths[c & 3], write);
			drv.own &= !write;
			break;
		}
		case 4:
			memcpy(gpa(d % (MEM_BYTES - 3)), data + at + 1, 3);
			drv.own = false;
			break;
		case 5:
			console_send(con, c % (NR_PORTS + 1), filler, ab % sizeof(filler));
			break;
		case 6:
			virtio_mmio_queues_begin(con->dev);
			for (unsigned int p = 1; p < NR_PORTS; p++)
				port_drain(con, p);
			virtio_mmio_queues_end(con->dev);
			break;
		case 7:
			fake_reset();
			start_driver();
			break;
		case 8:
			post(tx_queue(1 + c % (NR_PORTS - 1)), ab % (BUF_BYTES + 1), false, true);
			break;
		default:
			input_ended = true;
			stdin_eof(con);
			break;
		}
	}
	struct virtio_mmio_dev *dev = con->dev;
	dev->ops->destroy(dev);
	virtio_mmio_free(dev);
	return 0;
}
