package model

import (
	"math/rand/v2"
	"testing"
)

// benchConfig is a ~3.4M-parameter model of d=256, the size braid trains on
// a CPU.
func benchConfig() Config {
	return Config{Vocab: 1024, Dim: 256, Hidden: 768, Layers: 4, Heads: 8, KVHeads: 4, HeadDim: 32, MaxSeq: 512,
		NormEps: 1e-5, RopeTheta: 10000, TiedEmbeddings: true}
}

// BenchmarkStep reports microseconds per token for a forward pass and for a
// forward plus backward pass over 4 sequences of 256 tokens.
func BenchmarkStep(b *testing.B) {
	c := benchConfig()
	m, err := New(c)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	m.Params.Init(rng, 0.02)
	B, T := 4, 256
	tokens, targets := randomBatch(rng, c, B, T)
	a := m.NewActivations(B, T)
	g := NewParams(c)
	b.Logf("%d parameters", m.Params.Count())
	b.Run("forward", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.Forward(a, tokens, targets); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(b.Elapsed().Seconds()*1e6/float64(b.N*B*T), "µs/token")
	})
	b.Run("forward+backward", func(b *testing.B) { benchForwardBackward(b, m, a, g, tokens, targets) })
}

// benchForwardBackward times forward plus backward passes of m over a
// batch, reporting microseconds per token.
func benchForwardBackward(b *testing.B, m *Model, a *Activations, g *Params, tokens, targets []int) {
	for b.Loop() {
		if _, err := m.Forward(a, tokens, targets); err != nil {
			b.Fatal(err)
		}
		g.Zero()
		if err := m.Backward(a, g); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1e6/float64(b.N*len(tokens)), "µs/token")
}

// BenchmarkLongCall is the shape of a GRPO update's calls on the Countdown
// model: one sequence of 1,536 tokens (an APR parent's, or a long serial
// search's), forward plus backward, where attention's share grows with
// the length.
func BenchmarkLongCall(b *testing.B) {
	c := Config{Vocab: 1024, Dim: 256, Hidden: 704, Layers: 4, Heads: 8, KVHeads: 8, HeadDim: 32, MaxSeq: 4096,
		NormEps: 1e-5, RopeTheta: 10000, TiedEmbeddings: true}
	m, err := New(c)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	m.Params.Init(rng, 0.02)
	const T = 1536
	tokens, targets := randomBatch(rng, c, 1, T)
	benchForwardBackward(b, m, m.NewActivations(1, T), NewParams(c), tokens, targets)
}
