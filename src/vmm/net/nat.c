/*
 * The user-mode NAT backend (backend.h), on Debian's libslirp: the guest's TCP, UDP and ICMP
 * become the host's own sockets, as QEMU's -netdev user and slirp4netns make them. The network
 * is 10.0.2.0/24: the guest 10.0.2.15, the gateway 10.0.2.2 (the host's loopback, unless
 * restricted), the resolver 10.0.2.3. Published ports are slirp's host forwards, listening from
 * set-up on, so a port already taken is an error before the VM starts.
 *
 * What a hostile guest could take is bounded here, not in libslirp:
 * - host sockets: libslirp says when it opens and closes one; at NAT_SOCKETS open, or when the
 *   process's descriptor budget (fd_budget.h, shared with the shares' FUSE servers) is spent,
 *   frames that would open another (a TCP SYN, any UDP or ICMP datagram: inet.h) are dropped
 *   and counted;
 * - DNS: libslirp's own forwarding reads /etc/resolv.conf whenever it likes, which this thread's
 *   sandbox does not allow; the NAT relays queries to 10.0.2.3 itself instead, to the resolver
 *   the host's resolv.conf named at set-up, at most DNS_WAITS at a time, each waiting 5 s at
 *   most. Queries over TCP (a guest asks again so when an answer came truncated) go to the same
 *   resolver: the guest's segments to 10.0.2.3 port 53 are readdressed to it, and its
 *   segments back to 10.0.2.3 port 53 again, for the guest ports that asked (the last
 *   DNS_TCP_FLOWS of them: net_tcp_redirect); libslirp sees an ordinary connection to an
 *   outside address, bounded like any other (a guest that also talks to the resolver's own
 *   address from such a port gets those answers readdressed too: its loss). A resolver that
 *   libslirp cannot reach so (IPv6, or inside 10.0.2.0/24) gets the guest a reset instead.
 *   Restricted: no DNS at all (a resolver is a way out).
 * Restricted with an allow-list: libslirp's restricted mode would let through no connection of
 * the guest's at all, so libslirp runs unrestricted and the NAT filters the guest's frames
 * itself (net_frame_flow): a TCP SYN, UDP or ICMP datagram passes only to an allowed
 * destination, or, for UDP, from a published port back to a peer that sent to it (the last
 * UDP_PEERS such peers are remembered); a SYN that does not pass is answered with a reset, as
 * libslirp's restricted mode answers; ARP and segments of existing connections pass; anything
 * else (IPv6, VLAN tags, fragments, broken headers) is dropped. Without a list libslirp's own
 * restricted mode does the work.
 * libslirp runs on the device's thread alone: every callback comes from inside slirp_input,
 * slirp_pollfds_fill/poll or slirp_handle_timer, all called from there.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <dlfcn.h>
#include <glib.h>
#include <libslirp.h>
#include <resolv.h>
#include <signal.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#include "../fd_budget.h"
#include "../worker.h"
#include "backend.h"
#include "frame.h"
#include "inet.h"

#define NAT_SOCKETS   256   /* host sockets the guest may have open at once */
#define NAT_MTU	      32768 /* the guest's link (see net_nat_backend) */
#define NAT_TIMERS    4	    /* libslirp has one (IPv6 router advertisements, off here) */
#define DNS_WAITS     64    /* queries waiting for the host's resolver */
#define UDP_PEERS     64 /* senders to published UDP ports a filtering NAT lets the guest answer */
#define DNS_WAIT_MS   5000
#define DNS_READS     16 /* replies read per pass */
#define DNS_BUF	      4096
#define DNS_TCP_FLOWS 32 /* guest ports whose TCP DNS connections are readdressed */
#define GUEST_ADDR    "10.0.2.15"
#define GATEWAY_ADDR  "10.0.2.2"
#define DNS_ADDR      "10.0.2.3"

struct nat_timer {
	bool used;
	SlirpTimerId id;
	SlirpTimerCb cb; /* the older interface's callback, or NULL */
	void *cb_opaque;
	int64_t expire_ms; /* -1: not armed */
};

struct dns_wait {
	bool used;
	uint16_t our_id;
	int64_t expires_ms;
	struct net_dns_query q; /* q.payload is not kept */
};

/* A sender to a published UDP port, as the guest saw it. */
struct udp_peer {
	uint8_t addr[4];
	uint16_t port, guest_port;
};

