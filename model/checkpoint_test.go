package model

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/braid-dev/braid/internal/half"
	"github.com/braid-dev/braid/model/hfconfig"
	"github.com/braid-dev/braid/model/safetensors"
	"github.com/braid-dev/braid/tensor"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"llama", func(*Config) {}},
		{"qwen2-tied", func(c *Config) { c.QKVBias, c.TiedEmbeddings = true, true }},
		{"head-dim-not-dim-over-heads", func(c *Config) { c.HeadDim = 6 }},
		{"llama3-rope-scaling", func(c *Config) { c.RopeScaling = llama3Scaling(16) }},
		{"sparse-attention-indexer", func(c *Config) { c.IndexHeads, c.IndexDim, c.IndexTopK = 3, 4, 4 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tinyConfig()
			tc.edit(&c)
			m, err := New(c)
			if err != nil {
				t.Fatal(err)
			}
			m.Params.Init(rand.New(rand.NewPCG(2, 2)), 0.5)
			dir := t.TempDir()
			if err := m.Save(dir); err != nil {
				t.Fatal(err)
			}
			got, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got.Config != m.Config {
				t.Fatalf("config %+v, want %+v", got.Config, m.Config)
			}
			if !slices.Equal(got.Params.Data(), m.Params.Data()) {
				t.Fatal("weights differ after a round trip")
			}
			a, b := m.NewActivations(1, 5), got.NewActivations(1, 5)
			toks := []int{1, 5, 2, 7, 3}
			m.Forward(a, toks, nil)
			got.Forward(b, toks, nil)
			if !slices.Equal(a.Logits(4, c.Vocab), b.Logits(4, c.Vocab)) {
				t.Fatal("logits differ after a round trip")
			}
		})
	}
}

// writeHF writes a checkpoint directory the way another tool would.
func writeHF(t *testing.T, hc hfconfig.Config, tensors []safetensors.Tensor) string {
	t.Helper()
	dir := t.TempDir()
	if err := hc.Save(filepath.Join(dir, ConfigFile)); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, WeightsFile), tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func hfTensors(c Config) []safetensors.Tensor {
	var ts []safetensors.Tensor
	for _, tn := range NewParams(c).Tensors() {
		ts = append(ts, safetensors.Tensor{Name: tn.Name, Shape: tn.Shape, Data: tn.Data})
	}
	return ts
}

func TestLoadRejectsMismatchedCheckpoints(t *testing.T) {
	c := tinyConfig()
	hc := c.HFConfig()
	full := hfTensors(c)

	dir := writeHF(t, hc, full[1:])
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), `"model.embed_tokens.weight" is missing`) {
		t.Errorf("missing tensor: %v", err)
	}
	wrong := slices.Clone(full)
	wrong[0] = safetensors.Tensor{Name: wrong[0].Name, Shape: []int{c.Vocab + 1, c.Dim}, Data: make([]float32, (c.Vocab+1)*c.Dim)}
	if _, err := Load(writeHF(t, hc, wrong)); err == nil || !strings.Contains(err.Error(), "vocab_size 13 does not match model.embed_tokens.weight's 14x8") {
		t.Errorf("wrong embedding shape: %v", err)
	}
	wrong = slices.Clone(full)
	norm := slices.IndexFunc(wrong, func(t safetensors.Tensor) bool { return t.Name == "model.norm.weight" })
	wrong[norm] = safetensors.Tensor{Name: wrong[norm].Name, Shape: []int{c.Dim + 1}, Data: make([]float32, c.Dim+1)}
	if _, err := Load(writeHF(t, hc, wrong)); err == nil || !strings.Contains(err.Error(), `"model.norm.weight" has shape [9]`) {
		t.Errorf("wrong shape: %v", err)
	}
	extra := append(slices.Clone(full), safetensors.Tensor{Name: "model.layers.0.mlp.extra.weight", Shape: []int{2}, Data: []float32{1, 2}})
	if _, err := Load(writeHF(t, hc, extra)); err == nil || !strings.Contains(err.Error(), "not part of this model") {
		t.Errorf("extra tensor: %v", err)
	}
	// Old Llama checkpoints carry RoPE buffers; they are ignored.
	inv := append(slices.Clone(full), safetensors.Tensor{Name: "model.layers.0.self_attn.rotary_emb.inv_freq", Shape: []int{2}, Data: []float32{1, 2}})
	if _, err := Load(writeHF(t, hc, inv)); err != nil {
		t.Errorf("inv_freq buffer: %v", err)
	}
	bias := hc
	bias.AttentionBias = true
	if _, err := Load(writeHF(t, bias, full)); err == nil || !strings.Contains(err.Error(), "o_proj bias") {
		t.Errorf("llama attention_bias: %v", err)
	}
	nowhere := filepath.Join(t.TempDir(), "nowhere")
	if _, err := Load(nowhere); err == nil || !strings.Contains(err.Error(), filepath.Join(nowhere, ConfigFile)) {
		t.Errorf("a missing directory: %v, want an error naming its config on disk", err)
	}
	// A truncated weights file is an error, not a panic.
	dir = writeHF(t, hc, full)
	path := filepath.Join(dir, WeightsFile)
	data, _ := os.ReadFile(path)
	os.WriteFile(path, data[:len(data)/2], 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("a truncated checkpoint: %v, want an error naming %s", err, path)
	}
}

