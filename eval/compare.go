package eval

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/braid-dev/braid/eval/stats"
	"github.com/braid-dev/braid/store"
)

// Comparison is a paired comparison of two sets of samples taken on the
// same problems by different runs: two models, two checkpoints, two
// configurations. Problems are matched by their content, not their place
// in each run's list, so runs of different sizes compare on the problems
// they share.
type Comparison struct {
	A string `json:"a"`
	B string `json:"b"`
	// N is the number of problems both ran; OnlyA and OnlyB count the
	// problems one of them ran and the other did not.
	N         int       `json:"n"`
	OnlyA     int       `json:"only_a"`
	OnlyB     int       `json:"only_b"`
	AccuracyA float64   `json:"accuracy_a"`
	AccuracyB float64   `json:"accuracy_b"`
	CI95A     []float64 `json:"ci95_a"`
	CI95B     []float64 `json:"ci95_b"`
	// Diff is A's accuracy minus B's on the shared problems, with its
	// paired 95% interval and p-value.
	Diff           float64   `json:"diff"`
	DiffCI95       []float64 `json:"diff_ci95"`
	PValue         float64   `json:"p_value"`
	InNoise        bool      `json:"in_noise"`
	ProblemsNeeded int       `json:"problems_needed,omitempty"`
	// Mean tokens per sample on the shared problems, and A's over B's.
	TotalTokensA    float64 `json:"mean_total_tokens_a"`
	TotalTokensB    float64 `json:"mean_total_tokens_b"`
	CriticalTokensA float64 `json:"mean_critical_path_tokens_a"`
	CriticalTokensB float64 `json:"mean_critical_path_tokens_b"`
	ThreadsA        float64 `json:"mean_threads_a"`
	ThreadsB        float64 `json:"mean_threads_b"`
	// Mean wall time of a sample, in milliseconds: what its caller
	// waited, which depends on what else the machine ran (braid eval's
	// --concurrent).
	LatencyA float64 `json:"mean_latency_ms_a"`
	LatencyB float64 `json:"mean_latency_ms_b"`
	// CriticalRatio, TokensRatio and LatencyRatio are A's mean
	// critical-path tokens, total tokens and wall time over B's, each with
	// its paired 95% interval (by problem); absent where B's mean is zero.
	CriticalRatio []float64 `json:"critical_path_ratio,omitempty"`
	TokensRatio   []float64 `json:"total_tokens_ratio,omitempty"`
	LatencyRatio  []float64 `json:"latency_ratio,omitempty"`
}

// ErrNoSharedProblems is returned when two sample sets share no problem.
var ErrNoSharedProblems = errors.New("eval: the two share no problem")

// Compare pairs a's samples with b's by problem and compares their
// accuracy. Each side's samples of one problem (several seeds) count as
// that problem's mean; a and b are named nameA and nameB in the result.
func Compare(nameA string, a []store.Sample, nameB string, b []store.Sample) (Comparison, error) {
	c := Comparison{A: nameA, B: nameB}
	ga, gb := byProblem(a), byProblem(b)
	var shared []string
	for p := range ga {
		if _, ok := gb[p]; ok {
			shared = append(shared, p)
		} else {
			c.OnlyA++
		}
	}
	for p := range gb {
		if _, ok := ga[p]; !ok {
			c.OnlyB++
		}
	}
	if len(shared) == 0 {
		return c, ErrNoSharedProblems
	}
	// In a fixed order: the sums must not depend on map order.
	slices.Sort(shared)
	c.N = len(shared)
	var x, y []float64
	var sa, sb [][]float64
	var tokA, tokB, critA, critB, thrA, thrB, latA, latB []float64
	var pTokA, pTokB, pCritA, pCritB, pLatA, pLatB []float64 // per problem, for the ratios
	for _, p := range shared {
		ra, rb := scores(ga[p]), scores(gb[p])
		sa, sb = append(sa, ra), append(sb, rb)
		x, y = append(x, mean(ra)), append(y, mean(rb))
		for _, s := range ga[p] {
			tokA, critA, thrA = append(tokA, float64(s.TotalTokens)), append(critA, float64(s.CriticalPathTokens)), append(thrA, float64(s.Threads))
			latA = append(latA, float64(s.LatencyMS))
		}
		for _, s := range gb[p] {
			tokB, critB, thrB = append(tokB, float64(s.TotalTokens)), append(critB, float64(s.CriticalPathTokens)), append(thrB, float64(s.Threads))
			latB = append(latB, float64(s.LatencyMS))
		}
		na, nb := len(ga[p]), len(gb[p])
		pTokA, pCritA, pLatA = append(pTokA, mean(tokA[len(tokA)-na:])), append(pCritA, mean(critA[len(critA)-na:])), append(pLatA, mean(latA[len(latA)-na:]))
		pTokB, pCritB, pLatB = append(pTokB, mean(tokB[len(tokB)-nb:])), append(pCritB, mean(critB[len(critB)-nb:])), append(pLatB, mean(latB[len(latB)-nb:]))
	}
	ca, cb := stats.Clustered(sa), stats.Clustered(sb)
	c.AccuracyA, c.CI95A = ca.Estimate, []float64{ca.Low, ca.High}
	c.AccuracyB, c.CI95B = cb.Estimate, []float64{cb.Low, cb.High}
	p, err := stats.Compare(x, y)
	if err != nil {
		return c, fmt.Errorf("eval: compare %s with %s: %w", nameA, nameB, err)
	}
	c.Diff, c.DiffCI95, c.PValue = p.Diff.Estimate, []float64{p.Diff.Low, p.Diff.High}, p.PValue
	c.InNoise = p.Diff.Low <= 0 && 0 <= p.Diff.High
	if c.InNoise {
		c.ProblemsNeeded = stats.ProblemsToDetect(p.Diff.Estimate, p.SD)
	}
	c.TotalTokensA, c.TotalTokensB = mean(tokA), mean(tokB)
	c.CriticalTokensA, c.CriticalTokensB = mean(critA), mean(critB)
	c.ThreadsA, c.ThreadsB = mean(thrA), mean(thrB)
	c.LatencyA, c.LatencyB = mean(latA), mean(latB)
	ratio := func(a, b []float64) []float64 {
		r, err := stats.RatioOfMeans(a, b)
		if err != nil {
			return nil
		}
		return []float64{r.Estimate, r.Low, r.High}
	}
	c.CriticalRatio, c.TokensRatio, c.LatencyRatio = ratio(pCritA, pCritB), ratio(pTokA, pTokB), ratio(pLatA, pLatB)
	return c, nil
}

// byProblem groups samples by their problem's content.
func byProblem(samples []store.Sample) map[string][]store.Sample {
	by := map[string][]store.Sample{}
	for _, s := range samples {
		by[string(s.Problem)] = append(by[string(s.Problem)], s)
	}
	return by
}

// scores are the samples' correctness as 0 or 1, in seed order.
func scores(samples []store.Sample) []float64 {
	ordered := slices.SortedFunc(slices.Values(samples), func(a, b store.Sample) int {
		return cmp.Compare(a.Seed, b.Seed)
	})
	out := make([]float64, len(ordered))
	for i, s := range ordered {
		out[i] = bool01(s.Correct)
	}
	return out
}

// Strategies lists the strategies samples were taken with, perturbed
// twins included, in order.
func Strategies(samples []store.Sample) []string {
	set := map[string]bool{}
	for _, s := range samples {
		set[s.Strategy] = true
	}
	return slices.Sorted(maps.Keys(set))
}