struct nat_backend {
	struct net_backend b;
	/* Restricted with an allow-list: the NAT filters (see the top). */
	bool filter;
	struct net_allow *allow;
	unsigned int nr_allow;
	struct net_port *ports; /* published, for the filter's UDP answers */
	unsigned int nr_ports;
	struct udp_peer peers[UDP_PEERS];
	unsigned int next_peer;
	uint64_t blocked;
	Slirp *slirp; /* NULL until started (at set-up, or at the guest's first frame) */
	SlirpConfig sc;
	bool on_demand;	   /* started at the guest's first frame (see net_nat_backend) */
	bool start_failed; /* so: the reason in b.why */
	int64_t start_ms;  /* how long the guest's first frame waited for the start */
	bool (*unsandboxed)(void *ctx, void (*fn)(void *arg), void *arg); /* see backend.h */
	void *unsandboxed_ctx;
	struct pollfd *fds; /* while slirp fills them, and while it reads their events */
	unsigned int nfds, max;
	bool want_rx;
	unsigned int sockets;
	unsigned int budgeted; /* of them, those taken from the process's fd budget */
	uint64_t refused, guest_errors;
	struct nat_timer timers[NAT_TIMERS];
	int dns_fd; /* -1: no DNS */
	struct sockaddr_storage resolver;
	socklen_t resolver_len;
	uint8_t dns_ip[4];
	struct dns_wait waits[DNS_WAITS];
	uint64_t dns_dropped;
	uint8_t buf[DNS_BUF];
	uint8_t out[NET_ETH_HDR + 28 + NET_DNS_MAX_PAYLOAD];
	/* DNS over TCP (see the top): whether the resolver can take it, and the guest ports. */
	bool dns_tcp;
	uint8_t resolver_ip[4];
	uint16_t resolver_port;
	struct {
		uint16_t guest_port; /* 0: free */
		int64_t used_ms;
	} tcp_flows[DNS_TCP_FLOWS];
	uint8_t readdressed[NET_ETH_HDR + NAT_MTU];
};

/*
 * libslirp reports what the guest did wrong through glib's log ("Slirp" domain). glib's default
 * handler formats for the locale, which opens files, outside the thread's sandbox, and a guest
 * could fill stderr with them: they are counted instead (once a handler is set for the domain,
 * glib calls nothing else for it).
 */
static uint64_t slirp_log_messages;

static void slirp_log(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data)
{
	(void)domain;
	(void)level;
	(void)msg;
	(void)data;
	__atomic_add_fetch(&slirp_log_messages, 1, __ATOMIC_RELAXED);
}

/*
 * libslirp, and glib with it, are loaded when the first NAT is made, not with libec1: a process
 * that makes none (ec1 exec, ls, stop; a run without the NAT) does not pay for them (measured in
 * the rig: 9 of the 42 ms an `ec1 version` takes; 26 of them are any dynamic program's).
 */
static struct {
	void *handle;
	__typeof__(slirp_new) *new_;
	__typeof__(slirp_add_hostfwd) *add_hostfwd;
	__typeof__(slirp_cleanup) *cleanup;
	__typeof__(slirp_handle_timer) *handle_timer;
	__typeof__(slirp_input) *input;
	__typeof__(slirp_pollfds_fill) *pollfds_fill;
	__typeof__(slirp_pollfds_poll) *pollfds_poll;
	char error[256];
} lib;

/*
 * When the load happens (net_nat_preload): from the start of set-up, on a thread of its own,
 * where the process may use a second CPU (the load then costs the run nothing: 1.3-2 ms
 * natively, beside the kernel's copy); where it has one CPU, a load beside the set-up only
 * takes the CPU from it (the rig: 17 ms of set-up, and more of the boot), so a NAT without
 * published ports starts when its guest sends the first frame, and a run whose guest never
 * uses the network never loads the library. That start (the library's load, and slirp_new,
 * which reads /dev/urandom) needs calls the device's sandbox refuses: it runs on the thread in
 * vm_run, the caller's (cfg->unsandboxed), while the device's thread waits.
 */
static struct {
	pthread_mutex_t lock;
	bool decided;
	bool on_demand; /* NATs without published ports start at their guest's first frame */
} loader = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void slirp_load(void)
{
	void *h = dlopen("libslirp.so.0", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(lib.error, sizeof(lib.error),
			 "the NAT needs libslirp (Debian's libslirp0): %s", dlerror());
		return;
	}
	__typeof__(g_log_set_handler) *set_handler = dlsym(h, "g_log_set_handler");
#define SYM(field, name) (lib.field = (__typeof__(lib.field))dlsym(h, name))
	if (!set_handler || !SYM(new_, "slirp_new") || !SYM(add_hostfwd, "slirp_add_hostfwd") ||
	    !SYM(cleanup, "slirp_cleanup") || !SYM(handle_timer, "slirp_handle_timer") ||
	    !SYM(input, "slirp_input") || !SYM(pollfds_fill, "slirp_pollfds_fill") ||
	    !SYM(pollfds_poll, "slirp_pollfds_poll")) {
		snprintf(lib.error, sizeof(lib.error),
			 "libslirp.so.0 lacks a function ec1 uses: %s", dlerror());
		return;
	}
#undef SYM
	set_handler("Slirp", G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION, slirp_log,
		    NULL);
	lib.handle = h;
}

