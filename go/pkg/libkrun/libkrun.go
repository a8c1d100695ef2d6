//go:build libkrun || libkrun_sev || libkrun_efi || ec1

package libkrun

/*
#cgo pkg-config: ec1
#include <ec1/ec1.h>
#include <stdlib.h>
#include <stdint.h>
*/
import "C"

import (
	"context"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Context is a microVM's configuration and run, on the backend the build tag chose (Variant).
// Its methods may be called from one goroutine at a time.
type Context struct {
	c              *C.struct_ec1_ctx
	stdin          io.Reader
	stdout, stderr io.Writer
	stdioSet       bool
}

func fail(c *C.struct_ec1_ctx, op string, code C.int) error {
	if code == 0 {
		return nil
	}
	msg := ""
	if c != nil {
		msg = C.GoString(C.ec1_ctx_message(c))
	}
	if msg == "" {
		msg = C.GoString(C.ec1_strerror(code))
	}
	return &Error{Code: int(code), Op: op, Msg: msg}
}

// cstr is a C copy of s, or NULL for nil; freed by the caller (ec1 copies what it keeps).
func cstr(s *string) *C.char {
	if s == nil {
		return nil
	}
	return C.CString(*s)
}

// cstrs is a C array of C copies of list, NULL-terminated, with its count; nil for a nil list
// (an empty, non-nil list is a non-NULL array of just the NULL). free releases it all.
func cstrs(list []string) (arr **C.char, n C.size_t, free func()) {
	if list == nil {
		return nil, 0, func() {}
	}
	size := C.size_t(len(list)+1) * C.size_t(unsafe.Sizeof((*C.char)(nil)))
	mem := C.malloc(size)
	a := unsafe.Slice((**C.char)(mem), len(list)+1)
	for i, s := range list {
		a[i] = C.CString(s)
	}
	a[len(list)] = nil
	return (**C.char)(mem), C.size_t(len(list)), func() {
		for i := range list {
			C.free(unsafe.Pointer(a[i]))
		}
		C.free(mem)
	}
}

// SetLogLevel sets the process's log level: once; a second call returns ErrAlready (libkrun's
// logger panics on a second initialisation; ec1 refuses it instead).
func SetLogLevel(ctx context.Context, level LogLevel) error {
	return fail(nil, "SetLogLevel", C.ec1_set_log_level(C.enum_ec1_log_level(level)))
}

// CreateContext makes a context on the build's backend; ErrLibkrunNotAvailable where it cannot
// be used here (libkrun not installed).
func CreateContext(ctx context.Context) (*Context, error) {
	var c *C.struct_ec1_ctx
	if r := C.ec1_ctx_new_backend(C.enum_ec1_backend(variantBackend), &c); r != 0 {
		return nil, fail(nil, "CreateContext", r)
	}
	return &Context{c: c}, nil
}

// Free releases the context (and stops what it started).
func (k *Context) Free(ctx context.Context) error {
	if k == nil || k.c == nil {
		return nil
	}
	C.ec1_ctx_free(k.c)
	k.c = nil
	return nil
}

func (k *Context) SetVMConfig(ctx context.Context, c VMConfig) error {
	cfg := C.struct_ec1_vm_config{num_vcpus: C.uint8_t(c.NumVCPUs), ram_mib: C.uint32_t(c.RAMMiB)}
	return fail(k.c, "SetVMConfig", C.ec1_ctx_set_vm(k.c, &cfg))
}

func (k *Context) SetRoot(ctx context.Context, dir string) error {
	d := C.CString(dir)
	defer C.free(unsafe.Pointer(d))
	return fail(k.c, "SetRoot", C.ec1_ctx_set_root(k.c, d))
}

// SetMappedVolumes maps host directories: "HOST:GUEST[:OPTS]" each.
func (k *Context) SetMappedVolumes(ctx context.Context, volumes []string) error {
	a, n, free := cstrs(volumes)
	defer free()
	return fail(k.c, "SetMappedVolumes", C.ec1_ctx_set_mapped_volumes(k.c, a, n))
}

func (k *Context) AddDisk(ctx context.Context, c DiskConfig) error {
	id, path := C.CString(c.BlockID), C.CString(c.Path)
	defer C.free(unsafe.Pointer(id))
	defer C.free(unsafe.Pointer(path))
	cfg := C.struct_ec1_disk_config{block_id: id, path: path,
		format: C.enum_ec1_disk_format(c.Format), read_only: C.bool(c.ReadOnly)}
	return fail(k.c, "AddDisk", C.ec1_ctx_add_disk(k.c, &cfg))
}

func (k *Context) SetNetwork(ctx context.Context, c NetworkConfig) error {
	cfg := C.struct_ec1_network_config{passt_fd: -1}
	if c.PasstFD != nil {
		cfg.passt_fd = C.int(*c.PasstFD)
	}
	cfg.gvproxy_path = cstr(c.GvproxyPath)
	defer C.free(unsafe.Pointer(cfg.gvproxy_path))
	if c.MAC != nil {
		mac := (*C.uint8_t)(C.malloc(6))
		defer C.free(unsafe.Pointer(mac))
		copy(unsafe.Slice((*uint8)(unsafe.Pointer(mac)), 6), c.MAC[:])
		cfg.mac = mac
	}
	a, n, free := cstrs(c.PortMap)
	defer free()
	cfg.port_map, cfg.port_map_count = a, n
	return fail(k.c, "SetNetwork", C.ec1_ctx_set_network(k.c, &cfg))
}

func (k *Context) SetProcess(ctx context.Context, c ProcessConfig) error {
	path := C.CString(c.ExecPath)
	defer C.free(unsafe.Pointer(path))
	argv, _, freeArgv := cstrs(c.Args)
	defer freeArgv()
	envp, _, freeEnv := cstrs(c.Env)
	defer freeEnv()
	wd := cstr(c.WorkDir)
	defer C.free(unsafe.Pointer(wd))
	cfg := C.struct_ec1_process_config{exec_path: path, argv: argv, envp: envp, workdir: wd}
	return fail(k.c, "SetProcess", C.ec1_ctx_set_process(k.c, &cfg))
}

func (k *Context) SetKernel(ctx context.Context, c KernelConfig) error {
	path := C.CString(c.Path)
	defer C.free(unsafe.Pointer(path))
	initramfs := cstr(c.Initramfs)
	defer C.free(unsafe.Pointer(initramfs))
	var cmdline *C.char
	if c.Cmdline != "" {
		cmdline = C.CString(c.Cmdline)
		defer C.free(unsafe.Pointer(cmdline))
	}
	cfg := C.struct_ec1_kernel_config{path: path, format: C.enum_ec1_kernel_format(c.Format),
		initramfs: initramfs, cmdline: cmdline}
	return fail(k.c, "SetKernel", C.ec1_ctx_set_kernel(k.c, &cfg))
}

func (k *Context) SetSEVConfig(ctx context.Context, c SEVConfig) error {
	f := cstr(c.TEEConfigFile)
	defer C.free(unsafe.Pointer(f))
	cfg := C.struct_ec1_sev_config{tee_config_file: f}
	return fail(k.c, "SetSEVConfig", C.ec1_ctx_set_sev(k.c, &cfg))
}

// GetShutdownEventFD is an eventfd to write to for an orderly shutdown; it belongs to the
// context.
func (k *Context) GetShutdownEventFD(ctx context.Context) (int, error) {
	var fd C.int = -1
	err := fail(k.c, "GetShutdownEventFD", C.ec1_ctx_get_shutdown_eventfd(k.c, &fd))
	return int(fd), err
}

// SetStdio gives the guest process's stdin, stdout and stderr (builtin engine; nil: none).
// An *os.File is passed as it is; anything else is copied through a pipe while Run runs.
func (k *Context) SetStdio(stdin io.Reader, stdout, stderr io.Writer) error {
	if variantBackend != backendBuiltin {
		return &Error{Code: ErrUnsupported.Code, Op: "SetStdio",
			Msg: "the builtin engine's (the ec1 build tag)"}
	}
	k.stdin, k.stdout, k.stderr, k.stdioSet = stdin, stdout, stderr, true
	return nil
}

// stdio makes the fds SetStdio's streams need; done closes what is ours and waits for copies.
func (k *Context) stdio() (fds [3]int, done func(), err error) {
	var closeAfter, closeEnd []*os.File
	var wg sync.WaitGroup
	done = func() {
		for _, f := range closeAfter {
			f.Close()
		}
		wg.Wait()
		for _, f := range closeEnd {
			f.Close()
		}
	}
	fds = [3]int{-1, -1, -1}
	if r, ok := k.stdin.(*os.File); ok {
		fds[0] = int(r.Fd())
	} else if k.stdin != nil {
		pr, pw, e := os.Pipe()
		if e != nil {
			return fds, done, e
		}
		fds[0] = int(pr.Fd())
		closeAfter = append(closeAfter, pr)
		go func() { io.Copy(pw, k.stdin); pw.Close() }()
	}
	for i, w := range []io.Writer{k.stdout, k.stderr} {
		if f, ok := w.(*os.File); ok {
			fds[i+1] = int(f.Fd())
		} else if w != nil {
			pr, pw, e := os.Pipe()
			if e != nil {
				return fds, done, e
			}
			fds[i+1] = int(pw.Fd())
			closeAfter = append(closeAfter, pw)
			closeEnd = append(closeEnd, pr)
			wg.Add(1)
			go func(w io.Writer) { io.Copy(w, pr); wg.Done() }(w)
		}
	}
	return fds, done, nil
}

// Run boots the VM, runs the process and returns its exit status (its own code; 125 set-up
// failed; 126 not executable; 127 not found; 128+N killed by signal N). Cancelling ctx asks the
// guest to stop (SIGTERM to the process), then SIGKILL after 500 ms, then ends the VM 500 ms
// later (builtin engine; elsewhere where the backend has a shutdown eventfd). On the libkrun
// variants the VM runs in ec1's helper process (ec1-krun, exec'd: libkrun's threads never run
// in a forked copy of this threaded Go program), and Run returns its status.
func (k *Context) Run(ctx context.Context) (int, error) {
	if k.stdioSet {
		fds, done, err := k.stdio()
		defer done()
		if err != nil {
			return -1, &Error{Code: ErrBackend.Code, Op: "Run", Msg: err.Error()}
		}
		if r := C.ec1_ctx_set_stdio(k.c, C.int(fds[0]), C.int(fds[1]), C.int(fds[2])); r != 0 {
			return -1, fail(k.c, "Run", r)
		}
	}
	stop := make(chan struct{})
	defer close(stop)
	var fd C.int = -1
	if ctx.Done() != nil && C.ec1_ctx_get_shutdown_eventfd(k.c, &fd) == 0 {
		go func() {
			select {
			case <-stop:
				return
			case <-ctx.Done():
			}
			one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
			for i := 0; i < 3; i++ {
				syscall.Write(int(fd), one)
				select {
				case <-stop:
					return
				case <-time.After(500 * time.Millisecond):
				}
			}
		}()
	}
	var status C.int = -1
	if r := C.ec1_run(k.c, &status); r != 0 {
		return -1, fail(k.c, "Run", r)
	}
	return int(status), nil
}

// StartEnter boots the VM and exits the process with the guest's status (libkrun's
// krun_start_enter): it returns only on error, and deferred functions do not run.
func (k *Context) StartEnter(ctx context.Context) error {
	return fail(k.c, "StartEnter", C.ec1_start_enter(k.c))
}
