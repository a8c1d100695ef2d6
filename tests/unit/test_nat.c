/*
 * The user-mode NAT backend (src/vmm/net/nat.c, inet.c) on the host, no VM: libslirp answers
 * the guest's ARP; queries to 10.0.2.3 reach the resolver under another id and come back under
 * the guest's (a long answer as a truncated header); a guest sending from ever new ports cannot
 * make the NAT hold more than its share of host sockets; a published port already taken is an
 * error naming it; a restricted NAT with an allow-list lets through what it allows and nothing
 * else; the frame readers take what they must and nothing else.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../src/vmm/net/backend.h"
#include "../../src/vmm/net/frame.h"
#include "../../src/vmm/net/inet.h"
#include "check.h"

static const uint8_t guest_mac[6] = {0x02, 0xec, 0x01, 0, 0, 7};
static uint8_t got[16][NET_MAX_FRAME];
static size_t got_len[16];
static unsigned int ngot;

static void deliver(void *ctx, const uint8_t *frame, size_t len)
{
	(void)ctx;
	if (ngot < 16 && len <= NET_MAX_FRAME) {
		memcpy(got[ngot], frame, len);
		got_len[ngot++] = len;
	}
}

static void pump(struct net_backend *b, int wait_ms)
{
	static struct pollfd fds[1024];
	int timeout = -1;
	unsigned int max = b->max_fds < 1024 ? b->max_fds : 1024;
	unsigned int n = b->ops->poll_fill(b, fds, max, true, &timeout);
	poll(fds, n, wait_ms);
	CHECK(b->ops->poll_done(b, fds, n) == 0);
}

static struct net_backend *nat(const struct net_nat_config *cfg)
{
	char msg[256] = "";
	struct net_backend *b = net_nat_backend(cfg, msg, sizeof(msg));
	if (!b)
		printf("    net_nat_backend: %s\n", msg);
	else {
		b->deliver = deliver;
		b->deliver_ctx = NULL;
	}
	return b;
}

static uint16_t sum16(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* An Ethernet frame from the guest (10.0.2.15) carrying UDP to dst:dport with payload. */
static size_t udp_frame(uint8_t *f, const char *dst, uint16_t sport, uint16_t dport,
			const void *payload, size_t n)
{
	memset(f, 0, 42);
	memcpy(f, "\x52\x55\x0a\x00\x02\x03", 6);
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x08;
	uint8_t *ip = f + 14, *udp = ip + 20;
	ip[0] = 0x45;
	ip[2] = (uint8_t)((28 + n) >> 8);
	ip[3] = (uint8_t)(28 + n);
	ip[8] = 64;
	ip[9] = 17;
	inet_pton(AF_INET, "10.0.2.15", ip + 12);
	inet_pton(AF_INET, dst, ip + 16);
	uint16_t c = sum16(ip, 20);
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	udp[0] = (uint8_t)(sport >> 8);
	udp[1] = (uint8_t)sport;
	udp[2] = (uint8_t)(dport >> 8);
	udp[3] = (uint8_t)dport;
	udp[4] = (uint8_t)((8 + n) >> 8);
	udp[5] = (uint8_t)(8 + n);
	memcpy(udp + 8, payload, n);
	return 42 + n;
}

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

/* The guest's ARP request for the gateway, 10.0.2.2. */
static void arp_request(uint8_t f[42])
{
	memset(f, 0, 42);
	memset(f, 0xff, 6);
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x08, f[13] = 0x06;				  /* ARP */
	f[15] = 1, f[16] = 0x08, f[18] = 6, f[19] = 4, f[21] = 1; /* Ethernet/IPv4, request */
	memcpy(f + 22, guest_mac, 6);
	inet_pton(AF_INET, "10.0.2.15", f + 28);
	inet_pton(AF_INET, "10.0.2.2", f + 38);
}

static void nat_answers_arp_for_the_gateway(void)
{
	struct net_nat_config cfg = {.restricted = true};
	struct net_backend *b = nat(&cfg);
	CHECK(b != NULL);
	if (!b)
		return;
	uint8_t f[42];
	arp_request(f);
	ngot = 0;
	b->ops->send(b, f, sizeof(f));
	pump(b, 0);
	CHECK(ngot == 1);
	CHECK(ngot && got_len[0] >= 42 && got[0][12] == 0x08 && got[0][13] == 0x06 &&
	      got[0][21] == 2 && memcmp(got[0], guest_mac, 6) == 0);
	b->ops->close(b);
}

