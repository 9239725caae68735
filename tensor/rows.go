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
	axpyRows("AxpyRowsF16", axpyRowsF16AVX512, half.ToFloat32, heads, hd, out, ldo, w, ldw, rows, hstride)
}

// axpyRows is AxpyRowsF16 and AxpyRowsI8 over rows of E, which widen
// exactly to float32: the AVX-512 kernel where the CPU has it (hd a
// multiple of 16), else Go, summing in the same order.
func axpyRows[E uint16 | int8](name string, kernel func(heads, n, hd int, w *float32, ldw int, rows *unsafe.Pointer, hstride int, out *float32, ldo int),
	widen func(E) float32, heads, hd int, out []float32, ldo int, w []float32, ldw int, rows []unsafe.Pointer, hstride int) {
	n := len(rows)
	if heads <= 0 || hd <= 0 {
		return
	}
	if len(out) < (heads-1)*ldo+hd || n > 0 && len(w) < (heads-1)*ldw+n {
		panic(fmt.Sprintf("tensor: %s of %d heads, %d rows of %d with %d weights and %d outputs", name, heads, n, hd, len(w), len(out)))
	}
	if n == 0 {
		for h := range heads {
			clear(out[h*ldo : h*ldo+hd])
		}
		return
	}
	if rowsF16Kernels && hd%16 == 0 {
		kernel(heads, n, hd, &w[0], ldw, &rows[0], hstride, &out[0], ldo)
		return
	}
	for h := range heads {
		o := out[h*ldo : h*ldo+hd]
		clear(o)
		for i, r := range rows {
			wi := w[h*ldw+i]
			for d, x := range unsafe.Slice((*E)(unsafe.Add(r, h*hstride)), hd) {
				o[d] += wi * widen(x)
			}
		}
	}
}

// rowAt is head h's row of hd values at address r.
func rowAt(r unsafe.Pointer, h, hstride, hd int) []uint16 {
	return unsafe.Slice((*uint16)(unsafe.Add(r, h*hstride)), hd)
}

// DotRowsU8 sets, for heads h < heads and rows i < len(rows),
//
//	dots[h·ldd+i] = Σ_{d<hd} q[h·ldq+d] · row_i,h[d]
//
// exactly, in integers, the row holding hd unsigned bytes (an 8-bit KV
// cache's key plus 128, as tensor.ScoresQ8 reads them) and q a head's
// signed 8-bit query: the integer part of ScoresQ8's scores for keys
// kept by position, with AVX-512 VNNI where the CPU has it (hd a
// multiple of 32).
func DotRowsU8(heads, hd int, dots []int32, ldd int, q []int8, ldq int, rows []unsafe.Pointer, hstride int) {
	n := len(rows)
	if heads <= 0 || n == 0 || hd <= 0 {
		return
	}
	if len(dots) < (heads-1)*ldd+n || len(q) < (heads-1)*ldq+hd {
		panic(fmt.Sprintf("tensor: DotRowsU8 of %d heads, %d rows of %d with %d queries and %d sums", heads, n, hd, len(q), len(dots)))
	}
	if rowsU8Kernels && hd%32 == 0 {
		dotRowsU8VNNI(heads, n, hd, &q[0], ldq, &rows[0], hstride, &dots[0], ldd)
		return
	}
	for h := range heads {
		qh := q[h*ldq : h*ldq+hd]
		for i, r := range rows {
			row := unsafe.Slice((*uint8)(unsafe.Add(r, h*hstride)), hd)
			var sum int32
			for d, x := range row {
				sum += int32(qh[d]) * int32(x)
			}
			dots[h*ldd+i] = sum
		}
	}
}

// AxpyRowsI8 is AxpyRowsF16 over rows of signed 8-bit values (an 8-bit
// KV cache's values, whose scales the caller has put into w), each
// widened exactly: every sum one chain of multiply-adds over i in order,
// as VecMatHeadsI8 sums a block's values (with AVX-512 where the CPU has
// it, hd a multiple of 16).
func AxpyRowsI8(heads, hd int, out []float32, ldo int, w []float32, ldw int, rows []unsafe.Pointer, hstride int) {
	axpyRows("AxpyRowsI8", axpyRowsI8AVX512, func(x int8) float32 { return float32(x) }, heads, hd, out, ldo, w, ldw, rows, hstride)
}
