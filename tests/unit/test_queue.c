/* Virtqueue handling over a fake guest memory: well-formed chains, and hostile ones. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../../src/vmm/guest_mem.h"
#include "../../src/vmm/virtio/coalesce.h"
#include "../../src/vmm/virtio/queue.h"
#include <errno.h>
#include "check.h"

#define QSIZE 8
#define DESC  0x1000
#define AVAIL 0x2000
#define USED  0x3000

static struct guest_mem mem;
static struct virtq q;

static struct virtq_desc *desc(unsigned int i)
{
	return (struct virtq_desc *)guest_mem_ptr(&mem, DESC + 16 * i, 16);
}

static uint16_t *avail(void)
{
	return guest_mem_ptr(&mem, AVAIL, 6 + 2 * QSIZE);
}

static void setup(void)
{
	memset(mem.regions[0].host, 0, 0x10000);
	virtq_reset(&q);
	q.num = QSIZE;
	q.desc_gpa = DESC;
	q.avail_gpa = AVAIL;
	q.used_gpa = USED;
	CHECK(virtq_enable(&q, &mem) == 0);
}

/* Makes descriptor head the next available entry. */
static void offer(uint16_t head)
{
	uint16_t *a = avail();
	a[2 + a[1] % QSIZE] = head;
	a[1]++;
}

static void queue_pops_readable_then_writable_chain(void)
{
	setup();
	*desc(0) = (struct virtq_desc){
		.addr = 0x8000, .len = 100, .flags = VIRTQ_DESC_F_NEXT, .next = 1};
	*desc(1) = (struct virtq_desc){.addr = 0x9000, .len = 200, .flags = VIRTQ_DESC_F_WRITE};
	offer(0);
	struct virtq_chain c;
	CHECK(virtq_pop(&q, &mem, &c) == 1);
	CHECK(c.head == 0 && c.n_out == 1 && c.n_in == 1);
	CHECK(c.out_len == 100 && c.in_len == 200);
	CHECK(c.out[0].iov_base == guest_mem_ptr(&mem, 0x8000, 1));
	CHECK(virtq_pop(&q, &mem, &c) == 0);
	virtq_push(&q, c.head, 42);
	uint32_t *used = guest_mem_ptr(&mem, USED, 16);
	CHECK((used[0] >> 16) == 1);	      /* used idx */
	CHECK(used[1] == 0 && used[2] == 42); /* id, len */
}

static void queue_rejects_head_out_of_range(void)
{
	setup();
	offer(QSIZE);
	struct virtq_chain c;
	CHECK(virtq_pop(&q, &mem, &c) == -EINVAL);
}

static void queue_rejects_descriptor_loop(void)
{
	setup();
	*desc(0) = (struct virtq_desc){
		.addr = 0x8000, .len = 1, .flags = VIRTQ_DESC_F_NEXT, .next = 1};
	*desc(1) = (struct virtq_desc){
		.addr = 0x8000, .len = 1, .flags = VIRTQ_DESC_F_NEXT, .next = 0};
	offer(0);
	struct virtq_chain c;
	CHECK(virtq_pop(&q, &mem, &c) == -EINVAL);
}

static void queue_rejects_address_outside_memory(void)
{
	setup();
	*desc(0) = (struct virtq_desc){.addr = (1ull << 20) - 10, .len = 100};
	offer(0);
	struct virtq_chain c;
	CHECK(virtq_pop(&q, &mem, &c) == -EINVAL);
	setup();
	*desc(0) = (struct virtq_desc){.addr = UINT64_MAX - 5, .len = 10};
	offer(0);
	CHECK(virtq_pop(&q, &mem, &c) == -EINVAL);
}

static void queue_rejects_readable_after_writable(void)
{
	setup();
	*desc(0) = (struct virtq_desc){.addr = 0x8000,
				       .len = 8,
				       .flags = VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
				       .next = 1};
	*desc(1) = (struct virtq_desc){.addr = 0x9000, .len = 8};
	offer(0);
	struct virtq_chain c;
	CHECK(virtq_pop(&q, &mem, &c) == -EINVAL);
}

