package engine

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/model"
)

// The sampler never fails, whatever the logits and settings: it returns a
// token of the vocabulary, and the most likely one when the distribution
// leaves nothing to draw from.
func TestSamplerNeverFails(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	cases := []struct {
		name   string
		logits []float32
		req    backend.Request
		want   int // -1: any token
	}{
		{"all NaN", []float32{nan, nan, nan}, backend.Request{Temperature: 1}, 0},
		{"NaN first", []float32{nan, 2, 5, 1}, backend.Request{Temperature: 1e-9}, 2},
		{"NaN greedy", []float32{nan, 2, 5, 1}, backend.Request{}, 2},
		{"plus infinity", []float32{1, inf, 3}, backend.Request{Temperature: 1}, 1},
		{"all minus infinity", []float32{-inf, -inf}, backend.Request{Temperature: 1}, 0},
		{"inverse temperature overflows", []float32{1, 4, 2}, backend.Request{Temperature: 1e-320}, 1},
		{"top-p on NaN", []float32{nan, nan, 3}, backend.Request{Temperature: 0.7, TopP: 0.5}, 2},
		{"top-k on infinity", []float32{inf, inf, 0}, backend.Request{Temperature: 2, TopK: 2}, 0},
		{"huge spread", []float32{-3e38, 3e38, 0}, backend.Request{Temperature: 1e-300, TopP: 0.9}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSampler(&c.req, 1)
			for range 20 {
				got := s.sample(c.logits)
				if got < 0 || got >= len(c.logits) || c.want >= 0 && got != c.want {
					t.Fatalf("sampled %d from %v, want %d", got, c.logits, c.want)
				}
			}
		})
	}
}

func FuzzSampler(f *testing.F) {
	f.Add([]byte{0, 0, 128, 63, 0, 0, 0, 64}, 1.0, 0, 0.0, uint64(1))
	f.Add([]byte{0, 0, 192, 127, 0, 0, 128, 127}, 1e-320, 2, 0.5, uint64(7))
	f.Fuzz(func(t *testing.T, raw []byte, temperature float64, topK int, topP float64, seed uint64) {
		logits := make([]float32, len(raw)/4)
		if len(logits) == 0 {
			return
		}
		for i := range logits {
			logits[i] = math.Float32frombits(uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24)
		}
		req := backend.Request{PromptTokens: []int{0}, Temperature: temperature, TopK: topK, TopP: topP}
		if req.Validate() != nil {
			// Refused at the edge; the sampler must still not fail on
			// what gets past a careless caller.
			req.Temperature, req.TopK, req.TopP = math.Abs(temperature), max(topK, 0), math.Mod(math.Abs(topP), 1)
		}
		s := newSampler(&req, seed)
		if got := s.sample(logits); got < 0 || got >= len(logits) {
			t.Fatalf("sampled %d from %d logits", got, len(logits))
		}
	})
}

// A temperature whose inverse overflows is the request's error (a server
// answers it 400); it must never reach the sampler and stop the engine for
// every later request.
func TestTinyTemperatureIsRefusedAndTheEngineServesOn(t *testing.T) {
	e := newEngine(t, testModel(t, 16), Options{})
	for _, temp := range []float64{1e-320, 5e-324, math.Inf(1), math.NaN()} {
		_, err := e.Complete(context.Background(), &backend.Request{PromptTokens: []int{1, 2}, Temperature: temp, MaxTokens: 4})
		if !errors.Is(err, backend.ErrInvalidRequest) {
			t.Errorf("temperature %g: %v, want an invalid request", temp, err)
		}
	}
	if _, err := e.Complete(context.Background(), &backend.Request{PromptTokens: []int{1, 2}, Temperature: 1e-300, MaxTokens: 4}); err != nil {
		t.Errorf("temperature 1e-300 (its inverse is finite): %v", err)
	}
	if err := e.Err(); err != nil {
		t.Fatalf("engine stopped: %v", err)
	}
}

// A model whose weights are not numbers (a corrupt file) gives NaN logits:
// its threads still end normally, and the engine serves on.
func TestNaNWeightsDoNotStopTheEngine(t *testing.T) {
	m := testModel(t, 16)
	for i := range m.Params.Embed {
		m.Params.Embed[i] = float32(math.NaN())
	}
	e := newEngine(t, m, Options{})
	for _, temp := range []float64{0, 0.7, 1} {
		c, err := e.Complete(context.Background(), &backend.Request{PromptTokens: []int{3}, Temperature: temp, TopP: 0.9, MaxTokens: 5})
		if err != nil || len(c.Tokens) != 5 {
			t.Fatalf("temperature %g: %v, %v", temp, c, err)
		}
	}
	if err := e.Err(); err != nil {
		t.Fatalf("engine stopped: %v", err)
	}
}

