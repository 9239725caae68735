//go:build !amd64

package tensor

// q8 is nil: 8-bit products need AVX-512 VNNI.
var q8 *q8Kernels
