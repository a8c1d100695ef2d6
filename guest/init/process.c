/* The process description's parser (process.h); fuzzed on the host (tests/fuzz). */
#include "process.h"

#include "../abi.h"

#include <stdlib.h>
#include <string.h>

/* The next NUL-terminated field, or NULL past the end. */
static char *next_field(char **cur, char *end)
{
	if (*cur >= end)
		return NULL;
	char *f = *cur;
	*cur += strlen(f) + 1;
	return f;
}

/* A count: decimal digits only, at most PROCESS_MAX_COUNT; -1 otherwise. */
static long next_count(char **cur, char *end)
{
	char *f = next_field(cur, end);
	if (!f || !*f || strlen(f) > 7 || strspn(f, "0123456789") != strlen(f))
		return -1;
	long n = strtol(f, NULL, 10);
	return n > PROCESS_MAX_COUNT ? -1 : n;
}

void process_free(struct process *p)
{
	free(p->argv);
	free(p->envp);
	free(p->mounts);
	memset(p, 0, sizeof(*p));
}

static int parse(char *buf, size_t len, struct process *p)
{
	char *end = buf + len, *cur = buf;
	char **fields[2] = {NULL, NULL};

	char *magic = next_field(&cur, end);
	if (!magic || strcmp(magic, EC1_ABI_PROCESS_MAGIC) != 0)
		return -1;
	p->exec_path = next_field(&cur, end);
	p->workdir = next_field(&cur, end);
	if (!p->workdir || !*p->exec_path)
		return -1;
	for (int f = 0; f < 2; f++) {
		long n = next_count(&cur, end);
		if (n < 0 || !(fields[f] = calloc((size_t)n + 1, sizeof(char *))))
			return -1;
		if (f == 0)
			p->argv = fields[0];
		else
			p->envp = fields[1];
		for (long i = 0; i < n; i++)
			if (!(fields[f][i] = next_field(&cur, end)))
				return -1;
	}
	p->nr_mounts = next_count(&cur, end);
	if (p->nr_mounts < 0 || !(p->mounts = calloc((size_t)p->nr_mounts + 1, sizeof(*p->mounts))))
		return -1;
	for (long i = 0; i < p->nr_mounts; i++) {
		struct mount_spec *m = &p->mounts[i];
		char *mode;
		if (!(m->fstype = next_field(&cur, end)) || !(m->source = next_field(&cur, end)) ||
		    !(m->path = next_field(&cur, end)) || !(mode = next_field(&cur, end)))
			return -1;
		if (!*m->source || m->path[0] != '/')
			return -1;
		if (strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0)
			return -1;
		m->read_only = strcmp(mode, "ro") == 0;
	}
	if (!(p->net_cidr = next_field(&cur, end)) || !(p->net_gateway = next_field(&cur, end)) ||
	    !(p->net_dns = next_field(&cur, end)))
		return -1;
	/* Nothing may follow: a longer description is not one this init understands. */
	return cur == end ? 0 : -1;
}

int process_parse(char *buf, size_t len, struct process *p)
{
	memset(p, 0, sizeof(*p));
	if (parse(buf, len, p) == 0)
		return 0;
	process_free(p);
	return -1;
}
