package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// Params are a model's weights, or their gradients: views into one flat
// buffer, so zeroing, optimiser updates and checkpoints touch one slice.
type Params struct {
	Embed     []float32 // Vocab × Dim
	Layers    []LayerParams
	FinalNorm []float32 // Dim
	// LMHead is Vocab × Dim; with tied embeddings it is Embed itself.
	LMHead []float32

	data    []float32
	tensors []Tensor
}

// LayerParams are one transformer block's weights. Matrices are stored as
// Hugging Face stores them: [out, in].
type LayerParams struct {
	AttnNorm   []float32 // Dim
	Wq         []float32 // Heads·HeadDim × Dim
	Wk, Wv     []float32 // KVHeads·HeadDim × Dim
	Bq         []float32 // Heads·HeadDim, with QKVBias
	Bk, Bv     []float32 // KVHeads·HeadDim, with QKVBias
	Wo         []float32 // Dim × Heads·HeadDim
	MLPNorm    []float32 // Dim
	Wgate, Wup []float32 // Hidden × Dim
	Wdown      []float32 // Dim × Hidden
	// The lightning indexer's projections, with Config.HasIndexer: its
	// queries (IndexHeads·IndexDim × Dim), its key (IndexDim × Dim) and
	// its heads' weights (IndexHeads × Dim), all of the attention's
	// normalised input.
	IndexWq, IndexWk, IndexWw []float32
}

// Tensor names one parameter tensor.
type Tensor struct {
	Name  string // Hugging Face name, e.g. model.layers.0.self_attn.q_proj.weight
	Shape []int
	Data  []float32
	// Kind says how it is initialised: a weight matrix, a norm scale or a
	// bias.
	Kind Kind
}

// Indexer says whether the tensor belongs to a layer's lightning indexer.
func (t Tensor) Indexer() bool { return strings.Contains(t.Name, ".self_attn.indexer.") }

// Kind is a parameter's role, for initialisation and weight decay.
type Kind int

const (
	KindMatrix Kind = iota
	KindNorm
	KindBias
)

// NewParams allocates zeroed parameters for c.
func NewParams(c Config) *Params {
	p := &Params{}
	// Lay out every tensor first, then allocate once and cut the views.
	slots := p.layout(c)
	total := 0
	for _, s := range slots {
		total += prod(s.Shape)
	}
	p.data = make([]float32, total)
	off := 0
	for _, s := range slots {
		n := prod(s.Shape)
		*s.dst = p.data[off : off+n : off+n]
		s.Data = *s.dst
		p.tensors = append(p.tensors, s.Tensor)
		off += n
	}
	if c.TiedEmbeddings {
		p.LMHead = p.Embed
	}
	return p
}

// slot is one tensor of a layout, with where its view goes.
type slot struct {
	Tensor
	dst *[]float32
}

// layout lists the tensors of a model of shape c in Tensors' order, their
// data not yet allocated: what NewParams allocates, and what a weights file
// must hold. It makes p's Layers.
func (p *Params) layout(c Config) []slot {
	var slots []slot
	add := func(dst *[]float32, name string, kind Kind, shape ...int) {
		slots = append(slots, slot{Tensor{Name: name, Shape: shape, Kind: kind}, dst})
	}
	add(&p.Embed, "model.embed_tokens.weight", KindMatrix, c.Vocab, c.Dim)
	p.Layers = make([]LayerParams, c.Layers)
	for l := range p.Layers {
		lp := &p.Layers[l]
		pre := fmt.Sprintf("model.layers.%d.", l)
		add(&lp.AttnNorm, pre+"input_layernorm.weight", KindNorm, c.Dim)
		add(&lp.Wq, pre+"self_attn.q_proj.weight", KindMatrix, c.qDim(), c.Dim)
		add(&lp.Wk, pre+"self_attn.k_proj.weight", KindMatrix, c.kvDim(), c.Dim)
		add(&lp.Wv, pre+"self_attn.v_proj.weight", KindMatrix, c.kvDim(), c.Dim)
		if c.QKVBias {
			add(&lp.Bq, pre+"self_attn.q_proj.bias", KindBias, c.qDim())
			add(&lp.Bk, pre+"self_attn.k_proj.bias", KindBias, c.kvDim())
			add(&lp.Bv, pre+"self_attn.v_proj.bias", KindBias, c.kvDim())
		}
		add(&lp.Wo, pre+"self_attn.o_proj.weight", KindMatrix, c.Dim, c.qDim())
		if c.HasIndexer() {
			add(&lp.IndexWq, pre+"self_attn.indexer.wq.weight", KindMatrix, c.IndexHeads*c.IndexDim, c.Dim)
			add(&lp.IndexWk, pre+"self_attn.indexer.wk.weight", KindMatrix, c.IndexDim, c.Dim)
			add(&lp.IndexWw, pre+"self_attn.indexer.weights_proj.weight", KindMatrix, c.IndexHeads, c.Dim)
		}
		add(&lp.MLPNorm, pre+"post_attention_layernorm.weight", KindNorm, c.Dim)
		add(&lp.Wgate, pre+"mlp.gate_proj.weight", KindMatrix, c.Hidden, c.Dim)
		add(&lp.Wup, pre+"mlp.up_proj.weight", KindMatrix, c.Hidden, c.Dim)
		add(&lp.Wdown, pre+"mlp.down_proj.weight", KindMatrix, c.Dim, c.Hidden)
	}
	add(&p.FinalNorm, "model.norm.weight", KindNorm, c.Dim)
	if !c.TiedEmbeddings {
		add(&p.LMHead, "lm_head.weight", KindMatrix, c.Vocab, c.Dim)
	}
	return slots
}

func prod(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Data is every parameter, in one slice.
func (p *Params) Data() []float32 { return p.data }

// Tensors lists the parameter tensors in a fixed order, under their Hugging
// Face names.
func (p *Params) Tensors() []Tensor { return p.tensors }

// Count is the number of parameters.
func (p *Params) Count() int { return len(p.data) }

// Zero sets every value to 0 (for gradients).
func (p *Params) Zero() { clear(p.data) }

// Init fills the parameters as Hugging Face's Llama initialises them:
// matrices from N(0, std²), norm scales 1, biases 0.
func (p *Params) Init(rng *rand.Rand, std float64) {
	for _, t := range p.tensors {
		switch t.Kind {
		case KindMatrix:
			for i := range t.Data {
				t.Data[i] = float32(rng.NormFloat64() * std)
			}
		case KindNorm:
			for i := range t.Data {
				t.Data[i] = 1
			}
		case KindBias:
			clear(t.Data)
		}
	}
}

// sqrtInv returns 1/sqrt(x) as float32.
func sqrtInv(x int) float32 { return float32(1 / math.Sqrt(float64(x))) }
