package tokenizer

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// editFixture loads testdata/name as generic JSON, lets edit change it and
// parses the result.
func editFixture(t testing.TB, name string, edit func(f map[string]any)) (*Tokenizer, error) {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	edit(f)
	if data, err = json.Marshal(f); err != nil {
		t.Fatal(err)
	}
	return Parse(data)
}

// llama3Variant is testdata/trained.json cut by the Llama 3 pattern with
// ignore_merges, as testdata/hf.js derives it.
func llama3Variant(t testing.TB) *Tokenizer {
	t.Helper()
	tk, err := editFixture(t, "trained.json", func(f map[string]any) {
		f["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": patternRegex[llama3Pattern]}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}}
		f["model"].(map[string]any)["ignore_merges"] = true
	})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestEncodeMatchesHuggingFace(t *testing.T) {
	g := loadHFGolden(t).Encode
	for _, tc := range []struct {
		name string
		tk   *Tokenizer
		want [][]int
	}{
		{"GPT-2 pattern", loadFixture(t, "trained.json"), g.GPT2},
		{"Llama 3 pattern with ignore_merges", llama3Variant(t), g.Llama3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.want) != len(g.Inputs) || len(g.Inputs) == 0 {
				t.Fatalf("%d inputs, %d encodings", len(g.Inputs), len(tc.want))
			}
			for i, in := range g.Inputs {
				got := tc.tk.Encode(in)
				if !slices.Equal(got, tc.want[i]) {
					t.Errorf("Encode(%q) = %v, Hugging Face gives %v", in, got, tc.want[i])
				}
				if s := tc.tk.Decode(got); s != in {
					t.Errorf("Decode(Encode(%q)) = %q", in, s)
				}
			}
		})
	}
}