/* libslirp loaded (once per process, by the calling thread or the loader); false with why in
 * lib.error. Not for the device's thread (see nat_started). */
static bool slirp_loaded(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, slirp_load);
	return lib.handle != NULL;
}

static void *loader_main(void *arg)
{
	(void)arg;
	slirp_loaded();
	return NULL;
}

void net_nat_preload(void)
{
	pthread_mutex_lock(&loader.lock);
	if (loader.decided) {
		pthread_mutex_unlock(&loader.lock);
		return;
	}
	loader.decided = true;
	const char *when = getenv("EC1_NAT_LOAD");
	cpu_set_t cpus;
	if (when && strcmp(when, "first-frame") == 0)
		loader.on_demand = true;
	else if (when && strcmp(when, "set-up") == 0)
		loader.on_demand = false;
	else
		loader.on_demand =
			sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) < 2;
	pthread_mutex_unlock(&loader.lock);
	if (loader.on_demand)
		return;
	/* No signal for it (the process's handlers run on the threads that expect them). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_t t;
	(void)vmm_thread_create(&t, loader_main, NULL, true); /* else net_nat_backend loads */
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Whether NATs without published ports start at their guest's first frame. */
static bool loader_on_demand(void)
{
	pthread_mutex_lock(&loader.lock);
	bool on_demand = loader.decided && loader.on_demand;
	pthread_mutex_unlock(&loader.lock);
	return on_demand;
}

/*
 * Whether libslirp.so.0 is where the dynamic loader would look first (LD_LIBRARY_PATH, the
 * usual library directories): a NAT that loads it only at the guest's first frame is made only
 * then, so that a library that is not installed is still an error at set-up (a library found
 * elsewhere is simply loaded at set-up).
 */
static bool slirp_findable(void)
{
#if defined(__x86_64__)
#define TRIPLET "x86_64-linux-gnu"
#elif defined(__aarch64__)
#define TRIPLET "aarch64-linux-gnu"
#else
#define TRIPLET ""
#endif
	static const char *const dirs[] = {"/usr/local/lib", "/lib/" TRIPLET, "/usr/lib/" TRIPLET,
					   "/lib64",	     "/usr/lib64",    "/lib",
					   "/usr/lib"};
#undef TRIPLET
	char path[PATH_MAX];
	const char *env = getenv("LD_LIBRARY_PATH");
	for (const char *p = env; p && *p;) {
		size_t len = strcspn(p, ":;");
		if (len && len < sizeof(path) - 16) {
			snprintf(path, sizeof(path), "%.*s/libslirp.so.0", (int)len, p);
			if (access(path, R_OK) == 0)
				return true;
		}
		p += len + (p[len] != 0);
	}
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/libslirp.so.0", dirs[i]);
		if (access(path, R_OK) == 0)
			return true;
	}
	return false;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A filtering NAT remembers who sent to a published UDP port, so the guest may answer. */
static void note_udp_peer(struct nat_backend *n, const uint8_t *frame, size_t len)
{
	struct net_flow f;
	if (!net_frame_udp_in(frame, len, &f))
		return;
	bool published = false;
	for (unsigned int i = 0; i < n->nr_ports && !published; i++)
		published = n->ports[i].udp && n->ports[i].guest_port == f.dst_port;
	if (!published)
		return;
	for (unsigned int i = 0; i < UDP_PEERS; i++)
		if (n->peers[i].port == f.src_port && n->peers[i].guest_port == f.dst_port &&
		    memcmp(n->peers[i].addr, f.src, 4) == 0)
			return;
	struct udp_peer *p = &n->peers[n->next_peer++ % UDP_PEERS];
	memcpy(p->addr, f.src, 4);
	p->port = f.src_port;
	p->guest_port = f.dst_port;
}

