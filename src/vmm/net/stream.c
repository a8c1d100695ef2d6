/*
 * The stream backend (backend.h): frames in stream framing over a connected stream socket, as
 * passt (--fd) and QEMU (-netdev stream) speak it. Non-blocking both ways: what the peer cannot
 * take yet waits in a bounded buffer, beyond it frames are dropped; input is read only while
 * the guest has room, a little at a time, so a fast peer cannot make the VMM hold more.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend.h"
#include "frame.h"

#define OUT_MAX (256u << 10) /* bytes waiting for the peer, at most */
/*
 * Bytes read per pass: 32 KiB, or one largest frame when that is more. Each pass the device has
 * room for what it reads (what does not go into the guest's buffers at once waits, up to four
 * largest frames or 64 KiB); a peer faster than that waits in its socket. Reading much less
 * makes passt, whose writes then fail, drop frames and send them again (1 MB/s host to guest
 * with 8 KiB, bench/net).
 */
#define READ_MIN (32u << 10)

struct stream_backend {
	struct net_backend b;
	int fd;
	size_t out_off, out_len;
	uint8_t out[OUT_MAX];
	struct net_stream in;
};

static int flush_out(struct stream_backend *s)
{
	while (s->out_len) {
		ssize_t n = write(s->fd, s->out + s->out_off, s->out_len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		s->out_off += (size_t)n;
		s->out_len -= (size_t)n;
	}
	s->out_off = 0;
	return 0;
}

static void stream_send(struct net_backend *b, const uint8_t *frame, size_t len)
{
	struct stream_backend *s = (struct stream_backend *)b;
	uint8_t hdr[4];
	net_stream_header(hdr, len);
	size_t done = 0, total = 4 + len;
	if (!s->out_len) {
		struct iovec iov[2] = {{hdr, 4}, {(void *)frame, len}};
		ssize_t n;
		do
			n = writev(s->fd, iov, 2);
		while (n < 0 && errno == EINTR);
		if (n > 0)
			done = (size_t)n;
		else if (n < 0 && errno != EAGAIN) {
			b->dropped++; /* the peer is gone: poll_done says so */
			return;
		}
	}
	if (done == total)
		return;
	/* The rest waits, whole or not at all (a frame cut short would put the stream out of step).
	 */
	if (s->out_off + s->out_len + (total - done) > OUT_MAX) {
		memmove(s->out, s->out + s->out_off, s->out_len);
		s->out_off = 0;
	}
	/* (A frame partly written found the buffer empty: its rest always fits.) */
	if (s->out_len + (total - done) > OUT_MAX) {
		b->dropped++;
		return;
	}
	uint8_t *p = s->out + s->out_off + s->out_len;
	for (size_t i = done; i < total; i++)
		*p++ = i < 4 ? hdr[i] : frame[i - 4];
	s->out_len += total - done;
}

static unsigned int stream_poll_fill(struct net_backend *b, struct pollfd *fds, unsigned int max,
				     bool want_rx, int *timeout_ms)
{
	struct stream_backend *s = (struct stream_backend *)b;
	(void)timeout_ms;
	if (!max)
		return 0;
	fds[0] = (struct pollfd){s->fd,
				 (short)((want_rx ? POLLIN : 0) | (s->out_len ? POLLOUT : 0)), 0};
	return 1;
}

static int stream_poll_done(struct net_backend *b, const struct pollfd *fds, unsigned int n)
{
	struct stream_backend *s = (struct stream_backend *)b;
	if (!n)
		return 0;
	short ev = fds[0].revents;
	int err = 0;
	if (ev & (POLLOUT | POLLERR | POLLHUP))
		err = flush_out(s);
	if (!err && (ev & (POLLIN | POLLHUP | POLLERR)) && (fds[0].events & POLLIN)) {
		size_t room = NET_STREAM_BUF - s->in.have, want = 4 + s->in.max_frame;
		if (want < READ_MIN)
			want = READ_MIN;
		ssize_t r = read(s->fd, s->in.buf + s->in.have, room < want ? room : want);
		if (r == 0)
			err = -ECONNRESET;
		else if (r < 0)
			err = errno == EAGAIN || errno == EINTR ? 0 : -errno;
		else if ((err = net_stream_received(&s->in, (size_t)r, b->deliver, b->deliver_ctx)))
			snprintf(b->why, sizeof(b->why),
				 "the peer's stream is out of step (a frame length of 0 or over "
				 "65535)");
	} else if (!err && (ev & (POLLHUP | POLLERR)) && !(ev & POLLIN)) {
		err = -ECONNRESET;
	}
	if (err && !b->why[0])
		snprintf(b->why, sizeof(b->why), "%s",
			 err == -ECONNRESET ? "the peer closed the connection" : strerror(-err));
	return err;
}

static void stream_close(struct net_backend *b)
{
	struct stream_backend *s = (struct stream_backend *)b;
	close(s->fd);
	free(s);
}

static void stream_print_stats(const struct net_backend *b, FILE *f)
{
	const struct stream_backend *s = (const struct stream_backend *)b;
	fprintf(f, "ec1 virtio-net: stream: %llu frames from the peer too long for the guest\n",
		(unsigned long long)s->in.dropped);
}

static const struct net_backend_ops stream_ops = {
	.name = "stream",
	.poll_fill = stream_poll_fill,
	.poll_done = stream_poll_done,
	.send = stream_send,
	.close = stream_close,
	.print_stats = stream_print_stats,
};

struct net_backend *net_stream_backend(int fd, unsigned int mtu)
{
	struct stream_backend *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		free(s);
		return NULL;
	}
	s->b.ops = &stream_ops;
	s->b.max_fds = 1;
	s->b.mtu = mtu ? mtu : NET_MTU;
	s->in.max_frame = net_max_frame(s->b.mtu);
	s->fd = fd;
	return &s->b;
}
