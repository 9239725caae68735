package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/braid-dev/braid/internal/half"
)

func newTestRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = rng.Float32()*2 - 1
	}
	return s
}

// closeEnough compares against the float64-accumulated reference with a
// tolerance that grows with the length of the dot products.
func closeEnough(t *testing.T, what string, got, want []float32, k int) {
	t.Helper()
	tol := 1e-5 * float64(k+1)
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > tol*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("%s: element %d = %g, want %g (|diff| %g > %g)", what, i, got[i], want[i], d, tol)
		}
	}
}

func TestGemmMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := [][3]int{
		{1, 1, 1}, {1, 7, 1}, {3, 5, 7}, {14, 1, 32}, {15, 3, 33}, {13, 31, 31},
		{1, 256, 768}, {29, 300, 65}, {64, 64, 64}, {100, 257, 50}, {6, 16, 16}, {7, 17, 17},
		{200, 520, 70}, {2, 3, 2100},
		{30, 2100, 40}, // k spans three kc blocks
	}
	for range 12 {
		shapes = append(shapes, [3]int{1 + rng.IntN(90), 1 + rng.IntN(600), 1 + rng.IntN(90)})
	}
	for _, kern := range kernels() {
		for _, sh := range shapes {
			m, k, n := sh[0], sh[1], sh[2]
			for _, f := range []Flags{0, TransA, TransB, TransA | TransB, Accumulate, TransB | Accumulate, TransA | Accumulate} {
				for _, threads := range []int{1, 2, 3} {
					name := fmt.Sprintf("%s/%dx%dx%d/flags=%d/threads=%d", kern.name, m, k, n, f, threads)
					a, b := randSlice(rng, m*k), randSlice(rng, k*n)
					c0 := randSlice(rng, m*n)
					want := append([]float32(nil), c0...)
					got := append([]float32(nil), c0...)
					gemmRef(want, a, b, m, k, n, f)
					lda, ldb := leadingDims(m, k, n, f)
					gemm(kern, threads, gemmArgs{c: Mat{got, n}, a: Mat{a, lda}, b: Mat{b, ldb}, m: m, k: k, n: n, f: f})
					closeEnough(t, name, got, want, k)
				}
			}
		}
	}
}

// leadingDims are the row strides of a and b stored whole as f says.
func leadingDims(m, k, n int, f Flags) (lda, ldb int) {
	lda, ldb = k, n
	if f&TransA != 0 {
		lda = m
	}
	if f&TransB != 0 {
		ldb = k
	}
	return lda, ldb
}

func TestGemmLeavesTheRestOfCAlone(t *testing.T) {
	// c may be longer than m·n; nothing past it is touched, and a product
	// with k = 0 clears c (or leaves it, accumulating).
	c := []float32{9, 9, 9, 9, 9, 9, 7}
	Gemm(c, nil, nil, 2, 0, 3, 0)
	for i, v := range c[:6] {
		if v != 0 {
			t.Fatalf("c[%d] = %v after a k=0 product", i, v)
		}
	}
	if c[6] != 7 {
		t.Fatal("gemm wrote past m·n")
	}
	c = []float32{1, 2, 3, 4, 5, 6, 7}
	Gemm(c, nil, nil, 2, 0, 3, Accumulate)
	if c[0] != 1 || c[5] != 6 {
		t.Fatal("an accumulating k=0 product changed c")
	}
}

func TestGemmPanicsOnShortSlices(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for a too-short a")
		}
	}()
	Gemm(make([]float32, 4), make([]float32, 3), make([]float32, 4), 2, 2, 2, 0)
}

// sub copies the rows×cols block at offset off with row stride ld into a
// contiguous slice.
func sub(data []float32, off, ld, rows, cols int) []float32 {
	out := make([]float32, 0, rows*cols)
	for i := range rows {
		out = append(out, data[off+i*ld:off+i*ld+cols]...)
	}
	return out
}