func TestSpecialTokens(t *testing.T) {
	tk := trainFixture(t)
	start, _ := tk.SpecialID("<|im_start|>")
	end, _ := tk.SpecialID("<|im_end|>")
	eot, _ := tk.SpecialID("<|endoftext|>")
	for _, tc := range []struct {
		name string
		in   string
		want []int
	}{
		{"alone", "<|endoftext|>", []int{eot}},
		{"glued to words", "x<|im_start|>user<|im_end|>", slices.Concat(tk.Encode("x"), []int{start}, tk.Encode("user"), []int{end})},
		{"back to back", "<|im_end|><|im_end|>", []int{end, end}},
		{"a broken special is text", "<|im_start|", tk.EncodeOrdinary("<|im_start|")},
		{"the space before a special stays with the text", "a <|endoftext|> b", slices.Concat(tk.Encode("a "), []int{eot}, tk.Encode(" b"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tk.Encode(tc.in); !slices.Equal(got, tc.want) {
				t.Errorf("Encode(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
	t.Run("EncodeOrdinary does not match specials", func(t *testing.T) {
		ids := tk.EncodeOrdinary("<|endoftext|>")
		if slices.Contains(ids, eot) || len(ids) < 2 {
			t.Errorf("EncodeOrdinary = %v, want text tokens only", ids)
		}
		if got := tk.Decode(ids); got != "<|endoftext|>" {
			t.Errorf("Decode = %q", got)
		}
	})
}

func TestAddedTokenMatching(t *testing.T) {
	// Two specials, one a prefix of the other, and a token that is not
	// special.
	tk, err := editFixture(t, "merge_order.json", func(f map[string]any) {
		f["added_tokens"] = append(f["added_tokens"].([]any),
			map[string]any{"id": 263, "content": "<|a|>", "special": true},
			map[string]any{"id": 264, "content": "<|a|>b", "special": true},
			map[string]any{"id": 265, "content": "[tool]", "special": false},
		)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		in       string
		encode   []int
		ordinary []int
	}{
		{"the longest match wins", "<|a|>b", []int{264}, tk.EncodeOrdinary("<|a|>b")},
		{"the shorter one where the longer does not fit", "<|a|>c", []int{263, 66}, tk.EncodeOrdinary("<|a|>c")},
		{"the leftmost match wins", "x<|a|>b<|endoftext|>", []int{87, 264, 262}, tk.EncodeOrdinary("x<|a|>b<|endoftext|>")},
		{"a token that is not special is matched by both", "ab[tool]ab", []int{257, 265, 257}, []int{257, 265, 257}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tk.Encode(tc.in); !slices.Equal(got, tc.encode) {
				t.Errorf("Encode(%q) = %v, want %v", tc.in, got, tc.encode)
			}
			if got := tk.EncodeOrdinary(tc.in); !slices.Equal(got, tc.ordinary) || slices.Contains(got, 263) || slices.Contains(got, 264) {
				t.Errorf("EncodeOrdinary(%q) = %v, want %v", tc.in, got, tc.ordinary)
			}
		})
	}
	if _, ok := tk.SpecialID("[tool]"); ok {
		t.Error(`SpecialID("[tool]") found a token that is not special`)
	}
	if id, ok := tk.TokenID("[tool]"); !ok || id != 265 {
		t.Errorf(`TokenID("[tool]") = %d, %t`, id, ok)
	}
}

func TestDecode(t *testing.T) {
	tk := loadFixture(t, "merge_order.json")
	for _, tc := range []struct {
		name string
		ids  []int
		want string
	}{
		{"tokens and a special", []int{220, 258, 262}, " abc<|endoftext|>"},
		{"ids out of range are skipped", []int{-1, 64, 263, 1 << 40, 65}, "ab"},
		{"half a character comes back as its byte", []int{int(tk.byteID[0xC3])}, "\xc3"},
		{"nothing", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tk.Decode(tc.ids); got != tc.want {
				t.Errorf("Decode(%v) = %q, want %q", tc.ids, got, tc.want)
			}
			if got := string(tk.DecodeBytes(tc.ids)); got != tc.want {
				t.Errorf("DecodeBytes(%v) = %q, want %q", tc.ids, got, tc.want)
			}
		})
	}
}

func TestLookups(t *testing.T) {
	tk := loadFixture(t, "merge_order.json")
	if got := tk.VocabSize(); got != 263 {
		t.Errorf("VocabSize() = %d, want 263", got)
	}
	for _, tc := range []struct {
		token string
		id    int
	}{{"!", 0}, {"a", 64}, {"Ġ", 220}, {"Ġa", 261}, {"abc", 258}, {"<|endoftext|>", 262}} {
		if id, ok := tk.TokenID(tc.token); !ok || id != tc.id {
			t.Errorf("TokenID(%q) = %d, %t; want %d", tc.token, id, ok, tc.id)
		}
		if got := tk.Token(tc.id); got != tc.token {
			t.Errorf("Token(%d) = %q, want %q", tc.id, got, tc.token)
		}
	}
	if _, ok := tk.TokenID(" a"); ok {
		t.Error(`TokenID(" a") found a token: tokens are spelt in the byte-level alphabet`)
	}
	for _, id := range []int{-1, 263} {
		if got := tk.Token(id); got != "" {
			t.Errorf("Token(%d) = %q, want \"\"", id, got)
		}
	}
	if id, ok := tk.SpecialID("<|endoftext|>"); !ok || id != 262 {
		t.Errorf("SpecialID = %d, %t", id, ok)
	}
	if _, ok := tk.SpecialID("abc"); ok {
		t.Error(`SpecialID("abc") found a token that is not special`)
	}
}

// randomText returns strings made to break tokenizers: unicode of several
// scripts and widths, whitespace runs, digits, contractions, whole and
// broken special tokens and, with invalid, bytes that are not UTF-8.
func randomText(r *rand.Rand, invalid bool) string {
	atoms := []string{" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "a", "é", "ß", "日本", "Привет",
		"1", "123456", "٣", "'s", "'LL", "'", "!", "?!", "😀", "👍🏽", "\u0301", "<|endoftext|>", "<|im_start|>",
		"<|im_", "|>", "the", " the", " tokenizer", "\u00ad", "\x00"}
	var b strings.Builder
	for range r.IntN(40) {
		switch {
		case invalid && r.IntN(8) == 0:
			b.WriteByte(byte(0x80 + r.IntN(0x80)))
		case r.IntN(8) == 0:
			b.WriteRune(rune(r.IntN(0x30000)))
		default:
			b.WriteString(atoms[r.IntN(len(atoms))])
		}
	}
	return b.String()
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		tk   *Tokenizer
	}{
		{"trained", trainFixture(t)},
		{"Llama 3 pattern", llama3Variant(t)},
		{"GPT-2 style fixture", loadFixture(t, "merge_order.json")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, 5))
			for i := range 3000 {
				s := randomText(r, i%2 == 1)
				if utf8.ValidString(s) {
					if got := tc.tk.Decode(tc.tk.Encode(s)); got != s {
						t.Fatalf("Decode(Encode(%q)) = %q", s, got)
					}
				}
				if got := tc.tk.DecodeBytes(tc.tk.EncodeOrdinary(s)); string(got) != s {
					t.Fatalf("DecodeBytes(EncodeOrdinary(%q)) = %q", s, got)
				}
			}
			// A long piece goes through the merge queue.
			long := strings.Repeat("ab", 400) + " " + strings.Repeat(" ", 1000) + strings.Repeat("1", 700)
			if got := tc.tk.Decode(tc.tk.Encode(long)); got != long {
				t.Errorf("a long text does not round-trip")
			}
		})
	}
}

// TestConcurrentEncode runs under go test -race: a Tokenizer is shared.
func TestConcurrentEncode(t *testing.T) {
	tk := trainFixture(t)
	inputs := loadHFGolden(t).Encode.Inputs
	want := make([][]int, len(inputs))
	for i, in := range inputs {
		want[i] = tk.Encode(in)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range inputs {
				i := (i + g*17) % len(inputs)
				if got := tk.Encode(inputs[i]); !slices.Equal(got, want[i]) {
					t.Errorf("goroutine %d: Encode(%q) = %v, want %v", g, inputs[i], got, want[i])
					return
				}
				tk.Decode(want[i])
			}
		})
	}
	wg.Wait()
}
