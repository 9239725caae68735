package engine

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/braid-dev/braid/internal/half"
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
	cfg     model.Config
	qd, kvd int // widths of q and of k (and v)
	// qkv is the width of the fused attention product: q|k|v, then for
	// sparse attention the indexer's queries|key|head weights.
	qkv       int
	embed     []float32
	layers    []layerWeights
	finalNorm []float32
	lmHead    *tensor.Packed // Dim × Vocab
	rope      *tensor.RoPE
	// index is the lightning indexer where the engine attends sparsely,
	// nil where it attends densely.
	index *indexer
}

// indexer is the engine's side of DeepSeek's sparse attention (the
// model's indexer.go has the definition): the columns of the qkv product
// it reads, its rotary table, and how many positions a token attends to.
type indexer struct {
	heads, dim int
	topK       int
	q, k, w    int // where its queries, key and head weights start in a qkv row
	rope       *tensor.RoPE
	// qScale and wScale scale its queries and head weights, by
	// 1/√IndexDim and 1/√IndexHeads as the model's indexForward does.
	qScale, wScale float32
}

type layerWeights struct {
	attnNorm, mlpNorm []float32
	wqkv              *tensor.Packed // Dim × qkv
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

// newWeights packs p for format f; topK > 0 attends sparsely to that many
// positions with the model's indexer, whose projections join the qkv
// product.
func newWeights(c model.Config, p *model.Params, f WeightFormat, topK int) (*weights, error) {
	w := &weights{cfg: c, qd: c.Heads * c.HeadDim, kvd: c.KVHeads * c.HeadDim}
	w.qkv = w.qd + 2*w.kvd
	if topK > 0 {
		ix := &indexer{heads: c.IndexHeads, dim: c.IndexDim, topK: topK, q: w.qkv}
		ix.k = ix.q + ix.heads*ix.dim
		ix.w = ix.k + ix.dim
		w.qkv = ix.w + ix.heads
		ix.rope = tensor.NewScaledRoPE(c.IndexDim, c.MaxSeq, c.RopeTheta, c.RopeScaling)
		ix.qScale = float32(1 / math.Sqrt(float64(c.IndexDim)))
		ix.wScale = float32(1 / math.Sqrt(float64(c.IndexHeads)))
		w.index = ix
	}
	w.embed = p.Embed
	w.finalNorm = p.FinalNorm
	var err error
	if w.lmHead, err = packRows(f, c.Dim, p.LMHead); err != nil {
		return nil, err
	}
	w.rope = tensor.NewScaledRoPE(c.HeadDim, c.MaxSeq, c.RopeTheta, c.RopeScaling)
	for _, lp := range p.Layers {
		lw := layerWeights{attnNorm: lp.AttnNorm, mlpNorm: lp.MLPNorm}
		qkv := [][]float32{lp.Wq, lp.Wk, lp.Wv}
		if w.index != nil {
			qkv = append(qkv, lp.IndexWq, lp.IndexWk, lp.IndexWw)
		}
		for _, m := range []struct {
			dst *(*tensor.Packed)
			in  int
			ws  [][]float32
		}{
			{&lw.wqkv, c.Dim, qkv},
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
// An 8-bit block lays each head's keys out as tensor.KeyByteQ8 says
// (dimensions in fours, each four's 16 slots) and its values as half
// precision does. A sparse engine's blocks hold keys by position, (head,
// slot, dimension) as values are, since a sparse row reads the keys of a
// few scattered positions (forward.selectPositions); an 8-bit one, each
// head's key as its hd bytes. The block's layout follows from the model's
// shape alone, so the engine can size its cache before it packs any
// weights.
func blockValues(c model.Config) int {
	return c.Layers * 2 * c.KVHeads * c.HeadDim * blockTokens
}

// blockScales is the number of scales one block of an 8-bit cache holds:
// for each layer, keys then values, one per key/value head and slot (head,
// slot), each scaling its head's HeadDim values at that slot.
func blockScales(c model.Config) int {
	return c.Layers * 2 * c.KVHeads * blockTokens
}

// blockIndexKeys is the indexer's keys one cache block holds where the
// engine attends sparsely, in half precision: for each layer, IndexDim
// values per slot laid out (dimension, slot), as a head's keys are, so one
// vector product scores a block's 16 positions; none for dense attention.
func blockIndexKeys(c model.Config, sparse bool) int {
	if !sparse {
		return 0
	}
	return c.Layers * c.IndexDim * blockTokens
}

// blockBytes is the memory of one cache block.
func blockBytes(c model.Config, kv8, sparse bool) int {
	index := 2 * blockIndexKeys(c, sparse)
	if kv8 {
		return blockValues(c) + 4*blockScales(c) + index
	}
	return 2*blockValues(c) + index
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
	// order is the rows sorted by their paths, and groups cut it into
	// the rows that attend together (attnGroup).
	order  []int
	groups []attnGroup
	// next hands out attention tasks, one counter per layer.
	next []atomic.Int64
	// kv8 says the cache holds 8-bit keys and values (kvBlock.q).
	kv8 bool
}

// attnGroupRows bounds the rows that attend together: each needs its own
// scores, which must stay in the core's caches between the products that
// write them and read them.
const attnGroupRows = 8

// attnGroup is order[lo:hi], rows whose paths begin with the same shared
// nodes, each of whose tokens they all see: their attention reads those
// nodes' keys and values once for all of them, while they are in the
// core's caches, rather than once per row. These are the rows of one
// thread in one step (a prompt's, or an environment's forced tokens), the
// children of one spawn, the samples of one vote, the requests of one
// system prompt: a step reads several times less of the cache.
type attnGroup struct {
	lo, hi, shared int
}

type attnScratch struct {
	// Per row of a group: its scaled queries, each head's scores along
	// the sequence (stride S, attend's), each head's softmax denominator,
	// each head's output before it is divided by that.
	q, scores, sums, out []float32
	// q8 and qh are the queries in 8 bits, for an 8-bit cache's keys.
	q8 []int8
	qh []tensor.Q8Head
	// row8 is one head's keys in 8 bits, on their way into the cache.
	row8 []int8
	kv   []uint16 // a row's keys and values in half precision
	// For a row attending sparsely: its nodes' index keys of the layer,
	// the indexer's score of each position, the top-k selection's scratch,
	// the selected positions, and their keys and values where they lie
	// (rowsOf); in an 8-bit cache, their scales too, and the integer
	// products of the keys with the query.
	iblocks        []unsafe.Pointer
	index          []float32
	topk           model.TopK
	picks          []pick
	keys, values   []unsafe.Pointer
	kscale, vscale []float32
	dots           []int32
}

func newForward(w *weights, workers int, kv8 bool) *forward {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	f := &forward{w: w, crew: newCrew(workers), scratch: make([]attnScratch, workers), next: make([]atomic.Int64, w.cfg.Layers), kv8: kv8}
	for i := range f.scratch {
		f.scratch[i].kv = make([]uint16, 2*w.kvd)
	}
	return f
}

// shrink lets go of the buffers that the largest step so far grew: they
// come back, as large as the next steps need, when work does.
func (f *forward) shrink() {
	f.x, f.xn, f.rstd, f.qkv, f.att, f.gu, f.act, f.xf, f.logits = nil, nil, nil, nil, nil, nil, nil, nil, nil
	f.order, f.groups = nil, nil
	for i := range f.scratch {
		s := &f.scratch[i]
		s.q, s.scores, s.sums, s.out, s.q8, s.qh = nil, nil, nil, nil, nil, nil
		s.iblocks, s.index, s.picks, s.keys, s.values = nil, nil, nil, nil, nil
		s.kscale, s.vscale, s.dots = nil, nil, nil
		s.topk = model.TopK{}
	}
}

func grow[E any](s []E, n int) []E {
	if cap(s) < n {
		return make([]E, n)
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
	f.group(rows)
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
	if ix := w.index; ix != nil {
		// As the model's indexForward: rotated, then scaled.
		iq, ik, iw := q[ix.q:ix.k], q[ix.k:ix.w], q[ix.w:w.qkv]
		ix.rope.Apply(iq, pos, ix.heads)
		ix.rope.Apply(ik, pos, 1)
		tensor.Scale(ix.qScale, iq)
		tensor.Scale(ix.wScale, iw)
		if r.write {
			b, slot := r.path[len(r.path)-1].kv.index[l*ix.dim*blockTokens:], r.count-1
			for d, v := range ik {
				b[d*blockTokens+slot] = half.FromFloat32(v)
			}
		}
	}
	if !r.write {
		return
	}
	hd := c.HeadDim
	if f.kv8 {
		f.store8(s, r, q[w.qd:w.qd+2*w.kvd], l)
		return
	}
	kv, slot := r.path[len(r.path)-1].kv.half[l*2*w.kvd*blockTokens:], r.count-1
	tensor.ToHalf(s.kv, q[w.qd:w.qd+2*w.kvd]) // keys, then values
	k, v := s.kv[:w.kvd], s.kv[w.kvd:]
	for g := range c.KVHeads {
		if w.index != nil { // keys by position, as values are (rowsOf)
			copy(kv[(g*blockTokens+slot)*hd:], k[g*hd:(g+1)*hd])
		} else {
			kt := kv[g*hd*blockTokens:]
			for d, x := range k[g*hd : (g+1)*hd] {
				kt[d*blockTokens+slot] = x
			}
		}
		copy(kv[w.kvd*blockTokens+(g*blockTokens+slot)*hd:], v[g*hd:(g+1)*hd])
	}
}

// store8 writes a row's keys and values (kv: keys, then values) into its
// slot of an 8-bit cache: each head's HeadDim values as integers in
// [−127, 127] times one scale, their largest magnitude over 127, so every
// value is within half a step of what it was.
func (f *forward) store8(s *attnScratch, r *row, kv []float32, l int) {
	w, c := f.w, f.w.cfg
	hd, kvh := c.HeadDim, c.KVHeads
	b, slot := r.path[len(r.path)-1].kv, r.count-1
	keys := b.u[l*2*w.kvd*blockTokens:]
	values := b.q[l*2*w.kvd*blockTokens+w.kvd*blockTokens:]
	scale := b.scale[l*2*kvh*blockTokens:]
	s.row8 = grow(s.row8, hd)
	for g := range kvh {
		x := kv[g*hd : (g+1)*hd]
		scale[g*blockTokens+slot] = tensor.QuantizeHead(s.row8, x).Scale
		kt := keys[g*hd*blockTokens:]
		for d, v := range s.row8 {
			at := tensor.KeyByteQ8(d, slot)
			if w.index != nil { // by position (rowsOf)
				at = slot*hd + d
			}
			kt[at] = uint8(int(v) + 128)
		}
		x = kv[w.kvd+g*hd : w.kvd+(g+1)*hd]
		scale[(kvh+g)*blockTokens+slot] = tensor.QuantizeHead(values[(g*blockTokens+slot)*hd:][:hd], x).Scale
	}
}

// visible is how many of path[x]'s tokens row r sees: all of the last
// node's first count, and of every other node the tokens before the next
// one branches off.
func (r *row) visible(x int) int {
	if x+1 < len(r.path) {
		return r.path[x+1].branch
	}
	return r.count
}

// shared is how many leading nodes of their paths rows a and b share,
// seeing the same tokens of each.
func shared(a, b *row) int {
	n := min(len(a.path), len(b.path))
	for x := range n {
		if a.path[x] != b.path[x] || a.visible(x) != b.visible(x) {
			return x
		}
	}
	return n
}

// group sorts the rows by their paths, so that rows sharing nodes are
// neighbours, and cuts them into attention groups: a row joins the group
// before it while the tokens that attending together saves do not fall,
// up to attnGroupRows rows.
func (f *forward) group(rows []row) {
	f.order = f.order[:0]
	for i := range rows {
		f.order = append(f.order, i)
	}
	slices.SortFunc(f.order, func(i, j int) int {
		a, b := &rows[i], &rows[j]
		x := shared(a, b)
		switch {
		case x < len(a.path) && x < len(b.path):
			if c := cmp.Compare(a.path[x].id, b.path[x].id); c != 0 {
				return c
			}
			return cmp.Compare(a.visible(x), b.visible(x))
		case len(a.path) != len(b.path):
			return cmp.Compare(len(a.path), len(b.path))
		}
		return cmp.Compare(i, j)
	})
	// tokens is the positions of a row's first x nodes: where node x
	// starts.
	tokens := func(r *row, x int) int {
		if x == len(r.path) {
			return r.pos + 1
		}
		return r.path[x].start
	}
	// A sparse engine's rows attend alone, each to the top-k positions
	// its indexer picks (forward.selectPositions): no two pick the same,
	// and the rows of a group share what they read.
	most := attnGroupRows
	if f.w.index != nil {
		most = 1
	}
	f.groups = f.groups[:0]
	for lo := 0; lo < len(f.order); {
		first := &rows[f.order[lo]]
		hi, nodes := lo+1, len(first.path)
		for ; hi < len(f.order) && hi-lo < most; hi++ {
			x := min(nodes, shared(first, &rows[f.order[hi]]))
			if x == 0 || tokens(first, x)*(hi-lo) < tokens(first, nodes)*(hi-lo-1) {
				break
			}
			nodes = x
		}
		if hi-lo == 1 {
			nodes = 0
		}
		f.groups = append(f.groups, attnGroup{lo: lo, hi: hi, shared: nodes})
		lo = hi
	}
}

// attention is member m's share of every row's attention output: (group,
// range of key/value heads) tasks, handed out in turn. Each query head's
// scores against its sequence's keys are computed block by block, then a
// softmax, then the weighted sum of the values as one chain of
// multiply-adds over the positions, so the result does not depend on how
// the sequence is cut into blocks, nor on which rows attend together. A
// row's own blocks go through tensor.VecMatHeadsF16 (or, for an 8-bit
// cache, VecMatHeadsI8), all its heads together; a group's shared blocks
// through VecMatRowsF16 (VecMatRowsI8), all its rows together, each
// value widened once: the same chains either way.
func (f *forward) attention(m int, rows []row, l int) {
	c := f.w.cfg
	// A few groups would leave members idle: split the heads too.
	parts := 1
	if len(f.groups) < 2*f.crew.n {
		parts = min(f.crew.n, (c.KVHeads+3)/4)
	}
	per := (c.KVHeads + parts - 1) / parts
	tasks := len(f.groups) * parts
	for {
		t := int(f.next[l].Add(1)) - 1
		if t >= tasks {
			return
		}
		gr, g0 := &f.groups[t/parts], t%parts*per
		if g0 < c.KVHeads {
			f.attend(&f.scratch[m], rows, f.order[gr.lo:gr.hi], gr.shared, g0, min(c.KVHeads, g0+per), l)
		}
	}
}

// attend computes the attention of rows idx (a group: the first shared
// nodes of their paths are the same) for key/value heads [g0, g1) and
// their query heads: each shared block's keys are multiplied for every
// row in turn while they are in the core's caches, its values for all the
// rows at once; then each row's own blocks.
func (f *forward) attend(s *attnScratch, rows []row, idx []int, shared, g0, g1, l int) {
	w, c := f.w, f.w.cfg
	hd, group, nh := c.HeadDim, c.Heads/c.KVHeads, g1-g0
	qh := nh * group // query heads
	S := 0           // one head's scores, with room for a block's last
	for _, i := range idx {
		S = max(S, rows[i].pos+1+blockTokens)
	}
	G := len(idx)
	s.q, s.scores, s.sums, s.out = grow(s.q, G*qh*hd), grow(s.scores, G*qh*S), grow(s.sums, G*qh), grow(s.out, G*qh*hd)
	if f.kv8 {
		s.q8, s.qh = grow(s.q8, G*qh*hd), grow(s.qh, G*qh)
	}
	// length is how many scores row k has. A sparse row attends to its
	// selected positions alone, read where they lie (direct):
	// tensor.DotRowsF16 and AxpyRowsF16 (DotRowsU8 and AxpyRowsI8 for an
	// 8-bit cache) over s.keys and s.values.
	length := func(k int) int { return rows[idx[k]].pos + 1 }
	direct := false
	if f.w.index != nil { // a group of one (forward.group)
		n := f.selectPositions(s, &rows[idx[0]], idx[0], l)
		length = func(int) int { return n }
		f.rowsOf(s, l, g0, g1)
		direct = true
	}
	hstride := blockTokens * hd * 2 // bytes from one head's row to the next's
	if f.kv8 {
		hstride = blockTokens * hd
	}
	koff := l*2*w.kvd*blockTokens + g0*hd*blockTokens
	voff := l*2*w.kvd*blockTokens + w.kvd*blockTokens + g0*blockTokens*hd
	// An 8-bit cache's scales of these heads' keys and values.
	kscale := (l*2*c.KVHeads + g0) * blockTokens
	vscale := (l*2*c.KVHeads + c.KVHeads + g0) * blockTokens
	scale := float32(1 / math.Sqrt(float64(hd)))
	for k, i := range idx {
		q := f.qkv[i*w.qkv+g0*group*hd : i*w.qkv+g1*group*hd]
		for x, v := range q {
			s.q[k*qh*hd+x] = v * scale
		}
		if f.kv8 {
			for lh := range qh {
				at := (k*qh + lh) * hd
				s.qh[k*qh+lh] = tensor.QuantizeHead(s.q8[at:at+hd], s.q[at:at+hd])
			}
		}
	}
	// Query head g·group+j of this range is local head (g-g0)·group+j: for
	// one j, the heads of every group are group·hd apart in q and group·S
	// apart in the scores.
	for j := range group {
		if direct && f.kv8 {
			// ScoresQ8's arithmetic: the exact integer product, then its
			// correction and scales in that order.
			n := len(s.keys)
			s.dots = grow(s.dots, nh*n)
			tensor.DotRowsU8(nh, hd, s.dots, n, s.q8[j*hd:], group*hd, s.keys, hstride)
			for gi := range nh {
				lh := gi*group + j
				head, scores := s.qh[lh], s.scores[lh*S:lh*S+n]
				for i, dot := range s.dots[gi*n : (gi+1)*n] {
					scores[i] = float32(dot-head.Corr) * head.Scale * s.kscale[gi*n+i]
				}
			}
			continue
		}
		if direct {
			tensor.DotRowsF16(nh, hd, s.scores[j*S:], group*S, s.q[j*hd:], group*hd, s.keys, hstride)
			continue
		}
		// keys multiplies row k's queries by nd's keys, cnt of which it
		// sees from position at.
		keys := func(k int, nd, next *node, at, cnt int) {
			scores, q := s.scores[k*qh*S+j*S+at:], s.q[k*qh*hd+j*hd:]
			if !f.kv8 {
				tensor.VecMatHeadsF16(nh, scores, group*S, q, group*hd,
					nd.kv.half[koff:], hd*blockTokens, blockTokens, hd, blockTokens, false, next.half(koff, nh*hd*blockTokens))
				return
			}
			tensor.ScoresQ8(nh, hd, scores, group*S, s.q8[k*qh*hd+j*hd:], group*hd, s.qh[k*qh+j:], group,
				nd.kv.u[koff:], hd*blockTokens, nd.kv.scale[kscale:kscale+nh*blockTokens], next.u(koff, nh*hd*blockTokens))
		}
		walk(rows, idx, shared, keys, nil)
	}
	// The weights stay unnormalised: dividing each head's output (hd
	// values) by the sum costs less than dividing its n scores. An 8-bit
	// cache's values' scales go into the weights block by block, just
	// before the weights multiply the values, and the sum divides out
	// unscaled.
	for k := range idx {
		n := length(k)
		for lh := range qh {
			p := s.scores[(k*qh+lh)*S:][:n]
			s.sums[k*qh+lh] = tensor.ExpShift(p, p)
		}
	}
	for j := range group {
		if direct && f.kv8 {
			n := len(s.values)
			for gi := range nh { // the values' scales into the weights
				p := s.scores[(gi*group+j)*S:][:n]
				for i, v := range s.vscale[gi*n : (gi+1)*n] {
					p[i] *= v
				}
			}
			tensor.AxpyRowsI8(nh, hd, s.out[j*hd:], group*hd, s.scores[j*S:], group*S, s.values, hstride)
			continue
		}
		if direct {
			tensor.AxpyRowsF16(nh, hd, s.out[j*hd:], group*hd, s.scores[j*S:], group*S, s.values, hstride)
			continue
		}
		// values adds nd's values, weighted by row k's scores at
		// positions [at, at+cnt), to its output; sharedValues adds a
		// shared node's to every row's, widening each value once.
		values := func(k int, nd, next *node, at, cnt int) {
			out, p := s.out[k*qh*hd+j*hd:], s.scores[k*qh*S+j*S+at:]
			if f.kv8 {
				tensor.MulRows(nh, cnt, p, group*S, nd.kv.scale[vscale:], blockTokens)
				tensor.VecMatHeadsI8(nh, out, group*hd, p, group*S,
					nd.kv.q[voff:], blockTokens*hd, hd, cnt, hd, at > 0, next.q(voff, nh*blockTokens*hd))
			} else {
				tensor.VecMatHeadsF16(nh, out, group*hd, p, group*S,
					nd.kv.half[voff:], blockTokens*hd, hd, cnt, hd, at > 0, next.half(voff, nh*blockTokens*hd))
			}
		}
		sharedValues := func(nd, next *node, at, cnt int) {
			for gi := range nh {
				lh, v := gi*group+j, voff+gi*blockTokens*hd
				out, p := s.out[lh*hd:], s.scores[lh*S+at:]
				if f.kv8 {
					tensor.MulRows(G, cnt, p, qh*S, nd.kv.scale[vscale+gi*blockTokens:], 0)
					tensor.VecMatRowsI8(G, out, qh*hd, p, qh*S, nd.kv.q[v:], hd, cnt, hd, at > 0, next.q(v, blockTokens*hd))
				} else {
					tensor.VecMatRowsF16(G, out, qh*hd, p, qh*S, nd.kv.half[v:], hd, cnt, hd, at > 0, next.half(v, blockTokens*hd))
				}
			}
		}
		walk(rows, idx, shared, values, sharedValues)
	}
	for k, i := range idx {
		out := f.att[i*w.qd+g0*group*hd:]
		for lh := range qh {
			inv := 1 / s.sums[k*qh+lh]
			for x, v := range s.out[(k*qh+lh)*hd : (k*qh+lh+1)*hd] {
				out[lh*hd+x] = v * inv
			}
		}
	}
}

// walk calls do(k, node, next, at, cnt) for every node of every row idx[k]
// attends to, in order along each row's sequence: the shared nodes first,
// each for all the rows in turn (or, given all, once for all of them),
// then each row's own. next is the node to fetch into the caches
// meanwhile (nil where none is), fetchAhead nodes on.
func walk(rows []row, idx []int, shared int, do func(k int, nd, next *node, at, cnt int), all func(nd, next *node, at, cnt int)) {
	first := &rows[idx[0]]
	at := 0
	for x := range shared {
		cnt := first.visible(x)
		if all != nil {
			all(first.path[x], ahead(rows, idx, shared, 0, x, fetchAhead), at, cnt)
			at += cnt
			continue
		}
		for k := range idx {
			var next *node // fetched while the first row multiplies nd
			if k == 0 {
				next = ahead(rows, idx, shared, 0, x, fetchAhead)
			}
			do(k, first.path[x], next, at, cnt)
		}
		at += cnt
	}
	for k, i := range idx {
		r, a := &rows[i], at
		for x := shared; x < len(r.path); x++ {
			cnt := r.visible(x)
			do(k, r.path[x], ahead(rows, idx, shared, k, x, fetchAhead), a, cnt)
			a += cnt
		}
	}
}

// fetchAhead is how many nodes ahead of the one it multiplies attention
// fetches the next. Farther would cover more of memory's latency, but on
// a Sapphire Rapids core 4 and 8 nodes ahead decoded 16 threads of
// 1,500-token contexts slower than 1 in half precision (3,997 and 4,104
// tokens/s against 5,109, medians of three alternating runs), the same
// in 8 bits: the blocks in flight crowd out the ones being multiplied.
const fetchAhead = 1

// ahead is the node walk visits d distinct nodes after row idx[k]'s node
// x: along that row's path, then on the next rows' own nodes; nil past
// the last.
func ahead(rows []row, idx []int, shared, k, x, d int) *node {
	for k < len(idx) {
		r := &rows[idx[k]]
		if x+d < len(r.path) {
			return r.path[x+d]
		}
		d -= len(r.path) - x
		k, x = k+1, shared
	}
	return nil
}

// selectPositions picks the positions sparse row r (row i of the batch)
// attends to in layer l, as the model's Sparse forward does: the
// indexer's score of every position it sees, I(s) = Σⱼ wⱼ·ReLU(qⱼ·kₛ)
// from the cached keys (tensor.IndexScoresF16), then the topK highest
// (model.TopK). It lists them in s.picks, in order, and returns how many
// there are. A sparse cache holds keys by position, as it holds values,
// so that a picked position's key is a cache line or two a head, not a
// strand of every line of its block.
func (f *forward) selectPositions(s *attnScratch, r *row, i, l int) int {
	w, ix := f.w, f.w.index
	q := f.qkv[i*w.qkv : (i+1)*w.qkv]
	ioff := l * ix.dim * blockTokens
	s.iblocks = s.iblocks[:0]
	for _, nd := range r.path {
		s.iblocks = append(s.iblocks, unsafe.Pointer(&nd.kv.index[ioff]))
	}
	s.index = grow(s.index, len(r.path)*blockTokens)
	tensor.IndexScoresF16(s.index, q[ix.q:ix.k], q[ix.w:], ix.heads, ix.dim, s.iblocks)
	// Node x's scores are at x·blockTokens: a node the row sees only the
	// start of (a branch forks off it) leaves a gap to close.
	n := 0
	for x := range r.path {
		cnt := r.visible(x)
		if n != x*blockTokens {
			copy(s.index[n:n+cnt], s.index[x*blockTokens:])
		}
		n += cnt
	}
	// The selected positions in order, each placed in the node that holds
	// it (node x holds [at, at+visible(x))).
	s.picks = s.picks[:0]
	x, at := 0, 0
	for _, p := range s.topk.Select(s.index[:n], ix.topK) {
		pos := int(p)
		for pos >= at+r.visible(x) {
			at += r.visible(x)
			x++
		}
		s.picks = append(s.picks, pick{r.path[x], pos - at})
	}
	return len(s.picks)
}

// rowsOf points s.keys and s.values at the picked positions' key and
// value of key/value head g0 in layer l, which a sparse cache holds by
// position (the next head's hd·blockTokens values on): the row kernels
// read them where they lie. For an 8-bit cache it also lists, head by
// head, the picked keys' and values' scales in s.kscale and s.vscale.
func (f *forward) rowsOf(s *attnScratch, l, g0, g1 int) {
	c := f.w.cfg
	hd, kvd, kvh := c.HeadDim, f.w.kvd, c.KVHeads
	key := l*2*kvd*blockTokens + g0*blockTokens*hd
	value := key + kvd*blockTokens
	s.keys, s.values = s.keys[:0], s.values[:0]
	if !f.kv8 {
		for _, pk := range s.picks {
			b := pk.nd.kv.half
			s.keys = append(s.keys, unsafe.Pointer(&b[key+pk.slot*hd]))
			s.values = append(s.values, unsafe.Pointer(&b[value+pk.slot*hd]))
		}
		return
	}
	n, nh := len(s.picks), g1-g0
	s.kscale, s.vscale = grow(s.kscale, nh*n), grow(s.vscale, nh*n)
	scale := (l*2*kvh + g0) * blockTokens // key head g0's at slot 0
	for i, pk := range s.picks {
		b := &pk.nd.kv
		s.keys = append(s.keys, unsafe.Pointer(&b.u[key+pk.slot*hd]))
		s.values = append(s.values, unsafe.Pointer(&b.q[value+pk.slot*hd]))
		for gi := range nh {
			s.kscale[gi*n+i] = b.scale[scale+gi*blockTokens+pk.slot]
			s.vscale[gi*n+i] = b.scale[scale+(kvh+gi)*blockTokens+pk.slot]
		}
	}
}

// pick is a selected position: slot of node nd.
type pick struct {
	nd   *node
	slot int
}
