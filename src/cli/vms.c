/*
 * VMs that stay up: ec1 start, exec, ls, stop, logs.
 *
 * Each started VM has a directory under the run directory ($EC1_RUN_DIR, else
 * $XDG_RUNTIME_DIR/ec1, else /run/ec1 for root and /tmp/ec1-UID for others; mode 0700, ours):
 * NAME/lock, held (flock) by the VM's process for as long as it runs, so a VMM that died, even by
 * kill -9, is seen at once; NAME/pid; NAME/exec.sock, the exec socket (mode 0600: only its owner
 * and root can exec into the VM); NAME/log, what the VM's own process, init and the VMM wrote,
 * kept to LOG_MAX bytes or EC1_LOG_MAX_MIB (then it becomes NAME/log.1, the one before it
 * dropped). The VM's process removes the directory when the VM ends; ec1 stop removes what a dead
 * one left.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

const char start_usage[] =
	"usage: ec1 start --name NAME [options] [--] [CMD [ARGS...]]\n"
	"Boots a microVM that stays up, and returns once it takes `ec1 exec NAME` requests. With\n"
	"CMD, CMD runs in it meanwhile and the VM ends when CMD does; without, it runs until\n"
	"`ec1 stop NAME`. CMD's output, init's and ec1's messages go to `ec1 logs NAME`.\n"
	"NAME: letters, digits, '.', '_' and '-', 1..64 of them, not starting with '.' or '-'.\n"
	"The options are ec1 run's (ec1 run --help).\n";

static const char exec_usage[] =
	"usage: ec1 exec [-i] [-t] [-e K=V]... [-w DIR] NAME [--] CMD [ARGS...]\n"
	"Runs CMD in the VM NAME (ec1 start) with this terminal's stdout and stderr, and exits "
	"with\n"
	"its status (125: ec1 or the guest's init failed; 126: not executable; 127: not found;\n"
	"128+N: killed by signal N). SIGINT, SIGTERM, SIGHUP and SIGQUIT reach CMD.\n"
	"  -i, --interactive   copy stdin to CMD (else its stdin is /dev/null)\n"
	"  -t, --tty           a terminal for CMD (this one in raw mode while it runs, if one)\n"
	"  -e, --env K=V       added to the VM's environment (repeatable)\n"
	"  -w, --workdir DIR   CMD's working directory (default: the VM's, /)\n";

/*
 * A log file's most bytes. The run directory is often a tmpfs (/run, $XDG_RUNTIME_DIR): memory,
 * which a chatty VM must not fill; two files of this size at most, the newest output kept.
 */
#define LOG_MAX (8u << 20)

/* EC1_LOG_MAX_MIB (1..1024) in bytes, else LOG_MAX; 0, said, when it is not such a number. */
static size_t log_max(void)
{
	const char *v = getenv("EC1_LOG_MAX_MIB");
	if (!v || !*v)
		return LOG_MAX;
	unsigned long n;
	return parse_uint("EC1_LOG_MAX_MIB", v, 1, 1024, &n) ? 0 : (size_t)n << 20;
}

static int usage_error(const char *usage)
{
	fputs(usage, stderr);
	return EXIT_EC1_ERROR;
}

/* The run directory, made (0700) if missing and checked to be ours; NULL with a message. */
static const char *run_dir(void)
{
	static char dir[64];
	const char *env = getenv("EC1_RUN_DIR"), *xdg = getenv("XDG_RUNTIME_DIR");
	if (env && *env)
		snprintf(dir, sizeof(dir), "%s", env);
	else if (xdg && *xdg && strlen(xdg) < 40)
		snprintf(dir, sizeof(dir), "%s/ec1", xdg);
	else if (getuid() == 0)
		snprintf(dir, sizeof(dir), "/run/ec1");
	else
		snprintf(dir, sizeof(dir), "/tmp/ec1-%u", (unsigned int)getuid());
	if (strlen(dir) > 40) {
		fprintf(stderr,
			"ec1: run directory %s: longer than 40 bytes (the exec socket's "
			"path must fit a unix socket's)\n",
			dir);
		return NULL;
	}
	struct stat st;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "ec1: run directory %s: %s\n", dir, strerror(errno));
		return NULL;
	}
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
	    (st.st_mode & 022)) {
		fprintf(stderr,
			"ec1: run directory %s: not a directory of ours that only we can write\n",
			dir);
		return NULL;
	}
	return dir;
}

