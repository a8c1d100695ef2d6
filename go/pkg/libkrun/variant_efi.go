//go:build libkrun_efi && !libkrun_sev && !libkrun && !ec1

package libkrun

// Variant names the build's backend: libkrun-efi, loaded at run time.
const Variant = "libkrun_efi"

const variantBackend = backendLibkrunEFI
