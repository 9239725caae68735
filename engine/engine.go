// Package engine is braid's in-process inference engine: it implements
// backend.Backend for a model from package model, decoding many threads at
// once in one forward pass per step (continuous batching), over a KV cache
// shared between threads as a prefix tree of reference-counted blocks.
//
// A thread whose prompt shares a prefix with cached tokens (a fork of
// another thread, a parent resumed after its children, a retry) reuses
// their keys and values instead of computing them, and says so in its
// usage. Threads join and leave at any step; a cancelled thread lets go of
// its blocks at the next step; blocks no thread uses stay cached until the
// budget needs them, least recently used first.
//
// Every row of a step is computed as it would be alone (see tensor.Gemm and
// tensor.VecMat): greedy decoding gives the same tokens whether a thread
// runs alone or among many, and whether its prefix was computed or reused.
package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/tensor"
	"github.com/braid-dev/braid/tokenizer"
	"github.com/braid-dev/braid/tokenizer/chat"
)

// Defaults for Options.
const (
	DefaultCacheBytes = 1 << 30
	DefaultStepTokens = 512
	DefaultMaxThreads = 256
	DefaultFairShare  = 1
	DefaultStepWork   = 64
	// DefaultIdleRelease is Options.IdleRelease's default.
	DefaultIdleRelease = 10 * time.Second
)

// Options tune an engine; the zero value takes every default.
type Options struct {
	// CacheBytes is the KV cache's budget (DefaultCacheBytes when 0).
	CacheBytes int64
	// StepTokens caps the tokens one forward pass carries: the next
	// tokens of decoding threads first, in arrival order, then prompt
	// chunks, up to the cap (DefaultStepTokens when 0). A cap below the
	// number of running threads leaves the latest to later steps.
	StepTokens int
	// StepWork caps the work of one step, in rows of weight products, a
	// row's attention to p cached positions counting p·(its cost per
	// position) more: a step's time is about its work, and a request that
	// arrives at a busy engine waits for the step in progress
	// (DefaultStepWork when 0; negative: no cap). A step always carries
	// at least one row.
	StepWork int
	// MaxThreads caps the threads decoding at once; later requests wait
	// (DefaultMaxThreads when 0). While several groups of threads
	// (backend.WithGroup: the requests of a server) want places, each
	// gets an equal share of them: a group below its share takes a place
	// from the one furthest above it, whose thread goes back to wait.
	MaxThreads int
	// FairShare bounds what one group of threads takes of a step while
	// several run: a group wider than FairShare times the narrowest (in
	// threads, each weighed by its row's work: weight products plus
	// attention to its cached positions) gets at most that much work a
	// step (DefaultFairShare when 0; negative: no bound, rows in arrival
	// order). A step costs about its work, so a request of one thread
	// beside one of a thousand decodes at a small multiple of its speed
	// alone, while the wide one gets the rest.
	FairShare int
	// Workers is the goroutines a step runs on (GOMAXPROCS when 0).
	Workers int
	// EOS are the end-of-sequence token ids: sampling one ends a thread.
	EOS []int
	// Weights is how the weight matrices are kept (DefaultWeights() when
	// "").
	Weights WeightFormat
	// KV8 keeps the KV cache in 8-bit integers, with a scale for each
	// head's keys (and values) at each position, instead of half
	// precision: a byte a value rather than two, plus the scales, so up
	// to twice the tokens fit the budget and attention has up to half the
	// bytes to read (docs/performance.md has what the engine gains).
	// Each value is rounded to within 1/254 of its head's largest
	// magnitude, and so is each query scored against the keys, whose
	// products are then exact sums of integers (tensor.ScoresQ8). The head
	// dimension must be a multiple of 4.
	KV8 bool
	// Log receives what a failure inside the engine leaves for its
	// maintainers, the stack included, which errors returned to callers
	// never carry (default: discard).
	Log *slog.Logger
	// IdleRelease is how long the engine waits with nothing to do before
	// it drops the KV cache's blocks and returns their memory to the
	// operating system (DefaultIdleRelease when 0; negative: never).
	IdleRelease time.Duration
	// Attention is how a token attends to the positions before it
	// (AttentionSparse for a model with a lightning indexer, else
	// AttentionDense, when "").
	Attention AttentionMode
	// IndexTopK is how many positions a token attends to sparsely (the
	// model's index_topk when 0).
	IndexTopK int
	// Context is the positions a thread may reach, prompt included: the
	// model's own (max_position_embeddings) when 0. Past the positions a
	// model was trained on, its rotary embeddings extrapolate, and
	// whether that helps is the model's to show: the Countdown model's
	// card has its figures at both lengths.
	Context int
}

// WeightFormat is the precision of the engine's weight matrices.
type WeightFormat string

const (
	// WeightsF16 rounds the weights to half precision where the CPU has
	// kernels for it (AVX-512), else keeps float32: decoding streams every
	// weight at every step, and half the bytes is up to twice the speed;
	// models shipped in F16 lose nothing.
	WeightsF16 WeightFormat = "f16"
	// WeightsBF16 rounds the weights, and each product's activations, to
	// bfloat16, for the AVX-512 BF16 kernels: two multiply-adds an
	// instruction, so a step of many threads, bound by arithmetic, runs
	// up to twice as fast; a step of one streams the bytes of F16. Both
	// operands keep 8 significant bits, so the tokens can differ from
	// F16's; the Countdown model card has what that costs in accuracy.
	WeightsBF16 WeightFormat = "bf16"
	// WeightsF32 keeps the weights in float32: the model's own values.
	WeightsF32 WeightFormat = "f32"
	// WeightsQ8 keeps the weights in 8-bit blocks of 32 with a scale each,
	// as llama.cpp's Q8_0 does (a Q8_0 file's weights keep their values),
	// and rounds each product's activations the same way, for AVX-512
	// VNNI's byte products: a byte and a sixteenth a weight, so one
	// sequence decodes up to twice as fast as in half precision.
	WeightsQ8 WeightFormat = "q8"
)

