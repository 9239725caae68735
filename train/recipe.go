// Package train is braid's supervised trainer: it turns Countdown search
// traces into token sequences whose environment-written spans are masked
// from the loss, trains a byte-level BPE tokenizer on them, and trains a
// model with AdamW, warmup and cosine decay, gradient clipping and
// accumulation, validation, and checkpoints it can resume from exactly: a
// run killed and resumed follows the loss curve it would have followed.
package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/braid-dev/braid/model"
)

// Recipe is everything a training run depends on: with the same recipe,
// `braid train sft` makes the same model.
type Recipe struct {
	Data      DataConfig      `json:"data"`
	Tokenizer TokenizerConfig `json:"tokenizer"`
	Model     ModelConfig     `json:"model"`
	Train     TrainConfig     `json:"train"`
}

// DataConfig says which traces to generate: problems from the train split,
// drawn in order from Seed, Serial of them searched serially, then Parallel
// in parallel, then Direct answered directly; Validation more problems per
// format are held out to measure the validation loss.
type DataConfig struct {
	Seed       uint64 `json:"seed"`
	Serial     int    `json:"serial"`
	Parallel   int    `json:"parallel"`
	Direct     int    `json:"direct"`
	Validation int    `json:"validation"`
}

// TokenizerConfig sizes the BPE vocabulary, trained on the first Sample
// training records of each format.
type TokenizerConfig struct {
	Vocab  int `json:"vocab"`
	Sample int `json:"sample"`
}

// ModelConfig is the model's shape; the vocabulary is the tokenizer's.
type ModelConfig struct {
	Dim       int     `json:"dim"`
	Hidden    int     `json:"hidden"`
	Layers    int     `json:"layers"`
	Heads     int     `json:"heads"`
	KVHeads   int     `json:"kv_heads"`
	MaxSeq    int     `json:"max_seq"`
	RopeTheta float64 `json:"rope_theta"`
	Tied      bool    `json:"tied_embeddings"`
	InitStd   float64 `json:"init_std"`
	// IndexHeads, IndexDim and IndexTopK shape a lightning indexer for
	// sparse attention (model.Config's fields of those names), 0 for none.
	IndexHeads int `json:"index_heads,omitempty"`
	IndexDim   int `json:"index_dim,omitempty"`
	IndexTopK  int `json:"index_topk,omitempty"`
}

// TrainConfig is the optimisation.
type TrainConfig struct {
	Seed uint64 `json:"seed"`
	// Steps is the number of optimizer steps; each accumulates
	// MicroBatches micro-batches of at most MicroTokens tokens (padding
	// included).
	Steps        int `json:"steps"`
	MicroTokens  int `json:"micro_tokens"`
	MicroBatches int `json:"micro_batches"`
	// The learning rate warms up linearly over Warmup steps to LR, then
	// decays along a cosine to MinLR at Steps.
	LR          float64 `json:"lr"`
	MinLR       float64 `json:"min_lr"`
	Warmup      int     `json:"warmup"`
	WeightDecay float64 `json:"weight_decay"`
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
	Eps         float64 `json:"eps"`
	// Clip caps the gradient's global norm (0: no clipping).
	Clip            float64 `json:"clip"`
	CheckpointEvery int     `json:"checkpoint_every"`
	EvalEvery       int     `json:"eval_every"`
	LogEvery        int     `json:"log_every"`
	// Precision of the products: "f32" (the default) or "bf16"
	// (model.Model.BF16: bfloat16 products with float32 sums, weights
	// and optimizer in float32).
	Precision Precision `json:"precision,omitempty"`
	// Objective is what the run trains: "" the language model's loss on
	// the learned tokens, every parameter; "index" the indexer alone, on
	// its KL divergence from the attention (model.IndexerLoss), the dense
	// warm-up of DeepSeek's sparse attention.
	Objective string `json:"objective,omitempty"`
	// Sparse trains the model attending only to its indexer's top-k
	// positions, the indexer learning on beside it: sparse attention's
	// second stage.
	Sparse bool `json:"sparse,omitempty"`
	// Start fingerprints the model the run starts from
	// (model.Fingerprint), "" for random weights: the same recipe from
	// another model is another run.
	Start string `json:"start,omitempty"`
}

// ObjectiveIndex trains the indexer alone (TrainConfig.Objective).
const ObjectiveIndex = "index"

// Precision is the arithmetic of a trainer's weight products.
type Precision string

const (
	PrecisionF32  Precision = "f32"
	PrecisionBF16 Precision = "bf16"
)

