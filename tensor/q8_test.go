package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/braid-dev/braid/internal/half"
)

// q8Reference is what a PackQ8 product computes, in plain Go: each row and
// column quantized by blocks, the bytes multiplied exactly, each block's
// sum scaled and added in order.
func q8Reference(a []float32, m, k int, w []float32, n int) []float32 {
	blocks := ceilDiv(k, q8Block)
	c := make([]float32, m*n)
	var qa, qw [q8Block]int8
	var xa, xw [q8Block]float32
	for i := range m {
		for j := range n {
			var acc float32
			for blk := range blocks {
				clear(xa[:])
				clear(xw[:])
				for d := range q8Block {
					if kk := blk*q8Block + d; kk < k {
						xa[d], xw[d] = a[i*k+kk], w[j*k+kk]
					}
				}
				sa, _ := quantizeActivations(qa[:], xa[:])
				sw := QuantizeQ8(qw[:], xw[:])
				var dot int32
				for d := range q8Block {
					dot += int32(qa[d]) * int32(qw[d])
				}
				scale := sa * halfRound(sw)
				acc = float32(math.FMA(float64(dot), float64(scale), float64(acc)))
			}
			c[i*n+j] = acc
		}
	}
	return c
}

// halfRound is x rounded to half precision and back, as the packed
// scales are kept.
func halfRound(x float32) float32 { return half.ToFloat32(half.FromFloat32(x)) }

// f16FromBits reads a packed half-precision scale.
func f16FromBits(b []byte) float32 { return half.ToFloat32(binary.LittleEndian.Uint16(b)) }

// An 8-bit product gives each value within float32 rounding of the exact
// block arithmetic, on odd shapes (depths past a block, columns past a
// panel, rows past a group of four), with and without Accumulate.
func TestQ8MatchesReference(t *testing.T) {
	if q8 == nil {
		t.Skip("this CPU lacks AVX-512 VNNI: 8-bit products are not built")
	}
	rng := newTestRand()
	for _, s := range [][3]int{{1, 32, 16}, {1, 70, 37}, {3, 33, 17}, {4, 64, 48}, {7, 100, 50}, {9, 256, 160}, {16, 896, 33}} {
		m, k, n := s[0], s[1], s[2]
		a, w := randSlice(rng, m*k), randSlice(rng, n*k)
		p, ok := PackQ8(w, k, n, TransB)
		if !ok {
			t.Fatal("PackQ8 refused on a CPU with VNNI")
		}
		want := q8Reference(a, m, k, w, n)
		for _, accumulate := range []bool{false, true} {
			c := randSlice(rng, m*n)
			base := append([]float32(nil), c...)
			f := Flags(0)
			if accumulate {
				f = Accumulate
			}
			GemmPacked(2, c, n, a, k, p, m, f)
			for i, v := range c {
				w := want[i]
				if accumulate {
					w += base[i]
				}
				if d := math.Abs(float64(v - w)); d > 1e-5*(1+math.Abs(float64(w))) {
					t.Fatalf("%dx%dx%d accumulate %v: c[%d] = %g, want %g", m, k, n, accumulate, i, v, w)
				}
			}
		}
	}
}

// A row's values do not depend on the rows beside it: one row alone, in a
// group of four, or among seventeen, split over goroutines or parts, gives
// the same bits.
func TestQ8BatchInvariant(t *testing.T) {
	if q8 == nil {
		t.Skip("this CPU lacks AVX-512 VNNI: 8-bit products are not built")
	}
	rng := newTestRand()
	const k, n, m = 160, 70, 17
	a, w := randSlice(rng, m*k), randSlice(rng, n*k)
	p, _ := PackQ8(w, k, n, TransB)
	all := make([]float32, m*n)
	GemmPacked(2, all, n, a, k, p, m, 0)
	for i := range m {
		one := make([]float32, n)
		GemmPacked(1, one, n, a[i*k:], k, p, 1, 0)
		for j, v := range one {
			if math.Float32bits(v) != math.Float32bits(all[i*n+j]) {
				t.Fatalf("row %d column %d: %g alone, %g among %d rows", i, j, v, all[i*n+j], m)
			}
		}
	}
	if allocs := testing.AllocsPerRun(10, func() { GemmPacked(1, all, n, a, k, p, m, 0) }); allocs != 0 {
		t.Errorf("an 8-bit product allocates %v times", allocs)
	}
	parts := make([]float32, m*n)
	for part := range 3 {
		GemmPackedPart(parts, n, a, k, p, m, 0, part, 3)
	}
	for i, v := range parts {
		if math.Float32bits(v) != math.Float32bits(all[i]) {
			t.Fatalf("value %d: %g in parts, %g whole", i, v, all[i])
		}
	}
}

