//go:build !vmnet_entitlement && (libkrun || libkrun_sev || libkrun_efi || ec1)

package libkrun

import "context"

func vmnetOff(op string) error {
	return &Error{Code: ErrVMNetNotAvailable.Code, Op: op,
		Msg: ErrVMNetNotAvailable.Msg + " (built without the vmnet_entitlement tag)"}
}

func (k *Context) SetVMNetNetwork(ctx context.Context, c VMNetConfig) error {
	return vmnetOff("SetVMNetNetwork")
}
func (k *Context) SetVMNetNetworkShared(ctx context.Context, portMap []string) error {
	return vmnetOff("SetVMNetNetworkShared")
}
func (k *Context) SetVMNetNetworkBridged(ctx context.Context, iface string, portMap []string) error {
	return vmnetOff("SetVMNetNetworkBridged")
}
func (k *Context) SetVMNetNetworkHost(ctx context.Context, isolation bool, portMap []string) error {
	return vmnetOff("SetVMNetNetworkHost")
}