/* A guest port's TCP DNS connection: found (or, with add, taken: a free or the oldest entry). */
static bool dns_tcp_flow(struct nat_backend *n, uint16_t guest_port, bool add)
{
	unsigned int slot = 0;
	for (unsigned int i = 0; i < DNS_TCP_FLOWS; i++) {
		if (n->tcp_flows[i].guest_port == guest_port) {
			n->tcp_flows[i].used_ms = now_ms();
			return true;
		}
		if (n->tcp_flows[i].used_ms < n->tcp_flows[slot].used_ms)
			slot = i;
	}
	if (add)
		n->tcp_flows[slot].guest_port = guest_port, n->tcp_flows[slot].used_ms = now_ms();
	return add;
}

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct nat_backend *n = opaque;
	if (len >= NET_ETH_HDR && len <= net_max_frame(n->b.mtu)) {
		if (n->filter)
			note_udp_peer(n, buf, len);
		/* The resolver's TCP segments to a guest port that asked 10.0.2.3: from there. */
		uint16_t guest_port;
		if (n->dns_tcp && len <= sizeof(n->readdressed) &&
		    (guest_port = net_tcp_redirect(n->readdressed, buf, len, false, n->resolver_ip,
						   n->resolver_port, n->dns_ip, NET_DNS_PORT)) &&
		    dns_tcp_flow(n, guest_port, false))
			buf = n->readdressed;
		n->b.deliver(n->b.deliver_ctx, buf, len);
	}
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	struct nat_backend *n = opaque;
	(void)msg;
	n->guest_errors++;
}

static int64_t cb_clock_get_ns(void *opaque)
{
	(void)opaque;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct nat_timer *timer_slot(struct nat_backend *n)
{
	for (int i = 0; i < NAT_TIMERS; i++)
		if (!n->timers[i].used) {
			n->timers[i] = (struct nat_timer){.used = true, .expire_ms = -1};
			return &n->timers[i];
		}
	return NULL;
}

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	struct nat_timer *t = timer_slot(opaque);
	if (t) {
		t->cb = cb;
		t->cb_opaque = cb_opaque;
	}
	return t;
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct nat_timer *t = timer_slot(opaque);
	if (t) {
		t->id = id;
		t->cb_opaque = cb_opaque;
	}
	return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
	(void)opaque;
	if (timer)
		((struct nat_timer *)timer)->used = false;
}

/* expire_time: milliseconds on the clock cb_clock_get_ns reads. */
static void cb_timer_mod(void *timer, int64_t expire_time, void *opaque)
{
	(void)opaque;
	if (timer)
		((struct nat_timer *)timer)->expire_ms = expire_time;
}

static void cb_register_poll_fd(int fd, void *opaque)
{
	struct nat_backend *n = opaque;
	(void)fd;
	n->sockets++;
	if (fd_budget_take())
		n->budgeted++;
}

static void cb_unregister_poll_fd(int fd, void *opaque)
{
	struct nat_backend *n = opaque;
	(void)fd;
	if (n->sockets)
		n->sockets--;
	if (n->budgeted > n->sockets) {
		n->budgeted--;
		fd_budget_give();
	}
}

/* Whether another host socket is the guest's to have: this NAT's share, and the process's. */
static bool socket_room(const struct nat_backend *n)
{
	return n->sockets < NAT_SOCKETS && fd_budget_used() < fd_budget_limit();
}

static void cb_notify(void *opaque)
{
	(void)opaque; /* one thread: the next pass asks slirp again */
}

static const SlirpCb nat_callbacks = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_get_ns,
	.timer_new = cb_timer_new,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_register_poll_fd,
	.unregister_poll_fd = cb_unregister_poll_fd,
	.notify = cb_notify,
	.timer_new_opaque = cb_timer_new_opaque,
};

static int add_poll(int fd, int events, void *opaque)
{
	struct nat_backend *n = opaque;
	if (n->nfds >= n->max)
		return -1; /* never polled: slirp sees no events on it */
	short ev = 0;
	if ((events & SLIRP_POLL_IN) && n->want_rx)
		ev |= POLLIN;
	if (events & SLIRP_POLL_OUT)
		ev |= POLLOUT;
	if ((events & SLIRP_POLL_PRI) && n->want_rx)
		ev |= POLLPRI;
	n->fds[n->nfds] = (struct pollfd){fd, ev, 0};
	return (int)n->nfds++;
}

static int get_revents(int idx, void *opaque)
{
	struct nat_backend *n = opaque;
	if (idx < 0 || (unsigned int)idx >= n->nfds)
		return 0;
	short r = n->fds[idx].revents;
	int ev = 0;
	if (r & POLLIN)
		ev |= SLIRP_POLL_IN;
	if (r & POLLOUT)
		ev |= SLIRP_POLL_OUT;
	if (r & POLLPRI)
		ev |= SLIRP_POLL_PRI;
	if (r & (POLLERR | POLLNVAL))
		ev |= SLIRP_POLL_ERR;
	if (r & POLLHUP)
		ev |= SLIRP_POLL_HUP;
	return ev;
}

