package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/model"
)

// BenchmarkDecode reports aggregate decode tokens/s of T concurrent threads
// on the shape of braid's Countdown model, prompts already cached, with
// the weights in half precision and, where the CPU has the kernels, in
// bfloat16.
func BenchmarkDecode(b *testing.B) {
	c := model.Config{Vocab: 1024, Dim: 256, Hidden: 704, Layers: 4, Heads: 8, KVHeads: 8, HeadDim: 32,
		MaxSeq: 1024, NormEps: 1e-5, RopeTheta: 10000, TiedEmbeddings: true}
	m, err := model.New(c)
	if err != nil {
		b.Fatal(err)
	}
	m.Params.Init(rand.New(rand.NewPCG(1, 1)), 0.02)
	formats := []WeightFormat{WeightsF16}
	if bf16Kernels() {
		formats = append(formats, WeightsBF16)
	}
	if q8Kernels() {
		formats = append(formats, WeightsQ8)
	}
	for _, threads := range []int{1, 16} {
		for _, f := range formats {
			b.Run(fmt.Sprintf("threads=%d/weights=%s", threads, f), func(b *testing.B) {
				decode(b, m, Options{Weights: f}, threads)
			})
		}
	}
}

// decode times rounds of threads concurrent completions of 64 tokens after
// 64-token prompts, the same prompts every round.
func decode(b *testing.B, m *model.Model, opts Options, threads int) {
	e := newEngine(b, m, opts)
	rng := rand.New(rand.NewPCG(1, 2))
	reqs := make([]*backend.Request, threads)
	for i := range reqs {
		reqs[i] = &backend.Request{PromptTokens: randomTokens(rng, 64, m.Config.Vocab), MaxTokens: 64}
	}
	tokens := 0
	for b.Loop() {
		var wg sync.WaitGroup
		for _, r := range reqs {
			wg.Go(func() {
				if _, err := e.Complete(context.Background(), r); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		tokens += threads * 64
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}
