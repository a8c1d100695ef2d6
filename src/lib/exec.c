/*
 * ec1_exec_*: a process in a running VM, through its exec socket (a unix socket the VMM maps to
 * init's exec agent on vsock; the frames are in guest/abi.h). One connection per process: the
 * request first, then stdin, signals and terminal sizes one way, stdout, stderr and the exit
 * status the other. The guest's frames are checked (ec1_exec_frame) before anything is done
 * with them: a guest says only how much it wrote where, and one status.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../guest/abi.h"
#include "ec1_internal.h"

#define HDR	  EC1_EXEC_HEADER
#define MAXP	  EC1_EXEC_MAX_PAYLOAD
#define OBUF_SIZE (2 * (HDR + MAXP) + 256)
#define RESERVE	  64 /* of obuf, kept for SIGNAL and RESIZE frames */

struct ec1_exec {
	struct sockaddr_un addr;
	int sock;
	int wake; /* eventfd: a signal or a size to send */
	int in_fd, out_fd, err_fd;
	bool started, in_open, done;
	uint64_t signals;	  /* pending signals, bit sig-1 (atomic) */
	uint32_t resize;	  /* pending size: 1 << 31 | rows << 15 | cols (atomic) */
	uint8_t close_owed;	  /* CLOSE frames to send: bit 1 stdout, bit 2 stderr */
	uint8_t ibuf[HDR + MAXP]; /* frames from the guest */
	size_t ilen;
	uint8_t obuf[OBUF_SIZE]; /* frames to the guest */
	size_t olen, ooff;
	char message[512];
};

static int fail(struct ec1_exec *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct ec1_exec *e, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return code;
}

#define put32 ec1_exec_put32
#define get32 ec1_exec_get32

ssize_t ec1_exec_frame(const uint8_t *buf, size_t len, uint32_t *type, const uint8_t **payload,
		       uint32_t *plen)
{
	if (len < HDR)
		return 0;
	uint32_t t = get32(buf), n = get32(buf + 4);
	switch (t) {
	case EC1_EXEC_STDOUT:
	case EC1_EXEC_STDERR:
		if (n == 0 || n > MAXP)
			return -1;
		break;
	case EC1_EXEC_EXIT:
		if (n != 4)
			return -1;
		break;
	default:
		return -1;
	}
	if (len - HDR < n)
		return 0;
	if (t == EC1_EXEC_EXIT && get32(buf + HDR) > 255)
		return -1;
	*type = t;
	*payload = buf + HDR;
	*plen = n;
	return (ssize_t)(HDR + n);
}

int ec1_exec_new(const char *socket_path, struct ec1_exec **out)
{
	if (!out)
		return EC1_EINVAL;
	*out = NULL;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (!socket_path || !*socket_path || strlen(socket_path) >= sizeof(a.sun_path))
		return EC1_EINVAL;
	struct ec1_exec *e = calloc(1, sizeof(*e));
	if (!e)
		return EC1_ENOMEM;
	memcpy(a.sun_path, socket_path, strlen(socket_path));
	e->addr = a;
	e->sock = e->in_fd = e->out_fd = e->err_fd = -1;
	e->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (e->wake < 0) {
		free(e);
		return EC1_ENOMEM;
	}
	*out = e;
	return EC1_OK;
}

void ec1_exec_free(struct ec1_exec *e)
{
	if (!e)
		return;
	if (e->sock >= 0)
		close(e->sock); /* the agent kills a process whose host is gone */
	close(e->wake);
	free(e);
}

const char *ec1_exec_message(const struct ec1_exec *e)
{
	return e ? e->message : "no exec";
}

/* Appends a frame to obuf; false when it does not fit. */
static bool queue(struct ec1_exec *e, uint32_t type, const void *data, size_t len)
{
	if (e->olen + HDR + len > OBUF_SIZE)
		return false;
	e->olen += ec1_exec_frame_put(e->obuf + e->olen, type, data, (unsigned int)len);
	return true;
}

/* The request's payload (guest/abi.h) into buf; its length, or 0 when over size. */
static size_t encode_request(const struct ec1_exec_config *c, char *buf, size_t size)
{
	const char *const def_argv[] = {c->exec_path, NULL};
	const char *const *argv = c->argv ? c->argv : def_argv;
	const char *const no_env[] = {NULL};
	const char *const *envp = c->envp ? c->envp : no_env;
	size_t argc = 0, envc = 0, len = 0;
	while (argv[argc])
		argc++;
	while (envp[envc])
		envc++;
	char head[96];
	int n = snprintf(head, sizeof(head), "%s%c%u%c%u%c%u%c", EC1_EXEC_MAGIC, 0,
			 (c->tty ? EC1_EXEC_F_TTY : 0u) |
				 (c->stdin_fd >= 0 ? EC1_EXEC_F_STDIN : 0u),
			 0, (unsigned int)c->tty_rows, 0, (unsigned int)c->tty_cols, 0);
#define PUT(s, l)                           \
	do {                                \
		size_t l_ = (l);            \
		if (len + l_ > size)        \
			return 0;           \
		memcpy(buf + len, (s), l_); \
		len += l_;                  \
	} while (0)
#define PUTS(s) PUT((s), strlen(s) + 1)
	PUT(head, (size_t)n);
	PUTS(c->exec_path);
	PUTS(c->workdir ? c->workdir : "");
	char num[24];
	snprintf(num, sizeof(num), "%zu", argc);
	PUTS(num);
	for (size_t i = 0; i < argc; i++)
		PUTS(argv[i]);
	snprintf(num, sizeof(num), "%zu", envc);
	PUTS(num);
	for (size_t i = 0; i < envc; i++)
		PUTS(envp[i]);
#undef PUTS
#undef PUT
	return len;
}