// DefaultWeights is the weight format an engine uses when its options
// name none: bfloat16 on a CPU with AVX-512 BF16, where products of many
// rows run at twice the rate (on AMX tiles, several times) and the
// Countdown model's card measures no loss of accuracy from it; half
// precision elsewhere.
func DefaultWeights() WeightFormat {
	if tensor.BF16Available() {
		return WeightsBF16
	}
	return WeightsF16
}

// AttentionMode is how the engine attends.
type AttentionMode string

const (
	// AttentionDense attends to every position before a token.
	AttentionDense AttentionMode = "dense"
	// AttentionSparse attends to the IndexTopK positions the model's
	// lightning indexer scores highest (DeepSeek-V3.2's sparse
	// attention; the model's indexer.go): a token far into a long context
	// reads a fraction of the cache.
	AttentionSparse AttentionMode = "sparse"
)

// ParseAttention reads an attention mode's name, "" meaning the model's
// default.
func ParseAttention(s string) (AttentionMode, error) {
	switch a := AttentionMode(s); a {
	case "", AttentionDense, AttentionSparse:
		return a, nil
	}
	return "", fmt.Errorf("unknown attention %q (want %s or %s)", s, AttentionDense, AttentionSparse)
}

// ParseWeightFormat reads a weight format's name, "" meaning
// DefaultWeights().
func ParseWeightFormat(s string) (WeightFormat, error) {
	switch f := WeightFormat(s); f {
	case "":
		return DefaultWeights(), nil
	case WeightsF16, WeightsBF16, WeightsF32, WeightsQ8:
		return f, nil
	}
	return "", fmt.Errorf("unknown weight format %q (want %s, %s, %s or %s)", s, WeightsF16, WeightsBF16, WeightsQ8, WeightsF32)
}

// kvScales is the scales of one cache block: none in half precision.
func kvScales(c model.Config, kv8 bool) int {
	if kv8 {
		return blockScales(c)
	}
	return 0
}

// ErrClosed is returned for requests to a closed engine.
var ErrClosed = errors.New("engine: closed")

// Engine generates completions from one model. It is safe for concurrent
// use; Close stops it.
type Engine struct {
	w    *weights
	tok  *tokenizer.Tokenizer
	opts Options
	eos  map[int]bool
	chat *chat.Template // the model's chat template, nil for none

	mu      sync.Mutex
	queue   []*thread
	closed  bool
	failure error // why the loop stopped, if it failed
	wake    chan struct{}
	closing chan struct{}
	done    chan struct{}
	stats   atomic.Pointer[Stats]

	// byText finds the tokens of a text, for matching the environment's
	// choices (longestText is the longest); allowed is the mask's
	// scratch.
	byText      map[string][]int
	longestText int
	allowed     []bool
	rawLogits   []float32
	// sampleScratch is every thread's sampler's working memory.
	sampleScratch sampleScratch

	// Owned by the loop goroutine.
	cache    *cache
	fw       *forward
	running  []*thread
	rows     []row
	finished []*thread
	steps    int64
	preempts int64
	released bool // the cache was let go since the engine last ran
	// Scratch of the fair scheduler: rows each group asks for and may
	// take in a step, places each group holds, and the running threads
	// least recently served first.
	// quota carries, from step to step, the work a held-back group may
	// still do: deficit round robin, so that a group whose next row costs
	// more than its share of one step gets it every few steps.
	width, quota map[string]float64
	places       map[string]int
	sharing      bool    // the step's rows are under quotas
	work         float64 // what the step may still carry (StepWork)
	order        []*thread
	// depthCost is what attending to one cached position costs, in rows
	// of weight products: a row at position p costs 1 + p·depthCost.
	depthCost float64
	// indexCost is what scoring one cached position costs a sparse row's
	// indexer, 0 for dense attention; a sparse row attends to at most
	// w.index.topK positions.
	indexCost float64
}

// Stats describe an engine between two steps.
type Stats struct {
	Running, Waiting int // threads decoding, and waiting for a place
	// Blocks hold cached tokens; ReferencedBlocks are those a running
	// thread uses, the rest can be evicted. BlockBytes is one block's size.
	Blocks, ReferencedBlocks, BlockBytes int
	MaxBlocks                            int
	Steps                                int64
	// Preemptions counts threads set back to wait for blocks, their
	// tokens to be recomputed or re-found in the cache.
	Preemptions int64
}