/* The VM's unsandboxed thread, here the test's own: runs the job at once, and counts it. */
static unsigned int unsandboxed_runs;
static bool run_here(void *ctx, void (*fn)(void *arg), void *arg)
{
	(void)ctx;
	unsandboxed_runs++;
	fn(arg);
	return true;
}

/*
 * Where the library is loaded at the guest's first frame (a host with one CPU, or
 * EC1_NAT_LOAD=first-frame): a NAT without published ports is made without it; the first frame
 * has it loaded, on the thread the device's sandbox does not restrict, and is answered, not
 * lost; later frames need nothing more. Runs first: nothing has loaded libslirp into this
 * process before.
 */
static void nat_loads_libslirp_at_the_first_frame(void)
{
	CHECK(dlopen("libslirp.so.0", RTLD_LAZY | RTLD_NOLOAD) == NULL);
	setenv("EC1_NAT_LOAD", "first-frame", 1);
	net_nat_preload();
	struct net_nat_config cfg = {.restricted = true, .unsandboxed = run_here};
	struct net_backend *b = nat(&cfg);
	CHECK(b != NULL);
	if (!b)
		return;
	pump(b, 0);
	CHECK(dlopen("libslirp.so.0", RTLD_LAZY | RTLD_NOLOAD) == NULL && unsandboxed_runs == 0);
	uint8_t f[42];
	arp_request(f);
	for (int i = 0; i < 2; i++) {
		ngot = 0;
		b->ops->send(b, f, sizeof(f));
		pump(b, 0);
		CHECK(ngot == 1 && got_len[0] >= 42 && got[0][21] == 2);
	}
	CHECK(unsandboxed_runs == 1);
	void *h = dlopen("libslirp.so.0", RTLD_LAZY | RTLD_NOLOAD);
	CHECK(h != NULL);
	if (h)
		dlclose(h);
	b->ops->close(b);
}

