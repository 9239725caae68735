package tokenizer

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
)

// pieces cuts s by p.
func pieces(p pattern, s string) []string {
	var out []string
	for s != "" {
		n := p.piece(s)
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

func TestGPT2Pattern(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{"words take the space before them", "Hello world", []string{"Hello", " world"}},
		{"contractions", "I'm don't we'll they've she'd you're it's", []string{"I", "'m", " don", "'t", " we", "'ll", " they", "'ve", " she", "'d", " you", "'re", " it", "'s"}},
		{"contractions are case-sensitive", "I'M IT'S", []string{"I", "'", "M", " IT", "'", "S"}},
		{"a quote before a non-contraction", "'hello' ''s", []string{"'", "hello", "'", " ''", "s"}},
		{"digits run any length", "abc 1234567 x", []string{"abc", " 1234567", " x"}},
		{"letters and digits split", "abc123def", []string{"abc", "123", "def"}},
		{"punctuation runs", "Hi!!! ...?", []string{"Hi", "!!!", " ...?"}},
		{"a whitespace run leaves its last space to the word", "a   b", []string{"a", "  ", " b"}},
		{"trailing whitespace stays whole", "a   ", []string{"a", "   "}},
		{"a single tab before a word is its own piece", "a\tb", []string{"a", "\t", "b"}},
		{"newlines before a word", "a\n\nb", []string{"a", "\n", "\n", "b"}},
		{"spaces and newline before a word", "x  \n y", []string{"x", "  \n", " y"}},
		{"unicode letters", " naïve café Привет 日本語", []string{" naïve", " café", " Привет", " 日本語"}},
		{"other scripts' digits are digits", "٣٤ ½", []string{"٣٤", " ½"}},
		{"emoji are punctuation", "ok 👍🏽!", []string{"ok", " 👍🏽!"}},
		{"a combining mark splits a word", "e\u0301t", []string{"e", "\u0301", "t"}},
		{"unicode whitespace", "a\u00a0\u3000b", []string{"a", "\u00a0", "\u3000", "b"}},
		{"invalid bytes are punctuation", "a\xff\xfe b", []string{"a", "\xff\xfe", " b"}},
		{"only whitespace", " \n ", []string{" \n "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pieces(gpt2Pattern, tc.in); !slices.Equal(got, tc.want) {
				t.Errorf("pieces(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestLlama3Pattern(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		llama []string
		qwen  []string // when it differs from llama
	}{
		{"words take the space before them", "Hello world", []string{"Hello", " world"}, nil},
		{"contractions in any case", "I'M it's WE'LL", []string{"I", "'M", " it", "'s", " WE", "'LL"}, nil},
		{"the long s folds to s", "'ſx", []string{"'ſ", "x"}, nil},
		{"numbers in runs of three", "1234567", []string{"123", "456", "7"}, []string{"1", "2", "3", "4", "5", "6", "7"}},
		{"no space before digits", "x 42", []string{"x", " ", "42"}, []string{"x", " ", "4", "2"}},
		{"any non-newline prefixes a word", "(hello) \tworld", []string{"(hello", ")", " ", "\tworld"}, nil},
		{"punctuation takes the newlines after it", "end.\n\nNext", []string{"end", ".\n\n", "Next"}, nil},
		{"space then punctuation", "a !?\n", []string{"a", " !?\n"}, nil},
		{"whitespace ends after its last newline", "a  \n  \n  b", []string{"a", "  \n  \n", " ", " b"}, nil},
		{"carriage returns", "a\r\nb", []string{"a", "\r\n", "b"}, nil},
		{"a whitespace run leaves its last space to the word", "a   b", []string{"a", "  ", " b"}, nil},
		{"trailing whitespace stays whole", "a   ", []string{"a", "   "}, nil},
		{"unicode letters", "naïve Привет日本語", []string{"naïve", " Привет日本語"}, nil},
		{"emoji are punctuation", "ok 👍🏽!", []string{"ok", " 👍🏽!"}, nil},
		{"invalid bytes are punctuation", "\xffab", []string{"\xffab"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pieces(llama3Pattern, tc.in); !slices.Equal(got, tc.llama) {
				t.Errorf("Llama 3: pieces(%q) = %q, want %q", tc.in, got, tc.llama)
			}
			want := tc.qwen
			if want == nil {
				want = tc.llama
			}
			if got := pieces(qwen2Pattern, tc.in); !slices.Equal(got, want) {
				t.Errorf("Qwen2: pieces(%q) = %q, want %q", tc.in, got, want)
			}
		})
	}
}

// hfGolden is testdata/hf.json, written by testdata/hf.js: Hugging Face
// tokenizers' splits and encodings of seeded random strings.
type hfGolden struct {
	Pretokenize struct {
		Inputs              []string
		GPT2, Llama3, Qwen2 [][]string
	}
	Encode struct {
		Inputs       []string
		GPT2, Llama3 [][]int
	}
}

func loadHFGolden(t *testing.T) hfGolden {
	t.Helper()
	data, err := os.ReadFile("testdata/hf.json")
	if err != nil {
		t.Fatal(err)
	}
	var g hfGolden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func TestPatternsMatchHuggingFace(t *testing.T) {
	g := loadHFGolden(t).Pretokenize
	for _, tc := range []struct {
		name string
		p    pattern
		want [][]string
	}{
		{"GPT-2", gpt2Pattern, g.GPT2},
		{"Llama 3", llama3Pattern, g.Llama3},
		{"Qwen2", qwen2Pattern, g.Qwen2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.want) != len(g.Inputs) || len(g.Inputs) == 0 {
				t.Fatalf("%d inputs, %d splits", len(g.Inputs), len(tc.want))
			}
			for i, in := range g.Inputs {
				if got := pieces(tc.p, in); !slices.Equal(got, tc.want[i]) {
					t.Errorf("pieces(%q) = %q, Hugging Face gives %q", in, got, tc.want[i])
				}
			}
		})
	}
}

func TestPatternOf(t *testing.T) {
	for p, re := range patternRegex {
		if got, ok := patternOf(re); !ok || got != pattern(p) {
			t.Errorf("patternOf(%q) = %d, %t", re, got, ok)
		}
	}
	if _, ok := patternOf(`\w+`); ok {
		t.Error(`patternOf(\w+) found a pattern`)
	}
}
