/*
 * hostile: a malicious virtio driver, run as root inside a guest by the VM suite
 * (tests/vm/suite.sh, the hostile_* tests). It takes over a virtio-fs device that the guest
 * kernel left unused (a share nobody mounted) through /dev/mem: the device's MMIO window (from
 * the virtio_mmio.device= entries of /proc/cmdline) and a scratch area of guest RAM the kernel
 * keeps out of its own use (memmap=SIZE$ADDR on the command line) for its rings and buffers.
 *
 * usage: hostile TAG SCENARIO [SEED] [MARKDIR]
 *        hostile vsock PORT [MARKDIR]   (the vsock device instead; see vsock_scenario and,
 *                             with MARKDIR, vsock_reset_with_connections)
 *        hostile blk SECTORS ID [ro] | blk-nostatus SECTORS | net [lies]
 *                             (a disk, the network device: hostile_blknet.c)
 *   survive   requests whose headers lie, resets in the middle of I/O, a thousand open handles
 *             per session then a reset, an interrupt storm; then a quiet spell (MARKDIR/quiet
 *             tells the host to measure the VMM's CPU use, descriptors and memory; MARKDIR/start
 *             marks the baseline); then "hostile: still serving" once a clean session answers.
 *   random    100,000 writes of random widths, offsets and values to the registers, with the
 *             scratch area full of random bytes; then the clean session.
 *   loop, indirect-loop, outside, huge, beyond
 *             one malformed ring each (descriptor cycle, cycle in an indirect table, rings outside
 *             RAM, a buffer of 4 GiB, a buffer in the MMIO hole): the VMM must stop the run.
 * Exit: 0 when the device still served a clean session at the end, 1 when it did not, 2 on a
 * set-up error (no /dev/mem, no such share, no scratch area).
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "hostile.h"

#define QUEUE_SIZE    256
#define REQUEST_QUEUE 1
#define SLOTS	      (QUEUE_SIZE / 2)

/* Scratch layout: rings, indirect tables, then one request and one reply buffer per slot. */
#define OFF_DESC     0x00000
#define OFF_AVAIL    0x01000
#define OFF_USED     0x02000
#define OFF_INDIRECT 0x03000
#define OFF_REQ	     0x10000 /* SLOTS x 1 KiB */
#define OFF_REPLY    0x40000 /* SLOTS x 4 KiB */
#define REQ_SIZE     0x400
#define REPLY_SIZE   0x1000
#define SCRATCH_MIN  0x100000

/* FUSE (linux/fuse.h): opcodes and the headers and arguments this driver sends. */
enum { FUSE_LOOKUP = 1, FUSE_GETATTR = 3, FUSE_OPEN = 14, FUSE_INIT = 26 };
struct in_header {
	uint32_t len, opcode;
	uint64_t unique, nodeid;
	uint32_t uid, gid, pid;
	uint16_t total_extlen, padding;
};
struct out_header {
	uint32_t len;
	int32_t error;
	uint64_t unique;
};
volatile uint8_t *mmio;	   /* the victim's register window */
volatile uint8_t *scratch; /* guest RAM at scratch_gpa */
uint64_t scratch_gpa, scratch_size;
static uint16_t avail_idx, used_seen;
static uint64_t unique;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

uint32_t rd(uint32_t off)
{
	return *(volatile uint32_t *)(mmio + off);
}

void wr(uint32_t off, uint32_t v)
{
	*(volatile uint32_t *)(mmio + off) = v;
}

static volatile struct desc *desc_table(void)
{
	return (volatile struct desc *)(scratch + OFF_DESC);
}

static volatile uint16_t *avail(void)
{
	return (volatile uint16_t *)(scratch + OFF_AVAIL);
}

static volatile uint16_t *used(void)
{
	return (volatile uint16_t *)(scratch + OFF_USED);
}

static void *map(int fd, uint64_t gpa, size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)gpa);
	return p == MAP_FAILED ? NULL : p;
}

/* match for a virtio-fs window: its tag (the config's first 36 bytes) is arg. */
static int fs_tag_is(volatile uint8_t *w, const void *arg)
{
	char t[37] = {0};
	for (int i = 0; i < 36; i++)
		t[i] = (char)w[REG_CONFIG + i];
	return !strcmp(t, arg);
}

