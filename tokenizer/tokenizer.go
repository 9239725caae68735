package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
)

// A Tokenizer is a byte-level BPE tokenizer, made by [Load], [Parse] or
// [Train]. It is immutable, so any number of goroutines may use one at once.
type Tokenizer struct {
	// tokens spells every id as tokenizer.json does: BPE tokens in the
	// byte-level alphabet ("Ġthe"), added tokens verbatim ("<|im_start|>").
	tokens []string
	// raw holds the bytes each id decodes to.
	raw []string
	// ids inverts tokens.
	ids map[string]int32

	byteID    [256]int32 // the single-byte token of each byte
	merges    map[uint64]merge
	mergeList [][2]int32 // the merges' pairs, by rank
	// wholeWords maps a piece's raw bytes straight to its token when the
	// model sets ignore_merges (Llama 3 does): a piece that is a token
	// is that token, whatever the merges would make of it.
	wholeWords map[string]int32

	pattern  pattern
	added    []addedToken // in file order
	special  map[string]int
	all      *matcher // every added token, for Encode
	ordinary *matcher // the added tokens that are not special

	// normalizer and postProcessor are kept verbatim from the file only to
	// write them back: braid applies neither (see the package comment).
	normalizer, postProcessor json.RawMessage
}

// spec is what a tokenizer is built from, by parsing or training.
type spec struct {
	vocab        []vocabEntry // the model's vocabulary, by id
	merges       [][2]string  // by rank
	added        []addedToken
	pattern      pattern
	ignoreMerges bool

	normalizer, postProcessor json.RawMessage
}

type vocabEntry struct {
	token string
	id    int
}

// build checks s and makes its tokenizer. The ids of the vocabulary and the
// added tokens together must be 0..n-1, so that an id indexes a table and a
// model's embedding has no unused rows.
func build(s spec) (*Tokenizer, error) {
	if len(s.vocab) == 0 {
		return nil, errors.New("model.vocab is empty")
	}
	vocab := make(map[string]int, len(s.vocab))
	for _, e := range s.vocab {
		if _, dup := vocab[e.token]; dup {
			return nil, fmt.Errorf("vocab token %q is listed twice", e.token)
		}
		vocab[e.token] = e.id
	}
	n := len(s.vocab)
	for _, a := range s.added {
		if _, ok := vocab[a.content]; !ok {
			n++
		}
	}
	if n > math.MaxInt32 {
		return nil, fmt.Errorf("%d tokens are too many", n)
	}
	t := &Tokenizer{
		tokens:        make([]string, n),
		raw:           make([]string, n),
		ids:           make(map[string]int32, n),
		merges:        make(map[uint64]merge, len(s.merges)),
		mergeList:     make([][2]int32, 0, len(s.merges)),
		pattern:       s.pattern,
		special:       make(map[string]int),
		normalizer:    s.normalizer,
		postProcessor: s.postProcessor,
	}
	taken := make([]bool, n)
	take := func(id int, token string) error {
		if id < 0 || id >= n {
			return fmt.Errorf("id %d of %q is out of range: the %d tokens must have the ids 0..%d", id, token, n, n-1)
		}
		if taken[id] {
			return fmt.Errorf("id %d is used by both %q and %q", id, t.tokens[id], token)
		}
		taken[id] = true
		t.tokens[id] = token
		t.ids[token] = int32(id)
		return nil
	}
	for _, e := range s.vocab {
		if err := take(e.id, e.token); err != nil {
			return nil, err
		}
		t.raw[e.id], _ = rawBytes(e.token)
	}
	t.added = make([]addedToken, len(s.added))
	seen := make(map[string]bool, len(s.added))
	for i, a := range s.added {
		if a.content == "" {
			return nil, fmt.Errorf("added token %d (id %d) is empty", i, a.id)
		}
		if seen[a.content] {
			return nil, fmt.Errorf("added token %q is listed twice", a.content)
		}
		seen[a.content] = true
		if id, ok := vocab[a.content]; ok {
			if id != a.id {
				return nil, fmt.Errorf("added token %q has id %d but the vocab gives it %d", a.content, a.id, id)
			}
			a.inVocab = true
		} else if err := take(a.id, a.content); err != nil {
			return nil, err
		}
		t.raw[a.id] = a.content
		if a.special {
			t.special[a.content] = a.id
		}
		t.added[i] = a
	}
	for b := range 256 {
		id, ok := vocab[string(byteRune[b])]
		if !ok {
			return nil, fmt.Errorf("the vocab lacks %q, the token of byte 0x%02x: byte-level BPE needs all 256", string(byteRune[b]), b)
		}
		t.byteID[b] = int32(id)
	}
	for rank, m := range s.merges {
		var pair [2]int32
		for i, part := range m {
			id, ok := vocab[part]
			if !ok {
				return nil, fmt.Errorf("merge %d (%q %q): %q is not in the vocab", rank, m[0], m[1], part)
			}
			pair[i] = int32(id)
		}
		id, ok := vocab[m[0]+m[1]]
		if !ok {
			return nil, fmt.Errorf("merge %d (%q %q): the result %q is not in the vocab", rank, m[0], m[1], m[0]+m[1])
		}
		key := pairKey(pair[0], pair[1])
		if prev, dup := t.merges[key]; dup {
			return nil, fmt.Errorf("merge %d (%q %q) repeats merge %d", rank, m[0], m[1], prev.rank)
		}
		t.merges[key] = merge{rank: int32(rank), id: int32(id)}
		t.mergeList = append(t.mergeList, pair)
	}
	if s.ignoreMerges {
		t.wholeWords = make(map[string]int32, len(s.vocab))
		for _, e := range s.vocab {
			// Only tokens spelt in the alphabet can equal a piece.
			if raw, ok := rawBytes(e.token); ok {
				t.wholeWords[raw] = int32(e.id)
			}
		}
	}
	var ordinary []addedToken
	for _, a := range t.added {
		if !a.special {
			ordinary = append(ordinary, a)
		}
	}
	t.all = newMatcher(t.added)
	t.ordinary = newMatcher(ordinary)
	return t, nil
}