// New returns an engine for m, running until Close. tok may be nil for an
// engine that takes only token prompts and returns no text.
func New(m *model.Model, tok *tokenizer.Tokenizer, opts Options) (*Engine, error) {
	if tok != nil && tok.VocabSize() > m.Config.Vocab {
		return nil, fmt.Errorf("engine: the tokenizer has %d tokens, the model only %d", tok.VocabSize(), m.Config.Vocab)
	}
	for _, id := range opts.EOS {
		if id < 0 || id >= m.Config.Vocab {
			return nil, fmt.Errorf("engine: end-of-sequence token %d outside the vocabulary of %d", id, m.Config.Vocab)
		}
	}
	if opts.Weights == "" {
		opts.Weights = DefaultWeights()
	}
	if opts.CacheBytes == 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	if opts.StepTokens == 0 {
		opts.StepTokens = DefaultStepTokens
	}
	if opts.MaxThreads == 0 {
		opts.MaxThreads = DefaultMaxThreads
	}
	if opts.FairShare == 0 {
		opts.FairShare = DefaultFairShare
	}
	if opts.StepWork == 0 {
		opts.StepWork = DefaultStepWork
	}
	if opts.IdleRelease == 0 {
		opts.IdleRelease = DefaultIdleRelease
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.CacheBytes < 0 || opts.StepTokens < 0 || opts.MaxThreads < 0 || opts.Workers < 0 || opts.Context < 0 {
		return nil, fmt.Errorf("engine: negative option in %+v", opts)
	}
	cfg := m.Config
	if opts.Attention == "" {
		opts.Attention = AttentionDense
		if cfg.HasIndexer() {
			opts.Attention = AttentionSparse
		}
	}
	topK := 0
	switch {
	case opts.Attention != AttentionDense && opts.Attention != AttentionSparse:
		return nil, fmt.Errorf("engine: unknown attention %q", opts.Attention)
	case opts.IndexTopK < 0:
		return nil, fmt.Errorf("engine: index top-k %d is negative", opts.IndexTopK)
	case opts.Attention == AttentionSparse && !cfg.HasIndexer():
		return nil, errors.New("engine: sparse attention needs a model with a lightning indexer (index_n_heads, index_head_dim, index_topk in its config.json), which this one lacks")
	case opts.Attention == AttentionDense && opts.IndexTopK > 0:
		return nil, fmt.Errorf("engine: index top-k %d with dense attention, which attends to every position", opts.IndexTopK)
	case opts.Attention == AttentionSparse:
		topK = cmp.Or(opts.IndexTopK, cfg.IndexTopK)
		opts.IndexTopK = topK
	}
	if opts.KV8 && cfg.HeadDim%4 != 0 {
		return nil, fmt.Errorf("engine: an 8-bit KV cache needs a head dimension that is a multiple of 4, not %d", cfg.HeadDim)
	}
	if opts.Context > 0 {
		cfg.MaxSeq = opts.Context
	}
	// The rotary tables and each worker's attention scratch grow with the
	// context: a context far too long must fail here, before the sums
	// below overflow and before anything is allocated.
	workers := opts.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	perPosition := 4*float64(cfg.HeadDim) + 4*float64(workers*attnGroupRows)*float64(cfg.Heads+2*cfg.KVHeads)
	if err := model.CheckMemory((float64(cfg.MaxSeq) + blockTokens) * perPosition); err != nil {
		return nil, fmt.Errorf("engine: a context of %d positions: its rotary tables and attention scratch: %w", cfg.MaxSeq, err)
	}
	// One thread must fit: a full context, one block per 16 tokens, plus
	// one for a fork's partial block. Checked before the weights are packed
	// and the rotary tables built, which a context far too long for memory
	// would otherwise allocate first.
	blockSize := int64(blockBytes(cfg, opts.KV8, topK > 0))
	maxBlocks := opts.CacheBytes / blockSize
	if need := int64((cfg.MaxSeq+blockTokens-1)/blockTokens + 1); maxBlocks < need {
		return nil, fmt.Errorf("engine: a KV cache of %d bytes holds %d blocks of %d bytes; one %d-token context needs %d (%d bytes)",
			opts.CacheBytes, maxBlocks, blockSize, cfg.MaxSeq, need, need*blockSize)
	}
	w, err := newWeights(cfg, m.Params, opts.Weights, topK)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		w: w, tok: tok, opts: opts, eos: map[int]bool{},
		width: map[string]float64{}, quota: map[string]float64{}, places: map[string]int{},
		depthCost: attentionCost(cfg),
		indexCost: indexCost(cfg, topK),
		wake:      make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{}),
		cache: newCache(blockValues(cfg), kvScales(cfg, opts.KV8), blockIndexKeys(cfg, topK > 0), int(maxBlocks)),
		fw:    newForward(w, opts.Workers, opts.KV8),
	}
	for _, id := range opts.EOS {
		e.eos[id] = true
	}
	if tok != nil {
		texts := make([]string, tok.VocabSize())
		for id := range texts {
			texts[id] = string(tok.DecodeBytes([]int{id}))
		}
		e.setTokenTexts(texts)
	}
	e.publish()
	go e.loop()
	return e, nil
}

// Config is the model's configuration, its MaxSeq the context the
// engine runs at (Options.Context where set).
func (e *Engine) Config() model.Config { return e.w.cfg }

// Options returns the options the engine runs with, its defaults filled
// in.
func (e *Engine) Options() Options { return e.opts }

// Tokenizer is the engine's tokenizer, nil for none.
func (e *Engine) Tokenizer() *tokenizer.Tokenizer { return e.tok }

// ChatTemplate is the chat template the model's files carry, nil for a
// model without one (braid's search models, base models). The engine
// itself continues raw text; chat.NewBackend puts the template in front.
func (e *Engine) ChatTemplate() *chat.Template { return e.chat }

// Err reports why the engine stopped serving: ErrClosed after Close, the
// internal failure that stopped it, or nil while it serves.
func (e *Engine) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.failure != nil:
		return e.failure
	case e.closed:
		return ErrClosed
	}
	return nil
}

// Stats returns the engine's state after its last step.
func (e *Engine) Stats() Stats { return *e.stats.Load() }

// Close stops the engine: requests in flight fail with ErrClosed.
func (e *Engine) Close() error {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		close(e.closing)
	}
	e.mu.Unlock()
	<-e.done
	return nil
}

