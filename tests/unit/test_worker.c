/*
 * Device worker threads (src/vmm/worker.c): kicks wake them, and a stop reaches them whatever
 * they block in, under their seccomp filter, as the teardown of a VM needs.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "../../src/vmm/sandbox.h"
#include "../../src/vmm/vm.h"
#include "../../src/vmm/worker.h"
#include "check.h"

static int wakes;
static int read_errno;

static void count_kicks(struct worker *w, void *arg)
{
	(void)arg;
	while (worker_wait(w))
		__atomic_add_fetch(&wakes, 1, __ATOMIC_SEQ_CST);
}

/* Blocks in a read nobody will ever satisfy. */
static void block_in_read(struct worker *w, void *arg)
{
	int fd = *(int *)arg;
	char c;
	(void)w;
	read_errno = read(fd, &c, 1) < 0 ? errno : 0;
}

static void worker_wakes_on_kicks_and_stops(void)
{
	struct worker w;
	CHECK(worker_init(&w) == 0);
	CHECK(worker_start(&w, NULL, SANDBOX_CONSOLE, "test", NULL, count_kicks, NULL) == 0);
	for (int i = 0; i < 50 && __atomic_load_n(&wakes, __ATOMIC_SEQ_CST) == 0; i++) {
		worker_kick(&w);
		usleep(10000);
	}
	CHECK(__atomic_load_n(&wakes, __ATOMIC_SEQ_CST) > 0);
	worker_join(&w, 1000); /* the flag and a kick suffice: it returns on its own */
	CHECK(!w.started);
	worker_free(&w);
}

static void worker_stop_interrupts_a_blocking_call(void)
{
	int p[2];
	CHECK(pipe(p) == 0);
	struct worker w;
	CHECK(worker_init(&w) == 0);
	CHECK(worker_start(&w, NULL, SANDBOX_CONSOLE, "test", NULL, block_in_read, &p[0]) == 0);
	usleep(50000); /* well inside read() by now (or about to be: the stop is re-sent) */
	uint64_t t0 = clock_ns();
	worker_join(&w, 10);
	uint64_t ms = (clock_ns() - t0) / 1000000;
	CHECK(!w.started && read_errno == EINTR);
	CHECK(ms < 1000);
	worker_free(&w);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	vm_signals_init();
	TEST(worker_wakes_on_kicks_and_stops);
	TEST(worker_stop_interrupts_a_blocking_call);
	return tests_failed != 0;
}