func TestGemmStridedSubMatrices(t *testing.T) {
	rng := newTestRand()
	for _, kern := range kernels() {
		for _, f := range []Flags{0, TransA, TransB, TransA | TransB | Accumulate} {
			for _, sh := range [][3]int{{3, 5, 7}, {20, 33, 40}, {1, 40, 130}, {64, 32, 64}} {
				m, k, n := sh[0], sh[1], sh[2]
				ar, ac := m, k
				if f&TransA != 0 {
					ar, ac = k, m
				}
				br, bc := k, n
				if f&TransB != 0 {
					br, bc = n, k
				}
				// Each operand sits at an offset inside a wider matrix.
				lda, ldb, ldc := ac+3, bc+5, n+2
				A, B := randSlice(rng, 2+ar*lda), randSlice(rng, 1+br*ldb)
				C := randSlice(rng, 4+m*ldc)
				orig := append([]float32(nil), C...)
				want := sub(C, 4, ldc, m, n)
				gemmRef(want, sub(A, 2, lda, ar, ac), sub(B, 1, ldb, br, bc), m, k, n, f)
				gemm(kern, 2, gemmArgs{c: Mat{C[4:], ldc}, a: Mat{A[2:], lda}, b: Mat{B[1:], ldb}, m: m, k: k, n: n, f: f})
				closeEnough(t, kern.name, sub(C, 4, ldc, m, n), want, k)
				// Nothing outside c's block changed.
				for i := range C {
					r, col := (i-4)/ldc, (i-4)%ldc
					inside := i >= 4 && r < m && col < n
					if !inside && C[i] != orig[i] {
						t.Fatalf("%s %dx%dx%d flags %d: wrote outside c at %d", kern.name, m, k, n, f, i)
					}
				}
			}
		}
	}
}

func TestGemmRejectsOverflowingStrides(t *testing.T) {
	// 13·stride wraps to 1 in 64 bits: a check that multiplies would pass
	// and the kernel would read far outside a.
	defer func() {
		if recover() == nil {
			t.Fatal("a wrapping stride was accepted")
		}
	}()
	c := make([]float32, 14*32)
	b := make([]float32, 32)
	GemmStrided(1, Mat{c, 32}, Mat{[]float32{1, 2}, 5675921253449092805}, Mat{b, 32}, 14, 1, 32, 0)
}

func TestShortOutputsPanic(t *testing.T) {
	for name, f := range map[string]func(){
		"ExpSlice": func() { ExpSlice(make([]float32, 2, 8), make([]float32, 5)) },
		"Softmax":  func() { Softmax(make([]float32, 2, 8), make([]float32, 5)) },
		"SwiGLU":   func() { SwiGLU(make([]float32, 2, 8), make([]float32, 5), make([]float32, 5)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s wrote past a short output", name)
				}
			}()
			f()
		}()
	}
}

// A row of a product without TransB has the same bits whatever the number
// of rows beside it and the number of threads: batched decoding relies on
// it to give the tokens one-at-a-time decoding gives.
func TestGemmRowsAreBatchInvariant(t *testing.T) {
	rng := newTestRand()
	for _, kern := range kernels() {
		for _, sh := range [][2]int{{1, 1}, {17, 15}, {256, 704}, {300, 33}, {704, 256}, {1100, 200}, {2100, 40}, {64, 1000}} {
			k, n := sh[0], sh[1]
			for _, f := range []Flags{0, Accumulate, TransA, TransA | Accumulate} {
				const m = 40
				a, b, c0 := randSlice(rng, m*k), randSlice(rng, k*n), randSlice(rng, m*n)
				lda := k
				if f&TransA != 0 {
					lda = m
				}
				whole := append([]float32(nil), c0...)
				gemm(kern, 2, gemmArgs{c: Mat{whole, n}, a: Mat{a, lda}, b: Mat{b, n}, m: m, k: k, n: n, f: f})
				for _, rows := range []int{1, 2, 5, 7, 13, 40} {
					for _, threads := range []int{1, 2} {
						for i0 := 0; i0+rows <= m; i0 += rows {
							part := append([]float32(nil), c0[i0*n:(i0+rows)*n]...)
							sub := Mat{a[i0*k:], k}
							if f&TransA != 0 {
								sub = Mat{a[i0:], m}
							}
							gemm(kern, threads, gemmArgs{c: Mat{part, n}, a: sub, b: Mat{b, n}, m: rows, k: k, n: n, f: f})
							for j, v := range part {
								if w := whole[i0*n+j]; math.Float32bits(v) != math.Float32bits(w) {
									t.Fatalf("%s %dx%d flags=%d: row %d col %d is %g in %d rows on %d threads, %g in %d rows",
										kern.name, k, n, f, i0+j/n, j%n, v, rows, threads, w, m)
								}
							}
						}
					}
				}
			}
		}
	}
}

