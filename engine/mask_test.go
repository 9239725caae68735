package engine

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// The mask leaves exactly the tokens whose text begins one of the
// choices, EOS never among them, whatever order the choices come in and
// whether or not one choice begins another.
func TestMaskLeavesTheTokensThatBeginAChoice(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	word := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteByte("ab+ 1"[rng.IntN(5)])
		}
		return b.String()
	}
	texts := []string{""}
	for len(texts) < 300 {
		texts = append(texts, word(1+rng.IntN(4)))
	}
	eos := 7
	texts = append(texts, texts[3]) // two tokens of one text
	e := &Engine{eos: map[int]bool{eos: true}}
	e.setTokenTexts(texts)
	for trial := range 200 {
		var choices []string
		for range rng.IntN(12) {
			choices = append(choices, word(rng.IntN(7)))
		}
		if trial%3 == 0 {
			choices = append(choices, texts[eos]+"x")
		}
		given := append([]string(nil), choices...)
		logits := make([]float32, len(texts))
		masked := e.mask(logits, choices)
		want := 0
		for id, text := range texts {
			ok := false
			for _, c := range choices {
				ok = ok || text != "" && id != eos && strings.HasPrefix(c, text)
			}
			if ok {
				want++
			}
			if masked && e.allowed[id] != ok {
				t.Fatalf("choices %q: token %d (%q) allowed %v, want %v", choices, id, text, e.allowed[id], ok)
			}
			if masked && ok != !math.IsInf(float64(logits[id]), -1) {
				t.Fatalf("choices %q: token %d (%q) has logit %v", choices, id, text, logits[id])
			}
		}
		if masked != (want > 0) {
			t.Fatalf("choices %q: masked %v with %d tokens allowed", choices, masked, want)
		}
		for i := range choices {
			if choices[i] != given[i] {
				t.Fatalf("mask reordered the environment's choices: %q, given %q", choices, given)
			}
		}
	}
}
