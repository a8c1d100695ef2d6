/*
 * The libkrun backends against a fake libkrun that records each krun_* call with its arguments:
 * the exact calls and values, per variant, and what happens when a call is missing or fails.
 */
#include <stdlib.h>
#include <unistd.h>

#include "ec1/ec1.h"
#include "check.h"

static char log_path[] = "/tmp/ec1-fake-krun-XXXXXX";

static void use_lib(const char *file)
{
	static char path[4096];
	snprintf(path, sizeof(path), "%s/%s", FAKE_DIR, file);
	setenv("EC1_LIBKRUN_PATH", path, 1);
	truncate(log_path, 0);
}

/* The calls recorded since the last use_lib()/take_log(), one per line. */
static char *take_log(void)
{
	static char buf[8192];
	FILE *f = fopen(log_path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	buf[n] = 0;
	if (f)
		fclose(f);
	truncate(log_path, 0);
	return buf;
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

static void libkrun_variant_table(void)
{
	struct ec1_ctx *ctx;
	int fd = -1;
	use_lib("libkrun-sev.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN_SEV, &ctx) == EC1_OK);
	take_log();
	CHECK(ec1_ctx_set_root(ctx, "/tmp") == EC1_EUNSUPPORTED);
	const char *const vols[] = {"/tmp:/mnt"};
	CHECK(ec1_ctx_set_mapped_volumes(ctx, vols, 1) == EC1_EUNSUPPORTED);
	CHECK(ec1_ctx_get_shutdown_eventfd(ctx, &fd) == EC1_EUNSUPPORTED);
	CHECK(ec1_ctx_set_sev(ctx, &(struct ec1_sev_config){.tee_config_file = "/dev/null"}) == 0);
	CHECK_LOG("krun_set_tee_config_file 7 /dev/null\n");
	ec1_ctx_free(ctx);

	use_lib("libkrun-efi.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN_EFI, &ctx) == EC1_OK);
	take_log();
	CHECK(ec1_ctx_get_shutdown_eventfd(ctx, &fd) == EC1_OK);
	CHECK(fd >= 0);
	CHECK(ec1_ctx_set_sev(ctx, &(struct ec1_sev_config){0}) == EC1_EUNSUPPORTED);
	CHECK_LOG("krun_get_shutdown_eventfd 7\n");
	if (fd >= 0)
		close(fd);
	ec1_ctx_free(ctx);

	use_lib("libkrun.so.1");
	CHECK(ec1_ctx_new_backend(EC1_BACKEND_LIBKRUN, &ctx) == EC1_OK);
	CHECK(ec1_ctx_get_shutdown_eventfd(ctx, &fd) == EC1_EUNSUPPORTED);
	CHECK(ec1_ctx_set_sev(ctx, &(struct ec1_sev_config){0}) == EC1_EUNSUPPORTED);
	CHECK(ec1_ctx_set_vmnet_shared(ctx, NULL, 0) == EC1_EVMNET);
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
	struct ec1_kernel_config k = {.path = "/dev/null", .format = EC1_KERNEL_ELF};
	CHECK(ec1_ctx_set_kernel(ctx, &k) == EC1_EUNSUPPORTED);
	CHECK_STR_CONTAINS(ec1_ctx_message(ctx), "krun_set_kernel: not in the loaded libkrun.so.1");
	CHECK_LOG("krun_add_disk 7 vda /dev/null 0\n");
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

int main(void)
{
	int fd = mkstemp(log_path);
	if (fd < 0)
		return 1;
	close(fd);
	setenv("FAKE_KRUN_LOG", log_path, 1);
	ec1_set_log_level(EC1_LOG_INFO);
	TEST(libkrun_maps_each_call_exactly);
	TEST(libkrun_network_passt_and_mac);
	TEST(libkrun_errors_keep_errno);
	TEST(libkrun_variant_table);
	TEST(libkrun_old_library_missing_calls);
	TEST(libkrun_absent_is_not_available);
	unlink(log_path);
	return tests_failed != 0;
}
