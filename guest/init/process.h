/*
 * The process description the VMM writes into the initramfs (/.ec1/process; src/vmm/initramfs.c
 * writes it; the layout is in guest/abi.h): NUL-terminated fields "EC1P4", exec path, workdir,
 * argc, argv..., envc, env..., mount count, then type, source, guest path and "ro" or "rw" for
 * each mount, then the network's address/prefix, gateway and DNS server, then the exec agent's
 * vsock port. Also the exec agent's requests (guest/abi.h).
 */
#ifndef EC1_INIT_PROCESS_H
#define EC1_INIT_PROCESS_H

#include <stdbool.h>
#include <stddef.h>

#define PROCESS_MAX_COUNT (1 << 20) /* argc, envc, mounts */

struct mount_spec {
	char *fstype; /* EC1_ABI_FS_VIRTIOFS, another type, or "": try each */
	char *source; /* a virtio-fs tag, or a disk's block id */
	char *path;
	bool read_only;
	unsigned int partition; /* a disk's: 1..EC1_ABI_MAX_PARTITION, 0 the whole disk */
};

struct process {
	char *exec_path, *workdir;
	char **argv, **envp; /* NULL-terminated */
	struct mount_spec *mounts;
	long nr_mounts;
	char *net_cidr, *net_gateway, *net_dns; /* "" when not given */
	unsigned int agent_port;		/* 0: no exec agent */
};

/*
 * Parses buf[0, len), which must have a NUL at buf[len]; the fields point into buf. Returns 0, or
 * -1 for anything but a whole, well-formed description (p is then freed with process_free).
 */
int process_parse(char *buf, size_t len, struct process *p);
void process_free(struct process *p);

/* An exec request (EC1_EXEC_REQUEST's payload); the strings point into the parsed buffer. */
struct exec_request {
	unsigned int flags; /* EC1_EXEC_F_* */
	unsigned short rows, cols;
	char *exec_path, *workdir; /* workdir "" for "/" */
	char **argv, **envp;	   /* NULL-terminated; argv[0] present */
};
/* As process_parse, for a request payload (a NUL at buf[len]); r freed on failure. */
int exec_request_parse(char *buf, size_t len, struct exec_request *r);
void exec_request_free(struct exec_request *r);

#endif
