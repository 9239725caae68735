package stats

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.6g, want %.6g (±%g)", what, got, want, tol)
	}
}

// Reference values: R's qt(0.975, df), and pt(q, df) checked by integrating the density.
func TestStudentT(t *testing.T) {
	near(t, "qt(0.975, 1)", tQuantile(0.975, 1), 12.7062047, 1e-5)
	near(t, "qt(0.975, 9)", tQuantile(0.975, 9), 2.2621572, 1e-6)
	near(t, "qt(0.975, 499)", tQuantile(0.975, 499), 1.9647293, 1e-6)
	near(t, "pt(2.5, 20)", tCDF(2.5, 20), 0.9893832, 1e-6)
	near(t, "pt(-1, 3)", tCDF(-1, 3), 0.1955011, 1e-6)
}

func TestWilson(t *testing.T) {
	// R: prop.test(50, 100, correct=FALSE)$conf.int
	w := Wilson(50, 100)
	near(t, "low", w.Low, 0.4038315, 1e-6)
	near(t, "high", w.High, 0.5961685, 1e-6)
	if w := Wilson(0, 10); w.Low != 0 || w.High <= 0 || w.High >= 0.5 {
		t.Errorf("0 of 10: %+v", w)
	}
}

// A run that solves none of 500 problems (or all) does not know the
// accuracy exactly: its interval is Wilson's, z²/(n+z²) = 0.0076 wide.
func TestIntervalWhenEveryProblemScoresTheSame(t *testing.T) {
	none, all := make([][]float64, 500), make([][]float64, 500)
	for i := range none {
		none[i], all[i] = []float64{0}, []float64{1, 1}
	}
	z2 := z95 * z95
	if c := Clustered(none); c.Estimate != 0 || c.Low != 0 || math.Abs(c.High-z2/(500+z2)) > 1e-12 {
		t.Errorf("0 of 500: %+v, want 0 to %.6f", c, z2/(500+z2))
	}
	if c := Clustered(all); c.Estimate != 1 || c.High != 1 || math.Abs(c.Low-500/(500+z2)) > 1e-12 {
		t.Errorf("500 of 500: %+v, want %.6f to 1", c, 500/(500+z2))
	}
}

func TestClusteredIsWiderThanPooled(t *testing.T) {
	// Ten problems, eight samples each, all-or-nothing: the samples of a
	// problem agree, so there are ten observations, not eighty.
	var scores [][]float64
	for i := range 10 {
		s := make([]float64, 8)
		for j := range s {
			if i < 5 {
				s[j] = 1
			}
		}
		scores = append(scores, s)
	}
	c := Clustered(scores)
	pooled := Wilson(40, 80)
	near(t, "estimate", c.Estimate, 0.5, 1e-12)
	if c.High-c.Low <= pooled.High-pooled.Low {
		t.Errorf("clustered interval %.3f wide, pooled %.3f", c.High-c.Low, pooled.High-pooled.Low)
	}
	// R: t.test(c(rep(1,5), rep(0,5)))$conf.int = 0.1226..0.8774
	near(t, "low", c.Low, 0.1226, 1e-3)
}

func TestCompare(t *testing.T) {
	a := []float64{1, 1, 1, 0, 1, 1, 0, 1, 1, 1}
	b := []float64{0, 1, 0, 0, 1, 0, 0, 1, 0, 1}
	p, err := Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	// R: t.test(a, b, paired=TRUE): mean 0.4, p = 0.0368, CI 0.0305..0.7695
	near(t, "diff", p.Diff.Estimate, 0.4, 1e-12)
	near(t, "p", p.PValue, 0.03682, 1e-4)
	near(t, "low", p.Diff.Low, 0.0305, 1e-3)
	if _, err := Compare(a, b[:3]); err == nil {
		t.Error("lists of different lengths compared")
	}
	same, _ := Compare(a, a)
	if same.PValue != 1 {
		t.Errorf("identical scores: p = %g", same.PValue)
	}
	// Two problems, +1 and 0: the t interval (0.5 ± 6.35) stays within
	// what a difference of accuracies can be.
	if few, _ := Compare([]float64{1, 1}, []float64{0, 1}); few.Diff.Low != -1 || few.Diff.High != 1 {
		t.Errorf("interval %+v reaches past ±1", few.Diff)
	}
}

func TestFormatP(t *testing.T) {
	for p, want := range map[float64]string{0.0368: "p = 0.0368", 0.5: "p = 0.5", 2e-7: "p < 1e-6", 0: "p < 1e-6"} {
		if got := FormatP(p); got != want {
			t.Errorf("FormatP(%g) = %q, want %q", p, got, want)
		}
	}
}

