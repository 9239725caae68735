package tensor

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"github.com/braid-dev/braid/internal/half"
)

// indexBlocks lays n blocks of dim×16 random half-precision keys out at
// random places in one buffer and returns their pointers and the buffer.
func indexBlocks(rng *rand.Rand, n, dim int) ([]unsafe.Pointer, []uint16) {
	size := dim*16 + 5 // a gap between blocks
	buf := make([]uint16, 3*n*size)
	perm := rng.Perm(3 * n)
	var blocks []unsafe.Pointer
	for b := range n {
		at := perm[b] * size
		for i := range dim * 16 {
			buf[at+i] = half.FromFloat32(float32(rng.NormFloat64()))
		}
		blocks = append(blocks, unsafe.Pointer(&buf[at]))
	}
	return blocks, buf
}

// IndexScoresF16 is Σ_j w_j·ReLU(q_j·k) within float32's rounding of the
// exact sum, the same with the kernel as in Go, and bit for bit what the
// engine computed before it: VecMatHeadsF16's products, then the weighted
// terms added in order.
func TestIndexScoresF16(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, dim := range []int{1, 8, 16, 20} {
		for _, heads := range []int{1, 3, 4, 5, 8} {
			for _, n := range []int{1, 2, 3, 7} {
				blocks, _ := indexBlocks(rng, n, dim)
				q, w := make([]float32, heads*dim), make([]float32, heads)
				for i := range q {
					q[i] = float32(rng.NormFloat64())
				}
				for i := range w {
					w[i] = float32(rng.NormFloat64())
				}
				got, slow := make([]float32, 16*n+1), make([]float32, 16*n)
				got[16*n] = 42 // past the scores: untouched
				IndexScoresF16(got, q, w, heads, dim, blocks)
				indexScoresF16Go(slow, q, w, heads, dim, blocks)
				if got[16*n] != 42 {
					t.Fatalf("dim %d heads %d: wrote past %d scores", dim, heads, 16*n)
				}
				z := make([]float32, heads*16)
				for b, p := range blocks {
					keys := unsafe.Slice((*uint16)(p), dim*16)
					VecMatHeadsF16(heads, z, 16, q, dim, keys, 0, 16, dim, 16, false, nil)
					for s := range 16 {
						var want, mag, engine float64
						var sum float32
						for j := range heads {
							var dot float64
							for d := range dim {
								dot += float64(q[j*dim+d]) * float64(half.ToFloat32(keys[d*16+s]))
								mag += math.Abs(float64(q[j*dim+d]) * float64(half.ToFloat32(keys[d*16+s])*w[j]))
							}
							want += float64(w[j]) * max(dot, 0)
							sum += w[j] * max(z[j*16+s], 0)
						}
						engine = float64(sum)
						g := float64(got[16*b+s])
						if math.Abs(g-want) > 1e-5*mag+1e-30 || math.Abs(float64(slow[16*b+s])-want) > 1e-5*mag+1e-30 {
							t.Fatalf("dim %d heads %d block %d slot %d: kernel %g, Go %g, want %g", dim, heads, b, s, g, slow[16*b+s], want)
						}
						if indexKernels && g != engine {
							t.Fatalf("dim %d heads %d block %d slot %d: %g, VecMatHeadsF16 then the weights %g", dim, heads, b, s, g, engine)
						}
					}
				}
			}
		}
	}
}

// AtLeast keeps exactly the values at least the threshold, NaN never, in
// order with their indices, and CountAtLeast counts them, at every length
// around the kernels' 16 and 32.
func TestAtLeast(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 48, 100, 4096} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
			if rng.IntN(50) == 0 {
				x[i] = float32(math.NaN())
			}
			if rng.IntN(10) == 0 {
				x[i] = 0.5
			}
		}
		for _, th := range []float32{float32(math.Inf(-1)), -1, 0.5, 2, float32(math.Inf(1))} {
			vals, at := make([]float32, n+16), make([]int32, n+16)
			c := AtLeast(vals, at, x, th)
			var wantVals []float32
			var wantAt []int32
			for i, v := range x {
				if v >= th {
					wantVals, wantAt = append(wantVals, v), append(wantAt, int32(i))
				}
			}
			if got := CountAtLeast(x, th); got != len(wantVals) {
				t.Fatalf("n %d: %d at least %g, want %d", n, got, th, len(wantVals))
			}
			if !slices.Equal(vals[:c], wantVals) || !slices.Equal(at[:c], wantAt) {
				t.Fatalf("n %d, at least %g: %d values %v at %v, want %v at %v", n, th, c, vals[:c], at[:c], wantVals, wantAt)
			}
		}
	}
}

func TestAtLeastBounds(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("AtLeast with too little room for its 16-wide stores did not panic")
		}
	}()
	AtLeast(make([]float32, 20), make([]int32, 20), make([]float32, 16), 0)
}

func BenchmarkIndexScoresF16(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	blocks, _ := indexBlocks(rng, 256, 16) // 4,096 positions
	q, w, out := make([]float32, 4*16), make([]float32, 4), make([]float32, 4096)
	for i := range q {
		q[i] = float32(rng.NormFloat64())
	}
	for i := range w {
		w[i] = 1
	}
	for b.Loop() {
		IndexScoresF16(out, q, w, 4, 16, blocks)
	}
}

func BenchmarkAtLeast(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, 4096)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	vals, at := make([]float32, len(x)+16), make([]int32, len(x)+16)
	for b.Loop() {
		AtLeast(vals, at, x, 1.5) // about 7%
	}
}
