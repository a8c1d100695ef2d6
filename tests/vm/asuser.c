/*
 * asuser: runs a command as another user (the VM suite's test of ec1 without root), with one
 * supplementary group (the one /dev/kvm belongs to, as for a user in the kvm group).
 *
 * usage: asuser UID GID SUPPLEMENTARY_GID COMMAND [ARG]...
 */
#define _GNU_SOURCE
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: asuser UID GID SUPPLEMENTARY_GID COMMAND [ARG]...\n");
		return 2;
	}
	gid_t groups[1] = {(gid_t)atoi(argv[3])};
	if (setgroups(1, groups) < 0 || setgid((gid_t)atoi(argv[2])) < 0 ||
	    setuid((uid_t)atoi(argv[1])) < 0) {
		perror("asuser");
		return 2;
	}
	execvp(argv[4], &argv[4]);
	perror("asuser: exec");
	return 127;
}
