package reason

import (
	"context"
	"testing"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/task/countdown"
)

// instant answers each prompt at once with its rollout's completion: a
// backend that costs nothing, so that what a benchmark measures is the
// strategy's own work.
type instant map[string]string

func (r instant) Complete(_ context.Context, req *backend.Request) (*backend.Completion, error) {
	c := r[req.Prompt]
	if req.OnChunk != nil {
		req.OnChunk(backend.Chunk{Text: c, Tokens: make([]backend.Token, len(c))})
	}
	return &backend.Completion{Text: c, Finish: backend.FinishStop, Usage: backend.Usage{CompletionTokens: len(c)}}, nil
}

// overheadFixture is a parallel rollout that spawns: the instant backend
// that replays it, and its calls in the order a runtime makes them.
func overheadFixture(b *testing.B) (countdown.Problem, instant, []*backend.Request, int) {
	for i, p := range problems(40) {
		rec, err := countdown.TraceConfig{Format: countdown.ModeParallel, ModeHeader: true}.Generate(p, 21, i)
		if err != nil {
			b.Fatal(err)
		}
		if rec.Children < 4 {
			continue
		}
		r := instant{}
		var calls []*backend.Request
		for _, s := range rec.Sequences {
			r[s.Prompt] = s.Completion
			calls = append(calls, &backend.Request{Prompt: s.Prompt})
		}
		return p, r, calls, rec.Children + 1
	}
	b.Fatal("no rollout with 4 children")
	return countdown.Problem{}, nil, nil, 0
}

// BenchmarkAPRRuntime runs the apr strategy over a backend that costs
// nothing: the runtime's work per run (spawn parsing, child prompts,
// joins, goroutines, the tree, token accounting).
func BenchmarkAPRRuntime(b *testing.B) {
	p, r, _, threads := overheadFixture(b)
	s := Search{Options: Options{Env: EnvOff}, Effort: task.EffortDeep}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cdSolve(context.Background(), r, s, p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(threads), "threads")
}

// BenchmarkDirectCalls makes the same calls to the same backend directly,
// one after another: the floor the runtime's overhead is measured from.
func BenchmarkDirectCalls(b *testing.B) {
	_, r, calls, threads := overheadFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		for _, req := range calls {
			if _, err := r.Complete(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(threads), "threads")
}
