/*
 * libFuzzer target: the libkrun helper's configuration reader (src/backend/krun_helper.c), which
 * the helper process ec1-krun reads from the caller: whatever the bytes, it reads within them,
 * accepts or refuses with a message, and never crashes. Checked only (no context made).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/backend/libkrun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1), msg[256];
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	int err = ec1_krun_config_read(buf, size, NULL, msg, sizeof(msg));
	if (err != EC1_OK && (err != EC1_EINVAL || !msg[0]))
		abort(); /* a refusal says why */
	free(buf);
	return 0;
}
