/* ec1's console: the guest process's stdio and init's control port (control.c). */
#ifndef EC1_VIRTIO_CONTROL_H
#define EC1_VIRTIO_CONTROL_H

#include <stddef.h>

struct vm;

/*
 * The device table's entry (devices.c): a console for vm->cfg's stdin, stdout and stderr (each
 * may be -1) and init's control port, registered as vm->control. Returns 0 or an EC1_E* code
 * with msg filled.
 */
int control_add(struct vm *vm, char *msg, size_t msg_size) __attribute__((warn_unused_result));

#endif
