package model

import (
	"fmt"
	"math"
	"runtime"

	"github.com/braid-dev/braid/tensor"
)

// The lightning indexer of DeepSeek's sparse attention (DSA, DeepSeek-V3.2):
// a few small heads score every earlier position for each token,
//
//	I(t,s) = Σⱼ wₜⱼ · ReLU(qₜⱼ·kₛ),
//
// cheap next to attention (IndexHeads·IndexDim multiply-adds a position
// against attention's 2·Heads·HeadDim), and a sparse model attends only to
// the IndexTopK positions with the highest scores. Its queries, key and
// head weights are projections of the attention's normalised input; the
// queries and key turn with position as the attention's do.

// indexForward computes layer l's indexer queries, key and head weights
// from the attention's normalised input, the queries scaled by
// 1/√IndexDim and the weights by 1/√IndexHeads, as DeepSeek-V3.2 scales
// them.
func (m *Model) indexForward(a *Activations, l int) {
	c, lp, la := m.Config, &m.Params.Layers[l], &a.layers[l]
	bt, iqd := a.B*a.T, c.IndexHeads*c.IndexDim
	tensor.Gemm(la.iq, la.xn1, lp.IndexWq, bt, c.Dim, iqd, tensor.TransB)
	tensor.Gemm(la.ik, la.xn1, lp.IndexWk, bt, c.Dim, c.IndexDim, tensor.TransB)
	tensor.Gemm(la.iw, la.xn1, lp.IndexWw, bt, c.Dim, c.IndexHeads, tensor.TransB)
	qs, ws := sqrtInv(c.IndexDim), sqrtInv(c.IndexHeads)
	rowsOf(la.iq, bt, iqd, func(q []float32, lo, hi int) {
		m.indexRope.Apply(q, a.pos[lo:hi], c.IndexHeads)
		tensor.Scale(qs, q)
	})
	rowsOf(la.ik, bt, c.IndexDim, func(k []float32, lo, hi int) { m.indexRope.Apply(k, a.pos[lo:hi], 1) })
	rowsOf(la.iw, bt, c.IndexHeads, func(w []float32, _, _ int) { tensor.Scale(ws, w) })
}

// indexWork is one worker's scratch for a block of rows against the
// positions up to the block's last: the attention's distribution, the
// indexer's scores (then its distribution, then their gradient), one
// head's attention scores, and each indexer head's ReLU(q·k); and the
// top-k selection's scratch.
type indexWork struct {
	p, i, s, z []float32
	topk       *TopK
}

// indexScores writes into w.i (stride r1) the indexer's scores of rows
// [r0,r1) of sequence b against positions [0,r1), and keeps each head's
// ReLU(q·k) in w.z (head j's rows at j·rows·r1). Positions past a row's
// own are scored too; the caller masks them.
func (m *Model) indexScores(a *Activations, la *layerActs, w *indexWork, b, r0, r1 int) {
	c := m.Config
	T, id, iqd, rows := a.T, c.IndexDim, c.IndexHeads*c.IndexDim, r1-r0
	k := tensor.Mat{Data: la.ik[b*T*id:], Stride: id}
	clear(w.i[:rows*r1])
	for j := range c.IndexHeads {
		z := w.z[j*rows*r1 : (j+1)*rows*r1]
		q := tensor.Mat{Data: la.iq[(b*T+r0)*iqd+j*id:], Stride: iqd}
		tensor.GemmStrided(1, tensor.Mat{Data: z, Stride: r1}, q, k, rows, id, r1, tensor.TransB)
		for t := range rows {
			wt := la.iw[(b*T+r0+t)*c.IndexHeads+j]
			zr, ir := z[t*r1:(t+1)*r1], w.i[t*r1:(t+1)*r1]
			for s, v := range zr {
				v = max(v, 0)
				zr[s] = v
				ir[s] += wt * v
			}
		}
	}
}

// indexGrads is the gradient of the indexer's activations, per layer.
type indexGrads struct {
	iq, ik, iw []float32
}

