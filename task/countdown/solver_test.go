package countdown

import (
	"fmt"
	"slices"
	"testing"
)

// bruteValues returns every value an expression tree over all of nums can
// take under the rules (intermediate results non-negative integers,
// subtraction larger-smaller, exact division with a non-zero divisor): an
// oracle built by splitting the multiset into two non-empty parts, unlike the
// solver's pairwise reduction.
func bruteValues(nums []int) map[int]bool {
	out := make(map[int]bool)
	if len(nums) == 1 {
		out[nums[0]] = true
		return out
	}
	n := len(nums)
	for mask := 1; mask < 1<<n-1; mask++ {
		var left, right []int
		for i, v := range nums {
			if mask&(1<<i) != 0 {
				left = append(left, v)
			} else {
				right = append(right, v)
			}
		}
		for a := range bruteValues(left) {
			for b := range bruteValues(right) {
				out[a+b] = true
				out[a*b] = true
				if a >= b {
					out[a-b] = true
					if b != 0 && a%b == 0 {
						out[a/b] = true
					}
				}
			}
		}
	}
	return out
}

func TestSolverAgreesWithBruteForce(t *testing.T) {
	rng := NewRand(2, 1000, 0)
	solvable := 0
	for i := range 3000 {
		p := Problem{Target: 10 + rng.IntN(91)}
		count := 4
		if i%5 == 0 {
			count = 3 // a few smaller problems as well
		}
		for range count {
			p.Numbers = append(p.Numbers, 1+rng.IntN(99))
		}
		want := bruteValues(p.Numbers)[p.Target]
		if got := Solvable(p); got != want {
			t.Fatalf("%v: Solvable = %v, brute force says %v", p, got, want)
		}
		sol, ok := Solve(p)
		if ok != want {
			t.Fatalf("%v: Solve found a solution = %v, brute force says %v", p, ok, want)
		}
		if !ok {
			if r := SolveAll(p, 0); len(r.Solutions) != 0 || r.States == 0 {
				t.Fatalf("%v: SolveAll = %d solutions over %d states, want a proof of none", p, len(r.Solutions), r.States)
			}
			continue
		}
		solvable++
		e, err := PathExpression(p.Numbers, sol)
		if err != nil {
			t.Fatalf("%v: solution %v: %v", p, sol, err)
		}
		if err := VerifyAnswer(p, e.String()); err != nil {
			t.Fatalf("%v: solution %s rejected: %v", p, e, err)
		}
	}
	if solvable < 300 {
		t.Fatalf("only %d of 3000 random problems solvable: the test lost its power", solvable)
	}
}

func TestSolveAllFindsDistinctSolutions(t *testing.T) {
	p := Problem{Numbers: []int{4, 9, 3, 1}, Target: 24}
	r := SolveAll(p, 0)
	if len(r.Solutions) < 5 {
		t.Fatalf("found %d solutions of %v, want several", len(r.Solutions), p)
	}
	seen := make(map[string]bool)
	for _, sol := range r.Solutions {
		e, err := PathExpression(p.Numbers, sol)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyAnswer(p, e.String()); err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		if seen[e.canonical()] {
			t.Fatalf("%s listed twice", e)
		}
		seen[e.canonical()] = true
	}
	if got := SolveAll(p, 2); len(got.Solutions) != 2 {
		t.Fatalf("limit 2 gave %d solutions", len(got.Solutions))
	}
}

func TestSolveKnownCases(t *testing.T) {
	for _, tc := range []struct {
		p  Problem
		ok bool
	}{
		{Problem{Numbers: []int{22, 26, 31, 53}, Target: 27}, true},
		{Problem{Numbers: []int{1, 1, 1, 1}, Target: 99}, false},
		{Problem{Numbers: []int{5, 5}, Target: 0}, true},  // 5-5
		{Problem{Numbers: []int{7, 3}, Target: 2}, false}, // 7/3 is not exact
		{Problem{Numbers: []int{99, 99, 99, 99}, Target: 96059601}, true},
	} {
		t.Run(fmt.Sprint(tc.p), func(t *testing.T) {
			if _, ok := Solve(tc.p); ok != tc.ok {
				t.Fatalf("Solve = %v, want %v", ok, tc.ok)
			}
		})
	}
}

func TestCombineOrderMatchesTheGenerators(t *testing.T) {
	got := func(a, b int) []string {
		var s []string
		for _, o := range Combine(a, b) {
			s = append(s, o.String())
		}
		return s
	}
	for _, tc := range []struct {
		a, b int
		want []string
	}{
		{53, 22, []string{"53+22=75", "53*22=1166", "53-22=31"}},
		{22, 44, []string{"22+44=66", "22*44=968", "44-22=22", "44/22=2"}},
		{5, 5, []string{"5+5=10", "5*5=25", "5-5=0", "5/5=1"}},
		{0, 7, []string{"0+7=7", "0*7=0", "7-0=7"}},
	} {
		if g := got(tc.a, tc.b); !slices.Equal(g, tc.want) {
			t.Errorf("Combine(%d, %d) = %v, want %v", tc.a, tc.b, g, tc.want)
		}
	}
}
