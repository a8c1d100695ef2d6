/*
 * nettool: the VM suite's small network programs, static, for the host side and the guest side
 * of the NAT tests (busybox has no DNS server and no way to hold many connections at once).
 *
 *   nettool --dns ADDR NAME IP      a DNS server on ADDR port 53, UDP and TCP: NAME's A record
 *                                   is IP, its TXT record 2,008 bytes (over UDP: truncated, TC),
 *                                   other names NXDOMAIN, other types no records; runs until
 *                                   killed
 *   nettool --dns-tcp ADDR NAME A|TXT  one query over TCP to ADDR port 53; prints
 *                                   "dns-tcp: A IP" or "dns-tcp: TXT N bytes in a M-byte answer"
 *   nettool --many ADDR PORT N      N TCP connections to ADDR:PORT open at once, then an HTTP
 *                                   GET on each; prints "nettool: A of N answered" (200 OK)
 *   nettool --get ADDR PORT PATH SEC  an HTTP GET of PATH, again every 200 ms until a 200
 *                                   answer comes (SEC seconds at most); prints the body
 *                                   (busybox wget crashes in the rig's environment); ADDR
 *                                   IPv4 or IPv6
 *   nettool --udp-echo PORT         answers the first datagram on PORT with "echo: " and it,
 *                                   prints it, exits
 *   nettool --udp-ask ADDR PORT MSG sends MSG to ADDR:PORT every 200 ms until an answer comes
 *                                   (60 s at most), prints the answer
 *   nettool --gen N                 writes N bytes of a fixed pseudo-random stream to stdout
 *   nettool --send ADDR PORT N      connects (again and again, 900 s at most, until a peer
 *                                   says it is there with one byte) and sends the N bytes of
 *                                   --gen, then waits for the peer to close
 *   nettool --recv ADDR PORT        accepts one connection on ADDR:PORT, says so with a byte,
 *                                   and copies what comes to stdout
 *   nettool --udp-ports ADDR PORT N a datagram to ADDR:PORT from each of N new sockets (N ports)
 *   nettool --connect ADDR PORT     one TCP connect, 10 s at most; prints "connected",
 *                                   "refused" (a reset came back) or "timeout"
 * exit 0, 1 when what it was to do failed, 2 on bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in addr(const char *a, const char *port)
{
	struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
	if (inet_pton(AF_INET, a, &s.sin_addr) != 1) {
		fprintf(stderr, "nettool: %s: not an IPv4 address\n", a);
		exit(2);
	}
	return s;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* NAME in DNS wire form into out (256 bytes): its length; exits 2 on a name DNS cannot carry. */
static size_t wire_name(const char *name, uint8_t *out)
{
	size_t n = 0;
	for (const char *p = name; *p;) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		if (l == 0 || l > 63 || n + 1 + l > 254) {
			fprintf(stderr, "nettool: %s: not a DNS name\n", name);
			exit(2);
		}
		out[n++] = (uint8_t)l;
		memcpy(out + n, p, l);
		n += l;
		p += l + (dot ? 1 : 0);
	}
	out[n++] = 0;
	return n;
}

#define TXT_STRINGS 8 /* NAME's TXT record: 8 strings of 250 bytes, too long for UDP */

/* The answer to query q (n bytes) in r (4096 bytes): NAME's A record is ip, its TXT record long;
 * over UDP an answer past 512 bytes goes truncated (TC, no records), as without EDNS. */
