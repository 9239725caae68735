// Package task is what strategies, evaluations, the server and training
// know of a problem domain: how to read a problem, pose it to a model, find
// the answer in what the model writes, tell when two answers are one, and
// whether an answer is right. Countdown (task/countdown) and free-text math
// (task/math) are tasks.
//
// Task is what every task does. What some tasks can do beyond it are small
// interfaces a strategy asks for: a Checker verifies answers without a
// reference, a Modal task's model switches how it reasons by its prompt, an
// Environment writes and constrains part of a thread, a Protocol spawns and
// joins parallel threads, a Marked model says when it has its answer, and a
// Perturber changes a problem without changing its answer.
package task

import (
	"encoding/json"
	"fmt"
	"iter"

	"github.com/braid-dev/braid/backend"
)

// Problem is one question of a task.
type Problem struct {
	// Task names the task ("math", "countdown").
	Task string `json:"task,omitempty"`
	// Text is the question as a person states it.
	Text string `json:"text,omitempty"`
	// Answer is the reference answer, when known.
	Answer string `json:"answer,omitempty"`
	// Data is the problem in the task's own form, for tasks whose problems
	// are more than text (a countdown.Problem): set by the task's Parse,
	// read only by the task.
	Data any `json:"-"`
}

// Task is a problem domain.
type Task interface {
	// Name is the task's name, as in Problem.Task.
	Name() string
	// Parse reads one problem: a JSON object (a line of a JSONL file) or
	// the question as a person writes it. It names what is wrong with a
	// problem it refuses.
	Parse(s string) (Problem, error)
	// Encode writes p as a JSON object Parse reads back: how stores and
	// run configurations keep problems.
	Encode(p Problem) json.RawMessage
	// Key identifies a problem: the seeds of its samples derive from it,
	// so that one seed given to many problems draws different numbers on
	// each.
	Key(p Problem) string
	// Prompt is what a model is given to solve p.
	Prompt(p Problem) string
	// Extract finds the answer in a thread's text (the prompt it was
	// given followed by all it wrote, or only what it wrote), "" for none.
	Extract(p Problem, text string) string
	// Equivalent reports whether two extracted answers are one answer:
	// votes count them together.
	Equivalent(p Problem, a, b string) bool
	// Class names an answer's class of equivalent answers, "" for no
	// answer: maj@k counts the classes of a problem's samples.
	Class(p Problem, answer string) string
	// Verify reports whether answer is right, and whether the task can
	// tell (it cannot without a reference answer or a Checker).
	Verify(p Problem, answer string) (correct, known bool)
}

// Checker is a task whose answers can be checked without a reference
// answer: Countdown's rules say whether an expression reaches the target.
// Best-of-N picks by a Checker; a reference answer is not one, and picking
// by it is an oracle (pass@k), not a strategy.
type Checker interface {
	// Check says why answer is wrong, or nil when it is right.
	Check(p Problem, answer string) error
}

// Efforts a strategy may ask of a model: no reasoning, some, the most
// (for a Protocol task, parallel threads).
const (
	EffortOff   = "off"
	EffortLight = "light"
	EffortDeep  = "deep"
)

// CheckEffort reports what is wrong with an effort's name.
func CheckEffort(effort string) error {
	switch effort {
	case EffortOff, EffortLight, EffortDeep:
		return nil
	}
	return fmt.Errorf("effort %q: want off, light or deep", effort)
}

// Modal is a task whose model switches how it reasons by the prompt it is
// given (a hybrid-thinking model trained on the task), rather than by a
// request's reasoning effort.
type Modal interface {
	// PromptAt is what the model is given to solve p at an effort.
	PromptAt(p Problem, effort string) string
}

// Environment is a task with an environment: code that writes the parts of
// a thread the problem's state determines and lists the legal
// continuations where the model must choose.
type Environment interface {
	// Env is the environment of a thread given prompt; child says the
	// thread was spawned by another.
	Env(p Problem, prompt string, child bool) (backend.Environment, error)
}

// Configurable is a task that takes options, such as a prompt style for
// the models of one paper: "countdown:apr" names the Countdown task
// configured with "apr".
type Configurable interface {
	// Configure returns the task with the options, or an error naming
	// what is wrong with them.
	Configure(options string) (Task, error)
}

