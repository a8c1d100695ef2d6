/*
 * vmnet-helper, the portable part: its command line, starting it with a datagram socket pair
 * (its end as fd 3), reading the one JSON line it prints, and stopping it.
 *
 * vmnet-helper (macOS) exchanges raw Ethernet frames with the VMM, one per datagram, on the
 * socket it is given, and prints its interface parameters as one flat JSON object on stdout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ec1_internal.h"

#define DEFAULT_HELPER	 "/opt/vmnet-helper/bin/vmnet-helper"
#define START_TIMEOUT_MS 20000 /* vmnet_start_interface may ask macOS for permission */
#define STOP_GRACE_MS	 1000
#define LINE_MAX_BYTES	 4096

static const char *const mode_names[] = {
	[EC1_VMNET_SHARED] = "shared",
	[EC1_VMNET_BRIDGED] = "bridged",
	[EC1_VMNET_HOST] = "host",
};

const char *ec1_vmnet_helper_path(const struct ec1_vmnet_config *config, bool *configured)
{
	const char *env = getenv("EC1_VMNET_HELPER");
	*configured = true;
	if (config->helper_path)
		return config->helper_path;
	if (env && *env)
		return env;
	*configured = false;
	return DEFAULT_HELPER;
}

static bool valid_uuid(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
	if (strlen(s) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; shape[i]; i++) {
		bool hex = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
			   (s[i] >= 'A' && s[i] <= 'F');
		if (shape[i] == '-' ? s[i] != '-' : !hex)
			return false;
	}
	return true;
}

static bool valid_ipv4(const char *s)
{
	struct in_addr a;
	return inet_pton(AF_INET, s, &a) == 1;
}

int ec1_vmnet_check(struct ec1_ctx *ctx, const struct ec1_vmnet_config *c)
{
	if ((unsigned int)c->mode > EC1_VMNET_HOST)
		return ec1_fail(ctx, EC1_EINVAL, "vmnet.mode: %d: unknown", (int)c->mode);
	if (c->interface_id && !valid_uuid(c->interface_id))
		return ec1_fail(ctx, EC1_EINVAL, "vmnet.interface_id: \"%s\": expected a UUID",
				c->interface_id);
	const struct {
		const char *name, *value;
	} addrs[] = {{"start_address", c->start_address},
		     {"end_address", c->end_address},
		     {"subnet_mask", c->subnet_mask}};
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		if (addrs[i].value && !valid_ipv4(addrs[i].value))
			return ec1_fail(ctx, EC1_EINVAL,
					"vmnet.%s: \"%s\": expected an IPv4 address", addrs[i].name,
					addrs[i].value);
		if (addrs[i].value && c->mode == EC1_VMNET_BRIDGED)
			return ec1_fail(ctx, EC1_EINVAL,
					"vmnet.%s: not used in bridged mode (the physical "
					"network assigns addresses)",
					addrs[i].name);
	}
	if ((c->start_address != NULL) != (c->end_address != NULL))
		return ec1_fail(ctx, EC1_EINVAL,
				"vmnet.start_address, vmnet.end_address: give both or neither");
	if (c->mode == EC1_VMNET_BRIDGED) {
		if (!c->shared_interface || !*c->shared_interface)
			return ec1_fail(ctx, EC1_EINVAL,
					"vmnet.shared_interface: required in bridged mode");
		if (strlen(c->shared_interface) > 15 || strchr(c->shared_interface, '/'))
			return ec1_fail(ctx, EC1_EINVAL,
					"vmnet.shared_interface: \"%s\": not an interface name",
					c->shared_interface);
	} else if (c->shared_interface) {
		return ec1_fail(ctx, EC1_EINVAL, "vmnet.shared_interface: only in bridged mode");
	}
	if (c->enable_isolation && c->mode != EC1_VMNET_HOST)
		return ec1_fail(ctx, EC1_EINVAL, "vmnet.enable_isolation: only in host mode");
	if (c->port_map_count)
		return ec1_fail(ctx, EC1_EUNSUPPORTED,
				"vmnet.port_map: on vmnet the guest has its own address (see "
				"ec1_ctx_get_vmnet_info); port maps work only on the default "
				"network");
	return EC1_OK;
}