func (e *Engine) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// thread is one completion in flight.
type thread struct {
	req       *backend.Request
	group     string // backend.Group of its context
	served    int64  // the last step that computed a row of it
	tokens    []int  // prompt, then generated tokens
	promptLen int
	limit     int // stop when len(tokens) reaches it
	pos       int // tokens whose keys and values are in the cache
	cur       cursor
	// countCached is set until the thread is preempted: prompt tokens
	// reused after that were computed by the thread itself.
	countCached bool
	cached      int
	starved     bool // could not get a block this step
	sampler     *sampler
	seed        uint64
	text        *textStream // nil without a tokenizer
	out         []backend.Token
	finish      backend.FinishReason
	stop        string
	err         error
	final       backend.Chunk // the last token, delivered with the completion
	env         backend.Environment
	envErr      string
	filled      int // completion tokens the environment wrote

	cancelled atomic.Bool
	notify    chan struct{}
	mu        sync.Mutex
	chunks    []backend.Chunk
	result    *backend.Completion
}

func (e *Engine) newThread(req *backend.Request) (*thread, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	th := &thread{req: req, notify: make(chan struct{}, 1), countCached: true}
	c := e.w.cfg
	switch {
	case req.PromptTokens != nil:
		for i, t := range req.PromptTokens {
			if t < 0 || t >= c.Vocab {
				return nil, backend.Invalid(fmt.Errorf("engine: prompt token %d (at %d) outside the vocabulary of %d", t, i, c.Vocab))
			}
		}
		th.tokens = slices.Clone(req.PromptTokens)
	case e.tok == nil:
		return nil, backend.Invalid(errors.New("engine: a text prompt needs a tokenizer; this engine takes token ids only"))
	default:
		th.tokens = e.tok.Encode(req.Prompt)
	}
	if len(req.Stop) > 0 && e.tok == nil {
		return nil, backend.Invalid(errors.New("engine: stop strings need a tokenizer"))
	}
	th.promptLen = len(th.tokens)
	if th.promptLen > c.MaxSeq {
		return nil, fmt.Errorf("engine: the prompt has %d tokens; the model's context is %d: %w", th.promptLen, c.MaxSeq, backend.ErrPromptTooLong)
	}
	th.limit = c.MaxSeq
	if req.MaxTokens > 0 && req.MaxTokens < c.MaxSeq-th.promptLen {
		// Compared before adding: a MaxTokens near the largest int would
		// overflow the sum.
		th.limit = th.promptLen + req.MaxTokens
	}
	th.seed = req.Seed
	for th.seed == 0 {
		th.seed = rand.Uint64()
	}
	th.sampler = newSampler(req, th.seed)
	th.sampler.scratch = &e.sampleScratch // the loop draws for one thread at a time
	if e.tok != nil {
		th.text = newTextStream(req.Stop)
	}
	if req.Env != nil {
		if e.tok == nil {
			return nil, errors.New("engine: an environment needs a tokenizer")
		}
		th.env = req.Env
		var begin string
		var done bool
		if err := guard(func() {
			var err error
			if begin, err = th.env.Begin(); err != nil {
				panic(err)
			}
			done = th.env.Done()
		}); err != nil {
			return nil, fmt.Errorf("engine: the environment refuses the prompt: %w", err)
		}
		if begin != "" {
			var chunk backend.Chunk
			e.fill(th, begin, &chunk)
			th.deliver(chunk, nil)
		}
		if th.finish == "" && done {
			th.finish = backend.FinishStop
		}
	}
	return th, nil
}

// Complete implements backend.Backend. A failure while preparing or
// delivering the completion (a bug reached by one odd request) is that
// completion's error, never the caller's crash or the engine's.
func (e *Engine) Complete(ctx context.Context, req *backend.Request) (c *backend.Completion, err error) {
	var th *thread
	defer func() {
		if p := recover(); p != nil {
			e.opts.Log.Error("engine: a completion failed", "panic", p, "stack", string(debug.Stack()))
			c, err = nil, fmt.Errorf("engine: internal error: %v", p)
			if th != nil {
				// Nobody waits for it any more (OnChunk panicked).
				th.cancelled.Store(true)
				e.signal()
			}
		}
	}()
	th, err = e.newThread(req)
	if err != nil {
		return nil, err
	}
	th.group = backend.Group(ctx)
	if th.finish != "" {
		// The environment ended the thread before the model wrote.
		e.complete(th)
		if req.OnChunk != nil {
			for _, c := range th.chunks {
				req.OnChunk(c)
			}
		}
		return th.result, nil
	}
	e.mu.Lock()
	if e.closed {
		err := e.failure
		e.mu.Unlock()
		if err == nil {
			err = ErrClosed
		}
		return nil, err
	}
	e.queue = append(e.queue, th)
	e.mu.Unlock()
	e.signal()
	done := ctx.Done()
	for {
		select {
		case <-th.notify:
		case <-done:
			// The loop lets go of the thread at its next step and
			// delivers what it generated.
			th.cancelled.Store(true)
			e.signal()
			done = nil
		}
		th.mu.Lock()
		chunks, result := th.chunks, th.result
		th.chunks = nil
		th.mu.Unlock()
		if len(chunks) >= maxBacklog {
			e.signal() // the thread waits for this read
		}
		if req.OnChunk != nil {
			for _, c := range chunks {
				req.OnChunk(c)
			}
		}
		if result != nil {
			if th.err == nil && result.Finish == backend.FinishCancelled {
				return result, ctx.Err()
			}
			return result, th.err
		}
	}
}

