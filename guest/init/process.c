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
	if (!p->workdir)
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
		char *mode, *part;
		if (!(m->fstype = next_field(&cur, end)) || !(m->source = next_field(&cur, end)) ||
		    !(m->path = next_field(&cur, end)) || !(mode = next_field(&cur, end)) ||
		    !(part = next_field(&cur, end)))
			return -1;
		if (!*m->source || m->path[0] != '/')
			return -1;
		if (strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0)
			return -1;
		m->read_only = strcmp(mode, "ro") == 0;
		/* "0" or 1..EC1_ABI_MAX_PARTITION without leading zeros; only a disk has them. */
		if (!*part || strlen(part) > 3 || strspn(part, "0123456789") != strlen(part) ||
		    (part[0] == '0' && part[1]))
			return -1;
		m->partition = (unsigned int)strtoul(part, NULL, 10);
		if (m->partition > EC1_ABI_MAX_PARTITION ||
		    (m->partition && strcmp(m->fstype, EC1_ABI_FS_VIRTIOFS) == 0))
			return -1;
	}
	if (!(p->net_cidr = next_field(&cur, end)) || !(p->net_gateway = next_field(&cur, end)) ||
	    !(p->net_dns = next_field(&cur, end)))
		return -1;
	char *port = next_field(&cur, end);
	if (!port || !*port || strlen(port) > 10 || strspn(port, "0123456789") != strlen(port))
		return -1;
	unsigned long long agent = strtoull(port, NULL, 10);
	if (agent > 0xfffffffeull || (!agent && !*p->exec_path))
		return -1; /* no process and no agent: nothing to do */
	p->agent_port = (unsigned int)agent;
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

void exec_request_free(struct exec_request *r)
{
	free(r->argv);
	free(r->envp);
	memset(r, 0, sizeof(*r));
}

/* A number field: decimal digits only, at most max; -1 otherwise. */
static long next_number(char **cur, char *end, long max)
{
	char *f = next_field(cur, end);
	if (!f || !*f || strlen(f) > 7 || strspn(f, "0123456789") != strlen(f))
		return -1;
	long n = strtol(f, NULL, 10);
	return n > max ? -1 : n;
}

static int parse_request(char *buf, size_t len, struct exec_request *r)
{
	char *end = buf + len, *cur = buf;
	char *magic = next_field(&cur, end);
	if (!magic || strcmp(magic, EC1_EXEC_MAGIC) != 0)
		return -1;
	long flags = next_number(&cur, end, 255);
	long rows = next_number(&cur, end, 65535);
	long cols = next_number(&cur, end, 65535);
	if (flags < 0 || rows < 0 || cols < 0 ||
	    (flags & ~(long)(EC1_EXEC_F_TTY | EC1_EXEC_F_STDIN)))
		return -1;
	r->flags = (unsigned int)flags;
	r->rows = (unsigned short)rows;
	r->cols = (unsigned short)cols;
	r->exec_path = next_field(&cur, end);
	r->workdir = next_field(&cur, end);
	if (!r->workdir || !*r->exec_path || (*r->workdir && *r->workdir != '/'))
		return -1;
	for (int f = 0; f < 2; f++) {
		/* A frame holds at most EC1_EXEC_MAX_PAYLOAD fields. */
		long n = next_number(&cur, end, EC1_EXEC_MAX_PAYLOAD);
		char **list;
		if (n < 0 || !(list = calloc((size_t)n + 1, sizeof(char *))))
			return -1;
		if (f == 0)
			r->argv = list;
		else
			r->envp = list;
		for (long i = 0; i < n; i++) {
			if (!(list[i] = next_field(&cur, end)))
				return -1;
			if (f == 1 && (list[i][0] == '=' || !strchr(list[i], '=')))
				return -1;
		}
	}
	if (!r->argv[0])
		return -1;
	return cur == end ? 0 : -1;
}

int exec_request_parse(char *buf, size_t len, struct exec_request *r)
{
	memset(r, 0, sizeof(*r));
	if (parse_request(buf, len, r) == 0)
		return 0;
	exec_request_free(r);
	return -1;
}