// A panic in one completion's own code (here its OnChunk) ends that
// completion with an error that carries no stack, and no other.
func TestPanicEndsOnlyItsCompletion(t *testing.T) {
	e := newEngine(t, testModel(t, 16), Options{})
	_, err := e.Complete(context.Background(), &backend.Request{PromptTokens: []int{1}, MaxTokens: 8,
		OnChunk: func(backend.Chunk) { panic("a bug in the caller") }})
	if err == nil || !strings.Contains(err.Error(), "a bug in the caller") || strings.Contains(err.Error(), "goroutine") {
		t.Fatalf("err = %v, want the panic's value in one line", err)
	}
	c, err := e.Complete(context.Background(), &backend.Request{PromptTokens: []int{1}, MaxTokens: 8})
	if err != nil || len(c.Tokens) != 8 {
		t.Fatalf("the engine after a panicking completion: %v, %v", c, err)
	}
}

// MaxTokens near the largest int means "as many as the context holds", not
// an overflowed sum that ends the thread at once.
func TestHugeMaxTokens(t *testing.T) {
	e := newEngine(t, testModel(t, 16), Options{})
	c, err := e.Complete(context.Background(), &backend.Request{PromptTokens: make([]int, 250), MaxTokens: math.MaxInt})
	if err != nil || len(c.Tokens) != 6 || c.Finish != backend.FinishLength {
		t.Fatalf("%d tokens, finish %q, %v; want 6 to the context's end", len(c.Tokens), c.Finish, err)
	}
}