size_t ec1_vmnet_helper_argv(const struct ec1_vmnet_config *c, const char *helper,
			     const char *argv[EC1_VMNET_MAX_ARGS])
{
	size_t n = 0;
	argv[n++] = helper;
	argv[n++] = "--fd";
	argv[n++] = "3";
	argv[n++] = "--operation-mode";
	argv[n++] = mode_names[c->mode];
	const struct {
		const char *opt, *value;
	} opts[] = {
		{"--interface-id", c->interface_id},	     {"--start-address", c->start_address},
		{"--end-address", c->end_address},	     {"--subnet-mask", c->subnet_mask},
		{"--shared-interface", c->shared_interface},
	};
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		if (opts[i].value) {
			argv[n++] = opts[i].opt;
			argv[n++] = opts[i].value;
		}
	}
	if (c->enable_isolation)
		argv[n++] = "--enable-isolation";
	if (c->verbose)
		argv[n++] = "--verbose";
	argv[n] = NULL;
	return n;
}

/* A JSON string at *p, unescaped into out; -1 if malformed or too long. */
static int json_string(const char **p, char *out, size_t size)
{
	const char *s = *p;
	size_t n = 0;
	if (*s++ != '"')
		return -1;
	while (*s != '"') {
		char ch = *s++;
		if (ch == 0 || (unsigned char)ch < 0x20)
			return -1;
		if (ch == '\\') {
			ch = *s++;
			switch (ch) {
			case '"':
			case '\\':
			case '/':
				break;
			case 'n':
				ch = '\n';
				break;
			case 't':
				ch = '\t';
				break;
			default:
				return -1; /* \\u and the rest: vmnet-helper prints none */
			}
		}
		if (n + 1 >= size)
			return -1;
		out[n++] = ch;
	}
	out[n] = 0;
	*p = s + 1;
	return 0;
}

static void skip_space(const char **p)
{
	while (**p == ' ' || **p == '\t' || **p == '\r' || **p == '\n')
		(*p)++;
}

/* Steps over c when it comes next; false (and *p unmoved) otherwise. */
static bool json_expect(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

/*
 * The next "key": value pair of a flat JSON object; *p points into the text. Values: strings
 * (unescaped into val), numbers, true, false, null (copied as written). Returns 1 for a pair,
 * 0 at the closing brace, -1 on anything else (nested values included).
 */
static int json_next(const char **p, bool first, char *key, size_t key_size, char *val,
		     size_t val_size)
{
	skip_space(p);
	if (**p == '}') {
		(*p)++;
		return 0;
	}
	/* A mismatch, the end of the text included, leaves *p where it was (never past the NUL). */
	if (!first && !json_expect(p, ','))
		return -1;
	skip_space(p);
	if (json_string(p, key, key_size) < 0)
		return -1;
	skip_space(p);
	if (!json_expect(p, ':'))
		return -1;
	skip_space(p);
	if (**p == '"')
		return json_string(p, val, val_size) < 0 ? -1 : 1;
	size_t n = strspn(*p, "0123456789+-.eEtruefalsn");
	if (n == 0 || n >= val_size)
		return -1;
	memcpy(val, *p, n);
	val[n] = 0;
	*p += n;
	return 1;
}

static bool parse_mac(const char *s, uint8_t mac[6])
{
	for (int i = 0; i < 6; i++) {
		char *end;
		if (!((s[0] >= '0' && s[0] <= '9') || (s[0] >= 'a' && s[0] <= 'f') ||
		      (s[0] >= 'A' && s[0] <= 'F')))
			return false;
		unsigned long v = strtoul(s, &end, 16);
		if (end - s > 2 || v > 0xff || *end != (i == 5 ? 0 : ':'))
			return false;
		mac[i] = (uint8_t)v;
		s = end + (i < 5);
	}
	return true;
}

static bool parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		return false;
	*out = (uint32_t)v;
	return true;
}