int find_device(uint32_t device_id, int (*match)(volatile uint8_t *w, const void *arg),
		const void *arg, const char *what)
{
	char line[4096];
	FILE *f = fopen("/proc/cmdline", "r");
	if (!f || !fgets(line, sizeof(line), f)) {
		perror("hostile: /proc/cmdline");
		return -1;
	}
	fclose(f);
	int fd = open("/dev/mem", O_RDWR | O_SYNC);
	if (fd < 0) {
		perror("hostile: /dev/mem");
		return -1;
	}
	for (char *tok = strtok(line, " \n"); tok; tok = strtok(NULL, " \n")) {
		long long a, b;
		unsigned int irq;
		if (sscanf(tok, "memmap=%lli$%lli", &a, &b) == 2) {
			scratch_size = (uint64_t)a;
			scratch_gpa = (uint64_t)b;
		} else if (sscanf(tok, "virtio_mmio.device=4K@%lli:%u", &a, &irq) == 2 && !mmio) {
			volatile uint8_t *w = map(fd, (uint64_t)a, 4096);
			if (!w)
				continue;
			if (*(volatile uint32_t *)(w + REG_MAGIC) == 0x74726976 &&
			    *(volatile uint32_t *)(w + REG_DEVICE_ID) == device_id &&
			    (!match || match(w, arg)))
				mmio = w;
			else
				munmap((void *)w, 4096);
		}
	}
	if (!mmio) {
		fprintf(stderr, "hostile: no %s\n", what);
		return -1;
	}
	if (scratch_size < SCRATCH_MIN || !(scratch = map(fd, scratch_gpa, (size_t)scratch_size))) {
		fprintf(stderr, "hostile: no scratch area (memmap=SIZE$ADDR, at least 1 MiB)\n");
		return -1;
	}
	return 0;
}

/* Queue q: num entries, its descriptor table, available and used rings at off, +4 KiB, +8 KiB. */
void queue_setup(uint32_t q, int num, uint32_t off)
{
	memset((void *)(scratch + off), 0, 0x3000);
	wr(REG_QUEUE_SEL, q);
	wr(REG_QUEUE_NUM, (uint32_t)num);
	uint64_t d = scratch_gpa + off, a = d + 0x1000, u = d + 0x2000;
	wr(REG_QUEUE_DESC_LOW, (uint32_t)d);
	wr(REG_QUEUE_DESC_HIGH, (uint32_t)(d >> 32));
	wr(REG_QUEUE_DRIVER_LOW, (uint32_t)a);
	wr(REG_QUEUE_DRIVER_HIGH, (uint32_t)(a >> 32));
	wr(REG_QUEUE_DEVICE_LOW, (uint32_t)u);
	wr(REG_QUEUE_DEVICE_HIGH, (uint32_t)(u >> 32));
	wr(REG_QUEUE_READY, 1);
}

volatile struct desc *qdesc(uint32_t off)
{
	return (volatile struct desc *)(scratch + off);
}

volatile uint16_t *qavail(uint32_t off)
{
	return (volatile uint16_t *)(scratch + off + 0x1000);
}

volatile uint16_t *qused(uint32_t off)
{
	return (volatile uint16_t *)(scratch + off + 0x2000);
}

int used_moved(uint32_t off, uint16_t seen, int ms)
{
	for (uint64_t until = now_ms() + (uint64_t)ms;;) {
		__sync_synchronize();
		if (qused(off)[1] != seen)
			return 0;
		if (now_ms() >= until)
			return -1;
		usleep(100);
	}
}

/* A driver's start (§3.1.1); features are the low word's, VERSION_1 always. */
static void start(uint32_t features, int num)
{
	wr(REG_STATUS, 0);
	wr(REG_STATUS, 1);
	wr(REG_STATUS, 1 | 2);
	wr(REG_DRIVER_FEATURES_SEL, 0);
	wr(REG_DRIVER_FEATURES, features);
	wr(REG_DRIVER_FEATURES_SEL, 1);
	wr(REG_DRIVER_FEATURES, 1);
	wr(REG_STATUS, 1 | 2 | 8);
	queue_setup(REQUEST_QUEUE, num, OFF_DESC);
	wr(REG_STATUS, 1 | 2 | 8 | 4);
	avail_idx = used_seen = 0;
}

static volatile uint8_t *req_buf(int slot)
{
	return scratch + OFF_REQ + (size_t)slot * REQ_SIZE;
}

static volatile uint8_t *reply_buf(int slot)
{
	return scratch + OFF_REPLY + (size_t)slot * REPLY_SIZE;
}

