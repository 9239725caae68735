// Package reason holds braid's strategies: each turns a problem of any
// task into threads of generation on a backend and returns an answer with
// the tree of threads that produced it, its token counts and its timings.
// What a strategy needs of a task beyond task.Task (an environment, a
// parallel protocol, a checker) it asks for, and Parse refuses a strategy
// the task cannot run.
package reason

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/task"
)

// Strategy solves problems of any task on a backend.
type Strategy interface {
	// Name is the strategy as it is written on the command line.
	Name() string
	// Solve runs the strategy on p. observe, when not nil, receives the
	// run's events as they happen, from many goroutines one at a time.
	Solve(ctx context.Context, b backend.Backend, t task.Task, p task.Problem, observe Observer) (*Result, error)
}

// Options are what every thread of a strategy's run shares.
type Options struct {
	// MaxTokens caps each call (0: the model's context).
	MaxTokens   int
	Temperature float64
	// Seed makes a sampled run repeatable (0: drawn). Seeds derive from
	// it, the problem and the thread, so that one seed given to many
	// problems draws different numbers on each and threads draw the same
	// numbers whatever order they run in.
	Seed uint64
	// Env says how much of a thread a task with an environment writes
	// ("": all it can, EnvConstrain).
	Env EnvMode
	// MaxDepth bounds how deep spawns nest: 1 lets only the root spawn;
	// 2 lets its children spawn too, and so on; 0 is the strategy's own
	// (apr: 1, the APR protocol's; a format that nests: 5). The Countdown
	// environment lets only the root spawn, so deeper spawns run with the
	// environment off.
	MaxDepth int
	// MaxChildren bounds the children running at once (0: all of a
	// spawn's).
	MaxChildren int
	// MaxTotalTokens caps the tokens of all threads together (0: none).
	// Each call is given at most what remains; a thread that finds nothing
	// left ends ("budget"). Children running at once share what remains,
	// so the last calls may together pass it by one call each.
	MaxTotalTokens int
	// JoinAtGoal stops a spawn's other children as soon as one of them
	// finishes having reached the goal, and resumes the parent at once:
	// the stopped children join as unsolved, with what they wrote. In a
	// vote it stops the other samples at the first answer the task's
	// checker accepts. Which threads are stopped, and where, depends on
	// timing, so with it a run's tokens vary from run to run even when
	// decoding is greedy.
	JoinAtGoal bool
	// Confidence measures each thread's confidence from its tokens'
	// log-probabilities, and may stop the threads that lose it.
	Confidence Confident
	// Rewarder is a reward model, for the reward scorer.
	Rewarder backend.Rewarder
}

// callTokens is what a thread's next call may write: MaxTokens, and within
// MaxTotalTokens what the run has left (used of it so far) and, for a
// thread started with siblings, what is left of its share (spent of it:
// the tokens of the thread and its descendants). When nothing is left, n
// is 0 and why says so.
func (o Options) callTokens(used, share, spent int) (n int, why string) {
	n = o.MaxTokens
	if o.MaxTotalTokens <= 0 {
		return n, ""
	}
	left := o.MaxTotalTokens - used
	if left <= 0 {
		return 0, fmt.Sprintf("the run's %d tokens are spent", o.MaxTotalTokens)
	}
	if share > 0 {
		left = min(left, share-spent)
	}
	if left <= 0 {
		return 0, "its share of the run's tokens is spent"
	}
	if n == 0 || left < n {
		n = left
	}
	return n, ""
}

// childShare is what each of n threads a thread starts together may
// spend: an nth of what the thread itself may still spend (its arguments
// as callTokens takes them), so that running at once cannot take them past
// the run's budget; 0 without one.
func (o Options) childShare(used, share, spent, n int) int {
	if o.MaxTotalTokens <= 0 {
		return 0
	}
	left := o.MaxTotalTokens - used
	if share > 0 {
		left = min(left, share-spent)
	}
	return max(1, left/n)
}

