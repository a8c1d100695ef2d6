/*
 * The helpers every FUSE operation shares: its arguments out of the copied request, checked
 * names, the reply into the chain's writable buffers, attributes and modes for the guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "ops.h"

size_t fuse_iov_slice(const struct iovec *iov, unsigned int n, size_t skip, size_t len,
		      struct iovec *out, unsigned int max_out, unsigned int *n_out)
{
	size_t got = 0;
	unsigned int k = 0;
	for (unsigned int i = 0; i < n && got < len && k < max_out; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		size_t take = iov[i].iov_len - skip;
		if (take > len - got)
			take = len - got;
		out[k].iov_base = (uint8_t *)iov[i].iov_base + skip;
		out[k].iov_len = take;
		k++;
		got += take;
		skip = 0;
	}
	*n_out = k;
	return got;
}

ssize_t fuse_reply(struct fuse_req *r, int error, const void *data, size_t len)
{
	struct fuse_out_header h = {.unique = r->unique};
	if (error) {
		len = 0;
		h.error = error;
	} else if (sizeof(h) + len > r->out_len) {
		len = 0;
		h.error = -EIO; /* the driver gave less room than this reply needs */
	}
	h.len = (uint32_t)(sizeof(h) + len);
	struct iovec part[FUSE_MAX_IOV];
	unsigned int k;
	fuse_iov_slice(r->out, r->n_out, 0, h.len, part, FUSE_MAX_IOV, &k);
	size_t done = 0;
	for (unsigned int i = 0; i < k; i++) {
		size_t from_h = done < sizeof(h) ? sizeof(h) - done : 0;
		if (from_h > part[i].iov_len)
			from_h = part[i].iov_len;
		memcpy(part[i].iov_base, (uint8_t *)&h + done, from_h);
		if (part[i].iov_len > from_h)
			memcpy((uint8_t *)part[i].iov_base + from_h,
			       (const uint8_t *)data + (done + from_h - sizeof(h)),
			       part[i].iov_len - from_h);
		done += part[i].iov_len;
	}
	return h.len;
}

ssize_t fuse_reply_header(struct fuse_req *r, size_t data_len)
{
	struct fuse_out_header h = {.unique = r->unique, .len = (uint32_t)(sizeof(h) + data_len)};
	iov_from_buf(r->out, r->n_out, 0, &h, sizeof(h));
	return h.len;
}

const void *fuse_arg(struct fuse_req *r, size_t size)
{
	if (r->arg_len - r->arg_off < size)
		return NULL;
	const void *p = r->arg + r->arg_off;
	r->arg_off += size;
	return p;
}

const char *fuse_arg_str(struct fuse_req *r, size_t max)
{
	const char *p = (const char *)r->arg + r->arg_off;
	size_t left = r->arg_len - r->arg_off;
	const char *nul = memchr(p, 0, left < max + 1 ? left : max + 1);
	if (!nul)
		return NULL;
	r->arg_off += (size_t)(nul - p) + 1;
	return p;
}

int fuse_check_name(const char *name)
{
	if (!name)
		return -EINVAL; /* unterminated */
	size_t len = strlen(name);
	if (len == 0 || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL;
	if (len > 255)
		return -ENAMETOOLONG;
	return 0;
}

void fuse_fill_attr(struct fuse_attr *a, const struct stat *st)
{
	*a = (struct fuse_attr){
		.ino = st->st_ino,
		.size = (uint64_t)st->st_size,
		.blocks = (uint64_t)st->st_blocks,
		.atime = (uint64_t)st->st_atim.tv_sec,
		.mtime = (uint64_t)st->st_mtim.tv_sec,
		.ctime = (uint64_t)st->st_ctim.tv_sec,
		.atimensec = (uint32_t)st->st_atim.tv_nsec,
		.mtimensec = (uint32_t)st->st_mtim.tv_nsec,
		.ctimensec = (uint32_t)st->st_ctim.tv_nsec,
		.mode = st->st_mode,
		.nlink = (uint32_t)st->st_nlink,
		.uid = st->st_uid,
		.gid = st->st_gid,
		.rdev = (uint32_t)st->st_rdev,
		.blksize = (uint32_t)st->st_blksize,
	};
}

mode_t fuse_host_mode(const struct fuse_server *s, uint32_t mode, bool dir)
{
	mode &= 07777;
	if (!s->guest_ids)
		mode &= dir ? ~(uint32_t)S_ISUID : ~(uint32_t)(S_ISUID | S_ISGID);
	return (mode_t)mode;
}

int fuse_stat_node(const struct fuse_node *n, struct stat *st)
{
	return fstatat(n->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}
