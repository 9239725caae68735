package countdown

import "testing"

// randomProblems returns n problems of the standard number range, solvable or
// not: the check a generator runs per draw.
func randomProblems(n int) []Problem {
	rng := NewRand(1, 77, 0)
	ps := make([]Problem, n)
	for i := range ps {
		ps[i] = Problem{Numbers: []int{1 + rng.IntN(99), 1 + rng.IntN(99), 1 + rng.IntN(99), 1 + rng.IntN(99)}, Target: 10 + rng.IntN(91)}
	}
	return ps
}

// BenchmarkSolvability checks random problems (solvable or not) with the
// solver and with the test oracle (impl=brute), which builds every expression
// value by splitting the numbers into two parts: the reference the solver's
// speed is quoted against. One op is one problem.
func BenchmarkSolvability(b *testing.B) {
	ps := randomProblems(10_000)
	for _, impl := range []struct {
		name  string
		solve func(Problem) bool
	}{
		{"solver", Solvable},
		{"brute", func(p Problem) bool { return bruteValues(p.Numbers)[p.Target] }},
	} {
		b.Run("impl="+impl.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				impl.solve(ps[i%len(ps)])
				i++
			}
		})
	}
}

// BenchmarkDrawProblem measures drawing one solvable train problem.
func BenchmarkDrawProblem(b *testing.B) {
	rng := NewRand(1, 78, 0)
	for b.Loop() {
		DrawProblem(rng, Train)
	}
}

func benchmarkTraces(b *testing.B, format Mode) {
	ps := take(9, Test, 1000)
	cfg := TraceConfig{Format: format}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := cfg.Generate(ps[i%len(ps)], 9, i); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkGenerateSerial(b *testing.B)   { benchmarkTraces(b, ModeSerial) }
func BenchmarkGenerateParallel(b *testing.B) { benchmarkTraces(b, ModeParallel) }

// BenchmarkVerifyTrace verifies serial traces of the test split.
func BenchmarkVerifyTrace(b *testing.B) {
	ps := take(9, Test, 200)
	texts := make([]string, len(ps))
	bytes := 0
	for i, p := range ps {
		rec, err := TraceConfig{Format: ModeSerial}.Generate(p, 9, i)
		if err != nil {
			b.Fatal(err)
		}
		texts[i] = rec.Text
		bytes += len(rec.Text)
	}
	b.SetBytes(int64(bytes / len(texts)))
	i := 0
	for b.Loop() {
		if _, err := VerifyTrace(ps[i%len(ps)], texts[i%len(ps)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
