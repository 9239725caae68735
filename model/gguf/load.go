package gguf

import (
	"fmt"
	"math"
	"slices"

	"github.com/braid-dev/braid/model"
	braidtensor "github.com/braid-dev/braid/tensor"
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
	// A chat model's turn ends at its end-of-turn token (<|eot_id|>,
	// <|im_end|>) as well as at its end of sequence, as llama.cpp
	// stops at every end-of-generation token.
	for _, key := range []string{"eos", "eot", "eom"} {
		id, ok := asInt(f.Meta["tokenizer.ggml."+key+"_token_id"])
		if ok && id >= 0 && id < int64(c.Vocab) && !slices.Contains(m.EOS, int(id)) {
			m.EOS = append(m.EOS, int(id))
		}
	}
	return m, nil
}

// config is the model's shape from the file's metadata.
func (f *File) config() (model.Config, error) {
	arch := f.String("general.architecture")
	if arch != "llama" && arch != "qwen2" {
		return model.Config{}, fmt.Errorf("gguf: architecture %q: braid reads llama and qwen2", arch)
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
	if t, ok := f.Tensor("rope_freqs.weight"); ok {
		if len(t.Dims) != 1 || t.Dims[0] != uint64(c.HeadDim/2) {
			return model.Config{}, fmt.Errorf("gguf: rope_freqs.weight has dimensions %v, want [%d] (half the head size)", t.Dims, c.HeadDim/2)
		}
		factors, err := f.Float32(t)
		if err != nil {
			return model.Config{}, fmt.Errorf("gguf: %w", err)
		}
		if c.RopeScaling, err = ropeScaling(c.HeadDim, c.RopeTheta, factors); err != nil {
			return model.Config{}, fmt.Errorf("gguf: rope_freqs.weight: %w", err)
		}
	}
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

// ropeOriginalContext is the OriginalMaxPos of a RoPE scaling recovered from
// rope_freqs.weight. The divisors depend on the pretrained context only
// through OriginalMaxPos/wavelength against the two band factors, so
// any value serves once the factors are fitted to it; Llama 3's is chosen.
const ropeOriginalContext = 8192

// ropeScaling recovers the llama3 RoPE scaling whose divisor of each rotary
// frequency of a head of headDim is factors' (llama.cpp's rope_freqs
// tensor, which its converter writes for Llama 3.1 and 3.2): Factor is the
// largest divisor; the band edges come from the divisors between 1 and it,
// which run linearly in OriginalMaxPos/wavelength, or, where fewer than two
// lie between, from the gap between the bands. The result is checked to
// give every factor back; factors no such scaling gives are refused.
func ropeScaling(headDim int, theta float64, factors []float32) (braidtensor.RopeScaling, error) {
	base := braidtensor.RoPEFreqs(headDim, theta, braidtensor.RopeScaling{})
	if len(factors) != len(base) {
		return braidtensor.RopeScaling{}, fmt.Errorf("%d factors for %d rotary frequencies", len(factors), len(base))
	}
	factor := 1.0
	for i, f := range factors {
		if !(f >= 1) || math.IsInf(float64(f), 0) {
			return braidtensor.RopeScaling{}, fmt.Errorf("factor %d is %g: braid reads Llama 3's scaling, whose factors are finite and at least 1", i, f)
		}
		factor = max(factor, float64(f))
	}
	if factor == 1 {
		return braidtensor.RopeScaling{}, nil
	}
	// x is OriginalMaxPos/wavelength: below low the band divided by factor,
	// above high the band left alone, linear between.
	x := func(i int) float64 { return ropeOriginalContext * base[i] / (2 * math.Pi) }
	t := func(f float64) float64 { return (1/f - 1/factor) / (1 - 1/factor) }
	const tol = 1e-5
	lowMax, highMin := math.Inf(-1), math.Inf(1)
	var mid []int
	for i, f := range factors {
		switch d := float64(f); {
		case d >= factor*(1-tol):
			lowMax = max(lowMax, x(i))
		case d <= 1+tol:
			highMin = min(highMin, x(i))
		default:
			mid = append(mid, i)
		}
	}
	var low, high float64
	switch len(mid) {
	case 0:
		low, high = lowMax+(highMin-lowMax)/3, lowMax+2*(highMin-lowMax)/3
		if math.IsInf(highMin, 1) {
			low, high = lowMax*1.01, lowMax*1.02
		}
	case 1:
		xm, tm := x(mid[0]), t(float64(factors[mid[0]]))
		low = (lowMax + xm) / 2
		high = low + (xm-low)/tm
	default:
		// Least squares of t against x: t = (x − low)/(high − low).
		var n, sx, sy, sxx, sxy float64
		for _, i := range mid {
			xi, ti := x(i), t(float64(factors[i]))
			n, sx, sy, sxx, sxy = n+1, sx+xi, sy+ti, sxx+xi*xi, sxy+xi*ti
		}
		slope := (n*sxy - sx*sy) / (n*sxx - sx*sx)
		icept := (sy - slope*sx) / n
		low, high = -icept/slope, (1-icept)/slope
	}
	s := braidtensor.RopeScaling{Factor: factor, LowFreqFactor: low, HighFreqFactor: high, OriginalMaxPos: ropeOriginalContext}
	if !(low > 0) || !(high > low) {
		return braidtensor.RopeScaling{}, fmt.Errorf("the factors are not Llama 3's scaling (band edges %g and %g)", low, high)
	}
	for i, f := range factors {
		if got := s.Divisor(base[i]); math.Abs(got-float64(f)) > 1e-4*float64(f) {
			return braidtensor.RopeScaling{}, fmt.Errorf("the factors are not Llama 3's scaling: factor %d is %g where the nearest such scaling gives %g", i, f, got)
		}
	}
	return s, nil
}
