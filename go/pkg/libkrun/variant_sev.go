//go:build libkrun_sev && !libkrun && !ec1

package libkrun

// Variant names the build's backend: libkrun-sev, loaded at run time.
const Variant = "libkrun_sev"

const variantBackend = backendLibkrunSEV
