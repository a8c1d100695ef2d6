//go:build libkrun && !ec1

package libkrun

// Variant names the build's backend: libkrun (generic), loaded at run time.
const Variant = "libkrun"

const variantBackend = backendLibkrun
