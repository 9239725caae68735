package tokenizer

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/trained.json from Train")

// corpusWords are drawn with a Zipf distribution, so that a few words are
// frequent enough to become tokens, as in real text.
var corpusWords = strings.Fields(`the of and to a in is it that for on with as was he be at by
this had not are but from or have an they which one you were her all she there would their we him
been has when who will more no if out so said what up its about into than them can only other new
some could time these two may then do first any my now such like our over man me even most made
after also did many before must through back years where much your way well down should because
each just those people how too little state good very make world still own see men work long get
here between both life being under never day same another know while last might us great old year
off come since against go came right used take three tokenizer token merge byte naïve café
Привет мир données 日本語 中文 한국어 العربية ελληνικά func return nil err := if for range`)

// corpus returns n documents of deterministic pseudo-text: Zipf-distributed
// words with contractions, numbers, punctuation, code lines and whitespace
// runs, enough to exercise every branch of the pattern.
func corpus(seed uint64, n int) []string {
	r := rand.New(rand.NewPCG(seed, 2))
	zipf := rand.NewZipf(r, 1.2, 2, uint64(len(corpusWords)-1))
	docs := make([]string, n)
	for d := range docs {
		var b strings.Builder
		for w := range 20 + r.IntN(200) {
			if w > 0 {
				switch r.IntN(20) {
				case 0:
					b.WriteString(".\n")
				case 1:
					b.WriteString(", ")
				case 2:
					b.WriteString("\n\n\t")
				case 3:
					b.WriteString("  ")
				default:
					b.WriteByte(' ')
				}
			}
			switch r.IntN(25) {
			case 0:
				fmt.Fprintf(&b, "%d", r.IntN(100000))
			case 1:
				b.WriteString([]string{"(x)", "{}", "->", "!=", "...", "😀", "🚀!"}[r.IntN(7)])
			}
			b.WriteString(corpusWords[zipf.Uint64()])
			if r.IntN(25) == 0 {
				b.WriteString([]string{"'s", "'t", "'re", "'ll", "n't", "'D"}[r.IntN(6)])
			}
		}
		docs[d] = b.String()
	}
	return docs
}

var fixtureSpecials = []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}

// trainFixture trains the tokenizer of testdata/trained.json.
func trainFixture(t testing.TB) *Tokenizer {
	t.Helper()
	tk, err := Train(context.Background(), slices.Values(corpus(1, 300)), 600, fixtureSpecials)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// TestTrainGolden pins Train's output: the same corpus gives the same file,
// byte for byte. Run with -update after a deliberate change.
func TestTrainGolden(t *testing.T) {
	got, err := trainFixture(t).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	const path = "testdata/trained.json"
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Train's output differs from %s; run go test -update if the change is meant", path)
	}
}

