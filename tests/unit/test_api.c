/*
 * The public API: argument checks name the field, the availability table, the log-level guard;
 * and the console's halt line (serial.c), which decides how a run ends.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/vmm/serial.h"
#include "check.h"
#include "ec1/ec1.h"

static struct ec1_ctx *new_builtin(void)
{
	struct ec1_ctx *ctx = NULL;
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_BUILTIN, &ctx) == EC1_OK);
	return ctx;
}

static void log_level_second_call_is_already(void)
{
	CHECK(ec1_set_log_level(99) == EC1_EINVAL);
	CHECK(ec1_set_log_level(EC1_LOG_WARN) == EC1_OK);
	CHECK(ec1_set_log_level(EC1_LOG_DEBUG) == EC1_EALREADY);
	CHECK(ec1_set_log_level(EC1_LOG_DEBUG) == EC1_EALREADY);
}

static void stub_backend_is_not_available(void)
{
	struct ec1_ctx *ctx = (void *)1;
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_STUB, &ctx) == EC1_ENOTAVAIL);
	CHECK(ctx == NULL);
	setenv("EC1_BACKEND", "stub", 1);
	CHECK(ec1_ctx_new(&ctx) == EC1_ENOTAVAIL);
	setenv("EC1_BACKEND", "nonsense", 1);
	CHECK(ec1_ctx_new(&ctx) == EC1_EINVAL);
	unsetenv("EC1_BACKEND");
}

static void vm_config_checks_ranges(void)
{
	struct ec1_ctx *ctx = new_builtin();
	struct ec1_vm_config vm = {.num_vcpus = 0, .ram_mib = 512};
	CHECK(ec1_ctx_set_vm(ctx, &vm) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "vm.num_vcpus");
	vm = (struct ec1_vm_config){.num_vcpus = 65, .ram_mib = 512};
	CHECK(ec1_ctx_set_vm(ctx, &vm) == EC1_EINVAL);
	vm = (struct ec1_vm_config){.num_vcpus = 2, .ram_mib = 8};
	CHECK(ec1_ctx_set_vm(ctx, &vm) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "vm.ram_mib");
	vm = (struct ec1_vm_config){.num_vcpus = 2, .ram_mib = 256};
	CHECK(ec1_ctx_set_vm(ctx, &vm) == EC1_OK);
	CHECK(ec1_ctx_message(ctx)[0] == 0);
	CHECK(ec1_ctx_set_vm(ctx, NULL) == EC1_EINVAL);
	ec1_ctx_free(ctx);
}

static void kernel_path_checked_when_set(void)
{
	struct ec1_ctx *ctx = new_builtin();
	struct ec1_kernel_config k = {.path = "/x/no-such-kernel", .format = EC1_KERNEL_ELF};
	CHECK(ec1_ctx_set_kernel(ctx, &k) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx),
			   "kernel.path: /x/no-such-kernel: No such file or directory");
	k.path = "/";
	CHECK(ec1_ctx_set_kernel(ctx, &k) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "Is a directory");
	/* A FIFO (or a pipe, as a shell's <(...) gives) would be waited on: refused when set. */
	char fifo[64] = "/tmp/ec1-test-api-fifo-XXXXXX";
	CHECK(mkdtemp(fifo) != NULL);
	strcat(fifo, "/f");
	CHECK(mkfifo(fifo, 0600) == 0);
	k.path = fifo;
	CHECK(ec1_ctx_set_kernel(ctx, &k) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "kernel.path: ");
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "/f: a FIFO or pipe, not a file");
	k.path = "/proc/self/exe";
	k.initramfs = fifo;
	CHECK(ec1_ctx_set_kernel(ctx, &k) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "kernel.initramfs: ");
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "a FIFO or pipe");
	struct ec1_disk_config fd_disk = {.block_id = "f", .path = fifo};
	CHECK(ec1_ctx_add_disk(ctx, &fd_disk) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "disk.path: ");
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "a FIFO or pipe");
	unlink(fifo);
	*strrchr(fifo, '/') = 0;
	rmdir(fifo);
	k.initramfs = "/x/none.cpio";
	CHECK(ec1_ctx_set_kernel(ctx, &k) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "kernel.initramfs: /x/none.cpio");
	k.initramfs = NULL;
	k.format = EC1_KERNEL_IMAGE_GZ;
	CHECK(ec1_ctx_set_kernel(ctx, &k) == EC1_EUNSUPPORTED);
	k.format = 42;
	CHECK(ec1_ctx_set_kernel(ctx, &k) == EC1_EINVAL);
	k.format = EC1_KERNEL_ELF;
	CHECK(ec1_ctx_set_kernel(ctx, &k) == EC1_OK);
	/* RAW is libkrun's flat image, not a bzImage: that has a value of its own. */
	k.format = EC1_KERNEL_RAW;
	CHECK(ec1_ctx_set_kernel(ctx, &k) == EC1_EUNSUPPORTED);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "RAW is libkrun's flat image");
	k.format = EC1_KERNEL_BZIMAGE;
	CHECK(ec1_ctx_set_kernel(ctx, &k) == EC1_OK);
	ec1_ctx_free(ctx);
}

