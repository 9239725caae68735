package tensor

import (
	"fmt"
	"math"
	"testing"

	"github.com/braid-dev/braid/internal/half"
)

// The vector conversion and half.BF16FromFloat32 agree bit for bit, on
// every class of value: normals, ties, subnormals, infinities and NaNs.
func TestToBF16MatchesScalar(t *testing.T) {
	rng := newTestRand()
	src := make([]float32, 0, 1<<16)
	for _, bits := range []uint32{0, 0x80000000, 1, 0x807fffff, 0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000,
		0x7fc00000, 0x7f800001, 0xffbfffff, 0x3f808000, 0x3f818000, 0x3f80ffff, 0x00800000, 0x007fffff} {
		src = append(src, math.Float32frombits(bits))
	}
	for len(src) < cap(src) {
		src = append(src, math.Float32frombits(rng.Uint32()))
	}
	got := make([]uint16, len(src))
	ToBF16(got, src)
	for i, x := range src {
		if want := half.BF16FromFloat32(x); got[i] != want {
			t.Fatalf("%#08x: vector gives %#04x, scalar %#04x", math.Float32bits(x), got[i], want)
		}
	}
}

// A product with a PackBF16 matrix is the float32 product of the values
// rounded to bfloat16, whatever the shape (odd depths, depths past one
// block, ragged panels), the threads or the parts; and every row has the
// bits it has alone.
func TestGemmPackedBF16(t *testing.T) {
	rng := newTestRand()
	for _, sh := range [][3]int{{1, 1, 1}, {3, 17, 33}, {16, 256, 704}, {29, 301, 65}, {40, 2100, 40}, {15, 1031, 96}, {17, 64, 64}} {
		m, k, n := sh[0], sh[1], sh[2]
		b := randSlice(rng, k*n)
		pb, ok := PackBF16(b, k, n, TransB)
		if !ok {
			t.Skip("no bfloat16 kernels on this CPU")
		}
		// With AMX the products run on its tiles; the AVX-512 BF16
		// kernels, which CPUs without AMX run, are tested here too.
		kernels := map[string]*Packed{"avx512": pb}
		if pb.amx != nil {
			avx := *pb
			avx.amx = nil
			kernels = map[string]*Packed{"amx": pb, "avx512": &avx}
		}
		round := func(x []float32) []float32 {
			r := make([]float32, len(x))
			for i, v := range x {
				r[i] = half.BF16ToFloat32(half.BF16FromFloat32(v))
			}
			return r
		}
		a, c0 := randSlice(rng, m*k), randSlice(rng, m*n)
		for name, pb := range kernels {
			for _, acc := range []Flags{0, Accumulate} {
				want := append([]float32(nil), c0...)
				gemmRef(want, round(a), round(b), m, k, n, TransB|acc)
				for _, threads := range []int{1, 2, 3} {
					what := fmt.Sprintf("%s %dx%dx%d flags %d threads %d", name, m, k, n, acc, threads)
					got := append([]float32(nil), c0...)
					GemmPacked(threads, got, n, a, k, pb, m, acc)
					closeEnough(t, what, got, want, k)
					parts := append([]float32(nil), c0...)
					for p := range threads {
						GemmPackedPart(parts, n, a, k, pb, m, acc, p, threads)
					}
					closeEnough(t, what+" in parts", parts, got, 0)
					for i := range m {
						row := append([]float32(nil), c0[i*n:(i+1)*n]...)
						GemmPacked(threads, row, n, a[i*k:], k, pb, 1, acc)
						for j := range row {
							if math.Float32bits(row[j]) != math.Float32bits(got[i*n+j]) {
								t.Fatalf("%s: row %d col %d alone is %g, in %d rows %g", what, i, j, row[j], m, got[i*n+j])
							}
						}
					}
				}
			}
		}
	}
}

// BenchmarkPackedDecode multiplies the rows of one decode step (1 or 16
// threads) by a weight of the decode model's MLP, 256×1408, on one core,
// packed in each precision: the products a batched step is made of.
func BenchmarkPackedDecode(b *testing.B) {
	const k, n = 256, 1408
	rng := newTestRand()
	w := randSlice(rng, k*n)
	packs := []struct {
		name string
		pack func() (*Packed, bool)
	}{
		{"f32", func() (*Packed, bool) { return Pack(w, k, n, TransB), true }},
		{"f16", func() (*Packed, bool) { return PackHalf(w, k, n, TransB) }},
		{"bf16", func() (*Packed, bool) { return PackBF16(w, k, n, TransB) }},
		// The AVX-512 BF16 kernels, which a CPU without AMX runs.
		{"bf16-avx512", func() (*Packed, bool) {
			p, ok := PackBF16(w, k, n, TransB)
			if ok {
				p.amx = nil
			}
			return p, ok
		}},
	}
	for _, m := range []int{1, 2, 4, 8, 14, 16} {
		a, c := randSlice(rng, m*k), make([]float32, m*n)
		for _, p := range packs {
			pb, ok := p.pack()
			if !ok {
				continue
			}
			b.Run(fmt.Sprintf("rows=%d/weights=%s", m, p.name), func(b *testing.B) {
				for b.Loop() {
					GemmPacked(1, c, n, a, k, pb, m, 0)
				}
				b.ReportMetric(2*float64(m*k*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkPackedStream multiplies one row by a matrix too large for any
// cache (896×303,872, 545 MB in bfloat16: twice a Qwen2.5-0.5B output
// layer), as single-stream decoding of a real model does with every
// weight: a measure of the bytes a second the kernels stream from memory
// (two bytes a multiply-add in half precision and bfloat16, 1.0625 in q8).
func BenchmarkPackedStream(b *testing.B) {
	const k, n = 896, 151936 * 2
	rng := newTestRand()
	w := randSlice(rng, k*n)
	a, c := randSlice(rng, k), make([]float32, n)
	packs := []struct {
		name string
		pack func() (*Packed, bool)
	}{
		{"f16", func() (*Packed, bool) { return PackHalf(w, k, n, TransB) }},
		{"bf16", func() (*Packed, bool) { return PackBF16(w, k, n, TransB) }},
		{"bf16-avx512", func() (*Packed, bool) {
			p, ok := PackBF16(w, k, n, TransB)
			if ok {
				p.amx = nil
			}
			return p, ok
		}},
		{"q8", func() (*Packed, bool) { return PackQ8(w, k, n, TransB) }},
	}
	for _, p := range packs {
		pb, ok := p.pack()
		if !ok {
			continue
		}
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("threads=%d/weights=%s", threads, p.name), func(b *testing.B) {
				for b.Loop() {
					GemmPacked(threads, c, n, a, k, pb, 1, 0)
				}
				b.ReportMetric(2*float64(k*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
