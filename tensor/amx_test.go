package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/braid-dev/braid/internal/half"
)

func roundedBF16(s []float32) []float32 {
	r := make([]float32, len(s))
	for i, v := range s {
		r[i] = half.BF16ToFloat32(half.BF16FromFloat32(v))
	}
	return r
}

// A BF16 product is the float32 product of the operands rounded to
// bfloat16, up to the order of the float32 sums, on every odd shape and
// layout, split across threads or not; a product thinner than a tile is
// float32's.
func TestGemmBF16MatchesRoundedReference(t *testing.T) {
	if BF16KernelName() == "" {
		t.Skip("this CPU has no AMX BF16 tiles (or the kernel grants no tile state): BF16 products run in float32, which TestGemmMatchesReference covers")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	shapes := [][3]int{
		{1, 1, 1}, {1, 7, 1}, {3, 5, 7}, {16, 32, 16}, {32, 32, 32}, {33, 33, 33},
		{31, 64, 65}, {100, 257, 50}, {64, 1025, 96}, {70, 2100, 40}, {2, 3, 600},
		{129, 96, 1100}, {16, 40, 16}, {15, 64, 64}, {64, 64, 15},
	}
	for range 8 {
		shapes = append(shapes, [3]int{1 + rng.IntN(150), 1 + rng.IntN(700), 1 + rng.IntN(150)})
	}
	for _, sh := range shapes {
		m, k, n := sh[0], sh[1], sh[2]
		for _, f := range []Flags{0, TransA, TransB, TransA | TransB, Accumulate, TransB | Accumulate, TransA | Accumulate} {
			for _, threads := range []int{1, 2, 3} {
				name := fmt.Sprintf("%dx%dx%d/flags=%d/threads=%d", m, k, n, f, threads)
				a, b := randSlice(rng, m*k), randSlice(rng, k*n)
				c0 := randSlice(rng, m*n)
				want := append([]float32(nil), c0...)
				got := append([]float32(nil), c0...)
				if m >= amxMin && n >= amxMin {
					gemmRef(want, roundedBF16(a), roundedBF16(b), m, k, n, f)
				} else {
					gemmRef(want, a, b, m, k, n, f)
				}
				lda, ldb := leadingDims(m, k, n, f)
				GemmStrided(threads, Mat{got, n}, Mat{a, lda}, Mat{b, ldb}, m, k, n, f|BF16)
				closeEnough(t, name, got, want, k)
			}
		}
	}
}

// Rounding to bfloat16 is what a BF16 product loses, and no more: against
// the exact float32 product its error stays within what 8 significant bits
// allow.
func TestGemmBF16ErrorIsBF16Rounding(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	m, k, n := 64, 512, 80
	a, b := randSlice(rng, m*k), randSlice(rng, k*n)
	exact, got := make([]float32, m*n), make([]float32, m*n)
	Gemm(exact, a, b, m, k, n, 0)
	Gemm(got, a, b, m, k, n, BF16)
	var worst float64
	for i := range exact {
		worst = max(worst, float64(abs32(got[i]-exact[i])))
	}
	// Each product carries a relative error near 2⁻⁸ of |a·b| ≤ 1; over
	// k random signs they add like a random walk: √k·2⁻⁸ ≈ 0.09.
	if worst > 0.1 {
		t.Errorf("BF16 product differs from float32 by up to %g, more than bfloat16 rounding explains", worst)
	}
	if BF16KernelName() != "" && worst == 0 {
		t.Errorf("BF16 product equals float32's exactly: it did not run in bfloat16")
	}
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

func BenchmarkGemmBF16(b *testing.B) {
	for _, sh := range [][3]int{{512, 512, 512}, {2048, 512, 1536}, {512, 2048, 512}} {
		m, k, n := sh[0], sh[1], sh[2]
		rng := newTestRand()
		a, w, c := randSlice(rng, m*k), randSlice(rng, k*n), make([]float32, m*n)
		for _, f := range []Flags{0, BF16} {
			b.Run(fmt.Sprintf("%dx%dx%d/bf16=%v", m, k, n, f == BF16), func(b *testing.B) {
				for b.Loop() {
					GemmThreads(1, c, a, w, m, k, n, f|TransB)
				}
				b.ReportMetric(2*float64(m*k*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// A BF16 product's value has the same bits whatever rows and columns are
// computed beside it and however the threads split the work: whole and
// ragged blocks sum in one order, accumulating or not.
func TestGemmBF16BitsDoNotDependOnTheBatch(t *testing.T) {
	if BF16KernelName() == "" {
		t.Skip("no AMX BF16 tiles here")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	const m, k, n = 64, 2100, 100 // three depth blocks, ragged columns
	for _, f := range []Flags{0, Accumulate, TransA | Accumulate} {
		a, b, c0 := randSlice(rng, m*k), randSlice(rng, k*n), randSlice(rng, m*n)
		lda, ldb := leadingDims(m, k, n, f)
		full := append([]float32(nil), c0...)
		GemmStrided(1, Mat{full, n}, Mat{a, lda}, Mat{b, ldb}, m, k, n, f|BF16)
		for _, threads := range []int{2, 3} {
			got := append([]float32(nil), c0...)
			GemmStrided(threads, Mat{got, n}, Mat{a, lda}, Mat{b, ldb}, m, k, n, f|BF16)
			if i := firstDiff(got, full); i >= 0 {
				t.Fatalf("flags %d: %d threads give %g at %d, one thread %g", f, threads, got[i], i, full[i])
			}
		}
		if f&TransA != 0 {
			continue
		}
		const rows = 40 // a ragged last group of 32
		got := append([]float32(nil), c0[:rows*n]...)
		GemmStrided(1, Mat{got, n}, Mat{a, lda}, Mat{b, ldb}, rows, k, n, f|BF16)
		if i := firstDiff(got, full[:rows*n]); i >= 0 {
			t.Fatalf("flags %d: row %d of %d rows is %g, of %d rows %g", f, i/n, rows, got[i], m, full[i])
		}
	}
}

func firstDiff(a, b []float32) int {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

// A packed matrix's zero padding past k is its own: an infinite weight in
// one panel leaves the other panels' columns finite.
func TestPackedBF16PanelsKeepTheirOwnPadding(t *testing.T) {
	const k, n = 40, 64
	w := make([]float32, k*n) // stored k×n
	for i := range w {
		w[i] = 0.5
	}
	for d := range k {
		w[d*n+32] = float32(math.Inf(1)) // column 32 opens the second panel
	}
	pb, ok := PackBF16(w, k, n, 0)
	if !ok {
		t.Skip("no bfloat16 kernels on this CPU")
	}
	a, c := make([]float32, k), make([]float32, n)
	for i := range a {
		a[i] = 1
	}
	GemmPacked(1, c, n, a, k, pb, 1, 0)
	for j, v := range c {
		if j != 32 && v != 20 {
			t.Fatalf("column %d is %g, want 20", j, v)
		}
	}
}

// A decode step's products allocate nothing.
func TestGemmPackedBF16Allocates(t *testing.T) {
	rng := newTestRand()
	const k, n = 256, 704
	pb, ok := PackBF16(randSlice(rng, k*n), k, n, TransB)
	if !ok {
		t.Skip("no bfloat16 kernels on this CPU")
	}
	for _, m := range []int{1, 16} {
		a, c := randSlice(rng, m*k), make([]float32, m*n)
		GemmPacked(1, c, n, a, k, pb, m, 0)
		if allocs := testing.AllocsPerRun(20, func() { GemmPacked(1, c, n, a, k, pb, m, 0) }); allocs > 0 {
			t.Errorf("%d rows: %g allocations a product", m, allocs)
		}
	}
}
