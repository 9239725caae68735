package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func tinyConfig() Config {
	return Config{Vocab: 13, Dim: 8, Hidden: 12, Layers: 2, Heads: 2, KVHeads: 1, HeadDim: 4, MaxSeq: 8,
		NormEps: 1e-5, RopeTheta: 10000}
}

func randomBatch(rng *rand.Rand, c Config, B, T int) (tokens, targets []int) {
	tokens = make([]int, B*T)
	targets = make([]int, B*T)
	for i := range tokens {
		tokens[i] = rng.IntN(c.Vocab)
		targets[i] = rng.IntN(c.Vocab)
	}
	targets[1] = -1 // a position without a target
	return tokens, targets
}

// numericGrad is d loss / d x[i] by central differences with Richardson
// extrapolation, (4·D(h/2) − D(h))/3, which cancels the h² error term.
func numericGrad(loss func() float64, x []float32, i int, h float32) float64 {
	diff := func(h float32) float64 {
		orig := x[i]
		x[i] = orig + h
		lp := loss()
		x[i] = orig - h
		lm := loss()
		x[i] = orig
		return (lp - lm) / (2 * float64(h))
	}
	return (4*diff(h/2) - diff(h)) / 3
}

// checkLossGradients checks Backward against numericGrad of Forward's loss
// at step h, on a random batch of B sequences of T tokens, for samples
// coordinates of every tensor.
func checkLossGradients(t *testing.T, m *Model, rng *rand.Rand, B, T, samples int, h float32) {
	t.Helper()
	tokens, targets := randomBatch(rng, m.Config, B, T)
	a := m.NewActivations(B, T)
	loss := func() float64 {
		l, err := m.Forward(a, tokens, targets)
		if err != nil {
			t.Fatal(err)
		}
		return float64(l)
	}
	loss()
	g := NewParams(m.Config)
	if err := m.Backward(a, g); err != nil {
		t.Fatal(err)
	}
	compareSampled(t, m, g, loss, rng, samples, h, 3e-4, nil)
}

// compareSampled checks the gradients g against numericGrad of loss at
// step h, for samples coordinates of every tensor of m that only accepts
// (nil: all), each within abs plus 3% of the numeric value.
func compareSampled(t *testing.T, m *Model, g *Params, loss func() float64, rng *rand.Rand, samples int, h float32, abs float64, only func(Tensor) bool) {
	t.Helper()
	grads := g.Tensors()
	for ti, tn := range m.Params.Tensors() {
		if only != nil && !only(tn) {
			continue
		}
		worst := 0.0
		for range samples {
			i := rng.IntN(len(tn.Data))
			num := numericGrad(loss, tn.Data, i, h)
			ana := float64(grads[ti].Data[i])
			d := math.Abs(num - ana)
			worst = max(worst, d)
			if d > abs+3e-2*math.Abs(num) {
				t.Fatalf("%s[%d]: analytic %g, numeric %g", tn.Name, i, ana, num)
			}
		}
		t.Logf("%-45s max |diff| %.1e", tn.Name, worst)
	}
}

// TestGradientsMatchFiniteDifferences checks Backward against central
// differences of Forward's loss for sampled coordinates of every tensor.
func TestGradientsMatchFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		T    int
	}{
		{"llama-gqa", func(*Config) {}, 5},
		{"qwen2-bias-tied", func(c *Config) { c.QKVBias, c.TiedEmbeddings = true, true }, 5},
		{"four-heads-two-groups", func(c *Config) { c.Heads, c.KVHeads, c.Dim = 4, 2, 12 }, 5},
		// Long enough that the products fill whole register tiles, with as
		// many key/value heads as query heads.
		{"mha-long", func(c *Config) { c.KVHeads, c.MaxSeq = 2, 24 }, 19},
		// Longer than one block of attention rows (attnBlock).
		{"several-attention-blocks", func(c *Config) { c.MaxSeq = 128 }, 2*attnBlock + 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tinyConfig()
			tc.edit(&c)
			m, err := New(c)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(7, 7))
			m.Params.Init(rng, 0.3)
			for _, tn := range m.Params.Tensors() {
				if tn.Kind != KindMatrix {
					for i := range tn.Data { // move norms and biases off their initial values
						tn.Data[i] += float32(rng.NormFloat64() * 0.2)
					}
				}
			}
			// Longer sequences make the loss curved enough for plain
			// differences at h = 0.01 to miss by several percent, and
			// float32 forbids a much smaller h.
			checkLossGradients(t, m, rng, 2, tc.T, 6, 1e-2)
		})
	}
}

