package tensor

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/braid-dev/braid/internal/half"
)

func drawHalf(rng *rand.Rand) (uint16, float32) {
	h := half.FromFloat32(rng.Float32()*2 - 1)
	return h, half.ToFloat32(h)
}

func drawInt8(rng *rand.Rand) (int8, float32) {
	b := int8(rng.IntN(256) - 128)
	return b, float32(b)
}

func TestVecMatHeadsF16MatchesVecMat(t *testing.T) {
	narrowMatchesVecMat(t, VecMatHeadsF16, drawHalf, false)
}

func TestVecMatHeadsI8MatchesVecMat(t *testing.T) {
	narrowMatchesVecMat(t, VecMatHeadsI8, drawInt8, false)
}

// Rows that share one matrix get, each, the bits of VecMat alone.
func TestVecMatRowsMatchVecMat(t *testing.T) {
	narrowMatchesVecMat(t, func(rows int, c []float32, ldc int, a []float32, lda int, b []uint16, _, ldb int, k, n int, chain bool, fetch []uint16) {
		VecMatRowsF16(rows, c, ldc, a, lda, b, ldb, k, n, chain, fetch)
	}, drawHalf, true)
	narrowMatchesVecMat(t, func(rows int, c []float32, ldc int, a []float32, lda int, b []int8, _, ldb int, k, n int, chain bool, fetch []int8) {
		VecMatRowsI8(rows, c, ldc, a, lda, b, ldb, k, n, chain, fetch)
	}, drawInt8, true)
}

// narrowMatchesVecMat checks a multi-head product over narrow elements
// against VecMat over the same values widened, bit for bit, for every
// number of heads the kernels group and shapes with and without a tail,
// fetching other memory meanwhile or not; draw makes an element and its
// value. With shared, every head multiplies the same matrix (ldbh 0).
func narrowMatchesVecMat[E any](t *testing.T, product func(heads int, c []float32, ldc int, a []float32, lda int, b []E, ldbh, ldb int, k, n int, chain bool, fetch []E),
	draw func(*rand.Rand) (E, float32), shared bool) {
	rng := newTestRand()
	for _, heads := range []int{1, 2, 3, 4, 5, 7, 8, 9} {
		for _, sh := range [][2]int{{1, 16}, {7, 32}, {32, 16}, {16, 48}, {5, 8}, {16, 33}} {
			k, n := sh[0], sh[1]
			for _, chain := range []bool{false, true} {
				lda, ldb, ldc := k+1, n+3, n+2
				ldbh := k * ldb
				if shared {
					ldbh = 0
				}
				a := randSlice(rng, heads*lda)
				narrow := make([]E, max(heads*ldbh, k*ldb)+ldb)
				wide := make([]float32, len(narrow))
				for i := range narrow {
					narrow[i], wide[i] = draw(rng)
				}
				c0 := randSlice(rng, heads*ldc)
				got := append([]float32(nil), c0...)
				var fetch []E
				if chain {
					fetch = make([]E, 1000+k) // any length: more than a call fetches, or less
				}
				product(heads, got, ldc, a, lda, narrow, ldbh, ldb, k, n, chain, fetch)
				for h := range heads {
					want := append([]float32(nil), c0[h*ldc:h*ldc+n]...)
					VecMat(want, a[h*lda:], wide[h*ldbh:], k, n, ldb, chain)
					for j := range want {
						if math.Float32bits(got[h*ldc+j]) != math.Float32bits(want[j]) {
							t.Fatalf("%d heads, %dx%d, chain %v: head %d col %d is %g, want %g", heads, k, n, chain, h, j, got[h*ldc+j], want[j])
						}
					}
				}
			}
		}
	}
}

// The vector conversion rounds as half.FromFloat32 does, special values
// included.
func TestToHalfMatchesScalar(t *testing.T) {
	rng := newTestRand()
	src := randSlice(rng, 4099)
	for i := range src {
		src[i] *= float32(math.Pow(10, float64(i%14-7)))
	}
	src[3], src[5], src[7], src[40] = float32(math.Inf(1)), float32(math.NaN()), 70000, 2.9802322e-08
	dst := make([]uint16, len(src))
	ToHalf(dst, src)
	for i, v := range src {
		if want := half.FromFloat32(v); dst[i] != want && !(math.IsNaN(float64(v)) && dst[i]&0x7c00 == 0x7c00 && dst[i]&0x3ff != 0) {
			t.Fatalf("value %d (%g): %#04x, want %#04x", i, v, dst[i], want)
		}
	}
}

// Mul, vector and tail, in place too.
func TestMul(t *testing.T) {
	rng := newTestRand()
	for n := range 50 {
		a, b := randSlice(rng, n), randSlice(rng, n)
		got := make([]float32, n)
		Mul(got, a, b)
		for i := range n {
			if got[i] != a[i]*b[i] {
				t.Fatalf("n %d: [%d] = %g, want %g", n, i, got[i], a[i]*b[i])
			}
		}
		Mul(a, a, b)
		if !slices.Equal(a, got) {
			t.Fatalf("n %d: in place %v, want %v", n, a, got)
		}
	}
}

// MulRows multiplies exactly the first n values of each row, by its own
// row of s or by one row every row shares, and leaves the rest alone.
func TestMulRows(t *testing.T) {
	rng := newTestRand()
	for _, n := range []int{1, 5, 16, 17, 40} {
		for _, rows := range []int{1, 3, 8} {
			for _, lds := range []int{0, 20, 41} {
				ldp := n + 3
				p, s := randSlice(rng, rows*ldp), randSlice(rng, rows*max(lds, n)+n)
				got := append([]float32(nil), p...)
				MulRows(rows, n, got, ldp, s, lds)
				for r := range rows {
					for j := range ldp {
						want := p[r*ldp+j]
						if j < n {
							want *= s[r*lds+j]
						}
						if got[r*ldp+j] != want {
							t.Fatalf("%d rows of %d (lds %d): [%d][%d] = %g, want %g", rows, n, lds, r, j, got[r*ldp+j], want)
						}
					}
				}
			}
		}
	}
}
