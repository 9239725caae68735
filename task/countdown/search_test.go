package countdown

import (
	"testing"
	"time"
)

// naiveMult is the public generators' mult_heuristic, written as plainly as
// they do: the reference for scorer.
func naiveMult(nums []int, target int) float64 {
	s := 0
	for _, n := range nums {
		best := abs(n - target)
		for f := 2; f <= target; f++ {
			if target%f == 0 {
				best = min(best, abs(n-f))
			}
		}
		s += best
	}
	return float64(s)
}

func TestScorerMatchesTheNaiveHeuristics(t *testing.T) {
	rng := NewRand(4, 4, 4)
	for range 20000 {
		target := rng.IntN(3000)
		nums := make([]int, 1+rng.IntN(4))
		for i := range nums {
			nums[i] = rng.IntN(5000)
		}
		if got, want := newScorer(MultHeuristic, target).score(nums), naiveMult(nums, target); got != want {
			t.Fatalf("mult(%v, %d) = %v, want %v", nums, target, got, want)
		}
	}
	if got := newScorer(SumHeuristic, 27).score([]int{22, 26, 31, 53}); got != (5+1+4+26)/4.0 {
		t.Fatalf("sum heuristic = %v", got)
	}
	if got := newScorer(SumHeuristic, 27).score([]int{30}); got != 3 {
		t.Fatalf("sum heuristic of one number = %v", got)
	}
}

func TestLargeTargetsStayFast(t *testing.T) {
	p := Problem{Numbers: []int{9999, 9998, 9997, 9996}, Target: MaxInputTarget}
	start := time.Now()
	for _, f := range []Mode{ModeSerial, ModeParallel} {
		if _, err := (TraceConfig{Format: f, BeamMin: 5, BeamMax: 5}).Generate(p, 1, 0); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("searches for target %d took %v", MaxInputTarget, d)
	}
	if err := (Problem{Numbers: []int{3, 4}, Target: MaxInputTarget + 1}).Validate(); err == nil {
		t.Fatal("a target above the limit was accepted")
	}
}

func TestBigNumbersRoundTrip(t *testing.T) {
	// Large inputs make intermediate results of 10+ digits; traces of them
	// must still verify.
	for _, p := range []Problem{
		{Numbers: []int{5000, 4000, 3000, 2}, Target: 3000},
		{Numbers: []int{9999, 9998, 9997, 9996, 9995}, Target: 999999},
	} {
		for _, f := range []Mode{ModeSerial, ModeParallel} {
			for i := range 30 {
				rec, err := TraceConfig{Format: f}.Generate(p, 1, i)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range rec.Sequences {
					if _, err := VerifyTrace(p, s.Prompt+s.Completion); err != nil {
						t.Fatalf("%v %s #%d, sequence %s/%d: %v", p, f, i, s.Thread, s.Call, err)
					}
				}
			}
		}
	}
}
