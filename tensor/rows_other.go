//go:build !amd64

package tensor

import "unsafe"

const (
	rowsF16Kernels = false
	rowsU8Kernels  = false
)

func dotRowsF16AVX512(heads, n, hd int, q *float32, ldq int, rows *unsafe.Pointer, hstride int, c *float32, ldc int) {
	panic("tensor: no AVX-512 kernel on this architecture")
}

func axpyRowsF16AVX512(heads, n, hd int, w *float32, ldw int, rows *unsafe.Pointer, hstride int, out *float32, ldo int) {
	panic("tensor: no AVX-512 kernel on this architecture")
}

func dotRowsU8VNNI(heads, n, hd int, q *int8, ldq int, rows *unsafe.Pointer, hstride int, dots *int32, ldd int) {
	panic("tensor: no AVX-512 kernel on this architecture")
}

func axpyRowsI8AVX512(heads, n, hd int, w *float32, ldw int, rows *unsafe.Pointer, hstride int, out *float32, ldo int) {
	panic("tensor: no AVX-512 kernel on this architecture")
}
