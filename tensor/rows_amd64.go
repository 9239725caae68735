package tensor

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:noescape
func dotRowsF16AVX512(heads, n, hd int, q *float32, ldq int, rows *unsafe.Pointer, hstride int, c *float32, ldc int)

//go:noescape
func axpyRowsF16AVX512(heads, n, hd int, w *float32, ldw int, rows *unsafe.Pointer, hstride int, out *float32, ldo int)

//go:noescape
func dotRowsU8VNNI(heads, n, hd int, q *int8, ldq int, rows *unsafe.Pointer, hstride int, dots *int32, ldd int)

//go:noescape
func axpyRowsI8AVX512(heads, n, hd int, w *float32, ldw int, rows *unsafe.Pointer, hstride int, out *float32, ldo int)

// rowsF16Kernels says whether DotRowsF16, AxpyRowsF16 and AxpyRowsI8 have
// AVX-512; rowsU8Kernels whether DotRowsU8 has AVX-512 VNNI.
var (
	rowsF16Kernels = cpu.X86.HasAVX512F
	rowsU8Kernels  = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512VNNI
)
