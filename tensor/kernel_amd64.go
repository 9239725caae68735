package tensor

import (
	"math"

	"golang.org/x/sys/cpu"
)

//go:noescape
func kernelAVX512x14x32(kc int, a *float32, pstride, istride int, b, c *float32, ldc int, acc bool)

//go:noescape
func kernelAVX2x6x16(kc int, a *float32, pstride, istride int, b, c *float32, ldc int, acc bool)

//go:noescape
func kernelAVX512x8x32(kc int, a *float32, pstride, istride int, b, c *float32, ldc int, acc bool)

//go:noescape
func kernelAVX512x4x32(kc int, a *float32, pstride, istride int, b, c *float32, ldc int, acc bool)

//go:noescape
func kernelAVX512x2x32(kc int, a *float32, pstride, istride int, b, c *float32, ldc int, acc bool)

//go:noescape
func kernelAVX512x1x32(kc int, a *float32, pstride, istride int, b, c *float32, ldc int, acc bool)

//go:noescape
func kernelAVX2x4x16(kc int, a *float32, pstride, istride int, b, c *float32, ldc int, acc bool)

//go:noescape
func kernelAVX2x2x16(kc int, a *float32, pstride, istride int, b, c *float32, ldc int, acc bool)

//go:noescape
func kernelAVX2x1x16(kc int, a *float32, pstride, istride int, b, c *float32, ldc int, acc bool)

//go:noescape
func kernelF16AVX512x14x32(kc int, a *float32, pstride, istride int, b *uint16, c *float32, ldc int, acc bool)

//go:noescape
func kernelF16AVX512x8x32(kc int, a *float32, pstride, istride int, b *uint16, c *float32, ldc int, acc bool)

//go:noescape
func kernelF16AVX512x4x32(kc int, a *float32, pstride, istride int, b *uint16, c *float32, ldc int, acc bool)

//go:noescape
func kernelF16AVX512x2x32(kc int, a *float32, pstride, istride int, b *uint16, c *float32, ldc int, acc bool)

//go:noescape
func kernelF16AVX512x1x32(kc int, a *float32, pstride, istride int, b *uint16, c *float32, ldc int, acc bool)

//go:noescape
func kernelBF16AVX512x14x32(kc int, a *uint16, pstride, istride int, b *uint16, c *float32, ldc int, acc bool)

//go:noescape
func kernelBF16AVX512x8x32(kc int, a *uint16, pstride, istride int, b *uint16, c *float32, ldc int, acc bool)

//go:noescape
func kernelBF16AVX512x4x32(kc int, a *uint16, pstride, istride int, b *uint16, c *float32, ldc int, acc bool)

//go:noescape
func kernelBF16AVX512x2x32(kc int, a *uint16, pstride, istride int, b *uint16, c *float32, ldc int, acc bool)

//go:noescape
func kernelBF16AVX512x1x32(kc int, a *uint16, pstride, istride int, b *uint16, c *float32, ldc int, acc bool)

type asmKernel func(kc int, a *float32, pstride, istride int, b, c *float32, ldc int, acc bool)

type asmKernelF16 func(kc int, a *float32, pstride, istride int, b *uint16, c *float32, ldc int, acc bool)

// wrap gives an assembly kernel of mr×nr the Go signature, with the bounds
// checks the assembly cannot make: the last value of each operand it reads
// or writes.
func wrap(mr, nr int, f asmKernel) tileKernel {
	return tileKernel{mr: mr, run: func(kc int, a []float32, ps, is int, b, c []float32, ldc int, acc bool) {
		_, _, _ = a[(kc-1)*ps+(mr-1)*is], b[kc*nr-1], c[(mr-1)*ldc+nr-1]
		f(kc, &a[0], 4*ps, 4*is, &b[0], &c[0], ldc, acc)
	}}
}