func TestLoadReadsEOSAndSaveWritesIt(t *testing.T) {
	c := tinyConfig()
	hc := c.HFConfig()
	hc.EOSTokenIDs = hfconfig.TokenIDs{3, 7}
	m, err := Load(writeHF(t, hc, hfTensors(c)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.EOS, []int{3, 7}) {
		t.Fatalf("EOS %v, want [3 7]", m.EOS)
	}
	dir := t.TempDir()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(dir); err != nil || !slices.Equal(got.EOS, m.EOS) {
		t.Errorf("EOS after a round trip %v (%v), want %v", got.EOS, err, m.EOS)
	}
}

func TestLoadFSMatchesLoad(t *testing.T) {
	c := Config{Vocab: 40, Dim: 16, Hidden: 24, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 8, MaxSeq: 32, NormEps: 1e-5, RopeTheta: 10000}
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Init(rand.New(rand.NewPCG(9, 9)), 0.1)
	dir := t.TempDir()
	if err := m.Save(filepath.Join(dir, "m")); err != nil {
		t.Fatal(err)
	}
	got, err := LoadFS(os.DirFS(dir), "m")
	if err != nil {
		t.Fatal(err)
	}
	if got.Config != m.Config || !slices.Equal(got.Params.Data(), m.Params.Data()) {
		t.Error("LoadFS read another model than was saved")
	}
	if _, err := LoadFS(os.DirFS(dir), "missing"); err == nil || !strings.Contains(err.Error(), "missing/config.json") {
		t.Errorf("missing directory: %v", err)
	}
}

func TestSaveAsF16(t *testing.T) {
	c := Config{Vocab: 40, Dim: 16, Hidden: 24, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 8, MaxSeq: 32, NormEps: 1e-5, RopeTheta: 10000}
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	m.Params.Init(rand.New(rand.NewPCG(4, 4)), 0.1)
	dir := t.TempDir()
	if err := m.SaveAs(dir, safetensors.F16); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range m.Params.Data() {
		if w := half.ToFloat32(half.FromFloat32(v)); got.Params.Data()[i] != w {
			t.Fatalf("parameter %d reads %g, want %g", i, got.Params.Data()[i], w)
		}
	}
	hc, err := hfconfig.Load(filepath.Join(dir, ConfigFile))
	if err != nil || hc.TorchDType != "float16" {
		t.Errorf("config dtype %q, %v", hc.TorchDType, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, WeightsFile)); fi.Size() > int64(m.Params.Count())*2+4096 {
		t.Errorf("an F16 file of %d bytes for %d parameters", fi.Size(), m.Params.Count())
	}
}

// llama3Scaling is Llama 3.1's RoPE scaling for a model pretrained on
// original positions.
func llama3Scaling(original int) tensor.RopeScaling {
	return tensor.RopeScaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: original}
}

