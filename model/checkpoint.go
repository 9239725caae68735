package model

import (
	"cmp"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"

	"github.com/braid-dev/braid/model/hfconfig"
	"github.com/braid-dev/braid/model/safetensors"
	"github.com/braid-dev/braid/tensor"
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
		IndexHeads: hc.IndexNHeads, IndexDim: hc.IndexHeadDim, IndexTopK: hc.IndexTopK,
	}
	if r := hc.RopeScaling; r != nil && r.Kind() == "llama3" {
		c.RopeScaling = tensor.RopeScaling{Factor: r.Factor, LowFreqFactor: r.LowFreqFactor,
			HighFreqFactor: r.HighFreqFactor, OriginalMaxPos: r.OriginalMaxPositionEmbeddings}
	}
	return c, c.Validate()
}

// HFConfig is c as a Hugging Face config: a Qwen2 model when it has q/k/v
// biases, else a Llama, with a "llama3" rope_scaling when c scales its
// rotary frequencies.
func (c Config) HFConfig() hfconfig.Config {
	hc := hfconfig.Config{
		ModelType: "llama", VocabSize: c.Vocab, HiddenSize: c.Dim, IntermediateSize: c.Hidden,
		NumHiddenLayers: c.Layers, NumAttentionHeads: c.Heads, NumKeyValueHeads: c.KVHeads,
		MaxPositionEmbeddings: c.MaxSeq, RMSNormEps: float64(c.NormEps), RopeTheta: c.RopeTheta,
		HiddenAct: "silu", TieWordEmbeddings: c.TiedEmbeddings,
		IndexNHeads: c.IndexHeads, IndexHeadDim: c.IndexDim, IndexTopK: c.IndexTopK,
	}
	if c.QKVBias {
		hc.ModelType = "qwen2"
	}
	if c.HeadDim*c.Heads != c.Dim {
		hc.HeadDim = c.HeadDim
	}
	if s := c.RopeScaling; s != (tensor.RopeScaling{}) {
		hc.RopeScaling = &hfconfig.RopeScaling{RopeType: "llama3", Factor: s.Factor, LowFreqFactor: s.LowFreqFactor,
			HighFreqFactor: s.HighFreqFactor, OriginalMaxPositionEmbeddings: s.OriginalMaxPos}
	}
	return hc
}

// Load reads a model directory: config.json and model.safetensors (F32,
// F16, BF16 or F64 weights under Hugging Face's names). Before anything is
// allocated by the config's sizes, they are checked against the shapes in
// the weights file's header and the memory available.
func Load(dir string) (*Model, error) {
	m, err := LoadFS(os.DirFS(cmp.Or(dir, ".")), ".")
	if err != nil {
		return nil, onDisk(dir, err)
	}
	return m, nil
}

// LoadFS is Load for a model directory inside a file system: the model
// braid embeds in its binary, say. Errors name the files inside fsys.
func LoadFS(fsys fs.FS, dir string) (*Model, error) {
	name := path.Join(dir, ConfigFile)
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	hc, err := hfconfig.Read(f)
	f.Close()
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	name = path.Join(dir, WeightsFile)
	if f, err = fsys.Open(name); err != nil {
		return nil, err
	}
	defer f.Close()
	return load(hc, f, dir, name)
}

// onDisk makes err, an error of LoadFS on os.DirFS(dir), name the file or
// directory it is about by its path on disk rather than inside dir. Such
// errors are *fs.PathErrors: os.DirFS's are, and so are load's.
func onDisk(dir string, err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		pe.Path = filepath.Join(dir, filepath.FromSlash(pe.Path))
	}
	return err
}

// load builds the model hc describes from its weights file f, which errors
// call name, in the directory dir. It reads the weights' header first and
// checks hc against it, then checks that the file and the model fit in
// memory, and only then reads the data and allocates the model. Its errors
// are *fs.PathErrors naming dir or name, for onDisk.
func load(hc hfconfig.Config, f fs.File, dir, name string) (*Model, error) {
	c, err := ConfigFromHF(hc)
	if err != nil {
		return nil, &fs.PathError{Op: "load", Path: dir, Err: err}
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	h, err := safetensors.ReadHeader(f, fi.Size())
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	if err := checkWeights(hc, c, h); err != nil {
		return nil, &fs.PathError{Op: "load", Path: dir, Err: err}
	}
	if err := checkLoadMemory(hc, c, fi.Size()); err != nil {
		return nil, &fs.PathError{Op: "load", Path: dir, Err: err}
	}
	file, err := h.ReadData(f)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	m := newModel(c)
	m.EOS = hc.EOSTokenIDs
	if err := m.Params.load(file); err != nil {
		return nil, &fs.PathError{Op: "load", Path: name, Err: err}
	}
	return m, nil
}

// load fills p from f, whose header checkWeights has checked against p's
// layout.
func (p *Params) load(f *safetensors.File) error {
	for _, t := range p.tensors {
		data, err := f.Float32(t.Name)
		if err != nil {
			return err
		}
		copy(t.Data, data)
	}
	return nil
}

// Save writes the model to dir as config.json, with EOS as its
// eos_token_id, and model.safetensors (F32, metadata format "pt"), which
// Hugging Face transformers loads unchanged. Each file is replaced
// atomically.
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
	hc := m.Config.HFConfig()
	hc.EOSTokenIDs = m.EOS
	torch := map[safetensors.DType]string{safetensors.F32: "float32", safetensors.F16: "float16"}[dtype]
	return hc.SaveAs(filepath.Join(dir, ConfigFile), torch)
}
