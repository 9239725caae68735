package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestF16RoundTripsEveryHalf(t *testing.T) {
	for h := range 1 << 16 {
		x := F16ToF32(uint16(h))
		back := F32ToF16(x)
		if math.IsNaN(float64(x)) {
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("%#04x widens to %g, which narrows to %#04x", h, x, back)
		}
	}
}

// F32ToF16 picks the nearest half, ties to even, as VCVTPS2PH does.
func TestF32ToF16RoundsToNearestEven(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	check := func(x float32) {
		h := F32ToF16(x)
		got := float64(F16ToF32(h))
		if math.IsInf(got, 0) {
			if math.Abs(float64(x)) < 65520 {
				t.Fatalf("%g became %g", x, got)
			}
			return
		}
		d := math.Abs(got - float64(x))
		for _, nb := range []uint16{h - 1, h + 1} {
			if nb&0x7c00 == 0x7c00 || (nb^h)&0x8000 != 0 {
				continue
			}
			dn := math.Abs(float64(F16ToF32(nb)) - float64(x))
			if dn < d || dn == d && h&1 == 1 {
				t.Fatalf("%g became %#04x (%g); %#04x (%g) is nearer or even", x, h, got, nb, F16ToF32(nb))
			}
		}
	}
	for range 200000 {
		check(float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(12)-8))))
	}
	for h := range 1<<15 - 1 { // the midpoints between neighbours
		lo, hi := float64(F16ToF32(uint16(h))), float64(F16ToF32(uint16(h+1)))
		if !math.IsInf(hi, 0) {
			check(float32((lo + hi) / 2))
		}
	}
	if F32ToF16(1e6) != 0x7c00 || F32ToF16(-1e6) != 0xfc00 || F32ToF16(1e-9) != 0 {
		t.Error("overflow or underflow")
	}
}

func TestVecMatHeadsF16MatchesVecMat(t *testing.T) {
	rng := newTestRand()
	for _, heads := range []int{1, 2, 3, 4, 5, 7, 8} {
		for _, sh := range [][2]int{{1, 16}, {7, 32}, {32, 16}, {16, 48}, {5, 8}, {16, 33}} {
			k, n := sh[0], sh[1]
			for _, chain := range []bool{false, true} {
				lda, ldb, ldc := k+1, n+3, n+2
				ldbh := k * ldb
				a := randSlice(rng, heads*lda)
				wide := randSlice(rng, heads*ldbh+ldb)
				half := make([]uint16, len(wide))
				for i, v := range wide {
					half[i] = F32ToF16(v)
					wide[i] = F16ToF32(half[i])
				}
				c0 := randSlice(rng, heads*ldc)
				got := append([]float32(nil), c0...)
				VecMatHeadsF16(heads, got, ldc, a, lda, half, ldbh, ldb, k, n, chain)
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
