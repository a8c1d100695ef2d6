/* FUSE operations on open files and directories: data moves between the file and guest memory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "ops.h"

#define ERR FUSE_ERR

int fuse_host_flags(int guest_flags)
{
	/*
	 * Flags the guest may not choose for a host open, and the ones every host open gets:
	 * O_NOCTTY always; O_NONBLOCK so that no open can wait (a file with a host lease makes an
	 * open wait for the lease break; only regular files and directories are ever opened, where
	 * it changes nothing else).
	 */
	int flags = guest_flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT | O_ASYNC | O_PATH |
				    O_TMPFILE | O_DIRECTORY | O_NOFOLLOW);
	return flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
}

int fuse_reopen(struct fuse_server *s, const struct fuse_node *n, int flags)
{
	flags = fuse_host_flags(flags);
	if (n->type == S_IFDIR) {
		int fd = openat(n->fd, ".", flags | O_DIRECTORY);
		return fd < 0 ? -errno : fd;
	}
	/*
	 * The guest kernel opens device nodes and FIFOs itself and never asks; a symlink is never
	 * opened. Opening anything else from here could block the server (a FIFO waits for its
	 * other end) or reach a host device. A node's type is that of its inode, which never
	 * changes, and the open below reaches that very inode.
	 */
	if (n->type == S_IFLNK)
		return -ELOOP;
	if (n->type != S_IFREG)
		return -EACCES;
	char proc[16];
	snprintf(proc, sizeof(proc), "%d", n->fd);
	int fd = openat(s->proc_fd, proc, flags);
	return fd < 0 ? -errno : fd;
}

