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

// BF16FromFloat32 rounds to nearest, ties to even, flushes subnormals to
// zero and keeps NaNs quiet, as VCVTNEPS2BF16 does.
func TestBF16FromFloat32(t *testing.T) {
	for _, c := range []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // a tie below an even neighbour: down
		{0x3f818000, 0x3f82}, // a tie below an odd one: up
		{0x3f808001, 0x3f81}, // past the tie: up
		{0x3f807fff, 0x3f80}, // short of it: down
		{0x7f7fffff, 0x7f80}, // the largest float32 rounds past the largest bfloat16
		{0x00400000, 0x0000}, // a subnormal: zero
		{0x80400000, 0x8000}, // keeping its sign
		{0xff800000, 0xff80}, // -Inf
		{0x7f800001, 0x7fc0}, // a signalling NaN comes back quiet
	} {
		if got := BF16FromFloat32(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("%#08x: got %#04x, want %#04x", c.in, got, c.want)
		}
	}
	rng := rand.New(rand.NewPCG(2, 2))
	for range 100000 {
		x := float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(20)-10)))
		h := BF16FromFloat32(x)
		if d, bound := math.Abs(float64(BF16ToFloat32(h)-x)), math.Abs(float64(x))/256; d > bound {
			t.Fatalf("%g became %g: off by %g, more than half a unit (%g)", x, BF16ToFloat32(h), d, bound)
		}
	}
}
