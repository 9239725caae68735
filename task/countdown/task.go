package countdown

import (
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strings"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/task"
)

// Task is Countdown as a task: a problem is a target and numbers, an
// answer an expression the rules check (no reference needed), and the
// model switches between direct, serial and parallel search by its prompt's
// mode line, in an environment that writes what the search state
// determines, spawning and joining child searches at depth deep.
type Task struct {
	// Prompts is how the threads' prompts are written: braid's own (the
	// zero value), or the released APR checkpoints'.
	Prompts Prompts
}

var (
	_ task.Task         = Task{}
	_ task.Checker      = Task{}
	_ task.Modal        = Task{}
	_ task.Environment  = Task{}
	_ task.Protocol     = Task{}
	_ task.Marked       = Task{}
	_ task.Perturber    = Task{}
	_ task.Replier      = Task{}
	_ task.Generator    = Task{}
	_ task.Teacher      = Task{}
	_ task.TraceChecker = Task{}
	_ task.Configurable = Task{}
	_ task.Unanswerable = Task{}
)

// posed is a Countdown problem as a task.Problem carries it: the problem,
// and whether its search starts at the decoy (the perturbed variant).
type posed struct {
	Problem
	decoy bool
}

// NewProblem is p as a task problem.
func NewProblem(p Problem) task.Problem {
	return task.Problem{Task: "countdown", Text: p.String(), Data: posed{Problem: p}}
}

// ProblemOf is the Countdown problem a task problem holds. It panics for a
// problem Task did not make, a bug in the caller.
func ProblemOf(p task.Problem) Problem { return posedOf(p).Problem }

func posedOf(p task.Problem) posed {
	c, ok := p.Data.(posed)
	if !ok {
		panic(fmt.Sprintf("countdown: problem %q was not made by the countdown task", p.Text))
	}
	return c
}

// Name implements task.Task.
func (Task) Name() string { return "countdown" }

// Parse reads a JSON line ({"numbers":[22,26,31,53],"target":27}) or a
// problem stated in words (ParseText).
func (Task) Parse(s string) (task.Problem, error) {
	var (
		p   Problem
		err error
	)
	if t := strings.TrimSpace(s); strings.HasPrefix(t, "{") {
		p, err = ParseProblemJSON([]byte(t))
	} else {
		p, err = ParseText(s)
	}
	if err != nil {
		return task.Problem{}, err
	}
	return NewProblem(p), nil
}

// Encode implements task.Task: {"numbers":[22,26,31,53],"target":27}.
func (Task) Encode(p task.Problem) json.RawMessage {
	b, _ := json.Marshal(ProblemOf(p)) // numbers and a target always marshal
	return b
}

// Key implements task.Task: the numbers in order and the target.
func (Task) Key(p task.Problem) string {
	c := ProblemOf(p)
	return fmt.Sprintf("%v/%d", c.Numbers, c.Target)
}

// Prompt is the serial search's prompt.
func (t Task) Prompt(p task.Problem) string { return t.PromptAt(p, task.EffortLight) }

// modes maps efforts to the model's modes.
var modes = map[string]Mode{task.EffortOff: ModeDirect, task.EffortLight: ModeSerial, task.EffortDeep: ModeParallel}

// PromptAt implements task.Modal: direct, serial or parallel search, from
// the decoy for a perturbed problem.
func (t Task) PromptAt(p task.Problem, effort string) string {
	c := posedOf(p)
	mode, ok := modes[effort]
	if !ok {
		mode = ModeSerial
	}
	if c.decoy {
		prompt, _, _ := t.Prompts.decoy(c.Problem, mode)
		return prompt
	}
	return t.Prompts.root(c.Problem, mode)
}

// Configure implements task.Configurable: the options are a prompt style
// (ParsePrompts), such as "apr,sub-call-budget=10".
func (t Task) Configure(options string) (task.Task, error) {
	p, err := ParsePrompts(options)
	if err != nil {
		return nil, err
	}
	t.Prompts = p
	return t, nil
}

// Extract implements task.Task: the expression the trace reached. The
// text is the whole trace, from its prompt.
func (Task) Extract(p task.Problem, text string) string {
	a, _ := Answer(ProblemOf(p), text)
	return a
}

// Equivalent implements task.Task: every answer that reaches the target
// is one answer; wrong ones are one only when written alike.
func (t Task) Equivalent(p task.Problem, a, b string) bool {
	return t.Class(p, a) == t.Class(p, b)
}

// Class implements task.Task.
func (t Task) Class(p task.Problem, answer string) string {
	switch {
	case answer == "":
		return ""
	case t.Check(p, answer) == nil:
		return "target"
	}
	return "wrong: " + answer
}

// Verify implements task.Task by the rules.
func (t Task) Verify(p task.Problem, answer string) (bool, bool) {
	return answer != "" && t.Check(p, answer) == nil, true
}

