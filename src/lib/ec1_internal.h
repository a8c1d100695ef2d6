/* Library internals shared by the API layer, the backends and the VMM. */
#ifndef EC1_INTERNAL_H
#define EC1_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>

#include "ec1/ec1.h"

/* The builtin engine's log level (src/backend/builtin.c hands it to the VMM). */
void ec1_builtin_set_log_level(enum ec1_log_level level);

/* Short names for the public capability bits. */
#define EC1_F_ROOT	  EC1_CAP_ROOT
#define EC1_F_VOLUMES	  EC1_CAP_VOLUMES
#define EC1_F_SEV	  EC1_CAP_SEV
#define EC1_F_SHUTDOWN_FD EC1_CAP_SHUTDOWN_FD
#define EC1_F_VMNET	  EC1_CAP_VMNET
#define EC1_F_DISKS	  EC1_CAP_DISKS
#define EC1_F_DISK_MOUNTS EC1_CAP_DISK_MOUNTS
#define EC1_F_NETWORK	  EC1_CAP_NETWORK
#define EC1_F_NAT	  EC1_CAP_NAT
#define EC1_F_VSOCK	  EC1_CAP_VSOCK
#define EC1_F_VSOCK_UDS	  EC1_CAP_VSOCK_UDS
#define EC1_F_EXEC	  EC1_CAP_EXEC

#define EC1_MAX_LIST 64

struct ec1_ctx;

/* Where a builtin guest's frames go. */
enum ec1_net_kind {
	EC1_NET_NAT,	/* the user-mode NAT */
	EC1_NET_STREAM, /* a stream socket in passt's framing */
	EC1_NET_TAP,	/* a host TAP interface */
	EC1_NET_DGRAM,	/* a datagram socket: gvproxy, vmnet-helper */
};

/*
 * A published port: the host's address and port, the guest's port. The address is IPv4
 * (host_addr, network order) or, with v6, IPv6 (host_addr6).
 */
struct ec1_port {
	uint32_t host_addr;
	uint8_t host_addr6[16];
	bool v6;
	uint16_t host_port, guest_port;
	bool udp;
};
/*
 * Parses "[ADDR:]HOST:GUEST[/udp|/tcp]" (ADDR dotted IPv4, or IPv6 in brackets as "[::1]";
 * default 127.0.0.1; ports 1..65535). 0, or -1 with why (a phrase) set.
 */
int ec1_parse_publish(const char *spec, struct ec1_port *p, const char **why);
/* A destination a restricted NAT lets through: IPv4 address (network order) and port. */
struct ec1_allow {
	uint32_t addr;
	uint16_t port;
	bool udp;
};
/* Parses "ADDR:PORT[/udp|/tcp]" (ADDR dotted IPv4). 0, or -1 with why (a phrase) set. */
int ec1_parse_allow(const char *spec, struct ec1_allow *a, const char **why);

struct ec1_disk;

/* A backend: what it offers and how each call reaches it. NULL hooks are no-ops. */
struct ec1_backend_ops {
	enum ec1_backend id;
	unsigned int features; /* EC1_CAP_* bits */
	int (*open)(struct ec1_ctx *ctx);
	void (*close)(struct ec1_ctx *ctx);
	int (*set_log_level)(enum ec1_log_level level);
	int (*set_vm)(struct ec1_ctx *ctx);
	int (*set_root)(struct ec1_ctx *ctx);
	int (*set_root_flags)(struct ec1_ctx *ctx); /* NULL: only flags 0 */
	int (*set_mapped_volumes)(struct ec1_ctx *ctx);
	int (*add_virtiofs)(struct ec1_ctx *ctx, const char *tag, const char *dir);
	int (*add_disk)(struct ec1_ctx *ctx, const struct ec1_disk_config *disk);
	/* optional: flags (EC1_DISK_*, known ones) checked for disk, before they are set */
	int (*set_disk_flags)(struct ec1_ctx *ctx, const struct ec1_disk *disk, unsigned int flags);
	int (*add_vsock_port)(struct ec1_ctx *ctx, uint32_t port, const char *path, bool listen);
	int (*set_network)(struct ec1_ctx *ctx, const struct ec1_network_config *config);
	int (*set_network_tap)(struct ec1_ctx *ctx, const char *iface, const uint8_t *mac);
	/* ports parsed and checked (at most EC1_MAX_LIST); NULL config: no network */
	int (*set_network_nat)(struct ec1_ctx *ctx, const struct ec1_port *ports, size_t n,
			       const struct ec1_allow *allow, size_t nr_allow,
			       const struct ec1_nat_config *config);
	int (*set_process)(struct ec1_ctx *ctx);
	int (*set_kernel)(struct ec1_ctx *ctx);
	int (*set_sev)(struct ec1_ctx *ctx, const struct ec1_sev_config *config);
	int (*get_shutdown_eventfd)(struct ec1_ctx *ctx, int *fd);
	int (*set_vmnet)(struct ec1_ctx *ctx);
	int (*run)(struct ec1_ctx *ctx, int *status);
	int (*start_enter)(
		struct ec1_ctx *ctx); /* optional: the backend's own (exits on success) */
	/* optional: the features of the library found here (offered when none is) */
	unsigned int (*installed)(enum ec1_backend backend, unsigned int offered);
	/* optional: the version found here, "" when unknown, NULL when none is installed */
	const char *(*version)(enum ec1_backend backend, unsigned int offered);
	bool builtin_extras; /* ec1_ctx_set_stdio/timeout/timing/console */
};

