/*
 * Holding a device's interrupt while the driver keeps adding requests: completions batch, one
 * interrupt (and the guest's InterruptACK) for several requests.
 *
 * Why: a device faster than its guest answers each request before the next arrives. With several
 * requests in flight from a guest busy on its one vCPU (16 readers, bench/blk), every request then
 * costs an interrupt, an acknowledgement and a kick, and the guest's CPU, not the disk, sets the
 * pace (measured in the rig: one interrupt per request, 2,900 reads/s at 16 in flight against
 * QEMU's 4,800, whose slower thread-pool hand-off batches them).
 *
 * How: after a batch the device waits up to a window for the driver to add more before it signals,
 * and serves what comes meanwhile in the same batch (virtio/blk.c: looking at the ring with kicks
 * off for half the window where its thread has a CPU of its own, then asleep until a kick). The
 * hold is adaptive, so that a driver with one request in flight (which adds the next only after
 * the interrupt) is not delayed: off to start, each batch then served and signalled at once; on
 * from the next kick when a batch had two or more requests (the driver added while the device
 * served); else now and then (at the 16th kick, then ever more rarely, up to every 1,024th) one
 * batch probes with 50 us. A probe or hold that catches a request keeps it on, with a window
 * four times the mean wait of its catches (so that a hold ends soon after the driver has
 * stopped adding); three holds in a row that catch none turn it off. A batch of several that
 * turned it on proves less than a catch (a device thread kept off its CPU finds several
 * requests waiting without the driver adding during a hold): when the first hold after it
 * catches none, it is off at once and batches of several are not taken for a while (16
 * batches, doubling with each such miss up to 1,024, back to 16 at a catch).
 * Windows are 2 to 200 us. A hold ends at the first window without a request, after four windows
 * in all, or at 64 chains.
 * Decisions only: the caller waits and signals (virtio/blk.c).
 */
#ifndef EC1_VMM_VIRTIO_COALESCE_H
#define EC1_VMM_VIRTIO_COALESCE_H

#include <stdbool.h>
#include <stdint.h>

#define COALESCE_PROBE_NS    50000ll  /* a probe's window */
#define COALESCE_MIN_NS	     2000ll   /* the shortest window */
#define COALESCE_MAX_NS	     200000ll /* the longest window */
#define COALESCE_CHAINS	     64	      /* chains held at most before the signal */
#define COALESCE_PROBE_FIRST 16	      /* batches before the first probe, and after a catch */
#define COALESCE_PROBE_LAST  1024     /* batches between probes at most */

struct coalesce {
	int64_t fixed_ns;      /* EC1_BLK_HOLD: -1 adaptive, 0 never, else every batch this long */
	int64_t window_ns;     /* holding on: the window; 0 off */
	int64_t catch_ns;      /* from a hold's start or last catch to its next catch, averaged */
	unsigned int probe_in; /* batches until the next probe while off */
	unsigned int backoff;  /* the probes' interval */
	unsigned int misses;   /* holds in a row that caught nothing */
	bool trial;	       /* on from a batch of several, no catch since */
	unsigned int trust_in; /* unheld batches before a batch of several turns it on again */
	unsigned int distrust; /* what trust_in is set to at the next trial that misses */
	/* counted for --timing */
	uint64_t batches, held_chains, probes, probes_caught, evidence, trials_missed;
};

/*
 * how (EC1_BLK_HOLD): NULL or "adaptive" (the default), "off" (never hold), or a window in
 * microseconds, 1 to 200, that every batch waits (for tests and comparisons). Returns 0, or -1
 * for anything else (c is then the default).
 */
int coalesce_init(struct coalesce *c, const char *how) __attribute__((warn_unused_result));
/*
 * A kick came: how long the batch it brings waits for more before the signal (0: served and
 * signalled at once, coalesce_served after; else coalesce_signalled after the hold).
 */
int64_t coalesce_window(struct coalesce *c);
/* An unheld batch of `served` chains was served and signalled (two or more: holding on). */
void coalesce_served(struct coalesce *c, unsigned int served);
/* A hold caught a request delay_ns after it began waiting. */
void coalesce_caught(struct coalesce *c, int64_t delay_ns);
/* A held batch was signalled after a hold of window that caught `caught` more chains. */
void coalesce_signalled(struct coalesce *c, int64_t window, unsigned int caught);

#endif
