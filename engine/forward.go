package engine

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync/atomic"

	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/tensor"
)

// weights are a model's parameters laid out for batched decoding: every
// matrix packed once for the microkernels (tensor.Pack), in the precision
// Options.Weights names (decoding streams every weight at every step, so
// half the bytes is up to twice the speed), with the q/k/v and gate/up
// projections fused, so each step is a few products whose rows do not
// change with the batch around them: a thread decodes the same tokens
// alone or among many.
type weights struct {
	cfg          model.Config
	qd, kvd, qkv int // widths of q, of k (and v), and of q|k|v
	embed        []float32
	layers       []layerWeights
	finalNorm    []float32
	lmHead       *tensor.Packed // Dim × Vocab
	rope         *tensor.RoPE
}

type layerWeights struct {
	attnNorm, mlpNorm []float32
	wqkv              *tensor.Packed // Dim × (qd + 2·kvd)
	bqkv              []float32      // qd + 2·kvd, with QKVBias
	wo                *tensor.Packed // qd × Dim
	wgu               *tensor.Packed // Dim × 2·Hidden: gate columns, then up
	wdown             *tensor.Packed // Hidden × Dim
}

// packRows packs the Hugging Face weights ws ([out, in] each, stacked
// along out) as one in × Σout matrix, in format f: half precision falls back
// to float32 on a CPU without the kernels for it, bfloat16 does not.
func packRows(f WeightFormat, in int, ws ...[]float32) (*tensor.Packed, error) {
	var all []float32
	for _, w := range ws {
		all = append(all, w...)
	}
	switch f {
	case "", WeightsF16:
		if p, ok := tensor.PackHalf(all, in, len(all)/in, tensor.TransB); ok {
			return p, nil
		}
	case WeightsBF16:
		p, ok := tensor.PackBF16(all, in, len(all)/in, tensor.TransB)
		if !ok {
			return nil, errors.New("engine: bf16 weights need a CPU with AVX-512 BF16, which this one lacks")
		}
		return p, nil
	case WeightsQ8:
		p, ok := tensor.PackQ8(all, in, len(all)/in, tensor.TransB)
		if !ok {
			return nil, errors.New("engine: q8 weights need a CPU with AVX-512 VNNI, which this one lacks")
		}
		return p, nil
	case WeightsF32:
	default:
		return nil, fmt.Errorf("engine: unknown weight format %q", f)
	}
	return tensor.Pack(all, in, len(all)/in, tensor.TransB), nil
}

func newWeights(c model.Config, p *model.Params, f WeightFormat) (*weights, error) {
	w := &weights{cfg: c, qd: c.Heads * c.HeadDim, kvd: c.KVHeads * c.HeadDim}
	w.qkv = w.qd + 2*w.kvd
	w.embed = p.Embed
	w.finalNorm = p.FinalNorm
	var err error
	if w.lmHead, err = packRows(f, c.Dim, p.LMHead); err != nil {
		return nil, err
	}
	w.rope = tensor.NewScaledRoPE(c.HeadDim, c.MaxSeq, c.RopeTheta, c.RopeScaling)
	for _, lp := range p.Layers {
		lw := layerWeights{attnNorm: lp.AttnNorm, mlpNorm: lp.MLPNorm}
		for _, m := range []struct {
			dst *(*tensor.Packed)
			in  int
			ws  [][]float32
		}{
			{&lw.wqkv, c.Dim, [][]float32{lp.Wq, lp.Wk, lp.Wv}},
			{&lw.wo, w.qd, [][]float32{lp.Wo}},
			{&lw.wgu, c.Dim, [][]float32{lp.Wgate, lp.Wup}},
			{&lw.wdown, c.Hidden, [][]float32{lp.Wdown}},
		} {
			if *m.dst, err = packRows(f, m.in, m.ws...); err != nil {
				return nil, err
			}
		}
		if c.QKVBias {
			lw.bqkv = append(append(append([]float32(nil), lp.Bq...), lp.Bk...), lp.Bv...)
		}
		w.layers = append(w.layers, lw)
	}
	return w, nil
}

