/*
 * hostile (tests/vm/hostile.c): what its scenarios share — the victim device's register window,
 * the scratch area of guest RAM for rings and buffers, and the helpers that find, unbind and
 * set up a device.
 */
#ifndef EC1_TESTS_HOSTILE_H
#define EC1_TESTS_HOSTILE_H

#include <stdbool.h>
#include <stdint.h>

#include "../../src/vmm/virtio/mmio_regs.h"

#define FEATURE_INDIRECT  (1u << 28)
#define FEATURE_EVENT_IDX (1u << 29)
#define DESC_NEXT	  1
#define DESC_WRITE	  2
#define DESC_INDIRECT	  4

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

extern volatile uint8_t *mmio;	  /* the victim's register window */
extern volatile uint8_t *scratch; /* guest RAM at scratch_gpa */
extern uint64_t scratch_gpa, scratch_size;

uint64_t rnd(void);
uint32_t rd(uint32_t off);
void wr(uint32_t off, uint32_t v);
uint64_t now_ms(void);

/*
 * Finds the scratch area (memmap= on the command line) and the window of the first device with
 * device_id that match (NULL: any) accepts; what names it in the message when there is none.
 * 0, or -1.
 */
int find_device(uint32_t device_id, int (*match)(volatile uint8_t *w, const void *arg),
		const void *arg, const char *what);

/*
 * Makes the guest kernel's driver let go of the first virtio device whose sysfs "device" is id
 * ("0x0002") and that match (NULL: any) accepts, given its number N (/sys/bus/virtio/devices/
 * virtioN). 0 (also when no driver was bound), or -1.
 */
int unbind_driver(const char *id, int (*match)(int n, const void *arg), const void *arg);

/* Queue q: num entries, its descriptor table, available and used rings at off, +4 KiB, +8 KiB
 * of the scratch area. */
void queue_setup(uint32_t q, int num, uint32_t off);
/* The descriptor table, available and used rings of the queue set up at off. */
volatile struct desc *qdesc(uint32_t off);
volatile uint16_t *qavail(uint32_t off);
volatile uint16_t *qused(uint32_t off);
/* Waits until the used index of the queue at off is no longer seen: 0, or -1 after ms. */
int used_moved(uint32_t off, uint16_t seen, int ms);

/* The disk and network scenarios (hostile_blknet.c): exit statuses as main's. */
int blk_scenario(uint64_t sectors, const char *id, int read_only);
int blk_no_status(uint64_t sectors);
int net_scenario(bool lies_only);

#endif
