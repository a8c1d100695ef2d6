/*
 * hostile's disk and network scenarios (hostile.h): the guest kernel's driver is unbound (sysfs)
 * and the device driven from here, through /dev/mem, with requests and frames no honest driver
 * sends.
 *
 * blk SECTORS ID [ro]
 *   The disk of SECTORS sectors (its size tells it apart): requests that lie (sectors past the
 *   end or wrapping around, lengths not whole sectors, a header cut short, discard and
 *   write-zeroes segments out of range, too many or with reserved flags, writes to a read-only
 *   disk, unknown types, GET_ID into 3 bytes), each of which must get its own status; 5,000
 *   random requests, direct and indirect, all of which must be answered with a valid status;
 *   resets with requests in flight; then a clean session: GET_ID says ID, 4 KiB of the pattern
 *   "ec1-hostile-blk\n" written at sector 8 (refused on a read-only disk), a flush, read back.
 * blk-nostatus SECTORS
 *   a request with no device-writable byte for its status: the VMM must stop the run.
 * net [lies]
 *   The network device (lies: the malformed frames alone, then the clean request): frames cut
 * short, oversized (to 70,000 bytes), asking for offloads nobody offered, in device-writable
 * buffers; receive buffers the device cannot write; 3,000 random frames, most of them for the
 * backend; resets with frames in flight; then a clean ARP request for 10.0.2.2 must be answered.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostile.h"

static uint16_t q_avail;

/* Status handshake up to FEATURES_OK with the low word's features the device offers of want. */
static void negotiate(uint32_t want)
{
	wr(REG_STATUS, 0);
	wr(REG_STATUS, 1);
	wr(REG_STATUS, 1 | 2);
	wr(REG_DEVICE_FEATURES_SEL, 0);
	uint32_t offered = rd(REG_DEVICE_FEATURES);
	wr(REG_DRIVER_FEATURES_SEL, 0);
	wr(REG_DRIVER_FEATURES, want & offered);
	wr(REG_DRIVER_FEATURES_SEL, 1);
	wr(REG_DRIVER_FEATURES, 1);
	wr(REG_STATUS, 1 | 2 | 8);
}

static void pause_a_little(void)
{
	for (int spin = (int)(rnd() % 4000); spin > 0; spin--)
		__asm__ volatile("pause");
}

/* ---- virtio-blk (virtio 1.2 §5.2) ---- */

#define BQ	   128 /* queue entries */
#define BSLOTS	   32  /* requests at once: 3 descriptors each, or one indirect */
#define B_OFF_Q	   0x00000
#define B_OFF_HDR  0x10000 /* BSLOTS x 1 KiB: header and segments */
#define B_OFF_DATA 0x40000 /* BSLOTS x 8 KiB */
#define B_OFF_STAT 0x80000 /* BSLOTS bytes */
#define B_OFF_IND  0x81000 /* BSLOTS x 64 bytes: indirect tables */
#define B_DATA	   0x2000

#define T_IN	       0
#define T_OUT	       1
#define T_FLUSH	       4
#define T_GET_ID       8
#define T_DISCARD      11
#define T_WRITE_ZEROES 13
#define S_OK	       0
#define S_IOERR	       1
#define S_UNSUPP       2
#define S_NONE	       0xff /* never answered */

#define BLK_F_SEG_MAX	   (1u << 2)
#define BLK_F_RO	   (1u << 5)
#define BLK_F_BLK_SIZE	   (1u << 6)
#define BLK_F_FLUSH	   (1u << 9)
#define BLK_F_DISCARD	   (1u << 13)
#define BLK_F_WRITE_ZEROES (1u << 14)

struct seg {
	uint64_t sector;
	uint32_t num_sectors, flags;
};

/* One request as a driver would put it, or not. */
struct breq {
	const char *what;
	uint32_t type;
	uint64_t sector;
	uint32_t hdr_len;  /* bytes of the 16-byte header given (0: all 16) */
	uint32_t data_len; /* 0: no data descriptor */
	bool data_in;	   /* the data descriptor is device-writable */
	unsigned int nsegs;
	struct seg segs[40];
	uint32_t seg_bytes; /* 0: nsegs whole segments */
	uint8_t want, want_ro;
};

static uint64_t b_sectors;
static bool b_indirect_ok;

static volatile uint8_t *b_data(int slot)
{
	return scratch + B_OFF_DATA + (size_t)slot * B_DATA;
}

