/*
 * init's network bring-up (net.h): lo; eth0 with the process description's static address (the
 * NAT's 10.0.2.15/24) or one leased by DHCP (passt, gvproxy, TAP, vmnet: the network's own
 * server decides); the default route; /etc/resolv.conf.
 *
 * IPv6: lo always has ::1 (a server on [::] takes IPv4 connections too). eth0 takes IPv6 only on
 * a network that leases IPv4 by DHCP, whose router may also advertise IPv6 (passt does; the
 * kernel configures itself from the advertisement, SLAAC, without duplicate address detection,
 * so that the address is there about as soon as the advertisement). With a static address (the NAT,
 * whose libslirp has no IPv6 here, or --ip) eth0's IPv6 is off before it comes up: no address, no
 * solicitations, no frame a guest that never uses the network would send at boot.
 *
 * DHCP runs on a packet socket: until the ACK eth0 has no address, and a server may answer to
 * the offered address rather than to broadcast. Retransmits back off from 250 ms; after
 * DHCP_WAIT_MS without a lease the guest goes on without an address (said on stderr), as a
 * machine on a network without a server would. A lease that ends (gvproxy's is an hour, a TAP's
 * server's what it is; passt's never ends) is kept by a process of its own, forked here
 * (keep_lease): a VM started with `ec1 start` lives as long as it likes.
 */
#define _GNU_SOURCE
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <net/route.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dhcp.h"

#define DHCP_WAIT_MS 6000
#define DHCP_FOREVER 0xffffffffu
#define ETH_P_IPV4   0x0800
#define DHCP_NAKED   2 /* dhcp_exchange: the server refused the renewal */

static int if_up(int s, const char *name)
{
	struct ifreq r = {0};
	snprintf(r.ifr_name, sizeof(r.ifr_name), "%s", name);
	if (ioctl(s, SIOCGIFFLAGS, &r) < 0)
		return -1;
	r.ifr_flags |= IFF_UP | IFF_RUNNING;
	return ioctl(s, SIOCSIFFLAGS, &r);
}

/* net.ipv6.conf.NAME.KEY = v; a kernel without IPv6 has no such file, which is fine. */
static void ipv6_conf(const char *name, const char *key, const char *v)
{
	char path[96];
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/%s", name, key);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, v, strlen(v)) != (ssize_t)strlen(v))
		say("ec1-init: network: %s: IPv6 %s: %s\n", name, key, strerror(errno));
	close(fd);
}

static void set_in(struct sockaddr *sa, struct in_addr a)
{
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr = a};
	memcpy(sa, &in, sizeof(in));
}

/*
 * The first Ethernet interface the kernel has (virtio-net's eth0), into name: the lowest index
 * whose hardware address is Ethernet's, asked by ioctl (listing /sys/class/net took a third of
 * the network's set-up in the rig).
 */
static int first_ether(int s, char name[IFNAMSIZ])
{
	for (int index = 1; index <= 64; index++) {
		struct ifreq r = {.ifr_ifindex = index};
		if (ioctl(s, SIOCGIFNAME, &r) < 0)
			continue;
		if (ioctl(s, SIOCGIFHWADDR, &r) == 0 && r.ifr_hwaddr.sa_family == ARPHRD_ETHER) {
			memcpy(name, r.ifr_name, IFNAMSIZ);
			name[IFNAMSIZ - 1] = 0;
			return 0;
		}
	}
	errno = ENODEV;
	return -1;
}

static long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/*
 * A lease for interface name (up, no address) from whatever server answers first; or, with
 * renew, the renewal of that lease (eth0 has its address). Waits wait_total_ms at most. Returns
 * 1 with *l filled, 0 when none answered in time, DHCP_NAKED when the renewal was refused, -1
 * with errno on a local failure.
 */
