package eval

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/store"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestOverthinking(t *testing.T) {
	o := overthinking([]store.Sample{
		{Index: 0, Correct: true, Usage: reason.Usage{TotalTokens: 1000}, TokensToGoal: 400},
		{Index: 1, Correct: true, Usage: reason.Usage{TotalTokens: 3000}, TokensToGoal: 1000},
		{Index: 2, Correct: false, Usage: reason.Usage{TotalTokens: 2000}, TokensToGoal: -1},
	})
	// 600 + 2000 tokens after the goal, of 6000 spent.
	if o.ShareAfterAnswer == nil || !near(*o.ShareAfterAnswer, 2600.0/6000) || o.AnswerFound != 2 || o.Samples != 3 {
		t.Errorf("share after the answer: %+v", o)
	}
	want := []CapAccuracy{{1024, 1.0 / 3, nil}, {2048, 1.0 / 3, nil}, {4096, 2.0 / 3, nil}}
	if len(o.Caps) != len(want) {
		t.Fatalf("caps %+v, want %+v", o.Caps, want)
	}
	for i := range want {
		if o.Caps[i].MaxTokens != want[i].MaxTokens || !near(o.Caps[i].Accuracy, want[i].Accuracy) {
			t.Errorf("cap %d: %+v, want %+v", i, o.Caps[i], want[i])
		}
	}
	// Within 4096, problems score 1, 1, 0: sd 0.57735, se 0.33333,
	// t(0.975, 2) = 4.302653, so the interval is 2/3 ± 1.434 within [0, 1].
	if ci := o.Caps[2].CI95; len(ci) != 2 || ci[0] != 0 || ci[1] != 1 {
		t.Errorf("interval within 4096: %v, want [0, 1]", ci)
	}
	// Free-text math cannot tell when its answer was found.
	m := overthinking([]store.Sample{{Correct: true, Usage: reason.Usage{TotalTokens: 500}, TokensToGoal: -1}})
	if m.ShareAfterAnswer != nil || len(m.Caps) != 1 || m.Caps[0].Accuracy != 1 {
		t.Errorf("math: %+v", m)
	}
	b, _ := json.Marshal(m)
	if !strings.Contains(string(b), `"share_after_answer":null`) {
		t.Errorf("JSON %s", b)
	}
}

func TestRobustness(t *testing.T) {
	var clean, perturbed []store.Sample
	for i := range 4 {
		clean = append(clean, store.Sample{Index: i, Strategy: "serial", Correct: i < 3, Usage: reason.Usage{TotalTokens: 100}})
		perturbed = append(perturbed, store.Sample{Index: i, Strategy: "serial+distractors", Correct: i == 0, Usage: reason.Usage{TotalTokens: 250}})
	}
	r := robustness("distractors", clean, perturbed)
	if r.N != 4 || r.CleanAccuracy != 0.75 || r.PerturbedAccuracy != 0.25 || !near(r.Diff, -0.5) {
		t.Errorf("accuracies: %+v", r)
	}
	if r.ErrorRateRatio == nil || !near(*r.ErrorRateRatio, 3) || r.TokenRatio == nil || !near(*r.TokenRatio, 2.5) {
		t.Errorf("ratios: error %v, tokens %v; want 3 and 2.5", r.ErrorRateRatio, r.TokenRatio)
	}
	if r.PValue == nil || len(r.DiffCI95) != 2 || !(r.DiffCI95[0] < -0.5 && -0.5 < r.DiffCI95[1]) || r.PerturbedCI95[0] != 0 {
		t.Errorf("paired difference: %+v", r)
	}
	// With no clean errors, the ratio of error rates has no value.
	for i := range clean {
		clean[i].Correct = true
	}
	if r := robustness("distractors", clean, perturbed); r.ErrorRateRatio != nil {
		t.Errorf("error-rate ratio %v with no clean errors", *r.ErrorRateRatio)
	}
	// Summarize puts it on the strategy, and keeps perturbed samples out
	// of the clean accuracy.
	rep := Summarize([]string{"serial"}, append(clean, perturbed...))
	if s := rep.Strategies[0]; s.Accuracy != 1 || s.Robustness == nil || s.Robustness.PerturbedAccuracy != 0.25 {
		t.Errorf("summary: %+v", s)
	}
}

