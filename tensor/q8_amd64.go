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
