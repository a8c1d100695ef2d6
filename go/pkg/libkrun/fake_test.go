//go:build (libkrun || libkrun_sev || libkrun_efi) && !ec1

package libkrun

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

// The libkrun variants against the tests' fake libkrun (tests/fake/fake_krun.c, which records
// every call in FAKE_KRUN_LOG); EC1_LIBKRUN_PATH names the fake for the build's variant.
func fakeLog(t *testing.T) string {
	path := os.Getenv("FAKE_KRUN_LOG")
	if os.Getenv("EC1_LIBKRUN_PATH") == "" || path == "" {
		t.Skip("no fake libkrun: set EC1_LIBKRUN_PATH and FAKE_KRUN_LOG (tests/run does)")
	}
	b, _ := os.ReadFile(path)
	os.Truncate(path, 0)
	return string(b)
}

// The seed's example makes exactly these calls, argv[0] left out of krun_set_exec.
func TestSeedExampleCallsOnFake(t *testing.T) {
	fakeLog(t)
	ctx := context.Background()
	if err := SetLogLevel(ctx, LogLevelInfo); err != nil {
		t.Fatal(err)
	}
	if err := SetLogLevel(ctx, LogLevelInfo); !errors.Is(err, ErrAlready) {
		t.Errorf("second SetLogLevel: %v, want ErrAlready", err)
	}
	k, err := CreateContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.SetVMConfig(ctx, VMConfig{NumVCPUs: 2, RAMMiB: 1024}); err != nil {
		t.Fatal(err)
	}
	err = k.SetProcess(ctx, ProcessConfig{ExecPath: "/bin/echo",
		Args: []string{"echo", "Hello World"}, Env: []string{"PATH=/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "krun_set_log_level 3\nkrun_create_ctx\nkrun_set_vm_config 7 2 1024\n" +
		"krun_set_exec 7 /bin/echo [Hello World] [PATH=/bin]\n"
	if got := fakeLog(t); got != want {
		t.Errorf("calls:\n%s\nwant:\n%s", got, want)
	}
	// The variant's table: SEV has no root; the others no SEV configuration.
	rootErr := k.SetRoot(ctx, "/tmp")
	sevErr := k.SetSEVConfig(ctx, SEVConfig{TEEConfigFile: String("/dev/null")})
	if (Variant == "libkrun_sev") != errors.Is(rootErr, ErrUnsupported) {
		t.Errorf("SetRoot on %s: %v", Variant, rootErr)
	}
	if (Variant == "libkrun_sev") == errors.Is(sevErr, ErrUnsupported) {
		t.Errorf("SetSEVConfig on %s: %v", Variant, sevErr)
	}
	if _, err := k.GetShutdownEventFD(ctx); !errors.Is(err, ErrUnsupported) {
		t.Errorf("GetShutdownEventFD on Linux: %v, want ErrUnsupported", err)
	}
	if err := k.SetVMNetNetworkShared(ctx, nil); err == nil {
		t.Errorf("vmnet without a helper: no error")
	}
	// TSI's port map: an empty list asks for none.
	if Variant != "libkrun_sev" {
		fakeLog(t)
		if err := k.SetNetwork(ctx, NetworkConfig{PortMap: []string{}}); err != nil {
			t.Fatal(err)
		}
		if got := fakeLog(t); got != "krun_set_port_map 7 []\n" {
			t.Errorf("empty port map: %q", got)
		}
	}
	// A bad field is named.
	err = k.SetProcess(ctx, ProcessConfig{ExecPath: "/bin/echo", Args: []string{"echo", `"quoted"`}})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "process.argv[1]") {
		t.Errorf("quoted argument: %v", err)
	}
	k.Free(ctx)
	if got := fakeLog(t); !strings.HasSuffix(got, "krun_free_ctx 7\n") {
		t.Errorf("free: %q", got)
	}
}