func (th *thread) backlogged() bool {
	th.mu.Lock()
	defer th.mu.Unlock()
	return len(th.chunks) >= maxBacklog
}

func (th *thread) deliver(c backend.Chunk, result *backend.Completion) {
	th.mu.Lock()
	if th.req.OnChunk != nil && (len(c.Tokens) > 0 || c.Text != "") {
		th.chunks = append(th.chunks, c)
	}
	if result != nil {
		th.result = result
	}
	th.mu.Unlock()
	select {
	case th.notify <- struct{}{}:
	default:
	}
}

// loop runs steps while there is work, until Close.
func (e *Engine) loop() {
	defer close(e.done)
	defer func() {
		if p := recover(); p != nil {
			// The stack goes to the log; callers, and through a server its
			// clients, get one line.
			e.opts.Log.Error("engine: stopped by an internal error", "panic", p, "stack", string(debug.Stack()))
			err := fmt.Errorf("engine: internal error: %v", p)
			e.mu.Lock()
			e.closed, e.failure = true, err
			e.mu.Unlock()
			e.failAll(err)
		}
	}()
	defer e.fw.crew.close()
	for e.admit() {
		e.reap()
		busy := len(e.finished) > 0
		if len(e.running) > 0 && e.step() {
			busy = true
		}
		e.publish()
		for _, th := range e.finished {
			e.complete(th)
		}
		clear(e.finished) // finished threads, their tokens and texts, go with their callers
		e.finished = e.finished[:0]
		if !busy {
			// Every thread waits for its reader: sleep until one reads,
			// a request comes or one is cancelled.
			select {
			case <-e.wake:
			case <-e.closing:
			}
		}
	}
	e.failAll(ErrClosed)
	// Only here, not on a panic: then a crew member may still be reading
	// the cache, and the dead engine's memory is the lesser harm.
	e.cache.close()
}

// admit moves waiting threads into the running set, waiting while there is
// nothing to do. It reports false once the engine is closing.
func (e *Engine) admit() bool {
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return false
		}
		// Cancelled threads still waiting leave without running.
		e.queue = slices.DeleteFunc(e.queue, func(th *thread) bool {
			if th.cancelled.Load() {
				th.finish = backend.FinishCancelled
				e.finished = append(e.finished, th)
				return true
			}
			return false
		})
		e.admitQueued()
		idle := len(e.running) == 0 && len(e.finished) == 0
		e.mu.Unlock()
		if !idle {
			e.released = false
			return true
		}
		e.publish()
		e.idle()
	}
}

// idle waits for work. Once it has waited IdleRelease with blocks cached,
// it lets go of them: a server that took a burst of requests gives the
// memory back rather than keep it for prefixes that may never come again.
func (e *Engine) idle() {
	var release <-chan time.Time
	if !e.released && e.opts.IdleRelease > 0 && e.cache.blocks+len(e.cache.free) > 0 {
		t := time.NewTimer(e.opts.IdleRelease)
		defer t.Stop()
		release = t.C
	}
	select {
	case <-e.wake:
	case <-e.closing:
	case <-release:
		e.cache.dropUnreferenced() // every block: nothing runs
		e.fw.shrink()
		e.rows, e.order = nil, nil
		e.released = true
		e.publish()
		// The blocks are most of what the process allocated; without a
		// collection and a scavenge now, the runtime would keep their
		// pages for minutes.
		debug.FreeOSMemory()
	}
}

// admitQueued moves threads from the queue to the running set while there
// are places and the blocks no running thread holds could take each one's
// sequence without reuse: admitting more would only have threads preempt
// each other. Places go to the group holding the fewest, earliest in the
// queue first; with every place or block taken, a group below its equal
// share takes them from the group furthest above it. Called with e.mu
// held.
func (e *Engine) admitQueued() {
	e.countPlaces()
	promised := 0 // blocks the threads admitted here will need
	for len(e.queue) > 0 {
		th := e.queue[e.nextQueued()]
		need := (len(th.tokens)+blockTokens-1)/blockTokens + 1
		// A place, and blocks for the thread's sequence: a group below
		// its share takes them from the group furthest above it.
		for len(e.running) >= e.opts.MaxThreads {
			if !e.yieldPlace(th.group, false) {
				return
			}
		}
		for need > e.cache.maxBlocks-e.cache.referenced-promised && len(e.running) > 0 {
			if !e.yieldPlace(th.group, true) {
				return
			}
		}
		promised += need
		e.running = append(e.running, th)
		e.places[th.group]++
		e.queue = slices.DeleteFunc(e.queue, func(x *thread) bool { return x == th })
	}
}

// nextQueued returns the index of the queued thread to admit next: the
// first of the group that holds the fewest places. Called with e.mu held.
func (e *Engine) nextQueued() int {
	best := 0
	if e.opts.FairShare < 0 {
		return best
	}
	for i, th := range e.queue {
		if e.places[th.group] < e.places[e.queue[best].group] {
			best = i
		}
	}
	return best
}

// yieldPlace frees a running place, and its blocks, for a thread of group
// g: for a place, when g holds less than an equal share of the places and
// another group more; for blocks, when another group holds more places
// than g and one more. The latest admitted thread of the group holding
// the most goes back to wait, its blocks cached for its return until they
// are needed. It reports whether it freed one. Called with e.mu held.
func (e *Engine) yieldPlace(g string, forBlocks bool) bool {
	if e.opts.FairShare < 0 {
		return false
	}
	groups := len(e.places)
	if e.places[g] == 0 {
		groups++
	}
	above := max(1, e.opts.MaxThreads/groups) // the share
	switch {
	case forBlocks:
		above = e.places[g] + 1
	case e.places[g] >= above:
		return false
	}
	victim := e.widest(func(r *thread) bool { return r.group != g && e.places[r.group] > above })
	if victim < 0 {
		return false
	}
	e.preempt(victim)
	return true
}

