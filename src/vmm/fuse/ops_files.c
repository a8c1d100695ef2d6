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

ssize_t fuse_op_open(struct fuse_req *r)
{
	return fuse_open_node(r, false);
}

ssize_t fuse_op_opendir(struct fuse_req *r)
{
	return fuse_open_node(r, true);
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
