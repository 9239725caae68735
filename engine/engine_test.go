package engine

import (
	"context"
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/tensor"
	"github.com/braid-dev/braid/tokenizer"
)

// testModel is a small random model whose logits are peaked enough that
// greedy decoding does not sit on near-ties.
func testModel(t testing.TB, headDim int) *model.Model {
	t.Helper()
	return testModelOf(t, model.Config{Vocab: 97, Dim: 32, Hidden: 48, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: headDim,
		MaxSeq: 256, NormEps: 1e-5, RopeTheta: 10000, QKVBias: true})
}

// testModelOf is a random model of shape c, biases included.
func testModelOf(t testing.TB, c model.Config) *model.Model {
	t.Helper()
	m, err := model.New(c)
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Init(rand.New(rand.NewPCG(7, 7)), 0.3)
	for _, lp := range m.Params.Layers {
		for i := range lp.Bq {
			lp.Bq[i] = 0.1
		}
		for i := range lp.Bk {
			lp.Bk[i], lp.Bv[i] = -0.05, 0.02
		}
	}
	return m
}

// scaledRoPE is m with Llama 3's rotary scaling over a pretraining context
// of 16 positions: of head size 8's frequencies, the first is between the
// bands and the others in the low one.
func scaledRoPE(t testing.TB, m *model.Model) *model.Model {
	t.Helper()
	c := m.Config
	c.RopeScaling = tensor.RopeScaling{Factor: 4, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 16}
	scaled, err := model.New(c)
	if err != nil {
		t.Fatal(err)
	}
	copy(scaled.Params.Data(), m.Params.Data())
	return scaled
}