// countPlaces sets e.places to the running threads of each group.
func (e *Engine) countPlaces() {
	clear(e.places)
	for _, th := range e.running {
		e.places[th.group]++
	}
}

// widest returns the index of the latest admitted running thread, among
// those ok accepts, of the group holding the most places (e.places); -1
// when ok accepts none.
func (e *Engine) widest(ok func(*thread) bool) int {
	victim := -1
	for i := len(e.running) - 1; i >= 0; i-- {
		r := e.running[i]
		if ok(r) && (victim < 0 || e.places[r.group] > e.places[e.running[victim].group]) {
			victim = i
		}
	}
	return victim
}

// preempt sets running thread i back to wait, first in the queue, to be
// its group's next when a place or blocks free up: its blocks are let go,
// cached for its return until they are needed, and its tokens are
// recomputed, mostly re-found in the cache, when it runs again. Called
// with e.mu held.
func (e *Engine) preempt(i int) {
	v := e.running[i]
	e.cache.release(&v.cur)
	v.pos, v.countCached = 0, false
	e.preempts++
	if e.places[v.group]--; e.places[v.group] == 0 {
		delete(e.places, v.group)
	}
	e.running = slices.Delete(e.running, i, i+1)
	e.queue = slices.Insert(e.queue, 0, v)
}

// reap ends cancelled threads, freeing their blocks before the step.
func (e *Engine) reap() {
	e.running = slices.DeleteFunc(e.running, func(th *thread) bool {
		if !th.cancelled.Load() {
			return false
		}
		th.finish = backend.FinishCancelled
		e.end(th)
		return true
	})
}

// end lets go of a finished thread's blocks and queues its completion.
func (e *Engine) end(th *thread) {
	e.cache.release(&th.cur)
	e.finished = append(e.finished, th)
}

// maxBacklog is how many chunks a thread may have waiting for its reader
// before it stops decoding: a slow reader holds back its own thread, not
// the engine, and its chunks do not pile up.
const maxBacklog = 64

// step runs one forward pass over the running threads' next tokens and
// samples the threads that reached the end of what they know. It reports
// whether anything happened.
func (e *Engine) step() bool {
	e.rows = e.rows[:0]
	budget := e.opts.StepTokens
	e.work = math.Inf(1)
	if e.opts.StepWork > 0 {
		e.work = float64(e.opts.StepWork)
	}
	order := e.running
	if e.sharing = e.shareStep(); len(e.running) > 1 {
		// When quotas or the step's caps hold threads back, the threads of
		// groups held to a quota go last, and those served longest ago
		// first: the narrow requests are never the ones left out, and
		// every thread moves on.
		e.order = append(e.order[:0], e.running...)
		slices.SortStableFunc(e.order, func(a, b *thread) int {
			if e.sharing {
				_, ha := e.quota[a.group]
				_, hb := e.quota[b.group]
				if ha != hb {
					if ha {
						return 1
					}
					return -1
				}
			}
			return cmp.Compare(a.served, b.served)
		})
		order = e.order
	}
	// Decoding threads first, so prompts never delay them; then prompt
	// chunks in arrival order, so a thread catching up with another's
	// identical prompt follows it instead of computing it twice.
	for _, decoding := range []bool{true, false} {
		for _, th := range order {
			if (len(th.tokens)-th.pos == 1) == decoding && !th.backlogged() {
				e.schedule(th, &budget)
			}
		}
	}
	var logits []float32
	if len(e.rows) > 0 {
		logits = e.fw.run(e.rows)
	}
	e.cache.stepDone()
	e.steps++
	V := e.w.cfg.Vocab
	j := 0
	for _, r := range e.rows {
		if r.logits {
			e.sampleGuarded(r.th, logits[j*V:(j+1)*V])
			j++
		}
	}
	e.running = slices.DeleteFunc(e.running, func(th *thread) bool {
		if th.finish == "" {
			return false
		}
		e.end(th)
		return true
	})
	return e.relieve() || len(e.rows) > 0
}

// shareStep sets the quotas of work for the next step when several
// groups ask for rows, and reports whether it did. A group's width is the
// work of one row of each of its threads that asks for rows; the
// narrowest groups (within FairShare times the narrowest) take all they
// ask, prompts included, and each wider group adds FairShare times the
// narrowest width to what it has left, deficit round robin, so that over
// a few steps it does that much a step, whatever its rows cost. With one
// group, or FairShare negative, there are no quotas.
func (e *Engine) shareStep() bool {
	clear(e.width)
	if e.opts.FairShare < 0 {
		return false
	}
	for _, th := range e.running {
		if len(th.tokens) > th.pos && !th.backlogged() {
			e.width[th.group] += e.rowCost(th.pos)
		}
	}
	if len(e.width) < 2 {
		clear(e.quota)
		return false
	}
	least := math.Inf(1)
	for _, w := range e.width {
		least = min(least, w)
	}
	share := float64(e.opts.FairShare) * least
	// What is left carries over up to one row at the context's end: enough
	// for any row, too little for a burst.
	most := share + 1 + float64(e.w.cfg.MaxSeq)*e.depthCost
	for g := range e.quota {
		if e.width[g] <= share {
			delete(e.quota, g)
		}
	}
	for g, w := range e.width {
		if w > share {
			e.quota[g] = min(e.quota[g]+share, most)
		}
	}
	return true
}

