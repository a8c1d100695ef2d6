/*
 * One process-wide budget for the descriptors a guest can make the VMM hold open (a FUSE node or
 * file handle each, for every share of every VM in the process). What the budget gives out never
 * reaches the descriptor limit: FD_BUDGET_RESERVE descriptors, besides those the process held
 * when the budget was set, stay free for the VMM's own needs (eventfds, vCPUs, pipes, transient
 * opens), so a guest that opens and opens gets EMFILE/ENFILE and the VMM keeps running.
 */
#ifndef EC1_FD_BUDGET_H
#define EC1_FD_BUDGET_H

#include <stdbool.h>

#define FD_BUDGET_RESERVE 256

/*
 * Raises RLIMIT_NOFILE as far as allowed and sets the budget to what the limit leaves after the
 * descriptors open now (those out of the budget aside) and the reserve. Called by each device
 * that takes from the budget, at its creation.
 */
void fd_budget_init(void);
/* Takes one descriptor from the budget; false when it is spent. */
bool fd_budget_take(void) __attribute__((warn_unused_result));
/* Gives one back (its descriptor was closed). */
void fd_budget_give(void);
/* Descriptors out of the budget now, and the budget's size: for tests and reports. */
unsigned int fd_budget_used(void);
unsigned int fd_budget_limit(void);

#endif