static void process_config_checks_fields(void)
{
	struct ec1_ctx *ctx = new_builtin();
	struct ec1_process_config p = {.exec_path = ""};
	CHECK(ec1_ctx_set_process(ctx, &p) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "process.exec_path");
	const char *const bad_env[] = {"PATH=/bin", "NOEQUALS", NULL};
	p = (struct ec1_process_config){.exec_path = "/bin/true", .envp = bad_env};
	CHECK(ec1_ctx_set_process(ctx, &p) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "process.envp[1]");
	p = (struct ec1_process_config){.exec_path = "/bin/true", .workdir = "relative"};
	CHECK(ec1_ctx_set_process(ctx, &p) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "process.workdir");
	const char *const empty[] = {NULL};
	p = (struct ec1_process_config){.exec_path = "/bin/true", .argv = empty};
	CHECK(ec1_ctx_set_process(ctx, &p) == EC1_EINVAL);
	p = (struct ec1_process_config){.exec_path = "/bin/true"};
	CHECK(ec1_ctx_set_process(ctx, &p) == EC1_OK);
	ec1_ctx_free(ctx);
}

static void run_requires_process(void)
{
	struct ec1_ctx *ctx = new_builtin();
	int status;
	CHECK(ec1_run(ctx, &status) == EC1_ESTATE);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "process");
	ec1_ctx_free(ctx);
}

static void variant_table_enforced(void)
{
	struct ec1_ctx *ctx = new_builtin();
	struct ec1_sev_config sev = {0};
	CHECK(ec1_ctx_set_sev(ctx, &sev) == EC1_EUNSUPPORTED);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "set_sev");
	CHECK(ec1_ctx_set_vmnet_shared(ctx, NULL, 0) == EC1_EVMNET);
	int fd = -1, again = -1;
	CHECK(ec1_ctx_get_shutdown_eventfd(ctx, &fd) == EC1_OK && fd >= 0);
	CHECK(ec1_ctx_get_shutdown_eventfd(ctx, &again) == EC1_OK && again == fd);
	ec1_ctx_free(ctx);
}

