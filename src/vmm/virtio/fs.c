/*
 * virtio-fs (virtio 1.2 §5.11). Queue 0 is the high-priority queue (FORGET, INTERRUPT), queue 1
 * the one request queue. A kick only wakes the device's thread, which takes each chain, lets the
 * FUSE server answer it, and returns it: the vCPU goes back to the guest at once, and the server
 * (single-threaded) needs no locks.
 */
#include "fs.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../fuse/server.h"
#include "../sandbox.h"
#include "../vm.h"
#include "mmio.h"

#define VIRTIO_ID_FS 26
#define QUEUE_SIZE   1024
#define NR_QUEUES    2

struct virtio_fs {
	struct virtio_mmio_dev *dev;
	struct fuse_server *server;
	char tag[VIRTIO_FS_TAG_MAX + 1];
	int wake_fd; /* a queue was kicked, or stop */
	bool stopping;
	bool reset; /* the driver reset the device: the FUSE session is over */
	pthread_t thread;
	bool thread_started;
	struct virtq_chain chain;
};

static void fs_notify(struct virtio_mmio_dev *d, unsigned int q)
{
	struct virtio_fs *fs = d->priv;
	uint64_t one = 1;
	(void)q;
	ssize_t n = write(fs->wake_fd, &one, sizeof(one));
	(void)n; /* the counter cannot overflow in practice */
}

static void fs_reset(struct virtio_mmio_dev *d)
{
	struct virtio_fs *fs = d->priv;
	__atomic_store_n(&fs->reset, true, __ATOMIC_RELEASE);
}

static int64_t serve_request(void *ctx, struct virtq_chain *chain)
{
	struct virtio_fs *fs = ctx;
	if (__atomic_load_n(&fs->stopping, __ATOMIC_ACQUIRE))
		return -1; /* the VM is stopping: let go of the queues at once */
	ssize_t len =
		fuse_server_handle(fs->server, chain->out, chain->n_out, chain->in, chain->n_in);
	if (len < 0)
		virtio_mmio_fail(fs->dev, "a request with no room for its reply");
	return len;
}

/* Answers every waiting request; false when the guest broke the protocol. */
static bool drain(struct virtio_fs *fs)
{
	struct virtio_mmio_dev *d = fs->dev;
	bool ok = true;
	virtio_mmio_queues_begin(d);
	if (__atomic_exchange_n(&fs->reset, false, __ATOMIC_ACQ_REL))
		fuse_server_reset(fs->server);
	for (unsigned int qi = 0; qi < NR_QUEUES && ok; qi++)
		ok = virtio_mmio_serve(d, qi, &fs->chain, serve_request, fs) >= 0;
	virtio_mmio_queues_end(d);
	return ok;
}

static void *fs_main(void *arg)
{
	struct virtio_fs *fs = arg;
	/*
	 * Our own umask of 0, not the process's: the guest kernel has applied the guest's umask, so
	 * files get exactly the modes the guest asked for.
	 */
	if (unshare(CLONE_FS) == 0)
		umask(0);
	vm_thread_signals(); /* fs_stop's signal interrupts whatever system call we are in */
	if (!vm_thread_sandbox(fs->dev->vm, SANDBOX_FS, "virtio-fs"))
		return NULL;
	for (;;) {
		struct pollfd p = {.fd = fs->wake_fd, .events = POLLIN};
		uint64_t v;
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			break;
		ssize_t n = read(fs->wake_fd, &v, sizeof(v));
		(void)n;
		if (__atomic_load_n(&fs->stopping, __ATOMIC_ACQUIRE))
			break;
		if (!drain(fs))
			break;
	}
	return NULL;
}

/* Wakes the thread and interrupts the system call it may be blocked in (any thread, never
 * blocks). */
static void fs_interrupt(struct virtio_fs *fs)
{
	uint64_t one = 1;
	__atomic_store_n(&fs->stopping, true, __ATOMIC_RELEASE);
	ssize_t n = write(fs->wake_fd, &one, sizeof(one));
	(void)n;
	if (__atomic_load_n(&fs->thread_started, __ATOMIC_ACQUIRE))
		vm_interrupt_thread(fs->thread);
}

static void fs_stop(struct virtio_mmio_dev *d)
{
	fs_interrupt(d->priv);
}

