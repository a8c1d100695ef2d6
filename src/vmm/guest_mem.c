/* Guest physical memory. */
#include "guest_mem.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int map_region(struct guest_mem_region *r, uint64_t gpa, uint64_t size)
{
	/*
	 * Guest RAM is large and short-lived: huge pages cut page faults, EPT/NPT misses and TLB
	 * misses. KVM maps a 2 MiB guest page with one 2 MiB EPT/NPT entry only when the host
	 * address is 2 MiB aligned too, so the region starts on a 2 MiB boundary (the slack
	 * around it is returned at once).
	 */
	const uint64_t huge = 2ull << 20;
	uint8_t *raw = mmap(NULL, size + huge, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		return -errno;
	uint8_t *p = (uint8_t *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	munmap(p + size, (size_t)(raw + huge - p)); /* never empty: p < raw + huge */
	/*
	 * Except the first 2 MiB of guest RAM: the VMM writes a few KiB of boot tables there and
	 * the guest kernel, which reserves the first MiB and allocates from the top down, touches
	 * little more; one huge page there would zero 2 MiB (~0.2 ms) on the way to the first
	 * KVM_RUN for nothing.
	 */
	uint64_t small = gpa == 0 && size > huge ? huge : 0;
	if (small)
		madvise(p, small, MADV_NOHUGEPAGE); /* also where THP is "always" */
	madvise(p + small, size - small, MADV_HUGEPAGE);
	r->gpa = gpa;
	r->size = size;
	r->host = p;
	return 0;
}

int guest_mem_init(struct guest_mem *mem, uint64_t ram_bytes)
{
	int err;

	memset(mem, 0, sizeof(*mem));
	if (ram_bytes == 0)
		return -EINVAL;
	mem->ram_bytes = ram_bytes;
	uint64_t low = ram_bytes < GUEST_MEM_LOW_END ? ram_bytes : GUEST_MEM_LOW_END;
	err = map_region(&mem->regions[0], 0, low);
	if (err)
		return err;
	mem->nr_regions = 1;
	if (ram_bytes > low) {
		err = map_region(&mem->regions[1], GUEST_MEM_HIGH_START, ram_bytes - low);
		if (err) {
			guest_mem_free(mem);
			return err;
		}
		mem->nr_regions = 2;
	}
	return 0;
}

void guest_mem_free(struct guest_mem *mem)
{
	for (unsigned int i = 0; i < mem->nr_regions; i++)
		munmap(mem->regions[i].host, mem->regions[i].size);
	mem->nr_regions = 0;
}

void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		const struct guest_mem_region *r = &mem->regions[i];
		/* Written so that no sum can wrap: gpa and len are guest-controlled. */
		if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa))
			return r->host + (gpa - r->gpa);
	}
	return NULL;
}

static int read_full(int fd, uint8_t *dst, uint64_t len, uint64_t off)
{
	while (len) {
		ssize_t r = pread(fd, dst, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		dst += r;
		off += (uint64_t)r;
		len -= (uint64_t)r;
	}
	return 0;
}

/*
 * Copied, not mapped. Mapping the file's pages copy-on-write (no copy at set-up, shared between
 * VMs) left the guest to fault each 4 KiB page in on first touch, with a copy for each one it
 * writes: the kernel's data, its init sections and the gaps it frees (poisoning them), and the
 * whole initramfs, which the kernel frees the same way once unpacked. Copied into guest RAM
 * (huge pages), the kernel and the root take a few 2 MiB mappings instead. In one 1-CPU rig,
 * 2026-12-06, five runs of each in turn: the whole `ec1 run -- /bin/true` 1,940-2,190 ms mapped,
 * 890-1,230 copied (set-up 20-30 ms longer there; the guest's boot about 1 s shorter). Natively
 * (this PVM host, no VM) the copy takes 2.3 ms for the kernel's 12 MB and 0.3 ms for the busybox
 * root's 2 MB; each VM now holds its own copy of the kernel instead of sharing the page cache's.
 */
int guest_mem_load_file(struct guest_mem *mem, uint64_t gpa, int fd, uint64_t off, uint64_t len)
{
	uint8_t *dst = guest_mem_ptr(mem, gpa, len);
	if (!dst)
		return -EFAULT;
	return read_full(fd, dst, len, off);
}

uint64_t guest_mem_resident(const struct guest_mem *mem)
{
	/* Pages of the guest ranges mapped into this process (smaps "Rss"), file-backed ones too.
	 */
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	uint64_t total = 0;
	bool inside = false;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end, kb;
		if (sscanf(line, "%llx-%llx ", &start, &end) == 2) {
			inside = false;
			for (unsigned int i = 0; i < mem->nr_regions; i++) {
				uintptr_t h = (uintptr_t)mem->regions[i].host;
				if (start >= h && end <= h + mem->regions[i].size)
					inside = true;
			}
		} else if (inside && sscanf(line, "Rss: %llu kB", &kb) == 1) {
			total += kb * 1024;
		}
	}
	fclose(f);
	return total;
}
