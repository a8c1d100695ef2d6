/*
 * smallpipe: runs a command whose stderr is a pipe of one page (4 KiB) that nobody reads for a
 * while, then copies what came through it to a file. The VM suite uses it to block ec1's stderr
 * after a few kilobytes rather than the 64 KiB of an ordinary pipe.
 *
 * usage: smallpipe SECONDS OUTFILE COMMAND [ARG]...   exits with COMMAND's status
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: smallpipe SECONDS OUTFILE COMMAND [ARG]...\n");
		return 2;
	}
	int p[2];
	if (pipe(p) < 0 || fcntl(p[1], F_SETPIPE_SZ, 4096) < 0) {
		perror("smallpipe: pipe");
		return 2;
	}
	pid_t child = fork();
	if (child == 0) {
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		execvp(argv[3], argv + 3);
		_exit(127);
	}
	close(p[1]);
	sleep((unsigned int)atoi(argv[1]));
	int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	char buf[65536];
	ssize_t n;
	while ((n = read(p[0], buf, sizeof(buf))) > 0)
		if (out >= 0 && write(out, buf, (size_t)n) < 0)
			break;
	int status;
	if (waitpid(child, &status, 0) < 0)
		return 2;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