// withF16 adds to a tile kernel its twin over half-precision panels of b.
func withF16(t tileKernel, nr int, f asmKernelF16) tileKernel {
	mr := t.mr
	t.run16 = func(kc int, a []float32, ps, is int, b []uint16, c []float32, ldc int, acc bool) {
		_, _, _ = a[(kc-1)*ps+(mr-1)*is], b[kc*nr-1], c[(mr-1)*ldc+nr-1]
		f(kc, &a[0], 4*ps, 4*is, &b[0], &c[0], ldc, acc)
	}
	return t
}

type asmKernelBF16 func(kc int, a *uint16, pstride, istride int, b *uint16, c *float32, ldc int, acc bool)

// withBF16 adds to a tile kernel its twin over bfloat16 pairs, where the
// CPU has AVX-512 BF16.
func withBF16(t tileKernel, nr int, f asmKernelBF16) tileKernel {
	if !cpu.X86.HasAVX512BF16 {
		return t
	}
	mr := t.mr
	t.runBF = func(kc int, a []uint16, ps, is int, b []uint16, c []float32, ldc int, acc bool) {
		_, _, _ = a[(kc-1)*ps+(mr-1)*is+1], b[kc*2*nr-1], c[(mr-1)*ldc+nr-1]
		f(kc, &a[0], 2*ps, 2*is, &b[0], &c[0], ldc, acc)
	}
	return t
}

var avx512Kernel = kernel{
	name: "avx512", nr: 32,
	tiles: []tileKernel{
		withBF16(withF16(wrap(14, 32, kernelAVX512x14x32), 32, kernelF16AVX512x14x32), 32, kernelBF16AVX512x14x32),
		withBF16(withF16(wrap(8, 32, kernelAVX512x8x32), 32, kernelF16AVX512x8x32), 32, kernelBF16AVX512x8x32),
		withBF16(withF16(wrap(4, 32, kernelAVX512x4x32), 32, kernelF16AVX512x4x32), 32, kernelBF16AVX512x4x32),
		withBF16(withF16(wrap(2, 32, kernelAVX512x2x32), 32, kernelF16AVX512x2x32), 32, kernelBF16AVX512x2x32),
		withBF16(withF16(wrap(1, 32, kernelAVX512x1x32), 32, kernelF16AVX512x1x32), 32, kernelBF16AVX512x1x32)},
	strips: []gemvStrip{{128, gemvAVX512x128}, {16, gemvAVX512x16}},
	dot4:   true,
}

var avx2Kernel = kernel{
	name: "avx2", nr: 16,
	tiles: []tileKernel{wrap(6, 16, kernelAVX2x6x16), wrap(4, 16, kernelAVX2x4x16),
		wrap(2, 16, kernelAVX2x2x16), wrap(1, 16, kernelAVX2x1x16)},
	strips: []gemvStrip{{64, gemvAVX2x64}, {8, gemvAVX2x8}},
}

// kernels lists the microkernels this CPU runs, fastest first.
func kernels() []kernel {
	var ks []kernel
	if cpu.X86.HasAVX512F {
		ks = append(ks, avx512Kernel)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, avx2Kernel)
	}
	return append(ks, genericKernel)
}

//go:generate go run gen_kernels.go

// bestKernel is chosen once, from what the CPU reports at start-up.
var bestKernel = kernels()[0]

// fmaPeakAVX512 and fmaPeakAVX2 run iters rounds of independent fused
// multiply-adds with no memory traffic: 24·32 and 12·16 flops a round. They
// measure this CPU's peak, the yardstick for kernel efficiency.
//
//go:noescape
func fmaPeakAVX512(iters int)

//go:noescape
func fmaPeakAVX2(iters int)

func peakProbe() (func(int), int) {
	switch {
	case cpu.X86.HasAVX512F:
		return fmaPeakAVX512, 24 * 32
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return fmaPeakAVX2, 12 * 16
	}
	return nil, 0
}

