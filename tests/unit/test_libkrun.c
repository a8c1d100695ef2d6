/*
 * The libkrun backends against a fake libkrun that records each krun_* call with its arguments:
 * the exact calls and values, per variant, and what happens when a call is missing or fails.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "ec1/ec1.h"
#include "../../src/backend/libkrun.h"
#include "../../src/lib/ec1_internal.h"
#include "check.h"

static char log_path[] = "/tmp/ec1-fake-krun-XXXXXX";

static void use_lib(const char *file)
{
	static char path[4096];
	snprintf(path, sizeof(path), "%s/%s", FAKE_DIR, file);
	setenv("EC1_LIBKRUN_PATH", path, 1);
	truncate(log_path, 0);
}

/* What a fake recorded in path since the last call, which empties the file. */
static char *take_file(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	buf[n] = 0;
	if (f)
		fclose(f);
	truncate(path, 0);
	return buf;
}

/* The calls recorded since the last use_lib()/take_log(), one per line. */
static char *take_log(void)
{
	return take_file(log_path);
}

/* A log with the staging root's path ("/tmp/ec1-krun-XXXXXX") as "STAGE", for comparisons. */
static char stage_seen[64];
static const char *unstaged(const char *log)
{
	static char buf[8192];
	const char *at = strstr(log, "/tmp/ec1-krun-");
	if (!at) {
		snprintf(buf, sizeof(buf), "%s", log);
		return buf;
	}
	snprintf(stage_seen, sizeof(stage_seen), "%.20s", at);
	buf[0] = 0;
	for (const char *p = log; *p;) {
		const char *m = strstr(p, stage_seen);
		int n = m ? (int)(m - p) : (int)strlen(p);
		size_t used = strlen(buf);
		snprintf(buf + used, sizeof(buf) - used, "%.*s%s", n, p, m ? "STAGE" : "");
		if (!m)
			break;
		p = m + strlen(stage_seen);
	}
	return buf;
}

#define CHECK_LOG(expected)                                                                       \
	do {                                                                                      \
		const char *got_ = unstaged(take_log());                                          \
		if (strcmp(got_, (expected)) != 0) {                                              \
			printf("    %s:%d: calls were:\n%s    expected:\n%s", __FILE__, __LINE__, \
			       got_, (expected));                                                 \
			check_failed = 1;                                                         \
		}                                                                                 \
	} while (0)

/* Sets the process /bin/true, runs ctx (status 0 expected) and returns the calls it made. */
static char *run_true(struct ec1_ctx *ctx)
{
	const char *const argv[] = {"true", NULL};
	int status = -1;
	CHECK(ec1_ctx_set_process(ctx, &(struct ec1_process_config){.exec_path = "/bin/true",
								    .argv = argv}) == 0);
	take_log();
	CHECK(ec1_run(ctx, &status) == EC1_OK && status == 0);
	return take_log();
}

/*
 * Every setting is kept and handed to a fresh libkrun context at start, each call once, in one
 * order; ec1_run starts it in the helper process (ec1-krun), which logs its own krun_set_log_level.
 */
static void libkrun_applies_everything_at_start(void)
{
	struct ec1_ctx *ctx;
	use_lib("v1.18/libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	/* ec1_set_log_level ran before the library was first opened: applied once, here. */
	CHECK_LOG("krun_set_log_level 3\n");
	CHECK(ec1_ctx_set_vm(ctx, &(struct ec1_vm_config){.num_vcpus = 2, .ram_mib = 1024}) == 0);
	CHECK(ec1_ctx_set_root(ctx, "/tmp") == 0);
	CHECK(ec1_ctx_add_virtiofs(ctx, "data", "/tmp") == 0);
	struct ec1_disk_config disk = {.block_id = "vda",
				       .path = "/dev/null",
				       .format = EC1_DISK_QCOW2,
				       .read_only = true};
	CHECK(ec1_ctx_add_disk(ctx, &disk) == 0);
	CHECK(ec1_ctx_add_vsock_port(ctx, 1024, "/tmp/agent.sock", true) == 0);
	CHECK(ec1_ctx_add_vsock_port(ctx, 1025, "/tmp/logs.sock", false) == 0);
	CHECK(ec1_ctx_set_vsock_uds(ctx, "/tmp/fc.sock") == EC1_EUNSUPPORTED); /* builtin's */
	const char *const ports[] = {"8080:80", "2222:22"};
	struct ec1_network_config net = {.passt_fd = -1, .port_map = ports, .port_map_count = 2};
	CHECK(ec1_ctx_set_network(ctx, &net) == 0);
	const char *const argv[] = {"echo", "hello", "world", NULL};
	const char *const envp[] = {"A=1", "B=2", NULL};
	struct ec1_process_config p = {
		.exec_path = "/bin/echo", .argv = argv, .envp = envp, .workdir = "/work"};
	CHECK(ec1_ctx_set_process(ctx, &p) == 0);
	struct ec1_kernel_config k = {
		.path = "/dev/null", .format = EC1_KERNEL_IMAGE_GZ, .cmdline = "console=hvc0"};
	CHECK(ec1_ctx_set_kernel(ctx, &k) == 0);
	CHECK_LOG(""); /* nothing reaches libkrun before the start */
	setenv("FAKE_KRUN_EXIT", "3", 1);
	int status = -1;
	CHECK(ec1_run(ctx, &status) == EC1_OK);
	CHECK(status == 3);
	unsetenv("FAKE_KRUN_EXIT");
	CHECK_LOG("krun_set_log_level 3\n"
		  "krun_create_ctx\n"
		  "krun_set_vm_config 7 2 1024\n"
		  "krun_set_root 7 /tmp\n"
		  "krun_add_virtiofs 7 data /tmp\n"
		  "krun_add_disk2 7 vda /dev/null 1 1\n"
		  "krun_add_vsock_port2 7 1024 /tmp/agent.sock 1\n"
		  "krun_add_vsock_port2 7 1025 /tmp/logs.sock 0\n"
		  "krun_set_port_map 7 [8080:80,2222:22]\n"
		  /* argv[0] is not passed: krun_set_exec takes the arguments after the name. */
		  "krun_set_exec 7 /bin/echo [hello,world] [A=1,B=2]\n"
		  "krun_set_workdir 7 /work\n"
		  "krun_set_kernel 7 /dev/null 4 NULL console=hvc0\n"
		  "krun_start_enter 7\n");
	ec1_ctx_free(ctx);
	CHECK_LOG(""); /* the caller's process never made a libkrun context */
}

/*
 * The seed's example (examples/hello.c: 2 vCPUs, 1 GiB, /bin/echo "Hello World" with PATH=/bin)
 * makes exactly these calls on each libkrun version; the helper logs them.
 */
static void libkrun_seed_example_on_each_version(void)
{
	static const char *const libs[] = {"v1.9/libkrun.so.1", "v1.15/libkrun.so.1",
					   "v1.17/libkrun.so.1", "v1.18/libkrun.so.1",
					   "sev/libkrun-sev.so.1"};
	for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
		struct ec1_ctx *ctx;
		bool sev = strstr(libs[i], "sev") != NULL;
		use_lib(libs[i]);
		CHECK(ec1_ctx_new_backend(sev ? EC1_BACKEND_LIBKRUN_SEV : EC1_BACKEND_LIBKRUN,
					  &ctx) == EC1_OK);
		/* Each library has its own logger: the level goes to each once, when first opened
		 * (1.18 was, by the test before). */
		CHECK_LOG(strstr(libs[i], "v1.18") ? "" : "krun_set_log_level 3\n");
		const char *const argv[] = {"echo", "Hello World", NULL};
		const char *const env[] = {"PATH=/bin", NULL};
		struct ec1_process_config p = {.exec_path = "/bin/echo", .argv = argv, .envp = env};
		CHECK(ec1_ctx_set_vm(ctx, &(struct ec1_vm_config){2, 1024}) == EC1_OK);
		CHECK(ec1_ctx_set_process(ctx, &p) == EC1_OK);
		if (sev)
			CHECK(ec1_ctx_set_sev(ctx, &(struct ec1_sev_config){"/dev/null"}) == 0);
		int status = -1;
		CHECK(ec1_run(ctx, &status) == EC1_OK && status == 0);
		CHECK_LOG(
			sev ? "krun_set_log_level 3\nkrun_create_ctx\nkrun_set_vm_config 7 2 1024\n"
			      "krun_set_exec 7 /bin/echo [Hello World] [PATH=/bin]\n"
			      "krun_set_tee_config_file 7 /dev/null\nkrun_start_enter 7\n"
			    : "krun_set_log_level 3\nkrun_create_ctx\nkrun_set_vm_config 7 2 1024\n"
			      "krun_set_exec 7 /bin/echo [Hello World] [PATH=/bin]\n"
			      "krun_start_enter 7\n");
		ec1_ctx_free(ctx);
	}
}

