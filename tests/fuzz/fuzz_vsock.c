/*
 * libFuzzer target: vsock connections (src/vmm/vsock/conn.c), which read every packet a guest
 * transmits, and the "CONNECT PORT" lines of Firecracker's socket. Port 5 is mapped to a unix
 * server the target runs; the input is a list of steps, each a byte: 0 a packet (u16 length,
 * the bytes, cut in up to three parts at two offsets that follow), 1 a receive buffer (u16
 * size), 2 a round of the device's poll with the server accepting, answering and closing what
 * came, 3 a client of the Firecracker socket writing what follows (a byte of length, then the
 * bytes), 4 a batch of receive buffers, 5 a device reset (nothing for the guest after it until
 * the next poll). A packet never makes a step read or write outside
 * its buffers (ASan), a receive buffer gets a whole header or nothing and never more than its
 * size, and the engine frees everything it took (LeakSanitizer) when the input ends.
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../src/vmm/vsock/vsock.h"

static int server = -1;
static char path[108], uds[108];
static uint8_t pkt[65536 + VSOCK_HDR_LEN], rxbuf[65536 + VSOCK_HDR_LEN];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char dir[] = "/tmp/ec1-fuzz-vsock-XXXXXX";
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/server", dir);
	snprintf(uds, sizeof(uds), "%s/fc", dir);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	memcpy(a.sun_path, path, strlen(path) + 1);
	server = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (server < 0 || bind(server, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(server, 512) < 0)
		abort();
	return 0;
}

static size_t take(const uint8_t **p, size_t *left, size_t n)
{
	size_t v = 0;
	for (size_t i = 0; i < n && *left; i++, (*p)++, (*left)--)
		v |= (size_t) * *p << (8 * i);
	return v;
}

/* Whatever connected to the server: answered once, then closed. */
static void serve(void)
{
	int fd;
	while ((fd = accept4(server, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		(void)!send(fd, "from the host", 13, MSG_NOSIGNAL);
		close(fd);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vsock_port port = {.port = 5, .path = path};
	struct vsock_config cfg = {.guest_cid = 3, .ports = &port, .nr_ports = 1, .uds = uds};
	char msg[256];
	struct vsock *v = vsock_new(&cfg, msg, sizeof(msg));
	if (!v)
		abort();
	static struct pollfd fds[VSOCK_MAX_CONNS + VSOCK_MAX_PORTS + 1];
	const uint8_t *p = data;
	size_t left = size;
	int clients[8], nr_clients = 0;
	for (int steps = 0; left && steps < 256; steps++) {
		uint8_t op = (uint8_t)take(&p, &left, 1) % 6;
		if (op == 5) {
			vsock_reset(v);
			struct iovec iov = {rxbuf, sizeof(rxbuf)};
			if (vsock_rx(v, &iov, 1, sizeof(rxbuf)) != 0)
				abort();
			continue;
		}
		if (op == 3) {
			size_t n = take(&p, &left, 1);
			n = n < left ? n : left;
			struct sockaddr_un a = {.sun_family = AF_UNIX};
			memcpy(a.sun_path, uds, strlen(uds) + 1);
			int fd = nr_clients < 8 ? socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)
						: -1;
			if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
				(void)!send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
				clients[nr_clients++] = fd;
			} else if (fd >= 0) {
				close(fd);
			}
			p += n;
			left -= n;
			continue;
		}
		if (op == 0) {
			size_t n = take(&p, &left, 2);
			n = n < left ? n : left;
			memcpy(pkt, p, n);
			p += n;
			left -= n;
			size_t c1 = take(&p, &left, 2), c2 = take(&p, &left, 2);
			c1 = n ? c1 % (n + 1) : 0;
			c2 = c1 < n ? c1 + c2 % (n - c1 + 1) : n;
			struct iovec iov[3] = {{pkt, c1}, {pkt + c1, c2 - c1}, {pkt + c2, n - c2}};
			vsock_tx(v, iov, 3, n);
		} else if (op == 1) {
			size_t n = take(&p, &left, 2) % sizeof(rxbuf);
			struct iovec iov[2] = {{rxbuf, n / 2}, {rxbuf + n / 2, n - n / 2}};
			size_t w = vsock_rx(v, iov, 2, n);
			if (w > n || (w && w < VSOCK_HDR_LEN))
				abort();
		} else if (op == 4) {
			/* A batch: rxbuf cut into up to 5 buffers of fuzzer-chosen sizes. */
			struct iovec iov[5];
			struct vsock_rxbuf b[5];
			size_t written[5], off = 0;
			unsigned int nb = (unsigned int)(take(&p, &left, 1) % 5) + 1;
			for (unsigned int i = 0; i < nb; i++) {
				size_t len = take(&p, &left, 2) % (sizeof(rxbuf) / 5);
				iov[i] = (struct iovec){rxbuf + off, len};
				b[i] = (struct vsock_rxbuf){&iov[i], 1, len};
				off += len;
			}
			unsigned int got = vsock_rx_batch(v, b, nb, written);
			if (got > nb)
				abort();
			for (unsigned int i = 0; i < got; i++)
				if (written[i] > b[i].len || written[i] < VSOCK_HDR_LEN)
					abort();
		} else {
			serve();
			int timeout = 0;
			unsigned int n = vsock_poll_fill(v, fds, vsock_max_fds(v), &timeout);
			poll(fds, n, 0);
			vsock_poll_done(v, fds, n);
		}
	}
	vsock_free(v);
	for (int i = 0; i < nr_clients; i++)
		close(clients[i]);
	serve();
	return 0;
}
