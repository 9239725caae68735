package eval

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/braid-dev/braid/eval/stats"
	"github.com/braid-dev/braid/store"
)

// Robustness compares a strategy on perturbed problems with the same
// strategy on the clean ones, paired by problem.
type Robustness struct {
	Perturbation      string    `json:"perturbation"`
	N                 int       `json:"n"` // problems run both ways
	CleanAccuracy     float64   `json:"clean_accuracy"`
	PerturbedAccuracy float64   `json:"perturbed_accuracy"`
	PerturbedCI95     []float64 `json:"perturbed_ci95"`
	// Diff is perturbed minus clean accuracy, with its paired interval and
	// p-value.
	Diff     float64   `json:"diff"`
	DiffCI95 []float64 `json:"diff_ci95,omitempty"`
	PValue   *float64  `json:"p_value,omitempty"`
	// ErrorRateRatio is the perturbed error rate over the clean one
	// (2 means twice the errors); null when the clean run made none.
	ErrorRateRatio *float64 `json:"error_rate_ratio"`
	// TokenRatio is the perturbed mean total tokens over the clean mean;
	// null when the clean run spent none.
	TokenRatio              *float64 `json:"token_ratio"`
	CleanMeanTokens         float64  `json:"clean_mean_tokens"`
	PerturbedMeanTokens     float64  `json:"perturbed_mean_tokens"`
	CleanTokensPerCorrect   float64  `json:"clean_tokens_per_correct"`
	PerturbedTokensPerRight float64  `json:"perturbed_tokens_per_correct"`
}

// Overthinking says how much of a strategy's spending bought nothing.
type Overthinking struct {
	// ShareAfterAnswer is, of all the tokens the strategy spent, the share
	// spent after the answer was first found (Countdown: the first Goal
	// Reached in any thread); null when no sample found it, or the task
	// cannot tell (free-text math).
	ShareAfterAnswer *float64 `json:"share_after_answer"`
	// AnswerFound counts the samples in which the answer was found at
	// some point, of Samples.
	AnswerFound int `json:"answer_found"`
	Samples     int `json:"samples"`
	// Caps is the accuracy the strategy would have had under each cap on
	// a sample's total tokens: a sample counts as right only if it was
	// right and finished within the cap.
	Caps []CapAccuracy `json:"accuracy_under_caps"`
}

// CapAccuracy is the accuracy under one token cap; CI95, where given, is
// its 95% interval clustered by problem.
type CapAccuracy struct {
	MaxTokens int       `json:"max_tokens"`
	Accuracy  float64   `json:"accuracy"`
	CI95      []float64 `json:"ci95,omitempty"`
}

// overthinking computes a strategy's overthinking figures; caps run 1k,
// 2k, 4k, ... up to the first that holds every sample.
func overthinking(samples []store.Sample) Overthinking {
	o := Overthinking{Samples: len(samples)}
	var spent, after, most int
	for _, x := range samples {
		most = max(most, x.TotalTokens)
		spent += x.TotalTokens
		if x.TokensToGoal >= 0 {
			o.AnswerFound++
			after += max(0, x.TotalTokens-x.TokensToGoal)
		}
	}
	if o.AnswerFound > 0 && spent > 0 {
		share := float64(after) / float64(spent)
		o.ShareAfterAnswer = &share
	}
	if len(samples) == 0 {
		return o
	}
	for c := 1024; ; c *= 2 {
		ci := clusteredWithin(samples, func(x store.Sample) bool { return x.TotalTokens <= c })
		o.Caps = append(o.Caps, CapAccuracy{MaxTokens: c, Accuracy: ci.Estimate, CI95: []float64{ci.Low, ci.High}})
		if c >= most {
			return o
		}
	}
}

// within scores each problem's samples 1 when right and fitting (a
// budget), 0 otherwise, by problem.
func within(samples []store.Sample, fits func(store.Sample) bool) map[int][]float64 {
	by := map[int][]float64{}
	for _, x := range samples {
		by[x.Index] = append(by[x.Index], bool01(x.Correct && fits(x)))
	}
	return by
}

// criticalWithin says whether a sample's critical path fits budget.
func criticalWithin(budget int) func(store.Sample) bool {
	return func(x store.Sample) bool { return x.CriticalPathTokens <= budget }
}

