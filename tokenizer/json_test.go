package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSaveLoad(t *testing.T) {
	inputs := loadHFGolden(t).Encode.Inputs
	withExtras, err := editFixture(t, "merge_order.json", func(f map[string]any) {
		f["normalizer"] = map[string]any{"type": "NFC"}
		f["post_processor"] = map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
		// GPT-2 lists its special token in the vocab as well.
		f["model"].(map[string]any)["vocab"].(map[string]any)["<|endoftext|>"] = 262
		f["added_tokens"] = append(f["added_tokens"].([]any), map[string]any{"id": 263, "content": "[tool]", "normalized": true})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tk   *Tokenizer
	}{
		{"trained", trainFixture(t)},
		{"Llama 3 pattern", llama3Variant(t)},
		{"normalizer, post-processor, special in the vocab", withExtras},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokenizer.json")
			if err := tc.tk.Save(path); err != nil {
				t.Fatal(err)
			}
			back, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, in := range inputs {
				if a, b := tc.tk.Encode(in), back.Encode(in); !slices.Equal(a, b) {
					t.Fatalf("Encode(%q) = %v before saving, %v after", in, a, b)
				}
			}
			if back.VocabSize() != tc.tk.VocabSize() || len(back.mergeList) != len(tc.tk.mergeList) {
				t.Errorf("loaded %d tokens and %d merges, saved %d and %d", back.VocabSize(), len(back.mergeList), tc.tk.VocabSize(), len(tc.tk.mergeList))
			}
			saved, _ := os.ReadFile(path)
			again, err := back.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(saved, again) {
				t.Error("saving the loaded tokenizer writes another file")
			}
		})
	}
	saved, _ := withExtras.MarshalJSON()
	for _, want := range []string{`"normalizer": {`, `"type": "NFC"`, `"trim_offsets": false`, `"<|endoftext|>": 262`, `"normalized": true`} {
		if !bytes.Contains(saved, []byte(want)) {
			t.Errorf("saved file lacks %s", want)
		}
	}
	if bytes.Contains(saved, []byte(`"[tool]": 263`)) {
		t.Error("saved file lists an added token in the vocab that was not there")
	}
}

