/*
 * The virtio-mmio transport alone (virtio 1.2 §4.2), driven as a hostile driver would: the
 * initialisation order of §3.1.1 is enforced, features count only once accepted, and queue sizes
 * are powers of 2.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "ec1/ec1.h"
#include "check.h"
#include "mmio_host.h"

enum {
	DEVICE_FEATURES_SEL = 0x014,
	DRIVER_FEATURES = 0x020,
	DRIVER_FEATURES_SEL = 0x024,
	QUEUE_SEL = 0x030,
	QUEUE_NUM_MAX = 0x034,
	QUEUE_NUM = 0x038,
	QUEUE_READY = 0x044,
	QUEUE_NOTIFY = 0x050,
	INTERRUPT_STATUS = 0x060,
	INTERRUPT_ACK = 0x064,
	STATUS = 0x070,
	QUEUE_DESC_LOW = 0x080,
	QUEUE_DRIVER_LOW = 0x090,
	QUEUE_DEVICE_LOW = 0x0a0,
};
enum { ACK = 1, DRIVER = 2, DRIVER_OK = 4, FEATURES_OK = 8, NEEDS_RESET = 64 };

static struct virtio_mmio_dev *dev;
static struct virtq_chain test_chain;
static unsigned int notified, driver_oks;

static void test_notify(struct virtio_mmio_dev *d, unsigned int q)
{
	(void)d;
	(void)q;
	notified++;
}

static void test_driver_ok(struct virtio_mmio_dev *d)
{
	(void)d;
	driver_oks++;
}

static const struct virtio_dev_ops test_ops = {
	.name = "test",
	.device_id = 1,
	.features = VIRTIO_F_INDIRECT_DESC,
	.num_queues = 2,
	.queue_max = 256,
	.config_size = 8,
	.notify = test_notify,
	.driver_ok = test_driver_ok,
};

static void fresh(void)
{
	if (dev)
		virtio_mmio_free(dev);
	dev = NULL;
	fake_reset();
	notified = driver_oks = 0;
	CHECK((dev = virtio_mmio_new(&fake_host, &test_ops, NULL, 0xd0000000, 5)) != NULL);
}

static void features(uint64_t f)
{
	mmio_write(dev, DRIVER_FEATURES_SEL, 0);
	mmio_write(dev, DRIVER_FEATURES, (uint32_t)f);
	mmio_write(dev, DRIVER_FEATURES_SEL, 1);
	mmio_write(dev, DRIVER_FEATURES, (uint32_t)(f >> 32));
}

static void queue(unsigned int qi, uint32_t num, uint32_t ready)
{
	mmio_write(dev, QUEUE_SEL, qi);
	mmio_write(dev, QUEUE_NUM, num);
	mmio_write(dev, QUEUE_DESC_LOW, 0x10000 + 0x4000 * qi);
	mmio_write(dev, QUEUE_DRIVER_LOW, 0x11000 + 0x4000 * qi);
	mmio_write(dev, QUEUE_DEVICE_LOW, 0x12000 + 0x4000 * qi);
	mmio_write(dev, QUEUE_READY, ready);
}

/* A driver's start (§3.1.1) from a reset: VERSION_1 only, queue 0 of 16 entries. */
static void start_driver(void)
{
	mmio_write(dev, STATUS, 0);
	mmio_write(dev, STATUS, ACK | DRIVER);
	features(VIRTIO_F_VERSION_1);
	mmio_write(dev, STATUS, ACK | DRIVER | FEATURES_OK);
	queue(0, 16, 1);
	mmio_write(dev, STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
}

/* A fresh device that a driver started. */
static void running(void)
{
	fresh();
	start_driver();
}

static void mmio_well_behaved_driver_works(void)
{
	fresh();
	mmio_write(dev, STATUS, ACK | DRIVER);
	features(VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC);
	mmio_write(dev, STATUS, ACK | DRIVER | FEATURES_OK);
	CHECK(mmio_read(dev, STATUS) & FEATURES_OK);
	queue(0, 256, 1);
	queue(1, 64, 1);
	mmio_write(dev, STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
	CHECK(driver_oks == 1 && !fake_failed);
	CHECK(dev->queues[0].ready && dev->queues[0].indirect_ok && !dev->queues[0].event_idx);
	mmio_write(dev, QUEUE_NOTIFY, 1);
	mmio_write(dev, QUEUE_NOTIFY, 7); /* no such queue: ignored */
	CHECK(notified == 1);
}

static void mmio_driver_ok_needs_features_ok(void)
{
	fresh();
	mmio_write(dev, STATUS, ACK | DRIVER);
	features(VIRTIO_F_VERSION_1);
	mmio_write(dev, STATUS, ACK | DRIVER | DRIVER_OK);
	CHECK(driver_oks == 0 && fake_failed);
	CHECK_STR_CONTAINS(fake_fail_msg, "DRIVER_OK without FEATURES_OK");
	CHECK(mmio_read(dev, STATUS) & NEEDS_RESET);
	mmio_write(dev, QUEUE_NOTIFY, 0);
	CHECK(notified == 0);
}

static void mmio_queue_needs_features_ok(void)
{
	fresh();
	mmio_write(dev, STATUS, ACK | DRIVER);
	features(VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC);
	queue(0, 256, 1);
	CHECK(!dev->queues[0].ready && fake_failed);
	CHECK_STR_CONTAINS(fake_fail_msg, "before FEATURES_OK");
	/* Features the device refused (a bit it never offered) are never used either. */
	fresh();
	mmio_write(dev, STATUS, ACK | DRIVER);
	features(VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC | (1ull << 40));
	mmio_write(dev, STATUS, ACK | DRIVER | FEATURES_OK);
	CHECK(!(mmio_read(dev, STATUS) & FEATURES_OK));
	queue(0, 256, 1);
	CHECK(!dev->queues[0].ready && !dev->queues[0].indirect_ok);
}

static void mmio_refuses_queue_sizes_not_a_power_of_two(void)
{
	const uint32_t bad[] = {3, 100, 255, 257, 1024, 0xffffffff};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fresh();
		mmio_write(dev, STATUS, ACK | DRIVER);
		features(VIRTIO_F_VERSION_1);
		mmio_write(dev, STATUS, ACK | DRIVER | FEATURES_OK);
		queue(0, bad[i], 1);
		CHECK(!dev->queues[0].ready && fake_failed);
	}
}

/* A device that takes fewer buffers on queue 1 (as the console's quiet receive queues). */
static uint16_t small_second_queue(const struct virtio_mmio_dev *d, unsigned int q)
{
	(void)d;
	return q == 1 ? 4 : 0;
}

static void mmio_queue_size_per_queue(void)
{
	struct virtio_dev_ops ops = test_ops;
	ops.queue_size = small_second_queue;
	virtio_mmio_free(dev);
	fake_reset();
	CHECK((dev = virtio_mmio_new(&fake_host, &ops, NULL, 0xd0000000, 5)) != NULL);
	mmio_write(dev, QUEUE_SEL, 0);
	CHECK(mmio_read(dev, QUEUE_NUM_MAX) == 256);
	mmio_write(dev, QUEUE_SEL, 1);
	CHECK(mmio_read(dev, QUEUE_NUM_MAX) == 4);
	mmio_write(dev, QUEUE_SEL, 2); /* no such queue */
	CHECK(mmio_read(dev, QUEUE_NUM_MAX) == 0);
	mmio_write(dev, STATUS, ACK | DRIVER);
	features(VIRTIO_F_VERSION_1);
	mmio_write(dev, STATUS, ACK | DRIVER | FEATURES_OK);
	queue(1, 8, 1); /* more than it takes: refused */
	CHECK(!dev->queues[1].ready && fake_failed);
	fake_reset();
	queue(1, 4, 1);
	queue(0, 256, 1);
	CHECK(dev->queues[1].ready && dev->queues[0].ready && !fake_failed);
	virtio_mmio_free(dev);
	dev = NULL;
}

/* §2.1: status bits are cleared only by a reset; features are fixed once accepted. */
static void mmio_status_bits_stay_until_reset(void)
{
	fresh();
	mmio_write(dev, STATUS, ACK | DRIVER);
	features(VIRTIO_F_VERSION_1);
	mmio_write(dev, STATUS, ACK | DRIVER | FEATURES_OK);
	mmio_write(dev, STATUS, ACK | DRIVER); /* tries to take FEATURES_OK back */
	CHECK(mmio_read(dev, STATUS) & FEATURES_OK);
	features(VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC); /* too late: ignored */
	queue(0, 16, 1);
	CHECK(dev->queues[0].ready && !dev->queues[0].indirect_ok);
	mmio_write(dev, STATUS, 0);
	CHECK(mmio_read(dev, STATUS) == 0 && !dev->queues[0].ready);
	CHECK(!fake_failed);
}

/* Config space: the device's bytes within its size, zeros beyond; the generation holds still. */
static void mmio_config_space_and_generation(void)
{
	fresh();
	memcpy(dev->config, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	uint32_t gen = mmio_read(dev, 0x0fc);
	CHECK(mmio_read(dev, 0x100) == 0x04030201 && mmio_read(dev, 0x104) == 0x08070605);
	CHECK(mmio_read(dev, 0x108) == 0); /* past config_size */
	uint8_t b = 0;
	virtio_mmio_access(dev, 0x105, &b, 1, false);
	CHECK(b == 0x06);
	uint8_t wide[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	virtio_mmio_access(dev, 0x104, wide, 8, true); /* crosses the end: dropped */
	CHECK(mmio_read(dev, 0x104) == 0x08070605);
	virtio_mmio_access(dev, 0xffc, wide, 4, false); /* the end of the window */
	CHECK(wide[0] == 0 && wide[3] == 0);
	CHECK(mmio_read(dev, 0x0fc) == gen && !fake_failed);
}

/* A device thread in the middle of its queues. */
static void *hold_queues(void *arg)
{
	volatile int *state = arg;
	virtio_mmio_queues_begin(dev);
	*state = 1;
	usleep(200000);
	*state = 2; /* still ready here: the reset waited */
	CHECK(dev->queues[0].ready);
	virtio_mmio_queues_end(dev);
	return NULL;
}

/* A reset from the driver waits until no device thread uses the rings, then clears them. */
static void mmio_reset_waits_for_the_device_thread(void)
{
	running();
	volatile int state = 0;
	pthread_t t;
	CHECK(pthread_create(&t, NULL, hold_queues, (void *)&state) == 0);
	while (state == 0)
		usleep(1000);
	mmio_write(dev, STATUS, 0);
	CHECK(state == 2 && !dev->queues[0].ready && mmio_read(dev, STATUS) == 0);
	pthread_join(t, NULL);
}

static void spun(int sig)
{
	static const char m[] = "FAIL: mmio_serve_does_not_spin_on_an_index_moving_back: still "
				"serving after 5 s\n";
	(void)sig;
	ssize_t n = write(1, m, sizeof(m) - 1);
	(void)n;
	_exit(1);
}

static int64_t answer(void *ctx, struct virtq_chain *c)
{
	(void)ctx;
	(void)c;
	return 0;
}

/*
 * Found by fuzz_mmio: a used ring whose flags lay on the available index flipped it at every
 * pass, and serving spun for ever (the device thread then ignored every stop). Enabling such a
 * ring is refused now; and serving gives up on an index that moves back, whatever the layout.
 */
static void mmio_serve_does_not_spin_on_an_index_moving_back(void)
{
	fresh();
	mmio_write(dev, STATUS, ACK | DRIVER);
	features(VIRTIO_F_VERSION_1);
	mmio_write(dev, STATUS, ACK | DRIVER | FEATURES_OK);
	queue(0, 16, 1);
	CHECK(dev->queues[0].ready);
	/* The layout enable refuses, made behind its back: used flags on the available index (the
	 * available ring moved 2 bytes before the used one, which stays aligned). */
	dev->queues[0].avail = (volatile uint16_t *)(dev->queues[0].used - 2);
	signal(SIGALRM, spun);
	alarm(5); /* a spin fails the test instead of hanging it */
	virtio_mmio_queues_begin(dev);
	int served = virtio_mmio_serve(dev, 0, &test_chain, answer, NULL);
	virtio_mmio_queues_end(dev);
	alarm(0);
	CHECK(served >= 0);
	/* And through the registers: the same layout is refused at QUEUE_READY. */
	fresh();
	mmio_write(dev, STATUS, ACK | DRIVER);
	features(VIRTIO_F_VERSION_1);
	mmio_write(dev, STATUS, ACK | DRIVER | FEATURES_OK);
	mmio_write(dev, QUEUE_SEL, 0);
	mmio_write(dev, QUEUE_NUM, 16);
	mmio_write(dev, QUEUE_DESC_LOW, 0x10000);
	mmio_write(dev, QUEUE_DRIVER_LOW, 0x11000);
	mmio_write(dev, QUEUE_DEVICE_LOW, 0x11000);
	mmio_write(dev, QUEUE_READY, 1);
	CHECK(!dev->queues[0].ready && fake_failed);
	CHECK_STR_CONTAINS(fake_fail_msg, "overlapping");
}

/* Like a console write: lets go of the queues, and meanwhile the driver resets and starts again. */
static int64_t reset_meanwhile(void *ctx, struct virtq_chain *c)
{
	int *calls = ctx;
	(void)c;
	if ((*calls)++)
		return 64; /* once is enough */
	virtio_mmio_queues_end(dev);
	start_driver();
	virtio_mmio_queues_begin(dev);
	return 64;
}

/* A chain popped before a reset is never returned into the queue that followed it. */
/*
 * InterruptACK waits in KVM's coalesced ring (the zone the device asks for) and may come late:
 * an acknowledgement clears InterruptStatus only when no interrupt came after the read it
 * answers, so a late one never hides an interrupt the driver has not seen.
 */
static void mmio_late_acknowledgement_keeps_a_newer_interrupt(void)
{
	running();
	CHECK(fake_coalesced(0xd0000000 + INTERRUPT_ACK, 4));
	virtio_mmio_signal(dev, 0);
	CHECK(fake_irqs == 1 && mmio_read(dev, INTERRUPT_STATUS) == 1);
	mmio_write(dev, INTERRUPT_ACK, 1); /* in time: cleared */
	CHECK(mmio_read(dev, INTERRUPT_STATUS) == 0);
	virtio_mmio_signal(dev, 0);
	CHECK(mmio_read(dev, INTERRUPT_STATUS) == 1);
	virtio_mmio_signal(dev, 0); /* after the read: the driver has not seen this one */
	uint32_t one = 1;
	uint64_t before = dev->nr_coalesced;
	virtio_mmio_write_coalesced(dev, INTERRUPT_ACK, (uint8_t *)&one, 4);
	CHECK(fake_irqs == 3 && mmio_read(dev, INTERRUPT_STATUS) == 1);
	virtio_mmio_write_coalesced(dev, INTERRUPT_ACK, (uint8_t *)&one, 4);
	CHECK(mmio_read(dev, INTERRUPT_STATUS) == 0);
	CHECK(dev->nr_coalesced == before + 2);
}

/*
 * The writes that wait in the coalesced ring are those whose effect only a later exiting access
 * can show (selectors, the driver's features, a queue's size and addresses, InterruptACK): never
 * Status, QueueReady, QueueReset, QueueNotify or the config space, which act at once. A driver's
 * whole start, with its set-up writes coalesced (mmio_write sends them as KVM would), gives a
 * running queue with 3 exits for it instead of 8.
 */
static void mmio_only_set_up_writes_are_coalesced(void)
{
	fresh();
	static const uint32_t never[] = {STATUS,
					 QUEUE_READY,
					 0x0c0 /* QueueReset */,
					 QUEUE_NOTIFY,
					 INTERRUPT_STATUS,
					 QUEUE_NUM_MAX,
					 0x0fc,
					 0x100,
					 0x104};
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		for (uint32_t b = 0; b < 4; b++)
			CHECK(!fake_coalesced(0xd0000000 + never[i] + b, 1));
	static const uint32_t waits[] = {DEVICE_FEATURES_SEL,
					 DRIVER_FEATURES,
					 DRIVER_FEATURES_SEL,
					 QUEUE_SEL,
					 QUEUE_NUM,
					 QUEUE_DESC_LOW,
					 QUEUE_DESC_LOW + 4,
					 QUEUE_DRIVER_LOW,
					 QUEUE_DRIVER_LOW + 4,
					 QUEUE_DEVICE_LOW,
					 QUEUE_DEVICE_LOW + 4,
					 INTERRUPT_ACK};
	for (size_t i = 0; i < sizeof(waits) / sizeof(waits[0]); i++)
		CHECK(fake_coalesced(0xd0000000 + waits[i], 4));
	uint64_t exits = dev->nr_exits;
	queue(1, 64, 1); /* before FEATURES_OK: refused at QueueReady, which exits */
	CHECK(fake_failed && dev->nr_exits == exits + 1);
	fresh();
	start_driver();
	CHECK(!fake_failed && (mmio_read(dev, STATUS) & DRIVER_OK));
	exits = dev->nr_exits;
	uint64_t waited = dev->nr_coalesced;
	queue(1, 64, 1);
	CHECK(dev->nr_exits == exits + 1 && dev->nr_coalesced == waited + 5 && !fake_failed);
	mmio_write(dev, QUEUE_SEL, 1);
	CHECK(mmio_read(dev, QUEUE_READY) == 1 && dev->queues[1].num == 64 &&
	      dev->queues[1].desc_gpa == 0x14000 && dev->queues[1].used_gpa == 0x16000);
}

static void mmio_chain_from_before_a_reset_is_dropped(void)
{
	running();
	uint8_t *m = fake_mem.regions[0].host;
	memset(m + 0x10000, 0, 0x3000);
	struct virtq_desc d = {.addr = 0x20000, .len = 64, .flags = VIRTQ_DESC_F_WRITE};
	memcpy(m + 0x10000, &d, sizeof(d));
	uint16_t one = 1;
	memcpy(m + 0x11002, &one, 2); /* avail idx 1, ring[0] = head 0 */
	virtio_mmio_queues_begin(dev);
	int calls = 0;
	int served = virtio_mmio_serve(dev, 0, &test_chain, reset_meanwhile, &calls);
	virtio_mmio_queues_end(dev);
	uint16_t used_idx;
	memcpy(&used_idx, m + 0x12002, 2);
	CHECK(served == 0 && used_idx == 0 && dev->queues[0].used_idx == 0 && !fake_failed);
}

static uint32_t page_word(const uint8_t *page, uint32_t off)
{
	uint32_t v;
	memcpy(&v, page + off, 4);
	return v;
}

/*
 * Registers in a page the guest reads without exits: after each write of a driver's start, a
 * failure, a reset and a config write the page shows what a read returns; the selectors exit
 * (the read right after one must see it), the rest of the set-up still waits in the ring; the
 * VRING bit of InterruptStatus stays from an interrupt to the next reset.
 */
static void mmio_register_page_shows_what_reads_return(void)
{
	static uint8_t page[4096] __attribute__((aligned(4096)));
	const uint64_t base = 0xd0001000; /* zones of its own, apart from the other tests' device */
	memset(page, 0xee, sizeof(page));
	if (dev)
		virtio_mmio_free(dev);
	fake_reset();
	fake_page = page;
	CHECK((dev = virtio_mmio_new(&fake_host, &test_ops, NULL, base, 6)) != NULL);
	fake_page = NULL;
	CHECK(dev->page == page && page_word(page, 0) == 0x74726976 &&
	      page_word(page, INTERRUPT_STATUS) == 0 && page_word(page, 0xffc) == 0);
	memcpy(dev->config, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	virtio_mmio_sync_page(dev);
	CHECK(fake_page_matches(dev) && page_word(page, 0x104) == 0x08070605);
	CHECK(!fake_coalesced(base + DEVICE_FEATURES_SEL, 4) &&
	      !fake_coalesced(base + QUEUE_SEL, 4));
	CHECK(fake_coalesced(base + INTERRUPT_ACK, 4) && fake_coalesced(base + QUEUE_NUM, 4) &&
	      fake_coalesced(base + DRIVER_FEATURES, 4));
	mmio_write(dev, STATUS, ACK | DRIVER);
	mmio_write(dev, DEVICE_FEATURES_SEL, 1);
	CHECK(page_word(page, 0x010) == (uint32_t)(VIRTIO_F_VERSION_1 >> 32));
	mmio_write(dev, DEVICE_FEATURES_SEL, 0);
	CHECK(page_word(page, 0x010) == (uint32_t)(VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX));
	CHECK(fake_page_matches(dev));
	features(VIRTIO_F_VERSION_1);
	mmio_write(dev, STATUS, ACK | DRIVER | FEATURES_OK);
	CHECK(page_word(page, STATUS) == (ACK | DRIVER | FEATURES_OK));
	memset(fake_mem.regions[0].host + 0x10000, 0, 0x3000); /* queue 0's rings: no flags */
	queue(0, 16, 1);
	mmio_write(dev, QUEUE_SEL, 1);
	CHECK(page_word(page, QUEUE_NUM_MAX) == 256 && page_word(page, QUEUE_READY) == 0);
	mmio_write(dev, QUEUE_SEL, 0);
	CHECK(page_word(page, QUEUE_READY) == 1);
	mmio_write(dev, STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
	CHECK(fake_page_matches(dev) && !fake_failed);
	virtio_mmio_signal(dev, 0);
	CHECK(fake_irqs == 1 && page_word(page, INTERRUPT_STATUS) == 1);
	mmio_write(dev, INTERRUPT_ACK, 1);
	CHECK(page_word(page, INTERRUPT_STATUS) == 1);
	virtio_mmio_fail(dev, "a test's failure");
	CHECK((page_word(page, STATUS) & NEEDS_RESET) && fake_page_matches(dev));
	mmio_write(dev, STATUS, 0);
	CHECK(page_word(page, INTERRUPT_STATUS) == 0 && page_word(page, STATUS) == 0);
	CHECK(fake_page_matches(dev));
	uint32_t v = 0xabcdef01;
	virtio_mmio_access(dev, 0x104, (uint8_t *)&v, 4, true);
	CHECK(page_word(page, 0x104) == 0xabcdef01 && fake_page_matches(dev));
	virtio_mmio_free(dev);
	dev = NULL;
}

int main(void)
{
	if (guest_mem_init(&fake_mem, 1 << 20))
		return 1;
	TEST(mmio_well_behaved_driver_works);
	TEST(mmio_driver_ok_needs_features_ok);
	TEST(mmio_queue_needs_features_ok);
	TEST(mmio_refuses_queue_sizes_not_a_power_of_two);
	TEST(mmio_queue_size_per_queue);
	TEST(mmio_status_bits_stay_until_reset);
	TEST(mmio_config_space_and_generation);
	TEST(mmio_reset_waits_for_the_device_thread);
	TEST(mmio_serve_does_not_spin_on_an_index_moving_back);
	TEST(mmio_chain_from_before_a_reset_is_dropped);
	TEST(mmio_late_acknowledgement_keeps_a_newer_interrupt);
	TEST(mmio_only_set_up_writes_are_coalesced);
	TEST(mmio_register_page_shows_what_reads_return);
	virtio_mmio_free(dev);
	guest_mem_free(&fake_mem);
	return tests_failed != 0;
}