static bool valid_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 64 || name[0] == '.' || name[0] == '-')
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
	       n;
}

/* DIR/NAME into out; false (said) for a bad name or no run directory. */
static bool vm_dir(const char *name, char *out, size_t size)
{
	if (!valid_name(name)) {
		fprintf(stderr,
			"ec1: \"%s\": not a VM name (letters, digits, '.', '_', '-'; 1..64, not "
			"starting with '.' or '-')\n",
			name);
		return false;
	}
	const char *dir = run_dir();
	if (!dir)
		return false;
	snprintf(out, size, "%s/%s", dir, name);
	return true;
}

/* A file in a VM's directory. */
static void vm_file(char *out, size_t size, const char *dir, const char *file)
{
	snprintf(out, size, "%s/%s", dir, file);
}

static pid_t vm_pid(const char *dir)
{
	char path[160], buf[24] = "";
	vm_file(path, sizeof(path), dir, "pid");
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return (pid_t)atoi(buf);
}

/*
 * Whether process pid is gone or on its way out (PF_EXITING in /proc/PID/stat's flags, set as
 * soon as a signal kills it): a VMM killed with SIGKILL holds its lock until the kernel has torn
 * its VM down, some milliseconds after its sockets already closed, and its parent may reap it
 * between our open and our read of its stat.
 */
static bool pid_ending(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	int err = errno;
	close(fd);
	/* Reaped between the open and the read: the read fails with ESRCH. */
	if (n <= 0)
		return n < 0 && err == ESRCH;
	buf[n] = 0;
	/* After the name's closing parenthesis: state ppid pgrp session tty tpgid flags. */
	char *p = strrchr(buf, ')');
	unsigned long flags = 0;
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1)
		return false;
	return flags & 0x4; /* PF_EXITING */
}

/*
 * Whether the VM in dir runs: its lock is held, by a VMM not on its way out. 1 running, 0 not, -1
 * no such VM.
 */
static int vm_running(const char *dir)
{
	char path[160];
	vm_file(path, sizeof(path), dir, "lock");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int held = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd);
	pid_t pid;
	if (held && (pid = vm_pid(dir)) > 0 && pid_ending(pid))
		held = 0;
	return held;
}

/* What a VM's directory holds, removed (what is already gone is fine). */
static void clean_dir(const char *dir)
{
	static const char *const files[] = {"exec.sock", "pid", "log", "log.1", "lock"};
	char path[160];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		vm_file(path, sizeof(path), dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

/*
 * ec1 start: the VM's process is a child of ours in a session of its own, its stdout and the
 * VM's output going to NAME/log and its stderr to us through a pipe until the VM is ready (so the
 * caller sees why a start failed); a NUL byte on the pipe says it is. Everything is set up in
 * the child: helpers (passt, vmnet-helper) must be its children, not ours.
 */
int cmd_start(int argc, char **argv)
{
	const char *name = NULL;
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(start_usage, stdout);
			return 0;
		}
		if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
			name = argv[i + 1];
		else if (strncmp(argv[i], "--name=", 7) == 0)
			name = argv[i] + 7;
	}
	if (!name) {
		fprintf(stderr, "ec1 start: --name NAME is required\n");
		return usage_error(start_usage);
	}
	if (!log_max())
		return EXIT_EC1_ERROR;
	char dir[128], path[160];
	if (!vm_dir(name, dir, sizeof(dir)))
		return EXIT_EC1_ERROR;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "ec1: %s: %s\n", dir, strerror(errno));
		return EXIT_EC1_ERROR;
	}
	vm_file(path, sizeof(path), dir, "lock");
	int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0) {
		fprintf(stderr, "ec1: %s\n",
			lock >= 0 ? "a VM of that name runs (ec1 ls)" : strerror(errno));
		return EXIT_EC1_ERROR;
	}
	/* What a dead VM of that name left is replaced. */
	static const char *const stale[] = {"exec.sock", "pid", "log.1"};
	for (size_t i = 0; i < sizeof(stale) / sizeof(stale[0]); i++) {
		vm_file(path, sizeof(path), dir, stale[i]);
		unlink(path);
	}
	vm_file(path, sizeof(path), dir, "log");
	int log = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int p[2];
	if (log < 0 || devnull < 0 || pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, "ec1: %s: %s\n", path, strerror(errno));
		clean_dir(dir);
		return EXIT_EC1_ERROR;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "ec1: fork: %s\n", strerror(errno));
		clean_dir(dir);
		return EXIT_EC1_ERROR;
	}
	if (pid == 0) {
		close(p[0]);
		setsid();
		if (dup2(devnull, 0) < 0 || dup2(log, 1) < 0 || dup2(p[1], 2) < 0)
			_exit(EXIT_EC1_ERROR);
		close(devnull);
		close(log);
		close(p[1]);
		int status = vm_command(argc, argv, dir);
		fflush(NULL);
		_exit(status);
	}
	close(p[1]);
	close(log);
	close(devnull);
	close(lock);
	/* The child's messages until the NUL that says it is ready, or its end. */
	char buf[512];
	ssize_t n;
	bool ready = false;
	while (!ready && ((n = read(p[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))) {
		if (n < 0)
			continue;
		char *nul = memchr(buf, 0, (size_t)n);
		ready = nul != NULL;
		if (fwrite(buf, 1, ready ? (size_t)(nul - buf) : (size_t)n, stderr) == 0)
			break;
	}
	close(p[0]);
	if (ready)
		return 0;
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : EXIT_EC1_ERROR;
}

/*
 * The VM's log: everything written to its process's stdout (and, once it is ready, stderr) comes
 * through a pipe to this thread, which appends it to NAME/log and moves that to NAME/log.1 when
 * the next write would take it over its most (LOG_MAX, EC1_LOG_MAX_MIB). A log that cannot be
 * written drops what comes (the VM goes on).
 */
struct logger {
	int in, out;	  /* the pipe's read end; NAME/log */
	int stop;	  /* eventfd: everything is in the pipe; end once it is empty */
	size_t size, max; /* of NAME/log; the most it grows to (but for the rest of a line) */
	bool line_start;  /* NAME/log ends with a whole line (or is empty) */
	char path[160], old[160];
	pthread_t thread;
};

/* Appends len bytes to the log (dropped where it cannot be written). */
static void log_write(struct logger *l, const char *p, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t w = write(l->out, p + done, len - done);
		if (w <= 0 && errno != EINTR)
			break;
		done += w > 0 ? (size_t)w : 0;
	}
	l->size += len;
	if (len)
		l->line_start = p[len - 1] == '\n';
}

