package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// gradCheck compares an analytic gradient with central finite differences of
// the scalar loss(x) for a sample of coordinates.
func gradCheck(t *testing.T, name string, x []float32, analytic []float32, loss func() float64) {
	t.Helper()
	const h = 1e-2
	worst := 0.0
	for i := range x {
		orig := x[i]
		x[i] = orig + h
		lp := loss()
		x[i] = orig - h
		lm := loss()
		x[i] = orig
		num := (lp - lm) / (2 * h)
		d := math.Abs(num-float64(analytic[i])) / math.Max(1, math.Abs(num))
		worst = max(worst, d)
		if d > 2e-3 {
			t.Fatalf("%s: d/dx[%d] = %g analytic, %g numeric", name, i, analytic[i], num)
		}
	}
	t.Logf("%s: max relative difference %.2e", name, worst)
}

// weighted returns Σ out·dout, the loss whose gradient w.r.t. out is dout.
func weighted(out, dout []float32) float64 {
	var s float64
	for i, v := range out {
		s += float64(v) * float64(dout[i])
	}
	return s
}

func TestRMSNormGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	n, c := 3, 7
	x, w, dout := randSlice(rng, n*c), randSlice(rng, c), randSlice(rng, n*c)
	out, rstd := make([]float32, n*c), make([]float32, n)
	loss := func() float64 { RMSNorm(out, rstd, x, w, n, c, 1e-5); return weighted(out, dout) }
	loss()
	dx, dw := make([]float32, n*c), make([]float32, c)
	RMSNormBackward(dx, dw, dout, x, w, rstd, n, c)
	gradCheck(t, "rmsnorm dx", x, dx, loss)
	gradCheck(t, "rmsnorm dw", w, dw, loss)

	// Each normalized row has mean square 1 (with unit weights).
	for i := range w {
		w[i] = 1
	}
	RMSNorm(out, rstd, x, w, n, c, 0)
	for i := range n {
		var ms float64
		for _, v := range out[i*c : (i+1)*c] {
			ms += float64(v * v)
		}
		if math.Abs(ms/float64(c)-1) > 1e-5 {
			t.Fatalf("row %d mean square %g", i, ms/float64(c))
		}
	}
}

func TestSoftmax(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	x, dy := randSlice(rng, 9), randSlice(rng, 9)
	y := make([]float32, 9)
	loss := func() float64 { Softmax(y, x); return weighted(y, dy) }
	loss()
	dx := make([]float32, 9)
	SoftmaxBackward(dx, dy, y)
	gradCheck(t, "softmax", x, dx, loss)

	// Huge inputs do not overflow; the result sums to 1.
	Softmax(y[:3], []float32{1000, 1001, 999})
	if s := y[0] + y[1] + y[2]; math.Abs(float64(s)-1) > 1e-6 || math.IsNaN(float64(s)) {
		t.Fatalf("softmax of large values sums to %v", s)
	}
}

// TestSoftmaxMatchesFloat64 checks the vector path (long rows) and the
// scalar tail against a float64 softmax.
func TestSoftmaxMatchesFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for _, n := range []int{1, 3, 15, 16, 17, 64, 1000, 1031} {
		x := randSlice(rng, n)
		for i := range x {
			x[i] *= 20
		}
		y := make([]float32, n)
		Softmax(y, x)
		m := math.Inf(-1)
		for _, v := range x {
			m = math.Max(m, float64(v))
		}
		var sum float64
		for _, v := range x {
			sum += math.Exp(float64(v) - m)
		}
		for i, v := range x {
			want := math.Exp(float64(v)-m) / sum
			if math.Abs(float64(y[i])-want) > 1e-6+1e-5*want {
				t.Fatalf("n=%d: softmax[%d] = %g, want %g", n, i, y[i], want)
			}
		}
	}
	// Softmax of a row whose maximum sits in the tail and in the vector part.
	x := make([]float32, 40)
	x[39], x[3] = 5, 4
	y := make([]float32, 40)
	Softmax(y, x)
	if !(y[39] > y[3] && y[3] > y[0]) {
		t.Fatalf("order lost: %v", y)
	}
	Softmax(nil, nil) // empty is fine
}

// TestSoftmaxAgainRecomputesStats checks that the two numbers SoftmaxStats
// keeps are enough to recompute its row bit for bit, and that the row is
// Softmax's: attention's backward pass recomputes its probabilities this
// way, so any difference would be a gradient of a distribution the forward
// pass never used.
func TestSoftmaxAgainRecomputesStats(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, n := range []int{1, 2, 15, 16, 17, 33, 200, 1031} {
		x := randSlice(rng, n)
		for i := range x {
			x[i] *= 30
		}
		want := make([]float32, n)
		Softmax(want, x)
		got := make([]float32, n)
		maxv, inv := SoftmaxStats(got, x)
		again := make([]float32, n)
		SoftmaxAgain(again, x, maxv, inv)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) || math.Float32bits(again[i]) != math.Float32bits(want[i]) {
				t.Fatalf("n=%d: value %d: Softmax %g, SoftmaxStats %g, SoftmaxAgain %g", n, i, want[i], got[i], again[i])
			}
		}
		in := append([]float32(nil), x...)
		SoftmaxStats(in, in) // in place, as attention runs it
		if !slices.Equal(in, want) {
			t.Fatalf("n=%d: SoftmaxStats in place differs from Softmax", n)
		}
	}
}