static unsigned int nat_poll_fill(struct net_backend *b, struct pollfd *fds, unsigned int max,
				  bool want_rx, int *timeout_ms)
{
	struct nat_backend *n = (struct nat_backend *)b;
	n->fds = fds;
	n->max = max;
	n->nfds = 0;
	n->want_rx = want_rx;
	if (n->dns_fd >= 0 && max)
		fds[n->nfds++] = (struct pollfd){n->dns_fd, (short)(want_rx ? POLLIN : 0), 0};
	uint32_t t = UINT32_MAX;
	if (n->slirp)
		lib.pollfds_fill(n->slirp, &t, add_poll, n);
	int64_t wait = t == UINT32_MAX ? -1 : (int64_t)t, now = now_ms();
	for (int i = 0; i < NAT_TIMERS; i++) {
		const struct nat_timer *tm = &n->timers[i];
		if (tm->used && tm->expire_ms >= 0) {
			int64_t d = tm->expire_ms > now ? tm->expire_ms - now : 0;
			wait = wait < 0 || d < wait ? d : wait;
		}
	}
	for (int i = 0; i < DNS_WAITS; i++)
		if (n->waits[i].used) {
			int64_t d = n->waits[i].expires_ms > now ? n->waits[i].expires_ms - now : 0;
			wait = wait < 0 || d < wait ? d : wait;
		}
	if (wait >= 0 && (*timeout_ms < 0 || wait < *timeout_ms))
		*timeout_ms = (int)(wait > 60000 ? 60000 : wait);
	return n->nfds;
}

/* Replies from the host's resolver, back to the guests that asked. */
static void dns_replies(struct nat_backend *n)
{
	for (int k = 0; k < DNS_READS; k++) {
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t r = recvfrom(n->dns_fd, n->buf, sizeof(n->buf), MSG_TRUNC | MSG_DONTWAIT,
				     (struct sockaddr *)&from, &fl);
		if (r < 0)
			return; /* EAGAIN: nothing more */
		/* Only the resolver's answers: the socket is not connected (see dns_socket). */
		if (r < NET_DNS_HDR || fl != n->resolver_len ||
		    memcmp(&from, &n->resolver, fl) != 0)
			continue;
		uint16_t id = (uint16_t)(n->buf[0] << 8 | n->buf[1]);
		struct dns_wait *w = NULL;
		for (int i = 0; i < DNS_WAITS && !w; i++)
			if (n->waits[i].used && n->waits[i].our_id == id)
				w = &n->waits[i];
		if (!w)
			continue; /* late, or not asked for */
		n->buf[0] = (uint8_t)(w->q.id >> 8);
		n->buf[1] = (uint8_t)w->q.id;
		w->used = false;
		size_t len = net_dns_reply_frame(n->out, &w->q, n->buf, (size_t)r);
		if (len)
			n->b.deliver(n->b.deliver_ctx, n->out, len);
	}
}

static void dns_expire(struct nat_backend *n, int64_t now)
{
	for (int i = 0; i < DNS_WAITS; i++)
		if (n->waits[i].used && n->waits[i].expires_ms <= now) {
			n->waits[i].used = false;
			n->dns_dropped++;
		}
}

static int nat_poll_done(struct net_backend *b, const struct pollfd *fds, unsigned int nfds)
{
	struct nat_backend *n = (struct nat_backend *)b;
	if (n->start_failed)
		return -EIO; /* the reason in b->why */
	n->fds = (struct pollfd *)fds;
	n->nfds = nfds;
	if (n->dns_fd >= 0 && nfds && fds[0].revents)
		dns_replies(n);
	if (n->slirp)
		lib.pollfds_poll(n->slirp, 0, get_revents, n);
	n->nfds = 0;
	int64_t now = now_ms();
	for (int i = 0; i < NAT_TIMERS; i++) {
		struct nat_timer *t = &n->timers[i];
		if (!t->used || t->expire_ms < 0 || t->expire_ms > now)
			continue;
		t->expire_ms = -1;
		if (t->cb)
			t->cb(t->cb_opaque);
		else
			lib.handle_timer(n->slirp, t->id, t->cb_opaque);
	}
	dns_expire(n, now);
	return 0;
}

