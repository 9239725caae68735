package gguf

import (
	"fmt"
	"strings"

	"github.com/braid-dev/braid/tokenizer"
	"github.com/braid-dev/braid/tokenizer/chat"
)

// llama.cpp's token types.
const (
	tokenControl     = 3
	tokenUserDefined = 4
)

// Tokenizer builds the file's byte-level BPE tokenizer (tokenizer.ggml.model
// "gpt2", as Llama 3's, Qwen2's and braid's own files are): its tokens,
// merges and pre-tokenizer, control and user-defined tokens matched whole.
// SentencePiece vocabularies ("llama", Llama 2's) are refused by name.
func (f *File) Tokenizer() (*tokenizer.Tokenizer, error) {
	if m := f.String("tokenizer.ggml.model"); m != "gpt2" {
		return nil, fmt.Errorf("gguf: tokenizer.ggml.model %q: braid reads byte-level BPE (gpt2)", m)
	}
	tokens := f.Strings("tokenizer.ggml.tokens")
	if len(tokens) == 0 {
		return nil, fmt.Errorf("gguf: tokenizer.ggml.tokens is %s: want the vocabulary's tokens", describe(f.Meta["tokenizer.ggml.tokens"]))
	}
	p := tokenizer.Parts{Tokens: tokens, Pre: f.String("tokenizer.ggml.pre")}
	for i, m := range f.Strings("tokenizer.ggml.merges") {
		left, right, ok := strings.Cut(m, " ")
		if !ok {
			return nil, fmt.Errorf("gguf: merge %d %q is not two tokens and a space", i, m)
		}
		p.Merges = append(p.Merges, [2]string{left, right})
	}
	if types, ok := f.Meta["tokenizer.ggml.token_type"].([]any); ok {
		if len(types) != len(tokens) {
			return nil, fmt.Errorf("gguf: %d token types for %d tokens", len(types), len(tokens))
		}
		for id, v := range types {
			switch typ, _ := asInt(v); typ {
			case tokenControl, tokenUserDefined:
				p.Added = append(p.Added, tokenizer.Added{ID: id, Special: typ == tokenControl})
			}
		}
	}
	t, err := tokenizer.FromParts(p)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	return t, nil
}

// ChatTemplate is the file's chat template (tokenizer.chat_template), with
// the texts of its beginning- and end-of-sequence tokens for the
// template's bos_token and eos_token; nil for a file that carries none,
// as base models' files do.
func (f *File) ChatTemplate() (*chat.Template, error) {
	src := f.String("tokenizer.chat_template")
	if src == "" {
		return nil, nil
	}
	tokens := f.Strings("tokenizer.ggml.tokens")
	text := func(key string) string {
		if id, ok := asInt(f.Meta[key]); ok && id >= 0 && id < int64(len(tokens)) {
			return tokens[id]
		}
		return ""
	}
	t, err := chat.Parse(src, text("tokenizer.ggml.bos_token_id"), text("tokenizer.ggml.eos_token_id"))
	if err != nil {
		return nil, fmt.Errorf("gguf: tokenizer.chat_template: %w", err)
	}
	return t, nil
}
