//go:build !libkrun && !libkrun_sev && !libkrun_efi && !ec1

package libkrun

import (
	"context"
	"io"
)

// Context is a microVM's configuration and run. Without a variant build tag it is a stub:
// every call returns ErrLibkrunNotAvailable (no cgo, nothing to install).
type Context struct{}

func na(op string) error {
	return &Error{Code: ErrLibkrunNotAvailable.Code, Op: op, Msg: ErrLibkrunNotAvailable.Msg +
		" (built without a variant tag: libkrun, libkrun_sev, libkrun_efi or ec1)"}
}

// Variant names the build's backend ("stub" here).
const Variant = "stub"

func SetLogLevel(ctx context.Context, level LogLevel) error          { return na("SetLogLevel") }
func CreateContext(ctx context.Context) (*Context, error)            { return nil, na("CreateContext") }
func (k *Context) Free(ctx context.Context) error                    { return na("Free") }
func (k *Context) SetVMConfig(ctx context.Context, c VMConfig) error { return na("SetVMConfig") }
func (k *Context) SetRoot(ctx context.Context, dir string) error     { return na("SetRoot") }
func (k *Context) SetMappedVolumes(ctx context.Context, v []string) error {
	return na("SetMappedVolumes")
}
func (k *Context) AddDisk(ctx context.Context, c DiskConfig) error       { return na("AddDisk") }
func (k *Context) SetNetwork(ctx context.Context, c NetworkConfig) error { return na("SetNetwork") }
func (k *Context) SetProcess(ctx context.Context, c ProcessConfig) error { return na("SetProcess") }
func (k *Context) SetKernel(ctx context.Context, c KernelConfig) error   { return na("SetKernel") }
func (k *Context) SetSEVConfig(ctx context.Context, c SEVConfig) error   { return na("SetSEVConfig") }
func (k *Context) GetShutdownEventFD(ctx context.Context) (int, error) {
	return -1, na("GetShutdownEventFD")
}
func (k *Context) SetVMNetNetwork(ctx context.Context, c VMNetConfig) error {
	return na("SetVMNetNetwork")
}
func (k *Context) SetVMNetNetworkShared(ctx context.Context, portMap []string) error {
	return na("SetVMNetNetworkShared")
}
func (k *Context) SetVMNetNetworkBridged(ctx context.Context, iface string, portMap []string) error {
	return na("SetVMNetNetworkBridged")
}
func (k *Context) SetVMNetNetworkHost(ctx context.Context, isolation bool, portMap []string) error {
	return na("SetVMNetNetworkHost")
}
func (k *Context) SetStdio(stdin io.Reader, stdout, stderr io.Writer) error {
	return na("SetStdio")
}
func (k *Context) Run(ctx context.Context) (int, error) { return -1, na("Run") }
func (k *Context) StartEnter(ctx context.Context) error { return na("StartEnter") }