func TestConfigFromHFRopeScaling(t *testing.T) {
	hfLlama3 := func() *hfconfig.RopeScaling {
		return &hfconfig.RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 16}
	}
	for _, tc := range []struct {
		name    string
		scaling *hfconfig.RopeScaling
		want    tensor.RopeScaling
		wantErr error
	}{
		{"none", nil, tensor.RopeScaling{}, nil},
		{"default", &hfconfig.RopeScaling{RopeType: "default"}, tensor.RopeScaling{}, nil},
		{"llama3", hfLlama3(), llama3Scaling(16), nil},
		{"llama3, older spelling", &hfconfig.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 16},
			llama3Scaling(16), nil},
		{"llama3 without its parameters", &hfconfig.RopeScaling{RopeType: "llama3"}, tensor.RopeScaling{}, hfconfig.ErrInvalid},
		{"yarn", &hfconfig.RopeScaling{RopeType: "yarn", Factor: 4}, tensor.RopeScaling{}, hfconfig.ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hc := tinyConfig().HFConfig()
			hc.RopeScaling = tc.scaling
			c, err := ConfigFromHF(hc)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ConfigFromHF() error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.RopeScaling != tc.want {
				t.Errorf("RopeScaling = %+v, want %+v", c.RopeScaling, tc.want)
			}
			// And back: HFConfig writes the scaling as llama3's rope_scaling,
			// or none, and ConfigFromHF reads it as it was.
			back := c.HFConfig()
			if tc.want == (tensor.RopeScaling{}) {
				if back.RopeScaling != nil {
					t.Errorf("HFConfig() rope_scaling = %+v, want none", back.RopeScaling)
				}
			} else if !reflect.DeepEqual(back.RopeScaling, hfLlama3()) {
				t.Errorf("HFConfig() rope_scaling = %+v, want %+v", back.RopeScaling, hfLlama3())
			}
			if again, err := ConfigFromHF(back); err != nil || again != c {
				t.Errorf("ConfigFromHF(HFConfig()) = %+v, %v, want %+v", again, err, c)
			}
		})
	}
}

func TestConfigValidateRopeScaling(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*tensor.RopeScaling)
		wantErr string
	}{
		{"factor below 1", func(s *tensor.RopeScaling) { s.Factor = 0.5 }, "RoPE scaling factor 0.5 must be at least 1"},
		{"low-frequency factor", func(s *tensor.RopeScaling) { s.LowFreqFactor = 0 }, "low-frequency factor 0 must be positive"},
		{"high-frequency factor", func(s *tensor.RopeScaling) { s.HighFreqFactor = 1 }, "high-frequency factor 1 must be greater than the low-frequency factor 1"},
		{"original context", func(s *tensor.RopeScaling) { s.OriginalMaxPos = -8 }, "original context of -8 positions must be positive"},
		{"only a factor", func(s *tensor.RopeScaling) { *s = tensor.RopeScaling{Factor: 8} }, "low-frequency factor 0 must be positive"},
	} {
		c := tinyConfig()
		c.RopeScaling = llama3Scaling(16)
		tc.edit(&c.RopeScaling)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: Validate() = %v, want an error containing %q", tc.name, err, tc.wantErr)
		}
	}
	for _, s := range []tensor.RopeScaling{{}, llama3Scaling(16), {Factor: 1, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 8}} {
		c := tinyConfig()
		c.RopeScaling = s
		if err := c.Validate(); err != nil {
			t.Errorf("scaling %+v: Validate() = %v", s, err)
		}
	}
}

// The scaling reaches the forward pass: with the same weights, the first
// position (angle 0 at every frequency) gives the same logits with and
// without it, and later positions differ.
func TestRopeScalingChangesForward(t *testing.T) {
	c := tinyConfig()
	plain, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	plain.Params.Init(rand.New(rand.NewPCG(5, 5)), 0.5)
	c.RopeScaling = llama3Scaling(16)
	scaled, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	copy(scaled.Params.Data(), plain.Params.Data())
	toks := []int{1, 5, 2, 7, 3}
	a, b := plain.NewActivations(1, len(toks)), scaled.NewActivations(1, len(toks))
	plain.Forward(a, toks, nil)
	scaled.Forward(b, toks, nil)
	if !slices.Equal(a.Logits(0, c.Vocab), b.Logits(0, c.Vocab)) {
		t.Error("logits at position 0 differ with RoPE scaling")
	}
	if slices.Equal(a.Logits(4, c.Vocab), b.Logits(4, c.Vocab)) {
		t.Error("logits at position 4 are the same with and without RoPE scaling")
	}
}

// The shapes in configs/, which braid bench decode --config measures, load
// as bench decode reads them, and survive HFConfig and ConfigFromHF.
func TestShapeConfigs(t *testing.T) {
	paths, err := filepath.Glob("../configs/*.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no shape configs in ../configs: %v", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			hc, err := hfconfig.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ConfigFromHF(hc)
			if err != nil {
				t.Fatal(err)
			}
			if hc.RopeScaling != nil && hc.RopeScaling.Kind() == "llama3" && c.RopeScaling == (tensor.RopeScaling{}) {
				t.Error("the config's llama3 rope_scaling was dropped")
			}
			if again, err := ConfigFromHF(c.HFConfig()); err != nil || again != c {
				t.Errorf("ConfigFromHF(HFConfig()) = %+v, %v, want %+v", again, err, c)
			}
		})
	}
}
