package gguf

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	braidtensor "github.com/braid-dev/braid/tensor"
)

// The RoPE scaling read back from rope_freqs.weight gives every rotary
// frequency the scaling that wrote it gives, for Llama 3.1's and 3.2's
// parameters on their head size and on heads so small that none or one
// frequency falls between the bands.
func TestRopeScalingFromFactors(t *testing.T) {
	for _, tc := range []struct {
		headDim int
		theta   float64
		s       braidtensor.RopeScaling
	}{
		{128, 500000, braidtensor.RopeScaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 8192}},   // Llama 3.1
		{64, 500000, braidtensor.RopeScaling{Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 8192}},   // Llama 3.2 1B
		{8, 10000, braidtensor.RopeScaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 1024}},      // one between
		{8, 10000, braidtensor.RopeScaling{Factor: 4, LowFreqFactor: 2, HighFreqFactor: 3, OriginalMaxPos: 100000}},    // none between
		{16, 10000, braidtensor.RopeScaling{Factor: 2.5, LowFreqFactor: 0.5, HighFreqFactor: 7, OriginalMaxPos: 4096}}, // several
	} {
		base := braidtensor.RoPEFreqs(tc.headDim, tc.theta, braidtensor.RopeScaling{})
		factors := make([]float32, len(base))
		for i, f := range base {
			factors[i] = float32(tc.s.Divisor(f))
		}
		got, err := ropeScaling(tc.headDim, tc.theta, factors)
		if err != nil {
			t.Fatalf("%+v: %v", tc.s, err)
		}
		want := braidtensor.RoPEFreqs(tc.headDim, tc.theta, tc.s)
		for i, f := range braidtensor.RoPEFreqs(tc.headDim, tc.theta, got) {
			if math.Abs(f-want[i]) > 1e-6*want[i] {
				t.Errorf("%+v: frequency %d is %g read back, %g written", tc.s, i, f, want[i])
			}
		}
	}

	// All ones: no scaling at all.
	if got, err := ropeScaling(8, 10000, []float32{1, 1, 1, 1}); err != nil || got != (braidtensor.RopeScaling{}) {
		t.Errorf("factors of 1: %+v, %v; want no scaling", got, err)
	}
}

// Factors no Llama 3 scaling gives are refused rather than run wrongly.
func TestRopeScalingRefusesOtherFactors(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]float32, 32)
	for i := range random {
		random[i] = 1 + 7*rng.Float32()
	}
	for _, tc := range []struct {
		name    string
		headDim int
		factors []float32
		want    string
	}{
		{"below 1", 8, []float32{1, 0.5, 2, 2}, "at least 1"},
		{"NaN", 8, []float32{1, float32(math.NaN()), 2, 2}, "at least 1"},
		{"random", 64, random, "not Llama 3's scaling"},
		{"rising", 8, []float32{8, 4, 2, 1}, "not Llama 3's scaling"},
		{"count", 8, []float32{1, 2}, "2 factors for 4"},
	} {
		if _, err := ropeScaling(tc.headDim, 10000, tc.factors); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %s", tc.name, err, tc.want)
		}
	}
}
