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
	// BF16 runs the products, forward and backward, in bfloat16 with
	// float32 sums, the mixed precision of PyTorch's autocast: on a CPU
	// with AMX every product, attention's included (tensor.MulTiles, for
	// heads of a multiple of 32 dimensions), elsewhere the weight products
	// as tensor.BF16 does them. Weights, activations, gradients, the
	// softmax and whatever optimizes them stay float32.
	BF16 bool
	// Sparse makes a model with an indexer attend, at each position, only
	// to the Config.IndexTopK positions among itself and those before it
	// that its indexer scores highest: DeepSeek's sparse attention.
	// Forward and Backward honour it, and IndexerLoss then measures the
	// indexer over those positions alone.
	Sparse bool
	rope   *tensor.RoPE
	// indexRope turns the indexer's queries and keys, nil without one.
	indexRope *tensor.RoPE
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
	m := &Model{Config: c, Params: NewParams(c), rope: tensor.NewScaledRoPE(c.HeadDim, c.MaxSeq, c.RopeTheta, c.RopeScaling)}
	if c.HasIndexer() {
		m.indexRope = tensor.NewScaledRoPE(c.IndexDim, c.MaxSeq, c.RopeTheta, c.RopeScaling)
	}
	return m
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

	// attnWork is each attention worker's scratch.
	attnWork []*attnWork
	// The operands of products on tiles: an activation and a weight, and
	// for a weight's gradient the input and the outputs' gradients, one
	// of them transposed, and the gradient transposed.
	xTile, inT, dyT tensor.TileA
	wTile, inB, dyB tensor.TileB
	gradT           []float32
	// normParts holds each chunk's part of a norm's weight gradient.
	normParts []float32

	cfg             Config
	maxTokens, maxT int
	views           []view
	posBack         []int
}

// view is a buffer cut from a backing array at its capacity: per values
// per token.
type view struct {
	dst  *[]float32
	back []float32
	per  int
}

