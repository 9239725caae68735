package tensor

import (
	"math/rand/v2"
	"time"
)

// PeakGFLOPS measures one core's peak float32 rate in GFLOP/s with the
// widest fused multiply-add this CPU has, by timing a loop of independent
// FMAs on registers for about the given duration. It returns 0 on CPUs
// without a vector FMA kernel.
func PeakGFLOPS(d time.Duration) float64 {
	run, flopsPerIter := peakProbe()
	if run == nil {
		return 0
	}
	const iters = 1 << 16
	run(iters) // warm up: lets the core reach its vector clock
	best := 0.0
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		start := time.Now()
		run(iters)
		if g := float64(iters*flopsPerIter) / time.Since(start).Seconds() / 1e9; g > best {
			best = g
		}
	}
	return best
}

// GemmGFLOPS measures GemmThreads on an MxK by KxN product of random
// numbers: the best GFLOP/s of three windows of about d each, after a
// warm-up. The best, since other work on the machine only ever slows a
// window down.
func GemmGFLOPS(m, k, n, threads int, f Flags, d time.Duration) float64 {
	rng := rand.New(rand.NewPCG(1, 1))
	a, b, c := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
	for i := range a {
		a[i] = rng.Float32()
	}
	for i := range b {
		b[i] = rng.Float32()
	}
	GemmThreads(threads, c, a, b, m, k, n, f) // warm-up
	best := 0.0
	for range 3 {
		iters := 0
		start := time.Now()
		for time.Since(start) < d {
			GemmThreads(threads, c, a, b, m, k, n, f)
			iters++
		}
		best = max(best, 2*float64(m*k*n)*float64(iters)/time.Since(start).Seconds()/1e9)
	}
	return best
}