/* A guest's query to 10.0.2.3, to the host's resolver under an id of ours. */
static void dns_query(struct nat_backend *n, const struct net_dns_query *q)
{
	int64_t now = now_ms();
	dns_expire(n, now);
	struct dns_wait *w = NULL;
	for (int i = 0; i < DNS_WAITS && !w; i++)
		if (!n->waits[i].used)
			w = &n->waits[i];
	if (!w || q->payload_len > sizeof(n->buf)) {
		n->dns_dropped++;
		return;
	}
	uint16_t id;
	bool taken;
	do {
		if (getrandom(&id, sizeof(id), 0) != sizeof(id))
			id = (uint16_t)(now ^ (w - n->waits));
		taken = false;
		for (int i = 0; i < DNS_WAITS; i++)
			taken |= n->waits[i].used && n->waits[i].our_id == id;
	} while (taken);
	memcpy(n->buf, q->payload, q->payload_len);
	n->buf[0] = (uint8_t)(id >> 8);
	n->buf[1] = (uint8_t)id;
	if (sendto(n->dns_fd, n->buf, q->payload_len, MSG_DONTWAIT,
		   (const struct sockaddr *)&n->resolver, n->resolver_len) < 0) {
		n->dns_dropped++;
		return;
	}
	*w = (struct dns_wait){
		.used = true, .our_id = id, .expires_ms = now + DNS_WAIT_MS, .q = *q};
	w->q.payload = NULL;
}

/* A filtering NAT's verdict on a guest frame (see the top). */
static bool allowed(const struct nat_backend *n, const uint8_t *frame, size_t len)
{
	struct net_flow f;
	switch (net_frame_flow(frame, len, &f)) {
	case NET_FLOW_OLD:
		return true;
	case NET_FLOW_BAD:
		return false;
	case NET_FLOW_NEW:
		break;
	}
	bool udp = f.proto == 17;
	if (f.proto != 6 && !udp)
		return false; /* ICMP */
	uint32_t dst;
	memcpy(&dst, f.dst, 4);
	for (unsigned int i = 0; i < n->nr_allow; i++)
		if (n->allow[i].addr == dst && n->allow[i].port == f.dst_port &&
		    n->allow[i].udp == udp)
			return true;
	for (unsigned int i = 0; udp && i < UDP_PEERS; i++)
		if (n->peers[i].guest_port && n->peers[i].guest_port == f.src_port &&
		    n->peers[i].port == f.dst_port && memcmp(n->peers[i].addr, f.dst, 4) == 0)
			return true;
	return false;
}

/* libslirp for this NAT, with its published ports listening. 0, or -1 with msg set. */
static int nat_start(struct nat_backend *n, const struct net_nat_config *cfg, char *msg,
		     size_t msg_size)
{
	n->slirp = lib.new_(&n->sc, &nat_callbacks, n);
	if (!n->slirp) {
		snprintf(msg, msg_size, "libslirp would not start");
		return -1;
	}
	struct in_addr guest;
	inet_pton(AF_INET, GUEST_ADDR, &guest);
	for (unsigned int i = 0; cfg && i < cfg->nr_ports; i++) {
		const struct net_port *p = &cfg->ports[i];
		struct in_addr host = {.s_addr = p->host_addr};
		errno = 0;
		if (lib.add_hostfwd(n->slirp, p->udp, host, p->host_port, guest, p->guest_port) <
		    0) {
			char a[INET_ADDRSTRLEN];
			inet_ntop(AF_INET, &host, a, sizeof(a));
			snprintf(msg, msg_size, "publish %s:%u:%u%s: cannot listen there: %s", a,
				 p->host_port, p->guest_port, p->udp ? "/udp" : "",
				 errno ? strerror(errno) : "taken or not an address of this host");
			return -1;
		}
	}
	return 0;
}

/* On the unsandboxed thread: the library, and the NAT's libslirp instance. */
static void nat_start_job(void *arg)
{
	struct nat_backend *n = arg;
	if (!slirp_loaded())
		snprintf(n->b.why, sizeof(n->b.why), "%s", lib.error);
	else
		(void)nat_start(n, NULL, n->b.why, sizeof(n->b.why));
}

/*
 * A NAT made on demand, started at the guest's first frame (on the unsandboxed thread; this
 * one waits): false when it cannot start (the reason in b.why; said once, by poll_done).
 */
static bool nat_started(struct nat_backend *n)
{
	if (n->slirp)
		return true;
	if (n->start_failed)
		return false;
	int64_t t0 = now_ms();
	if (!n->unsandboxed(n->unsandboxed_ctx, nat_start_job, n))
		snprintf(n->b.why, sizeof(n->b.why), "the VM is stopping");
	n->start_ms = now_ms() - t0;
	n->start_failed = !n->slirp;
	return n->slirp != NULL;
}