static const struct virtio_dev_ops fs_ops = {
	.name = "fs",
	.device_id = VIRTIO_ID_FS,
	.features = VIRTIO_F_INDIRECT_DESC,
	.num_queues = NR_QUEUES,
	.queue_max = QUEUE_SIZE,
	.config_size = VIRTIO_FS_TAG_MAX + 4,
	.notify = fs_notify,
	.reset = fs_reset,
	.stop = fs_stop,
};

int virtio_fs_create(struct vm *vm, const char *tag, const char *dir, unsigned int flags,
		     struct virtio_fs **out)
{
	size_t tag_len = strlen(tag);
	if (tag_len == 0 || tag_len > VIRTIO_FS_TAG_MAX)
		return -EINVAL;
	struct virtio_fs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int err = fs->wake_fd < 0 ? -errno : fuse_server_new(dir, flags, &fs->server);
	if (!err)
		err = virtio_mmio_add(vm, &fs_ops, fs, &fs->dev);
	if (err) {
		if (fs->wake_fd >= 0)
			close(fs->wake_fd);
		fuse_server_free(fs->server);
		free(fs);
		return err;
	}
	/* Config (§5.11.4): tag (not NUL-terminated when 36 bytes long), num_request_queues. */
	uint32_t nr_request_queues = NR_QUEUES - 1;
	memcpy(fs->dev->config, tag, tag_len);
	memcpy(fs->tag, tag, tag_len);
	memcpy(fs->dev->config + VIRTIO_FS_TAG_MAX, &nr_request_queues, 4);
	/* Kicks wake the thread straight from KVM; fs_notify stays for a KVM that cannot. */
	if (virtio_mmio_notify_eventfd(fs->dev, fs->wake_fd) < 0)
		vm_log(2, "virtio-fs %s: no ioeventfd, notifications go through the VMM", tag);
	/* From here the caller owns fs and frees it with virtio_fs_destroy(), on error too. */
	*out = fs;
	err = pthread_create(&fs->thread, NULL, fs_main, fs);
	if (err)
		return -err;
	__atomic_store_n(&fs->thread_started, true, __ATOMIC_RELEASE);
	return 0;
}

/* With --timing: where the server's time went, the four costliest opcodes first. */
static void print_stats(struct virtio_fs *fs)
{
	const struct fuse_server_stats *st = fuse_server_stats(fs->server);
	uint64_t n = 0, ns = 0;
	for (unsigned int i = 0; i < FUSE_SERVER_OPCODES; i++) {
		n += st->count[i];
		ns += st->ns[i];
	}
	char line[512];
	int len = snprintf(line, sizeof(line), "ec1 virtio-fs %s: %llu requests, %.2f ms serving",
			   fs->tag, (unsigned long long)n, ns / 1e6);
	bool shown[FUSE_SERVER_OPCODES] = {0};
	for (int k = 0; k < 4; k++) {
		unsigned int top = 0;
		for (unsigned int i = 1; i < FUSE_SERVER_OPCODES; i++)
			if (!shown[i] && st->ns[i] > st->ns[top])
				top = i;
		if (!st->count[top] || shown[top])
			break;
		shown[top] = true;
		char num[16];
		const char *name = fuse_server_opcode_name(top);
		if (!name) {
			snprintf(num, sizeof(num), "op%u", top);
			name = num;
		}
		len += snprintf(line + len, sizeof(line) - (size_t)len, " | %s %llu x %.3f ms",
				name, (unsigned long long)st->count[top],
				st->ns[top] / 1e6 / st->count[top]);
		if (len >= (int)sizeof(line))
			break;
	}
	fprintf(stderr, "%s\n", line);
}

void virtio_fs_destroy(struct virtio_fs *fs)
{
	if (!fs)
		return;
	/*
	 * Until the thread is gone: a signal that came just before it entered a blocking call is
	 * lost, so it is sent again.
	 */
	for (bool joined = !fs->thread_started; !joined;) {
		fs_interrupt(fs);
		struct timespec until = vm_realtime_in_ms(20);
		joined = pthread_timedjoin_np(fs->thread, NULL, &until) == 0;
	}
	if (fs->dev && fs->dev->vm->cfg->timing)
		print_stats(fs);
	close(fs->wake_fd);
	fuse_server_free(fs->server);
	free(fs);
}
