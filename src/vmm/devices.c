/* The device table (devices.h). */
#include "devices.h"

#include "virtio/blk.h"
#include "virtio/control.h"
#include "virtio/fs.h"
#include "virtio/net.h"
#include "virtio/vsock.h"

const struct vm_device_type vm_device_types[] = {
	{"console", control_add, NULL}, /* first: the guest's /dev/hvc0 and init's ports */
	{"shares", virtio_fs_add, NULL},
	{"disks", virtio_blk_add, NULL},
	{"network", virtio_net_add, virtio_net_prepare},
	{"vsock", virtio_vsock_add, NULL},
};

const unsigned int vm_nr_device_types = sizeof(vm_device_types) / sizeof(vm_device_types[0]);