static void nat_send(struct net_backend *b, const uint8_t *frame, size_t len)
{
	struct nat_backend *n = (struct nat_backend *)b;
	if (!nat_started(n)) {
		b->dropped++;
		return;
	}
	if (n->filter && !allowed(n, frame, len)) {
		n->blocked++;
		b->dropped++;
		uint8_t rst[NET_TCP_RESET_LEN];
		if (net_tcp_reset_frame(rst, frame, len))
			b->deliver(b->deliver_ctx, rst, sizeof(rst));
		return;
	}
	struct net_dns_query q;
	if (n->dns_fd >= 0 && net_dns_parse_query(frame, len, n->dns_ip, &q)) {
		dns_query(n, &q);
		return;
	}
	uint16_t guest_port;
	if (n->dns_fd >= 0 && len <= sizeof(n->readdressed) &&
	    (guest_port = net_tcp_redirect(n->readdressed, frame, len, true, n->dns_ip,
					   NET_DNS_PORT, n->resolver_ip, n->resolver_port))) {
		if (!n->dns_tcp) { /* a resolver libslirp cannot reach for it */
			uint8_t rst[NET_TCP_RESET_LEN];
			if (net_tcp_reset_frame(rst, frame, len))
				b->deliver(b->deliver_ctx, rst, sizeof(rst));
			return;
		}
		dns_tcp_flow(n, guest_port, true);
		frame = n->readdressed;
	}
	if (!socket_room(n) && net_frame_opens_socket(frame, len)) {
		n->refused++;
		b->dropped++;
		return;
	}
	lib.input(n->slirp, frame, (int)len);
}

static void nat_close(struct net_backend *b)
{
	struct nat_backend *n = (struct nat_backend *)b;
	if (n->slirp)
		lib.cleanup(n->slirp);
	if (n->dns_fd >= 0)
		close(n->dns_fd);
	free(n->allow);
	free(n->ports);
	free(n);
}

static void nat_print_stats(const struct net_backend *b, FILE *f)
{
	const struct nat_backend *n = (const struct nat_backend *)b;
	fprintf(f,
		"ec1 virtio-net: nat: %u host sockets open, %llu frames refused at the limit of "
		"%d, %llu DNS queries unanswered, %llu guest errors, %llu libslirp messages\n",
		n->sockets, (unsigned long long)n->refused, NAT_SOCKETS,
		(unsigned long long)n->dns_dropped, (unsigned long long)n->guest_errors,
		(unsigned long long)__atomic_load_n(&slirp_log_messages, __ATOMIC_RELAXED));
	if (n->filter)
		fprintf(f, "ec1 virtio-net: nat: %llu frames blocked (not allowed)\n",
			(unsigned long long)n->blocked);
	if (n->on_demand && n->slirp)
		fprintf(f,
			"ec1 virtio-net: nat: started at the guest's first frame, which waited "
			"%lld ms for it\n",
			(long long)n->start_ms);
	else if (n->on_demand && !n->start_failed)
		fprintf(f, "ec1 virtio-net: nat: never started (the guest sent no frame)\n");
}

static const struct net_backend_ops nat_ops = {
	.name = "nat",
	.poll_fill = nat_poll_fill,
	.poll_done = nat_poll_done,
	.send = nat_send,
	.close = nat_close,
	.print_stats = nat_print_stats,
};

/*
 * The host's resolver (the first in its resolv.conf; the loopback when it names none), and a
 * socket for it. Not connected: a host whose resolver cannot be reached now (no network yet)
 * loses the queries until it can, not DNS for the VM's lifetime.
 */
