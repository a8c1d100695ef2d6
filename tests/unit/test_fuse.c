/*
 * The FUSE server against crafted requests, as a hostile guest would send them: the normal
 * operations work on a scratch share, and every escape attempt, forged id, bad length and
 * malformed name gets an error (never a crash, never a host object outside the share).
 */
#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../../src/vmm/fd_budget.h"
#include "../../src/vmm/fuse/ops.h"
#include "check.h"

static char dir[] = "/tmp/ec1-fuse-XXXXXX";
static char outside[] = "/tmp/ec1-fuse-outside-XXXXXX";
static struct fuse_server *srv;
static uint64_t unique;
uint32_t test_uid; /* the guest user requests come from */

/* The reply to the last request. */
static struct {
	int32_t error;
	uint32_t len;
	uint8_t data[FUSE_SERVER_MAX_WRITE + 4096];
} rep;
static ssize_t rep_total;

/* Sends opcode with args (header built here) split over two iovecs to exercise gathering. */
static int32_t call_ex(struct fuse_server *s, uint32_t opcode, uint64_t nodeid, const void *args,
		       size_t args_len, size_t out_room, uint32_t len_override)
{
	static uint8_t req[FUSE_SERVER_MAX_WRITE + 8192];
	struct fuse_in_header h = {.len = (uint32_t)(sizeof(h) + args_len),
				   .opcode = opcode,
				   .unique = ++unique,
				   .nodeid = nodeid,
				   .uid = test_uid,
				   .gid = test_uid};
	if (len_override)
		h.len = len_override;
	memcpy(req, &h, sizeof(h));
	if (args_len)
		memcpy(req + sizeof(h), args, args_len);
	size_t total = sizeof(h) + args_len, cut = total / 2;
	struct iovec in[2] = {{req, cut}, {req + cut, total - cut}};
	static uint8_t out[sizeof(struct fuse_out_header) + FUSE_SERVER_MAX_WRITE + 4096];
	struct iovec o = {out, out_room ? out_room : sizeof(out)};
	memset(&rep, 0, sizeof(rep));
	rep_total = fuse_server_handle(s, in, 2, &o, 1);
	if (rep_total < (ssize_t)sizeof(struct fuse_out_header))
		return rep_total == 0 ? 0 : -1000;
	struct fuse_out_header oh;
	memcpy(&oh, out, sizeof(oh));
	rep.error = oh.error;
	rep.len = oh.len;
	memcpy(rep.data, out + sizeof(oh), (size_t)rep_total - sizeof(oh));
	if (oh.unique != unique || oh.len != (uint32_t)rep_total)
		return -2000;
	return oh.error;
}

static int32_t call(uint32_t opcode, uint64_t nodeid, const void *args, size_t len)
{
	return call_ex(srv, opcode, nodeid, args, len, 0, 0);
}

/* Builds "struct + name\0 [+ name2\0]" argument blocks. */
static size_t args2(uint8_t *buf, const void *fixed, size_t fixed_len, const char *a, const char *b)
{
	size_t n = fixed_len;
	if (fixed_len)
		memcpy(buf, fixed, fixed_len);
	if (a) {
		memcpy(buf + n, a, strlen(a) + 1);
		n += strlen(a) + 1;
	}
	if (b) {
		memcpy(buf + n, b, strlen(b) + 1);
		n += strlen(b) + 1;
	}
	return n;
}

/* A node id, or 0 with *err set; a negative entry (node id 0) reads as -ENOENT. */
static uint64_t lookup(uint64_t parent, const char *name, int32_t *err)
{
	*err = call(FUSE_LOOKUP, parent, name, strlen(name) + 1);
	struct fuse_entry_out e;
	memcpy(&e, rep.data, sizeof(e));
	if (*err == 0 && e.nodeid == 0)
		*err = -ENOENT;
	return *err ? 0 : e.nodeid;
}

static uint64_t open_file(uint64_t node, uint32_t flags, int32_t *err)
{
	struct fuse_open_in in = {.flags = flags};
	*err = call(FUSE_OPEN, node, &in, sizeof(in));
	struct fuse_open_out o;
	memcpy(&o, rep.data, sizeof(o));
	return *err ? 0 : o.fh;
}

static void write_host(const char *rel, const char *text)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		if (write(fd, text, strlen(text)) < 0)
			check_failed = 1;
		close(fd);
	}
}