static int dhcp_exchange(int s, const char *name, struct dhcp_lease *l,
			 const struct dhcp_lease *renew, long wait_total_ms)
{
	struct ifreq r = {0};
	snprintf(r.ifr_name, sizeof(r.ifr_name), "%s", name);
	if (ioctl(s, SIOCGIFINDEX, &r) < 0)
		return -1;
	int index = r.ifr_ifindex;
	if (ioctl(s, SIOCGIFHWADDR, &r) < 0)
		return -1;
	uint8_t mac[6];
	memcpy(mac, r.ifr_hwaddr.sa_data, 6);
	int ps = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_IPV4));
	if (ps < 0)
		return -1;
	struct sockaddr_ll at = {
		.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IPV4), .sll_ifindex = index};
	if (bind(ps, (struct sockaddr *)&at, sizeof(at)) < 0) {
		int e = errno;
		close(ps);
		errno = e;
		return -1;
	}
	struct sockaddr_ll to = at;
	to.sll_halen = 6;
	memset(to.sll_addr, 0xff, 6);
	uint32_t xid;
	if (getrandom(&xid, sizeof(xid), GRND_NONBLOCK) != sizeof(xid))
		xid = (uint32_t)now_ms() ^ (uint32_t)getpid() << 16;
	static uint8_t out[DHCP_PACKET_MAX], in[2048];
	int want = renew ? DHCP_ACK : DHCP_OFFER, got = 0;
	long deadline = now_ms() + wait_total_ms, wait_ms = 250;
	struct dhcp_lease offer = renew ? *renew : (struct dhcp_lease){0};
	while (!got && now_ms() < deadline) {
		int type = renew ? DHCP_RENEW : want == DHCP_OFFER ? DHCP_DISCOVER : DHCP_REQUEST;
		size_t n = dhcp_build(out, type, xid, mac, &offer);
		if (sendto(ps, out, n, 0, (struct sockaddr *)&to, sizeof(to)) < 0 &&
		    errno != ENOBUFS && errno != EAGAIN)
			break;
		long until = now_ms() + wait_ms;
		if (until > deadline)
			until = deadline;
		wait_ms = wait_ms < 2000 ? wait_ms * 2 : 4000;
		for (long left; !got && (left = until - now_ms()) > 0;) {
			struct pollfd pfd = {ps, POLLIN, 0};
			if (poll(&pfd, 1, (int)left) <= 0)
				continue;
			struct sockaddr_ll from;
			socklen_t fl = sizeof(from);
			ssize_t len =
				recvfrom(ps, in, sizeof(in), 0, (struct sockaddr *)&from, &fl);
			if (len <= 0 || from.sll_pkttype == PACKET_OUTGOING)
				continue;
			struct dhcp_lease cand;
			int type = dhcp_parse(in, (size_t)len, xid, mac, &cand);
			if (type == DHCP_OFFER && want == DHCP_OFFER) {
				offer = cand;
				want = DHCP_ACK;
				wait_ms = 250;
				until = 0; /* REQUEST at once */
			} else if (type == DHCP_ACK && want == DHCP_ACK &&
				   cand.addr == offer.addr) {
				*l = cand;
				got = 1;
			} else if (type == DHCP_NAK && want == DHCP_ACK &&
				   (!cand.server || cand.server == offer.server)) {
				if (renew)
					got = DHCP_NAKED;
				want = DHCP_OFFER; /* start over */
				until = 0;
			}
		}
	}
	int e = errno;
	close(ps);
	errno = e;
	return got;
}

struct net_cfg {
	struct in_addr addr, mask, gw; /* gw 0: no default route */
	char dns[DHCP_MAX_DNS][INET_ADDRSTRLEN];
	unsigned int nr_dns;
};

/* The process description's "ADDR/PREFIX", gateway and DNS server. */
static int static_cfg(const struct process *p, struct net_cfg *c)
{
	char addr[32];
	unsigned int prefix = 0;
	const char *slash = strchr(p->net_cidr, '/');
	if (!slash || (size_t)(slash - p->net_cidr) >= sizeof(addr) ||
	    sscanf(slash + 1, "%u", &prefix) != 1 || prefix > 32)
		return -1;
	memcpy(addr, p->net_cidr, (size_t)(slash - p->net_cidr));
	addr[slash - p->net_cidr] = 0;
	c->mask.s_addr = htonl(prefix ? ~0u << (32 - prefix) : 0);
	if (inet_pton(AF_INET, addr, &c->addr) != 1)
		return -1;
	if (*p->net_gateway && inet_pton(AF_INET, p->net_gateway, &c->gw) != 1)
		return -1;
	if (*p->net_dns) {
		struct in_addr d;
		if (inet_pton(AF_INET, p->net_dns, &d) != 1)
			return -1;
		inet_ntop(AF_INET, &d, c->dns[0], sizeof(c->dns[0]));
		c->nr_dns = 1;
	}
	return 0;
}