/*
 * What each version can do, as ec1_backend_capabilities and ec1_backend_version say it: vmnet
 * from 1.15 (krun_add_net_unixgram), and the call a missing feature needs named.
 */
static void libkrun_capabilities_per_version(void)
{
	use_lib("v1.9/libkrun.so.1");
	unsigned int caps = ec1_backend_capabilities(EC1_BACKEND_LIBKRUN);
	CHECK(!(caps & EC1_CAP_VMNET) && (caps & EC1_CAP_VOLUMES) && (caps & EC1_CAP_ROOT));
	CHECK(!(caps & EC1_CAP_SHUTDOWN_FD));
	CHECK(ec1_backend_version(EC1_BACKEND_LIBKRUN) &&
	      strcmp(ec1_backend_version(EC1_BACKEND_LIBKRUN), "1.9.0") == 0);
	use_lib("v1.15/libkrun.so.1");
	caps = ec1_backend_capabilities(EC1_BACKEND_LIBKRUN);
	CHECK((caps & EC1_CAP_VMNET) && (caps & EC1_CAP_VSOCK) && (caps & EC1_CAP_DISKS));
	CHECK(strcmp(ec1_backend_version(EC1_BACKEND_LIBKRUN), "1.15.0") == 0);
	use_lib("sev/libkrun-sev.so.1");
	caps = ec1_backend_capabilities(EC1_BACKEND_LIBKRUN_SEV);
	CHECK((caps & EC1_CAP_SEV) && !(caps & EC1_CAP_ROOT) && !(caps & EC1_CAP_VOLUMES));
	/* None installed: what the variant offers, and no version. */
	setenv("EC1_LIBKRUN_PATH", "/nonexistent/libkrun.so.1", 1);
	CHECK(ec1_backend_capabilities(EC1_BACKEND_LIBKRUN) & EC1_CAP_VMNET);
	CHECK(ec1_backend_version(EC1_BACKEND_LIBKRUN) == NULL);
	CHECK(strcmp(ec1_backend_version(EC1_BACKEND_BUILTIN), EC1_VERSION) == 0);
	CHECK(ec1_backend_version(EC1_BACKEND_STUB) == NULL);

	struct ec1_ctx *ctx;
	use_lib("v1.9/libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	take_log();
	struct ec1_disk_config disk = {
		.block_id = "vda", .path = "/dev/null", .format = EC1_DISK_QCOW2};
	CHECK(ec1_ctx_add_disk(ctx, &disk) == EC1_EUNSUPPORTED);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "krun_add_disk2: not in the loaded libkrun.so.1");
	disk.format = EC1_DISK_RAW;
	CHECK(ec1_ctx_add_disk(ctx, &disk) == EC1_OK);
	struct ec1_kernel_config k = {.path = "/dev/null", .format = EC1_KERNEL_BZIMAGE};
	CHECK(ec1_ctx_set_kernel(ctx, &k) == EC1_EUNSUPPORTED);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "libkrun boots no bzImage");
	k.format = EC1_KERNEL_ELF;
	CHECK(ec1_ctx_set_kernel(ctx, &k) == EC1_EUNSUPPORTED);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "krun_set_kernel: not in the loaded libkrun.so.1");
	/* No krun_add_vsock_port2: a plain port through the older call, a listening one refused. */
	CHECK(ec1_ctx_add_vsock_port(ctx, 1024, "/tmp/a.sock", true) == EC1_EUNSUPPORTED);
	CHECK_STR_CONTAINS(
		ec1_ctx_message(ctx),
		"krun_add_vsock_port2: not in the loaded libkrun.so.1 (needed for listen)");
	CHECK(ec1_ctx_add_vsock_port(ctx, 1024, "/tmp/a.sock", false) == EC1_OK);
	/* Read-only shares need krun_add_virtiofs3 (1.18); guest-ids is the builtin engine's. */
	CHECK(ec1_ctx_set_root(ctx, "/tmp") == EC1_OK);
	CHECK(ec1_ctx_set_root_flags(ctx, EC1_SHARE_READ_ONLY) == EC1_EUNSUPPORTED);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx),
			   "root.flags: ro needs krun_add_virtiofs3 (libkrun 1.18 or later); the "
			   "loaded libkrun.so.1 (1.9.0) has none");
	const char *const ro[] = {"/tmp:/data:ro"}, *const ids[] = {"/tmp:/data:guest-ids"};
	CHECK(ec1_ctx_set_mapped_volumes(ctx, ro, 1) == EC1_EUNSUPPORTED);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "volumes[0]: ro needs krun_add_virtiofs3");
	CHECK(ec1_ctx_set_mapped_volumes(ctx, ids, 1) == EC1_EUNSUPPORTED);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "volumes[0]: guest-ids");
	CHECK(ec1_ctx_set_mapped_volumes(ctx, NULL, 0) == EC1_OK);
	const char *const argv[] = {"true", NULL};
	CHECK(ec1_ctx_set_process(ctx, &(struct ec1_process_config){.exec_path = "/bin/true",
								    .argv = argv}) == 0);
	CHECK_LOG("");
	int status = -1;
	CHECK(ec1_run(ctx, &status) == EC1_OK && status == 0);
	if (status)
		printf("    %s\n", ec1_ctx_message(ctx));
	CHECK_LOG("krun_set_log_level 3\nkrun_create_ctx\nkrun_set_vm_config 7 1 512\n"
		  "krun_set_root 7 /tmp\nkrun_add_disk 7 vda /dev/null 0\n"
		  "krun_add_vsock_port 7 1024 /tmp/a.sock\n"
		  "krun_set_exec 7 /bin/true [] [PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
		  "/usr/bin:/sbin:/bin,HOME=/,TERM=linux]\n"
		  "krun_start_enter 7\n");
	ec1_ctx_free(ctx);
}

/*
 * Volumes: libkrun's krun_set_mapped_volumes answers -EINVAL since 1.8, and ec1 never calls it.
 * Each volume and the root become virtio-fs devices of their own (read-only ones through
 * krun_add_virtiofs3), the guest starts from ec1's staging root, where ec1's init mounts them and
 * runs the process (tests/vm/suite.sh boots it); the staging root is gone after the run.
 */
