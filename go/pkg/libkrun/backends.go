package libkrun

// ec1.h's enum ec1_backend.
const (
	backendBuiltin    = 1
	backendLibkrun    = 2
	backendLibkrunSEV = 3
	backendLibkrunEFI = 4
)
