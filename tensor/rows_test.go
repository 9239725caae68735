package tensor

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"github.com/braid-dev/braid/internal/half"
)

// scatteredRows lays n rows of heads×hd half-precision values out at
// random places in one buffer, head h's hstride values after head 0's,
// and returns the pointers, the buffer, and the same values contiguous
// (head, row, dimension) for a reference.
func scatteredRows(rng *rand.Rand, heads, n, hd int) (rows []unsafe.Pointer, hstride int, buf, dense []uint16) {
	hstride = hd + 3 + rng.IntN(20) // values between one head's row and the next
	slots := 4*n + 8
	buf = make([]uint16, slots*heads*hstride+hd)
	perm := rng.Perm(slots)
	dense = make([]uint16, heads*n*hd)
	for i := range n {
		at := perm[i] * heads * hstride
		rows = append(rows, unsafe.Pointer(&buf[at]))
		for h := range heads {
			for d := range hd {
				v := half.FromFloat32(float32(rng.NormFloat64()))
				buf[at+h*hstride+d] = v
				dense[(h*n+i)*hd+d] = v
			}
		}
	}
	return rows, hstride * 2, buf, dense
}

// DotRowsF16 is every head's query against every scattered row, within
// float32's rounding of the exact sum, on shapes the kernel must cover
// and some it hands to Go.
func TestDotRowsF16(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, hd := range []int{8, 16, 32, 48, 64, 128} {
		for _, heads := range []int{1, 3} {
			for _, n := range []int{1, 4, 5, 37} {
				rows, hstride, _, dense := scatteredRows(rng, heads, n, hd)
				ldq, ldc := hd+2, n+1
				q := make([]float32, heads*ldq)
				for i := range q {
					q[i] = float32(rng.NormFloat64())
				}
				c := make([]float32, heads*ldc)
				DotRowsF16(heads, hd, c, ldc, q, ldq, rows, hstride)
				for h := range heads {
					for i := range n {
						var want, mag float64
						for d := range hd {
							x := float64(q[h*ldq+d]) * float64(half.ToFloat32(dense[(h*n+i)*hd+d]))
							want += x
							mag += math.Abs(x)
						}
						if got := float64(c[h*ldc+i]); math.Abs(got-want) > 1e-6*mag+1e-30 {
							t.Fatalf("hd %d, head %d of %d, row %d of %d: %g, want %g", hd, h, heads, i, n, got, want)
						}
					}
				}
			}
		}
	}
}

// AxpyRowsF16 sums scattered rows in the order and with the rounding of
// VecMatHeadsF16 over the same rows laid out together: the same bits.
func TestAxpyRowsF16MatchesVecMat(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, hd := range []int{16, 32, 64, 128, 8} {
		for _, heads := range []int{1, 2, 5} {
			for _, n := range []int{1, 2, 16, 33} {
				rows, hstride, _, dense := scatteredRows(rng, heads, n, hd)
				ldw, ldo := n+3, hd+1
				w := make([]float32, heads*ldw)
				for i := range w {
					w[i] = rng.Float32()
				}
				got := make([]float32, heads*ldo)
				for i := range got {
					got[i] = 99 // overwritten, not added to
				}
				AxpyRowsF16(heads, hd, got, ldo, w, ldw, rows, hstride)
				want := make([]float32, heads*ldo)
				VecMatHeadsF16(heads, want, ldo, w, ldw, dense, n*hd, hd, n, hd, false, nil)
				for h := range heads {
					for d := range hd {
						g, x := got[h*ldo+d], want[h*ldo+d]
						if hd%16 == 0 && rowsF16Kernels && g != x || math.Abs(float64(g-x)) > 1e-5*(1+math.Abs(float64(x))) {
							t.Fatalf("hd %d, head %d of %d, %d rows: dimension %d is %g, VecMatHeadsF16 %g", hd, h, heads, n, d, g, x)
						}
					}
				}
			}
		}
	}
}

