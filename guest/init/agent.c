/*
 * init's exec agent (agent.h): one process, one poll loop, a session per host connection.
 *
 * Each session owns its connection, the process it started (a process group of its own, so that
 * signals reach what the process starts too) and the process's stdin, stdout and stderr (pipes,
 * or one terminal with EC1_EXEC_F_TTY). Nothing blocks: a process writing faster than the host
 * reads waits on its full pipe, since the agent reads a pipe only when the frame it last sent
 * has gone; a host sending stdin faster than the process reads waits on its full connection,
 * since the agent stops reading it once two frames' worth wait; SIGNAL and RESIZE frames behind
 * waiting input are still seen (they are taken out of order). The exit status goes last, after
 * everything the process wrote before it exited.
 */
#define _GNU_SOURCE
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../abi.h"
#include "net.h"

#define HDR	  EC1_EXEC_HEADER
#define MAXP	  EC1_EXEC_MAX_PAYLOAD
#define RBUF_SIZE (2 * (HDR + MAXP))
#define WBUF_SIZE (HDR + MAXP + 512) /* a data frame, then room for an error and EXIT */

struct session {
	int conn;  /* -1: the host is gone (or the slot is free, with pid 0 and no buffers) */
	pid_t pid; /* the process (its group's id), 0 before the request */
	bool used, exited, exit_queued, tty, stdin_open;
	int status;
	int in_fd;	    /* the process's stdin: a pipe's write end, the terminal, or -1 */
	int out_fd, err_fd; /* what it writes: pipes' read ends (or the terminal as out), or -1 */
	bool out_again, err_again; /* the last read found nothing (EAGAIN) */
	uint8_t *rbuf;		   /* frames from the host */
	size_t rlen;
	size_t stdin_done;  /* bytes of the first STDIN frame in rbuf already written */
	bool stdin_blocked; /* that frame waits for the process's stdin to take more */
	uint8_t *wbuf;	    /* frames to the host */
	size_t wlen, woff;
	long linger_until; /* EXIT sent: until the host closes, or this time (ms) passes */
};

#define LINGER_MS 2000

static struct session sessions[EC1_EXEC_MAX_SESSIONS];

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
static char *const *base_env;
static const char *base_workdir;