/* NAME/log becomes NAME/log.1 (the one before dropped), and a new NAME/log is begun. */
static void log_move_on(struct logger *l)
{
	int fd = -1;
	if (rename(l->path, l->old) == 0)
		fd = open(l->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0) {
		close(l->out);
		l->out = fd;
	}
	l->size = 0; /* else at most max more go on into the old one */
}

static void *log_main(void *arg)
{
	struct logger *l = arg;
	static char buf[65536];
	for (;;) {
		struct pollfd p[2] = {{.fd = l->in, .events = POLLIN},
				      {.fd = l->stop, .events = POLLIN}};
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			if (p[1].revents & POLLIN)
				break; /* told to end, nothing left: a writer that lingers is not
					  waited for */
			continue;
		}
		ssize_t n = read(l->in, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EINTR))
			break;
		if (n < 0)
			continue;
		size_t head = 0;
		if (l->size + (size_t)n > l->max) {
			/*
			 * Each file holds whole lines: the old one takes the lines that fit, or,
			 * when it ends in the middle of one, the rest of that line (unless longer
			 * than what was read: a line of 64 KiB and more is cut).
			 */
			size_t room = l->max > l->size ? l->max - l->size : 0;
			const char *nl =
				room ? memrchr(buf, '\n', room < (size_t)n ? room : (size_t)n)
				     : NULL;
			if (!nl && !l->line_start)
				nl = memchr(buf, '\n', (size_t)n);
			head = nl ? (size_t)(nl - buf) + 1 : 0;
			log_write(l, buf, head);
			if (l->size)
				log_move_on(l);
		}
		log_write(l, buf + head, (size_t)n - head);
	}
	return NULL;
}

