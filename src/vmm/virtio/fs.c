/*
 * virtio-fs (virtio 1.2 §5.11). Queue 0 is the high-priority queue (FORGET, INTERRUPT), queue 1
 * the one request queue. A kick only wakes the device's thread, which takes each chain, lets the
 * FUSE server answer it, and returns it: the vCPU goes back to the guest at once, and the server
 * (single-threaded) needs no locks.
 */
#include "fs.h"

#include <errno.h>
#include <sched.h> /* unshare */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../bus.h"
#include "../fuse/server.h"
#include "../sandbox.h"
#include "../vm.h"
#include "../worker.h"
#include "ec1/ec1.h"
#include "mmio.h"

#define VIRTIO_ID_FS 26
#define QUEUE_SIZE   1024
#define NR_QUEUES    2

struct virtio_fs {
	struct virtio_mmio_dev *dev;
	struct fuse_server *server;
	char tag[VIRTIO_FS_TAG_MAX + 1];
	struct worker worker; /* kicked by each notification */
	bool reset;	      /* the driver reset the device: the FUSE session is over */
	struct virtq_chain chain;
};

static void fs_notify(struct virtio_mmio_dev *d, unsigned int q)
{
	struct virtio_fs *fs = d->priv;
	(void)q;
	worker_kick(&fs->worker);
}

static void fs_reset(struct virtio_mmio_dev *d)
{
	struct virtio_fs *fs = d->priv;
	__atomic_store_n(&fs->reset, true, __ATOMIC_RELEASE);
}

static int64_t serve_request(void *ctx, struct virtq_chain *chain)
{
	struct virtio_fs *fs = ctx;
	if (worker_stopping(&fs->worker))
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

/*
 * Our own umask of 0, not the process's: the guest kernel has applied the guest's umask, so files
 * get exactly the modes the guest asked for.
 */
static void fs_setup(void *arg)
{
	(void)arg;
	if (unshare(CLONE_FS) == 0)
		umask(0);
}

static void fs_main(struct worker *w, void *arg)
{
	while (worker_wait(w) && drain(arg)) {
	}
}

static void fs_stop(struct virtio_mmio_dev *d)
{
	struct virtio_fs *fs = d->priv;
	worker_stop(&fs->worker);
}

static void fs_finish(struct virtio_mmio_dev *d)
{
	struct virtio_fs *fs = d->priv;
	worker_join(&fs->worker, 0);
}

static void fs_destroy(struct virtio_mmio_dev *d)
{
	struct virtio_fs *fs = d->priv;
	worker_free(&fs->worker);
	fuse_server_free(fs->server);
	free(fs);
}

static void print_stats(const struct virtio_mmio_dev *d);

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
	.finish = fs_finish,
	.destroy = fs_destroy,
	.print_stats = print_stats,
};

/* One device for one share; from the vm_add_mmio() call on, the VM owns it. */
static int fs_create(struct vm *vm, const struct vm_share *sh)
{
	size_t tag_len = strlen(sh->tag);
	if (tag_len == 0 || tag_len > VIRTIO_FS_TAG_MAX)
		return -EINVAL;
	struct virtio_fs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	unsigned int flags = (sh->read_only ? FUSE_SERVER_READ_ONLY : 0) |
			     (sh->guest_ids ? FUSE_SERVER_GUEST_IDS : 0);
	int err = worker_init(&fs->worker);
	err = err ?: fuse_server_new(sh->host_dir, flags, &fs->server);
	err = err ?: vm_add_mmio(vm, &fs_ops, fs, &fs->dev);
	if (err) {
		worker_free(&fs->worker);
		fuse_server_free(fs->server);
		free(fs);
		return err;
	}
	/* Config (§5.11.4): tag (not NUL-terminated when 36 bytes long), num_request_queues. */
	uint32_t nr_request_queues = NR_QUEUES - 1;
	memcpy(fs->dev->config, sh->tag, tag_len);
	memcpy(fs->tag, sh->tag, tag_len);
	memcpy(fs->dev->config + VIRTIO_FS_TAG_MAX, &nr_request_queues, 4);
	/* Kicks wake the thread straight from KVM; fs_notify stays for a KVM that cannot. */
	if (virtio_mmio_notify_eventfd(fs->dev, fs->worker.kick_fd) < 0)
		vm_log(2, "virtio-fs %s: no ioeventfd, notifications go through the VMM", sh->tag);
	return worker_start(&fs->worker, vm, SANDBOX_FS, "virtio-fs", fs_setup, fs_main, fs);
}

int virtio_fs_add(struct vm *vm, char *msg, size_t msg_size)
{
	const struct vm_config *cfg = vm->cfg;
	for (unsigned int i = 0; i < cfg->nr_shares; i++) {
		const struct vm_share *sh = &cfg->shares[i];
		int err = fs_create(vm, sh);
		if (err == -ENOSPC) {
			snprintf(msg, msg_size, "shares: at most %d directories per VM",
				 VM_MAX_SHARES);
			return EC1_EINVAL;
		}
		if (err) {
			snprintf(msg, msg_size, "%s: %s", sh->host_dir, strerror(-err));
			return EC1_EINVAL;
		}
	}
	return 0;
}

/* With --timing: where the server's time went, the four costliest opcodes first. */
static void print_stats(const struct virtio_mmio_dev *d)
{
	const struct virtio_fs *fs = d->priv;
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
