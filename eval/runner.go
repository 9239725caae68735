package eval

import (
	"context"
	"fmt"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/reason"
	"github.com/braid-dev/braid/task"
)

// Runner takes one cell of a grid: a strategy of a task on one of its
// problems, with a seed, on a backend, through Run, which braid solve and
// braid serve call for each problem too.
type Runner struct {
	Task     task.Task
	Backend  backend.Backend
	Problems []task.Problem
	// Options are the strategies' options; the runner sets each cell's
	// seed.
	Options reason.Options
	// RetryBudget is the retries a cell's calls share on top of each
	// call's own (backend.WithRetryBudget; 0: none).
	RetryBudget int
}

// Check reports what is wrong with running the strategies: one the task
// cannot run, or a perturbation it does not know.
func (r Runner) Check(strategies []string, perturbation string) error {
	for _, name := range strategies {
		if _, err := reason.Parse(name, r.Options, r.Task); err != nil {
			return err
		}
	}
	if perturbation != "" && len(r.Problems) > 0 {
		if _, err := r.problem(Cell{Perturb: perturbation}); err != nil {
			return err
		}
	}
	return nil
}

// Solve takes cell c; it is a Grid's solve function. Sampled runs seed
// each cell with its seed; greedy ones need none.
func (r Runner) Solve(ctx context.Context, c Cell) (Outcome, error) {
	p, err := r.problem(c)
	if err != nil {
		return Outcome{}, err
	}
	opts := r.Options
	opts.Seed = 0
	if opts.Temperature > 0 {
		opts.Seed = c.Seed
	}
	st, err := reason.Parse(c.Strategy, opts, r.Task)
	if err != nil {
		return Outcome{}, err
	}
	ctx = backend.WithRetryBudget(ctx, r.RetryBudget)
	_, o, err := Run(ctx, r.Backend, r.Task, st, p, nil)
	return o, err
}

// Run runs strategy st on problem p of task t: the strategy's result, and
// what an evaluation makes of it. observe, when not nil, receives the run's
// events.
func Run(ctx context.Context, b backend.Backend, t task.Task, st reason.Strategy, p task.Problem, observe reason.Observer) (*reason.Result, Outcome, error) {
	res, err := st.Solve(ctx, b, t, p, observe)
	if err != nil {
		return nil, Outcome{}, err
	}
	return res, OutcomeOf(t, p, res), nil
}

// problem is the cell's problem, perturbed as the cell says: keyed by the
// problem's index, so every strategy and seed sees one perturbation.
func (r Runner) problem(c Cell) (task.Problem, error) {
	p := r.Problems[c.Index]
	if c.Perturb == "" {
		return p, nil
	}
	pt, ok := r.Task.(task.Perturber)
	if !ok {
		return task.Problem{}, fmt.Errorf("eval: the %s task has no perturbations", r.Task.Name())
	}
	return pt.Perturb(p, c.Perturb, uint64(c.Index))
}

// OutcomeOf is what a strategy's result on p says for an evaluation: the
// answer, whether the task verifies it (and whether it could tell), its
// class for maj@k, its costs and its trace tree.
func OutcomeOf(t task.Task, p task.Problem, r *reason.Result) Outcome {
	o := Outcome{Answer: r.Answer, Class: t.Class(p, r.Answer), Usage: r.Usage, TokensToGoal: r.TokensToGoal, Tree: r.Tree}
	o.Correct, o.Verified = t.Verify(p, r.Answer)
	if r.Tree != nil {
		labelThreads(t, p, r.Tree)
	}
	return o
}

// labelThreads marks, on every thread that measured its confidence,
// whether it succeeded: a run's root (a vote's samples are roots) by the
// answer its text reaches, a thread a root spawned by whether it reached
// its goal (the task's protocol).
func labelThreads(t task.Task, p task.Problem, root *reason.Thread) {
	protocol, _ := t.(task.Protocol)
	var walk func(th *reason.Thread, runRoot bool)
	walk = func(th *reason.Thread, runRoot bool) {
		if th.Confidence != nil {
			var ok bool
			if runRoot || protocol == nil {
				answer := th.Answer // a vote's sample holds its own
				if answer == "" {
					answer = t.Extract(p, th.Text)
				}
				ok, _ = t.Verify(p, answer)
			} else {
				ok = protocol.Solved(p, th.Text)
			}
			th.Solved = &ok
		}
		for _, c := range th.Children {
			walk(c, th.Node == reason.SamplesNode)
		}
	}
	walk(root, root.Node != reason.SamplesNode)
}
