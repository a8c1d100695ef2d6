/* ec1: the command-line tool. `ec1 run [options] -- CMD [ARGS...]` */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char run_usage[] =
	"usage: ec1 run [options] [--] CMD [ARGS...]\n"
	"Boots a microVM, runs CMD in it with this terminal's stdin, stdout and stderr, and exits\n"
	"with CMD's exit status (125: ec1 or the guest's init failed; 126: CMD not executable;\n"
	"127: CMD not found; 128+N: CMD killed by signal N).\n"
	"\n"
	"options:\n"
	"  -c, --cpus N          virtual CPUs, 1..64 (default 1)\n"
	"  -m, --mem MIB         guest RAM in MiB, 32..65536 (default 512)\n"
	"  -k, --kernel PATH     guest kernel: vmlinux (PVH) or bzImage (default: ec1's own "
	"kernel;\n"
	"                        environment EC1_KERNEL)\n"
	"  -i, --initramfs PATH  base root file system, a newc cpio archive (default: ec1's "
	"busybox\n"
	"                        root; environment EC1_INITRAMFS). ec1's init is added to it.\n"
	"      --cmdline STR     extra kernel command-line arguments\n"
	"  -e, --env K=V         environment variable for CMD (repeatable; added to PATH, HOME, "
	"TERM)\n"
	"  -w, --workdir DIR     working directory of CMD in the guest (default /)\n"
	"  -r, --root DIR        the guest's / is this host directory (virtio-fs; ec1's init is\n"
	"                        not written into it)\n"
	"      --root-options OPTS  ro (refuse writes) and/or guest-ids (keep the guest's\n"
	"                        owners and setuid bits on host files), comma-separated\n"
	"  -V, --volume HOST:GUEST[:OPTS]  mount host directory HOST at GUEST in the guest,\n"
	"                        creating GUEST if needed; OPTS as --root-options (repeatable).\n"
	"                        By default files the guest makes belong to the directory's\n"
	"                        owner, chown to others fails, setuid bits are dropped\n"
	"  -s, --share TAG:DIR   offer DIR as virtio-fs TAG for the guest to mount itself:\n"
	"                        mount -t virtiofs TAG /mnt (repeatable)\n"
	"  -d, --disk PATH[,id=ID][,format=raw|qcow2][,ro][,mount=GUEST][,fstype=FS][,part=N]\n"
	"             [,backing][,direct][,sync=none|full]  give the guest the image PATH as a\n"
	"                        virtio disk (repeatable);\n"
	"                        id: its serial in the guest (default disk0, disk1, ...);\n"
	"                        format: detected from the header when not given (a named one\n"
	"                        must agree); ro: read-only; mount: init mounts it at GUEST\n"
	"                        (file system detected, or fstype), its partition N (1..128)\n"
	"                        with part; backing: a qcow2 image may name a backing file\n"
	"                        (refused otherwise); direct: O_DIRECT, past the host's page\n"
	"                        cache; sync=none: the guest's flushes are not made (scratch\n"
	"                        disks: lost if the host crashes)\n"
	"      --root-disk PATH[,format=F][,ro][,fstype=FS][,part=N][,backing][,direct]\n"
	"             [,sync=none|full]  the guest's / is the file system on the image\n"
	"                        PATH (or its partition N: a cloud image's root is usually\n"
	"                        part=1; id root); not with --root\n"
	"  -t, --timeout SEC     stop the VM and fail after SEC seconds (default: no limit)\n"
	"  -b, --backend NAME    builtin, libkrun, libkrun-sev, libkrun-efi or stub\n"
	"      --tee-config FILE  the TEE configuration of an SEV guest (libkrun-sev needs one)\n"
	"                        (default: environment EC1_BACKEND, else builtin)\n"
	"      --timing          print where the time went: VMM set-up, kernel, init, CMD, "
	"teardown\n"
	"                        (environment EC1_TIMING=1)\n"
	"      --console         copy the guest kernel's console to stderr (EC1_CONSOLE=1)\n"
	"      --net nat         the default network (builtin): user-mode NAT, the guest\n"
	"                        10.0.2.15/24, 10.0.2.2 the host's loopback, 10.0.2.3 its DNS\n"
	"      --net nat:restricted  the NAT, but the guest reaches nothing (no host, no DNS)\n"
	"                        beyond its published ports and --allow\n"
	"      --allow ADDR:PORT[/udp]  with nat:restricted, a destination the guest may\n"
	"                        reach (as it sees it: 10.0.2.2 is the host); repeatable\n"
	"      --net none        no network\n"
	"      --net passt       passt (Debian's passt) started for the run: the guest has the\n"
	"                        host's address and DNS, the host's services at the gateway\n"
	"      --net fd:N        a network over descriptor N, a connected stream socket in\n"
	"                        passt's framing (passt --fd, QEMU -netdev stream)\n"
	"      --net gvproxy:PATH  gvproxy's vfkit socket (gvproxy -listen-vfkit unixgram://PATH)\n"
	"      --net tap:IFACE   a network through the host TAP interface IFACE (attached to,\n"
	"                        or created for the run)\n"
	"                        with passt, fd:, gvproxy:, tap: or --vmnet the guest asks the\n"
	"                        network's DHCP server for its address, unless --ip says it\n"
	"      --ip ADDR/PREFIX[,gw=ADDR][,dns=ADDR]  the guest's fixed IPv4 set-up (not NAT)\n"
	"  -p, --publish [ADDR:]HOST:GUEST[/udp]  the guest's port GUEST at the host's ADDR\n"
	"                        (default 127.0.0.1; with passt also IPv6 in brackets, [::1])\n"
	"                        port HOST, TCP unless /udp; repeatable; with the NAT or passt\n"
	"      --mac MAC         the guest's MAC address (default: a random local one)\n"
	"      --vsock PORT:PATH[,listen]  the guest's vsock port PORT and the host unix\n"
	"                        socket PATH: the guest connects to a server there, or, with\n"
	"                        listen, ec1 listens there for the guest's server; repeatable\n"
	"      --vsock-uds PATH  Firecracker's hybrid vsock: host clients connect to PATH and\n"
	"                        say \"CONNECT PORT\", the guest's connections to other ports\n"
	"                        reach PATH_PORT\n"
	"      --vmnet MODE      vmnet network through vmnet-helper (macOS; elsewhere a helper\n"
	"                        that speaks its protocol): shared, host, host-isolated or\n"
	"                        bridged:IFACE\n"
	"      --vmnet-helper PATH  the helper (default /opt/vmnet-helper/bin/vmnet-helper;\n"
	"                        environment EC1_VMNET_HELPER); needed off macOS\n"
	"  -v, --verbose         more log output (repeat for debug)\n"
	"  -h, --help            this help\n";

