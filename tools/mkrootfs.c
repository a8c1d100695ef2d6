/*
 * mkrootfs: writes ec1's default guest root, a newc cpio archive holding a static busybox and a
 * link for each of its applets, plus the few files a shell expects.
 * Usage: mkrootfs BUSYBOX OUTPUT
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../src/vmm/cpio.h"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

int main(int argc, char **argv)
{
	struct cpio c;
	size_t len;
	int err = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: mkrootfs BUSYBOX OUTPUT\n");
		return 2;
	}
	char *bb = slurp(argv[1], &len);
	if (!bb) {
		fprintf(stderr, "mkrootfs: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	cpio_init(&c);
	static const char *const dirs[] = {"bin", "sbin", "usr", "usr/bin", "usr/sbin",
					   "etc", "root", "var", "run",	    "mnt"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		err = err ?: cpio_add(&c, dirs[i], S_IFDIR | 0755, NULL, 0);
	err = err ?: cpio_add(&c, "bin/busybox", S_IFREG | 0755, bb, len);
	static const char passwd[] = "root:x:0:0:root:/root:/bin/sh\n";
	static const char group[] = "root:x:0:\n";
	err = err ?: cpio_add(&c, "etc/passwd", S_IFREG | 0644, passwd, sizeof(passwd) - 1);
	err = err ?: cpio_add(&c, "etc/group", S_IFREG | 0644, group, sizeof(group) - 1);

	/* busybox --list-full prints each applet's install path, e.g. "usr/bin/awk". */
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "'%s' --list-full", argv[1]);
	FILE *p = popen(cmd, "r");
	char line[512];
	unsigned int applets = 0;
	while (!err && p && fgets(line, sizeof(line), p)) {
		line[strcspn(line, "\n")] = 0;
		if (!*line || strcmp(line, "bin/busybox") == 0)
			continue;
		err = cpio_add(&c, line, S_IFLNK | 0777, "/bin/busybox", strlen("/bin/busybox"));
		applets++;
	}
	if (!p || pclose(p) != 0 || applets == 0) {
		fprintf(stderr, "mkrootfs: %s --list-full failed\n", argv[1]);
		return 1;
	}
	err = err ?: cpio_finish(&c);
	FILE *out = fopen(argv[2], "wb");
	bool ok = !err && out && fwrite(c.buf, 1, c.len, out) == c.len;
	if (out && fclose(out))
		ok = false;
	cpio_free(&c);
	free(bb);
	if (!ok) {
		fprintf(stderr, "mkrootfs: %s: write failed\n", argv[2]);
		return 1;
	}
	return 0;
}