static void nat_relays_dns_under_its_own_id(void)
{
	int srv = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	CHECK(bind(srv, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(getsockname(srv, (struct sockaddr *)&a, &al) == 0);
	struct net_nat_config cfg = {.resolver = &a};
	struct net_backend *b = nat(&cfg);
	CHECK(b != NULL);
	if (!b) {
		close(srv);
		return;
	}
	uint8_t q[29] = {0x12, 0x34, 0x01, 0x00, 0,   1,   0, 0, 0, 0, 0,
			 0,    4,    't',  'e',	 's', 't', 0, 0, 1, 0, 1}; /* test. IN A */
	uint8_t f[NET_MAX_FRAME], r[4096];
	size_t n = udp_frame(f, "10.0.2.3", 40000, 53, q, 22);
	ngot = 0;
	b->ops->send(b, f, n);
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	struct pollfd p = {srv, POLLIN, 0};
	CHECK(poll(&p, 1, 2000) == 1);
	ssize_t m = recvfrom(srv, r, sizeof(r), 0, (struct sockaddr *)&from, &fl);
	CHECK(m == 22 && memcmp(r + 2, q + 2, 20) == 0);
	/* The answer, under the id it came with; the guest must see its own id again. */
	r[2] |= 0x80;
	CHECK(sendto(srv, r, 22, 0, (struct sockaddr *)&from, fl) == 22);
	pump(b, 2000);
	CHECK(ngot == 1);
	if (ngot == 1) {
		const uint8_t *g = got[0], *ip = g + 14, *udp = ip + 20;
		CHECK(got_len[0] == 42 + 22);
		CHECK(memcmp(g, guest_mac, 6) == 0 && memcmp(g + 6, f, 6) == 0);
		CHECK(sum16(ip, 20) == 0); /* a valid header checksum */
		CHECK(ip[12] == 10 && ip[15] == 3 && ip[19] == 15);
		CHECK(udp[0] == 0 && udp[1] == 53 && (udp[2] << 8 | udp[3]) == 40000);
		CHECK(udp[8] == 0x12 && udp[9] == 0x34 && (udp[10] & 0x80));
	}
	/* An answer too long for one packet: its header alone, truncated (TC). */
	b->ops->send(b, f, n);
	CHECK(poll(&p, 1, 2000) == 1);
	m = recvfrom(srv, r, sizeof(r), 0, (struct sockaddr *)&from, &fl);
	memset(r + 22, 'x', 3000 - 22);
	r[2] |= 0x80;
	r[7] = 1; /* one answer claimed */
	CHECK(sendto(srv, r, 3000, 0, (struct sockaddr *)&from, fl) == 3000);
	ngot = 0;
	pump(b, 2000);
	CHECK(ngot == 1 && got_len[0] == 42 + 12);
	if (ngot == 1)
		CHECK(got[0][42] == 0x12 && got[0][43] == 0x34 && (got[0][44] & 0x02) &&
		      got[0][49] == 0);
	/* A reply nobody asked for goes nowhere. */
	CHECK(sendto(srv, r, 22, 0, (struct sockaddr *)&from, fl) == 22);
	ngot = 0;
	pump(b, 200);
	CHECK(ngot == 0);
	b->ops->close(b);
	close(srv);
}

static void nat_bounds_the_guests_host_sockets(void)
{
	struct net_nat_config cfg = {.resolver = NULL};
	struct net_backend *b = nat(&cfg);
	CHECK(b != NULL);
	if (!b)
		return;
	int before = open_fds();
	uint8_t f[NET_MAX_FRAME];
	for (unsigned int i = 0; i < 600; i++) {
		size_t n = udp_frame(f, "10.0.2.2", (uint16_t)(20000 + i), 9, "x", 1);
		b->ops->send(b, f, n);
	}
	pump(b, 0);
	int opened = open_fds() - before;
	printf("    600 datagrams from 600 ports: %d host sockets, %llu frames dropped\n", opened,
	       (unsigned long long)b->dropped);
	CHECK(opened >= 200 && opened <= 256);
	CHECK(b->dropped >= 600 - 256);
	b->ops->close(b);
	CHECK(open_fds() <= before);
}

static void nat_published_port_taken_is_named(void)
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	CHECK(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 1) == 0);
	CHECK(getsockname(l, (struct sockaddr *)&a, &al) == 0);
	struct net_port port = {.host_addr = htonl(INADDR_LOOPBACK),
				.host_port = ntohs(a.sin_port),
				.guest_port = 80};
	struct net_nat_config cfg = {.restricted = true, .ports = &port, .nr_ports = 1};
	char msg[256] = "", want[64];
	struct net_backend *b = net_nat_backend(&cfg, msg, sizeof(msg));
	CHECK(b == NULL);
	snprintf(want, sizeof(want), "publish 127.0.0.1:%u:80", port.host_port);
	CHECK_STR_CONTAINS(msg, want);
	if (b)
		b->ops->close(b);
	/* Free, it is taken by the NAT and given back at close. */
	close(l);
	b = net_nat_backend(&cfg, msg, sizeof(msg));
	CHECK(b != NULL);
	if (b)
		b->ops->close(b);
}