/* Writes a FUSE request into slot's buffer: header, then n bytes of argument. */
static void request(int slot, uint32_t opcode, uint64_t nodeid, const void *arg, uint32_t n)
{
	struct in_header h = {.len = (uint32_t)sizeof(h) + n,
			      .opcode = opcode,
			      .unique = ++unique,
			      .nodeid = nodeid};
	memcpy((void *)req_buf(slot), &h, sizeof(h));
	memcpy((void *)(req_buf(slot) + sizeof(h)), arg, n);
	memset((void *)reply_buf(slot), 0, sizeof(struct out_header));
}

/* Makes slot's two-descriptor chain (request, reply) available; kick: notify too. */
static void post(int slot, uint32_t req_len, int kick)
{
	volatile struct desc *d = desc_table();
	d[2 * slot] = (struct desc){scratch_gpa + OFF_REQ + (uint64_t)slot * REQ_SIZE, req_len,
				    DESC_NEXT, (uint16_t)(2 * slot + 1)};
	d[2 * slot + 1] = (struct desc){scratch_gpa + OFF_REPLY + (uint64_t)slot * REPLY_SIZE,
					REPLY_SIZE, DESC_WRITE, 0};
	avail()[2 + avail_idx % QUEUE_SIZE] = (uint16_t)(2 * slot);
	__sync_synchronize();
	avail()[1] = ++avail_idx;
	__sync_synchronize();
	if (kick)
		wr(REG_QUEUE_NOTIFY, REQUEST_QUEUE);
}

uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Waits until the device has used everything posted; 0, or -1 after 10 s. */
static int wait_used(void)
{
	for (uint64_t until = now_ms() + 10000; now_ms() < until;) {
		__sync_synchronize();
		if (used()[1] == avail_idx) {
			used_seen = avail_idx;
			wr(REG_INTERRUPT_ACK, rd(REG_INTERRUPT_STATUS));
			return 0;
		}
		usleep(100);
	}
	return -1;
}

/* One request, answered: the reply's error (0 or -errno), or 1 when no answer came. */
static int call(uint32_t opcode, uint64_t nodeid, const void *arg, uint32_t n)
{
	request(0, opcode, nodeid, arg, n);
	post(0, (uint32_t)sizeof(struct in_header) + n, 1);
	if (wait_used())
		return 1;
	struct out_header o;
	memcpy(&o, (const void *)reply_buf(0), sizeof(o));
	return o.unique == unique ? o.error : 1;
}

static int fuse_init(void)
{
	uint32_t in[16] = {7, 31, 0, 0};
	return call(FUSE_INIT, 0, in, sizeof(in));
}

/* LOOKUP of name under the root: its node id, or 0. */
static uint64_t lookup(const char *name)
{
	if (call(FUSE_LOOKUP, 1, name, (uint32_t)strlen(name) + 1))
		return 0;
	uint64_t id;
	memcpy(&id, (const void *)(reply_buf(0) + sizeof(struct out_header)), sizeof(id));
	return id;
}

/* A clean session: INIT, then GETATTR of the root answers with a directory. */
static int clean_session(void)
{
	start(0, QUEUE_SIZE);
	if (fuse_init())
		return -1;
	uint32_t getattr_in[4] = {0};
	if (call(FUSE_GETATTR, 1, getattr_in, sizeof(getattr_in)))
		return -1;
	uint32_t mode; /* fuse_attr_out: 16 bytes, then the attributes; mode at 60 within them */
	memcpy(&mode, (const void *)(reply_buf(0) + sizeof(struct out_header) + 16 + 60), 4);
	return (mode & 0170000) == 0040000 ? 0 : -1;
}

static void mark(const char *dir, const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0)
		close(fd);
}

/* Requests whose headers lie about their length, opcode, node and arguments. */
static void lying_headers(void)
{
	start(0, QUEUE_SIZE);
	fuse_init();
	static const uint32_t lens[] = {0, 1, 39, 40, 41, 200, 1023, 1024, 1025, 0xffffffff};
	for (int round = 0; round < 40; round++) {
		for (int s = 0; s < SLOTS; s++) {
			uint8_t body[REQ_SIZE - sizeof(struct in_header)];
			for (size_t i = 0; i < sizeof(body); i++)
				body[i] = (uint8_t)rnd();
			uint32_t op = (uint32_t)(rnd() % 64);
			if (op == FUSE_INIT || op == 2 /* FORGET */)
				op = FUSE_GETATTR; /* keep the session, keep it answering */
			request(s, op, rnd() % 4 ? rnd() % 16 : rnd(), body, sizeof(body));
			struct in_header h;
			memcpy(&h, (const void *)req_buf(s), sizeof(h));
			h.len = lens[rnd() % (sizeof(lens) / sizeof(lens[0]))];
			memcpy((void *)req_buf(s), &h, sizeof(h));
			post(s, (uint32_t)(sizeof(struct in_header) + rnd() % sizeof(body)), 0);
		}
		wr(REG_QUEUE_NOTIFY, REQUEST_QUEUE);
		wait_used();
	}
}

