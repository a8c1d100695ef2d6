/*
 * FUSE operations on names and attributes. Each works on one directory descriptor and one
 * checked name (never a path), with O_NOFOLLOW / AT_SYMLINK_NOFOLLOW: a symlink is an object the
 * guest may create, read and remove, never a way for the host to go elsewhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "ops.h"

#define ERR FUSE_ERR

/* The request's node, or an early ENOENT reply. */
#define NODE_OR_REPLY(r, id, n)                            \
	struct fuse_node *n = fuse_node_get((r)->s, (id)); \
	if (!n)                                            \
	return ERR((r), -ENOENT)

#define WRITABLE_OR_REPLY(r)                     \
	do {                                     \
		if ((r)->s->read_only)           \
			return ERR((r), -EROFS); \
	} while (0)

/* The next argument as a checked name, or an early EINVAL/ENAMETOOLONG reply. */
#define NAME_OR_REPLY(r, name)                          \
	const char *name = fuse_arg_str((r), NAME_MAX); \
	do {                                            \
		int name_err_ = fuse_check_name(name);  \
		if (name_err_)                          \
			return ERR((r), name_err_);     \
	} while (0)

ssize_t fuse_op_lookup(struct fuse_req *r)
{
	NODE_OR_REPLY(r, r->nodeid, dir);
	const char *name = fuse_arg_str(r, NAME_MAX);
	struct fuse_entry_out e;
	/* ".." of the share's root is the root: the guest cannot climb out. */
	if (name && dir == r->s->nodes && strcmp(name, "..") == 0)
		name = ".";
	if (name && strcmp(name, ".") == 0 && dir->type == S_IFDIR) {
		struct stat st;
		int err = fuse_stat_node(dir, &st);
		if (err)
			return ERR(r, err);
		dir->nlookup++;
		e = (struct fuse_entry_out){.nodeid = r->nodeid,
					    .generation = dir->gen,
					    .entry_valid = FUSE_TIMEOUT_SEC,
					    .attr_valid = FUSE_TIMEOUT_SEC};
		fuse_fill_attr(&e.attr, &st);
		return fuse_reply(r, 0, &e, sizeof(e));
	}
	int err = fuse_check_name(name);
	if (!err)
		err = fuse_lookup_at(r->s, dir->fd, name, &e);
	if (err == -ENOENT) {
		/*
		 * A negative entry (node id 0, fuse.h): the guest remembers the name is missing as
		 * long as it may cache names, which spares the dynamic loader's and PATH's repeated
		 * probes a round trip each.
		 */
		e = (struct fuse_entry_out){.entry_valid = FUSE_TIMEOUT_SEC};
		return fuse_reply(r, 0, &e, sizeof(e));
	}
	return err ? ERR(r, err) : fuse_reply(r, 0, &e, sizeof(e));
}

/*
 * The entry of an object just made at name in dir_fd, owned by the guest caller's uid and gid
 * when the share keeps the guest's ids, else by the share root's owner (we may be root on the
 * host, where a new object would otherwise be root's). Takes a reference on its node.
 */