int ec1_vmnet_parse(const char *line, struct ec1_vmnet_info *info, char *err, size_t err_size)
{
	char key[64], val[256];
	const char *p = line;
	bool have_mac = false, have_mtu = false;
	memset(info, 0, sizeof(*info));
	info->fd = -1;
	skip_space(&p);
	if (!json_expect(&p, '{')) {
		snprintf(err, err_size, "not a JSON object");
		return -1;
	}
	int r;
	for (bool first = true; (r = json_next(&p, first, key, sizeof(key), val, sizeof(val))) == 1;
	     first = false) {
		struct {
			const char *key;
			char *dst;
			size_t size;
			bool ipv4;
		} strs[] = {
			{"vmnet_start_address", info->start_address, sizeof(info->start_address),
			 1},
			{"vmnet_end_address", info->end_address, sizeof(info->end_address), 1},
			{"vmnet_subnet_mask", info->subnet_mask, sizeof(info->subnet_mask), 1},
			{"vmnet_interface_id", info->interface_id, sizeof(info->interface_id), 0},
			{"vmnet_nat66_prefix", info->nat66_prefix, sizeof(info->nat66_prefix), 0},
		};
		bool known = false;
		for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]) && !known; i++) {
			if (strcmp(key, strs[i].key) != 0)
				continue;
			known = true;
			if (strlen(val) >= strs[i].size || (strs[i].ipv4 && !valid_ipv4(val))) {
				snprintf(err, err_size, "%s: \"%s\": not valid", key, val);
				return -1;
			}
			strcpy(strs[i].dst, val);
		}
		if (known)
			continue;
		if (strcmp(key, "vmnet_mac_address") == 0) {
			if (!parse_mac(val, info->mac)) {
				snprintf(err, err_size, "%s: \"%s\": not a MAC address", key, val);
				return -1;
			}
			snprintf(info->mac_address, sizeof(info->mac_address),
				 "%02x:%02x:%02x:%02x:%02x:%02x", info->mac[0], info->mac[1],
				 info->mac[2], info->mac[3], info->mac[4], info->mac[5]);
			have_mac = true;
		} else if (strcmp(key, "vmnet_mtu") == 0) {
			if (!parse_u32(val, 68, 65535, &info->mtu)) {
				snprintf(err, err_size, "%s: %s: not an MTU", key, val);
				return -1;
			}
			have_mtu = true;
		} else if (strcmp(key, "vmnet_max_packet_size") == 0) {
			if (!parse_u32(val, 64, 65535 + 14, &info->max_packet_size)) {
				snprintf(err, err_size, "%s: %s: not a packet size", key, val);
				return -1;
			}
		}
	}
	skip_space(&p);
	if (r < 0 || *p) {
		snprintf(err, err_size, "malformed JSON near offset %zu", (size_t)(p - line));
		return -1;
	}
	if (!have_mac || !have_mtu) {
		snprintf(err, err_size, "no %s", have_mac ? "vmnet_mtu" : "vmnet_mac_address");
		return -1;
	}
	return 0;
}

void ec1_vmnet_stop(struct ec1_vmnet *v)
{
	ec1_child_stop(v->pid, STOP_GRACE_MS);
	if (v->fd >= 0)
		close(v->fd);
	if (v->out_fd >= 0)
		close(v->out_fd);
	memset(v, 0, sizeof(*v));
	v->fd = v->out_fd = -1;
}