static void nat_published_port_reaches_the_guest(void)
{
	/* A free port: bound, read back, let go. */
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	CHECK(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(getsockname(l, (struct sockaddr *)&a, &al) == 0);
	close(l);
	struct net_port port = {.host_addr = htonl(INADDR_LOOPBACK),
				.host_port = ntohs(a.sin_port),
				.guest_port = 80};
	struct net_nat_config cfg = {.restricted = true, .ports = &port, .nr_ports = 1};
	struct net_backend *b = nat(&cfg);
	CHECK(b != NULL);
	if (!b)
		return;
	int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	connect(c, (struct sockaddr *)&a, sizeof(a));
	/* The NAT takes the connection and asks for the guest: an ARP request for 10.0.2.15. */
	ngot = 0;
	for (int i = 0; i < 20 && !ngot; i++)
		pump(b, 100);
	CHECK(ngot >= 1);
	if (ngot)
		CHECK(got[0][12] == 0x08 && got[0][13] == 0x06 && got[0][21] == 1 &&
		      got[0][38] == 10 && got[0][41] == 15);
	close(c);
	b->ops->close(b);
}

/* A UDP socket on 127.0.0.1 (a free port), non-blocking; its port in *port. */
static int udp_server(uint16_t *port)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	CHECK(bind(s, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(getsockname(s, (struct sockaddr *)&a, &al) == 0);
	*port = ntohs(a.sin_port);
	return s;
}

/* Pumps b until s has a datagram (2 s at most); its length, or -1. */
static ssize_t pump_until(struct net_backend *b, int s, char *buf, size_t size)
{
	for (int i = 0; i < 20; i++) {
		pump(b, 100);
		ssize_t r = recv(s, buf, size, 0);
		if (r >= 0)
			return r;
	}
	return -1;
}

/* libslirp's ARP request for the guest in frame g, answered; false when g is none. */
static bool answer_arp(struct net_backend *b, const uint8_t *g)
{
	if (!(g[12] == 0x08 && g[13] == 0x06 && g[21] == 1))
		return false;
	uint8_t r[42] = {0};
	memcpy(r, g + 6, 6);
	memcpy(r + 6, guest_mac, 6);
	memcpy(r + 12, g + 12, 8);
	r[21] = 2;
	memcpy(r + 22, guest_mac, 6);
	memcpy(r + 28, g + 38, 4);
	memcpy(r + 32, g + 22, 10);
	b->ops->send(b, r, sizeof(r));
	return true;
}

/*
 * Restricted with an allow-list: UDP to an allowed destination reaches it, to another does not;
 * a sender to a published UDP port gets the guest's answer, and that port reaches nothing else;
 * fragments and IPv6 are dropped; ARP goes through.
 */
static void nat_restricted_lets_through_only_what_is_allowed(void)
{
	uint16_t p1, p2, pub;
	int s1 = udp_server(&p1), s2 = udp_server(&p2), probe = udp_server(&pub);
	close(probe); /* a free port to publish */
	struct net_allow allow = {.port = p1, .udp = true};
	inet_pton(AF_INET, "10.0.2.2", &allow.addr);
	struct net_port port = {.host_addr = htonl(INADDR_LOOPBACK),
				.host_port = pub,
				.guest_port = 7,
				.udp = true};
	struct net_nat_config cfg = {
		.restricted = true, .ports = &port, .nr_ports = 1, .allow = &allow, .nr_allow = 1};
	struct net_backend *b = nat(&cfg);
	CHECK(b != NULL);
	if (!b)
		return;
	uint8_t f[128];
	char buf[64];
	size_t n = udp_frame(f, "10.0.2.2", 4000, p1, "allowed", 7);
	b->ops->send(b, f, n);
	CHECK(pump_until(b, s1, buf, sizeof(buf)) == 7 && memcmp(buf, "allowed", 7) == 0);
	n = udp_frame(f, "10.0.2.2", 4000, p2, "blocked", 7);
	b->ops->send(b, f, n);
	CHECK(pump_until(b, s2, buf, sizeof(buf)) == -1);
	CHECK(b->dropped == 1);
	/* A sender to the published port, and the guest's answer to it. */
	int c = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in to = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons(pub)};
	CHECK(sendto(c, "ask", 3, 0, (struct sockaddr *)&to, sizeof(to)) == 3);
	uint16_t peer_port = 0;
	uint8_t peer[4] = {0};
	for (int i = 0; i < 20 && !peer_port; i++) {
		ngot = 0;
		pump(b, 100);
		for (unsigned int k = 0; k < ngot && k < 16; k++) {
			uint8_t *g = got[k];
			/* Who has 10.0.2.15? (ARP passes the filter.) Else the guest's datagram. */
			if (!answer_arp(b, g) && got_len[k] >= 42 && g[12] == 0x08 && g[23] == 17 &&
			    g[36] == 0 && g[37] == 7) {
				memcpy(peer, g + 26, 4);
				peer_port = (uint16_t)(g[34] << 8 | g[35]);
			}
		}
	}
	CHECK(peer_port != 0);
	char peer_ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, peer, peer_ip, sizeof(peer_ip));
	n = udp_frame(f, peer_ip, 7, peer_port, "answer", 6);
	b->ops->send(b, f, n);
	CHECK(pump_until(b, c, buf, sizeof(buf)) == 6 && memcmp(buf, "answer", 6) == 0);
	n = udp_frame(f, "10.0.2.2", 7, p2, "escape", 6); /* the published port, elsewhere */
	b->ops->send(b, f, n);
	CHECK(pump_until(b, s2, buf, sizeof(buf)) == -1);
	/* A SYN to a port not allowed: answered with a reset from that port. */
	static const uint8_t zeros[12];
	n = udp_frame(f, "10.0.2.2", 4001, p2, zeros, sizeof(zeros));
	f[14 + 9] = 6;
	f[14 + 20 + 4] = 0x11, f[14 + 20 + 7] = 0x22; /* seq 0x11000022 */
	f[14 + 20 + 12] = 5 << 4, f[14 + 20 + 13] = 0x02;
	ngot = 0;
	b->ops->send(b, f, n);
	CHECK(ngot == 1 && got_len[0] == NET_TCP_RESET_LEN);
	if (ngot == 1) {
		const uint8_t *r = got[0], *t = r + 34;
		CHECK(memcmp(r, guest_mac, 6) == 0 && r[23] == 6 && t[13] == 0x14 &&
		      (t[0] << 8 | t[1]) == p2 && (t[2] << 8 | t[3]) == 4001 && t[8] == 0x11 &&
		      t[11] == 0x23 && sum16(r + 14, 20) == 0);
	}
	CHECK(b->dropped == 3);
	n = udp_frame(f, "10.0.2.2", 4000, p1, "frag", 4);
	f[14 + 6] = 0x20; /* more fragments */
	b->ops->send(b, f, n);
	f[14 + 6] = 0;
	f[12] = 0x86, f[13] = 0xdd; /* IPv6 */
	b->ops->send(b, f, n);
	CHECK(pump_until(b, s1, buf, sizeof(buf)) == -1);
	CHECK(b->dropped == 5);
	close(c);
	close(s1);
	close(s2);
	b->ops->close(b);
}

