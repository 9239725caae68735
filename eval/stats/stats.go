// Package stats is the arithmetic of honest evaluation: confidence
// intervals for accuracies (clustered by problem when samples repeat),
// paired differences between strategies with their p-values, the unbiased
// pass@k and maj@k estimators, the number of problems a difference
// needs to be seen, and the means, medians and percentiles that describe
// a set of measurements.
package stats

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// z95 is the standard normal quantile of a two-sided 95% interval.
const z95 = 1.959963984540054

// Interval is an estimate with its 95% confidence interval.
type Interval struct {
	Estimate, Low, High float64
}

// Wilson is the Wilson score interval of k successes in n trials: unlike
// the normal one it stays inside [0, 1] and works near 0% and 100%.
func Wilson(k, n int) Interval {
	if n <= 0 {
		return Interval{0, 0, 1}
	}
	return wilson(float64(k)/float64(n), float64(n))
}

// wilson is the Wilson interval of a proportion p observed over n.
func wilson(p, nf float64) Interval {
	den := 1 + z95*z95/nf
	mid := (p + z95*z95/(2*nf)) / den
	half := z95 * math.Sqrt(p*(1-p)/nf+z95*z95/(4*nf*nf)) / den
	return Interval{p, math.Max(0, mid-half), math.Min(1, mid+half)}
}

// Clustered is the accuracy over problems whose samples repeat: scores[i]
// holds problem i's samples (1 correct, 0 not). The estimate is the mean
// of per-problem means, each problem weighing the same, and the interval
// treats problems, not samples, as the independent units (samples of one
// problem are correlated: counting them as independent would make the
// interval too narrow). It uses Student's t on the per-problem means.
func Clustered(scores [][]float64) Interval {
	means := make([]float64, 0, len(scores))
	for _, s := range scores {
		if len(s) > 0 {
			means = append(means, Mean(s))
		}
	}
	return OverProblems(means)
}

// OverProblems is the mean of one score per problem in [0, 1] (its
// accuracy, or its pass@k or maj@k estimate) with the 95% Student's t
// interval that takes the problems as the independent units.
func OverProblems(scores []float64) Interval {
	m, half := meanInterval(scores)
	if half == 0 && len(scores) > 1 {
		// Every problem scored the same (0 of 500 solved, say): the t
		// interval collapses to the point, which claims a certainty 500
		// problems cannot give. Wilson's interval on the problems does
		// not collapse (0 of 500: 0 to 0.76%).
		return wilson(m, float64(len(scores)))
	}
	// A score lies in [0, 1]: a t interval on few problems can reach past
	// either end, which says nothing more than the end itself.
	return Interval{m, max(0, m-half), min(1, m+half)}
}

// meanInterval is the mean of x and the half-width of its 95% t interval.
func meanInterval(x []float64) (float64, float64) {
	n := len(x)
	if n == 0 {
		return 0, 0
	}
	m := Mean(x)
	if n < 2 {
		return m, math.Inf(1)
	}
	var ss float64
	for _, v := range x {
		ss += (v - m) * (v - m)
	}
	se := math.Sqrt(ss / float64(n-1) / float64(n))
	return m, tQuantile(0.975, float64(n-1)) * se
}

// Paired compares two strategies on the same problems: a[i] and b[i] are
// their scores on problem i (an accuracy over its samples). It returns the
// mean difference a−b with its 95% t interval and the two-sided p-value
// of the paired t-test that the difference is zero.
type Paired struct {
	Diff   Interval
	PValue float64
	// SD is the standard deviation of the per-problem differences, which
	// a power analysis needs.
	SD float64
	N  int
}

// ErrLengths is returned for score lists of different lengths.
var ErrLengths = errors.New("stats: paired scores need one score per problem on each side")

// Compare runs the paired comparison.
func Compare(a, b []float64) (Paired, error) {
	if len(a) != len(b) || len(a) == 0 {
		return Paired{}, ErrLengths
	}
	d := make([]float64, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
	}
	m, half := meanInterval(d)
	// Scores lie in [0, 1], so their difference in [−1, 1].
	p := Paired{Diff: Interval{m, max(-1, m-half), min(1, m+half)}, N: len(d)}
	if len(d) < 2 {
		p.PValue = 1
		return p, nil
	}
	var ss float64
	for _, v := range d {
		ss += (v - m) * (v - m)
	}
	p.SD = math.Sqrt(ss / float64(len(d)-1))
	se := p.SD / math.Sqrt(float64(len(d)))
	switch {
	case se == 0 && m == 0:
		p.PValue = 1
	case se == 0:
		p.PValue = 0
	default:
		p.PValue = 2 * (1 - tCDF(math.Abs(m/se), float64(len(d)-1)))
	}
	return p, nil
}

