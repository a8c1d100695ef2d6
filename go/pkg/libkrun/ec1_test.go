//go:build ec1

package libkrun

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Checks that need no VM: bad input is an error naming the field.
func TestBadInputNamed(t *testing.T) {
	ctx := context.Background()
	k, err := CreateContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Free(ctx)
	err = k.SetVMConfig(ctx, VMConfig{NumVCPUs: 0, RAMMiB: 512})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "num_vcpus") {
		t.Errorf("zero vCPUs: %v", err)
	}
	err = k.SetRoot(ctx, "/no/such/root")
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "/no/such/root") {
		t.Errorf("missing root: %v", err)
	}
	err = k.SetProcess(ctx, ProcessConfig{ExecPath: "/bin/true", WorkDir: String("relative")})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "workdir") {
		t.Errorf("relative workdir: %v", err)
	}
	if err := k.SetVMNetNetworkShared(ctx, []string{"8080:80"}); err == nil {
		t.Errorf("vmnet with a port map: no error")
	}
	if err := k.SetSEVConfig(ctx, SEVConfig{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("SEV on ec1: %v", err)
	}
}

// vm skips a test that boots a VM where there is no usable KVM (EC1_GO_VM=1 says there is: the
// VM suite sets it, in the rig or on hardware KVM).
func vm(t testing.TB) (context.Context, *Context) {
	if os.Getenv("EC1_GO_VM") != "1" {
		t.Skip("boots a VM: needs a usable /dev/kvm (EC1_GO_VM=1; tests/run runs it in the rig)")
	}
	ctx := context.Background()
	k, err := CreateContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.SetVMConfig(ctx, VMConfig{NumVCPUs: 1, RAMMiB: 256}); err != nil {
		t.Fatal(err)
	}
	return ctx, k
}

func runShell(t *testing.T, k *Context, ctx context.Context, script string, p ProcessConfig,
	stdin string) (int, string, string) {
	var out, errOut bytes.Buffer
	p.ExecPath, p.Args = "/bin/sh", []string{"sh", "-c", script}
	if err := k.SetProcess(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := k.SetStdio(strings.NewReader(stdin), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	status, err := k.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return status, out.String(), errOut.String()
}

func TestVMSeedExampleHelloWorld(t *testing.T) {
	ctx, k := vm(t)
	defer k.Free(ctx)
	var out bytes.Buffer
	k.SetProcess(ctx, ProcessConfig{ExecPath: "/bin/echo", Args: []string{"echo", "Hello World"},
		Env: []string{"PATH=/bin"}})
	k.SetStdio(nil, &out, os.Stderr)
	status, err := k.Run(ctx)
	if err != nil || status != 0 || out.String() != "Hello World\n" {
		t.Fatalf("status %d, err %v, output %q", status, err, out.String())
	}
}

func TestVMStatusEnvWorkdirStdio(t *testing.T) {
	ctx, k := vm(t)
	defer k.Free(ctx)
	status, out, errOut := runShell(t, k, ctx, `read x; echo "$x $FOO $(pwd)"; echo e >&2; exit 7`,
		ProcessConfig{Env: []string{"FOO=bar", "PATH=/bin"}, WorkDir: String("/tmp")}, "in\n")
	if status != 7 || out != "in bar /tmp\n" || errOut != "e\n" {
		t.Fatalf("status %d, stdout %q, stderr %q", status, out, errOut)
	}
}

func TestVMRootAndVolumes(t *testing.T) {
	ctx, k := vm(t)
	defer k.Free(ctx)
	vol := t.TempDir()
	os.WriteFile(filepath.Join(vol, "f"), []byte("from the host\n"), 0o644)
	if err := k.SetMappedVolumes(ctx, []string{vol + ":/mnt/v"}); err != nil {
		t.Fatal(err)
	}
	status, out, _ := runShell(t, k, ctx, "cat /mnt/v/f; echo made >/mnt/v/g", ProcessConfig{}, "")
	got, _ := os.ReadFile(filepath.Join(vol, "g"))
	if status != 0 || out != "from the host\n" || string(got) != "made\n" {
		t.Fatalf("status %d, output %q, written %q", status, out, got)
	}
}

// A host directory as the guest's root (EC1_GO_ROOT: a busybox tree; the VM suite makes one).
func TestVMRootDirectory(t *testing.T) {
	root := os.Getenv("EC1_GO_ROOT")
	if root == "" {
		t.Skip("no root tree (EC1_GO_ROOT)")
	}
	ctx, k := vm(t)
	defer k.Free(ctx)
	os.WriteFile(filepath.Join(root, "marker"), []byte("the host's tree\n"), 0o644)
	if err := k.SetRoot(ctx, root); err != nil {
		t.Fatal(err)
	}
	status, out, _ := runShell(t, k, ctx, "cat /marker", ProcessConfig{}, "")
	if status != 0 || out != "the host's tree\n" {
		t.Fatalf("status %d, output %q", status, out)
	}
}

// Cancelling ctx stops a VM whose process would sleep for 1000 s, within a second.
func TestVMCancelStops(t *testing.T) {
	ctx, k := vm(t)
	defer k.Free(ctx)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r, w, _ := os.Pipe()
	k.SetProcess(ctx, ProcessConfig{ExecPath: "/bin/sh", Args: []string{"sh", "-c", "echo up; exec sleep 1000"}})
	k.SetStdio(nil, w, os.Stderr)
	done := make(chan int, 1)
	go func() {
		status, err := k.Run(cctx)
		if err != nil {
			t.Error(err)
		}
		done <- status
	}()
	buf := make([]byte, 3)
	if _, err := r.Read(buf); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	cancel()
	select {
	case status := <-done:
		if took := time.Since(t0); took > time.Second {
			t.Errorf("stopped after %v", took)
		}
		if status != 128+15 {
			t.Errorf("status %d, want 143 (SIGTERM)", status)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after the cancel")
	}
}

func BenchmarkCreateContext(b *testing.B) {
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		k, err := CreateContext(ctx)
		if err != nil {
			b.Fatal(err)
		}
		k.Free(ctx)
	}
}

func BenchmarkConfigure(b *testing.B) {
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		k, _ := CreateContext(ctx)
		k.SetVMConfig(ctx, VMConfig{NumVCPUs: 2, RAMMiB: 1024})
		k.SetProcess(ctx, ProcessConfig{ExecPath: "/bin/echo", Args: []string{"echo", "Hello World"},
			Env: []string{"PATH=/bin"}})
		k.SetNetwork(ctx, NetworkConfig{PortMap: []string{"8080:80"}})
		k.Free(ctx)
	}
}

func BenchmarkRunTrue(b *testing.B) {
	for i := 0; i < b.N; i++ {
		ctx, k := vm(b)
		k.SetProcess(ctx, ProcessConfig{ExecPath: "/bin/true"})
		if status, err := k.Run(ctx); err != nil || status != 0 {
			b.Fatalf("status %d, %v", status, err)
		}
		k.Free(ctx)
	}
}
