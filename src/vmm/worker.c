/* Device worker threads (worker.h). */
#include "worker.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "vm.h"

int worker_init(struct worker *w)
{
	*w = (struct worker){.kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
	return w->kick_fd < 0 ? -errno : 0;
}

static void *trampoline(void *arg)
{
	struct worker *w = arg;
	vm_thread_signals(); /* worker_stop's signal interrupts whatever system call we are in */
	if (w->setup)
		w->setup(w->arg);
	if (vm_thread_sandbox(w->vm, w->sandbox, w->name))
		w->main(w, w->arg);
	return NULL;
}

int worker_start(struct worker *w, struct vm *vm, int sandbox, const char *name,
		 void (*setup)(void *arg), void (*main)(struct worker *w, void *arg), void *arg)
{
	w->vm = vm;
	w->sandbox = sandbox;
	w->name = name;
	w->setup = setup;
	w->main = main;
	w->arg = arg;
	int err = vmm_thread_create(&w->thread, trampoline, w, false);
	if (err)
		return -err;
	__atomic_store_n(&w->started, true, __ATOMIC_RELEASE);
	return 0;
}

void worker_kick(struct worker *w)
{
	uint64_t one = 1;
	ssize_t n = write(w->kick_fd, &one, sizeof(one));
	(void)n; /* the counter cannot overflow in practice */
}

void worker_clear(struct worker *w)
{
	uint64_t v;
	ssize_t n = read(w->kick_fd, &v, sizeof(v));
	(void)n; /* EAGAIN: nothing pending */
}

bool worker_wait(struct worker *w)
{
	while (!worker_stopping(w)) {
		struct pollfd p = {.fd = w->kick_fd, .events = POLLIN};
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return false;
		if (p.revents & POLLIN) {
			worker_clear(w);
			return !worker_stopping(w);
		}
	}
	return false;
}

int worker_wait_ns(struct worker *w, long ns)
{
	if (worker_stopping(w))
		return -1;
	struct pollfd p = {.fd = w->kick_fd, .events = POLLIN};
	struct timespec t = {ns / 1000000000, ns % 1000000000};
	int r = ppoll(&p, 1, &t, NULL);
	if (worker_stopping(w))
		return -1;
	if (r > 0 && (p.revents & POLLIN)) {
		worker_clear(w);
		return 1;
	}
	return 0; /* not within ns, or interrupted: the caller goes on as after a timeout */
}

void worker_stop(struct worker *w)
{
	__atomic_store_n(&w->stopping, true, __ATOMIC_RELEASE);
	worker_kick(w);
	if (__atomic_load_n(&w->started, __ATOMIC_ACQUIRE))
		vm_interrupt_thread(w->thread);
}

void worker_join(struct worker *w, long grace_ms)
{
	if (!__atomic_load_n(&w->started, __ATOMIC_ACQUIRE))
		return;
	/* First the flag and a kick only: the thread finishes what it can without blocking. */
	__atomic_store_n(&w->stopping, true, __ATOMIC_RELEASE);
	worker_kick(w);
	struct timespec until = clock_realtime_in_ms(grace_ms);
	bool joined = grace_ms > 0 && pthread_timedjoin_np(w->thread, NULL, &until) == 0;
	while (!joined) {
		worker_stop(w);
		until = clock_realtime_in_ms(20);
		joined = pthread_timedjoin_np(w->thread, NULL, &until) == 0;
	}
	w->started = false;
}

void worker_free(struct worker *w)
{
	if (w->kick_fd >= 0)
		close(w->kick_fd);
	w->kick_fd = -1;
}