static struct virtq_desc *indirect_chain(bool negotiated)
{
	setup();
	q.indirect_ok = negotiated;
	*desc(0) = (struct virtq_desc){.addr = 0x4000, .len = 32, .flags = VIRTQ_DESC_F_INDIRECT};
	struct virtq_desc *table = guest_mem_ptr(&mem, 0x4000, 32);
	table[0] = (struct virtq_desc){
		.addr = 0x8000, .len = 4, .flags = VIRTQ_DESC_F_NEXT, .next = 1};
	table[1] = (struct virtq_desc){.addr = 0x9000, .len = 4, .flags = VIRTQ_DESC_F_WRITE};
	offer(0);
	return table;
}

static void queue_rejects_indirect_unless_negotiated(void)
{
	struct virtq_chain c;
	indirect_chain(false);
	CHECK(virtq_pop(&q, &mem, &c) == -EINVAL);
	indirect_chain(true);
	CHECK(virtq_pop(&q, &mem, &c) == 1);
	CHECK(c.n_out == 1 && c.n_in == 1 && c.in_len == 4);
	/* An indirect table whose entry points past its end. */
	indirect_chain(true)[0].next = 7;
	CHECK(virtq_pop(&q, &mem, &c) == -EINVAL);
}

static void queue_rejects_avail_index_jump(void)
{
	setup();
	avail()[1] = QSIZE + 1; /* more new entries than the ring has */
	struct virtq_chain c;
	CHECK(virtq_pop(&q, &mem, &c) == -EINVAL);
}

static void queue_enable_rejects_rings_outside_memory(void)
{
	virtq_reset(&q);
	q.num = QSIZE;
	q.desc_gpa = (1 << 20) - 16;
	q.avail_gpa = AVAIL;
	q.used_gpa = USED;
	CHECK(virtq_enable(&q, &mem) == -EINVAL);
	q.desc_gpa = DESC + 1; /* misaligned */
	CHECK(virtq_enable(&q, &mem) == -EINVAL);
	q.desc_gpa = DESC;
	q.num = 0;
	CHECK(virtq_enable(&q, &mem) == -EINVAL);
}

/* §2.7: split queue sizes are powers of 2; 3, 6 or 1000 would wrap the rings wrongly at 65536. */
static void queue_enable_rejects_sizes_not_a_power_of_two(void)
{
	const uint16_t bad[] = {3, 5, 6, 7, 1000, 1023}, good[] = {1, 2, 4, 8, 256, 1024};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		virtq_reset(&q);
		q.num = bad[i];
		q.desc_gpa = DESC;
		q.avail_gpa = AVAIL;
		q.used_gpa = USED;
		CHECK(virtq_enable(&q, &mem) == -EINVAL && !q.ready);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		virtq_reset(&q);
		q.num = good[i];
		q.desc_gpa = DESC;
		q.avail_gpa = 0x5000;
		q.used_gpa = 0x6000;
		CHECK(virtq_enable(&q, &mem) == 0);
	}
}

/* The device writes the used ring: it may not lie on the rings it reads (issue 12, fuzz_mmio). */
static void queue_enable_rejects_overlapping_rings(void)
{
	const uint64_t layouts[][3] = {
		{DESC, DESC + 16 * QSIZE - 2, USED},	  /* avail inside the descriptor table */
		{DESC, AVAIL, AVAIL},			  /* used flags on the available flags */
		{DESC, AVAIL, AVAIL - 4},		  /* used idx on the available idx... */
		{DESC, AVAIL, DESC + 16 * QSIZE - 4},	  /* used inside the descriptor table */
		{DESC, AVAIL + 4 + 2 * QSIZE - 4, AVAIL}, /* avail ring's end on used flags */
	};
	for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++) {
		virtq_reset(&q);
		q.num = QSIZE;
		q.desc_gpa = layouts[i][0];
		q.avail_gpa = layouts[i][1];
		q.used_gpa = layouts[i][2];
		CHECK(virtq_enable(&q, &mem) == -EINVAL && !q.ready);
	}
	virtq_reset(&q); /* back to back is fine */
	q.num = QSIZE;
	q.desc_gpa = DESC;
	q.avail_gpa = DESC + 16 * QSIZE;
	q.used_gpa = (DESC + 16 * QSIZE + 6 + 2 * QSIZE + 3) & ~3ull;
	CHECK(virtq_enable(&q, &mem) == 0);
}

