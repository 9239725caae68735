package model

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/braid-dev/braid/tensor"
)

// Model is a configuration with its weights.
type Model struct {
	Config Config
	Params *Params
	// EOS are the end-of-sequence token ids: the eos_token_id of the
	// config.json Load read, which Save writes back. New leaves it nil.
	EOS []int
	// BF16 runs the weight products, forward and backward, in bfloat16
	// with float32 sums (tensor.BF16: AMX tiles where the CPU has them),
	// the mixed precision of PyTorch's autocast. Weights, activations,
	// gradients and whatever optimizes them stay float32.
	BF16 bool
	rope *tensor.RoPE
}

// gemm is tensor.Gemm for a weight product, in the model's precision.
// Attention's products stay float32: per head and block of rows they are
// too thin (32 depths, or 32 columns) for packing into tiles to pay.
func (m *Model) gemm(c, a, b []float32, rows, k, n int, f tensor.Flags) {
	if m.BF16 {
		f |= tensor.BF16
	}
	tensor.Gemm(c, a, b, rows, k, n, f)
}

// New returns a model with zeroed weights; call Params.Init or load them.
// It refuses a shape whose parameters and rotary tables do not fit in the
// memory available, before allocating them.
func New(c Config) (*Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	params, rope := c.paramBytes(), c.ropeBytes()
	if err := CheckMemory(params + rope); err != nil {
		return nil, fmt.Errorf("model: the parameters (%s) and the rotary tables for %d positions (%s) of %+v: %w",
			formatBytes(params), c.MaxSeq, formatBytes(rope), c, err)
	}
	return newModel(c), nil
}

// newModel is New for a shape already checked.
func newModel(c Config) *Model {
	return &Model{Config: c, Params: NewParams(c), rope: tensor.NewScaledRoPE(c.HeadDim, c.MaxSeq, c.RopeTheta, c.RopeScaling)}
}

// Activations hold what a forward pass over B sequences of T tokens saves
// for the backward pass, and the backward pass's scratch. Reuse one across
// steps: it allocates nothing after the first, and Reshape fits it to any
// batch within the capacity it was made with.
type Activations struct {
	B, T   int
	tokens []int
	pos    []int // position of each of the B·T tokens
	x      [][]float32
	layers []layerActs
	xf     []float32 // final norm output, BT × Dim
	rstdf  []float32
	probs  []float32 // BT × Vocab: logits, then softmax probabilities
	// targets[i] is the token row i should predict, or -1 for none.
	targets []int
	valid   int
	// invTemp is 1/temperature of the distribution Forward's probabilities
	// and Backward's gradients are of (0: temperature 1); allowed, when
	// set, restricts each position's distribution to its tokens.
	invTemp float32
	allowed [][]int
	kept    []float32 // restrict's scratch

	// backward scratch
	dx, dxn, dq, dk, dv, dAtt, dg, du, dact []float32
	dscore                                  [][]float32

	cfg             Config
	maxTokens, maxT int
	views           []view
	posBack         []int
	scoreBack       []float32
}

// view is a buffer cut from a backing array at its capacity: per values
// per token, or per attention score (B·T·T values per head) with scores.
type view struct {
	dst    *[]float32
	back   []float32
	per    int
	scores bool
}

type layerActs struct {
	xn1, rstd1, q, k, v, att, attOut, x2, xn2, rstd2, gate, up, act []float32
}

// NewActivations sizes the buffers for B sequences of T tokens.
func (m *Model) NewActivations(B, T int) *Activations {
	a := m.NewActivationsCap(B*T, T)
	if err := a.Reshape(B, T); err != nil {
		panic(err) // within the capacity by construction
	}
	return a
}

