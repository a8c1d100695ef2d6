/*
 * A device's worker thread: woken by kicks on an eventfd, stopped by a flag, that eventfd and a
 * signal that interrupts whatever system call the thread is blocked in. Every device thread is
 * one (virtio-fs, the console's), so that a stop always reaches it, and runs under the
 * seccomp allow-list of its kind once its own set-up is done.
 */
#ifndef EC1_VMM_WORKER_H
#define EC1_VMM_WORKER_H

#include <pthread.h>
#include <stdbool.h>

struct vm;

/*
 * The stack of every thread the VMM starts (device workers, vCPUs, the NAT's loader): 1 MiB, far
 * beyond the deepest path (its largest frames are 32 KiB), and too small to hold a 2 MiB huge
 * page. With glibc's 8 MiB default a host whose transparent huge pages are "always" (Debian's
 * kernels) gave a thread its first stack page as a whole huge page: 2 MiB of the VMM's memory per
 * thread (the share and the disk threads took the VMM's own memory from 2.2 to 6.4 MiB).
 */
#define VMM_THREAD_STACK (1u << 20)
/* pthread_create on such a stack, detached or not. Returns 0 or an errno value. */
static inline int vmm_thread_create(pthread_t *t, void *(*fn)(void *), void *arg, bool detached)
{
	pthread_attr_t a;
	int err = pthread_attr_init(&a);
	if (err)
		return err;
	err = pthread_attr_setstacksize(&a, VMM_THREAD_STACK);
	if (!err && detached)
		err = pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (!err)
		err = pthread_create(t, &a, fn, arg);
	pthread_attr_destroy(&a);
	return err;
}

struct worker {
	struct vm *vm;
	int kick_fd; /* eventfd (non-blocking): kicks, and the stop */
	bool stopping;
	bool started;
	pthread_t thread;
	int sandbox; /* a SANDBOX_* kind */
	const char *name;
	void (*setup)(void *arg); /* before the sandbox, in the thread; or NULL */
	void (*main)(struct worker *w, void *arg);
	void *arg;
};

/* Makes the kick eventfd. Returns 0 or -errno; worker_free() is safe either way. */
int worker_init(struct worker *w) __attribute__((warn_unused_result));
/*
 * Starts the thread: signals as vm_thread_signals(), setup(arg), the allow-list of kind sandbox
 * (the VM stops with a message naming name when it cannot be had), then main(w, arg). Returns 0
 * or -errno.
 */
int worker_start(struct worker *w, struct vm *vm, int sandbox, const char *name,
		 void (*setup)(void *arg), void (*main)(struct worker *w, void *arg), void *arg)
	__attribute__((warn_unused_result));
/* Wakes the thread (any thread, never blocks). */
void worker_kick(struct worker *w);
/* In the thread: waits for a kick, consuming it. Returns false once the worker is stopping. */
bool worker_wait(struct worker *w);
/*
 * The same for at most ns nanoseconds: 1 kicked (consumed), 0 not within ns, -1 stopping.
 */
int worker_wait_ns(struct worker *w, long ns);
/* Consumes a pending kick without waiting (after polling kick_fd with other descriptors). */
void worker_clear(struct worker *w);
static inline bool worker_stopping(const struct worker *w)
{
	return __atomic_load_n(&w->stopping, __ATOMIC_ACQUIRE);
}
/* Asks the thread to stop and interrupts its system call (any thread, never blocks). */
void worker_stop(struct worker *w);
/*
 * Stops the thread and waits until it is gone. It is told to stop (flag and kick) and gets
 * grace_ms to finish what does not block (0: none); then it is interrupted, again every 20 ms,
 * since a signal that came just before the thread entered a blocking call is lost.
 */
void worker_join(struct worker *w, long grace_ms);
/* After worker_join(): closes the eventfd. */
void worker_free(struct worker *w);

#endif
