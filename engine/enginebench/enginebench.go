// Package enginebench measures the engine on a model of any shape: the
// tokens/s of concurrent threads, prefilling and decoding, and the KV
// memory that threads forked from one prompt share. 'braid bench decode'
// prints these figures; the package's benchmarks report them under
// go test -bench.
package enginebench

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/engine"
	"github.com/braid-dev/braid/model"
)

// CountdownConfig is the shape of braid's Countdown model: d=256, 4
// layers, SwiGLU 704 (~3.4M parameters with a 1,024-token BPE
// vocabulary).
func CountdownConfig() model.Config {
	return model.Config{Vocab: 1024, Dim: 256, Hidden: 704, Layers: 4, Heads: 8, KVHeads: 8, HeadDim: 32,
		MaxSeq: 2048, NormEps: 1e-5, RopeTheta: 10000, TiedEmbeddings: true}
}

// CompleteEach runs the requests concurrently and returns the wall time
// until the last has finished.
func CompleteEach(ctx context.Context, e *engine.Engine, reqs []*backend.Request) (time.Duration, error) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(reqs))
	for i, r := range reqs {
		wg.Go(func() { _, errs[i] = e.Complete(ctx, r) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// Rates is one round on e of threads concurrent threads, each with a new
// random prompt of prompt tokens drawn from rng: the prefill tokens/s of
// the prompts fed together, then the aggregate decode tokens/s of tokens
// new tokens each, the prompts already cached.
func Rates(ctx context.Context, e *engine.Engine, rng *rand.Rand, threads, prompt, tokens int) (prefill, decode float64, err error) {
	reqs := make([]*backend.Request, threads)
	for i := range reqs {
		reqs[i] = &backend.Request{PromptTokens: randomPrompt(rng, prompt, e.Config().Vocab), MaxTokens: 1}
	}
	d, err := CompleteEach(ctx, e, reqs)
	if err != nil {
		return 0, 0, err
	}
	prefill = float64(threads*prompt) / d.Seconds()
	for _, r := range reqs {
		r.MaxTokens = tokens
	}
	if d, err = CompleteEach(ctx, e, reqs); err != nil {
		return 0, 0, err
	}
	return prefill, float64(threads*tokens) / d.Seconds(), nil
}

// SharedRates is Rates for threads that share one prompt, as the samples
// of a vote or the children of a spawn do (and llama-batched-bench -pps
// measures): the prompt is prefilled once, alone (prefill tokens/s), then
// the threads each sample tokens new tokens from it, concurrently
// (aggregate decode tokens/s), their prompt read from the cache.
func SharedRates(ctx context.Context, e *engine.Engine, rng *rand.Rand, threads, prompt, tokens int) (prefill, decode float64, err error) {
	p := randomPrompt(rng, prompt, e.Config().Vocab)
	d, err := CompleteEach(ctx, e, []*backend.Request{{PromptTokens: p, MaxTokens: 1}})
	if err != nil {
		return 0, 0, err
	}
	prefill = float64(prompt) / d.Seconds()
	reqs := make([]*backend.Request, threads)
	for i := range reqs {
		// Sampled, so that the threads' tokens differ.
		reqs[i] = &backend.Request{PromptTokens: p, MaxTokens: tokens, Temperature: 1, Seed: rng.Uint64() | 1}
	}
	if d, err = CompleteEach(ctx, e, reqs); err != nil {
		return 0, 0, err
	}
	return prefill, float64(threads*tokens) / d.Seconds(), nil
}

// ForkMemory is the KV cache in use, in bytes, once Children threads
// forked from one prompt of PrefixTokens tokens have each generated
// SuffixTokens tokens, beside the same number of independent threads.
type ForkMemory struct {
	Children, PrefixTokens, SuffixTokens int
	Forked, Independent                  int64
	// Floor is one thread plus every child's own suffix at exactly the
	// bytes a token needs: what perfect sharing would hold.
	Floor int64
}

// MeasureForkMemory runs children forked from one random prompt of
// prefix tokens, each sampling suffix tokens, on an engine of its own
// over m, then as many threads of independent prompts on another, and
// reads the KV cache each holds at the end.
func MeasureForkMemory(ctx context.Context, m *model.Model, children, prefix, suffix int) (ForkMemory, error) {
	rng := rand.New(rand.NewPCG(3, 3))
	shared := randomPrompt(rng, prefix, m.Config.Vocab)
	forked, err := kvBytes(ctx, m, [][]int{shared}, children, suffix)
	if err != nil {
		return ForkMemory{}, err
	}
	independent := make([][]int, children)
	for i := range independent {
		independent[i] = randomPrompt(rng, prefix, m.Config.Vocab)
	}
	indep, err := kvBytes(ctx, m, independent, children, suffix)
	if err != nil {
		return ForkMemory{}, err
	}
	c := m.Config
	perToken := int64(c.Layers * 2 * c.KVHeads * c.HeadDim * 2) // keys and values in half precision
	// Each child feeds back all but its last sampled token.
	floor := perToken * int64(prefix+children*(suffix-1))
	return ForkMemory{Children: children, PrefixTokens: prefix, SuffixTokens: suffix, Forked: forked, Independent: indep, Floor: floor}, nil
}

// kvBytes caches the first prompt, then runs n threads over the prompts in
// turn, each sampling suffix tokens, and returns the KV cache in use.
func kvBytes(ctx context.Context, m *model.Model, prompts [][]int, n, suffix int) (int64, error) {
	e, err := engine.New(m, nil, engine.Options{})
	if err != nil {
		return 0, err
	}
	defer e.Close()
	if _, err := e.Complete(ctx, &backend.Request{PromptTokens: prompts[0], MaxTokens: 1}); err != nil {
		return 0, err
	}
	reqs := make([]*backend.Request, n)
	for i := range reqs {
		// Sampled, so that the children's suffixes differ.
		reqs[i] = &backend.Request{PromptTokens: prompts[i%len(prompts)], MaxTokens: suffix, Temperature: 1, Seed: uint64(i + 1)}
	}
	if _, err := CompleteEach(ctx, e, reqs); err != nil {
		return 0, err
	}
	s := e.Stats()
	return int64(s.Blocks) * int64(s.BlockBytes), nil
}

func randomPrompt(rng *rand.Rand, n, vocab int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = rng.IntN(vocab)
	}
	return p
}