static size_t dns_answer(const uint8_t *q, size_t n, uint8_t *r, const uint8_t *want, size_t wl,
			 const uint8_t ip[4], bool udp)
{
	if (n < 12 + 5 || n > 512)
		return 0;
	size_t qend = 12;
	while (qend < n && q[qend])
		qend += q[qend] + 1;
	if (qend + 5 > n)
		return 0;
	size_t qlen = qend + 1 - 12;
	uint16_t type = (uint16_t)(q[qend + 1] << 8 | q[qend + 2]);
	bool match = qlen == wl && strncasecmp((char *)q + 12, (char *)want, wl) == 0;
	memcpy(r, q, qend + 5);
	r[2] = 0x81 | (q[2] & 0x01 ? 0x01 : 0); /* QR, RD copied */
	r[3] = match ? 0x80 : 0x83;		/* RA; NXDOMAIN when not NAME */
	r[4] = 0, r[5] = 1, r[6] = 0, r[7] = 0, r[8] = r[9] = r[10] = r[11] = 0;
	size_t len = qend + 5;
	if (match && type == 1) {
		r[7] = 1;
		static const uint8_t rr[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
		memcpy(r + len, rr, sizeof(rr));
		memcpy(r + len + sizeof(rr), ip, 4);
		len += sizeof(rr) + 4;
	} else if (match && type == 16) {
		r[7] = 1;
		size_t rdlen = TXT_STRINGS * 251;
		const uint8_t rr[] = {
			0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60, (uint8_t)(rdlen >> 8), (uint8_t)rdlen};
		memcpy(r + len, rr, sizeof(rr));
		len += sizeof(rr);
		for (int i = 0; i < TXT_STRINGS; i++) {
			r[len++] = 250;
			memset(r + len, 'a' + i, 250);
			len += 250;
		}
	}
	if (udp && len > 512) {
		r[2] |= 0x02; /* TC: ask again over TCP */
		r[7] = 0;
		len = qend + 5;
	}
	return len;
}

static bool read_full(int fd, void *buf, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

static int dns(const char *a, const char *name, const char *ip)
{
	struct sockaddr_in s = addr(a, "53");
	uint8_t answer_ip[4];
	int fd = socket(AF_INET, SOCK_DGRAM, 0), lst = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(lst, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (inet_pton(AF_INET, ip, answer_ip) != 1 || fd < 0 || lst < 0 ||
	    bind(fd, (struct sockaddr *)&s, sizeof(s)) < 0 ||
	    bind(lst, (struct sockaddr *)&s, sizeof(s)) < 0 || listen(lst, 8) < 0) {
		perror("nettool: --dns");
		return 1;
	}
	uint8_t want[256];
	size_t wl = wire_name(name, want); /* to compare with the question */
	for (;;) {
		uint8_t q[512], r[4096];
		struct pollfd p[2] = {{fd, POLLIN, 0}, {lst, POLLIN, 0}};
		if (poll(p, 2, -1) < 0)
			continue;
		if (p[0].revents) {
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
			size_t len =
				n > 0 ? dns_answer(q, (size_t)n, r, want, wl, answer_ip, true) : 0;
			if (len)
				sendto(fd, r, len, 0, (struct sockaddr *)&from, fl);
		}
		if (p[1].revents) { /* one query per connection, as a resolver retrying a TC answer
				     */
			int c = accept(lst, NULL, NULL);
			uint8_t l[2];
			struct timeval tv = {5, 0};
			setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			size_t n = 0, len = 0;
			if (c >= 0 && read_full(c, l, 2) &&
			    (n = (size_t)(l[0] << 8 | l[1])) <= sizeof(q) && read_full(c, q, n) &&
			    (len = dns_answer(q, n, r + 2, want, wl, answer_ip, false))) {
				r[0] = (uint8_t)(len >> 8), r[1] = (uint8_t)len;
				if (write(c, r, len + 2) < 0)
					perror("nettool: --dns: tcp");
			}
			if (c >= 0)
				close(c);
		}
	}
}

/* A query for NAME (type A or TXT) over TCP to ADDR:53: prints the A record or the TXT length. */
static int dns_tcp(const char *a, const char *name, const char *type)
{
	struct sockaddr_in s = addr(a, "53");
	uint8_t q[300] = {0x12, 0x34, 0x01, 0x00, 0, 1}, r[4096];
	size_t n = 12 + wire_name(name, q + 12);
	bool txt = strcmp(type, "TXT") == 0;
	q[n++] = 0, q[n++] = txt ? 16 : 1, q[n++] = 0, q[n++] = 1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	uint8_t l[2] = {(uint8_t)(n >> 8), (uint8_t)n};
	if (fd < 0 || connect(fd, (struct sockaddr *)&s, sizeof(s)) < 0 || write(fd, l, 2) != 2 ||
	    write(fd, q, n) != (ssize_t)n || !read_full(fd, l, 2)) {
		printf("dns-tcp: %s\n", strerror(errno));
		return 1;
	}
	size_t len = (size_t)(l[0] << 8 | l[1]);
	if (len > sizeof(r) || len < n || !read_full(fd, r, len) || r[0] != 0x12 || r[1] != 0x34) {
		printf("dns-tcp: a broken answer of %zu bytes\n", len);
		return 1;
	}
	if ((r[3] & 15) != 0 || r[7] != 1) {
		printf("dns-tcp: rcode %d, %d answers\n", r[3] & 15, r[7]);
		return 1;
	}
	const uint8_t *rr = r + n; /* the question is echoed; then the record, a name pointer */
	size_t rdlen = (size_t)(rr[10] << 8 | rr[11]);
	if (n + 12 + rdlen > len) {
		printf("dns-tcp: record past the answer\n");
		return 1;
	}
	if (txt)
		printf("dns-tcp: TXT %zu bytes in a %zu-byte answer\n", rdlen, len);
	else
		printf("dns-tcp: A %u.%u.%u.%u\n", rr[12], rr[13], rr[14], rr[15]);
	return 0;
}

static int many(const char *a, const char *port, int n)
{
	struct sockaddr_in s = addr(a, port);
	int *fds = calloc((size_t)n, sizeof(int)), ok = 0;
	for (int i = 0; i < n; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&s, sizeof(s)) < 0) {
			fprintf(stderr, "nettool: connection %d: %s\n", i, strerror(errno));
			return 1;
		}
	}
	static const char get[] = "GET / HTTP/1.0\r\n\r\n";
	for (int i = 0; i < n; i++)
		if (write(fds[i], get, sizeof(get) - 1) != (ssize_t)sizeof(get) - 1)
			fprintf(stderr, "nettool: connection %d: write: %s\n", i, strerror(errno));
	for (int i = 0; i < n; i++) {
		char buf[4096];
		size_t have = 0;
		ssize_t r;
		while ((r = read(fds[i], buf + have, sizeof(buf) - 1 - have)) > 0 &&
		       have + (size_t)r < sizeof(buf) - 1)
			have += (size_t)r;
		if (r > 0)
			have += (size_t)r;
		buf[have] = 0;
		ok += strstr(buf, " 200 ") != NULL;
		close(fds[i]);
	}
	printf("nettool: %d of %d answered\n", ok, n);
	return ok == n ? 0 : 1;
}

static int get(const char *a, const char *port, const char *path, int secs)
{
	struct sockaddr_in s4 = {0};
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6,
				  .sin6_port = htons((uint16_t)atoi(port))};
	bool v6 = strchr(a, ':') != NULL;
	if (!v6)
		s4 = addr(a, port);
	else if (inet_pton(AF_INET6, a, &s6.sin6_addr) != 1) {
		fprintf(stderr, "nettool: %s: not an IPv6 address\n", a);
		exit(2);
	}
	struct sockaddr *s = v6 ? (struct sockaddr *)&s6 : (struct sockaddr *)&s4;
	socklen_t slen = v6 ? sizeof(s6) : sizeof(s4);
	double end = now() + secs;
	while (now() < end) {
		int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
		char req[512], buf[8192];
		int l = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
		size_t have = 0;
		ssize_t r = -1;
		if (connect(fd, s, slen) == 0 && write(fd, req, (size_t)l) == l)
			while ((r = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0 &&
			       have + (size_t)r < sizeof(buf) - 1)
				have += (size_t)r;
		if (r > 0)
			have += (size_t)r;
		close(fd);
		buf[have] = 0;
		char *body = strstr(buf, "\r\n\r\n");
		if (strstr(buf, " 200 ") && body) {
			fputs(body + 4, stdout);
			return 0;
		}
		usleep(200000);
	}
	fprintf(stderr, "nettool: --get: no answer in %d s\n", secs);
	return 1;
}

static int udp_echo(const char *port)
{
	struct sockaddr_in s = addr("0.0.0.0", port), from;
	socklen_t fl = sizeof(from);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	char buf[1500], out[1600];
	if (fd < 0 || bind(fd, (struct sockaddr *)&s, sizeof(s)) < 0) {
		perror("nettool: --udp-echo");
		return 1;
	}
	printf("nettool: listening\n");
	fflush(stdout);
	ssize_t n = recvfrom(fd, buf, sizeof(buf) - 1, 0, (struct sockaddr *)&from, &fl);
	if (n < 0)
		return 1;
	buf[n] = 0;
	int l = snprintf(out, sizeof(out), "echo: %s", buf);
	sendto(fd, out, (size_t)l, 0, (struct sockaddr *)&from, fl);
	printf("nettool: got %s\n", buf);
	return 0;
}

static int udp_ask(const char *a, const char *port, const char *msg)
{
	struct sockaddr_in s = addr(a, port);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	double end = now() + 60;
	while (now() < end) {
		sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&s, sizeof(s));
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 200) == 1) {
			char buf[1600];
			ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
			if (n > 0) {
				buf[n] = 0;
				printf("%s\n", buf);
				return 0;
			}
		}
	}
	fprintf(stderr, "nettool: --udp-ask: no answer in 60 s\n");
	return 1;
}