static void volumes_and_shares_checked(void)
{
	struct ec1_ctx *ctx = new_builtin();
	const char *const bad[] = {"/nonexistent-dir:/mnt"};
	CHECK(ec1_ctx_set_mapped_volumes(ctx, bad, 1) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "volumes[0]: /nonexistent-dir");
	const char *const rel[] = {"/tmp:relative"};
	CHECK(ec1_ctx_set_mapped_volumes(ctx, rel, 1) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "absolute");
	const char *const dots[] = {"/tmp:/mnt/../etc"};
	CHECK(ec1_ctx_set_mapped_volumes(ctx, dots, 1) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "must not contain . or ..");
	const char *const slash[] = {"/tmp:/:ro"};
	CHECK(ec1_ctx_set_mapped_volumes(ctx, slash, 1) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "cannot be /");
	const char *const opt[] = {"/tmp:/mnt:rx"};
	CHECK(ec1_ctx_set_mapped_volumes(ctx, opt, 1) == EC1_EINVAL);
	CHECK(ec1_ctx_add_virtiofs(ctx, "", "/tmp") == EC1_EINVAL);
	CHECK(ec1_ctx_add_virtiofs(ctx, "0123456789012345678901234567890123456", "/tmp") ==
	      EC1_EINVAL);
	CHECK(ec1_ctx_set_root(ctx, "/nonexistent-root") == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "root: /nonexistent-root");
	CHECK(ec1_ctx_set_root(ctx, "/etc/passwd") == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "root: /etc/passwd: Not a directory");
	/* Well-formed: accepted by the builtin engine (virtio-fs). */
	CHECK(ec1_ctx_set_root(ctx, "/tmp") == EC1_OK);
	const char *const good[] = {"/tmp:/mnt/a", "/:/host:ro", "/tmp:/mnt/b:ro,guest-ids",
				    "/tmp:/mnt/c:guest-ids,rw"};
	CHECK(ec1_ctx_set_mapped_volumes(ctx, good, 4) == EC1_OK);
	const char *const opts[] = {"/tmp:/mnt:ro,", "/tmp:/mnt:", "/tmp:/mnt:ro,guest"};
	for (int i = 0; i < 3; i++) {
		CHECK(ec1_ctx_set_mapped_volumes(ctx, &opts[i], 1) == EC1_EINVAL);
		CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "unknown option");
	}
	/* The root's flags: EC1_SHARE_* only. */
	CHECK(ec1_ctx_set_root_flags(ctx, EC1_SHARE_READ_ONLY | EC1_SHARE_GUEST_IDS) == EC1_OK);
	CHECK(ec1_ctx_set_root_flags(ctx, 8) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "root.flags");
	unsigned int flags;
	CHECK(ec1_share_flags_parse("ro,guest-ids", &flags) == 0 &&
	      flags == (EC1_SHARE_READ_ONLY | EC1_SHARE_GUEST_IDS));
	CHECK(ec1_share_flags_parse("ro,rw", &flags) == 0 && flags == 0);
	CHECK(ec1_share_flags_parse("suid", &flags) < 0);
	CHECK(ec1_ctx_add_virtiofs(ctx, "data", "/tmp") == EC1_OK);
	CHECK(ec1_ctx_add_virtiofs(ctx, "data", "/") == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "already used");
	CHECK(ec1_ctx_add_virtiofs(ctx, "ec1-root", "/") == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "the ec1- prefix is ec1's own");
	/* More directories than a VM has device slots: refused before anything starts. */
	for (int i = 0; i < 14; i++) {
		char tag[16];
		snprintf(tag, sizeof(tag), "t%d", i);
		CHECK(ec1_ctx_add_virtiofs(ctx, tag, "/tmp") == EC1_OK);
	}
	struct ec1_process_config p = {.exec_path = "/bin/true"};
	CHECK(ec1_ctx_set_process(ctx, &p) == EC1_OK);
	int status;
	CHECK(ec1_run(ctx, &status) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "shares: at most 15 directories");
	ec1_ctx_free(ctx);
}

static void network_config_checked(void)
{
	struct ec1_ctx *ctx = new_builtin();
	const char *const ports[] = {"8080:80"};
	struct ec1_network_config n = {.passt_fd = 0, .port_map = ports, .port_map_count = 1};
	CHECK(ec1_ctx_set_network(ctx, &n) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "port_map");
	const char *const badport[] = {"80:99999"};
	n = (struct ec1_network_config){.passt_fd = -1, .port_map = badport, .port_map_count = 1};
	CHECK(ec1_ctx_set_network(ctx, &n) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "network.port_map[0]");
	n = (struct ec1_network_config){.passt_fd = 1000};
	CHECK(ec1_ctx_set_network(ctx, &n) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "network.passt_fd");
	ec1_ctx_free(ctx);
}

/*
 * Published ports: IPv4 or bracketed IPv6 addresses, a port twice on overlapping addresses
 * refused; the NAT refuses IPv6 ones once they parse (passt takes them: the VM suite).
 */