// Accuracy under critical-path budgets, and apr against serial at equal
// budgets, on hand-built samples.
func TestCriticalPathBudgets(t *testing.T) {
	sample := func(s string, i int, right bool, cp int) store.Sample {
		return store.Sample{Strategy: s, Index: i, Correct: right, Usage: reason.Usage{TotalTokens: 3 * cp, CriticalPathTokens: cp}, TokensToGoal: -1}
	}
	samples := []store.Sample{
		sample("serial", 0, true, 1000), sample("serial", 1, true, 300), sample("serial", 2, false, 2000),
		sample("apr", 0, true, 400), sample("apr", 1, true, 200), sample("apr", 2, true, 700),
	}
	r := Summarize([]string{"serial", "apr"}, samples)
	serial, apr := r.Strategies[0].CriticalPathCaps, r.Strategies[1].CriticalPathCaps
	wantSerial := map[int]float64{256: 0, 512: 1.0 / 3, 768: 1.0 / 3, 1024: 2.0 / 3, 2048: 2.0 / 3}
	if len(serial) != 8 || serial[7].MaxTokens != 2048 {
		t.Fatalf("serial's budgets %+v, want 256 to 2048 by 256", serial)
	}
	for _, c := range serial {
		if w, ok := wantSerial[c.MaxTokens]; ok && !near(c.Accuracy, w) {
			t.Errorf("serial within %d: %.3f, want %.3f", c.MaxTokens, c.Accuracy, w)
		}
		if c.CI95[0] > c.Accuracy || c.CI95[1] < c.Accuracy {
			t.Errorf("serial within %d: interval %v misses %.3f", c.MaxTokens, c.CI95, c.Accuracy)
		}
	}
	if len(apr) != 3 || !near(apr[0].Accuracy, 1.0/3) || !near(apr[1].Accuracy, 2.0/3) || apr[2].Accuracy != 1 {
		t.Errorf("apr's budgets %+v, want 1/3, 2/3, 1 at 256, 512, 768", apr)
	}
	diffs := r.Paired[0].CriticalPathCaps
	wantDiff := map[int]float64{256: 1.0 / 3, 512: 1.0 / 3, 768: 2.0 / 3, 1024: 1.0 / 3, 2048: 1.0 / 3}
	if len(diffs) != 8 {
		t.Fatalf("paired at %d budgets, want 8: %+v", len(diffs), diffs)
	}
	for _, d := range diffs {
		if w, ok := wantDiff[d.MaxTokens]; ok && !near(d.Diff, w) {
			t.Errorf("apr − serial within %d: %+.3f, want %+.3f", d.MaxTokens, d.Diff, w)
		}
	}
	line := r.Paired[0].CriticalPathLine()
	for _, want := range []string{"apr − serial at equal critical-path budgets", "≤256 +33.3", "≤512 +33.3", "≤1024 +33.3", "≤2048 +33.3"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "≤768") {
		t.Errorf("line %q names a budget that is not a power of two", line)
	}
	// A run whose critical paths pass the last power of two still shows
	// where all of them fit.
	samples = append(samples, sample("apr", 3, true, 2100), sample("serial", 3, false, 1900))
	line = Summarize([]string{"serial", "apr"}, samples).Paired[0].CriticalPathLine()
	// Within 2304: serial right on 2 of 4 problems, apr on all 4.
	if !strings.Contains(line, "≤2048 +25.0") || !strings.Contains(line, "≤2304 +50.0") {
		t.Errorf("line %q lacks the last budget, 2304", line)
	}
}

// Long critical paths get coarser budgets, never more than maxCriticalCaps,
// and the powers of two stay among them.
func TestCriticalCapsStayFew(t *testing.T) {
	caps := criticalCaps([]store.Sample{{Usage: reason.Usage{CriticalPathTokens: 100_000}}})
	if len(caps) > maxCriticalCaps || caps[len(caps)-1] < 100_000 || caps[0] != 2048 {
		t.Errorf("%d budgets from %d to %d", len(caps), caps[0], caps[len(caps)-1])
	}
	if !slices.Contains(caps, 65536) {
		t.Errorf("budgets %v lack 65536", caps)
	}
}