static void fuse_init_and_basic_operations(void)
{
	struct fuse_init_in init = {.major = 7,
				    .minor = 36,
				    .max_readahead = 65536,
				    .flags = FUSE_MAX_PAGES | FUSE_DO_READDIRPLUS};
	CHECK(call(FUSE_INIT, 0, &init, sizeof(init)) == 0);
	struct fuse_init_out io;
	memcpy(&io, rep.data, sizeof(io));
	CHECK(io.major == 7 && io.max_write == FUSE_SERVER_MAX_WRITE &&
	      io.max_pages == FUSE_SERVER_MAX_WRITE / 4096);
	CHECK(io.flags == (FUSE_MAX_PAGES | FUSE_DO_READDIRPLUS)); /* only what both offer */

	write_host("hello.txt", "hello from the host\n");
	int32_t err;
	uint64_t node = lookup(FUSE_ROOT_ID, "hello.txt", &err);
	CHECK(err == 0 && node > FUSE_ROOT_ID);
	CHECK(lookup(FUSE_ROOT_ID, "hello.txt", &err) == node); /* one node per inode */
	/* A missing name: a negative entry the guest may cache, not a bare error. */
	CHECK(call(FUSE_LOOKUP, FUSE_ROOT_ID, "missing", 8) == 0);
	struct fuse_entry_out neg;
	memcpy(&neg, rep.data, sizeof(neg));
	CHECK(neg.nodeid == 0 && neg.entry_valid > 0);
	uint64_t fh = open_file(node, O_RDONLY, &err);
	CHECK(err == 0 && fh);
	struct fuse_read_in rd = {.fh = fh, .offset = 6, .size = 4096};
	CHECK(call(FUSE_READ, node, &rd, sizeof(rd)) == 0);
	CHECK(rep.len - sizeof(struct fuse_out_header) == 14 &&
	      memcmp(rep.data, "from the host\n", 14) == 0);
	struct fuse_release_in rel = {.fh = fh};
	CHECK(call(FUSE_RELEASE, node, &rel, sizeof(rel)) == 0);
	CHECK(call(FUSE_RELEASE, node, &rel, sizeof(rel)) == -EBADF); /* closed handles are gone */

	/* CREATE + WRITE from the guest, seen on the host. */
	uint8_t buf[512];
	struct fuse_create_in cr = {.flags = O_WRONLY | O_CREAT, .mode = S_IFREG | 0640};
	CHECK(call(FUSE_CREATE, FUSE_ROOT_ID, buf, args2(buf, &cr, sizeof(cr), "new.txt", NULL)) ==
	      0);
	struct fuse_entry_out e;
	struct fuse_open_out oo;
	memcpy(&e, rep.data, sizeof(e));
	memcpy(&oo, rep.data + sizeof(e), sizeof(oo));
	CHECK((e.attr.mode & 07777) == 0640);
	CHECK(oo.open_flags ==
	      FOPEN_NOFLUSH); /* writes are synchronous: nothing to flush on close */
	struct fuse_write_in wr = {.fh = oo.fh, .offset = 0, .size = 11};
	memcpy(buf, &wr, sizeof(wr));
	memcpy(buf + sizeof(wr), "guest wrote", 11);
	CHECK(call(FUSE_WRITE, e.nodeid, buf, sizeof(wr) + 11) == 0);
	struct fuse_write_out wo;
	memcpy(&wo, rep.data, sizeof(wo));
	CHECK(wo.size == 11);
	char p[256], got[64] = {0};
	snprintf(p, sizeof(p), "%s/new.txt", dir);
	int fd = open(p, O_RDONLY);
	CHECK(fd >= 0 && read(fd, got, sizeof(got)) == 11 && strcmp(got, "guest wrote") == 0);
	if (fd >= 0)
		close(fd);

	/* MKDIR, SYMLINK, READLINK, LINK, RENAME, UNLINK, RMDIR. */
	struct fuse_mkdir_in mk = {.mode = 0755};
	CHECK(call(FUSE_MKDIR, FUSE_ROOT_ID, buf, args2(buf, &mk, sizeof(mk), "sub", NULL)) == 0);
	memcpy(&e, rep.data, sizeof(e));
	uint64_t sub = e.nodeid;
	CHECK(S_ISDIR(e.attr.mode));
	CHECK(call(FUSE_SYMLINK, sub, buf, args2(buf, NULL, 0, "ln", "../hello.txt")) == 0);
	memcpy(&e, rep.data, sizeof(e));
	CHECK(call(FUSE_READLINK, e.nodeid, NULL, 0) == 0);
	CHECK(rep.len - sizeof(struct fuse_out_header) == 12 &&
	      memcmp(rep.data, "../hello.txt", 12) == 0);
	struct fuse_link_in lk = {.oldnodeid = node};
	CHECK(call(FUSE_LINK, sub, buf, args2(buf, &lk, sizeof(lk), "hard", NULL)) == 0);
	memcpy(&e, rep.data, sizeof(e));
	CHECK(e.nodeid == node && e.attr.nlink == 2);
	struct fuse_rename_in rn = {.newdir = FUSE_ROOT_ID};
	CHECK(call(FUSE_RENAME, sub, buf, args2(buf, &rn, sizeof(rn), "hard", "moved")) == 0);
	snprintf(p, sizeof(p), "%s/moved", dir);
	CHECK(access(p, F_OK) == 0);
	CHECK(call(FUSE_UNLINK, FUSE_ROOT_ID, "moved", 6) == 0);
	CHECK(call(FUSE_UNLINK, sub, "ln", 3) == 0);
	CHECK(call(FUSE_RMDIR, FUSE_ROOT_ID, "sub", 4) == 0);
	snprintf(p, sizeof(p), "%s/sub", dir);
	CHECK(access(p, F_OK) < 0 && errno == ENOENT);

	/* SETATTR: mode and size. */
	struct fuse_setattr_in sa = {.valid = FATTR_MODE | FATTR_SIZE, .mode = 0600, .size = 5};
	CHECK(call(FUSE_SETATTR, node, &sa, sizeof(sa)) == 0);
	struct stat st;
	snprintf(p, sizeof(p), "%s/hello.txt", dir);
	CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0600 && st.st_size == 5);

	/* READDIRPLUS lists everything, with a reference for each entry but "." and "..". */
	struct fuse_open_in od = {0};
	CHECK(call(FUSE_OPENDIR, FUSE_ROOT_ID, &od, sizeof(od)) == 0);
	memcpy(&oo, rep.data, sizeof(oo));
	struct fuse_read_in rdd = {.fh = oo.fh, .size = 4096};
	CHECK(call(FUSE_READDIRPLUS, FUSE_ROOT_ID, &rdd, sizeof(rdd)) == 0);
	int names = 0;
	for (size_t off = 0; off < rep.len - sizeof(struct fuse_out_header);) {
		struct fuse_direntplus *d = (struct fuse_direntplus *)(rep.data + off);
		names += d->dirent.namelen == 9 && memcmp(d->dirent.name, "hello.txt", 9) == 0;
		names += d->dirent.namelen == 7 && memcmp(d->dirent.name, "new.txt", 7) == 0;
		off += FUSE_DIRENTPLUS_SIZE(d);
	}
	CHECK(names == 2);
	struct fuse_release_in rdir = {.fh = oo.fh};
	CHECK(call(FUSE_RELEASEDIR, FUSE_ROOT_ID, &rdir, sizeof(rdir)) == 0);

	/* STATFS, xattrs (user.* only). */
	CHECK(call(FUSE_STATFS, FUSE_ROOT_ID, NULL, 0) == 0);
	struct fuse_getxattr_in gx = {.size = 0};
	CHECK(call(FUSE_GETXATTR, node, buf, args2(buf, &gx, sizeof(gx), "user.none", NULL)) ==
	      -ENODATA);
	/* Unknown opcodes: ENOSYS. */
	CHECK(call(FUSE_IOCTL, node, buf, 64) == -ENOSYS);
	CHECK(call(4242, node, NULL, 0) == -ENOSYS);
}

