/*
 * The installed `ec1` is a static program (musl), built from the CLI's sources with
 * EC1_CLI_FRONT: exec, ls, stop, logs, help and version run in it, and it starts in a tenth of the
 * time a dynamically linked program takes (loader, C library relocations) — what `ec1 exec`
 * costs is mostly that start. The commands that need libec1 (run, start, variants) run in
 * ec1-full, the same CLI linked with the C library, which loads libec1 (api.c): ec1 executes it
 * in its own place, arguments, descriptors and signal dispositions unchanged.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define FULL_NAME "ec1-full"

const struct ec1_api *ec1_api(void)
{
	/* main() sends every command that calls into the library to ec1-full first. */
	fputs("ec1: internal error: a command of the static ec1 needs the library\n", stderr);
	exit(EXIT_EC1_ERROR);
}

int ec1_cli_full(char **argv)
{
	/* Beside this program first (a build tree, an unpacked stage), then where it is installed.
	 */
	char self[PATH_MAX], beside[PATH_MAX + sizeof(FULL_NAME)];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = 0;
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = 0;
			snprintf(beside, sizeof(beside), "%s/%s", self, FULL_NAME);
			if (access(beside, X_OK) == 0) {
				execv(beside, argv);
				fprintf(stderr, "ec1: %s needs the library: running %s: %s\n",
					argv[1], beside, strerror(errno));
				return EXIT_EC1_ERROR;
			}
		}
	}
	execv(EC1_LIBEXECDIR "/" FULL_NAME, argv);
	fprintf(stderr,
		"ec1: %s needs the library: running %s: %s (nor is there one beside this "
		"program)\n",
		argv[1], EC1_LIBEXECDIR "/" FULL_NAME, strerror(errno));
	return EXIT_EC1_ERROR;
}
