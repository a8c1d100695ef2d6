package libkrun

import (
	"fmt"

	"ec1/pkg/vmnet"
)

// LogLevel is libkrun's (and ec1's) log level.
type LogLevel uint32

// Log levels, libkrun's values.
const (
	LogLevelOff LogLevel = iota
	LogLevelError
	LogLevelWarn
	LogLevelInfo
	LogLevelDebug
	LogLevelTrace
)

// VMConfig is the VM's size: 1..64 vCPUs, 32..65536 MiB of RAM (0 for either: ec1's default).
type VMConfig struct {
	NumVCPUs uint8
	RAMMiB   uint32
}

// DiskFormat is a disk image's format, libkrun's values.
type DiskFormat uint32

// Disk formats.
const (
	DiskFormatRaw   DiskFormat = 0
	DiskFormatQcow2 DiskFormat = 1
)

// DiskConfig is a block device: BlockID is what the guest sees as its serial (1..20 bytes).
type DiskConfig struct {
	BlockID  string
	Path     string
	Format   DiskFormat
	ReadOnly bool
}

// NetworkConfig is the network: PasstFD and GvproxyPath nil for the backend's default (TSI on
// libkrun, the user-mode NAT on ec1's builtin engine). PortMap nil: the backend's default (on
// TSI every port the guest listens on; on the NAT none); an empty, non-nil PortMap: none.
// MAC nil: a generated one (locally administered).
type NetworkConfig struct {
	PasstFD     *int
	GvproxyPath *string
	MAC         *[6]uint8
	PortMap     []string
}

// ProcessConfig is the guest's main process. Args includes argv[0], as the seed's example has
// it ({"echo", "Hello World"}); nil Args means {ExecPath}. Env nil: ec1's default environment
// (PATH, HOME=/, TERM), never the host's. WorkDir nil: "/".
type ProcessConfig struct {
	ExecPath string
	Args     []string
	Env      []string
	WorkDir  *string
}

// KernelFormat is a kernel image's format: 0..5 are libkrun's values (KernelFormatRaw is its
// flat image, on x86-64 entered at 0x80000000); KernelFormatBzImage is ec1's own, for its builtin
// engine, which boots ELF and bzImage.
type KernelFormat uint32

// Kernel formats.
const (
	KernelFormatRaw       KernelFormat = 0
	KernelFormatELF       KernelFormat = 1
	KernelFormatPEGz      KernelFormat = 2
	KernelFormatImageBz2  KernelFormat = 3
	KernelFormatImageGz   KernelFormat = 4
	KernelFormatImageZstd KernelFormat = 5
	KernelFormatBzImage   KernelFormat = 6
)

// KernelConfig is the guest kernel (the seed used it without defining it).
type KernelConfig struct {
	Path      string
	Format    KernelFormat
	Initramfs *string
	Cmdline   string
}

// SEVConfig is AMD SEV's configuration (the libkrun_sev variant); libkrun-sev needs the file.
type SEVConfig struct {
	TEEConfigFile *string
}

// VMNetConfig is a vmnet network through vmnet-helper (the vmnet_entitlement build tag).
type VMNetConfig struct {
	InterfaceID     *string
	OperationMode   vmnet.OperationMode
	StartAddress    *string
	EndAddress      *string
	SubnetMask      *string
	SharedInterface *string
	EnableIsolation *bool
	Verbose         bool
	PortMap         []string
}

// Ptr returns a pointer to a copy of v: the seed's &"..." does not compile in Go.
func Ptr[T any](v T) *T { return &v }

// String returns a pointer to s, for the *string fields.
func String(s string) *string { return &s }

// Error is a failed call: ec1's code (EC1_E*), the call, and ec1's message naming the field or
// path and the reason. errors.Is matches it against the Err* values by code.
type Error struct {
	Code int
	Op   string
	Msg  string
}

func (e *Error) Error() string {
	if e.Op == "" {
		return "libkrun: " + e.Msg
	}
	return fmt.Sprintf("libkrun: %s: %s", e.Op, e.Msg)
}

// Is reports whether target is the Err* value of e's code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Op == "" && t.Code == e.Code
}

// The errors a call may return (ec1.h's codes), for errors.Is.
var (
	ErrLibkrunNotAvailable = &Error{Code: -1, Msg: "backend not available"}
	ErrVMNetNotAvailable   = &Error{Code: -2, Msg: "vmnet not available"}
	ErrUnsupported         = &Error{Code: -3, Msg: "not supported by this backend or variant"}
	ErrInvalid             = &Error{Code: -4, Msg: "invalid argument"}
	ErrBackend             = &Error{Code: -5, Msg: "backend error"}
	ErrAlready             = &Error{Code: -6, Msg: "already done"}
	ErrNoMemory            = &Error{Code: -7, Msg: "out of memory"}
	ErrKVM                 = &Error{Code: -8, Msg: "KVM not usable"}
	ErrGuest               = &Error{Code: -9, Msg: "guest failure"}
	ErrTimedOut            = &Error{Code: -10, Msg: "timed out"}
	ErrState               = &Error{Code: -11, Msg: "call out of order"}
)
