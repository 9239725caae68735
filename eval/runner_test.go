package eval

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/task/countdown"
	taskmath "github.com/braid-dev/braid/task/math"
)

// solver answers every Countdown prompt with the solution path, and notes
// the prompts and seeds it was given.
type solver struct {
	p       countdown.Problem
	mu      sync.Mutex
	prompts []string
	seeds   []uint64
}

func (s *solver) Complete(_ context.Context, req *backend.Request) (*backend.Completion, error) {
	s.mu.Lock()
	s.prompts = append(s.prompts, req.Prompt)
	s.seeds = append(s.seeds, req.Seed)
	s.mu.Unlock()
	sol, _ := countdown.Solve(s.p)
	text := strings.TrimPrefix(countdown.DirectTrace(s.p, sol), countdown.RootPrompt(s.p, countdown.ModeDirect))
	return &backend.Completion{Text: text, Finish: backend.FinishStop, Usage: backend.Usage{PromptTokens: 7, CompletionTokens: len(text)}}, nil
}

func TestRunnerTakesCellsOfAnyTask(t *testing.T) {
	cp := countdown.Problem{Numbers: []int{22, 26, 31, 53}, Target: 27}
	b := &solver{p: cp}
	r := Runner{Task: countdown.Task{}, Backend: b, Problems: []task.Problem{countdown.NewProblem(cp)}, Options: reason.Options{Env: reason.EnvOff}}
	o, err := r.Solve(context.Background(), Cell{Strategy: "direct", Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !o.Correct || o.Class != "target" || o.Threads != 1 || o.PromptTokens != 7 || o.TotalTokens == 0 || o.Tree == nil {
		t.Errorf("outcome %+v", o)
	}
	if b.seeds[0] != 0 {
		t.Errorf("a greedy cell sampled with seed %d", b.seeds[0])
	}
	// The decoy misleads a search; a direct answer has none to mislead.
	for _, perturb := range []string{"", "distractors"} {
		if _, err := r.Solve(context.Background(), Cell{Strategy: "serial", Perturb: perturb}); err != nil {
			t.Fatal(err)
		}
	}
	if b.prompts[2] == b.prompts[1] {
		t.Error("the perturbed cell was given the clean prompt")
	}
	if err := r.Check([]string{"direct", "serial", "apr", "vote:k=2"}, "distractors"); err == nil || !strings.Contains(err.Error(), "temperature") {
		t.Errorf("a greedy vote passed the check: %v", err)
	}
	m := Runner{Task: taskmath.Task{}, Problems: []task.Problem{{Task: "math", Text: "2+2?"}}}
	for _, bad := range []string{"apr", "best:k=2"} {
		if err := m.Check([]string{"serial", bad}, ""); err == nil {
			t.Errorf("%s on math passed the check", bad)
		}
	}
	if err := m.Check([]string{"serial"}, "typos"); err == nil {
		t.Error("an unknown perturbation passed the check")
	}
}
