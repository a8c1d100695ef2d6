/* The process-wide descriptor budget (fd_budget.h). */
#include "fd_budget.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>

/* The most a guest may hold, whatever the limit: a node table's worth and then some. */
#define FD_BUDGET_MAX (1ull << 20)

static unsigned int budget_used, budget_limit;

/* The kernel's ceiling on any process's descriptors (fs.nr_open). */
static rlim_t nr_open(void)
{
	unsigned long n = 1024 * 1024;
	FILE *f = fopen("/proc/sys/fs/nr_open", "re");
	if (f) {
		if (fscanf(f, "%lu", &n) != 1)
			n = 1024 * 1024;
		fclose(f);
	}
	return (rlim_t)n;
}

static unsigned int open_now(void)
{
	unsigned int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n > 0 ? n - 1 : 0; /* not the directory's own descriptor */
}

void fd_budget_init(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		rl.rlim_cur = rl.rlim_max = 1024;
	rlim_t want = (rlim_t)FD_BUDGET_MAX + 4096, ceiling = nr_open();
	if (want > ceiling)
		want = ceiling;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
		/* Root (CAP_SYS_RESOURCE) may raise the hard limit too. */
		struct rlimit more = {want, want};
		if (setrlimit(RLIMIT_NOFILE, &more) == 0)
			rl = more;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit soft = {rl.rlim_max, rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &soft) == 0)
			rl = soft;
	}
	uint64_t limit = rl.rlim_cur == RLIM_INFINITY ? FD_BUDGET_MAX : rl.rlim_cur;
	/* The descriptors open now that are not the budget's are the VMM's and the caller's. */
	uint64_t others = open_now(), used = __atomic_load_n(&budget_used, __ATOMIC_ACQUIRE);
	others = others > used ? others - used : 0;
	uint64_t keep = others + FD_BUDGET_RESERVE;
	limit = limit > keep ? limit - keep : 0;
	if (limit > FD_BUDGET_MAX)
		limit = FD_BUDGET_MAX;
	__atomic_store_n(&budget_limit, (unsigned int)limit, __ATOMIC_RELEASE);
}

bool fd_budget_take(void)
{
	unsigned int used = __atomic_load_n(&budget_used, __ATOMIC_RELAXED);
	do {
		if (used >= __atomic_load_n(&budget_limit, __ATOMIC_ACQUIRE))
			return false;
	} while (!__atomic_compare_exchange_n(&budget_used, &used, used + 1, true, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	return true;
}

void fd_budget_give(void)
{
	__atomic_fetch_sub(&budget_used, 1, __ATOMIC_RELEASE);
}

unsigned int fd_budget_used(void)
{
	return __atomic_load_n(&budget_used, __ATOMIC_ACQUIRE);
}

unsigned int fd_budget_limit(void)
{
	return __atomic_load_n(&budget_limit, __ATOMIC_ACQUIRE);
}
