/*
 * netpeer: the far end of `ec1 run --net fd:3` or `--net gvproxy:PATH` for the VM suite, a tiny
 * network of one host (tests/fake/tinynet.c: ARP, ICMP echo, DHCP as passt and gvproxy give it).
 * By default it makes a stream socket pair, runs CMD with one end as descriptor 3, and speaks
 * stream framing (4-byte big-endian lengths, as passt does) on the other: the guest is offered
 * 10.0.2.15/24, gateway and DNS 10.0.2.2. With --vfkit PATH it is gvproxy's vfkit listener
 * instead: a unix datagram socket bound at PATH, a frame per datagram once the peer has said
 * "VFKT" (what came before is counted and dropped); the guest is offered 192.168.127.2/24,
 * gateway 192.168.127.1, as gvproxy's defaults.
 *
 * usage: netpeer [--deaf] [--lease S] [--nak-renewals] [--vfkit PATH] CMD [ARGS...]
 *   --deaf: never read the socket (a peer that takes nothing: the VMM must queue a bounded
 *   amount and drop the rest)
 *   --lease S: DHCP leases of S seconds (default 3600, gvproxy's); --nak-renewals: a renewal
 *   gets a NAK (the guest must start over)
 * prints on stderr, at the end: "netpeer: F frames, A arp replies, E echo replies, O dhcp
 * offers, K dhcp acks, R dhcp renewals, B bad" (and with --vfkit "netpeer: G greetings, D datagrams
 * before one") exit: CMD's status (128 + signal when it was killed), 2 on a set-up error.
 *
 * netpeer --flood IFACE N (in the guest, as root): sends N UDP datagrams to 10.0.2.2 (1,514-byte
 * frames), its ARP entry set by hand on IFACE, as fast as it can; prints "netpeer: sent S of N".
 */
#include <errno.h>
#include <stdbool.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../fake/tinynet.h"

static const uint8_t peer_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
static unsigned long frames, bad;
static int fd;

static void send_frame(const uint8_t *f, size_t len)
{
	uint8_t out[4 + 2048];
	out[0] = (uint8_t)(len >> 24);
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
	memcpy(out + 4, f, len);
	size_t done = 0;
	while (done < 4 + len) {
		ssize_t n = write(fd, out + done, 4 + len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		done += (size_t)n;
	}
}

/* datagram mode: the peer's (gvproxy's) socket is connected to ec1's end once greeted. */
static bool dgram;

static void send_any(const uint8_t *f, size_t len)
{
	if (dgram) {
		if (send(fd, f, len, 0) < 0)
			bad++;
		return;
	}
	send_frame(f, len);
}

static struct tinynet net = {
	.mac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01},
	.gateway = {10, 0, 2, 2},
	.guest = {10, 0, 2, 15},
	.prefix = 24,
	.send = send_any,
};

static void frame_in(uint8_t *f, size_t len)
{
	frames++;
	if (len > 2048) {
		bad++;
		return;
	}
	tinynet_frame(&net, f, len);
}

static int flood(const char *iface, long n)
{
	/* The peer's address known without asking (a deaf peer answers no ARP), then UDP. */
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct arpreq ar = {.arp_flags = ATF_COM | ATF_PERM};
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
	inet_pton(AF_INET, "10.0.2.2", &to.sin_addr);
	memcpy(&ar.arp_pa, &to, sizeof(to));
	ar.arp_ha.sa_family = 1; /* ARPHRD_ETHER */
	memcpy(ar.arp_ha.sa_data, peer_mac, 6);
	snprintf(ar.arp_dev, sizeof(ar.arp_dev), "%s", iface);
	if (s < 0 || ioctl(s, SIOCSARP, &ar) < 0) {
		perror("netpeer: the peer's ARP entry");
		return 2;
	}
	static uint8_t payload[1472]; /* 1,514 bytes on the wire */
	memset(payload, 0x5a, sizeof(payload));
	long sent = 0;
	for (long i = 0; i < n; i++)
		if (sendto(s, payload, sizeof(payload), 0, (struct sockaddr *)&to, sizeof(to)) ==
		    (ssize_t)sizeof(payload))
			sent++;
	printf("netpeer: sent %ld of %ld\n", sent, n);
	return 0;
}

/* Runs CMD with descriptor 3 (-1: none) and its standard ones; returns its pid. */
static pid_t spawn(char **cmd, int child_fd, int other)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (other >= 0)
			close(other); /* first: it may be descriptor 3 */
		if (child_fd >= 0 && child_fd != 3) {
			if (dup2(child_fd, 3) < 0)
				_exit(2);
			close(child_fd);
		}
		execvp(cmd[0], cmd);
		perror(cmd[0]);
		_exit(127);
	}
	return pid;
}

