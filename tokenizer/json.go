package tokenizer

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/braid-dev/braid/internal/atomicfile"
)

// fileJSON is Hugging Face's tokenizer.json, its fields in the order the
// tokenizers library writes them.
type fileJSON struct {
	Version       json.RawMessage  `json:"version"` // ignored when read
	Truncation    json.RawMessage  `json:"truncation"`
	Padding       json.RawMessage  `json:"padding"`
	AddedTokens   []addedTokenJSON `json:"added_tokens"`
	Normalizer    json.RawMessage  `json:"normalizer"`
	PreTokenizer  json.RawMessage  `json:"pre_tokenizer"`
	PostProcessor json.RawMessage  `json:"post_processor"`
	Decoder       json.RawMessage  `json:"decoder"`
	Model         modelJSON        `json:"model"`
}

type addedTokenJSON struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	Lstrip     bool   `json:"lstrip"`
	Rstrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type modelJSON struct {
	Type                    string     `json:"type"`
	Dropout                 *float64   `json:"dropout"`
	UnkToken                *string    `json:"unk_token"` // ignored: every byte has a token
	ContinuingSubwordPrefix *string    `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string    `json:"end_of_word_suffix"`
	FuseUnk                 bool       `json:"fuse_unk"`
	ByteFallback            bool       `json:"byte_fallback"`
	IgnoreMerges            bool       `json:"ignore_merges"`
	Vocab                   vocabJSON  `json:"vocab"`
	Merges                  mergesJSON `json:"merges"`
}

// vocabJSON is model.vocab, an object from token to id; it is written in id
// order, as Hugging Face writes it.
type vocabJSON []vocabEntry

func (v *vocabJSON) UnmarshalJSON(data []byte) error {
	var m map[string]int
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	*v = make(vocabJSON, 0, len(m))
	for token, id := range m {
		*v = append(*v, vocabEntry{token, id})
	}
	// By id, so that checks report the same first error every time.
	slices.SortFunc(*v, func(a, b vocabEntry) int {
		return cmp.Or(cmp.Compare(a.id, b.id), strings.Compare(a.token, b.token))
	})
	return nil
}

func (v vocabJSON) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	buf.WriteByte('{')
	for i, e := range v {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := enc.Encode(e.token); err != nil {
			return nil, err
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
		fmt.Fprintf(&buf, ":%d", e.id)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// mergesJSON is model.merges, read from either form Hugging Face writes:
// strings "a b" (the classic form) or pairs ["a", "b"].
type mergesJSON [][2]string

func (m *mergesJSON) UnmarshalJSON(data []byte) error {
	var lines []string
	if err := json.Unmarshal(data, &lines); err == nil {
		*m = make(mergesJSON, len(lines))
		for i, line := range lines {
			left, right, ok := strings.Cut(line, " ")
			if !ok || strings.Contains(right, " ") {
				return fmt.Errorf("merge %d %q is not two tokens separated by one space", i, line)
			}
			(*m)[i] = [2]string{left, right}
		}
		return nil
	}
	var pairs [][]string
	if err := json.Unmarshal(data, &pairs); err != nil {
		return errors.New(`merges must be a list of strings "a b" or of pairs ["a", "b"]`)
	}
	*m = make(mergesJSON, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return fmt.Errorf("merge %d has %d tokens, not 2", i, len(p))
		}
		(*m)[i] = [2]string{p[0], p[1]}
	}
	return nil
}

// MarshalJSON writes the string form, which every version of Hugging Face
// tokenizers reads, unless a token holds a space (only possible in tokens
// outside the byte-level alphabet); then it writes pairs.
func (m mergesJSON) MarshalJSON() ([]byte, error) {
	for _, p := range m {
		if strings.Contains(p[0], " ") || strings.Contains(p[1], " ") {
			return json.Marshal([][2]string(m))
		}
	}
	lines := make([]string, len(m))
	for i, p := range m {
		lines[i] = p[0] + " " + p[1]
	}
	return json.Marshal(lines)
}

// preTokenizerJSON reads the pre-tokenizers braid knows of: ByteLevel,
// Split and Sequence.
type preTokenizerJSON struct {
	Type           string             `json:"type"`
	AddPrefixSpace bool               `json:"add_prefix_space"`
	UseRegex       *bool              `json:"use_regex"` // true when absent
	Pretokenizers  []preTokenizerJSON `json:"pretokenizers"`
	Pattern        *struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
	Behavior string `json:"behavior"`
	Invert   bool   `json:"invert"`
}

// The pre-tokenizers and decoder braid writes.
type (
	byteLevelJSON struct {
		Type           string `json:"type"`
		AddPrefixSpace bool   `json:"add_prefix_space"`
		TrimOffsets    bool   `json:"trim_offsets"`
		UseRegex       bool   `json:"use_regex"`
	}
	splitJSON struct {
		Type    string `json:"type"`
		Pattern struct {
			Regex string `json:"Regex"`
		} `json:"pattern"`
		Behavior string `json:"behavior"`
		Invert   bool   `json:"invert"`
	}
	sequenceJSON struct {
		Type          string `json:"type"`
		Pretokenizers []any  `json:"pretokenizers"`
	}
)

// Load reads a Hugging Face tokenizer.json file.
func Load(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: load %s: %w", path, err)
	}
	return t, nil
}

// Parse reads the contents of a Hugging Face tokenizer.json file. A file
// that needs a feature braid lacks is an error that wraps
// errors.ErrUnsupported; a malformed file is an error that does not.
func Parse(data []byte) (*Tokenizer, error) {
	t, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return t, nil
}

func parse(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	m := f.Model
	switch {
	case m.Type != "BPE" && m.Type != "":
		return nil, fmt.Errorf("model type %q: %w (only BPE)", m.Type, errors.ErrUnsupported)
	case m.Dropout != nil && *m.Dropout != 0:
		return nil, fmt.Errorf("BPE dropout %g: %w", *m.Dropout, errors.ErrUnsupported)
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return nil, fmt.Errorf("continuing_subword_prefix %q: %w", *m.ContinuingSubwordPrefix, errors.ErrUnsupported)
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return nil, fmt.Errorf("end_of_word_suffix %q: %w", *m.EndOfWordSuffix, errors.ErrUnsupported)
	case m.ByteFallback:
		return nil, fmt.Errorf("byte_fallback: %w (byte-level BPE needs none)", errors.ErrUnsupported)
	}
	s := spec{
		vocab:         m.Vocab,
		merges:        m.Merges,
		ignoreMerges:  m.IgnoreMerges,
		postProcessor: nullToNil(f.PostProcessor),
	}
	var err error
	if s.pattern, err = parsePreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if s.normalizer, err = parseNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	if err := checkDecoder(f.Decoder); err != nil {
		return nil, err
	}
	for _, a := range f.AddedTokens {
		if a.SingleWord || a.Lstrip || a.Rstrip {
			return nil, fmt.Errorf("added token %q with single_word, lstrip or rstrip: %w", a.Content, errors.ErrUnsupported)
		}
		s.added = append(s.added, addedToken{id: a.ID, content: a.Content, special: a.Special, normalized: a.Normalized})
	}
	return build(s)
}

// parsePreTokenizer finds the pattern of a byte-level pre-tokenizer: a
// ByteLevel alone splits by GPT-2's regex, and a Split by a regex followed by
// a ByteLevel that splits no more splits by that regex.
func parsePreTokenizer(raw json.RawMessage) (pattern, error) {
	if nullToNil(raw) == nil {
		return 0, fmt.Errorf("pre_tokenizer is null: %w (only byte-level BPE, whose pre_tokenizer is ByteLevel)", errors.ErrUnsupported)
	}
	var p preTokenizerJSON
	if err := json.Unmarshal(raw, &p); err != nil {
		return 0, fmt.Errorf("pre_tokenizer: %w", err)
	}
	switch {
	case p.Type == "ByteLevel":
		if err := checkByteLevel(p, true); err != nil {
			return 0, err
		}
		return gpt2Pattern, nil
	case p.Type == "Sequence" && len(p.Pretokenizers) == 2 &&
		p.Pretokenizers[0].Type == "Split" && p.Pretokenizers[1].Type == "ByteLevel":
		split := p.Pretokenizers[0]
		if split.Pattern == nil || split.Pattern.Regex == nil {
			return 0, fmt.Errorf("pre_tokenizer Split by a string, not a Regex: %w", errors.ErrUnsupported)
		}
		re := *split.Pattern.Regex
		pat, ok := patternOf(re)
		if !ok {
			return 0, fmt.Errorf("pre_tokenizer Split pattern %q: %w (braid knows GPT-2's, Llama 3's and Qwen2's)", re, errors.ErrUnsupported)
		}
		if split.Behavior != "Isolated" || split.Invert {
			return 0, fmt.Errorf("pre_tokenizer Split with behavior %q, invert %t: %w (only Isolated)", split.Behavior, split.Invert, errors.ErrUnsupported)
		}
		if err := checkByteLevel(p.Pretokenizers[1], false); err != nil {
			return 0, err
		}
		return pat, nil
	case p.Type == "Sequence":
		var types []string
		for _, q := range p.Pretokenizers {
			types = append(types, q.Type)
		}
		return 0, fmt.Errorf("pre_tokenizer Sequence %v: %w (only [Split ByteLevel])", types, errors.ErrUnsupported)
	}
	return 0, fmt.Errorf("pre_tokenizer %q: %w (only ByteLevel, or Split then ByteLevel)", p.Type, errors.ErrUnsupported)
}

// checkByteLevel checks that a ByteLevel pre-tokenizer adds no prefix space
// and applies GPT-2's regex exactly when wantRegex says.
func checkByteLevel(p preTokenizerJSON, wantRegex bool) error {
	if p.AddPrefixSpace {
		return fmt.Errorf("ByteLevel add_prefix_space: %w", errors.ErrUnsupported)
	}
	useRegex := p.UseRegex == nil || *p.UseRegex
	if useRegex != wantRegex {
		return fmt.Errorf("ByteLevel use_regex %t here: %w", useRegex, errors.ErrUnsupported)
	}
	return nil
}

// parseNormalizer accepts no normalizer, or Qwen2's NFC, which braid keeps
// but does not apply: text already in NFC, as nearly all text is, encodes
// the same.
func parseNormalizer(raw json.RawMessage) (json.RawMessage, error) {
	raw = nullToNil(raw)
	if raw == nil {
		return nil, nil
	}
	var n struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	if n.Type != "NFC" {
		return nil, fmt.Errorf("normalizer %q: %w (only NFC)", n.Type, errors.ErrUnsupported)
	}
	return raw, nil
}

func checkDecoder(raw json.RawMessage) error {
	raw = nullToNil(raw)
	if raw == nil {
		return nil
	}
	var d struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("decoder: %w", err)
	}
	if d.Type != "ByteLevel" {
		return fmt.Errorf("decoder %q: %w (only ByteLevel)", d.Type, errors.ErrUnsupported)
	}
	return nil
}

// nullToNil returns nil for an absent or null JSON value.
func nullToNil(raw json.RawMessage) json.RawMessage {
	if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" {
		return nil
	}
	return raw
}

// MarshalJSON returns t as a Hugging Face tokenizer.json, indented as the
// tokenizers library writes it.
func (t *Tokenizer) MarshalJSON() ([]byte, error) {
	f := fileJSON{
		Version:       json.RawMessage(`"1.0"`),
		Normalizer:    t.normalizer,
		PostProcessor: t.postProcessor,
		AddedTokens:   []addedTokenJSON{},
		Model: modelJSON{
			Type:         "BPE",
			IgnoreMerges: t.wholeWords != nil,
			Merges:       make(mergesJSON, len(t.mergeList)),
		},
	}
	inVocab := make([]bool, len(t.tokens))
	for i := range inVocab {
		inVocab[i] = true
	}
	for _, a := range t.added {
		inVocab[a.id] = a.inVocab
		f.AddedTokens = append(f.AddedTokens, addedTokenJSON{ID: a.id, Content: a.content, Normalized: a.normalized, Special: a.special})
	}
	for id, token := range t.tokens {
		if inVocab[id] {
			f.Model.Vocab = append(f.Model.Vocab, vocabEntry{token, id})
		}
	}
	for i, p := range t.mergeList {
		f.Model.Merges[i] = [2]string{t.tokens[p[0]], t.tokens[p[1]]}
	}
	byteLevel := byteLevelJSON{Type: "ByteLevel", TrimOffsets: true, UseRegex: true}
	var pre any = byteLevel
	if t.pattern != gpt2Pattern {
		split := splitJSON{Type: "Split", Behavior: "Isolated"}
		split.Pattern.Regex = patternRegex[t.pattern]
		byteLevel.UseRegex = false
		pre = sequenceJSON{Type: "Sequence", Pretokenizers: []any{split, byteLevel}}
	}
	var err error
	if f.PreTokenizer, err = json.Marshal(pre); err != nil {
		return nil, err
	}
	// Hugging Face's ByteLevel decoder ignores these flags; they are GPT-2's.
	f.Decoder, err = json.Marshal(byteLevelJSON{Type: "ByteLevel", AddPrefixSpace: true, TrimOffsets: true, UseRegex: true})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Save writes t to path as a Hugging Face tokenizer.json. It writes a
// temporary file and renames it, so path never holds half a tokenizer.
func (t *Tokenizer) Save(path string) error {
	data, err := t.MarshalJSON()
	if err != nil {
		return fmt.Errorf("tokenizer: save %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, data); err != nil {
		return fmt.Errorf("tokenizer: save %s: %w", path, err)
	}
	return nil
}
