/*
 * The VMM threads' seccomp allow-lists as libseccomp filters (sandbox_rules.c). Used at build
 * time only, by tools/sandbox-bpf, which writes them out as the BPF programs sandbox.c installs:
 * libec1 neither links libseccomp nor compiles a filter when a thread starts.
 */
#ifndef EC1_SANDBOX_RULES_H
#define EC1_SANDBOX_RULES_H

#include <seccomp.h>
#include <stdint.h>

#include "sandbox.h"

/* The filter of a kind of thread, refusing the calls outside it with action; NULL on failure. */
scmp_filter_ctx sandbox_rules(enum sandbox_kind kind, uint32_t action);

#endif
