package tensor

import (
	"math"
	"testing"
)

func ulpDiff(a, b float32) int64 {
	ia, ib := int64(math.Float32bits(a)), int64(math.Float32bits(b))
	if ia > ib {
		return ia - ib
	}
	return ib - ia
}

func TestExpAccuracy(t *testing.T) {
	worst := int64(0)
	for x := float32(-87); x < 88.5; x += 0.0137 {
		got, want := Exp(x), float32(math.Exp(float64(x)))
		if d := ulpDiff(got, want); d > worst {
			worst = d
		}
	}
	if worst > 2 {
		t.Fatalf("Exp is %d ulp from math.Exp at worst", worst)
	}
	for _, tc := range []struct{ x, want float32 }{
		{0, 1}, {100, float32(math.Inf(1))}, {-110, 0}, {float32(math.Inf(-1)), 0},
	} {
		if got := Exp(tc.x); got != tc.want {
			t.Errorf("Exp(%v) = %v, want %v", tc.x, got, tc.want)
		}
	}
	if nan := Exp(float32(math.NaN())); nan == nan {
		t.Error("Exp(NaN) is not NaN")
	}
	t.Logf("worst error %d ulp", worst)
}

func BenchmarkExp(b *testing.B) {
	xs := make([]float32, 1024)
	for i := range xs {
		xs[i] = float32(i%200)/10 - 10
	}
	out := make([]float32, len(xs))
	b.Run("tensor", func(b *testing.B) {
		for b.Loop() {
			for i, x := range xs {
				out[i] = Exp(x)
			}
		}
	})
	b.Run("math", func(b *testing.B) {
		for b.Loop() {
			for i, x := range xs {
				out[i] = float32(math.Exp(float64(x)))
			}
		}
	})
}

func TestExpSliceMatchesExp(t *testing.T) {
	var src []float32
	for x := float32(-110); x < 95; x += 0.0731 {
		src = append(src, x)
	}
	src = append(src, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 0, float32(math.Copysign(0, -1)))
	dst := make([]float32, len(src))
	ExpSlice(dst, src)
	for i, x := range src {
		got, want := dst[i], Exp(x)
		switch {
		case want != want:
			if got == got {
				t.Fatalf("exp(%v) = %v, want NaN", x, got)
			}
		case want < 1e-37:
			// Subnormal results: the vector kernel scales in one step, the
			// scalar in two, so they may round differently.
			if math.Abs(float64(got-want)) > 1e-44 {
				t.Fatalf("exp(%v) = %v, want %v", x, got, want)
			}
		case ulpDiff(got, want) > 1:
			t.Fatalf("exp(%v) = %v, scalar %v", x, got, want)
		}
	}
	// In place, odd lengths.
	odd := []float32{1, 2, 3}
	ExpSlice(odd, odd)
	if ulpDiff(odd[2], float32(math.Exp(3))) > 1 {
		t.Fatalf("in place: %v", odd)
	}
}