static int check_config(struct ec1_exec *e, const struct ec1_exec_config *c)
{
	if (!c)
		return fail(e, EC1_EINVAL, "exec: NULL config");
	if (!c->exec_path || !*c->exec_path)
		return fail(e, EC1_EINVAL, "exec.exec_path: empty");
	if (c->argv && !c->argv[0])
		return fail(e, EC1_EINVAL, "exec.argv: empty (argv[0] is required)");
	if (c->workdir && c->workdir[0] != '/')
		return fail(e, EC1_EINVAL, "exec.workdir: \"%s\": must be absolute", c->workdir);
	for (size_t i = 0; c->envp && c->envp[i]; i++)
		if (!strchr(c->envp[i], '=') || c->envp[i][0] == '=')
			return fail(e, EC1_EINVAL, "exec.envp[%zu]: \"%s\": expected K=V", i,
				    c->envp[i]);
	return EC1_OK;
}

int ec1_exec_start(struct ec1_exec *e, const struct ec1_exec_config *c)
{
	if (!e)
		return EC1_EINVAL;
	e->message[0] = 0;
	if (e->started)
		return fail(e, EC1_ESTATE, "exec: already started");
	int err = check_config(e, c);
	if (err)
		return err;
	/* The request goes straight into the (empty) output buffer, behind its header. */
	size_t len = encode_request(c, (char *)e->obuf + HDR, MAXP);
	if (!len)
		return fail(e, EC1_EINVAL,
			    "exec.argv, exec.envp: more than %d bytes together (the request's "
			    "limit)",
			    MAXP - 64);
	e->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (e->sock < 0 || connect(e->sock, (struct sockaddr *)&e->addr, sizeof(e->addr)) < 0) {
		int saved = errno;
		if (e->sock >= 0)
			close(e->sock);
		e->sock = -1;
		if (saved == ENOENT || saved == ECONNREFUSED)
			return fail(e, EC1_ESTATE, "exec socket %s: %s (the VM is not running)",
				    e->addr.sun_path,
				    saved == ENOENT ? "no such socket" : "nothing listens");
		return fail(e, EC1_EBACKEND, "exec socket %s: %s", e->addr.sun_path,
			    strerror(saved));
	}
	put32(e->obuf, EC1_EXEC_REQUEST);
	put32(e->obuf + 4, (uint32_t)len);
	e->olen = HDR + len;
	fcntl(e->sock, F_SETFL, O_NONBLOCK);
	e->in_fd = c->stdin_fd;
	e->out_fd = c->stdout_fd;
	e->err_fd = c->stderr_fd;
	e->in_open = e->in_fd >= 0;
	e->started = true;
	return EC1_OK;
}

int ec1_exec_signal(struct ec1_exec *e, int sig)
{
	if (!e || sig < 1 || sig > 64)
		return EC1_EINVAL;
	__atomic_fetch_or(&e->signals, 1ull << (sig - 1), __ATOMIC_SEQ_CST);
	uint64_t one = 1;
	if (write(e->wake, &one, sizeof(one)) < 0)
		return EC1_EBACKEND; /* only when 2^64 - 2 wake-ups wait: not reached */
	return EC1_OK;
}

int ec1_exec_resize(struct ec1_exec *e, uint16_t rows, uint16_t cols)
{
	if (!e || rows > 0x7fff)
		return EC1_EINVAL;
	__atomic_store_n(&e->resize, 1u << 31 | (uint32_t)rows << 15 | cols, __ATOMIC_SEQ_CST);
	uint64_t one = 1;
	if (write(e->wake, &one, sizeof(one)) < 0)
		return EC1_EBACKEND;
	return EC1_OK;
}

/*
 * Signals and a size asked for meanwhile, and streams whose reader went away, as frames (they
 * wait while obuf is full).
 */