static int dns_socket(struct nat_backend *n, const struct sockaddr_in *resolver, char *msg,
		      size_t msg_size)
{
	struct __res_state st;
	memset(&st, 0, sizeof(st));
	struct sockaddr_storage *ss = &n->resolver;
	n->resolver_len = 0;
	if (resolver) {
		memcpy(ss, resolver, sizeof(*resolver));
		n->resolver_len = sizeof(*resolver);
	} else if (res_ninit(&st) == 0) {
		for (int i = 0; i < st.nscount && !n->resolver_len; i++) {
			if (st.nsaddr_list[i].sin_family == AF_INET) {
				memcpy(ss, &st.nsaddr_list[i], sizeof(struct sockaddr_in));
				n->resolver_len = sizeof(struct sockaddr_in);
			} else if (st._u._ext.nsaddrs[i] &&
				   st._u._ext.nsaddrs[i]->sin6_family == AF_INET6) {
				memcpy(ss, st._u._ext.nsaddrs[i], sizeof(struct sockaddr_in6));
				n->resolver_len = sizeof(struct sockaddr_in6);
			}
		}
		res_nclose(&st);
	}
	if (!n->resolver_len) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		*sin = (struct sockaddr_in){.sin_family = AF_INET,
					    .sin_port = htons(NET_DNS_PORT),
					    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		n->resolver_len = sizeof(*sin);
	}
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		memcpy(n->resolver_ip, &sin->sin_addr, 4);
		n->resolver_port = ntohs(sin->sin_port);
		/* libslirp takes addresses in its own network (10.0.2.0/24) for its own. */
		n->dns_tcp = !(n->resolver_ip[0] == 10 && n->resolver_ip[1] == 0 &&
			       n->resolver_ip[2] == 2);
	}
	int fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		snprintf(msg, msg_size, "the host's resolver: socket: %s", strerror(errno));
	return fd;
}

struct net_backend *net_nat_backend(const struct net_nat_config *cfg, char *msg, size_t msg_size)
{
	/* Published ports listen from set-up on, so such a NAT starts now. */
	bool on_demand =
		!cfg->nr_ports && cfg->unsandboxed && loader_on_demand() && slirp_findable();
	if (!on_demand && !slirp_loaded()) {
		snprintf(msg, msg_size, "%s", lib.error);
		return NULL;
	}
	fd_budget_init(); /* the guest's sockets hold descriptors: the budget bounds them */
	struct nat_backend *n = calloc(1, sizeof(*n));
	if (!n) {
		snprintf(msg, msg_size, "out of memory");
		return NULL;
	}
	n->b.ops = &nat_ops;
	n->b.max_fds = 1 + 2 * NAT_SOCKETS + cfg->nr_ports;
	/*
	 * The guest's link ends at libslirp, which takes IP packets of any size up to 65,520 bytes
	 * (slirp4netns's --mtu); nothing beyond the link sees the MTU. Measured in the rig (16 MiB
	 * each way, MB/s guest->host / host->guest, three runs each): 1,500: 6-9 / 47-48; 9,000:
	 * 17-19 / 61-64; 16,384: 24-27 / 63-69; 32,768: 30-33 / 67-68; 65,520: 28-32 / 1 (libslirp
	 * then has one segment in flight to the guest, which delays its ACK: stop and wait).
	 */
	n->b.mtu = NAT_MTU;
	n->dns_fd = -1;
	n->on_demand = on_demand;
	n->unsandboxed = cfg->unsandboxed;
	n->unsandboxed_ctx = cfg->unsandboxed_ctx;
	inet_pton(AF_INET, DNS_ADDR, n->dns_ip);
	n->filter = cfg->restricted && cfg->nr_allow;
	if (n->filter) {
		n->allow = calloc(cfg->nr_allow, sizeof(*n->allow));
		n->ports = calloc(cfg->nr_ports + 1, sizeof(*n->ports));
		if (!n->allow || !n->ports) {
			snprintf(msg, msg_size, "out of memory");
			nat_close(&n->b);
			return NULL;
		}
		memcpy(n->allow, cfg->allow, cfg->nr_allow * sizeof(*n->allow));
		n->nr_allow = cfg->nr_allow;
		if (cfg->nr_ports)
			memcpy(n->ports, cfg->ports, cfg->nr_ports * sizeof(*n->ports));
		n->nr_ports = cfg->nr_ports;
	}
	if (!cfg->restricted && (n->dns_fd = dns_socket(n, cfg->resolver, msg, msg_size)) < 0) {
		nat_close(&n->b);
		return NULL;
	}
	n->sc = (SlirpConfig){
		.version = 4,
		.restricted = cfg->restricted && !n->filter,
		.in_enabled = true,
		.if_mtu = NAT_MTU,
		.if_mru = NAT_MTU,
		.disable_dns = true, /* relayed above */
	};
	inet_pton(AF_INET, "10.0.2.0", &n->sc.vnetwork);
	inet_pton(AF_INET, "255.255.255.0", &n->sc.vnetmask);
	inet_pton(AF_INET, GATEWAY_ADDR, &n->sc.vhost);
	inet_pton(AF_INET, GUEST_ADDR, &n->sc.vdhcp_start);
	inet_pton(AF_INET, DNS_ADDR, &n->sc.vnameserver);
	if (!on_demand && nat_start(n, cfg, msg, msg_size) < 0) {
		nat_close(&n->b);
		return NULL;
	}
	return &n->b;
}
