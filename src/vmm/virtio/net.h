/* virtio-net (virtio 1.2 §5.1): the VM's network interface (vm_config.net), when it has one. */
#ifndef EC1_VIRTIO_NET_H
#define EC1_VIRTIO_NET_H

#include <stddef.h>

struct vm;
struct vm_config;

/* The device table's entry (devices.h): adds the network device of vm->cfg, if any. */
int virtio_net_add(struct vm *vm, char *msg, size_t msg_size);
/* The device table's prepare (devices.h): the NAT's libraries start loading. */
void virtio_net_prepare(const struct vm_config *cfg);

#endif