//go:noescape
func gemvAVX512x128(k int, a, b, c *float32, ldb int, mode int)

//go:noescape
func gemvAVX512x16(k int, a, b, c *float32, ldb int, mode int)

//go:noescape
func gemvAVX2x64(k int, a, b, c *float32, ldb int, mode int)

//go:noescape
func gemvAVX2x8(k int, a, b, c *float32, ldb int, mode int)

//go:noescape
func expAVX512(dst, src *float32, blocks int, consts *float32)

// expVector computes the leading multiple of 16 values with AVX-512 and
// returns how many it did.
func expVector(dst, src []float32) int {
	if !cpu.X86.HasAVX512F || len(src) < 16 {
		return 0
	}
	blocks := len(src) / 16
	expAVX512(&dst[0], &src[0], blocks, &expConsts[0])
	return blocks * 16
}

//go:noescape
func dot4AVX512(blocks int, a, b *float32, ldb int, out *float32)

// dot4 computes out[r] = Σ a[p]·b[r·ldb+p] for r < 4 over the leading
// multiple of 16 of len(a) values with AVX-512, returning how many values
// it covered (0 when the CPU lacks AVX-512).
func dot4(a, b []float32, ldb int, out *[4]float32) int {
	blocks := len(a) / 16
	if !cpu.X86.HasAVX512F || blocks == 0 {
		return 0
	}
	_ = b[3*ldb+blocks*16-1] // the last value the kernel reads
	dot4AVX512(blocks, &a[0], &b[0], ldb, &out[0])
	return blocks * 16
}

//go:noescape
func expShiftSumAVX512(dst, src *float32, blocks int, shift float32, consts *float32) float32

//go:noescape
func maxAVX512(x *float32, blocks int) float32

//go:noescape
func scaleAVX512(x *float32, blocks int, alpha float32)

// scaleVector multiplies the leading multiple of 16 values of x by alpha
// and returns how many it did.
func scaleVector(alpha float32, x []float32) int {
	blocks := len(x) / 16
	if !cpu.X86.HasAVX512F || blocks == 0 {
		return 0
	}
	scaleAVX512(&x[0], blocks, alpha)
	return blocks * 16
}

// expShiftSumVector writes e^(src[i]−shift) for the leading multiple of 16
// values and returns how many it did and their sum.
func expShiftSumVector(dst, src []float32, shift float32) (int, float32) {
	blocks := len(src) / 16
	if !cpu.X86.HasAVX512F || blocks == 0 {
		return 0, 0
	}
	_ = dst[blocks*16-1]
	return blocks * 16, expShiftSumAVX512(&dst[0], &src[0], blocks, shift, &expConsts[0])
}

// maxVector returns the maximum of the leading multiple of 16 values and
// how many it covered.
func maxVector(x []float32) (int, float32) {
	blocks := len(x) / 16
	if !cpu.X86.HasAVX512F || blocks == 0 {
		return 0, 0
	}
	return blocks * 16, maxAVX512(&x[0], blocks)
}

//go:noescape
func packBTransAVX512(dst, src *float32, kc int, idx *int32)

// packPanelTrans packs one full 32-column panel of a transposed b with
// AVX-512 gathers: panel[p·32+j] = src[j·ldb+p] for p < kc, j < 32. It
// reports false, doing nothing, when it cannot (no AVX-512, another panel
// width, or offsets past int32).
func packPanelTrans(panel, src []float32, ldb, kc, nr int) bool {
	if !cpu.X86.HasAVX512F || nr != 32 || kc == 0 || 31*ldb+kc > math.MaxInt32 {
		return false
	}
	var idx [32]int32
	for r := range idx {
		idx[r] = int32(r * ldb)
	}
	_, _ = src[31*ldb+kc-1], panel[32*kc-1] // the last values read and written
	packBTransAVX512(&panel[0], &src[0], kc, &idx[0])
	return true
}

