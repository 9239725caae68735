package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/braid-dev/braid/model/safetensors"
)

// badConfigs edit the config.json of tinyConfig's model, or its weights,
// into a directory Load must refuse with an error that names the field.
// The first ones would run out of memory, or panic in makeslice, were Load
// to allocate by the config's sizes before checking them against the
// weights and the memory available.
var badConfigs = []struct {
	name    string
	config  map[string]any // fields set in config.json
	weights func([]safetensors.Tensor) []safetensors.Tensor
	wantErr string
}{
	{name: "vocab 1e9", config: map[string]any{"vocab_size": 1_000_000_000},
		wantErr: "config.json: vocab_size 1000000000 does not match model.embed_tokens.weight's 13x8"},
	{name: "layers 1e6", config: map[string]any{"num_hidden_layers": 1_000_000},
		wantErr: "config.json: num_hidden_layers 1000000 does not match the 2 layers of model.safetensors"},
	{name: "max positions 1e12", config: map[string]any{"max_position_embeddings": 1_000_000_000_000},
		wantErr: "config.json: max_position_embeddings 1000000000000: the rotary tables"},
	{name: "max positions MaxInt64", config: map[string]any{"max_position_embeddings": math.MaxInt64},
		wantErr: "config.json: max_position_embeddings 9223372036854775807: the rotary tables"},
	{name: "hidden 2^40", config: map[string]any{"hidden_size": 1 << 40},
		wantErr: "config.json: hidden_size 1099511627776 does not match model.embed_tokens.weight's 13x8"},
	{name: "hidden 2^62 with head_dim", config: map[string]any{"hidden_size": 1 << 62, "head_dim": 4},
		wantErr: "config.json: hidden_size 4611686018427387904 does not match"},
	{name: "intermediate 2^40", config: map[string]any{"intermediate_size": 1 << 40},
		wantErr: "config.json: intermediate_size 1099511627776 does not match model.layers.0.mlp.gate_proj.weight's 12x8"},
	{name: "attention heads 2^40", config: map[string]any{"num_attention_heads": 1 << 40, "head_dim": 4},
		wantErr: "config.json: num_attention_heads 1099511627776 × head_dim 4 does not match model.layers.0.self_attn.q_proj.weight's 8x8"},
	{name: "head_dim 2^40", config: map[string]any{"head_dim": 1 << 40},
		wantErr: "config.json: num_attention_heads 2 × head_dim 1099511627776 does not match"},
	{name: "key/value heads mismatch", config: map[string]any{"num_key_value_heads": 2},
		wantErr: "config.json: num_key_value_heads 2 × head_dim (hidden_size / num_attention_heads) 4 does not match model.layers.0.self_attn.k_proj.weight's 4x8"},
	{name: "vocab 1e30", config: map[string]any{"vocab_size": json.Number("1000000000000000000000000000000")},
		wantErr: "vocab_size: cannot read JSON number"},
	{name: "vocab written 1e9", config: map[string]any{"vocab_size": json.Number("1e9")},
		wantErr: "vocab_size: cannot read JSON number 1e9"},
	{name: "negative vocab", config: map[string]any{"vocab_size": -5},
		wantErr: "vocab_size -5: must be positive"},
	{name: "negative layers", config: map[string]any{"num_hidden_layers": -1},
		wantErr: "num_hidden_layers -1: must be positive"},
	{name: "negative max positions", config: map[string]any{"max_position_embeddings": -1},
		wantErr: "max_position_embeddings -1: must be positive"},
	{name: "negative head_dim", config: map[string]any{"head_dim": -4},
		wantErr: "head_dim -4: must be positive"},
	{name: "zero heads", config: map[string]any{"num_attention_heads": 0},
		wantErr: "num_attention_heads 0: must be positive"},
	{name: "heads not dividing hidden", config: map[string]any{"num_attention_heads": 3},
		wantErr: "num_attention_heads 3: does not divide hidden_size 8"},
	{name: "key/value heads not dividing heads", config: map[string]any{"num_key_value_heads": 3},
		wantErr: "num_key_value_heads 3: does not divide num_attention_heads 2"},
	{name: "untied without lm_head", weights: without("lm_head.weight"),
		wantErr: "config.json: tie_word_embeddings is false, but model.safetensors has no lm_head.weight"},
	{name: "layer missing", weights: withoutPrefix("model.layers.1."),
		wantErr: "config.json: num_hidden_layers 2 does not match the 1 layers of model.safetensors"},
	{name: "embedding missing", weights: without("model.embed_tokens.weight"),
		wantErr: `tensor "model.embed_tokens.weight" is missing`},
	{name: "tensor of another shape", weights: reshaped("model.layers.1.self_attn.q_proj.weight", 4, 16),
		wantErr: `tensor "model.layers.1.self_attn.q_proj.weight" has shape [4 16], the config needs [8 8]`},
	{name: "config over 1 MiB", config: map[string]any{"padding": strings.Repeat(" ", 1<<20)},
		wantErr: "config is over 1048576 bytes"},
}

func without(name string) func([]safetensors.Tensor) []safetensors.Tensor {
	return func(ts []safetensors.Tensor) []safetensors.Tensor {
		return slices.DeleteFunc(ts, func(t safetensors.Tensor) bool { return t.Name == name })
	}
}

func withoutPrefix(prefix string) func([]safetensors.Tensor) []safetensors.Tensor {
	return func(ts []safetensors.Tensor) []safetensors.Tensor {
		return slices.DeleteFunc(ts, func(t safetensors.Tensor) bool { return strings.HasPrefix(t.Name, prefix) })
	}
}

