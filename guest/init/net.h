/* init's network bring-up (net.c): lo always; eth0 static or by DHCP; /etc/resolv.conf. */
#ifndef EC1_INIT_NET_H
#define EC1_INIT_NET_H

#include "process.h"

/* Writes a message to the process's stderr port, else the console (init.c). */
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * lo up, always; with a network, the first Ethernet interface gets its address (the process
 * description's, or a DHCP server's when it says "dhcp"), the default route and
 * /etc/resolv.conf (bound over the root's, when the root is a host directory or an image).
 * No DHCP answer is not fatal (said, and eth0 left up without an address). Returns 0, or -1
 * with errno set and the step in *what.
 */
int net_up(const struct process *p, const char **what);

#endif