static void libkrun_volumes_through_the_staging_root(void)
{
	struct ec1_ctx *ctx;
	use_lib("v1.18/libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	take_log();
	const char *const vols[] = {"/tmp:/data", "/:/host:ro"};
	CHECK(ec1_ctx_set_mapped_volumes(ctx, vols, 2) == EC1_OK);
	const char *const argv[] = {"ls", "/data", NULL};
	CHECK(ec1_ctx_set_process(ctx, &(struct ec1_process_config){.exec_path = "/bin/ls",
								    .argv = argv,
								    .workdir = "/data"}) == 0);
	int status = -1;
	/* Volumes go under a root: refused at start without one. */
	CHECK(ec1_run(ctx, &status) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx),
			   "volumes: libkrun mounts volumes only under a root");
	ec1_ctx_free(ctx);
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	CHECK(ec1_ctx_set_root(ctx, "/") == EC1_OK);
	CHECK(ec1_ctx_set_root_flags(ctx, EC1_SHARE_READ_ONLY) == EC1_OK);
	CHECK(ec1_ctx_set_mapped_volumes(ctx, vols, 2) == EC1_OK);
	/* The process goes in the description: no command-line limits, quotes are fine. */
	const char *const quoted[] = {"echo", "say \"hi\"", NULL};
	CHECK(ec1_ctx_set_process(ctx, &(struct ec1_process_config){.exec_path = "/bin/echo",
								    .argv = quoted}) == 0);
	take_log();
	CHECK(ec1_run(ctx, &status) == EC1_OK && status == 0);
	CHECK_LOG("krun_set_log_level 3\nkrun_create_ctx\nkrun_set_vm_config 7 1 512\n"
		  "krun_set_root 7 STAGE\n"
		  "krun_add_virtiofs3 7 ec1.root / 0 1\n"
		  "krun_add_virtiofs 7 ec1.vol0 /tmp\n"
		  "krun_add_virtiofs3 7 ec1.vol1 / 0 1\n"
		  "krun_set_exec 7 /.ec1/init [--krun-stage] [PATH=/usr/local/sbin:"
		  "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin,HOME=/,TERM=linux]\n"
		  "krun_start_enter 7\n");
	CHECK(stage_seen[0] && access(stage_seen, F_OK) < 0); /* removed at the helper's exit */
	ec1_ctx_free(ctx);
	/* In this process: libkrun fails to start; freeing the context removes the staging root. */
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	CHECK(ec1_ctx_set_root(ctx, "/") == EC1_OK);
	CHECK(ec1_ctx_set_mapped_volumes(ctx, vols, 2) == EC1_OK);
	CHECK(ec1_ctx_set_process(ctx, &(struct ec1_process_config){.exec_path = "/bin/echo",
								    .argv = quoted}) == 0);
	setenv("FAKE_KRUN_FAIL", "krun_start_enter", 1);
	CHECK(ec1_start_enter(ctx) == EC1_EBACKEND);
	unsetenv("FAKE_KRUN_FAIL");
	CHECK_STR_CONTAINS(unstaged(take_log()), "krun_set_root 7 STAGE\n");
	CHECK(access(stage_seen, F_OK) == 0);
	ec1_ctx_free(ctx);
	CHECK(access(stage_seen, F_OK) < 0);
	/* A read-only root without volumes: the root's own tag through krun_add_virtiofs3. */
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	CHECK(ec1_ctx_set_root(ctx, "/tmp") == EC1_OK);
	CHECK(ec1_ctx_set_root_flags(ctx, EC1_SHARE_READ_ONLY) == EC1_OK);
	CHECK_STR_CONTAINS(run_true(ctx), "krun_add_virtiofs3 7 /dev/root /tmp 0 1\n");
	ec1_ctx_free(ctx);
}

/*
 * A second call replaces the first: the process without a workdir after one with, a TSI network
 * without a port map after one with, TSI after passt; only the last settings reach libkrun.
 */
static void libkrun_second_calls_leave_nothing_stale(void)
{
	struct ec1_ctx *ctx;
	use_lib("v1.18/libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	take_log();
	const char *const argv[] = {"true", NULL}, *const env[] = {"A=1", NULL};
	struct ec1_process_config p = {
		.exec_path = "/bin/true", .argv = argv, .envp = env, .workdir = "/work"};
	CHECK(ec1_ctx_set_process(ctx, &p) == EC1_OK);
	p.workdir = NULL;
	CHECK(ec1_ctx_set_process(ctx, &p) == EC1_OK);
	const char *const ports[] = {"8080:80"};
	const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 1};
	struct ec1_network_config passt = {.passt_fd = 0, .mac = mac};
	CHECK(ec1_ctx_set_network(ctx, &passt) == EC1_OK);
	struct ec1_network_config tsi = {.passt_fd = -1, .port_map = ports, .port_map_count = 1};
	CHECK(ec1_ctx_set_network(ctx, &tsi) == EC1_OK);
	tsi.port_map = NULL;
	tsi.port_map_count = 0;
	CHECK(ec1_ctx_set_network(ctx, &tsi) == EC1_OK);
	int status = -1;
	CHECK(ec1_run(ctx, &status) == EC1_OK);
	CHECK_LOG("krun_set_log_level 3\nkrun_create_ctx\nkrun_set_vm_config 7 1 512\n"
		  "krun_set_exec 7 /bin/true [] [A=1]\nkrun_start_enter 7\n");
	ec1_ctx_free(ctx);
}

