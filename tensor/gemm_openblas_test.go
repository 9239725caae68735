//go:build openblas

package tensor

import (
	"testing"

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