static void frame_readers_take_only_theirs(void)
{
	uint8_t f[NET_MAX_FRAME], dns[4], q[12] = {0, 1, 1, 0};
	struct net_dns_query dq;
	inet_pton(AF_INET, "10.0.2.3", dns);
	size_t n = udp_frame(f, "10.0.2.3", 1000, 53, q, 12);
	CHECK(net_dns_parse_query(f, n, dns, &dq) && dq.payload_len == 12 && dq.id == 1 &&
	      dq.guest_port == 1000);
	CHECK(!net_dns_parse_query(f, n - 1, dns, &dq)); /* the IP length lies */
	q[2] = 0x81;					 /* a reply, not a query */
	n = udp_frame(f, "10.0.2.3", 1000, 53, q, 12);
	CHECK(!net_dns_parse_query(f, n, dns, &dq));
	n = udp_frame(f, "10.0.2.3", 1000, 53, q, 11); /* shorter than a header */
	CHECK(!net_dns_parse_query(f, n, dns, &dq));
	n = udp_frame(f, "10.0.2.4", 1000, 53, q, 12);
	CHECK(!net_dns_parse_query(f, n, dns, &dq));
	f[14 + 6] = 0x20; /* more fragments */
	CHECK(!net_dns_parse_query(f, n, dns, &dq));
	CHECK(net_frame_opens_socket(f, n));
	f[14 + 9] = 6; /* TCP: a SYN opens one, an ACK does not */
	f[14 + 6] = 0;
	f[14 + 20 + 13] = 0x02;
	CHECK(net_frame_opens_socket(f, n));
	f[14 + 20 + 13] = 0x12;
	CHECK(!net_frame_opens_socket(f, n));
	f[12] = 0x86, f[13] = 0xdd; /* IPv6: not read */
	CHECK(!net_frame_opens_socket(f, n) && !net_dns_parse_query(f, n, dns, &dq));
	CHECK(!net_frame_opens_socket(f, 20));
}

/* The TCP checksum of the segment in IPv4 packet ip (RFC 793's pseudo-header): 0 when valid. */
static uint16_t tcp_sum(const uint8_t *ip)
{
	size_t tot = (size_t)(ip[2] << 8 | ip[3]), ihl = (size_t)(ip[0] & 15) * 4;
	uint8_t buf[20 + 12 + 64] = {0};
	if (tot - ihl > 64)
		return 0xffff;
	memcpy(buf, ip + 12, 8);
	buf[9] = 6;
	buf[10] = (uint8_t)((tot - ihl) >> 8), buf[11] = (uint8_t)(tot - ihl);
	memcpy(buf + 12, ip + ihl, tot - ihl);
	return sum16(buf, 12 + tot - ihl + ((tot - ihl) & 1));
}