func TestPassAtK(t *testing.T) {
	near(t, "pass@1", PassAtK(10, 3, 1), 0.3, 1e-12)
	near(t, "pass@10", PassAtK(10, 1, 10), 1, 1e-12)
	// 1 − C(7,2)/C(10,2) = 1 − 21/45
	near(t, "pass@2", PassAtK(10, 3, 2), 1-21.0/45, 1e-12)
	near(t, "none correct", PassAtK(8, 0, 4), 0, 1e-12)
	if !math.IsNaN(PassAtK(3, 1, 4)) {
		t.Error("k > n gave a number")
	}
}

func TestMajAtK(t *testing.T) {
	correct := map[int]bool{0: true}
	// Three samples answer 0 (right), one answers 1: any 3 of 4 hold at
	// least two 0s, so maj@3 is 1; maj@1 is 3/4.
	answers := []int{0, 0, 0, 1}
	near(t, "maj@3", MajAtK(answers, correct, 3), 1, 1e-12)
	near(t, "maj@1", MajAtK(answers, correct, 1), 0.75, 1e-12)
	// Ties are wrong: two 0s and two 1s at k=4.
	near(t, "tie", MajAtK([]int{0, 0, 1, 1}, correct, 4), 0, 1e-12)
	// Large n uses drawn subsets, reproducibly.
	big := make([]int, 60)
	for i := range big {
		big[i] = i % 3 // 0 right a third of the time, others split
	}
	x, y := MajAtK(big, correct, 15), MajAtK(big, correct, 15)
	if x != y || x <= 0 || x >= 1 {
		t.Errorf("drawn maj@15 = %g then %g", x, y)
	}
}

func TestProblemsToDetect(t *testing.T) {
	// sd 0.5, diff 0.1: ((1.96+0.84)·5)² ≈ 196.2
	if n := ProblemsToDetect(0.1, 0.5); n != 197 {
		t.Errorf("n = %d, want 197", n)
	}
	if ProblemsToDetect(0, 1) != 0 {
		t.Error("a zero difference")
	}
}

func TestPercentile(t *testing.T) {
	x := []float64{5, 1, 3, 2, 4}
	near(t, "p50", Percentile(x, 50), 3, 1e-12)
	near(t, "p95", Percentile(x, 95), 4.8, 1e-12)
	if !math.IsNaN(Percentile(nil, 50)) {
		t.Error("no data")
	}
}