int exec_search(const char *path, char *const *argv, char *const *envp)
{
	if (strchr(path, '/')) {
		execve(path, argv, envp);
		return errno;
	}
	const char *search = NULL;
	for (char *const *e = envp; *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			search = *e + 5;
	if (!search)
		search = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	int saved = ENOENT;
	while (*search) {
		const char *colon = strchrnul(search, ':');
		char full[4096];
		snprintf(full, sizeof(full), "%.*s/%s", (int)(colon - search), search, path);
		execve(full, argv, envp);
		if (errno != ENOENT && errno != ENOTDIR)
			saved = errno;
		search = *colon ? colon + 1 : colon;
	}
	return saved;
}

#define put32 ec1_exec_put32
#define get32 ec1_exec_get32

/* Appends a frame to what goes to the host; false when it does not fit. */
static bool queue(struct session *s, uint32_t type, const void *data, size_t len)
{
	if (!s->wbuf || s->wlen + HDR + len > WBUF_SIZE)
		return false;
	s->wlen += ec1_exec_frame_put(s->wbuf + s->wlen, type, data, (unsigned int)len);
	return true;
}

/* The process's status, after a message on its stderr; the session then ends. */
static void queue_exit(struct session *s, int status, const char *why)
{
	if (why)
		queue(s, EC1_EXEC_STDERR, why, strlen(why));
	uint8_t st[4];
	put32(st, (uint32_t)status);
	queue(s, EC1_EXEC_EXIT, st, sizeof(st));
	s->exit_queued = true;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The process's stdin, stdout and stderr, closed (a terminal once). */
static void close_streams(struct session *s)
{
	if (s->in_fd != s->out_fd)
		close_fd(&s->in_fd);
	s->in_fd = -1;
	close_fd(&s->out_fd);
	close_fd(&s->err_fd);
	s->stdin_open = s->stdin_blocked = false;
}

/* sig to the process's group; before the child's setsid() there is none: to the child alone. */
static void signal_group(struct session *s, int sig)
{
	if (s->pid > 0 && !s->exited && kill(-s->pid, sig) < 0 && errno == ESRCH)
		kill(s->pid, sig);
}

/* The host is gone: whatever still runs is killed; the slot is freed once it is reaped. */
static void detach(struct session *s)
{
	signal_group(s, SIGKILL);
	close_fd(&s->conn);
	close_streams(s); /* nobody reads or writes them any more: nothing to poll for */
}

static void release(struct session *s)
{
	close_fd(&s->conn);
	close_streams(s);
	free(s->rbuf);
	free(s->wbuf);
	memset(s, 0, sizeof(*s));
	s->conn = s->in_fd = s->out_fd = s->err_fd = -1;
}

/* The environment: the VM's, then the request's entries (replacing those of the same name). */
static char **merge_env(char *const *req)
{
	size_t nb = 0, nr = 0;
	while (base_env[nb])
		nb++;
	while (req[nr])
		nr++;
	char **env = calloc(nb + nr + 1, sizeof(char *));
	if (!env)
		return NULL;
	size_t n = 0;
	for (size_t i = 0; i < nb; i++) {
		size_t klen = strcspn(base_env[i], "=");
		bool replaced = false;
		for (size_t k = 0; k < nr && !replaced; k++)
			replaced = strncmp(req[k], base_env[i], klen + 1) == 0;
		if (!replaced)
			env[n++] = base_env[i];
	}
	for (size_t k = 0; k < nr; k++)
		env[n++] = req[k];
	return env;
}

/* In the forked child: its streams, a session and process group, its directory; then exec. */
static void child(const struct exec_request *r, int fds[3], char **env)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	if (r->flags & EC1_EXEC_F_TTY)
		ioctl(fds[0], TIOCSCTTY, 0);
	for (int i = 0; i < 3; i++)
		if (fds[i] == i ? fcntl(i, F_SETFD, 0) < 0 : dup2(fds[i], i) < 0)
			_exit(EC1_EXIT_SETUP);
	for (int i = 0; i < 3; i++)
		if (fds[i] > 2 && (i == 0 || fds[i] != fds[i - 1]))
			close(fds[i]);
	const char *dir = *r->workdir ? r->workdir : base_workdir;
	if (chdir(dir) < 0) {
		dprintf(2, "ec1 exec: workdir %s: %s\n", dir, strerror(errno));
		_exit(EC1_EXIT_SETUP);
	}
	int e = exec_search(r->exec_path, r->argv, env);
	dprintf(2, "ec1 exec: %s: %s\n", r->exec_path, strerror(e));
	_exit(e == ENOENT || e == ENOTDIR ? EC1_EXIT_NOTFOUND : EC1_EXIT_NOEXEC);
}

/* A REQUEST: the process started with its streams; or a message and status 125. */
static void start(struct session *s, const uint8_t *payload, size_t len)
{
	struct exec_request r;
	char msg[160];
	char *copy = malloc(len + 1); /* the parser wants a NUL after the payload */
	if (!copy) {
		queue_exit(s, EC1_EXIT_SETUP, "ec1 exec: out of memory\n");
		return;
	}
	memcpy(copy, payload, len);
	copy[len] = 0;
	if (exec_request_parse(copy, len, &r) < 0) {
		free(copy);
		queue_exit(s, EC1_EXIT_SETUP, "ec1 exec: malformed request\n");
		return;
	}
	int child_fds[3] = {-1, -1, -1}, p[2];
	bool ok = true;
	s->tty = r.flags & EC1_EXEC_F_TTY;
	if (s->tty) {
		struct winsize ws = {.ws_row = r.rows, .ws_col = r.cols};
		int master, slave;
		ok = openpty(&master, &slave, NULL, NULL, &ws) == 0;
		if (ok) {
			fcntl(master, F_SETFD, FD_CLOEXEC);
			fcntl(slave, F_SETFD, FD_CLOEXEC);
			fcntl(master, F_SETFL, O_NONBLOCK);
			s->in_fd = s->out_fd = master;
			child_fds[0] = child_fds[1] = child_fds[2] = slave;
		}
	} else {
		if (r.flags & EC1_EXEC_F_STDIN) {
			ok = pipe2(p, O_CLOEXEC) == 0;
			if (ok) {
				child_fds[0] = p[0];
				s->in_fd = p[1];
				fcntl(s->in_fd, F_SETFL, O_NONBLOCK);
			}
		} else {
			ok = (child_fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;
		}
		for (int i = 1; i < 3 && ok; i++) {
			ok = pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0;
			if (ok) {
				child_fds[i] = p[1];
				*(i == 1 ? &s->out_fd : &s->err_fd) = p[0];
				fcntl(p[1], F_SETFL, 0);
			}
		}
	}
	s->stdin_open = s->in_fd >= 0;
	char **env = ok ? merge_env(r.envp) : NULL;
	pid_t pid = env ? fork() : -1;
	if (pid == 0)
		child(&r, child_fds, env);
	int err = errno;
	free(env);
	exec_request_free(&r);
	free(copy);
	for (int i = 0; i < 3; i++)
		if (child_fds[i] >= 0 && (i == 0 || child_fds[i] != child_fds[i - 1]))
			close(child_fds[i]);
	if (pid < 0) {
		snprintf(msg, sizeof(msg), "ec1 exec: starting the process: %s\n", strerror(err));
		queue_exit(s, EC1_EXIT_SETUP, msg);
		return;
	}
	s->pid = pid;
}

static void apply_signal(struct session *s, const uint8_t *payload, size_t len)
{
	uint32_t sig = len == 4 ? get32(payload) : 0;
	if (sig >= 1 && sig < 65)
		signal_group(s, (int)sig);
}

static void apply_resize(struct session *s, const uint8_t *payload, size_t len)
{
	if (len != 4 || !s->tty || s->in_fd < 0)
		return;
	struct winsize ws = {.ws_row = (unsigned short)(payload[0] | payload[1] << 8),
			     .ws_col = (unsigned short)(payload[2] | payload[3] << 8)};
	ioctl(s->in_fd, TIOCSWINSZ, &ws); /* the terminal's foreground group gets SIGWINCH */
}

/*
 * The host's reader of stdout (1) or stderr (2) went away: the pipe's read end closes, so the
 * process's next write there fails (EPIPE, SIGPIPE) as it would locally. A terminal, which is
 * stdout and stdin at once, hangs up (its session gets SIGHUP).
 */
static void apply_close(struct session *s, const uint8_t *payload, size_t len)
{
	if (len != 1 || (payload[0] != 1 && payload[0] != 2))
		return;
	if (payload[0] == 2) {
		close_fd(&s->err_fd);
		return;
	}
	if (s->tty && s->in_fd == s->out_fd) {
		s->in_fd = -1;
		s->stdin_open = false;
		s->stdin_done = 0;
	}
	close_fd(&s->out_fd);
}

/* Input for the process: true once the frame's bytes are all written (or dropped). */
static bool feed_stdin(struct session *s, const uint8_t *payload, size_t len)
{
	if (!s->stdin_open)
		return true;
	if (len == 0) { /* end of input; a terminal has no such thing: the process reads on */
		if (!s->tty)
			close_fd(&s->in_fd);
		s->stdin_open = s->tty;
		return true;
	}
	while (s->stdin_done < len) {
		ssize_t n = write(s->in_fd, payload + s->stdin_done, len - s->stdin_done);
		if (n > 0) {
			s->stdin_done += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno == EAGAIN) {
			return false;
		} else { /* the process closed its stdin: the rest is dropped */
			if (!s->tty)
				close_fd(&s->in_fd);
			s->stdin_open = false;
			break;
		}
	}
	s->stdin_done = 0;
	return true;
}

/*
 * The complete frames in rbuf, in order, except that a STDIN frame the process cannot take yet
 * stays (with those after it) while SIGNAL and RESIZE frames behind it are applied. A frame the
 * host may not send ends the session.
 */
static void take_frames(struct session *s)
{
	size_t off = 0, kept = 0;
	bool stdin_waits = false;
	while (s->conn >= 0 && s->rlen - off >= HDR) {
		uint8_t *f = s->rbuf + off;
		uint32_t type = get32(f), len = get32(f + 4);
		if (len > MAXP || (s->pid == 0 && !s->exit_queued && type != EC1_EXEC_REQUEST)) {
			detach(s);
			return;
		}
		if (s->rlen - off < HDR + len)
			break;
		bool done = true;
		switch (type) {
		case EC1_EXEC_REQUEST:
			if (s->pid != 0 || s->exit_queued) {
				detach(s);
				return;
			}
			start(s, f + HDR, len);
			break;
		case EC1_EXEC_STDIN:
			done = !stdin_waits && feed_stdin(s, f + HDR, len);
			stdin_waits = !done;
			break;
		case EC1_EXEC_SIGNAL:
			apply_signal(s, f + HDR, len);
			break;
		case EC1_EXEC_RESIZE:
			apply_resize(s, f + HDR, len);
			break;
		case EC1_EXEC_CLOSE:
			apply_close(s, f + HDR, len);
			break;
		default:
			detach(s);
			return;
		}
		if (!done) {
			memmove(s->rbuf + kept, f, HDR + len);
			kept += HDR + len;
		}
		off += HDR + len;
	}
	memmove(s->rbuf + kept, s->rbuf + off, s->rlen - off);
	s->rlen = kept + s->rlen - off;
	s->stdin_blocked = stdin_waits;
}

/* What the process wrote, a frame at a time; *again when there was nothing (EAGAIN). */
static void read_output(struct session *s, int *fd, uint32_t type, bool *again)
{
	*again = false;
	if (*fd < 0 || s->wlen)
		return;
	ssize_t n = read(*fd, s->wbuf + HDR, MAXP);
	if (n > 0) {
		put32(s->wbuf, type);
		put32(s->wbuf + 4, (uint32_t)n);
		s->wlen = HDR + (size_t)n;
	} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		*again = true;
	} else { /* the end (a terminal says EIO once its last user closed it) */
		if (s->tty && *fd == s->in_fd)
			s->in_fd = -1;
		close_fd(fd);
	}
}

/* Everything that can move for a session without waiting; then whether it is over. */
static void pump(struct session *s)
{
	for (;;) {
		while (s->conn >= 0 && s->woff < s->wlen) {
			ssize_t n = write(s->conn, s->wbuf + s->woff, s->wlen - s->woff);
			if (n > 0)
				s->woff += (size_t)n;
			else if (n < 0 && errno == EINTR)
				continue;
			else if (n < 0 && errno == EAGAIN)
				break;
			else
				detach(s);
		}
		if (s->woff == s->wlen)
			s->woff = s->wlen = 0;
		if (s->conn < 0 || s->wlen)
			break;
		if (s->exit_queued) {
			/*
			 * Sent: the session is over once the host closes, which says the status
			 * has arrived (a VM that stops next would otherwise lose it on the way).
			 */
			if (!s->linger_until) {
				shutdown(s->conn, SHUT_WR);
				s->linger_until = now_ms() + LINGER_MS;
			}
			break;
		}
		read_output(s, &s->out_fd, EC1_EXEC_STDOUT, &s->out_again);
		if (!s->wlen)
			read_output(s, &s->err_fd, EC1_EXEC_STDERR, &s->err_again);
		if (s->wlen)
			continue;
		/* Exited, and nothing waits in its pipes: what later holders write is dropped. */
		if (s->exited && (s->out_fd < 0 || s->out_again) &&
		    (s->err_fd < 0 || s->err_again)) {
			queue_exit(s, s->status, NULL);
			continue;
		}
		break;
	}
	while (s->conn >= 0 && s->rlen < RBUF_SIZE) {
		ssize_t n = read(s->conn, s->rbuf + s->rlen, RBUF_SIZE - s->rlen);
		if (n > 0) {
			s->rlen += (size_t)n;
			take_frames(s);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		detach(s); /* the host closed: it no longer wants the process */
	}
	if (s->conn >= 0)
		take_frames(s); /* input the process can take now */
}

static void accept_all(int lfd)
{
	for (;;) {
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (c < 0)
			return;
		struct session *s = NULL;
		for (int i = 0; i < EC1_EXEC_MAX_SESSIONS && !s; i++)
			if (!sessions[i].used)
				s = &sessions[i];
		uint8_t *rbuf = s ? malloc(RBUF_SIZE) : NULL;
		uint8_t *wbuf = rbuf ? malloc(WBUF_SIZE) : NULL;
		if (!wbuf) {
			/* One frame, small enough for any socket buffer; then closed. */
			static const char full[] = "ec1 exec: the VM runs as many processes as "
						   "exec allows at once (64)\n";
			uint8_t f[2 * HDR + sizeof(full) + 4], st[4];
			size_t n = ec1_exec_frame_put(f, EC1_EXEC_STDERR, full, sizeof(full) - 1);
			put32(st, EC1_EXIT_SETUP);
			n += ec1_exec_frame_put(f + n, EC1_EXEC_EXIT, st, sizeof(st));
			if (write(c, f, n) < 0)
				say("ec1-init: exec: %s\n", strerror(errno));
			free(rbuf);
			close(c);
			continue;
		}
		*s = (struct session){.used = true,
				      .conn = c,
				      .in_fd = -1,
				      .out_fd = -1,
				      .err_fd = -1,
				      .rbuf = rbuf,
				      .wbuf = wbuf};
	}
}

static void reap(void)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (int i = 0; i < EC1_EXEC_MAX_SESSIONS; i++) {
			struct session *s = &sessions[i];
			if (s->used && s->pid == pid) {
				s->exited = true;
				s->status = WIFEXITED(st) ? WEXITSTATUS(st)
							  : EC1_EXIT_SIGNAL + WTERMSIG(st);
			}
		}
	}
}

