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
// on the ~3.4M-parameter shape braid trains, prompts already cached.
func BenchmarkDecode(b *testing.B) {
	c := model.Config{Vocab: 1024, Dim: 256, Hidden: 704, Layers: 4, Heads: 8, KVHeads: 8, HeadDim: 32,
		MaxSeq: 1024, NormEps: 1e-5, RopeTheta: 10000, TiedEmbeddings: true}
	m, err := model.New(c)
	if err != nil {
		b.Fatal(err)
	}
	m.Params.Init(rand.New(rand.NewPCG(1, 1)), 0.02)
	for _, threads := range []int{1, 16} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			e := newEngine(b, m, Options{})
			rng := rand.New(rand.NewPCG(1, 2))
			reqs := make([]*backend.Request, threads)
			for i := range reqs {
				reqs[i] = &backend.Request{PromptTokens: randomTokens(rng, 64, c.Vocab), MaxTokens: 64}
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
		})
	}
}
