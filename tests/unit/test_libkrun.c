/*
 * The libkrun backends against a fake libkrun that records each krun_* call with its arguments:
 * the exact calls and values, per variant, and what happens when a call is missing or fails.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "ec1/ec1.h"
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

#define CHECK_LOG(expected)                                                                       \
	do {                                                                                      \
		const char *got_ = take_log();                                                    \
		if (strcmp(got_, (expected)) != 0) {                                              \
			printf("    %s:%d: calls were:\n%s    expected:\n%s", __FILE__, __LINE__, \
			       got_, (expected));                                                 \
			check_failed = 1;                                                         \
		}                                                                                 \
	} while (0)

static void libkrun_maps_each_call_exactly(void)
{
	struct ec1_ctx *ctx;
	use_lib("libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	/* ec1_set_log_level ran before the first libkrun context: applied once, here. */
	CHECK_LOG("krun_set_log_level 3\nkrun_create_ctx\n");
	CHECK(ec1_ctx_set_vm(ctx, &(struct ec1_vm_config){.num_vcpus = 2, .ram_mib = 1024}) == 0);
	CHECK(ec1_ctx_set_root(ctx, "/tmp") == 0);
	const char *const vols[] = {"/tmp:/mnt", "/:/host"};
	CHECK(ec1_ctx_set_mapped_volumes(ctx, vols, 2) == 0);
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
	CHECK_LOG("krun_set_vm_config 7 2 1024\n"
		  "krun_set_root 7 /tmp\n"
		  "krun_set_mapped_volumes 7 [/tmp:/mnt,/:/host]\n"
		  "krun_add_virtiofs 7 data /tmp\n"
		  "krun_add_disk2 7 vda /dev/null 1 1\n"
		  "krun_add_vsock_port2 7 1024 /tmp/agent.sock 1\n"
		  "krun_add_vsock_port2 7 1025 /tmp/logs.sock 0\n"
		  "krun_set_port_map 7 [8080:80,2222:22]\n"
		  /* argv[0] is not passed: krun_set_exec takes the arguments after the name. */
		  "krun_set_exec 7 /bin/echo [hello,world] [A=1,B=2]\n"
		  "krun_set_workdir 7 /work\n"
		  "krun_set_kernel 7 /dev/null 4 NULL console=hvc0\n");
	setenv("FAKE_KRUN_EXIT", "3", 1);
	int status = -1;
	CHECK(ec1_run(ctx, &status) == EC1_OK);
	CHECK(status == 3);
	unsetenv("FAKE_KRUN_EXIT");
	ec1_ctx_free(ctx);
	CHECK_LOG("krun_start_enter 7\nkrun_free_ctx 7\n");
}

static void libkrun_network_passt_and_mac(void)
{
	struct ec1_ctx *ctx;
	use_lib("libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	take_log();
	const uint8_t mac[6] = {0x02, 0xec, 0x01, 0, 0, 1};
	const char *const ports[] = {"8080:80"};
	struct ec1_network_config net = {
		.passt_fd = 0, .mac = mac, .port_map = ports, .port_map_count = 1};
	/* The seed passed a port map with passt, which libkrun rejects: refused before any call. */
	CHECK(ec1_ctx_set_network(ctx, &net) == EC1_EINVAL);
	CHECK_LOG("");
	net.port_map_count = 0;
	CHECK(ec1_ctx_set_network(ctx, &net) == EC1_OK);
	CHECK_LOG("krun_set_passt_fd 7 0\nkrun_set_net_mac 7 02:ec:01:00:00:01\n");
	ec1_ctx_free(ctx);
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
		use_lib("libkrun.so.1");
		CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
		take_log();
		struct ec1_network_config net = {.passt_fd = 0};
		CHECK(ec1_ctx_set_network(ctx, &net) == EC1_OK);
		const char *log = take_log();
		CHECK(sscanf(log, "krun_set_passt_fd 7 0\nkrun_set_net_mac 7 %x:%x:%x:%x:%x:%x\n",
			     &m[i][0], &m[i][1], &m[i][2], &m[i][3], &m[i][4], &m[i][5]) == 6);
		CHECK((m[i][0] & 3) == 2);
		ec1_ctx_free(ctx);
	}
	CHECK(memcmp(m[0], m[1], sizeof(m[0])) != 0);
	use_lib("libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	take_log();
	struct ec1_network_config tsi = {.passt_fd = -1};
	CHECK(ec1_ctx_set_network(ctx, &tsi) == EC1_OK);
	CHECK_LOG("");
	const char *const none[] = {NULL};
	tsi.port_map = none;
	CHECK(ec1_ctx_set_network(ctx, &tsi) == EC1_OK);
	CHECK_LOG("krun_set_port_map 7 []\n");
	ec1_ctx_free(ctx);
}

/*
 * Settings libkrun keeps across calls: a second process without a workdir resets it to "/"; a
 * network that would silently keep an earlier one's interface or port map is refused.
 */
static void libkrun_second_calls_leave_nothing_stale(void)
{
	struct ec1_ctx *ctx;
	use_lib("libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	take_log();
	const char *const argv[] = {"true", NULL}, *const env[] = {"A=1", NULL};
	struct ec1_process_config p = {
		.exec_path = "/bin/true", .argv = argv, .envp = env, .workdir = "/work"};
	CHECK(ec1_ctx_set_process(ctx, &p) == EC1_OK);
	p.workdir = NULL;
	CHECK(ec1_ctx_set_process(ctx, &p) == EC1_OK);
	CHECK_LOG("krun_set_exec 7 /bin/true [] [A=1]\nkrun_set_workdir 7 /work\n"
		  "krun_set_exec 7 /bin/true [] [A=1]\nkrun_set_workdir 7 /\n");
	const char *const ports[] = {"8080:80"};
	struct ec1_network_config tsi = {.passt_fd = -1, .port_map = ports, .port_map_count = 1};
	CHECK(ec1_ctx_set_network(ctx, &tsi) == EC1_OK);
	tsi.port_map = NULL;
	tsi.port_map_count = 0;
	CHECK(ec1_ctx_set_network(ctx, &tsi) == EC1_ESTATE);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "cannot go back to its default");
	struct ec1_network_config passt = {.passt_fd = 0};
	CHECK(ec1_ctx_set_network(ctx, &passt) == EC1_OK);
	CHECK(ec1_ctx_set_network(ctx, &(struct ec1_network_config){.passt_fd = -1}) == EC1_ESTATE);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "cannot go back to TSI");
	ec1_ctx_free(ctx);
}