// Activations round half to even, as math.RoundToEven does, and their
// bytes' sum is the sum of the bytes.
func TestQuantizeActivations(t *testing.T) {
	rng := newTestRand()
	x := randSlice(rng, q8Block)
	x[3], x[7] = 0, -3 // a zero, and the largest magnitude negative
	var q [q8Block]int8
	d, sum := quantizeActivations(q[:], x)
	var want int32
	for i, v := range x {
		if r := int8(math.RoundToEven(float64(v * (1 / d)))); q[i] != r {
			t.Errorf("value %d (%g): %d, want %d", i, v, q[i], r)
		}
		want += int32(q[i])
	}
	if sum != want {
		t.Errorf("sum %d, want %d", sum, want)
	}
	if d, sum := quantizeActivations(q[:], make([]float32, q8Block)); d != 0 || sum != 0 || q != [q8Block]int8{} {
		t.Errorf("zeros: scale %g, sum %d, bytes %v", d, sum, q)
	}
}

// A matrix of values already on Q8_0's grid (a Q8_0 file's weights,
// widened) packs back to the same values: the product equals one with the
// float32 weights exactly quantized, to within float32 rounding.
func TestQ8KeepsQ8_0Values(t *testing.T) {
	if q8 == nil {
		t.Skip("this CPU lacks AVX-512 VNNI: 8-bit products are not built")
	}
	rng := newTestRand()
	const k, n = 64, 16
	w := randSlice(rng, n*k)
	var q [q8Block]int8
	for i := 0; i < len(w); i += q8Block {
		d := halfRound(QuantizeQ8(q[:], w[i:i+q8Block]))
		for j, v := range q {
			w[i+j] = float32(v) * d
		}
	}
	p, _ := PackQ8(w, k, n, TransB)
	for q := range n / q8Cols {
		for blk := range k / q8Block {
			src := p.q8[(q*(k/q8Block)+blk)*q8BlockBytes:]
			for jj := range q8Cols {
				for d := range q8Block {
					got := float32(int(src[(d/4)*64+jj*4+d%4])-128) * f16FromBits(src[q8Block*q8Cols+2*jj:])
					if want := w[(q*q8Cols+jj)*k+blk*q8Block+d]; got != want {
						t.Fatalf("panel %d block %d column %d depth %d: packed %g, was %g", q, blk, jj, d, got, want)
					}
				}
			}
		}
	}
}

// PackQ8 is refused where the kernels are missing, never half built.
func TestQ8NeedsVNNI(t *testing.T) {
	_, ok := PackQ8(make([]float32, 64), 32, 2, TransB)
	if ok != (q8 != nil) {
		t.Errorf("PackQ8 ok %v with kernels %v", ok, q8 != nil)
	}
}

func BenchmarkQ8(b *testing.B) {
	if q8 == nil {
		b.Skip("no AVX-512 VNNI")
	}
	rng := newTestRand()
	for _, s := range [][3]int{{1, 896, 4864}, {16, 896, 4864}} {
		m, k, n := s[0], s[1], s[2]
		a, w := randSlice(rng, m*k), randSlice(rng, n*k)
		p, _ := PackQ8(w, k, n, TransB)
		c := make([]float32, m*n)
		b.Run(fmt.Sprintf("%dx%dx%d", m, k, n), func(b *testing.B) {
			for b.Loop() {
				GemmPacked(1, c, n, a, k, p, m, 0)
			}
			b.ReportMetric(2*float64(m*k*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// The vector quantization gives the bytes, scale and sum of the scalar
// one, for every length it takes, halves (x.5 after scaling) and values
// that are not finite included.
func TestQuantizeVectorMatchesScalar(t *testing.T) {
	if _, _, ok := quantizeVector(make([]int8, 16), make([]float32, 16)); !ok {
		t.Skip("no AVX-512 on this CPU: the scalar path is all there is")
	}
	rng := newTestRand()
	for _, n := range []int{16, 32, 64, 256} {
		for trial := range 50 {
			x := randSlice(rng, n)
			for i := range x {
				x[i] *= float32(math.Pow(10, float64(rng.IntN(9)-4)))
			}
			switch trial % 5 {
			case 1:
				x[0] = 127 // every integer value lands on a half or a whole
				for i := 1; i < n; i++ {
					x[i] = float32(rng.IntN(255)-127) / 2
				}
			case 2:
				x[rng.IntN(n)] = float32(math.NaN())
			case 3:
				x[rng.IntN(n)] = float32(math.Inf(-1))
			case 4:
				clear(x)
			}
			got, want := make([]int8, n), make([]int8, n)
			gs, gsum := quantizeActivations(got, x)
			ws, wsum := quantizeScalar(want, x)
			if math.Float32bits(gs) != math.Float32bits(ws) || gsum != wsum || !slices.Equal(got, want) {
				t.Fatalf("n %d, trial %d: scale %g sum %d bytes %v; scalar: %g %d %v", n, trial, gs, gsum, got, ws, wsum, want)
			}
		}
	}
}
