/* What the CLI's files share: main.c (run, variants) and vms.c (start, exec, ls, stop, logs). */
#ifndef EC1_CLI_H
#define EC1_CLI_H

#include "ec1/ec1.h"

#define EXIT_EC1_ERROR 125

/*
 * The library, loaded when a command first needs it (api.c): ec1 exec, ls, stop and logs never
 * do, so they start as a program that needs the C library alone (ec1_exec_* is compiled in:
 * src/lib/exec.c). Each call below goes through the loaded library's function.
 */
#define EC1_CLI_FUNCS(X)                \
	X(ec1_backend_capabilities)     \
	X(ec1_backend_version)          \
	X(ec1_backend_name)             \
	X(ec1_backend_parse)            \
	X(ec1_ctx_add_disk)             \
	X(ec1_ctx_add_virtiofs)         \
	X(ec1_ctx_add_vsock_port)       \
	X(ec1_ctx_backend)              \
	X(ec1_ctx_free)                 \
	X(ec1_ctx_get_shutdown_eventfd) \
	X(ec1_ctx_get_vmnet_info)       \
	X(ec1_ctx_message)              \
	X(ec1_ctx_mount_disk)           \
	X(ec1_ctx_new_backend)          \
	X(ec1_ctx_set_console)          \
	X(ec1_ctx_set_disk_flags)       \
	X(ec1_ctx_set_disk_partition)   \
	X(ec1_ctx_set_exec_socket)      \
	X(ec1_ctx_set_kernel)           \
	X(ec1_ctx_set_mapped_volumes)   \
	X(ec1_ctx_set_network)          \
	X(ec1_ctx_set_network_address)  \
	X(ec1_ctx_set_network_nat)      \
	X(ec1_ctx_set_network_none)     \
	X(ec1_ctx_set_network_passt)    \
	X(ec1_ctx_set_network_tap)      \
	X(ec1_ctx_set_process)          \
	X(ec1_ctx_set_root)             \
	X(ec1_ctx_set_root_flags)       \
	X(ec1_ctx_set_sev)              \
	X(ec1_ctx_set_stdio)            \
	X(ec1_ctx_set_timeout)          \
	X(ec1_ctx_set_timing)           \
	X(ec1_ctx_set_vm)               \
	X(ec1_ctx_set_vmnet)            \
	X(ec1_ctx_set_vsock_uds)        \
	X(ec1_ctx_start)                \
	X(ec1_ctx_wait)                 \
	X(ec1_disk_detect_format)       \
	X(ec1_run)                      \
	X(ec1_set_log_level)            \
	X(ec1_share_flags_parse)        \
	X(ec1_strerror)
struct ec1_api {
#define EC1_API_FIELD(f) __typeof__(f) *f;
	EC1_CLI_FUNCS(EC1_API_FIELD)
#undef EC1_API_FIELD
};
/* The loaded library's functions; exits 125 with a message when it cannot be loaded. */
const struct ec1_api *ec1_api(void);
/* The static ec1 (front.c): executes ec1-full with argv, for a command that needs the library;
 * returns 125 with a message when it cannot. */
