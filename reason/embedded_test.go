package reason_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/braid-dev/braid/engine"
	"github.com/braid-dev/braid/models"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/task/countdown"
)

// openEmbedded opens the model this build ships, skipping the test in a
// build that embeds none or in -short runs (it decodes for seconds).
func openEmbedded(t *testing.T) *engine.Engine {
	t.Helper()
	if !models.Has(models.Countdown) {
		t.Skip("this build embeds no Countdown model")
	}
	if testing.Short() {
		t.Skip("decodes with the embedded model for several seconds")
	}
	e, err := engine.OpenFS(models.FS, models.Countdown, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// checkAccounting checks that a result's totals are those of its thread
// tree.
func checkAccounting(t *testing.T, name string, r *reason.Result) {
	t.Helper()
	threads, tokens := 0, 0
	var walk func(*reason.Thread)
	walk = func(th *reason.Thread) {
		if th.Calls > 0 { // a vote's root groups its samples and calls nothing
			threads++
		}
		tokens += th.Tokens
		if th.Filled > th.Tokens {
			t.Errorf("%s: thread #%s: %d of its %d tokens filled", name, th.Node, th.Filled, th.Tokens)
		}
		for _, c := range th.Children {
			walk(c)
		}
	}
	walk(r.Tree)
	if threads != r.Threads || tokens != r.TotalTokens {
		t.Errorf("%s: %d threads of %d tokens in the tree, the result says %d of %d", name, threads, tokens, r.Threads, r.TotalTokens)
	}
	if r.CriticalPathTokens > r.TotalTokens || r.TotalTokens > 0 && r.CriticalPathTokens == 0 {
		t.Errorf("%s: critical path %d of %d tokens", name, r.CriticalPathTokens, r.TotalTokens)
	}
}

// The README's problem, solved the way `braid solve 27 22 26 31 53` solves
// it: parallel search, the environment constraining, greedy.
func TestEmbeddedModelSolvesTheReadmeProblem(t *testing.T) {
	e := openEmbedded(t)
	p := countdown.Problem{Numbers: []int{22, 26, 31, 53}, Target: 27}
	r, err := reason.Search{Options: reason.Options{Env: reason.EnvConstrain}, Effort: task.EffortDeep}.Solve(context.Background(), e, countdown.Task{}, countdown.NewProblem(p), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := countdown.VerifyAnswer(p, r.Answer); err != nil {
		t.Errorf("answer %q: %v", r.Answer, err)
	}
	if r.Threads < 2 || r.CriticalPathTokens >= r.TotalTokens {
		t.Errorf("%d threads, critical path %d of %d tokens: the root never spawned", r.Threads, r.CriticalPathTokens, r.TotalTokens)
	}
	checkAccounting(t, "apr", r)
}

// Every strategy braid solve offers runs on the embedded model, with the
// environment filling and constraining: whatever the model chose, each
// answer it reaches is correct, because the environment did the
// arithmetic. And greedy runs that share the engine's batches give exactly
// the tokens they give alone.
func TestEmbeddedModelStrategies(t *testing.T) {
	e := openEmbedded(t)
	ps := make([]countdown.Problem, 0, 2)
	for p := range countdown.Problems(7, countdown.Test) {
		if ps = append(ps, p); len(ps) == cap(ps) {
			break
		}
	}
	for _, spec := range []string{"direct", "serial", "apr", "vote:k=3", "vote:k=2:apr", "best:k=2"} {
		sampled := strings.Contains(spec, ":k=")
		base := reason.Options{Env: reason.EnvConstrain}
		if sampled {
			base.Temperature, base.Seed = 1, 11
		}
		s, err := reason.Parse(spec, base, countdown.Task{})
		if err != nil {
			t.Fatal(err)
		}
		alone := make([]*reason.Result, len(ps))
		for i, p := range ps {
			if sampled && i > 0 {
				break // the samples of one problem show the strategy; more only cost time
			}
			if alone[i], err = s.Solve(context.Background(), e, countdown.Task{}, countdown.NewProblem(p), nil); err != nil {
				t.Fatalf("%s, problem %v: %v", spec, p, err)
			}
			r := alone[i]
			if r.Answer != "" {
				if err := countdown.VerifyAnswer(p, r.Answer); err != nil {
					t.Errorf("%s, problem %v: the environment let a wrong answer through: %q: %v", spec, p, r.Answer, err)
				}
			}
			checkAccounting(t, spec, r)
		}
		if sampled {
			continue // its seeds make it repeatable, but the point here is greedy batching
		}
		together := make([]*reason.Result, len(ps))
		var wg sync.WaitGroup
		for i, p := range ps {
			wg.Go(func() {
				r, err := s.Solve(context.Background(), e, countdown.Task{}, countdown.NewProblem(p), nil)
				if err != nil {
					t.Errorf("%s, problem %v, batched: %v", spec, p, err)
					return
				}
				together[i] = r
			})
		}
		wg.Wait()
		for i := range ps {
			a, b := alone[i], together[i]
			if b == nil {
				continue
			}
			if a.Answer != b.Answer || a.TotalTokens != b.TotalTokens || a.Tree.Text != b.Tree.Text {
				t.Errorf("%s, problem %v: alone %q in %d tokens, batched %q in %d", spec, ps[i], a.Answer, a.TotalTokens, b.Answer, b.TotalTokens)
			}
		}
	}
}