// TestJSONLayout checks the file against what Hugging Face tokenizers
// writes and expects.
func TestJSONLayout(t *testing.T) {
	data, err := trainFixture(t).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]json.RawMessage
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"version":        `"1.0"`,
		"truncation":     `null`,
		"padding":        `null`,
		"normalizer":     `null`,
		"post_processor": `null`,
		"pre_tokenizer":  `{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}`,
		"decoder":        `{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}`,
	}
	for key, value := range want {
		var buf bytes.Buffer
		if err := json.Compact(&buf, f[key]); err != nil || buf.String() != value {
			t.Errorf("%s = %s, want %s", key, f[key], value)
		}
	}
	var added []map[string]any
	if err := json.Unmarshal(f["added_tokens"], &added); err != nil || len(added) != 3 {
		t.Fatalf("added_tokens %s: %v", f["added_tokens"], err)
	}
	wantAdded := map[string]any{"id": 597.0, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
	for key, value := range wantAdded {
		if added[0][key] != value {
			t.Errorf("added_tokens[0].%s = %v, want %v", key, added[0][key], value)
		}
	}
	var model map[string]json.RawMessage
	if err := json.Unmarshal(f["model"], &model); err != nil {
		t.Fatal(err)
	}
	for key, value := range map[string]string{"type": `"BPE"`, "dropout": "null", "unk_token": "null", "continuing_subword_prefix": "null",
		"end_of_word_suffix": "null", "fuse_unk": "false", "byte_fallback": "false", "ignore_merges": "false"} {
		if string(model[key]) != value {
			t.Errorf("model.%s = %s, want %s", key, model[key], value)
		}
	}
	var vocab map[string]int
	var merges []string
	if err := json.Unmarshal(model["vocab"], &vocab); err != nil || len(vocab) != 597 {
		t.Errorf("model.vocab: %d tokens, %v", len(vocab), err)
	}
	if err := json.Unmarshal(model["merges"], &merges); err != nil || len(merges) != 597-256 {
		t.Errorf("model.merges: %d merges, %v", len(merges), err)
	}
	// Special tokens are written as they are, not \u003c-escaped.
	if !bytes.Contains(data, []byte(`"content": "<|im_start|>"`)) {
		t.Error("special tokens are escaped")
	}

	llama, err := llama3Variant(t).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(llama, &f); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	json.Compact(&buf, f["pre_tokenizer"])
	wantPre := `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":` + jsonString(patternRegex[llama3Pattern]) +
		`},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}`
	if buf.String() != wantPre {
		t.Errorf("pre_tokenizer = %s\nwant %s", buf.String(), wantPre)
	}
	if !bytes.Contains(llama, []byte(`"ignore_merges": true`)) {
		t.Error("ignore_merges is not written")
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestMergeForms(t *testing.T) {
	pairs, err := editFixture(t, "merge_order.json", func(f map[string]any) {
		m := f["model"].(map[string]any)
		var out []any
		for _, s := range m["merges"].([]any) {
			l, r, _ := strings.Cut(s.(string), " ")
			out = append(out, []any{l, r})
		}
		m["merges"] = out
	})
	if err != nil {
		t.Fatal(err)
	}
	strs := loadFixture(t, "merge_order.json")
	if !slices.Equal(pairs.mergeList, strs.mergeList) {
		t.Errorf("pairs give merges %v, strings %v", pairs.mergeList, strs.mergeList)
	}
	// A token with a space can only be written as a pair.
	spaced, err := editFixture(t, "merge_order.json", func(f map[string]any) {
		m := f["model"].(map[string]any)
		vocab := m["vocab"].(map[string]any)
		vocab["a b"], vocab["a bc"] = 262.0, 263.0
		f["added_tokens"].([]any)[0].(map[string]any)["id"] = 264
		m["merges"] = []any{[]any{"a b", "c"}}
	})
	if err != nil {
		t.Fatal(err)
	}
	data, err := spaced.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"a b",`)) || bytes.Contains(data, []byte(`"a b c"`)) {
		t.Errorf("merges with a spaced token are not written as pairs:\n%s", data[bytes.Index(data, []byte(`"merges"`)):])
	}
	if _, err := Parse(data); err != nil {
		t.Errorf("the pairs do not parse back: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	model := func(f map[string]any) map[string]any { return f["model"].(map[string]any) }
	vocab := func(f map[string]any) map[string]any { return model(f)["vocab"].(map[string]any) }
	added := func(f map[string]any, token map[string]any) {
		f["added_tokens"] = append(f["added_tokens"].([]any), token)
	}
	setPre := func(pre any) func(map[string]any) { return func(f map[string]any) { f["pre_tokenizer"] = pre } }
	byteLevel := map[string]any{"type": "ByteLevel", "use_regex": false}
	split := func(re string) map[string]any {
		return map[string]any{"type": "Split", "pattern": map[string]any{"Regex": re}, "behavior": "Isolated", "invert": false}
	}
	for _, tc := range []struct {
		name        string
		edit        func(f map[string]any)
		want        string
		unsupported bool
	}{
		{"vocab not an object", func(f map[string]any) { model(f)["vocab"] = []any{"a"} }, "cannot unmarshal array", false},
		{"vocab id not a whole number", func(f map[string]any) { vocab(f)["zz"] = 1.5 }, "cannot unmarshal number 1.5", false},
		{"empty vocab", func(f map[string]any) { model(f)["vocab"] = map[string]any{} }, "model.vocab is empty", false},
		{"merge names a token not in the vocab", func(f map[string]any) { model(f)["merges"] = []any{"x yz"} }, `merge 0 ("x" "yz"): "yz" is not in the vocab`, false},
		{"merge makes a token not in the vocab", func(f map[string]any) { model(f)["merges"] = []any{"c a"} }, `the result "ca" is not in the vocab`, false},
		{"merge of one token", func(f map[string]any) { model(f)["merges"] = []any{"abc"} }, `merge 0 "abc" is not two tokens`, false},
		{"merge of three tokens", func(f map[string]any) { model(f)["merges"] = []any{"a b c"} }, `merge 0 "a b c" is not two tokens`, false},
		{"merge pair of three", func(f map[string]any) { model(f)["merges"] = []any{[]any{"a", "b", "c"}} }, "merge 0 has 3 tokens", false},
		{"merges mixed", func(f map[string]any) { model(f)["merges"] = []any{"a b", []any{"b", "c"}} }, `merges must be a list of strings`, false},
		{"merge repeated", func(f map[string]any) { model(f)["merges"] = []any{"a b", "b c", "a b"} }, `merge 2 ("a" "b") repeats merge 0`, false},
		{"two tokens share an id", func(f map[string]any) { vocab(f)["zz"] = 5 }, `id 5 is used by both "&" and "zz"`, false},
		{"a gap in the ids", func(f map[string]any) { vocab(f)["zz"] = 1000 }, `id 1000 of "zz" is out of range: the 264 tokens must have the ids 0..263`, false},
		{"negative id", func(f map[string]any) { added(f, map[string]any{"id": -1, "content": "<x>"}) }, `id -1 of "<x>" is out of range`, false},
		{"added token takes a vocab id", func(f map[string]any) { added(f, map[string]any{"id": 5, "content": "<x>"}) }, `id 5 is used by both "&" and "<x>"`, false},
		{"added token in the vocab under another id", func(f map[string]any) { added(f, map[string]any{"id": 263, "content": "abc"}) }, `added token "abc" has id 263 but the vocab gives it 258`, false},
		{"empty added token", func(f map[string]any) { added(f, map[string]any{"id": 263, "content": ""}) }, "added token 1 (id 263) is empty", false},
		{"added token twice", func(f map[string]any) { added(f, map[string]any{"id": 263, "content": "<|endoftext|>"}) }, `added token "<|endoftext|>" is listed twice`, false},
		{"a byte token missing", func(f map[string]any) { delete(vocab(f), "Ġ"); vocab(f)["zz"] = 220 }, `the vocab lacks "Ġ", the token of byte 0x20`, false},
		{"model not BPE", func(f map[string]any) { model(f)["type"] = "WordPiece" }, `model type "WordPiece"`, true},
		{"dropout", func(f map[string]any) { model(f)["dropout"] = 0.1 }, "BPE dropout 0.1", true},
		{"byte fallback", func(f map[string]any) { model(f)["byte_fallback"] = true }, "byte_fallback", true},
		{"subword prefix", func(f map[string]any) { model(f)["continuing_subword_prefix"] = "##" }, `continuing_subword_prefix "##"`, true},
		{"word suffix", func(f map[string]any) { model(f)["end_of_word_suffix"] = "</w>" }, `end_of_word_suffix "</w>"`, true},
		{"no pre-tokenizer", setPre(nil), "pre_tokenizer is null", true},
		{"another pre-tokenizer", setPre(map[string]any{"type": "Whitespace"}), `pre_tokenizer "Whitespace"`, true},
		{"ByteLevel with a prefix space", setPre(map[string]any{"type": "ByteLevel", "add_prefix_space": true}), "add_prefix_space", true},
		{"ByteLevel without its regex", setPre(map[string]any{"type": "ByteLevel", "use_regex": false}), "use_regex false", true},
		{"an unknown Split pattern is named", setPre(map[string]any{"type": "Sequence", "pretokenizers": []any{split(`\w+|\s+`), byteLevel}}), `Split pattern "\\w+|\\s+"`, true},
		{"Split by a string", setPre(map[string]any{"type": "Sequence", "pretokenizers": []any{map[string]any{"type": "Split", "pattern": map[string]any{"String": " "}}, byteLevel}}), "Split by a string", true},
		{"Split removing matches", setPre(map[string]any{"type": "Sequence", "pretokenizers": []any{map[string]any{"type": "Split", "pattern": map[string]any{"Regex": patternRegex[llama3Pattern]}, "behavior": "Removed"}, byteLevel}}), `behavior "Removed"`, true},
		{"Split then ByteLevel with its regex", setPre(map[string]any{"type": "Sequence", "pretokenizers": []any{split(patternRegex[llama3Pattern]), map[string]any{"type": "ByteLevel"}}}), "use_regex true", true},
		{"a longer Sequence", setPre(map[string]any{"type": "Sequence", "pretokenizers": []any{split(patternRegex[llama3Pattern]), map[string]any{"type": "Digits"}, byteLevel}}), "Sequence [Split Digits ByteLevel]", true},
		{"a normalizer", func(f map[string]any) { f["normalizer"] = map[string]any{"type": "Lowercase"} }, `normalizer "Lowercase"`, true},
		{"another decoder", func(f map[string]any) { f["decoder"] = map[string]any{"type": "WordPiece"} }, `decoder "WordPiece"`, true},
		{"lstrip", func(f map[string]any) { added(f, map[string]any{"id": 263, "content": "<mask>", "lstrip": true}) }, `added token "<mask>" with single_word, lstrip or rstrip`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := editFixture(t, "merge_order.json", tc.edit)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "tokenizer: ") {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if got := errors.Is(err, errors.ErrUnsupported); got != tc.unsupported {
				t.Errorf("errors.Is(%v, errors.ErrUnsupported) = %t, want %t", err, got, tc.unsupported)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	for _, tc := range []struct {
		name, data string
	}{
		{"empty", ""},
		{"truncated", `{"model": {"vocab": {"a": 0`},
		{"not an object", `[1, 2]`},
		{"null", `null`},
		{"model a string", `{"model": "BPE"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.data)); err == nil || !strings.HasPrefix(err.Error(), "tokenizer: ") {
				t.Errorf("Parse(%q) error %v", tc.data, err)
			}
		})
	}
}

func TestLoadSaveErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.json")); err == nil || !strings.HasPrefix(err.Error(), "tokenizer: ") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("{}"), 0o644)
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "load "+bad) {
		t.Errorf("Load of a bad file: %v, want the path in the error", err)
	}
	tk := loadFixture(t, "merge_order.json")
	if err := tk.Save(filepath.Join(dir, "no", "such", "dir.json")); err == nil || !strings.HasPrefix(err.Error(), "tokenizer: save ") {
		t.Errorf("Save into a missing directory: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("Save left files behind: %v", entries)
	}
}