func TestVecMat(t *testing.T) {
	rng := newTestRand()
	for _, sh := range [][3]int{{1, 1, 1}, {16, 16, 16}, {5, 16, 16}, {32, 48, 64}, {100, 150, 160}, {7, 200, 333}} {
		k, n, ldb := sh[0], sh[1], sh[2]
		a, b := randSlice(rng, k), randSlice(rng, (k-1)*ldb+n)
		want := make([]float32, n)
		dense := make([]float32, k*n)
		for p := range k {
			copy(dense[p*n:(p+1)*n], b[p*ldb:p*ldb+n])
		}
		gemmRef(want, a, dense, 1, k, n, 0)
		got := randSlice(rng, n)
		VecMat(got, a, b, k, n, ldb, false)
		closeEnough(t, fmt.Sprintf("VecMat %dx%d", k, n), got, want, k)
		// The chain split anywhere gives the bits of one call.
		for split := 1; split < k; split += 1 + k/5 {
			parts := make([]float32, n)
			VecMat(parts, a, b, split, n, ldb, false)
			VecMat(parts, a[split:], b[split*ldb:], k-split, n, ldb, true)
			for j := range parts {
				if math.Float32bits(parts[j]) != math.Float32bits(got[j]) {
					t.Fatalf("VecMat %dx%d split at %d: column %d is %g, one call gives %g", k, n, split, j, parts[j], got[j])
				}
			}
		}
	}
}

func TestGemmPacked(t *testing.T) {
	rng := newTestRand()
	for _, sh := range [][3]int{{1, 1, 1}, {3, 17, 33}, {16, 256, 704}, {29, 300, 65}, {40, 2100, 40}, {1, 1100, 1000}, {100, 64, 31}} {
		m, k, n := sh[0], sh[1], sh[2]
		for _, f := range []Flags{0, TransB} {
			b := randSlice(rng, k*n)
			pb := Pack(b, k, n, f)
			for _, acc := range []Flags{0, Accumulate} {
				a, c0 := randSlice(rng, m*k), randSlice(rng, m*n)
				want := append([]float32(nil), c0...)
				gemmRef(want, a, b, m, k, n, f|acc)
				for _, threads := range []int{1, 2, 3} {
					got := append([]float32(nil), c0...)
					GemmPacked(threads, got, n, a, k, pb, m, acc)
					closeEnough(t, fmt.Sprintf("packed %dx%dx%d flags %d threads %d", m, k, n, f|acc, threads), got, want, k)
					parts := append([]float32(nil), c0...)
					for p := range threads {
						GemmPackedPart(parts, n, a, k, pb, m, acc, p, threads)
					}
					closeEnough(t, fmt.Sprintf("packed in %d parts %dx%dx%d flags %d", threads, m, k, n, f|acc), parts, got, 0)
					// Each row alone gives the same bits.
					for i := range m {
						row := append([]float32(nil), c0[i*n:(i+1)*n]...)
						GemmPacked(threads, row, n, a[i*k:], k, pb, 1, acc)
						for j := range row {
							if math.Float32bits(row[j]) != math.Float32bits(got[i*n+j]) {
								t.Fatalf("packed %dx%dx%d: row %d col %d alone is %g, in %d rows %g", m, k, n, i, j, row[j], m, got[i*n+j])
							}
						}
					}
				}
			}
		}
	}
}