// NewActivationsCap makes activations for batches of at most maxTokens
// tokens in sequences of at most maxT; call Reshape before each Forward
// whose shape differs from the last.
func (m *Model) NewActivationsCap(maxTokens, maxT int) *Activations {
	c := m.Config
	a := &Activations{cfg: c, maxTokens: maxTokens, maxT: maxT, posBack: make([]int, maxTokens)}
	add := func(dst *[]float32, per int, scores bool) {
		n := maxTokens * per
		if scores {
			n = maxTokens * maxT * per
		}
		a.views = append(a.views, view{dst: dst, back: make([]float32, n), per: per, scores: scores})
	}
	a.x = make([][]float32, c.Layers+1)
	for i := range a.x {
		add(&a.x[i], c.Dim, false)
	}
	a.layers = make([]layerActs, c.Layers)
	for l := range a.layers {
		la := &a.layers[l]
		add(&la.xn1, c.Dim, false)
		add(&la.rstd1, 1, false)
		add(&la.q, c.qDim(), false)
		add(&la.k, c.kvDim(), false)
		add(&la.v, c.kvDim(), false)
		add(&la.att, c.Heads, true)
		add(&la.attOut, c.qDim(), false)
		add(&la.x2, c.Dim, false)
		add(&la.xn2, c.Dim, false)
		add(&la.rstd2, 1, false)
		add(&la.gate, c.Hidden, false)
		add(&la.up, c.Hidden, false)
		add(&la.act, c.Hidden, false)
	}
	add(&a.xf, c.Dim, false)
	add(&a.rstdf, 1, false)
	add(&a.probs, c.Vocab, false)
	return a
}

// Reshape fits the activations to B sequences of T tokens, within their
// capacity. Nothing is allocated.
func (a *Activations) Reshape(B, T int) error {
	if B <= 0 || T <= 0 || B*T > a.maxTokens || T > a.maxT {
		return fmt.Errorf("model: activations for %d tokens in sequences of at most %d cannot hold %d sequences of %d", a.maxTokens, a.maxT, B, T)
	}
	a.B, a.T = B, T
	bt := B * T
	for _, v := range a.views {
		n := bt * v.per
		if v.scores {
			n = bt * T * v.per
		}
		*v.dst = v.back[:n:n]
	}
	a.pos = a.posBack[:bt]
	for i := range a.pos {
		a.pos[i] = i % T
	}
	if a.scoreBack != nil {
		a.cutScores()
	}
	return nil
}

// Forward runs the model on tokens (B·T ids, sequence after sequence). With
// targets (B·T ids; -1 marks a position without a target) it returns the
// mean cross-entropy over the positions that have one, and keeps what one
// Backward needs; without, it returns 0 and leaves the logits in Logits.
func (m *Model) Forward(a *Activations, tokens, targets []int) (float32, error) {
	c, p := m.Config, m.Params
	bt := a.B * a.T
	if len(tokens) != bt {
		return 0, fmt.Errorf("model: %d tokens for %d sequences of %d", len(tokens), a.B, a.T)
	}
	if a.T > c.MaxSeq {
		return 0, fmt.Errorf("model: sequences of %d tokens exceed the %d positions", a.T, c.MaxSeq)
	}
	for _, t := range tokens {
		if t < 0 || t >= c.Vocab {
			return 0, fmt.Errorf("model: token %d outside the vocabulary of %d", t, c.Vocab)
		}
	}
	if targets != nil {
		if len(targets) != bt {
			return 0, fmt.Errorf("model: %d targets for %d tokens", len(targets), bt)
		}
		for _, t := range targets {
			if t >= c.Vocab || t < -1 {
				return 0, fmt.Errorf("model: target %d outside the vocabulary of %d (or -1 for none)", t, c.Vocab)
			}
		}
		if err := checkAllowed(a.allowed, targets, c.Vocab); err != nil {
			return 0, err
		}
	}
	// Keep copies: Backward needs them as they were, whatever the caller
	// does with its slices meanwhile.
	a.tokens = append(a.tokens[:0], tokens...)
	x := a.x[0]
	for i, t := range tokens {
		copy(x[i*c.Dim:(i+1)*c.Dim], p.Embed[t*c.Dim:(t+1)*c.Dim])
	}
	for l := range c.Layers {
		m.layerForward(a, l)
	}
	xl := a.x[c.Layers]
	tensor.RMSNorm(a.xf, a.rstdf, xl, p.FinalNorm, bt, c.Dim, c.NormEps)
	m.gemm(a.probs, a.xf, p.LMHead, bt, c.Dim, c.Vocab, tensor.TransB)
	if targets == nil {
		a.targets = nil
		return 0, nil
	}
	a.targets = append(a.targets[:0], targets...)
	var loss float64
	a.valid = 0
	for i, t := range targets {
		row := a.probs[i*c.Vocab : (i+1)*c.Vocab]
		if a.invTemp != 0 && a.invTemp != 1 {
			tensor.Scale(a.invTemp, row)
		}
		if a.allowed != nil && a.allowed[i] != nil {
			a.kept = restrict(row, a.allowed[i], a.kept)
		}
		tensor.Softmax(row, row)
		if t < 0 {
			continue
		}
		loss -= math.Log(math.Max(float64(row[t]), 1e-30))
		a.valid++
	}
	if a.valid == 0 {
		return 0, nil
	}
	return float32(loss / float64(a.valid)), nil
}

