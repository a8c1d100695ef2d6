/*
 * The libkrun backends' private state and what src/backend/libkrun.c (the calls, the staging
 * root) and src/backend/krun_helper.c (the helper process that starts the VM) share.
 */
#ifndef EC1_BACKEND_LIBKRUN_H
#define EC1_BACKEND_LIBKRUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/ec1_internal.h"

/* The krun_* functions ec1 uses, with libkrun.h's signatures. */
#define KRUN_FUNCS(X)                                                                              \
	X(set_log_level, int32_t, (uint32_t))                                                      \
	X(create_ctx, int32_t, (void))                                                             \
	X(free_ctx, int32_t, (uint32_t))                                                           \
	X(set_vm_config, int32_t, (uint32_t, uint8_t, uint32_t))                                   \
	X(set_root, int32_t, (uint32_t, const char *))                                             \
	X(add_virtiofs, int32_t, (uint32_t, const char *, const char *))                           \
	X(add_virtiofs3, int32_t, (uint32_t, const char *, const char *, uint64_t, bool))          \
	X(add_disk, int32_t, (uint32_t, const char *, const char *, bool))                         \
	X(add_disk2, int32_t, (uint32_t, const char *, const char *, uint32_t, bool))              \
	X(add_disk3, int32_t,                                                                      \
	  (uint32_t, const char *, const char *, uint32_t, bool, bool, uint32_t))                  \
	X(add_vsock_port, int32_t, (uint32_t, uint32_t, const char *))                             \
	X(add_vsock_port2, int32_t, (uint32_t, uint32_t, const char *, bool))                      \
	X(set_passt_fd, int32_t, (uint32_t, int))                                                  \
	X(set_gvproxy_path, int32_t, (uint32_t, const char *))                                     \
	X(set_net_mac, int32_t, (uint32_t, const uint8_t *))                                       \
	X(set_port_map, int32_t, (uint32_t, const char *const *))                                  \
	X(set_workdir, int32_t, (uint32_t, const char *))                                          \
	X(set_exec, int32_t, (uint32_t, const char *, const char *const *, const char *const *))   \
	X(set_kernel, int32_t, (uint32_t, const char *, uint32_t, const char *, const char *))     \
	X(set_tee_config_file, int32_t, (uint32_t, const char *))                                  \
	X(get_shutdown_eventfd, int32_t, (uint32_t))                                               \
	X(add_net_unixgram, int32_t, (uint32_t, const char *, int, uint8_t *, uint32_t, uint32_t)) \
	X(start_enter, int32_t, (uint32_t))

/* libkrun.h's sync modes for krun_add_disk3: no flush offered; on Linux the other two are one. */
#define KRUN_SYNC_NONE	  0
#define KRUN_SYNC_RELAXED 1
#define KRUN_SYNC_FULL	  2

/* libkrun.h's KRUN_FS_ROOT_TAG: the virtio-fs tag of the root (krun_add_virtiofs3 with it). */
#define KRUN_FS_ROOT_TAG "/dev/root"

struct krun {
	void *dl;
	bool have_ctx; /* krun_create_ctx was called (at start, or for the shutdown eventfd) */
	uint32_t id;
	char *stage; /* the staging root made for this process's start (removed at exit) */
	/* The network as last set (ec1_ctx_set_network), applied at start. */
	struct {
		bool set;
		int passt_fd; /* borrowed; -1 if none */
		char *gvproxy_path;
		bool mac_set;
		uint8_t mac[6];
		bool map_set; /* krun_set_port_map is called (an empty list: no port) */
		char **map;   /* NULL-terminated */
	} net;
	char *tee_config_file; /* SEV */
#define FIELD(name, ret, args) ret(*name) args;
	KRUN_FUNCS(FIELD)
#undef FIELD
};

#define K(ctx) ((struct krun *)(ctx)->backend)

/*
 * Makes the libkrun context and hands it the whole configuration, in one order, then starts the
 * VM: krun_start_enter exits this process with the guest's status. Returns only on a failure
 * (an EC1_E* code, the message set).
 */
int ec1_krun_enter(struct ec1_ctx *ctx);

/*
 * The configuration of ctx for the helper process (ec1-krun), NUL-terminated fields: *out
 * malloc'd. The passt socket and vmnet's are named as the helper's fds EC1_KRUN_FD_PASST and
 * EC1_KRUN_FD_VMNET. 0 or EC1_ENOMEM.
 */
int ec1_krun_config_write(struct ec1_ctx *ctx, char **out, size_t *len);
/*
 * Reads a configuration written by ec1_krun_config_write from buf[0, len) (changed in place):
 * with out, into a new context (*out; the caller frees it); without, only checks it. 0, or an
 * EC1_E* code with msg (of msg_size bytes) saying what is wrong.
 */
int ec1_krun_config_read(char *buf, size_t len, struct ec1_ctx **out, char *msg, size_t msg_size);

/* The helper's descriptors: the configuration, the status pipe, passt's socket, vmnet's. */
#define EC1_KRUN_FD_CONFIG 3
#define EC1_KRUN_FD_STATUS 4
#define EC1_KRUN_FD_PASST  5
#define EC1_KRUN_FD_VMNET  6

/*
 * Runs ctx's VM in the helper process at path (a clean process: exec'd, one thread) and waits for
 * it: the guest's status in *status, or the helper's error (code and message) as if it were
 * this process's.
 */
int ec1_krun_spawn(struct ec1_ctx *ctx, const char *path, int *status);
/* Runs ctx's VM in a forked child of this (single-threaded) process, reporting as spawn does. */
int ec1_krun_fork(struct ec1_ctx *ctx, int *status);

#endif