int ec1_cli_full(char **argv);
#ifndef EC1_CLI_API_C
#define ec1_backend_capabilities     (ec1_api()->ec1_backend_capabilities)
#define ec1_backend_version	     (ec1_api()->ec1_backend_version)
#define ec1_backend_name	     (ec1_api()->ec1_backend_name)
#define ec1_backend_parse	     (ec1_api()->ec1_backend_parse)
#define ec1_ctx_add_disk	     (ec1_api()->ec1_ctx_add_disk)
#define ec1_ctx_add_virtiofs	     (ec1_api()->ec1_ctx_add_virtiofs)
#define ec1_ctx_add_vsock_port	     (ec1_api()->ec1_ctx_add_vsock_port)
#define ec1_ctx_backend		     (ec1_api()->ec1_ctx_backend)
#define ec1_ctx_free		     (ec1_api()->ec1_ctx_free)
#define ec1_ctx_get_shutdown_eventfd (ec1_api()->ec1_ctx_get_shutdown_eventfd)
#define ec1_ctx_get_vmnet_info	     (ec1_api()->ec1_ctx_get_vmnet_info)
#define ec1_ctx_message		     (ec1_api()->ec1_ctx_message)
#define ec1_ctx_mount_disk	     (ec1_api()->ec1_ctx_mount_disk)
#define ec1_ctx_new_backend	     (ec1_api()->ec1_ctx_new_backend)
#define ec1_ctx_set_console	     (ec1_api()->ec1_ctx_set_console)
#define ec1_ctx_set_disk_flags	     (ec1_api()->ec1_ctx_set_disk_flags)
#define ec1_ctx_set_disk_partition   (ec1_api()->ec1_ctx_set_disk_partition)
#define ec1_ctx_set_exec_socket	     (ec1_api()->ec1_ctx_set_exec_socket)
#define ec1_ctx_set_kernel	     (ec1_api()->ec1_ctx_set_kernel)
#define ec1_ctx_set_mapped_volumes   (ec1_api()->ec1_ctx_set_mapped_volumes)
#define ec1_ctx_set_network	     (ec1_api()->ec1_ctx_set_network)
#define ec1_ctx_set_network_address  (ec1_api()->ec1_ctx_set_network_address)
#define ec1_ctx_set_network_nat	     (ec1_api()->ec1_ctx_set_network_nat)
#define ec1_ctx_set_network_none     (ec1_api()->ec1_ctx_set_network_none)
#define ec1_ctx_set_network_passt    (ec1_api()->ec1_ctx_set_network_passt)
#define ec1_ctx_set_network_tap	     (ec1_api()->ec1_ctx_set_network_tap)
#define ec1_ctx_set_process	     (ec1_api()->ec1_ctx_set_process)
#define ec1_ctx_set_root	     (ec1_api()->ec1_ctx_set_root)
#define ec1_ctx_set_root_flags	     (ec1_api()->ec1_ctx_set_root_flags)
#define ec1_ctx_set_sev		     (ec1_api()->ec1_ctx_set_sev)
#define ec1_ctx_set_stdio	     (ec1_api()->ec1_ctx_set_stdio)
#define ec1_ctx_set_timeout	     (ec1_api()->ec1_ctx_set_timeout)
#define ec1_ctx_set_timing	     (ec1_api()->ec1_ctx_set_timing)
#define ec1_ctx_set_vm		     (ec1_api()->ec1_ctx_set_vm)
#define ec1_ctx_set_vmnet	     (ec1_api()->ec1_ctx_set_vmnet)
#define ec1_ctx_set_vsock_uds	     (ec1_api()->ec1_ctx_set_vsock_uds)
#define ec1_ctx_start		     (ec1_api()->ec1_ctx_start)
#define ec1_ctx_wait		     (ec1_api()->ec1_ctx_wait)
#define ec1_disk_detect_format	     (ec1_api()->ec1_disk_detect_format)
#define ec1_run			     (ec1_api()->ec1_run)
#define ec1_set_log_level	     (ec1_api()->ec1_set_log_level)
#define ec1_share_flags_parse	     (ec1_api()->ec1_share_flags_parse)
#define ec1_strerror		     (ec1_api()->ec1_strerror)
#endif

extern const char start_usage[];

/* ec1 run (start_dir NULL), or the VM process of ec1 start (main.c). */
int vm_command(int argc, char **argv, const char *start_dir);
/* ec1 start's VM process once its context is set: starts it, serves, cleans up (vms.c). */
int serve_started(struct ec1_ctx *ctx, const char *dir);
/* s as a number min..max into *out; -1 with a message naming opt (main.c). */
int parse_uint(const char *opt, const char *s, unsigned long min, unsigned long max,
	       unsigned long *out);

int cmd_start(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_logs(int argc, char **argv);

#endif
