package countdown

import (
	"iter"
	"math"
	"slices"
	"strings"
	"testing"
)

func take(seed uint64, split Split, n int) []Problem {
	var out []Problem
	for p := range Problems(seed, split) {
		if out = append(out, p); len(out) == n {
			break
		}
	}
	return out
}

func TestProblemsFollowTheStandardDistribution(t *testing.T) {
	const n = 20000
	ps := take(11, Train, n)
	targets := make(map[int]int)
	numbers := make(map[int]int)
	for _, p := range ps {
		if len(p.Numbers) != StandardCount {
			t.Fatalf("%v has %d numbers", p, len(p.Numbers))
		}
		for _, x := range p.Numbers {
			if x < MinNumber || x > MaxNumber {
				t.Fatalf("%v: number %d outside %d..%d", p, x, MinNumber, MaxNumber)
			}
			numbers[x]++
		}
		if p.Target < MinTarget || p.Target > MaxTarget {
			t.Fatalf("%v: target outside %d..%d", p, MinTarget, MaxTarget)
		}
		targets[p.Target]++
		if !Solvable(p) {
			t.Fatalf("%v is not solvable", p)
		}
	}
	// The target is drawn first and uniformly; the numbers are redrawn for
	// it. A chi-square test over the 91 targets (90 degrees of freedom: the
	// 0.001 critical value is 137.2) would fail for a skewed draw, for
	// example one that redraws the target on an unsolvable set.
	cells := MaxTarget - MinTarget + 1
	want := float64(n) / float64(cells)
	chi := 0.0
	for tg := MinTarget; tg <= MaxTarget; tg++ {
		d := float64(targets[tg]) - want
		chi += d * d / want
	}
	if chi > 137.2 {
		t.Errorf("targets are not uniform: chi-square %.1f over %d cells", chi, cells)
	}
	if len(numbers) != MaxNumber-MinNumber+1 {
		t.Errorf("only %d distinct numbers appear in %d problems", len(numbers), n)
	}
	// Redrawing until solvable favours small numbers (they combine into more
	// values), so the mean number lies below the uniform 50; an unconditioned
	// draw would sit within a fraction of a point of 50.
	sum := 0
	for x, c := range numbers {
		sum += x * c
	}
	if m := float64(sum) / float64(4*n); m > 48.5 || m < 30 {
		t.Errorf("mean number %.2f: the draw is not conditioned on solvability as expected", m)
	}
}

func TestProblemsAreDeterministicAndPrefixStable(t *testing.T) {
	a := take(5, Test, 200)
	b := take(5, Test, 50)
	if !slices.EqualFunc(a[:50], b, func(x, y Problem) bool { return x.Key() == y.Key() && slices.Equal(x.Numbers, y.Numbers) }) {
		t.Fatal("the first 50 problems of a seed differ between runs of 50 and 200")
	}
	c := take(6, Test, 50)
	same := 0
	for i := range c {
		if c[i].Key() == b[i].Key() {
			same++
		}
	}
	if same > 2 {
		t.Fatalf("seeds 5 and 6 share %d of 50 problems", same)
	}
}

func TestProblemsAreDistinct(t *testing.T) {
	seen := make(map[string]bool)
	for _, p := range take(3, Train, 10000) {
		if seen[p.Key()] {
			t.Fatalf("%v appears twice", p)
		}
		seen[p.Key()] = true
	}
}

func TestSplitsAreDisjoint(t *testing.T) {
	train := make(map[string]bool)
	for _, seed := range []uint64{1, 2} {
		for _, p := range take(seed, Train, 10000) {
			if SplitOf(p) != Train {
				t.Fatalf("train problem %v hashes to the test split", p)
			}
			train[p.Key()] = true
		}
	}
	for _, seed := range []uint64{1, 2, 3} {
		for _, p := range take(seed, Test, 2000) {
			if train[p.Key()] {
				t.Fatalf("test problem %v (seed %d) is in a train set", p, seed)
			}
			// The key ignores the order of the numbers.
			r := slices.Clone(p.Numbers)
			slices.Reverse(r)
			if SplitOf(Problem{Numbers: r, Target: p.Target}) != Test {
				t.Fatalf("reordering %v changes its split", p)
			}
		}
	}
}

func TestTestSplitIsATenth(t *testing.T) {
	rng := NewRand(1, 99, 0)
	test := 0
	const n = 100000
	for range n {
		p := Problem{Numbers: []int{1 + rng.IntN(99), 1 + rng.IntN(99), 1 + rng.IntN(99), 1 + rng.IntN(99)}, Target: 10 + rng.IntN(91)}
		if SplitOf(p) == Test {
			test++
		}
	}
	if share := float64(test) / n; math.Abs(share-0.1) > 0.005 {
		t.Fatalf("test share %.4f, want 0.1", share)
	}
}

func TestProblemValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Problem
		ok   bool
	}{
		{"standard", Problem{Numbers: []int{22, 26, 31, 53}, Target: 27}, true},
		{"two numbers", Problem{Numbers: []int{2, 3}, Target: 6}, true},
		{"one number", Problem{Numbers: []int{2}, Target: 2}, false},
		{"seven numbers", Problem{Numbers: []int{1, 2, 3, 4, 5, 6, 7}, Target: 2}, false},
		{"zero", Problem{Numbers: []int{0, 2, 3}, Target: 2}, false},
		{"too large", Problem{Numbers: []int{10001, 2}, Target: 2}, false},
		{"negative target", Problem{Numbers: []int{1, 2}, Target: -1}, false},
	} {
		if err := tc.p.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v", tc.name, err)
		}
	}
}