static void fuse_names_never_leave_the_share(void)
{
	int32_t err;
	/* ".." of the root is the root; elsewhere, and "/" inside names, refused. */
	CHECK(lookup(FUSE_ROOT_ID, "..", &err) == FUSE_ROOT_ID && err == 0);
	const char *bad[] = {"../etc", "a/b", "/etc", "", "sub/..", ".x/../.."};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lookup(FUSE_ROOT_ID, bad[i], &err);
		CHECK(err == -EINVAL || err == -ENOENT);
		if (err != -EINVAL && strchr(bad[i], '/'))
			printf("    %s: %d\n", bad[i], err), check_failed = 1;
	}
	char longname[300];
	memset(longname, 'a', 299);
	longname[299] = 0;
	lookup(FUSE_ROOT_ID, longname, &err);
	CHECK(err == -ENAMETOOLONG || err == -EINVAL);
	/* Unterminated name: no NUL within the request. */
	CHECK(call(FUSE_LOOKUP, FUSE_ROOT_ID, "hello.txt", 9) == -EINVAL);
	uint8_t buf[256];
	struct fuse_mkdir_in mk = {.mode = 0755};
	CHECK(call(FUSE_MKDIR, FUSE_ROOT_ID, buf, args2(buf, &mk, sizeof(mk), "..", NULL)) ==
	      -EINVAL);
	struct fuse_rename_in rn = {.newdir = FUSE_ROOT_ID};
	CHECK(call(FUSE_RENAME, FUSE_ROOT_ID, buf,
		   args2(buf, &rn, sizeof(rn), "hello.txt", "../escaped")) == -EINVAL);
	CHECK(call(FUSE_UNLINK, FUSE_ROOT_ID, "../x", 5) == -EINVAL);

	/* A symlink to / (or ../../etc) is an object: not followed, not openable, not a dir. */
	CHECK(call(FUSE_SYMLINK, FUSE_ROOT_ID, buf, args2(buf, NULL, 0, "root", "/")) == 0);
	CHECK(call(FUSE_SYMLINK, FUSE_ROOT_ID, buf, args2(buf, NULL, 0, "up", "../../etc")) == 0);
	uint64_t root_link = lookup(FUSE_ROOT_ID, "root", &err);
	CHECK(err == 0);
	lookup(root_link, "etc", &err);
	CHECK(err == -ENOTDIR);
	open_file(root_link, O_RDONLY, &err);
	CHECK(err == -ELOOP);
	uint64_t up = lookup(FUSE_ROOT_ID, "up", &err);
	lookup(up, "passwd", &err);
	CHECK(err == -ENOTDIR);
	struct fuse_open_in od = {0};
	CHECK(call(FUSE_OPENDIR, up, &od, sizeof(od)) == -ENOTDIR);
	/* CREATE through a planted symlink does not write its target. */
	char p[256];
	snprintf(p, sizeof(p), "%s/target", outside);
	CHECK(call(FUSE_SYMLINK, FUSE_ROOT_ID, buf, args2(buf, NULL, 0, "plant", p)) == 0);
	struct fuse_create_in cr = {.flags = O_WRONLY | O_CREAT, .mode = S_IFREG | 0644};
	CHECK(call(FUSE_CREATE, FUSE_ROOT_ID, buf, args2(buf, &cr, sizeof(cr), "plant", NULL)) ==
	      -ELOOP);
	CHECK(access(p, F_OK) < 0);

	/* Symlink race: a directory the guest holds is swapped for a symlink to /etc on the host.
	 */
	char d[256], d2[256];
	snprintf(d, sizeof(d), "%s/d", dir);
	snprintf(d2, sizeof(d2), "%s/d-old", dir);
	CHECK(mkdir(d, 0755) == 0);
	uint64_t dn = lookup(FUSE_ROOT_ID, "d", &err);
	CHECK(err == 0);
	CHECK(rename(d, d2) == 0 && symlink("/etc", d) == 0);
	lookup(dn, "passwd", &err);
	CHECK(err == -ENOENT); /* still the old directory, which has no passwd */
	uint64_t dl = lookup(FUSE_ROOT_ID, "d", &err);
	lookup(dl, "passwd", &err);
	CHECK(err == -ENOTDIR);

	/* Device nodes are refused; xattrs outside user.* cannot be set. */
	struct fuse_mknod_in mn = {.mode = S_IFCHR | 0666, .rdev = makedev(1, 3)};
	CHECK(call(FUSE_MKNOD, FUSE_ROOT_ID, buf, args2(buf, &mn, sizeof(mn), "null", NULL)) ==
	      -EPERM);
	mn.mode = S_IFIFO | 0644;
	CHECK(call(FUSE_MKNOD, FUSE_ROOT_ID, buf, args2(buf, &mn, sizeof(mn), "fifo", NULL)) == 0);
	uint64_t fifo = lookup(FUSE_ROOT_ID, "fifo", &err);
	open_file(fifo, O_RDONLY, &err);
	CHECK(err == -EACCES); /* would block the server; the guest never asks */
	uint64_t hello = lookup(FUSE_ROOT_ID, "hello.txt", &err);
	struct {
		uint32_t size, flags;
	} sx = {4, 0};
	size_t n = args2(buf, &sx, sizeof(sx), "security.capability", NULL);
	memcpy(buf + n, "\1\0\0\2", 4);
	CHECK(call(FUSE_SETXATTR, hello, buf, n + 4) == -EPERM);
	CHECK(call(FUSE_REMOVEXATTR, hello, "trusted.x", 10) == -EPERM);
}

