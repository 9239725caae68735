// Package hfconfig reads and writes the config.json of Hugging Face Llama
// and Qwen2 models: the hyperparameters braid needs to build such a model,
// under the names transformers gives them.
package hfconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

var (
	// ErrInvalid is matched by Validate's errors for values that contradict
	// each other or make no sense.
	ErrInvalid = errors.New("hfconfig: invalid")
	// ErrUnsupported is matched by Validate's errors for valid configs of
	// models braid cannot run.
	ErrUnsupported = errors.New("hfconfig: unsupported")
)

// Config is a model's config.json. Parse fills in the defaults transformers
// applies to a field the file leaves out, where the field doc names one.
type Config struct {
	ModelType     string   `json:"model_type"`              // "llama" or "qwen2"
	Architectures []string `json:"architectures,omitempty"` // e.g. ["LlamaForCausalLM"]

	VocabSize             int `json:"vocab_size"`
	HiddenSize            int `json:"hidden_size"`
	IntermediateSize      int `json:"intermediate_size"`
	NumHiddenLayers       int `json:"num_hidden_layers"`
	NumAttentionHeads     int `json:"num_attention_heads"`
	NumKeyValueHeads      int `json:"num_key_value_heads"` // default NumAttentionHeads
	MaxPositionEmbeddings int `json:"max_position_embeddings"`
	// HeadDim is 0 when the config leaves it out, as Qwen2 configs do; see
	// AttentionHeadDim. Keeping it unset rather than filled in lets Save
	// write back a file that older transformers versions read the same way.
	HeadDim int `json:"head_dim,omitempty"`

	RMSNormEps  float64      `json:"rms_norm_eps"` // default 1e-6
	RopeTheta   float64      `json:"rope_theta"`   // default 10000
	RopeScaling *RopeScaling `json:"rope_scaling"` // nil for plain RoPE
	HiddenAct   string       `json:"hidden_act"`   // default "silu"

	TieWordEmbeddings bool `json:"tie_word_embeddings"`
	// AttentionBias is Llama's switch for biases on the q, k, v and o
	// projections. Qwen2 has q, k and v biases whatever it says; see QKVBias.
	AttentionBias bool `json:"attention_bias"`
	// MLPBias and UseSlidingWindow change the architecture in ways braid
	// does not implement; they are read so that Validate can refuse them.
	MLPBias          bool `json:"mlp_bias,omitempty"`
	UseSlidingWindow bool `json:"use_sliding_window,omitempty"`

	// IndexNHeads, IndexHeadDim and IndexTopK shape the lightning indexer
	// of DeepSeek's sparse attention, under DeepSeek-V3.2's names; absent
	// (0) for a model without one.
	IndexNHeads  int `json:"index_n_heads,omitempty"`
	IndexHeadDim int `json:"index_head_dim,omitempty"`
	IndexTopK    int `json:"index_topk,omitempty"`

	BOSTokenID  *int     `json:"bos_token_id,omitempty"`
	EOSTokenIDs TokenIDs `json:"eos_token_id,omitempty"`
	// TorchDType is the dtype of the weights the config ships with, such as
	// "bfloat16". Newer transformers versions call it "dtype"; Parse reads
	// either.
	TorchDType string `json:"torch_dtype,omitempty"`
}

// RopeScaling is a config's rope_scaling entry. braid implements the
// "default" type, plain RoPE, and "llama3", the rescaled frequencies of
// Llama 3.1 and 3.2, so it keeps the type and llama3's parameters; a
// parameter the entry leaves out reads as zero, which Validate refuses for
// llama3.
type RopeScaling struct {
	RopeType string `json:"rope_type,omitempty"`
	// Type is the older spelling of RopeType.
	Type string `json:"type,omitempty"`

	Factor                        float64 `json:"factor,omitempty"`
	LowFreqFactor                 float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor                float64 `json:"high_freq_factor,omitempty"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings,omitempty"`
}

// MarshalJSON writes the factors as floats, with a decimal point even when
// whole ("factor": 32.0), as transformers writes them: transformers warns
// of a factor it reads as an int.
func (r RopeScaling) MarshalJSON() ([]byte, error) {
	float := func(v float64) json.Number {
		if v == 0 {
			return "" // omitted, as the field is left out
		}
		s := strconv.FormatFloat(v, 'g', -1, 64)
		// NaN and ±Inf stay invalid numbers, which Marshal refuses as it
		// refuses them as float64s.
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
		return json.Number(s)
	}
	return json.Marshal(struct {
		RopeType                      string      `json:"rope_type,omitempty"`
		Type                          string      `json:"type,omitempty"`
		Factor                        json.Number `json:"factor,omitempty"`
		LowFreqFactor                 json.Number `json:"low_freq_factor,omitempty"`
		HighFreqFactor                json.Number `json:"high_freq_factor,omitempty"`
		OriginalMaxPositionEmbeddings int         `json:"original_max_position_embeddings,omitempty"`
	}{r.RopeType, r.Type, float(r.Factor), float(r.LowFreqFactor), float(r.HighFreqFactor), r.OriginalMaxPositionEmbeddings})
}