static void blk_start(uint32_t extra)
{
	negotiate(BLK_F_SEG_MAX | BLK_F_RO | BLK_F_BLK_SIZE | BLK_F_FLUSH | BLK_F_DISCARD |
		  BLK_F_WRITE_ZEROES | extra);
	queue_setup(0, BQ, B_OFF_Q);
	wr(REG_STATUS, 1 | 2 | 8 | 4);
	q_avail = 0;
	b_indirect_ok = extra & FEATURE_INDIRECT;
}

/* Puts r in slot's buffers and makes it available (through an indirect table when asked). */
static void blk_post(int slot, const struct breq *r, bool indirect, bool kick)
{
	volatile uint8_t *h = scratch + B_OFF_HDR + (size_t)slot * 0x400;
	uint32_t hdr[4] = {r->type, 0, (uint32_t)r->sector, (uint32_t)(r->sector >> 32)};
	memcpy((void *)h, hdr, 16);
	uint32_t out = r->hdr_len ? r->hdr_len : 16;
	if (r->nsegs || r->seg_bytes) {
		uint32_t n = r->seg_bytes ? r->seg_bytes : r->nsegs * 16;
		memcpy((void *)(h + out), r->segs, n);
		out += n;
	}
	scratch[B_OFF_STAT + slot] = S_NONE;
	struct desc chain[3];
	int k = 0;
	uint64_t hdr_gpa = scratch_gpa + B_OFF_HDR + (uint64_t)slot * 0x400;
	chain[k++] = (struct desc){hdr_gpa, out, DESC_NEXT, 0};
	if (r->data_len)
		chain[k++] =
			(struct desc){scratch_gpa + B_OFF_DATA + (uint64_t)slot * B_DATA,
				      r->data_len, DESC_NEXT | (r->data_in ? DESC_WRITE : 0), 0};
	chain[k++] = (struct desc){scratch_gpa + B_OFF_STAT + (uint64_t)slot, 1, DESC_WRITE, 0};
	chain[k - 1].flags &= (uint16_t)~DESC_NEXT;
	volatile struct desc *d = qdesc(B_OFF_Q);
	uint16_t head = (uint16_t)(slot * 3);
	if (indirect && b_indirect_ok) {
		volatile struct desc *t = (volatile struct desc *)(scratch + B_OFF_IND + slot * 64);
		for (int i = 0; i < k; i++) {
			chain[i].next = (uint16_t)(i + 1);
			t[i] = chain[i];
		}
		d[head] = (struct desc){scratch_gpa + B_OFF_IND + (uint64_t)slot * 64,
					(uint32_t)k * 16, DESC_INDIRECT, 0};
	} else {
		for (int i = 0; i < k; i++) {
			chain[i].next = (uint16_t)(head + i + 1);
			d[head + i] = chain[i];
		}
	}
	qavail(B_OFF_Q)[2 + q_avail % BQ] = head;
	__sync_synchronize();
	qavail(B_OFF_Q)[1] = ++q_avail;
	__sync_synchronize();
	if (kick)
		wr(REG_QUEUE_NOTIFY, 0);
}

/* Until the device has used everything posted: 0, or -1 after 10 s. */
static int blk_wait(void)
{
	for (uint64_t until = now_ms() + 10000; now_ms() < until;) {
		__sync_synchronize();
		if (qused(B_OFF_Q)[1] == q_avail) {
			wr(REG_INTERRUPT_ACK, rd(REG_INTERRUPT_STATUS));
			return 0;
		}
		usleep(50);
	}
	return -1;
}

/* r alone, answered: its status, or S_NONE. */
static uint8_t blk_do(const struct breq *r)
{
	blk_post(0, r, false, true);
	if (blk_wait())
		return S_NONE;
	return scratch[B_OFF_STAT];
}

static struct breq seg_req(const char *what, uint32_t type, unsigned int n, uint64_t sector,
			   uint32_t num, uint32_t flags, uint8_t want)
{
	struct breq r = {.what = what, .type = type, .nsegs = n, .want = want, .want_ro = S_IOERR};
	for (unsigned int i = 0; i < n; i++)
		r.segs[i] = (struct seg){sector + 8u * i, num, flags};
	return r;
}