static void libkrun_errors_keep_errno(void)
{
	struct ec1_ctx *ctx;
	use_lib("libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	struct ec1_process_config p = {.exec_path = "/fail"};
	CHECK(ec1_ctx_set_process(ctx, &p) == EC1_EBACKEND);
	CHECK(ec1_ctx_backend_errno(ctx) == -22);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "krun_set_exec: Invalid argument (-22)");
	ec1_ctx_free(ctx);
}

/*
 * No environment given: libkrun would copy the host's whole environment into the guest (its
 * krun_set_exec with envp NULL), so ec1's default goes instead, as on the builtin engine.
 */
static void libkrun_default_environment_not_the_hosts(void)
{
	struct ec1_ctx *ctx;
	use_lib("libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	take_log();
	const char *const argv[] = {"true", NULL};
	struct ec1_process_config p = {.exec_path = "/bin/true", .argv = argv};
	CHECK(ec1_ctx_set_process(ctx, &p) == EC1_OK);
	CHECK_LOG("krun_set_exec 7 /bin/true [] [PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
		  "/usr/bin:/sbin:/bin,HOME=/,TERM=linux]\n");
	ec1_ctx_free(ctx);
}

/*
 * libkrun packs the process into the guest kernel's command line, each entry in double quotes: an
 * entry with a quote, or more than fits, is refused naming it, and libkrun is not called.
 */
static void libkrun_process_must_fit_the_command_line(void)
{
	struct ec1_ctx *ctx;
	use_lib("libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	take_log();
	const char *const argv[] = {"echo", "say \"hi\"", NULL};
	struct ec1_process_config p = {.exec_path = "/bin/echo", .argv = argv};
	CHECK(ec1_ctx_set_process(ctx, &p) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "process.argv[1]: contains a double quote");
	static char big[1700];
	memset(big, 'v', sizeof(big) - 1);
	memcpy(big, "BIG=", 4);
	const char *const env[] = {"A=b", big, NULL};
	const char *const argv2[] = {"true", NULL};
	struct ec1_process_config p2 = {.exec_path = "/bin/true", .argv = argv2, .envp = env};
	CHECK(ec1_ctx_set_process(ctx, &p2) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "guest kernel's command line");
	CHECK_LOG("");
	p2.envp = NULL;
	CHECK(ec1_ctx_set_process(ctx, &p2) == EC1_OK);
	ec1_ctx_free(ctx);
}

static void libkrun_variant_table(void)
{
	struct ec1_ctx *ctx;
	int fd = -1;
	use_lib("libkrun-sev.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN_SEV, &ctx) == EC1_OK);
	/* Another library, another logger: the level goes to it too, once. */
	CHECK_LOG("krun_set_log_level 3\nkrun_create_ctx\n");
	CHECK(ec1_ctx_set_root(ctx, "/tmp") == EC1_EUNSUPPORTED);
	const char *const vols[] = {"/tmp:/mnt"};
	CHECK(ec1_ctx_set_mapped_volumes(ctx, vols, 1) == EC1_EUNSUPPORTED);
	CHECK(ec1_ctx_get_shutdown_eventfd(ctx, &fd) == EC1_EUNSUPPORTED);
	/* No TEE configuration: refused when set, and at start, not inside libkrun. */
	CHECK(ec1_ctx_set_sev(ctx, &(struct ec1_sev_config){0}) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "sev.tee_config_file: libkrun-sev needs one");
	CHECK(ec1_ctx_set_sev(ctx, &(struct ec1_sev_config){.tee_config_file = "/dev/null"}) == 0);
	CHECK_LOG("krun_set_tee_config_file 7 /dev/null\n");
	ec1_ctx_free(ctx);
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN_SEV, &ctx) == EC1_OK);
	const char *const sev_argv[] = {"true", NULL};
	CHECK(ec1_ctx_set_process(ctx, &(struct ec1_process_config){.exec_path = "/bin/true",
								    .argv = sev_argv}) == 0);
	int sev_status = -1;
	CHECK(ec1_run(ctx, &sev_status) == EC1_EINVAL);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "no TEE configuration file set");
	take_log();
	ec1_ctx_free(ctx);

	/* libkrun on Linux has no shutdown eventfd (macOS builds only): not claimed, not called. */
	use_lib("libkrun-efi.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN_EFI, &ctx) == EC1_OK);
	take_log();
	CHECK(!(ec1_backend_capabilities(EC1_BACKEND_LIBKRUN_EFI) & EC1_CAP_SHUTDOWN_FD));
	CHECK(ec1_ctx_get_shutdown_eventfd(ctx, &fd) == EC1_EUNSUPPORTED);
	CHECK(ec1_ctx_set_sev(ctx, &(struct ec1_sev_config){0}) == EC1_EUNSUPPORTED);
	CHECK_LOG("");
	ec1_ctx_free(ctx);

	use_lib("libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	CHECK(ec1_ctx_get_shutdown_eventfd(ctx, &fd) == EC1_EUNSUPPORTED);
	CHECK(ec1_ctx_set_sev(ctx, &(struct ec1_sev_config){0}) == EC1_EUNSUPPORTED);
	ec1_ctx_free(ctx);
}

static void libkrun_old_library_missing_calls(void)
{
	struct ec1_ctx *ctx;
	use_lib("libkrun-old.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	take_log();
	struct ec1_disk_config disk = {
		.block_id = "vda", .path = "/dev/null", .format = EC1_DISK_QCOW2};
	CHECK(ec1_ctx_add_disk(ctx, &disk) == EC1_EUNSUPPORTED);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "add_disk2");
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
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "add_vsock_port2 (needed for listen)");
	CHECK(ec1_ctx_add_vsock_port(ctx, 1024, "/tmp/a.sock", false) == EC1_OK);
	CHECK_LOG("krun_add_disk 7 vda /dev/null 0\nkrun_add_vsock_port 7 1024 /tmp/a.sock\n");
	ec1_ctx_free(ctx);
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
	use_lib("libkrun.so.1");
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
	use_lib("libkrun.so.1");
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
	/* Every option reaches the helper, and its socket is fd 3. */
	CHECK(strcmp(take_helper_log(),
		     "--fd 3 --operation-mode host --interface-id "
		     "0c3e5e4a-3f27-4c44-9d1e-2b6f0f8a7c11 --start-address 192.168.50.1 "
		     "--end-address 192.168.50.99 --subnet-mask 255.255.255.0 "
		     "--enable-isolation --verbose\n") == 0);
	/* libkrun gets a datagram socket whose far end is the helper, and vmnet's MAC. */
	CHECK_LOG("krun_add_net_unixgram 7 NULL dgram 0a:bb:cc:dd:ee:0f 0 0 arp=ok\n");
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
	ec1_ctx_free(ctx);
	/* Freeing the context stops the helper (which counted the frames it answered). */
	CHECK(strncmp(take_helper_log(), "stopped\n2 frames", 16) == 0);
	CHECK(process_gone(info.helper_pid));
}

static void vmnet_helpers_and_environment(void)
{
	struct ec1_ctx *ctx;
	use_lib("libkrun-efi.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN_EFI, &ctx) == EC1_OK);
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
	use_lib("libkrun.so.1");
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
	use_lib("libkrun-sev.so.1");
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
	use_lib("libkrun.so.1");
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
	CHECK_STR_CONTAINS(take_log(), "arp=ok");
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
	use_lib("libkrun-old.so.1");
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
	TEST(libkrun_maps_each_call_exactly);
	TEST(libkrun_network_passt_and_mac);
	TEST(libkrun_errors_keep_errno);
	TEST(libkrun_second_calls_leave_nothing_stale);
	TEST(libkrun_generated_mac_and_empty_port_map);
	TEST(libkrun_variant_table);
	TEST(libkrun_old_library_missing_calls);
	TEST(libkrun_default_environment_not_the_hosts);
	TEST(libkrun_process_must_fit_the_command_line);
	TEST(libkrun_absent_is_not_available);
	TEST(vmnet_helper_started_with_every_option);
	TEST(vmnet_helpers_and_environment);
	TEST(vmnet_bad_configurations);
	TEST(vmnet_misbehaving_helpers);
	TEST(vmnet_old_libkrun_says_so);
	TEST(vmnet_parses_helper_lines);
	TEST(vmnet_parse_stops_at_the_end_of_a_truncated_line);
	unlink(log_path);
	unlink(helper_log);
	return tests_failed != 0;
}