// Kind returns the scaling's type under either spelling, RopeType first.
func (r RopeScaling) Kind() string {
	if r.RopeType != "" {
		return r.RopeType
	}
	return r.Type
}

// TokenIDs holds a token id field that configs write either as one id or as
// a list of ids, as eos_token_id is for models with several end tokens.
type TokenIDs []int

// UnmarshalJSON accepts an id, a list of ids or null. An empty list reads
// as nil, like null, so that a config reads the same after Save omits it.
func (ids *TokenIDs) UnmarshalJSON(data []byte) error {
	var list []int
	if err := json.Unmarshal(data, &list); err == nil {
		*ids = nil
		if len(list) > 0 {
			*ids = list
		}
		return nil
	}
	var id int
	if err := json.Unmarshal(data, &id); err != nil {
		return fmt.Errorf("want a token id or a list of token ids, found %.40s", data)
	}
	*ids = TokenIDs{id}
	return nil
}

// MarshalJSON writes a single id as a number, as transformers does, and
// several as a list.
func (ids TokenIDs) MarshalJSON() ([]byte, error) {
	if len(ids) == 1 {
		return json.Marshal(ids[0])
	}
	return json.Marshal([]int(ids))
}

// AttentionHeadDim returns the width of one attention head: HeadDim when the
// config sets it, else HiddenSize / NumAttentionHeads as transformers
// computes it.
func (c Config) AttentionHeadDim() int {
	if c.HeadDim != 0 || c.NumAttentionHeads == 0 {
		return c.HeadDim
	}
	return c.HiddenSize / c.NumAttentionHeads
}

// QKVBias reports whether the q, k and v projections have biases: always
// for Qwen2, and for Llama when attention_bias is set (which also gives the
// o projection one).
func (c Config) QKVBias() bool {
	return c.ModelType == "qwen2" || c.AttentionBias
}

// maxFileSize caps what Read reads. Configs are a few kilobytes; the cap
// bounds what a corrupt or hostile file, or one that is not a config at
// all, makes Read allocate and Parse decode.
const maxFileSize = 1 << 20

// Load reads and parses the config.json at path. It does not validate it.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	c, err := Read(f)
	if err != nil {
		return Config{}, fmt.Errorf("read %s: %w", path, err)
	}
	return c, nil
}

// Read reads a config.json from r and parses it, as Parse does. A file
// over 1 MiB is an error.
func Read(r io.Reader) (Config, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return Config{}, err
	}
	if len(data) > maxFileSize {
		return Config{}, fmt.Errorf("hfconfig: config is over %d bytes; a config.json is a few kilobytes", maxFileSize)
	}
	return Parse(data)
}

// Parse parses a config.json and fills in defaults. It ignores fields braid
// does not use and does not validate: call Validate before building a model.
func Parse(data []byte) (Config, error) {
	// The fields of file shadow the same-named fields of the embedded plain
	// config, so they catch the values and tell an absent field (nil) from
	// a zero one.
	type plain Config
	var file struct {
		plain
		NumKeyValueHeads *int     `json:"num_key_value_heads"`
		RMSNormEps       *float64 `json:"rms_norm_eps"`
		RopeTheta        *float64 `json:"rope_theta"`
		HiddenAct        *string  `json:"hidden_act"`
		DType            string   `json:"dtype"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			// The error names file's fields and type, which mean nothing
			// to a caller; say it in the config's own terms.
			if typeErr.Field == "" {
				return Config{}, fmt.Errorf("hfconfig: config is a JSON %s, want an object", typeErr.Value)
			}
			return Config{}, fmt.Errorf("hfconfig: %s: cannot read JSON %s as %s",
				strings.TrimPrefix(typeErr.Field, "plain."), typeErr.Value, typeErr.Type)
		}
		return Config{}, fmt.Errorf("hfconfig: %w", err)
	}
	c := Config(file.plain)
	c.NumKeyValueHeads = valueOr(file.NumKeyValueHeads, c.NumAttentionHeads)
	c.RMSNormEps = valueOr(file.RMSNormEps, 1e-6)
	c.RopeTheta = valueOr(file.RopeTheta, 10000)
	c.HiddenAct = valueOr(file.HiddenAct, "silu")
	if c.TorchDType == "" {
		c.TorchDType = file.DType
	}
	return c, nil
}

func valueOr[T any](p *T, otherwise T) T {
	if p == nil {
		return otherwise
	}
	return *p
}