static void fuse_forged_ids_and_lengths(void)
{
	int32_t err;
	uint8_t buf[512];
	/* Node ids: zero, unknown slot, stale generation. */
	uint64_t hello = lookup(FUSE_ROOT_ID, "hello.txt", &err);
	const uint64_t bad_nodes[] = {0, 999999, hello + (1ull << 32), UINT64_MAX};
	for (size_t i = 0; i < 4; i++) {
		CHECK(call(FUSE_GETATTR, bad_nodes[i], buf, sizeof(struct fuse_getattr_in)) ==
		      -ENOENT);
		lookup(bad_nodes[i], "x", &err);
		CHECK(err == -ENOENT);
	}
	/* File handles: unknown, forged, a directory handle used as a file. */
	struct fuse_read_in rd = {.fh = 12345, .size = 10};
	CHECK(call(FUSE_READ, hello, &rd, sizeof(rd)) == -EBADF);
	struct fuse_open_in od = {0};
	CHECK(call(FUSE_OPENDIR, FUSE_ROOT_ID, &od, sizeof(od)) == 0);
	struct fuse_open_out oo;
	memcpy(&oo, rep.data, sizeof(oo));
	rd.fh = oo.fh;
	CHECK(call(FUSE_READ, hello, &rd, sizeof(rd)) == -EBADF);
	struct fuse_release_in rdir = {.fh = oo.fh};
	CHECK(call(FUSE_RELEASEDIR, FUSE_ROOT_ID, &rdir, sizeof(rdir)) == 0);

	uint64_t fh = open_file(hello, O_RDWR, &err);
	CHECK(err == 0);
	/* Huge and negative sizes and offsets. */
	rd = (struct fuse_read_in){.fh = fh, .offset = 0, .size = 0xffffffffu};
	CHECK(call(FUSE_READ, hello, &rd, sizeof(rd)) == 0); /* clipped, not overrun */
	rd.offset = 1ull << 63;
	CHECK(call(FUSE_READ, hello, &rd, sizeof(rd)) == -EINVAL);
	struct fuse_write_in wr = {.fh = fh, .size = 1000}; /* says 1000, carries 10 */
	memcpy(buf, &wr, sizeof(wr));
	CHECK(call(FUSE_WRITE, hello, buf, sizeof(wr) + 10) == -EINVAL);
	wr.size = 0xffffffffu;
	memcpy(buf, &wr, sizeof(wr));
	CHECK(call(FUSE_WRITE, hello, buf, sizeof(wr) + 10) == -EINVAL);
	wr = (struct fuse_write_in){.fh = fh, .offset = UINT64_MAX, .size = 1};
	memcpy(buf, &wr, sizeof(wr));
	CHECK(call(FUSE_WRITE, hello, buf, sizeof(wr) + 1) == -EINVAL);
	struct fuse_setattr_in sa = {.valid = FATTR_SIZE, .size = UINT64_MAX};
	CHECK(call(FUSE_SETATTR, hello, &sa, sizeof(sa)) == -EFBIG);
	struct fuse_fallocate_in fa = {.fh = fh, .offset = UINT64_MAX, .length = 1};
	CHECK(call(FUSE_FALLOCATE, hello, &fa, sizeof(fa)) == -EINVAL);
	/* Arguments shorter than their struct. */
	CHECK(call(FUSE_READ, hello, &rd, 8) == -EINVAL);
	CHECK(call(FUSE_SETATTR, hello, &sa, 3) == -EINVAL);
	CHECK(call(FUSE_INIT, 0, buf, 8) == -EINVAL);
	/* Header length: beyond the chain, or below a header. */
	CHECK(call_ex(srv, FUSE_GETATTR, hello, buf, 16, 0, 100000) == -EINVAL);
	CHECK(call_ex(srv, FUSE_GETATTR, hello, buf, 16, 0, 10) == -EINVAL);
	/* No room for a reply header: the request cannot be answered (the device stops the VM). */
	CHECK(call_ex(srv, FUSE_GETATTR, hello, buf, 16, 8, 0) == -1000);
	/* Room for a header but not the reply: EIO, nothing written past the buffer. */
	CHECK(call_ex(srv, FUSE_GETATTR, hello, buf, 16, sizeof(struct fuse_out_header) + 8, 0) ==
	      -EIO);
	/* BATCH_FORGET whose count exceeds what it carries; FORGET of unknown and root nodes. */
	struct {
		struct fuse_batch_forget_in in;
		struct fuse_forget_one one;
	} bf = {{.count = 0xffffffffu}, {.nodeid = 777777, .nlookup = 5}};
	CHECK(call(FUSE_BATCH_FORGET, 0, &bf, sizeof(bf)) == 0 && rep_total == 0);
	struct fuse_forget_in fg = {.nlookup = UINT64_MAX};
	CHECK(call(FUSE_FORGET, FUSE_ROOT_ID, &fg, sizeof(fg)) == 0);
	CHECK(call(FUSE_GETATTR, FUSE_ROOT_ID, buf, sizeof(struct fuse_getattr_in)) == 0);
	/* Forgetting a node for real frees it: its id then misses. */
	size_t before = fuse_server_nodes(srv);
	CHECK(call(FUSE_FORGET, hello, &fg, sizeof(fg)) == 0);
	CHECK(fuse_server_nodes(srv) == before - 1);
	CHECK(call(FUSE_GETATTR, hello, buf, sizeof(struct fuse_getattr_in)) == -ENOENT);
	struct fuse_release_in rel = {.fh = fh};
	CHECK(call(FUSE_RELEASE, hello, &rel, sizeof(rel)) == 0); /* handles outlive nodes */
}