// EnvMode says how much of a thread the task's environment writes.
type EnvMode string

const (
	// EnvOff: the model writes everything.
	EnvOff EnvMode = "off"
	// EnvFill: the environment writes what the search state determines.
	EnvFill EnvMode = "fill"
	// EnvConstrain: as fill, and the model's choices are restricted to the
	// legal ones.
	EnvConstrain EnvMode = "constrain"
)

// ParseEnvMode reads an environment mode.
func ParseEnvMode(s string) (EnvMode, error) {
	switch m := EnvMode(s); m {
	case EnvOff, EnvFill, EnvConstrain:
		return m, nil
	}
	return "", fmt.Errorf("reason: unknown environment mode %q (want off, fill or constrain)", s)
}

// Thread is one node of a trace tree: a thread of generation, possibly
// over several calls (a parent resumed after its children).
type Thread struct {
	// Node names the thread: "0" for a search's root, "0,1" for a child
	// searching from node 0,1, "3" for sample 3 of a vote.
	Node string `json:"node"`
	// Text is the thread's final text. A search's thread holds its prompt
	// and all it wrote, each spawn replaced by its join; a sample drawn
	// with others, what it wrote.
	Text   string `json:"text"`
	Calls  int    `json:"calls"`
	Tokens int    `json:"tokens"` // completion tokens over all calls
	// PromptTokens counts the prompt tokens of all its calls, CachedTokens
	// those of them a backend's prefix cache already held.
	PromptTokens int `json:"prompt_tokens"`
	CachedTokens int `json:"cached_prompt_tokens"`
	// Filled counts the tokens of Tokens the environment wrote.
	Filled int `json:"filled_tokens"`
	// Started is when the thread began, and Wall how long it ran: with
	// its parent's, where it stood in the run's time (the UI's timeline).
	Started time.Time     `json:"started,omitzero"`
	Wall    time.Duration `json:"-"`
	WallMS  int64         `json:"wall_ms"`
	Finish  string        `json:"finish"`
	Reason  string        `json:"reason,omitempty"` // why the environment or the runtime ended it
	// FormatErrors counts where the thread's parallel structure was
	// malformed and the orchestrator closed it (Usage.FormatErrors).
	FormatErrors int `json:"format_errors,omitempty"`
	// Confidence is how sure the model was, with Options.Confidence.
	Confidence *Confidence `json:"confidence,omitempty"`
	// Answer is the answer a vote's sample (a run's root among others)
	// gave, as the vote counted it.
	Answer string `json:"answer,omitempty"`
	// Score is what a scorer gave the thread, as a candidate; Dropped,
	// why a search over branches went on without it.
	Score   *float64 `json:"score,omitempty"`
	Dropped string   `json:"dropped,omitempty"`
	// Solved says whether a thread whose confidence was measured
	// succeeded, as an evaluation judged it (eval.OutcomeOf): what
	// confidence is scored against as a predictor.
	Solved   *bool     `json:"solved,omitempty"`
	Children []*Thread `json:"children,omitempty"`
}

// Usage is what a run spent: the one account of tokens, threads and time
// that a result, an evaluation's outcome and a stored sample share.
type Usage struct {
	// TotalTokens counts every thread's completion tokens (the cost).
	TotalTokens int `json:"total_tokens"`
	// PromptTokens counts the prompt tokens of every call, CachedTokens
	// those of them a backend's prefix cache already held.
	PromptTokens int `json:"prompt_tokens"`
	CachedTokens int `json:"cached_prompt_tokens"`
	// CriticalPathTokens is the longest chain of tokens that had to be
	// generated one after another (the latency): a parent's tokens plus,
	// at each spawn, its longest child's.
	CriticalPathTokens int `json:"critical_path_tokens"`
	Threads            int `json:"threads"`
	// Depth is how deep spawns nested: 0 for a single thread, 1 when the
	// root's children spawned none, and so on.
	Depth int `json:"depth"`
	// LatencyMS is the run's wall time in milliseconds.
	LatencyMS int64 `json:"latency_ms"`
	// FormatErrors counts the places a model's parallel structure was
	// malformed (a branch that never closed, a fork naming no branch),
	// where the orchestrator closed what it could and went on.
	FormatErrors int `json:"format_errors"`
}

