package model

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
)

// TokenizerFile is the tokenizer beside ConfigFile and WeightsFile in the
// model directories braid runs and ships.
const TokenizerFile = "tokenizer.json"

// TokenizerConfigFile is where a Hugging Face model directory keeps its
// chat template, when it has one.
const TokenizerConfigFile = "tokenizer_config.json"

// Fingerprint identifies the model in directory dir of fsys by the bytes
// of its config, tokenizer and weights files, and of its tokenizer config
// (the chat template) where it has one: two directories with one
// fingerprint hold the same model, wherever they lie. A run that must not
// mix models (an evaluation, a reinforcement-learning run's reference)
// records it. It is of the files, not of braid's structures, so it stays
// the same across braid's versions.
func Fingerprint(fsys fs.FS, dir string) (string, error) {
	h := sha256.New()
	for _, name := range []string{ConfigFile, TokenizerFile, WeightsFile, TokenizerConfigFile} {
		f, err := fsys.Open(path.Join(dir, name))
		if name == TokenizerConfigFile && errors.Is(err, fs.ErrNotExist) {
			break // optional, and absent leaves the hash as it was before it counted
		}
		if err != nil {
			return "", fmt.Errorf("fingerprint the model: %w", err)
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("fingerprint the model: %s: %w", path.Join(dir, name), err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// FingerprintFile is Fingerprint of a model kept in one file (a GGUF
// file): the hash of its bytes.
func FingerprintFile(fsys fs.FS, name string) (string, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return "", fmt.Errorf("fingerprint the model: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("fingerprint the model: %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
