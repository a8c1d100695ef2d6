/*
 * A fake vmnet-helper for tests on Linux, where the real one (macOS) does not exist. Like the
 * real one it takes `--fd 3` and its options, prints one JSON line with the interface's
 * parameters, then exchanges Ethernet frames on fd 3 until SIGTERM: like vmnet's shared mode it
 * is a network with a DHCP server (tinynet.c: the guest 192.168.105.2/24, the gateway, server
 * and DNS 192.168.105.1, the range start it announces), answering ARP and ICMP echo.
 * It appends its command line to $FAKE_VMNET_LOG, "stopped" when it ends on SIGTERM, and then,
 * when frames came, a line of counts.
 * FAKE_VMNET_MODE: "exit" (fail without a line), "garbage" (a line that is not JSON), "hang"
 * (never print), "stubborn" (ignore SIGTERM).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tinynet.h"

static void log_line(const char *text)
{
	const char *path = getenv("FAKE_VMNET_LOG");
	FILE *f = path ? fopen(path, "a") : NULL;
	if (f) {
		fprintf(f, "%s\n", text);
		fclose(f);
	}
}

static volatile sig_atomic_t stop;

static void send_frame(const uint8_t *f, size_t len)
{
	send(3, f, len, 0);
}

static struct tinynet net = {
	.mac = {0x02, 0x00, 0x00, 0x00, 0x01, 0x05},
	.gateway = {192, 168, 105, 1},
	.guest = {192, 168, 105, 2},
	.prefix = 24,
	.send = send_frame,
};

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	char cmd[2048] = "";
	const char *id = "5e9c3f0b-7d41-4b2a-9f7e-1c2d3e4f5a6b";
	int fd_ok = 0;
	for (int i = 1; i < argc; i++) {
		if (i > 1)
			strncat(cmd, " ", sizeof(cmd) - strlen(cmd) - 1);
		strncat(cmd, argv[i], sizeof(cmd) - strlen(cmd) - 1);
		if (strcmp(argv[i], "--fd") == 0 && i + 1 < argc && strcmp(argv[i + 1], "3") == 0)
			fd_ok = 1;
		if (strcmp(argv[i], "--interface-id") == 0 && i + 1 < argc)
			id = argv[i + 1];
	}
	log_line(cmd);
	int type = 0;
	socklen_t len = sizeof(type);
	if (!fd_ok || getsockopt(3, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_DGRAM) {
		fprintf(stderr, "fake-vmnet-helper: fd 3 is not a datagram socket\n");
		return 2;
	}
	const char *mode = getenv("FAKE_VMNET_MODE");
	mode = mode ? mode : "";
	if (strcmp(mode, "exit") == 0)
		return 3;
	struct sigaction sa = {.sa_handler = on_term};
	sigaction(SIGTERM, &sa, NULL);
	if (strcmp(mode, "stubborn") == 0)
		signal(SIGTERM, SIG_IGN);
	if (strcmp(mode, "garbage") == 0)
		printf("vmnet: starting\n");
	else if (strcmp(mode, "hang") != 0)
		printf("{\"vmnet_start_address\":\"192.168.105.1\","
		       "\"vmnet_end_address\":\"192.168.105.254\","
		       "\"vmnet_subnet_mask\":\"255.255.255.0\",\"vmnet_mtu\":1500,"
		       "\"vmnet_max_packet_size\":1514,\"vmnet_interface_id\":\"%s\","
		       "\"vmnet_nat66_prefix\":\"fd9b:5a14:ba57:e3d3::\","
		       "\"vmnet_mac_address\":\"a:bb:cc:dd:ee:f\"}\n",
		       id);
	fflush(stdout);
	static uint8_t frame[65536];
	while (!stop) {
		ssize_t n = recv(3, frame, sizeof(frame), 0);
		if (n > 0)
			tinynet_frame(&net, frame, (size_t)n);
		else if (n == 0 || errno != EINTR)
			break;
	}
	if (stop)
		log_line("stopped");
	if (net.frames) {
		char line[160];
		snprintf(line, sizeof(line), "%lu frames, %lu dhcp acks, %lu echo replies",
			 net.frames, net.dhcp_acks, net.echoes);
		log_line(line);
	}
	return 0;
}