/* The requests that lie, each with the status it must get (on a writable, a read-only disk). */
static int blk_lies(bool ro)
{
	uint64_t end = b_sectors;
	struct breq lies[] = {
		{"read at the end", T_IN, end, 0, 512, true, 0, {{0}}, 0, S_IOERR, S_IOERR},
		{"read across the end",
		 T_IN,
		 end - 1,
		 0,
		 1024,
		 true,
		 0,
		 {{0}},
		 0,
		 S_IOERR,
		 S_IOERR},
		{"read at sector 2^63",
		 T_IN,
		 1ull << 63,
		 0,
		 512,
		 true,
		 0,
		 {{0}},
		 0,
		 S_IOERR,
		 S_IOERR},
		{"read wrapping around", T_IN, ~0ull, 0, 4096, true, 0, {{0}}, 0, S_IOERR, S_IOERR},
		{"read of 100 bytes", T_IN, 0, 0, 100, true, 0, {{0}}, 0, S_IOERR, S_IOERR},
		{"read with a header cut short",
		 T_IN,
		 0,
		 8,
		 512,
		 true,
		 0,
		 {{0}},
		 0,
		 S_IOERR,
		 S_IOERR},
		{"read of nothing (its buffer read-only)",
		 T_IN,
		 0,
		 0,
		 512,
		 false,
		 0,
		 {{0}},
		 0,
		 S_OK,
		 S_OK},
		{"write across the end",
		 T_OUT,
		 end - 1,
		 0,
		 1024,
		 false,
		 0,
		 {{0}},
		 0,
		 S_IOERR,
		 S_IOERR},
		{"write wrapping around",
		 T_OUT,
		 ~0ull - 1,
		 0,
		 1024,
		 false,
		 0,
		 {{0}},
		 0,
		 S_IOERR,
		 S_IOERR},
		{"write of 513 bytes", T_OUT, 0, 0, 513, false, 0, {{0}}, 0, S_IOERR, S_IOERR},
		{"unknown type 99", 99, 0, 0, 512, true, 0, {{0}}, 0, S_UNSUPP, S_UNSUPP},
		{"unknown type 2^31", 0x80000000u, 0, 0, 0, false, 0, {{0}}, 0, S_UNSUPP, S_UNSUPP},
		{"GET_ID into 3 bytes", T_GET_ID, 0, 0, 3, true, 0, {{0}}, 0, S_OK, S_OK},
		{"flush with data", T_FLUSH, 7, 0, 4096, true, 0, {{0}}, 0, S_OK, S_OK},
		{"write of 8 KiB inside", T_OUT, 16, 0, 8192, false, 0, {{0}}, 0, S_OK, S_IOERR},
	};
	struct breq segs[] = {
		seg_req("discard of no segment", T_DISCARD, 0, 0, 8, 0, S_IOERR),
		seg_req("discard of 33 segments", T_DISCARD, 33, 0, 8, 0, S_IOERR),
		seg_req("discard with unmap", T_DISCARD, 1, 0, 8, 1, S_UNSUPP),
		seg_req("discard with a reserved flag", T_DISCARD, 1, 0, 8, 4, S_UNSUPP),
		seg_req("discard past the end", T_DISCARD, 1, end - 4, 8, 0, S_IOERR),
		seg_req("discard wrapping around", T_DISCARD, 1, ~0ull - 3, 8, 0, S_IOERR),
		seg_req("discard of 2^32-1 sectors", T_DISCARD, 1, 0, 0xffffffffu, 0, S_IOERR),
		seg_req("write-zeroes past the end", T_WRITE_ZEROES, 2, end - 8, 16, 1, S_IOERR),
		seg_req("write-zeroes with a reserved flag", T_WRITE_ZEROES, 1, 0, 8, 2, S_UNSUPP),
		seg_req("discard of 32 good segments", T_DISCARD, 32, 64, 8, 0, S_OK),
		seg_req("write-zeroes with unmap", T_WRITE_ZEROES, 3, 24, 8, 1, S_OK),
	};
	struct breq cut = seg_req("discard of 1.5 segments", T_DISCARD, 2, 0, 8, 0, S_IOERR);
	cut.seg_bytes = 24;
	int wrong = 0, n = 0;
	for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]) + sizeof(segs) / sizeof(segs[0]) + 1;
	     i++, n++) {
		const struct breq *r =
			i < sizeof(lies) / sizeof(lies[0]) ? &lies[i]
			: i - sizeof(lies) / sizeof(lies[0]) < sizeof(segs) / sizeof(segs[0])
				? &segs[i - sizeof(lies) / sizeof(lies[0])]
				: &cut;
		uint8_t got = blk_do(r), want = ro ? r->want_ro : r->want;
		if (got != want) {
			printf("hostile: blk: %s: status %u, want %u\n", r->what, got, want);
			wrong++;
		}
	}
	printf("hostile: blk: %d lying requests, %d answered wrong\n", n, wrong);
	return wrong;
}

