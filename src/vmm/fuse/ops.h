/* One FUSE request in flight, the helpers the operations share, and the operations. */
#ifndef EC1_FUSE_OPS_H
#define EC1_FUSE_OPS_H

#include <sys/types.h>

#include "../iov.h"
#include "internal.h"

#define FUSE_MAX_IOV	 1024 /* iovecs per direction in one request */
#define FUSE_DENTS_SIZE	 (64 * 1024)
#define FUSE_TIMEOUT_SEC 1 /* how long the guest may cache names and attributes */

struct fuse_req {
	struct fuse_server *s;
	uint64_t unique, nodeid;
	uint32_t uid, gid;
	const struct iovec *in, *out; /* the chain: request, and room for the reply */
	unsigned int n_in, n_out;
	size_t req_len, out_len;
	const uint8_t *arg; /* the arguments after the header, copied */
	size_t arg_len, arg_off;
};

/* The next size bytes of arguments, or NULL if the request is shorter. */
const void *fuse_arg(struct fuse_req *r, size_t size);
/* The next NUL-terminated string of at most max bytes, or NULL. */
const char *fuse_arg_str(struct fuse_req *r, size_t max);
/* 0 for a name that stays in its directory, else -EINVAL or -ENAMETOOLONG (NULL too). */
int fuse_check_name(const char *name);

/* Writes the reply (header + data, or header alone with a negative errno); returns its length. */
ssize_t fuse_reply(struct fuse_req *r, int error, const void *data, size_t len);
/* Writes only the header of a successful reply whose data_len bytes are already in place. */
ssize_t fuse_reply_header(struct fuse_req *r, size_t data_len);

/* Views [skip, skip + len) of an iovec array as another one; returns the bytes covered. */
size_t fuse_iov_slice(const struct iovec *iov, unsigned int n, size_t skip, size_t len,
		      struct iovec *out, unsigned int max_out, unsigned int *n_out);

void fuse_fill_attr(struct fuse_attr *a, const struct stat *st);
/*
 * The permission bits a guest-given mode leaves on a host object: setuid never, setgid only on a
 * directory (where it passes the group on), unless the share keeps the guest's ids.
 */
mode_t fuse_host_mode(const struct fuse_server *s, uint32_t mode, bool dir);
int fuse_stat_node(const struct fuse_node *n, struct stat *st);

/* Early replies shared by the operations: each declares the variable it names. */
#define FUSE_ERR(r, e) fuse_reply((r), (e), NULL, 0)
/* The request's fixed argument struct, or EINVAL. */
#define FUSE_ARG_OR_REPLY(r, type, in)               \
	const type *in = fuse_arg((r), sizeof(*in)); \
	if (!in)                                     \
	return FUSE_ERR((r), -EINVAL)
/* An open file (dir false) or directory handle, or EBADF. */
#define FUSE_HANDLE_OR_REPLY(r, fh, dir, h)                           \
	struct fuse_handle *h = fuse_handle_get((r)->s, (fh), (dir)); \
	if (!h)                                                       \
	return FUSE_ERR((r), -EBADF)

/* ops_names.c */
int fuse_lookup_at(struct fuse_server *s, int dir_fd, const char *name, struct fuse_entry_out *e);
ssize_t fuse_op_lookup(struct fuse_req *r);
ssize_t fuse_op_getattr(struct fuse_req *r);
ssize_t fuse_op_setattr(struct fuse_req *r);
ssize_t fuse_op_readlink(struct fuse_req *r);
ssize_t fuse_op_symlink(struct fuse_req *r);
ssize_t fuse_op_mknod(struct fuse_req *r);
ssize_t fuse_op_mkdir(struct fuse_req *r);
ssize_t fuse_op_unlink(struct fuse_req *r);
ssize_t fuse_op_rmdir(struct fuse_req *r);
ssize_t fuse_op_rename(struct fuse_req *r);
ssize_t fuse_op_rename2(struct fuse_req *r);
ssize_t fuse_op_link(struct fuse_req *r);
ssize_t fuse_op_create(struct fuse_req *r);
ssize_t fuse_op_statfs(struct fuse_req *r);
ssize_t fuse_op_access(struct fuse_req *r);
ssize_t fuse_op_getxattr(struct fuse_req *r);
ssize_t fuse_op_listxattr(struct fuse_req *r);
ssize_t fuse_op_setxattr(struct fuse_req *r);
ssize_t fuse_op_removexattr(struct fuse_req *r);

/* ops_files.c */
/* The flags of a host open for the flags the guest asked for (O_NOCTTY, O_NONBLOCK forced). */
int fuse_host_flags(int guest_flags);
/*
 * The one way a node is opened on the host: regular files (through /proc/self/fd, the very
 * inode) and directories only; -ELOOP for a symlink, -EACCES for anything else. Returns the
 * descriptor or -errno.
 */
int fuse_reopen(struct fuse_server *s, const struct fuse_node *n, int flags);
/*
 * A handle for fd, just opened with flags; drops privileges first when the guest asks
 * (open_flags). Closes fd on failure. Returns 0 or -errno.
 */
int fuse_open_handle(struct fuse_server *s, int fd, int flags, uint32_t open_flags, bool dir,
		     uint64_t *fh);
/* OPEN and OPENDIR: the request's node, opened through fuse_reopen(), as a new handle. */
ssize_t fuse_open_node(struct fuse_req *r, bool dir);
/* Drops setuid, setgid (with group execute) and file capabilities of the open file fd. */
int fuse_kill_privs(int fd);
ssize_t fuse_op_open(struct fuse_req *r);
ssize_t fuse_op_opendir(struct fuse_req *r);
ssize_t fuse_op_read(struct fuse_req *r);
ssize_t fuse_op_write(struct fuse_req *r);
ssize_t fuse_op_readdir(struct fuse_req *r);
ssize_t fuse_op_readdirplus(struct fuse_req *r);
ssize_t fuse_op_release(struct fuse_req *r);
ssize_t fuse_op_releasedir(struct fuse_req *r);
ssize_t fuse_op_flush(struct fuse_req *r);
ssize_t fuse_op_fsync(struct fuse_req *r);
ssize_t fuse_op_fsyncdir(struct fuse_req *r);
ssize_t fuse_op_fallocate(struct fuse_req *r);
ssize_t fuse_op_lseek(struct fuse_req *r);

#endif
