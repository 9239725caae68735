package tokenizer

import (
	"cmp"
	"slices"
	"strings"
)

// An addedToken is a token outside BPE, from tokenizer.json's added_tokens:
// it is matched verbatim in the input and never split. Special ones (control
// tokens like "<|endoftext|>") are matched only by Encode; the others are
// ordinary vocabulary that BPE cannot reach, and both Encode and
// EncodeOrdinary match them, as in Hugging Face tokenizers.
type addedToken struct {
	id      int
	content string
	special bool
	// normalized is kept only to write the file back as it was: braid
	// applies no normalizer.
	normalized bool
	// inVocab is whether the model's vocab lists the token too, as GPT-2's
	// lists "<|endoftext|>".
	inVocab bool
}

// A matcher finds added tokens in text, leftmost first and the longest at a
// position, as Hugging Face's Aho-Corasick matcher does. The lists are
// short (a few hundred tokens at most), so a table by first byte suffices.
type matcher struct {
	byFirst [256][]addedToken // by first byte, longest first
	count   int
}

func newMatcher(tokens []addedToken) *matcher {
	m := &matcher{count: len(tokens)}
	for _, a := range tokens {
		m.byFirst[a.content[0]] = append(m.byFirst[a.content[0]], a)
	}
	for _, list := range m.byFirst {
		slices.SortStableFunc(list, func(a, b addedToken) int {
			return cmp.Compare(len(b.content), len(a.content))
		})
	}
	return m
}

// find returns the first added token in s and where it starts, or start -1.
func (m *matcher) find(s string) (start int, tok addedToken) {
	if m.count == 0 {
		return -1, tok
	}
	for i := 0; i < len(s); i++ {
		for _, a := range m.byFirst[s[i]] {
			if strings.HasPrefix(s[i:], a.content) {
				return i, a
			}
		}
	}
	return -1, tok
}
