package tensor

import "time"

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
