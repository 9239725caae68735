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
	m.gemm(g.LMHead, dlogits, a.xf, c.Vocab, bt, c.Dim, tensor.TransA|tensor.Accumulate)
	m.gemm(a.dxn, dlogits, p.LMHead, bt, c.Vocab, c.Dim, 0)
	clear(a.dx)
	tensor.RMSNormBackward(a.dx, g.FinalNorm, a.dxn, a.x[c.Layers], p.FinalNorm, a.rstdf, bt, c.Dim)

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
	a.scoreBack = make([]float32, a.maxTokens*a.maxT*c.KVHeads)
	a.cutScores()
}

// cutScores cuts the backward pass's per-(sequence, head) score gradients,
// T×T each, from their backing array.
func (a *Activations) cutScores() {
	n := a.B * a.cfg.KVHeads
	if cap(a.dscore) < n {
		a.dscore = make([][]float32, n)
	}
	a.dscore = a.dscore[:n]
	tt := a.T * a.T
	for i := range a.dscore {
		a.dscore[i] = a.scoreBack[i*tt : (i+1)*tt : (i+1)*tt]
	}
}

// layerBackward takes in a.dx the gradient with respect to layer l's output
// and leaves there the gradient with respect to its input.
func (m *Model) layerBackward(a *Activations, g *Params, l int) {
	c, lp, gl, la := m.Config, &m.Params.Layers[l], &g.Layers[l], &a.layers[l]
	bt, qd, kd := a.B*a.T, c.qDim(), c.kvDim()

	// out = x2 + act·Wdownᵀ, act = SwiGLU(xn2·Wgateᵀ, xn2·Wupᵀ)
	m.gemm(gl.Wdown, a.dx, la.act, c.Dim, bt, c.Hidden, tensor.TransA|tensor.Accumulate)
	m.gemm(a.dact, a.dx, lp.Wdown, bt, c.Dim, c.Hidden, 0)
	clear(a.dg)
	clear(a.du)
	tensor.SwiGLUBackward(a.dg, a.du, a.dact, la.gate, la.up)
	m.gemm(gl.Wgate, a.dg, la.xn2, c.Hidden, bt, c.Dim, tensor.TransA|tensor.Accumulate)
	m.gemm(gl.Wup, a.du, la.xn2, c.Hidden, bt, c.Dim, tensor.TransA|tensor.Accumulate)
	m.gemm(a.dxn, a.dg, lp.Wgate, bt, c.Hidden, c.Dim, 0)
	m.gemm(a.dxn, a.du, lp.Wup, bt, c.Hidden, c.Dim, tensor.Accumulate)
	// The residual passes dx through; the norm adds its part: now d/dx2.
	tensor.RMSNormBackward(a.dx, gl.MLPNorm, a.dxn, la.x2, lp.MLPNorm, la.rstd2, bt, c.Dim)

	// x2 = x + attOut·Woᵀ
	m.gemm(gl.Wo, a.dx, la.attOut, c.Dim, bt, qd, tensor.TransA|tensor.Accumulate)
	m.gemm(a.dAtt, a.dx, lp.Wo, bt, c.Dim, qd, 0)
	clear(a.dq)
	clear(a.dk)
	clear(a.dv)
	m.attentionBackward(a, la)
	m.rope.Backward(a.dq, a.pos, c.Heads)
	m.rope.Backward(a.dk, a.pos, c.KVHeads)
	if c.QKVBias {
		tensor.BiasBackward(gl.Bq, a.dq, bt, qd)
		tensor.BiasBackward(gl.Bk, a.dk, bt, kd)
		tensor.BiasBackward(gl.Bv, a.dv, bt, kd)
	}
	m.gemm(gl.Wq, a.dq, la.xn1, qd, bt, c.Dim, tensor.TransA|tensor.Accumulate)
	m.gemm(gl.Wk, a.dk, la.xn1, kd, bt, c.Dim, tensor.TransA|tensor.Accumulate)
	m.gemm(gl.Wv, a.dv, la.xn1, kd, bt, c.Dim, tensor.TransA|tensor.Accumulate)
	m.gemm(a.dxn, a.dq, lp.Wq, bt, qd, c.Dim, 0)
	m.gemm(a.dxn, a.dk, lp.Wk, bt, kd, c.Dim, tensor.Accumulate)
	m.gemm(a.dxn, a.dv, lp.Wv, bt, kd, c.Dim, tensor.Accumulate)
	tensor.RMSNormBackward(a.dx, gl.AttnNorm, a.dxn, a.x[l], lp.AttnNorm, la.rstd1, bt, c.Dim)
}

// attentionBackward turns the gradient of the attention output (a.dAtt) into
// gradients of q, k and v (after RoPE), one (sequence, kv head) group per
// goroutine, since only that group writes its keys' and values' gradients.
// By blocks of query rows [r0,r1), over keys [0,r1): dP = dO·Vᵀ,
// dV += Pᵀ·dO, dS = P∘(dP − rowsum(dP∘P))/√d, dQ += dS·K, dK += dSᵀ·Q.
func (m *Model) attentionBackward(a *Activations, la *layerActs) {
	c := m.Config
	T, hd, qd, kd := a.T, c.HeadDim, c.qDim(), c.kvDim()
	group := c.Heads / c.KVHeads
	scale := sqrtInv(hd)
	// The forward pass left the queries scaled by 1/√d: the gradients below
	// need them as the projection made them.
	tensor.Scale(float32(math.Sqrt(float64(hd))), la.q)
	m.forEachGroup(a.B, func(b, g int) {
		ds := a.dscore[b*c.KVHeads+g]
		dsm := tensor.Mat{Data: ds, Stride: T}
		k := tensor.Mat{Data: la.k[b*T*kd+g*hd:], Stride: kd}
		v := tensor.Mat{Data: la.v[b*T*kd+g*hd:], Stride: kd}
		dk := tensor.Mat{Data: a.dk[b*T*kd+g*hd:], Stride: kd}
		dv := tensor.Mat{Data: a.dv[b*T*kd+g*hd:], Stride: kd}
		for h := g * group; h < (g+1)*group; h++ {
			q := tensor.Mat{Data: la.q[b*T*qd+h*hd:], Stride: qd}
			dq := tensor.Mat{Data: a.dq[b*T*qd+h*hd:], Stride: qd}
			do := tensor.Mat{Data: a.dAtt[b*T*qd+h*hd:], Stride: qd}
			p := tensor.Mat{Data: la.att[(b*c.Heads+h)*T*T:], Stride: T}
			for r0 := 0; r0 < T; r0 += attnBlock {
				r1 := min(T, r0+attnBlock)
				rows := r1 - r0
				pb, dsb, dob := rowsFrom(p, r0), rowsFrom(dsm, r0), rowsFrom(do, r0)
				tensor.GemmStrided(1, dsb, dob, v, rows, hd, r1, tensor.TransB)
				tensor.GemmStrided(1, dv, pb, dob, r1, rows, hd, tensor.TransA|tensor.Accumulate)
				for t := r0; t < r1; t++ {
					prow, drow := p.Data[t*T:t*T+t+1], ds[t*T:t*T+r1]
					tensor.SoftmaxRowBackward(drow[:t+1], prow, scale)
					clear(drow[t+1:])
				}
				tensor.GemmStrided(1, rowsFrom(dq, r0), dsb, k, rows, r1, hd, tensor.Accumulate)
				tensor.GemmStrided(1, dk, dsb, rowsFrom(q, r0), r1, rows, hd, tensor.TransA|tensor.Accumulate)
			}
		}
	})
}
