/*
 * Our end of gvproxy's vfkit listener (`gvproxy -listen-vfkit unixgram://PATH`): unix datagram
 * sockets have no accept, so the VMM's end is bound to a path of its own (in a fresh directory,
 * so a long PATH or one in a directory we may not write is no obstacle), connected to PATH, and
 * says "VFKT" first; gvproxy answers to the address that greeting came from, a frame per
 * datagram, no header (vfkit's protocol, libkrun's NET_FLAG_VFKIT).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ec1_internal.h"

static const char vfkit_magic[4] = {'V', 'F', 'K', 'T'};

int ec1_gvproxy_connect(struct ec1_ctx *ctx, const char *path, int *fd, char **local_path)
{
	struct sockaddr_un peer = {.sun_family = AF_UNIX}, own = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(peer.sun_path))
		return ec1_fail(ctx, EC1_EINVAL,
				"network.gvproxy_path: %s: longer than a unix socket path (%zu "
				"bytes)",
				path, sizeof(peer.sun_path) - 1);
	memcpy(peer.sun_path, path, strlen(path) + 1);
	const char *tmp = getenv("TMPDIR");
	char dir[sizeof(own.sun_path) - 8];
	errno = 0;
	if (snprintf(dir, sizeof(dir), "%s/ec1-gvproxy-XXXXXX", tmp && *tmp ? tmp : "/tmp") >=
		    (int)sizeof(dir) ||
	    !mkdtemp(dir))
		return ec1_fail(ctx, EC1_EINVAL,
				"network.gvproxy_path: a directory for our end: %s",
				errno ? strerror(errno) : "TMPDIR too long");
	snprintf(own.sun_path, sizeof(own.sun_path), "%s/sock", dir);
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	const char *step = "socket";
	if (s >= 0 && (step = "bind", bind(s, (struct sockaddr *)&own, sizeof(own)) == 0) &&
	    (step = "connect", connect(s, (struct sockaddr *)&peer, sizeof(peer)) == 0) &&
	    (step = "the VFKT greeting",
	     send(s, vfkit_magic, sizeof(vfkit_magic), MSG_NOSIGNAL) == sizeof(vfkit_magic))) {
		*local_path = strdup(own.sun_path);
		if (*local_path) {
			*fd = s;
			return EC1_OK;
		}
		errno = ENOMEM;
	}
	int e = errno;
	if (s >= 0)
		close(s);
	unlink(own.sun_path);
	rmdir(dir);
	return ec1_fail(ctx, EC1_EINVAL, "network.gvproxy_path: %s: %s: %s", path, step,
			strerror(e));
}