static int created_entry(struct fuse_req *r, int dir_fd, const char *name, struct fuse_entry_out *e)
{
	int err = fuse_lookup_at(r->s, dir_fd, name, e);
	if (err)
		return err;
	struct fuse_node *n = fuse_node_get(r->s, e->nodeid);
	uid_t uid = r->s->guest_ids ? r->uid : r->s->share_uid;
	gid_t gid = r->s->guest_ids ? r->gid : r->s->share_gid;
	if (geteuid() == 0 && (e->attr.uid != uid || e->attr.gid != gid)) {
		struct stat st;
		mode_t before = e->attr.mode & 07777;
		if (fchownat(n->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 &&
		    fuse_stat_node(n, &st) == 0) {
			/* chown clears set-id bits the new file was made with: give them back. */
			if ((st.st_mode & 07777) != before && n->type != S_IFLNK) {
				char proc[16];
				snprintf(proc, sizeof(proc), "%d", n->fd);
				if (fchmodat(r->s->proc_fd, proc, before, 0) == 0)
					fuse_stat_node(n, &st);
			}
			fuse_fill_attr(&e->attr, &st);
		}
	}
	return 0;
}

static ssize_t reply_created(struct fuse_req *r, int dir_fd, const char *name)
{
	struct fuse_entry_out e;
	int err = created_entry(r, dir_fd, name, &e);
	return err ? ERR(r, err) : fuse_reply(r, 0, &e, sizeof(e));
}

ssize_t fuse_op_getattr(struct fuse_req *r)
{
	NODE_OR_REPLY(r, r->nodeid, n);
	struct stat st;
	int err = fuse_stat_node(n, &st);
	if (err)
		return ERR(r, err);
	struct fuse_attr_out out = {.attr_valid = FUSE_TIMEOUT_SEC};
	fuse_fill_attr(&out.attr, &st);
	return fuse_reply(r, 0, &out, sizeof(out));
}

static int set_times(struct fuse_server *s, const struct fuse_node *n, int fd,
		     const struct fuse_setattr_in *in)
{
	struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
	if (in->valid & FATTR_ATIME)
		ts[0] = (in->valid & FATTR_ATIME_NOW)
				? (struct timespec){.tv_nsec = UTIME_NOW}
				: (struct timespec){(time_t)in->atime, in->atimensec};
	if (in->valid & FATTR_MTIME)
		ts[1] = (in->valid & FATTR_MTIME_NOW)
				? (struct timespec){.tv_nsec = UTIME_NOW}
				: (struct timespec){(time_t)in->mtime, in->mtimensec};
	if (fd >= 0)
		return futimens(fd, ts) < 0 ? -errno : 0;
	if (n->type == S_IFLNK)
		return -EOPNOTSUPP;
	char proc[16];
	snprintf(proc, sizeof(proc), "%d", n->fd);
	return utimensat(s->proc_fd, proc, ts, 0) < 0 ? -errno : 0;
}

static int set_size(struct fuse_server *s, const struct fuse_node *n, int fd, uint64_t size)
{
	if (n->type == S_IFDIR)
		return -EISDIR;
	if (n->type != S_IFREG)
		return -EINVAL;
	if (size > (uint64_t)INT64_MAX)
		return -EFBIG;
	if (fd >= 0 && ftruncate(fd, (off_t)size) == 0)
		return 0;
	/* No handle, or one opened read-only: open the inode for writing just for this. */
	int wfd = fuse_reopen(s, n, O_WRONLY);
	if (wfd < 0)
		return wfd;
	int err = ftruncate(wfd, (off_t)size) < 0 ? -errno : 0;
	close(wfd);
	return err;
}

/*
 * chown and chgrp. A share that does not keep the guest's ids takes only what changes nothing
 * (as `chown root:root` on a tree that is root's already): a guest must not hand a host file to a
 * host user of its choosing.
 */
static int change_owner(struct fuse_server *s, const struct fuse_node *n,
			const struct fuse_setattr_in *in)
{
	uid_t uid = (in->valid & FATTR_UID) ? in->uid : (uid_t)-1;
	gid_t gid = (in->valid & FATTR_GID) ? in->gid : (gid_t)-1;
	if (!s->guest_ids) {
		struct stat st;
		int err = fuse_stat_node(n, &st);
		if (err)
			return err;
		if ((uid != (uid_t)-1 && uid != st.st_uid) ||
		    (gid != (gid_t)-1 && gid != st.st_gid))
			return -EPERM;
	}
	return fchownat(n->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

ssize_t fuse_op_setattr(struct fuse_req *r)
{
	FUSE_ARG_OR_REPLY(r, struct fuse_setattr_in, in);
	NODE_OR_REPLY(r, r->nodeid, n);
	const uint32_t changes = FATTR_MODE | FATTR_UID | FATTR_GID | FATTR_SIZE | FATTR_ATIME |
				 FATTR_MTIME | FATTR_KILL_SUIDGID;
	if (in->valid & changes)
		WRITABLE_OR_REPLY(r);
	struct fuse_handle *h =
		(in->valid & FATTR_FH) ? fuse_handle_get(r->s, in->fh, false) : NULL;
	int fd = h ? h->fd : -1, err = 0;
	char proc[16];
	snprintf(proc, sizeof(proc), "%d", n->fd);
	if ((in->valid & FATTR_MODE) && !err) {
		if (n->type == S_IFLNK)
			err = -EOPNOTSUPP;
		else if (fchmodat(r->s->proc_fd, proc,
				  fuse_host_mode(r->s, in->mode, n->type == S_IFDIR), 0) < 0)
			err = -errno;
	}
	if ((in->valid & (FATTR_UID | FATTR_GID)) && !err)
		err = change_owner(r->s, n, in);
	if ((in->valid & FATTR_SIZE) && !err)
		err = set_size(r->s, n, fd, in->size);
	/* FUSE_HANDLE_KILLPRIV_V2: chown, or truncation by an unprivileged guest user. */
	if ((in->valid & FATTR_KILL_SUIDGID) && !err && n->type == S_IFREG) {
		int kfd = fd >= 0 ? fd : fuse_reopen(r->s, n, O_RDONLY);
		err = kfd < 0 ? kfd : fuse_kill_privs(kfd);
		if (kfd >= 0 && kfd != fd)
			close(kfd);
	}
	if ((in->valid & (FATTR_ATIME | FATTR_MTIME)) && !err) {
		if (in->atimensec >= 1000000000u || in->mtimensec >= 1000000000u)
			err = -EINVAL;
		else
			err = set_times(r->s, n, fd, in);
	}
	if (err)
		return ERR(r, err);
	return fuse_op_getattr(r);
}

ssize_t fuse_op_readlink(struct fuse_req *r)
{
	NODE_OR_REPLY(r, r->nodeid, n);
	if (n->type != S_IFLNK)
		return ERR(r, -EINVAL);
	char target[PATH_MAX];
	ssize_t len = readlinkat(n->fd, "", target, sizeof(target));
	if (len < 0)
		return ERR(r, -errno);
	return fuse_reply(r, 0, target, (size_t)len);
}

ssize_t fuse_op_symlink(struct fuse_req *r)
{
	NODE_OR_REPLY(r, r->nodeid, dir);
	NAME_OR_REPLY(r, name);
	const char *target = fuse_arg_str(r, PATH_MAX - 1);
	if (!target || !*target)
		return ERR(r, -EINVAL);
	WRITABLE_OR_REPLY(r);
	if (symlinkat(target, dir->fd, name) < 0)
		return ERR(r, -errno);
	return reply_created(r, dir->fd, name);
}

ssize_t fuse_op_mknod(struct fuse_req *r)
{
	FUSE_ARG_OR_REPLY(r, struct fuse_mknod_in, in);
	NODE_OR_REPLY(r, r->nodeid, dir);
	NAME_OR_REPLY(r, name);
	WRITABLE_OR_REPLY(r);
	mode_t type = in->mode & S_IFMT;
	/* No device nodes on the host: one would open host devices to whoever uses the share. */
	if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK)
		return ERR(r, -EPERM);
	if (mknodat(dir->fd, name, type | fuse_host_mode(r->s, in->mode, false), 0) < 0)
		return ERR(r, -errno);
	return reply_created(r, dir->fd, name);
}

ssize_t fuse_op_mkdir(struct fuse_req *r)
{
	FUSE_ARG_OR_REPLY(r, struct fuse_mkdir_in, in);
	NODE_OR_REPLY(r, r->nodeid, dir);
	NAME_OR_REPLY(r, name);
	WRITABLE_OR_REPLY(r);
	if (mkdirat(dir->fd, name, fuse_host_mode(r->s, in->mode, true)) < 0)
		return ERR(r, -errno);
	return reply_created(r, dir->fd, name);
}

static ssize_t remove_name(struct fuse_req *r, int flags)
{
	NODE_OR_REPLY(r, r->nodeid, dir);
	NAME_OR_REPLY(r, name);
	WRITABLE_OR_REPLY(r);
	return ERR(r, unlinkat(dir->fd, name, flags) < 0 ? -errno : 0);
}

ssize_t fuse_op_unlink(struct fuse_req *r)
{
	return remove_name(r, 0);
}

ssize_t fuse_op_rmdir(struct fuse_req *r)
{
	return remove_name(r, AT_REMOVEDIR);
}

static ssize_t rename_names(struct fuse_req *r, uint64_t newdir_id, uint32_t flags)
{
	NODE_OR_REPLY(r, r->nodeid, olddir);
	NODE_OR_REPLY(r, newdir_id, newdir);
	NAME_OR_REPLY(r, oldname);
	NAME_OR_REPLY(r, newname);
	WRITABLE_OR_REPLY(r);
	if (flags & ~(uint32_t)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return ERR(r, -EINVAL); /* RENAME_WHITEOUT makes device nodes */
	if (renameat2(olddir->fd, oldname, newdir->fd, newname, flags) < 0)
		return ERR(r, -errno);
	return ERR(r, 0);
}

ssize_t fuse_op_rename(struct fuse_req *r)
{
	const struct fuse_rename_in *in = fuse_arg(r, sizeof(*in));
	return in ? rename_names(r, in->newdir, 0) : ERR(r, -EINVAL);
}

ssize_t fuse_op_rename2(struct fuse_req *r)
{
	const struct fuse_rename2_in *in = fuse_arg(r, sizeof(*in));
	return in ? rename_names(r, in->newdir, in->flags) : ERR(r, -EINVAL);
}

ssize_t fuse_op_link(struct fuse_req *r)
{
	FUSE_ARG_OR_REPLY(r, struct fuse_link_in, in);
	NODE_OR_REPLY(r, in->oldnodeid, old);
	NODE_OR_REPLY(r, r->nodeid, dir);
	NAME_OR_REPLY(r, name);
	WRITABLE_OR_REPLY(r);
	if (linkat(old->fd, "", dir->fd, name, AT_EMPTY_PATH) < 0) {
		/* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc/self/fd/N reaches the inode too.
		 */
		char proc[16];
		snprintf(proc, sizeof(proc), "%d", old->fd);
		if (errno != ENOENT ||
		    linkat(r->s->proc_fd, proc, dir->fd, name, AT_SYMLINK_FOLLOW) < 0)
			return ERR(r, -errno);
	}
	struct fuse_entry_out e;
	int err = fuse_lookup_at(r->s, dir->fd, name, &e);
	return err ? ERR(r, err) : fuse_reply(r, 0, &e, sizeof(e));
}

/*
 * CREATE makes and opens only a new regular file (O_EXCL). A name that exists already, whatever
 * it is on the host (the guest may have raced itself, or the host changed the directory), is
 * looked up and opened the one way every node is, fuse_reopen(): an open here would follow the
 * name to a FIFO (and block the server until a writer came), a device node or a socket. Only
 * the file made here changes owner.
 */
ssize_t fuse_op_create(struct fuse_req *r)
{
	FUSE_ARG_OR_REPLY(r, struct fuse_create_in, in);
	NODE_OR_REPLY(r, r->nodeid, dir);
	NAME_OR_REPLY(r, name);
	WRITABLE_OR_REPLY(r);
	struct {
		struct fuse_entry_out e;
		struct fuse_open_out o;
	} out;
	_Static_assert(sizeof(out) == sizeof(out.e) + sizeof(out.o), "CREATE reply is two structs");
	int flags = (int)in->flags, err;
	int fd = openat(dir->fd, name, fuse_host_flags(flags) | O_CREAT | O_EXCL | O_NOFOLLOW,
			fuse_host_mode(r->s, in->mode, false));
	if (fd >= 0) {
		err = created_entry(r, dir->fd, name, &out.e);
		if (err) {
			/* The guest is told the create failed: so it did (the file is ours,
			 * O_EXCL). */
			close(fd);
			unlinkat(dir->fd, name, 0);
			return ERR(r, err);
		}
	} else {
		if (errno != EEXIST || (flags & O_EXCL))
			return ERR(r, -errno);
		if ((err = fuse_lookup_at(r->s, dir->fd, name, &out.e)))
			return ERR(r, err);
		fd = fuse_reopen(r->s, fuse_node_get(r->s, out.e.nodeid), flags);
		if (fd < 0) {
			fuse_node_forget(r->s, out.e.nodeid, 1); /* the guest gets no entry */
			return ERR(r, fd);
		}
	}
	uint64_t fh;
	if ((err = fuse_open_handle(r->s, fd, flags, in->open_flags, false, &fh))) {
		fuse_node_forget(r->s, out.e.nodeid, 1);
		return ERR(r, err);
	}
	out.o = (struct fuse_open_out){.fh = fh, .open_flags = FOPEN_NOFLUSH}; /* see open */
	ssize_t len = fuse_reply(r, 0, &out, sizeof(out));
	if (len <= (ssize_t)sizeof(struct fuse_out_header)) {
		/* The guest got an error, not the handle nor the entry. */
		fuse_handle_close(r->s, fh, false);
		fuse_node_forget(r->s, out.e.nodeid, 1);
	}
	return len;
}

ssize_t fuse_op_statfs(struct fuse_req *r)
{
	NODE_OR_REPLY(r, r->nodeid, n);
	struct statfs st;
	if (fstatfs(n->fd, &st) < 0)
		return ERR(r, -errno);
	struct fuse_statfs_out out = {.st = {
					      .blocks = st.f_blocks,
					      .bfree = st.f_bfree,
					      .bavail = st.f_bavail,
					      .files = st.f_files,
					      .ffree = st.f_ffree,
					      .bsize = (uint32_t)st.f_bsize,
					      .namelen = (uint32_t)st.f_namelen,
					      .frsize = (uint32_t)st.f_frsize,
				      }};
	return fuse_reply(r, 0, &out, sizeof(out));
}

ssize_t fuse_op_access(struct fuse_req *r)
{
	FUSE_ARG_OR_REPLY(r, struct fuse_access_in, in);
	NODE_OR_REPLY(r, r->nodeid, n);
	if ((in->mask & W_OK) && r->s->read_only)
		return ERR(r, -EROFS);
	struct stat st;
	int err = fuse_stat_node(n, &st);
	if (!err && (in->mask & X_OK) && !S_ISDIR(st.st_mode) && !(st.st_mode & 0111))
		err = -EACCES;
	return ERR(r, err);
}

/* xattr calls take paths: /proc/self/fd/N names the node's inode (not for symlinks). */
static int xattr_path(const struct fuse_node *n, char *path, size_t size)
{
	if (n->type == S_IFLNK)
		return -EOPNOTSUPP;
	snprintf(path, size, "/proc/self/fd/%d", n->fd);
	return 0;
}

/* Shared by GETXATTR and LISTXATTR: size 0 asks for the size only. */
static ssize_t reply_xattr(struct fuse_req *r, ssize_t len, uint32_t size)
{
	if (len < 0)
		return ERR(r, -errno);
	if (size == 0) {
		struct fuse_getxattr_out out = {.size = (uint32_t)len};
		return fuse_reply(r, 0, &out, sizeof(out));
	}
	return fuse_reply(r, 0, r->s->reply, (size_t)len);
}

static uint32_t xattr_room(uint32_t size)
{
	return size > XATTR_SIZE_MAX ? XATTR_SIZE_MAX : size;
}

ssize_t fuse_op_getxattr(struct fuse_req *r)
{
	const struct fuse_getxattr_in *in = fuse_arg(r, sizeof(*in));
	const char *name = in ? fuse_arg_str(r, XATTR_NAME_MAX) : NULL;
	if (!name || !*name)
		return ERR(r, -EINVAL);
	NODE_OR_REPLY(r, r->nodeid, n);
	char path[40];
	int err = xattr_path(n, path, sizeof(path));
	if (err)
		return ERR(r, err);
	uint32_t size = xattr_room(in->size);
	return reply_xattr(r, getxattr(path, name, size ? r->s->reply : NULL, size), size);
}

ssize_t fuse_op_listxattr(struct fuse_req *r)
{
	FUSE_ARG_OR_REPLY(r, struct fuse_getxattr_in, in);
	NODE_OR_REPLY(r, r->nodeid, n);
	char path[40];
	int err = xattr_path(n, path, sizeof(path));
	if (err)
		return ERR(r, err);
	uint32_t size = xattr_room(in->size);
	return reply_xattr(r, listxattr(path, size ? (char *)r->s->reply : NULL, size), size);
}

/*
 * Only "user." attributes may be set or removed: security.capability would grant privileges to a
 * host file, trusted.* steers host overlayfs, system.* carries ACLs the host enforces.
 */
static int xattr_settable(const char *name)
{
	if (!name || !*name)
		return -EINVAL;
	return strncmp(name, "user.", 5) == 0 ? 0 : -EPERM;
}

ssize_t fuse_op_setxattr(struct fuse_req *r)
{
	/* Without FUSE_SETXATTR_EXT (not offered) the kernel sends the 8-byte form. */
	const struct {
		uint32_t size, flags;
	} *in = fuse_arg(r, FUSE_COMPAT_SETXATTR_IN_SIZE);
	const char *name = in ? fuse_arg_str(r, XATTR_NAME_MAX) : NULL;
	int err = xattr_settable(name);
	if (err)
		return ERR(r, err);
	if (in->size > XATTR_SIZE_MAX)
		return ERR(r, -E2BIG);
	const void *value = fuse_arg(r, in->size);
	if (!value)
		return ERR(r, -EINVAL);
	NODE_OR_REPLY(r, r->nodeid, n);
	WRITABLE_OR_REPLY(r);
	char path[40];
	if ((err = xattr_path(n, path, sizeof(path))))
		return ERR(r, err);
	return ERR(r, setxattr(path, name, value, in->size, (int)in->flags) < 0 ? -errno : 0);
}

ssize_t fuse_op_removexattr(struct fuse_req *r)
{
	const char *name = fuse_arg_str(r, XATTR_NAME_MAX);
	int err = xattr_settable(name);
	if (err)
		return ERR(r, err);
	NODE_OR_REPLY(r, r->nodeid, n);
	WRITABLE_OR_REPLY(r);
	char path[40];
	if ((err = xattr_path(n, path, sizeof(path))))
		return ERR(r, err);
	return ERR(r, removexattr(path, name) < 0 ? -errno : 0);
}
