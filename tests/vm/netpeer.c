/*
 * netpeer: the far end of `ec1 run --net fd:3` for the VM suite, a tiny network of one host. It
 * makes a stream socket pair, runs CMD with one end as descriptor 3, and on the other speaks
 * stream framing (4-byte big-endian lengths, as passt does): it answers ARP requests for every
 * address but the asker's own with its MAC, and ICMP echo requests with echo replies.
 *
 * usage: netpeer [--deaf] CMD [ARGS...]
 *   --deaf: never read the socket (a peer that takes nothing: the VMM must queue a bounded
 *   amount and drop the rest)
 * prints on stderr, at the end: "netpeer: F frames, A arp replies, E echo replies, B bad"
 * exit: CMD's status (128 + signal when it was killed), 2 on a set-up error.
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
#include <sys/wait.h>
#include <unistd.h>

static const uint8_t peer_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
static unsigned long frames, arps, echoes, bad;
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

static uint16_t csum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static void frame_in(uint8_t *f, size_t len)
{
	frames++;
	if (len < 14 || len > 2048) {
		bad++;
		return;
	}
	uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
	uint8_t r[2048];
	if (type == 0x0806 && len >= 42 && f[20] == 0 && f[21] == 1) {
		/* ARP request: who has f[38..42]? Everyone but the asker is us. */
		if (memcmp(f + 28, f + 38, 4) == 0)
			return;
		memcpy(r, f + 6, 6);
		memcpy(r + 6, peer_mac, 6);
		memcpy(r + 12, f + 12, 8); /* ethertype, htype, ptype, hlen, plen */
		r[20] = 0;
		r[21] = 2;
		memcpy(r + 22, peer_mac, 6);
		memcpy(r + 28, f + 38, 4);
		memcpy(r + 32, f + 22, 10); /* the asker's MAC and address */
		send_frame(r, 42);
		arps++;
		return;
	}
	if (type == 0x0800 && len >= 34) {
		size_t ihl = (size_t)(f[14] & 15) * 4;
		if (ihl < 20 || 14 + ihl + 8 > len || f[23] != 1 || f[14 + ihl] != 8)
			return;
		size_t tot = (size_t)(f[16] << 8 | f[17]);
		if (tot < ihl + 8 || 14 + tot > len) {
			bad++;
			return;
		}
		memcpy(r, f, 14 + tot);
		memcpy(r, f + 6, 6);
		memcpy(r + 6, peer_mac, 6);
		memcpy(r + 26, f + 30, 4); /* addresses swapped */
		memcpy(r + 30, f + 26, 4);
		r[24] = r[25] = 0;
		uint16_t c = csum(r + 14, ihl);
		r[24] = (uint8_t)(c >> 8);
		r[25] = (uint8_t)c;
		uint8_t *icmp = r + 14 + ihl;
		icmp[0] = 0; /* echo reply */
		icmp[2] = icmp[3] = 0;
		c = csum(icmp, tot - ihl);
		icmp[2] = (uint8_t)(c >> 8);
		icmp[3] = (uint8_t)c;
		send_frame(r, 14 + tot);
		echoes++;
	}
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

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--flood") == 0)
		return flood(argv[2], atol(argv[3]));
	bool deaf = argc > 1 && strcmp(argv[1], "--deaf") == 0;
	if (deaf) {
		argv++;
		argc--;
	}
	if (argc < 2) {
		fprintf(stderr,
			"usage: netpeer [--deaf] CMD [ARGS...] | netpeer --flood IFACE N\n");
		return 2;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		perror("netpeer: socketpair");
		return 2;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]); /* first: it may be descriptor 3 */
		if (dup2(sv[1], 3) < 0)
			_exit(2);
		if (sv[1] != 3)
			close(sv[1]);
		execvp(argv[1], argv + 1);
		perror(argv[1]);
		_exit(127);
	}
	close(sv[1]);
	fd = sv[0];
	static uint8_t buf[1 << 17];
	size_t have = 0;
	int status = 0;
	for (;;) {
		struct pollfd p = {fd, deaf ? 0 : POLLIN, 0};
		int n = poll(&p, 1, 100);
		if (n > 0 && (p.revents & POLLIN)) {
			ssize_t r = read(fd, buf + have, sizeof(buf) - have);
			if (r > 0) {
				have += (size_t)r;
				size_t pos = 0;
				while (have - pos >= 4) {
					size_t len = (size_t)buf[pos] << 24 |
						     (size_t)buf[pos + 1] << 16 |
						     (size_t)buf[pos + 2] << 8 | buf[pos + 3];
					if (len > 65535) {
						bad++;
						have = pos = 0;
						break;
					}
					if (have - pos < 4 + len)
						break;
					frame_in(buf + pos + 4, len);
					pos += 4 + len;
				}
				memmove(buf, buf + pos, have - pos);
				have -= pos;
			}
		}
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	fprintf(stderr, "netpeer: %lu frames, %lu arp replies, %lu echo replies, %lu bad\n", frames,
		arps, echoes, bad);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
