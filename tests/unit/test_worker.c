/*
 * Device worker threads (src/vmm/worker.c): kicks wake them, and a stop reaches them whatever
 * they block in, under their seccomp filter, as the teardown of a VM needs.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <time.h>
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

/* The timed wait, on the caller's own thread: a timeout, a kick, a stop. */
static void worker_timed_wait_times_out_takes_kicks_and_stops(void)
{
	struct worker w;
	CHECK(worker_init(&w) == 0);
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	CHECK(worker_wait_ns(&w, 2000000) == 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	CHECK((b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec) >= 2000000);
	worker_kick(&w);
	CHECK(worker_wait_ns(&w, 1000000000) == 1);
	CHECK(worker_wait_ns(&w, 1000) == 0); /* the kick was consumed */
	__atomic_store_n(&w.stopping, true, __ATOMIC_RELEASE);
	CHECK(worker_wait_ns(&w, 1000000000) == -1);
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

/* A device thread under its sandbox asking the VM's main thread to run a job. */
static int job_runs;
static void job(void *arg)
{
	job_runs++;
	*(pthread_t *)arg = pthread_self();
}

struct asker {
	struct vm *vm;
	pthread_t ran_on;
	bool ran;
};

static void *ask(void *arg)
{
	struct asker *a = arg;
	if (sandbox_enter(SANDBOX_NAT) == 0)
		a->ran = vm_run_on_caller(a->vm, job, &a->ran_on);
	return NULL;
}

/*
 * vm_run_on_caller: the job runs on the thread that serves the VM's calls (vm_run's), not the
 * asking one, which waits for it; a VM that stops first releases the asker, the job not run.
 */
static void vm_call_runs_on_the_callers_thread(void)
{
	static struct vm vm;
	pthread_mutex_init(&vm.lock, NULL);
	pthread_cond_init(&vm.call_done, NULL);
	vm.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vm.call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct asker a = {.vm = &vm};
	pthread_t t;
	CHECK(pthread_create(&t, NULL, ask, &a) == 0);
	struct pollfd p = {vm.call_fd, POLLIN, 0};
	CHECK(poll(&p, 1, 5000) == 1);
	vm_run_calls(&vm);
	pthread_join(t, NULL);
	CHECK(a.ran && job_runs == 1 && pthread_equal(a.ran_on, pthread_self()));
	struct asker b = {.vm = &vm};
	CHECK(pthread_create(&t, NULL, ask, &b) == 0);
	CHECK(poll(&p, 1, 5000) == 1);
	vm_stop(&vm, EC1_EGUEST, "stopped in the test");
	pthread_join(t, NULL);
	CHECK(!b.ran && job_runs == 1 && vm.calls == NULL);
	vm_run_calls(&vm); /* nothing left to run */
	CHECK(job_runs == 1);
	close(vm.stop_fd);
	close(vm.call_fd);
}

int main(void)
{
	vm_signals_init();
	TEST(worker_wakes_on_kicks_and_stops);
	TEST(worker_stop_interrupts_a_blocking_call);
	TEST(worker_timed_wait_times_out_takes_kicks_and_stops);
	TEST(vm_call_runs_on_the_callers_thread);
	return tests_failed != 0;
}