static int add_route(int s, char *dev, struct in_addr dst, struct in_addr mask, struct in_addr gw,
		     short flags)
{
	struct rtentry rt = {0};
	set_in(&rt.rt_dst, dst);
	set_in(&rt.rt_genmask, mask);
	set_in(&rt.rt_gateway, gw);
	rt.rt_flags = (short)(RTF_UP | flags);
	rt.rt_dev = dev;
	return ioctl(s, SIOCADDRT, &rt);
}

/*
 * /etc/resolv.conf. A root that is a host directory or an image is not ours to write: the file
 * goes to /dev (the guest's own devtmpfs) and is bound over the root's resolv.conf, where it has
 * one (a dangling symlink, as systemd-resolved's, or none: left so).
 */
static int write_resolv(const struct process *p, const struct net_cfg *c, const char **what)
{
	bool own_root = true;
	for (long i = 0; i < p->nr_mounts; i++)
		own_root = own_root && strcmp(p->mounts[i].path, "/") != 0;
	const char *file = own_root ? "/etc/resolv.conf" : "/dev/.ec1-resolv.conf";
	*what = file;
	if (own_root)
		mkdir("/etc", 0755);
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	for (unsigned int i = 0; i < c->nr_dns; i++)
		dprintf(fd, "nameserver %s\n", c->dns[i]);
	close(fd);
	struct stat st;
	*what = "binding /etc/resolv.conf";
	if (!own_root && stat("/etc/resolv.conf", &st) == 0 && S_ISREG(st.st_mode) &&
	    mount(file, "/etc/resolv.conf", NULL, MS_BIND, NULL) < 0)
		return -1;
	return 0;
}

static void cfg_from_lease(struct net_cfg *c, const struct dhcp_lease *l)
{
	*c = (struct net_cfg){0};
	c->addr.s_addr = l->addr;
	c->mask.s_addr = l->mask;
	c->gw.s_addr = l->router;
	for (unsigned int i = 0; i < l->nr_dns; i++)
		inet_ntop(AF_INET, &l->dns[i], c->dns[c->nr_dns++], sizeof(c->dns[0]));
}

/* Interface name gets c: its address and mask, up, the default route, resolv.conf. */
static int configure(int s, char *name, const struct net_cfg *c, const struct process *p,
		     const char **what)
{
	*what = name;
	struct ifreq r = {0};
	snprintf(r.ifr_name, sizeof(r.ifr_name), "%s", name);
	set_in(&r.ifr_addr, c->addr);
	if (ioctl(s, SIOCSIFADDR, &r) < 0)
		return -1;
	set_in(&r.ifr_netmask, c->mask);
	if (ioctl(s, SIOCSIFNETMASK, &r) < 0 || if_up(s, name) < 0)
		return -1;
	if (c->gw.s_addr) {
		*what = "the default route";
		struct in_addr any = {0}, all = {0xffffffffu};
		/* A router outside the leased network is reached on the link first. */
		if ((c->gw.s_addr & c->mask.s_addr) != (c->addr.s_addr & c->mask.s_addr) &&
		    add_route(s, name, c->gw, all, any, RTF_HOST) < 0 && errno != EEXIST)
			return -1;
		if (add_route(s, name, any, any, c->gw, RTF_GATEWAY) < 0)
			return -1;
	}
	if (c->nr_dns && write_resolv(p, c, what) < 0)
		return -1;
	return 0;
}

static void sleep_ms(long ms)
{
	struct timespec t = {ms / 1000, ms % 1000 * 1000000};
	while (ms > 0 && nanosleep(&t, &t) < 0 && errno == EINTR) {
	}
}

/*
 * Keeps eth0's lease (RFC 2131 §4.4.5), in a process of its own: at half the lease a REQUEST
 * from the address for itself (ciaddr, no server named: a renewal to every server; broadcast, so
 * that it is also §4.4.5's rebinding), asked again at half the time left (at least 1 s, at most
 * 60 s) until answered; an ACK starts the lease anew (its time only: the address, mask, router
 * and DNS stay as leased at first). A NAK, or the lease's end with no answer, takes the address
 * off (said on stderr) and asks from the start (DISCOVER), as at boot, until a server answers,
 * then configures what it leases.
 */