// TestSwiGLUBackwardLong checks the chunked backward past one chunk against
// the formula in float64.
func TestSwiGLUBackwardLong(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	n := 700
	gate, up, dout := randSlice(rng, n), randSlice(rng, n), randSlice(rng, n)
	dgate, dup := make([]float32, n), make([]float32, n)
	SwiGLUBackward(dgate, dup, dout, gate, up)
	for i := range n {
		g, u, d := float64(gate[i]), float64(up[i]), float64(dout[i])
		s := 1 / (1 + math.Exp(-g))
		if math.Abs(float64(dup[i])-d*g*s) > 1e-6 || math.Abs(float64(dgate[i])-d*u*s*(1+g*(1-s))) > 1e-6 {
			t.Fatalf("element %d: dgate %g dup %g", i, dgate[i], dup[i])
		}
	}
}

func TestSwiGLUGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	n := 11
	gate, up, dout := randSlice(rng, n), randSlice(rng, n), randSlice(rng, n)
	for i := range gate {
		gate[i] *= 4 // cover the sigmoid's curved part
	}
	out := make([]float32, n)
	loss := func() float64 { SwiGLU(out, gate, up); return weighted(out, dout) }
	loss()
	dgate, dup := make([]float32, n), make([]float32, n)
	SwiGLUBackward(dgate, dup, dout, gate, up)
	gradCheck(t, "swiglu dgate", gate, dgate, loss)
	gradCheck(t, "swiglu dup", up, dup, loss)
}

func TestRoPE(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	heads, d := 2, 8
	r := NewRoPE(d, 16, 10000)
	pos := []int{0, 3, 15}
	x := randSlice(rng, len(pos)*heads*d)
	orig := append([]float32(nil), x...)
	r.Apply(x, pos, heads)
	// Position 0 is the identity; rotation keeps each pair's length.
	for i := range heads * d {
		if x[i] != orig[i] {
			t.Fatalf("position 0 changed element %d", i)
		}
	}
	for i := 0; i < len(x); i += d {
		for j := range d / 2 {
			a := math.Hypot(float64(x[i+j]), float64(x[i+j+d/2]))
			b := math.Hypot(float64(orig[i+j]), float64(orig[i+j+d/2]))
			if math.Abs(a-b) > 1e-5 {
				t.Fatalf("rotation changed a pair's length: %g vs %g", a, b)
			}
		}
	}
	// The rotate_half convention, checked by hand for one pair: position 3,
	// frequency index 1 of head size 8: angle 3·10000^(-2/8).
	ang := 3 * math.Pow(10000, -2.0/8)
	x1, x2 := float64(orig[heads*d+1]), float64(orig[heads*d+1+4])
	if got, want := float64(x[heads*d+1]), x1*math.Cos(ang)-x2*math.Sin(ang); math.Abs(got-want) > 1e-5 {
		t.Fatalf("rotated value %g, want %g", got, want)
	}
	// Backward of a linear map: <Apply(x), dy> = <x, Backward(dy)>.
	dy := randSlice(rng, len(x))
	lhs := weighted(x, dy)
	r.Backward(dy, pos, heads)
	if rhs := weighted(orig, dy); math.Abs(lhs-rhs) > 1e-4 {
		t.Fatalf("backward is not the adjoint: %g vs %g", lhs, rhs)
	}
}

// Without a scaling the tables are plain RoPE's, bit for bit: cos and sin
// of pos·θ^(−2i/d), each rounded once to float32.
func TestRoPEUnscaledTables(t *testing.T) {
	for _, shape := range []struct {
		d, maxPos int
		theta     float64
	}{{8, 16, 10000}, {64, 300, 500000}} {
		d, half := shape.d, shape.d/2
		for name, r := range map[string]*RoPE{
			"NewRoPE":                   NewRoPE(d, shape.maxPos, shape.theta),
			"NewScaledRoPE, zero value": NewScaledRoPE(d, shape.maxPos, shape.theta, RopeScaling{}),
		} {
			for p := range shape.maxPos {
				for i := range half {
					a := float64(p) * (1 / math.Pow(shape.theta, float64(2*i)/float64(d)))
					if c, s := float32(math.Cos(a)), float32(math.Sin(a)); r.cos[p*half+i] != c || r.sin[p*half+i] != s {
						t.Fatalf("%s, head size %d: position %d pair %d holds cos %g sin %g, want %g %g",
							name, d, p, i, r.cos[p*half+i], r.sin[p*half+i], c, s)
					}
				}
			}
		}
	}
}

