package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchShapes are the products of a d=256 model (MxKxN): a batch of 1024
// tokens through the attention and MLP projections, and one decode step.
var benchShapes = [][3]int{
	{1024, 256, 256}, {1024, 256, 768}, {1024, 768, 256}, {1, 256, 768}, {512, 512, 512},
}

// BenchmarkMatmul reports GFLOP/s of braid's single-threaded Gemm for each
// shape; with -tags openblas, OpenBLAS's sgemm runs beside it.
func BenchmarkMatmul(b *testing.B) {
	for _, sh := range benchShapes {
		m, k, n := sh[0], sh[1], sh[2]
		rng := rand.New(rand.NewPCG(1, 1))
		a, bb, c := randSlice(rng, m*k), randSlice(rng, k*n), make([]float32, m*n)
		name := fmt.Sprintf("%dx%dx%d", m, k, n)
		b.Run(name+"/braid", func(b *testing.B) {
			for b.Loop() {
				GemmThreads(1, c, a, bb, m, k, n, 0)
			}
			b.ReportMetric(2*float64(m*k*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		benchReference(b, name, c, a, bb, m, k, n)
	}
}
