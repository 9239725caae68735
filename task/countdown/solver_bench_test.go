package countdown

import "testing"

// BenchmarkSolvable measures the solver on random problems (solvable or not)
// of the standard number range: the check a generator runs per draw.
func BenchmarkSolvable(b *testing.B) {
	rng := NewRand(1, 77, 0)
	ps := make([]Problem, 4096)
	for i := range ps {
		ps[i] = Problem{Numbers: []int{1 + rng.IntN(99), 1 + rng.IntN(99), 1 + rng.IntN(99), 1 + rng.IntN(99)}, Target: 10 + rng.IntN(91)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		Solvable(ps[i%len(ps)])
	}
}

// BenchmarkDrawProblem measures drawing one train problem.
func BenchmarkDrawProblem(b *testing.B) {
	rng := NewRand(1, 78, 0)
	for b.Loop() {
		DrawProblem(rng, Train)
	}
}