// Encode returns the token ids of text. Added tokens, special ones like
// "<|endoftext|>" included, are matched verbatim first and never split;
// the text between them is cut into pieces by the tokenizer's pattern and
// each piece is merged by BPE. Any bytes encode, valid UTF-8 or not, and
// DecodeBytes gives them back.
func (t *Tokenizer) Encode(text string) []int {
	return t.encode(text, t.all)
}

// EncodeOrdinary is Encode without matching special tokens: their text is
// encoded like any other, so untrusted text cannot forge a control token.
// Added tokens that are not special are still matched.
func (t *Tokenizer) EncodeOrdinary(text string) []int {
	return t.encode(text, t.ordinary)
}

func (t *Tokenizer) encode(text string, m *matcher) []int {
	ids := make([]int, 0, len(text)/3+1)
	// Scratch that holds the words of nearly any text, made once per call.
	e := encoder{syms: make([]int32, 0, 64), ranks: make([]merge, 0, 64)}
	for len(text) > 0 {
		start, tok := m.find(text)
		plain := text
		if start >= 0 {
			plain = text[:start]
		}
		for len(plain) > 0 {
			n := t.pattern.piece(plain)
			ids = e.word(t, ids, plain[:n])
			plain = plain[n:]
		}
		if start < 0 {
			break
		}
		ids = append(ids, tok.id)
		text = text[start+len(tok.content):]
	}
	return ids
}

// An encoder holds the scratch space of one Encode call.
type encoder struct {
	syms  []int32
	ranks []merge
	queue *mergeQueue // made for the first long word
}

// word appends the tokens of one piece of text.
func (e *encoder) word(t *Tokenizer, dst []int, piece string) []int {
	if len(piece) == 1 {
		return append(dst, int(t.byteID[piece[0]]))
	}
	if id, ok := t.wholeWords[piece]; ok {
		return append(dst, int(id))
	}
	e.syms = e.syms[:0]
	for i := 0; i < len(piece); i++ {
		e.syms = append(e.syms, t.byteID[piece[i]])
	}
	var merged []int32
	if len(e.syms) < queueFrom {
		merged = mergeNaive(t.merges, e.syms, &e.ranks)
	} else {
		if e.queue == nil {
			e.queue = new(mergeQueue)
		}
		merged = e.queue.merge(t.merges, e.syms)
	}
	for _, id := range merged {
		dst = append(dst, int(id))
	}
	return dst
}

// DecodeBytes returns the bytes that ids stand for. Ids out of range are
// skipped.
func (t *Tokenizer) DecodeBytes(ids []int) []byte {
	var out []byte
	for _, id := range ids {
		if id >= 0 && id < len(t.raw) {
			out = append(out, t.raw[id]...)
		}
	}
	return out
}

// Decode returns the text that ids stand for. A sequence cut inside a
// multi-byte character is not valid UTF-8; Decode returns its bytes as they
// are, where Hugging Face would replace them with U+FFFD.
func (t *Tokenizer) Decode(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		if id >= 0 && id < len(t.raw) {
			b.WriteString(t.raw[id])
		}
	}
	return b.String()
}

// VocabSize returns the number of tokens, added ones included: the ids run
// from 0 to VocabSize()-1.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// TokenID returns the id of a token spelt as in tokenizer.json: in the
// byte-level alphabet for BPE tokens ("Ġthe" for " the"), verbatim for added
// tokens.
func (t *Tokenizer) TokenID(token string) (int, bool) {
	id, ok := t.ids[token]
	return int(id), ok
}

// Token returns the spelling of id as in tokenizer.json, or "" when id is
// out of range. The bytes it stands for are DecodeBytes([]int{id}).
func (t *Tokenizer) Token(id int) string {
	if id < 0 || id >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// SpecialID returns the id of the special token named name, such as
// "<|endoftext|>".
func (t *Tokenizer) SpecialID(name string) (int, bool) {
	id, ok := t.special[name]
	return id, ok
}