static void fuse_tables_are_bounded(void)
{
	int32_t err;
	for (int i = 0; i < 20; i++) {
		char name[16];
		snprintf(name, sizeof(name), "many%d", i);
		write_host(name, "x");
	}
	uint32_t saved = srv->max_nodes;
	srv->max_nodes = srv->hw_nodes + 5;
	int ok = 0, full = 0;
	for (int i = 0; i < 20; i++) {
		char name[16];
		snprintf(name, sizeof(name), "many%d", i);
		lookup(FUSE_ROOT_ID, name, &err);
		ok += err == 0;
		full += err == -ENFILE;
	}
	CHECK(full > 0 && ok + full == 20);
	/* A full table still lists every entry: those without a node come without attributes. */
	struct fuse_open_in od = {0};
	CHECK(call(FUSE_OPENDIR, FUSE_ROOT_ID, &od, sizeof(od)) == 0);
	struct fuse_open_out oo;
	memcpy(&oo, rep.data, sizeof(oo));
	struct fuse_read_in rdd = {.fh = oo.fh, .size = 65536};
	CHECK(call(FUSE_READDIRPLUS, FUSE_ROOT_ID, &rdd, sizeof(rdd)) == 0);
	int listed = 0, bare = 0;
	for (size_t off = 0; off < rep.len - sizeof(struct fuse_out_header);) {
		struct fuse_direntplus *d = (struct fuse_direntplus *)(rep.data + off);
		if (d->dirent.namelen > 4 && memcmp(d->dirent.name, "many", 4) == 0) {
			listed++;
			bare += d->entry_out.nodeid == 0;
		}
		off += FUSE_DIRENTPLUS_SIZE(d);
	}
	CHECK(listed == 20 && bare > 0);
	srv->max_nodes = saved;
	/* DESTROY forgets everything but the root. */
	CHECK(call(FUSE_DESTROY, 0, NULL, 0) == 0);
	CHECK(fuse_server_nodes(srv) == 1 && fuse_server_handles(srv) == 0);
}

/* FUSE_HANDLE_KILLPRIV_V2: the server drops setuid/setgid when the guest says so. */
static void fuse_kills_suid_when_asked(void)
{
	char p[256];
	int32_t err;
	struct stat st;
	write_host("suid", "x");
	snprintf(p, sizeof(p), "%s/suid", dir);
	CHECK(chmod(p, 04755) == 0);
	uint64_t node = lookup(FUSE_ROOT_ID, "suid", &err);
	uint64_t fh = open_file(node, O_WRONLY, &err);
	uint8_t buf[128];
	struct fuse_write_in wr = {.fh = fh, .size = 1};
	memcpy(buf, &wr, sizeof(wr));
	buf[sizeof(wr)] = 'y';
	CHECK(call(FUSE_WRITE, node, buf, sizeof(wr) + 1) == 0);
	/* A privileged writer keeps it (as root, the server's own write does not drop it). */
	CHECK(stat(p, &st) == 0 && (geteuid() != 0 || (st.st_mode & 07777) == 04755));
	CHECK(chmod(p, 04755) == 0);
	wr.write_flags = FUSE_WRITE_KILL_SUIDGID;
	memcpy(buf, &wr, sizeof(wr));
	CHECK(call(FUSE_WRITE, node, buf, sizeof(wr) + 1) == 0);
	CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0755);
	/* setgid goes only with group execute (without it, it marks mandatory locking). */
	CHECK(chmod(p, 02775) == 0);
	struct fuse_setattr_in sa = {.valid = FATTR_KILL_SUIDGID};
	CHECK(call(FUSE_SETATTR, node, &sa, sizeof(sa)) == 0);
	CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0775);
	CHECK(chmod(p, 02664) == 0);
	CHECK(call(FUSE_SETATTR, node, &sa, sizeof(sa)) == 0);
	CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 02664);
	struct fuse_release_in rel = {.fh = fh};
	CHECK(call(FUSE_RELEASE, node, &rel, sizeof(rel)) == 0);
}

static void on_alarm(int sig)
{
	(void)sig; /* only here to interrupt a blocked system call (no SA_RESTART) */
}

/*
 * CREATE of a name that exists opens it the way OPEN does: never a FIFO (the open would wait for
 * a writer and hang the server; here an alarm turns that hang into EINTR), a socket or a device
 * node, and an existing file keeps its owner.
 */