// RatioOfMeans is mean(a)/mean(b) for paired measurements (a[i] and b[i]
// of problem i: two models' critical paths, say) with its 95% interval by
// the delta method, Student's t on the problems: the ratio's variance is
// that of the per-problem residuals a[i] − R·b[i], over mean(b)². Pairing
// is what makes it narrow: a problem that is long for both moves both.
func RatioOfMeans(a, b []float64) (Interval, error) {
	if len(a) != len(b) || len(a) == 0 {
		return Interval{}, ErrLengths
	}
	ma, mb := Mean(a), Mean(b)
	if mb == 0 {
		return Interval{}, errors.New("stats: a ratio over a mean of zero")
	}
	r := ma / mb
	n := len(a)
	if n < 2 {
		return Interval{r, math.Inf(-1), math.Inf(1)}, nil
	}
	var ss float64
	for i := range a {
		d := a[i] - r*b[i]
		ss += d * d
	}
	se := math.Sqrt(ss/float64(n-1)/float64(n)) / math.Abs(mb)
	half := tQuantile(0.975, float64(n-1)) * se
	return Interval{r, r - half, r + half}, nil
}

// FormatP writes a p-value for people: "p = 0.0123", and below 1e-6,
// where the t distribution's tail is past what the arithmetic resolves,
// "p < 1e-6" rather than a meaningless "p = 0".
func FormatP(p float64) string {
	if p < 1e-6 {
		return "p < 1e-6"
	}
	return fmt.Sprintf("p = %.3g", p)
}

// ProblemsToDetect is the number of problems a paired comparison needs to
// see a difference diff with 80% power at the 5% level, when per-problem
// differences spread with standard deviation sd: n = ((z₀.₉₇₅+z₀.₈)·sd/diff)².
func ProblemsToDetect(diff, sd float64) int {
	if diff == 0 || sd == 0 {
		return 0
	}
	const z80 = 0.8416212335729143
	n := math.Pow((z95+z80)*sd/diff, 2)
	return int(math.Ceil(n))
}

// PassAtK is the unbiased estimator of pass@k from n samples of which c
// are correct: 1 − C(n−c, k)/C(n, k), the chance that k of the n samples,
// drawn without replacement, hold at least one correct (Chen et al.,
// 2021). It needs k ≤ n.
func PassAtK(n, c, k int) float64 {
	if k <= 0 || k > n || c < 0 || c > n {
		return math.NaN()
	}
	if n-c < k {
		return 1
	}
	// C(n−c, k)/C(n, k) = Π_{i=n−c+1}^{n} (1 − k/i), stable for any n.
	q := 1.0
	for i := n - c + 1; i <= n; i++ {
		q *= 1 - float64(k)/float64(i)
	}
	return 1 - q
}

// MajAtK estimates maj@k from n samples: the chance that the most common
// answer among k samples drawn without replacement is a correct one.
// answers[i] is sample i's answer class (equal classes are one answer;
// negative for no answer) and correct[class] says whether a class is
// right; a tie for the most common answer counts as wrong, the
// conservative reading. It averages over every k-subset when
// there are at most 20,000, else over 20,000 drawn with a fixed seed (so
// the same samples always give the same estimate).
func MajAtK(answers []int, correct map[int]bool, k int) float64 {
	n := len(answers)
	if k <= 0 || k > n {
		return math.NaN()
	}
	const budget = 20000
	wins, total := 0.0, 0
	subset := make([]int, k)
	judge := func(idx []int) {
		counts := map[int]int{}
		for _, i := range idx {
			if a := answers[i]; a >= 0 {
				counts[a]++
			}
		}
		best, top, tie := -1, 0, false
		for a, c := range counts {
			switch {
			case c > top:
				best, top, tie = a, c, false
			case c == top:
				tie = true
			}
		}
		if best >= 0 && !tie && correct[best] {
			wins++
		}
		total++
	}
	if binom(n, k) <= budget {
		for i := range subset {
			subset[i] = i
		}
		for {
			judge(subset)
			// The next combination in lexicographic order.
			i := k - 1
			for i >= 0 && subset[i] == n-k+i {
				i--
			}
			if i < 0 {
				break
			}
			subset[i]++
			for j := i + 1; j < k; j++ {
				subset[j] = subset[j-1] + 1
			}
		}
	} else {
		rng := rand.New(rand.NewPCG(uint64(n), uint64(k)))
		perm := make([]int, n)
		for range budget {
			for i := range perm {
				perm[i] = i
			}
			for i := range k { // a partial shuffle picks k distinct samples
				j := i + rng.IntN(n-i)
				perm[i], perm[j] = perm[j], perm[i]
			}
			judge(perm[:k])
		}
	}
	return wins / float64(total)
}