/*
 * The next frame from the guest's exec agent in buf[0, len) (src/lib/exec.c): 0 when it is not
 * all there yet, -1 when it is not one the guest may send (type, length, status over 255),
 * else its size with *type, *payload and *plen set.
 */
ssize_t ec1_exec_frame(const uint8_t *buf, size_t len, uint32_t *type, const uint8_t **payload,
		       uint32_t *plen);

/* Helper processes (src/lib/child.c). */
long ec1_now_ms(void); /* CLOCK_MONOTONIC */
/* Waits up to ms for pid to exit; true once reaped. */
bool ec1_reap_within(pid_t pid, long ms, int *status);
/* SIGTERM, then SIGKILL after grace_ms; reaped. Nothing for pid <= 0. */
void ec1_child_stop(pid_t pid, long grace_ms);
/* An fd numbered 4 or above (fd moved), so a child's dup2 onto 0..3 never clobbers it. */
int ec1_high_fd(int fd);
/* In a forked child before exec: signals unblocked and default, a process group of its own. */
void ec1_child_reset(void);

/* A running vmnet-helper (src/lib/vmnet.c). */
struct ec1_vmnet {
	int pid;    /* the helper, 0 if none */
	int fd;	    /* our end of the frame socket, -1 if none */
	int out_fd; /* the helper's stdout, kept open so it never gets SIGPIPE */
	struct ec1_vmnet_info info;
};

#define EC1_VMNET_MAX_ARGS 24

/* The helper to run: config's, EC1_VMNET_HELPER, or the default; *configured unless default. */
const char *ec1_vmnet_helper_path(const struct ec1_vmnet_config *config, bool *configured);
/* Checks every field of config; the message names the field. */
int ec1_vmnet_check(struct ec1_ctx *ctx, const struct ec1_vmnet_config *config);
/* The helper's argv (NULL-terminated) for config; returns the count. */
size_t ec1_vmnet_helper_argv(const struct ec1_vmnet_config *config, const char *helper,
			     const char *argv[EC1_VMNET_MAX_ARGS]);
/* Parses the helper's JSON line; on error writes the reason to err and returns -1. */
int ec1_vmnet_parse(const char *line, struct ec1_vmnet_info *info, char *err, size_t err_size);
/* Starts the helper and reads its configuration into v->info. */
int ec1_vmnet_start(struct ec1_ctx *ctx, const struct ec1_vmnet_config *config, const char *helper,
		    struct ec1_vmnet *v);
/* Stops the helper (SIGTERM, then SIGKILL after a grace period) and closes our fds. */
void ec1_vmnet_stop(struct ec1_vmnet *v);

/* A running passt (src/lib/passt.c). */
struct ec1_passt {
	int pid;      /* 0 if none */
	int fd;	      /* our end of its socket (the guest's passt_fd), -1 if none */
	char dir[96]; /* its pid file and stderr, removed at stop */
};
#define EC1_PASST_MTU 65520 /* the link to passt started by ec1 (passt's own default) */
/* Starts path (NULL: "passt" on PATH) with the published ports; returns once it is ready. */
int ec1_passt_start(struct ec1_ctx *ctx, const char *path, const struct ec1_port *ports, size_t n,
		    struct ec1_passt *p);
/* Closes our end, stops passt, removes its directory. */
void ec1_passt_stop(struct ec1_passt *p);

struct ec1_share {
	char *tag, *dir;
};

/* A volume, "HOST:GUEST[:OPTS]" parsed once when set; backends use only this. */
struct ec1_volume {
	char *host, *guest;
	unsigned int flags; /* EC1_SHARE_* */
};

