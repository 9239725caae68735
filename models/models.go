// Package models holds the models braid ships inside its binary, each a
// Hugging Face model directory (config.json, tokenizer.json,
// model.safetensors) with its recipe and model card.
package models

import (
	"embed"
	"io/fs"
	"path"
)

// FS holds the shipped model directories.
//
//go:embed countdown
var FS embed.FS

// Countdown is the directory of braid's Countdown reasoning model.
const Countdown = "countdown"

// Has reports whether this build embeds the weights of the model in dir:
// a checkout may hold the recipe before a trained model is committed.
func Has(dir string) bool {
	_, err := fs.Stat(FS, path.Join(dir, "model.safetensors"))
	return err == nil
}