static void guest_mem_ptr_checks_bounds(void)
{
	CHECK(guest_mem_ptr(&mem, 0, 1 << 20) != NULL);
	CHECK(guest_mem_ptr(&mem, 1, 1 << 20) == NULL);
	CHECK(guest_mem_ptr(&mem, (1 << 20) - 1, 1) != NULL);
	CHECK(guest_mem_ptr(&mem, 1 << 20, 1) == NULL);
	CHECK(guest_mem_ptr(&mem, UINT64_MAX, 2) == NULL);
	CHECK(guest_mem_ptr(&mem, 16, UINT64_MAX) == NULL);
}

/* KVM maps guest RAM with 2 MiB pages only where the host address is 2 MiB aligned too. */
static void guest_mem_regions_are_2mib_aligned(void)
{
	struct guest_mem big;
	/* Above the PCI hole: a low and a high region (address space only, never touched). */
	CHECK(guest_mem_init(&big, 4ull << 30) == 0);
	CHECK(big.nr_regions == 2);
	for (unsigned int i = 0; i < big.nr_regions; i++)
		CHECK(((uintptr_t)big.regions[i].host & ((2u << 20) - 1)) == 0);
	uint8_t *last = guest_mem_ptr(&big, GUEST_MEM_HIGH_START + (1ull << 30) - 1, 1);
	CHECK(last != NULL);
	if (last)
		*last = 1; /* the whole region is mapped, the alignment slack is not */
	guest_mem_free(&big);
	CHECK(((uintptr_t)mem.regions[0].host & ((2u << 20) - 1)) == 0);
}