// Check implements task.Checker.
func (Task) Check(p task.Problem, answer string) error {
	if answer == "" {
		return errors.New("countdown: no answer")
	}
	return VerifyAnswer(ProblemOf(p), answer)
}

// Env implements task.Environment.
func (Task) Env(p task.Problem, prompt string, child bool) (backend.Environment, error) {
	e, err := NewEnv(ProblemOf(p), prompt)
	if err != nil {
		return nil, err
	}
	if child {
		e.AsChild()
	}
	return e, nil
}

// Spawned implements task.Protocol.
func (Task) Spawned(text string) (string, []string, bool) { return Spawned(text) }

// ChildPrompts implements task.Protocol.
func (t Task) ChildPrompts(p task.Problem, before string, children []string) ([]string, error) {
	prompts, err := ChildPrompts(ProblemOf(p), before, children)
	for i := range prompts {
		prompts[i] = t.Prompts.child(prompts[i])
	}
	return prompts, err
}

// Join implements task.Protocol.
func (Task) Join(p task.Problem, depth int, children []task.Child) string {
	kids := make([]ChildResult, len(children))
	for i, c := range children {
		kids[i] = ChildResult{Node: c.Name, Text: c.Text}
	}
	return Join(ProblemOf(p), depth, kids)
}

// Solved implements task.Protocol.
func (Task) Solved(p task.Problem, childText string) bool {
	return ChildSolved(ProblemOf(p), childText)
}

// GoalMarker implements task.Marked.
func (Task) GoalMarker() string { return "Goal Reached" }

// Perturb implements task.Perturber: "distractors" starts the search at a
// tempting dead end (DecoyPrompt), the Countdown counterpart of a
// distracting sentence.
func (Task) Perturb(p task.Problem, kind string, _ uint64) (task.Problem, error) {
	if kind != "distractors" {
		return task.Problem{}, fmt.Errorf("countdown: perturbation %q: want distractors", kind)
	}
	c := posedOf(p)
	c.decoy = true
	p.Data = c
	return p, nil
}

// Reply implements task.Replier: the expression and the target it equals.
func (Task) Reply(p task.Problem, answer string) string {
	c := ProblemOf(p)
	if answer == "" {
		return fmt.Sprintf("No solution found for %s.", c)
	}
	return fmt.Sprintf("%s = %d", answer, c.Target)
}

// Problems implements task.Generator.
func (Task) Problems(seed uint64, split string) (iter.Seq[task.Problem], error) {
	sp, err := ParseSplit(split)
	if err != nil {
		return nil, err
	}
	return asTask(Problems(seed, sp)), nil
}

// asTask yields problems as task problems.
func asTask(problems iter.Seq[Problem]) iter.Seq[task.Problem] {
	return func(yield func(task.Problem) bool) {
		for p := range problems {
			if !yield(NewProblem(p)) {
				return
			}
		}
	}
}

// ClaimsNone implements task.Unanswerable: the search's last line is "No
// solution found.".
func (Task) ClaimsNone(_ task.Problem, text string) bool { return ClaimsNoSolution(text) }

// Answerable implements task.Unanswerable by the exhaustive solver.
func (Task) Answerable(p task.Problem) bool { return Solvable(ProblemOf(p)) }

// UnanswerableProblems implements task.Unanswerable: UnsolvableProblems.
func (Task) UnanswerableProblems(seed uint64, split string) (iter.Seq[task.Problem], error) {
	sp, err := ParseSplit(split)
	if err != nil {
		return nil, err
	}
	return asTask(UnsolvableProblems(seed, sp)), nil
}

// Demonstrate implements task.Teacher: the generators' search traces, in
// the mode the effort names, with the environment's spans.
func (Task) Demonstrate(p task.Problem, effort string, seed uint64, index int) ([]task.Demonstration, error) {
	mode, ok := modes[effort]
	if !ok {
		return nil, fmt.Errorf("countdown: effort %q: want off, light or deep", effort)
	}
	c := ProblemOf(p)
	rec, err := TraceConfig{Format: mode, ModeHeader: true}.Generate(c, seed, index)
	if err != nil {
		return nil, err
	}
	out := make([]task.Demonstration, len(rec.Sequences))
	for i, s := range rec.Sequences {
		spans, err := EnvSpans(c, s.Prompt, s.Completion)
		if err != nil {
			return nil, fmt.Errorf("countdown: the environment of %s's call %d: %w", c, i, err)
		}
		d := task.Demonstration{Prompt: s.Prompt, Completion: s.Completion}
		for _, sp := range spans {
			d.Env = append(d.Env, task.Span{Start: sp.Start, End: sp.End})
		}
		out[i] = d
	}
	return out, nil
}

// CheckTrace implements task.TraceChecker.
func (Task) CheckTrace(p task.Problem, text string) error {
	_, err := VerifyTrace(ProblemOf(p), text)
	return err
}