/* Sessions reset while the device is in the middle of their requests. */
static void resets_mid_io(void)
{
	uint32_t getattr_in[4] = {0};
	for (int round = 0; round < 300; round++) {
		start(round % 2 ? FEATURE_EVENT_IDX : 0, QUEUE_SIZE);
		fuse_init();
		for (int s = 0; s < SLOTS; s++) {
			request(s, FUSE_GETATTR, 1, getattr_in, sizeof(getattr_in));
			post(s, sizeof(struct in_header) + sizeof(getattr_in), s % 16 == 0);
		}
		for (int spin = (int)(rnd() % 2000); spin > 0; spin--)
			__asm__ volatile("pause");
		wr(REG_STATUS, 0);
	}
}

/* 1,024 open handles per session, never released: the reset must close them. Returns how many
 * OPENs succeeded. */
static int handles_then_reset(void)
{
	int opened = 0;
	for (int round = 0; round < 8; round++) {
		start(0, QUEUE_SIZE);
		fuse_init();
		uint64_t id = lookup("f");
		if (!id) {
			fprintf(stderr, "hostile: LOOKUP f failed\n");
			return opened;
		}
		uint32_t open_in[2] = {0 /* O_RDONLY */, 0};
		for (int n = 0; n < 1024; n += SLOTS) {
			for (int s = 0; s < SLOTS; s++) {
				request(s, FUSE_OPEN, id, open_in, sizeof(open_in));
				post(s, sizeof(struct in_header) + sizeof(open_in), 0);
			}
			wr(REG_QUEUE_NOTIFY, REQUEST_QUEUE);
			wait_used();
			for (int s = 0; s < SLOTS; s++) {
				struct out_header o;
				memcpy(&o, (const void *)reply_buf(s), sizeof(o));
				opened += o.error == 0 && o.len > sizeof(o);
			}
		}
		wr(REG_STATUS, 0);
	}
	return opened;
}

/* How many of the first n slots' replies say ENOSYS. */
static int count_enosys(int n)
{
	int k = 0;
	for (int s = 0; s < n; s++) {
		struct out_header o;
		memcpy(&o, (const void *)reply_buf(s), sizeof(o));
		k += o.error == -38;
	}
	return k;
}

/*
 * One kick per request, unknown opcodes answered at once, interrupts never acknowledged. Returns
 * how many were answered ENOSYS.
 */
static int interrupt_storm(void)
{
	int answered = 0, posted = 0;
	start(0, QUEUE_SIZE);
	fuse_init();
	for (int n = 0; n < 20000; n++) {
		int s = n % SLOTS;
		if (s == 0 && n) {
			wait_used();
			answered += count_enosys(posted);
			posted = 0;
		}
		request(s, 63, 1, NULL, 0);
		post(s, sizeof(struct in_header), 1);
		posted++;
	}
	wait_used();
	return answered + count_enosys(posted);
}

/*
 * Random writes of random widths to random registers, with the scratch area full of random bytes.
 * A driver this broken would end its run at once (DRIVER_OK or a queue before FEATURES_OK), so
 * those two writes are made only when the device accepted its features, but for one in a
 * thousand: the rest reaches deeper.
 */
static void random_registers(void)
{
	for (uint64_t i = 0; i < scratch_size; i += 8)
		*(volatile uint64_t *)(scratch + i) = rnd();
	for (int n = 0; n < 100000; n++) {
		if (n % 5000 == 0)
			printf("hostile: %d writes\n", n);
		uint32_t off = (uint32_t)(rnd() % 0x200);
		uint64_t v;
		switch (rnd() % 6) {
		case 0:
			v = 0;
			break;
		case 1:
			v = 1 + rnd() % 16;
			break;
		case 2:
			v = scratch_gpa + (rnd() % scratch_size);
			break;
		case 3:
			v = (uint32_t)(scratch_gpa >> 32);
			break;
		case 4:
			v = 0xffffffffffffffffull;
			break;
		default:
			v = rnd();
			break;
		}
		bool features_ok = rd(REG_STATUS) & 8;
		if (rnd() % 1000 && !features_ok && (off & ~3u) == REG_STATUS)
			v &= ~4ull; /* no DRIVER_OK */
		if (rnd() % 1000 && !features_ok && (off & ~3u) == REG_QUEUE_READY)
			v = 0;
		switch (rnd() % 8) {
		case 0:
			*(volatile uint8_t *)(mmio + off) = (uint8_t)v;
			break;
		case 1:
			*(volatile uint16_t *)(mmio + (off & ~1u)) = (uint16_t)v;
			break;
		case 2:
			*(volatile uint64_t *)(mmio + (off & ~7u)) = v;
			break;
		case 3:
			(void)rd(off & ~3u);
			break;
		default:
			wr(off & ~3u, (uint32_t)v);
			break;
		}
	}
}

