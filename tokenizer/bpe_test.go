package tokenizer

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

// loadFixture loads a tokenizer from testdata.
func loadFixture(t testing.TB, name string) *Tokenizer {
	t.Helper()
	tk, err := Load("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// testdata/merge_order.json is GPT-2 style with the 256 byte tokens ('a' is
// 64, 'b' 65, 'c' 66, 'Ġ' 220) and six merges:
//
//	0 "b c" → bc 256    3 "a a" → aa 259
//	1 "a b" → ab 257    4 "aa aa" → aaaa 260
//	2 "a bc" → abc 258  5 "Ġ a" → Ġa 261
//
// and "<|endoftext|>" 262. The ids below are Hugging Face's for the file.
func TestMergeOrder(t *testing.T) {
	tk := loadFixture(t, "merge_order.json")
	for _, tc := range []struct {
		name string
		in   string
		want []int
	}{
		{"the lower rank merges first, though it is further right", "abc", []int{258}},
		{"one merge", "ab", []int{257}},
		{"equal ranks merge left to right", "abab", []int{257, 257}},
		{"overlapping pairs merge leftmost first", "aaa", []int{259, 64}},
		{"merged tokens merge again", "aaaaa", []int{260, 64}},
		{"ranks, not position, order merges", " abc", []int{220, 258}},
		{"a lower rank beats the leading space", " ab", []int{220, 257}},
		{"no rule for the pair", "cab", []int{66, 257}},
		{"special token then a word", "<|endoftext|>abc", []int{262, 258}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tk.Encode(tc.in); !slices.Equal(got, tc.want) {
				t.Errorf("Encode(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}

	// Swapping the first two merges changes the result.
	data, err := os.ReadFile("testdata/merge_order.json")
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	merges := f["model"].(map[string]any)["merges"].([]any)
	merges[0], merges[1] = merges[1], merges[0]
	data, _ = json.Marshal(f)
	swapped, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string][]int{"abc": {257, 66}, " abc": {220, 257, 66}} {
		if got := swapped.Encode(in); !slices.Equal(got, want) {
			t.Errorf("with a b before b c: Encode(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestMergeQueueMatchesNaive checks the long-word path against the short
// one on words of every length around queueFrom and beyond.
func TestMergeQueueMatchesNaive(t *testing.T) {
	tk := trainFixture(t)
	r := rand.New(rand.NewPCG(1, 1))
	alphabet := []byte("the ofandto  \n\t'sé1")
	var q mergeQueue
	var ranks []merge
	for n := 1; n < 2*queueFrom; n += 1 + n/16 {
		for range 20 {
			word := make([]byte, n)
			for i := range word {
				word[i] = alphabet[r.IntN(len(alphabet))]
			}
			var a, b []int32
			for _, c := range word {
				a = append(a, tk.byteID[c])
				b = append(b, tk.byteID[c])
			}
			want := mergeNaive(tk.merges, a, &ranks)
			if got := q.merge(tk.merges, b); !slices.Equal(got, want) {
				t.Fatalf("word %q: mergeQueue gives %v, mergeNaive %v", word, got, want)
			}
		}
	}
}