func TestVecMatHeadsMatchesVecMat(t *testing.T) {
	rng := newTestRand()
	for _, heads := range []int{1, 2, 3, 4, 5, 6, 8, 9} {
		for _, sh := range [][2]int{{1, 16}, {7, 32}, {32, 16}, {16, 48}, {5, 8}, {16, 33}, {48, 64}} {
			k, n := sh[0], sh[1]
			for _, shared := range []bool{false, true} {
				for _, chain := range []bool{false, true} {
					lda, ldb, ldc := k+3, n+5, n+2
					ldbh := k * ldb
					if shared {
						ldbh = 0
					}
					a := randSlice(rng, heads*lda)
					b := randSlice(rng, heads*k*ldb+ldb)
					c0 := randSlice(rng, heads*ldc)
					got := append([]float32(nil), c0...)
					VecMatHeads(heads, got, ldc, a, lda, b, ldbh, ldb, k, n, chain)
					for h := range heads {
						want := append([]float32(nil), c0[h*ldc:h*ldc+n]...)
						VecMat(want, a[h*lda:], b[h*ldbh:], k, n, ldb, chain)
						for j := range want {
							if math.Float32bits(got[h*ldc+j]) != math.Float32bits(want[j]) {
								t.Fatalf("%d heads, %dx%d, shared %v, chain %v: head %d col %d is %g, VecMat gives %g",
									heads, k, n, shared, chain, h, j, got[h*ldc+j], want[j])
							}
						}
						// Columns between heads are left alone.
						for j := n; j < ldc && h*ldc+j < len(got); j++ {
							if got[h*ldc+j] != c0[h*ldc+j] {
								t.Fatalf("%d heads: wrote past head %d's columns", heads, h)
							}
						}
					}
				}
			}
		}
	}
}

// A half-precision packing computes exactly what the float32 packing of
// the rounded matrix does, row by row whatever the batch.
func TestGemmPackedHalf(t *testing.T) {
	rng := newTestRand()
	for _, sh := range [][3]int{{1, 1, 1}, {3, 17, 33}, {16, 256, 704}, {29, 300, 65}, {40, 2100, 40}} {
		m, k, n := sh[0], sh[1], sh[2]
		b := randSlice(rng, k*n)
		ph, ok := PackHalf(b, k, n, TransB)
		if !ok {
			t.Skip("no half-precision kernels on this CPU")
		}
		rounded := make([]float32, len(b))
		for i, v := range b {
			rounded[i] = half.ToFloat32(half.FromFloat32(v))
		}
		pf := Pack(rounded, k, n, TransB)
		a, c0 := randSlice(rng, m*k), randSlice(rng, m*n)
		for _, acc := range []Flags{0, Accumulate} {
			want := append([]float32(nil), c0...)
			GemmPacked(2, want, n, a, k, pf, m, acc)
			got := append([]float32(nil), c0...)
			GemmPacked(2, got, n, a, k, ph, m, acc)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%dx%dx%d: value %d is %g from halves, %g from rounded floats", m, k, n, i, got[i], want[i])
				}
			}
			for i := range m {
				row := append([]float32(nil), c0[i*n:(i+1)*n]...)
				GemmPacked(1, row, n, a[i*k:], k, ph, 1, acc)
				for j := range row {
					if math.Float32bits(row[j]) != math.Float32bits(got[i*n+j]) {
						t.Fatalf("%dx%dx%d: row %d alone differs at %d", m, k, n, i, j)
					}
				}
			}
		}
	}
}

// A product's rows are cut into the tiles that take least time, and every
// row is computed exactly once.
func TestPlan(t *testing.T) {
	kern := kernel{tiles: []tileKernel{{mr: 14}, {mr: 8}, {mr: 4}, {mr: 2}, {mr: 1}}} // AVX-512's heights
	for rows, want := range map[int][]int{1: {1}, 8: {8}, 14: {14}, 15: {14, 1}, 16: {8, 8}, 18: {14, 4}, 20: {8, 8, 4}, 28: {14, 14}} {
		var got []int
		for _, t := range kern.plan(rows, nil) {
			got = append(got, kern.tiles[t].mr)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%d rows: tiles of %v rows, want %v", rows, got, want)
		}
	}
	// Planned at every product, a plan of a full chunk of rows allocates
	// nothing.
	dst := make([]int, 0, mcRows*14)
	if n := testing.AllocsPerRun(10, func() { dst = kern.plan(mcRows*14, dst) }); n != 0 {
		t.Errorf("planning %d rows allocates %.0f times", mcRows*14, n)
	}
	for _, k := range kernels() {
		for rows := 1; rows <= 200; rows++ {
			sum := 0
			for _, t := range k.plan(rows, nil) {
				sum += k.tiles[t].mr
			}
			if sum != rows {
				t.Fatalf("%s: a plan of %d rows covers %d", k.name, rows, sum)
			}
		}
	}
}
