/*
 * libFuzzer target: the guest init's parser of the process description (guest/init/process.c).
 * A description it accepts has every field inside the buffer, NUL-terminated there.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
		}
		if (p.mounts[p.nr_mounts].source)
			abort();
		check(buf, size, p.net_cidr);
		check(buf, size, p.net_gateway);
		check(buf, size, p.net_dns);
		process_free(&p);
	}
	free(buf);
	return 0;
}
