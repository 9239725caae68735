package tensor

import (
	"fmt"
	"unsafe"

	"github.com/braid-dev/braid/internal/half"
)

// Rows of half-precision values scattered through memory: the keys and
// values of the positions a sparse attention selects, each a row of one
// cache block, read where they lie instead of copied together first.
// Each row is given by a pointer to its first value (head 0's; head h's
// is hstride bytes on), and the memory there must hold hd values a head:
// these functions cannot check it.

// DotRowsF16 sets, for heads h < heads and rows i < len(rows),
//
//	c[h·ldc+i] = Σ_{d<hd} q[h·ldq+d] · row_i,h[d]
//
// with AVX-512 where the CPU has it (hd a multiple of 16): a query's
// scores against keys kept by position. The sum runs in 16 lanes, then
// across them: not the order of VecMatHeadsF16, so a score can differ
// from that of the same key laid out by dimension in its last bit.
func DotRowsF16(heads, hd int, c []float32, ldc int, q []float32, ldq int, rows []unsafe.Pointer, hstride int) {
	n := len(rows)
	if heads <= 0 || n == 0 || hd <= 0 {
		return
	}
	if len(c) < (heads-1)*ldc+n || len(q) < (heads-1)*ldq+hd {
		panic(fmt.Sprintf("tensor: DotRowsF16 of %d heads, %d rows of %d with %d queries and %d scores", heads, n, hd, len(q), len(c)))
	}
	if rowsF16Kernels && hd%16 == 0 {
		dotRowsF16AVX512(heads, n, hd, &q[0], ldq, &rows[0], hstride, &c[0], ldc)
		return
	}
	for h := range heads {
		qh := q[h*ldq : h*ldq+hd]
		for i, r := range rows {
			row := rowAt(r, h, hstride, hd)
			var sum float32
			for d, x := range row {
				sum += qh[d] * half.ToFloat32(x)
			}
			c[h*ldc+i] = sum
		}
	}
}

// AxpyRowsF16 sets, for heads h < heads and d < hd,
//
//	out[h·ldo+d] = Σ_{i<len(rows)} w[h·ldw+i] · row_i,h[d]
//
// each a chain of multiply-adds over i in order, as VecMatHeadsF16 sums
// a block's values (with AVX-512 where the CPU has it, hd a multiple of
// 16): attention's weighted sum of values kept by position.
func AxpyRowsF16(heads, hd int, out []float32, ldo int, w []float32, ldw int, rows []unsafe.Pointer, hstride int) {
	n := len(rows)
	if heads <= 0 || hd <= 0 {
		return
	}
	if len(out) < (heads-1)*ldo+hd || n > 0 && len(w) < (heads-1)*ldw+n {
		panic(fmt.Sprintf("tensor: AxpyRowsF16 of %d heads, %d rows of %d with %d weights and %d outputs", heads, n, hd, len(w), len(out)))
	}
	if n == 0 {
		for h := range heads {
			clear(out[h*ldo : h*ldo+hd])
		}
		return
	}
	if rowsF16Kernels && hd%16 == 0 {
		axpyRowsF16AVX512(heads, n, hd, &w[0], ldw, &rows[0], hstride, &out[0], ldo)
		return
	}
	for h := range heads {
		o := out[h*ldo : h*ldo+hd]
		clear(o)
		for i, r := range rows {
			wi := w[h*ldw+i]
			for d, x := range rowAt(r, h, hstride, hd) {
				o[d] += wi * half.ToFloat32(x)
			}
		}
	}
}

// rowAt is head h's row of hd values at address r.
func rowAt(r unsafe.Pointer, h, hstride, hd int) []uint16 {
	return unsafe.Slice((*uint16)(unsafe.Add(r, h*hstride)), hd)
}
