/*
 * The device table: every device type the VM can have, in the order set-up adds them (and the
 * guest numbers them). A new device type is one file with its ops (virtio/mmio.h) and an add
 * function, plus one entry here.
 */
#ifndef EC1_VMM_DEVICES_H
#define EC1_VMM_DEVICES_H

#include <stddef.h>

struct vm;
struct vm_config;

struct vm_device_type {
	const char *step; /* its set-up step's name in --timing */
	/*
	 * Adds the devices vm->cfg asks for (none, one or several) with vm_add_mmio(). Returns 0
	 * or an EC1_E* code with msg naming the configuration field at fault.
	 */
	int (*add)(struct vm *vm, char *msg, size_t msg_size);
	/*
	 * Optional: called as set-up begins, to start in the background what add() will need and
	 * the steps before it need not wait for (a library to load). Never fails: add() does the
	 * work itself when this did not.
	 */
	void (*prepare)(const struct vm_config *cfg);
};

extern const struct vm_device_type vm_device_types[];
extern const unsigned int vm_nr_device_types;

#endif
