package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/braid-dev/braid/tensor"
)

// ErrNoTargets is returned by Backward after a Forward without targets.
var ErrNoTargets = errors.New("model: Backward needs a Forward with targets")

// Backward adds the gradient of the last Forward's mean loss with respect to
// every parameter into g (zero it first for a fresh step; accumulate over
// micro-batches by not zeroing). It consumes the activations'
// probabilities, so it runs once per Forward; a second call returns
// ErrNoTargets.
func (m *Model) Backward(a *Activations, g *Params) error {
	return m.BackwardScaled(a, g, 1)
}

// BackwardScaled is Backward for scale times the mean loss: a trainer that
// accumulates micro-batches weights each by its share of the batch's
// targets, so the sum is the gradient of the batch's mean loss.
func (m *Model) BackwardScaled(a *Activations, g *Params, scale float32) error {
	inv := float32(0)
	if a.valid > 0 {
		inv = scale / float32(a.valid)
	}
	return m.backward(a, g, func(int) float32 { return inv })
}

// BackwardWeighted is the backward pass of Σᵢ w[i]·(−log pᵢ(targetᵢ)), each
// position with its own weight: a policy-gradient step weighs each action's
// log-probability by its advantage. Positions without a target contribute
// nothing. It accumulates into g, as Backward does.
func (m *Model) BackwardWeighted(a *Activations, g *Params, w []float32) error {
	if len(w) != a.B*a.T {
		return fmt.Errorf("model: %d weights for %d positions", len(w), a.B*a.T)
	}
	return m.backward(a, g, func(i int) float32 { return w[i] })
}

// TargetLogprobs writes into dst (grown as needed) the log-probability the
// last Forward gave each position's target, 0 where there is none. Call it
// before Backward, which consumes the probabilities.
func (a *Activations) TargetLogprobs(dst []float32, vocab int) ([]float32, error) {
	if a.targets == nil {
		return nil, ErrNoTargets
	}
	dst = append(dst[:0], make([]float32, len(a.targets))...)
	for i, t := range a.targets {
		if t >= 0 {
			dst[i] = float32(math.Log(math.Max(float64(a.probs[i*vocab+t]), 1e-30)))
		}
	}
	return dst, nil
}

func (m *Model) backward(a *Activations, g *Params, weight func(i int) float32) error {
	if a.targets == nil {
		return ErrNoTargets
	}
	c, p := m.Config, m.Params
	bt := a.B * a.T
	a.ensureScratch(c)

	// d loss / d logits = weight·(softmax − onehot)/temperature, zero where
	// there is no target; written over the probabilities.
	inv := float32(1)
	if a.invTemp != 0 {
		inv = a.invTemp
	}
	for i, t := range a.targets {
		row := a.probs[i*c.Vocab : (i+1)*c.Vocab]
		w := weight(i) * inv
		if t < 0 || w == 0 {
			clear(row)
			continue
		}
		tensor.Scale(w, row)
		row[t] -= w
	}
	dlogits := a.probs
	m.weightGrad(a, g.LMHead, dlogits, c.Vocab, m.rhs(a, a.xf, bt, c.Dim, c.Vocab))
	m.projectBack(a, a.dxn, m.lhs(a, dlogits, bt, c.Vocab), p.LMHead, c.Dim, false)
	clear(a.dx)
	a.rmsNormBackward(a.dx, g.FinalNorm, a.dxn, a.x[c.Layers], p.FinalNorm, a.rstdf, bt, c.Dim)

	for l := c.Layers - 1; l >= 0; l-- {
		m.layerBackward(a, g, l)
	}
	for i, t := range a.tokens {
		tensor.Axpy(1, a.dx[i*c.Dim:(i+1)*c.Dim], g.Embed[t*c.Dim:(t+1)*c.Dim])
	}
	a.targets = nil
	return nil
}

func (a *Activations) ensureScratch(c Config) {
	if a.dx != nil {
		return
	}
	for _, v := range []struct {
		dst *[]float32
		per int
	}{{&a.dx, c.Dim}, {&a.dxn, c.Dim}, {&a.dq, c.qDim()}, {&a.dk, c.kvDim()}, {&a.dv, c.kvDim()}, {&a.dAtt, c.qDim()},
		{&a.dg, c.Hidden}, {&a.du, c.Hidden}, {&a.dact, c.Hidden}} {
		a.views = append(a.views, view{dst: v.dst, back: make([]float32, a.maxTokens*v.per), per: v.per})
		n := a.B * a.T * v.per
		*v.dst = a.views[len(a.views)-1].back[:n:n]
	}
}