/* The malformed rings: each must make the VMM stop the run. */
static void malformed(const char *how)
{
	volatile struct desc *d = desc_table();
	uint64_t req = scratch_gpa + OFF_REQ, reply = scratch_gpa + OFF_REPLY;
	if (!strcmp(how, "outside")) {
		start(0, QUEUE_SIZE);
		wr(REG_STATUS, 0);
		wr(REG_STATUS, 1 | 2);
		wr(REG_DRIVER_FEATURES_SEL, 1);
		wr(REG_DRIVER_FEATURES, 1);
		wr(REG_STATUS, 1 | 2 | 8);
		wr(REG_QUEUE_SEL, REQUEST_QUEUE);
		wr(REG_QUEUE_NUM, QUEUE_SIZE);
		wr(REG_QUEUE_DESC_LOW, 0xd0000000u); /* the MMIO windows, not RAM */
		wr(REG_QUEUE_DESC_HIGH, 0);
		wr(REG_QUEUE_READY, 1);
		return;
	}
	start(!strcmp(how, "indirect-loop") ? FEATURE_INDIRECT : 0, QUEUE_SIZE);
	fuse_init();
	request(0, FUSE_GETATTR, 1, (uint32_t[4]){0}, 16);
	if (!strcmp(how, "loop")) {
		d[0] = (struct desc){req, 56, DESC_NEXT, 1};
		d[1] = (struct desc){reply, REPLY_SIZE, DESC_NEXT | DESC_WRITE, 0};
	} else if (!strcmp(how, "indirect-loop")) {
		volatile struct desc *t = (volatile struct desc *)(scratch + OFF_INDIRECT);
		t[0] = (struct desc){req, 56, DESC_NEXT, 1};
		t[1] = (struct desc){reply, REPLY_SIZE, DESC_NEXT | DESC_WRITE, 0};
		d[0] = (struct desc){scratch_gpa + OFF_INDIRECT, 2 * 16, DESC_INDIRECT, 0};
	} else if (!strcmp(how, "huge")) {
		d[0] = (struct desc){req, 56, DESC_NEXT, 1};
		d[1] = (struct desc){reply, 0xffffffffu, DESC_WRITE, 0};
	} else { /* beyond: a reply buffer in the MMIO hole */
		d[0] = (struct desc){req, 56, DESC_NEXT, 1};
		d[1] = (struct desc){0xd0000000u, REPLY_SIZE, DESC_WRITE, 0};
	}
	avail()[2 + avail_idx % QUEUE_SIZE] = 0;
	__sync_synchronize();
	avail()[1] = ++avail_idx;
	__sync_synchronize();
	wr(REG_QUEUE_NOTIFY, REQUEST_QUEUE);
	sleep(10); /* the VMM stops the run long before */
}

/*
 * vsock (virtio 1.2 §5.10): the guest kernel's driver is unbound first (sysfs), then the device
 * is driven from here: rx queue 0, tx queue 1, event queue 2, each VQ entries, rings in the
 * scratch area; receive buffers of 4 KiB, packets written whole into one descriptor each.
 */
#define VQ	   64
#define OFF_VRX	   0x00000
#define OFF_VTX	   0x04000
#define OFF_VEV	   0x08000
#define OFF_VRXBUF 0x20000 /* VQ x 4 KiB */
#define OFF_VTXBUF 0x60000 /* VQ x 1 KiB */
#define VHDR	   44
#define GUEST_CID  3
#define HOST_CID   2
enum { V_REQUEST = 1, V_RESPONSE, V_RST, V_SHUTDOWN, V_RW, V_CREDIT_UPDATE, V_CREDIT_REQUEST };

struct vhdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));

static uint16_t rx_avail, rx_used, tx_avail;