type layerActs struct {
	xn1, rstd1, q, k, v, attOut, x2, xn2, rstd2, gate, up, act []float32
	// iq, ik and iw are the indexer's queries, key and head weights
	// (indexForward), with Config.HasIndexer.
	iq, ik, iw []float32
	// sel is the positions each row attends to in a sparse model
	// (selection), selectionWords(maxT) words a row.
	sel []uint64
	// softmax holds, for every position and query head, the maximum score
	// its softmax subtracted and the reciprocal of its sum: all the
	// backward pass needs to recompute the attention probabilities from
	// the scores, bit for bit, instead of keeping T×T of them per head.
	softmax []float32
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
	add := func(dst *[]float32, per int) {
		a.views = append(a.views, view{dst: dst, back: make([]float32, maxTokens*per), per: per})
	}
	a.x = make([][]float32, c.Layers+1)
	for i := range a.x {
		add(&a.x[i], c.Dim)
	}
	a.layers = make([]layerActs, c.Layers)
	for l := range a.layers {
		la := &a.layers[l]
		add(&la.xn1, c.Dim)
		add(&la.rstd1, 1)
		add(&la.q, c.qDim())
		add(&la.k, c.kvDim())
		add(&la.v, c.kvDim())
		add(&la.softmax, 2*c.Heads)
		add(&la.attOut, c.qDim())
		add(&la.x2, c.Dim)
		add(&la.xn2, c.Dim)
		add(&la.rstd2, 1)
		add(&la.gate, c.Hidden)
		add(&la.up, c.Hidden)
		add(&la.act, c.Hidden)
		if c.HasIndexer() {
			add(&la.iq, c.IndexHeads*c.IndexDim)
			add(&la.ik, c.IndexDim)
			add(&la.iw, c.IndexHeads)
			la.sel = make([]uint64, maxTokens*selectionWords(maxT))
		}
	}
	add(&a.xf, c.Dim)
	add(&a.rstdf, 1)
	add(&a.probs, c.Vocab)
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
		*v.dst = v.back[:n:n]
	}
	a.pos = a.posBack[:bt]
	for i := range a.pos {
		a.pos[i] = i % T
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
	if m.Sparse && !c.HasIndexer() {
		return 0, fmt.Errorf("model: sparse attention needs an indexer, which this model lacks")
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
	rmsNorm(a.xf, a.rstdf, xl, p.FinalNorm, bt, c.Dim, c.NormEps)
	m.project(a, a.probs, m.lhs(a, a.xf, bt, c.Dim), p.LMHead, c.Vocab, false)
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

	qd, kd := c.qDim(), c.kvDim()
	rmsNorm(la.xn1, la.rstd1, x, lp.AttnNorm, bt, c.Dim, c.NormEps)
	xn1 := m.lhs(a, la.xn1, bt, c.Dim)
	m.project(a, la.q, xn1, lp.Wq, qd, false)
	m.project(a, la.k, xn1, lp.Wk, kd, false)
	m.project(a, la.v, xn1, lp.Wv, kd, false)
	if c.QKVBias {
		tensor.AddBias(la.q, lp.Bq, bt, qd)
		tensor.AddBias(la.k, lp.Bk, bt, kd)
		tensor.AddBias(la.v, lp.Bv, bt, kd)
	}
	// Scale the queries by 1/√d once here rather than every score row
	// (T²/2 values) in attention; Backward puts the scale into dQ.
	scale := sqrtInv(c.HeadDim)
	rowsOf(la.q, bt, qd, func(q []float32, lo, hi int) {
		m.rope.Apply(q, a.pos[lo:hi], c.Heads)
		tensor.Scale(scale, q)
	})
	rowsOf(la.k, bt, kd, func(k []float32, lo, hi int) { m.rope.Apply(k, a.pos[lo:hi], c.KVHeads) })
	if m.sparse() {
		m.indexForward(a, l)
		m.selectTopK(a, la)
	}
	m.attentionForward(a, la)

	// x2 = x + attOut·Woᵀ
	copy(la.x2, x)
	m.project(a, la.x2, m.lhs(a, la.attOut, bt, qd), lp.Wo, c.Dim, true)

	rmsNorm(la.xn2, la.rstd2, la.x2, lp.MLPNorm, bt, c.Dim, c.NormEps)
	xn2 := m.lhs(a, la.xn2, bt, c.Dim)
	m.project(a, la.gate, xn2, lp.Wgate, c.Hidden, false)
	m.project(a, la.up, xn2, lp.Wup, c.Hidden, false)
	rowsOf(la.act, bt, c.Hidden, func(act []float32, lo, hi int) {
		tensor.SwiGLU(act, la.gate[lo*c.Hidden:hi*c.Hidden], la.up[lo*c.Hidden:hi*c.Hidden])
	})
	copy(out, la.x2)
	m.project(a, out, m.lhs(a, la.act, bt, c.Hidden), lp.Wdown, c.Dim, true)
}

// attnWork is one attention worker's scratch: a block of rows' scores (or
// probabilities) and their gradients, and for attention on AMX tiles the
// operands laid out for MulTiles and the gradients of the group's keys and
// values transposed (head dimension × positions).
type attnWork struct {
	s, d           []float32
	kT, vT, kP, vP tensor.TileB
	pB, dsB        tensor.TileB
	q, p, ds, do   tensor.TileA
	doT, qT        tensor.TileA
	dkT, dvT       []float32
}

// forEachGroup runs f for every (sequence, key/value head) pair on all CPUs,
// handing each worker its own scratch. The query heads of one group share
// their keys and values, so a group is the unit that writes to a disjoint
// part of every gradient.
func (m *Model) forEachGroup(a *Activations, f func(w *attnWork, b, g int)) {
	n := a.B * m.Config.KVHeads
	workers := min(n, runtime.GOMAXPROCS(0))
	for len(a.attnWork) < workers {
		a.attnWork = append(a.attnWork, &attnWork{
			s: make([]float32, attnBlock*a.maxT),
			d: make([]float32, attnBlock*a.maxT),
		})
	}
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for w := range workers {
		wg.Go(func() {
			for i := range next {
				f(a.attnWork[w], i/m.Config.KVHeads, i%m.Config.KVHeads)
			}
		})
	}
	wg.Wait()
}

// attnBlock is the number of query rows attention handles at once: a block
// of rows needs keys only up to its last row, so the products skip most of
// the masked upper triangle, and its scores (attnBlock × T) stay in the
// core's caches between the products that make and use them. A multiple
// of the AVX-512 tile's 14 rows.
const attnBlock = 56

// rowsFrom is the sub-matrix of x starting at row r.
func rowsFrom(x tensor.Mat, r int) tensor.Mat {
	return tensor.Mat{Data: x.Data[r*x.Stride:], Stride: x.Stride}
}

// attentionForward computes causal softmax attention, one head at a time
// as matrix products on the head's columns: S = Q·Kᵀ/√d, P = causal
// softmax(S), O = P·V, a block of query rows at a time over the keys up to
// the block's last row. No T×T matrix is kept: each row's softmax maximum
// and reciprocal sum go to la.softmax, from which the backward pass
// recomputes P.
func (m *Model) attentionForward(a *Activations, la *layerActs) {
	c := m.Config
	T, hd, qd, kd := a.T, c.HeadDim, c.qDim(), c.kvDim()
	group := c.Heads / c.KVHeads
	tiles := m.attentionOnTiles()
	m.forEachGroup(a, func(w *attnWork, b, g int) {
		k := tensor.Mat{Data: la.k[b*T*kd+g*hd:], Stride: kd}
		v := tensor.Mat{Data: la.v[b*T*kd+g*hd:], Stride: kd}
		sel := m.selectionOf(a, la, b)
		if tiles {
			w.kT.Set(k, hd, T, true)
			w.vP.Set(v, T, hd, false)
		}
		for h := g * group; h < (g+1)*group; h++ {
			q := tensor.Mat{Data: la.q[b*T*qd+h*hd:], Stride: qd} // scaled by 1/√d
			out := tensor.Mat{Data: la.attOut[b*T*qd+h*hd:], Stride: qd}
			stats := la.softmax[(b*T*c.Heads+h)*2:]
			if tiles {
				attendTiles(w, q, out, stats, sel, T, hd, c.Heads)
				continue
			}
			for r0 := 0; r0 < T; r0 += attnBlock {
				r1 := min(T, r0+attnBlock)
				p := tensor.Mat{Data: w.s, Stride: r1}
				tensor.GemmStrided(1, p, rowsFrom(q, r0), k, r1-r0, hd, r1, tensor.TransB)
				softmaxRows(p, stats, sel, r0, r1, c.Heads, false)
				tensor.GemmStrided(1, rowsFrom(out, r0), p, v, r1-r0, r1, hd, 0)
			}
		}
	})
}

// softmaxRows turns rows [r0,r1) of a block's scores (p, stride r1) into
// causal softmax probabilities in place, row t over the keys of [0,t] that
// sel leaves it and zero elsewhere. It writes each row's statistics to
// stats[t·2·heads:], or with again recomputes the probabilities from the
// statistics the forward pass wrote there, bit for bit.
func softmaxRows(p tensor.Mat, stats []float32, sel selection, r0, r1, heads int, again bool) {
	for t := r0; t < r1; t++ {
		row := p.Data[(t-r0)*r1 : (t-r0+1)*r1]
		sel.mask(row, t)
		st := stats[t*heads*2:]
		if again {
			tensor.SoftmaxAgain(row[:t+1], row[:t+1], st[0], st[1])
		} else {
			st[0], st[1] = tensor.SoftmaxStats(row[:t+1], row[:t+1])
		}
		clear(row[t+1:])
	}
}

// attnTileBlock is the number of query rows attention on AMX tiles handles
// at once: the kernel's 32.
const attnTileBlock = 32

// attentionOnTiles says whether attention runs its products on AMX tiles:
// for a model in bfloat16, on a CPU with them, for heads of whole tiles.
func (m *Model) attentionOnTiles() bool {
	return m.BF16 && tensor.TilesAvailable() && m.Config.HeadDim%32 == 0
}

// attendTiles is attentionForward's loop over one head's blocks of rows on
// AMX tiles, w.kT and w.vP holding its group's keys and values: S = Q·Kᵀ
// and O = P·V in bfloat16 with float32 sums, the softmax in float32.
// stats[t·2·heads:] takes row t's softmax statistics.
func attendTiles(w *attnWork, q, out tensor.Mat, stats []float32, sel selection, T, hd, heads int) {
	for r0 := 0; r0 < T; r0 += attnTileBlock {
		r1 := min(T, r0+attnTileBlock)
		rows := r1 - r0
		p := tensor.Mat{Data: w.s, Stride: r1}
		w.q.Set(rowsFrom(q, r0), rows, hd, false)
		tensor.MulTiles(p, &w.q, &w.kT, rows, hd, r1, false)
		softmaxRows(p, stats, sel, r0, r1, heads, false)
		w.p.Set(p, rows, r1, false)
		tensor.MulTiles(rowsFrom(out, r0), &w.p, &w.vP, rows, r1, hd, false)
	}
}