static void keep_lease(const struct process *p, char *name, struct dhcp_lease l)
{
	prctl(PR_SET_NAME, "ec1-dhcp", 0, 0, 0);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		_exit(1);
	char addr[INET_ADDRSTRLEN];
	for (;;) {
		if (l.lease_s == 0 || l.lease_s == DHCP_FOREVER)
			_exit(0);
		long start = now_ms(), end = start + (long)l.lease_s * 1000;
		sleep_ms((long)l.lease_s * 500);
		struct dhcp_lease got;
		int r = 0;
		for (long left; r != 1 && r != DHCP_NAKED && (left = end - now_ms()) > 0;) {
			r = dhcp_exchange(s, name, &got, &l, left < 4000 ? left : 4000);
			if (r < 0)
				r = 0; /* a local failure: as no answer, tried again */
			long pause = (end - now_ms()) / 2;
			if (r == 0)
				sleep_ms(pause < 1000 ? 1000 : pause > 60000 ? 60000 : pause);
		}
		if (r == 1) {
			l.lease_s = got.lease_s;
			continue;
		}
		inet_ntop(AF_INET, &l.addr, addr, sizeof(addr));
		say("ec1-init: network: %s: the lease on %s %s; asking again\n", name, addr,
		    r == DHCP_NAKED ? "was refused (NAK)" : "ended unrenewed");
		struct ifreq ifr = {0};
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
		set_in(&ifr.ifr_addr, (struct in_addr){0});
		(void)ioctl(s, SIOCSIFADDR, &ifr); /* the address, and the routes through it, go */
		for (long pause = 1000; (r = dhcp_exchange(s, name, &l, NULL, DHCP_WAIT_MS)) != 1;
		     pause = pause < 30000 ? pause * 2 : 60000)
			sleep_ms(pause);
		struct net_cfg c;
		cfg_from_lease(&c, &l);
		const char *what = "";
		inet_ntop(AF_INET, &l.addr, addr, sizeof(addr));
		if (configure(s, name, &c, p, &what) < 0)
			say("ec1-init: network: %s: %s: %s\n", name, what, strerror(errno));
		else
			say("ec1-init: network: %s: leased %s\n", name, addr);
	}
}

int net_up(const struct process *p, const char **what)
{
	*what = "socket";
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	int rc = -1;
	*what = "lo";
	if (if_up(s, "lo") < 0)
		goto out;
	if (!*p->net_cidr) {
		rc = 0;
		goto out;
	}
	static char name[IFNAMSIZ];
	*what = "finding the network interface";
	if (first_ether(s, name) < 0)
		goto out;
	*what = name;
	struct net_cfg c = {0};
	struct dhcp_lease l = {0};
	bool dhcp = strcmp(p->net_cidr, "dhcp") == 0;
	if (dhcp) {
		/*
		 * No duplicate address detection: the addresses eth0 makes itself come from the
		 * VM's MAC (random per VM unless the caller fixed one), and without the check's
		 * seconds they are usable as soon as the router's advertisement comes.
		 */
		ipv6_conf(name, "accept_dad", "0");
		if (if_up(s, name) < 0)
			goto out;
		*what = "DHCP";
		int got = dhcp_exchange(s, name, &l, NULL, DHCP_WAIT_MS);
		if (got < 0)
			goto out;
		if (!got) {
			say("ec1-init: network: %s: no DHCP server answered in %d s; %s has no "
			    "address\n",
			    name, DHCP_WAIT_MS / 1000, name);
			rc = 0;
			goto out;
		}
		cfg_from_lease(&c, &l);
	} else if (static_cfg(p, &c) < 0) {
		errno = EINVAL;
		goto out;
	} else {
		ipv6_conf(name, "disable_ipv6", "1");
	}
	if (configure(s, name, &c, p, what) < 0)
		goto out;
	/* A lease that ends is kept by a process of its own (killed with the rest at the end). */
	if (dhcp && l.lease_s && l.lease_s != DHCP_FOREVER && fork() == 0) {
		close(s);
		keep_lease(p, name, l);
	}
	rc = 0;
out:;
	int e = errno;
	close(s);
	errno = e;
	return rc;
}