func TestParseProblemJSON(t *testing.T) {
	p, err := ParseProblemJSON([]byte(`{"numbers":[22,26,31,53],"target":27}`))
	if err != nil || p.Target != 27 || !slices.Equal(p.Numbers, []int{22, 26, 31, 53}) {
		t.Fatalf("got %v, %v", p, err)
	}
	for _, bad := range []string{`{"target":27}`, `{"numbers":[1],"target":3}`, `{"numbers":"x"}`, `not json`} {
		if _, err := ParseProblemJSON([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// reachable says whether target can be made from nums by the rules, by a
// search of its own (every pair, every operation Combine allows, down to
// one number): an independent check of the solver.
func reachable(nums []int, target int) bool {
	if len(nums) == 1 {
		return nums[0] == target
	}
	for i := range nums {
		for j := i + 1; j < len(nums); j++ {
			rest := make([]int, 0, len(nums)-1)
			for k, v := range nums {
				if k != i && k != j {
					rest = append(rest, v)
				}
			}
			for _, o := range Combine(nums[i], nums[j]) {
				if reachable(append(rest, o.Result), target) {
					return true
				}
			}
		}
	}
	return false
}

// Unsolvable problems are unsolvable by a search other than the solver's,
// of their split, distinct, the same for a seed whatever their number,
// their targets spread over the standard range, and none of them among
// the solvable problems' stream.
func TestUnsolvableProblems(t *testing.T) {
	var got []Problem
	for p := range UnsolvableProblems(4, Test) {
		if got = append(got, p); len(got) == 300 {
			break
		}
	}
	seen, targets := map[string]bool{}, map[int]bool{}
	for _, p := range got {
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		if reachable(p.Numbers, p.Target) {
			t.Fatalf("%v can be solved", p)
		}
		if SplitOf(p) != Test {
			t.Fatalf("%v is in the train split", p)
		}
		if seen[p.Key()] {
			t.Fatalf("%v appears twice", p)
		}
		seen[p.Key()] = true
		targets[p.Target] = true
	}
	if len(targets) < 40 {
		t.Errorf("300 unsolvable problems have only %d distinct targets", len(targets))
	}
	var again []Problem
	for p := range UnsolvableProblems(4, Test) {
		if again = append(again, p); len(again) == 20 {
			break
		}
	}
	if !slices.EqualFunc(got[:20], again, func(x, y Problem) bool { return slices.Equal(x.Numbers, y.Numbers) && x.Target == y.Target }) {
		t.Error("the first 20 unsolvable problems of a seed differ between runs")
	}
	for i, p := range take(4, Test, 300) {
		if seen[p.Key()] {
			t.Errorf("%v is both solvable and not", p)
		}
		if i < 50 && !reachable(p.Numbers, p.Target) { // the check can say yes
			t.Fatalf("the independent search finds no way to solve %v", p)
		}
	}
}

// Validation problems: solvable, of the test split (no training run draws
// them), distinct, the same for the same seed, none among the seed's first
// ValidationReserve test problems, and not the test problems' sequence.
func TestValidationProblems(t *testing.T) {
	first := func(seq iter.Seq[Problem], n int) []Problem {
		var out []Problem
		for p := range seq {
			if out = append(out, p); len(out) == n {
				break
			}
		}
		return out
	}
	test := map[string]bool{}
	for _, p := range first(Problems(2, Test), ValidationReserve) {
		test[p.Key()] = true
	}
	val := first(Problems(2, Validation), 500)
	seen := map[string]bool{}
	for _, p := range val {
		if err := p.Validate(); err != nil || !Solvable(p) || SplitOf(p) != Test {
			t.Fatalf("%v: %v, solvable %v, split %v", p, err, Solvable(p), SplitOf(p))
		}
		if test[p.Key()] || seen[p.Key()] {
			t.Fatalf("%v is a test problem of the seed or appears twice", p)
		}
		seen[p.Key()] = true
	}
	if again := first(Problems(2, Validation), 20); !slices.EqualFunc(again, val[:20], func(a, b Problem) bool { return a.Key() == b.Key() }) {
		t.Error("validation problems differ between two draws of one seed")
	}
	for _, p := range first(UnsolvableProblems(2, Validation), 50) {
		if SplitOf(p) != Test || Solvable(p) {
			t.Fatalf("unsolvable validation problem %v: split %v, solvable %v", p, SplitOf(p), Solvable(p))
		}
	}
	for _, name := range []string{"train", "test", "validation"} {
		if s, err := ParseSplit(name); err != nil || s.String() != name {
			t.Errorf("ParseSplit(%q) = %v, %v", name, s, err)
		}
	}
	if _, err := ParseSplit("val"); err == nil || !strings.Contains(err.Error(), "validation") {
		t.Errorf("an unknown split's error: %v", err)
	}
}

// apart passes over exactly the reserved problems, however they are
// placed in the stream.
func TestApartPassesOverTheReserve(t *testing.T) {
	mk := func(targets ...int) iter.Seq[Problem] {
		return func(yield func(Problem) bool) {
			for _, tg := range targets {
				if !yield(Problem{Numbers: []int{1, 2, 3, 4}, Target: tg}) {
					return
				}
			}
		}
	}
	var got []int
	for p := range apart(mk(10, 11, 12, 13, 14), mk(13, 10, 99)) {
		got = append(got, p.Target)
	}
	if !slices.Equal(got, []int{11, 12, 14}) {
		t.Errorf("apart yielded %v, want [11 12 14]", got)
	}
}