static void take_requests(struct ec1_exec *e)
{
	uint64_t v;
	if (read(e->wake, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	uint64_t sigs = __atomic_exchange_n(&e->signals, 0, __ATOMIC_SEQ_CST);
	for (int i = 0; i < 64; i++) {
		if (!(sigs & (1ull << i)))
			continue;
		uint8_t p[4];
		put32(p, (uint32_t)i + 1);
		if (!queue(e, EC1_EXEC_SIGNAL, p, sizeof(p)))
			__atomic_fetch_or(&e->signals, 1ull << i, __ATOMIC_SEQ_CST);
	}
	uint32_t r = __atomic_exchange_n(&e->resize, 0, __ATOMIC_SEQ_CST);
	if (r) {
		uint16_t rows = (uint16_t)((r >> 15) & 0x7fff), cols = (uint16_t)r;
		uint8_t p[4] = {(uint8_t)rows, (uint8_t)(rows >> 8), (uint8_t)cols,
				(uint8_t)(cols >> 8)};
		if (!queue(e, EC1_EXEC_RESIZE, p, sizeof(p)))
			__atomic_store_n(&e->resize, r, __ATOMIC_SEQ_CST);
	}
	for (uint8_t stream = 1; stream <= 2; stream++)
		if ((e->close_owed & stream) && queue(e, EC1_EXEC_CLOSE, &stream, 1))
			e->close_owed &= (uint8_t)~stream;
}

/*
 * The guest's output to a host fd (stream 1 stdout, 2 stderr). One that fails (its reader gone:
 * EPIPE) drops the rest, and the guest is told (CLOSE), so that the process's writes fail from
 * then on as they would locally, rather than go on into nothing.
 */
static void deliver(struct ec1_exec *e, uint8_t stream, const uint8_t *p, size_t n)
{
	int *fd = stream == 1 ? &e->out_fd : &e->err_fd;
	while (*fd >= 0 && n) {
		ssize_t w = write(*fd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && errno == EAGAIN) {
			struct pollfd pf = {.fd = *fd, .events = POLLOUT};
			poll(&pf, 1, -1);
		} else if (w < 0 && errno != EINTR) {
			*fd = -1;
			e->close_owed |= stream; /* sent by take_requests() */
		}
	}
}

/* Frames in ibuf: output delivered, the status taken. 1: exited; 0: more; -1: malformed. */
static int take_frames(struct ec1_exec *e, int *status)
{
	size_t off = 0;
	int ret = 0;
	while (ret == 0) {
		uint32_t type, n;
		const uint8_t *p;
		ssize_t used = ec1_exec_frame(e->ibuf + off, e->ilen - off, &type, &p, &n);
		if (used < 0) {
			ret = fail(e, -1,
				   "exec: the guest sent a malformed frame (type %u, length %u)",
				   get32(e->ibuf + off), get32(e->ibuf + off + 4));
			break;
		}
		if (used == 0)
			break;
		off += (size_t)used;
		if (type == EC1_EXEC_EXIT) {
			*status = (int)get32(p);
			ret = 1;
		} else {
			deliver(e, type == EC1_EXEC_STDOUT ? 1 : 2, p, n);
		}
	}
	memmove(e->ibuf, e->ibuf + off, e->ilen - off);
	e->ilen -= off;
	return ret;
}

int ec1_exec_wait(struct ec1_exec *e, int *status)
{
	if (!e || !status)
		return EC1_EINVAL;
	e->message[0] = 0;
	if (!e->started || e->done)
		return fail(e, EC1_ESTATE,
			    e->done ? "exec: already waited for" : "exec: not started");
	for (;;) {
		take_requests(e);
		bool room = e->olen + HDR + MAXP + RESERVE <= OBUF_SIZE;
		struct pollfd p[3] = {
			{.fd = e->sock, .events = POLLIN | (e->ooff < e->olen ? POLLOUT : 0)},
			{.fd = e->in_open && room ? e->in_fd : -1, .events = POLLIN},
			{.fd = e->wake, .events = POLLIN},
		};
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return fail(e, EC1_EBACKEND, "exec: poll: %s", strerror(errno));
		}
		if (p[1].revents) {
			ssize_t n = read(e->in_fd, e->obuf + e->olen + HDR, MAXP);
			if (n > 0) {
				put32(e->obuf + e->olen, EC1_EXEC_STDIN);
				put32(e->obuf + e->olen + 4, (uint32_t)n);
				e->olen += HDR + (size_t)n;
			} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
				queue(e, EC1_EXEC_STDIN, NULL, 0); /* the end of its input */
				e->in_open = false;
			}
		}
		while (e->ooff < e->olen) {
			ssize_t n =
				send(e->sock, e->obuf + e->ooff, e->olen - e->ooff, MSG_NOSIGNAL);
			if (n > 0)
				e->ooff += (size_t)n;
			else if (n < 0 && errno == EINTR)
				continue;
			else if (n < 0 && errno == EAGAIN)
				break;
			else
				break; /* the VM went away: the read below says so */
		}
		if (e->ooff == e->olen)
			e->ooff = e->olen = 0;
		else if (e->ooff > OBUF_SIZE / 2) {
			memmove(e->obuf, e->obuf + e->ooff, e->olen - e->ooff);
			e->olen -= e->ooff;
			e->ooff = 0;
		}
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		ssize_t n = read(e->sock, e->ibuf + e->ilen, sizeof(e->ibuf) - e->ilen);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			e->done = true;
			return fail(e, EC1_EGUEST,
				    "exec: the VM closed the connection before the process's exit "
				    "status (the VM stopped, or its init went away)");
		}
		e->ilen += (size_t)n;
		int r = take_frames(e, status);
		if (r) {
			e->done = true;
			close(e->sock);
			e->sock = -1;
			return r > 0 ? EC1_OK : EC1_EGUEST;
		}
	}
}