static uint64_t gen_state = 0x9e3779b97f4a7c15ull;

static void gen(uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i += 8) {
		gen_state ^= gen_state << 13;
		gen_state ^= gen_state >> 7;
		gen_state ^= gen_state << 17;
		memcpy(buf + i, &gen_state, n - i < 8 ? n - i : 8);
	}
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int gen_out(long long n)
{
	static uint8_t buf[1 << 16];
	while (n > 0) {
		size_t k = n < (long long)sizeof(buf) ? (size_t)n : sizeof(buf);
		gen(buf, k);
		if (write_all(1, buf, k) < 0)
			return 1;
		n -= (long long)k;
	}
	return 0;
}

static int send_stream(const char *a, const char *port, long long total)
{
	struct sockaddr_in s = addr(a, port);
	static uint8_t buf[1 << 16];
	double end = now() + 900;
	while (now() < end) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&s, sizeof(s)) < 0) {
			close(fd);
			usleep(200000);
			continue;
		}
		/* A forward that took the connection before the guest listened closes it. */
		if (read(fd, buf, 1) != 1) {
			close(fd);
			usleep(200000);
			continue;
		}
		gen_state = 0x9e3779b97f4a7c15ull;
		long long left = total;
		int failed = 0;
		while (left > 0 && !failed) {
			size_t k = left < (long long)sizeof(buf) ? (size_t)left : sizeof(buf);
			gen(buf, k);
			failed = write_all(fd, buf, k) < 0;
			left -= (long long)k;
		}
		if (failed) {
			perror("nettool: --send");
			return 1;
		}
		shutdown(fd, SHUT_WR);
		while (read(fd, buf, sizeof(buf)) > 0)
			;
		close(fd);
		return 0;
	}
	fprintf(stderr, "nettool: --send: no peer in 900 s\n");
	return 1;
}

