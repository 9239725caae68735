package engine

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/braid-dev/braid/model"
	"github.com/braid-dev/braid/tensor"
)

// weights are a model's parameters laid out for batched decoding: every
// matrix packed once for the microkernels (tensor.Pack), with the q/k/v and
// gate/up projections fused, so each step is a few products whose rows do
// not change with the batch around them: a thread decodes the same tokens
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
// along out) as one in × Σout matrix.
func packRows(in int, ws ...[]float32) *tensor.Packed {
	var all []float32
	for _, w := range ws {
		all = append(all, w...)
	}
	return tensor.Pack(all, in, len(all)/in, tensor.TransB)
}

func newWeights(m *model.Model) *weights {
	c, p := m.Config, m.Params
	w := &weights{cfg: c, qd: c.Heads * c.HeadDim, kvd: c.KVHeads * c.HeadDim}
	w.qkv = w.qd + 2*w.kvd
	w.embed = p.Embed
	w.finalNorm = p.FinalNorm
	w.lmHead = packRows(c.Dim, p.LMHead)
	w.rope = tensor.NewRoPE(c.HeadDim, c.MaxSeq, c.RopeTheta)
	for _, lp := range p.Layers {
		lw := layerWeights{attnNorm: lp.AttnNorm, mlpNorm: lp.MLPNorm,
			wqkv: packRows(c.Dim, lp.Wq, lp.Wk, lp.Wv), wo: packRows(w.qd, lp.Wo),
			wgu: packRows(c.Dim, lp.Wgate, lp.Wup), wdown: packRows(c.Hidden, lp.Wdown)}
		if c.QKVBias {
			lw.bqkv = append(append(append([]float32(nil), lp.Bq...), lp.Bk...), lp.Bv...)
		}
		w.layers = append(w.layers, lw)
	}
	return w
}