static const char main_usage[] =
	"usage: ec1 COMMAND ...\n"
	"commands:\n"
	"  run [options] -- CMD [ARGS...]   run CMD in a new microVM (ec1 run --help)\n"
	"  start --name NAME [options] [-- CMD...]  boot a VM that stays up (ec1 start --help)\n"
	"  exec [-i] [-t] [-e K=V] [-w DIR] NAME -- CMD [ARGS...]  run CMD in VM NAME\n"
	"  ls                               the VMs started, and their state\n"
	"  stop [-t SEC] NAME               stop VM NAME (SIGTERM, SIGKILL after SEC)\n"
	"  logs [-f] NAME                   what VM NAME's own process and init wrote\n"
	"  variants                         backends and what each offers on this machine\n"
	"  version                          print the version\n";

/* SIGINT, SIGTERM, SIGHUP: ask the guest for an orderly shutdown (SIGTERM to CMD, then SIGKILL). */
static int shutdown_fd = -1;

static void on_signal(int sig)
{
	uint64_t one = 1;
	(void)sig;
	if (write(shutdown_fd, &one, sizeof(one)) < 0)
		_exit(EXIT_EC1_ERROR);
}

static void forward_signals(struct ec1_ctx *ctx)
{
	if (ec1_ctx_get_shutdown_eventfd(ctx, &shutdown_fd) != EC1_OK)
		return; /* backends without it: the default dispositions stay */
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static int fail(struct ec1_ctx *ctx, int code)
{
	const char *msg = ctx ? ec1_ctx_message(ctx) : "";
	fprintf(stderr, "ec1: %s\n", *msg ? msg : ec1_strerror(code));
	ec1_ctx_free(ctx);
	return EXIT_EC1_ERROR;
}

int parse_uint(const char *opt, const char *s, unsigned long min, unsigned long max,
	       unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max || *s == '-') {
		fprintf(stderr, "ec1: %s: \"%s\": expected a number %lu..%lu\n", opt, s, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

/* Appends item to a NULL-terminated list. */
static int add_item(const char ***list, size_t *n, const char *item)
{
	const char **grown = realloc(*list, (*n + 2) * sizeof(char *));
	if (!grown) {
		fprintf(stderr, "ec1: out of memory\n");
		return -1;
	}
	grown[(*n)++] = item;
	grown[*n] = NULL;
	*list = grown;
	return 0;
}

/* Adds K=V to env, replacing an earlier K. */
static int add_env(const char ***env, size_t *n, const char *kv)
{
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv) {
		fprintf(stderr, "ec1: --env: \"%s\": expected K=V\n", kv);
		return -1;
	}
	for (size_t i = 0; i < *n; i++) {
		if (strncmp((*env)[i], kv, (size_t)(eq - kv) + 1) == 0) {
			(*env)[i] = kv;
			return 0;
		}
	}
	return add_item(env, n, kv);
}

/* --vmnet MODE: shared, host, host-isolated, bridged:IFACE. */
/* --vsock PORT:PATH[,listen] */
struct vsock_arg {
	uint32_t port;
	char path[256];
	bool listen;
};

static int parse_vsock(const char *s, struct vsock_arg *a)
{
	char *end;
	errno = 0;
	unsigned long port = strtoul(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || errno || *end != ':' || !end[1] || port == 0 ||
	    port >= UINT32_MAX) {
		fprintf(stderr,
			"ec1: --vsock: \"%s\": expected PORT:PATH[,listen], PORT 1..4294967294\n",
			s);
		return -1;
	}
	const char *path = end + 1, *comma = strrchr(path, ',');
	a->port = (uint32_t)port;
	a->listen = comma && strcmp(comma, ",listen") == 0;
	size_t len = a->listen ? (size_t)(comma - path) : strlen(path);
	if (!len || len >= sizeof(a->path)) {
		fprintf(stderr, "ec1: --vsock: \"%s\": the path is empty or too long\n", s);
		return -1;
	}
	memcpy(a->path, path, len);
	a->path[len] = 0;
	return 0;
}

static int parse_vmnet(const char *s, struct ec1_vmnet_config *c)
{
	if (strcmp(s, "shared") == 0) {
		c->mode = EC1_VMNET_SHARED;
	} else if (strcmp(s, "host") == 0 || strcmp(s, "host-isolated") == 0) {
		c->mode = EC1_VMNET_HOST;
		c->enable_isolation = strcmp(s, "host-isolated") == 0;
	} else if (strncmp(s, "bridged:", 8) == 0 && s[8]) {
		c->mode = EC1_VMNET_BRIDGED;
		c->shared_interface = s + 8;
	} else {
		fprintf(stderr,
			"ec1: --vmnet: \"%s\": expected shared, host, host-isolated or "
			"bridged:IFACE\n",
			s);
		return -1;
	}
	return 0;
}

/* --ip ADDR/PREFIX[,gw=ADDR][,dns=ADDR]: split here, checked by the library. */
struct ip_arg {
	char buf[128];
	const char *cidr, *gateway, *dns;
};

static int parse_ip(const char *s, struct ip_arg *ip)
{
	if (strlen(s) >= sizeof(ip->buf)) {
		fprintf(stderr, "ec1: --ip: \"%s\": too long\n", s);
		return -1;
	}
	memcpy(ip->buf, s, strlen(s) + 1);
	ip->gateway = ip->dns = NULL;
	char *save = NULL;
	ip->cidr = strtok_r(ip->buf, ",", &save);
	for (char *o; (o = strtok_r(NULL, ",", &save));) {
		if (strncmp(o, "gw=", 3) == 0)
			ip->gateway = o + 3;
		else if (strncmp(o, "dns=", 4) == 0)
			ip->dns = o + 4;
		else {
			fprintf(stderr, "ec1: --ip: \"%s\": unknown option (gw=ADDR, dns=ADDR)\n",
				o);
			return -1;
		}
	}
	if (!ip->cidr) {
		fprintf(stderr, "ec1: --ip: expected ADDR/PREFIX[,gw=ADDR][,dns=ADDR]\n");
		return -1;
	}
	return 0;
}

/* A --disk or --root-disk: PATH, then comma-separated options. */
struct disk_arg {
	char id[EC1_MAX_BLOCK_ID_LEN + 1];
	char *path, *mount, *fstype;
	unsigned int flags; /* EC1_DISK_* */
	unsigned int part;  /* 0: the whole disk */
	struct ec1_disk_config config;
	char buf[4096];
};

static int parse_disk(const char *opt, const char *s, unsigned int index, bool root,
		      struct disk_arg *d)
{
	if (snprintf(d->buf, sizeof(d->buf), "%s", s) >= (int)sizeof(d->buf)) {
		fprintf(stderr, "ec1: %s: \"%s\": too long\n", opt, s);
		return -1;
	}
	snprintf(d->id, sizeof(d->id), root ? "root" : "disk%u", index);
	char *save, *f = strtok_r(d->buf, ",", &save);
	d->path = f;
	d->mount = root ? "/" : NULL;
	d->fstype = NULL;
	d->flags = 0;
	d->part = 0;
	bool format_given = false;
	d->config = (struct ec1_disk_config){.path = f};
	if (!f || !*f) {
		fprintf(stderr, "ec1: %s: \"%s\": expected PATH[,options]\n", opt, s);
		return -1;
	}
	while ((f = strtok_r(NULL, ",", &save))) {
		if (strncmp(f, "id=", 3) == 0 && !root && strlen(f + 3) < sizeof(d->id)) {
			snprintf(d->id, sizeof(d->id), "%s", f + 3);
		} else if (strcmp(f, "format=raw") == 0 || strcmp(f, "format=qcow2") == 0) {
			d->config.format =
				strcmp(f, "format=raw") == 0 ? EC1_DISK_RAW : EC1_DISK_QCOW2;
			format_given = true;
		} else if (strcmp(f, "ro") == 0) {
			d->config.read_only = true;
		} else if (strcmp(f, "backing") == 0) {
			d->flags |= EC1_DISK_ALLOW_BACKING;
		} else if (strcmp(f, "direct") == 0) {
			d->flags |= EC1_DISK_DIRECT_IO;
		} else if (strcmp(f, "sync=none") == 0) {
			d->flags |= EC1_DISK_NO_FLUSH;
		} else if (strcmp(f, "sync=full") == 0 || strcmp(f, "sync=relaxed") == 0) {
			d->flags &= ~EC1_DISK_NO_FLUSH; /* relaxed is full on Linux, as libkrun's */
		} else if (strncmp(f, "mount=", 6) == 0 && !root) {
			d->mount = f + 6;
		} else if (strncmp(f, "fstype=", 7) == 0) {
			d->fstype = f + 7;
		} else if (strncmp(f, "part=", 5) == 0) {
			char *end;
			unsigned long n = strtoul(f + 5, &end, 10);
			if (f[5] < '1' || f[5] > '9' || *end || n > 128) {
				fprintf(stderr, "ec1: %s: \"%s\": part=N: N is 1..128 (%s)\n", opt,
					s, f + 5);
				return -1;
			}
			d->part = (unsigned int)n;
		} else {
			fprintf(stderr,
				"ec1: %s: \"%s\": unknown option \"%s\" (expected "
				"%sformat=raw|qcow2, "
				"ro%s, fstype=FS, part=N, backing, direct, sync=none|full)\n",
				opt, s, f, root ? "" : "id=ID (1..20 bytes), ",
				root ? "" : ", mount=GUEST");
			return -1;
		}
	}
	if ((d->part || d->fstype) && !d->mount) {
		fprintf(stderr, "ec1: %s: \"%s\": %s mount= mounts: give mount\n", opt, s,
			d->part ? "part=N says which partition"
				: "fstype=FS names the file system");
		return -1;
	}
	d->config.block_id = d->id;
	enum ec1_disk_format found;
	struct stat st;
	if (stat(d->path, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
		fprintf(stderr, "ec1: %s: %s: a %s, not a disk image\n", opt, d->path,
			S_ISFIFO(st.st_mode) ? "FIFO or pipe" : "socket");
		return -1;
	}
	if (ec1_disk_detect_format(d->path, &found) != EC1_OK) {
		fprintf(stderr, "ec1: %s: %s: %s\n", opt, d->path, strerror(errno));
		return -1;
	}
	if (format_given && found != d->config.format) {
		fprintf(stderr,
			"ec1: %s: %s: format=%s, but the image's header says %s (name the format "
			"the image has)\n",
			opt, d->path, d->config.format == EC1_DISK_QCOW2 ? "qcow2" : "raw",
			found == EC1_DISK_QCOW2 ? "qcow2" : "raw");
		return -1;
	}
	d->config.format = found;
	return 0;
}

/*
 * ec1 run, and ec1 start's VMM process (start_dir: its directory under the run directory): the
 * options to a context; then the run, or a start and the wait for its end.
 */
/*
 * What the kernel file is: a bzImage ("HdrS" at 0x202, the boot protocol's), else ELF. Only a
 * regular file is read (a FIFO would be waited on): of anything else the library names the path
 * and the reason.
 */
static enum ec1_kernel_format kernel_format(const char *path)
{
	char magic[4] = {0};
	struct stat st;
	if (stat(path, &st) || !S_ISREG(st.st_mode))
		return EC1_KERNEL_ELF;
	FILE *f = fopen(path, "rbe");
	if (!f)
		return EC1_KERNEL_ELF;
	bool bz = fseek(f, 0x202, SEEK_SET) == 0 && fread(magic, 1, 4, f) == 4 &&
		  memcmp(magic, "HdrS", 4) == 0;
	fclose(f);
	return bz ? EC1_KERNEL_BZIMAGE : EC1_KERNEL_ELF;
}

int vm_command(int argc, char **argv, const char *start_dir)
{
	static const struct option opts[] = {
		{"cpus", required_argument, NULL, 'c'},
		{"mem", required_argument, NULL, 'm'},
		{"kernel", required_argument, NULL, 'k'},
		{"initramfs", required_argument, NULL, 'i'},
		{"cmdline", required_argument, NULL, 'C'},
		{"env", required_argument, NULL, 'e'},
		{"workdir", required_argument, NULL, 'w'},
		{"root", required_argument, NULL, 'r'},
		{"volume", required_argument, NULL, 'V'},
		{"root-options", required_argument, NULL, 'R'},
		{"share", required_argument, NULL, 's'},
		{"disk", required_argument, NULL, 'd'},
		{"root-disk", required_argument, NULL, 'D'},
		{"timeout", required_argument, NULL, 't'},
		{"backend", required_argument, NULL, 'b'},
		{"timing", no_argument, NULL, 'T'},
		{"console", no_argument, NULL, 'K'},
		{"vmnet", required_argument, NULL, 'N'},
		{"net", required_argument, NULL, 'n'},
		{"publish", required_argument, NULL, 'p'},
		{"allow", required_argument, NULL, 'A'},
		{"vsock", required_argument, NULL, 'Z'},
		{"vsock-uds", required_argument, NULL, 'U'},
		{"tee-config", required_argument, NULL, 'E'},
		{"mac", required_argument, NULL, 'M'},
		{"ip", required_argument, NULL, 'I'},
		{"vmnet-helper", required_argument, NULL, 'H'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"name", required_argument, NULL, 'Q'},
		{NULL, 0, NULL, 0},
	};
	const char *usage = start_dir ? start_usage : run_usage;
	struct ec1_vm_config vm = {.num_vcpus = 1, .ram_mib = 512};
	struct ec1_kernel_config kernel = {.format = EC1_KERNEL_ELF};
	const char **env = NULL, **volumes = NULL, **shares = NULL;
	size_t nenv = 0, nvolumes = 0, nshares = 0;
	const char *root = NULL;
	unsigned int root_flags = 0;
	const char *workdir = NULL, *backend_name = NULL;
	double timeout_s = 0;
	bool timing = false, console = false, vmnet = false;
	struct ec1_vmnet_config vmnet_config = {0};
	struct ec1_network_config net = {.passt_fd = -1};
	bool net_on = false;
	const char *tap = NULL, *net_mode = NULL; /* "nat", "nat:restricted", "none", or NULL */
	const char **publish = NULL, **allow = NULL, **vsocks = NULL, *vsock_uds = NULL,
		   *tee_config = NULL;
	size_t npublish = 0, nallow = 0, nvsocks = 0;
	uint8_t mac[6];
	struct ip_arg ip = {0};
	int verbose = 0, c;
	unsigned long v;
	struct disk_arg disks[EC1_MAX_DISKS];
	unsigned int ndisks = 0, nplain = 0;
	bool root_disk = false;

	static const char *const defaults[] = {
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/",
		"TERM=linux"};
	for (size_t i = 0; i < 3; i++)
		if (add_env(&env, &nenv, defaults[i]))
			return EXIT_EC1_ERROR;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+c:m:k:i:e:w:r:V:s:d:t:b:p:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (parse_uint("--cpus", optarg, 1, EC1_MAX_VCPUS, &v))
				return EXIT_EC1_ERROR;
			vm.num_vcpus = (uint8_t)v;
			break;
		case 'm':
			if (parse_uint("--mem", optarg, EC1_MIN_RAM_MIB, EC1_MAX_RAM_MIB, &v))
				return EXIT_EC1_ERROR;
			vm.ram_mib = (uint32_t)v;
			break;
		case 'k':
			kernel.path = optarg;
			break;
		case 'i':
			kernel.initramfs = optarg;
			break;
		case 'C':
			kernel.cmdline = optarg;
			break;
		case 'e':
			if (add_env(&env, &nenv, optarg))
				return EXIT_EC1_ERROR;
			break;
		case 'w':
			workdir = optarg;
			break;
		case 'r':
			root = optarg;
			break;
		case 'R':
			if (ec1_share_flags_parse(optarg, &root_flags) < 0) {
				fprintf(stderr,
					"ec1: --root-options: \"%s\": expected a comma-separated "
					"list "
					"of ro, rw, guest-ids\n",
					optarg);
				return EXIT_EC1_ERROR;
			}
			break;
		case 'V':
			if (add_item(&volumes, &nvolumes, optarg))
				return EXIT_EC1_ERROR;
			break;
		case 's':
			if (!strchr(optarg, ':') || optarg[0] == ':') {
				fprintf(stderr, "ec1: --share: \"%s\": expected TAG:DIR\n", optarg);
				return EXIT_EC1_ERROR;
			}
			if (add_item(&shares, &nshares, optarg))
				return EXIT_EC1_ERROR;
			break;
		case 'd':
		case 'D':
			if (ndisks == EC1_MAX_DISKS) {
				fprintf(stderr, "ec1: --disk: at most %d disks\n", EC1_MAX_DISKS);
				return EXIT_EC1_ERROR;
			}
			if (c == 'D' && root_disk) {
				fprintf(stderr, "ec1: --root-disk: given twice\n");
				return EXIT_EC1_ERROR;
			}
			if (parse_disk(c == 'd' ? "--disk" : "--root-disk", optarg,
				       c == 'd' ? nplain++ : 0, c == 'D', &disks[ndisks]))
				return EXIT_EC1_ERROR;
			root_disk |= c == 'D';
			ndisks++;
			break;
		case 't': {
			char *end;
			timeout_s = strtod(optarg, &end);
			if (end == optarg || *end || timeout_s <= 0 || timeout_s > 4e6) {
				fprintf(stderr, "ec1: --timeout: \"%s\": expected seconds > 0\n",
					optarg);
				return EXIT_EC1_ERROR;
			}
			break;
		}
		case 'b':
			backend_name = optarg;
			break;
		case 'T':
			timing = true;
			break;
		case 'K':
			console = true;
			break;
		case 'N':
			if (parse_vmnet(optarg, &vmnet_config))
				return EXIT_EC1_ERROR;
			vmnet = true;
			break;
		case 'H':
			vmnet_config.helper_path = optarg;
			break;
		case 'p':
			if (add_item(&publish, &npublish, optarg))
				return EXIT_EC1_ERROR;
			break;
		case 'A':
			if (add_item(&allow, &nallow, optarg))
				return EXIT_EC1_ERROR;
			break;
		case 'Z':
			if (add_item(&vsocks, &nvsocks, optarg))
				return EXIT_EC1_ERROR;
			break;
		case 'U':
			vsock_uds = optarg;
			break;
		case 'E':
			tee_config = optarg;
			break;
		case 'n':
			net_on = false;
			net.passt_fd = -1;
			net.gvproxy_path = NULL;
			tap = net_mode = NULL;
			if (strcmp(optarg, "nat") == 0 || strcmp(optarg, "nat:restricted") == 0 ||
			    strcmp(optarg, "none") == 0) {
				net_mode = optarg;
				break;
			}
			if (strncmp(optarg, "tap:", 4) == 0) {
				tap = optarg + 4;
				net_on = true;
				break;
			}
			if (strcmp(optarg, "passt") == 0) {
				net_mode = optarg;
				break;
			}
			if (strncmp(optarg, "gvproxy:", 8) == 0 && optarg[8]) {
				net.gvproxy_path = optarg + 8;
				net_on = true;
				break;
			}
			if (strncmp(optarg, "fd:", 3) != 0) {
				fprintf(stderr,
					"ec1: --net: \"%s\": expected nat, nat:restricted, passt, "
					"none, fd:N, gvproxy:PATH or tap:IFACE\n",
					optarg);
				return EXIT_EC1_ERROR;
			}
			if (parse_uint("--net fd:", optarg + 3, 0, 1u << 30, &v))
				return EXIT_EC1_ERROR;
			net.passt_fd = (int)v;
			tap = NULL;
			net_on = true;
			break;
		case 'M': {
			unsigned int b[6];
			char end;
			if (sscanf(optarg, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4],
				   &b[5], &end) != 6 ||
			    b[0] > 255 || b[1] > 255 || b[2] > 255 || b[3] > 255 || b[4] > 255 ||
			    b[5] > 255) {
				fprintf(stderr, "ec1: --mac: \"%s\": expected xx:xx:xx:xx:xx:xx\n",
					optarg);
				return EXIT_EC1_ERROR;
			}
			for (int i = 0; i < 6; i++)
				mac[i] = (uint8_t)b[i];
			net.mac = mac;
			break;
		}
		case 'I':
			if (parse_ip(optarg, &ip))
				return EXIT_EC1_ERROR;
			break;
		case 'v':
			verbose++;
			break;
		case 'Q':
			if (!start_dir) {
				fprintf(stderr, "ec1 run: --name: only for ec1 start\n");
				return EXIT_EC1_ERROR;
			}
			break; /* taken by cmd_start */
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return EXIT_EC1_ERROR;
		}
	}
	if (optind >= argc && !start_dir) {
		fprintf(stderr, "ec1 run: no command given\n%s", run_usage);
		return EXIT_EC1_ERROR;
	}
	if (optind >= argc && (nenv > 3 || workdir)) {
		fprintf(stderr, "ec1 start: -e and -w are for CMD: without one, give them to ec1 "
				"exec\n");
		return EXIT_EC1_ERROR;
	}
	enum ec1_backend backend = EC1_BACKEND_DEFAULT;
	if (backend_name && ec1_backend_parse(backend_name, &backend)) {
		fprintf(stderr,
			"ec1: --backend: \"%s\": expected builtin, libkrun, libkrun-sev, "
			"libkrun-efi or stub\n",
			backend_name);
		return EXIT_EC1_ERROR;
	}
	if (verbose)
		ec1_set_log_level(verbose > 1 ? EC1_LOG_DEBUG : EC1_LOG_INFO);

	struct ec1_ctx *ctx;
	int err = ec1_ctx_new_backend(backend, &ctx);
	if (err) {
		fprintf(stderr, "ec1: backend %s: %s\n", backend_name ? backend_name : "default",
			ec1_strerror(err));
		return EXIT_EC1_ERROR;
	}
	struct ec1_process_config proc = {
		.exec_path = argv[optind],
		.argv = (const char *const *)&argv[optind],
		.envp = env,
		.workdir = workdir,
	};
	if ((err = ec1_ctx_set_vm(ctx, &vm)) ||
	    (optind < argc && (err = ec1_ctx_set_process(ctx, &proc))))
		return fail(ctx, err);
	if (kernel.path)
		kernel.format = kernel_format(kernel.path);
	if (kernel.path && (err = ec1_ctx_set_kernel(ctx, &kernel)))
		return fail(ctx, err);
	if (!kernel.path && (kernel.initramfs || kernel.cmdline)) {
		kernel.path = getenv("EC1_KERNEL");
		if (!kernel.path) {
			fprintf(stderr,
				"ec1: --initramfs and --cmdline need --kernel (or EC1_KERNEL)\n");
			ec1_ctx_free(ctx);
			return EXIT_EC1_ERROR;
		}
		kernel.format = kernel_format(kernel.path);
		if ((err = ec1_ctx_set_kernel(ctx, &kernel)))
			return fail(ctx, err);
	}
	if (root && root_disk) {
		fprintf(stderr, "ec1: --root and --root-disk: one root only\n");
		ec1_ctx_free(ctx);
		return EXIT_EC1_ERROR;
	}
	if (root && (err = ec1_ctx_set_root(ctx, root)))
		return fail(ctx, err);
	for (unsigned int i = 0; i < ndisks; i++) {
		struct disk_arg *d = &disks[i];
		if ((err = ec1_ctx_add_disk(ctx, &d->config)) ||
		    (d->flags && (err = ec1_ctx_set_disk_flags(ctx, d->id, d->flags))) ||
		    (d->mount && (err = ec1_ctx_mount_disk(ctx, d->id, d->mount, d->fstype))) ||
		    (d->part && (err = ec1_ctx_set_disk_partition(ctx, d->id, d->part))))
			return fail(ctx, err);
	}
	for (size_t i = 0; i < nvsocks; i++) {
		struct vsock_arg va;
		if (parse_vsock(vsocks[i], &va)) {
			ec1_ctx_free(ctx);
			return EXIT_EC1_ERROR;
		}
		if ((err = ec1_ctx_add_vsock_port(ctx, va.port, va.path, va.listen)))
			return fail(ctx, err);
	}
	if (vsock_uds && (err = ec1_ctx_set_vsock_uds(ctx, vsock_uds)))
		return fail(ctx, err);
	if (tee_config &&
	    (err = ec1_ctx_set_sev(ctx, &(struct ec1_sev_config){.tee_config_file = tee_config})))
		return fail(ctx, err);
	if (root_flags && !root) {
		fprintf(stderr, "ec1: --root-options: only with --root (a root disk takes ,ro)\n");
		ec1_ctx_free(ctx);
		return EXIT_EC1_ERROR;
	}
	if (root_flags && (err = ec1_ctx_set_root_flags(ctx, root_flags)))
		return fail(ctx, err);
	if (nvolumes && (err = ec1_ctx_set_mapped_volumes(ctx, volumes, nvolumes)))
		return fail(ctx, err);
	for (size_t i = 0; i < nshares; i++) {
		char tag[64];
		const char *colon = strchr(shares[i], ':');
		snprintf(tag, sizeof(tag), "%.*s", (int)(colon - shares[i]), shares[i]);
		if ((err = ec1_ctx_add_virtiofs(ctx, tag, colon + 1)))
			return fail(ctx, err);
	}
	if (timeout_s > 0 && (err = ec1_ctx_set_timeout(ctx, (uint32_t)(timeout_s * 1000))))
		return fail(ctx, err);
	if (timing && (err = ec1_ctx_set_timing(ctx, true)))
		return fail(ctx, err);
	if (console && (err = ec1_ctx_set_console(ctx, true)))
		return fail(ctx, err);
	const char *why = NULL;
	bool none = net_mode && strcmp(net_mode, "none") == 0;
	bool passt = net_mode && strcmp(net_mode, "passt") == 0;
	if (npublish && (net_on || none))
		why = "--publish: only with the NAT or passt, not with --net fd:, gvproxy:, tap: "
		      "or none";
	else if (net.mac && none)
		why = "--mac: there is no network with --net none";
	else if (vmnet && (net_on || net_mode))
		why = "--vmnet and --net: one network at a time";
	else if (vmnet && npublish)
		why = "--publish: not with --vmnet (the guest has its own address there)";
	else if (nallow && !(net_mode && strcmp(net_mode, "nat:restricted") == 0))
		why = "--allow: only with --net nat:restricted (the NAT otherwise reaches "
		      "everything)";
	else if (vmnet_config.helper_path && !vmnet)
		why = "--vmnet-helper: only with --vmnet";
	else if (ip.cidr && (none || (!net_on && !passt && !vmnet)))
		why = "--ip: for --net passt, fd:, gvproxy:, tap: or --vmnet (the NAT's guest is "
		      "always 10.0.2.15/24)";
	if (why) {
		fprintf(stderr, "ec1: %s\n", why);
		ec1_ctx_free(ctx);
		return EXIT_EC1_ERROR;
	}
	if (vmnet && (err = ec1_ctx_set_vmnet(ctx, &vmnet_config)))
		return fail(ctx, err);
	bool nat = ec1_backend_capabilities(ec1_ctx_backend(ctx)) & EC1_CAP_NAT;
	err = EC1_OK;
	if (net_on)
		err = tap ? ec1_ctx_set_network_tap(ctx, tap, net.mac)
			  : ec1_ctx_set_network(ctx, &net);
	else if (none)
		err = ec1_ctx_set_network_none(ctx);
	else if (passt) {
		struct ec1_passt_config pc = {
			.publish = publish, .publish_count = npublish, .mac = net.mac};
		err = ec1_ctx_set_network_passt(ctx, &pc);
	} else if (nat && (net_mode || npublish || net.mac)) {
		struct ec1_nat_config nc = {.publish = publish,
					    .publish_count = npublish,
					    .restricted = net_mode && strcmp(net_mode, "nat") != 0,
					    .mac = net.mac,
					    .allow = allow,
					    .allow_count = nallow};
		err = ec1_ctx_set_network_nat(ctx, &nc);
	} else if (net_mode) {
		err = ec1_ctx_set_network_nat(ctx, &(struct ec1_nat_config){0}); /* says why not */
	} else if (npublish || net.mac) {
		/* The backend's default network (libkrun: TSI), with its port map. */
		net.port_map = publish;
		net.port_map_count = npublish;
		err = ec1_ctx_set_network(ctx, &net);
	}
	if (!err && ip.cidr)
		err = ec1_ctx_set_network_address(ctx, ip.cidr, ip.gateway, ip.dns);
	if (err)
		return fail(ctx, err);
	if (vmnet && verbose) {
		struct ec1_vmnet_info info;
		if (ec1_ctx_get_vmnet_info(ctx, &info) == EC1_OK)
			fprintf(stderr, "ec1: vmnet: mac %s mtu %u range %s-%s mask %s id %s\n",
				info.mac_address, info.mtu, info.start_address, info.end_address,
				info.subnet_mask, info.interface_id);
	}

	forward_signals(ctx);
	int status;
	if (start_dir) {
		status = serve_started(ctx, start_dir);
		ctx = NULL;
	} else {
		err = ec1_run(ctx, &status);
	}
	free(env);
	free(volumes);
	free(shares);
	free(publish);
	free(allow);
	free(vsocks);
	if (err)
		return fail(ctx, err);
	ec1_ctx_free(ctx);
	return status;
}

