package tokenizer

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"testing"
	"unicode/utf8"
)

// FuzzEncodeDecode checks that byte-level BPE is lossless on any bytes,
// under each pattern, with and without special tokens.
func FuzzEncodeDecode(f *testing.F) {
	for _, s := range []string{"", "Hello world", "I'M don't 12345 ſ", "  \n\n\t x", "<|endoftext|><|im_start|>user", "日本語 😀👍🏽", "\xff\xfe a\xc3", "aaaa abab"} {
		f.Add(s)
	}
	tokenizers := map[string]*Tokenizer{
		"trained":     trainFixture(f),
		"Llama 3":     llama3Variant(f),
		"merge order": loadFixture(f, "merge_order.json"),
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, tk := range tokenizers {
			ids := tk.Encode(s)
			for _, id := range ids {
				if id < 0 || id >= tk.VocabSize() {
					t.Fatalf("%s: Encode(%q) gives id %d, out of range", name, s, id)
				}
			}
			if got := tk.DecodeBytes(ids); !bytes.Equal(got, []byte(s)) {
				t.Fatalf("%s: DecodeBytes(Encode(%q)) = %q", name, s, got)
			}
			if got := tk.DecodeBytes(tk.EncodeOrdinary(s)); !bytes.Equal(got, []byte(s)) {
				t.Fatalf("%s: DecodeBytes(EncodeOrdinary(%q)) = %q", name, s, got)
			}
			if utf8.ValidString(s) {
				if got := tk.Decode(ids); got != s {
					t.Fatalf("%s: Decode(Encode(%q)) = %q", name, s, got)
				}
			}
		}
	})
}

// FuzzParse checks that the tokenizer.json parser never panics, and that
// whatever it accepts it writes back in a form it reads the same. A valid
// file holds at least the 256 byte tokens, and the fuzzer spends up to a
// minute minimizing each new input that size; -fuzzminimizetime 5s keeps
// it fuzzing.
func FuzzParse(f *testing.F) {
	// The smallest valid seed: minimizing inputs the size of trained.json
	// takes the fuzzer minutes each.
	data, err := os.ReadFile("testdata/merge_order.json")
	if err != nil {
		f.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		f.Fatal(err)
	}
	f.Add(compact.Bytes())
	f.Add([]byte(`{"model":{"vocab":{},"merges":[]}}`))
	f.Add([]byte(`{"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"x"}}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := Parse(data)
		if err != nil {
			return
		}
		out, err := tk.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("the written file does not parse: %v\n%s", err, out)
		}
		again, err := back.MarshalJSON()
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("writing the file read back gives another file: %v", err)
		}
		for _, s := range []string{"Hello world", "<|endoftext|> 123", "\xff"} {
			if a, b := tk.Encode(s), back.Encode(s); !slices.Equal(a, b) {
				t.Fatalf("Encode(%q) = %v, after writing and reading %v", s, a, b)
			}
		}
	})
}
