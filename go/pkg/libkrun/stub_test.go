//go:build !libkrun && !libkrun_sev && !libkrun_efi && !ec1

package libkrun

import (
	"context"
	"errors"
	"testing"
)

// Without a variant tag every call returns ErrLibkrunNotAvailable, and nothing panics.
func TestStubEveryCallNotAvailable(t *testing.T) {
	ctx := context.Background()
	if _, err := CreateContext(ctx); !errors.Is(err, ErrLibkrunNotAvailable) {
		t.Fatalf("CreateContext: %v", err)
	}
	k := &Context{}
	_, fdErr := k.GetShutdownEventFD(ctx)
	_, runErr := k.Run(ctx)
	errs := map[string]error{
		"SetLogLevel":            SetLogLevel(ctx, LogLevelInfo),
		"Free":                   k.Free(ctx),
		"SetVMConfig":            k.SetVMConfig(ctx, VMConfig{NumVCPUs: 1, RAMMiB: 512}),
		"SetRoot":                k.SetRoot(ctx, "/"),
		"SetMappedVolumes":       k.SetMappedVolumes(ctx, []string{"/tmp:/tmp"}),
		"AddDisk":                k.AddDisk(ctx, DiskConfig{BlockID: "a", Path: "/dev/null"}),
		"SetNetwork":             k.SetNetwork(ctx, NetworkConfig{}),
		"SetProcess":             k.SetProcess(ctx, ProcessConfig{ExecPath: "/bin/true"}),
		"SetKernel":              k.SetKernel(ctx, KernelConfig{Path: "/k"}),
		"SetSEVConfig":           k.SetSEVConfig(ctx, SEVConfig{TEEConfigFile: String("/x")}),
		"GetShutdownEventFD":     fdErr,
		"SetVMNetNetwork":        k.SetVMNetNetwork(ctx, VMNetConfig{}),
		"SetVMNetNetworkShared":  k.SetVMNetNetworkShared(ctx, nil),
		"SetVMNetNetworkBridged": k.SetVMNetNetworkBridged(ctx, "en0", nil),
		"SetVMNetNetworkHost":    k.SetVMNetNetworkHost(ctx, true, nil),
		"SetStdio":               k.SetStdio(nil, nil, nil),
		"Run":                    runErr,
		"StartEnter":             k.StartEnter(ctx),
	}
	for op, err := range errs {
		if !errors.Is(err, ErrLibkrunNotAvailable) {
			t.Errorf("%s: %v, want ErrLibkrunNotAvailable", op, err)
		}
		if errors.Is(err, ErrInvalid) {
			t.Errorf("%s: also matches ErrInvalid", op)
		}
	}
}

func TestPtrHelpers(t *testing.T) {
	if *Ptr(3) != 3 || *String("x") != "x" || *Ptr(true) != true {
		t.Fatal("Ptr/String")
	}
}