// IndexerLoss is the objective of the indexer's training (DeepSeek-V3.2):
// at every layer and position t, the KL divergence from the attention's
// distribution over positions 0..t (its heads' probabilities, averaged)
// to the indexer's (the softmax of its scores), averaged over the layers
// and the positions; in a sparse model, over the positions t attends to
// alone, as in the sparse stage of training. It reads the activations of
// the last Forward, with or without targets. With g it adds scale times
// the loss's gradient with respect to the indexer's parameters into g (a
// trainer weighs each micro-batch by its share): the rest of the model
// gets none, since the indexer learns to predict the attention, not the
// attention to suit the indexer.
func (m *Model) IndexerLoss(a *Activations, g *Params, scale float32) (float32, error) {
	c := m.Config
	if !c.HasIndexer() {
		return 0, fmt.Errorf("model: IndexerLoss on a model without an indexer")
	}
	if a.tokens == nil || len(a.tokens) != a.B*a.T {
		return 0, fmt.Errorf("model: IndexerLoss needs a Forward of the activations' batch first")
	}
	T, bt := a.T, a.B*a.T
	if !m.sparse() { // a sparse Forward computed them already
		for l := range c.Layers {
			m.indexForward(a, l)
		}
	}
	// The mean over layers and positions: each row's gradient is its
	// share of it.
	share := 1 / float64(c.Layers*bt)
	grads := make([]indexGrads, c.Layers)
	if g != nil {
		for l := range grads {
			grads[l] = indexGrads{
				iq: make([]float32, bt*c.IndexHeads*c.IndexDim),
				ik: make([]float32, bt*c.IndexDim),
				iw: make([]float32, bt*c.IndexHeads),
			}
		}
	}
	// Tasks are (layer, sequence) pairs: each writes its own rows of its
	// layer's gradients.
	sums := make([]float64, runtime.GOMAXPROCS(0))
	newWork := func() *indexWork {
		return &indexWork{
			p: make([]float32, attnBlock*T), i: make([]float32, attnBlock*T), s: make([]float32, attnBlock*T),
			z: make([]float32, c.IndexHeads*attnBlock*T),
		}
	}
	eachTask(c.Layers*a.B, newWork, func(w *indexWork, worker, task int) {
		l, b := task/a.B, task%a.B
		var gr *indexGrads
		if g != nil {
			gr = &grads[l]
		}
		sums[worker] += m.indexLossSeq(a, &a.layers[l], w, gr, b, share*float64(scale))
	})
	var loss float64
	for _, s := range sums {
		loss += s
	}
	if g != nil {
		for l := range c.Layers {
			m.indexBackward(a, l, &grads[l], &g.Layers[l])
		}
	}
	return float32(loss * share), nil
}