/* A SYN from the guest's sport to dst:dport, checksums right. */
static size_t syn_frame(uint8_t *f, const char *dst, uint16_t sport, uint16_t dport)
{
	static const uint8_t zeros[12];
	size_t n = udp_frame(f, dst, sport, dport, zeros, sizeof(zeros));
	uint8_t *ip = f + 14, *tcp = ip + 20;
	ip[9] = 6;
	ip[10] = ip[11] = 0;
	uint16_t c = sum16(ip, 20);
	ip[10] = (uint8_t)(c >> 8), ip[11] = (uint8_t)c;
	tcp[4] = 0x11, tcp[7] = 0x22; /* seq 0x11000022 */
	tcp[12] = 5 << 4, tcp[13] = 0x02, tcp[14] = 0xff, tcp[15] = 0xff;
	c = tcp_sum(ip);
	tcp[16] = (uint8_t)(c >> 8), tcp[17] = (uint8_t)c;
	return n;
}

/*
 * DNS over TCP: a SYN to 10.0.2.3 port 53 reaches the resolver (a TCP listener here), and the
 * answer comes from 10.0.2.3 port 53 with both checksums right; with a resolver libslirp cannot
 * reach so (inside 10.0.2.0/24) the guest gets a reset at once.
 */
static void nat_dns_over_tcp_reaches_the_resolver(void)
{
	int lst = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	CHECK(bind(lst, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(lst, 4) == 0);
	CHECK(getsockname(lst, (struct sockaddr *)&a, &al) == 0);
	struct net_nat_config cfg = {.resolver = &a};
	struct net_backend *b = nat(&cfg);
	CHECK(b != NULL);
	if (!b) {
		close(lst);
		return;
	}
	uint8_t f[128];
	size_t n = syn_frame(f, "10.0.2.3", 40001, 53);
	b->ops->send(b, f, n);
	int conn = -1;
	bool synack = false;
	for (int i = 0; i < 30 && (conn < 0 || !synack); i++) {
		ngot = 0;
		pump(b, 100);
		if (conn < 0)
			conn = accept(lst, NULL, NULL);
		for (unsigned int k = 0; k < ngot && k < 16; k++) {
			const uint8_t *g = got[k], *ip = g + 14, *tcp = ip + 20;
			if (answer_arp(b, g) || got_len[k] < 54 || ip[9] != 6)
				continue;
			CHECK(ip[12] == 10 && ip[13] == 0 && ip[14] == 2 && ip[15] == 3);
			CHECK(tcp[0] == 0 && tcp[1] == 53 && (tcp[2] << 8 | tcp[3]) == 40001);
			CHECK(tcp[13] == 0x12); /* SYN, ACK */
			CHECK(sum16(ip, 20) == 0 && tcp_sum(ip) == 0);
			synack = true;
		}
	}
	CHECK(conn >= 0);
	CHECK(synack);
	if (conn >= 0)
		close(conn);
	b->ops->close(b);
	close(lst);

	inet_pton(AF_INET, "10.0.2.9", &a.sin_addr);
	b = nat(&cfg);
	CHECK(b != NULL);
	if (!b)
		return;
	ngot = 0;
	b->ops->send(b, f, n);
	CHECK(ngot == 1 && got_len[0] == NET_TCP_RESET_LEN);
	if (ngot == 1)
		CHECK(got[0][26] == 10 && got[0][29] == 3 && got[0][35] == 53 &&
		      got[0][47] == 0x14);
	b->ops->close(b);
}

int main(void)
{
	TEST(nat_loads_libslirp_at_the_first_frame);
	TEST(nat_answers_arp_for_the_gateway);
	TEST(nat_relays_dns_under_its_own_id);
	TEST(nat_dns_over_tcp_reaches_the_resolver);
	TEST(nat_bounds_the_guests_host_sockets);
	TEST(nat_published_port_taken_is_named);
	TEST(nat_published_port_reaches_the_guest);
	TEST(nat_restricted_lets_through_only_what_is_allowed);
	TEST(frame_readers_take_only_theirs);
	return tests_failed ? 1 : 0;
}
