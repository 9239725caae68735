package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// MulTiles is the float32 product of its operands rounded to bfloat16, up
// to the order of the float32 sums, on odd shapes, both layouts of each
// operand, over every part of the operands a caller may ask for, laid
// out and multiplied on one goroutine or several, and leaves c's values
// outside the product alone. The operands are reused from shape to shape,
// as callers reuse them, so stale values in their padding would show.
func TestMulTilesMatchesRoundedReference(t *testing.T) {
	if !TilesAvailable() {
		t.Skip("this CPU has no AMX BF16 tiles (or the kernel grants no tile state): MulTiles cannot run here")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	shapes := [][3]int{{1, 1, 1}, {32, 32, 32}, {33, 31, 65}, {5, 64, 7}, {64, 96, 64}, {70, 33, 100}, {31, 1, 40}, {96, 200, 31}, {200, 128, 96}, {130, 256, 70}, {300, 301, 260}, {40, 2100, 50}}
	for range 6 {
		shapes = append(shapes, [3]int{1 + rng.IntN(100), 1 + rng.IntN(300), 1 + rng.IntN(100)})
	}
	var ta TileA
	var tb TileB
	for _, sh := range shapes {
		m, k, n := sh[0], sh[1], sh[2]
		for _, f := range []Flags{0, TransA, TransB, TransA | TransB, Accumulate, TransA | TransB | Accumulate} {
			// The operands are larger than the product, which uses the
			// first m rows, the first k depths (k a multiple of 32 when it
			// is less than theirs) and the first n columns.
			am, ak, bn := m+rng.IntN(3), k, n+rng.IntN(3)
			if rng.IntN(2) == 0 {
				ak = roundUp32(k) + 32*rng.IntN(2)
				k = max(32, k/32*32)
				if k > ak {
					ak = k
				}
			}
			name := fmt.Sprintf("%dx%dx%d of %dx%d·%dx%d/flags=%d", m, k, n, am, ak, ak, bn, f)
			a, b := randSlice(rng, am*ak), randSlice(rng, ak*bn)
			lda, ldb := leadingDims(am, ak, bn, f)
			threads := 1 + rng.IntN(3)
			ta.SetThreads(threads, Mat{a, lda}, am, ak, f&TransA != 0)
			tb.SetThreads(threads, Mat{b, ldb}, ak, bn, f&TransB != 0)
			// c has a wider stride than the product: values beside it stay.
			ldc := n + 3
			c0 := randSlice(rng, m*ldc)
			got := append([]float32(nil), c0...)
			MulTilesThreads(threads, Mat{got, ldc}, &ta, &tb, m, k, n, f&Accumulate != 0)
			// The reference on the parts used, rounded as the tiles round.
			ar, br := roundedBF16(a), roundedBF16(b)
			want := make([]float32, m*n)
			for i := range m {
				for j := range n {
					var s float32
					if f&Accumulate != 0 {
						s = c0[i*ldc+j]
					}
					for d := range k {
						ai, bi := i*lda+d, d*ldb+j
						if f&TransA != 0 {
							ai = d*lda + i
						}
						if f&TransB != 0 {
							bi = j*ldb + d
						}
						av, bv := ar[ai], br[bi]
						s += av * bv
					}
					want[i*n+j] = s
				}
			}
			gotC := make([]float32, m*n)
			for i := range m {
				copy(gotC[i*n:(i+1)*n], got[i*ldc:i*ldc+n])
				for j := n; j < ldc; j++ {
					if got[i*ldc+j] != c0[i*ldc+j] {
						t.Fatalf("%s: c[%d][%d] beside the product changed", name, i, j)
					}
				}
			}
			closeEnough(t, name, gotC, want, k)
		}
	}
	// A depth that is neither a multiple of 32 nor either operand's own
	// would read depths past it that are not zero: refused.
	ta.Set(Mat{make([]float32, 32*100), 100}, 32, 100, false)
	tb.Set(Mat{make([]float32, 100*32), 32}, 100, 32, false)
	defer func() {
		if recover() == nil {
			t.Error("MulTiles over 50 of 100 depths did not panic")
		}
	}()
	MulTiles(Mat{make([]float32, 32*32), 32}, &ta, &tb, 32, 50, 32, false)
}
