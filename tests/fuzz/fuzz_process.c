/*
 * libFuzzer target: the guest init's parsers (guest/init/process.c) of the process description
 * and of an exec request, each input given to both. What they accept has every field inside the
 * buffer, NUL-terminated there.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../guest/abi.h"
#include "../../guest/init/process.h"

static void check(const char *buf, size_t len, const char *f)
{
	if (!f || f < buf || f >= buf + len || strlen(f) >= (size_t)(buf + len - f) + 1)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = 0;
	struct process p;
	if (process_parse(buf, size, &p) == 0) {
		check(buf, size, p.exec_path);
		check(buf, size, p.workdir);
		for (char **a = p.argv; *a; a++)
			check(buf, size, *a);
		for (char **e = p.envp; *e; e++)
			check(buf, size, *e);
		for (long i = 0; i < p.nr_mounts; i++) {
			check(buf, size, p.mounts[i].fstype);
			check(buf, size, p.mounts[i].source);
			check(buf, size, p.mounts[i].path);
			if (p.mounts[i].partition > EC1_ABI_MAX_PARTITION ||
			    (p.mounts[i].partition &&
			     strcmp(p.mounts[i].fstype, EC1_ABI_FS_VIRTIOFS) == 0))
				abort();
		}
		if (p.mounts[p.nr_mounts].source)
			abort();
		check(buf, size, p.net_cidr);
		check(buf, size, p.net_gateway);
		check(buf, size, p.net_dns);
		process_free(&p);
	}
	memcpy(buf, data, size);
	struct exec_request r;
	if (exec_request_parse(buf, size, &r) == 0) {
		check(buf, size, r.exec_path);
		check(buf, size, r.workdir);
		if (!r.argv[0] || !*r.exec_path)
			abort();
		for (char **a = r.argv; *a; a++)
			check(buf, size, *a);
		for (char **e = r.envp; *e; e++)
			if (check(buf, size, *e), !strchr(*e, '='))
				abort();
		exec_request_free(&r);
	}
	free(buf);
	return 0;
}