int unbind_driver(const char *id, int (*match)(int n, const void *arg), const void *arg)
{
	for (int i = 0; i < 32; i++) {
		char path[128], got[16] = "";
		snprintf(path, sizeof(path), "/sys/bus/virtio/devices/virtio%d/device", i);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(got, sizeof(got), f))
			got[0] = 0;
		fclose(f);
		if (strncmp(got, id, strlen(id)) != 0 || (match && !match(i, arg)))
			continue;
		snprintf(path, sizeof(path), "/sys/bus/virtio/devices/virtio%d/driver/unbind", i);
		f = fopen(path, "w");
		if (!f)
			return 0; /* no driver bound */
		fprintf(f, "virtio%d", i);
		return fclose(f) == 0 ? 0 : -1;
	}
	return -1;
}

/* One receive buffer back to the device, in the slot's own place. */
static void rx_post(uint16_t slot)
{
	qdesc(OFF_VRX)[slot] =
		(struct desc){scratch_gpa + OFF_VRXBUF + slot * 0x1000u, 0x1000, DESC_WRITE, 0};
	qavail(OFF_VRX)[2 + rx_avail % VQ] = slot;
	__sync_synchronize();
	qavail(OFF_VRX)[1] = ++rx_avail;
}

static void vsock_start(void)
{
	wr(REG_STATUS, 0);
	wr(REG_STATUS, 1);
	wr(REG_STATUS, 1 | 2);
	wr(REG_DRIVER_FEATURES_SEL, 1);
	wr(REG_DRIVER_FEATURES, 1);
	wr(REG_STATUS, 1 | 2 | 8);
	queue_setup(0, VQ, OFF_VRX);
	queue_setup(1, VQ, OFF_VTX);
	queue_setup(2, VQ, OFF_VEV);
	wr(REG_STATUS, 1 | 2 | 8 | 4);
	rx_avail = rx_used = tx_avail = 0;
	for (uint16_t i = 0; i < VQ; i++)
		rx_post(i);
	wr(REG_QUEUE_NOTIFY, 0);
}

/* One packet on the transmit queue: h (its len as given, true or not), then n bytes of data. */
static void vsend(const struct vhdr *h, const void *data, uint32_t n, uint32_t desc_len)
{
	/* A ring's worth outstanding: wait for the device (a driver may not overrun its ring). */
	for (uint64_t until = now_ms() + 10000;
	     (uint16_t)(tx_avail - qused(OFF_VTX)[1]) >= VQ && now_ms() < until;)
		usleep(100);
	uint16_t slot = tx_avail % VQ;
	volatile uint8_t *b = scratch + OFF_VTXBUF + slot * 0x400u;
	memcpy((void *)b, h, VHDR);
	if (n)
		memcpy((void *)(b + VHDR), data, n);
	qdesc(OFF_VTX)[slot] =
		(struct desc){scratch_gpa + OFF_VTXBUF + slot * 0x400u, desc_len, 0, 0};
	qavail(OFF_VTX)[2 + tx_avail % VQ] = slot;
	__sync_synchronize();
	qavail(OFF_VTX)[1] = ++tx_avail;
	__sync_synchronize();
	wr(REG_QUEUE_NOTIFY, 1);
}

static struct vhdr pkt(uint64_t src, uint64_t dst, uint32_t sport, uint32_t dport, uint16_t op,
		       uint32_t len)
{
	return (struct vhdr){.src_cid = src,
			     .dst_cid = dst,
			     .src_port = sport,
			     .dst_port = dport,
			     .len = len,
			     .type = 1,
			     .op = op,
			     .buf_alloc = 65536};
}

/*
 * The device's next packet, within ms: its header into *h and up to cap data bytes into data;
 * 0, or -1 when none came. The buffer goes back to the device.
 */
static int vrecv(struct vhdr *h, void *data, size_t cap, int ms)
{
	if (used_moved(OFF_VRX, rx_used, ms))
		return -1;
	volatile uint32_t *e = (volatile uint32_t *)(qused(OFF_VRX) + 2) + 2 * (rx_used % VQ);
	uint16_t slot = (uint16_t)e[0];
	uint32_t len = e[1];
	rx_used++;
	wr(REG_INTERRUPT_ACK, rd(REG_INTERRUPT_STATUS));
	if (slot >= VQ || len < VHDR || len > 0x1000) {
		fprintf(stderr, "hostile: the device used slot %u, %u bytes\n", slot, len);
		return -1;
	}
	volatile uint8_t *b = scratch + OFF_VRXBUF + slot * 0x1000u;
	memcpy(h, (const void *)b, VHDR);
	size_t n = len - VHDR < cap ? len - VHDR : cap;
	memcpy(data, (const void *)(b + VHDR), n);
	rx_post(slot);
	wr(REG_QUEUE_NOTIFY, 0);
	return 0;
}