static void libkrun_network_passt_and_mac(void)
{
	struct ec1_ctx *ctx;
	use_lib("v1.18/libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	take_log();
	const uint8_t mac[6] = {0x02, 0xec, 0x01, 0, 0, 1};
	const char *const ports[] = {"8080:80"};
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	struct ec1_network_config net = {
		.passt_fd = sv[0], .mac = mac, .port_map = ports, .port_map_count = 1};
	/* The seed passed a port map with passt, which libkrun rejects: refused at once. */
	CHECK(ec1_ctx_set_network(ctx, &net) == EC1_EINVAL);
	net.port_map_count = 0;
	CHECK(ec1_ctx_set_network(ctx, &net) == EC1_OK);
	/* The helper has the socket as its fd 5, and says so. */
	CHECK_STR_CONTAINS(run_true(ctx),
			   "krun_set_passt_fd 7 5\nkrun_set_net_mac 7 02:ec:01:00:00:01\n");
	ec1_ctx_free(ctx);
	close(sv[0]);
	close(sv[1]);
}

/*
 * passt or gvproxy without a MAC: libkrun would give every VM 5a:94:ef:e4:0c:ee; ec1 sets a
 * generated one (locally administered, unicast), another each time. TSI's port map: NULL leaves
 * libkrun's default (every listening guest port), an empty list asks for none.
 */
static void libkrun_generated_mac_and_empty_port_map(void)
{
	struct ec1_ctx *ctx;
	unsigned int m[2][6];
	for (int i = 0; i < 2; i++) {
		use_lib("v1.18/libkrun.so.1");
		CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
		struct ec1_network_config net = {.passt_fd = 0};
		CHECK(ec1_ctx_set_network(ctx, &net) == EC1_OK);
		const char *log = strstr(run_true(ctx), "krun_set_net_mac 7 ");
		CHECK(log && sscanf(log, "krun_set_net_mac 7 %x:%x:%x:%x:%x:%x", &m[i][0], &m[i][1],
				    &m[i][2], &m[i][3], &m[i][4], &m[i][5]) == 6);
		CHECK((m[i][0] & 3) == 2); /* locally administered, unicast */
		ec1_ctx_free(ctx);
	}
	CHECK(memcmp(m[0], m[1], sizeof(m[0])) != 0);
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	const char *const none[] = {NULL};
	struct ec1_network_config tsi = {.passt_fd = -1, .port_map = none, .port_map_count = 0};
	CHECK(ec1_ctx_set_network(ctx, &tsi) == EC1_OK);
	CHECK_STR_CONTAINS(run_true(ctx), "krun_set_port_map 7 []\n");
	ec1_ctx_free(ctx);
}

/* A libkrun call that fails at start: its errno and name, as if the caller's call had failed. */
static void libkrun_errors_keep_errno(void)
{
	struct ec1_ctx *ctx;
	use_lib("v1.18/libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	const char *const argv[] = {"true", NULL};
	CHECK(ec1_ctx_set_process(ctx, &(struct ec1_process_config){.exec_path = "/bin/true",
								    .argv = argv}) == 0);
	setenv("FAKE_KRUN_FAIL", "krun_set_vm_config", 1);
	int status = -1;
	CHECK(ec1_run(ctx, &status) == EC1_EBACKEND);
	unsetenv("FAKE_KRUN_FAIL");
	CHECK(ec1_ctx_backend_errno(ctx) == -22);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "krun_set_vm_config: Invalid argument (-22)");
	CHECK(!strstr(take_log(), "krun_start_enter"));
	ec1_ctx_free(ctx);
}

/*
 * No environment given: libkrun would copy the host's whole environment into the guest (its
 * krun_set_exec with envp NULL), so ec1's default goes instead, as on the builtin engine.
 */
static void libkrun_default_environment_not_the_hosts(void)
{
	struct ec1_ctx *ctx;
	use_lib("v1.17/libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	const char *const argv[] = {"true", NULL};
	struct ec1_process_config p = {.exec_path = "/bin/true", .argv = argv};
	CHECK(ec1_ctx_set_process(ctx, &p) == EC1_OK);
	take_log();
	int status;
	CHECK(ec1_run(ctx, &status) == EC1_OK);
	CHECK_STR_CONTAINS(take_log(),
			   "krun_set_exec 7 /bin/true [] [PATH=/usr/local/sbin:/usr/local/bin:"
			   "/usr/sbin:/usr/bin:/sbin:/bin,HOME=/,TERM=linux]\n");
	ec1_ctx_free(ctx);
}

/*
 * libkrun packs the process into the guest kernel's command line, each entry in double quotes: an
 * entry with a quote, or more than fits, is refused naming it, and libkrun is not called.
 */
static void libkrun_process_must_fit_the_command_line(void)
{
	struct ec1_ctx *ctx;
	int status = -1;
	use_lib("v1.18/libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	take_log();
	const char *const argv[] = {"echo", "say \"hi\"", NULL};
	struct ec1_process_config p = {.exec_path = "/bin/echo", .argv = argv};
	CHECK(ec1_ctx_set_process(ctx, &p) == EC1_OK);
	CHECK(ec1_run(ctx, &status) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "process.argv[1]: contains a double quote");
	ec1_ctx_free(ctx);
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	static char big[1700];
	memset(big, 'v', sizeof(big) - 1);
	memcpy(big, "BIG=", 4);
	const char *const env[] = {"A=b", big, NULL};
	const char *const argv2[] = {"true", NULL};
	struct ec1_process_config p2 = {.exec_path = "/bin/true", .argv = argv2, .envp = env};
	CHECK(ec1_ctx_set_process(ctx, &p2) == EC1_OK);
	CHECK(ec1_run(ctx, &status) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "guest kernel's command line");
	CHECK_LOG(""); /* refused before any libkrun call */
	ec1_ctx_free(ctx);
	/* With a volume (set after the process) the process goes in the staging root instead. */
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	CHECK(ec1_ctx_set_root(ctx, "/") == EC1_OK);
	CHECK(ec1_ctx_set_process(ctx, &p2) == EC1_OK);
	const char *const vols[] = {"/tmp:/data"};
	CHECK(ec1_ctx_set_mapped_volumes(ctx, vols, 1) == EC1_OK);
	CHECK(ec1_run(ctx, &status) == EC1_OK && status == 0);
	take_log();
	ec1_ctx_free(ctx);
}

static void libkrun_variant_table(void)
{
	struct ec1_ctx *ctx;
	int fd = -1;
	use_lib("sev/libkrun-sev.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN_SEV, &ctx) == EC1_OK);
	take_log();
	CHECK(ec1_ctx_set_root(ctx, "/tmp") == EC1_EUNSUPPORTED);
	const char *const vols[] = {"/tmp:/mnt"};
	CHECK(ec1_ctx_set_mapped_volumes(ctx, vols, 1) == EC1_EUNSUPPORTED);
	CHECK(ec1_ctx_get_shutdown_eventfd(ctx, &fd) == EC1_EUNSUPPORTED);
	/* Its krun_set_kernel is a two-argument stub: never called. */
	struct ec1_kernel_config k = {.path = "/dev/null", .format = EC1_KERNEL_ELF};
	CHECK(ec1_ctx_set_kernel(ctx, &k) == EC1_EUNSUPPORTED);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "libkrun-sev boots its own firmware and kernel");
	/* No TEE configuration: refused when set, and at start, not inside libkrun. */
	CHECK(ec1_ctx_set_sev(ctx, &(struct ec1_sev_config){0}) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "sev.tee_config_file: libkrun-sev needs one");
	CHECK_LOG("");
	ec1_ctx_free(ctx);
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN_SEV, &ctx) == EC1_OK);
	const char *const sev_argv[] = {"true", NULL};
	CHECK(ec1_ctx_set_process(ctx, &(struct ec1_process_config){.exec_path = "/bin/true",
								    .argv = sev_argv}) == 0);
	int sev_status = -1;
	CHECK(ec1_run(ctx, &sev_status) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "no TEE configuration file set");
	CHECK_LOG("");
	ec1_ctx_free(ctx);

	/* libkrun-efi only ever existed for macOS: not found here. */
	unsetenv("EC1_LIBKRUN_PATH");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN_EFI, &ctx) == EC1_ENOTAVAIL);
	CHECK(!(ec1_backend_capabilities(EC1_BACKEND_LIBKRUN_EFI) & EC1_CAP_SHUTDOWN_FD));

	/* libkrun on Linux has no shutdown eventfd (macOS builds only): not claimed, not called. */
	use_lib("v1.18/libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	CHECK(ec1_ctx_get_shutdown_eventfd(ctx, &fd) == EC1_EUNSUPPORTED);
	CHECK(ec1_ctx_set_sev(ctx, &(struct ec1_sev_config){0}) == EC1_EUNSUPPORTED);
	ec1_ctx_free(ctx);
}

static void *sleeper(void *arg)
{
	(void)arg;
	pause();
	return NULL;
}

/*
 * ec1_run's VM process: the helper when it is there; without it a fork, but only while this
 * process has one thread; with threads (libkrun's in a forked copy: undefined) a clear refusal.
 */