func TestTiedEmbeddingsShareStorage(t *testing.T) {
	c := tinyConfig()
	c.TiedEmbeddings = true
	p := NewParams(c)
	p.Embed[3] = 5
	if p.LMHead[3] != 5 {
		t.Fatal("LMHead is not Embed")
	}
	for _, tn := range p.Tensors() {
		if tn.Name == "lm_head.weight" {
			t.Fatal("a tied model lists lm_head.weight")
		}
	}
	want := c.Vocab*c.Dim + c.Layers*(2*c.Dim+c.qDim()*c.Dim+2*c.kvDim()*c.Dim+c.Dim*c.qDim()+3*c.Hidden*c.Dim) + c.Dim
	if p.Count() != want {
		t.Fatalf("%d parameters, want %d", p.Count(), want)
	}
}

func TestForwardRejectsBadInput(t *testing.T) {
	m, _ := New(tinyConfig())
	a := m.NewActivations(1, 4)
	for name, tc := range map[string]struct{ tokens, targets []int }{
		"short":        {[]int{1, 2, 3}, nil},
		"token range":  {[]int{1, 2, 3, 13}, nil},
		"target range": {[]int{1, 2, 3, 4}, []int{1, 2, 3, 99}},
		"target count": {[]int{1, 2, 3, 4}, []int{1}},
	} {
		if _, err := m.Forward(a, tc.tokens, tc.targets); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := m.Forward(a, []int{1, 2, 3, 4}, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Backward(a, NewParams(m.Config)); err != ErrNoTargets {
		t.Fatalf("Backward without targets: %v", err)
	}
	// One Backward per Forward: the second finds no targets.
	if _, err := m.Forward(a, []int{1, 2, 3, 4}, []int{1, -1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	g := NewParams(m.Config)
	if err := m.Backward(a, g); err != nil {
		t.Fatal(err)
	}
	if err := m.Backward(a, g); err != ErrNoTargets {
		t.Fatalf("second Backward: %v", err)
	}
	// A bad target is refused before anything is computed.
	if _, err := m.Forward(a, []int{1, 2, 3, 4}, []int{1, -2, 2, 3}); err == nil {
		t.Error("target -2 accepted")
	}
	long := m.NewActivations(1, 9)
	if _, err := m.Forward(long, make([]int, 9), nil); err == nil {
		t.Error("a sequence longer than MaxSeq was accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	for name, edit := range map[string]func(*Config){
		"heads":    func(c *Config) { c.KVHeads = 3 },
		"odd head": func(c *Config) { c.HeadDim = 5 },
		"zero dim": func(c *Config) { c.Dim = 0 },
		"eps":      func(c *Config) { c.NormEps = 0 },
		"theta":    func(c *Config) { c.RopeTheta = 0 },
	} {
		c := tinyConfig()
		edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestCausality: a token's logits do not depend on later tokens.
func TestCausality(t *testing.T) {
	m, _ := New(tinyConfig())
	m.Params.Init(rand.New(rand.NewPCG(1, 1)), 0.3)
	a := m.NewActivations(1, 6)
	toks := []int{1, 2, 3, 4, 5, 6}
	m.Forward(a, toks, nil)
	before := append([]float32(nil), a.Logits(2, 13)...)
	toks[4], toks[5] = 9, 10
	m.Forward(a, toks, nil)
	for i, v := range a.Logits(2, 13) {
		if v != before[i] {
			t.Fatalf("logit %d of position 2 changed when later tokens changed", i)
		}
	}
}

// Activations reshaped from a larger batch compute what fresh ones do.
func TestReshapedActivations(t *testing.T) {
	c := Config{Vocab: 50, Dim: 16, Hidden: 24, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 4, MaxSeq: 64, NormEps: 1e-5, RopeTheta: 10000}
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	m.Params.Init(rng, 0.1)
	shared := m.NewActivationsCap(64, 32)
	for _, sh := range [][2]int{{2, 32}, {3, 7}, {1, 20}, {8, 8}} {
		B, T := sh[0], sh[1]
		tokens, targets := randomBatch(rng, c, B, T)
		fresh := m.NewActivations(B, T)
		want, err := m.Forward(fresh, tokens, targets)
		if err != nil {
			t.Fatal(err)
		}
		gw := NewParams(c)
		if err := m.Backward(fresh, gw); err != nil {
			t.Fatal(err)
		}
		if err := shared.Reshape(B, T); err != nil {
			t.Fatal(err)
		}
		got, err := m.Forward(shared, tokens, targets)
		if err != nil {
			t.Fatal(err)
		}
		gg := NewParams(c)
		if err := m.Backward(shared, gg); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%dx%d: loss %g reshaped, %g fresh", B, T, got, want)
		}
		for i, v := range gw.Data() {
			if gg.Data()[i] != v {
				t.Fatalf("%dx%d: gradient %d is %g reshaped, %g fresh", B, T, i, gg.Data()[i], v)
			}
		}
	}
	if err := shared.Reshape(3, 32); err == nil {
		t.Error("a batch over the capacity was accepted")
	}
}

// TestWeightedGradient checks BackwardWeighted against central differences
// of Σ w·(−log p(target)) built from TargetLogprobs, with weights of both
// signs (advantages are): at temperature 1, at a sampler's lower one, and
// with positions restricted to allowed tokens as an environment's mask
// restricts a sampler (one position to its target alone).
func TestWeightedGradient(t *testing.T) {
	c := tinyConfig()
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 9))
	m.Params.Init(rng, 0.3)
	B, T := 2, 6
	tokens, targets := randomBatch(rng, c, B, T)
	w := make([]float32, B*T)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	w[4] = 0
	allowed := make([][]int, B*T)
	for i, tg := range targets {
		switch {
		case tg < 0 || i%3 == 0: // free
		case i%3 == 1:
			allowed[i] = []int{tg} // forced
		default:
			for id := range c.Vocab {
				if id == tg || rng.IntN(2) == 0 {
					allowed[i] = append(allowed[i], id)
				}
			}
		}
	}
	a := m.NewActivations(B, T)
	for _, tc := range []struct {
		temp    float64
		allowed [][]int
	}{{1, nil}, {0.6, nil}, {0.6, allowed}} {
		temp := tc.temp
		if err := a.SetTemperature(temp); err != nil {
			t.Fatal(err)
		}
		a.SetAllowed(tc.allowed)
		var lp []float32
		objective := func() float64 {
			if _, err := m.Forward(a, tokens, targets); err != nil {
				t.Fatal(err)
			}
			lp, err = a.TargetLogprobs(lp, c.Vocab)
			if err != nil {
				t.Fatal(err)
			}
			var s float64
			for i, v := range lp {
				s -= float64(w[i]) * float64(v)
			}
			return s
		}
		objective()
		if lp[1] != 0 {
			t.Errorf("a position without a target has log-probability %g", lp[1])
		}
		// The probabilities are the sampler's: log softmax(logits/temp)
		// over the allowed tokens.
		want := append([]float32(nil), lp...)
		if _, err := m.Forward(a, tokens, nil); err != nil {
			t.Fatal(err)
		}
		for i, tg := range targets {
			if tg < 0 {
				continue
			}
			logits := a.Logits(i, c.Vocab)
			var z float64
			for id, v := range logits {
				if tc.allowed == nil || tc.allowed[i] == nil || slices.Contains(tc.allowed[i], id) {
					z += math.Exp(float64(v) / temp)
				}
			}
			if got := float64(logits[tg])/temp - math.Log(z); math.Abs(got-float64(want[i])) > 1e-4 {
				t.Fatalf("temperature %g, position %d: log-probability %g, want %g", temp, i, want[i], got)
			}
		}
		objective()
		g := NewParams(c)
		if err := m.BackwardWeighted(a, g, w); err != nil {
			t.Fatal(err)
		}
		grads := g.Tensors()
		for ti, tn := range m.Params.Tensors() {
			for range 4 {
				i := rng.IntN(len(tn.Data))
				orig := tn.Data[i]
				const h = 5e-3
				tn.Data[i] = orig + h
				up := objective()
				tn.Data[i] = orig - h
				down := objective()
				tn.Data[i] = orig
				num, ana := (up-down)/(2*h), float64(grads[ti].Data[i])
				if math.Abs(num-ana) > 5e-4+3e-2*math.Abs(num) {
					t.Fatalf("temperature %g, masked %v, %s[%d]: analytic %g, numeric %g", temp, tc.allowed != nil, tn.Name, i, ana, num)
				}
			}
		}
	}
	// A forced token is certain: no gradient flows from it, whatever its
	// weight.
	forced := slices.IndexFunc(allowed, func(ids []int) bool { return len(ids) == 1 })
	only := make([]float32, B*T)
	only[forced] = 5
	a.SetAllowed(allowed)
	if _, err := m.Forward(a, tokens, targets); err != nil {
		t.Fatal(err)
	}
	g := NewParams(c)
	if err := m.BackwardWeighted(a, g, only); err != nil {
		t.Fatal(err)
	}
	for _, v := range g.Data() {
		if v != 0 {
			t.Fatalf("a forced token moved the model (gradient entry %g)", v)
		}
	}
	for _, bad := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		if err := a.SetTemperature(bad); err == nil {
			t.Errorf("temperature %g was taken", bad)
		}
	}
	for name, bad := range map[string][][]int{
		"too few positions":      allowed[:3],
		"a token outside":        append(slices.Clone(allowed[:B*T-1]), []int{c.Vocab}),
		"a target not among its": func() [][]int { x := slices.Clone(allowed); x[0] = []int{(targets[0] + 1) % c.Vocab}; return x }(),
	} {
		a.SetAllowed(bad)
		if _, err := m.Forward(a, tokens, targets); err == nil {
			t.Errorf("allowed tokens with %s were taken", name)
		}
	}
	a.SetAllowed(nil)
	if err := m.BackwardWeighted(a, g, w[:3]); err == nil {
		t.Error("weights of the wrong length were taken")
	}
}

// BF16 products change the loss and the gradient only by bfloat16's
// rounding: the loss within half a percent, the gradient pointing the
// same way, on a shape large enough to run whole AMX tiles.
func TestBF16ProductsTrackFloat32(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headDim int
		T       int
	}{
		// Heads of 16 keep attention in float32; heads of 32 run it on
		// AMX tiles where the CPU has them, over several blocks of rows
		// and a ragged last one.
		{"float32-attention", 16, 40},
		{"attention-on-tiles", 32, 2*attnTileBlock + 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Vocab: 200, Dim: 64, Hidden: 160, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: tc.headDim, MaxSeq: 80,
				NormEps: 1e-5, RopeTheta: 10000}
			m, err := New(c)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(11, 12))
			m.Params.Init(rng, 0.1)
			B, T := 3, tc.T
			tokens, targets := randomBatch(rng, c, B, T)
			a := m.NewActivations(B, T)
			run := func(bf16 bool) (float32, *Params) {
				m.BF16 = bf16
				loss, err := m.Forward(a, tokens, targets)
				if err != nil {
					t.Fatal(err)
				}
				g := NewParams(c)
				if err := m.Backward(a, g); err != nil {
					t.Fatal(err)
				}
				return loss, g
			}
			loss32, g32 := run(false)
			loss16, g16 := run(true)
			t.Logf("attention on tiles: %v", m.attentionOnTiles())
			if d := math.Abs(float64(loss16-loss32)) / float64(loss32); d > 0.005 {
				t.Errorf("loss %g with bf16 products, %g in float32: %.2f%% apart", loss16, loss32, 100*d)
			}
			// Every tensor's gradient points where float32's does, the
			// attention projections' included.
			t16 := g16.Tensors()
			for i, tn := range g32.Tensors() {
				var dot, n32, n16 float64
				for j, v := range tn.Data {
					w := t16[i].Data[j]
					dot += float64(v) * float64(w)
					n32 += float64(v) * float64(v)
					n16 += float64(w) * float64(w)
				}
				cos := dot / math.Sqrt(n32*n16)
				if cos < 0.995 {
					t.Errorf("%s: the bf16 gradient's cosine with float32's is %.5f, want at least 0.995", tn.Name, cos)
				}
			}
		})
	}
}