static void fuse_create_opens_only_regular_files(void)
{
	int32_t err;
	uint8_t buf[256];
	struct sigaction sa = {.sa_handler = on_alarm}, old;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, &old);
	struct fuse_mknod_in mn = {.mode = S_IFIFO | 0666};
	CHECK(call(FUSE_MKNOD, FUSE_ROOT_ID, buf, args2(buf, &mn, sizeof(mn), "cfifo", NULL)) == 0);
	const uint32_t modes[] = {O_RDONLY, O_WRONLY, O_RDWR, O_WRONLY | O_TRUNC};
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct fuse_create_in cr = {.flags = modes[i] | O_CREAT, .mode = S_IFREG | 0644};
		alarm(2);
		err = call(FUSE_CREATE, FUSE_ROOT_ID, buf,
			   args2(buf, &cr, sizeof(cr), "cfifo", NULL));
		alarm(0);
		CHECK(err == -EACCES);
	}
	CHECK(fuse_server_handles(srv) == 0);
	/* A host character device in the share (debootstrap trees have /dev): not opened. */
	char p[256];
	snprintf(p, sizeof(p), "%s/cnull", dir);
	if (mknod(p, S_IFCHR | 0666, makedev(1, 3)) == 0) {
		struct fuse_create_in cr = {.flags = O_RDWR | O_CREAT, .mode = S_IFREG | 0644};
		CHECK(call(FUSE_CREATE, FUSE_ROOT_ID, buf,
			   args2(buf, &cr, sizeof(cr), "cnull", NULL)) == -EACCES);
		uint64_t node = lookup(FUSE_ROOT_ID, "cnull", &err);
		open_file(node, O_RDWR, &err);
		CHECK(err == -EACCES);
	} else {
		printf("    (no character device test: mknod: %s)\n", strerror(errno));
	}
	/* An existing regular file: opened (O_TRUNC honoured), its owner unchanged; O_EXCL fails.
	 */
	write_host("cfile", "some text");
	snprintf(p, sizeof(p), "%s/cfile", dir);
	struct stat before, after;
	CHECK(chown(p, 4321, 4321) == 0 || geteuid() != 0);
	CHECK(stat(p, &before) == 0);
	struct fuse_create_in cr = {.flags = O_WRONLY | O_CREAT | O_TRUNC, .mode = S_IFREG | 0644};
	memset(buf, 0, sizeof(buf));
	size_t n = args2(buf, &cr, sizeof(cr), "cfile", NULL);
	CHECK(call(FUSE_CREATE, FUSE_ROOT_ID, buf, n) == 0);
	struct fuse_open_out o;
	memcpy(&o, rep.data + sizeof(struct fuse_entry_out), sizeof(o));
	CHECK(stat(p, &after) == 0 && after.st_size == 0 && after.st_uid == before.st_uid);
	struct fuse_release_in rel = {.fh = o.fh};
	CHECK(call(FUSE_RELEASE, FUSE_ROOT_ID, &rel, sizeof(rel)) == 0);
	cr.flags |= O_EXCL;
	CHECK(call(FUSE_CREATE, FUSE_ROOT_ID, buf, args2(buf, &cr, sizeof(cr), "cfile", NULL)) ==
	      -EEXIST);
	/* Every host open forces O_NOCTTY and O_NONBLOCK, whatever the guest asked. */
	CHECK((fuse_host_flags(O_RDWR) & (O_NOCTTY | O_NONBLOCK)) == (O_NOCTTY | O_NONBLOCK));
	CHECK((fuse_host_flags(O_RDWR | O_CREAT | O_EXCL | O_PATH | O_DIRECT) &
	       (O_CREAT | O_EXCL | O_PATH | O_DIRECT)) == 0);
	sigaction(SIGALRM, &old, NULL);
}

/* Drops CAP_SYS_RESOURCE from the effective set: root then cannot raise its hard limits. */
static void drop_sys_resource(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) == 0) {
		d[0].effective &= ~(1u << CAP_SYS_RESOURCE);
		if (syscall(SYS_capset, &h, d) < 0)
			printf("    capset: %s\n", strerror(errno));
	}
}

/*
 * A guest that opens one file again and again, at a descriptor limit of 1,024 that cannot be
 * raised: it gets EMFILE once the budget is spent, and the VMM can still make an eventfd and a
 * pipe (before the budget, ~1,000 OPENs left it with none). In a child: the limit is for good.
 */
static void fuse_guest_cannot_exhaust_descriptors(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		drop_sys_resource();
		unsigned int base = fd_budget_used(); /* the parent's share holds some */
		struct rlimit rl = {1024, 1024};
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(10);
		struct fuse_server *s;
		if (fuse_server_new(dir, false, &s))
			_exit(11);
		srv = s;
		int32_t err;
		write_host("many-opens", "x");
		uint64_t node = lookup(FUSE_ROOT_ID, "many-opens", &err);
		int opened = 0;
		for (int i = 0; i < 2000; i++) {
			open_file(node, O_RDONLY, &err);
			if (err)
				break;
			opened++;
		}
		if (err != -EMFILE)
			_exit(12);
		if (opened < 500 || fd_budget_used() != fd_budget_limit())
			_exit(13);
		int efd = eventfd(0, 0), p[2];
		if (efd < 0 || pipe(p) < 0)
			_exit(14);
		/* Lookups of new names hit the same budget: ENFILE, no crash. */
		write_host("one-more", "y");
		lookup(FUSE_ROOT_ID, "one-more", &err);
		if (err != -ENFILE)
			_exit(15);
		/* DESTROY gives everything back. */
		call_ex(s, FUSE_DESTROY, 0, NULL, 0, 0, 0);
		if (fd_budget_used() != base)
			_exit(16);
		fuse_server_free(s);
		_exit(0);
	}
	int status = -1;
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		printf("    child: status 0x%x\n", status);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Sends opcode as guest user uid to server s. */
static int32_t call_as(struct fuse_server *s, uint32_t uid, uint32_t opcode, uint64_t nodeid,
		       const void *args, size_t len)
{
	test_uid = uid;
	int32_t err = call_ex(s, opcode, nodeid, args, len, 0, 0);
	test_uid = 0;
	return err;
}

