//go:build !amd64

package tensor

// q8 is nil: 8-bit products need AVX-512 VNNI.
var q8 *q8Kernels

func quantizeVector(q []int8, x []float32) (amax uint32, sum int32, ok bool) { return 0, 0, false }
