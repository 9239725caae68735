package tensor

import (
	"fmt"
	"unsafe"

	"github.com/braid-dev/braid/internal/half"
)

// VecMat computes the row vector c[0:n] = a·B for a of k values and B a
// k×n matrix with row stride ldb: c[j] = Σ_p a[p]·B[p·ldb+j], each value
// one chain of multiply-adds over p in order. With chain set, the chains
// start from c's values rather than zero, so a sum split into consecutive
// ranges of p gives the bits of one call over all of them: attention sums
// over keys that lie in separate cache blocks this way. It runs on the
// calling goroutine and allocates nothing.
func VecMat(c, a, b []float32, k, n, ldb int, chain bool) {
	if n == 0 {
		return
	}
	if k == 0 {
		if !chain {
			clear(c[:n])
		}
		return
	}
	if ldb < n || len(a) < k || len(c) < n || len(b) < (k-1)*ldb+n {
		panic(fmt.Sprintf("tensor: VecMat of %d by %dx%d (stride %d) with %d, %d and %d values", k, k, n, ldb, len(a), len(b), len(c)))
	}
	mode := stripSet
	if chain {
		mode = stripChain
	}
	j := 0
	for _, st := range bestKernel.strips {
		for ; j+st.width <= n; j += st.width {
			st.run(k, &a[0], &b[j], &c[j], ldb, mode)
		}
	}
	vecMatTail(c, a, b, k, j, n, ldb, chain)
}

// vecMatTail computes columns [j, n) of VecMat in plain Go.
func vecMatTail(c, a, b []float32, k, j, n, ldb int, chain bool) {
	for ; j < n; j++ {
		var sum float32
		if chain {
			sum = c[j]
		}
		for p := range k {
			sum += a[p] * b[p*ldb+j]
		}
		c[j] = sum
	}
}

// VecMatHeads is VecMat for several independent products at once, the
// heads of an attention layer: for h < heads, c[h·ldc:][0:n] = a[h·lda:][0:k]
// · B_h, with B_h at b[h·ldbh:] and row stride ldb (ldbh may be 0 for a
// matrix every head shares). Every value has the bits VecMat gives that
// head alone; interleaving the heads' chains lets short products run at
// the speed of the loads instead of the multiply-add latency.
func VecMatHeads(heads int, c []float32, ldc int, a []float32, lda int, b []float32, ldbh, ldb int, k, n int, chain bool) {
	if heads <= 0 || n == 0 {
		return
	}
	if k == 0 || ldb < n || len(a) < (heads-1)*lda+k || len(c) < (heads-1)*ldc+n || len(b) < (heads-1)*ldbh+(k-1)*ldb+n {
		for h := range heads {
			VecMat(c[h*ldc:], a[h*lda:], b[h*ldbh:], k, n, ldb, chain)
		}
		return
	}
	h := 0
	if vecMatHeadsKernels != nil {
		for ; h+2 <= heads; h += 2 {
			g := 2
			if h+4 <= heads {
				g = 4
			}
			j := 0
			for ; j+16 <= n; j += 16 {
				wide := j+32 <= n
				vecMatHeadsKernels(g, wide, k, &a[h*lda], lda, &b[h*ldbh+j], ldbh, ldb, &c[h*ldc+j], ldc, chain)
				if wide {
					j += 16
				}
			}
			if j < n {
				for x := h; x < h+g; x++ {
					vecMatTail(c[x*ldc:], a[x*lda:], b[x*ldbh:], k, j, n, ldb, chain)
				}
			}
			h += g - 2
		}
	}
	for ; h < heads; h++ {
		VecMat(c[h*ldc:], a[h*lda:], b[h*ldbh:], k, n, ldb, chain)
	}
}

// headKernel is an AVX-512 kernel of the multi-head product over narrow
// elements E for a fixed number of heads and columns, which fetches up to
// fetchn bytes at fetch into the caches as it goes, heads lines a step of
// k; headKernels runs the one for 8, 4, 2 or 1 heads and 32 (wide) or 16
// columns, nil where the CPU has none. The caller has checked the bounds.
type (
	headKernel[E any]  func(k int, a *float32, lda int, b *E, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *E, fetchn int)
	headKernels[E any] func(heads int, wide bool, k int, a *float32, lda int, b *E, ldbh, ldb int, c *float32, ldc int, chain bool, fetch *E, fetchn int)
)

// VecMatHeadsF16 is VecMatHeads with b in half precision (IEEE binary16),
// widened exactly as it is read. Every value is one chain of multiply-adds
// over p in order, computed the same way whatever the number of heads.
//
// Meanwhile it brings fetch (the next call's b, or nil) into the core's
// caches, a few lines among each step's arithmetic: for b that lies where
// no hardware prefetcher looks (a KV cache's blocks), whose wait would
// otherwise follow the arithmetic rather than overlap it.
func VecMatHeadsF16(heads int, c []float32, ldc int, a []float32, lda int, b []uint16, ldbh, ldb int, k, n int, chain bool, fetch []uint16) {
	vecMatHeadsNarrow("VecMatHeadsF16", vecMatF16Kernels, half.ToFloat32, heads, c, ldc, a, lda, b, ldbh, ldb, k, n, chain, fetch)
}

