package tensor

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:noescape
func dotRowsF16AVX512(heads, n, hd int, q *float32, ldq int, rows *unsafe.Pointer, hstride int, c *float32, ldc int)

//go:noescape
func axpyRowsF16AVX512(heads, n, hd int, w *float32, ldw int, rows *unsafe.Pointer, hstride int, out *float32, ldo int)

// rowsF16Kernels says whether DotRowsF16 and AxpyRowsF16 have AVX-512.
var rowsF16Kernels = cpu.X86.HasAVX512F
