/*
 * The one way from a guest's name to a host object, and from a node to an open host file: names
 * become O_PATH nodes without following links, and only regular files and directories are ever
 * opened, O_NOCTTY and O_NONBLOCK forced.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "ops.h"

#define ERR FUSE_ERR

int fuse_lookup_at(struct fuse_server *s, int dir_fd, const char *name, struct fuse_entry_out *e)
{
	int fd = openat(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return -errno;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	struct fuse_node *n = fuse_node_ref(s, fd, &st);
	if (!n)
		return -ENFILE;
	*e = (struct fuse_entry_out){
		.nodeid = fuse_node_id(s, n),
		.generation = n->gen,
		.entry_valid = FUSE_TIMEOUT_SEC,
		.attr_valid = FUSE_TIMEOUT_SEC,
	};
	fuse_fill_attr(&e->attr, &st);
	return 0;
}

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

ssize_t fuse_open_node(struct fuse_req *r, bool dir)
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