int fuse_kill_privs(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return 0;
	/* As the kernel does: setuid always, setgid only with group execute (else it is a lock). */
	mode_t kill = S_ISUID;
	if ((st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		kill |= S_ISGID;
	if ((st.st_mode & kill) && fchmod(fd, st.st_mode & 07777 & ~kill) < 0)
		return -errno;
	if (fremovexattr(fd, "security.capability") < 0 && errno != ENODATA && errno != EOPNOTSUPP)
		return -errno;
	return 0;
}

int fuse_open_handle(struct fuse_server *s, int fd, int flags, uint32_t open_flags, bool dir,
		     uint64_t *fh)
{
	/* FUSE_HANDLE_KILLPRIV_V2: a truncating open by an unprivileged guest user. */
	int err = (open_flags & FUSE_OPEN_KILL_SUIDGID) && (flags & O_TRUNC) ? fuse_kill_privs(fd)
									     : 0;
	if (err) {
		close(fd);
		return err;
	}
	/* Out of handles or of the descriptor budget: this process may open no more (EMFILE). */
	*fh = fuse_handle_new(s, fd, dir);
	return *fh ? 0 : -EMFILE;
}

static bool writes(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

/*
 * Whether the guest may keep its page cache of n at this open: yes when the file's size, mtime
 * and ctime are those recorded at the guest's previous open. The guest's cache then holds only
 * what it read or wrote since that open (an open without FOPEN_KEEP_CACHE drops the cache), and
 * any change since, by the host or by the guest, moved the ctime. A record counts only when its
 * ctime was old enough (trust_after_sec) when taken: timestamps advance in clock ticks, and a
 * change in the tick of the one before could leave them as they were. Records the file as it is
 * now for the next open.
 */
static bool keep_cache(struct fuse_server *s, struct fuse_node *n, int fd)
{
	struct stat st;
	struct timespec now;
	if (fstat(fd, &st) < 0 || clock_gettime(CLOCK_REALTIME, &now) < 0) {
		n->seen_valid = false;
		return false;
	}
	bool same = n->seen_valid && n->seen_size == (int64_t)st.st_size &&
		    n->seen_mtime_sec == (int64_t)st.st_mtim.tv_sec &&
		    n->seen_mtime_nsec == st.st_mtim.tv_nsec &&
		    n->seen_ctime_sec == (int64_t)st.st_ctim.tv_sec &&
		    n->seen_ctime_nsec == st.st_ctim.tv_nsec;
	n->seen_valid = (int64_t)now.tv_sec - (int64_t)st.st_ctim.tv_sec >= s->trust_after_sec;
	n->seen_size = (int64_t)st.st_size;
	n->seen_mtime_sec = (int64_t)st.st_mtim.tv_sec;
	n->seen_mtime_nsec = st.st_mtim.tv_nsec;
	n->seen_ctime_sec = (int64_t)st.st_ctim.tv_sec;
	n->seen_ctime_nsec = st.st_ctim.tv_nsec;
	return same;
}

static ssize_t open_node(struct fuse_req *r, bool dir)
{
	FUSE_ARG_OR_REPLY(r, struct fuse_open_in, in);
	struct fuse_node *n = fuse_node_get(r->s, r->nodeid);
	if (!n)
		return ERR(r, -ENOENT);
	if (dir != (n->type == S_IFDIR))
		return ERR(r, dir ? -ENOTDIR : -EISDIR);
	int flags = dir ? O_RDONLY : (int)in->flags;
	if (writes(flags) && r->s->read_only)
		return ERR(r, -EROFS);
	int fd = fuse_reopen(r->s, n, flags);
	if (fd < 0)
		return ERR(r, fd);
	uint64_t fh;
	int err = fuse_open_handle(r->s, fd, flags, in->open_flags, dir, &fh);
	if (err)
		return ERR(r, err);
	/*
	 * FOPEN_NOFLUSH: writes reach the host at once and FLUSH would do nothing, so close() needs
	 * no round trip. FOPEN_KEEP_CACHE only when the file has not changed since the guest last
	 * opened it (keep_cache()); otherwise the guest drops what it cached and reads afresh.
	 */
	struct fuse_open_out out = {.fh = fh, .open_flags = dir ? 0 : FOPEN_NOFLUSH};
	if (!dir && keep_cache(r->s, n, fd))
		out.open_flags |= FOPEN_KEEP_CACHE;
	return fuse_reply(r, 0, &out, sizeof(out));
}

ssize_t fuse_op_open(struct fuse_req *r)
{
	return open_node(r, false);
}

ssize_t fuse_op_opendir(struct fuse_req *r)
{
	return open_node(r, true);
}

static ssize_t release(struct fuse_req *r, bool dir)
{
	FUSE_ARG_OR_REPLY(r, struct fuse_release_in, in);
	if (!fuse_handle_get(r->s, in->fh, dir))
		return ERR(r, -EBADF);
	fuse_handle_close(r->s, in->fh, dir);
	return ERR(r, 0);
}

ssize_t fuse_op_release(struct fuse_req *r)
{
	return release(r, false);
}

ssize_t fuse_op_releasedir(struct fuse_req *r)
{
	return release(r, true);
}

ssize_t fuse_op_read(struct fuse_req *r)
{
	FUSE_ARG_OR_REPLY(r, struct fuse_read_in, in);
	FUSE_HANDLE_OR_REPLY(r, in->fh, false, h);
	if (in->offset > (uint64_t)INT64_MAX)
		return ERR(r, -EINVAL);
	size_t hdr = sizeof(struct fuse_out_header);
	size_t size = in->size < FUSE_SERVER_MAX_WRITE ? in->size : FUSE_SERVER_MAX_WRITE;
	if (size > r->out_len - hdr)
		size = r->out_len - hdr;
	/* Straight from the file into the guest's buffers, after the reply header. */
	struct iovec part[FUSE_MAX_IOV];
	unsigned int k;
	fuse_iov_slice(r->out, r->n_out, hdr, size, part, FUSE_MAX_IOV, &k);
	ssize_t n = size ? preadv(h->fd, part, (int)k, (off_t)in->offset) : 0;
	if (n < 0)
		return ERR(r, -errno);
	return fuse_reply_header(r, (size_t)n);
}

ssize_t fuse_op_write(struct fuse_req *r)
{
	FUSE_ARG_OR_REPLY(r, struct fuse_write_in, in);
	if (r->s->read_only)
		return ERR(r, -EROFS);
	FUSE_HANDLE_OR_REPLY(r, in->fh, false, h);
	size_t at = sizeof(struct fuse_in_header) + sizeof(*in);
	/* in->size is the guest's word: the data must really be in the request. */
	if (in->size > FUSE_SERVER_MAX_WRITE || in->size > r->req_len - at ||
	    in->offset > (uint64_t)INT64_MAX)
		return ERR(r, -EINVAL);
	struct iovec part[FUSE_MAX_IOV];
	unsigned int k;
	fuse_iov_slice(r->in, r->n_in, at, in->size, part, FUSE_MAX_IOV, &k);
	/* FUSE_HANDLE_KILLPRIV_V2: the guest writer lacks CAP_FSETID; we may be root, who keeps. */
	if (in->write_flags & FUSE_WRITE_KILL_SUIDGID) {
		int err = fuse_kill_privs(h->fd);
		if (err)
			return ERR(r, err);
	}
	ssize_t n = in->size ? pwritev(h->fd, part, (int)k, (off_t)in->offset) : 0;
	if (n < 0)
		return ERR(r, -errno);
	struct fuse_write_out out = {.size = (uint32_t)n};
	return fuse_reply(r, 0, &out, sizeof(out));
}

/*
 * READDIR and READDIRPLUS: from the directory position the guest gives (a d_off we returned),
 * as many entries as fit. READDIRPLUS looks each up (the guest then holds a reference to it),
 * but only once it is sure the entry fits, so no reference is given for an entry not sent.
 */
static ssize_t read_dir(struct fuse_req *r, bool plus)
{
	FUSE_ARG_OR_REPLY(r, struct fuse_read_in, in);
	struct fuse_server *s = r->s;
	struct fuse_handle *h = fuse_handle_get(s, in->fh, true);
	if (!h)
		return ERR(r, -EBADF);
	size_t hdr = sizeof(struct fuse_out_header);
	size_t max = in->size;
	if (max > FUSE_SERVER_MAX_WRITE)
		max = FUSE_SERVER_MAX_WRITE;
	if (max > r->out_len - hdr)
		max = r->out_len - hdr;
	if (in->offset > (uint64_t)INT64_MAX || lseek(h->fd, (off_t)in->offset, SEEK_SET) < 0)
		return ERR(r, -EINVAL);
	size_t used = 0;
	for (bool full = false; !full;) {
		ssize_t got = getdents64(h->fd, s->dents, FUSE_DENTS_SIZE);
		if (got < 0 && used == 0)
			return ERR(r, -errno);
		if (got <= 0)
			break;
		for (ssize_t off = 0; off < got;) {
			struct dirent64 *d = (struct dirent64 *)(s->dents + off);
			off += d->d_reclen;
			size_t namelen = strnlen(d->d_name, NAME_MAX + 1);
			size_t entsize = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + namelen);
			size_t plussize = plus ? sizeof(struct fuse_entry_out) : 0;
			if (namelen > NAME_MAX)
				continue;
			if (used + plussize + entsize > max) {
				full = true;
				break;
			}
			uint8_t *at = s->reply + used;
			if (plus) {
				struct fuse_entry_out e = {0};
				bool dots =
					strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0;
				/*
				 * The guest ignores "." and ".." attributes: no reference taken. An
				 * entry whose lookup fails for another reason than being gone (a
				 * full node table) goes without attributes (node id 0).
				 */
				int err = dots ? 0 : fuse_lookup_at(s, h->fd, d->d_name, &e);
				if (err == -ENOENT)
					continue; /* gone since getdents */
				if (err)
					memset(&e, 0, sizeof(e));
				memcpy(at, &e, sizeof(e));
				at += sizeof(e);
			}
			struct fuse_dirent de = {
				.ino = d->d_ino,
				.off = (uint64_t)d->d_off,
				.namelen = (uint32_t)namelen,
				.type = d->d_type,
			};
			memcpy(at, &de, FUSE_NAME_OFFSET);
			memcpy(at + FUSE_NAME_OFFSET, d->d_name, namelen);
			memset(at + FUSE_NAME_OFFSET + namelen, 0,
			       entsize - FUSE_NAME_OFFSET - namelen);
			used += plussize + entsize;
		}
		if (full)
			break;
	}
	return fuse_reply(r, 0, s->reply, used);
}

ssize_t fuse_op_readdir(struct fuse_req *r)
{
	return read_dir(r, false);
}

ssize_t fuse_op_readdirplus(struct fuse_req *r)
{
	return read_dir(r, true);
}

ssize_t fuse_op_flush(struct fuse_req *r)
{
	FUSE_ARG_OR_REPLY(r, struct fuse_flush_in, in);
	return ERR(r, fuse_handle_get(r->s, in->fh, false) ? 0 : -EBADF);
}

static ssize_t sync_handle(struct fuse_req *r, bool dir)
{
	FUSE_ARG_OR_REPLY(r, struct fuse_fsync_in, in);
	FUSE_HANDLE_OR_REPLY(r, in->fh, dir, h);
	int rc = (in->fsync_flags & FUSE_FSYNC_FDATASYNC) ? fdatasync(h->fd) : fsync(h->fd);
	return ERR(r, rc < 0 ? -errno : 0);
}

ssize_t fuse_op_fsync(struct fuse_req *r)
{
	return sync_handle(r, false);
}

ssize_t fuse_op_fsyncdir(struct fuse_req *r)
{
	return sync_handle(r, true);
}

ssize_t fuse_op_fallocate(struct fuse_req *r)
{
	FUSE_ARG_OR_REPLY(r, struct fuse_fallocate_in, in);
	if (r->s->read_only)
		return ERR(r, -EROFS);
	FUSE_HANDLE_OR_REPLY(r, in->fh, false, h);
	if (in->offset > (uint64_t)INT64_MAX || in->length > (uint64_t)INT64_MAX)
		return ERR(r, -EINVAL);
	int rc = fallocate(h->fd, (int)in->mode, (off_t)in->offset, (off_t)in->length);
	return ERR(r, rc < 0 ? -errno : 0);
}

ssize_t fuse_op_lseek(struct fuse_req *r)
{
	FUSE_ARG_OR_REPLY(r, struct fuse_lseek_in, in);
	FUSE_HANDLE_OR_REPLY(r, in->fh, false, h);
	if (in->whence != SEEK_DATA && in->whence != SEEK_HOLE && in->whence != SEEK_SET &&
	    in->whence != SEEK_END)
		return ERR(r, -EINVAL);
	/* The handle's own position is never used (READ and WRITE carry offsets). */
	off_t pos = lseek(h->fd, (off_t)in->offset, (int)in->whence);
	if (pos < 0)
		return ERR(r, -errno);
	struct fuse_lseek_out out = {.offset = (uint64_t)pos};
	return fuse_reply(r, 0, &out, sizeof(out));
}
