/*
 * ptydrive: runs a command on a terminal of its own (a pty) and types to it, as a person at a
 * terminal would: the VM suite's test of `ec1 exec -it` (keys, Ctrl-C, a resize, the exit
 * status), which needs ec1's stdin and stdout to be a terminal.
 *
 * usage: ptydrive ROWS COLS STEP... -- COMMAND [ARG]...
 * Steps, in order: s:TEXT types TEXT (\r Enter, \xHH a byte: \x03 Ctrl-C), w:TEXT waits up to
 * 30 s for TEXT in what the terminal shows after the last match, r:ROWS,COLS resizes the terminal
 * (COMMAND gets SIGWINCH), p:MS pauses. Then it waits up to 30 s for COMMAND to end and prints
 * "exit N" (128+N for a signal). A wait that times out prints what the terminal showed, kills
 * COMMAND and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LIMIT_MS 30000

static char seen[1 << 16]; /* what the terminal showed since the last match */
static size_t seen_len;
static int master = -1;
static pid_t child;

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Takes what the terminal shows for up to ms; false once COMMAND's side is closed. */
static bool take_output(int ms)
{
	struct pollfd p = {.fd = master, .events = POLLIN};
	if (poll(&p, 1, ms) <= 0)
		return true;
	char buf[4096];
	ssize_t n = read(master, buf, sizeof(buf));
	if (n <= 0)
		return errno == EINTR || errno == EAGAIN;
	if (seen_len + (size_t)n >= sizeof(seen)) { /* keep the newest half */
		memmove(seen, seen + sizeof(seen) / 2, seen_len - sizeof(seen) / 2);
		seen_len -= sizeof(seen) / 2;
	}
	memcpy(seen + seen_len, buf, (size_t)n);
	seen_len += (size_t)n;
	seen[seen_len] = 0;
	return true;
}

static void give_up(const char *why)
{
	printf("ptydrive: %s; the terminal showed: ", why);
	for (size_t i = 0; i < seen_len; i++) {
		unsigned char c = (unsigned char)seen[i];
		if (c >= 32 && c < 127)
			putchar(c);
		else
			printf("\\x%02x", c);
	}
	putchar('\n');
	kill(child, SIGKILL);
	exit(1);
}

/* TEXT with \r, \n, \\ and \xHH turned into bytes; its length. */
static size_t unescape(const char *s, char *out)
{
	size_t n = 0;
	while (*s) {
		if (s[0] == '\\' && s[1] == 'r') {
			out[n++] = '\r', s += 2;
		} else if (s[0] == '\\' && s[1] == 'n') {
			out[n++] = '\n', s += 2;
		} else if (s[0] == '\\' && s[1] == '\\') {
			out[n++] = '\\', s += 2;
		} else if (s[0] == '\\' && s[1] == 'x' && s[2] && s[3]) {
			char hex[3] = {s[2], s[3], 0};
			out[n++] = (char)strtol(hex, NULL, 16), s += 4;
		} else {
			out[n++] = *s++;
		}
	}
	return n;
}

int main(int argc, char **argv)
{
	int dash = 3;
	while (dash < argc && strcmp(argv[dash], "--") != 0)
		dash++;
	if (argc < 3 || dash + 1 >= argc) {
		fprintf(stderr, "usage: ptydrive ROWS COLS STEP... -- COMMAND [ARG]...\n");
		return 2;
	}
	struct winsize ws = {.ws_row = (unsigned short)atoi(argv[1]),
			     .ws_col = (unsigned short)atoi(argv[2])};
	child = forkpty(&master, NULL, NULL, &ws);
	if (child < 0) {
		perror("ptydrive: forkpty");
		return 2;
	}
	if (child == 0) {
		execvp(argv[dash + 1], &argv[dash + 1]);
		perror("ptydrive: exec");
		_exit(127);
	}
	for (int i = 3; i < dash; i++) {
		const char *step = argv[i];
		if (strncmp(step, "s:", 2) == 0) {
			char buf[1024];
			size_t n = unescape(step + 2, buf);
			if (write(master, buf, n) != (ssize_t)n)
				give_up("typing failed");
		} else if (strncmp(step, "w:", 2) == 0) {
			char want[1024];
			want[unescape(step + 2, want)] = 0;
			long until = now_ms() + LIMIT_MS;
			char *at;
			while (!(at = strstr(seen, want))) {
				if (now_ms() >= until || !take_output(100)) {
					char why[1100];
					snprintf(why, sizeof(why), "no \"%s\"", step + 2);
					give_up(why);
				}
			}
			size_t from = (size_t)(at - seen) + strlen(want);
			memmove(seen, seen + from, seen_len - from + 1);
			seen_len -= from;
		} else if (strncmp(step, "r:", 2) == 0) {
			unsigned rows = 0, cols = 0;
			sscanf(step + 2, "%u,%u", &rows, &cols);
			ws = (struct winsize){.ws_row = (unsigned short)rows,
					      .ws_col = (unsigned short)cols};
			ioctl(master, TIOCSWINSZ, &ws);
		} else if (strncmp(step, "p:", 2) == 0) {
			long until = now_ms() + atol(step + 2);
			while (now_ms() < until && take_output((int)(until - now_ms())))
				;
		} else {
			fprintf(stderr, "ptydrive: unknown step %s\n", step);
			kill(child, SIGKILL);
			return 2;
		}
	}
	long until = now_ms() + LIMIT_MS;
	int st;
	while (waitpid(child, &st, WNOHANG) == 0) {
		if (now_ms() >= until)
			give_up("the command did not end");
		take_output(100);
	}
	printf("exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return 0;
}