//go:noescape
func vecMatAVX512h4x32(k int, a *float32, lda int, b *float32, ldbh, ldb int, c *float32, ldc int, chain bool)

//go:noescape
func vecMatAVX512h4x16(k int, a *float32, lda int, b *float32, ldbh, ldb int, c *float32, ldc int, chain bool)

//go:noescape
func vecMatAVX512h2x32(k int, a *float32, lda int, b *float32, ldbh, ldb int, c *float32, ldc int, chain bool)

//go:noescape
func vecMatAVX512h2x16(k int, a *float32, lda int, b *float32, ldbh, ldb int, c *float32, ldc int, chain bool)

// vecMatHeadsKernels runs the multi-head kernel for 4 or 2 heads and 32
// (wide) or 16 columns; nil without AVX-512. The caller has checked the
// bounds.
var vecMatHeadsKernels = func() func(heads int, wide bool, k int, a *float32, lda int, b *float32, ldbh, ldb int, c *float32, ldc int, chain bool) {
	if !cpu.X86.HasAVX512F {
		return nil
	}
	return func(heads int, wide bool, k int, a *float32, lda int, b *float32, ldbh, ldb int, c *float32, ldc int, chain bool) {
		switch {
		case heads == 4 && wide:
			vecMatAVX512h4x32(k, a, lda, b, ldbh, ldb, c, ldc, chain)
		case heads == 4:
			vecMatAVX512h4x16(k, a, lda, b, ldbh, ldb, c, ldc, chain)
		case wide:
			vecMatAVX512h2x32(k, a, lda, b, ldbh, ldb, c, ldc, chain)
		default:
			vecMatAVX512h2x16(k, a, lda, b, ldbh, ldb, c, ldc, chain)
		}
	}
}()

//go:noescape
func vecMatF16AVX512h4x32(k int, a *float32, lda int, b *uint16, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *uint16, fetchn int)

//go:noescape
func vecMatF16AVX512h4x16(k int, a *float32, lda int, b *uint16, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *uint16, fetchn int)

//go:noescape
func vecMatF16AVX512h2x32(k int, a *float32, lda int, b *uint16, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *uint16, fetchn int)

//go:noescape
func vecMatF16AVX512h2x16(k int, a *float32, lda int, b *uint16, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *uint16, fetchn int)

//go:noescape
func vecMatF16AVX512h8x32(k int, a *float32, lda int, b *uint16, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *uint16, fetchn int)

//go:noescape
func vecMatF16AVX512h8x16(k int, a *float32, lda int, b *uint16, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *uint16, fetchn int)

//go:noescape
func vecMatF16AVX512h1x32(k int, a *float32, lda int, b *uint16, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *uint16, fetchn int)

//go:noescape
func vecMatF16AVX512h1x16(k int, a *float32, lda int, b *uint16, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *uint16, fetchn int)

// vecMatF16Kernels runs the half-precision multi-head kernels.
var vecMatF16Kernels = headKernelsFor([4][2]headKernel[uint16]{
	{vecMatF16AVX512h8x32, vecMatF16AVX512h8x16},
	{vecMatF16AVX512h4x32, vecMatF16AVX512h4x16},
	{vecMatF16AVX512h2x32, vecMatF16AVX512h2x16},
	{vecMatF16AVX512h1x32, vecMatF16AVX512h1x16},
})

//go:noescape
func vecMatI8AVX512h8x32(k int, a *float32, lda int, b *int8, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *int8, fetchn int)

//go:noescape
func vecMatI8AVX512h8x16(k int, a *float32, lda int, b *int8, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *int8, fetchn int)

//go:noescape
func vecMatI8AVX512h4x32(k int, a *float32, lda int, b *int8, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *int8, fetchn int)

//go:noescape
func vecMatI8AVX512h4x16(k int, a *float32, lda int, b *int8, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *int8, fetchn int)

