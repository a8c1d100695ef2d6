/* virtio-fs (virtio 1.2 §5.11): one shared host directory, served by our FUSE server. */
#ifndef EC1_VIRTIO_FS_H
#define EC1_VIRTIO_FS_H

#include <stdbool.h>

#include <stddef.h>

#include "ec1/ec1.h"

struct vm;

#define VIRTIO_FS_TAG_MAX 36 /* bytes, §5.11.4 */
_Static_assert(VIRTIO_FS_TAG_MAX == EC1_MAX_TAG_LEN, "ec1.h publishes the tag limit");

/*
 * The device table's entry (devices.c): one device per share of vm->cfg, each sharing its
 * directory under its tag with its own server thread. Returns 0 or an EC1_E* code with msg
 * naming the share.
 */
int virtio_fs_add(struct vm *vm, char *msg, size_t msg_size) __attribute__((warn_unused_result));

#endif