static mode_t host_mode(const char *d, const char *name, uid_t *uid)
{
	char p[256];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", d, name);
	if (stat(p, &st) < 0)
		return (mode_t)-1;
	*uid = st.st_uid;
	return st.st_mode & 07777;
}

/*
 * By default a share gives new objects to the share root's owner, refuses chown to anyone else
 * and never sets setuid (nor setgid but on directories) on a host file; FUSE_SERVER_GUEST_IDS
 * keeps the guest's owners and bits.
 */
static void fuse_share_ids_unless_guest_ids(void)
{
	char d[] = "/tmp/ec1-fuse-ids-XXXXXX";
	CHECK(mkdtemp(d) != NULL);
	mode_t mask = umask(0); /* the device thread's umask: the guest applied its own */
	bool root = geteuid() == 0;
	if (root)
		CHECK(chown(d, 4321, 4322) == 0);
	for (int guest_ids = 0; guest_ids < 2; guest_ids++) {
		struct fuse_server *s;
		CHECK(fuse_server_new(d, guest_ids ? FUSE_SERVER_GUEST_IDS : 0, &s) == 0);
		uint8_t buf[256];
		char name[16];
		snprintf(name, sizeof(name), "f%d", guest_ids);
		struct fuse_create_in cr = {.flags = O_WRONLY | O_CREAT, .mode = S_IFREG | 06755};
		CHECK(call_as(s, 1000, FUSE_CREATE, FUSE_ROOT_ID, buf,
			      args2(buf, &cr, sizeof(cr), name, NULL)) == 0);
		struct fuse_entry_out e;
		memcpy(&e, rep.data, sizeof(e));
		uid_t uid = 0, file_uid = 0;
		mode_t m = host_mode(d, name, &uid);
		file_uid = uid;
		CHECK(m == (guest_ids ? 06755 : 0755));
		if (root)
			CHECK(uid == (guest_ids ? 1000u : 4321u) && e.attr.uid == uid);
		struct fuse_setattr_in sa = {.valid = FATTR_MODE, .mode = S_IFREG | 04711};
		CHECK(call_ex(s, FUSE_SETATTR, e.nodeid, &sa, sizeof(sa), 0, 0) == 0);
		CHECK(host_mode(d, name, &uid) == (guest_ids ? 04711 : 0711));
		snprintf(name, sizeof(name), "d%d", guest_ids);
		struct fuse_mkdir_in mk = {.mode = 06775};
		CHECK(call_as(s, 1000, FUSE_MKDIR, FUSE_ROOT_ID, buf,
			      args2(buf, &mk, sizeof(mk), name, NULL)) == 0);
		CHECK(host_mode(d, name, &uid) == 0775); /* mkdir(2) takes no set-id bits */
		/* chown: to the owner it has, always; to another, only with the guest's ids. */
		sa = (struct fuse_setattr_in){.valid = FATTR_UID | FATTR_GID,
					      .uid = root ? file_uid : geteuid(),
					      .gid = root ? (guest_ids ? 1000 : 4322) : getegid()};
		CHECK(call_ex(s, FUSE_SETATTR, e.nodeid, &sa, sizeof(sa), 0, 0) == 0);
		sa.uid = 77;
		int32_t err = call_ex(s, FUSE_SETATTR, e.nodeid, &sa, sizeof(sa), 0, 0);
		CHECK(guest_ids && root ? err == 0 : err == -EPERM);
		fuse_server_free(s);
	}
	umask(mask);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	CHECK(system(cmd) == 0);
}

static void fuse_read_only_share_refuses_writes(void)
{
	struct fuse_server *ro;
	CHECK(fuse_server_new(dir, true, &ro) == 0);
	if (!ro)
		return;
	uint8_t buf[256];
	struct fuse_entry_out e;
	CHECK(call_ex(ro, FUSE_LOOKUP, FUSE_ROOT_ID, "hello.txt", 10, 0, 0) == 0);
	memcpy(&e, rep.data, sizeof(e));
	struct fuse_open_in op = {.flags = O_WRONLY};
	CHECK(call_ex(ro, FUSE_OPEN, e.nodeid, &op, sizeof(op), 0, 0) == -EROFS);
	op.flags = O_RDONLY | O_TRUNC;
	CHECK(call_ex(ro, FUSE_OPEN, e.nodeid, &op, sizeof(op), 0, 0) == -EROFS);
	op.flags = O_RDONLY;
	CHECK(call_ex(ro, FUSE_OPEN, e.nodeid, &op, sizeof(op), 0, 0) == 0);
	struct fuse_create_in cr = {.flags = O_WRONLY, .mode = S_IFREG | 0644};
	CHECK(call_ex(ro, FUSE_CREATE, FUSE_ROOT_ID, buf, args2(buf, &cr, sizeof(cr), "n", NULL), 0,
		      0) == -EROFS);
	struct fuse_mkdir_in mk = {.mode = 0755};
	CHECK(call_ex(ro, FUSE_MKDIR, FUSE_ROOT_ID, buf, args2(buf, &mk, sizeof(mk), "m", NULL), 0,
		      0) == -EROFS);
	CHECK(call_ex(ro, FUSE_UNLINK, FUSE_ROOT_ID, "hello.txt", 10, 0, 0) == -EROFS);
	struct fuse_setattr_in sa = {.valid = FATTR_SIZE, .size = 0};
	CHECK(call_ex(ro, FUSE_SETATTR, e.nodeid, &sa, sizeof(sa), 0, 0) == -EROFS);
	fuse_server_free(ro);
}

static uint8_t pattern(size_t at)
{
	return (uint8_t)(at * 7 + (at >> 12));
}