// A request of one thread beside one of many: it gets a place at once,
// though the wide one holds every place, and each step it runs in carries
// at most FairShare rows of the wide one, whose threads all keep moving.
// Tokens and steps are counted by environments, which the engine's own
// goroutine calls at each token: on a busy machine the test's goroutines
// may run many steps late.
func TestFairShareBetweenRequests(t *testing.T) {
	const wide, maxThreads, narrowTokens = 24, 8, 12
	e := stampedEngine(t, Options{MaxThreads: maxThreads}, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wideTokens atomic.Int64
	var wg sync.WaitGroup
	for i := range wide {
		wg.Go(func() {
			e.Complete(backend.WithGroup(ctx, "wide"), &backend.Request{PromptTokens: []int{1 + i%90, 2}, MaxTokens: 200,
				Env: tokenHook(func() { wideTokens.Add(1) })})
		})
	}
	defer wg.Wait()
	for e.Stats().Running < maxThreads || wideTokens.Load() < 2*maxThreads {
		if wideTokens.Load() > 1000 {
			t.Fatal("the wide request never held every place")
		}
		time.Sleep(time.Millisecond)
	}
	// From the narrow request's first token to its last, as the engine
	// took them.
	var n, steps0, steps1, tokens0, tokens1 atomic.Int64
	before := wideTokens.Load()
	c, err := e.Complete(backend.WithGroup(ctx, "narrow"), &backend.Request{PromptTokens: []int{5, 6, 7}, MaxTokens: narrowTokens,
		Env: tokenHook(func() {
			switch n.Add(1) {
			case 1:
				steps0.Store(e.Stats().Steps)
				tokens0.Store(wideTokens.Load())
			case narrowTokens:
				steps1.Store(e.Stats().Steps)
				tokens1.Store(wideTokens.Load())
			}
		})})
	if err != nil || len(c.Tokens) != narrowTokens {
		t.Fatalf("narrow request: %v, %v", c, err)
	}
	steps := steps1.Load() - steps0.Load()
	others := tokens1.Load() - tokens0.Load()
	cancel()
	// First come first served, it would wait for every wide thread,
	// thousands of tokens.
	if waited := tokens0.Load() - before; waited > 1000 {
		t.Errorf("the wide request decoded %d tokens before the narrow one's first", waited)
	}
	// Its tokens after the first take narrowTokens-1 steps.
	if steps > narrowTokens+4 {
		t.Errorf("the narrow request took %d steps for %d tokens: it waited behind the wide one", steps, narrowTokens)
	}
	if limit := int64(DefaultFairShare)*steps + 2*maxThreads; others > limit {
		t.Errorf("the wide request decoded %d tokens in the narrow one's %d steps; fair share allows %d", others, steps, limit)
	}
}

// stampedEngine is an engine over a small random model with a tokenizer,
// so that environments run: the engine's loop calls their Next at each
// token a thread samples, and so a tokenHook counts tokens and steps as
// the engine takes them. cacheBlocks, when not 0, is the KV cache's size.
func stampedEngine(t *testing.T, opts Options, cacheBlocks int) *Engine {
	t.Helper()
	tok := trainTokenizer(t)
	c := model.Config{Vocab: tok.VocabSize(), Dim: 32, Hidden: 48, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16,
		MaxSeq: 256, NormEps: 1e-5, RopeTheta: 10000, TiedEmbeddings: true}
	m, err := model.New(c)
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Init(rand.New(rand.NewPCG(7, 7)), 0.3)
	if cacheBlocks > 0 {
		opts.CacheBytes = int64(cacheBlocks * blockBytes(c, false, false))
	}
	e, err := New(m, tok, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// tokenHook is an environment that only calls itself at each token the
// model samples.
type tokenHook func()

func (tokenHook) Begin() (string, error)        { return "", nil }
func (h tokenHook) Next(string) (string, error) { h(); return "", nil }
func (tokenHook) Choices() []string             { return nil }
func (tokenHook) Done() bool                    { return false }

// beginHook is a tokenHook that also calls begin when the engine takes the
// request, just before it queues it.
type beginHook struct {
	tokenHook
	begin func()
}

func (h beginHook) Begin() (string, error) { h.begin(); return "", nil }

// A context no machine could hold is refused with an error naming it,
// before its sizes overflow or its tables are allocated.
func TestHugeContextIsRefused(t *testing.T) {
	m := testModel(t, 16)
	for _, n := range []int{math.MaxInt, math.MaxInt / 2, 1 << 40} {
		_, err := New(m, nil, Options{Context: n})
		if err == nil || !strings.Contains(err.Error(), "context of") {
			t.Errorf("context %d: %v", n, err)
		}
	}
}

// An engine left idle lets go of its cached blocks, and serves on.
func TestIdleReleasesTheCache(t *testing.T) {
	e := newEngine(t, testModel(t, 16), Options{IdleRelease: 50 * time.Millisecond})
	req := &backend.Request{PromptTokens: make([]int, 100), MaxTokens: 50}
	first, err := e.Complete(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if e.Stats().Blocks == 0 {
		t.Fatal("nothing was cached")
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.Stats().Blocks != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still %d blocks cached after 5 s idle", e.Stats().Blocks)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The loop published the release after making it: the arena is
	// readable here until the next request.
	if n := len(e.cache.mem.slabs); n != 0 {
		t.Errorf("the released cache still maps %d slabs", n)
	}
	again, err := e.Complete(context.Background(), req)
	if err != nil || !slices.Equal(ids(again), ids(first)) || again.Usage.CachedPromptTokens != 0 {
		t.Errorf("after the release: %v, %v (cached %d), want the same tokens computed anew", ids(again), err, again.Usage.CachedPromptTokens)
	}
}

// Under memory pressure from a wide request, a narrow one that arrives
// last still gets its blocks and decodes a token a step: it is neither
// left waiting for blocks nor set back to recompute its tokens.
func TestPressurePreemptsTheWidestRequest(t *testing.T) {
	e := stampedEngine(t, Options{}, 60)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range 12 {
		wg.Go(func() {
			e.Complete(backend.WithGroup(ctx, "wide"), &backend.Request{PromptTokens: []int{1 + i, 2, 3}, MaxTokens: 240})
		})
	}
	for e.Stats().Preemptions == 0 {
		time.Sleep(time.Millisecond)
	}
	for range 5 {
		// From when the engine takes it to its last token, as the engine
		// took the steps.
		var n, first, last atomic.Int64
		c, err := e.Complete(backend.WithGroup(ctx, "narrow"), &backend.Request{PromptTokens: make([]int, 40), MaxTokens: 100,
			Env: beginHook{begin: func() { first.Store(e.Stats().Steps) }, tokenHook: func() {
				if n.Add(1) == 100 {
					last.Store(e.Stats().Steps)
				}
			}}})
		if err != nil || len(c.Tokens) != 100 {
			t.Fatalf("narrow request: %v, %v", c, err)
		}
		// Waiting for blocks, or set back to recompute its tokens, it
		// would take many more.
		if steps := last.Load() - first.Load(); steps > 100+10 {
			t.Fatalf("the narrow request took %d steps for its prompt and 100 tokens", steps)
		}
	}
}

// When a thread starves for blocks, the thread set back is the latest of
// the group holding the most places, never one of a narrower group, and
// never the starving thread itself.
func TestReliefSetsBackTheWidestGroupsLatestThread(t *testing.T) {
	running := func(group string) *thread {
		return &thread{group: group, cur: cursor{path: []*node{{refs: 1}}, off: 1}}
	}
	for _, c := range []struct {
		name     string
		starving int // index into the running threads
		want     int
	}{
		{"a narrow thread starves", 3, 2},
		{"a wide thread starves", 2, 1},
	} {
		wide1, wide2, wide3, narrow1, narrow2 := running("wide"), running("wide"), running("wide"), running("narrow"), running("narrow")
		all := []*thread{wide1, wide2, wide3, narrow1, narrow2}
		e := &Engine{places: map[string]int{}, cache: newCache(16, 0, 0, 8), running: slices.Clone(all)}
		all[c.starving].starved = true
		if !e.relieve() {
			t.Fatalf("%s: nothing was relieved", c.name)
		}
		if len(e.queue) != 1 || e.queue[0] != all[c.want] {
			got := -1
			if len(e.queue) == 1 {
				got = slices.Index(all, e.queue[0])
			}
			t.Errorf("%s: set back running thread %d, want %d (the wide group's latest but the starving one)", c.name, got, c.want)
		}
	}
}