void agent_main(int lfd, const struct process *p)
{
	base_env = p->envp;
	base_workdir = p->workdir;
	for (int i = 0; i < EC1_EXEC_MAX_SESSIONS; i++)
		release(&sessions[i]);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_SETMASK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	bool stopping = false;
	static struct pollfd pfd[2 + 4 * EC1_EXEC_MAX_SESSIONS];
	for (;;) {
		unsigned int n = 0, live = 0;
		pfd[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
		pfd[n++] = (struct pollfd){.fd = stopping ? -1 : lfd, .events = POLLIN};
		for (int i = 0; i < EC1_EXEC_MAX_SESSIONS; i++) {
			struct session *s = &sessions[i];
			if (!s->used)
				continue;
			live++;
			short cev = (s->conn >= 0 && s->rlen < RBUF_SIZE ? POLLIN : 0) |
				    (s->woff < s->wlen ? POLLOUT : 0);
			pfd[n++] = (struct pollfd){.fd = cev ? s->conn : -1, .events = cev};
			bool waits = s->stdin_blocked && s->stdin_open;
			pfd[n++] = (struct pollfd){.fd = waits ? s->in_fd : -1, .events = POLLOUT};
			pfd[n++] =
				(struct pollfd){.fd = s->wlen ? -1 : s->out_fd, .events = POLLIN};
			pfd[n++] =
				(struct pollfd){.fd = s->wlen ? -1 : s->err_fd, .events = POLLIN};
		}
		if (stopping && !live)
			exit(0);
		bool lingering = false;
		for (int i = 0; i < EC1_EXEC_MAX_SESSIONS; i++)
			lingering |= sessions[i].used && sessions[i].linger_until;
		if (poll(pfd, n, lingering ? 100 : -1) < 0 && errno != EINTR)
			exit(EC1_EXIT_SETUP);
		struct signalfd_siginfo si;
		while (sfd >= 0 && read(sfd, &si, sizeof(si)) == sizeof(si)) {
			/* SIGTERM: end in order; SIGUSR1: at once (init's "kill"). */
			int sig = si.ssi_signo == SIGUSR1 ? SIGKILL : SIGTERM;
			if (si.ssi_signo == SIGCHLD || (stopping && sig == SIGTERM))
				continue;
			if (!stopping)
				close(lfd);
			stopping = true; /* no new sessions; the running ones are asked to end */
			for (int i = 0; i < EC1_EXEC_MAX_SESSIONS; i++)
				if (sessions[i].used)
					signal_group(&sessions[i], sig);
		}
		reap();
		if (!stopping)
			accept_all(lfd);
		for (int i = 0; i < EC1_EXEC_MAX_SESSIONS; i++) {
			struct session *s = &sessions[i];
			if (!s->used)
				continue;
			pump(s);
			if (s->linger_until && now_ms() > s->linger_until)
				close_fd(&s->conn); /* the host does not close: it had its chance */
			/* Over: the host has its status (or is gone) and the process was reaped. */
			if (s->conn < 0 && (s->pid == 0 || s->exited))
				release(s);
		}
	}
}
