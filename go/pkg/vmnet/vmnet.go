// Package vmnet names vmnet's operation modes (macOS's vmnet framework, reached through
// vmnet-helper) for libkrun.VMNetConfig. The values are ec1's (and vmnet-helper's order).
package vmnet

// OperationMode is how a vmnet interface reaches the world.
type OperationMode int

const (
	// OperationModeShared is NAT: the Internet, the host and other shared VMs.
	OperationModeShared OperationMode = 0
	// OperationModeBridged bridges to a physical interface (VMNetConfig.SharedInterface).
	OperationModeBridged OperationMode = 1
	// OperationModeHost reaches the host and other host-only VMs (EnableIsolation: not them).
	OperationModeHost OperationMode = 2
)