// llama3Freq is Hugging Face's _compute_llama3_parameters for one
// frequency, written out apart from RopeScaling.Divisor: the scaled
// frequency and the band freq lies in.
func llama3Freq(freq float64, s RopeScaling) (scaled float64, band string) {
	orig := float64(s.OriginalMaxPos)
	wavelen := 2 * math.Pi / freq
	switch {
	case wavelen < orig/s.HighFreqFactor:
		return freq, "high"
	case wavelen > orig/s.LowFreqFactor:
		return freq / s.Factor, "low"
	}
	smooth := (orig/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
	return (1-smooth)*freq/s.Factor + smooth*freq, "medium"
}

// With Llama 3.2 1B's scaling, the frequencies and the tables built from
// them follow the llama3 rule in each of its three bands.
func TestScaledRoPEFrequencies(t *testing.T) {
	const d, maxPos, theta = 64, 100, 500000.0
	s := RopeScaling{Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 8192}
	r := NewScaledRoPE(d, maxPos, theta, s)
	freqs := RoPEFreqs(d, theta, s)
	for _, tc := range []struct {
		i    int
		band string
	}{
		{0, "high"}, {7, "high"}, {14, "high"},
		{15, "medium"}, {16, "medium"}, {17, "medium"},
		{18, "low"}, {25, "low"}, {31, "low"},
	} {
		base := math.Pow(theta, -float64(2*tc.i)/d)
		want, band := llama3Freq(base, s)
		if band != tc.band {
			t.Fatalf("pair %d is in the %s band, want a case of the %s band", tc.i, band, tc.band)
		}
		if band == "medium" && !(base/s.Factor < want && want < base) {
			t.Fatalf("pair %d: interpolated frequency %g is not between %g and %g", tc.i, want, base/s.Factor, base)
		}
		if got := freqs[tc.i]; math.Abs(got-want) > 1e-12*want {
			t.Errorf("pair %d (%s band): frequency %g, want %g", tc.i, band, got, want)
		}
		for _, p := range []int{1, 37, maxPos - 1} {
			at := p*d/2 + tc.i
			c, sn := math.Cos(float64(p)*want), math.Sin(float64(p)*want)
			if math.Abs(float64(r.cos[at])-c) > 1e-6 || math.Abs(float64(r.sin[at])-sn) > 1e-6 {
				t.Errorf("pair %d (%s band), position %d: cos %g sin %g, want %g %g", tc.i, band, p, r.cos[at], r.sin[at], c, sn)
			}
		}
	}
}

func TestBiasAndVectorOps(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6}
	AddBias(x, []float32{10, 20, 30}, 2, 3)
	if x[0] != 11 || x[5] != 36 {
		t.Fatalf("AddBias: %v", x)
	}
	db := make([]float32, 3)
	BiasBackward(db, []float32{1, 2, 3, 4, 5, 6}, 2, 3)
	if db[0] != 5 || db[2] != 9 {
		t.Fatalf("BiasBackward: %v", db)
	}
	y := []float32{1, 1}
	Axpy(2, []float32{3, 4}, y)
	Scale(0.5, y)
	if y[0] != 3.5 || y[1] != 4.5 || Dot(y, []float32{2, 2}) != 16 {
		t.Fatalf("Axpy/Scale/Dot: %v", y)
	}
}

func TestSoftmaxRowBackward(t *testing.T) {
	rng := newTestRand()
	for _, n := range []int{1, 7, 16, 17, 31, 32, 33, 100, 1000} {
		d, p := randSlice(rng, n), randSlice(rng, n)
		var dot float64
		for i := range d {
			dot += float64(d[i]) * float64(p[i])
		}
		want := make([]float32, n)
		for i := range want {
			want[i] = float32(float64(p[i]) * (float64(d[i]) - dot) * 0.25)
		}
		SoftmaxRowBackward(d, p, 0.25)
		closeEnough(t, fmt.Sprintf("SoftmaxRowBackward of %d", n), d, want, n)
	}
}

// Scale's vector kernel multiplies as the scalar loop does, bit for bit,
// at every length (whole blocks of 16 and the rest), and leaves the
// values past x alone.
func TestScaleMatchesScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for n := range 70 {
		buf := make([]float32, n+1)
		for i := range buf {
			buf[i] = float32(rng.NormFloat64() * 100)
		}
		want := slices.Clone(buf)
		alpha := float32(rng.Float64()*3 - 1)
		for i := range want[:n] {
			want[i] *= alpha
		}
		Scale(alpha, buf[:n])
		for i := range buf {
			if math.Float32bits(buf[i]) != math.Float32bits(want[i]) {
				t.Fatalf("n=%d: value %d is %g, want %g", n, i, buf[i], want[i])
			}
		}
	}
}