/* Reads the helper's first line, waiting at most timeout_ms. */
static int read_line(struct ec1_ctx *ctx, struct ec1_vmnet *v, const char *helper, char *line,
		     long timeout_ms)
{
	size_t n = 0;
	long deadline = ec1_now_ms() + timeout_ms;
	for (;;) {
		long left = deadline - ec1_now_ms();
		struct pollfd pfd = {.fd = v->out_fd, .events = POLLIN};
		int r = left > 0 ? poll(&pfd, 1, (int)left) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return ec1_fail(ctx, EC1_EVMNET,
					"vmnet: %s: no configuration line within %ld ms", helper,
					timeout_ms);
		ssize_t got = read(v->out_fd, line + n, LINE_MAX_BYTES - 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			int status = 0;
			bool reaped = ec1_reap_within(v->pid, 1000, &status);
			if (reaped)
				v->pid = 0;
			if (reaped && WIFEXITED(status))
				return ec1_fail(ctx, EC1_EVMNET,
						"vmnet: %s: exited with status %d before "
						"reporting its configuration",
						helper, WEXITSTATUS(status));
			return ec1_fail(ctx, EC1_EVMNET,
					"vmnet: %s: ended before reporting its configuration",
					helper);
		}
		n += (size_t)got;
		line[n] = 0;
		char *nl = strchr(line, '\n');
		if (nl) {
			*nl = 0;
			return EC1_OK;
		}
		if (n >= LINE_MAX_BYTES - 1)
			return ec1_fail(ctx, EC1_EVMNET, "vmnet: %s: configuration line too long",
					helper);
	}
}

int ec1_vmnet_start(struct ec1_ctx *ctx, const struct ec1_vmnet_config *config, const char *helper,
		    struct ec1_vmnet *v)
{
	const char *argv[EC1_VMNET_MAX_ARGS];
	ec1_vmnet_helper_argv(config, helper, argv);
	memset(v, 0, sizeof(*v));
	v->fd = v->out_fd = -1;
	if (access(helper, X_OK) < 0)
		return ec1_fail(ctx, EC1_EVMNET, "vmnet.helper_path: %s: %s", helper,
				strerror(errno));
	int sv[2], out[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0)
		return ec1_fail(ctx, EC1_EVMNET, "vmnet: socketpair: %s", strerror(errno));
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(sv[0]);
		close(sv[1]);
		return ec1_fail(ctx, EC1_EVMNET, "vmnet: pipe: %s", strerror(errno));
	}
	int null_fd = ec1_high_fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
	int helper_fd = ec1_high_fd(sv[1]), out_w = ec1_high_fd(out[1]);
	v->fd = ec1_high_fd(sv[0]);
	v->out_fd = out[0];
	if (null_fd < 0 || helper_fd < 0 || out_w < 0 || v->fd < 0) {
		int e = errno;
		close(null_fd);
		close(helper_fd);
		close(out_w);
		ec1_vmnet_stop(v);
		return ec1_fail(ctx, EC1_EVMNET, "vmnet: %s", strerror(e));
	}
	pid_t pid = fork();
	if (pid == 0) {
		/* Only async-signal-safe calls from here to exec. */
		ec1_child_reset();
		if (dup2(null_fd, 0) < 0 || dup2(out_w, 1) < 0 || dup2(helper_fd, 3) < 0)
			_exit(127);
		execv(helper, (char *const *)argv);
		_exit(127);
	}
	int e = errno;
	close(null_fd);
	close(helper_fd);
	close(out_w);
	if (pid < 0) {
		ec1_vmnet_stop(v);
		return ec1_fail(ctx, EC1_EVMNET, "vmnet: fork: %s", strerror(e));
	}
	v->pid = pid;
	const char *t = getenv("EC1_VMNET_START_TIMEOUT_MS");
	long timeout = t && *t ? atol(t) : START_TIMEOUT_MS;
	char line[LINE_MAX_BYTES], why[160];
	int err = read_line(ctx, v, helper, line, timeout > 0 ? timeout : START_TIMEOUT_MS);
	if (!err && ec1_vmnet_parse(line, &v->info, why, sizeof(why)) < 0)
		err = ec1_fail(ctx, EC1_EVMNET, "vmnet: %s: bad configuration line: %s", helper,
			       why);
	if (err) {
		ec1_vmnet_stop(v);
		return err;
	}
	v->info.helper_pid = (int)pid;
	v->info.fd = v->fd;
	return EC1_OK;
}
