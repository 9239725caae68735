package tensor

import (
	"math"
	"testing"
)

// ScoresQ8 against its definition in integers, with the kernel and with
// the Go loop, for every head count and head dimensions beside the usual:
// the same bits either way, and the quantized query within half a step of
// the float32 one.
func TestScoresQ8MatchesDefinition(t *testing.T) {
	rng := newTestRand()
	kernel := scoresQ8Kernel
	defer func() { scoresQ8Kernel = kernel }()
	for _, heads := range []int{1, 2, 3, 8} {
		for _, hd := range []int{4, 12, 32, 64} {
			ldq, ldh, ldbh, ldc := hd+5, 3, hd*16+64, 21
			qf := randSlice(rng, heads*ldq)
			q := make([]int8, len(qf))
			qh := make([]Q8Head, heads*ldh)
			keys := make([][]int8, heads) // key_h[d·16+j], signed
			ks := randSlice(rng, 16*heads)
			b := make([]uint8, heads*ldbh)
			for h := range heads {
				qh[h*ldh] = QuantizeHead(q[h*ldq:h*ldq+hd], qf[h*ldq:h*ldq+hd])
				for d := range hd {
					if x, s := qf[h*ldq+d], qh[h*ldh].Scale; math.Abs(float64(x-float32(q[h*ldq+d])*s)) > float64(s)/2*1.0001 {
						t.Fatalf("head %d dimension %d: %g quantized to %d × %g", h, d, x, q[h*ldq+d], s)
					}
				}
				keys[h] = make([]int8, hd*16)
				for i := range keys[h] {
					keys[h][i] = int8(rng.IntN(255) - 127)
					d, j := i/16, i%16
					b[h*ldbh+KeyByteQ8(d, j)] = uint8(int(keys[h][i]) + 128)
				}
			}
			for _, k := range []func(int, int, *int8, int, *Q8Head, int, *uint8, int, *float32, *float32, int, *uint8){kernel, nil} {
				if k == nil && kernel == nil {
					continue
				}
				scoresQ8Kernel = k
				c := make([]float32, heads*ldc)
				ScoresQ8(heads, hd, c, ldc, q, ldq, qh, ldh, b, ldbh, ks, b[len(b)-64:])
				for h := range heads {
					for j := range 16 {
						var sum int32
						for d := range hd {
							sum += int32(q[h*ldq+d]) * int32(keys[h][d*16+j])
						}
						if want := float32(sum) * qh[h*ldh].Scale * ks[16*h+j]; math.Float32bits(c[h*ldc+j]) != math.Float32bits(want) {
							t.Fatalf("kernel %v, %d heads of %d: head %d slot %d is %g, want %g", k != nil, heads, hd, h, j, c[h*ldc+j], want)
						}
					}
				}
			}
		}
	}
}