/* A random request: mostly near the rules, some far outside them. */
static struct breq blk_random(void)
{
	static const uint32_t types[] = {T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WRITE_ZEROES};
	struct breq r = {.what = "random"};
	r.type = rnd() % 8 ? types[rnd() % 6] : (uint32_t)rnd();
	switch (rnd() % 4) {
	case 0:
		r.sector = rnd();
		break;
	case 1:
		r.sector = b_sectors - rnd() % 32;
		break;
	default:
		r.sector = rnd() % b_sectors;
		break;
	}
	r.data_len = (uint32_t)(rnd() % (B_DATA + 1));
	if (rnd() % 4)
		r.data_len &= ~511u;
	r.data_in = r.type == T_OUT ? rnd() % 8 == 0 : rnd() % 8 != 0;
	if (rnd() % 20 == 0)
		r.hdr_len = 1 + (uint32_t)(rnd() % 16);
	if (r.type == T_DISCARD || r.type == T_WRITE_ZEROES) {
		r.nsegs = (unsigned int)(rnd() % 36);
		for (unsigned int i = 0; i < r.nsegs; i++)
			r.segs[i] =
				(struct seg){rnd() % 2 ? rnd() % b_sectors : rnd(),
					     rnd() % 2 ? (uint32_t)(rnd() % 64) : (uint32_t)rnd(),
					     rnd() % 4 ? 0 : (uint32_t)(rnd() % 4)};
		if (rnd() % 10 == 0)
			r.seg_bytes = (uint32_t)(rnd() % (r.nsegs * 16 + 1));
		r.data_len = 0;
	}
	return r;
}

/* 5,000 random requests in batches of up to BSLOTS: each must be answered, with a valid status. */
static int blk_randoms(void)
{
	int bad = 0, answered = 0;
	for (int done = 0; done < 5000;) {
		blk_start((rnd() % 2 ? FEATURE_INDIRECT : 0) | (rnd() % 2 ? FEATURE_EVENT_IDX : 0));
		int batch = 1 + (int)(rnd() % BSLOTS);
		for (int s = 0; s < batch; s++) {
			struct breq r = blk_random();
			if (r.data_len && rnd() % 2)
				for (uint32_t i = 0; i < r.data_len; i += 8)
					*(volatile uint64_t *)(b_data(s) + i) = rnd();
			blk_post(s, &r, rnd() % 2, rnd() % 4 == 0);
		}
		wr(REG_QUEUE_NOTIFY, 0);
		if (blk_wait()) {
			printf("hostile: blk: a batch of %d random requests was not answered\n",
			       batch);
			return -1;
		}
		for (int s = 0; s < batch; s++) {
			uint8_t st = scratch[B_OFF_STAT + s];
			answered++;
			bad += st > S_UNSUPP;
		}
		done += batch;
	}
	printf("hostile: blk: %d random requests answered, %d with no valid status\n", answered,
	       bad);
	return bad;
}

/* Resets while requests are in flight. */
static void blk_resets(void)
{
	for (int round = 0; round < 200; round++) {
		blk_start(round % 2 ? FEATURE_EVENT_IDX : FEATURE_INDIRECT);
		for (int s = 0; s < BSLOTS; s++) {
			struct breq r = {.type = s % 2 ? T_OUT : T_IN,
					 .sector = rnd() % (b_sectors - 16),
					 .data_len = B_DATA,
					 .data_in = !(s % 2)};
			blk_post(s, &r, s % 3 == 0, s % 8 == 0);
		}
		pause_a_little();
		wr(REG_STATUS, 0);
	}
}

