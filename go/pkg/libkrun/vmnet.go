//go:build vmnet_entitlement && (libkrun || libkrun_sev || libkrun_efi || ec1)

package libkrun

/*
#include <ec1/ec1.h>
#include <stdlib.h>
*/
import "C"

import (
	"context"
	"unsafe"
)

// SetVMNetNetwork starts vmnet-helper for the VM (its network then is vmnet's).
func (k *Context) SetVMNetNetwork(ctx context.Context, c VMNetConfig) error {
	var frees []unsafe.Pointer
	s := func(p *string) *C.char {
		r := cstr(p)
		frees = append(frees, unsafe.Pointer(r))
		return r
	}
	defer func() {
		for _, p := range frees {
			C.free(p)
		}
	}()
	a, n, free := cstrs(c.PortMap)
	defer free()
	cfg := C.struct_ec1_vmnet_config{interface_id: s(c.InterfaceID),
		mode: C.enum_ec1_vmnet_mode(c.OperationMode), start_address: s(c.StartAddress),
		end_address: s(c.EndAddress), subnet_mask: s(c.SubnetMask),
		shared_interface: s(c.SharedInterface), verbose: C.bool(c.Verbose),
		port_map: a, port_map_count: n}
	if c.EnableIsolation != nil {
		cfg.enable_isolation = C.bool(*c.EnableIsolation)
	}
	return fail(k.c, "SetVMNetNetwork", C.ec1_ctx_set_vmnet(k.c, &cfg))
}

func (k *Context) SetVMNetNetworkShared(ctx context.Context, portMap []string) error {
	a, n, free := cstrs(portMap)
	defer free()
	return fail(k.c, "SetVMNetNetworkShared", C.ec1_ctx_set_vmnet_shared(k.c, a, n))
}

func (k *Context) SetVMNetNetworkBridged(ctx context.Context, iface string, portMap []string) error {
	i := C.CString(iface)
	defer C.free(unsafe.Pointer(i))
	a, n, free := cstrs(portMap)
	defer free()
	return fail(k.c, "SetVMNetNetworkBridged", C.ec1_ctx_set_vmnet_bridged(k.c, i, a, n))
}

func (k *Context) SetVMNetNetworkHost(ctx context.Context, isolation bool, portMap []string) error {
	a, n, free := cstrs(portMap)
	defer free()
	return fail(k.c, "SetVMNetNetworkHost", C.ec1_ctx_set_vmnet_host(k.c, C.bool(isolation), a, n))
}