/* A disk (ec1_ctx_add_disk), and where init mounts it (ec1_ctx_mount_disk). */
struct ec1_disk {
	char *block_id, *path;
	enum ec1_disk_format format;
	bool read_only;
	unsigned int flags;	   /* EC1_DISK_* */
	unsigned int partition;	   /* the partition init mounts; 0: the whole disk */
	char *guest_path, *fstype; /* NULL: not mounted / detected */
};

struct ec1_ctx {
	const struct ec1_backend_ops *ops;
	unsigned int features; /* the backend's, less what its library lacks (set at open) */
	char message[1024];
	int backend_errno;
	bool ran;
	void *backend; /* backend-private state */

	struct ec1_vm_config vm;
	char *root;
	unsigned int root_flags; /* EC1_SHARE_* */
	struct ec1_volume *volumes;
	size_t nr_volumes;
	struct ec1_share shares[EC1_MAX_LIST];
	size_t nr_shares;
	struct ec1_disk disks[EC1_MAX_DISKS];
	size_t nr_disks;
	struct ec1_vsock_port {
		uint32_t port;
		char *path;
		bool listen;
	} vsock_ports[EC1_MAX_VSOCK_PORTS];
	size_t nr_vsock_ports;
	char *vsock_uds;
	char *exec_path, *workdir;
	char **argv, **envp; /* NULL-terminated; envp NULL for the default */
	bool process_set;
	char *kernel_path, *initramfs, *cmdline;
	enum ec1_kernel_format kernel_format;
	int stdio[3];
	uint32_t timeout_ms;
	bool timing, console;
	int shutdown_fd;
	char *exec_socket; /* where exec requests come in, or NULL: no exec agent */
	char *exec_dir;	   /* a private directory made for it at start, removed at free */
	struct {
		bool on;     /* ec1_ctx_start succeeded: a thread runs the VM */
		bool joined; /* and it was waited for */
		pthread_t thread;
		int ready_fd;	 /* eventfd: init takes exec requests (the VMM writes it) */
		int done_fd;	 /* eventfd: the run ended (the thread writes it) */
		int err, status; /* the run's result */
	} bg;
	struct ec1_vmnet vmnet;
	struct ec1_passt passt; /* passt started for this context (ec1_ctx_set_network_passt) */
	struct {
		bool on;
		enum ec1_net_kind kind;
		int fd;		  /* STREAM, DGRAM: the socket, or -1 */
		bool fd_owned;	  /* closed by ec1_net_reset (gvproxy's); else borrowed */
		char *tap;	  /* TAP: the interface */
		char *local_path; /* DGRAM to gvproxy: our end's path, unlinked by ec1_net_reset */
		bool mac_set;
		uint8_t mac[6];
		bool restricted; /* the NAT's */
		struct ec1_port ports[EC1_MAX_LIST];
		size_t nr_ports;
		struct ec1_allow allow[EC1_MAX_LIST]; /* the restricted NAT's */
		size_t nr_allow;
		char *cidr, *gateway, *dns; /* the guest's static IPv4 set-up; NULL cidr: DHCP */
	} net;
};

/* Releases what the network holds (owned socket, gvproxy path, passt) and turns it off. */
void ec1_net_reset(struct ec1_ctx *ctx);
/* Our end of a gvproxy vfkit listener at path: bound, connected, greeted ("VFKT"). */
int ec1_gvproxy_connect(struct ec1_ctx *ctx, const char *path, int *fd, char **local_path);

/* A random MAC address, locally administered and unicast. */
void ec1_random_mac(uint8_t mac[6]);

/* Sets ctx->message (printf-style) and returns code. */
int ec1_fail(struct ec1_ctx *ctx, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* For the backends' start: root flags without a root directory are refused (EC1_EINVAL). */
int ec1_check_root_flags(struct ec1_ctx *ctx);

/* The level given to ec1_set_log_level, or -1 if it was never called. */
int ec1_log_level_requested(void);

/* Where the build or install put the guest kernel and base root archive (may not exist). */
const char *ec1_default_kernel(void);
const char *ec1_default_initramfs(void);

extern const struct ec1_backend_ops ec1_backend_builtin;
extern const struct ec1_backend_ops ec1_backend_stub;
extern const struct ec1_backend_ops ec1_backend_libkrun;
extern const struct ec1_backend_ops ec1_backend_libkrun_sev;
extern const struct ec1_backend_ops ec1_backend_libkrun_efi;

#endif