func TestMeanMedianNearestRank(t *testing.T) {
	for _, c := range []struct {
		name                  string
		x                     []float64
		mean, median, p95, p5 float64
	}{
		{"one", []float64{7}, 7, 7, 7, 7},
		{"odd", []float64{5, 1, 3, 2, 4}, 3, 3, 5, 1},
		{"even", []float64{4, 1, 3, 2}, 2.5, 2.5, 4, 1},
		{"twenty", []float64{20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 10.5, 10.5, 19, 1},
	} {
		x := slices.Clone(c.x)
		near(t, c.name+" mean", Mean(x), c.mean, 1e-12)
		near(t, c.name+" median", Median(x), c.median, 0)
		near(t, c.name+" nearest-rank p95", NearestRank(x, 95), c.p95, 0)
		near(t, c.name+" nearest-rank p5", NearestRank(x, 5), c.p5, 0)
		if !slices.Equal(x, c.x) {
			t.Errorf("%s: the data were reordered: %v", c.name, x)
		}
	}
	for name, f := range map[string]func([]float64) float64{
		"mean": Mean, "median": Median, "nearest rank": func(x []float64) float64 { return NearestRank(x, 50) },
	} {
		if !math.IsNaN(f(nil)) {
			t.Errorf("%s of no data is not NaN", name)
		}
	}
}

func TestBootstrap(t *testing.T) {
	x := []float64{1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1}
	b := Bootstrap(x, 4000, 1)
	m, half := meanInterval(x)
	near(t, "estimate", b.Estimate, m, 1e-12)
	// The bootstrap and the t interval agree to a few points here.
	near(t, "low", b.Low, m-half, 0.04)
	near(t, "high", b.High, m+half, 0.04)
	if b != Bootstrap(x, 4000, 1) {
		t.Error("the same seed gave another interval")
	}
}

// The intervals cover the true value about 95% of the time: simulated
// evaluations on problems drawn from a population whose solve rates are
// uniform, so the true accuracy, what an evaluation estimates, is 0.5.
func TestIntervalsCover(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	const trials = 2000
	wilson, clustered := 0, 0
	for range trials {
		// 100 problems of varying difficulty, 4 samples each.
		var scores [][]float64
		k, n := 0, 0
		const truth = 0.5
		for range 100 {
			p := rng.Float64()
			s := make([]float64, 4)
			for j := range s {
				if rng.Float64() < p {
					s[j] = 1
				}
			}
			scores = append(scores, s)
			if s[0] == 1 {
				k++
			}
			n++
		}
		// One sample per problem: the Wilson interval of pass@1.
		if w := Wilson(k, n); w.Low <= truth && truth <= w.High {
			wilson++
		}
		if c := Clustered(scores); c.Low <= truth && truth <= c.High {
			clustered++
		}
	}
	for name, hits := range map[string]int{"Wilson": wilson, "clustered": clustered} {
		if cover := float64(hits) / trials; cover < 0.93 || cover > 0.97 {
			t.Errorf("%s intervals cover the truth %.3f of the time, want about 0.95", name, cover)
		}
	}
}

func TestAUROC(t *testing.T) {
	s := func(score float64, pos bool) Scored { return Scored{score, pos} }
	near(t, "separated", AUROC([]Scored{s(1, false), s(2, false), s(3, true), s(4, true)}), 1, 0)
	near(t, "inverted", AUROC([]Scored{s(1, true), s(2, false)}), 0, 0)
	// Positives 2 and 4 against negatives 1 and 3: 3 of the 4 pairs are
	// ordered right.
	near(t, "mixed", AUROC([]Scored{s(1, false), s(2, true), s(3, false), s(4, true)}), 0.75, 1e-12)
	near(t, "ties count half", AUROC([]Scored{s(1, true), s(1, false)}), 0.5, 0)
	if !math.IsNaN(AUROC([]Scored{s(1, true)})) {
		t.Error("an AUROC without negatives")
	}
	var clusters [][]Scored
	for i := range 40 {
		clusters = append(clusters, []Scored{s(float64(i%7), i%3 == 0), s(float64(i%5)+2, true), s(float64(i%4), false)})
	}
	iv := AUROCInterval(clusters, 500, 1)
	if !(iv.Low < iv.Estimate && iv.Estimate < iv.High) || iv.Low < 0 || iv.High > 1 {
		t.Errorf("interval %+v", iv)
	}
}

// The ratio of paired means: by hand on four problems, exact where one
// side is a multiple of the other, refused over a mean of zero, and with
// the coverage it claims on paired lengths whose true ratio is known.
func TestRatioOfMeans(t *testing.T) {
	r, err := RatioOfMeans([]float64{1, 2, 3, 4}, []float64{2, 2, 4, 4})
	if err != nil {
		t.Fatal(err)
	}
	// R = 2.5/3; residuals ∓2/3, ±1/3; se = √(10/9/12)/3; t(0.975, 3).
	half := 3.182446305284263 * math.Sqrt(10.0/9/12) / 3
	near(t, "ratio", r.Estimate, 2.5/3, 1e-12)
	near(t, "low", r.Low, 2.5/3-half, 1e-9)
	near(t, "high", r.High, 2.5/3+half, 1e-9)
	if r, _ := RatioOfMeans([]float64{3, 5, 9}, []float64{1.5, 2.5, 4.5}); r.Low != 2 || r.High != 2 {
		t.Errorf("an exact multiple: %+v, want 2 to 2", r)
	}
	if _, err := RatioOfMeans([]float64{1, 2}, []float64{0, 0}); err == nil {
		t.Error("a ratio over zero went through")
	}
	if _, err := RatioOfMeans([]float64{1}, []float64{1, 2}); err == nil {
		t.Error("unpaired lengths went through")
	}
	// Problems of lengths spread over an order of magnitude, the second
	// side 0.7 of the first and noise of its own: the interval holds 0.7
	// about 95% of the time.
	rng := rand.New(rand.NewPCG(5, 5))
	covered, reps := 0, 2000
	for range reps {
		a, b := make([]float64, 200), make([]float64, 200)
		for i := range b {
			base := 300 + 3000*rng.Float64()
			b[i] = base * (1 + 0.3*rng.NormFloat64())
			a[i] = 0.7 * base * (1 + 0.3*rng.NormFloat64())
		}
		r, err := RatioOfMeans(a, b)
		if err != nil {
			t.Fatal(err)
		}
		if r.Low <= 0.7 && 0.7 <= r.High {
			covered++
		}
	}
	if c := float64(covered) / float64(reps); c < 0.93 || c > 0.97 {
		t.Errorf("covered the true ratio %.1f%% of the time, want about 95%%", 100*c)
	}
}
