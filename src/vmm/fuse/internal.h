/* The FUSE server's state: node and handle tables (nodes.c) shared by the operations (ops*.c). */
#ifndef EC1_FUSE_INTERNAL_H
#define EC1_FUSE_INTERNAL_H

#include <linux/fuse.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "server.h"

#define FUSE_MAX_NODES	 262144u
#define FUSE_MAX_HANDLES 65536u

/* A host object the guest has looked up: an O_PATH descriptor, whatever its name is now. */
struct fuse_node {
	int fd;	       /* O_PATH | O_NOFOLLOW; -1 when the slot is free */
	uint32_t gen;  /* bumped when the slot is reused, so stale node ids miss */
	uint32_t next; /* hash chain (slot + 1, 0 ends) */
	dev_t dev;     /* identity: one node per host inode */
	ino_t ino;
	mode_t type;	  /* S_IFMT bits: an inode's type never changes */
	uint64_t nlookup; /* lookups the kernel has not yet forgotten */
	/*
	 * The file as it was at the guest's last open (size, mtime, ctime), when that can be
	 * trusted to show any later change: the guest may keep its page cache at the next open if
	 * the file still looks the same (see keep_cache() in ops_files.c).
	 */
	bool seen_valid;
	int64_t seen_size, seen_mtime_sec, seen_ctime_sec;
	long seen_mtime_nsec, seen_ctime_nsec;
};

/* An open file or directory. */
struct fuse_handle {
	int fd; /* -1 when free */
	uint32_t gen;
	uint32_t next; /* free list: slot + 1, 0 ends */
	bool dir;
};

struct fuse_server {
	bool read_only;
	bool guest_ids;	 /* FUSE_SERVER_GUEST_IDS */
	uid_t share_uid; /* the share root's owner: new objects' owner without guest_ids */
	gid_t share_gid;
	struct fuse_node *nodes;
	uint32_t nr_nodes;   /* in use */
	uint32_t hw_nodes;   /* slots ever used: [0, hw_nodes) */
	uint32_t free_node;  /* free slots chained through next: slot + 1, 0 for none */
	uint32_t max_nodes;  /* bound: FUSE_MAX_NODES, lower when few descriptors are allowed */
	uint32_t *buckets;   /* slot + 1 of the first node, 0 for none */
	uint32_t nr_buckets; /* power of two */
	struct fuse_handle *handles;
	uint32_t nr_handles, hw_handles, free_handle;
	int proc_fd;	/* /proc/self/fd, to reopen an O_PATH descriptor as a file */
	uint8_t *dents; /* getdents64 buffer */
	uint8_t *req;	/* the request, copied out of guest memory (all but WRITE data) */
	uint8_t *reply; /* replies built here (all but READ data) */
	struct fuse_server_stats stats;
	int trust_after_sec; /* how old a change time must be to be trusted (keep_cache()) */
};

/* Node ids: slot + 1 in the low 32 bits, generation in the high ones; the root is 1. */
struct fuse_node *fuse_node_get(struct fuse_server *s, uint64_t nodeid);
uint64_t fuse_node_id(const struct fuse_server *s, const struct fuse_node *n);
/*
 * Takes a reference for the kernel on the object fd (O_PATH) refers to: the existing node for the
 * same inode, or a new one that owns fd. Closes fd when it is not kept. NULL with errno set when
 * the table is full.
 */
struct fuse_node *fuse_node_ref(struct fuse_server *s, int fd, const struct stat *st);
/* Drops n references; frees the node at zero (never the root). */
void fuse_node_forget(struct fuse_server *s, uint64_t nodeid, uint64_t n);
/* Sets up both tables (s->max_nodes set) with the root node owning root_fd. */
int fuse_nodes_init(struct fuse_server *s, int root_fd, const struct stat *st);
void fuse_nodes_free(struct fuse_server *s);

/* File handles: slot in the low 32 bits, generation in the high ones. */
uint64_t fuse_handle_new(struct fuse_server *s, int fd, bool dir); /* 0 and closes fd if full */
struct fuse_handle *fuse_handle_get(struct fuse_server *s, uint64_t fh, bool dir);
void fuse_handle_close(struct fuse_server *s, uint64_t fh, bool dir);

#endif
