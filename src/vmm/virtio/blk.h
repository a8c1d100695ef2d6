/* virtio-blk (virtio 1.2 §5.2): the VM's disks (vm_config.disks), one device each. */
#ifndef EC1_VIRTIO_BLK_H
#define EC1_VIRTIO_BLK_H

#include <stddef.h>

struct vm;

/* The device table's entry (devices.h): opens and adds every disk of vm->cfg. */
int virtio_blk_add(struct vm *vm, char *msg, size_t msg_size);

#endif