func reshaped(name string, shape ...int) func([]safetensors.Tensor) []safetensors.Tensor {
	return func(ts []safetensors.Tensor) []safetensors.Tensor {
		for i, t := range ts {
			if t.Name == name {
				ts[i].Shape = shape
			}
		}
		return ts
	}
}

// writeEdited writes tinyConfig's model directory with config.json's
// fields set as in edit, written raw: Save would refuse most of them.
func writeEdited(t testing.TB, edit map[string]any, weights func([]safetensors.Tensor) []safetensors.Tensor) string {
	t.Helper()
	c := tinyConfig()
	data, err := json.Marshal(c.HFConfig())
	if err != nil {
		t.Fatal(err)
	}
	fields := make(map[string]any)
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	for k, v := range edit {
		fields[k] = v
	}
	if data, err = json.Marshal(fields); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ts := hfTensors(c)
	if weights != nil {
		ts = weights(ts)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, WeightsFile), ts, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoadRejectsBadConfigs(t *testing.T) {
	for _, tt := range badConfigs {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeEdited(t, tt.config, tt.weights)
			for _, load := range []struct {
				name string
				load func() (*Model, error)
			}{
				{"Load", func() (*Model, error) { return Load(dir) }},
				{"LoadFS", func() (*Model, error) { return LoadFS(os.DirFS(dir), ".") }},
			} {
				m, err := load.load()
				if err == nil {
					t.Fatalf("%s() = a model of %+v, want an error", load.name, m.Config)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("%s() error = %q, want it to contain %q", load.name, err, tt.wantErr)
				}
			}
		})
	}
}

// TestNewRejectsShapesBeyondMemory covers configs built in Go, as train's
// recipes build them: New checks the size of what it would allocate.
func TestNewRejectsShapesBeyondMemory(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*Config)
	}{
		{"vocab 1e9 × dim 1e6", func(c *Config) { c.Vocab, c.Dim, c.Heads, c.KVHeads, c.HeadDim = 1e9, 1e6, 1, 1, 1e6 }},
		{"layers overflow", func(c *Config) { c.Layers = math.MaxInt }},
		{"dims whose product overflows", func(c *Config) { c.Dim, c.Hidden = 1<<40, 1<<40 }},
		{"max positions 1e12", func(c *Config) { c.MaxSeq = 1e12 }},
		{"max positions MaxInt", func(c *Config) { c.MaxSeq = math.MaxInt }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := tinyConfig()
			tt.edit(&c)
			if m, err := New(c); err == nil || !strings.Contains(err.Error(), "need") {
				t.Errorf("New(%+v) = %v, %v; want an error saying what the shape needs", c, m != nil, err)
			}
		})
	}
}

func TestParamBytesCountsNewParams(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*Config)
	}{
		{"llama", func(*Config) {}},
		{"qwen2 tied", func(c *Config) { c.QKVBias, c.TiedEmbeddings = true, true }},
		{"head_dim not dim over heads", func(c *Config) { c.HeadDim = 6 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := tinyConfig()
			tt.edit(&c)
			if got, want := c.paramBytes(), float64(4*NewParams(c).Count()); got != want {
				t.Errorf("paramBytes() = %g, want %g", got, want)
			}
		})
	}
}

// FuzzLoadConfig loads tinyConfig's weights beside a fuzzed config.json:
// whatever the config says, LoadFS must return a model of the weights'
// shape or an error, and never panic or allocate by a size the weights do
// not back.
func FuzzLoadConfig(f *testing.F) {
	c := tinyConfig()
	weights := writeEdited(f, nil, nil)
	data, err := os.ReadFile(filepath.Join(weights, WeightsFile))
	if err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(weights, ConfigFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	for _, tt := range badConfigs {
		if tt.weights == nil && tt.name != "config over 1 MiB" {
			config, err := os.ReadFile(filepath.Join(writeEdited(f, tt.config, nil), ConfigFile))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(config)
		}
	}
	f.Fuzz(func(t *testing.T, config []byte) {
		// The one size no tensor backs is the context, which may be
		// whatever fits in memory; skip the contexts that fit but would
		// take long to build rotary tables for.
		var positions struct {
			N int `json:"max_position_embeddings"`
		}
		if json.Unmarshal(config, &positions) == nil && positions.N > 1<<12 {
			avail, ok := availableMemory()
			if rope := (Config{MaxSeq: positions.N, HeadDim: c.HeadDim}).ropeBytes(); rope <= maxBytes && (!ok || rope <= float64(avail)) {
				t.Skip("a context that fits in memory: slow to build rotary tables for")
			}
		}
		var (
			m   *Model
			err error
		)
		allocated := bytesAllocated(func() {
			m, err = LoadFS(fstest.MapFS{ConfigFile: {Data: config}, WeightsFile: {Data: data}}, ".")
		})
		if limit := uint64(200*len(config) + 16<<20); allocated > limit {
			t.Fatalf("a %d-byte config allocated %d bytes", len(config), allocated)
		}
		if err != nil {
			return
		}
		got := m.Config
		got.MaxSeq, got.NormEps, got.RopeTheta = c.MaxSeq, c.NormEps, c.RopeTheta
		if got != c {
			t.Fatalf("loaded a model of %+v from the weights of %+v", m.Config, c)
		}
	})
}

// bytesAllocated reports how many heap bytes fn allocates.
func bytesAllocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
