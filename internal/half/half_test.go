package half

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestRoundTripsEveryHalf(t *testing.T) {
	for h := range 1 << 16 {
		x := ToFloat32(uint16(h))
		back := FromFloat32(x)
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

// FromFloat32 picks the nearest half, ties to even, as VCVTPS2PH does.
func TestFromFloat32RoundsToNearestEven(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	check := func(x float32) {
		h := FromFloat32(x)
		got := float64(ToFloat32(h))
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
			dn := math.Abs(float64(ToFloat32(nb)) - float64(x))
			if dn < d || dn == d && h&1 == 1 {
				t.Fatalf("%g became %#04x (%g); %#04x (%g) is nearer or even", x, h, got, nb, ToFloat32(nb))
			}
		}
	}
	for range 200000 {
		check(float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(12)-8))))
	}
	for h := range 1<<15 - 1 { // the midpoints between neighbours
		lo, hi := float64(ToFloat32(uint16(h))), float64(ToFloat32(uint16(h+1)))
		if !math.IsInf(hi, 0) {
			check(float32((lo + hi) / 2))
		}
	}
	if FromFloat32(1e6) != 0x7c00 || FromFloat32(-1e6) != 0xfc00 || FromFloat32(1e-9) != 0 {
		t.Error("overflow or underflow")
	}
}