// add counts a thread's calls in u: its tokens and prompts.
func (u *Usage) add(t *Thread) {
	u.Threads++
	u.TotalTokens += t.Tokens
	u.PromptTokens += t.PromptTokens
	u.CachedTokens += t.CachedTokens
}

// account adds the tree under root to r's usage: every thread's tokens,
// calls' prompts and format errors, the depth, and the critical path, a
// parent's tokens plus its longest child's.
func (r *Result) account(root *Thread) {
	var walk func(t *Thread, depth int) int
	walk = func(t *Thread, depth int) int {
		r.add(t)
		r.FormatErrors += t.FormatErrors
		r.Depth = max(r.Depth, depth)
		longest := 0
		for _, c := range t.Children {
			longest = max(longest, walk(c, depth+1))
		}
		return t.Tokens + longest
	}
	r.CriticalPathTokens = max(r.CriticalPathTokens, walk(root, 0))
}

// Result is a strategy's answer to one problem.
type Result struct {
	// Answer is the answer the run gives, "" when it found none.
	Answer string  `json:"answer"`
	Tree   *Thread `json:"tree"`
	Usage
	// Error says why the run failed, for a result that stands for a
	// failure (a backend that kept failing), "" otherwise.
	Error string `json:"error,omitempty"`
	// TokensToGoal counts the tokens all threads had streamed when the
	// task's goal marker (task.Marked) first appeared in any of them, -1
	// when none did or the task has none: tokens past it were spent on an
	// answer already found (overthinking). It counts streamed tokens,
	// which remote servers that do not say how many a delta holds give as
	// one per delta.
	TokensToGoal int `json:"tokens_to_goal"`
}

// Samples reports whether the strategy spec names draws several samples
// of a problem (vote, best, aggregate, deepthink), which differ only at a
// temperature: Parse refuses a greedy vote.
func Samples(spec string) bool {
	name, _, _ := strings.Cut(spec, ":")
	switch name {
	case "vote", "best", "aggregate", "deepthink":
		return true
	}
	return false
}

// CheckJoinAtGoal says why Options.JoinAtGoal means nothing on t, or nil:
// it stops a spawn's other children at the first solved one, and a vote's
// other samples at the first answer t's checker accepts.
func CheckJoinAtGoal(t task.Task) error {
	_, protocol := t.(task.Protocol)
	_, checker := t.(task.Checker)
	if !protocol && !checker {
		return fmt.Errorf("joining at the goal stops parallel children and vote samples at a checked answer; the %s task can check none", t.Name())
	}
	return nil
}

// Names lists the strategies Parse reads, as a usage line writes them.
const Names = "direct, serial, apr, hybrid:effort=off|light|deep, parallel[:k=N], multiverse, threadweaver, vote:k=N[:INNER], best:k=N[:INNER], aggregate:k=N or deepthink:k=N"

// SplitSpecs splits a comma-separated list of strategy specs whose specs
// may hold commas themselves (vote:k=8,settle,prune=9): a piece that does
// not begin with a strategy's name belongs to the spec before it.
func SplitSpecs(list string) []string {
	var specs []string
	for piece := range strings.SplitSeq(list, ",") {
		name, _, _ := strings.Cut(piece, ":")
		if strategyNames[name] || len(specs) == 0 {
			specs = append(specs, piece)
			continue
		}
		specs[len(specs)-1] += "," + piece
	}
	return specs
}

