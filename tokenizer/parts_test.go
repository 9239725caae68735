package tokenizer

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// A tokenizer rebuilt from its parts, as a GGUF file carries them,
// encodes as the original does, under each pre-tokenizer llama.cpp names;
// an unknown pre-tokenizer is refused by name.
func TestFromParts(t *testing.T) {
	orig, err := Train(context.Background(), slices.Values([]string{"hello world, hello braid 1234", "27 22 26 31 53"}), 290, []string{"<|end|>"})
	if err != nil {
		t.Fatal(err)
	}
	p := Parts{Tokens: orig.tokens}
	for _, m := range orig.mergeList {
		p.Merges = append(p.Merges, [2]string{orig.tokens[m[0]], orig.tokens[m[1]]})
	}
	end, _ := orig.SpecialID("<|end|>")
	p.Added = []Added{{ID: end, Special: true}}
	for _, pre := range []string{"gpt-2", "llama-bpe", "qwen2"} {
		p.Pre = pre
		tok, err := FromParts(p)
		if err != nil {
			t.Fatalf("%s: %v", pre, err)
		}
		if tok.PreName() != pre {
			t.Errorf("pre-tokenizer %s reads back as %s", pre, tok.PreName())
		}
		text := "hello world<|end|> 1234"
		if pre == "gpt-2" && !slices.Equal(tok.Encode(text), orig.Encode(text)) {
			t.Errorf("%q encodes to %v, the original to %v", text, tok.Encode(text), orig.Encode(text))
		}
		if ids := tok.Encode(text); tok.Decode(ids) != text || !slices.Contains(ids, end) {
			t.Errorf("%s: %q encodes to %v, which decodes to %q", pre, text, ids, tok.Decode(ids))
		}
	}
	p.Pre = "deepseek-llm"
	if _, err := FromParts(p); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("an unknown pre-tokenizer: %v", err)
	}
}

// Bytes encodes every text one token a byte, round trip exact, with the
// padding tokens matched whole, and refuses a vocabulary smaller than the
// bytes.
func TestBytes(t *testing.T) {
	tok, err := Bytes(151936)
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 151936 {
		t.Fatalf("vocabulary %d", tok.VocabSize())
	}
	for _, s := range []string{"hello world", "héllo\n\t\x00\xff", ""} {
		ids := tok.Encode(s)
		if len(ids) != len(s) || tok.Decode(ids) != s {
			t.Errorf("%q: %d tokens decoding to %q", s, len(ids), tok.Decode(ids))
		}
	}
	if ids := tok.Encode("a<|extra_7|>b"); len(ids) != 3 || ids[1] != 256+7 {
		t.Errorf("a padding token in text: %v", ids)
	}
	if _, err := Bytes(255); err == nil {
		t.Error("a vocabulary of 255 was accepted")
	}
}