/* From here on fd 1 is a pipe to the logger, which has the log; false with a message. */
static bool start_logger(struct logger *l, const char *dir)
{
	int p[2];
	vm_file(l->path, sizeof(l->path), dir, "log");
	vm_file(l->old, sizeof(l->old), dir, "log.1");
	if (pipe2(p, O_CLOEXEC) < 0) {
		fprintf(stderr, "ec1: the log's pipe: %s\n", strerror(errno));
		return false;
	}
	fcntl(p[1], F_SETPIPE_SZ, 1 << 20); /* a burst of output does not wait for the file */
	l->in = p[0];
	l->max = log_max() ?: LOG_MAX;
	l->line_start = true;
	l->stop = eventfd(0, EFD_CLOEXEC);
	l->out = fcntl(1, F_DUPFD_CLOEXEC, 3);
	off_t end = l->out >= 0 ? lseek(l->out, 0, SEEK_END) : -1;
	l->size = end > 0 ? (size_t)end : 0;
	int err = l->out < 0 || l->stop < 0 || dup2(p[1], 1) < 0
			  ? errno
			  : pthread_create(&l->thread, NULL, log_main, l);
	close(p[1]);
	if (err) {
		fprintf(stderr, "ec1: the log: %s\n", strerror(err));
		return false;
	}
	return true;
}

/* Ends the logger once it has written everything: nothing may write to fds 1 and 2 after. */
static void stop_logger(struct logger *l)
{
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (devnull >= 0) {
		dup2(devnull, 1);
		dup2(devnull, 2);
		close(devnull);
	}
	uint64_t one = 1;
	if (write(l->stop, &one, sizeof(one)) < 0)
		fprintf(stderr, "ec1: the log: %s\n", strerror(errno));
	pthread_join(l->thread, NULL);
	close(l->in);
	close(l->out);
	close(l->stop);
}

int serve_started(struct ec1_ctx *ctx, const char *dir)
{
	char sock[160], path[160];
	struct logger log;
	if (!start_logger(&log, dir)) {
		ec1_ctx_free(ctx);
		clean_dir(dir);
		return EXIT_EC1_ERROR;
	}
	vm_file(sock, sizeof(sock), dir, "exec.sock");
	int err = ec1_ctx_set_exec_socket(ctx, sock);
	err = err ?: ec1_ctx_set_stdio(ctx, -1, 1, 1);
	err = err ?: ec1_ctx_start(ctx);
	if (err) {
		const char *msg = ec1_ctx_message(ctx);
		fprintf(stderr, "ec1: %s\n", *msg ? msg : ec1_strerror(err));
		ec1_ctx_free(ctx);
		fflush(NULL);
		stop_logger(&log);
		clean_dir(dir);
		return EXIT_EC1_ERROR;
	}
	vm_file(path, sizeof(path), dir, "pid");
	FILE *f = fopen(path, "we");
	if (f) {
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
	}
	/* Ready: the NUL tells ec1 start; from now on our messages go to the log. */
	fflush(stderr);
	if (write(2, "", 1) < 0 || dup2(1, 2) < 0)
		fprintf(stderr, "ec1: %s\n", strerror(errno));
	int status = 0;
	err = ec1_ctx_wait(ctx, &status);
	if (err) {
		const char *msg = ec1_ctx_message(ctx);
		fprintf(stderr, "ec1: %s\n", *msg ? msg : ec1_strerror(err));
		status = EXIT_EC1_ERROR;
	}
	ec1_ctx_free(ctx);
	fflush(NULL);
	stop_logger(&log);
	clean_dir(dir);
	return status;
}

/* ec1 exec's process, for the signal handlers. */
static struct ec1_exec *current;

static void on_exec_signal(int sig)
{
	if (sig == SIGWINCH) {
		struct winsize ws;
		if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0)
			ec1_exec_resize(current, ws.ws_row, ws.ws_col);
		return;
	}
	ec1_exec_signal(current, sig);
}

