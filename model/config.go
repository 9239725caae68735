// Package model is a Llama-architecture transformer on the CPU: RMSNorm,
// rotary position embeddings, grouped-query attention, a SwiGLU MLP,
// optionally tied embeddings and Qwen2's q/k/v biases. Parameters and their
// gradients live in one flat buffer each, viewed per tensor under Hugging
// Face's names; the forward and backward passes are explicit, op by op, in
// the manner of llm.c.
package model

import (
	"fmt"

	"github.com/braid-dev/braid/tensor"
)

// Config is a model's shape.
type Config struct {
	Vocab   int // tokens
	Dim     int // hidden size
	Hidden  int // MLP intermediate size
	Layers  int
	Heads   int // query heads
	KVHeads int // key/value heads; Heads must be a multiple
	HeadDim int // size of one head (even, for RoPE)
	MaxSeq  int // positions the RoPE tables cover
	NormEps float32
	// RopeTheta is the rotary base (10000 in Llama 2).
	RopeTheta float64
	// RopeScaling rescales the rotary frequencies for contexts longer than
	// the model was pretrained on, as Llama 3.1 and 3.2 do ("llama3" in
	// their configs); the zero value leaves them as RopeTheta gives them.
	RopeScaling tensor.RopeScaling
	// TiedEmbeddings reuses the token embedding as the output projection.
	TiedEmbeddings bool
	// QKVBias adds biases to the q, k and v projections (Qwen2).
	QKVBias bool
	// IndexHeads and IndexDim shape the lightning indexer of DeepSeek's
	// sparse attention (DSA), 0 for a model without one: each layer
	// scores every earlier position s for token t as
	// I(t,s) = Σⱼ wₜⱼ·ReLU(qₜⱼ·kₛ), with IndexHeads small queries qₜⱼ and
	// their weights wₜⱼ from t's hidden state and one key kₛ of IndexDim
	// values per position, and a sparse model attends to the IndexTopK
	// positions it scores highest.
	IndexHeads, IndexDim int
	// IndexTopK is the positions a token attends to when the model runs
	// sparse, itself included.
	IndexTopK int
}

// HasIndexer says whether the model has a lightning indexer.
func (c Config) HasIndexer() bool { return c.IndexHeads > 0 }

// Validate reports a shape the model cannot have.
func (c Config) Validate() error {
	switch {
	case c.Vocab <= 0 || c.Dim <= 0 || c.Hidden <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.KVHeads <= 0 || c.HeadDim <= 0 || c.MaxSeq <= 0:
		return fmt.Errorf("model: every size must be positive: %+v", c)
	case c.Heads%c.KVHeads != 0:
		return fmt.Errorf("model: %d query heads are not a multiple of %d key/value heads", c.Heads, c.KVHeads)
	case c.HeadDim%2 != 0:
		return fmt.Errorf("model: head size %d must be even for rotary embeddings", c.HeadDim)
	case !(c.NormEps > 0):
		return fmt.Errorf("model: norm epsilon %g must be positive", c.NormEps)
	case !(c.RopeTheta > 0):
		return fmt.Errorf("model: RoPE theta %g must be positive", c.RopeTheta)
	case c.IndexHeads < 0 || c.IndexDim < 0 || c.IndexTopK < 0:
		return fmt.Errorf("model: the indexer's heads (%d), head size (%d) and top-k (%d) must not be negative", c.IndexHeads, c.IndexDim, c.IndexTopK)
	case (c.IndexHeads > 0) != (c.IndexDim > 0) || (c.IndexHeads > 0) != (c.IndexTopK > 0):
		return fmt.Errorf("model: an indexer needs heads, a head size and a top-k, not %d, %d and %d", c.IndexHeads, c.IndexDim, c.IndexTopK)
	case c.IndexDim%2 != 0:
		return fmt.Errorf("model: indexer head size %d must be even for rotary embeddings", c.IndexDim)
	}
	return validateRopeScaling(c.RopeScaling)
}

// validateRopeScaling reports a scaling other than none whose parameters
// the llama3 rule cannot use. Comparisons are written as !(x > y) so that
// NaN fails them.
func validateRopeScaling(s tensor.RopeScaling) error {
	switch {
	case s == tensor.RopeScaling{}:
	case !(s.Factor >= 1):
		return fmt.Errorf("model: RoPE scaling factor %g must be at least 1", s.Factor)
	case !(s.LowFreqFactor > 0):
		return fmt.Errorf("model: RoPE scaling low-frequency factor %g must be positive", s.LowFreqFactor)
	case !(s.HighFreqFactor > s.LowFreqFactor):
		return fmt.Errorf("model: RoPE scaling high-frequency factor %g must be greater than the low-frequency factor %g", s.HighFreqFactor, s.LowFreqFactor)
	case s.OriginalMaxPos <= 0:
		return fmt.Errorf("model: RoPE scaling's original context of %d positions must be positive", s.OriginalMaxPos)
	}
	return nil
}

// qDim and kvDim are the widths of the query and of the key/value
// projections.
func (c Config) qDim() int  { return c.Heads * c.HeadDim }
func (c Config) kvDim() int { return c.KVHeads * c.HeadDim }
