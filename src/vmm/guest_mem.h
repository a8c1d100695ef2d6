/* Guest physical memory: one or two host mappings, and the one bounds-checked way to reach them. */
#ifndef EC1_GUEST_MEM_H
#define EC1_GUEST_MEM_H

#include <stddef.h>
#include <stdint.h>

/* Guest RAM lives below this address; above it up to 4 GiB is the MMIO hole (devices, APICs). */
#define GUEST_MEM_LOW_END    0xc0000000ull
#define GUEST_MEM_HIGH_START 0x100000000ull

struct guest_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

struct guest_mem {
	struct guest_mem_region regions[2];
	unsigned int nr_regions;
	uint64_t ram_bytes;
};

/* Maps ram_bytes of anonymous memory, split around the MMIO hole. Returns 0 or -errno. */
int guest_mem_init(struct guest_mem *mem, uint64_t ram_bytes) __attribute__((warn_unused_result));
void guest_mem_free(struct guest_mem *mem);

/*
 * Host pointer for [gpa, gpa + len) when the whole range is guest RAM inside one region, else
 * NULL. Every guest-provided address goes through here before it is touched.
 */
void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* Bytes of guest RAM resident in the host (touched by the guest or by loading). */
uint64_t guest_mem_resident(const struct guest_mem *mem);

/* Fills [gpa, gpa + len) with the file's bytes from offset off (read). Returns 0 or -errno. */
int guest_mem_load_file(struct guest_mem *mem, uint64_t gpa, int fd, uint64_t off, uint64_t len)
	__attribute__((warn_unused_result));

#endif
