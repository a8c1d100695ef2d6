/* The CLI's way to the library (cli.h): libec1.so.0 loaded on first use. */
#define EC1_CLI_API_C
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

const struct ec1_api *ec1_api(void)
{
	static struct ec1_api api;
	static bool loaded;
	if (loaded)
		return &api;
	/* Found as any library is (LD_LIBRARY_PATH, ec1's RUNPATH, the loader's cache). */
	void *h = dlopen("libec1.so.0", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "ec1: loading the library: %s\n", dlerror());
		exit(EXIT_EC1_ERROR);
	}
#define EC1_API_LOAD(f)                                                                          \
	if (!(api.f = (__typeof__(api.f))dlsym(h, #f))) {                                        \
		fprintf(stderr,                                                                  \
			"ec1: libec1.so.0 has no %s: not the version ec1 was built with\n", #f); \
		exit(EXIT_EC1_ERROR);                                                            \
	}
	EC1_CLI_FUNCS(EC1_API_LOAD)
#undef EC1_API_LOAD
	loaded = true;
	return &api;
}