static void libkrun_run_without_the_helper(void)
{
	struct ec1_ctx *ctx;
	const char *const argv[] = {"true", NULL};
	use_lib("v1.18/libkrun.so.1");
	setenv("EC1_KRUN_HELPER", "/nonexistent/ec1-krun", 1);
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	CHECK(ec1_ctx_set_process(ctx, &(struct ec1_process_config){.exec_path = "/bin/true",
								    .argv = argv}) == 0);
	setenv("FAKE_KRUN_EXIT", "4", 1);
	int status = -1;
	take_log();
	CHECK(ec1_run(ctx, &status) == EC1_OK && status == 4);
	if (status != 4)
		printf("    %d %s\n", status, ec1_ctx_message(ctx));
	/* The fork: the caller's own library, no second krun_set_log_level. */
	CHECK_LOG("krun_create_ctx\nkrun_set_vm_config 7 1 512\n"
		  "krun_set_exec 7 /bin/true [] [PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
		  "/usr/bin:/sbin:/bin,HOME=/,TERM=linux]\nkrun_start_enter 7\n");
	ec1_ctx_free(ctx);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, sleeper, NULL) == 0);
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	CHECK(ec1_ctx_set_process(ctx, &(struct ec1_process_config){.exec_path = "/bin/true",
								    .argv = argv}) == 0);
	CHECK(ec1_run(ctx, &status) == EC1_ENOTAVAIL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx),
			   "needs the helper ec1-krun (/nonexistent/ec1-krun");
	CHECK_LOG("");
	ec1_ctx_free(ctx);
	pthread_cancel(t);
	pthread_join(t, NULL);
	/* The helper named but not executable: its exec error, not a run. */
	setenv("EC1_KRUN_HELPER", "/dev/null", 1);
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	CHECK(ec1_ctx_set_process(ctx, &(struct ec1_process_config){.exec_path = "/bin/true",
								    .argv = argv}) == 0);
	CHECK(ec1_run(ctx, &status) == EC1_OK); /* /dev/null is not X_OK: the fork again */
	ec1_ctx_free(ctx);
	unsetenv("EC1_KRUN_HELPER");
	unsetenv("FAKE_KRUN_EXIT");
	take_log();
}

/* The helper's configuration: what one context writes reads back; anything else is refused. */
static void libkrun_helper_configuration(void)
{
	struct ec1_ctx *ctx;
	char msg[256], *cfg;
	size_t len;
	use_lib("v1.18/libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	const char *const argv[] = {"echo", "a b", "", NULL}, *const vols[] = {"/tmp:/d:ro"};
	const char *const none[] = {NULL};
	CHECK(ec1_ctx_set_root(ctx, "/tmp") == 0);
	CHECK(ec1_ctx_set_mapped_volumes(ctx, vols, 1) == 0);
	CHECK(ec1_ctx_add_vsock_port(ctx, 5, "/tmp/x.sock", true) == 0);
	CHECK(ec1_ctx_set_network(
		      ctx, &(struct ec1_network_config){.passt_fd = -1, .port_map = none}) == 0);
	CHECK(ec1_ctx_set_process(ctx, &(struct ec1_process_config){.exec_path = "/bin/echo",
								    .argv = argv,
								    .workdir = "/w"}) == 0);
	CHECK(ec1_krun_config_write(ctx, &cfg, &len) == EC1_OK);
	CHECK(ec1_krun_config_read(cfg, len, NULL, msg, sizeof(msg)) == EC1_OK);
	struct ec1_ctx *back = NULL;
	CHECK(ec1_krun_config_read(cfg, len, &back, msg, sizeof(msg)) == EC1_OK);
	if (back) {
		CHECK(back->nr_volumes == 1 && back->volumes[0].flags == EC1_SHARE_READ_ONLY);
		CHECK(strcmp(back->argv[1], "a b") == 0 && strcmp(back->argv[2], "") == 0);
		CHECK(back->envp == NULL && strcmp(back->workdir, "/w") == 0);
		CHECK(back->nr_vsock_ports == 1 && back->vsock_ports[0].listen);
		ec1_ctx_free(back);
	}
	/* Cut anywhere, or a byte changed into another number: refused or read, never more. */
	for (size_t cut = 0; cut < len; cut++)
		CHECK(ec1_krun_config_read(cfg, cut, NULL, msg, sizeof(msg)) == EC1_EINVAL);
	char *extra = malloc(len + 4);
	memcpy(extra, cfg, len);
	memcpy(extra + len, "x\0", 2);
	CHECK(ec1_krun_config_read(extra, len + 2, NULL, msg, sizeof(msg)) == EC1_EINVAL);
	CHECK_STR_CONTAINS(msg, "bytes after the end");
	free(extra);
	char bad[] = "EC1K1\0log\0"
		     "3\0backend\0libkrun\0vm\0"
		     "99\0"
		     "512\0end";
	CHECK(ec1_krun_config_read(bad, sizeof(bad), NULL, msg, sizeof(msg)) == EC1_EINVAL);
	CHECK_STR_CONTAINS(msg, "vm: bad fields");
	free(cfg);
	ec1_ctx_free(ctx);
	take_log();
}

/* A qcow2 header at path: version, the backing file's name (NULL: none), incompatible bits. */
static void write_qcow2_header(const char *path, uint32_t version, const char *backing,
			       uint64_t incompat)
{
	uint8_t h[4096] = {'Q', 'F', 'I', 0xfb};
	uint32_t hl = version == 3 ? 112 : 72;
	h[7] = (uint8_t)version;
	if (backing) {
		/* backing_file_offset: after the header and its extensions' end marker */
		h[15] = (uint8_t)(hl + 8);
		h[19] = (uint8_t)strlen(backing);
		memcpy(h + hl + 8, backing, strlen(backing));
	}
	if (version == 3) {
		for (int i = 0; i < 8; i++)
			h[72 + i] = (uint8_t)(incompat >> (56 - 8 * i));
		h[99] = 4; /* refcount_order */
		h[103] = (uint8_t)hl;
	}
	FILE *f = fopen(path, "w");
	CHECK(f && fwrite(h, 1, sizeof(h), f) == sizeof(h));
	if (f)
		fclose(f);
}

/*
 * Disk flags on libkrun: direct I/O and sync=none through krun_add_disk3 (1.19), refused where the
 * loaded library has none; the helper carries them. A qcow2 image that names a backing file is
 * handed to libkrun (which opens it) only with backing files allowed; one with an external data
 * file never.
 */
static void libkrun_disk_flags_and_named_files(void)
{
	char dir[] = "/tmp/ec1-krun-disks-XXXXXX", raw[80], q[80], qd[80], qbad[80], log[1024];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(raw, sizeof(raw), "%s/raw.img", dir);
	snprintf(q, sizeof(q), "%s/top.qcow2", dir);
	snprintf(qd, sizeof(qd), "%s/data.qcow2", dir);
	snprintf(qbad, sizeof(qbad), "%s/bad.qcow2", dir);
	FILE *f = fopen(raw, "w");
	if (f)
		fclose(f);
	write_qcow2_header(q, 2, "/etc/shadow", 0);
	write_qcow2_header(qd, 3, NULL, 1u << 2);
	write_qcow2_header(qbad, 3, "x", 0);
	/* bad: the name's length runs past the first 4 KiB */
	f = fopen(qbad, "r+");
	if (f) {
		fseek(f, 16, SEEK_SET);
		fwrite("\x00\x00\x10\x00", 1, 4, f);
		fclose(f);
	}

	struct ec1_ctx *ctx;
	use_lib("v1.18/libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	CHECK(ec1_ctx_add_disk(ctx, &(struct ec1_disk_config){"a", raw, EC1_DISK_RAW, false}) ==
	      EC1_OK);
	CHECK(ec1_ctx_set_disk_flags(ctx, "a", EC1_DISK_DIRECT_IO) == EC1_EUNSUPPORTED);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx),
			   "disk \"a\": direct I/O needs krun_add_disk3 (libkrun 1.19 or later); "
			   "the loaded libkrun.so.1 (1.18.0) has none");
	CHECK(ec1_ctx_set_disk_flags(ctx, "a", EC1_DISK_NO_FLUSH) == EC1_EUNSUPPORTED);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "sync=none needs krun_add_disk3");
	CHECK(ec1_ctx_set_disk_flags(ctx, "a", EC1_DISK_ALLOW_BACKING) == EC1_OK);
	CHECK(strstr(run_true(ctx), "krun_add_disk2 7 a ") != NULL);
	ec1_ctx_free(ctx);

	use_lib("v1.19/libkrun.so.1");
	const char *const argv[] = {"true", NULL};
	int status = -1;
	for (int allow = 0; allow < 2; allow++) {
		CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
		CHECK(ec1_ctx_add_disk(ctx, &(struct ec1_disk_config){"a", raw, EC1_DISK_RAW,
								      false}) == EC1_OK);
		CHECK(ec1_ctx_add_disk(
			      ctx, &(struct ec1_disk_config){"b", raw, EC1_DISK_RAW, true}) == 0);
		CHECK(ec1_ctx_add_disk(ctx, &(struct ec1_disk_config){"c", raw, EC1_DISK_RAW,
								      false}) == EC1_OK);
		CHECK(ec1_ctx_add_disk(
			      ctx, &(struct ec1_disk_config){"q", q, EC1_DISK_QCOW2, false}) == 0);
		CHECK(ec1_ctx_set_disk_flags(ctx, "a", EC1_DISK_DIRECT_IO | EC1_DISK_NO_FLUSH) ==
		      0);
		CHECK(ec1_ctx_set_disk_flags(ctx, "b", EC1_DISK_DIRECT_IO) == EC1_OK);
		CHECK(ec1_ctx_set_disk_flags(ctx, "c", EC1_DISK_NO_FLUSH) == EC1_OK);
		if (allow) {
			CHECK(ec1_ctx_set_disk_flags(ctx, "q", EC1_DISK_ALLOW_BACKING) == EC1_OK);
			/* Through the helper: the flags travel in its configuration. */
			snprintf(log, sizeof(log),
				 "krun_set_log_level 3\nkrun_create_ctx\nkrun_set_vm_config 7 1 "
				 "512\nkrun_add_disk3 7 a %s 0 0 1 0\nkrun_add_disk3 7 b %s 0 1 1 "
				 "2\nkrun_add_disk3 7 c %s 0 0 0 0\nkrun_add_disk2 7 q %s 1 0\n",
				 raw, raw, raw, q);
			CHECK_STR_CONTAINS(run_true(ctx), log);
		} else {
			/* The image names /etc/shadow: refused before libkrun sees it. */
			CHECK(ec1_ctx_set_process(
				      ctx, &(struct ec1_process_config){.exec_path = "/bin/true",
									.argv = argv}) == 0);
			take_log();
			CHECK(ec1_run(ctx, &status) == EC1_EINVAL);
			snprintf(log, sizeof(log),
				 "disk \"q\": %s: the image names a backing file (/etc/shadow), "
				 "which libkrun would open for the guest: allow backing files",
				 q);
			CHECK_STR_CONTAINS(ec1_ctx_message(ctx), log);
			CHECK_LOG("");
		}
		ec1_ctx_free(ctx);
	}

	/* Flags for a root directory never set: refused before libkrun is asked. */
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	CHECK(ec1_ctx_set_root_flags(ctx, EC1_SHARE_READ_ONLY) == EC1_OK);
	CHECK(ec1_ctx_set_process(ctx, &(struct ec1_process_config){.exec_path = "/bin/true",
								    .argv = argv}) == 0);
	take_log();
	CHECK(ec1_run(ctx, &status) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "root.flags: set, but there is no root directory");
	CHECK_LOG("");
	ec1_ctx_free(ctx);

	/* An external data file, a header that cannot be read: refused, naming the disk. */
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	CHECK(ec1_ctx_add_disk(ctx, &(struct ec1_disk_config){"d", qd, EC1_DISK_QCOW2, false}) ==
	      0);
	CHECK(ec1_ctx_set_disk_flags(ctx, "d", EC1_DISK_ALLOW_BACKING) == EC1_OK);
	CHECK(ec1_ctx_set_process(ctx, &(struct ec1_process_config){.exec_path = "/bin/true",
								    .argv = argv}) == 0);
	CHECK(ec1_run(ctx, &status) == EC1_EUNSUPPORTED);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "disk \"d\": ");
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx),
			   "the image keeps its data in an external file, which libkrun would "
			   "open for the guest");
	ec1_ctx_free(ctx);
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	CHECK(ec1_ctx_add_disk(ctx, &(struct ec1_disk_config){"e", qbad, EC1_DISK_QCOW2, false}) ==
	      0);
	CHECK(ec1_ctx_set_process(ctx, &(struct ec1_process_config){.exec_path = "/bin/true",
								    .argv = argv}) == 0);
	CHECK(ec1_run(ctx, &status) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "disk \"e\": ");
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), ": qcow2: backing file name at 120 (4096 bytes) "
						 "is not in the header");
	ec1_ctx_free(ctx);
	CHECK_LOG("");
	unlink(raw);
	unlink(q);
	unlink(qd);
	unlink(qbad);
	rmdir(dir);
}