func newEngine(t testing.TB, m *model.Model, opts Options) *Engine {
	t.Helper()
	e, err := New(m, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// textEngine is an engine over a small random model of the tokenizer's
// vocabulary, for tests of text: layers and context as given, weights from
// seed.
func textEngine(t *testing.T, tok *tokenizer.Tokenizer, layers, maxSeq int, seed uint64) *Engine {
	t.Helper()
	c := model.Config{Vocab: tok.VocabSize(), Dim: 32, Hidden: 48, Layers: layers, Heads: 2, KVHeads: 2, HeadDim: 16,
		MaxSeq: maxSeq, NormEps: 1e-5, RopeTheta: 10000, TiedEmbeddings: true}
	m, err := model.New(c)
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Init(rand.New(rand.NewPCG(seed, seed)), 0.3)
	e, err := New(m, tok, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func randomTokens(rng *rand.Rand, n, vocab int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = rng.IntN(vocab)
	}
	return s
}

func ids(c *backend.Completion) []int {
	var s []int
	for _, t := range c.Tokens {
		s = append(s, t.ID)
	}
	return s
}

// completeAll runs the requests concurrently and returns their completions
// in order.
func completeAll(t *testing.T, e *Engine, reqs []*backend.Request) []*backend.Completion {
	t.Helper()
	return complete(t, e, reqs, false)
}

// completeTogether is completeAll with the requests queued together: it
// holds the engine's lock until every request's goroutine has started, so
// that they wait for it side by side. Threads this short, left to arrive
// as their goroutines happen to start, can on a busy machine each run to
// its end before the next arrives, and never meet.
func completeTogether(t *testing.T, e *Engine, reqs []*backend.Request) []*backend.Completion {
	t.Helper()
	return complete(t, e, reqs, true)
}

func complete(t *testing.T, e *Engine, reqs []*backend.Request, together bool) []*backend.Completion {
	t.Helper()
	out := make([]*backend.Completion, len(reqs))
	errs := make([]error, len(reqs))
	var started, wg sync.WaitGroup
	if together {
		e.mu.Lock()
	}
	for i, r := range reqs {
		started.Add(1)
		wg.Go(func() {
			started.Done()
			out[i], errs[i] = e.Complete(context.Background(), r)
		})
	}
	if together {
		started.Wait()
		// From Done to the lock a goroutine does not block; waiters past
		// a millisecond get the lock in turn, ahead of the engine's loop.
		time.Sleep(20 * time.Millisecond)
		e.mu.Unlock()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	return out
}

// alone completes req on a fresh engine with nothing else running.
func alone(t *testing.T, m *model.Model, opts Options, req *backend.Request) *backend.Completion {
	t.Helper()
	e := newEngine(t, m, opts)
	c, err := e.Complete(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// numericModes are the ways the engine rounds numbers: half-precision
// weights with a half-precision or an 8-bit cache, and bfloat16 and 8-bit
// products where the CPU has them. Every test of equivalences runs with
// each: each rounds a value the same way whatever the batch.
func numericModes() []Options {
	modes := []Options{{Weights: WeightsF16}, {Weights: WeightsF16, KV8: true}}
	if bf16Kernels() {
		modes = append(modes, Options{Weights: WeightsBF16})
	}
	if q8Kernels() {
		modes = append(modes, Options{Weights: WeightsQ8})
	}
	return modes
}

// bf16Kernels says whether this CPU runs the bfloat16 products.
func bf16Kernels() bool { return tensor.BF16Available() }

// q8Kernels says whether this CPU runs the 8-bit products.
func q8Kernels() bool {
	_, ok := tensor.PackQ8(make([]float32, 1), 1, 1, 0)
	return ok
}

func TestBatchedGreedyMatchesAlone(t *testing.T) {
	for _, mode := range numericModes() {
		for _, hd := range []int{8, 16} {
			batchedMatchesAlone(t, testModel(t, hd), mode)
		}
	}
}

func batchedMatchesAlone(t *testing.T, m *model.Model, mode Options) {
	hd := m.Config.HeadDim
	rng := rand.New(rand.NewPCG(1, 1))
	var reqs []*backend.Request
	for _, n := range []int{1, 5, 16, 17, 40, 100, 3} {
		reqs = append(reqs, &backend.Request{PromptTokens: randomTokens(rng, n, 97), MaxTokens: 24})
	}
	var want [][]int
	for _, r := range reqs {
		want = append(want, ids(alone(t, m, mode, r)))
	}
	for _, step := range []int{0, 7} {
		opts := mode
		opts.StepTokens = step
		e := newEngine(t, m, opts)
		got := completeAll(t, e, reqs)
		for i := range reqs {
			if !slices.Equal(ids(got[i]), want[i]) {
				t.Errorf("head %d, %+v: prompt %d of %d tokens decoded %v in a batch, %v alone",
					hd, opts, i, len(reqs[i].PromptTokens), ids(got[i]), want[i])
			}
			if got[i].Finish != backend.FinishLength || len(got[i].Tokens) != 24 {
				t.Errorf("prompt %d: finish %q after %d tokens, want length after 24", i, got[i].Finish, len(got[i].Tokens))
			}
		}
	}
}

func TestForkedChildrenMatchRecomputation(t *testing.T) {
	for _, mode := range numericModes() {
		forkedChildrenMatch(t, testModel(t, 16), mode)
	}
}

func forkedChildrenMatch(t *testing.T, m *model.Model, opts Options) {
	rng := rand.New(rand.NewPCG(2, 2))
	prefix := randomTokens(rng, 50, 97)
	e := newEngine(t, m, opts)
	parent, err := e.Complete(context.Background(), &backend.Request{PromptTokens: prefix, MaxTokens: 1})
	if err != nil {
		t.Fatal(err)
	}
	var reqs []*backend.Request
	for i := range 8 {
		// Distinct first tokens, none the parent's: each child reuses
		// exactly the prefix.
		first := (parent.Tokens[0].ID + 1 + i) % 97
		suffix := append([]int{first}, randomTokens(rng, i*3, 97)...)
		r := &backend.Request{PromptTokens: append(slices.Clone(prefix), suffix...), MaxTokens: 20}
		if i%2 == 1 {
			r.Temperature, r.Seed = 1, uint64(100+i)
		}
		reqs = append(reqs, r)
	}
	got := completeAll(t, e, reqs)
	for i, r := range reqs {
		want := alone(t, m, opts, r)
		if !slices.Equal(ids(got[i]), ids(want)) {
			t.Errorf("%+v: child %d decoded %v after a fork, %v recomputing its prefix", opts, i, ids(got[i]), ids(want))
		}
		if u := got[i].Usage; u.CachedPromptTokens != len(prefix) || u.PromptTokens != len(r.PromptTokens) {
			t.Errorf("child %d: usage %+v, want %d cached of %d", i, u, len(prefix), len(r.PromptTokens))
		}
		if want.Usage.CachedPromptTokens != 0 {
			t.Errorf("child %d alone: %d cached tokens, want 0", i, want.Usage.CachedPromptTokens)
		}
	}
}

// Rows that share a prefix attend together (forward.group): the samples
// of one prompt, the children of one, an unrelated prompt beside them.
// Each token's log-probability is the one it has alone, to the bit.
func TestSharedPrefixAttentionMatchesAlone(t *testing.T) {
	for _, mode := range numericModes() {
		m := testModel(t, 16)
		rng := rand.New(rand.NewPCG(5, 5))
		prompt := randomTokens(rng, 45, 97)
		var reqs []*backend.Request
		for i := range 12 {
			r := &backend.Request{PromptTokens: slices.Clone(prompt), MaxTokens: 12, Logprobs: true, Temperature: 1, Seed: uint64(100 + i)}
			switch {
			case i >= 10:
				r.PromptTokens = randomTokens(rng, 30+i, 97)
			case i >= 5:
				r.PromptTokens = append(r.PromptTokens, randomTokens(rng, 1+i%3*7, 97)...)
			}
			reqs = append(reqs, r)
		}
		for _, step := range []int{0, 7} {
			opts := mode
			opts.StepTokens = step
			got := completeAll(t, newEngine(t, m, opts), reqs)
			for i, r := range reqs {
				want := alone(t, m, opts, r)
				for j, tok := range got[i].Tokens {
					if w := want.Tokens[j]; tok.ID != w.ID || math.Float64bits(tok.Logprob) != math.Float64bits(w.Logprob) {
						t.Fatalf("%+v: request %d token %d is %d (log-probability %v) among the others, %d (%v) alone",
							opts, i, j, tok.ID, tok.Logprob, w.ID, w.Logprob)
					}
				}
			}
		}
	}
}

func TestReuseCountsAreExact(t *testing.T) {
	m := testModel(t, 16)
	rng := rand.New(rand.NewPCG(3, 3))
	a := randomTokens(rng, 30, 97)
	e := newEngine(t, m, Options{})
	run := func(prompt []int, maxTokens int) *backend.Completion {
		c, err := e.Complete(context.Background(), &backend.Request{PromptTokens: prompt, MaxTokens: maxTokens})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := run(a, 5)
	gen := ids(first)
	for _, tc := range []struct {
		name   string
		prompt []int
		cached int
	}{
		// The last prompt token is always run: its logits are needed.
		{"same prompt", a, 29},
		{"shorter", a[:20], 19},
		// The four generated tokens fed back are cached too; the fifth
		// was sampled but never fed.
		{"prompt and completion", append(slices.Clone(a), gen...), 34},
		{"diverging", append(slices.Clone(a[:12]), (a[12]+1)%97), 12},
		{"fresh", []int{(a[0] + 1) % 97, 5, 6}, 0},
	} {
		c := run(tc.prompt, 1)
		if c.Usage.CachedPromptTokens != tc.cached {
			t.Errorf("%s: %d cached prompt tokens, want %d", tc.name, c.Usage.CachedPromptTokens, tc.cached)
		}
	}
}

func TestCancelFreesBlocks(t *testing.T) {
	m := testModel(t, 16)
	e := newEngine(t, m, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	c, err := e.Complete(ctx, &backend.Request{PromptTokens: []int{1, 2, 3}, OnChunk: func(backend.Chunk) {
		if n++; n == 5 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || c == nil || c.Finish != backend.FinishCancelled {
		t.Fatalf("got %+v, %v; want a cancelled completion and context.Canceled", c, err)
	}
	if len(c.Tokens) < 5 || len(c.Tokens) > 100 {
		t.Errorf("cancelled after %d tokens", len(c.Tokens))
	}
	if s := e.Stats(); s.Running != 0 || s.ReferencedBlocks != 0 || s.Blocks == 0 {
		t.Errorf("after cancelling: %+v; want no running thread, no referenced block, the tokens still cached", s)
	}
	// A request cancelled before it starts.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := e.Complete(ctx, &backend.Request{PromptTokens: []int{4}}); !errors.Is(err, context.Canceled) {
		t.Errorf("pre-cancelled request: %v", err)
	}
	if s := e.Stats(); s.Running != 0 || s.Waiting != 0 || s.ReferencedBlocks != 0 {
		t.Errorf("after a pre-cancelled request: %+v", s)
	}
}

func TestEvictionUnderBudget(t *testing.T) {
	for _, mode := range numericModes() {
		evictionUnderBudget(t, mode)
	}
}

func evictionUnderBudget(t *testing.T, mode Options) {
	m := testModel(t, 16)
	blockSize := int64(blockBytes(m.Config, mode.KV8, false))
	const maxBlocks = 40
	rng := rand.New(rand.NewPCG(4, 4))
	var reqs []*backend.Request
	for range 10 {
		reqs = append(reqs, &backend.Request{PromptTokens: randomTokens(rng, 100, 97), MaxTokens: 30})
	}
	var want [][]int
	for _, r := range reqs {
		want = append(want, ids(alone(t, m, mode, r)))
	}
	opts := mode
	opts.CacheBytes = maxBlocks * blockSize
	opts.IdleRelease = 20 * time.Millisecond
	e := newEngine(t, m, opts)
	// Ten threads of 130 tokens need 90 blocks at once: the engine must
	// queue and preempt, and still decode what each decodes alone.
	got := completeTogether(t, e, reqs)
	for i := range reqs {
		if !slices.Equal(ids(got[i]), want[i]) {
			t.Errorf("thread %d decoded %v under memory pressure, %v alone", i, ids(got[i]), want[i])
		}
	}
	s := e.Stats()
	// With one processor the loop keeps it while it has work: each thread
	// runs to its end before the next request can reach the queue.
	if s.Preemptions == 0 && runtime.GOMAXPROCS(0) > 1 {
		t.Error("no thread was preempted: the test does not exercise memory pressure")
	}
	if s.Blocks > maxBlocks || s.ReferencedBlocks != 0 || s.Running != 0 {
		t.Errorf("after the run: %+v; want at most %d blocks, none referenced", s, maxBlocks)
	}
	// Idle, the engine drops every block; closed, it lets the test look.
	for deadline := time.Now().Add(5 * time.Second); e.Stats().Blocks != 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	e.Close()
	if e.cache.blocks != 0 || e.cache.evictable.Len() != 0 || len(e.cache.root.children) != 0 {
		t.Errorf("dropping everything left %d blocks, %d evictable, %d children of the root",
			e.cache.blocks, e.cache.evictable.Len(), len(e.cache.root.children))
	}
}

func TestLimitsAndErrors(t *testing.T) {
	m := testModel(t, 16)
	e := newEngine(t, m, Options{})
	long := make([]int, 257)
	if _, err := e.Complete(context.Background(), &backend.Request{PromptTokens: long}); err == nil || !strings.Contains(err.Error(), "257 tokens") {
		t.Errorf("over-long prompt: %v", err)
	}
	if _, err := e.Complete(context.Background(), &backend.Request{PromptTokens: []int{97}}); err == nil || !strings.Contains(err.Error(), "vocabulary") {
		t.Errorf("token outside the vocabulary: %v", err)
	}
	if _, err := e.Complete(context.Background(), &backend.Request{Prompt: "hi"}); err == nil || !strings.Contains(err.Error(), "tokenizer") {
		t.Errorf("text without a tokenizer: %v", err)
	}
	if _, err := e.Complete(context.Background(), &backend.Request{PromptTokens: []int{1}, TopP: 2}); err == nil {
		t.Error("top-p 2 accepted")
	}
	c, err := e.Complete(context.Background(), &backend.Request{PromptTokens: make([]int, 250)})
	if err != nil {
		t.Fatal(err)
	}
	if c.Finish != backend.FinishLength || len(c.Tokens) != 6 {
		t.Errorf("at the context's end: finish %q after %d tokens, want length after 6", c.Finish, len(c.Tokens))
	}
	if _, err := New(m, nil, Options{CacheBytes: 1000}); err == nil || !strings.Contains(err.Error(), "needs") {
		t.Errorf("tiny cache: %v", err)
	}
}

// An engine run at a longer context than the model's takes longer prompts
// and decodes past the model's positions, and within them decodes what the
// model's own context decodes; a shorter one ends threads sooner.
func TestContextOption(t *testing.T) {
	m := testModel(t, 16) // 256 positions
	ctx := context.Background()
	long := newEngine(t, m, Options{Context: 512})
	if got := long.Config().MaxSeq; got != 512 {
		t.Errorf("Config().MaxSeq = %d at context 512", got)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	c, err := long.Complete(ctx, &backend.Request{PromptTokens: randomTokens(rng, 300, 97)})
	if err != nil {
		t.Fatal(err)
	}
	if c.Finish != backend.FinishLength || len(c.Tokens) != 212 {
		t.Errorf("a 300-token prompt at context 512: finish %q after %d tokens, want length after 212", c.Finish, len(c.Tokens))
	}
	req := &backend.Request{PromptTokens: randomTokens(rng, 100, 97), MaxTokens: 50}
	if a, b := ids(alone(t, m, Options{}, req)), ids(alone(t, m, Options{Context: 512}, req)); !slices.Equal(a, b) {
		t.Errorf("within the model's positions, context 512 decoded %v, the model's own %v", b, a)
	}
	short := newEngine(t, m, Options{Context: 120})
	c, err = short.Complete(ctx, &backend.Request{PromptTokens: randomTokens(rng, 100, 97)})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Tokens) != 20 {
		t.Errorf("a 100-token prompt at context 120 decoded %d tokens, want 20", len(c.Tokens))
	}
	if _, err := short.Complete(ctx, &backend.Request{PromptTokens: make([]int, 121)}); !errors.Is(err, backend.ErrPromptTooLong) {
		t.Errorf("a 121-token prompt at context 120: %v", err)
	}
	if _, err := New(m, nil, Options{Context: -1}); err == nil {
		t.Error("a negative context was accepted")
	}
	// A context no cache could hold is refused before anything of its
	// size is allocated.
	if _, err := New(m, nil, Options{Context: 1 << 40}); err == nil || !strings.Contains(err.Error(), "context of") {
		t.Errorf("a context of 2^40 positions: %v", err)
	}
}

func TestEOSEndsThread(t *testing.T) {
	m := testModel(t, 16)
	prompt := []int{3, 1, 4, 1, 5}
	free := ids(alone(t, m, Options{}, &backend.Request{PromptTokens: prompt, MaxTokens: 10}))
	e := newEngine(t, m, Options{EOS: []int{free[3]}})
	c, err := e.Complete(context.Background(), &backend.Request{PromptTokens: prompt, MaxTokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	end := slices.Index(free, free[3]) + 1
	if c.Finish != backend.FinishStop || !slices.Equal(ids(c), free[:end]) {
		t.Errorf("with EOS %d: %v (%s), want %v (stop)", free[3], ids(c), c.Finish, free[:end])
	}
}

func TestSeededSamplingIsReproducible(t *testing.T) {
	m := testModel(t, 16)
	e := newEngine(t, m, Options{})
	req := func(seed uint64) *backend.Request {
		return &backend.Request{PromptTokens: []int{9, 8, 7}, MaxTokens: 30, Temperature: 1.5, TopP: 0.95, Seed: seed}
	}
	a := completeAll(t, e, []*backend.Request{req(1), req(1), req(2), req(0)})
	if !slices.Equal(ids(a[0]), ids(a[1])) {
		t.Errorf("seed 1 gave %v and %v", ids(a[0]), ids(a[1]))
	}
	if slices.Equal(ids(a[0]), ids(a[2])) {
		t.Errorf("seeds 1 and 2 both gave %v", ids(a[0]))
	}
	if a[3].Seed == 0 {
		t.Error("no seed reported for a request without one")
	}
	again, err := e.Complete(context.Background(), req(a[3].Seed))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(again), ids(a[3])) {
		t.Errorf("the reported seed %d gave %v, first %v", a[3].Seed, ids(again), ids(a[3]))
	}
}

func TestLogprobs(t *testing.T) {
	m := testModel(t, 16)
	e := newEngine(t, m, Options{})
	c, err := e.Complete(context.Background(), &backend.Request{PromptTokens: []int{1, 2}, MaxTokens: 5, Logprobs: true, TopLogprobs: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i, tok := range c.Tokens {
		if len(tok.Top) != 3 || tok.Top[0].ID != tok.ID || tok.Top[0].Logprob != tok.Logprob {
			t.Fatalf("token %d: %+v; greedy should pick the first of the top 3", i, tok)
		}
		if !(tok.Top[0].Logprob >= tok.Top[1].Logprob && tok.Top[1].Logprob >= tok.Top[2].Logprob && tok.Logprob < 0) {
			t.Errorf("token %d: top logprobs out of order or positive: %+v", i, tok.Top)
		}
	}
}

// An engine with a tokenizer names each alternative by its text, so that
// a reader of the alternatives needs no token ids (a monitor asking how
// likely a line was to begin).
func TestLogprobsNameTheirText(t *testing.T) {
	tok := trainTokenizer(t)
	e := textEngine(t, tok, 2, 128, 5)
	c, err := e.Complete(context.Background(), &backend.Request{Prompt: "the quick", MaxTokens: 3, TopLogprobs: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i, tk := range c.Tokens {
		if len(tk.Top) != 4 {
			t.Fatalf("token %d: %d alternatives, want 4", i, len(tk.Top))
		}
		for _, alt := range tk.Top {
			if want := string(tok.DecodeBytes([]int{alt.ID})); alt.Text != want || want == "" {
				t.Errorf("token %d: alternative %d named %q, want %q", i, alt.ID, alt.Text, want)
			}
		}
	}
}

// trainTokenizer is a small byte-level BPE for the text tests.
func trainTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	corpus := []string{"the quick brown fox jumps over the lazy dog", "Countdown: 3 + 4 = 7", "héllo wörld ünïcode ✓"}
	tok, err := tokenizer.Train(context.Background(), slices.Values(corpus), 300, []string{"<|end|>"})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTextStopAndStreaming(t *testing.T) {
	tok := trainTokenizer(t)
	e := textEngine(t, tok, 2, 128, 5)
	var streamed strings.Builder
	var streamedTokens int
	free, err := e.Complete(context.Background(), &backend.Request{Prompt: "the quick", MaxTokens: 60,
		OnChunk: func(ch backend.Chunk) { streamed.WriteString(ch.Text); streamedTokens += len(ch.Tokens) }})
	if err != nil {
		t.Fatal(err)
	}
	if streamed.String() != free.Text || streamedTokens != len(free.Tokens) {
		t.Errorf("streamed %q in %d tokens, completion %q in %d", streamed.String(), streamedTokens, free.Text, len(free.Tokens))
	}
	if free.Text != tok.Decode(ids(free)) {
		t.Errorf("text %q, decoded tokens %q", free.Text, tok.Decode(ids(free)))
	}
	// Stop at a piece of what greedy decoding writes.
	if len(free.Text) < 20 {
		t.Fatalf("only %q generated", free.Text)
	}
	stop := free.Text[10:13]
	streamed.Reset()
	c2, err := e.Complete(context.Background(), &backend.Request{Prompt: "the quick", MaxTokens: 60, Stop: []string{"\x00never", stop},
		OnChunk: func(ch backend.Chunk) { streamed.WriteString(ch.Text) }})
	if err != nil {
		t.Fatal(err)
	}
	want := free.Text[:strings.Index(free.Text, stop)]
	if c2.Text != want || c2.Finish != backend.FinishStop || c2.StopString != stop || streamed.String() != want {
		t.Errorf("stop %q: text %q, streamed %q, finish %q (%q); want %q", stop, c2.Text, streamed.String(), c2.Finish, c2.StopString, want)
	}
	if c2.Usage.CachedPromptTokens == 0 {
		t.Error("the same prompt again reused nothing")
	}
}

func TestTextStream(t *testing.T) {
	for _, tc := range []struct {
		stops  []string
		pieces []string
		want   []string // released after each piece
		text   string
		stop   string
	}{
		{nil, []string{"ab", "c"}, []string{"ab", "c"}, "abc", ""},
		{[]string{"END"}, []string{"xE", "N", "y"}, []string{"x", "", "ENy"}, "xENy", ""},
		{[]string{"END"}, []string{"xE", "ND", "zz"}, []string{"x", ""}, "x", "END"},
		// The stop string that starts first wins.
		{[]string{"b", "abc"}, []string{"a", "bc"}, []string{"", ""}, "", "abc"},
		// A character split across tokens waits for its last byte.
		{nil, []string{"\xc3", "\xa9t"}, []string{"", "ét"}, "ét", ""},
		{[]string{"é"}, []string{"x\xc3", "\xa9"}, []string{"x", ""}, "x", "é"},
	} {
		ts := newTextStream(tc.stops)
		var got []string
		stop := ""
		for _, p := range tc.pieces {
			var s string
			s, stop = ts.add([]byte(p))
			got = append(got, s)
			if stop != "" {
				break
			}
		}
		if !slices.Equal(got, tc.want) || ts.text() != tc.text || stop != tc.stop {
			t.Errorf("stops %q, pieces %q: released %q, text %q, stop %q; want %q, %q, %q",
				tc.stops, tc.pieces, got, ts.text(), stop, tc.want, tc.text, tc.stop)
		}
	}
}

func TestSampler(t *testing.T) {
	logits := []float32{1, 3, 2, 0.5, 3}
	draw := func(req backend.Request, n int) map[int]int {
		s := newSampler(&req, 42)
		counts := map[int]int{}
		for range n {
			counts[s.sample(logits)]++
		}
		return counts
	}
	if c := draw(backend.Request{}, 10); c[1] != 10 {
		t.Errorf("greedy: %v; want the first largest, token 1", c)
	}
	if c := draw(backend.Request{Temperature: 1, TopK: 1}, 10); c[1] != 10 {
		t.Errorf("top-k 1: %v", c)
	}
	if c := draw(backend.Request{Temperature: 1, TopK: 3}, 2000); c[0]+c[3] != 0 || c[2] == 0 {
		t.Errorf("top-k 3 drew %v; only tokens 1, 4 and 2 may come", c)
	}
	// p(1)=p(4)≈0.39, p(2)≈0.14: a nucleus of 0.7 holds only 1 and 4.
	if c := draw(backend.Request{Temperature: 1, TopP: 0.7}, 2000); c[1]+c[4] != 2000 {
		t.Errorf("top-p 0.7 drew %v", c)
	}
	// Temperature 1 follows the softmax: token 2 is drawn about
	// e²/(e+2e³+e²+e^0.5) ≈ 14.3% of the time.
	n := 20000
	c := draw(backend.Request{Temperature: 1}, n)
	if f := float64(c[2]) / float64(n); f < 0.13 || f > 0.157 {
		t.Errorf("token 2 drawn %.3f of the time, want about 0.143", f)
	}
}

// scriptedEnv writes "<" + what the model wrote + ">" after every token,
// allows only the choices it is given, and ends the thread after n fills.
type scriptedEnv struct {
	choices []string
	fills   int
	n       int
	log     []string
}

func (s *scriptedEnv) Begin() (string, error) { return "[", nil }
func (s *scriptedEnv) Next(w string) (string, error) {
	s.log = append(s.log, w)
	if w == "q" {
		return "", errors.New("q is not allowed")
	}
	s.fills++
	return "<" + w + ">", nil
}
func (s *scriptedEnv) Choices() []string { return s.choices }
func (s *scriptedEnv) Done() bool        { return s.fills >= s.n }

func TestEnvironmentFillsAndConstrains(t *testing.T) {
	tok := trainTokenizer(t)
	e := textEngine(t, tok, 2, 128, 6)
	env := &scriptedEnv{choices: []string{"x", "yz"}, n: 4}
	var streamed strings.Builder
	comp, err := e.Complete(context.Background(), &backend.Request{Prompt: "go", Temperature: 1, Seed: 3, Env: env,
		OnChunk: func(ch backend.Chunk) { streamed.WriteString(ch.Text) }})
	if err != nil {
		t.Fatal(err)
	}
	// Every sampled token is one of the choices' first tokens; each is
	// followed by the environment's fill, which is fed like a prompt.
	want := "["
	for _, w := range env.log {
		if w != "x" && w != "y" && w != "yz" {
			t.Fatalf("the model wrote %q, which no choice begins with", w)
		}
		want += w + "<" + w + ">"
	}
	if comp.Text != want || streamed.String() != want {
		t.Errorf("text %q, streamed %q, want %q", comp.Text, streamed.String(), want)
	}
	if comp.Finish != backend.FinishStop || len(env.log) != 4 {
		t.Errorf("finish %q after %d model tokens, want stop after 4", comp.Finish, len(env.log))
	}
	filled := 0
	for _, tk := range comp.Tokens {
		if tk.Filled {
			filled++
		}
	}
	if filled != comp.Usage.FilledTokens || filled == 0 || comp.Usage.CompletionTokens != len(comp.Tokens) {
		t.Errorf("usage %+v, %d filled tokens marked", comp.Usage, filled)
	}
	// With Masks, each constrained token carries the tokens the choices
	// allowed: exactly those whose text begins "x" or "yz".
	var allowed []int
	for id := range tok.VocabSize() {
		if text := tok.Decode([]int{id}); text != "" && (strings.HasPrefix("x", text) || strings.HasPrefix("yz", text)) {
			allowed = append(allowed, id)
		}
	}
	for _, masks := range []bool{false, true} {
		env := &scriptedEnv{choices: []string{"x", "yz"}, n: 4}
		comp, err := e.Complete(context.Background(), &backend.Request{Prompt: "go", Temperature: 1, Seed: 3, Env: env, Masks: masks})
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range comp.Tokens {
			switch {
			case tk.Filled || !masks:
				if tk.Allowed != nil {
					t.Errorf("masks %v: token %d (filled %v) carries allowed tokens %v", masks, tk.ID, tk.Filled, tk.Allowed)
				}
			case !slices.Equal(tk.Allowed, allowed) || !slices.Contains(tk.Allowed, tk.ID):
				t.Errorf("token %d: allowed %v, want %v", tk.ID, tk.Allowed, allowed)
			}
		}
	}
	// A token the environment rejects ends the thread, saying why.
	env2 := &scriptedEnv{choices: []string{"q"}, n: 10}
	bad, err := e.Complete(context.Background(), &backend.Request{Prompt: "go", Env: env2})
	if err != nil {
		t.Fatal(err)
	}
	if bad.Finish != backend.FinishEnv || !strings.Contains(bad.EnvError, "q is not allowed") {
		t.Errorf("a rejected token: finish %q, error %q", bad.Finish, bad.EnvError)
	}
}

// writeModelDir saves a small random model, whose config names eos as its
// end-of-sequence tokens, and its tokenizer as a model directory.
func writeModelDir(t *testing.T, eos []int) string {
	t.Helper()
	tok := trainTokenizer(t)
	c := model.Config{Vocab: tok.VocabSize(), Dim: 32, Hidden: 48, Layers: 1, Heads: 2, KVHeads: 2, HeadDim: 16,
		MaxSeq: 64, NormEps: 1e-5, RopeTheta: 10000, TiedEmbeddings: true}
	m, err := model.New(c)
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Init(rand.New(rand.NewPCG(8, 8)), 0.3)
	m.EOS = eos
	dir := t.TempDir()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(filepath.Join(dir, TokenizerFile)); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestOpenAndOpenFS(t *testing.T) {
	dir := writeModelDir(t, nil)
	var texts []string
	for _, open := range []func() (*Engine, error){
		func() (*Engine, error) { return Open(dir, Options{}) },
		func() (*Engine, error) { return OpenFS(os.DirFS(dir), ".", Options{}) },
	} {
		e, err := open()
		if err != nil {
			t.Fatal(err)
		}
		comp, err := e.Complete(context.Background(), &backend.Request{Prompt: "hello", MaxTokens: 10})
		e.Close()
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, comp.Text)
	}
	if texts[0] != texts[1] {
		t.Errorf("Open wrote %q, OpenFS %q", texts[0], texts[1])
	}
	nope := filepath.Join(dir, "nope")
	if _, err := Open(nope, Options{}); err == nil || !strings.Contains(err.Error(), filepath.Join(nope, model.ConfigFile)) {
		t.Errorf("a missing directory: %v, want an error naming its config on disk", err)
	}
	os.Remove(filepath.Join(dir, TokenizerFile))
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, TokenizerFile)) {
		t.Errorf("a missing tokenizer: %v, want an error naming it on disk", err)
	}
}

// Open ends threads on the config's eos_token_id, read with the model.
func TestOpenTakesEOSFromConfig(t *testing.T) {
	dir := writeModelDir(t, []int{5, 9})
	for _, tc := range []struct {
		name string
		opts Options
		want []int
	}{
		{"config", Options{}, []int{5, 9}},
		{"options", Options{EOS: []int{2}}, []int{2}},
	} {
		e, err := Open(dir, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		e.Close()
		if !slices.Equal(e.opts.EOS, tc.want) {
			t.Errorf("%s: EOS %v, want %v", tc.name, e.opts.EOS, tc.want)
		}
	}
}

// Threads decoding the same tokens in lockstep share one chain of blocks:
// the follower reads what the leader writes in the same step.
func TestIdenticalThreadsShareBlocks(t *testing.T) {
	m := testModel(t, 16)
	prompt := randomTokens(rand.New(rand.NewPCG(9, 9)), 40, 97)
	req := func() *backend.Request { return &backend.Request{PromptTokens: prompt, MaxTokens: 100} }
	one := newEngine(t, m, Options{})
	alone, err := one.Complete(context.Background(), req())
	if err != nil {
		t.Fatal(err)
	}
	single := one.Stats().Blocks
	two := newEngine(t, m, Options{})
	got := completeAll(t, two, []*backend.Request{req(), req()})
	for i, c := range got {
		if !slices.Equal(ids(c), ids(alone)) {
			t.Errorf("thread %d decoded other tokens beside its twin", i)
		}
	}
	if b := two.Stats().Blocks; b > single+1 {
		t.Errorf("two identical threads hold %d blocks, one alone %d", b, single)
	}
}

// Top-p samples exactly the nucleus: the most likely tokens whose
// probabilities first reach p, and always at least the most likely one.
func TestTopPSamplesOnlyTheNucleus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		logits []float32
		topP   float64
		want   []int // the nucleus, in id order
	}{
		// Probabilities 0.76, 0.10, 0.10, 0.04: the first alone reaches p.
		{"most likely alone", []float32{3, 1, 1, 0}, 0.3, []int{0}},
		// 0.53, 0.32, 0.07, 0.07: the first two reach p.
		{"two", []float32{2, 1.5, 0, 0}, 0.8, []int{0, 1}},
		// 0.5, 0.5: a tie goes to the lower id.
		{"tie", []float32{1, 1, -1e9}, 0.3, []int{0}},
		{"p of 1 is the whole distribution", []float32{2, 1.5, 0, 0}, 1, []int{0, 1, 2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSampler(&backend.Request{Temperature: 1, TopP: tc.topP}, 1)
			seen := map[int]bool{}
			for range 1000 {
				seen[s.sample(tc.logits)] = true
			}
			got := slices.Sorted(maps.Keys(seen))
			if !slices.Equal(got, tc.want) {
				t.Errorf("top-p %g sampled tokens %v, want %v", tc.topP, got, tc.want)
			}
		})
	}
}

type fillEnv struct{ fill string }

func (fillEnv) Begin() (string, error)        { return "", nil }
func (f fillEnv) Next(string) (string, error) { return f.fill, nil }
func (fillEnv) Choices() []string             { return nil }
func (fillEnv) Done() bool                    { return false }

func TestNoFillPastAStopString(t *testing.T) {
	tok := trainTokenizer(t)
	e := textEngine(t, tok, 1, 64, 2)
	var streamed strings.Builder
	comp, err := e.Complete(context.Background(), &backend.Request{Prompt: "go", Stop: []string{"STOP"}, Env: fillEnv{"aSTOPbbb"},
		OnChunk: func(ch backend.Chunk) { streamed.WriteString(ch.Text) }})
	if err != nil {
		t.Fatal(err)
	}
	if comp.Finish != backend.FinishStop || strings.Contains(comp.Text, "b") || strings.Contains(streamed.String(), "b") || !strings.HasSuffix(comp.Text, "a") {
		t.Errorf("text %q, streamed %q, finish %q", comp.Text, streamed.String(), comp.Finish)
	}
}

type panickyEnv struct{ fillEnv }

func (panickyEnv) Choices() []string { panic("a bug in the task") }

// A task's panic ends its thread with the reason, and the engine goes on.
func TestPanickingEnvironmentEndsOnlyItsThread(t *testing.T) {
	tok := trainTokenizer(t)
	e := textEngine(t, tok, 1, 64, 3)
	comp, err := e.Complete(context.Background(), &backend.Request{Prompt: "go", Env: panickyEnv{}})
	if err != nil || comp.Finish != backend.FinishEnv || !strings.Contains(comp.EnvError, "a bug in the task") {
		t.Fatalf("%+v, %v", comp, err)
	}
	if _, err := e.Complete(context.Background(), &backend.Request{Prompt: "go", MaxTokens: 3}); err != nil {
		t.Errorf("the engine after a panicking environment: %v", err)
	}
}

// logprobErrors decodes 60 tokens with e after a seeded 40-token prompt
// and returns, for each, how far its log-probability is from the one
// m.Forward gives it over the whole sequence recomputed.
func logprobErrors(t *testing.T, m *model.Model, e *Engine) []float64 {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	prompt := randomTokens(rng, 40, m.Config.Vocab)
	c, err := e.Complete(context.Background(), &backend.Request{PromptTokens: prompt, MaxTokens: 60, Logprobs: true})
	if err != nil {
		t.Fatal(err)
	}
	seq := append([]int(nil), prompt...)
	var errs []float64
	for _, tok := range c.Tokens {
		a := m.NewActivations(1, len(seq))
		if _, err := m.Forward(a, seq, nil); err != nil {
			t.Fatal(err)
		}
		logits := a.Logits(len(seq)-1, m.Config.Vocab)
		mx := math.Inf(-1)
		for _, v := range logits {
			mx = math.Max(mx, float64(v))
		}
		var z float64
		for _, v := range logits {
			z += math.Exp(float64(v) - mx)
		}
		ref := float64(logits[tok.ID]) - mx - math.Log(z)
		errs = append(errs, math.Abs(ref-tok.Logprob))
		seq = append(seq, tok.ID)
	}
	return errs
}

// The engine computes the model's own probabilities: every token it
// decodes has, within half precision's error, the log-probability
// model.Forward gives it over the whole sequence recomputed. The engine's
// speed (packed weights, a block cache, batching, attention divided per
// head) must never drift from the model it serves.
func TestMatchesTheModelsForward(t *testing.T) {
	opts := []Options{{Weights: WeightsF32}, {Weights: WeightsF16}, {Weights: WeightsF32, KV8: true}}
	if bf16Kernels() {
		opts = append(opts, Options{Weights: WeightsBF16})
	}
	if q8Kernels() {
		opts = append(opts, Options{Weights: WeightsQ8})
	}
	// The last runs Llama 3's rescaled rotary frequencies, with a
	// pretraining context short enough that every band is in use.
	opts = append(opts, Options{Weights: WeightsF32})
	for i, o := range opts {
		m := testModel(t, 8)
		if i == len(opts)-1 {
			m = scaledRoPE(t, m)
		}
		e := newEngine(t, m, o)
		errs := logprobErrors(t, m, e)
		worst := slices.Max(errs)
		// The KV cache is in half precision (about 3 decimal digits).
		limit := 1e-2
		switch o.Weights {
		case WeightsF16:
			limit = 3e-2
		case WeightsBF16:
			// 8 significant bits for weights and activations, about 2
			// decimal digits.
			limit = 0.2
		case WeightsQ8:
			// Weights and activations each within half a step of 1/127
			// of their block's largest, on a model of large weights
			// (0.17 measured).
			limit = 0.3
		}
		if o.KV8 {
			// 8-bit keys and values: each within 1/254 of its head's
			// largest, on a model of large weights.
			limit = 0.2
		}
		if worst > limit {
			t.Errorf("%+v: log-probabilities differ from model.Forward's by up to %.2g over %d tokens", o, worst, len(errs))
		}
		t.Logf("%+v: worst difference %.2g over %d tokens", o, worst, len(errs))
	}
}

// An 8-bit cache fits more tokens in the same budget: 1 byte a value plus
// a 4-byte scale per 8 of them (head dimension 16 here) against 2 bytes.
func TestKV8HoldsMoreBlocks(t *testing.T) {
	m := testModel(t, 16)
	const budget = 8 << 20
	half, q8 := newEngine(t, m, Options{CacheBytes: budget}).Stats(), newEngine(t, m, Options{CacheBytes: budget, KV8: true}).Stats()
	ratio := float64(q8.MaxBlocks) / float64(half.MaxBlocks)
	if want := 2 / (1 + 4.0/16); math.Abs(ratio-want) > 0.01 {
		t.Errorf("8-bit cache holds %d blocks, half precision %d: ratio %.3f, want %.3f", q8.MaxBlocks, half.MaxBlocks, ratio, want)
	}
}

// The 8-bit cache's keys are multiplied four dimensions at a time: a head
// dimension that is not a multiple of 4 is refused, naming it.
func TestKV8RefusesOddHeadDimensions(t *testing.T) {
	_, err := New(testModel(t, 6), nil, Options{KV8: true})
	if err == nil || !strings.Contains(err.Error(), "multiple of 4, not 6") {
		t.Fatalf("head dimension 6 with an 8-bit cache: %v", err)
	}
	e, err := New(testModel(t, 6), nil, Options{})
	if err != nil {
		t.Fatalf("head dimension 6 in half precision: %v", err)
	}
	e.Close()
}
