//go:build ec1 && vmnet_entitlement

package libkrun

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// A port map on vmnet is refused naming the field (the guest has its own address there).
func TestVMNetPortMapRefused(t *testing.T) {
	ctx := context.Background()
	k, err := CreateContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Free(ctx)
	err = k.SetVMNetNetworkShared(ctx, []string{"8080:80"})
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "vmnet.port_map") {
		t.Fatalf("port map on vmnet: %v", err)
	}
}
