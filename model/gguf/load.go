package gguf

import (
	"fmt"
	"math"
	"slices"

	"github.com/braid-dev/braid/model"
)

// LoadModel reads a model of llama.cpp's "llama" or "qwen2" architecture
// from f: its shape from the metadata, its weights (F32, F16, BF16, Q8_0
// or Q4_0, widened to float32) under llama.cpp's tensor names. A llama
// file's query and key rows are permuted back from llama.cpp's rotary
// layout to Hugging Face's, the inverse of what Export and llama.cpp's
// converter do; qwen2 files keep Hugging Face's.
func LoadModel(f *File) (*model.Model, error) {
	c, err := f.config()
	if err != nil {
		return nil, err
	}
	// Every tensor is there, of its shape and of a type braid reads (so
	// inside the file), before the model's memory is allocated: the file
	// vouches for the sizes its metadata claims.
	ws := weights(c, nil)
	infos := make([]TensorInfo, len(ws))
	for i, w := range ws {
		t, ok := f.Tensor(w.name)
		if !ok {
			return nil, fmt.Errorf("gguf: no tensor %s", w.name)
		}
		want := make([]uint64, len(w.shape)) // GGUF lists the fastest-varying dimension first
		for j, d := range w.shape {
			want[len(want)-1-j] = uint64(d)
		}
		if !slices.Equal(t.Dims, want) {
			return nil, fmt.Errorf("gguf: tensor %s has dimensions %v, want %v for the shape its metadata gives", w.name, t.Dims, want)
		}
		if _, _, ok := blockOf(t.Type); !ok {
			return nil, fmt.Errorf("gguf: tensor %s is %s: braid reads F32, F16, BF16, Q8_0 and Q4_0", w.name, TypeName(t.Type))
		}
		infos[i] = t
	}
	m, err := model.New(c)
	if err != nil {
		return nil, err
	}
	for i, w := range weights(c, m.Params) {
		v, err := f.Float32(infos[i])
		if err != nil {
			return nil, fmt.Errorf("gguf: %w", err)
		}
		if w.heads > 0 {
			v = unpermute(v, w.heads, c.Dim)
		}
		copy(w.data, v)
	}
	if id, ok := asInt(f.Meta["tokenizer.ggml.eos_token_id"]); ok && id >= 0 && id < int64(c.Vocab) {
		m.EOS = []int{int(id)}
	}
	return m, nil
}

// config is the model's shape from the file's metadata.
func (f *File) config() (model.Config, error) {
	arch := f.String("general.architecture")
	if arch != "llama" && arch != "qwen2" {
		return model.Config{}, fmt.Errorf("gguf: architecture %q: braid reads llama and qwen2", arch)
	}
	if _, ok := f.Tensor("rope_freqs.weight"); ok {
		return model.Config{}, fmt.Errorf("gguf: per-frequency rotary factors (rope_freqs.weight, Llama 3.1's rope scaling) are not read yet: load the model's safetensors and config.json instead")
	}
	if t := f.String(arch + ".rope.scaling.type"); t != "" && t != "none" {
		return model.Config{}, fmt.Errorf("gguf: %s.rope.scaling.type %q: braid runs plain RoPE (and Llama 3's rope_freqs from safetensors)", arch, t)
	}
	var errs []error
	need := func(key string) int {
		v, ok := asInt(f.Meta[arch+"."+key])
		if !ok || v <= 0 || v > 1<<24 {
			errs = append(errs, fmt.Errorf("%s.%s is %s: want a positive integer", arch, key, describe(f.Meta[arch+"."+key])))
			return 0
		}
		return int(v)
	}
	c := model.Config{
		Dim: need("embedding_length"), Hidden: need("feed_forward_length"), Layers: need("block_count"),
		Heads: need("attention.head_count"), MaxSeq: need("context_length"), RopeTheta: 10000,
	}
	c.KVHeads = c.Heads
	if _, ok := f.Meta[arch+".attention.head_count_kv"]; ok {
		c.KVHeads = need("attention.head_count_kv")
	}
	if len(errs) > 0 {
		return model.Config{}, fmt.Errorf("gguf: %w", errs[0])
	}
	c.HeadDim = c.Dim / c.Heads
	if _, ok := f.Meta[arch+".attention.key_length"]; ok {
		c.HeadDim = need("attention.key_length")
	}
	if v, ok := f.Meta[arch+".rope.freq_base"].(float64); ok {
		c.RopeTheta = v
	}
	eps, ok := f.Meta[arch+".attention.layer_norm_rms_epsilon"].(float64)
	if !ok || !(eps > 0) || eps > 1 {
		return model.Config{}, fmt.Errorf("gguf: %s.attention.layer_norm_rms_epsilon is %s: want a small positive float", arch, describe(f.Meta[arch+".attention.layer_norm_rms_epsilon"]))
	}
	c.NormEps = float32(eps)
	emb, ok := f.Tensor("token_embd.weight")
	if !ok || len(emb.Dims) != 2 || emb.Dims[1] == 0 || emb.Dims[1] > math.MaxInt32 {
		return model.Config{}, fmt.Errorf("gguf: no token_embd.weight matrix to size the vocabulary by")
	}
	c.Vocab = int(emb.Dims[1])
	_, hasOutput := f.Tensor("output.weight")
	c.TiedEmbeddings = !hasOutput
	_, c.QKVBias = f.Tensor("blk.0.attn_q.bias")
	if err := c.Validate(); err != nil {
		return model.Config{}, fmt.Errorf("gguf: %w", err)
	}
	if len(errs) > 0 {
		return model.Config{}, fmt.Errorf("gguf: %w", errs[0])
	}
	return c, nil
}
