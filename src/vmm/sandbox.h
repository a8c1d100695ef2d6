/*
 * seccomp allow-lists for the VMM's own threads, one per kind of thread: written with Debian's
 * libseccomp (sandbox_rules.c) and compiled to BPF at build time (tools/sandbox-bpf), so a
 * thread installs a ready program with one system call (building one with libseccomp took
 * 0.1-0.6 ms a thread natively, 5-25 ms in the test rig). A thread installs its list on itself
 * once its set-up is done; the caller's threads (the one in
 * vm_run among them) are never filtered. A call outside the list fails with EPERM, or, with
 * EC1_SECCOMP=kill, ends the process (exit 125) naming the call on stderr (the VM test suite runs
 * so, to find a missing entry at once);
 * EC1_SECCOMP=off installs nothing (debugging only). No thread may execute a program, open a
 * socket, trace a process or make a device node.
 */
#ifndef EC1_SANDBOX_H
#define EC1_SANDBOX_H

enum sandbox_kind {
	SANDBOX_VCPU,	 /* KVM_RUN, MMIO and port handling */
	SANDBOX_CONSOLE, /* moving bytes between host descriptors and guest memory */
	SANDBOX_FS,	 /* the FUSE server: *at() calls on the share's descriptors */
	SANDBOX_BLK,	 /* a disk: positioned I/O, syncs and hole punching on its image */
	SANDBOX_NET,	 /* the network: I/O on its backend's descriptors (the base calls) */
	SANDBOX_NAT,	 /* the user-mode NAT: IPv4/IPv6 sockets of its own, nothing else */
	SANDBOX_VSOCK,	 /* vsock: unix stream sockets of its own to the mapped paths */
	SANDBOX_KINDS
};

/* Restricts the calling thread for good. Returns 0 or -errno. */
int sandbox_enter(enum sandbox_kind kind) __attribute__((warn_unused_result));

#endif