static int cmd_run(int argc, char **argv)
{
	return vm_command(argc, argv, NULL);
}

static int cmd_variants(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	static const enum ec1_backend all[] = {EC1_BACKEND_BUILTIN, EC1_BACKEND_LIBKRUN,
					       EC1_BACKEND_LIBKRUN_SEV, EC1_BACKEND_LIBKRUN_EFI,
					       EC1_BACKEND_STUB};
	static const struct {
		unsigned int cap;
		const char *name;
	} caps[] = {
		{EC1_CAP_ROOT, "root"},
		{EC1_CAP_VOLUMES, "volumes"},
		{EC1_CAP_SEV, "sev"},
		{EC1_CAP_SHUTDOWN_FD, "shutdown-fd"},
		{EC1_CAP_VMNET, "vmnet"},
		{EC1_CAP_NETWORK, "network"},
		{EC1_CAP_NAT, "nat"},
		{EC1_CAP_DISKS, "disks"},
		{EC1_CAP_DISK_MOUNTS, "disk-mounts"},
		{EC1_CAP_VSOCK, "vsock"},
		{EC1_CAP_VSOCK_UDS, "vsock-uds"},
		{EC1_CAP_EXEC, "exec"},
	};
	printf("%-12s %-4s %-8s", "backend", "here", "version");
	for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++)
		printf(" %-11s", caps[c].name);
	printf("\n");
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		struct ec1_ctx *ctx;
		int err = ec1_ctx_new_backend(all[i], &ctx);
		unsigned int have = ec1_backend_capabilities(all[i]);
		const char *version = ec1_backend_version(all[i]);
		printf("%-12s %-4s %-8s", ec1_backend_name(all[i]), err ? "no" : "yes",
		       version && *version ? version : "-");
		for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++)
			printf(" %-11s", have & caps[c].cap ? "yes" : "-");
		printf("\n");
		ec1_ctx_free(ctx);
	}
	printf("(here: usable on this machine; version: the library found; the other columns: "
	       "what\n"
	       "the library found can do, else what the variant offers)\n");
	return 0;
}