int cmd_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{"interactive", no_argument, NULL, 'i'}, {"tty", no_argument, NULL, 't'},
		{"env", required_argument, NULL, 'e'},	 {"workdir", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},	 {NULL, 0, NULL, 0},
	};
	bool interactive = false, tty = false;
	const char *workdir = NULL;
	const char **env = calloc((size_t)argc + 1, sizeof(char *));
	size_t nenv = 0;
	int c;
	if (!env)
		return EXIT_EC1_ERROR;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+ite:w:h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			interactive = true;
			break;
		case 't':
			tty = true;
			break;
		case 'e':
			if (!strchr(optarg, '=') || optarg[0] == '=') {
				fprintf(stderr, "ec1 exec: --env: \"%s\": expected K=V\n", optarg);
				return EXIT_EC1_ERROR;
			}
			env[nenv++] = optarg;
			break;
		case 'w':
			workdir = optarg;
			break;
		case 'h':
			fputs(exec_usage, stdout);
			return 0;
		default:
			return usage_error(exec_usage);
		}
	}
	if (optind >= argc)
		return usage_error(exec_usage);
	const char *name = argv[optind++];
	if (optind < argc && strcmp(argv[optind], "--") == 0)
		optind++;
	if (optind >= argc) {
		fprintf(stderr, "ec1 exec: no command given\n");
		return usage_error(exec_usage);
	}
	char dir[128], sock[160];
	if (!vm_dir(name, dir, sizeof(dir)))
		return EXIT_EC1_ERROR;
	int running = vm_running(dir);
	if (running <= 0) {
		fprintf(stderr,
			running < 0 ? "ec1: no VM named %s (ec1 ls lists them)\n"
				    : "ec1: VM %s is not running: its VMM is gone (ec1 stop %s "
				      "cleans up)\n",
			name, name);
		return EXIT_EC1_ERROR;
	}
	vm_file(sock, sizeof(sock), dir, "exec.sock");
	struct ec1_exec_config cfg = {.exec_path = argv[optind],
				      .argv = (const char *const *)&argv[optind],
				      .envp = env,
				      .workdir = workdir,
				      .stdin_fd = interactive ? STDIN_FILENO : -1,
				      .stdout_fd = STDOUT_FILENO,
				      .stderr_fd = STDERR_FILENO,
				      .tty = tty,
				      .tty_rows = 24,
				      .tty_cols = 80};
	struct winsize ws;
	if (tty &&
	    (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 ||
	     ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) &&
	    ws.ws_row && ws.ws_col) {
		cfg.tty_rows = ws.ws_row;
		cfg.tty_cols = ws.ws_col;
	}
	int err = ec1_exec_new(sock, &current);
	if (err) {
		fprintf(stderr, "ec1: exec socket %s: %s\n", sock, ec1_strerror(err));
		return EXIT_EC1_ERROR;
	}
	struct sigaction sa = {.sa_handler = on_exec_signal, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH};
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		if (forwarded[i] != SIGWINCH || tty)
			sigaction(forwarded[i], &sa, NULL);
	/* A terminal of ours in raw mode: keys (Ctrl-C too) go to the guest's terminal as typed. */
	struct termios saved;
	bool raw = tty && interactive && isatty(STDIN_FILENO) && tcgetattr(0, &saved) == 0;
	if (raw) {
		struct termios t = saved;
		cfmakeraw(&t);
		tcsetattr(STDIN_FILENO, TCSADRAIN, &t);
	}
	int status = EXIT_EC1_ERROR;
	err = ec1_exec_start(current, &cfg);
	err = err ?: ec1_exec_wait(current, &status);
	if (raw)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
	if (err) {
		const char *msg = ec1_exec_message(current);
		fprintf(stderr, "ec1: %s\n", *msg ? msg : ec1_strerror(err));
		status = EXIT_EC1_ERROR;
	}
	ec1_exec_free(current);
	free(env);
	return status;
}

int cmd_ls(int argc, char **argv)
{
	if (argc > 1) {
		bool help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
		fputs("usage: ec1 ls\nThe VMs ec1 start started: name, VMM pid, state.\n",
		      help ? stdout : stderr);
		return help ? 0 : EXIT_EC1_ERROR;
	}
	const char *base = run_dir();
	if (!base)
		return EXIT_EC1_ERROR;
	DIR *d = opendir(base);
	if (!d) {
		fprintf(stderr, "ec1: %s: %s\n", base, strerror(errno));
		return EXIT_EC1_ERROR;
	}
	printf("%-24s %-8s %s\n", "NAME", "PID", "STATE");
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!valid_name(e->d_name))
			continue;
		char dir[128];
		snprintf(dir, sizeof(dir), "%s/%.64s", base, e->d_name);
		int running = vm_running(dir);
		if (running < 0)
			continue;
		printf("%-24s %-8d %s\n", e->d_name, (int)vm_pid(dir),
		       running ? "running" : "dead (ec1 stop cleans up)");
	}
	closedir(d);
	return 0;
}

/* Waits up to ms for the VM's process to let go of its lock; true once it has. */
static bool released_within(int lock, long ms)
{
	for (long waited = 0;; waited += 10) {
		if (flock(lock, LOCK_EX | LOCK_NB) == 0)
			return true;
		if (waited >= ms)
			return false;
		nanosleep(&(struct timespec){0, 10000000}, NULL);
	}
}