static void publish_specs_checked(void)
{
	static const char nat_v4[] = "an IPv6 address needs passt";
	static const struct {
		const char *a, *b; /* b: NULL for one entry */
		const char *why;   /* NULL: taken */
	} cases[] = {
		{"127.0.0.1:8080:80", NULL, NULL},
		{"[::1]:8080:80", NULL, nat_v4},
		{"[::]:8080:80/udp", NULL, nat_v4},
		{"[2001:db8::2]:8080:80/tcp", NULL, nat_v4},
		{"127.0.0.1:8080:80", "[::1]:8080:80", nat_v4}, /* two families: not twice */
		{"[::1]:8080:80", "[::1]:8080:80/udp", nat_v4},
		{"[::1]:8080:80", "[::1]:8081:80", nat_v4},
		{"[::1]:8080:80", "[::]:8080:81", "published twice"},
		{"[::1]:8080:80", "[::1]:8080:81", "published twice"},
		{"[::1:8080:80", NULL, "expected [IPV6]:HOST:GUEST"},
		{"[::1]8080:80", NULL, "expected [IPV6]:HOST:GUEST"},
		{"[10.0.0.1]:8080:80", NULL, "not an IPv6 address"},
		{"[]:8080:80", NULL, "not an IPv6 address"},
		{"::1:8080:80", NULL, "neither dotted IPv4 nor IPv6 in brackets"},
		{"[::1]:1:8080:80", NULL, "expected [ADDR:]HOST:GUEST"},
		{"[::1]:8080", NULL, "expected [ADDR:]HOST:GUEST"},
		{"[::1]:0:80", NULL, "ports are 1..65535"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ec1_ctx *ctx = new_builtin();
		const char *const list[] = {cases[i].a, cases[i].b};
		struct ec1_nat_config c = {.publish = list, .publish_count = cases[i].b ? 2 : 1};
		int err = ec1_ctx_set_network_nat(ctx, &c);
		if (!cases[i].why) {
			CHECK(err == EC1_OK);
		} else {
			CHECK(err == EC1_EINVAL);
			CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "network.publish[");
			CHECK_STR_CONTAINS(ec1_ctx_message(ctx), cases[i].why);
		}
		ec1_ctx_free(ctx);
	}
}

