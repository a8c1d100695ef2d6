/*
 * virtio-blk requests (virtio 1.2 §5.2.6), answered against a disk image: the parser of what the
 * guest puts in a chain, apart from the device (blk.c) so that it is tested and fuzzed alone.
 * Every sector, length and segment the guest gives is checked against the disk before any I/O.
 */
#ifndef EC1_VIRTIO_BLK_REQ_H
#define EC1_VIRTIO_BLK_REQ_H

#include <stdbool.h>
#include <stdint.h>

#include "queue.h"

struct disk;

#define BLK_ID_BYTES		  20 /* VIRTIO_BLK_ID_BYTES: GET_ID's answer, the guest's serial */
#define BLK_SECTOR		  512
#define BLK_MAX_DISCARD_SEG	  32	     /* segments per DISCARD or WRITE_ZEROES request */
#define BLK_MAX_DISCARD_SECTORS	  (1u << 22) /* 2 GiB per segment */
#define BLK_DISCARD_ALIGN_SECTORS 8	     /* 4 KiB: holes are punched in file-system blocks */

/* Request types and status values (linux/virtio_blk.h). */
#define BLK_T_IN	   0
#define BLK_T_OUT	   1
#define BLK_T_FLUSH	   4
#define BLK_T_GET_ID	   8
#define BLK_T_DISCARD	   11
#define BLK_T_WRITE_ZEROES 13
#define BLK_S_OK	   0
#define BLK_S_IOERR	   1
#define BLK_S_UNSUPP	   2

struct blk_stats {
	uint64_t reads, writes, flushes, discards, other, errors;
	uint64_t read_bytes, written_bytes;
	uint64_t read_ns, write_ns; /* time in the image's reads and writes (--timing) */
};

struct blk_target {
	struct disk *disk;
	char id[BLK_ID_BYTES]; /* NUL-padded */
	struct blk_stats stats;
	bool no_flush;			   /* FLUSH not offered (sync=none): answered UNSUPP */
	struct iovec data[VIRTQ_MAX_SIZE]; /* scratch: a request's data buffers */
};

/*
 * Answers one request: does what it asks when it is well formed and inside the disk, writes the
 * status byte (OK, IOERR or UNSUPP) and returns the bytes written into the chain. Returns -1 only
 * when the chain has no device-writable byte for a status (the driver broke the protocol).
 */
int64_t blk_handle(struct blk_target *t, const struct virtq_chain *c);

#endif