/* Large READs: whole where the file has the data, cut short at its end. */
static void fuse_large_reads_are_whole(void)
{
	enum { SIZE = 1500000 };
	static uint8_t data[SIZE];
	for (size_t i = 0; i < SIZE; i++)
		data[i] = pattern(i);
	char p[256];
	snprintf(p, sizeof(p), "%s/big", dir);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, data, SIZE) == SIZE);
	close(fd);
	int32_t err;
	uint64_t node = lookup(FUSE_ROOT_ID, "big", &err);
	uint64_t fh = open_file(node, O_RDONLY, &err);
	CHECK(err == 0 && fh);
	const struct {
		uint64_t offset;
		size_t expect;
	} reads[] = {
		{0, FUSE_SERVER_MAX_WRITE}, /* the most one READ may carry */
		{700000, SIZE - 700000},    /* cut short by the end of the file */
		{FUSE_SERVER_MAX_WRITE, SIZE - FUSE_SERVER_MAX_WRITE},
		{SIZE, 0},
		{SIZE + 4096, 0},
	};
	for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
		struct fuse_read_in rd = {
			.fh = fh, .offset = reads[i].offset, .size = FUSE_SERVER_MAX_WRITE};
		CHECK(call(FUSE_READ, node, &rd, sizeof(rd)) == 0);
		size_t got = rep.len - sizeof(struct fuse_out_header);
		CHECK(got == reads[i].expect);
		CHECK(got != reads[i].expect || memcmp(rep.data, data + reads[i].offset, got) == 0);
	}
	struct fuse_release_in rel = {.fh = fh};
	CHECK(call(FUSE_RELEASE, node, &rel, sizeof(rel)) == 0);
}

/* The FOPEN_KEEP_CACHE flag of an open of node (released at once), or -1 on error. */
static int kept(uint64_t node)
{
	struct fuse_open_in in = {.flags = O_RDONLY};
	if (call(FUSE_OPEN, node, &in, sizeof(in)) != 0)
		return -1;
	struct fuse_open_out o;
	memcpy(&o, rep.data, sizeof(o));
	struct fuse_release_in rel = {.fh = o.fh};
	if (call(FUSE_RELEASE, node, &rel, sizeof(rel)) != 0)
		return -1;
	return (o.open_flags & FOPEN_KEEP_CACHE) != 0;
}

/*
 * The guest keeps its page cache at an open only when the file has not changed since its last
 * open, and only when the change time recorded then was old enough to show any later change.
 */
static void fuse_keeps_the_cache_only_for_unchanged_files(void)
{
	int32_t err;
	write_host("cached", "version 1\n");
	uint64_t node = lookup(FUSE_ROOT_ID, "cached", &err);
	CHECK(err == 0);
	/* Just written: its ctime could hide a change in the same clock tick. */
	CHECK(kept(node) == 0);
	CHECK(kept(node) == 0);
	srv->trust_after_sec = 0; /* from here, as if the file were old */
	CHECK(kept(node) == 0);	  /* the record above was not trusted */
	CHECK(kept(node) == 1);
	CHECK(kept(node) == 1);
	write_host("cached", "version 22\n"); /* the host changes it */
	CHECK(kept(node) == 0);
	CHECK(kept(node) == 1);
	usleep(50 * 1000); /* a later clock tick: same size, new times */
	write_host("cached", "version 33\n");
	CHECK(kept(node) == 0);
	/* The guest's own write moves the ctime too. */
	uint64_t fh = open_file(node, O_WRONLY, &err);
	uint8_t buf[64];
	struct fuse_write_in wr = {.fh = fh, .size = 1};
	memcpy(buf, &wr, sizeof(wr));
	buf[sizeof(wr)] = 'V';
	usleep(50 * 1000);
	CHECK(call(FUSE_WRITE, node, buf, sizeof(wr) + 1) == 0);
	struct fuse_release_in rel = {.fh = fh};
	CHECK(call(FUSE_RELEASE, node, &rel, sizeof(rel)) == 0);
	CHECK(kept(node) == 0);
	CHECK(kept(node) == 1);
	/* Directories never. */
	struct fuse_open_in in = {.flags = O_RDONLY};
	CHECK(call(FUSE_OPENDIR, FUSE_ROOT_ID, &in, sizeof(in)) == 0);
	struct fuse_open_out o;
	memcpy(&o, rep.data, sizeof(o));
	CHECK(!(o.open_flags & FOPEN_KEEP_CACHE));
	struct fuse_release_in reld = {.fh = o.fh};
	CHECK(call(FUSE_RELEASEDIR, FUSE_ROOT_ID, &reld, sizeof(reld)) == 0);
	srv->trust_after_sec = 2;
}

int main(void)
{
	if (!mkdtemp(dir) || !mkdtemp(outside))
		return 1;
	if (fuse_server_new(dir, false, &srv)) {
		printf("FAIL: fuse_server_new\n");
		return 1;
	}
	TEST(fuse_init_and_basic_operations);
	TEST(fuse_names_never_leave_the_share);
	TEST(fuse_forged_ids_and_lengths);
	TEST(fuse_kills_suid_when_asked);
	TEST(fuse_tables_are_bounded);
	TEST(fuse_create_opens_only_regular_files);
	TEST(fuse_guest_cannot_exhaust_descriptors);
	TEST(fuse_share_ids_unless_guest_ids);
	TEST(fuse_read_only_share_refuses_writes);
	TEST(fuse_large_reads_are_whole);
	TEST(fuse_keeps_the_cache_only_for_unchanged_files);
	fuse_server_free(srv);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", dir, outside);
	if (system(cmd) != 0)
		return 1;
	return tests_failed != 0;
}
