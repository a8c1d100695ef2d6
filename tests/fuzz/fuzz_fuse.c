/*
 * libFuzzer target: the FUSE server (src/vmm/fuse/) against a sequence of guest requests on a
 * scratch share. After each input: no descriptor leaked, and nothing outside the share changed
 * (a sibling directory with a sentinel file, the symlinks' targets, the parent directory).
 *
 * Input: byte 0 = share flags (FUSE_SERVER_*: bit 0 read-only, bit 1 guest ids); then records of
 *   opcode (1 byte), node (1: id = low 7 bits, bit 7 adds generation 1), room (1: reply room
 *   class and iovec split), uid (1), arg length (2, little-endian), args.
 * With room bit 7 set, the header's len field is the first 4 argument bytes, not the true length.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/fuse.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/vmm/fuse/server.h"

static char base[] = "/tmp/ec1-fuzz-fuse-XXXXXX";
static char share[64], outside[64], sentinel[96];
static struct stat sentinel_st;

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	for (struct dirent *e; d && (e = readdir(d));)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	if (ftw->level > 0)
		remove(path);
	return 0;
}

/* Chmod everything writable first: the guest may have made a directory read-only. */
static int unlock_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)ftw;
	if (flag == FTW_D || flag == FTW_DNR || (flag == FTW_F && S_ISREG(st->st_mode)))
		chmod(path, 0700);
	return 0;
}

static void put(const char *rel, const char *text)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/%s", share, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		if (write(fd, text, strlen(text)) < 0)
			abort();
		close(fd);
	}
}

static void fresh_share(void)
{
	nftw(share, unlock_one, 16, FTW_PHYS);
	nftw(share, remove_one, 16, FTW_PHYS | FTW_DEPTH);
	char p[128];
	put("file", "hello from the share\n");
	snprintf(p, sizeof(p), "%s/dir", share);
	mkdir(p, 0755);
	put("dir/inner", "inner\n");
	snprintf(p, sizeof(p), "%s/up", share);
	symlink("../outside/sentinel", p);
	snprintf(p, sizeof(p), "%s/abs", share);
	symlink(sentinel, p);
	snprintf(p, sizeof(p), "%s/fifo", share);
	mkfifo(p, 0666);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!mkdtemp(base))
		abort();
	snprintf(share, sizeof(share), "%s/share", base);
	snprintf(outside, sizeof(outside), "%s/outside", base);
	snprintf(sentinel, sizeof(sentinel), "%s/sentinel", outside);
	if (mkdir(share, 0755) || mkdir(outside, 0755))
		abort();
	int fd = open(sentinel, O_WRONLY | O_CREAT, 0644);
	if (fd < 0 || write(fd, "outside\n", 8) != 8)
		abort();
	close(fd);
	if (stat(sentinel, &sentinel_st))
		abort();
	/* Files the guest writes stay small; what would be larger fails with EFBIG. */
	struct rlimit fsize = {16 << 20, 16 << 20};
	setrlimit(RLIMIT_FSIZE, &fsize);
	return 0;
}

static void check_outside(void)
{
	struct stat st;
	if (stat(sentinel, &st) || st.st_size != sentinel_st.st_size ||
	    st.st_mode != sentinel_st.st_mode || st.st_uid != sentinel_st.st_uid ||
	    st.st_gid != sentinel_st.st_gid || st.st_mtim.tv_sec != sentinel_st.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != sentinel_st.st_mtim.tv_nsec ||
	    st.st_nlink != sentinel_st.st_nlink) {
		fprintf(stderr, "fuzz_fuse: the sentinel outside the share changed\n");
		abort();
	}
	const char *dirs[] = {base, outside};
	for (int i = 0; i < 2; i++) {
		int n = 0;
		DIR *d = opendir(dirs[i]);
		for (struct dirent *e; d && (e = readdir(d));)
			n += e->d_name[0] != '.';
		if (d)
			closedir(d);
		if (n != (i == 0 ? 2 : 1)) {
			fprintf(stderr, "fuzz_fuse: %s has %d entries: something left the share\n",
				dirs[i], n);
			abort();
		}
	}
}

static uint8_t req[70000], reply[FUSE_SERVER_MAX_WRITE + 8192];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t rooms[8] = {0, 8, 16, 40, 200, 4096, 65536, sizeof(reply)};
	static bool started;
	if (!started) {
		/* Here, not at initialisation: libFuzzer sets its own handler in between. */
		signal(SIGXFSZ, SIG_IGN);
		started = true;
	}
	if (size < 1)
		return 0;
	/* Counted here, not once: libFuzzer's symbolizer pipes come and go between inputs. */
	int baseline_fds = count_fds();
	fresh_share();
	struct fuse_server *s;
	if (fuse_server_new(share, data[0] & 3, &s))
		abort();
	uint64_t unique = 0;
	for (size_t at = 1; at + 6 <= size;) {
		uint8_t opcode = data[at], node = data[at + 1], room = data[at + 2],
			uid = data[at + 3];
		size_t arg_len = (size_t)data[at + 4] | (size_t)data[at + 5] << 8;
		at += 6;
		if (arg_len > size - at)
			arg_len = size - at;
		if (arg_len > sizeof(req) - sizeof(struct fuse_in_header))
			arg_len = sizeof(req) - sizeof(struct fuse_in_header);
		struct fuse_in_header h = {
			.len = (uint32_t)(sizeof(h) + arg_len),
			.opcode = opcode,
			.unique = ++unique,
			.nodeid = (uint64_t)(node & 0x7f) | (node & 0x80 ? 1ull << 32 : 0),
			.uid = uid,
			.gid = uid,
		};
		if ((room & 0x80) && arg_len >= 4)
			memcpy(&h.len, data + at, 4);
		memcpy(req, &h, sizeof(h));
		memcpy(req + sizeof(h), data + at, arg_len);
		at += arg_len;
		/* The request over one to three iovecs, cut where the room byte says. */
		size_t total = sizeof(h) + arg_len, cut1 = total * ((room >> 3) & 3) / 4,
		       cut2 = cut1 + (total - cut1) / 2;
		struct iovec in[3] = {
			{req, cut1}, {req + cut1, cut2 - cut1}, {req + cut2, total - cut2}};
		size_t out_room = rooms[room & 7];
		struct iovec out[2] = {{reply, out_room / 2},
				       {reply + out_room / 2, out_room - out_room / 2}};
		ssize_t len = fuse_server_handle(s, in, 3, out, (room & 0x20) ? 2 : 1);
		if (len > (ssize_t)out_room || (len < 0 && len != -EINVAL) ||
		    (len > 0 && len < (ssize_t)sizeof(struct fuse_out_header)))
			abort();
	}
	fuse_server_free(s);
	int fds = count_fds();
	if (fds != baseline_fds) {
		fprintf(stderr, "fuzz_fuse: %d descriptors open, %d before: a leak\n", fds,
			baseline_fds);
		DIR *d = opendir("/proc/self/fd");
		for (struct dirent *e; d && (e = readdir(d));) {
			char p[300], t[256] = "";
			snprintf(p, sizeof(p), "/proc/self/fd/%s", e->d_name);
			ssize_t n = readlink(p, t, sizeof(t) - 1);
			fprintf(stderr, "  %s -> %s\n", e->d_name, n > 0 ? t : "?");
		}
		if (d)
			closedir(d);
		abort();
	}
	check_outside();
	return 0;
}
