/* The initramfs of a run (initramfs.c). */
#ifndef EC1_VMM_INITRAMFS_H
#define EC1_VMM_INITRAMFS_H

#include <stddef.h>

struct vm;
struct vm_config;

/* The injected init (guest/init/init.c, static), embedded at build time. */
extern const unsigned char ec1_init_binary[];
extern const size_t ec1_init_binary_size;

/*
 * Writes the base archive (vm->cfg->initramfs_path, if any) and ours (init, the process
 * description, the mount points init needs) at the top of low RAM, then the boot information
 * with vm->cmdline. Returns 0 or an EC1_E* code with msg naming the field at fault.
 */
int vm_setup_initrd(struct vm *vm, char *msg, size_t msg_size) __attribute__((warn_unused_result));

/*
 * The process description init reads (guest/abi.h) for cfg's process, shares and disks, network
 * and exec agent: malloc'd into *out. 0 or -ENOMEM. The libkrun backend writes it into the
 * staging root its guests start from (src/backend/libkrun.c).
 */
int vm_process_blob(const struct vm_config *cfg, char **out, size_t *out_len);

#endif