/* Whatever answers come within ms: how many, and how many were not RSTs. */
static int drain(int ms, int *not_rst)
{
	struct vhdr h;
	char d[64];
	int n = 0;
	while (vrecv(&h, d, sizeof(d), ms) == 0) {
		n++;
		if (h.op != V_RST) {
			(*not_rst)++;
			fprintf(stderr, "hostile: op %u to a bad packet (%u -> %u)\n", h.op,
				h.src_port, h.dst_port);
		}
	}
	return n;
}

/*
 * Bad packets (wrong CIDs, another type, unknown ops, lengths past the buffer or the limit, data
 * for no connection, a connection to a port nothing is mapped to, 5,000 random headers): each
 * answered with a reset or not at all. Then a clean connection to PORT (a host echo server)
 * echoes a line. 0 when all went so.
 */
static int vsock_scenario(uint32_t port)
{
	if (unbind_driver("0x0013", NULL, NULL)) {
		fprintf(stderr, "hostile: cannot unbind the kernel's vsock driver\n");
		return 2;
	}
	vsock_start();
	int bad = 0, answers = 0;
	struct vhdr h = pkt(7, HOST_CID, 1000, port, V_REQUEST, 0); /* a CID not the guest's */
	vsend(&h, NULL, 0, VHDR);
	h = pkt(GUEST_CID, 9, 1001, port, V_REQUEST, 0); /* to a CID not the host's */
	vsend(&h, NULL, 0, VHDR);
	h = pkt(GUEST_CID, HOST_CID, 1002, port, V_REQUEST, 0);
	h.type = 2; /* SEQPACKET */
	vsend(&h, NULL, 0, VHDR);
	h = pkt(GUEST_CID, HOST_CID, 1003, port, 99, 0); /* no such op */
	vsend(&h, NULL, 0, VHDR);
	h = pkt(GUEST_CID, HOST_CID, 1004, port, V_RW, 100000); /* longer than its buffer */
	vsend(&h, "x", 1, VHDR + 1);
	h = pkt(GUEST_CID, HOST_CID, 1005, port, V_RW, 5); /* data for no connection */
	vsend(&h, "hello", 5, VHDR + 5);
	h = pkt(GUEST_CID, HOST_CID, 1006, 7777, V_REQUEST, 0); /* a port nothing is mapped to */
	vsend(&h, NULL, 0, VHDR);
	vsend(&h, NULL, 0, 20); /* a header cut short */
	answers += drain(500, &bad);
	for (int i = 0; i < 5000; i++) {
		struct vhdr r;
		uint8_t *p = (uint8_t *)&r;
		for (size_t k = 0; k < sizeof(r); k++)
			p[k] = (uint8_t)rnd();
		if (i % 2) { /* half of them from the right CIDs, to get past the first check */
			r.src_cid = GUEST_CID;
			r.dst_cid = HOST_CID;
			r.type = 1;
			r.op = (uint16_t)(rnd() % 9);
			r.dst_port = rnd() % 4 ? 7777 : port;
			r.len %= 2000;
		}
		vsend(&r, "data", 4, VHDR + (uint32_t)(rnd() % 40));
		if (i % 32 == 31)
			answers += drain(0, &bad);
	}
	/* Random headers may have opened connections to PORT: those answers are fine. */
	int ignored = 0;
	answers += drain(500, &ignored);
	printf("hostile: bad packets: %d answers, %d not resets\n", answers, bad);
	/* A clean connection: REQUEST, RESPONSE, a line echoed, SHUTDOWN. */
	h = pkt(GUEST_CID, HOST_CID, 4242, port, V_REQUEST, 0);
	vsend(&h, NULL, 0, VHDR);
	struct vhdr a;
	char d[64] = "";
	bool open = false, echoed = false;
	for (int i = 0; i < 50 && !echoed; i++) {
		if (vrecv(&a, d, sizeof(d) - 1, 2000))
			break;
		if (a.dst_port != 4242)
			continue; /* what the random ones left */
		if (a.op == V_RESPONSE && !open) {
			open = true;
			h = pkt(GUEST_CID, HOST_CID, 4242, port, V_RW, 5);
			vsend(&h, "ping\n", 5, VHDR + 5);
		} else if (a.op == V_RW && a.len == 5 && !memcmp(d, "ping\n", 5)) {
			echoed = true;
		}
	}
	h = pkt(GUEST_CID, HOST_CID, 4242, port, V_SHUTDOWN, 0);
	h.flags = 3;
	vsend(&h, NULL, 0, VHDR);
	if (!open || !echoed) {
		printf("hostile: the clean connection %s\n",
		       open ? "was not echoed" : "did not open");
		return 1;
	}
	return bad ? 1 : 0;
}

