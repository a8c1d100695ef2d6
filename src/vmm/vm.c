/*
 * What every part of the VMM may ask of the VM while it runs: stop it, report the exit status,
 * mark a boot phase, log, the clocks, and the signal and seccomp set-up of the VMM's threads. It
 * calls no device, no architecture and no set-up code: those call it.
 */
#include "vm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "ec1/ec1.h"
#include "sandbox.h"
#include "virtio/mmio.h"

static int log_level = EC1_LOG_WARN;

void vm_set_log_level(int level)
{
	log_level = level;
}

#define KICK_SIGNAL SIGUSR1

static void kick_handler(int sig)
{
	(void)sig; /* only here to make a blocking system call return EINTR */
}

void vm_signals_init(void)
{
	struct sigaction sa = {.sa_handler = kick_handler};
	sigemptyset(&sa.sa_mask);
	sigaction(KICK_SIGNAL, &sa, NULL);
}

void vm_log(int level, const char *fmt, ...)
{
	if (level > log_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

void vm_mark(struct vm *vm, uint64_t *slot)
{
	uint64_t zero = 0;
	(void)vm; /* the slot is one of vm->timing's */
	__atomic_compare_exchange_n(slot, &zero, clock_ns(), false, __ATOMIC_SEQ_CST,
				    __ATOMIC_SEQ_CST);
}

void vm_thread_signals(void)
{
	sigset_t set;
	sigfillset(&set);
	sigdelset(&set, KICK_SIGNAL);
	sigdelset(&set, SIGSYS); /* a blocked seccomp trap would kill without its handler */
	pthread_sigmask(SIG_SETMASK, &set, NULL);
}

bool vm_thread_sandbox(struct vm *vm, int kind, const char *what)
{
	/* Named for top -H, gdb and a seccomp kill's message (15 bytes at most). */
	char name[16];
	snprintf(name, sizeof(name), "%s", what);
	prctl(PR_SET_NAME, name, 0, 0, 0);
	int err = sandbox_enter((enum sandbox_kind)kind);
	if (err)
		vm_stop(vm, EC1_EBACKEND, "seccomp filter of the %s thread: %s", what,
			strerror(-err));
	return err == 0;
}

void vm_interrupt_thread(pthread_t thread)
{
	pthread_kill(thread, KICK_SIGNAL);
}

void vm_kick_vcpus(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (v->run)
			__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		if (v->started && !pthread_equal(v->thread, pthread_self()))
			vm_interrupt_thread(v->thread);
	}
}

void vm_stop(struct vm *vm, int code, const char *fmt, ...)
{
	pthread_mutex_lock(&vm->lock);
	if (!vm->stopping) {
		__atomic_store_n(&vm->stopping, true, __ATOMIC_RELEASE); /* vCPU threads poll it */
		vm->error_code = code;
		if (code && fmt) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(vm->error, sizeof(vm->error), fmt, ap);
			va_end(ap);
		}
		vm_mark(vm, &vm->timing.stopped);
		uint64_t one = 1;
		if (write(vm->stop_fd, &one, sizeof(one)) < 0)
			vm_log(EC1_LOG_ERROR, "ec1: waking the VM's main thread: %s\n",
			       strerror(errno));
		pthread_cond_broadcast(&vm->call_done); /* jobs not taken will not run */
	}
	bool first = !vm->stop_sent;
	vm->stop_sent = true;
	pthread_mutex_unlock(&vm->lock);
	if (first) {
		/* Device threads let go of the queues first: a vCPU may be waiting for them. */
		unsigned int n = __atomic_load_n(&vm->nr_devs, __ATOMIC_ACQUIRE);
		for (unsigned int i = 0; i < n; i++)
			if (vm->devs[i]->ops->stop)
				vm->devs[i]->ops->stop(vm->devs[i]);
	}
	vm_kick_vcpus(vm);
}

void vm_guest_halting(struct vm *vm)
{
	__atomic_store_n(&vm->halt_line_ns, clock_ns(), __ATOMIC_RELEASE);
	uint64_t one = 1; /* wakes wait_for_stop, which probes the vCPUs */
	if (write(vm->call_fd, &one, sizeof(one)) < 0)
		return; /* (an eventfd's counter cannot overflow from here) */
}

void vm_report_status(struct vm *vm, int status)
{
	pthread_mutex_lock(&vm->lock);
	if (!vm->status_reported) {
		vm->status_reported = true;
		vm->exit_status = status;
	}
	pthread_mutex_unlock(&vm->lock);
	vm_stop(vm, 0, "exit");
}

bool vm_run_on_caller(struct vm *vm, void (*fn)(void *arg), void *arg)
{
	struct vm_call c = {.fn = fn, .arg = arg};
	pthread_mutex_lock(&vm->lock);
	if (!vm->stopping) {
		c.next = vm->calls;
		vm->calls = &c;
		uint64_t one = 1;
		if (write(vm->call_fd, &one, sizeof(one)) < 0)
			vm_log(EC1_LOG_ERROR, "ec1: waking the VM's main thread: %s\n",
			       strerror(errno));
		/* A job taken is always finished, even once the VM stops. */
		while (!c.done && (c.taken || !vm->stopping))
			pthread_cond_wait(&vm->call_done, &vm->lock);
		if (!c.taken) /* the VM stopped first */
			for (struct vm_call **p = &vm->calls; *p; p = &(*p)->next)
				if (*p == &c) {
					*p = c.next;
					break;
				}
	}
	pthread_mutex_unlock(&vm->lock);
	return c.done;
}

void vm_run_calls(struct vm *vm)
{
	uint64_t v;
	if (read(vm->call_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&vm->lock);
	struct vm_call *c = vm->calls;
	vm->calls = NULL;
	for (struct vm_call *t = c; t; t = t->next)
		t->taken = true;
	pthread_mutex_unlock(&vm->lock);
	while (c) {
		struct vm_call *next = c->next; /* c is gone once done is seen */
		c->fn(c->arg);
		pthread_mutex_lock(&vm->lock);
		c->done = true;
		pthread_cond_broadcast(&vm->call_done);
		pthread_mutex_unlock(&vm->lock);
		c = next;
	}
}