/* The kernel's halt line on its console (serial.c): only that line, after a time stamp at most. */
static void serial_halt_line_is_the_kernels_last(void)
{
	static const struct {
		const char *line;
		bool halt;
	} cases[] = {
		{"reboot: System halted", true},
		{"reboot: Power down", true},
		{"[    1.234567] reboot: System halted", true},
		{"[1.0] reboot: Power down", true},
		{"reboot: Restarting system", false},
		{"reboot: System halted ", false},
		{" reboot: System halted", false},
		{"[1.0]reboot: System halted", false},
		{"[1.0 reboot: System halted", false},
		{"x[1.0] reboot: System halted", false},
		{"reboot: System halte", false},
		{"", false},
		{"[", false},
		{"[]", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (serial_halt_line(cases[i].line, strlen(cases[i].line)) != cases[i].halt) {
			printf("    \"%s\": %d\n", cases[i].line, !cases[i].halt);
			check_failed = 1;
		}
}

/* A fixed MAC is unicast and not all zeroes, on every way to set a network. */
static void mac_checked(void)
{
	static const uint8_t ok[6] = {0x02, 0, 0, 0, 0, 1}, multi[6] = {0x03, 0, 0, 0, 0, 1},
			     zero[6] = {0};
	const uint8_t *const macs[] = {ok, multi, zero};
	static const char *const why[] = {NULL, "multicast address", "00:00:00:00:00:00 is no"};
	for (size_t i = 0; i < 3; i++) {
		struct ec1_ctx *ctx = new_builtin();
		struct ec1_nat_config c = {.mac = macs[i]};
		int err = ec1_ctx_set_network_nat(ctx, &c);
		if (!why[i]) {
			CHECK(err == EC1_OK);
		} else {
			CHECK(err == EC1_EINVAL);
			CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "network.mac: ");
			CHECK_STR_CONTAINS(ec1_ctx_message(ctx), why[i]);
		}
		ec1_ctx_free(ctx);
	}
}

static void vsock_config_checked(void)
{
	struct ec1_ctx *ctx = new_builtin();
	CHECK(ec1_ctx_add_vsock_port(ctx, 0, "/tmp/a", false) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "vsock.port: 0");
	CHECK(ec1_ctx_add_vsock_port(ctx, UINT32_MAX, "/tmp/a", false) == EC1_EINVAL);
	CHECK(ec1_ctx_add_vsock_port(ctx, 5, "", false) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "vsock.path: empty");
	char long_path[200];
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = 0;
	CHECK(ec1_ctx_add_vsock_port(ctx, 5, long_path, true) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "longer than a unix socket path");
	CHECK(ec1_ctx_set_vsock_uds(ctx, long_path) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "vsock.uds");
	for (uint32_t i = 1; i <= EC1_MAX_VSOCK_PORTS; i++)
		CHECK(ec1_ctx_add_vsock_port(ctx, i, "/tmp/a", false) == EC1_OK);
	CHECK(ec1_ctx_add_vsock_port(ctx, 3, "/tmp/b", false) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "vsock.port: 3: already added");
	CHECK(ec1_ctx_add_vsock_port(ctx, 100, "/tmp/b", false) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "at most 16 ports");
	CHECK(ec1_ctx_set_vsock_uds(ctx, "/tmp/fc.sock") == EC1_OK);
	CHECK(ec1_ctx_set_vsock_uds(ctx, NULL) == EC1_OK);
	ec1_ctx_free(ctx);
}

static void exec_calls_checked(void)
{
	struct ec1_ctx *ctx = new_builtin();
	int status;
	CHECK(ec1_ctx_add_vsock_port(ctx, 15474369, "/tmp/a", false) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "ec1's own (exec)");
	CHECK(ec1_ctx_set_exec_socket(ctx, "") == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "exec_socket: empty");
	CHECK(ec1_ctx_wait(ctx, &status) == EC1_ESTATE);
	CHECK(ec1_ctx_stop(ctx, 0, NULL) == EC1_ESTATE);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "not started");
	CHECK(strcmp(ec1_ctx_exec_socket(ctx), "") == 0);
	ec1_ctx_free(ctx);
	CHECK(ec1_backend_capabilities(EC1_BACKEND_BUILTIN) & EC1_CAP_EXEC);
	CHECK(!(ec1_backend_capabilities(EC1_BACKEND_LIBKRUN) & EC1_CAP_EXEC));

	struct ec1_exec *e;
	CHECK(ec1_exec_new("", &e) == EC1_EINVAL);
	CHECK(ec1_exec_new("/tmp/ec1-test-no-such.sock", &e) == EC1_OK);
	CHECK(ec1_exec_wait(e, &status) == EC1_ESTATE);
	CHECK(ec1_exec_signal(e, 0) == EC1_EINVAL);
	CHECK(ec1_exec_signal(e, 65) == EC1_EINVAL);
	struct ec1_exec_config c = {.exec_path = "", .stdin_fd = -1};
	CHECK(ec1_exec_start(e, &c) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_exec_message(e), "exec.exec_path: empty");
	c.exec_path = "/bin/true";
	c.workdir = "tmp";
	CHECK(ec1_exec_start(e, &c) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_exec_message(e), "exec.workdir");
	c.workdir = NULL;
	const char *const bad_env[] = {"NOEQUALS", NULL};
	c.envp = bad_env;
	CHECK(ec1_exec_start(e, &c) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_exec_message(e), "exec.envp[0]");
	c.envp = NULL;
	static char big[70000];
	memset(big, 'x', sizeof(big) - 1);
	const char *const big_argv[] = {"true", big, NULL};
	c.argv = big_argv;
	CHECK(ec1_exec_start(e, &c) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_exec_message(e), "the request's limit");
	c.argv = NULL;
	unlink("/tmp/ec1-test-no-such.sock");
	CHECK(ec1_exec_start(e, &c) == EC1_ESTATE);
	CHECK_STR_CONTAINS(ec1_exec_message(e), "the VM is not running");
	ec1_exec_free(e);
}

