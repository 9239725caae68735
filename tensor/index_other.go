//go:build !amd64

package tensor

import "unsafe"

const indexKernels = false

func indexScoresF16AVX512(n int, blocks *unsafe.Pointer, heads, dim int, q, w, out *float32) {
	panic("tensor: no AVX-512 kernel on this architecture")
}

func atLeastAVX512(x *float32, n int, t float32, vals *float32, at *int32) int {
	panic("tensor: no AVX-512 kernel on this architecture")
}

func countAtLeastAVX512(x *float32, n int, t float32) int {
	panic("tensor: no AVX-512 kernel on this architecture")
}