// rowCost is the work of a row at position pos, in rows of weight
// products.
func (e *Engine) rowCost(pos int) float64 {
	attended := pos
	if ix := e.w.index; ix != nil {
		attended = min(pos, ix.topK)
	}
	return 1 + float64(attended)*e.depthCost + float64(pos)*e.indexCost
}

// attentionCost is what one cached position costs a row's attention (a
// multiply-add with its key and one with its value, for each query head
// and layer), in units of the row's weight products.
func attentionCost(c model.Config) float64 {
	return 2 * float64(c.Layers*c.Heads*c.HeadDim) / rowProducts(c)
}

// indexCost is what one cached position costs a sparse row's indexer (a
// multiply-add for each of its heads' dimensions, in each layer), in
// units of the row's weight products; 0 for dense attention.
func indexCost(c model.Config, topK int) float64 {
	if topK == 0 {
		return 0
	}
	return float64(c.Layers*c.IndexHeads*c.IndexDim) / rowProducts(c)
}

// rowProducts is the multiply-adds of one row's weight products, its
// layers' attention projections and MLP.
func rowProducts(c model.Config) float64 {
	qd, kvd := float64(c.Heads*c.HeadDim), float64(c.KVHeads*c.HeadDim)
	return float64(c.Layers) * float64(c.Dim) * (2*qd + 2*kvd + 3*float64(c.Hidden))
}

// schedule adds th's next tokens to the step, within budget rows and its
// group's quota where shareStep set one.
func (e *Engine) schedule(th *thread, budget *int) {
	th.starved = false
	quota, held := math.Inf(1), false
	if e.sharing {
		if quota, held = e.quota[th.group]; !held {
			quota = math.Inf(1)
		} else {
			defer func() { e.quota[th.group] = quota }()
		}
	}
	for th.pos < len(th.tokens) && *budget > 0 && quota >= e.rowCost(th.pos) && (e.work >= e.rowCost(th.pos) || len(e.rows) == 0) {
		t := th.tokens[th.pos]
		n, slot, fresh, err := e.cache.advance(th, int32(t))
		switch {
		case errors.Is(err, errWait):
			return
		case err != nil:
			th.starved = true
			return
		}
		th.pos++
		last := th.pos == len(th.tokens)
		if !fresh && !last && th.countCached && th.pos <= th.promptLen {
			th.cached++
		}
		if fresh || last {
			e.rows = append(e.rows, row{token: t, pos: n.start + slot, path: th.cur.path, count: slot + 1,
				write: fresh, logits: last, th: th})
			*budget--
			quota -= e.rowCost(n.start + slot)
			e.work -= e.rowCost(n.start + slot)
			th.served = e.steps
		}
	}
}

// sampleGuarded samples th, ending th alone when that panics: a bug that
// one request's odd numbers reach stops its thread, not the engine and
// every other request with it.
func (e *Engine) sampleGuarded(th *thread, logits []float32) {
	defer func() {
		if p := recover(); p != nil {
			e.opts.Log.Error("engine: a thread failed", "panic", p, "stack", string(debug.Stack()))
			th.err = fmt.Errorf("engine: internal error while sampling: %v", p)
			th.finish, th.final = backend.FinishCancelled, backend.Chunk{}
		}
	}()
	e.sample(th, logits)
}

// sample picks th's next token and decides whether th goes on.
func (e *Engine) sample(th *thread, logits []float32) {
	wantLogprobs := th.req.Logprobs || th.req.TopLogprobs > 0
	raw := logits
	masked := false
	if th.env != nil {
		var choices []string
		if err := guard(func() { choices = th.env.Choices() }); err != nil {
			th.finish, th.envErr = backend.FinishEnv, err.Error()
			th.final = backend.Chunk{}
			return
		}
		if choices != nil {
			if wantLogprobs {
				// Logprobs are the model's own, before the mask.
				e.rawLogits = append(e.rawLogits[:0], logits...)
				raw = e.rawLogits
			}
			masked = e.mask(logits, choices)
		}
	}
	id := th.sampler.sample(logits)
	tok := backend.Token{ID: id}
	if masked && th.req.Masks {
		for a, ok := range e.allowed {
			if ok {
				tok.Allowed = append(tok.Allowed, a)
			}
		}
	}
	if wantLogprobs {
		tok.Logprob, tok.Top = logprobs(raw, id, th.req.TopLogprobs)
		if e.tok != nil {
			for i := range tok.Top {
				tok.Top[i].Text = string(e.tok.DecodeBytes([]int{tok.Top[i].ID}))
			}
		}
	}
	th.tokens = append(th.tokens, id)
	th.out = append(th.out, tok)
	chunk := backend.Chunk{Tokens: []backend.Token{tok}}
	switch {
	case e.eos[id]:
		th.finish = backend.FinishStop
	case th.text != nil:
		b := e.tok.DecodeBytes([]int{id})
		chunk.Text, th.stop = th.text.add(b)
		if th.stop != "" {
			th.finish = backend.FinishStop
			break
		}
		if th.env == nil {
			break
		}
		var fill string
		var done bool
		err := guard(func() {
			var err error
			if fill, err = th.env.Next(string(b)); err != nil {
				panic(err)
			}
			done = th.env.Done()
		})
		if err != nil {
			th.finish, th.envErr = backend.FinishEnv, err.Error()
			break
		}
		if fill != "" {
			e.fill(th, fill, &chunk)
		}
		if th.finish == "" && done {
			th.finish = backend.FinishStop
		}
	}
	if th.finish == "" && len(th.tokens) >= th.limit {
		th.finish = backend.FinishLength
	}
	if th.finish == "" {
		th.deliver(chunk, nil)
	} else {
		// The completion delivers it once the stats are published.
		th.final = chunk
	}
}

