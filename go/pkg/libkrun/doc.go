// Package libkrun is the seed's Go API for microVMs (see README.md), as a thin cgo layer over
// ec1's C library, libec1 (found through pkg-config: ec1).
//
// Build tags choose the backend, as in the seed: none builds a pure-Go stub whose every call
// returns ErrLibkrunNotAvailable; libkrun, libkrun_sev and libkrun_efi use the matching libkrun
// library, loaded at run time by libec1; ec1 uses ec1's own KVM engine (Linux). vmnet_entitlement
// turns the vmnet calls on (without it they return ErrVMNetNotAvailable).
//
// Where this package differs from the seed's text, on purpose:
//   - &"..." does not compile in Go: the *string fields take String("...") or Ptr(v).
//   - KernelConfig, the KernelFormat*, DiskFormat* constants and vmnet's OperationMode (package
//     ec1/pkg/vmnet) are defined; the seed used them without defining them.
//   - ProcessConfig.Args includes argv[0], as the seed's example has it ({"echo", "Hello
//     World"}); libec1 passes libkrun what follows it.
//   - A second SetLogLevel returns ErrAlready instead of panicking.
//   - Errors are *Error values with ec1's message naming the field or path; errors.Is matches
//     them against ErrLibkrunNotAvailable, ErrVMNetNotAvailable, ErrInvalid, ErrUnsupported and
//     the others.
//   - Beyond the seed: Run returns the guest's exit status (and stops the VM when its context is
//     cancelled), SetStdio takes io.Reader and io.Writer streams. StartEnter exits the process
//     with the guest's status, as libkrun's krun_start_enter does: deferred functions do not run.
//
// A Context's methods may be called from one goroutine at a time. Every method takes a
// context.Context, as in the seed; only Run reads it.
package libkrun
