//go:build openblas

package tensor

import (
	"testing"
	"time"

	"github.com/braid-dev/braid/tensor/internal/openblas"
)

// benchReference runs OpenBLAS's sgemm on the same product, single-threaded
// like braid's side, so the pair is fair. Needs Debian's libopenblas-dev.
func benchReference(b *testing.B, name string, c, a, bb []float32, m, k, n int) {
	b.Run(name+"/openblas", func(b *testing.B) {
		for b.Loop() {
			openblas.Gemm(c, a, bb, m, k, n)
		}
		b.ReportMetric(2*float64(m*k*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
}

// TestOpenBLASAgrees checks the reference computes the same product, so the
// benchmark compares like with like.
func TestOpenBLASAgrees(t *testing.T) {
	rng := newTestRand()
	m, k, n := 37, 91, 53
	a, bb := randSlice(rng, m*k), randSlice(rng, k*n)
	want, got := make([]float32, m*n), make([]float32, m*n)
	gemmRef(want, a, bb, m, k, n, 0)
	openblas.Gemm(got, a, bb, m, k, n)
	closeEnough(t, "openblas", got, want, k)
}

// TestMatmulVersusOpenBLAS alternates short timed windows of braid and
// OpenBLAS on each shape and logs the best window of each: on a shared
// machine other work only ever slows a window down, so the best is the
// fairest view of what each can do. Run with -v to read the table.
func TestMatmulVersusOpenBLAS(t *testing.T) {
	if testing.Short() {
		t.Skip("timing comparison")
	}
	const rounds, window = 15, 100 * time.Millisecond
	for _, sh := range benchShapes {
		m, k, n := sh[0], sh[1], sh[2]
		rng := newTestRand()
		a, b, c := randSlice(rng, m*k), randSlice(rng, k*n), make([]float32, m*n)
		flops := 2 * float64(m*k*n)
		run := map[string]func(){
			"braid":    func() { GemmThreads(1, c, a, b, m, k, n, 0) },
			"openblas": func() { openblas.Gemm(c, a, b, m, k, n) },
		}
		best := map[string]float64{}
		for range rounds {
			for _, name := range []string{"braid", "openblas"} {
				iters, start := 0, time.Now()
				for time.Since(start) < window {
					run[name]()
					iters++
				}
				best[name] = max(best[name], flops*float64(iters)/time.Since(start).Seconds()/1e9)
			}
		}
		t.Logf("%dx%dx%d: braid %.1f, openblas %.1f GFLOP/s (best of %d), ratio %.2f",
			m, k, n, best["braid"], best["openblas"], rounds, best["braid"]/best["openblas"])
	}
}