/*
 * Started with stdin, stdout or stderr closed, ec1 would get that number back from its first
 * open (an eventfd, /dev/kvm, a disk image) and take it for the stream: the guest's output
 * written into a disk, its input read from an eventfd for ever. /dev/null stands in for each
 * closed one: no input, output dropped.
 */
static void std_fds_open(void)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF &&
		    open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) < 0)
			_exit(EXIT_EC1_ERROR);
}

int main(int argc, char **argv)
{
	std_fds_open();
#ifndef EC1_CLI_FRONT
	/* ec1 executed ec1-full (front.c): the process keeps the name ps, top and pkill know. */
	prctl(PR_SET_NAME, "ec1");
#endif
	/*
	 * A stdout whose reader went away is the guest's to learn of (the VMM sees EPIPE, and the
	 * process's writes fail from then on), not the end of ec1.
	 */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(main_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_EC1_ERROR : 0;
	}
	static const struct {
		const char *name;
		int (*fn)(int, char **);
		bool library; /* calls into libec1: ec1-full runs it (front.c) */
	} cmds[] = {{"run", cmd_run, true},	{"variants", cmd_variants, true},
		    {"start", cmd_start, true}, {"exec", cmd_exec, false},
		    {"ls", cmd_ls, false},	{"stop", cmd_stop, false},
		    {"logs", cmd_logs, false}};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name) != 0)
			continue;
#ifdef EC1_CLI_FRONT
		if (cmds[i].library)
			return ec1_cli_full(argv);
#endif
		return cmds[i].fn(argc - 1, argv + 1);
	}
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("ec1 %s\n", EC1_VERSION);
		return 0;
	}
	fprintf(stderr, "ec1: unknown command \"%s\"\n%s", argv[1], main_usage);
	return EXIT_EC1_ERROR;
}
