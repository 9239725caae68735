package hfconfig

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/braid-dev/braid/internal/atomicfile"
)

// Save validates c and writes it to path as indented JSON with sorted keys,
// as transformers writes configs, so that transformers can load the model
// braid saves beside it. It writes "torch_dtype": "float32" whatever
// TorchDType holds, because braid saves weights as F32 and transformers
// would otherwise cast them on load; it writes the CausalLM architecture of
// the model type when Architectures is empty. The file is written to a
// temporary file and renamed into place, so a failure leaves no partial
// config.
func (c Config) Save(path string) error { return c.SaveAs(path, "float32") }

// SaveAs is Save for weights of another dtype, written as "torch_dtype"
// ("float16" for F16 weights).
func (c Config) SaveAs(path, torchDType string) error {
	data, err := c.encode(torchDType)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, data)
}

// encode returns the bytes Save writes.
func (c Config) encode(torchDType string) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c.TorchDType = torchDType
	if len(c.Architectures) == 0 {
		c.Architectures = []string{causalLMArchitecture(c.ModelType)}
	}
	compact, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("hfconfig: %w", err)
	}
	// Marshaling a map sorts its keys, those of nested objects such as
	// rope_scaling too; json.Number keeps each number as it was written.
	var fields map[string]any
	d := json.NewDecoder(bytes.NewReader(compact))
	d.UseNumber()
	if err := d.Decode(&fields); err != nil {
		return nil, fmt.Errorf("hfconfig: %w", err)
	}
	out, err := json.MarshalIndent(fields, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("hfconfig: %w", err)
	}
	return append(out, '\n'), nil
}