// layerBackward takes in a.dx the gradient with respect to layer l's output
// and leaves there the gradient with respect to its input.
func (m *Model) layerBackward(a *Activations, g *Params, l int) {
	c, lp, gl, la := m.Config, &m.Params.Layers[l], &g.Layers[l], &a.layers[l]
	bt, qd, kd := a.B*a.T, c.qDim(), c.kvDim()

	// out = x2 + act·Wdownᵀ, act = SwiGLU(xn2·Wgateᵀ, xn2·Wupᵀ)
	m.weightGrad(a, gl.Wdown, a.dx, c.Dim, m.rhs(a, la.act, bt, c.Hidden, c.Dim))
	m.projectBack(a, a.dact, m.lhs(a, a.dx, bt, c.Dim), lp.Wdown, c.Hidden, false)
	clear(a.dg)
	clear(a.du)
	rowsOf(a.dact, bt, c.Hidden, func(dact []float32, lo, hi int) {
		h := c.Hidden
		tensor.SwiGLUBackward(a.dg[lo*h:hi*h], a.du[lo*h:hi*h], dact, la.gate[lo*h:hi*h], la.up[lo*h:hi*h])
	})
	xn2 := m.rhs(a, la.xn2, bt, c.Dim, c.Hidden, c.Hidden)
	m.weightGrad(a, gl.Wgate, a.dg, c.Hidden, xn2)
	m.weightGrad(a, gl.Wup, a.du, c.Hidden, xn2)
	m.projectBack(a, a.dxn, m.lhs(a, a.dg, bt, c.Hidden), lp.Wgate, c.Dim, false)
	m.projectBack(a, a.dxn, m.lhs(a, a.du, bt, c.Hidden), lp.Wup, c.Dim, true)
	// The residual passes dx through; the norm adds its part: now d/dx2.
	a.rmsNormBackward(a.dx, gl.MLPNorm, a.dxn, la.x2, lp.MLPNorm, la.rstd2, bt, c.Dim)

	// x2 = x + attOut·Woᵀ
	m.weightGrad(a, gl.Wo, a.dx, c.Dim, m.rhs(a, la.attOut, bt, qd, c.Dim))
	m.projectBack(a, a.dAtt, m.lhs(a, a.dx, bt, c.Dim), lp.Wo, qd, false)
	clear(a.dq)
	clear(a.dk)
	clear(a.dv)
	m.attentionBackward(a, la)
	rowsOf(a.dq, bt, qd, func(dq []float32, lo, hi int) { m.rope.Backward(dq, a.pos[lo:hi], c.Heads) })
	rowsOf(a.dk, bt, kd, func(dk []float32, lo, hi int) { m.rope.Backward(dk, a.pos[lo:hi], c.KVHeads) })
	if c.QKVBias {
		tensor.BiasBackward(gl.Bq, a.dq, bt, qd)
		tensor.BiasBackward(gl.Bk, a.dk, bt, kd)
		tensor.BiasBackward(gl.Bv, a.dv, bt, kd)
	}
	xn1 := m.rhs(a, la.xn1, bt, c.Dim, qd, kd, kd)
	m.weightGrad(a, gl.Wq, a.dq, qd, xn1)
	m.weightGrad(a, gl.Wk, a.dk, kd, xn1)
	m.weightGrad(a, gl.Wv, a.dv, kd, xn1)
	m.projectBack(a, a.dxn, m.lhs(a, a.dq, bt, qd), lp.Wq, c.Dim, false)
	m.projectBack(a, a.dxn, m.lhs(a, a.dk, bt, kd), lp.Wk, c.Dim, true)
	m.projectBack(a, a.dxn, m.lhs(a, a.dv, bt, kd), lp.Wv, c.Dim, true)
	a.rmsNormBackward(a.dx, gl.AttnNorm, a.dxn, a.x[l], lp.AttnNorm, la.rstd1, bt, c.Dim)
}

