package engine

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/model"
)

// sparseModel is testModel's shape with a lightning indexer of 2 heads of
// 8 that picks topK positions.
func sparseModel(t testing.TB, topK int) *model.Model {
	t.Helper()
	c := testModel(t, 16).Config
	c.IndexHeads, c.IndexDim, c.IndexTopK = 2, 8, topK
	return testModelOf(t, c)
}

// With a top-k no row exceeds, sparse attention is dense attention: the
// same tokens with the same log-probabilities, although the indexer's
// projections ride in the same product as q, k and v and every position
// is read by pointer. To the bit with an 8-bit cache, whose row kernels
// (tensor.DotRowsU8, AxpyRowsI8) do dense attention's arithmetic in its
// order. A half-precision cache's keys (tensor.DotRowsF16) have each
// score summed across lanes rather than in one chain, so to within that
// rounding, which this model of large weights amplifies to 1e-4 (and
// 8-bit activations, which round what they are given, to 0.02).
func TestSparseAtFullTopKIsDense(t *testing.T) {
	m := sparseModel(t, 256)
	rng := rand.New(rand.NewPCG(8, 8))
	for _, mode := range numericModes() {
		req := &backend.Request{PromptTokens: randomTokens(rng, 70, 97), MaxTokens: 40, Logprobs: true}
		dense, sparse := mode, mode
		dense.Attention, sparse.Attention = AttentionDense, AttentionSparse
		want, got := alone(t, m, dense, req), alone(t, m, sparse, req)
		tolerance := 1e-3
		switch {
		case mode.KV8:
			tolerance = 0
		case mode.Weights == WeightsQ8:
			tolerance = 0.05
		}
		for j, tok := range got.Tokens {
			if w := want.Tokens[j]; tok.ID != w.ID || math.Abs(tok.Logprob-w.Logprob) > tolerance {
				t.Fatalf("%+v: token %d is %d (%v) sparse at full top-k, %d (%v) dense", mode, j, tok.ID, tok.Logprob, w.ID, w.Logprob)
			}
		}
	}
}

// A sparse row attends alone, to positions of its own choosing, so a
// thread decodes the same batched as alone and forked as recomputed, in
// every numeric mode.
func TestSparseBatchedAndForkedMatchAlone(t *testing.T) {
	m := sparseModel(t, 12)
	for _, mode := range numericModes() {
		batchedMatchesAlone(t, m, mode)
		forkedChildrenMatch(t, m, mode)
	}
}

// Sparse attention changes what a long thread decodes (the top-k is far
// below its length), and a top-k past its length changes nothing: the
// selection is real, and --index-topk reaches it.
func TestSparseAttentionSelects(t *testing.T) {
	m := sparseModel(t, 4)
	rng := rand.New(rand.NewPCG(9, 9))
	req := &backend.Request{PromptTokens: randomTokens(rng, 60, 97), MaxTokens: 30, Logprobs: true}
	dense := alone(t, m, Options{Attention: AttentionDense, Weights: WeightsF32}, req)
	sparse := alone(t, m, Options{Weights: WeightsF32}, req)
	wide := alone(t, m, Options{IndexTopK: 200, Weights: WeightsF32}, req)
	if !slices.Equal(ids(wide), ids(dense)) {
		t.Fatalf("top-200 attention over 90 positions decoded %v, dense %v", ids(wide), ids(dense))
	}
	logprobs := func(c *backend.Completion) []float64 {
		var s []float64
		for _, tok := range c.Tokens {
			s = append(s, tok.Logprob)
		}
		return s
	}
	if slices.Equal(logprobs(sparse), logprobs(dense)) {
		t.Error("top-4 attention over 60 positions gave dense attention's log-probabilities")
	}
	for j, lp := range logprobs(wide) {
		if math.Abs(lp-logprobs(dense)[j]) > 1e-3 {
			t.Fatalf("top-200 attention over 90 positions: token %d's log-probability %v, dense %v", j, lp, logprobs(dense)[j])
		}
	}
}

// The engine's sparse decoding is the model's sparse forward pass: the
// log-probability of each token it decodes within the cache's rounding of
// model.Forward's with Sparse set, recomputed over the whole sequence. Bit
// for bit it cannot be: the engine keeps keys, values and the indexer's
// keys in half precision, the model in float32, so where the k-th and the
// next score nearly tie the two can select differently, and that token's
// attention then differs by a position. Such a flip is rare (one token of
// these 60 with this seed, off by 0.53; the others within 0.004), so the
// test bounds the median and allows a few.
func TestSparseMatchesTheModelsSparseForward(t *testing.T) {
	m := sparseModel(t, 10)
	m.Sparse = true
	e := newEngine(t, m, Options{Weights: WeightsF32})
	errs := logprobErrors(t, m, e)
	slices.Sort(errs)
	if median, ninth := errs[len(errs)/2], errs[len(errs)*9/10]; median > 2e-3 || ninth > 1e-2 {
		t.Errorf("log-probabilities off the model's sparse forward by %.3g (median), %.3g (90th percentile): %.3g", median, ninth, errs)
	}
}

// Attention options a model cannot take are refused by name.
func TestSparseOptionsRefused(t *testing.T) {
	for _, c := range []struct {
		m    *model.Model
		opts Options
		want string
	}{
		{testModel(t, 16), Options{Attention: AttentionSparse}, "lightning indexer"},
		{sparseModel(t, 8), Options{Attention: AttentionDense, IndexTopK: 4}, "dense attention"},
		{sparseModel(t, 8), Options{IndexTopK: -1}, "negative"},
		{sparseModel(t, 8), Options{Attention: "diagonal"}, "unknown attention"},
	} {
		if _, err := New(c.m, nil, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error saying %q", c.opts, err, c.want)
		}
	}
	if _, err := ParseAttention("sparse"); err != nil {
		t.Error(err)
	}
	if _, err := ParseAttention("Sparse"); err == nil {
		t.Error("ParseAttention took Sparse")
	}
}
