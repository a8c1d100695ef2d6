/*
 * FUSE request intake, replies and dispatch; the operations on names (lookup, create, rename,
 * ...) and on open files live in ops_names.c and ops_files.c.
 *
 * A request is copied out of guest memory before it is parsed (the guest may change its buffers
 * while we read them), except WRITE's data, which goes straight from guest memory to the file,
 * and READ's reply data, which goes straight from the file into guest memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../fd_budget.h"
#include "../clock.h"
#include "ops.h"

#define REQ_SIZE   (sizeof(struct fuse_in_header) + 256 + 4096 + 65536 + 64)
#define REPLY_SIZE (FUSE_SERVER_MAX_WRITE + 4096)

int fuse_server_new(const char *dir, unsigned int flags, struct fuse_server **out)
{
	struct fuse_server *s = calloc(1, sizeof(*s));
	struct stat st;
	int err;

	if (!s)
		return -ENOMEM;
	s->read_only = flags & FUSE_SERVER_READ_ONLY;
	s->guest_ids = flags & FUSE_SERVER_GUEST_IDS;
	s->proc_fd = -1;
	s->max_nodes = FUSE_MAX_NODES;
	fd_budget_init(); /* nodes and handles hold descriptors: the budget bounds them */
	s->trust_after_sec = 2;
	int root = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0 || fstat(root, &st) < 0) {
		err = -errno;
		if (root >= 0)
			close(root);
		free(s);
		return err;
	}
	s->share_uid = st.st_uid;
	s->share_gid = st.st_gid;
	/* Regular files are opened through /proc/self/fd/N: it reaches the very inode, by no path.
	 */
	s->proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	s->req = malloc(REQ_SIZE);
	s->reply = malloc(REPLY_SIZE);
	s->dents = malloc(FUSE_DENTS_SIZE);
	if (s->proc_fd < 0) {
		err = -errno;
		close(root);
	} else if (!s->req || !s->reply || !s->dents) {
		err = -ENOMEM;
		close(root);
	} else {
		err = fuse_nodes_init(s, root, &st);
	}
	if (err) {
		fuse_server_free(s);
		return err;
	}
	*out = s;
	return 0;
}

void fuse_server_free(struct fuse_server *s)
{
	if (!s)
		return;
	fuse_nodes_free(s);
	if (s->proc_fd >= 0)
		close(s->proc_fd);
	free(s->req);
	free(s->reply);
	free(s->dents);
	free(s);
}

size_t fuse_server_nodes(const struct fuse_server *s)
{
	return s->nr_nodes;
}

size_t fuse_server_handles(const struct fuse_server *s)
{
	return s->nr_handles;
}

static ssize_t op_init(struct fuse_req *r)
{
	struct fuse_init_in in = {0};
	/* Older kernels send the first four fields only. */
	size_t have = r->arg_len < sizeof(in) ? r->arg_len : sizeof(in);
	if (have < 16)
		return fuse_reply(r, -EINVAL, NULL, 0);
	memcpy(&in, r->arg, have);
	if (in.major != FUSE_KERNEL_VERSION)
		return fuse_reply(r, -EPROTO, NULL, 0);
	const uint32_t want = FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES |
			      FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_AUTO_INVAL_DATA |
			      FUSE_MAX_PAGES | FUSE_CACHE_SYMLINKS | FUSE_PARALLEL_DIROPS |
			      FUSE_HANDLE_KILLPRIV_V2;
	struct fuse_init_out out = {
		.major = FUSE_KERNEL_VERSION,
		.minor = FUSE_KERNEL_MINOR_VERSION,
		.max_readahead = in.max_readahead,
		.flags = in.flags & want,
		.max_background = 64,
		.congestion_threshold = 48,
		.max_write = FUSE_SERVER_MAX_WRITE,
		.time_gran = 1,
		.max_pages = FUSE_SERVER_MAX_WRITE / 4096,
	};
	return fuse_reply(r, 0, &out, sizeof(out));
}

void fuse_server_reset(struct fuse_server *s)
{
	for (uint32_t i = 1; i < s->hw_nodes; i++)
		if (s->nodes[i].fd >= 0)
			fuse_node_forget(s, fuse_node_id(s, &s->nodes[i]), UINT64_MAX);
	for (uint32_t i = 0; i < s->hw_handles; i++) {
		struct fuse_handle *h = &s->handles[i];
		if (h->fd >= 0)
			fuse_handle_close(s, ((uint64_t)h->gen << 32) | (i + 1), h->dir);
	}
}

