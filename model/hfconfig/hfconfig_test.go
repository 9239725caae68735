package hfconfig

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func intPtr(v int) *int { return &v }

// tinyLlama is testdata/tinyllama.json as Load should read it.
func tinyLlama() Config {
	return Config{
		ModelType:             "llama",
		Architectures:         []string{"LlamaForCausalLM"},
		VocabSize:             32000,
		HiddenSize:            2048,
		IntermediateSize:      5632,
		NumHiddenLayers:       22,
		NumAttentionHeads:     32,
		NumKeyValueHeads:      4,
		MaxPositionEmbeddings: 2048,
		RMSNormEps:            1e-5,
		RopeTheta:             10000,
		HiddenAct:             "silu",
		BOSTokenID:            intPtr(1),
		EOSTokenIDs:           TokenIDs{2},
		TorchDType:            "bfloat16",
	}
}

// qwen2 is testdata/qwen2-0.5b.json as Load should read it.
func qwen2() Config {
	return Config{
		ModelType:             "qwen2",
		Architectures:         []string{"Qwen2ForCausalLM"},
		VocabSize:             151936,
		HiddenSize:            896,
		IntermediateSize:      4864,
		NumHiddenLayers:       24,
		NumAttentionHeads:     14,
		NumKeyValueHeads:      2,
		MaxPositionEmbeddings: 32768,
		RMSNormEps:            1e-6,
		RopeTheta:             1e6,
		HiddenAct:             "silu",
		TieWordEmbeddings:     true,
		BOSTokenID:            intPtr(151643),
		EOSTokenIDs:           TokenIDs{151645, 151643},
		TorchDType:            "bfloat16",
	}
}

// llama32 is testdata/llama-3.2-1b.json as Load should read it.
func llama32() Config {
	return Config{
		ModelType:             "llama",
		Architectures:         []string{"LlamaForCausalLM"},
		VocabSize:             128256,
		HiddenSize:            2048,
		IntermediateSize:      8192,
		NumHiddenLayers:       16,
		NumAttentionHeads:     32,
		NumKeyValueHeads:      8,
		MaxPositionEmbeddings: 131072,
		HeadDim:               64,
		RMSNormEps:            1e-5,
		RopeTheta:             500000,
		RopeScaling:           llama3Scaling(),
		HiddenAct:             "silu",
		TieWordEmbeddings:     true,
		BOSTokenID:            intPtr(128000),
		EOSTokenIDs:           TokenIDs{128001},
		TorchDType:            "bfloat16",
	}
}

// llama3Scaling is the rope_scaling of Llama 3.2 1B and 3B.
func llama3Scaling() *RopeScaling {
	return &RopeScaling{RopeType: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		path         string
		want         Config
		wantHeadDim  int
		wantQKVBias  bool
		wantArchName string
	}{
		{"testdata/tinyllama.json", tinyLlama(), 64, false, "LlamaForCausalLM"},
		{"testdata/qwen2-0.5b.json", qwen2(), 64, true, "Qwen2ForCausalLM"},
		{"testdata/llama-3.2-1b.json", llama32(), 64, false, "LlamaForCausalLM"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := Load(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Load() = %+v\nwant %+v", got, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
			if d := got.AttentionHeadDim(); d != tt.wantHeadDim {
				t.Errorf("AttentionHeadDim() = %d, want %d", d, tt.wantHeadDim)
			}
			if b := got.QKVBias(); b != tt.wantQKVBias {
				t.Errorf("QKVBias() = %v, want %v", b, tt.wantQKVBias)
			}
		})
	}
}

func TestLoadErrorsNamePath(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "config.json")
	if err := os.WriteFile(bad, []byte(`{"hidden_size": `), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{bad, filepath.Join(dir, "missing.json")} {
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Load(%s) error = %v, want one naming the path", path, err)
		}
	}
}