static void iov_copies_across_segments(void)
{
	char a[3], b[5], out[8];
	struct iovec iov[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
	CHECK(iov_from_buf(iov, 2, 0, "abcdefgh", 8) == 8);
	CHECK(memcmp(a, "abc", 3) == 0 && memcmp(b, "defgh", 5) == 0);
	CHECK(iov_to_buf(iov, 2, 0, out, 6) == 6);
	CHECK(memcmp(out, "abcdef", 6) == 0);
	CHECK(iov_from_buf(iov, 2, 0, "0123456789", 10) == 8);
	/* From an offset: within the first segment, at a boundary, past the end. */
	CHECK(iov_to_buf(iov, 2, 2, out, 8) == 6 && memcmp(out, "234567", 6) == 0);
	CHECK(iov_to_buf(iov, 2, 3, out, 2) == 2 && memcmp(out, "34", 2) == 0);
	CHECK(iov_to_buf(iov, 2, 8, out, 8) == 0 && iov_to_buf(iov, 2, 99, out, 8) == 0);
	CHECK(iov_from_buf(iov, 2, 4, "xyz", 3) == 3 && memcmp(b, "3xyz7", 5) == 0);
}

/* Kicks go off while a device thread drains, and back on only when the ring is really empty. */
static void queue_notify_back_on_only_when_empty(void)
{
	setup();
	uint16_t *used_flags = guest_mem_ptr(&mem, USED, 2);
	*desc(0) = (struct virtq_desc){.addr = 0x8000, .len = 1};
	*desc(1) = (struct virtq_desc){.addr = 0x8000, .len = 1};
	virtq_set_no_notify(&q, true);
	CHECK(*used_flags == VIRTQ_USED_F_NO_NOTIFY);
	offer(0);
	struct virtq_chain c;
	CHECK(virtq_pop(&q, &mem, &c) == 1);
	offer(1); /* added while the device was busy: it must be found, kicks stay off */
	CHECK(virtq_notify_on_if_empty(&q));
	CHECK(*used_flags == VIRTQ_USED_F_NO_NOTIFY);
	CHECK(virtq_pop(&q, &mem, &c) == 1 && c.head == 1);
	CHECK(!virtq_notify_on_if_empty(&q));
	CHECK(*used_flags == 0);
}

/* With VIRTIO_F_EVENT_IDX the rings' event fields decide kicks and interrupts (§2.7.10). */
static void queue_event_idx_fields_rule(void)
{
	setup();
	q.event_idx = true;
	uint16_t *avail_event = guest_mem_ptr(&mem, USED + 4 + 8 * QSIZE, 2);
	uint16_t *used_event = avail() + 2 + QSIZE;
	*desc(0) = (struct virtq_desc){.addr = 0x8000, .len = 1};
	struct virtq_chain c;
	/* Kick wanted after 4 more buffers: the event index is 3 past what we have taken. */
	CHECK(!virtq_notify_after_if_empty(&q, 4));
	CHECK(*avail_event == 3);
	CHECK(*(uint16_t *)guest_mem_ptr(&mem, USED, 2) == 0); /* flags untouched */
	offer(0);
	CHECK(virtq_outstanding(&q) == 1);
	CHECK(virtq_pop(&q, &mem, &c) == 1);
	virtq_push(&q, c.head, 0);
	CHECK(virtq_outstanding(&q) == 0);
	/* The first decision always interrupts; then only once used passes used_event. */
	*used_event = 5;
	CHECK(virtq_should_interrupt(&q));
	for (int k = 0; k < 3; k++) {
		offer(0);
		CHECK(virtq_pop(&q, &mem, &c) == 1);
		virtq_push(&q, c.head, 0);
	}
	CHECK(!virtq_should_interrupt(&q)); /* used 4: has not passed 5 */
	for (int k = 0; k < 2; k++) {
		offer(0);
		CHECK(virtq_pop(&q, &mem, &c) == 1);
		virtq_push(&q, c.head, 0);
	}
	CHECK(virtq_should_interrupt(&q));  /* used 6: the 6th entry (index 5) is out */
	CHECK(!virtq_should_interrupt(&q)); /* nothing new since */
}

/* The driver's rule for a kick with VIRTIO_F_EVENT_IDX (§2.7.10): its index moved old -> new. */
static bool driver_kicks(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

/* Kicks off entirely (a device looking at the ring itself), in both notification modes. */
static void queue_kicks_off_until_turned_on(void)
{
	setup();
	uint16_t *used_flags = guest_mem_ptr(&mem, USED, 2);
	*desc(0) = (struct virtq_desc){.addr = 0x8000, .len = 1};
	virtq_kicks_off(&q);
	CHECK(*used_flags == VIRTQ_USED_F_NO_NOTIFY);
	CHECK(!virtq_notify_on_if_empty(&q));
	CHECK(*used_flags == 0);

	setup();
	q.event_idx = true;
	uint16_t *avail_event = guest_mem_ptr(&mem, USED + 4 + 8 * QSIZE, 2);
	struct virtq_chain c;
	for (int k = 0; k < 3; k++) { /* taken and returned: the driver's index is 3 */
		offer(0);
		CHECK(virtq_pop(&q, &mem, &c) == 1);
		virtq_push(&q, c.head, 0);
	}
	/* virtq_set_no_notify lets one more kick through; virtq_kicks_off none. */
	CHECK(!virtq_notify_on_if_empty(&q));
	CHECK(driver_kicks(*avail_event, 4, 3));
	virtq_kicks_off(&q);
	CHECK(!driver_kicks(*avail_event, 4, 3));
	offer(0);
	CHECK(!driver_kicks(*avail_event, 5, 4)); /* nor at the one after */
	CHECK(virtq_outstanding(&q) == 1);
	/* Turned on while a buffer waits: it is found, and taken with kicks still off. */
	CHECK(virtq_notify_on_if_empty(&q));
	CHECK(virtq_pop(&q, &mem, &c) == 1);
	virtq_push(&q, c.head, 0);
	CHECK(!virtq_notify_on_if_empty(&q));
	CHECK(driver_kicks(*avail_event, 5, 4)); /* the next one kicks */
}

/* The interrupt hold's decisions (coalesce.h): off to start, probes, on, off, the knob. */
static void coalesce_holds_only_while_requests_come(void)
{
	struct coalesce c;
	CHECK(coalesce_init(&c, NULL) == 0);
	/* One request at a time: no hold but a probe at the 16th kick, then 32 later, then 64. */
	int probes_at[3], n = 0;
	for (int i = 1; i <= 112 && n < 3; i++) {
		int64_t w = coalesce_window(&c);
		if (w) {
			CHECK(w == COALESCE_PROBE_NS);
			probes_at[n++] = i;
			coalesce_signalled(&c, w, 0);
		} else {
			coalesce_served(&c, 1);
		}
	}
	CHECK(n == 3 && probes_at[0] == 16 && probes_at[1] == 48 && probes_at[2] == 112);
	/* A batch of two (the driver added while the device served): on from the next kick. */
	coalesce_served(&c, 2);
	CHECK(coalesce_window(&c) == COALESCE_PROBE_NS);
	coalesce_caught(&c, 10000);
	coalesce_signalled(&c, COALESCE_PROBE_NS, 1);
	CHECK(coalesce_window(&c) == 40000); /* four times the catches' mean */
	for (int i = 0; i < 40; i++)	     /* long waits: the window is capped */
		coalesce_caught(&c, 1000000);
	coalesce_signalled(&c, 40000, 1);
	CHECK(coalesce_window(&c) == COALESCE_MAX_NS);
	/* Three holds in a row that catch nothing: off, and the next probe at the 16th kick. */
	for (int i = 0; i < 3; i++)
		coalesce_signalled(&c, coalesce_window(&c), 0);
	for (int i = 1; i < 16; i++) {
		CHECK(coalesce_window(&c) == 0);
		coalesce_served(&c, 1);
	}
	CHECK(coalesce_window(&c) == COALESCE_PROBE_NS);
	/*
	 * Batches of several whose first hold catches nothing (a device thread kept off its
	 * CPU): off after that one hold, and such batches not taken for 16, then 32, 64, 128
	 * batches; a catch trusts them again at once.
	 */
	CHECK(coalesce_init(&c, NULL) == 0);
	int holds_at[4];
	n = 0;
	for (int i = 1; i <= 200 && n < 4; i++) {
		c.probe_in = 1000; /* (no probes in the way) */
		int64_t w = coalesce_window(&c);
		if (w) {
			holds_at[n++] = i;
			coalesce_signalled(&c, w, 0);
		} else {
			coalesce_served(&c, 2);
		}
	}
	CHECK(n == 4 && holds_at[0] == 2 && holds_at[1] == 20 && holds_at[2] == 54 &&
	      holds_at[3] == 120);
	CHECK(c.trials_missed == 4 && c.evidence == 4);
	for (int i = 0; i < 128; i++) { /* 128 batches after the fourth */
		coalesce_served(&c, 2);
		CHECK(!c.window_ns);
	}
	coalesce_served(&c, 2);
	CHECK(coalesce_window(&c) == COALESCE_PROBE_NS);
	coalesce_caught(&c, 10000);
	coalesce_signalled(&c, COALESCE_PROBE_NS, 1);
	for (int i = 0; i < 3; i++) /* confirmed: three misses to turn off */
		coalesce_signalled(&c, coalesce_window(&c), 0);
	CHECK(coalesce_window(&c) == 0);
	coalesce_served(&c, 2);
	CHECK(coalesce_window(&c) == 40000); /* trusted again at once */
	/* The knob: off never holds, even after batches of many; a number is every batch's. */
	CHECK(coalesce_init(&c, "off") == 0);
	coalesce_served(&c, 8);
	CHECK(coalesce_window(&c) == 0);
	CHECK(coalesce_init(&c, "50") == 0);
	CHECK(coalesce_window(&c) == 50000);
	coalesce_signalled(&c, 50000, 0);
	coalesce_signalled(&c, 50000, 0);
	coalesce_signalled(&c, 50000, 0);
	CHECK(coalesce_window(&c) == 50000);
	CHECK(coalesce_init(&c, "adaptive") == 0 && c.fixed_ns == -1);
	const char *bad[] = {"", "x", "-5", "0", "201", "50us", "99999999999999999999"};
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(coalesce_init(&c, bad[i]) == -1);
		CHECK(c.fixed_ns == -1);
	}
}

int main(void)
{
	if (guest_mem_init(&mem, 1 << 20))
		return 1;
	TEST(queue_pops_readable_then_writable_chain);
	TEST(queue_rejects_head_out_of_range);
	TEST(queue_rejects_descriptor_loop);
	TEST(queue_rejects_address_outside_memory);
	TEST(queue_rejects_readable_after_writable);
	TEST(queue_rejects_indirect_unless_negotiated);
	TEST(queue_rejects_avail_index_jump);
	TEST(queue_enable_rejects_rings_outside_memory);
	TEST(queue_enable_rejects_sizes_not_a_power_of_two);
	TEST(queue_enable_rejects_overlapping_rings);
	TEST(queue_notify_back_on_only_when_empty);
	TEST(queue_event_idx_fields_rule);
	TEST(queue_kicks_off_until_turned_on);
	TEST(coalesce_holds_only_while_requests_come);
	TEST(guest_mem_ptr_checks_bounds);
	TEST(guest_mem_regions_are_2mib_aligned);
	TEST(iov_copies_across_segments);
	guest_mem_free(&mem);
	return tests_failed != 0;
}