/* GET_ID says id; the pattern written (or refused), flushed and read back. */
static int blk_clean(const char *id, bool ro)
{
	usleep(100000); /* what the resets left in flight is done */
	blk_start(FEATURE_EVENT_IDX);
	struct breq get = {.type = T_GET_ID, .data_len = 20, .data_in = true};
	memset((void *)b_data(0), 0, 20);
	char got_id[21] = {0};
	uint8_t st = blk_do(&get);
	memcpy(got_id, (const void *)b_data(0), 20);
	if (st != S_OK || strcmp(got_id, id)) {
		printf("hostile: blk: GET_ID: status %u, \"%s\"\n", st, got_id);
		return -1;
	}
	static const char line[] = "ec1-hostile-blk\n";
	for (int i = 0; i < 4096; i += 16)
		memcpy((void *)(b_data(0) + i), line, 16);
	struct breq w = {.type = T_OUT, .sector = 8, .data_len = 4096};
	struct breq f = {.type = T_FLUSH};
	struct breq r = {.type = T_IN, .sector = 8, .data_len = 4096, .data_in = true};
	uint8_t sw = blk_do(&w), sf = blk_do(&f);
	memset((void *)b_data(0), 0, 4096);
	uint8_t sr = blk_do(&r);
	bool same = !memcmp((const void *)b_data(0), line, 16) &&
		    !memcmp((const void *)(b_data(0) + 4080), line, 16);
	printf("hostile: blk: clean write %u, flush %u, read %u, %s\n", sw, sf, sr,
	       same ? "the pattern read back" : "something else read back");
	if (sw != (ro ? S_IOERR : S_OK) || sf != S_OK || sr != S_OK || same == ro)
		return -1;
	return 0;
}

/* match for unbind_driver: virtioN is a disk of *arg sectors (its block/vdX/size). */
static int virtio_disk_is(int n, const void *arg)
{
	char path[160];
	snprintf(path, sizeof(path), "/sys/bus/virtio/devices/virtio%d/block", n);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	unsigned long long size = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		char p[512];
		snprintf(p, sizeof(p), "%s/%s/size", path, e->d_name);
		FILE *f = fopen(p, "r");
		if (f) {
			if (fscanf(f, "%llu", &size) != 1)
				size = 0;
			fclose(f);
		}
	}
	closedir(d);
	return size == *(const uint64_t *)arg;
}

/* match for find_device: the disk's capacity (config offset 0) is *arg sectors. */
static int window_disk_is(volatile uint8_t *w, const void *arg)
{
	uint64_t c = *(volatile uint32_t *)(w + REG_CONFIG) |
		     (uint64_t) * (volatile uint32_t *)(w + REG_CONFIG + 4) << 32;
	return c == *(const uint64_t *)arg;
}

static int blk_take(uint64_t sectors)
{
	b_sectors = sectors;
	if (unbind_driver("0x0002", virtio_disk_is, &sectors)) {
		fprintf(stderr, "hostile: no disk of %llu sectors to unbind\n",
			(unsigned long long)sectors);
		return -1;
	}
	return find_device(2, window_disk_is, &sectors, "disk of that many sectors");
}

int blk_scenario(uint64_t sectors, const char *id, int read_only)
{
	if (sectors < 256 || blk_take(sectors))
		return 2;
	blk_start(0);
	if ((rd(REG_DEVICE_FEATURES) & BLK_F_RO) != (read_only ? BLK_F_RO : 0)) {
		printf("hostile: blk: the device's RO feature is not what the test said\n");
		return 1;
	}
	int wrong = blk_lies(read_only);
	int bad = blk_randoms();
	blk_resets();
	printf("hostile: blk: 200 resets with requests in flight done\n");
	if (blk_clean(id, read_only)) {
		printf("hostile: blk: the clean session failed\n");
		return 1;
	}
	return wrong || bad ? 1 : 0;
}

int blk_no_status(uint64_t sectors)
{
	if (blk_take(sectors))
		return 2;
	blk_start(0);
	struct breq r = {.type = T_IN, .data_len = 512, .data_in = false};
	blk_post(0, &r, false, false);
	qdesc(B_OFF_Q)[2].flags = 0; /* the status byte, device-readable: no room for it */
	__sync_synchronize();
	wr(REG_QUEUE_NOTIFY, 0);
	sleep(10); /* the VMM stops the run long before */
	return 1;
}

/* ---- virtio-net (virtio 1.2 §5.1) ---- */

#define NQ	    64 /* entries a queue */
#define NSLOTS	    16 /* frames in flight: 3 descriptors each at most */
#define N_OFF_RX    0x00000
#define N_OFF_TX    0x04000
#define N_OFF_RXBUF 0x20000 /* NQ x 4 KiB */
#define N_OFF_TXBUF 0x60000 /* NSLOTS x 2 KiB */
#define N_OFF_BIG   0x80000 /* one frame of up to 448 KiB */
#define NHDR	    12

