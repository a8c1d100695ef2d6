/*
 * init's exec agent (agent.c): a child of init that takes connections on a vsock port and runs a
 * process for each, with its streams, signals, terminal size and exit status carried in frames
 * (the protocol is in guest/abi.h).
 */
#ifndef EC1_INIT_AGENT_H
#define EC1_INIT_AGENT_H

#include "process.h"

/*
 * Serves listen_fd (a listening vsock socket) until SIGTERM, then ends what runs (SIGTERM to
 * each process group; SIGKILL once SIGUSR1 comes) and exits 0 once every session is over, each
 * host told its process's status. p: the VM's description, whose
 * environment and working directory are each process's defaults. Never returns.
 */
void agent_main(int listen_fd, const struct process *p) __attribute__((noreturn));

/* execve, or a search of PATH in envp when the name has no '/'; returns the errno to report. */
int exec_search(const char *path, char *const *argv, char *const *envp);

#endif