// attentionBackward turns the gradient of the attention output (a.dAtt) into
// gradients of q, k and v (after RoPE), one (sequence, kv head) group per
// goroutine, since only that group writes its keys' and values' gradients.
// By blocks of query rows [r0,r1), over keys [0,r1): P recomputed from
// S = Q·Kᵀ and the forward pass's softmax statistics, dP = dO·Vᵀ,
// dV += Pᵀ·dO, dS = P∘(dP − rowsum(dP∘P)), dK += dSᵀ·Q, dQ += dS·K.
// The queries stay scaled by 1/√d as the forward pass left them, which
// puts the scale into dK; dQ gets it once at the end.
func (m *Model) attentionBackward(a *Activations, la *layerActs) {
	c := m.Config
	T, hd, qd, kd := a.T, c.HeadDim, c.qDim(), c.kvDim()
	group := c.Heads / c.KVHeads
	tiles := m.attentionOnTiles()
	m.forEachGroup(a, func(w *attnWork, b, g int) {
		k := tensor.Mat{Data: la.k[b*T*kd+g*hd:], Stride: kd}
		v := tensor.Mat{Data: la.v[b*T*kd+g*hd:], Stride: kd}
		dk := tensor.Mat{Data: a.dk[b*T*kd+g*hd:], Stride: kd}
		dv := tensor.Mat{Data: a.dv[b*T*kd+g*hd:], Stride: kd}
		sel := m.selectionOf(a, la, b)
		if tiles {
			w.kT.Set(k, hd, T, true)
			w.vT.Set(v, hd, T, true)
			w.kP.Set(k, T, hd, false)
			w.dkT = resize(w.dkT, hd*T)
			w.dvT = resize(w.dvT, hd*T)
			clear(w.dkT)
			clear(w.dvT)
		}
		for h := g * group; h < (g+1)*group; h++ {
			q := tensor.Mat{Data: la.q[b*T*qd+h*hd:], Stride: qd}
			dq := tensor.Mat{Data: a.dq[b*T*qd+h*hd:], Stride: qd}
			do := tensor.Mat{Data: a.dAtt[b*T*qd+h*hd:], Stride: qd}
			stats := la.softmax[(b*T*c.Heads+h)*2:]
			if tiles {
				attendBackTiles(w, q, dq, do, stats, sel, T, hd, c.Heads)
				continue
			}
			for r0 := 0; r0 < T; r0 += attnBlock {
				r1 := min(T, r0+attnBlock)
				rows := r1 - r0
				p := tensor.Mat{Data: w.s, Stride: r1}
				ds := tensor.Mat{Data: w.d, Stride: r1}
				dob := rowsFrom(do, r0)
				tensor.GemmStrided(1, p, rowsFrom(q, r0), k, rows, hd, r1, tensor.TransB)
				softmaxRows(p, stats, sel, r0, r1, c.Heads, true)
				tensor.GemmStrided(1, ds, dob, v, rows, hd, r1, tensor.TransB)
				tensor.GemmStrided(1, dv, p, dob, r1, rows, hd, tensor.TransA|tensor.Accumulate)
				softmaxBackRows(p, ds, r0, r1)
				tensor.GemmStrided(1, rowsFrom(dq, r0), ds, k, rows, r1, hd, tensor.Accumulate)
				tensor.GemmStrided(1, dk, ds, rowsFrom(q, r0), r1, rows, hd, tensor.TransA|tensor.Accumulate)
			}
		}
		if tiles {
			// The group's key and value gradients, kept transposed.
			for t := range T {
				dkr, dvr := dk.Data[t*kd:t*kd+hd], dv.Data[t*kd:t*kd+hd]
				for d := range hd {
					dkr[d] += w.dkT[d*T+t]
					dvr[d] += w.dvT[d*T+t]
				}
			}
		}
	})
	rowsOf(a.dq, a.B*T, qd, func(dq []float32, _, _ int) { tensor.Scale(sqrtInv(hd), dq) })
}

// softmaxBackRows turns the rows [r0,r1) of a block's dP (ds, stride r1)
// into dS = P∘(dP − rowsum(dP∘P)), from the block's probabilities p; the
// masked values past each row's diagonal become zero.
func softmaxBackRows(p, ds tensor.Mat, r0, r1 int) {
	for t := r0; t < r1; t++ {
		o := (t - r0) * r1
		drow := ds.Data[o : o+r1]
		tensor.SoftmaxRowBackward(drow[:t+1], p.Data[o:o+t+1], 1)
		clear(drow[t+1:])
	}
}

// attendBackTiles is attentionBackward's loop over one head's blocks of
// rows on AMX tiles, w.kT, w.vT and w.kP holding its group's keys and
// values laid out as attendTiles and the products below need them. It adds
// the head's part of dK and dV, transposed, into w.dkT and w.dvT.
func attendBackTiles(w *attnWork, q, dq, do tensor.Mat, stats []float32, sel selection, T, hd, heads int) {
	dkT, dvT := tensor.Mat{Data: w.dkT, Stride: T}, tensor.Mat{Data: w.dvT, Stride: T}
	for r0 := 0; r0 < T; r0 += attnTileBlock {
		r1 := min(T, r0+attnTileBlock)
		rows := r1 - r0
		p := tensor.Mat{Data: w.s, Stride: r1}
		ds := tensor.Mat{Data: w.d, Stride: r1}
		qb, dob := rowsFrom(q, r0), rowsFrom(do, r0)
		// P again, bit for bit as the forward pass made it.
		w.q.Set(qb, rows, hd, false)
		tensor.MulTiles(p, &w.q, &w.kT, rows, hd, r1, false)
		softmaxRows(p, stats, sel, r0, r1, heads, true)
		// dP = dO·Vᵀ; dVᵀ += dOᵀ·P.
		w.do.Set(dob, rows, hd, false)
		tensor.MulTiles(ds, &w.do, &w.vT, rows, hd, r1, false)
		w.doT.Set(dob, hd, rows, true)
		w.pB.Set(p, rows, r1, false)
		tensor.MulTiles(dvT, &w.doT, &w.pB, hd, rows, r1, true)
		softmaxBackRows(p, ds, r0, r1)
		// dQ += dS·K; dKᵀ += Qᵀ·dS.
		w.ds.Set(ds, rows, r1, false)
		tensor.MulTiles(rowsFrom(dq, r0), &w.ds, &w.kP, rows, r1, hd, true)
		w.qT.Set(qb, hd, rows, true)
		w.dsB.Set(ds, rows, r1, false)
		tensor.MulTiles(dkT, &w.qT, &w.dsB, hd, rows, r1, true)
	}
}

// resize returns s with length n, reallocated only when it is too short.
func resize[E any](s []E, n int) []E {
	if cap(s) < n {
		return make([]E, n)
	}
	return s[:n]
}
