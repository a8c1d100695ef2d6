/* Holding a device's interrupt while the driver keeps adding requests (coalesce.h). */
#include "coalesce.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int coalesce_init(struct coalesce *c, const char *how)
{
	*c = (struct coalesce){.probe_in = COALESCE_PROBE_FIRST,
			       .backoff = COALESCE_PROBE_FIRST,
			       .distrust = COALESCE_PROBE_FIRST,
			       .fixed_ns = -1};
	if (!how || !strcmp(how, "adaptive"))
		return 0;
	if (!strcmp(how, "off")) {
		c->fixed_ns = 0;
		return 0;
	}
	char *end;
	errno = 0;
	long us = strtol(how, &end, 10);
	if (errno || end == how || *end || us < 1 || us > COALESCE_MAX_NS / 1000)
		return -1;
	c->fixed_ns = (int64_t)us * 1000;
	return 0;
}

static int64_t clamp_window(int64_t w)
{
	return w < COALESCE_MIN_NS ? COALESCE_MIN_NS : w > COALESCE_MAX_NS ? COALESCE_MAX_NS : w;
}

void coalesce_caught(struct coalesce *c, int64_t delay_ns)
{
	if (delay_ns < 0)
		delay_ns = 0;
	c->catch_ns = c->catch_ns ? c->catch_ns + (delay_ns - c->catch_ns) / 8 : delay_ns;
}

int64_t coalesce_window(struct coalesce *c)
{
	if (c->fixed_ns >= 0)
		return c->fixed_ns;
	if (c->window_ns)
		return c->window_ns;
	if (c->probe_in > 1) {
		c->probe_in--;
		return 0;
	}
	c->probe_in = 0;
	c->probes++;
	return COALESCE_PROBE_NS;
}

void coalesce_served(struct coalesce *c, unsigned int served)
{
	c->batches++;
	if (c->fixed_ns >= 0 || c->window_ns)
		return;
	if (c->trust_in) {
		c->trust_in--;
		return;
	}
	if (served > 1) {
		/* The driver added while the device served: holding on from the next batch, on
		 * trial until a hold catches a request. */
		c->evidence++;
		c->window_ns = c->catch_ns ? clamp_window(4 * c->catch_ns) : COALESCE_PROBE_NS;
		c->misses = 0;
		c->trial = true;
	}
}

void coalesce_signalled(struct coalesce *c, int64_t window, unsigned int caught)
{
	c->batches++;
	c->held_chains += caught;
	if (!window || c->fixed_ns >= 0)
		return;
	if (caught) {
		if (!c->window_ns)
			c->probes_caught++;
		c->window_ns = clamp_window(4 * c->catch_ns);
		c->misses = 0;
		c->backoff = COALESCE_PROBE_FIRST;
		c->trial = false;
		c->distrust = COALESCE_PROBE_FIRST;
		return;
	}
	if (c->trial) {
		/* On from a batch of several, and the first hold caught nothing: off, and batches
		 * of several not taken for a while, longer each time. */
		c->trials_missed++;
		c->trust_in = c->distrust;
		if (c->distrust < COALESCE_PROBE_LAST)
			c->distrust *= 2;
		c->trial = false;
		c->window_ns = 0;
		c->misses = 0;
		return;
	}
	if (c->window_ns && ++c->misses < 3)
		return;
	/* A probe that missed, or a third hold in a row: off, and the next probe later. */
	if (!c->window_ns && c->backoff < COALESCE_PROBE_LAST)
		c->backoff *= 2;
	c->window_ns = 0;
	c->misses = 0;
	c->probe_in = c->backoff;
}
