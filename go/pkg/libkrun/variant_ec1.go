//go:build ec1

package libkrun

// Variant names the build's backend: ec1's own KVM engine.
const Variant = "ec1"

const variantBackend = backendBuiltin
