package tensor

import "golang.org/x/sys/cpu"

//go:noescape
func q8Row(a *int8, sa *float32, corr *int32, b *byte, c *float32, blocks, panels int, acc bool)

//go:noescape
func q8Rows4(a *int8, sa *float32, corr *int32, b *byte, c *float32, ldc, blocks, panels int, acc bool)

// q8 is the 8-bit kernels, where the CPU has AVX-512 VNNI (Ice Lake,
// Sapphire Rapids, Zen 4 and later).
var q8 = func() *q8Kernels {
	if !cpu.X86.HasAVX512F || !cpu.X86.HasAVX512BW || !cpu.X86.HasAVX512VNNI {
		return nil
	}
	return &q8Kernels{row: q8Row, rows4: q8Rows4}
}()

//go:noescape
func maxAbsBitsAVX512(x *float32, blocks int) uint32

//go:noescape
func quantizeScaledAVX512(q *int8, x *float32, blocks int, id float32) int32

// quantizeVector is quantizeActivations' two passes with AVX-512 where x
// is a multiple of 16 values long; ok is false where it did nothing.
func quantizeVector(q []int8, x []float32) (amax uint32, sum int32, ok bool) {
	if !cpu.X86.HasAVX512F || !cpu.X86.HasAVX512BW || len(x) == 0 || len(x)%16 != 0 {
		return 0, 0, false
	}
	_ = q[len(x)-1]
	blocks := len(x) / 16
	amax = maxAbsBitsAVX512(&x[0], blocks)
	return amax, quantizeScaledAVX512(&q[0], &x[0], blocks, idOf(amax)), true
}
