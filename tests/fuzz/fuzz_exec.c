/*
 * libFuzzer target: ec1 exec's client (src/lib/exec.c) reading what a guest's exec agent sends.
 * Each input is the whole of what the guest says on one exec connection (then it closes): the
 * client must end with a status of 0..255 or an error, never crash or hang, and write nothing
 * but the output frames' bytes.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ec1/ec1.h"
#include "../../src/lib/ec1_internal.h"

static int server = -1, sink = -1;
static char path[108];

static void setup(void)
{
	snprintf(path, sizeof(path), "/tmp/fuzz_exec.%d.sock", (int)getpid());
	unlink(path);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	memcpy(a.sun_path, path, strlen(path) + 1);
	server = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (server < 0 || bind(server, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(server, 4) < 0)
		abort();
	sink = open("/dev/null", O_WRONLY | O_CLOEXEC);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (server < 0)
		setup();
	struct ec1_exec *e;
	if (ec1_exec_new(path, &e))
		abort();
	const char *argv[] = {"sh", "-c", "true", NULL};
	struct ec1_exec_config c = {.exec_path = "/bin/sh",
				    .argv = argv,
				    .stdin_fd = -1,
				    .stdout_fd = sink,
				    .stderr_fd = sink};
	if (ec1_exec_start(e, &c))
		abort();
	int guest = accept(server, NULL, NULL);
	if (guest < 0)
		abort();
	/* The whole input fits the socket's buffer (libFuzzer's inputs are small). */
	size_t done = 0;
	while (done < size) {
		ssize_t n = write(guest, data + done, size - done);
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	shutdown(guest, SHUT_WR);
	int status = -1;
	int err = ec1_exec_wait(e, &status);
	if (err == EC1_OK && (status < 0 || status > 255))
		abort();
	if (err != EC1_OK && err != EC1_EGUEST)
		abort();
	close(guest);
	ec1_exec_free(e);
	return 0;
}