/* Stream framing in buf: whole frames handled, the rest kept. */
static void stream_in(uint8_t *buf, size_t *have)
{
	size_t pos = 0;
	while (*have - pos >= 4) {
		size_t len = (size_t)buf[pos] << 24 | (size_t)buf[pos + 1] << 16 |
			     (size_t)buf[pos + 2] << 8 | buf[pos + 3];
		if (len > 65535) {
			bad++;
			*have = pos = 0;
			break;
		}
		if (*have - pos < 4 + len)
			break;
		frame_in(buf + pos + 4, len);
		pos += 4 + len;
	}
	memmove(buf, buf + pos, *have - pos);
	*have -= pos;
}

/* --vfkit PATH: gvproxy's listener at PATH; the first "VFKT" names the peer to answer. */
static int vfkit_listen(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	unlink(path);
	int s = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("netpeer: --vfkit");
		return -1;
	}
	return s;
}

static unsigned long greetings, before_greeting;

static void vfkit_in(uint8_t *buf, size_t size)
{
	struct sockaddr_un from;
	socklen_t fl = sizeof(from);
	ssize_t r = recvfrom(fd, buf, size, 0, (struct sockaddr *)&from, &fl);
	if (r < 0)
		return;
	if (r == 4 && memcmp(buf, "VFKT", 4) == 0) {
		if (connect(fd, (struct sockaddr *)&from, fl) == 0)
			greetings++;
		return;
	}
	if (!greetings) {
		before_greeting++;
		return;
	}
	frame_in(buf, (size_t)r);
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--flood") == 0)
		return flood(argv[2], atol(argv[3]));
	bool deaf = argc > 1 && strcmp(argv[1], "--deaf") == 0;
	if (deaf) {
		argv++;
		argc--;
	}
	if (argc > 2 && strcmp(argv[1], "--lease") == 0) {
		net.lease_s = (uint32_t)strtoul(argv[2], NULL, 10);
		argv += 2;
		argc -= 2;
	}
	if (argc > 1 && strcmp(argv[1], "--nak-renewals") == 0) {
		net.nak_renewals = 1;
		argv++;
		argc--;
	}
	const char *vfkit = NULL;
	if (argc > 2 && strcmp(argv[1], "--vfkit") == 0) {
		vfkit = argv[2];
		argv += 2;
		argc -= 2;
	}
	if (argc < 2) {
		fprintf(stderr,
			"usage: netpeer [--deaf] [--lease S] [--nak-renewals] [--vfkit PATH] "
			"CMD [ARGS...] | netpeer --flood IFACE N\n");
		return 2;
	}
	pid_t pid;
	if (vfkit) {
		/* gvproxy's defaults: the guest 192.168.127.2/24, the gateway .1. */
		memcpy(net.gateway, (uint8_t[]){192, 168, 127, 1}, 4);
		memcpy(net.guest, (uint8_t[]){192, 168, 127, 2}, 4);
		dgram = true;
		if ((fd = vfkit_listen(vfkit)) < 0)
			return 2;
		pid = spawn(argv + 1, -1, fd);
	} else {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
			perror("netpeer: socketpair");
			return 2;
		}
		pid = spawn(argv + 1, sv[1], sv[0]);
		close(sv[1]);
		fd = sv[0];
	}
	static uint8_t buf[1 << 17];
	size_t have = 0;
	int status = 0;
	for (;;) {
		struct pollfd p = {fd, deaf ? 0 : POLLIN, 0};
		int n = poll(&p, 1, 100);
		if (n > 0 && (p.revents & POLLIN)) {
			if (dgram) {
				vfkit_in(buf, sizeof(buf));
			} else {
				ssize_t r = read(fd, buf + have, sizeof(buf) - have);
				if (r > 0) {
					have += (size_t)r;
					stream_in(buf, &have);
				}
			}
		}
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	if (vfkit) {
		unlink(vfkit);
		fprintf(stderr, "netpeer: %lu greetings, %lu datagrams before one\n", greetings,
			before_greeting);
	}
	fprintf(stderr,
		"netpeer: %lu frames, %lu arp replies, %lu echo replies, %lu dhcp offers, %lu dhcp "
		"acks, %lu dhcp renewals, %lu bad\n",
		frames, net.arps, net.echoes, net.dhcp_offers, net.dhcp_acks, net.dhcp_renewals,
		bad + net.bad);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