#define NET_F_CSUM	(1u << 0)
#define NET_F_MTU	(1u << 3)
#define NET_F_MAC	(1u << 5)
#define NET_F_HOST_TSO4 (1u << 11)
#define NET_F_MRG_RXBUF (1u << 15)
#define NET_F_STATUS	(1u << 16)

struct nhdr {
	uint8_t flags, gso_type;
	uint16_t hdr_len, gso_size, csum_start, csum_offset, num_buffers;
};

static uint16_t rx_avail, rx_used, tx_avail;
static uint8_t mac[6];
static bool rx_mergeable;

enum { TX_ONE, TX_SPLIT, TX_WRITABLE };

/* Receive buffer slot back to the device: 4 KiB, or len bytes that are device-readable (bad). */
static void nrx_post(uint16_t slot, uint32_t len, bool writable)
{
	qdesc(N_OFF_RX)[slot] = (struct desc){scratch_gpa + N_OFF_RXBUF + slot * 0x1000u, len,
					      writable ? DESC_WRITE : 0, 0};
	qavail(N_OFF_RX)[2 + rx_avail % NQ] = slot;
	__sync_synchronize();
	qavail(N_OFF_RX)[1] = ++rx_avail;
}

static void net_start(uint32_t extra, uint32_t rx_len, bool rx_writable)
{
	negotiate(NET_F_MAC | NET_F_STATUS | NET_F_MTU | extra);
	queue_setup(0, NQ, N_OFF_RX);
	queue_setup(1, NQ, N_OFF_TX);
	wr(REG_STATUS, 1 | 2 | 8 | 4);
	rx_mergeable = extra & NET_F_MRG_RXBUF;
	for (int i = 0; i < 6; i++)
		mac[i] = mmio[REG_CONFIG + i];
	rx_avail = rx_used = tx_avail = 0;
	for (uint16_t i = 0; i < NQ; i++)
		nrx_post(i, rx_len, rx_writable);
	wr(REG_QUEUE_NOTIFY, 0);
}

/* Waits for room for one more frame in flight; 0, or -1 after 10 s. */
static int ntx_room(void)
{
	for (uint64_t until = now_ms() + 10000; now_ms() < until;) {
		__sync_synchronize();
		if ((uint16_t)(tx_avail - qused(N_OFF_TX)[1]) < NSLOTS)
			return 0;
		usleep(50);
	}
	return -1;
}

/* A frame on the transmit queue: hdr and frame, laid out as how says; big: from N_OFF_BIG. */
static int nsend(const struct nhdr *h, const void *frame, uint32_t len, int how, bool kick)
{
	if (ntx_room())
		return -1;
	uint16_t slot = tx_avail % NSLOTS, head = (uint16_t)(slot * 3);
	uint32_t off = len + NHDR <= 0x800 ? N_OFF_TXBUF + slot * 0x800u : N_OFF_BIG;
	memcpy((void *)(scratch + off), h, NHDR);
	if (frame)
		memcpy((void *)(scratch + off + NHDR), frame, len);
	uint64_t gpa = scratch_gpa + off;
	volatile struct desc *d = qdesc(N_OFF_TX);
	if (how == TX_ONE) {
		d[head] = (struct desc){gpa, NHDR + len, 0, 0};
	} else {
		d[head] = (struct desc){gpa, NHDR, DESC_NEXT, (uint16_t)(head + 1)};
		d[head + 1] = (struct desc){gpa + NHDR, len, how == TX_WRITABLE ? DESC_NEXT : 0,
					    (uint16_t)(head + 2)};
		if (how == TX_WRITABLE)
			d[head + 2] = (struct desc){gpa + NHDR, 64, DESC_WRITE, 0};
	}
	qavail(N_OFF_TX)[2 + tx_avail % NQ] = head;
	__sync_synchronize();
	qavail(N_OFF_TX)[1] = ++tx_avail;
	__sync_synchronize();
	if (kick)
		wr(REG_QUEUE_NOTIFY, 1);
	return 0;
}

