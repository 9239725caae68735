package safetensors_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/braid-dev/braid/model/safetensors"
)

func Example() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.safetensors")

	// "format": "pt" lets Hugging Face transformers load the weights.
	tensors := []safetensors.Tensor{
		{Name: "model.norm.weight", Shape: []int{4}, Data: []float32{1, 1, 1, 1}},
		{Name: "model.embed_tokens.weight", Shape: []int{2, 4}, Data: []float32{0, 1, 2, 3, 4, 5, 6, 7}},
	}
	if err := safetensors.WriteFile(path, tensors, map[string]string{"format": "pt"}); err != nil {
		log.Fatal(err)
	}

	f, err := safetensors.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	for _, name := range f.Names() {
		info, _ := f.Info(name)
		values, _ := f.Float32(name)
		fmt.Println(name, info.DType, info.Shape, values)
	}
	fmt.Println(f.Metadata())
	// Output:
	// model.embed_tokens.weight F32 [2 4] [0 1 2 3 4 5 6 7]
	// model.norm.weight F32 [4] [1 1 1 1]
	// map[format:pt]
}