// clusteredWithin is the accuracy, with its interval clustered by problem,
// when a sample counts only if it is right and fits (a budget).
func clusteredWithin(samples []store.Sample, fits func(store.Sample) bool) stats.Interval {
	by := within(samples, fits)
	scores := make([][]float64, 0, len(by))
	for _, i := range slices.Sorted(maps.Keys(by)) {
		scores = append(scores, by[i])
	}
	return stats.Clustered(scores)
}

// criticalStep is the finest spacing of critical-path budgets: fine enough
// to compare a serial chain with a parallel run's longest thread, which
// differ by hundreds of tokens. maxCriticalCaps bounds their number: long
// chains (a remote reasoning model's tens of thousands of tokens) get a
// coarser step.
const (
	criticalStep    = 256
	maxCriticalCaps = 64
)

// criticalCaps are the critical-path budgets for samples: every step
// tokens up to the first that holds them all, the step criticalStep times
// the power of two that keeps them within maxCriticalCaps (so every power
// of two from the step on is a budget).
func criticalCaps(samples ...[]store.Sample) []int {
	most := 0
	for _, ss := range samples {
		for _, x := range ss {
			most = max(most, x.CriticalPathTokens)
		}
	}
	step := criticalStep
	for most > step*maxCriticalCaps {
		step *= 2
	}
	var caps []int
	for c := step; ; c += step {
		caps = append(caps, c)
		if c >= most {
			return caps
		}
	}
}

// criticalPathCaps is the accuracy under each critical-path budget.
func criticalPathCaps(samples []store.Sample, caps []int) []CapAccuracy {
	if len(samples) == 0 {
		return nil
	}
	var out []CapAccuracy
	for _, c := range caps {
		ci := clusteredWithin(samples, criticalWithin(c))
		out = append(out, CapAccuracy{MaxTokens: c, Accuracy: ci.Estimate, CI95: []float64{ci.Low, ci.High}})
	}
	return out
}

// criticalPathDiffs compares a with b under each critical-path budget,
// paired by problem (each problem's mean over its samples).
func criticalPathDiffs(a, b []store.Sample) []CapDiff {
	if len(a) == 0 || len(b) == 0 {
		return nil
	}
	var out []CapDiff
	for _, c := range criticalCaps(a, b) {
		am, bm := within(a, criticalWithin(c)), within(b, criticalWithin(c))
		var x, y []float64
		for _, i := range slices.Sorted(maps.Keys(am)) {
			if w, ok := bm[i]; ok {
				x, y = append(x, mean(am[i])), append(y, mean(w))
			}
		}
		p, err := stats.Compare(x, y)
		if err != nil {
			return nil
		}
		out = append(out, CapDiff{MaxTokens: c, Diff: p.Diff.Estimate, CI95: []float64{p.Diff.Low, p.Diff.High}, PValue: p.PValue})
	}
	return out
}

// robustness pairs a strategy's clean samples with its perturbed ones by
// problem.
func robustness(kind string, clean, perturbed []store.Sample) Robustness {
	r := Robustness{Perturbation: kind}
	cm, pm := problemMeans(clean), problemMeans(perturbed)
	var a, b []float64 // paired: perturbed, clean
	var scores [][]float64
	byProblem := map[int][]float64{}
	for _, x := range perturbed {
		byProblem[x.Index] = append(byProblem[x.Index], bool01(x.Correct))
	}
	for _, i := range slices.Sorted(maps.Keys(pm)) {
		if c, ok := cm[i]; ok {
			a, b = append(a, pm[i]), append(b, c)
			scores = append(scores, byProblem[i])
		}
	}
	r.N = len(a)
	if r.N == 0 {
		return r
	}
	// Costs over the paired problems only, like the accuracies: a run
	// still going has problems on one side alone.
	paired := func(xs []store.Sample, other map[int]float64) []store.Sample {
		var out []store.Sample
		for _, x := range xs {
			if _, ok := other[x.Index]; ok {
				out = append(out, x)
			}
		}
		return out
	}
	clean, perturbed = paired(clean, pm), paired(perturbed, cm)
	r.CleanAccuracy, r.PerturbedAccuracy = mean(b), mean(a)
	ci := stats.Clustered(scores)
	r.PerturbedCI95 = []float64{ci.Low, ci.High}
	r.Diff = r.PerturbedAccuracy - r.CleanAccuracy
	if p, err := stats.Compare(a, b); err == nil {
		r.DiffCI95 = []float64{p.Diff.Low, p.Diff.High}
		pv := p.PValue
		r.PValue = &pv
	}
	if e := 1 - r.CleanAccuracy; e > 0 {
		v := (1 - r.PerturbedAccuracy) / e
		r.ErrorRateRatio = &v
	}
	r.CleanMeanTokens, r.PerturbedMeanTokens = meanTokens(clean), meanTokens(perturbed)
	if r.CleanMeanTokens > 0 {
		v := r.PerturbedMeanTokens / r.CleanMeanTokens
		r.TokenRatio = &v
	}
	r.CleanTokensPerCorrect, r.PerturbedTokensPerRight = tokensPerCorrect(clean), tokensPerCorrect(perturbed)
	return r
}

