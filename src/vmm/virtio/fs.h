/* virtio-fs (virtio 1.2 §5.11): one shared host directory, served by our FUSE server. */
#ifndef EC1_VIRTIO_FS_H
#define EC1_VIRTIO_FS_H

#include <stdbool.h>

struct vm;
struct virtio_fs;

#define VIRTIO_FS_TAG_MAX 36 /* bytes, §5.11.4 */

/* Adds a device sharing dir under tag (flags: FUSE_SERVER_*) and starts its thread. Returns 0 or
 * -errno. */
int virtio_fs_create(struct vm *vm, const char *tag, const char *dir, unsigned int flags,
		     struct virtio_fs **out) __attribute__((warn_unused_result));
/* Stops the thread and frees the server (the transport is freed with the VM's devices). */
void virtio_fs_destroy(struct virtio_fs *fs);

#endif
