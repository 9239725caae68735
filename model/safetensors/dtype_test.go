package safetensors

import (
	"github.com/braid-dev/braid/internal/half"
	"math"
	"testing"
)

func TestFloat16ToFloat32(t *testing.T) {
	tests := []struct {
		name string
		bits uint16
		want float32
	}{
		{"one", 0x3c00, 1},
		{"minus two and a half", 0xc100, -2.5},
		{"largest finite", 0x7bff, 65504},
		{"smallest normal", 0x0400, 0x1p-14},
		{"smallest subnormal", 0x0001, 0x1p-24},
		{"largest subnormal", 0x03ff, 1023 * 0x1p-24},
		{"negative subnormal", 0x8001, -0x1p-24},
		{"one third rounded", 0x3555, 0.333251953125},
		{"zero", 0x0000, 0},
		{"infinity", 0x7c00, float32(math.Inf(1))},
		{"minus infinity", 0xfc00, float32(math.Inf(-1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := half.ToFloat32(tt.bits); got != tt.want {
				t.Errorf("half.ToFloat32(%#04x) = %g, want %g", tt.bits, got, tt.want)
			}
		})
	}
	t.Run("minus zero", func(t *testing.T) {
		if got := half.ToFloat32(0x8000); got != 0 || !math.Signbit(float64(got)) {
			t.Errorf("half.ToFloat32(0x8000) = %g, want -0", got)
		}
	})
	t.Run("NaN keeps its sign and payload", func(t *testing.T) {
		for _, bits := range []uint16{0x7e00, 0x7c01, 0xfe00, 0x7fff} {
			want := uint32(bits&0x8000)<<16 | 0x7f800000 | uint32(bits&0x3ff)<<13
			if got := math.Float32bits(half.ToFloat32(bits)); got != want {
				t.Errorf("half.ToFloat32(%#04x) has bits %#08x, want %#08x", bits, got, want)
			}
		}
	})
}

// TestFloat16ToFloat32All checks every half against the definition of the
// format evaluated in float64: (-1)^s × 2^(e-15) × 1.m, or 2^-14 × 0.m for
// subnormals.
func TestFloat16ToFloat32All(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		exp := int(h>>10) & 0x1f
		mant := float64(h & 0x3ff)
		var want float64
		switch exp {
		case 0x1f:
			if mant != 0 {
				continue // NaN, checked above
			}
			want = math.Inf(int(sign))
		case 0:
			want = sign * math.Ldexp(mant/1024, -14)
		default:
			want = sign * math.Ldexp(1+mant/1024, exp-15)
		}
		got := half.ToFloat32(h)
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("half.ToFloat32(%#04x) = %g, want %g", h, got, want)
		}
	}
}

func TestBFloat16ToFloat32(t *testing.T) {
	tests := []struct {
		name string
		bits uint16
		want float32
	}{
		{"one", 0x3f80, 1},
		{"minus two and a half", 0xc020, -2.5},
		// 65504 is not a bfloat16; the nearest below it is 65280.
		{"65280", 0x477f, 65280},
		{"largest finite", 0x7f7f, 0x1.fep127},
		{"smallest normal", 0x0080, 0x1p-126},
		{"smallest subnormal", 0x0001, 0x1p-133},
		{"infinity", 0x7f80, float32(math.Inf(1))},
		{"minus infinity", 0xff80, float32(math.Inf(-1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bfloat16ToFloat32(tt.bits); got != tt.want {
				t.Errorf("bfloat16ToFloat32(%#04x) = %g, want %g", tt.bits, got, tt.want)
			}
		})
	}
	t.Run("minus zero", func(t *testing.T) {
		if got := bfloat16ToFloat32(0x8000); got != 0 || !math.Signbit(float64(got)) {
			t.Errorf("bfloat16ToFloat32(0x8000) = %g, want -0", got)
		}
	})
	t.Run("NaN", func(t *testing.T) {
		if got := bfloat16ToFloat32(0x7fc0); !math.IsNaN(float64(got)) {
			t.Errorf("bfloat16ToFloat32(0x7fc0) = %g, want NaN", got)
		}
	})
}
