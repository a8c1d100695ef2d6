/*
 * netbench: what bench/net runs. A server on the host side and a client in the guest (or both on
 * the host, for the host's own loopback figure), over TCP. Static (musl), so it runs from the
 * initramfs.
 *
 *   netbench --serve ADDR PORT     serves connections one after another until killed; each
 *                                  starts with one command byte: 'S' the server reads until EOF,
 *                                  then writes back 8 bytes (the count, big-endian); 'G' + 8
 *                                  bytes N: the server writes N bytes and closes; 'P' the server
 *                                  echoes each byte it reads until EOF
 *   netbench --client ADDR PORT MIB ROUND_TRIPS
 *                                  connects (again every 200 ms, 120 s at most, until the server
 *                                  is there), then measures: MIB sent (guest to host), MIB
 *                                  received (host to guest), ROUND_TRIPS one-byte request/answer
 *                                  exchanges (TCP_NODELAY); prints "tx MB/s", "rx MB/s" and
 *                                  "rr_us MEDIAN" lines (MB = 10^6 bytes; the median round trip
 *                                  in microseconds)
 * exit 0, 1 when a measurement failed, 2 on bad usage.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (256 * 1024)

static uint8_t buf[CHUNK];

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static struct sockaddr_in addr(const char *a, const char *port)
{
	struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
	if (inet_pton(AF_INET, a, &s.sin_addr) != 1) {
		fprintf(stderr, "netbench: %s: not an IPv4 address\n", a);
		exit(2);
	}
	return s;
}

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = write(fd, b, n);
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	while (n) {
		ssize_t r = read(fd, b, n);
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void serve_one(int fd)
{
	uint8_t cmd, n8[8];
	if (read_all(fd, &cmd, 1) < 0)
		return;
	if (cmd == 'S') {
		uint64_t total = 0;
		ssize_t r;
		while ((r = read(fd, buf, sizeof(buf))) > 0)
			total += (uint64_t)r;
		put64(n8, total);
		write_all(fd, n8, 8);
	} else if (cmd == 'G' && read_all(fd, n8, 8) == 0) {
		for (uint64_t left = get64(n8); left;) {
			size_t k = left < sizeof(buf) ? (size_t)left : sizeof(buf);
			if (write_all(fd, buf, k) < 0)
				break;
			left -= k;
		}
	} else if (cmd == 'P') {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		uint8_t b;
		while (read(fd, &b, 1) == 1 && write(fd, &b, 1) == 1)
			;
	}
}

static int serve(const char *a, const char *port)
{
	struct sockaddr_in s = addr(a, port);
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&s, sizeof(s)) < 0 || listen(l, 4) < 0) {
		perror("netbench: --serve");
		return 1;
	}
	for (;;) {
		int fd = accept(l, NULL, NULL);
		if (fd < 0)
			continue;
		serve_one(fd);
		close(fd);
	}
}

/* A connection to the server, command byte sent; -1 when none came in 120 s. */
static int dial(const struct sockaddr_in *s, char cmd)
{
	for (double end = now() + 120; now() < end; usleep(200000)) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			return -1;
		if (connect(fd, (const struct sockaddr *)s, sizeof(*s)) == 0 &&
		    write_all(fd, &cmd, 1) == 0)
			return fd;
		close(fd);
	}
	fprintf(stderr, "netbench: no server in 120 s\n");
	return -1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int client(const char *a, const char *port, uint64_t mib, long trips)
{
	struct sockaddr_in s = addr(a, port);
	uint64_t bytes = mib << 20;
	uint8_t n8[8];

	int fd = dial(&s, 'S');
	if (fd < 0)
		return 1;
	double t0 = now();
	for (uint64_t left = bytes; left;) {
		size_t k = left < sizeof(buf) ? (size_t)left : sizeof(buf);
		if (write_all(fd, buf, k) < 0)
			return perror("netbench: tx"), 1;
		left -= k;
	}
	shutdown(fd, SHUT_WR);
	if (read_all(fd, n8, 8) < 0 || get64(n8) != bytes)
		return fprintf(stderr, "netbench: tx: the server counted other than sent\n"), 1;
	printf("tx %.0f\n", (double)bytes / (now() - t0) / 1e6);
	close(fd);

	if ((fd = dial(&s, 'G')) < 0)
		return 1;
	put64(n8, bytes);
	t0 = now();
	if (write_all(fd, n8, 8) < 0)
		return perror("netbench: rx"), 1;
	uint64_t got = 0;
	for (ssize_t r; (r = read(fd, buf, sizeof(buf))) > 0;)
		got += (uint64_t)r;
	if (got != bytes)
		return fprintf(stderr, "netbench: rx: %llu of %llu bytes\n",
			       (unsigned long long)got, (unsigned long long)bytes),
		       1;
	printf("rx %.0f\n", (double)bytes / (now() - t0) / 1e6);
	close(fd);

	if (trips < 1)
		return 0;
	if ((fd = dial(&s, 'P')) < 0)
		return 1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	double *us = calloc((size_t)trips, sizeof(*us));
	if (!us)
		return 1;
	for (long i = 0; i < trips; i++) {
		uint8_t b = (uint8_t)i;
		t0 = now();
		if (write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1)
			return perror("netbench: rr"), 1;
		us[i] = (now() - t0) * 1e6;
	}
	/* The spread too, for a look at where a median comes from (bench/net shows the median). */
	double first = 0, second = 0;
	for (long i = 0; i < trips; i++)
		*(i < trips / 2 ? &first : &second) += us[i];
	qsort(us, (size_t)trips, sizeof(*us), cmp_double);
	printf("rr_us %.0f\n", us[trips / 2]);
	long half = trips / 2 ? trips / 2 : 1;
	printf("rr_spread p10 %.0f p25 %.0f p75 %.0f p90 %.0f max %.0f; ", us[trips / 10],
	       us[trips / 4], us[trips * 3 / 4], us[trips * 9 / 10], us[trips - 1]);
	printf("mean of the first half %.0f, of the second %.0f\n", first / (double)half,
	       second / (double)(trips - trips / 2));
	close(fd);
	free(us);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	const char *m = argc > 1 ? argv[1] : "";
	if (argc == 4 && strcmp(m, "--serve") == 0)
		return serve(argv[2], argv[3]);
	if (argc == 6 && strcmp(m, "--client") == 0)
		return client(argv[2], argv[3], strtoull(argv[4], NULL, 10), atol(argv[5]));
	fprintf(stderr, "usage: netbench --serve ADDR PORT | netbench --client ADDR PORT MIB "
			"ROUND_TRIPS\n");
	return 2;
}