// indexLossSeq returns the sum over sequence b's positions of layer la's
// KL divergences, and with gr adds scale times their gradient with respect
// to the indexer's activations into gr.
func (m *Model) indexLossSeq(a *Activations, la *layerActs, w *indexWork, gr *indexGrads, b int, scale float64) float64 {
	c := m.Config
	T, hd, qd, kd := a.T, c.HeadDim, c.qDim(), c.kvDim()
	id, iqd := c.IndexDim, c.IndexHeads*c.IndexDim
	group := c.Heads / c.KVHeads
	sel := m.selectionOf(a, la, b)
	var kl float64
	for r0 := 0; r0 < T; r0 += attnBlock {
		r1 := min(T, r0+attnBlock)
		rows := r1 - r0
		// The attention's distribution: each head's softmax, averaged.
		clear(w.p[:rows*r1])
		for h := range c.Heads {
			q := tensor.Mat{Data: la.q[(b*T+r0)*qd+h*hd:], Stride: qd}
			k := tensor.Mat{Data: la.k[b*T*kd+h/group*hd:], Stride: kd}
			tensor.GemmStrided(1, tensor.Mat{Data: w.s, Stride: r1}, q, k, rows, hd, r1, tensor.TransB)
			for t := range rows {
				row := w.s[t*r1 : t*r1+r0+t+1]
				sel.mask(row, r0+t)
				tensor.SoftmaxStats(row, row)
				tensor.Axpy(1/float32(c.Heads), row, w.p[t*r1:])
			}
		}
		m.indexScores(a, la, w, b, r0, r1)
		for t := range rows {
			n := r0 + t + 1 // positions row t sees
			p, ir := w.p[t*r1:t*r1+n], w.i[t*r1:t*r1+n]
			// KL = Σ p·log p − Σ p·log q, log q = I − log Σ exp I.
			var psum float64
			for s, ps := range p {
				if ps > 0 {
					kl += float64(ps) * (math.Log(float64(ps)) - float64(ir[s]))
					psum += float64(ps)
				}
			}
			sel.mask(ir, r0+t)
			maxv, inv := tensor.SoftmaxStats(ir, ir) // now the indexer's distribution
			kl += psum * (float64(maxv) - math.Log(float64(inv)))
			// d KL / d I = q − p, for the positions the row sees.
			for s := range ir {
				ir[s] = float32(scale) * (ir[s] - p[s])
			}
			clear(w.i[t*r1+n : (t+1)*r1])
		}
		if gr == nil {
			continue
		}
		// I = Σⱼ wⱼ·ReLU(zⱼ): dwⱼ = Σₛ dI·ReLU(zⱼ), dzⱼ = dI·wⱼ where zⱼ > 0.
		k := tensor.Mat{Data: la.ik[b*T*id:], Stride: id}
		dk := tensor.Mat{Data: gr.ik[b*T*id:], Stride: id}
		for j := range c.IndexHeads {
			z := w.z[j*rows*r1 : (j+1)*rows*r1]
			for t := range rows {
				wt := la.iw[(b*T+r0+t)*c.IndexHeads+j]
				di, zr := w.i[t*r1:(t+1)*r1], z[t*r1:(t+1)*r1]
				var dw float32
				for s, v := range zr {
					dw += di[s] * v
					if v > 0 {
						zr[s] = di[s] * wt
					}
				}
				gr.iw[(b*T+r0+t)*c.IndexHeads+j] += dw
			}
			dz := tensor.Mat{Data: z, Stride: r1}
			q := tensor.Mat{Data: la.iq[(b*T+r0)*iqd+j*id:], Stride: iqd}
			dq := tensor.Mat{Data: gr.iq[(b*T+r0)*iqd+j*id:], Stride: iqd}
			tensor.GemmStrided(1, dq, dz, k, rows, r1, id, tensor.Accumulate)
			tensor.GemmStrided(1, dk, dz, q, r1, rows, id, tensor.TransA|tensor.Accumulate)
		}
	}
	return kl
}

// indexBackward turns the gradient of layer l's indexer activations into
// its parameters' gradients, added into gl: through the scales and the
// rotations indexForward applied, then the three projections of the
// normalised input, which gets no gradient.
func (m *Model) indexBackward(a *Activations, l int, gr *indexGrads, gl *LayerParams) {
	c, la := m.Config, &a.layers[l]
	bt, iqd := a.B*a.T, c.IndexHeads*c.IndexDim
	qs, ws := sqrtInv(c.IndexDim), sqrtInv(c.IndexHeads)
	rowsOf(gr.iq, bt, iqd, func(dq []float32, lo, hi int) {
		tensor.Scale(qs, dq)
		m.indexRope.Backward(dq, a.pos[lo:hi], c.IndexHeads)
	})
	rowsOf(gr.ik, bt, c.IndexDim, func(dk []float32, lo, hi int) { m.indexRope.Backward(dk, a.pos[lo:hi], 1) })
	tensor.Scale(ws, gr.iw)
	tensor.Gemm(gl.IndexWq, gr.iq, la.xn1, iqd, bt, c.Dim, tensor.TransA|tensor.Accumulate)
	tensor.Gemm(gl.IndexWk, gr.ik, la.xn1, c.IndexDim, bt, c.Dim, tensor.TransA|tensor.Accumulate)
	tensor.Gemm(gl.IndexWw, gr.iw, la.xn1, c.IndexHeads, bt, c.Dim, tensor.TransA|tensor.Accumulate)
}