// SetTemperature makes later Forwards with targets give the probabilities
// of softmax(logits / t), and Backward the gradients of their
// log-probabilities: the distribution a sampler at temperature t draws
// from, which a policy-gradient objective on its samples must
// differentiate. Activations start at temperature 1.
func (a *Activations) SetTemperature(t float64) error {
	if !(t > 0) || math.IsInf(t, 1) {
		return fmt.Errorf("model: temperature %g: want a positive, finite one", t)
	}
	a.invTemp = float32(1 / t)
	return nil
}

// SetAllowed restricts later Forwards with targets: position i's
// probabilities are over the tokens allowed[i] alone (nil: the whole
// vocabulary), and Backward's gradients are of those. A sampler whose
// choices an environment masked drew from that distribution. nil lifts
// every restriction. allowed must have one entry per position of the
// batch, and each target must be one of its position's tokens.
func (a *Activations) SetAllowed(allowed [][]int) { a.allowed = allowed }

// checkAllowed reports restrictions that do not fit the batch's targets.
func checkAllowed(allowed [][]int, targets []int, vocab int) error {
	if allowed == nil {
		return nil
	}
	if len(allowed) != len(targets) {
		return fmt.Errorf("model: allowed tokens for %d positions, %d targets", len(allowed), len(targets))
	}
	for i, ids := range allowed {
		if ids == nil {
			continue
		}
		for _, id := range ids {
			if id < 0 || id >= vocab {
				return fmt.Errorf("model: position %d allows token %d, outside the vocabulary of %d", i, id, vocab)
			}
		}
		if t := targets[i]; t >= 0 && !slices.Contains(ids, t) {
			return fmt.Errorf("model: position %d's target %d is not among its allowed tokens", i, t)
		}
	}
	return nil
}

// restrict leaves the logits of the allowed tokens and sets the rest to
// -Inf, which the softmax turns into probability 0. kept is scratch, grown
// as needed and returned.
func restrict(row []float32, allowed []int, kept []float32) []float32 {
	kept = kept[:0]
	for _, id := range allowed {
		kept = append(kept, row[id])
	}
	for j := range row {
		row[j] = float32(math.Inf(-1))
	}
	for j, id := range allowed {
		row[id] = kept[j]
	}
	return kept
}

// Logits returns the logits of position i of the last Forward without
// targets.
func (a *Activations) Logits(i, vocab int) []float32 {
	return a.probs[i*vocab : (i+1)*vocab]
}