// problemMeans is each problem's mean correctness.
func problemMeans(samples []store.Sample) map[int]float64 {
	sum, n := map[int]float64{}, map[int]int{}
	for _, x := range samples {
		sum[x.Index] += bool01(x.Correct)
		n[x.Index]++
	}
	for i := range sum {
		sum[i] /= float64(n[i])
	}
	return sum
}

func meanTokens(samples []store.Sample) float64 {
	t := make([]float64, len(samples))
	for i, x := range samples {
		t[i] = float64(x.TotalTokens)
	}
	return mean(t)
}

// tokensPerCorrect is the tokens spent per right answer, 0 with none.
func tokensPerCorrect(samples []store.Sample) float64 {
	total, right := 0, 0
	for _, x := range samples {
		total += x.TotalTokens
		if x.Correct {
			right++
		}
	}
	if right == 0 {
		return 0
	}
	return float64(total) / float64(right)
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// DiffLine says how a compares with b: the difference in points with its
// 95% interval and p-value, and, when the interval holds 0, that it is
// inside the noise and how many problems would show a difference this
// size (needed, when known).
func DiffLine(a, b string, diff float64, ci []float64, p float64, inNoise bool, needed int) string {
	line := fmt.Sprintf("%s − %s: %+.1f points (95%% CI %+.1f to %+.1f), %s", a, b, 100*diff, 100*ci[0], 100*ci[1], stats.FormatP(p))
	if inNoise {
		line += " — inside the noise"
		if needed > 0 {
			line += fmt.Sprintf("; about %d problems would show a difference this size", needed)
		}
	}
	return line
}

// PassLine says a strategy's pass@k and maj@k with their 95% intervals,
// for each k it has ("" when its samples do not repeat).
func (s StrategyReport) PassLine() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(s.PassAtK)) {
		pc, mc := s.PassAtKCI95[k], s.MajAtKCI95[k]
		parts = append(parts, fmt.Sprintf("pass@%d %s (%s–%s), maj@%d %s (%s–%s)", k, Percent(s.PassAtK[k]), Percent(pc[0]), Percent(pc[1]),
			k, Percent(s.MajAtK[k]), Percent(mc[0]), Percent(mc[1])))
	}
	if len(parts) == 0 {
		return ""
	}
	return s.Name + ": " + strings.Join(parts, "; ")
}

// Percent writes a proportion as a percentage with one decimal, as every
// figure braid reports does.
func Percent(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) }

// Line is DiffLine for a paired report.
func (p PairedReport) Line() string {
	return DiffLine(p.A, p.B, p.Diff, p.CI95, p.PValue, p.InNoise, p.ProblemsNeeded)
}

// Line is DiffLine for a comparison of two runs.
func (c Comparison) Line() string {
	return DiffLine(c.A, c.B, c.Diff, c.DiffCI95, c.PValue, c.InNoise, c.ProblemsNeeded)
}

// CriticalPathLine says how A and B compare at equal critical-path budgets,
// at the budgets that are powers of two and the last one, which holds
// every sample (where a parallel run's longer critical path has all fit);
// "" when there are none. The curves themselves are in the JSON and the
// report's chart.
func (p PairedReport) CriticalPathLine() string {
	var parts []string
	for i, c := range p.CriticalPathCaps {
		if c.MaxTokens&(c.MaxTokens-1) != 0 && i != len(p.CriticalPathCaps)-1 {
			continue
		}
		parts = append(parts, fmt.Sprintf("≤%d %+.1f (95%% CI %+.1f to %+.1f)", c.MaxTokens, 100*c.Diff, 100*c.CI95[0], 100*c.CI95[1]))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("%s − %s at equal critical-path budgets, points: %s", p.A, p.B, strings.Join(parts, ", "))
}
