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
// every call in FAKE_KRUN_LOG); EC1_LIBKRUN_PATH names the fake for the build's variant. There is
// no libkrun-efi on Linux (it only ever existed for macOS): that variant is not available here.
func fakeLog(t *testing.T) string {
	path := os.Getenv("FAKE_KRUN_LOG")
	if Variant == "libkrun_efi" {
		if _, err := CreateContext(context.Background()); !errors.Is(err, ErrLibkrunNotAvailable) {
			t.Errorf("libkrun-efi on Linux: %v, want ErrLibkrunNotAvailable", err)
		}
		t.Skip("libkrun-efi: macOS only")
	}
	if os.Getenv("EC1_LIBKRUN_PATH") == "" || path == "" {
		t.Skip("no fake libkrun: set EC1_LIBKRUN_PATH and FAKE_KRUN_LOG (tests/run does)")
	}
	b, _ := os.ReadFile(path)
	os.Truncate(path, 0)
	return string(b)
}

// The seed's example makes exactly these calls, at Run, in ec1's helper process (a Go program
// has threads: libkrun runs in a clean exec'd process, not in a fork of this one); argv[0] is
// left out of krun_set_exec.
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
	sev := ""
	if Variant == "libkrun_sev" {
		if err := k.SetSEVConfig(ctx, SEVConfig{TEEConfigFile: String("/dev/null")}); err != nil {
			t.Fatal(err)
		}
		sev = "krun_set_tee_config_file 7 /dev/null\n"
	}
	if got := fakeLog(t); got != "krun_set_log_level 3\n" {
		t.Errorf("before Run, calls:\n%s\nwant only the log level", got)
	}
	if status, err := k.Run(ctx); err != nil || status != 0 {
		t.Fatalf("Run: %d, %v", status, err)
	}
	want := "krun_set_log_level 3\nkrun_create_ctx\nkrun_set_vm_config 7 2 1024\n" +
		"krun_set_exec 7 /bin/echo [Hello World] [PATH=/bin]\n" + sev + "krun_start_enter 7\n"
	if got := fakeLog(t); got != want {
		t.Errorf("calls:\n%s\nwant:\n%s", got, want)
	}
	k.Free(ctx)
}

// The variant's table, the empty port map, a bad field named (at Run: volumes set later would
// lift libkrun's command-line limits).
func TestVariantTableOnFake(t *testing.T) {
	fakeLog(t)
	ctx := context.Background()
	k, err := CreateContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Free(ctx)
	// SEV has no root; the others no SEV configuration.
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
	// TSI's port map: an empty list asks for none (krun_set_port_map([]) at start).
	if Variant != "libkrun_sev" {
		if err := k.SetNetwork(ctx, NetworkConfig{PortMap: []string{}}); err != nil {
			t.Fatal(err)
		}
		err = k.SetProcess(ctx, ProcessConfig{ExecPath: "/bin/true", Args: []string{"true"}})
		if err != nil {
			t.Fatal(err)
		}
		fakeLog(t)
		if _, err := k.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if got := fakeLog(t); !strings.Contains(got, "krun_set_port_map 7 []\n") {
			t.Errorf("empty port map: %q", got)
		}
	}
	// A bad field is named.
	k2, err := CreateContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Free(ctx)
	err = k2.SetProcess(ctx, ProcessConfig{ExecPath: "/bin/echo", Args: []string{"echo", `"quoted"`}})
	if err != nil {
		t.Fatal(err)
	}
	if Variant == "libkrun_sev" {
		k2.SetSEVConfig(ctx, SEVConfig{TEEConfigFile: String("/dev/null")})
	}
	_, err = k2.Run(ctx)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "process.argv[1]") {
		t.Errorf("quoted argument: %v", err)
	}
}