static void libkrun_absent_is_not_available(void)
{
	struct ec1_ctx *ctx = (void *)1;
	setenv("EC1_LIBKRUN_PATH", "/nonexistent/libkrun.so.1", 1);
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_ENOTAVAIL);
	CHECK(ctx == NULL);
	/* The same program switches backend with one environment variable. */
	setenv("EC1_BACKEND", "libkrun", 1);
	CHECK(ec1_ctx_new(&ctx) == EC1_ENOTAVAIL);
	use_lib("v1.18/libkrun.so.1");
	CHECK(ec1_ctx_new(&ctx) == EC1_OK);
	CHECK(ec1_ctx_backend(ctx) == EC1_BACKEND_LIBKRUN);
	ec1_ctx_free(ctx);
	unsetenv("EC1_BACKEND");
}

static char helper_log[] = "/tmp/ec1-fake-vmnet-XXXXXX";
static char helper_path[4096];

/* The helper's recorded command lines (and "stopped") since the last call. */
static char *take_helper_log(void)
{
	return take_file(helper_log);
}

static bool process_gone(int pid)
{
	return pid > 0 && kill(pid, 0) < 0 && errno == ESRCH;
}

static void vmnet_helper_started_with_every_option(void)
{
	struct ec1_ctx *ctx;
	use_lib("v1.18/libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	take_log();
	take_helper_log();
	struct ec1_vmnet_config c = {
		.interface_id = "0c3e5e4a-3f27-4c44-9d1e-2b6f0f8a7c11",
		.mode = EC1_VMNET_HOST,
		.start_address = "192.168.50.1",
		.end_address = "192.168.50.99",
		.subnet_mask = "255.255.255.0",
		.enable_isolation = true,
		.verbose = true,
		.helper_path = helper_path,
	};
	CHECK(ec1_ctx_set_vmnet(ctx, &c) == EC1_OK);
	CHECK_LOG(""); /* libkrun gets it at start */
	/* Every option reaches the helper, and its socket is fd 3. */
	CHECK(strcmp(take_helper_log(),
		     "--fd 3 --operation-mode host --interface-id "
		     "0c3e5e4a-3f27-4c44-9d1e-2b6f0f8a7c11 --start-address 192.168.50.1 "
		     "--end-address 192.168.50.99 --subnet-mask 255.255.255.0 "
		     "--enable-isolation --verbose\n") == 0);
	struct ec1_vmnet_info info;
	CHECK(ec1_ctx_get_vmnet_info(ctx, &info) == EC1_OK);
	CHECK(strcmp(info.mac_address, "0a:bb:cc:dd:ee:0f") == 0);
	CHECK(info.mtu == 1500 && info.max_packet_size == 1514);
	CHECK(strcmp(info.start_address, "192.168.105.1") == 0);
	CHECK(strcmp(info.end_address, "192.168.105.254") == 0);
	CHECK(strcmp(info.subnet_mask, "255.255.255.0") == 0);
	CHECK(strcmp(info.interface_id, c.interface_id) == 0);
	CHECK(strcmp(info.nat66_prefix, "fd9b:5a14:ba57:e3d3::") == 0);
	CHECK(info.helper_pid > 0 && info.fd >= 3);
	/* Our end stays open and usable: an ARP request for the gateway gets its answer. */
	struct timeval tv = {.tv_sec = 5};
	setsockopt(info.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	uint8_t arp[42] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0a, 0xbb, 0xcc, 0xdd, 0xee,
			   0x0f, 0x08, 0x06, 0,	   1,	 0x08, 0,    6,	   4,	 0,    1,
			   0x0a, 0xbb, 0xcc, 0xdd, 0xee, 0x0f, 192,  168,  105,	 2,    0,
			   0,	 0,    0,    0,	   0,	 192,  168,  105,  1};
	uint8_t back[64] = {0};
	CHECK(send(info.fd, arp, sizeof(arp), 0) == sizeof(arp));
	CHECK(recv(info.fd, back, sizeof(back), 0) == sizeof(arp) && back[21] == 2 &&
	      memcmp(back, arp + 6, 6) == 0);
	/* One network per context. */
	CHECK(ec1_ctx_set_vmnet(ctx, &c) == EC1_ESTATE);
	/* At start libkrun (in the helper process) gets a datagram socket whose far end is the
	 * vmnet-helper, and vmnet's MAC. */
	const char *const argv[] = {"true", NULL};
	CHECK(ec1_ctx_set_process(ctx, &(struct ec1_process_config){.exec_path = "/bin/true",
								    .argv = argv}) == 0);
	int status = -1;
	CHECK(ec1_run(ctx, &status) == EC1_OK && status == 0);
	CHECK_STR_CONTAINS(take_log(),
			   "krun_add_net_unixgram 7 NULL dgram 0a:bb:cc:dd:ee:0f 0 0 arp=ok\n");
	ec1_ctx_free(ctx);
	/* Freeing the context stops the helper (which counted the frames it answered). */
	CHECK(strncmp(take_helper_log(), "stopped\n2 frames", 16) == 0);
	CHECK(process_gone(info.helper_pid));
}

static void vmnet_helpers_and_environment(void)
{
	struct ec1_ctx *ctx;
	use_lib("v1.18/libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	take_helper_log();
	setenv("EC1_VMNET_HELPER", helper_path, 1);
	CHECK(ec1_ctx_set_vmnet_bridged(ctx, "en0", NULL, 0) == EC1_OK);
	CHECK(strcmp(take_helper_log(),
		     "--fd 3 --operation-mode bridged --shared-interface en0\n") == 0);
	ec1_ctx_free(ctx);
	take_helper_log();
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	CHECK(ec1_ctx_set_vmnet_shared(ctx, NULL, 0) == EC1_OK);
	CHECK(strcmp(take_helper_log(), "--fd 3 --operation-mode shared\n") == 0);
	ec1_ctx_free(ctx);
	take_helper_log();
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	CHECK(ec1_ctx_set_vmnet_host(ctx, false, NULL, 0) == EC1_OK);
	CHECK(strcmp(take_helper_log(), "--fd 3 --operation-mode host\n") == 0);
	ec1_ctx_free(ctx);
	take_helper_log();
	unsetenv("EC1_VMNET_HELPER");
}

/* Each bad configuration is refused before any helper starts, naming the field. */
static void vmnet_bad_configurations(void)
{
	struct ec1_ctx *ctx;
	use_lib("v1.18/libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	take_log();
	take_helper_log();
	const char *const ports[] = {"8080:80"};
	struct {
		struct ec1_vmnet_config c;
		int code;
		const char *msg;
	} cases[] = {
		{{.helper_path = helper_path, .mode = 7}, EC1_EINVAL, "vmnet.mode: 7"},
		{{.helper_path = helper_path, .mode = EC1_VMNET_BRIDGED},
		 EC1_EINVAL,
		 "vmnet.shared_interface: required"},
		{{.helper_path = helper_path, .shared_interface = "en0"},
		 EC1_EINVAL,
		 "vmnet.shared_interface: only in bridged mode"},
		{{.helper_path = helper_path, .enable_isolation = true},
		 EC1_EINVAL,
		 "vmnet.enable_isolation: only in host mode"},
		{{.helper_path = helper_path, .interface_id = "1234"},
		 EC1_EINVAL,
		 "vmnet.interface_id: \"1234\": expected a UUID"},
		{{.helper_path = helper_path, .start_address = "1.2.3", .end_address = "1.2.3.9"},
		 EC1_EINVAL,
		 "vmnet.start_address: \"1.2.3\""},
		{{.helper_path = helper_path, .start_address = "10.0.0.1"},
		 EC1_EINVAL,
		 "give both or neither"},
		{{.helper_path = helper_path, .subnet_mask = "255.255.255.0 --evil"},
		 EC1_EINVAL,
		 "vmnet.subnet_mask"},
		{{.helper_path = helper_path, .port_map = ports, .port_map_count = 1},
		 EC1_EUNSUPPORTED,
		 "vmnet.port_map"},
		{{.helper_path = "/nonexistent/vmnet-helper"},
		 EC1_EVMNET,
		 "vmnet.helper_path: /nonexistent/vmnet-helper: No such file or directory"},
		/* Off macOS, vmnet needs a helper named explicitly. */
		{{.mode = EC1_VMNET_SHARED}, EC1_EVMNET, "macOS only"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int err = ec1_ctx_set_vmnet(ctx, &cases[i].c);
		if (err != cases[i].code)
			printf("    case %zu: got %d\n", i, err);
		CHECK(err == cases[i].code);
		CHECK_STR_CONTAINS(ec1_ctx_message(ctx), cases[i].msg);
	}
	CHECK(ec1_ctx_set_vmnet(ctx, NULL) == EC1_EINVAL);
	struct ec1_vmnet_info info;
	CHECK(ec1_ctx_get_vmnet_info(ctx, &info) == EC1_ESTATE);
	CHECK_LOG("");
	CHECK(strcmp(take_helper_log(), "") == 0);
	ec1_ctx_free(ctx);

	/* Variants without vmnet. */
	use_lib("sev/libkrun-sev.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN_SEV, &ctx) == EC1_OK);
	struct ec1_vmnet_config ok = {.helper_path = helper_path};
	CHECK(ec1_ctx_set_vmnet(ctx, &ok) == EC1_EVMNET);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "not available with the libkrun-sev backend");
	ec1_ctx_free(ctx);
	CHECK(strcmp(take_helper_log(), "") == 0);
	/* ec1's own engine takes vmnet too: the helper started, stopped with the context. */
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_BUILTIN, &ctx) == EC1_OK);
	CHECK(ec1_ctx_set_vmnet(ctx, &ok) == EC1_OK);
	ec1_ctx_free(ctx);
	CHECK_STR_CONTAINS(take_helper_log(), "--fd 3 --operation-mode shared");
	CHECK(strcmp(take_helper_log(), "") == 0);
}

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/* A helper that fails, babbles, hangs or ignores SIGTERM: a clear error, and no process left. */
static void vmnet_misbehaving_helpers(void)
{
	struct ec1_ctx *ctx;
	struct ec1_vmnet_config c = {.helper_path = helper_path};
	use_lib("v1.18/libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	setenv("EC1_VMNET_START_TIMEOUT_MS", "300", 1);
	const struct {
		const char *mode, *msg;
	} cases[] = {
		{"exit", "exited with status 3 before reporting its configuration"},
		{"garbage", "bad configuration line: not a JSON object"},
		{"hang", "no configuration line within 300 ms"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		setenv("FAKE_VMNET_MODE", cases[i].mode, 1);
		CHECK(ec1_ctx_set_vmnet(ctx, &c) == EC1_EVMNET);
		CHECK_STR_CONTAINS(ec1_ctx_message(ctx), cases[i].msg);
	}
	/* A failed start left nothing running: the next one works. */
	unsetenv("FAKE_VMNET_MODE");
	take_log();
	CHECK(ec1_ctx_set_vmnet(ctx, &c) == EC1_OK);
	CHECK_LOG("");
	ec1_ctx_free(ctx);

	setenv("FAKE_VMNET_MODE", "stubborn", 1);
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	CHECK(ec1_ctx_set_vmnet(ctx, &c) == EC1_OK);
	struct ec1_vmnet_info info;
	CHECK(ec1_ctx_get_vmnet_info(ctx, &info) == EC1_OK);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ec1_ctx_free(ctx);
	long ms = elapsed_ms(&t0);
	CHECK(process_gone(info.helper_pid));
	CHECK(ms >= 900 && ms < 5000); /* SIGTERM ignored: SIGKILL after the grace period */
	unsetenv("FAKE_VMNET_MODE");
	unsetenv("EC1_VMNET_START_TIMEOUT_MS");
	take_helper_log();
}

static void vmnet_old_libkrun_says_so(void)
{
	struct ec1_ctx *ctx;
	use_lib("v1.9/libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	take_helper_log();
	struct ec1_vmnet_config c = {.helper_path = helper_path};
	CHECK(ec1_ctx_set_vmnet(ctx, &c) == EC1_EUNSUPPORTED);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "vmnet needs libkrun 1.15 or later");
	/* The helper it started for nothing is stopped at once. */
	CHECK_STR_CONTAINS(take_helper_log(), "stopped\n");
	struct ec1_vmnet_info info;
	CHECK(ec1_ctx_get_vmnet_info(ctx, &info) == EC1_ESTATE);
	ec1_ctx_free(ctx);
}

static void vmnet_parses_helper_lines(void)
{
	struct ec1_vmnet_info info;
	char why[160];
	CHECK(ec1_vmnet_parse(" { \"vmnet_mtu\" : 9000 , \"vmnet_mac_address\":"
			      "\"02:00:00:00:00:01\", \"other\": true, \"x\": \"a\\\"b\"} ",
			      &info, why, sizeof(why)) == 0);
	CHECK(info.mtu == 9000 && info.mac[5] == 1 && info.start_address[0] == 0);
	const struct {
		const char *line, *why;
	} bad[] = {
		{"", "not a JSON object"},
		{"{\"vmnet_mtu\":1500}", "no vmnet_mac_address"},
		{"{\"vmnet_mac_address\":\"02:00:00:00:00:01\"}", "no vmnet_mtu"},
		{"{\"vmnet_mtu\":1500,\"vmnet_mac_address\":\"02:00:00:00:01\"}", "not a MAC"},
		{"{\"vmnet_mtu\":1500,\"vmnet_mac_address\":\"02:00:00:00:00:0100\"}", "not a MAC"},
		{"{\"vmnet_mtu\":-1,\"vmnet_mac_address\":\"02:00:00:00:00:01\"}", "not an MTU"},
		{"{\"vmnet_mtu\":99999999999999999999}", "not an MTU"},
		{"{\"vmnet_start_address\":\"300.1.1.1\"}", "not valid"},
		{"{\"a\":{\"b\":1}}", "malformed"},
		{"{\"a\":1 \"b\":2}", "malformed"},
		{"{\"a\":\"unterminated}", "malformed"},
		{"{\"vmnet_mtu\":1500} trailing", "malformed"},
		{"{\"vmnet_interface_id\":\"0123456789012345678901234567890123456789012\"}",
		 "not valid"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = 0;
		CHECK(ec1_vmnet_parse(bad[i].line, &info, why, sizeof(why)) < 0);
		CHECK_STR_CONTAINS(why, bad[i].why);
	}
}

/*
 * A line cut short after a key, a colon or a value: the parser stops at the terminating NUL and
 * never reads past it (it stepped over the NUL before failing; under ASan a heap-buffer-overflow,
 * elsewhere an error offset past the end of the line).
 */
static void vmnet_parse_stops_at_the_end_of_a_truncated_line(void)
{
	const char *cuts[] = {"{",	   "{\"\"",	   "{\"a\"",   "{\"a\":", "{\"a\":1",
			      "{\"a\":1,", "{\"a\":\"b\"", " {\"a\" ", "{\"a\\"};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		size_t len = strlen(cuts[i]);
		char *line = malloc(len + 1); /* exactly the line: ASan sees any byte beyond it */
		memcpy(line, cuts[i], len + 1);
		struct ec1_vmnet_info info;
		char why[160] = "";
		CHECK(ec1_vmnet_parse(line, &info, why, sizeof(why)) < 0);
		size_t at = len + 1;
		if (sscanf(why, "malformed JSON near offset %zu", &at) == 1)
			CHECK(at <= len);
		free(line);
	}
}

int main(void)
{
	int fd = mkstemp(log_path);
	if (fd < 0)
		return 1;
	close(fd);
	setenv("FAKE_KRUN_LOG", log_path, 1);
	if ((fd = mkstemp(helper_log)) < 0)
		return 1;
	close(fd);
	setenv("FAKE_VMNET_LOG", helper_log, 1);
	snprintf(helper_path, sizeof(helper_path), "%s/fake-vmnet-helper", FAKE_DIR);
	ec1_set_log_level(EC1_LOG_INFO);
	TEST(libkrun_applies_everything_at_start);
	TEST(libkrun_seed_example_on_each_version);
	TEST(libkrun_capabilities_per_version);
	TEST(libkrun_volumes_through_the_staging_root);
	TEST(libkrun_network_passt_and_mac);
	TEST(libkrun_errors_keep_errno);
	TEST(libkrun_second_calls_leave_nothing_stale);
	TEST(libkrun_generated_mac_and_empty_port_map);
	TEST(libkrun_variant_table);
	TEST(libkrun_default_environment_not_the_hosts);
	TEST(libkrun_process_must_fit_the_command_line);
	TEST(libkrun_helper_configuration);
	TEST(libkrun_disk_flags_and_named_files);
	TEST(libkrun_absent_is_not_available);
	TEST(vmnet_helper_started_with_every_option);
	TEST(vmnet_helpers_and_environment);
	TEST(vmnet_bad_configurations);
	TEST(vmnet_misbehaving_helpers);
	TEST(vmnet_old_libkrun_says_so);
	TEST(vmnet_parses_helper_lines);
	TEST(vmnet_parse_stops_at_the_end_of_a_truncated_line);
	TEST(libkrun_run_without_the_helper);
	unlink(log_path);
	unlink(helper_log);
	return tests_failed != 0;
}