static ssize_t op_destroy(struct fuse_req *r)
{
	fuse_server_reset(r->s);
	return fuse_reply(r, 0, NULL, 0);
}

static ssize_t op_forget(struct fuse_req *r)
{
	const struct fuse_forget_in *in = fuse_arg(r, sizeof(*in));
	if (in)
		fuse_node_forget(r->s, r->nodeid, in->nlookup);
	return 0; /* FORGET takes no reply */
}

static ssize_t op_batch_forget(struct fuse_req *r)
{
	const struct fuse_batch_forget_in *in = fuse_arg(r, sizeof(*in));
	const struct fuse_forget_one *one;
	/* count is the guest's word: only what the request holds is read. */
	for (uint32_t i = 0; in && i < in->count && (one = fuse_arg(r, sizeof(*one))); i++)
		fuse_node_forget(r->s, one->nodeid, one->nlookup);
	return 0;
}

typedef ssize_t (*fuse_op)(struct fuse_req *r);

static const fuse_op ops[] = {
	[FUSE_INIT] = op_init,
	[FUSE_DESTROY] = op_destroy,
	[FUSE_FORGET] = op_forget,
	[FUSE_BATCH_FORGET] = op_batch_forget,
	[FUSE_LOOKUP] = fuse_op_lookup,
	[FUSE_GETATTR] = fuse_op_getattr,
	[FUSE_SETATTR] = fuse_op_setattr,
	[FUSE_READLINK] = fuse_op_readlink,
	[FUSE_SYMLINK] = fuse_op_symlink,
	[FUSE_MKNOD] = fuse_op_mknod,
	[FUSE_MKDIR] = fuse_op_mkdir,
	[FUSE_UNLINK] = fuse_op_unlink,
	[FUSE_RMDIR] = fuse_op_rmdir,
	[FUSE_RENAME] = fuse_op_rename,
	[FUSE_RENAME2] = fuse_op_rename2,
	[FUSE_LINK] = fuse_op_link,
	[FUSE_CREATE] = fuse_op_create,
	[FUSE_STATFS] = fuse_op_statfs,
	[FUSE_ACCESS] = fuse_op_access,
	[FUSE_OPEN] = fuse_op_open,
	[FUSE_OPENDIR] = fuse_op_opendir,
	[FUSE_READ] = fuse_op_read,
	[FUSE_WRITE] = fuse_op_write,
	[FUSE_READDIR] = fuse_op_readdir,
	[FUSE_READDIRPLUS] = fuse_op_readdirplus,
	[FUSE_RELEASE] = fuse_op_release,
	[FUSE_RELEASEDIR] = fuse_op_releasedir,
	[FUSE_FLUSH] = fuse_op_flush,
	[FUSE_FSYNC] = fuse_op_fsync,
	[FUSE_FSYNCDIR] = fuse_op_fsyncdir,
	[FUSE_FALLOCATE] = fuse_op_fallocate,
	[FUSE_LSEEK] = fuse_op_lseek,
	[FUSE_GETXATTR] = fuse_op_getxattr,
	[FUSE_LISTXATTR] = fuse_op_listxattr,
	[FUSE_SETXATTR] = fuse_op_setxattr,
	[FUSE_REMOVEXATTR] = fuse_op_removexattr,
};

const struct fuse_server_stats *fuse_server_stats(const struct fuse_server *s)
{
	return &s->stats;
}