/* The next received frame (its header skipped) into buf, within ms: its length, or -1. */
static int nrecv(uint8_t *buf, size_t cap, int ms)
{
	if (used_moved(N_OFF_RX, rx_used, ms))
		return -1;
	volatile uint32_t *e = (volatile uint32_t *)(qused(N_OFF_RX) + 2) + 2 * (rx_used % NQ);
	uint32_t slot = e[0], len = e[1];
	rx_used++;
	wr(REG_INTERRUPT_ACK, rd(REG_INTERRUPT_STATUS));
	if (slot >= NQ || len < NHDR || len > 0x1000) {
		printf("hostile: net: the device used slot %u, %u bytes\n", slot, len);
		return -1;
	}
	size_t n = len - NHDR < cap ? len - NHDR : cap;
	memcpy(buf, (const void *)(scratch + N_OFF_RXBUF + slot * 0x1000u + NHDR), n);
	nrx_post((uint16_t)slot, 0x1000, true);
	wr(REG_QUEUE_NOTIFY, 0);
	return (int)n;
}

/* An ARP request from 10.0.2.15 (our MAC) for ip; 42 bytes into f. */
static uint32_t arp_request(uint8_t *f, const uint8_t ip[4])
{
	static const uint8_t head[] = {0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1};
	memset(f, 0xff, 6);
	memcpy(f + 6, mac, 6);
	memcpy(f + 12, head, sizeof(head));
	memcpy(f + 22, mac, 6);
	memcpy(f + 28, (uint8_t[]){10, 0, 2, 15}, 4);
	memset(f + 32, 0, 6);
	memcpy(f + 38, ip, 4);
	return 42;
}

static const uint8_t gateway[4] = {10, 0, 2, 2};

/* Frames no device may pass on; returns how many were sent. */
static int net_lies(void)
{
	uint8_t f[64];
	uint32_t n = arp_request(f, gateway);
	struct nhdr ok = {0}, h;
	int sent = 0;
	/* Cut short: the header alone, or an Ethernet header cut. */
	sent += nsend(&ok, NULL, 0, TX_ONE, true) == 0;
	sent += nsend(&ok, f, 13, TX_ONE, true) == 0;
	sent += nsend(&ok, f, 5, TX_SPLIT, true) == 0;
	/* Offloads the device did not offer (the NAT takes none). */
	h = ok, h.flags = 1, h.csum_start = 14, h.csum_offset = 16;
	sent += nsend(&h, f, n, TX_ONE, true) == 0;
	h = ok, h.gso_type = 1, h.gso_size = 1460, h.hdr_len = 54;
	sent += nsend(&h, f, n, TX_ONE, true) == 0;
	h = ok, h.gso_type = 3, h.gso_size = 1;
	sent += nsend(&h, f, n, TX_SPLIT, true) == 0;
	h = ok, h.gso_type = 0x80;
	sent += nsend(&h, f, n, TX_ONE, true) == 0;
	h = ok, h.flags = 0xff;
	sent += nsend(&h, f, n, TX_ONE, true) == 0;
	h = ok, h.flags = 1, h.csum_start = 0xffff, h.csum_offset = 0xffff;
	sent += nsend(&h, f, n, TX_SPLIT, true) == 0;
	/* A device-writable buffer in a transmit chain. */
	sent += nsend(&ok, f, n, TX_WRITABLE, true) == 0;
	/* Larger than any MTU, in one descriptor and in two. */
	memset((void *)(scratch + N_OFF_BIG), 0x5a, 70100);
	memcpy((void *)(scratch + N_OFF_BIG + NHDR), f, n);
	sent += nsend(&ok, NULL, 70000, TX_ONE, true) == 0;
	sent += nsend(&ok, NULL, 65536, TX_SPLIT, true) == 0;
	return sent;
}

