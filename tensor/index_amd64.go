package tensor

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:noescape
func indexScoresF16AVX512(n int, blocks *unsafe.Pointer, heads, dim int, q, w, out *float32)

//go:noescape
func atLeastAVX512(x *float32, n int, t float32, vals *float32, at *int32) int

//go:noescape
func countAtLeastAVX512(x *float32, n int, t float32) int

// indexKernels says whether IndexScoresF16, AtLeast and CountAtLeast have AVX-512.
var indexKernels = cpu.X86.HasAVX512F && cpu.X86.HasPOPCNT
