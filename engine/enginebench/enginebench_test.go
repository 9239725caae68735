package enginebench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/braid-dev/braid/engine"
	"github.com/braid-dev/braid/eval/stats"
	"github.com/braid-dev/braid/model"
)

// newModel is a model of shape c with random weights.
func newModel(tb testing.TB, c model.Config) *model.Model {
	tb.Helper()
	m, err := model.New(c)
	if err != nil {
		tb.Fatal(err)
	}
	m.Params.Init(rand.New(rand.NewPCG(1, 1)), 0.02)
	return m
}

// tiny is a model small enough for a test.
func tiny(tb testing.TB) *model.Model {
	return newModel(tb, model.Config{Vocab: 300, Dim: 32, Hidden: 64, Layers: 2, Heads: 2, KVHeads: 1, HeadDim: 16,
		MaxSeq: 256, NormEps: 1e-5, RopeTheta: 10000, TiedEmbeddings: true})
}

func TestRates(t *testing.T) {
	m := tiny(t)
	e, err := engine.New(m, nil, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	prefill, decode, err := Rates(context.Background(), e, rand.New(rand.NewPCG(2, 2)), 3, 5, 6)
	if err != nil {
		t.Fatal(err)
	}
	if prefill <= 0 || decode <= 0 {
		t.Errorf("prefill %g, decode %g tokens/s", prefill, decode)
	}
}

// Forked children hold the prefix once: less than independent threads,
// and never less than the floor that perfect sharing would hold.
func TestForkMemory(t *testing.T) {
	fm, err := MeasureForkMemory(context.Background(), tiny(t), 4, 40, 10)
	if err != nil {
		t.Fatal(err)
	}
	if fm.Children != 4 || fm.PrefixTokens != 40 || fm.SuffixTokens != 10 {
		t.Errorf("the sizes measured are not the sizes asked: %+v", fm)
	}
	if fm.Forked < fm.Floor || fm.Independent <= fm.Forked {
		t.Errorf("want floor <= forked < independent: %+v", fm)
	}
}

// BenchmarkRates reports prefill and decode tokens/s of concurrent threads
// on the Countdown model's shape: the median of the rounds timed, each
// with new prompts.
func BenchmarkRates(b *testing.B) {
	m := newModel(b, CountdownConfig())
	for _, threads := range []int{1, 16} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			e, err := engine.New(m, nil, engine.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			rng := rand.New(rand.NewPCG(2, 2))
			var pre, dec []float64
			for b.Loop() {
				p, d, err := Rates(context.Background(), e, rng, threads, 64, 128)
				if err != nil {
					b.Fatal(err)
				}
				pre, dec = append(pre, p), append(dec, d)
			}
			b.ReportMetric(stats.Median(pre), "prefill-tokens/s")
			b.ReportMetric(stats.Median(dec), "decode-tokens/s")
		})
	}
}

// BenchmarkForkMemory reports the KV memory of 16 children of a
// 1,000-token prefix, 128 tokens each, on the Countdown model's shape.
func BenchmarkForkMemory(b *testing.B) {
	m := newModel(b, CountdownConfig())
	var fm ForkMemory
	for b.Loop() {
		var err error
		if fm, err = MeasureForkMemory(context.Background(), m, 16, 1000, 128); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(fm.Forked)/(1<<20), "forked-MiB")
	b.ReportMetric(float64(fm.Independent)/(1<<20), "independent-MiB")
	b.ReportMetric(float64(fm.Forked)/float64(fm.Floor), "forked/floor")
}
