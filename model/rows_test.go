package model

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/braid-dev/braid/tensor"
)

// The passes split by chunks of rows give what one pass over all the rows
// gives: the norm's input gradient bit for bit, its weight gradient (a sum
// over rows, now in parts) to float32 rounding; and the same bits however
// many CPUs run them.
func TestChunkedNormMatchesOnePass(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	n, c := 2*rowChunk+77, 24
	rnd := func(k int) []float32 {
		s := make([]float32, k)
		for i := range s {
			s[i] = float32(rng.NormFloat64())
		}
		return s
	}
	x, w, dout := rnd(n*c), rnd(c), rnd(n*c)
	out, rstd := make([]float32, n*c), make([]float32, n)
	tensor.RMSNorm(out, rstd, x, w, n, c, 1e-5)
	out2, rstd2 := make([]float32, n*c), make([]float32, n)
	rmsNorm(out2, rstd2, x, w, n, c, 1e-5)
	for i := range out {
		if out[i] != out2[i] {
			t.Fatalf("rmsNorm value %d: %g, one pass %g", i, out2[i], out[i])
		}
	}
	dx, dw := make([]float32, n*c), make([]float32, c)
	tensor.RMSNormBackward(dx, dw, dout, x, w, rstd, n, c)
	var a Activations
	dx2, dw2 := make([]float32, n*c), make([]float32, c)
	a.rmsNormBackward(dx2, dw2, dout, x, w, rstd, n, c)
	for i := range dx {
		if dx[i] != dx2[i] {
			t.Fatalf("dx[%d]: %g, one pass %g", i, dx2[i], dx[i])
		}
	}
	for j := range dw {
		if d := math.Abs(float64(dw[j] - dw2[j])); d > 1e-4*(1+math.Abs(float64(dw[j]))) {
			t.Fatalf("dw[%d]: %g, one pass %g", j, dw2[j], dw[j])
		}
	}
	// On one CPU it is bit for bit the same: the parts are added in one
	// order.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	dw3 := make([]float32, c)
	a.rmsNormBackward(make([]float32, n*c), dw3, dout, x, w, rstd, n, c)
	for j := range dw2 {
		if dw2[j] != dw3[j] {
			t.Fatalf("dw[%d] on one CPU %g, on %d %g", j, dw3[j], runtime.NumCPU(), dw2[j])
		}
	}
}