static void disk_config_checked(void)
{
	struct ec1_ctx *ctx = new_builtin();
	struct ec1_disk_config d = {.block_id = "", .path = "/proc/self/exe"};
	CHECK(ec1_ctx_add_disk(ctx, &d) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "disk.block_id");
	d = (struct ec1_disk_config){.block_id = "vda", .path = "/no/disk.img"};
	CHECK(ec1_ctx_add_disk(ctx, &d) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "disk.path: /no/disk.img");
	/* Block ids: the guest's serial, 20 printable bytes at most, unique. */
	d = (struct ec1_disk_config){.block_id = "123456789012345678901", .path = "/proc/self/exe"};
	CHECK(ec1_ctx_add_disk(ctx, &d) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "1..20 printable bytes");
	d.block_id = "a b";
	CHECK(ec1_ctx_add_disk(ctx, &d) == EC1_EINVAL);
	d.block_id = "12345678901234567890";
	CHECK(ec1_ctx_add_disk(ctx, &d) == EC1_OK);
	CHECK(ec1_ctx_add_disk(ctx, &d) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "already used");
	d = (struct ec1_disk_config){.block_id = "x", .path = "/tmp", .read_only = true};
	CHECK(ec1_ctx_add_disk(ctx, &d) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "Is a directory");
	/* Mounts: of an added disk, at an absolute path, one disk per path, a sane type. */
	CHECK(ec1_ctx_mount_disk(ctx, "nope", "/data", NULL) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "no disk added with that id");
	CHECK(ec1_ctx_mount_disk(ctx, "12345678901234567890", "data", NULL) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "absolute path");
	CHECK(ec1_ctx_mount_disk(ctx, "12345678901234567890", "/data", "ext4;rm") == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "mount_disk.fstype");
	CHECK(ec1_ctx_mount_disk(ctx, "12345678901234567890", "/", "ext4") == EC1_OK);
	/* Partitions: of an added disk, 0..128. */
	CHECK(ec1_ctx_set_disk_partition(ctx, "nope", 1) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "disk_partition.block_id");
	CHECK(ec1_ctx_set_disk_partition(ctx, "12345678901234567890", 129) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "disk_partition: 129: expected 1..128");
	CHECK(ec1_ctx_set_disk_partition(ctx, "12345678901234567890", 128) == EC1_OK);
	CHECK(ec1_ctx_set_disk_partition(ctx, "12345678901234567890", 0) == EC1_OK);
	/* Flags: known ones only. */
	CHECK(ec1_ctx_set_disk_flags(ctx, "12345678901234567890", 8) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "disk_flags: 0x8: unknown flags");
	CHECK(ec1_ctx_set_disk_flags(ctx, "12345678901234567890",
				     EC1_DISK_DIRECT_IO | EC1_DISK_NO_FLUSH) == EC1_OK);
	d = (struct ec1_disk_config){
		.block_id = "q", .path = "/proc/self/exe", .format = EC1_DISK_QCOW2};
	CHECK(ec1_ctx_add_disk(ctx, &d) == EC1_OK);
	CHECK(ec1_ctx_set_disk_flags(ctx, "q", EC1_DISK_DIRECT_IO | EC1_DISK_ALLOW_BACKING) ==
	      EC1_OK);
	for (int i = 2; i < EC1_MAX_DISKS; i++) {
		char id[8];
		snprintf(id, sizeof(id), "d%d", i);
		d = (struct ec1_disk_config){.block_id = id, .path = "/proc/self/exe"};
		CHECK(ec1_ctx_add_disk(ctx, &d) == EC1_OK);
	}
	CHECK(ec1_ctx_mount_disk(ctx, "d2", "/", NULL) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "is mounted there");
	d = (struct ec1_disk_config){.block_id = "one-more", .path = "/proc/self/exe"};
	CHECK(ec1_ctx_add_disk(ctx, &d) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "at most 8 disks");
	/* A root disk and a root directory: refused when the run starts. */
	int status;
	CHECK(ec1_ctx_set_root(ctx, "/tmp") == EC1_OK);
	const char *argv[] = {"/bin/true", NULL};
	struct ec1_process_config p = {.exec_path = "/bin/true", .argv = argv};
	CHECK(ec1_ctx_set_process(ctx, &p) == EC1_OK);
	struct ec1_kernel_config k = {
		.path = "/proc/self/exe", .format = EC1_KERNEL_ELF, .initramfs = "/proc/self/exe"};
	CHECK(ec1_ctx_set_kernel(ctx, &k) == EC1_OK);
	CHECK(ec1_run(ctx, &status) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "one root only");
	ec1_ctx_free(ctx);
	/* A partition of a disk nothing mounts: refused at the start, not dropped. */
	ctx = new_builtin();
	d = (struct ec1_disk_config){.block_id = "p", .path = "/proc/self/exe"};
	CHECK(ec1_ctx_add_disk(ctx, &d) == EC1_OK);
	CHECK(ec1_ctx_set_disk_partition(ctx, "p", 2) == EC1_OK);
	CHECK(ec1_ctx_set_process(ctx, &p) == EC1_OK && ec1_ctx_set_kernel(ctx, &k) == EC1_OK);
	CHECK(ec1_run(ctx, &status) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx),
			   "disk_partition: disk \"p\": partition 2 of a disk init does not mount");
	ec1_ctx_free(ctx);
	/* Flags for a root directory never set: refused at the start too. */
	ctx = new_builtin();
	CHECK(ec1_ctx_set_root_flags(ctx, EC1_SHARE_READ_ONLY) == EC1_OK);
	CHECK(ec1_ctx_set_process(ctx, &p) == EC1_OK && ec1_ctx_set_kernel(ctx, &k) == EC1_OK);
	CHECK(ec1_run(ctx, &status) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx),
			   "root.flags: set, but there is no root directory (ec1_ctx_set_root)");
	ec1_ctx_free(ctx);
	/* Backends without disk mounts say so; the stub has no disks at all. */
	CHECK(ec1_backend_capabilities(EC1_BACKEND_BUILTIN) & EC1_CAP_DISK_MOUNTS);
	CHECK(ec1_backend_capabilities(EC1_BACKEND_LIBKRUN) & EC1_CAP_DISKS);
	CHECK(!(ec1_backend_capabilities(EC1_BACKEND_LIBKRUN) & EC1_CAP_DISK_MOUNTS));
	CHECK(!(ec1_backend_capabilities(EC1_BACKEND_STUB) & EC1_CAP_DISKS));
	enum ec1_disk_format f = EC1_DISK_QCOW2;
	CHECK(ec1_disk_detect_format("/proc/self/exe", &f) == EC1_OK && f == EC1_DISK_RAW);
	CHECK(ec1_disk_detect_format("/no/such", &f) == EC1_EINVAL);
}

static void strerror_covers_codes(void)
{
	for (int c = 0; c >= EC1_ESTATE; c--)
		CHECK(strcmp(ec1_strerror(c), "unknown error") != 0);
	CHECK(strcmp(ec1_strerror(-999), "unknown error") == 0);
	enum ec1_backend b;
	CHECK(ec1_backend_parse("libkrun-sev", &b) == EC1_OK && b == EC1_BACKEND_LIBKRUN_SEV);
	CHECK(ec1_backend_parse("x", &b) == EC1_EINVAL);
}

int main(void)
{
	TEST(log_level_second_call_is_already);
	TEST(stub_backend_is_not_available);
	TEST(vm_config_checks_ranges);
	TEST(publish_specs_checked);
	TEST(mac_checked);
	TEST(serial_halt_line_is_the_kernels_last);
	TEST(kernel_path_checked_when_set);
	TEST(process_config_checks_fields);
	TEST(run_requires_process);
	TEST(variant_table_enforced);
	TEST(volumes_and_shares_checked);
	TEST(network_config_checked);
	TEST(disk_config_checked);
	TEST(vsock_config_checked);
	TEST(exec_calls_checked);
	TEST(strerror_covers_codes);
	return tests_failed != 0;
}
