/* virtio-vsock (virtio 1.2 §5.10): the VM's vsock device (vm_config.vsock), when it has one. */
#ifndef EC1_VIRTIO_VSOCK_H
#define EC1_VIRTIO_VSOCK_H

#include <stddef.h>

struct vm;

/* The device table's entry (devices.h): adds the vsock device of vm->cfg, if any. */
int virtio_vsock_add(struct vm *vm, char *msg, size_t msg_size);

#endif