// Bad shapes are refused by name rather than read past their ends.
func TestRowsF16Bounds(t *testing.T) {
	rows := []unsafe.Pointer{unsafe.Pointer(&make([]uint16, 16)[0])}
	for name, f := range map[string]func(){
		"DotRowsF16":  func() { DotRowsF16(2, 16, make([]float32, 1), 1, make([]float32, 16), 16, rows, 32) },
		"AxpyRowsF16": func() { AxpyRowsF16(1, 16, make([]float32, 8), 16, make([]float32, 1), 1, rows, 32) },
		"DotRowsU8":   func() { DotRowsU8(2, 32, make([]int32, 1), 1, make([]int8, 32), 32, rows, 32) },
		"AxpyRowsI8":  func() { AxpyRowsI8(1, 16, make([]float32, 8), 16, make([]float32, 1), 1, rows, 32) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// scatteredBytes is scatteredRows for rows of random bytes.
func scatteredBytes(rng *rand.Rand, heads, n, hd int) (rows []unsafe.Pointer, hstride int, dense []byte) {
	hstride = hd + 1 + rng.IntN(20)
	slots := 4*n + 8
	buf := make([]byte, slots*heads*hstride+hd)
	perm := rng.Perm(slots)
	dense = make([]byte, heads*n*hd)
	for i := range n {
		at := perm[i] * heads * hstride
		rows = append(rows, unsafe.Pointer(&buf[at]))
		for h := range heads {
			for d := range hd {
				v := byte(rng.IntN(256))
				buf[at+h*hstride+d] = v
				dense[(h*n+i)*hd+d] = v
			}
		}
	}
	return rows, hstride, dense
}

// DotRowsU8 is the exact integer product of signed queries and unsigned
// rows, at the extremes too (−128·255 summed over every dimension).
func TestDotRowsU8(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, hd := range []int{32, 64, 128, 4, 36} {
		for _, heads := range []int{1, 3} {
			for _, n := range []int{1, 4, 5, 37} {
				rows, hstride, dense := scatteredBytes(rng, heads, n, hd)
				ldq, ldd := hd+2, n+1
				q := make([]int8, heads*ldq)
				for i := range q {
					q[i] = int8(rng.IntN(256) - 128)
				}
				if n == 37 { // the extreme sums
					for i := range q {
						q[i] = -128
					}
					for _, r := range rows {
						for h := range heads {
							for d := range hd {
								*(*byte)(unsafe.Add(r, h*hstride+d)) = 255
								dense[(h*n+slices.Index(rows, r))*hd+d] = 255
							}
						}
					}
				}
				dots := make([]int32, heads*ldd)
				DotRowsU8(heads, hd, dots, ldd, q, ldq, rows, hstride)
				for h := range heads {
					for i := range n {
						var want int32
						for d := range hd {
							want += int32(q[h*ldq+d]) * int32(dense[(h*n+i)*hd+d])
						}
						if dots[h*ldd+i] != want {
							t.Fatalf("hd %d, head %d of %d, row %d of %d: %d, want %d", hd, h, heads, i, n, dots[h*ldd+i], want)
						}
					}
				}
			}
		}
	}
}

// AxpyRowsI8 sums scattered 8-bit rows in the order and with the rounding
// of VecMatHeadsI8 over the same rows laid out together: the same bits.
func TestAxpyRowsI8MatchesVecMat(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, hd := range []int{16, 32, 64, 8} {
		for _, heads := range []int{1, 2, 5} {
			for _, n := range []int{1, 2, 16, 33} {
				rows, hstride, raw := scatteredBytes(rng, heads, n, hd)
				dense := make([]int8, len(raw))
				for i, b := range raw {
					dense[i] = int8(b)
				}
				ldw, ldo := n+3, hd+1
				w := make([]float32, heads*ldw)
				for i := range w {
					w[i] = rng.Float32()
				}
				got := make([]float32, heads*ldo)
				for i := range got {
					got[i] = 99 // overwritten, not added to
				}
				AxpyRowsI8(heads, hd, got, ldo, w, ldw, rows, hstride)
				want := make([]float32, heads*ldo)
				VecMatHeadsI8(heads, want, ldo, w, ldw, dense, n*hd, hd, n, hd, false, nil)
				for h := range heads {
					for d := range hd {
						g, x := got[h*ldo+d], want[h*ldo+d]
						if hd%16 == 0 && rowsF16Kernels && g != x || math.Abs(float64(g-x)) > 1e-5*(1+math.Abs(float64(x))) {
							t.Fatalf("hd %d, head %d of %d, %d rows: dimension %d is %g, VecMatHeadsI8 %g", hd, h, heads, n, d, g, x)
						}
					}
				}
			}
		}
	}
}
