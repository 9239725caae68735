package hfconfig_test

import (
	"fmt"
	"log"

	"github.com/braid-dev/braid/model/hfconfig"
)

func ExampleParse() {
	c, err := hfconfig.Parse([]byte(`{
		"model_type": "qwen2",
		"vocab_size": 151936,
		"hidden_size": 896,
		"intermediate_size": 4864,
		"num_hidden_layers": 24,
		"num_attention_heads": 14,
		"num_key_value_heads": 2,
		"max_position_embeddings": 32768,
		"rope_theta": 1000000.0,
		"eos_token_id": [151645, 151643]
	}`))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.AttentionHeadDim(), c.QKVBias(), c.HiddenAct, c.RMSNormEps, c.EOSTokenIDs)
	// Output: 64 true silu 1e-06 [151645 151643]
}

func ExampleParse_llama3() {
	c, err := hfconfig.Parse([]byte(`{
		"model_type": "llama",
		"vocab_size": 128256,
		"hidden_size": 2048,
		"intermediate_size": 8192,
		"num_hidden_layers": 16,
		"num_attention_heads": 32,
		"num_key_value_heads": 8,
		"max_position_embeddings": 131072,
		"rope_theta": 500000.0,
		"rope_scaling": {
			"factor": 32.0,
			"high_freq_factor": 4.0,
			"low_freq_factor": 1.0,
			"original_max_position_embeddings": 8192,
			"rope_type": "llama3"
		}
	}`))
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		log.Fatal(err)
	}
	r := c.RopeScaling
	fmt.Println(r.Kind(), r.Factor, r.LowFreqFactor, r.HighFreqFactor, r.OriginalMaxPositionEmbeddings)
	// Output: llama3 32 1 4 8192
}

func ExampleConfig_Validate() {
	c, err := hfconfig.Parse([]byte(`{
		"model_type": "llama",
		"vocab_size": 128256,
		"hidden_size": 2048,
		"intermediate_size": 8192,
		"num_hidden_layers": 16,
		"num_attention_heads": 32,
		"num_key_value_heads": 8,
		"max_position_embeddings": 131072,
		"rope_scaling": {"factor": 32.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0, "rope_type": "llama3"}
	}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Validate())
	// Output:
	// hfconfig: invalid rope_scaling.high_freq_factor 1: must be greater than low_freq_factor 4
	// hfconfig: invalid rope_scaling.original_max_position_embeddings 0: must be positive
}
