package tokenizer

import (
	"errors"
	"fmt"
)

// Parts are a byte-level BPE tokenizer's pieces as GGUF files carry them
// (tokenizer.ggml.*): every token by id, byte-level encoded as in
// tokenizer.json; the merges by rank; the tokens matched whole before BPE;
// and the pre-tokenizer by llama.cpp's name for it.
type Parts struct {
	Tokens []string
	Merges [][2]string
	Added  []Added
	// Pre is llama.cpp's tokenizer.ggml.pre: "gpt-2" (or "default"),
	// "llama-bpe" (or "llama3") for Llama 3's pattern, "qwen2" for Qwen2's.
	Pre string
}

// Added is a token matched whole in the text before BPE: a control token
// (Special: <|im_end|>, <|eot_id|>) or a user-defined one.
type Added struct {
	ID      int
	Special bool
}

// preByName maps llama.cpp's pre-tokenizer names to braid's patterns.
var preByName = map[string]pattern{
	"gpt-2": gpt2Pattern, "default": gpt2Pattern, "": gpt2Pattern,
	"llama-bpe": llama3Pattern, "llama3": llama3Pattern,
	"qwen2": qwen2Pattern,
}

// PreName is llama.cpp's name for the tokenizer's pre-tokenizer, what a
// GGUF file's tokenizer.ggml.pre says: gpt-2, llama-bpe or qwen2.
func (t *Tokenizer) PreName() string {
	switch t.pattern {
	case llama3Pattern:
		return "llama-bpe"
	case qwen2Pattern:
		return "qwen2"
	}
	return "gpt-2"
}

// FromParts builds the tokenizer of p. A pre-tokenizer braid does not know
// is an error that wraps errors.ErrUnsupported, naming it.
func FromParts(p Parts) (*Tokenizer, error) {
	pat, ok := preByName[p.Pre]
	if !ok {
		return nil, fmt.Errorf("tokenizer: pre-tokenizer %q: %w (braid knows gpt-2, llama-bpe and qwen2)", p.Pre, errors.ErrUnsupported)
	}
	s := spec{pattern: pat, merges: p.Merges, vocab: make([]vocabEntry, len(p.Tokens))}
	for id, tok := range p.Tokens {
		s.vocab[id] = vocabEntry{token: tok, id: id}
	}
	for _, a := range p.Added {
		if a.ID < 0 || a.ID >= len(p.Tokens) {
			return nil, fmt.Errorf("tokenizer: added token id %d outside the %d tokens", a.ID, len(p.Tokens))
		}
		s.added = append(s.added, addedToken{id: a.ID, content: p.Tokens[a.ID], special: a.Special})
	}
	t, err := build(s)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return t, nil
}

// Bytes is the byte-level tokenizer of vocab tokens with no merges: the
// 256 bytes (GPT-2's order), then user-defined tokens "<|extra_N|>" up to
// vocab, so that a model of random weights and any vocabulary's size has a
// tokenizer to travel with (braid export gguf --config, for measuring a
// real model's shape against llama.cpp). Every text encodes to one token a
// byte.
func Bytes(vocab int) (*Tokenizer, error) {
	if vocab < 256 {
		return nil, fmt.Errorf("tokenizer: a byte-level vocabulary needs at least 256 tokens, not %d", vocab)
	}
	p := Parts{Tokens: make([]string, vocab)}
	for i, b := range byteOrder {
		p.Tokens[i] = string(byteRune[b])
	}
	for id := 256; id < vocab; id++ {
		p.Tokens[id] = fmt.Sprintf("<|extra_%d|>", id-256)
		p.Added = append(p.Added, Added{ID: id})
	}
	return FromParts(p)
}