// Protocol is a task whose model reasons in parallel threads: a thread
// spawns children, they run concurrently, and it resumes with their
// results joined (APR's spawn and join).
type Protocol interface {
	// Spawned reports whether text ends with a spawn, and returns the
	// text before it and the names of the children, in order.
	Spawned(text string) (before string, children []string, ok bool)
	// ChildPrompts gives each child its prompt, from its parent's text
	// before the spawn.
	ChildPrompts(p Problem, before string, children []string) ([]string, error)
	// Join is the text that resumes a parent whose children, spawned at
	// depth (1 for the root's), came back.
	Join(p Problem, depth int, children []Child) string
	// Solved reports whether a child's text reached an answer.
	Solved(p Problem, childText string) bool
}

// Child is what a spawned thread came back with.
type Child struct {
	Name string
	// Text is the child's whole text: its prompt and what it wrote.
	Text string
}

// Marked is a task whose model writes a fixed marker when it has reached
// its answer: a run counts the tokens written before it, and those after
// (overthinking).
type Marked interface {
	GoalMarker() string
}

// Perturber is a task that can change a problem in a way that must not
// change its answer, to measure how robust a strategy is.
type Perturber interface {
	// Perturb returns p changed by the named perturbation; key picks
	// among variants, so that every strategy and seed of one problem sees
	// the same one.
	Perturb(p Problem, kind string, key uint64) (Problem, error)
}

// Replier is a task that words an answer for a person, as a chat reply
// says it; without one the reply is the answer.
type Replier interface {
	// Reply is the reply giving answer to p ("" when none was found).
	Reply(p Problem, answer string) string
}

// Splits of a Generator's problems: no training problem is a test one,
// and no validation problem is a training one or among the first test
// problems of its seed (what a run is tuned on, apart from what it is
// measured on; a Generator may lack it).
const (
	SplitTrain      = "train"
	SplitTest       = "test"
	SplitValidation = "validation"
)

// Generator is a task that draws problems of its own, as many as asked,
// the same for the same seed.
type Generator interface {
	// Problems are a split's problems drawn with seed, endless.
	Problems(seed uint64, split string) (iter.Seq[Problem], error)
}

// Unanswerable is a task some of whose problems have no answer, whose
// searches may end by claiming so (Countdown's "No solution found."), and
// which can check that claim exactly. A grader that credits the claim
// needs it, and so does whoever labels a monitor's verdicts right or
// wrong: a claim on a problem that has an answer is false.
type Unanswerable interface {
	// ClaimsNone reports whether a search's root text (its prompt and all
	// it wrote) ends by claiming that p has no answer.
	ClaimsNone(p Problem, text string) bool
	// Answerable reports whether p has an answer, by exhaustive search.
	Answerable(p Problem) bool
	// UnanswerableProblems are a split's problems that have no answer,
	// drawn with seed, endless, as Generator's Problems.
	UnanswerableProblems(seed uint64, split string) (iter.Seq[Problem], error)
}

// Draw returns the first n problems of g's split drawn with seed.
func Draw(g Generator, seed uint64, split string, n int) ([]Problem, error) {
	all, err := g.Problems(seed, split)
	if err != nil {
		return nil, err
	}
	out := make([]Problem, 0, n)
	for p := range all {
		if len(out) == n {
			break
		}
		out = append(out, p)
	}
	return out, nil
}

// Teacher is a task that can demonstrate how its problems are solved: the
// calls a model trained on it makes, for supervised fine-tuning.
type Teacher interface {
	// Demonstrate writes the calls that solve p at an effort: one for a
	// single thread, one per thread and resumption for a parallel search.
	// seed and index make it repeatable while varying it across problems.
	Demonstrate(p Problem, effort string, seed uint64, index int) ([]Demonstration, error)
}

// Demonstration is one call of a demonstrated solution.
type Demonstration struct {
	Prompt, Completion string
	// Env are the spans of Completion the task's environment writes, in
	// order: a model is given them, not trained to write them.
	Env []Span
}

// Span is the bytes [Start, End) of a text.
type Span struct{ Start, End int }

// TraceChecker is a task whose threads follow a format that can be checked
// to their end, whether or not they reach the answer: training may reward
// the format.
type TraceChecker interface {
	// CheckTrace says where a thread's text (its prompt and all it wrote)
	// leaves the format, or nil.
	CheckTrace(p Problem, text string) error
}