// binom is C(n, k) as a float, large values saturating.
func binom(n, k int) float64 {
	r := 1.0
	for i := 1; i <= k; i++ {
		r = r * float64(n-k+i) / float64(i)
		if r > 1e18 {
			return math.Inf(1)
		}
	}
	return r
}

// Mean is the arithmetic mean of x; NaN for no data.
func Mean(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// Median is the middle of x, or the mean of the two middle values for an
// even count; NaN for no data. x is left as it was.
func Median(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	s := sorted(x)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Percentile is the p-th percentile (0..100) of x by linear interpolation
// between order statistics; NaN for no data.
func Percentile(x []float64, p float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	s := sorted(x)
	r := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(r))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (s[hi]-s[lo])*(r-float64(lo))
}

// NearestRank is the p-th percentile (0..100) of x by the nearest-rank
// method: the smallest value of x that at least p% of x is at or below.
// Unlike Percentile it is always one of the data, so a percentile of
// whole numbers stays whole; NaN for no data.
func NearestRank(x []float64, p float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	s := sorted(x)
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(k, len(s)-1))]
}

// sorted is a sorted copy of x.
func sorted(x []float64) []float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	return s
}

// Bootstrap is the percentile bootstrap interval of the mean of x, from
// resamples draws with a fixed seed (the same data give the same
// interval): it makes no assumption about x's distribution, and so checks
// the t intervals.
func Bootstrap(x []float64, resamples int, seed uint64) Interval {
	if len(x) == 0 || resamples <= 0 {
		return Interval{math.NaN(), math.NaN(), math.NaN()}
	}
	rng := rand.New(rand.NewPCG(seed, uint64(len(x))))
	means := make([]float64, resamples)
	for r := range means {
		var s float64
		for range x {
			s += x[rng.IntN(len(x))]
		}
		means[r] = s / float64(len(x))
	}
	return Interval{Mean(x), Percentile(means, 2.5), Percentile(means, 97.5)}
}

// Scored is one prediction: a score and whether the event it predicts
// happened (for confidence: whether the thread succeeded).
type Scored struct {
	Score    float64
	Positive bool
}

// AUROC is the area under the ROC curve of the scores: the chance that a
// positive scores above a negative, ties counting half (the Mann-Whitney
// U over the product of the counts). NaN scores are left out; NaN without
// both kinds.
func AUROC(x []Scored) float64 {
	s := slices.DeleteFunc(slices.Clone(x), func(v Scored) bool { return math.IsNaN(v.Score) })
	slices.SortFunc(s, func(a, b Scored) int { return cmp.Compare(a.Score, b.Score) })
	var pos, neg, rankSum float64
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j].Score == s[i].Score {
			j++
		}
		rank := float64(i+j+1) / 2 // the tied scores' mean rank, from 1
		for _, v := range s[i:j] {
			if v.Positive {
				pos++
				rankSum += rank
			} else {
				neg++
			}
		}
		i = j
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// AUROCInterval is AUROC with a percentile bootstrap interval over
// clusters (an evaluation's problems: threads of one problem are not
// independent), from resamples draws with a fixed seed.
func AUROCInterval(clusters [][]Scored, resamples int, seed uint64) Interval {
	var all []Scored
	for _, c := range clusters {
		all = append(all, c...)
	}
	est := AUROC(all)
	if math.IsNaN(est) || resamples <= 0 {
		return Interval{est, math.NaN(), math.NaN()}
	}
	rng := rand.New(rand.NewPCG(seed, uint64(len(clusters))))
	var draws []float64
	var pick []Scored
	for range resamples {
		pick = pick[:0]
		for range clusters {
			pick = append(pick, clusters[rng.IntN(len(clusters))]...)
		}
		if a := AUROC(pick); !math.IsNaN(a) {
			draws = append(draws, a)
		}
	}
	return Interval{est, Percentile(draws, 2.5), Percentile(draws, 97.5)}
}
