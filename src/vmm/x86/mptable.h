/* MP tables (Intel MP spec 1.4) for guests without ACPI. */
#ifndef EC1_X86_MPTABLE_H
#define EC1_X86_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

size_t mptable_size(unsigned int cpus);
/* Writes the floating pointer and configuration table for cpus vCPUs at dst (guest address gpa). */
void mptable_write(void *dst, uint32_t gpa, unsigned int cpus);

#endif