// strategyNames are the names a spec begins with.
var strategyNames = map[string]bool{"direct": true, "serial": true, "apr": true, "hybrid": true, "parallel": true, "multiverse": true,
	"threadweaver": true, "vote": true, "best": true, "aggregate": true, "deepthink": true}

// Parse reads a strategy as the command line writes it, for task t:
// "direct", "serial", "apr", "hybrid:effort=deep", "vote:k=8",
// "vote:k=4:apr", "best:k=4", "aggregate:k=4", "deepthink:k=4". A vote
// or best-of-N runs INNER (serial by default) K times. It refuses a
// strategy t cannot run: apr without a parallel protocol, best-of-N
// without a checker, a vote of greedy serial searches that would all agree.
func Parse(spec string, o Options, t task.Task) (Strategy, error) {
	s, err := parse(spec, o, t)
	if err != nil {
		return nil, fmt.Errorf("strategy %q: %w", spec, err)
	}
	return s, nil
}

func parse(spec string, o Options, t task.Task) (Strategy, error) {
	name, args, _ := strings.Cut(spec, ":")
	switch name {
	case "direct", "serial", "apr":
		if args != "" {
			c, err := parseConfident(strings.Split(args, ","))
			if err != nil {
				return nil, err
			}
			o.Confidence = c
		}
		s := Search{Options: o, Effort: map[string]string{"direct": task.EffortOff, "serial": "", "apr": task.EffortDeep}[name], label: spec}
		if _, ok := t.(task.Protocol); name == "apr" && !ok {
			return nil, fmt.Errorf("apr needs a task whose model spawns and joins threads; %s has no parallel protocol", t.Name())
		}
		return s, nil
	case "hybrid":
		effort, ok := strings.CutPrefix(args, "effort=")
		if !ok || task.CheckEffort(effort) != nil {
			return nil, errors.New("want hybrid:effort=off, light or deep")
		}
		return Search{Options: o, Effort: effort, label: spec}, nil
	case "parallel":
		k, err := parallelK(args)
		if err != nil {
			return nil, err
		}
		return Parallel{Options: o, K: k}, nil
	case "multiverse", "threadweaver":
		if args != "" {
			return nil, fmt.Errorf("%s takes no arguments", name)
		}
		return Fork{Options: o, Format: formats[name]}, nil
	case "vote", "best", "aggregate", "deepthink":
	default:
		return nil, fmt.Errorf("unknown strategy (want %s)", Names)
	}
	kArg, innerSpec, _ := strings.Cut(args, ":")
	kArg, more, _ := strings.Cut(kArg, ",")
	v, ok := strings.CutPrefix(kArg, "k=")
	k, err := strconv.Atoi(v)
	if !ok || err != nil || k < 1 || k > 1024 {
		return nil, fmt.Errorf("want %s:k=N with N in 1..1024", name)
	}
	// After k, a vote's settle, best's scorer and any strategy's
	// confidence arguments.
	settle, weighted, top, warmup, eta, atOnce := false, false, 0, 0, 0, 0
	scorerName, judgePrompt := "", ""
	rounds, keep := 0, 0
	if more != "" {
		var rest []string
		for _, a := range strings.Split(more, ",") {
			key, val, _ := strings.Cut(a, "=")
			switch {
			case a == "settle" && name == "vote":
				settle = true
			case a == "weighted" && name == "vote":
				weighted = true
			case (key == "top" || key == "eta") && name == "vote":
				n, err := intArg(key, val, 1, 100, "a percent")
				if err != nil {
					return nil, err
				}
				if key == "top" {
					top = n
				} else {
					eta = n
				}
			case key == "at-once" && name == "vote":
				n, err := intArg(key, val, 1, 1024, "a number of runs")
				if err != nil {
					return nil, err
				}
				atOnce = n
			case key == "warmup" && name == "vote":
				// Fewer than k (at most 1024): checked below.
				n, err := intArg(key, val, 1, 1024, "a number of runs")
				if err != nil {
					return nil, err
				}
				warmup = n
			case key == "scorer" && (name == "best" || name == "deepthink"):
				scorerName = val
			case key == "judge-prompt" && (name == "best" || name == "deepthink"):
				judgePrompt = val
			case (key == "rounds" || key == "keep") && name == "deepthink":
				n, err := intArg(key, val, 1, 64, "a number")
				if err != nil {
					return nil, err
				}
				if key == "rounds" {
					rounds = n
				} else {
					keep = n
				}
			default:
				rest = append(rest, a)
			}
		}
		c, err := parseConfident(rest)
		if err != nil {
			return nil, err
		}
		o.Confidence = c
	}
	inner := Search{Options: o, label: "serial"}
	if innerSpec != "" {
		if name == "aggregate" || name == "deepthink" {
			return nil, fmt.Errorf("%s reads its samples' reasoning: it runs serial samples only", name)
		}
		s, err := parse(innerSpec, o, t)
		if err != nil {
			return nil, fmt.Errorf("inner strategy: %w", err)
		}
		if inner, ok = s.(Search); !ok {
			return nil, fmt.Errorf("inner strategy %q: want direct, serial, apr or hybrid:effort=E", innerSpec)
		}
		if inner.Confidence == (Confident{}) {
			inner.Confidence = o.Confidence
		}
	}
	switch name {
	case "vote":
		if o.Temperature == 0 && k > 1 {
			return nil, errors.New("a vote needs a temperature: greedy samples would all agree")
		}
		if weighted || top > 0 || warmup > 0 {
			inner.Confidence.Measure = true
		}
		if settle && (weighted || top > 0) {
			return nil, errors.New("settle stops by counting votes: it cannot go with a vote by confidence (weighted, top)")
		}
		if warmup >= k || eta > 0 && warmup == 0 {
			return nil, fmt.Errorf("warmup=%d of k=%d: want fewer warm-up runs than runs (eta sets the threshold from them)", warmup, k)
		}
		return Vote{Inner: inner, K: k, Settle: settle, Weighted: weighted, Top: top, Warmup: warmup, Eta: eta, AtOnce: atOnce, label: spec}, nil
	case "best":
		if scorerName == "" {
			if _, ok := t.(task.Checker); !ok {
				return nil, fmt.Errorf("best-of-N picks by a checker, and %s answers are judged only against a reference answer (picking by it is pass@k, an oracle): use vote:k=N, or best:k=N,scorer=judge", t.Name())
			}
			scorerName = "verifier"
		}
		if judgePrompt != "" && scorerName != "judge" {
			return nil, errors.New("judge-prompt is for scorer=judge")
		}
		sc, err := ParseScorer(scorerName, judgePrompt, t, o.Rewarder)
		if err != nil {
			return nil, err
		}
		if scorerName == "confidence" {
			inner.Confidence.Measure = true
		}
		return Best{Vote: Vote{Inner: inner, K: k, label: spec}, Scorer: sc}, nil
	case "aggregate":
		return Aggregate{Options: o, K: k}, nil
	}
	if rounds == 0 {
		if scorerName != "" || keep != 0 {
			return nil, errors.New("scorer and keep are for a search over rounds: deepthink:k=N,rounds=R,keep=B,scorer=S")
		}
		return DeepThink{Options: o, K: k, label: spec}, nil
	}
	if scorerName == "" {
		scorerName = "judge-list"
		if _, ok := t.(task.Checker); ok {
			scorerName = "verifier"
		}
	}
	sc, err := ParseScorer(scorerName, judgePrompt, t, o.Rewarder)
	if err != nil {
		return nil, err
	}
	if scorerName == "confidence" {
		o.Confidence.Measure = true
	}
	return DeepThink{Options: o, K: k, Rounds: rounds, Keep: keep, Scorer: sc, label: spec}, nil
}