static int recv_stream(const char *a, const char *port)
{
	struct sockaddr_in s = addr(a, port);
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&s, sizeof(s)) < 0 || listen(l, 1) < 0) {
		perror("nettool: --recv");
		return 1;
	}
	int fd = accept(l, NULL, NULL);
	static uint8_t buf[1 << 16];
	ssize_t r;
	if (fd < 0 || write(fd, "R", 1) != 1) {
		perror("nettool: --recv");
		return 1;
	}
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		if (write_all(1, buf, (size_t)r) < 0)
			return 1;
	return r < 0;
}

static int udp_ports(const char *a, const char *port, int n)
{
	struct sockaddr_in s = addr(a, port);
	int sent = 0;
	for (int i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (fd >= 0 && sendto(fd, "x", 1, 0, (struct sockaddr *)&s, sizeof(s)) == 1)
			sent++;
		if (fd >= 0)
			close(fd);
	}
	printf("nettool: sent from %d ports\n", sent);
	return 0;
}

static void on_alarm(int sig)
{
	(void)sig;
}

static int connect_once(const char *a, const char *port)
{
	struct sockaddr_in s = addr(a, port);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART: connect returns EINTR */
	sigaction(SIGALRM, &sa, NULL);
	alarm(10);
	int r = connect(fd, (struct sockaddr *)&s, sizeof(s));
	int e = errno;
	alarm(0);
	close(fd);
	if (r == 0)
		printf("connected\n");
	else if (e == ECONNREFUSED)
		printf("refused\n");
	else if (e == EINTR)
		printf("timeout\n");
	else
		printf("error: %s\n", strerror(e));
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	const char *m = argc > 1 ? argv[1] : "";
	if (argc == 5 && strcmp(m, "--dns") == 0)
		return dns(argv[2], argv[3], argv[4]);
	if (argc == 5 && strcmp(m, "--dns-tcp") == 0)
		return dns_tcp(argv[2], argv[3], argv[4]);
	if (argc == 5 && strcmp(m, "--many") == 0)
		return many(argv[2], argv[3], atoi(argv[4]));
	if (argc == 6 && strcmp(m, "--get") == 0)
		return get(argv[2], argv[3], argv[4], atoi(argv[5]));
	if (argc == 3 && strcmp(m, "--udp-echo") == 0)
		return udp_echo(argv[2]);
	if (argc == 5 && strcmp(m, "--udp-ask") == 0)
		return udp_ask(argv[2], argv[3], argv[4]);
	if (argc == 3 && strcmp(m, "--gen") == 0)
		return gen_out(atoll(argv[2]));
	if (argc == 5 && strcmp(m, "--send") == 0)
		return send_stream(argv[2], argv[3], atoll(argv[4]));
	if (argc == 4 && strcmp(m, "--recv") == 0)
		return recv_stream(argv[2], argv[3]);
	if (argc == 5 && strcmp(m, "--udp-ports") == 0)
		return udp_ports(argv[2], argv[3], atoi(argv[4]));
	if (argc == 4 && strcmp(m, "--connect") == 0)
		return connect_once(argv[2], argv[3]);
	fprintf(stderr, "usage: see tests/vm/nettool.c\n");
	return 2;
}