// guard runs an environment's callback, turning its error or panic into an
// error: a task's bug ends its thread, not the engine.
func guard(f func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if e, ok := p.(error); ok {
				err = e
			} else {
				err = fmt.Errorf("the environment failed: %v", p)
			}
		}
	}()
	f()
	return nil
}

// fill appends the environment's text to th as tokens the model did not
// sample: fed to the model at the next step like a prompt, and part of the
// completion. What would pass the thread's length limit is cut, and the
// thread ends.
func (e *Engine) fill(th *thread, text string, chunk *backend.Chunk) {
	if th.stop != "" {
		return
	}
	ids := e.tok.EncodeOrdinary(text)
	if room := th.limit - len(th.tokens); len(ids) > room {
		ids = ids[:max(0, room)]
		th.finish = backend.FinishLength
	}
	for _, id := range ids {
		tok := backend.Token{ID: id, Filled: true}
		th.tokens = append(th.tokens, id)
		th.out = append(th.out, tok)
		th.filled++
		chunk.Tokens = append(chunk.Tokens, tok)
		t, stop := th.text.add(e.tok.DecodeBytes([]int{id}))
		chunk.Text += t
		if stop != "" {
			// The rest of the fill lies past the stop string.
			th.stop, th.finish = stop, backend.FinishStop
			return
		}
	}
}

// setTokenTexts indexes the vocabulary's texts for mask.
func (e *Engine) setTokenTexts(texts []string) {
	e.byText, e.longestText = map[string][]int{}, 0
	for id, text := range texts {
		if text != "" {
			e.byText[text] = append(e.byText[text], id)
			e.longestText = max(e.longestText, len(text))
		}
	}
	e.allowed = make([]bool, len(texts))
}

// mask leaves only the tokens that begin one of the environment's choices:
// the rest get a logit of -Inf, so no sampler can pick them. When no token
// fits, the logits stay as they are and the environment will reject the
// model's choice. It reports whether it masked; e.allowed then holds the
// tokens left.
//
// It runs between steps with the crew idle, once per sampled token, so it
// looks up each choice's prefixes (up to the longest token's length)
// among the tokens' texts instead of testing every token against every
// choice.
func (e *Engine) mask(logits []float32, choices []string) bool {
	clear(e.allowed)
	allowed := 0
	for _, c := range choices {
		for n := 1; n <= min(len(c), e.longestText); n++ {
			for _, id := range e.byText[c[:n]] {
				if !e.allowed[id] && !e.eos[id] {
					e.allowed[id] = true
					allowed++
				}
			}
		}
	}
	if allowed == 0 {
		return false
	}
	for id := range logits {
		if id >= len(e.allowed) || !e.allowed[id] {
			logits[id] = float32(math.Inf(-1))
		}
	}
	return true
}

// relieve handles threads that found no free block: it preempts the
// latest-admitted other thread of the group running the most threads
// (with one group, the latest admitted: a narrow request is not the one
// to pay for a wide one's memory), whose tokens are recomputed (mostly
// re-found in the cache) when it runs again, or fails a thread that cannot
// fit even alone.
func (e *Engine) relieve() bool {
	for _, th := range e.running {
		if !th.starved {
			continue
		}
		th.starved = false
		e.countPlaces()
		victim := e.widest(func(r *thread) bool { return r != th && len(r.cur.path) > 0 })
		if victim < 0 {
			th.err = fmt.Errorf("engine: a %d-token sequence does not fit in the KV cache of %d blocks of %d tokens",
				len(th.tokens), e.cache.maxBlocks, blockTokens)
			th.finish = backend.FinishLength
			e.running = slices.DeleteFunc(e.running, func(x *thread) bool { return x == th })
			e.end(th)
			return true
		}
		e.mu.Lock()
		e.preempt(victim)
		e.mu.Unlock()
		return true
	}
	return false
}

// complete delivers a finished thread's completion.
func (e *Engine) complete(th *thread) {
	c := &backend.Completion{
		Tokens: th.out, Finish: th.finish, StopString: th.stop, EnvError: th.envErr, Seed: th.seed,
		Usage: backend.Usage{PromptTokens: th.promptLen, CachedPromptTokens: th.cached, CompletionTokens: len(th.out), FilledTokens: th.filled},
	}
	chunk := th.final
	if th.text != nil {
		chunk.Text += th.text.flush()
		c.Text = th.text.text()
	}
	th.deliver(chunk, c)
}

func (e *Engine) failAll(err error) {
	e.mu.Lock()
	queue := e.queue
	e.queue = nil
	e.mu.Unlock()
	for _, th := range e.finished {
		e.complete(th) // already ended: deliver as they are
	}
	e.finished = nil
	for _, th := range append(e.running, queue...) {
		th.err, th.finish = err, backend.FinishCancelled
		e.complete(th)
	}
	e.running = nil
}

func (e *Engine) publish() {
	e.mu.Lock()
	waiting := len(e.queue)
	e.mu.Unlock()
	e.stats.Store(&Stats{
		Running: len(e.running), Waiting: waiting,
		Blocks: e.cache.blocks, ReferencedBlocks: e.cache.referenced, MaxBlocks: e.cache.maxBlocks,
		BlockBytes: blockBytes(e.w.cfg, e.opts.KV8, e.w.index != nil), Steps: e.steps, Preemptions: e.preempts,
	})
}