//go:noescape
func vecMatI8AVX512h2x32(k int, a *float32, lda int, b *int8, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *int8, fetchn int)

//go:noescape
func vecMatI8AVX512h2x16(k int, a *float32, lda int, b *int8, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *int8, fetchn int)

//go:noescape
func vecMatI8AVX512h1x32(k int, a *float32, lda int, b *int8, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *int8, fetchn int)

//go:noescape
func vecMatI8AVX512h1x16(k int, a *float32, lda int, b *int8, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *int8, fetchn int)

// vecMatI8Kernels runs the 8-bit multi-head kernels.
var vecMatI8Kernels = headKernelsFor([4][2]headKernel[int8]{
	{vecMatI8AVX512h8x32, vecMatI8AVX512h8x16},
	{vecMatI8AVX512h4x32, vecMatI8AVX512h4x16},
	{vecMatI8AVX512h2x32, vecMatI8AVX512h2x16},
	{vecMatI8AVX512h1x32, vecMatI8AVX512h1x16},
})

//go:noescape
func vecMatF16AVX512r8x32(k int, a *float32, lda int, b *uint16, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *uint16, fetchn int)

//go:noescape
func vecMatF16AVX512r8x16(k int, a *float32, lda int, b *uint16, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *uint16, fetchn int)

//go:noescape
func vecMatF16AVX512r4x32(k int, a *float32, lda int, b *uint16, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *uint16, fetchn int)

//go:noescape
func vecMatF16AVX512r4x16(k int, a *float32, lda int, b *uint16, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *uint16, fetchn int)

//go:noescape
func vecMatF16AVX512r2x32(k int, a *float32, lda int, b *uint16, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *uint16, fetchn int)

//go:noescape
func vecMatF16AVX512r2x16(k int, a *float32, lda int, b *uint16, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *uint16, fetchn int)

//go:noescape
func vecMatF16AVX512r1x32(k int, a *float32, lda int, b *uint16, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *uint16, fetchn int)

//go:noescape
func vecMatF16AVX512r1x16(k int, a *float32, lda int, b *uint16, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *uint16, fetchn int)

//go:noescape
func vecMatI8AVX512r8x32(k int, a *float32, lda int, b *int8, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *int8, fetchn int)

//go:noescape
func vecMatI8AVX512r8x16(k int, a *float32, lda int, b *int8, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *int8, fetchn int)

//go:noescape
func vecMatI8AVX512r4x32(k int, a *float32, lda int, b *int8, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *int8, fetchn int)

//go:noescape
func vecMatI8AVX512r4x16(k int, a *float32, lda int, b *int8, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *int8, fetchn int)

//go:noescape
func vecMatI8AVX512r2x32(k int, a *float32, lda int, b *int8, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *int8, fetchn int)

//go:noescape
func vecMatI8AVX512r2x16(k int, a *float32, lda int, b *int8, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *int8, fetchn int)

//go:noescape
func vecMatI8AVX512r1x32(k int, a *float32, lda int, b *int8, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *int8, fetchn int)

//go:noescape
func vecMatI8AVX512r1x16(k int, a *float32, lda int, b *int8, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *int8, fetchn int)

// vecMatF16RowKernels and vecMatI8RowKernels run the kernels of rows
// that share one b, widened once a step for all of them.
var vecMatF16RowKernels = headKernelsFor([4][2]headKernel[uint16]{
	{vecMatF16AVX512r8x32, vecMatF16AVX512r8x16},
	{vecMatF16AVX512r4x32, vecMatF16AVX512r4x16},
	{vecMatF16AVX512r2x32, vecMatF16AVX512r2x16},
	{vecMatF16AVX512r1x32, vecMatF16AVX512r1x16},
})

