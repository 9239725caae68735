package hfconfig

import (
	"errors"
	"fmt"
)

// Validate reports every reason braid cannot build a model from c, joined;
// each matches ErrInvalid or ErrUnsupported.
func (c Config) Validate() error {
	var errs []error
	invalid := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w "+format, append([]any{ErrInvalid}, args...)...))
	}
	unsupported := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w "+format, append([]any{ErrUnsupported}, args...)...))
	}

	if causalLMArchitecture(c.ModelType) == "" {
		unsupported(`model_type %q: braid runs "llama" and "qwen2"`, c.ModelType)
	}
	if c.HiddenAct != "silu" {
		unsupported(`hidden_act %q: braid runs "silu"`, c.HiddenAct)
	}
	if r := c.RopeScaling; r != nil {
		switch kind := r.Kind(); kind {
		case "default":
		case "llama3":
			// Written as !(x > y), as below, so that NaN fails too.
			if !(r.Factor >= 1) {
				invalid("rope_scaling.factor %g: must be at least 1", r.Factor)
			}
			if !(r.LowFreqFactor > 0) {
				invalid("rope_scaling.low_freq_factor %g: must be positive", r.LowFreqFactor)
			}
			if !(r.HighFreqFactor > r.LowFreqFactor) {
				invalid("rope_scaling.high_freq_factor %g: must be greater than low_freq_factor %g", r.HighFreqFactor, r.LowFreqFactor)
			}
			if r.OriginalMaxPositionEmbeddings <= 0 {
				invalid("rope_scaling.original_max_position_embeddings %d: must be positive", r.OriginalMaxPositionEmbeddings)
			}
		case "":
			unsupported("rope_scaling without a type")
		default:
			unsupported(`rope scaling type %q: braid runs plain RoPE ("default") and "llama3"`, kind)
		}
	}
	if c.MLPBias {
		unsupported("mlp_bias true: braid's MLP has no biases")
	}
	if c.UseSlidingWindow {
		unsupported("use_sliding_window true: braid attends to the whole context")
	}

	for _, size := range []struct {
		name  string
		value int
	}{
		{"vocab_size", c.VocabSize},
		{"hidden_size", c.HiddenSize},
		{"intermediate_size", c.IntermediateSize},
		{"num_hidden_layers", c.NumHiddenLayers},
		{"num_attention_heads", c.NumAttentionHeads},
		{"num_key_value_heads", c.NumKeyValueHeads},
		{"max_position_embeddings", c.MaxPositionEmbeddings},
	} {
		if size.value <= 0 {
			invalid("%s %d: must be positive", size.name, size.value)
		}
	}
	if c.HeadDim < 0 {
		invalid("head_dim %d: must be positive", c.HeadDim)
	}
	if c.HeadDim == 0 && c.NumAttentionHeads > 0 && c.HiddenSize%c.NumAttentionHeads != 0 {
		invalid("num_attention_heads %d: does not divide hidden_size %d, and head_dim is not set", c.NumAttentionHeads, c.HiddenSize)
	}
	if c.NumKeyValueHeads > 0 && c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		invalid("num_key_value_heads %d: does not divide num_attention_heads %d", c.NumKeyValueHeads, c.NumAttentionHeads)
	}
	// Written as !(x > 0) so that NaN, which a Config built in Go can hold,
	// fails too.
	if !(c.RMSNormEps > 0) {
		invalid("rms_norm_eps %g: must be positive", c.RMSNormEps)
	}
	if !(c.RopeTheta > 0) {
		invalid("rope_theta %g: must be positive", c.RopeTheta)
	}
	if c.IndexNHeads < 0 || c.IndexHeadDim < 0 || c.IndexTopK < 0 {
		invalid("index_n_heads %d, index_head_dim %d, index_topk %d: must not be negative", c.IndexNHeads, c.IndexHeadDim, c.IndexTopK)
	} else if (c.IndexNHeads > 0) != (c.IndexHeadDim > 0) || (c.IndexNHeads > 0) != (c.IndexTopK > 0) {
		invalid("index_n_heads %d, index_head_dim %d, index_topk %d: an indexer needs all three", c.IndexNHeads, c.IndexHeadDim, c.IndexTopK)
	} else if c.IndexHeadDim%2 != 0 {
		invalid("index_head_dim %d: must be even for rotary embeddings", c.IndexHeadDim)
	}
	if c.BOSTokenID != nil {
		if id := *c.BOSTokenID; id < 0 || c.VocabSize > 0 && id >= c.VocabSize {
			invalid("bos_token_id %d: outside the vocabulary of %d tokens", id, c.VocabSize)
		}
	}
	for _, id := range c.EOSTokenIDs {
		if id < 0 || c.VocabSize > 0 && id >= c.VocabSize {
			invalid("eos_token_id %d: outside the vocabulary of %d tokens", id, c.VocabSize)
		}
	}
	return errors.Join(errs...)
}

// causalLMArchitecture returns the transformers class of a causal language
// model of modelType, or "" for a model type braid does not run.
func causalLMArchitecture(modelType string) string {
	switch modelType {
	case "llama":
		return "LlamaForCausalLM"
	case "qwen2":
		return "Qwen2ForCausalLM"
	}
	return ""
}
