/* libFuzzer target: the parser of vmnet-helper's JSON line (src/lib/vmnet.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ec1/ec1.h"
#include "../../src/lib/ec1_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1); /* exactly the line and its NUL: ASan sees a byte beyond */
	if (!line)
		return 0;
	memcpy(line, data, size);
	line[size] = 0;
	struct ec1_vmnet_info info;
	char err[256];
	if (ec1_vmnet_parse(line, &info, err, sizeof(err)) == 0 && info.mtu < 68)
		abort();
	free(line);
	return 0;
}