// blockValues is the size of one cache block, in half-precision values:
// for each layer, the keys of every key/value head transposed (head,
// dimension, slot) so that one vector product scores a block's 16 keys,
// then the values (head, slot, dimension). Half precision halves the
// memory and the bandwidth attention needs, which bounds decoding speed at
// long contexts; every thread sees the same rounding, alone or batched.
// The block's layout follows from the model's shape alone, so the engine
// can size its cache before it packs any weights.
func blockValues(c model.Config) int {
	return c.Layers * 2 * c.KVHeads * c.HeadDim * blockTokens
}

// blockScales is the number of scales one block of an 8-bit cache holds:
// for each layer, keys then values, one per key/value head and slot (head,
// slot), each scaling its head's HeadDim values at that slot.
func blockScales(c model.Config) int {
	return c.Layers * 2 * c.KVHeads * blockTokens
}

// blockBytes is the memory of one cache block.
func blockBytes(c model.Config, kv8 bool) int {
	if kv8 {
		return blockValues(c) + 4*blockScales(c)
	}
	return 2 * blockValues(c)
}

// row is one token of a step's batch.
type row struct {
	token, pos int
	// path and count are the sequence the token attends to: the nodes
	// from the root, all of the last count tokens of the last node, and
	// the first path[i+1].branch tokens of the others. The token itself is
	// slot count-1 of the last node.
	path  []*node
	count int
	// write says the row computes its slot's keys and values; a row that
	// only needs logits for a token already cached reads them instead.
	write  bool
	logits bool    // the thread samples after this token
	th     *thread // whose token it is
}

// forward runs batches of rows through the model on a crew of goroutines.
// Its buffers grow to the largest batch and are reused.
type forward struct {
	w       *weights
	crew    *crew
	x, xn   []float32 // rows × Dim
	rstd    []float32
	qkv     []float32 // rows × qkv
	att     []float32 // rows × qd
	gu      []float32 // rows × 2·Hidden
	act     []float32 // rows × Hidden
	xf      []float32 // logit rows × Dim
	logits  []float32 // logit rows × Vocab
	scratch []attnScratch
	// next hands out attention tasks, one counter per layer.
	next []atomic.Int64
	// kv8 says the cache holds 8-bit keys and values (kvBlock.q).
	kv8 bool
}

type attnScratch struct {
	q, scores []float32
	sums      []float32 // each head's softmax denominator
	kv        []uint16  // a row's keys and values in half precision
	// kscale and vscale are, per key/value head, the scales of the keys
	// and values along the sequence (8-bit cache).
	kscale, vscale []float32
}

func newForward(w *weights, workers int, kv8 bool) *forward {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	f := &forward{w: w, crew: newCrew(workers), scratch: make([]attnScratch, workers), next: make([]atomic.Int64, w.cfg.Layers), kv8: kv8}
	for i := range f.scratch {
		f.scratch[i] = attnScratch{q: make([]float32, w.qd), sums: make([]float32, w.cfg.Heads), scores: make([]float32, w.cfg.Heads*(w.cfg.MaxSeq+blockTokens)),
			kv: make([]uint16, 2*w.kvd)}
		if kv8 {
			f.scratch[i].kscale = make([]float32, w.cfg.KVHeads*(w.cfg.MaxSeq+blockTokens))
			f.scratch[i].vscale = make([]float32, w.cfg.KVHeads*(w.cfg.MaxSeq+blockTokens))
		}
	}
	return f
}