var vecMatI8RowKernels = headKernelsFor([4][2]headKernel[int8]{
	{vecMatI8AVX512r8x32, vecMatI8AVX512r8x16},
	{vecMatI8AVX512r4x32, vecMatI8AVX512r4x16},
	{vecMatI8AVX512r2x32, vecMatI8AVX512r2x16},
	{vecMatI8AVX512r1x32, vecMatI8AVX512r1x16},
})

// headKernelsFor dispatches to ks: rows for 8, 4, 2 and 1 heads, columns
// for 32 (wide) and 16 columns; nil without AVX-512.
func headKernelsFor[E any](ks [4][2]headKernel[E]) headKernels[E] {
	if !cpu.X86.HasAVX512F {
		return nil
	}
	return func(heads int, wide bool, k int, a *float32, lda int, b *E, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *E, fetchn int) {
		row := 3
		switch heads {
		case 8:
			row = 0
		case 4:
			row = 1
		case 2:
			row = 2
		}
		col := 1
		if wide {
			col = 0
		}
		ks[row][col](k, a, lda, b, ldbh, ldb, c, ldc, chain, fetch, fetchn)
	}
}

//go:noescape
func mulAVX512(dst, a, b *float32, blocks int)

//go:noescape
func mulRowsAVX512(rows int, p *float32, ldp int, s *float32, lds int, mask uint16)

// mulRowsVector does MulRows with AVX-512, one masked vector a row, where
// the rows are at most 16 values long, and reports whether it did.
func mulRowsVector(rows, n int, p []float32, ldp int, s []float32, lds int) bool {
	if !cpu.X86.HasAVX512F || n > 16 {
		return false
	}
	mulRowsAVX512(rows, &p[0], ldp, &s[0], lds, uint16(1)<<n-1)
	return true
}

// mulVector does the leading multiple of 16 values of Mul with AVX-512 and
// returns how many it did.
func mulVector(dst, a, b []float32) int {
	blocks := len(dst) / 16
	if !cpu.X86.HasAVX512F || blocks == 0 {
		return 0
	}
	mulAVX512(&dst[0], &a[0], &b[0], blocks)
	return blocks * 16
}

//go:noescape
func dotAVX512(a, b *float32, blocks int) float32

//go:noescape
func softmaxBackAVX512(d, p *float32, blocks int, sum, scale float32)

// softmaxBackVector does the leading multiple of 16 values of
// SoftmaxRowBackward with AVX-512 and returns how many it did; the first
// pass returns the partial dot product.
func softmaxBackVector(d, p []float32, scale float32, sum *float32, apply bool) int {
	blocks := len(d) / 16
	if !cpu.X86.HasAVX512F || blocks == 0 {
		return 0
	}
	_, _ = d[blocks*16-1], p[blocks*16-1]
	if apply {
		softmaxBackAVX512(&d[0], &p[0], blocks, *sum, scale)
	} else {
		*sum = dotAVX512(&d[0], &p[0], blocks)
	}
	return blocks * 16
}

//go:noescape
func toHalfAVX512(dst *uint16, src *float32, blocks int)

// toHalfVector converts the leading multiple of 16 values with AVX-512
// (round to nearest even, as half.FromFloat32) and returns how many.
func toHalfVector(dst []uint16, src []float32) int {
	blocks := len(src) / 16
	if !cpu.X86.HasAVX512F || blocks == 0 {
		return 0
	}
	_ = dst[blocks*16-1]
	toHalfAVX512(&dst[0], &src[0], blocks)
	return blocks * 16
}

//go:noescape
func toBF16AVX512(dst *uint16, src *float32, blocks int)

// toBF16Vector converts the leading multiple of 16 values with
// VCVTNEPS2BF16 (as half.BF16FromFloat32) and returns how many.
func toBF16Vector(dst []uint16, src []float32) int {
	blocks := len(src) / 16
	if !cpu.X86.HasAVX512BF16 || blocks == 0 {
		return 0
	}
	_ = dst[blocks*16-1]
	toBF16AVX512(&dst[0], &src[0], blocks)
	return blocks * 16
}
