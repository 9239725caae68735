package model

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/braid-dev/braid/model/hfconfig"
	"github.com/braid-dev/braid/model/safetensors"
)

// The tensors whose shapes checkWeights reads the config's sizes from.
const (
	embedTensor = "model.embed_tokens.weight"
	layerPrefix = "model.layers."
	gateTensor  = layerPrefix + "0.mlp.gate_proj.weight"
	qTensor     = layerPrefix + "0.self_attn.q_proj.weight"
	kTensor     = layerPrefix + "0.self_attn.k_proj.weight"
)

// checkWeights checks config.json, read as hc and mapped to c, against the
// header of the weights file beside it, before any of the config's sizes
// is used to allocate: a config.json is small and easily wrong, and a size
// no tensor backs (a vocabulary of 10^9 tokens, 10^6 layers) would
// otherwise size the parameters. The embedding's shape must give vocab_size
// and hidden_size, the layers in the file num_hidden_layers, and the first
// layer's projections intermediate_size and the heads, each reported under
// its field's name; then every tensor of the layout must be there with its
// shape and a dtype braid converts, and no other.
func checkWeights(hc hfconfig.Config, c Config, h *safetensors.Header) error {
	embed, err := h.Info(embedTensor)
	if err != nil {
		return fmt.Errorf("%s: tensor %q is missing", WeightsFile, embedTensor)
	}
	var errs []error
	mismatch := func(field string, value int, tensor string, shape []int) {
		errs = append(errs, fmt.Errorf("%s: %s %d does not match %s's %dx%d", ConfigFile, field, value, tensor, shape[0], shape[1]))
	}
	if len(embed.Shape) != 2 {
		return fmt.Errorf("%s: tensor %q has shape %v, not [vocab_size hidden_size]", WeightsFile, embedTensor, embed.Shape)
	}
	if embed.Shape[0] != hc.VocabSize {
		mismatch("vocab_size", hc.VocabSize, embedTensor, embed.Shape)
	}
	if embed.Shape[1] != hc.HiddenSize {
		mismatch("hidden_size", hc.HiddenSize, embedTensor, embed.Shape)
	}
	if layers := countLayers(h.Names()); layers != hc.NumHiddenLayers {
		errs = append(errs, fmt.Errorf("%s: num_hidden_layers %d does not match the %d layers of %s", ConfigFile, hc.NumHiddenLayers, layers, WeightsFile))
	}
	// Layer 0's projections give the remaining sizes. A missing or
	// misshapen one is left to the tensor-by-tensor check below.
	if gate, err := h.Info(gateTensor); err == nil && len(gate.Shape) == 2 && gate.Shape[0] != hc.IntermediateSize {
		mismatch("intermediate_size", hc.IntermediateSize, gateTensor, gate.Shape)
	}
	headDim := "head_dim"
	if hc.HeadDim == 0 {
		headDim = "head_dim (hidden_size / num_attention_heads)"
	}
	for _, proj := range []struct {
		tensor, field string
		heads         int
	}{
		{qTensor, "num_attention_heads", hc.NumAttentionHeads},
		{kTensor, "num_key_value_heads", hc.NumKeyValueHeads},
	} {
		info, err := h.Info(proj.tensor)
		if err != nil || len(info.Shape) != 2 {
			continue
		}
		// Divided rather than multiplied, so that huge sizes cannot wrap
		// around to a match.
		if rows := info.Shape[0]; rows%proj.heads != 0 || rows/proj.heads != c.HeadDim {
			errs = append(errs, fmt.Errorf("%s: %s %d × %s %d does not match %s's %dx%d",
				ConfigFile, proj.field, proj.heads, headDim, c.HeadDim, proj.tensor, rows, info.Shape[1]))
		}
	}
	if _, err := h.Info("lm_head.weight"); err != nil && !hc.TieWordEmbeddings {
		errs = append(errs, fmt.Errorf("%s: tie_word_embeddings is false, but %s has no lm_head.weight", ConfigFile, WeightsFile))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	// The sizes match tensors in the file now, so the layout has no more
	// entries than the header.
	want := make(map[string]bool)
	for _, t := range (&Params{}).layout(c) {
		want[t.Name] = true
		info, err := h.Info(t.Name)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: tensor %q is missing", WeightsFile, t.Name))
		case !slices.Equal(info.Shape, t.Shape):
			errs = append(errs, fmt.Errorf("%s: tensor %q has shape %v, the config needs %v", WeightsFile, t.Name, info.Shape, t.Shape))
		case !slices.Contains([]safetensors.DType{safetensors.F32, safetensors.F16, safetensors.BF16, safetensors.F64}, info.DType):
			errs = append(errs, fmt.Errorf("%s: tensor %q has dtype %s; braid loads F32, F16, BF16 and F64", WeightsFile, t.Name, info.DType))
		}
	}
	// Checkpoints commonly carry two tensors the model has no use for:
	// lm_head.weight beside tied embeddings, and the RoPE inv_freq buffers
	// old Llama checkpoints saved.
	for _, name := range h.Names() {
		if !want[name] && name != "lm_head.weight" && !strings.HasSuffix(name, ".rotary_emb.inv_freq") {
			errs = append(errs, fmt.Errorf("%s: tensor %q is not part of this model", WeightsFile, name))
		}
	}
	return errors.Join(errs...)
}

// countLayers counts the layers the tensor names number: the distinct n of
// "model.layers.n.", written as strconv writes n.
func countLayers(names []string) int {
	layers := make(map[int]bool)
	for _, name := range names {
		rest, ok := strings.CutPrefix(name, layerPrefix)
		if !ok {
			continue
		}
		index, _, ok := strings.Cut(rest, ".")
		if n, err := strconv.Atoi(index); ok && err == nil && n >= 0 && strconv.Itoa(n) == index {
			layers[n] = true
		}
	}
	return len(layers)
}

// checkLoadMemory checks, once the weights have matched the config, that
// the weights file of fileSize bytes, which Load reads whole, and the model
// it becomes fit in memory. The rotary tables are checked on their own
// first: max_position_embeddings is the one size no tensor backs.
func checkLoadMemory(hc hfconfig.Config, c Config, fileSize int64) error {
	params, rope := c.paramBytes(), c.ropeBytes()
	if err := CheckMemory(rope); err != nil {
		return fmt.Errorf("%s: max_position_embeddings %d: the rotary tables for so many positions of head_dim %d: %w",
			ConfigFile, hc.MaxPositionEmbeddings, c.HeadDim, err)
	}
	if err := CheckMemory(float64(fileSize) + params + rope); err != nil {
		return fmt.Errorf("the weights file (%s), its parameters as float32 (%s) and the rotary tables for %d positions (%s): %w",
			formatBytes(float64(fileSize)), formatBytes(params), c.MaxSeq, formatBytes(rope), err)
	}
	return nil
}