func TestTrainDeterministic(t *testing.T) {
	docs := corpus(7, 100)
	a, err := Train(context.Background(), slices.Values(docs), 500, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The same words in another order count the same.
	slices.Reverse(docs)
	b, err := Train(context.Background(), slices.Values(docs), 500, nil)
	if err != nil {
		t.Fatal(err)
	}
	ja, _ := a.MarshalJSON()
	jb, _ := b.MarshalJSON()
	if !bytes.Equal(ja, jb) {
		t.Error("two trainings on the same documents differ")
	}
}

func TestTrainVocabulary(t *testing.T) {
	tk := trainFixture(t)
	if got := tk.VocabSize(); got != 600 {
		t.Errorf("VocabSize() = %d, want 600", got)
	}
	// The bytes come first in GPT-2's order.
	for _, tc := range []struct {
		token string
		id    int
	}{{"!", 0}, {"Ġ", 220}, {"Ń", 255}} {
		if id, _ := tk.TokenID(tc.token); id != tc.id {
			t.Errorf("TokenID(%q) = %d, want %d", tc.token, id, tc.id)
		}
	}
	for i, s := range fixtureSpecials {
		if id, ok := tk.SpecialID(s); !ok || id != 600-len(fixtureSpecials)+i {
			t.Errorf("SpecialID(%q) = %d, %t; want the id %d", s, id, ok, 600-len(fixtureSpecials)+i)
		}
	}
	// Every merge makes a token, and every token past the bytes is made by
	// some merge.
	made := make(map[string]bool)
	for _, p := range tk.mergeList {
		joined := tk.tokens[p[0]] + tk.tokens[p[1]]
		if _, ok := tk.TokenID(joined); !ok {
			t.Errorf("merge %q %q makes %q, which is not in the vocab", tk.tokens[p[0]], tk.tokens[p[1]], joined)
		}
		made[joined] = true
	}
	for id := 256; id < 600-len(fixtureSpecials); id++ {
		if !made[tk.Token(id)] {
			t.Errorf("token %d %q is made by no merge", id, tk.Token(id))
		}
	}
}

func TestTrainFrequentWordsBecomeTokens(t *testing.T) {
	docs := []string{strings.Repeat("hello world, hello tokenizer. ", 50), strings.Repeat("the cat sat on the mat ", 40)}
	tk, err := Train(context.Background(), slices.Values(docs), 300, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, word := range []string{"hello", " world", " hello", " tokenizer", " the", " cat", " mat"} {
		if ids := tk.Encode(word); len(ids) != 1 {
			t.Errorf("Encode(%q) = %v, want one token", word, ids)
		}
	}
	// The corpus runs out of pairs before 300 tokens.
	if n := tk.VocabSize(); n >= 300 || n <= 256 {
		t.Errorf("VocabSize() = %d, want between 257 and 299", n)
	}
}

func TestTrainCutsOutSpecials(t *testing.T) {
	docs := []string{strings.Repeat("ab<|end|>", 100)}
	tk, err := Train(context.Background(), slices.Values(docs), 300, []string{"<|end|>"})
	if err != nil {
		t.Fatal(err)
	}
	// Only "ab" was learnt: the special's text never counted.
	if got, want := tk.VocabSize(), 256+1+1; got != want {
		t.Errorf("VocabSize() = %d, want %d", got, want)
	}
	end, _ := tk.SpecialID("<|end|>")
	ab, _ := tk.TokenID("ab")
	if got, want := tk.Encode("ab<|end|>ab"), []int{ab, end, ab}; !slices.Equal(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}
}

func TestTrainErrors(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		vocabSize int
		specials  []string
		want      string
	}{
		{"vocab too small", context.Background(), 256, []string{"<s>"}, "no room for the 256 byte tokens"},
		{"empty special", context.Background(), 300, []string{""}, "empty or not UTF-8"},
		{"invalid UTF-8 special", context.Background(), 300, []string{"\xff"}, "empty or not UTF-8"},
		{"duplicate special", context.Background(), 300, []string{"<s>", "<s>"}, `"<s>" is listed twice`},
		{"special is a byte token", context.Background(), 300, []string{"!"}, `added token "!" has id 299 but the vocab gives it 0`},
		{"canceled", canceled, 300, nil, "context canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Train(tc.ctx, slices.Values(corpus(1, 5)), tc.vocabSize, tc.specials)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "tokenizer: ") {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	_, err := Train(canceled, slices.Values(corpus(1, 5)), 300, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not wrap context.Canceled", err)
	}
}

// trainNaive is BPE training by full recount at every step, the oracle for
// the incremental trainer: it returns the merges as pairs of byte strings.
func trainNaive(docs []string, merges int) [][2]string {
	counts := make(map[string]int64)
	for _, d := range docs {
		for d != "" {
			n := gpt2Pattern.piece(d)
			counts[d[:n]]++
			d = d[n:]
		}
	}
	var words [][]string
	var freq []int64
	for _, w := range slices.Sorted(maps.Keys(counts)) {
		var syms []string
		for i := range len(w) {
			syms = append(syms, w[i:i+1])
		}
		words = append(words, syms)
		freq = append(freq, counts[w])
	}
	var out [][2]string
	for range merges {
		pairs := make(map[[2]string]int64)
		for i, w := range words {
			for j := 0; j+1 < len(w); j++ {
				pairs[[2]string{w[j], w[j+1]}] += freq[i]
			}
		}
		var best [2]string
		var bestCount int64
		for p, c := range pairs {
			if c > bestCount || c == bestCount && (p[0] < best[0] || p[0] == best[0] && p[1] < best[1]) {
				best, bestCount = p, c
			}
		}
		if bestCount == 0 {
			break
		}
		out = append(out, best)
		for i, w := range words {
			var merged []string
			for j := 0; j < len(w); j++ {
				if j+1 < len(w) && w[j] == best[0] && w[j+1] == best[1] {
					merged = append(merged, best[0]+best[1])
					j++
				} else {
					merged = append(merged, w[j])
				}
			}
			words[i] = merged
		}
	}
	return out
}

func TestTrainMatchesNaive(t *testing.T) {
	for _, tc := range []struct {
		name string
		docs []string
	}{
		{"pseudo-text", corpus(3, 30)},
		{"repeats", []string{"aaaaaaa aaaa aa a", "abababab abab", "aaabaaab"}},
		{"unicode", []string{"日本語日本語 ελληνικά ελληνικά 😀😀😀"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk, err := Train(context.Background(), slices.Values(tc.docs), 256+150, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := trainNaive(tc.docs, len(tk.mergeList))
			if len(want) != len(tk.mergeList) {
				t.Fatalf("%d merges, naive training has %d", len(tk.mergeList), len(want))
			}
			for i, p := range tk.mergeList {
				got := [2]string{tk.raw[p[0]], tk.raw[p[1]]}
				if got != want[i] {
					t.Fatalf("merge %d is %q, naive training's is %q", i, got, want[i])
				}
			}
		})
	}
}