func (m *Model) layerForward(a *Activations, l int) {
	c, lp, la := m.Config, &m.Params.Layers[l], &a.layers[l]
	bt := a.B * a.T
	x, out := a.x[l], a.x[l+1]

	tensor.RMSNorm(la.xn1, la.rstd1, x, lp.AttnNorm, bt, c.Dim, c.NormEps)
	m.gemm(la.q, la.xn1, lp.Wq, bt, c.Dim, c.qDim(), tensor.TransB)
	m.gemm(la.k, la.xn1, lp.Wk, bt, c.Dim, c.kvDim(), tensor.TransB)
	m.gemm(la.v, la.xn1, lp.Wv, bt, c.Dim, c.kvDim(), tensor.TransB)
	if c.QKVBias {
		tensor.AddBias(la.q, lp.Bq, bt, c.qDim())
		tensor.AddBias(la.k, lp.Bk, bt, c.kvDim())
		tensor.AddBias(la.v, lp.Bv, bt, c.kvDim())
	}
	m.rope.Apply(la.q, a.pos, c.Heads)
	// Scale the queries by 1/√d once here rather than every score row
	// (T²/2 values) in attention; Backward undoes it first.
	tensor.Scale(sqrtInv(c.HeadDim), la.q)
	m.rope.Apply(la.k, a.pos, c.KVHeads)
	m.attentionForward(a, la)

	// x2 = x + attOut·Woᵀ
	copy(la.x2, x)
	m.gemm(la.x2, la.attOut, lp.Wo, bt, c.qDim(), c.Dim, tensor.TransB|tensor.Accumulate)

	tensor.RMSNorm(la.xn2, la.rstd2, la.x2, lp.MLPNorm, bt, c.Dim, c.NormEps)
	m.gemm(la.gate, la.xn2, lp.Wgate, bt, c.Dim, c.Hidden, tensor.TransB)
	m.gemm(la.up, la.xn2, lp.Wup, bt, c.Dim, c.Hidden, tensor.TransB)
	tensor.SwiGLU(la.act, la.gate, la.up)
	copy(out, la.x2)
	m.gemm(out, la.act, lp.Wdown, bt, c.Hidden, c.Dim, tensor.TransB|tensor.Accumulate)
}

// forEachGroup runs f for every (sequence, key/value head) pair on all CPUs.
// The query heads of one group share their keys and values, so a group is
// the unit that writes to a disjoint part of every gradient.
func (m *Model) forEachGroup(B int, f func(b, g int)) {
	n := B * m.Config.KVHeads
	workers := min(n, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i/m.Config.KVHeads, i%m.Config.KVHeads)
			}
		}()
	}
	wg.Wait()
}

// attnBlock is the number of query rows attention handles at once: a block
// of rows needs keys only up to its last row, so the products skip most of
// the masked upper triangle. A multiple of the AVX-512 tile's 14 rows.
const attnBlock = 56

// rowsFrom is the sub-matrix of x starting at row r.
func rowsFrom(x tensor.Mat, r int) tensor.Mat {
	return tensor.Mat{Data: x.Data[r*x.Stride:], Stride: x.Stride}
}

// attentionForward computes causal softmax attention, one head at a time
// as matrix products on the head's columns: S = Q·Kᵀ/√d, P = causal
// softmax(S), O = P·V, a block of query rows at a time over the keys up to
// the block's last row. att[b][h] keeps P (T×T, zero above the diagonal)
// for the backward pass.
func (m *Model) attentionForward(a *Activations, la *layerActs) {
	c := m.Config
	T, hd, qd, kd := a.T, c.HeadDim, c.qDim(), c.kvDim()
	group := c.Heads / c.KVHeads
	m.forEachGroup(a.B, func(b, g int) {
		k := tensor.Mat{Data: la.k[b*T*kd+g*hd:], Stride: kd}
		v := tensor.Mat{Data: la.v[b*T*kd+g*hd:], Stride: kd}
		for h := g * group; h < (g+1)*group; h++ {
			q := tensor.Mat{Data: la.q[b*T*qd+h*hd:], Stride: qd} // scaled by 1/√d
			out := tensor.Mat{Data: la.attOut[b*T*qd+h*hd:], Stride: qd}
			p := tensor.Mat{Data: la.att[(b*c.Heads+h)*T*T : (b*c.Heads+h+1)*T*T], Stride: T}
			for r0 := 0; r0 < T; r0 += attnBlock {
				r1 := min(T, r0+attnBlock)
				tensor.GemmStrided(1, rowsFrom(p, r0), rowsFrom(q, r0), k, r1-r0, hd, r1, tensor.TransB)
				for t := r0; t < r1; t++ {
					row := p.Data[t*T : (t+1)*T]
					tensor.Softmax(row[:t+1], row[:t+1])
					clear(row[t+1:])
				}
				tensor.GemmStrided(1, rowsFrom(out, r0), rowsFrom(p, r0), v, r1-r0, r1, hd, 0)
			}
		}
	})
}