// Check refuses a precision other than "", f32 and bf16.
func (p Precision) Check() error {
	switch p {
	case "", PrecisionF32, PrecisionBF16:
		return nil
	}
	return fmt.Errorf("precision %q: want f32 or bf16", string(p))
}

// canonical is p as a run's identity names it: "" for the default, f32,
// so that a recipe or flag that spells the default out resumes its run.
func (p Precision) canonical() Precision {
	if p == PrecisionF32 {
		return ""
	}
	return p
}

// Apply sets m's products to p.
func (p Precision) Apply(m *model.Model) { m.BF16 = p == PrecisionBF16 }

// LoadRecipe reads a recipe, refusing unknown fields (a misspelt field
// would otherwise be silently ignored) and impossible values.
func LoadRecipe(path string) (*Recipe, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read recipe: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	var r Recipe
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("recipe %s: %w", path, err)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("recipe %s: %w", path, err)
	}
	return &r, nil
}

// Validate reports the first impossible value.
func (r *Recipe) Validate() error {
	d, t, m, o := r.Data, r.Tokenizer, r.Model, r.Train
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(d.Serial >= 0 && d.Parallel >= 0 && d.Direct >= 0 && d.Serial+d.Parallel+d.Direct > 0, "data: serial, parallel and direct are counts of problems, at least one positive")
	check(d.Validation >= 0, "data: validation must be >= 0")
	check(t.Vocab >= 260, "tokenizer: vocab %d leaves no room beyond the 256 byte tokens", t.Vocab)
	check(t.Sample > 0, "tokenizer: sample must be positive")
	check(m.Dim > 0 && m.Hidden > 0 && m.Layers > 0 && m.Heads > 0 && m.KVHeads > 0 && m.MaxSeq > 1, "model: every size must be positive")
	check(m.Heads > 0 && m.Dim%m.Heads == 0 && m.KVHeads > 0 && m.Heads%m.KVHeads == 0, "model: dim must split into heads, heads into key/value heads")
	check(m.RopeTheta > 0 && m.InitStd > 0, "model: rope_theta and init_std must be positive")
	check(o.Steps > 0 && o.MicroBatches > 0, "train: steps and micro_batches must be positive")
	check(o.MicroTokens >= m.MaxSeq, "train: micro_tokens %d must hold one sequence of max_seq %d", o.MicroTokens, m.MaxSeq)
	check(o.LR > 0 && o.MinLR >= 0 && o.MinLR <= o.LR, "train: want 0 <= min_lr <= lr, lr > 0")
	check(o.Warmup >= 0 && o.WeightDecay >= 0 && o.Clip >= 0, "train: warmup, weight_decay and clip must be >= 0")
	check(o.Beta1 >= 0 && o.Beta1 < 1 && o.Beta2 >= 0 && o.Beta2 < 1 && o.Eps > 0, "train: betas in [0, 1), eps > 0")
	check(o.CheckpointEvery > 0 && o.EvalEvery > 0 && o.LogEvery > 0, "train: checkpoint_every, eval_every and log_every must be positive")
	if err := o.Precision.Check(); err != nil {
		errs = append(errs, fmt.Errorf("train: %w", err))
	}
	indexer := m.IndexHeads > 0
	check(m.IndexHeads >= 0 && m.IndexDim >= 0 && m.IndexTopK >= 0 && (m.IndexDim > 0) == indexer && (m.IndexTopK > 0) == indexer && m.IndexDim%2 == 0,
		"model: index_heads, index_dim (even) and index_topk must be all positive, for an indexer, or all 0")
	check(o.Objective == "" || o.Objective == ObjectiveIndex, "train: objective %q: want \"\" (the language model's loss) or %q", o.Objective, ObjectiveIndex)
	check(indexer || o.Objective == "" && !o.Sparse, "train: objective %q and sparse need the model's indexer (index_heads, index_dim, index_topk)", o.Objective)
	check(!(o.Sparse && o.Objective == ObjectiveIndex), "train: sparse trains the whole model; the index objective trains the indexer of a dense one")
	return errors.Join(errs...)
}

// ModelConfig is the model's configuration for a vocabulary of vocab tokens.
func (r *Recipe) modelConfig(vocab int) model.Config {
	m := r.Model
	return model.Config{Vocab: vocab, Dim: m.Dim, Hidden: m.Hidden, Layers: m.Layers, Heads: m.Heads, KVHeads: m.KVHeads,
		HeadDim: m.Dim / m.Heads, MaxSeq: m.MaxSeq, NormEps: 1e-5, RopeTheta: m.RopeTheta, TiedEmbeddings: m.Tied,
		IndexHeads: m.IndexHeads, IndexDim: m.IndexDim, IndexTopK: m.IndexTopK}
}