// shrink lets go of the buffers that the largest step so far grew: they
// come back, as large as the next steps need, when work does.
func (f *forward) shrink() {
	f.x, f.xn, f.rstd, f.qkv, f.att, f.gu, f.act, f.xf, f.logits = nil, nil, nil, nil, nil, nil, nil, nil, nil
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// run computes the rows' keys and values into the cache and returns the
// logits of the rows that want them, in row order, nlogits × Vocab.
func (f *forward) run(rows []row) []float32 {
	w, c := f.w, f.w.cfg
	R := len(rows)
	f.x, f.xn, f.rstd = grow(f.x, R*c.Dim), grow(f.xn, R*c.Dim), grow(f.rstd, R)
	f.qkv, f.att = grow(f.qkv, R*w.qkv), grow(f.att, R*w.qd)
	f.gu, f.act = grow(f.gu, R*2*c.Hidden), grow(f.act, R*c.Hidden)
	nl := 0
	for _, r := range rows {
		if r.logits {
			nl++
		}
	}
	f.xf, f.logits = grow(f.xf, nl*c.Dim), grow(f.logits, nl*c.Vocab)
	for l := range f.next {
		f.next[l].Store(0)
	}
	f.crew.run(func(m int) { f.pass(m, rows, nl) })
	return f.logits
}

// pass is crew member m's part of a forward pass: rows split among the
// members for the row-wise operations, columns for the products, tasks for
// attention, with a barrier wherever a phase reads what another member
// wrote.
func (f *forward) pass(m int, rows []row, nl int) {
	w, c, cr := f.w, f.w.cfg, f.crew
	R, D, H := len(rows), c.Dim, c.Hidden
	r0, r1 := cr.span(R, m)
	for i := r0; i < r1; i++ {
		t := rows[i].token
		copy(f.x[i*D:(i+1)*D], w.embed[t*D:(t+1)*D])
	}
	for l := range w.layers {
		lw := &w.layers[l]
		tensor.RMSNorm(f.xn[r0*D:], f.rstd[r0:], f.x[r0*D:], lw.attnNorm, r1-r0, D, c.NormEps)
		cr.barrier()
		tensor.GemmPackedPart(f.qkv, w.qkv, f.xn, D, lw.wqkv, R, 0, m, cr.n)
		cr.barrier()
		for i := r0; i < r1; i++ {
			f.store(&f.scratch[m], &rows[i], i, l)
		}
		cr.barrier()
		f.attention(m, rows, l)
		cr.barrier()
		tensor.GemmPackedPart(f.x, D, f.att, w.qd, lw.wo, R, tensor.Accumulate, m, cr.n)
		cr.barrier()
		tensor.RMSNorm(f.xn[r0*D:], f.rstd[r0:], f.x[r0*D:], lw.mlpNorm, r1-r0, D, c.NormEps)
		cr.barrier()
		tensor.GemmPackedPart(f.gu, 2*H, f.xn, D, lw.wgu, R, 0, m, cr.n)
		cr.barrier()
		for i := r0; i < r1; i++ {
			gu := f.gu[i*2*H : (i+1)*2*H]
			tensor.SwiGLU(f.act[i*H:(i+1)*H], gu[:H], gu[H:])
		}
		cr.barrier()
		tensor.GemmPackedPart(f.x, D, f.act, H, lw.wdown, R, tensor.Accumulate, m, cr.n)
		cr.barrier()
	}
	if nl == 0 {
		return
	}
	if m == 0 {
		j := 0
		for i, r := range rows {
			if r.logits {
				copy(f.xf[j*D:(j+1)*D], f.x[i*D:(i+1)*D])
				j++
			}
		}
		tensor.RMSNorm(f.xf, f.rstd, f.xf, w.finalNorm, nl, D, c.NormEps)
	}
	cr.barrier()
	tensor.GemmPackedPart(f.logits, c.Vocab, f.xf, D, w.lmHead, nl, 0, m, cr.n)
}

// store adds the q/k/v biases to row i, rotates its queries and keys, and
// writes its keys and values into its cache slot.
func (f *forward) store(s *attnScratch, r *row, i, l int) {
	w, c := f.w, f.w.cfg
	q := f.qkv[i*w.qkv : (i+1)*w.qkv]
	if b := w.layers[l].bqkv; b != nil {
		for j, v := range b {
			q[j] += v
		}
	}
	pos := []int{r.pos}
	w.rope.Apply(q[:w.qd], pos, c.Heads)
	w.rope.Apply(q[w.qd:w.qd+w.kvd], pos, c.KVHeads)
	if !r.write {
		return
	}
	hd := c.HeadDim
	if f.kv8 {
		f.store8(r, q[w.qd:], l)
		return
	}
	kv, slot := r.path[len(r.path)-1].kv.half[l*2*w.kvd*blockTokens:], r.count-1
	tensor.ToHalf(s.kv, q[w.qd:]) // keys, then values
	k, v := s.kv[:w.kvd], s.kv[w.kvd:]
	for g := range c.KVHeads {
		kt := kv[g*hd*blockTokens:]
		for d, x := range k[g*hd : (g+1)*hd] {
			kt[d*blockTokens+slot] = x
		}
		copy(kv[w.kvd*blockTokens+(g*blockTokens+slot)*hd:], v[g*hd:(g+1)*hd])
	}
}

// store8 writes a row's keys and values (kv: keys, then values) into its
// slot of an 8-bit cache: each head's HeadDim values as integers in
// [−127, 127] times one scale, their largest magnitude over 127, so every
// value is within half a step of what it was.
func (f *forward) store8(r *row, kv []float32, l int) {
	w, c := f.w, f.w.cfg
	hd, kvh := c.HeadDim, c.KVHeads
	b, slot := r.path[len(r.path)-1].kv, r.count-1
	q := b.q[l*2*w.kvd*blockTokens:]
	scale := b.scale[l*2*kvh*blockTokens:]
	for g := range kvh {
		for part := range 2 { // keys, then values
			x := kv[part*w.kvd+g*hd : part*w.kvd+(g+1)*hd]
			var most float32
			for _, v := range x {
				most = max(most, abs32(v))
			}
			sc, inv := float32(0), float32(0)
			if most > 0 {
				sc, inv = most/127, 127/most
			}
			scale[(part*kvh+g)*blockTokens+slot] = sc
			if part == 0 {
				kt := q[g*hd*blockTokens:]
				for d, v := range x {
					kt[d*blockTokens+slot] = quantize(v * inv)
				}
			} else {
				vt := q[w.kvd*blockTokens+(g*blockTokens+slot)*hd:]
				for d, v := range x {
					vt[d] = quantize(v * inv)
				}
			}
		}
	}
}

// quantize rounds x, within [−127, 127] up to rounding error, to the
// nearest integer in that range.
func quantize(x float32) int8 {
	return int8(max(-127, min(127, float32(math.Round(float64(x))))))
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// attention is member m's share of every row's attention output: (row,
// range of key/value heads) tasks, handed out in turn. Each query head's
// scores against its sequence's keys are computed block by block, then a
// softmax, then the weighted sum of the values as one chain of
// multiply-adds over the positions, so the result does not depend on how
// the sequence is cut into blocks. The heads go through
// tensor.VecMatHeadsF16 (or, for an 8-bit cache, VecMatHeadsI8) together.
func (f *forward) attention(m int, rows []row, l int) {
	c := f.w.cfg
	// A few rows would leave members idle: split the heads too.
	parts := 1
	if len(rows) < f.crew.n {
		parts = min(f.crew.n, (c.KVHeads+3)/4)
	}
	per := (c.KVHeads + parts - 1) / parts
	tasks := len(rows) * parts
	for {
		t := int(f.next[l].Add(1)) - 1
		if t >= tasks {
			return
		}
		i, g0 := t/parts, t%parts*per
		if g0 < c.KVHeads {
			f.attend(&f.scratch[m], &rows[i], i, g0, min(c.KVHeads, g0+per), l)
		}
	}
}

// prefetch asks for n values at off of node nd's cache block (a head
// range's keys or values of a layer) while the block before it is
// multiplied: the blocks of a sequence lie anywhere in the cache's memory,
// where no hardware prefetcher follows, and a step's attention reads far
// more of them than the core's caches hold.
func (f *forward) prefetch(nd *node, off, n int) {
	if f.kv8 {
		tensor.Prefetch(nd.kv.q[off : off+n])
		return
	}
	tensor.Prefetch(nd.kv.half[off : off+n])
}

// attend computes row i's attention for key/value heads [g0, g1) and
// their query heads.
func (f *forward) attend(s *attnScratch, r *row, i, g0, g1, l int) {
	w, c := f.w, f.w.cfg
	hd, group, nh := c.HeadDim, c.Heads/c.KVHeads, g1-g0
	S := c.MaxSeq + blockTokens // one head's scores
	n := r.pos + 1
	koff := l*2*w.kvd*blockTokens + g0*hd*blockTokens
	voff := l*2*w.kvd*blockTokens + w.kvd*blockTokens + g0*blockTokens*hd
	// An 8-bit cache's scales of these heads' keys and values.
	kscale := (l*2*c.KVHeads + g0) * blockTokens
	vscale := (l*2*c.KVHeads + c.KVHeads + g0) * blockTokens
	scale := float32(1 / math.Sqrt(float64(hd)))
	q := f.qkv[i*w.qkv+g0*group*hd : i*w.qkv+g1*group*hd]
	for x, v := range q {
		s.q[x] = v * scale
	}
	// Query head g·group+j of this range is local head (g-g0)·group+j: for
	// one j, the heads of every group are group·hd apart in q and group·S
	// apart in the scores.
	for j := range group {
		at := 0
		for x, nd := range r.path {
			cnt := r.count
			if x+1 < len(r.path) {
				cnt = r.path[x+1].branch
				f.prefetch(r.path[x+1], koff, nh*hd*blockTokens)
			}
			if f.kv8 {
				tensor.VecMatHeadsI8(nh, s.scores[j*S+at:], group*S, s.q[j*hd:], group*hd,
					nd.kv.q[koff:], hd*blockTokens, blockTokens, hd, blockTokens, false)
				if j == 0 {
					// The scales of the keys and values of each head, in
					// one row over the sequence, to apply with one
					// vector product per head.
					for gi := range nh {
						copy(s.kscale[gi*S+at:][:cnt], nd.kv.scale[kscale+gi*blockTokens:])
						copy(s.vscale[gi*S+at:][:cnt], nd.kv.scale[vscale+gi*blockTokens:])
					}
				}
			} else {
				tensor.VecMatHeadsF16(nh, s.scores[j*S+at:], group*S, s.q[j*hd:], group*hd,
					nd.kv.half[koff:], hd*blockTokens, blockTokens, hd, blockTokens, false)
			}
			at += cnt
		}
	}
	// The weights stay unnormalised: dividing each head's output (hd
	// values) by the sum costs less than dividing its n scores.
	for lh := range nh * group {
		p := s.scores[lh*S : lh*S+n]
		if f.kv8 {
			tensor.Mul(p, p, s.kscale[lh/group*S:][:n])
		}
		s.sums[lh] = tensor.ExpShift(p, p)
		if f.kv8 {
			// The values' scales go into the weights, which the sum
			// divides out unscaled.
			tensor.Mul(p, p, s.vscale[lh/group*S:][:n])
		}
	}
	out := f.att[i*w.qd+g0*group*hd:]
	for j := range group {
		at := 0
		for x, nd := range r.path {
			cnt := r.count
			if x+1 < len(r.path) {
				cnt = r.path[x+1].branch
				f.prefetch(r.path[x+1], voff, nh*blockTokens*hd)
			}
			if f.kv8 {
				tensor.VecMatHeadsI8(nh, out[j*hd:], group*hd, s.scores[j*S+at:], group*S,
					nd.kv.q[voff:], blockTokens*hd, hd, cnt, hd, at > 0)
			} else {
				tensor.VecMatHeadsF16(nh, out[j*hd:], group*hd, s.scores[j*S+at:], group*S,
					nd.kv.half[voff:], blockTokens*hd, hd, cnt, hd, at > 0)
			}
			at += cnt
		}
	}
	for lh := range nh * group {
		tensor.Scale(1/s.sums[lh], out[lh*hd:(lh+1)*hd])
	}
}