// blockFloats is the size of one cache block: for each layer, the keys of
// every key/value head transposed (head, dimension, slot) so that one
// vector product scores a block's 16 keys, then the values (head, slot,
// dimension).
func (w *weights) blockFloats() int {
	return w.cfg.Layers * 2 * w.kvd * blockTokens
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

// forward runs batches of rows through the model. Its buffers grow to the
// largest batch and are reused.
type forward struct {
	w       *weights
	workers int
	x, xn   []float32 // rows × Dim
	rstd    []float32
	qkv     []float32 // rows × qkv
	att     []float32 // rows × qd
	gu      []float32 // rows × 2·Hidden
	act     []float32 // rows × Hidden
	xf      []float32 // logit rows × Dim
	logits  []float32 // logit rows × Vocab
	scratch []attnScratch
}

type attnScratch struct {
	q, scores []float32
}

func newForward(w *weights, workers int) *forward {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	f := &forward{w: w, workers: workers, scratch: make([]attnScratch, workers)}
	for i := range f.scratch {
		f.scratch[i] = attnScratch{q: make([]float32, w.cfg.HeadDim), scores: make([]float32, w.cfg.MaxSeq+blockTokens)}
	}
	return f
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
	for i, r := range rows {
		copy(f.x[i*c.Dim:(i+1)*c.Dim], w.embed[r.token*c.Dim:(r.token+1)*c.Dim])
	}
	for l := range w.layers {
		f.layer(rows, l)
	}
	nl := 0
	for _, r := range rows {
		if r.logits {
			nl++
		}
	}
	f.xf, f.logits = grow(f.xf, nl*c.Dim), grow(f.logits, nl*c.Vocab)
	j := 0
	for i, r := range rows {
		if r.logits {
			copy(f.xf[j*c.Dim:(j+1)*c.Dim], f.x[i*c.Dim:(i+1)*c.Dim])
			j++
		}
	}
	tensor.RMSNorm(f.xf, f.rstd, f.xf, w.finalNorm, nl, c.Dim, c.NormEps)
	tensor.GemmPacked(f.workers, f.logits, c.Vocab, f.xf, c.Dim, w.lmHead, nl, 0)
	return f.logits
}

func (f *forward) layer(rows []row, l int) {
	w, c, lw := f.w, f.w.cfg, &f.w.layers[l]
	R := len(rows)
	tensor.RMSNorm(f.xn, f.rstd, f.x, lw.attnNorm, R, c.Dim, c.NormEps)
	tensor.GemmPacked(f.workers, f.qkv, w.qkv, f.xn, c.Dim, lw.wqkv, R, 0)
	if lw.bqkv != nil {
		tensor.AddBias(f.qkv, lw.bqkv, R, w.qkv)
	}
	hd, loff := c.HeadDim, l*2*w.kvd*blockTokens
	for i, r := range rows {
		q := f.qkv[i*w.qkv : (i+1)*w.qkv]
		pos := []int{r.pos}
		w.rope.Apply(q[:w.qd], pos, c.Heads)
		w.rope.Apply(q[w.qd:w.qd+w.kvd], pos, c.KVHeads)
		if !r.write {
			continue
		}
		kv, slot := r.path[len(r.path)-1].kv[loff:], r.count-1
		k, v := q[w.qd:w.qd+w.kvd], q[w.qd+w.kvd:]
		for g := range c.KVHeads {
			kt := kv[g*hd*blockTokens:]
			for d, x := range k[g*hd : (g+1)*hd] {
				kt[d*blockTokens+slot] = x
			}
			copy(kv[w.kvd*blockTokens+(g*blockTokens+slot)*hd:], v[g*hd:(g+1)*hd])
		}
	}
	f.attention(rows, l)
	tensor.GemmPacked(f.workers, f.x, c.Dim, f.att, w.qd, lw.wo, R, tensor.Accumulate)

	tensor.RMSNorm(f.xn, f.rstd, f.x, lw.mlpNorm, R, c.Dim, c.NormEps)
	H := c.Hidden
	tensor.GemmPacked(f.workers, f.gu, 2*H, f.xn, c.Dim, lw.wgu, R, 0)
	for i := range R {
		gu := f.gu[i*2*H : (i+1)*2*H]
		tensor.SwiGLU(f.act[i*H:(i+1)*H], gu[:H], gu[H:])
	}
	tensor.GemmPacked(f.workers, f.x, c.Dim, f.act, H, lw.wdown, R, tensor.Accumulate)
}

// attention computes every row's attention output, one (row, key/value
// head) pair at a time across the workers: the scores of a query head
// against its sequence's keys block by block, a softmax, and the weighted
// sum of the values as one chain of multiply-adds over the positions, so
// the result does not depend on how the sequence is cut into blocks.
func (f *forward) attention(rows []row, l int) {
	c := f.w.cfg
	tasks := len(rows) * c.KVHeads
	workers := min(f.workers, tasks)
	var next atomic.Int64
	work := func(s *attnScratch) {
		for {
			t := int(next.Add(1)) - 1
			if t >= tasks {
				return
			}
			f.attendGroup(s, &rows[t/c.KVHeads], t/c.KVHeads, t%c.KVHeads, l)
		}
	}
	if workers <= 1 {
		work(&f.scratch[0])
		return
	}
	var wg sync.WaitGroup
	for i := 1; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(&f.scratch[i])
		}()
	}
	work(&f.scratch[0])
	wg.Wait()
}

func (f *forward) attendGroup(s *attnScratch, r *row, i, g, l int) {
	w, c := f.w, f.w.cfg
	hd := c.HeadDim
	group := c.Heads / c.KVHeads
	koff := l*2*w.kvd*blockTokens + g*hd*blockTokens
	voff := l*2*w.kvd*blockTokens + w.kvd*blockTokens + g*blockTokens*hd
	n := r.pos + 1
	scale := float32(1 / math.Sqrt(float64(hd)))
	for h := g * group; h < (g+1)*group; h++ {
		q := f.qkv[i*w.qkv+h*hd : i*w.qkv+(h+1)*hd]
		for d, x := range q {
			s.q[d] = x * scale
		}
		scores := s.scores[:n+blockTokens]
		at := 0
		for j, nd := range r.path {
			cnt := r.count
			if j+1 < len(r.path) {
				cnt = r.path[j+1].branch
			}
			tensor.VecMat(scores[at:at+blockTokens], s.q, nd.kv[koff:], hd, blockTokens, blockTokens, false)
			at += cnt
		}
		p := scores[:n]
		tensor.Softmax(p, p)
		out := f.att[i*w.qd+h*hd : i*w.qd+(h+1)*hd]
		at = 0
		for j, nd := range r.path {
			cnt := r.count
			if j+1 < len(r.path) {
				cnt = r.path[j+1].branch
			}
			tensor.VecMat(out, p[at:at+cnt], nd.kv[voff:], cnt, hd, hd, at > 0)
			at += cnt
		}
	}
}