// TestReadCapsSize checks that Read stops at 1 MiB rather than read and
// decode whatever a file holds.
func TestReadCapsSize(t *testing.T) {
	config := []byte(`{"model_type": "llama", "vocab_size": 32000}`)
	padded := append(bytes.Repeat([]byte(" "), maxFileSize-len(config)), config...)
	for _, tt := range []struct {
		name    string
		r       io.Reader
		wantErr string
	}{
		{"1 MiB", bytes.NewReader(padded), ""},
		{"a byte over", io.MultiReader(bytes.NewReader(padded), strings.NewReader(" ")), "config is over 1048576 bytes"},
		{"endless", neverEnding('{'), "config is over 1048576 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Read(tt.r)
			if tt.wantErr == "" {
				if err != nil || c.VocabSize != 32000 {
					t.Errorf("Read() = %+v, %v", c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Read() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// neverEnding is an endless stream of one byte, as /dev/zero is of zeros.
type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

func TestParseDefaults(t *testing.T) {
	tests := []struct {
		name string
		json string
		want func(*Config)
	}{
		{"absent fields take transformers' defaults", `{"num_attention_heads": 8}`, func(c *Config) {
			c.NumKeyValueHeads = 8
			c.RMSNormEps = 1e-6
			c.RopeTheta = 10000
			c.HiddenAct = "silu"
		}},
		{"null fields take defaults too", `{"num_attention_heads": 8, "num_key_value_heads": null, "rope_theta": null, "rms_norm_eps": null, "hidden_act": null}`, func(c *Config) {
			c.NumKeyValueHeads = 8
			c.RMSNormEps = 1e-6
			c.RopeTheta = 10000
			c.HiddenAct = "silu"
		}},
		{"explicit zeros stay for Validate to catch", `{"num_attention_heads": 8, "num_key_value_heads": 0, "rope_theta": 0, "rms_norm_eps": 0, "hidden_act": ""}`, func(c *Config) {}},
		{"head_dim is kept", `{"num_attention_heads": 8, "head_dim": 128}`, func(c *Config) {
			c.HeadDim = 128
			c.NumKeyValueHeads = 8
			c.RMSNormEps = 1e-6
			c.RopeTheta = 10000
			c.HiddenAct = "silu"
		}},
		{"dtype is the newer name of torch_dtype", `{"num_attention_heads": 8, "dtype": "float16"}`, func(c *Config) {
			c.TorchDType = "float16"
			c.NumKeyValueHeads = 8
			c.RMSNormEps = 1e-6
			c.RopeTheta = 10000
			c.HiddenAct = "silu"
		}},
		{"torch_dtype wins over dtype", `{"num_attention_heads": 8, "torch_dtype": "bfloat16", "dtype": "float16"}`, func(c *Config) {
			c.TorchDType = "bfloat16"
			c.NumKeyValueHeads = 8
			c.RMSNormEps = 1e-6
			c.RopeTheta = 10000
			c.HiddenAct = "silu"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.json))
			if err != nil {
				t.Fatal(err)
			}
			want := Config{NumAttentionHeads: 8}
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Parse() = %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestAttentionHeadDim(t *testing.T) {
	c := tinyLlama()
	if d := c.AttentionHeadDim(); d != 64 {
		t.Errorf("AttentionHeadDim() without head_dim = %d, want 2048/32 = 64", d)
	}
	c.HeadDim = 128
	if d := c.AttentionHeadDim(); d != 128 {
		t.Errorf("AttentionHeadDim() with head_dim 128 = %d, want 128", d)
	}
	if d := (Config{}).AttentionHeadDim(); d != 0 {
		t.Errorf("AttentionHeadDim() of an empty config = %d, want 0", d)
	}
}

func TestQKVBias(t *testing.T) {
	tests := []struct {
		modelType     string
		attentionBias bool
		want          bool
	}{
		{"llama", false, false},
		{"llama", true, true},
		{"qwen2", false, true},
		{"qwen2", true, true},
	}
	for _, tt := range tests {
		c := Config{ModelType: tt.modelType, AttentionBias: tt.attentionBias}
		if got := c.QKVBias(); got != tt.want {
			t.Errorf("QKVBias() of %s with attention_bias %v = %v, want %v", tt.modelType, tt.attentionBias, got, tt.want)
		}
	}
}

func TestTokenIDs(t *testing.T) {
	tests := []struct {
		name string
		json string
		want TokenIDs
	}{
		{"one id", `{"eos_token_id": 2}`, TokenIDs{2}},
		{"list", `{"eos_token_id": [128001, 128008, 128009]}`, TokenIDs{128001, 128008, 128009}},
		{"empty list", `{"eos_token_id": []}`, nil},
		{"null", `{"eos_token_id": null}`, nil},
		{"absent", `{}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.json))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.EOSTokenIDs, tt.want) {
				t.Errorf("EOSTokenIDs = %#v, want %#v", c.EOSTokenIDs, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		wantErr string
	}{
		{"truncated", `{"hidden_size": 20`, "hfconfig: unexpected end of JSON input"},
		{"not an object", `[1, 2]`, "hfconfig: config is a JSON array, want an object"},
		{"size is a string", `{"hidden_size": "2048"}`, "hfconfig: hidden_size: cannot read JSON string as int"},
		{"size is fractional", `{"num_hidden_layers": 1.5}`, "hfconfig: num_hidden_layers: cannot read JSON number 1.5 as int"},
		{"eos id is a string", `{"eos_token_id": "</s>"}`, `want a token id or a list of token ids, found "</s>"`},
		{"eos list holds a string", `{"eos_token_id": [1, "x"]}`, "want a token id or a list of token ids"},
		{"rope_scaling is a string", `{"rope_scaling": "linear"}`, "hfconfig: rope_scaling: cannot read JSON string as hfconfig.RopeScaling"},
		{"rope_scaling factor is a string", `{"rope_scaling": {"rope_type": "llama3", "factor": "32"}}`,
			"hfconfig: rope_scaling.factor: cannot read JSON string as float64"},
		{"original context is fractional", `{"rope_scaling": {"rope_type": "llama3", "original_max_position_embeddings": 8192.5}}`,
			"hfconfig: rope_scaling.original_max_position_embeddings: cannot read JSON number 8192.5 as int"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse() error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Config)
		wantIs  error
		wantErr string
	}{
		{"model type", func(c *Config) { c.ModelType = "gpt2" }, ErrUnsupported,
			`hfconfig: unsupported model_type "gpt2": braid runs "llama" and "qwen2"`},
		{"missing model type", func(c *Config) { c.ModelType = "" }, ErrUnsupported, `model_type ""`},
		{"activation", func(c *Config) { c.HiddenAct = "gelu" }, ErrUnsupported, `hfconfig: unsupported hidden_act "gelu"`},
		{"rope scaling", func(c *Config) { c.RopeScaling = &RopeScaling{RopeType: "yarn", Factor: 4} }, ErrUnsupported,
			`hfconfig: unsupported rope scaling type "yarn": braid runs plain RoPE ("default") and "llama3"`},
		{"rope scaling, older spelling", func(c *Config) { c.RopeScaling = &RopeScaling{Type: "linear"} }, ErrUnsupported,
			`rope scaling type "linear"`},
		{"rope scaling without a type", func(c *Config) { c.RopeScaling = &RopeScaling{} }, ErrUnsupported, "rope_scaling without a type"},
		{"llama3 factor below 1", func(c *Config) { c.RopeScaling = llama3Scaling(); c.RopeScaling.Factor = 0.5 }, ErrInvalid,
			"hfconfig: invalid rope_scaling.factor 0.5: must be at least 1"},
		{"llama3 factor NaN", func(c *Config) { c.RopeScaling = llama3Scaling(); c.RopeScaling.Factor = math.NaN() }, ErrInvalid,
			"rope_scaling.factor NaN: must be at least 1"},
		{"llama3 low_freq_factor", func(c *Config) { c.RopeScaling = llama3Scaling(); c.RopeScaling.LowFreqFactor = -1 }, ErrInvalid,
			"hfconfig: invalid rope_scaling.low_freq_factor -1: must be positive"},
		{"llama3 high_freq_factor equal to low", func(c *Config) { c.RopeScaling = llama3Scaling(); c.RopeScaling.HighFreqFactor = 1 }, ErrInvalid,
			"hfconfig: invalid rope_scaling.high_freq_factor 1: must be greater than low_freq_factor 1"},
		{"llama3 original context", func(c *Config) { c.RopeScaling = llama3Scaling(); c.RopeScaling.OriginalMaxPositionEmbeddings = 0 }, ErrInvalid,
			"hfconfig: invalid rope_scaling.original_max_position_embeddings 0: must be positive"},
		{"llama3 without its parameters", func(c *Config) { c.RopeScaling = &RopeScaling{RopeType: "llama3"} }, ErrInvalid,
			"rope_scaling.factor 0: must be at least 1"},
		{"mlp bias", func(c *Config) { c.MLPBias = true }, ErrUnsupported, "mlp_bias true"},
		{"sliding window", func(c *Config) { c.UseSlidingWindow = true }, ErrUnsupported, "use_sliding_window true"},
		{"vocab size", func(c *Config) { c.VocabSize = 0 }, ErrInvalid, "hfconfig: invalid vocab_size 0: must be positive"},
		{"hidden size", func(c *Config) { c.HiddenSize = -1 }, ErrInvalid, "hidden_size -1: must be positive"},
		{"intermediate size", func(c *Config) { c.IntermediateSize = 0 }, ErrInvalid, "intermediate_size 0: must be positive"},
		{"layers", func(c *Config) { c.NumHiddenLayers = 0 }, ErrInvalid, "num_hidden_layers 0: must be positive"},
		{"heads", func(c *Config) { c.NumAttentionHeads = 0 }, ErrInvalid, "num_attention_heads 0: must be positive"},
		{"kv heads", func(c *Config) { c.NumKeyValueHeads = 0 }, ErrInvalid, "num_key_value_heads 0: must be positive"},
		{"positions", func(c *Config) { c.MaxPositionEmbeddings = 0 }, ErrInvalid, "max_position_embeddings 0: must be positive"},
		{"head dim", func(c *Config) { c.HeadDim = -64 }, ErrInvalid, "head_dim -64: must be positive"},
		{"heads do not divide hidden size", func(c *Config) { c.NumAttentionHeads, c.NumKeyValueHeads = 24, 4 }, ErrInvalid,
			"num_attention_heads 24: does not divide hidden_size 2048, and head_dim is not set"},
		{"kv heads do not divide heads", func(c *Config) { c.NumKeyValueHeads = 5 }, ErrInvalid,
			"num_key_value_heads 5: does not divide num_attention_heads 32"},
		{"eps", func(c *Config) { c.RMSNormEps = 0 }, ErrInvalid, "rms_norm_eps 0: must be positive"},
		{"eps NaN", func(c *Config) { c.RMSNormEps = math.NaN() }, ErrInvalid, "rms_norm_eps NaN: must be positive"},
		{"rope theta", func(c *Config) { c.RopeTheta = -1 }, ErrInvalid, "rope_theta -1: must be positive"},
		{"bos outside vocab", func(c *Config) { c.BOSTokenID = intPtr(32000) }, ErrInvalid,
			"bos_token_id 32000: outside the vocabulary of 32000 tokens"},
		{"eos outside vocab", func(c *Config) { c.EOSTokenIDs = TokenIDs{2, -1} }, ErrInvalid,
			"eos_token_id -1: outside the vocabulary of 32000 tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tinyLlama()
			tt.change(&c)
			err := c.Validate()
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("Validate() error = %v, want %v", err, tt.wantIs)
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate() error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
	}{
		{"default rope scaling", func(c *Config) { c.RopeScaling = &RopeScaling{RopeType: "default"} }},
		{"llama3 rope scaling", func(c *Config) { c.RopeScaling = llama3Scaling() }},
		{"llama3 rope scaling, older spelling", func(c *Config) {
			c.RopeScaling = llama3Scaling()
			c.RopeScaling.RopeType, c.RopeScaling.Type = "", "llama3"
		}},
		{"llama3 factor 1", func(c *Config) { c.RopeScaling = llama3Scaling(); c.RopeScaling.Factor = 1 }},
		{"head_dim set where heads do not divide hidden size", func(c *Config) { c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim = 24, 4, 64 }},
		{"llama attention bias", func(c *Config) { c.AttentionBias = true }},
		{"no bos and no eos", func(c *Config) { c.BOSTokenID, c.EOSTokenIDs = nil, nil }},
		{"multi-head attention", func(c *Config) { c.NumKeyValueHeads = c.NumAttentionHeads }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tinyLlama()
			tt.change(&c)
			if err := c.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := tinyLlama()
	c.ModelType = "mistral"
	c.VocabSize = 0
	err := c.Validate()
	if !errors.Is(err, ErrUnsupported) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("Validate() error = %v, want both ErrUnsupported and ErrInvalid", err)
	}
	for _, want := range []string{`model_type "mistral"`, "vocab_size 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() error = %v, want it to mention %s", err, want)
		}
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, want := range []Config{tinyLlama(), qwen2(), llama32()} {
		t.Run(fmt.Sprintf("%s %d layers", want.ModelType, want.NumHiddenLayers), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.json")
			if err := want.Save(path); err != nil {
				t.Fatal(err)
			}
			got, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			want.TorchDType = "float32"
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load() after Save() = %+v\nwant %+v", got, want)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := st.Mode().Perm(); perm != 0o644 {
				t.Errorf("file mode = %v, want 0644", perm)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("directory holds %d entries after Save, want 1", len(entries))
			}
		})
	}
}

// TestSaveGolden pins the exact files Save writes for TinyLlama and for
// Llama 3.2 1B, whose rope_scaling it writes with sorted keys as
// transformers does; run with -update to rewrite them.
func TestSaveGolden(t *testing.T) {
	for _, tt := range []struct {
		golden string
		c      Config
	}{
		{"testdata/tinyllama.saved.json", tinyLlama()},
		{"testdata/llama-3.2-1b.saved.json", llama32()},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.json")
			if err := tt.c.Save(path); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(tt.golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(tt.golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Save() wrote\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestSaveFillsArchitectures(t *testing.T) {
	c := qwen2()
	c.Architectures = nil
	path := filepath.Join(t.TempDir(), "config.json")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Architectures, []string{"Qwen2ForCausalLM"}) {
		t.Errorf("Architectures = %q, want [Qwen2ForCausalLM]", got.Architectures)
	}
}

func TestSaveRefusesInvalid(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	c := tinyLlama()
	c.HiddenAct = "gelu"
	err := c.Save(path)
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), path) {
		t.Errorf("Save() error = %v, want ErrUnsupported naming the path", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("directory holds %d entries after a refused Save, want 0", len(entries))
	}
}
