package eval

import (
	"context"
	"time"

	"github.com/braid-dev/braid/eval/stats"
)

// AloneLatency is a strategy's latency taken one sample at a time with
// nothing else running: the wall time a user waits for one answer, which
// an evaluation's own concurrent samples hide behind their queueing.
type AloneLatency struct {
	N      int     `json:"n"` // samples timed
	P50MS  float64 `json:"p50_ms"`
	P95MS  float64 `json:"p95_ms"`
	Errors int     `json:"errors,omitempty"` // samples that failed, left out
}

// TimeAlone solves the first n problems (the first seed) of each strategy
// again, one cell at a time, and times each solve. The outcomes are not
// stored: the run's samples stay as they were. A backend with a prefix
// cache may still hold the prompts from the run, as it would a repeated
// request's. A solve that fails is counted, not timed; done, when set, is
// told of each cell.
func TimeAlone(ctx context.Context, strategies []string, problems, n int, solve func(context.Context, Cell) (Outcome, error), done func()) (map[string]AloneLatency, error) {
	out := make(map[string]AloneLatency, len(strategies))
	for _, s := range strategies {
		var ms []float64
		var failed int
		for i := range min(n, problems) {
			start := time.Now()
			_, err := solve(ctx, Cell{Strategy: s, Index: i, Seed: 1})
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != nil {
				failed++
			} else {
				ms = append(ms, float64(time.Since(start).Microseconds())/1000)
			}
			if done != nil {
				done()
			}
		}
		out[s] = AloneLatency{N: len(ms), P50MS: finite(stats.Percentile(ms, 50)), P95MS: finite(stats.Percentile(ms, 95)), Errors: failed}
	}
	return out, nil
}
