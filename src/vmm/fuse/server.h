/*
 * A FUSE passthrough server for one shared host directory (virtio-fs, virtio 1.2 §5.11; protocol
 * from linux/fuse.h). It knows nothing of virtqueues: it takes one request as the iovecs the
 * driver made readable and writes the reply into the iovecs it made writable.
 *
 * The guest is hostile. Every object it names is reached from the share's root one name at a
 * time, with *at() calls on O_PATH descriptors and O_NOFOLLOW, so no path ever leaves the share
 * and no host-side symlink is followed; names with '/', empty names, "." and ".." are refused;
 * node ids and file handles are checked against bounded tables.
 */
#ifndef EC1_FUSE_SERVER_H
#define EC1_FUSE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define FUSE_SERVER_MAX_WRITE (1024u * 1024) /* bytes per READ or WRITE (256 pages) */

struct fuse_server;

/* How a share treats the guest's changes. */
enum {
	FUSE_SERVER_READ_ONLY = 1 << 0, /* every change refused (EROFS) */
	/*
	 * The guest's owners and setuid/setgid bits on host files (when ec1 runs as root): new
	 * objects belong to the guest caller, chown and chgrp go through, set-id bits stay. For a
	 * root file system that needs its owners. Without it, new objects belong to the share
	 * root's owner, chown and chgrp to anything else are refused (EPERM), and setuid (setgid on
	 * anything but a directory) is never set on a host file.
	 */
	FUSE_SERVER_GUEST_IDS = 1 << 1,
};

/* Opens dir as the root of a share (flags FUSE_SERVER_*). Returns 0 or -errno. */
int fuse_server_new(const char *dir, unsigned int flags, struct fuse_server **out)
	__attribute__((warn_unused_result));
void fuse_server_free(struct fuse_server *s);
/* Ends the FUSE session (DESTROY, or the driver reset the device): forgets every node but the
 * root and closes every handle. */
void fuse_server_reset(struct fuse_server *s);

/*
 * Handles one request. Returns the reply's length in bytes (0: the request takes no reply, as
 * FORGET), or -EINVAL when the request cannot be answered at all (no room for a reply header):
 * a broken driver.
 */
ssize_t fuse_server_handle(struct fuse_server *s, const struct iovec *in, unsigned int n_in,
			   const struct iovec *out, unsigned int n_out);

/* Requests served and time spent on them, per opcode (what `ec1 run --timing` prints). */
#define FUSE_SERVER_OPCODES 64
struct fuse_server_stats {
	uint64_t count[FUSE_SERVER_OPCODES];
	uint64_t ns[FUSE_SERVER_OPCODES];
};
const struct fuse_server_stats *fuse_server_stats(const struct fuse_server *s);
/* Opcode name, for reports ("READ"); "op<N>" style numbers are the caller's job on NULL. */
const char *fuse_server_opcode_name(unsigned int opcode);

/* Counts, for tests and limits. */
size_t fuse_server_nodes(const struct fuse_server *s);
size_t fuse_server_handles(const struct fuse_server *s);

#endif
