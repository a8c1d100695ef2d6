// The seed's example, runnable: `go run ./pkg/libkrun/example` (the stub: says libkrun is not
// available), `go run -tags ec1 ./pkg/libkrun/example` (ec1's engine: prints "Hello World"),
// `-tags libkrun` (libkrun, where installed).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"ec1/pkg/libkrun"
)

func main() {
	ctx := context.Background()

	// Once per process (libkrun's logger can be set once).
	if err := libkrun.SetLogLevel(ctx, libkrun.LogLevelWarn); err != nil &&
		!errors.Is(err, libkrun.ErrLibkrunNotAvailable) {
		fmt.Fprintln(os.Stderr, err)
	}

	kctx, err := libkrun.CreateContext(ctx)
	if errors.Is(err, libkrun.ErrLibkrunNotAvailable) {
		fmt.Printf("%s (variant %s)\n", err, libkrun.Variant)
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer kctx.Free(ctx)

	vmConfig := libkrun.VMConfig{NumVCPUs: 2, RAMMiB: 1024}
	processConfig := libkrun.ProcessConfig{
		ExecPath: "/bin/echo",
		Args:     []string{"echo", "Hello World"},
		Env:      []string{"PATH=/bin"},
	}
	if err := kctx.SetVMConfig(ctx, vmConfig); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := kctx.SetProcess(ctx, processConfig); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// StartEnter would exit this process with the guest's status; Run returns it.
	status, err := kctx.Run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(125)
	}
	os.Exit(status)
}
