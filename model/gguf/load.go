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
	type load struct {
		name       string
		dst        func(p *model.Params) []float32
		rows, cols int
	}
	qd, kd := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	loads := []load{
		{"token_embd.weight", func(p *model.Params) []float32 { return p.Embed }, c.Vocab, c.Dim},
		{"output_norm.weight", func(p *model.Params) []float32 { return p.FinalNorm }, 0, c.Dim}}
	if !c.TiedEmbeddings {
		loads = append(loads, load{"output.weight", func(p *model.Params) []float32 { return p.LMHead }, c.Vocab, c.Dim})
	}
	for i := range c.Layers {
		b := fmt.Sprintf("blk.%d.", i)
		layer := func(get func(l *model.LayerParams) []float32) func(p *model.Params) []float32 {
			return func(p *model.Params) []float32 { return get(&p.Layers[i]) }
		}
		loads = append(loads,
			load{b + "attn_norm.weight", layer(func(l *model.LayerParams) []float32 { return l.AttnNorm }), 0, c.Dim},
			load{b + "attn_q.weight", layer(func(l *model.LayerParams) []float32 { return l.Wq }), qd, c.Dim},
			load{b + "attn_k.weight", layer(func(l *model.LayerParams) []float32 { return l.Wk }), kd, c.Dim},
			load{b + "attn_v.weight", layer(func(l *model.LayerParams) []float32 { return l.Wv }), kd, c.Dim},
			load{b + "attn_output.weight", layer(func(l *model.LayerParams) []float32 { return l.Wo }), c.Dim, qd},
			load{b + "ffn_norm.weight", layer(func(l *model.LayerParams) []float32 { return l.MLPNorm }), 0, c.Dim},
			load{b + "ffn_gate.weight", layer(func(l *model.LayerParams) []float32 { return l.Wgate }), c.Hidden, c.Dim},
			load{b + "ffn_up.weight", layer(func(l *model.LayerParams) []float32 { return l.Wup }), c.Hidden, c.Dim},
			load{b + "ffn_down.weight", layer(func(l *model.LayerParams) []float32 { return l.Wdown }), c.Dim, c.Hidden})
		if c.QKVBias {
			loads = append(loads,
				load{b + "attn_q.bias", layer(func(l *model.LayerParams) []float32 { return l.Bq }), 0, qd},
				load{b + "attn_k.bias", layer(func(l *model.LayerParams) []float32 { return l.Bk }), 0, kd},
				load{b + "attn_v.bias", layer(func(l *model.LayerParams) []float32 { return l.Bv }), 0, kd})
		}
	}
	// Every tensor is there, of its shape and of a type braid reads (so
	// inside the file), before the model's memory is allocated: the file
	// vouches for the sizes its metadata claims.
	infos := make([]TensorInfo, len(loads))
	for i, l := range loads {
		t, ok := f.Tensor(l.name)
		if !ok {
			return nil, fmt.Errorf("gguf: no tensor %s", l.name)
		}
		want := []uint64{uint64(l.cols)}
		if l.rows > 0 {
			want = append(want, uint64(l.rows))
		}
		if !slices.Equal(t.Dims, want) {
			return nil, fmt.Errorf("gguf: tensor %s has dimensions %v, want %v for the shape its metadata gives", l.name, t.Dims, want)
		}
		if _, _, ok := blockOf(t.Type); !ok {
			return nil, fmt.Errorf("gguf: tensor %s is %s: braid reads F32, F16, BF16, Q8_0 and Q4_0", l.name, TypeName(t.Type))
		}
		infos[i] = t
	}
	m, err := model.New(c)
	if err != nil {
		return nil, err
	}
	p := m.Params
	for i, l := range loads {
		v, err := f.Float32(infos[i])
		if err != nil {
			return nil, fmt.Errorf("gguf: %w", err)
		}
		copy(l.dst(p), v)
	}
	if f.String("general.architecture") == "llama" {
		for i := range p.Layers {
			l := &p.Layers[i]
			copy(l.Wq, unpermute(l.Wq, c.Heads, c.Dim))
			copy(l.Wk, unpermute(l.Wk, c.KVHeads, c.Dim))
		}
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
