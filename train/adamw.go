package train

import (
	"math"

	"github.com/braid-dev/braid/model"
)

// adamW is AdamW with decoupled weight decay on the weight matrices (the
// embedding included), not on norm scales or biases.
type adamW struct {
	beta1, beta2, eps, decay float64
	m, v                     []float32
	decays                   []bool // per parameter
	// frozen parameters keep their values (nil: none is frozen).
	frozen []bool
	step   int // updates done
}

// freeze holds fixed every parameter of the tensors trains rejects.
func (o *adamW) freeze(p *model.Params, trains func(model.Tensor) bool) {
	o.frozen = make([]bool, p.Count())
	off := 0
	for _, ts := range p.Tensors() {
		if !trains(ts) {
			for i := range ts.Data {
				o.frozen[off+i] = true
			}
		}
		off += len(ts.Data)
	}
}

func newAdamW(p *model.Params, t TrainConfig) *adamW {
	o := &adamW{beta1: t.Beta1, beta2: t.Beta2, eps: t.Eps, decay: t.WeightDecay,
		m: make([]float32, p.Count()), v: make([]float32, p.Count()), decays: make([]bool, p.Count())}
	off := 0
	for _, ts := range p.Tensors() {
		for i := range ts.Data {
			o.decays[off+i] = ts.Kind == model.KindMatrix
		}
		off += len(ts.Data)
	}
	return o
}

// update applies one step of learning rate lr to params from grads.
func (o *adamW) update(params, grads []float32, lr float64) {
	o.step++
	b1, b2 := float32(o.beta1), float32(o.beta2)
	c1 := float32(1 - math.Pow(o.beta1, float64(o.step)))
	c2 := float32(1 - math.Pow(o.beta2, float64(o.step)))
	lr32, eps, wd := float32(lr), float32(o.eps), float32(lr*o.decay)
	for i, g := range grads {
		if o.frozen != nil && o.frozen[i] {
			continue
		}
		m := b1*o.m[i] + (1-b1)*g
		v := b2*o.v[i] + (1-b2)*g*g
		o.m[i], o.v[i] = m, v
		p := params[i]
		if o.decays[i] {
			p -= wd * p
		}
		params[i] = p - lr32*(m/c1)/(float32(math.Sqrt(float64(v/c2)))+eps)
	}
}

// clipNorm scales grads so that their global norm is at most limit, and
// returns the norm before clipping.
func clipNorm(grads []float32, limit float64) float64 {
	var ss float64
	for _, g := range grads {
		ss += float64(g) * float64(g)
	}
	norm := math.Sqrt(ss)
	if limit > 0 && norm > limit {
		s := float32(limit / norm)
		for i := range grads {
			grads[i] *= s
		}
	}
	return norm
}

// learningRate is the rate at step (0-based): linear warmup, then cosine
// decay to minLR at the last step.
func learningRate(t TrainConfig, step int) float64 {
	if step < t.Warmup {
		return t.LR * float64(step+1) / float64(t.Warmup)
	}
	span := max(1, t.Steps-t.Warmup-1) // the last step, Steps-1, is at MinLR
	frac := math.Min(1, float64(step-t.Warmup)/float64(span))
	return t.MinLR + (t.LR-t.MinLR)*0.5*(1+math.Cos(math.Pi*frac))
}