int cmd_stop(int argc, char **argv)
{
	double grace = 10;
	int c;
	optind = 1;
	while ((c = getopt(argc, argv, "+t:h")) != -1) {
		char *end;
		switch (c) {
		case 't':
			grace = strtod(optarg, &end);
			if (end == optarg || *end || grace < 0 || grace > 86400) {
				fprintf(stderr, "ec1 stop: -t: \"%s\": expected seconds\n", optarg);
				return EXIT_EC1_ERROR;
			}
			break;
		case 'h':
			printf("usage: ec1 stop [-t SEC] NAME\n"
			       "SIGTERM to everything in VM NAME, SIGKILL after SEC seconds "
			       "(default "
			       "10), the VM ended 2 s later at the latest.\n");
			return 0;
		default:
			return usage_error("usage: ec1 stop [-t SEC] NAME\n");
		}
	}
	if (optind + 1 != argc)
		return usage_error("usage: ec1 stop [-t SEC] NAME\n");
	const char *name = argv[optind];
	char dir[128], path[160];
	if (!vm_dir(name, dir, sizeof(dir)))
		return EXIT_EC1_ERROR;
	vm_file(path, sizeof(path), dir, "lock");
	int lock = open(path, O_RDONLY | O_CLOEXEC);
	if (lock < 0) {
		fprintf(stderr, "ec1: no VM named %s\n", name);
		return EXIT_EC1_ERROR;
	}
	if (flock(lock, LOCK_EX | LOCK_NB) == 0) {
		fprintf(stderr, "ec1: VM %s was not running (its VMM had died); cleaned up\n",
			name);
		clean_dir(dir);
		close(lock);
		return 0;
	}
	pid_t pid = vm_pid(dir);
	if (pid <= 0) {
		fprintf(stderr, "ec1: VM %s: no pid (still starting?)\n", name);
		close(lock);
		return EXIT_EC1_ERROR;
	}
	/* The VM's process asks init: SIGTERM first, SIGKILL next, then it ends the VM itself. */
	long waits[] = {(long)(grace * 1000), 2000, 3000};
	bool gone = false;
	for (int i = 0; i < 3 && !gone; i++) {
		if (kill(pid, SIGTERM) < 0 && errno == ESRCH)
			break;
		gone = released_within(lock, waits[i]);
	}
	if (!gone && !released_within(lock, 0)) {
		kill(pid, SIGKILL);
		released_within(lock, 5000);
	}
	clean_dir(dir);
	close(lock);
	return 0;
}

/* What fd holds from where it is to its end, on stdout; false when stdout fails. */
static bool copy_out(int fd)
{
	char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n > 0 && fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			return false;
		if (n == 0 || (n < 0 && errno != EINTR))
			return true;
	}
}

int cmd_logs(int argc, char **argv)
{
	bool follow = false;
	int c;
	optind = 1;
	while ((c = getopt(argc, argv, "+fh")) != -1) {
		if (c == 'f')
			follow = true;
		else
			return usage_error("usage: ec1 logs [-f] NAME\n");
	}
	if (optind + 1 != argc)
		return usage_error("usage: ec1 logs [-f] NAME\n");
	char dir[128], path[160], old[160];
	if (!vm_dir(argv[optind], dir, sizeof(dir)))
		return EXIT_EC1_ERROR;
	vm_file(path, sizeof(path), dir, "log");
	vm_file(old, sizeof(old), dir, "log.1");
	int prev = open(old, O_RDONLY | O_CLOEXEC);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (prev >= 0)
			close(prev);
		fprintf(stderr, "ec1: no VM named %s\n", argv[optind]);
		return EXIT_EC1_ERROR;
	}
	/* The log before the newest, if the log was moved on (at its most), then the newest. */
	if (prev >= 0 && !copy_out(prev)) {
		close(prev);
		close(fd);
		return 0;
	}
	if (prev >= 0)
		close(prev);
	bool ended = false;
	while (copy_out(fd) && follow) {
		/*
		 * Moved on: the rest of the old file (written before it was moved), then the new
		 * one.
		 */
		struct stat now, ours;
		int next;
		if (stat(path, &now) == 0 && fstat(fd, &ours) == 0 && now.st_ino != ours.st_ino &&
		    (next = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
			bool more = copy_out(fd);
			close(fd);
			fd = next;
			if (!more)
				break;
			continue;
		}
		if (ended)
			break;
		ended = vm_running(dir) != 1; /* then one more pass for what came last */
		fflush(stdout);
		if (!ended)
			nanosleep(&(struct timespec){0, 100000000}, NULL);
	}
	close(fd);
	return 0;
}
