package eval

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/store"
)

// Two runs compared by problem content, not by place: B lists its
// problems in another order and has one A lacks.
func TestCompareRuns(t *testing.T) {
	problem := func(i int) []byte { return fmt.Appendf(nil, `{"numbers":[%d,2,3,4],"target":10}`, i) }
	s := func(p int, seed uint64, right bool, tokens int) store.Sample {
		return store.Sample{Problem: problem(p), Index: p, Seed: seed, Correct: right, Usage: reason.Usage{TotalTokens: tokens, CriticalPathTokens: tokens / 2, Threads: 2,
			LatencyMS: int64(tokens) * 3}}
	}
	a := []store.Sample{s(1, 1, true, 100), s(1, 2, false, 300), s(2, 1, true, 100), s(3, 1, true, 100), s(4, 1, false, 400)}
	b := []store.Sample{s(5, 1, true, 10), s(4, 1, false, 50), s(3, 1, false, 50), s(2, 1, false, 50), s(1, 1, true, 50)}
	for i := range b {
		b[i].Index = 10 - i // B's list is in another order
	}
	c, err := Compare("rl/apr", a, "sft/apr", b)
	if err != nil {
		t.Fatal(err)
	}
	if c.N != 4 || c.OnlyA != 0 || c.OnlyB != 1 {
		t.Errorf("paired %d problems, %d only in A, %d only in B; want 4, 0, 1", c.N, c.OnlyA, c.OnlyB)
	}
	// A: problem 1 half right over two seeds, 2 and 3 right: 2.5/4. B: 1/4.
	if !near(c.AccuracyA, 0.625) || !near(c.AccuracyB, 0.25) || !near(c.Diff, 0.375) {
		t.Errorf("accuracies %g and %g, difference %g; want 0.625, 0.25, 0.375", c.AccuracyA, c.AccuracyB, c.Diff)
	}
	// Differences −0.5, 1, 1, 0: sd 0.75, se 0.375, t = 1 on 3 degrees of
	// freedom, two-sided p = 0.391; the interval ±3.182·0.375.
	if math.Abs(c.PValue-0.391) > 0.001 || math.Abs(c.DiffCI95[0]-(0.375-3.1824*0.375)) > 0.001 || !c.InNoise {
		t.Errorf("p = %g, interval %v, in the noise %v", c.PValue, c.DiffCI95, c.InNoise)
	}
	if !near(c.TotalTokensA, 200) || !near(c.TotalTokensB, 50) || !near(c.CriticalTokensA, 100) || !near(c.ThreadsB, 2) {
		t.Errorf("tokens %g and %g, critical path %g, threads %g", c.TotalTokensA, c.TotalTokensB, c.CriticalTokensA, c.ThreadsB)
	}
	// Critical paths by problem: A's 100 (two seeds), 50, 50, 200; B's 25
	// each: 4 times as long, A's spread putting the interval about it.
	if r := c.CriticalRatio; len(r) != 3 || !near(r[0], 4) || !(r[1] < 4 && 4 < r[2]) {
		t.Errorf("critical path ratio %v, want 4 within its interval", r)
	}
	if r := c.TokensRatio; len(r) != 3 || !near(r[0], 4) {
		t.Errorf("total tokens ratio %v, want 4", r)
	}
	if r := c.LatencyRatio; len(r) != 3 || !near(r[0], 4) || !near(c.LatencyA, 600) || !near(c.LatencyB, 150) {
		t.Errorf("wall times %g and %g ms, ratio %v; want 600, 150, 4", c.LatencyA, c.LatencyB, r)
	}
	if _, err := Compare("a", a[:1], "b", b[:1]); !errors.Is(err, ErrNoSharedProblems) {
		t.Errorf("no shared problem: %v", err)
	}
}
