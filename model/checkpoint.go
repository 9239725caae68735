package model

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/braid-dev/braid/model/hfconfig"
	"github.com/braid-dev/braid/model/safetensors"
)

// A model directory holds config.json and model.safetensors, the layout
// Hugging Face transformers reads and writes.
const (
	ConfigFile  = "config.json"
	WeightsFile = "model.safetensors"
)

// ConfigFromHF maps a Hugging Face config onto braid's, refusing what the
// model does not implement.
func ConfigFromHF(hc hfconfig.Config) (Config, error) {
	if err := hc.Validate(); err != nil {
		return Config{}, err
	}
	if hc.ModelType == "llama" && hc.AttentionBias {
		return Config{}, fmt.Errorf("model: Llama with attention_bias has an o_proj bias, which braid does not implement")
	}
	c := Config{
		Vocab: hc.VocabSize, Dim: hc.HiddenSize, Hidden: hc.IntermediateSize, Layers: hc.NumHiddenLayers,
		Heads: hc.NumAttentionHeads, KVHeads: hc.NumKeyValueHeads, HeadDim: hc.AttentionHeadDim(),
		MaxSeq: hc.MaxPositionEmbeddings, NormEps: float32(hc.RMSNormEps), RopeTheta: hc.RopeTheta,
		TiedEmbeddings: hc.TieWordEmbeddings, QKVBias: hc.QKVBias(),
	}
	return c, c.Validate()
}

// HFConfig is c as a Hugging Face config: a Qwen2 model when it has q/k/v
// biases, else a Llama.
func (c Config) HFConfig() hfconfig.Config {
	hc := hfconfig.Config{
		ModelType: "llama", VocabSize: c.Vocab, HiddenSize: c.Dim, IntermediateSize: c.Hidden,
		NumHiddenLayers: c.Layers, NumAttentionHeads: c.Heads, NumKeyValueHeads: c.KVHeads,
		MaxPositionEmbeddings: c.MaxSeq, RMSNormEps: float64(c.NormEps), RopeTheta: c.RopeTheta,
		HiddenAct: "silu", TieWordEmbeddings: c.TiedEmbeddings,
	}
	if c.QKVBias {
		hc.ModelType = "qwen2"
	}
	if c.HeadDim*c.Heads != c.Dim {
		hc.HeadDim = c.HeadDim
	}
	return hc
}

// Load reads a model directory: config.json and model.safetensors (F32,
// F16 or BF16 weights under Hugging Face's names).
func Load(dir string) (*Model, error) {
	hc, err := hfconfig.Load(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	c, err := ConfigFromHF(hc)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	m, err := New(c)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, WeightsFile)
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	if err := m.Params.load(f); err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return m, nil
}

// LoadFS reads a model directory from a file system: the model braid
// embeds in its binary, say. Errors name the files inside fsys.
func LoadFS(fsys fs.FS, dir string) (*Model, error) {
	name := path.Join(dir, ConfigFile)
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	hc, err := hfconfig.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	c, err := ConfigFromHF(hc)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	m, err := New(c)
	if err != nil {
		return nil, err
	}
	name = path.Join(dir, WeightsFile)
	if data, err = fs.ReadFile(fsys, name); err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	f, err := safetensors.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if err := m.Params.load(f); err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	return m, nil
}

// load fills p from f: every tensor must be there with its shape; tensors
// the model has no use for are an error, but for two that checkpoints
// commonly carry: lm_head.weight beside tied embeddings, and the RoPE
// inv_freq buffers old Llama checkpoints saved.
func (p *Params) load(f *safetensors.File) error {
	want := make(map[string]bool)
	var errs []error
	for _, t := range p.tensors {
		want[t.Name] = true
		info, err := f.Info(t.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("tensor %q is missing", t.Name))
			continue
		}
		if !slices.Equal(info.Shape, t.Shape) {
			errs = append(errs, fmt.Errorf("tensor %q has shape %v, the config needs %v", t.Name, info.Shape, t.Shape))
			continue
		}
		data, err := f.Float32(t.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		copy(t.Data, data)
	}
	for _, name := range f.Names() {
		if !want[name] && name != "lm_head.weight" && !strings.HasSuffix(name, ".rotary_emb.inv_freq") {
			errs = append(errs, fmt.Errorf("tensor %q is not part of this model", name))
		}
	}
	return errors.Join(errs...)
}

// Save writes the model to dir as config.json and model.safetensors (F32,
// metadata format "pt"), which Hugging Face transformers loads unchanged.
// Each file is replaced atomically.
func (m *Model) Save(dir string) error { return m.SaveAs(dir, safetensors.F32) }

// SaveAs is Save with the weights stored as dtype: F32, or F16 for a model
// shipped at half the size (loading widens it back; the engine computes
// in float32 either way).
func (m *Model) SaveAs(dir string, dtype safetensors.DType) error {
	if dtype != safetensors.F32 && dtype != safetensors.F16 {
		return fmt.Errorf("save model: weights are saved as F32 or F16, not %s", dtype)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	var ts []safetensors.Tensor
	for _, t := range m.Params.Tensors() {
		if dtype == safetensors.F16 {
			for i, v := range t.Data {
				if math.Abs(float64(v)) > 65504 || math.IsNaN(float64(v)) {
					return fmt.Errorf("save model: %s[%d] = %g does not fit in half precision", t.Name, i, v)
				}
			}
		}
		ts = append(ts, safetensors.Tensor{Name: t.Name, Shape: t.Shape, Data: t.Data, DType: dtype})
	}
	if err := safetensors.WriteFile(filepath.Join(dir, WeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	torch := map[safetensors.DType]string{safetensors.F32: "float32", safetensors.F16: "float16"}[dtype]
	return m.Config.HFConfig().SaveAs(filepath.Join(dir, ConfigFile), torch)
}