const char *fuse_server_opcode_name(unsigned int opcode)
{
	static const char *const names[] = {
		[FUSE_LOOKUP] = "LOOKUP",
		[FUSE_FORGET] = "FORGET",
		[FUSE_GETATTR] = "GETATTR",
		[FUSE_SETATTR] = "SETATTR",
		[FUSE_READLINK] = "READLINK",
		[FUSE_SYMLINK] = "SYMLINK",
		[FUSE_MKNOD] = "MKNOD",
		[FUSE_MKDIR] = "MKDIR",
		[FUSE_UNLINK] = "UNLINK",
		[FUSE_RMDIR] = "RMDIR",
		[FUSE_RENAME] = "RENAME",
		[FUSE_LINK] = "LINK",
		[FUSE_OPEN] = "OPEN",
		[FUSE_READ] = "READ",
		[FUSE_WRITE] = "WRITE",
		[FUSE_STATFS] = "STATFS",
		[FUSE_RELEASE] = "RELEASE",
		[FUSE_FSYNC] = "FSYNC",
		[FUSE_SETXATTR] = "SETXATTR",
		[FUSE_GETXATTR] = "GETXATTR",
		[FUSE_LISTXATTR] = "LISTXATTR",
		[FUSE_REMOVEXATTR] = "REMOVEXATTR",
		[FUSE_FLUSH] = "FLUSH",
		[FUSE_INIT] = "INIT",
		[FUSE_OPENDIR] = "OPENDIR",
		[FUSE_READDIR] = "READDIR",
		[FUSE_RELEASEDIR] = "RELEASEDIR",
		[FUSE_FSYNCDIR] = "FSYNCDIR",
		[FUSE_ACCESS] = "ACCESS",
		[FUSE_CREATE] = "CREATE",
		[FUSE_INTERRUPT] = "INTERRUPT",
		[FUSE_DESTROY] = "DESTROY",
		[FUSE_BATCH_FORGET] = "BATCH_FORGET",
		[FUSE_FALLOCATE] = "FALLOCATE",
		[FUSE_READDIRPLUS] = "READDIRPLUS",
		[FUSE_RENAME2] = "RENAME2",
		[FUSE_LSEEK] = "LSEEK",
	};
	return opcode < sizeof(names) / sizeof(names[0]) ? names[opcode] : NULL;
}

static ssize_t handle(struct fuse_server *s, const struct iovec *in, unsigned int n_in,
		      const struct iovec *out, unsigned int n_out, uint32_t *opcode);

ssize_t fuse_server_handle(struct fuse_server *s, const struct iovec *in, unsigned int n_in,
			   const struct iovec *out, unsigned int n_out)
{
	uint64_t t0 = clock_ns();
	uint32_t opcode = 0;
	ssize_t len = handle(s, in, n_in, out, n_out, &opcode);
	unsigned int slot = opcode < FUSE_SERVER_OPCODES ? opcode : 0;
	s->stats.count[slot]++;
	s->stats.ns[slot] += clock_ns() - t0;
	return len;
}

static ssize_t handle(struct fuse_server *s, const struct iovec *in, unsigned int n_in,
		      const struct iovec *out, unsigned int n_out, uint32_t *opcode)
{
	struct fuse_req r = {.s = s, .in = in, .n_in = n_in, .out = out, .n_out = n_out};
	struct fuse_in_header h;
	size_t in_len = 0;

	if (n_in > FUSE_MAX_IOV || n_out > FUSE_MAX_IOV)
		return -EINVAL;
	for (unsigned int i = 0; i < n_in; i++)
		in_len += in[i].iov_len;
	for (unsigned int i = 0; i < n_out; i++)
		r.out_len += out[i].iov_len;
	if (iov_to_buf(in, n_in, 0, &h, sizeof(h)) < sizeof(h))
		return -EINVAL; /* not even a header */
	*opcode = h.opcode;
	r.unique = h.unique;
	r.nodeid = h.nodeid;
	r.uid = h.uid;
	r.gid = h.gid;
	/* FORGET and INTERRUPT take no reply, and their chains have no room for one. */
	bool no_reply = h.opcode == FUSE_FORGET || h.opcode == FUSE_BATCH_FORGET ||
			h.opcode == FUSE_INTERRUPT || h.opcode == FUSE_NOTIFY_REPLY;
	if (!no_reply && r.out_len < sizeof(struct fuse_out_header))
		return -EINVAL;
	/* h.len is the guest's word: never read past what the chain holds. */
	if (h.len < sizeof(h) || h.len > in_len)
		return no_reply ? 0 : fuse_reply(&r, -EINVAL, NULL, 0);
	r.req_len = h.len;
	size_t copy = h.len - sizeof(h);
	if (h.opcode == FUSE_WRITE && copy > sizeof(struct fuse_write_in))
		copy = sizeof(struct fuse_write_in); /* the data stays in guest memory */
	if (copy > REQ_SIZE)
		return no_reply ? 0 : fuse_reply(&r, -EINVAL, NULL, 0);
	iov_to_buf(in, n_in, sizeof(h), s->req, copy);
	r.arg = s->req;
	r.arg_len = copy;
	fuse_op op = h.opcode < sizeof(ops) / sizeof(ops[0]) ? ops[h.opcode] : NULL;
	if (no_reply)
		return op ? op(&r) : 0;
	if (!op)
		return fuse_reply(&r, -ENOSYS, NULL, 0);
	return op(&r);
}