/* A random frame: mostly well framed and addressed to the backend, with random contents. */
static void net_random(bool kick)
{
	uint8_t f[2048];
	uint32_t len = 1 + (uint32_t)(rnd() % 1600);
	for (uint32_t i = 0; i < len; i += 8) {
		uint64_t v = rnd();
		memcpy(f + i, &v, 8);
	}
	struct nhdr h = {0};
	if (rnd() % 8 == 0)
		memcpy(&h, f + 1024, NHDR);
	if (len >= 34 && rnd() % 4) {
		static const uint8_t gw_mac[6] = {0x52, 0x55, 10, 0, 2, 2};
		static const uint16_t types[] = {0x0008, 0x0608, 0xdd86};
		memcpy(f,
		       rnd() % 2 ? gw_mac : (const uint8_t[]){0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		       6);
		memcpy(f + 6, mac, 6);
		memcpy(f + 12, &types[rnd() % 3], 2);
		if (f[12] == 0x08 && f[13] == 0) { /* IPv4 from 10.0.2.15 to the gateway or DNS */
			static const uint8_t protos[] = {1, 6, 17};
			f[14] = 0x45;
			f[23] = protos[rnd() % 3];
			memcpy(f + 26, (uint8_t[]){10, 0, 2, 15}, 4);
			memcpy(f + 30, (uint8_t[]){10, 0, 2, (uint8_t)(rnd() % 2 ? 2 : 3)}, 4);
		}
	}
	nsend(&h, f, len, rnd() % 16 ? TX_ONE : rnd() % 2 ? TX_SPLIT : TX_WRITABLE, kick);
}

/* Receive buffers the device cannot use, then random frames; the answers are read and dropped. */
static int net_randoms(void)
{
	uint8_t f[64], buf[4096];
	uint32_t n = arp_request(f, gateway);
	struct nhdr ok = {0};
	/* Read-only receive buffers, then 1-byte ones (mergeable: each smaller than a header). */
	net_start(NET_F_MRG_RXBUF, 0x1000, false);
	for (int i = 0; i < 8; i++)
		nsend(&ok, f, n, TX_ONE, true);
	usleep(200000);
	net_start(NET_F_MRG_RXBUF, 1, true);
	for (int i = 0; i < 8; i++)
		nsend(&ok, f, n, TX_ONE, true);
	usleep(200000);
	net_start(0, 1, true);
	for (int i = 0; i < 8; i++)
		nsend(&ok, f, n, TX_ONE, true);
	usleep(200000);
	int got = 0;
	for (int round = 0; round < 30; round++) {
		net_start((round % 2 ? NET_F_MRG_RXBUF : 0) | (round % 3 ? FEATURE_EVENT_IDX : 0) |
				  FEATURE_INDIRECT,
			  0x1000, true);
		for (int i = 0; i < 100; i++) {
			net_random(rnd() % 4 == 0);
			if (i % 16 == 15)
				wr(REG_QUEUE_NOTIFY, 1);
			while (nrecv(buf, sizeof(buf), 0) >= 0)
				got++;
		}
		wr(REG_QUEUE_NOTIFY, 1);
		while (nrecv(buf, sizeof(buf), 20) >= 0)
			got++;
	}
	printf("hostile: net: 3,000 random frames sent, %d frames received\n", got);
	return 0;
}

/* Resets with frames in flight both ways. */
static void net_resets(void)
{
	uint8_t f[64];
	uint32_t n = arp_request(f, gateway);
	struct nhdr ok = {0};
	for (int round = 0; round < 100; round++) {
		net_start(round % 2 ? NET_F_MRG_RXBUF : FEATURE_EVENT_IDX, 0x1000, true);
		for (int i = 0; i < NSLOTS; i++)
			nsend(&ok, f, n, TX_ONE, i % 4 == 0);
		pause_a_little();
		wr(REG_STATUS, 0);
	}
}

/* A clean ARP request for the gateway gets its answer; 0, or -1. */
static int net_clean(void)
{
	usleep(100000);
	net_start(NET_F_MRG_RXBUF | FEATURE_EVENT_IDX, 0x1000, true);
	uint8_t f[64], buf[4096];
	uint32_t n = arp_request(f, gateway);
	struct nhdr ok = {0};
	for (int tries = 0; tries < 5; tries++) {
		nsend(&ok, f, n, TX_ONE, true);
		for (uint64_t until = now_ms() + 2000; now_ms() < until;) {
			int len = nrecv(buf, sizeof(buf), 200);
			if (len >= 42 && buf[12] == 0x08 && buf[13] == 0x06 && buf[21] == 2 &&
			    !memcmp(buf + 28, gateway, 4) && !memcmp(buf + 32, mac, 6))
				return 0;
		}
	}
	return -1;
}

int net_scenario(bool lies_only)
{
	if (unbind_driver("0x0001", NULL, NULL)) {
		fprintf(stderr, "hostile: cannot unbind the kernel's virtio-net driver\n");
		return 2;
	}
	if (find_device(1, NULL, NULL, "network device"))
		return 2;
	net_start(FEATURE_EVENT_IDX, 0x1000, true);
	int lies = net_lies();
	wr(REG_QUEUE_NOTIFY, 1);
	printf("hostile: net: %d malformed frames sent\n", lies);
	if (!lies_only) {
		net_randoms();
		net_resets();
		printf("hostile: net: 100 resets with frames in flight done\n");
	}
	if (net_clean()) {
		printf("hostile: net: the gateway did not answer a clean ARP request\n");
		return 1;
	}
	return 0;
}