// VecMatHeadsI8 is VecMatHeadsF16 with b in 8-bit integers, widened
// exactly as it is read: the quantized form of a KV cache, whose scales
// the caller applies (to the products for keys, to a for values).
func VecMatHeadsI8(heads int, c []float32, ldc int, a []float32, lda int, b []int8, ldbh, ldb int, k, n int, chain bool, fetch []int8) {
	vecMatHeadsNarrow("VecMatHeadsI8", vecMatI8Kernels, func(x int8) float32 { return float32(x) }, heads, c, ldc, a, lda, b, ldbh, ldb, k, n, chain, fetch)
}

// VecMatRowsF16 multiplies several rows of weights by one matrix in half
// precision: for r < rows, c[r·ldc:][0:n] = a[r·lda:][0:k] · B, B at b
// with row stride ldb. Every value has the bits VecMatHeadsF16 gives that
// row alone with B, but each step widens B's row once for all the rows:
// the rows of a group attending to the values of a prefix they share.
func VecMatRowsF16(rows int, c []float32, ldc int, a []float32, lda int, b []uint16, ldb int, k, n int, chain bool, fetch []uint16) {
	vecMatHeadsNarrow("VecMatRowsF16", vecMatF16RowKernels, half.ToFloat32, rows, c, ldc, a, lda, b, 0, ldb, k, n, chain, fetch)
}

// VecMatRowsI8 is VecMatRowsF16 with B in 8-bit integers, as
// VecMatHeadsI8 is VecMatHeadsF16.
func VecMatRowsI8(rows int, c []float32, ldc int, a []float32, lda int, b []int8, ldb int, k, n int, chain bool, fetch []int8) {
	vecMatHeadsNarrow("VecMatRowsI8", vecMatI8RowKernels, func(x int8) float32 { return float32(x) }, rows, c, ldc, a, lda, b, 0, ldb, k, n, chain, fetch)
}

// vecMatHeadsNarrow is VecMatHeads over elements that widen exactly to
// float32: the kernels where the CPU has them, widen in the columns they
// leave, summing in the same order either way.
func vecMatHeadsNarrow[E uint16 | int8](name string, kernels headKernels[E], widen func(E) float32,
	heads int, c []float32, ldc int, a []float32, lda int, b []E, ldbh, ldb int, k, n int, chain bool, fetch []E) {
	if heads <= 0 || n == 0 {
		return
	}
	if ldb < n || len(a) < (heads-1)*lda+k || len(c) < (heads-1)*ldc+n || k > 0 && len(b) < (heads-1)*ldbh+(k-1)*ldb+n {
		panic(fmt.Sprintf("tensor: %s of %d heads, %dx%d (strides %d, %d) with %d, %d and %d values",
			name, heads, k, n, ldbh, ldb, len(a), len(b), len(c)))
	}
	if k == 0 {
		if !chain {
			for h := range heads {
				clear(c[h*ldc : h*ldc+n])
			}
		}
		return
	}
	j := 0
	if kernels != nil {
		size := int(unsafe.Sizeof(b[0]))
		for ; j+16 <= n; j += 16 {
			wide := j+32 <= n
			for h := 0; h < heads; {
				g := 1
				switch {
				case h+8 <= heads:
					g = 8
				case h+4 <= heads:
					g = 4
				case h+2 <= heads:
					g = 2
				}
				// Each call fetches its share of what is left, g lines a
				// step.
				var at *E
				nf := min(len(fetch), k*g*64/size)
				if nf > 0 {
					at = &fetch[0]
				}
				kernels(g, wide, k, &a[h*lda], lda, &b[h*ldbh+j], ldbh, ldb, &c[h*ldc+j], ldc, chain, at, nf*size)
				fetch = fetch[nf:]
				h += g
			}
			if wide {
				j += 16
			}
		}
	}
	for h := range heads {
		for jj := j; jj < n; jj++ {
			var sum float32
			if chain {
				sum = c[h*ldc+jj]
			}
			for p := range k {
				sum += a[h*lda+p] * widen(b[h*ldbh+p*ldb+jj])
			}
			c[h*ldc+jj] = sum
		}
	}
}

// ToHalf rounds src to half precision into dst (see internal/half), with
// AVX-512 where the CPU has it; the bits are the same either way.
func ToHalf(dst []uint16, src []float32) {
	checkLen("ToHalf", len(dst), len(src))
	for i := toHalfVector(dst, src); i < len(src); i++ {
		dst[i] = half.FromFloat32(src[i])
	}
}
