package hfconfig

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse checks that Parse and Validate never panic, and that a config
// they accept survives what Save writes: encoding it and parsing it again
// gives it back, apart from the dtype and architecture Save fills in.
func FuzzParse(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.json")
	for _, path := range paths {
		if data, err := os.ReadFile(path); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"num_attention_heads": 8, "eos_token_id": [1, 2], "rope_scaling": {"type": "default"}}`))
	f.Add([]byte(`{"model_type": "llama", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
		"num_attention_heads": 2, "max_position_embeddings": 16, "rope_scaling": {"type": "llama3", "factor": 1e-3,
		"low_freq_factor": 0.5, "high_freq_factor": 2.5e300, "original_max_position_embeddings": 4}}`))
	f.Add([]byte(`{"model_type": "qwen2", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
		"num_attention_heads": 2, "max_position_embeddings": 16, "rope_scaling": {"rope_type": "llama3", "factor": 8,
		"low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8}}`))
	f.Add([]byte(`{"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}`))
	f.Add([]byte(`null`))

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		c.AttentionHeadDim()
		if c.Validate() != nil {
			return
		}
		encoded, err := c.encode("float32")
		if err != nil {
			t.Fatalf("encode() of a valid config: %v", err)
		}
		got, err := Parse(encoded)
		if err != nil {
			t.Fatalf("Parse() of encoded config: %v\n%s", err, encoded)
		}
		want := c
		want.TorchDType = "float32"
		if len(want.Architectures) == 0 {
			want.Architectures = []string{causalLMArchitecture(c.ModelType)}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip gave %+v\nwant %+v\nvia %s", got, want, encoded)
		}
	})
}