/*
 * Connections left open by a driver that resets the device: 8 opened to PORT (MARKDIR/start
 * before, MARKDIR/open once answered), then the reset (MARKDIR/reset); the host counts the VMM's
 * descriptors at each mark. 0 when all 8 opened.
 */
static int vsock_reset_with_connections(uint32_t port, const char *dir)
{
	sleep(1); /* the clean connection's end is done */
	drain(200, &(int){0});
	mark(dir, "start");
	sleep(2);
	int opened = 0;
	for (uint32_t i = 0; i < 8; i++) {
		struct vhdr h = pkt(GUEST_CID, HOST_CID, 5100 + i, port, V_REQUEST, 0);
		vsend(&h, NULL, 0, VHDR);
	}
	struct vhdr a;
	char d[64];
	for (int i = 0; i < 50 && opened < 8; i++) {
		if (vrecv(&a, d, sizeof(d), 2000))
			break;
		opened += a.op == V_RESPONSE && a.dst_port >= 5100 && a.dst_port < 5108;
	}
	printf("hostile: %d connections open, then a device reset\n", opened);
	mark(dir, "open");
	sleep(3);
	wr(REG_STATUS, 0);
	mark(dir, "reset");
	sleep(4);
	return opened == 8 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if ((argc == 3 || argc == 4) && !strcmp(argv[1], "vsock")) {
		setvbuf(stdout, NULL, _IONBF, 0);
		if (find_device(19, NULL, NULL, "vsock device"))
			return 2;
		uint32_t port = (uint32_t)strtoul(argv[2], NULL, 0);
		int r = vsock_scenario(port);
		if (r == 0)
			printf("hostile: still serving\n");
		if (r == 0 && argc == 4)
			r = vsock_reset_with_connections(port, argv[3]);
		return r;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc >= 4 && !strcmp(argv[1], "blk")) {
		int r = blk_scenario(strtoull(argv[2], NULL, 0), argv[3],
				     argc > 4 && !strcmp(argv[4], "ro"));
		if (r == 0)
			printf("hostile: still serving\n");
		return r;
	}
	if (argc == 3 && !strcmp(argv[1], "blk-nostatus"))
		return blk_no_status(strtoull(argv[2], NULL, 0));
	if ((argc == 2 || argc == 3) && !strcmp(argv[1], "net")) {
		int r = net_scenario(argc == 3 && !strcmp(argv[2], "lies"));
		if (r == 0)
			printf("hostile: still serving\n");
		return r;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: hostile TAG SCENARIO [SEED] [MARKDIR]\n");
		return 2;
	}
	const char *scenario = argv[2], *dir = argc > 4 ? argv[4] : NULL;
	if (argc > 3)
		rng ^= strtoull(argv[3], NULL, 0) * 0x2545f4914f6cdd1dull;
	char what[128];
	snprintf(what, sizeof(what), "virtio-fs device with tag %s", argv[1]);
	if (find_device(26, fs_tag_is, argv[1], what))
		return 2;
	setvbuf(stdout, NULL, _IONBF, 0);
	if (!strcmp(scenario, "survive")) {
		if (dir)
			mark(dir, "start");
		sleep(1);
		lying_headers();
		printf("hostile: lying headers done\n");
		resets_mid_io();
		printf("hostile: resets done\n");
		int opened = handles_then_reset();
		printf("hostile: %d handles opened in 8 sessions\n", opened);
		int answered = interrupt_storm();
		printf("hostile: interrupt storm: %d of 20000 answered\n", answered);
		if (opened != 8 * 1024 || answered != 20000)
			return 1;
		if (dir) {
			mark(dir, "quiet");
			sleep(4); /* the host measures meanwhile */
		}
	} else if (!strcmp(scenario, "random")) {
		random_registers();
		printf("hostile: random writes done\n");
	} else {
		malformed(scenario);
		printf("hostile: %s: the VMM did not stop the run\n", scenario);
		return 1;
	}
	if (clean_session()) {
		printf("hostile: the device no longer serves\n");
		return 1;
	}
	printf("hostile: still serving\n");
	return 0;
}
