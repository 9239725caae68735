// Package reason holds braid's strategies: each turns a problem into
// threads of generation on a backend and returns an answer with the tree
// of threads that produced it, its token counts and its timings.
package reason

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/task/countdown"
)

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
	// Node is the search node the thread starts from ("0" for the root).
	Node string `json:"node"`
	// Text is the thread's final text: its prompt and all it wrote, each
	// spawn replaced by its join.
	Text   string `json:"text"`
	Calls  int    `json:"calls"`
	Tokens int    `json:"tokens"` // completion tokens over all calls
	// PromptTokens counts the prompt tokens of all its calls, CachedTokens
	// those of them a backend's prefix cache already held.
	PromptTokens int `json:"prompt_tokens"`
	CachedTokens int `json:"cached_prompt_tokens"`
	// Filled counts the tokens of Tokens the environment wrote.
	Filled   int           `json:"filled_tokens"`
	Wall     time.Duration `json:"-"`
	WallMS   int64         `json:"wall_ms"`
	Finish   string        `json:"finish"`
	Reason   string        `json:"reason,omitempty"` // why the environment or the runtime ended it
	Children []*Thread     `json:"children,omitempty"`
}

// Result is a strategy's answer to one problem.
type Result struct {
	// Answer is the expression the search reached, "" when it reached
	// none.
	Answer string  `json:"answer"`
	Tree   *Thread `json:"tree"`
	// TotalTokens counts every thread's completion tokens (the cost);
	// CriticalPathTokens the longest chain of tokens that had to be
	// generated one after another (the latency): a parent's tokens plus,
	// at each spawn, its longest child's.
	TotalTokens        int           `json:"total_tokens"`
	CriticalPathTokens int           `json:"critical_path_tokens"`
	Threads            int           `json:"threads"`
	Wall               time.Duration `json:"-"`
	// Error says why the run failed, for a result that stands for a
	// failure (a backend that kept failing), "" otherwise.
	Error string `json:"error,omitempty"`
	// TokensToGoal counts the tokens all threads had streamed when the
	// first "Goal Reached" appeared in any of them, -1 when none did:
	// tokens past it were spent on an answer already found
	// (overthinking). It counts streamed tokens, which remote servers that
	// do not say how many a delta holds give as one per delta.
	TokensToGoal int `json:"tokens_to_goal"`
}

// Countdown solves Countdown problems with a model that writes search
// traces: directly (the solution path), serially (one searching thread),
// or in parallel (APR: the root may spawn child searches, which run
// concurrently; the root resumes with their results joined).
type Countdown struct {
	Mode countdown.Mode
	Env  EnvMode
	// MaxTokens caps each call (0: the model's context).
	MaxTokens   int
	Temperature float64
	// Seed makes sampled runs repeatable; each thread derives its own.
	Seed uint64
	// MaxDepth bounds how deep spawns nest: 1 (the default, the APR
	// protocol's) lets only the root spawn; 2 lets its children spawn too,
	// and so on. The Countdown environment lets only the root spawn, so
	// deeper spawns run with the environment off (public checkpoints).
	MaxDepth int
	// MaxChildren bounds the children running at once (0: all of a
	// spawn's).
	MaxChildren int
	// Observe, when set, receives the run's events as they happen.
	Observe Observer
	// MaxTotalTokens caps the tokens of all threads together (0: none).
	// Each call is given at most what remains; a thread that finds nothing
	// left ends ("budget"). Children running at once share what remains,
	// so the last calls may together pass it by one call each.
	MaxTotalTokens int
	// Decoy starts the root with a tempting dead-end move already explored
	// (countdown.DecoyPrompt), for robustness checks.
	Decoy bool
	// JoinAtGoal stops a spawn's other children as soon as one of them
	// finishes having reached the goal, and resumes the parent at once:
	// the stopped children join as unsolved, with what they wrote. Without
	// it siblings search on after the answer is found (about 29% of apr's
	// tokens, the model card's overthinking figures). In a vote it stops
	// the other samples at the first verified answer. Which siblings are
	// stopped, and where, depends on timing, so with it a run's tokens
	// vary from run to run even when decoding is greedy.
	JoinAtGoal bool

	used *atomic.Int64 // tokens spent so far in this run
	goal *goalWatch
}

// goalWatch notes when a run (or a vote's runs together) first reaches
// the goal.
type goalWatch struct {
	streamed atomic.Int64 // tokens streamed by every thread so far
	first    atomic.Int64 // streamed when "Goal Reached" first appeared; -1 before
}

func newGoalWatch() *goalWatch {
	w := &goalWatch{}
	w.first.Store(-1)
	return w
}

const goalReached = "Goal Reached"

// watch wraps a call's OnChunk: it counts the call's tokens and looks for
// the goal in its text, across chunk boundaries.
func (w *goalWatch) watch(next func(backend.Chunk)) func(backend.Chunk) {
	var tail string
	return func(c backend.Chunk) {
		n := len(c.Tokens)
		if n == 0 && c.Text != "" {
			n = 1
		}
		total := w.streamed.Add(int64(n))
		if w.first.Load() < 0 {
			tail += c.Text
			if strings.Contains(tail, goalReached) {
				w.first.CompareAndSwap(-1, total)
			}
			if len(tail) >= len(goalReached) {
				tail = tail[len(tail)-len(goalReached)+1:]
			}
		}
		if next != nil {
			next(c)
		}
	}
}

// Solve runs the strategy on p.
func (s Countdown) Solve(ctx context.Context, b backend.Backend, p countdown.Problem) (*Result, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	s.Observe = serialized(s.Observe)
	s.used = new(atomic.Int64)
	if s.goal == nil {
		s.goal = newGoalWatch()
	}
	prompt := countdown.RootPrompt(p, s.Mode)
	if s.Decoy {
		prompt, _, _ = countdown.DecoyPrompt(p, s.Mode)
	}
	root, err := s.thread(ctx, b, p, "0", "", prompt, 0, 0)
	if err != nil {
		return nil, err
	}
	r := &Result{Tree: root, Wall: time.Since(start), TokensToGoal: int(s.goal.first.Load())}
	r.Answer, _ = countdown.Answer(p, root.Text)
	var walk func(t *Thread) int
	walk = func(t *Thread) int {
		r.Threads++
		r.TotalTokens += t.Tokens
		longest := 0
		for _, c := range t.Children {
			longest = max(longest, walk(c))
		}
		return t.Tokens + longest
	}
	r.CriticalPathTokens = walk(root)
	s.Observe.emit(Event{Kind: AnswerReady, Text: r.Answer})
	return r, nil
}

// thread runs one thread from its prompt: a call, and for a parallel
// thread above the depth limit (the root, at depth 0), after each spawn,
// the children and the call that resumes it. A positive share caps the
// thread's own tokens: children started together split what is left of
// the run's budget, so running at once cannot take them past it.
func (s Countdown) thread(ctx context.Context, b backend.Backend, p countdown.Problem, node, parent, prompt string, depth, share int) (*Thread, error) {
	t := &Thread{Node: node}
	text := prompt
	start := time.Now()
	s.Observe.emit(Event{Kind: ThreadStarted, Thread: node, Parent: parent})
	defer func() {
		t.Wall = time.Since(start)
		t.WallMS = t.Wall.Milliseconds()
		s.Observe.emit(Event{Kind: ThreadFinished, Thread: node, Parent: parent, Tokens: t.Tokens})
	}()
	for {
		if sibling := context.Cause(ctx); errors.Is(sibling, errSiblingSolved) {
			// Stopped before this call (a child not yet started, or a
			// parent whose children were stopped): no call is made.
			t.Finish, t.Reason = finishStopped, sibling.Error()
			break
		}
		maxTokens := s.MaxTokens
		if s.MaxTotalTokens > 0 {
			left := s.MaxTotalTokens - int(s.used.Load())
			if left <= 0 {
				t.Finish, t.Reason = "budget", fmt.Sprintf("the run's %d tokens are spent", s.MaxTotalTokens)
				break
			}
			if share > 0 {
				left = min(left, share-subtreeTokens(t))
			}
			if left <= 0 {
				t.Finish, t.Reason = "budget", "its share of the run's tokens is spent"
				break
			}
			if maxTokens == 0 || left < maxTokens {
				maxTokens = left
			}
		}
		req := &backend.Request{Prompt: text, MaxTokens: maxTokens, Temperature: s.Temperature,
			Seed: s.seedFor(p, node, t.Calls), Affinity: fmt.Sprintf("%s #%s", p, node), OnChunk: s.goal.watch(s.Observe.stream(node, parent))}
		if s.Env != EnvOff {
			env, err := countdown.NewEnv(p, text)
			if err != nil {
				return nil, err
			}
			if s.Mode == countdown.ModeParallel && node != "0" {
				env.AsChild()
			}
			if s.Env == EnvFill {
				req.Env = fillOnly{env}
			} else {
				req.Env = env
			}
		}
		c, err := b.Complete(ctx, req)
		if errors.Is(err, backend.ErrPromptTooLong) {
			// A parent resumed past the context: the thread ends here.
			t.Finish, t.Reason = string(backend.FinishLength), err.Error()
			break
		}
		// Only the cancellation itself is a stop: any other error (a
		// failing server) is the run's, stopped or not.
		stopped := errors.Is(err, context.Canceled) && errors.Is(context.Cause(ctx), errSiblingSolved)
		if err != nil && !stopped {
			return nil, err
		}
		if c != nil { // a stopped call returns what it generated, if anything
			t.Calls++
			t.PromptTokens += c.Usage.PromptTokens
			t.CachedTokens += c.Usage.CachedPromptTokens
			t.Tokens += c.Usage.CompletionTokens
			s.used.Add(int64(c.Usage.CompletionTokens))
			t.Filled += c.Usage.FilledTokens
			t.Finish, t.Reason = string(c.Finish), c.EnvError
			text += c.Text
		}
		if stopped {
			t.Finish, t.Reason = finishStopped, errSiblingSolved.Error()
			break
		}
		if s.Mode != countdown.ModeParallel || depth >= max(1, s.MaxDepth) {
			break
		}
		before, nodes, ok := countdown.Spawned(text)
		if !ok {
			break
		}
		prompts, err := countdown.ChildPrompts(p, before, nodes)
		if err != nil {
			// The model spawned a node it never generated (possible when
			// nothing constrains it): the thread ends there, unsolved.
			t.Finish, t.Reason = "invalid spawn", err.Error()
			break
		}
		// The children split what this thread may still spend: the run's
		// budget left, and within it this thread's own share.
		budget := 0
		if s.MaxTotalTokens > 0 {
			budget = s.MaxTotalTokens - int(s.used.Load())
			if share > 0 {
				budget = min(budget, share-subtreeTokens(t))
			}
		}
		kids, err := s.children(ctx, b, p, node, depth+1, nodes, prompts, budget)
		if err != nil {
			return nil, err
		}
		results := make([]countdown.ChildResult, len(kids))
		for i, k := range kids {
			results[i] = countdown.ChildResult{Node: k.Node, Text: k.Text}
		}
		t.Children = append(t.Children, kids...)
		text = before + countdown.Join(p, depth+1, results)
	}
	t.Text = text
	return t, nil
}

// children runs a spawn's children concurrently, at most MaxChildren at
// once, and returns them in spawn order. With a total token budget they
// split budget, the spawning thread's remaining tokens, evenly.
func (s Countdown) children(ctx context.Context, b backend.Backend, p countdown.Problem, parent string, depth int, nodes, prompts []string, budget int) ([]*Thread, error) {
	kids := make([]*Thread, len(nodes))
	errs := make([]error, len(nodes))
	limit := s.MaxChildren
	if limit <= 0 {
		limit = len(nodes)
	}
	share := 0
	if s.MaxTotalTokens > 0 {
		share = max(1, budget/len(nodes))
	}
	sem := make(chan struct{}, limit)
	// With JoinAtGoal the first child to finish solved stops the others
	// (those not yet started included: their calls end at once).
	kctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var wg sync.WaitGroup
	for i, id := range nodes {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-kctx.Done(): // stopped while waiting: thread makes no call
			}
			kids[i], errs[i] = s.thread(kctx, b, p, id, parent, prompts[i], depth, share)
			if s.JoinAtGoal && errs[i] == nil && countdown.ChildSolved(p, kids[i].Text) {
				stop(errSiblingSolved)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return kids, nil
}

// finishStopped is the Finish of a thread that JoinAtGoal stopped.
const finishStopped = "stopped"

// errSiblingSolved is why JoinAtGoal stops a thread.
var errSiblingSolved = errors.New("a sibling reached the goal")

// seedFor derives a thread's seed for one of its calls, so that a sampled
// run repeats with its seed whatever order the threads run in. The problem
// is part of it: one seed given to many problems (an evaluation's seed 1)
// must not draw the same random numbers on each, or the samples of
// different problems make the same choices at the same points and are no
// longer independent.
func (s Countdown) seedFor(p countdown.Problem, node string, call int) uint64 {
	if s.Seed == 0 {
		return 0
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%v/%d/%s/%d", s.Seed, p.Numbers, p.Target, node, call)
	return h.Sum64() | 1
}

// fillOnly is an environment that writes but never constrains.
type fillOnly struct{ *countdown.Env }

func (fillOnly) Choices() []string { return nil }

// CountdownVote is self-consistency over Countdown searches: K runs of an
// inner Countdown strategy, sampled (each with its own seed), concurrently,
// and the answer most of them reach. Answers are grouped by their value
// under the rules (every answer that reaches the target is one answer),
// not by how the expression is written.
type CountdownVote struct {
	Inner Countdown
	K     int
}

// Solve runs the votes.
func (v CountdownVote) Solve(ctx context.Context, b backend.Backend, p countdown.Problem) (*Result, error) {
	if v.K < 1 {
		return nil, fmt.Errorf("reason: vote of %d", v.K)
	}
	start := time.Now()
	runs := make([]*Result, v.K)
	errs := make([]error, v.K)
	var wg sync.WaitGroup
	goal := newGoalWatch() // the votes run together: the first goal of any
	// With JoinAtGoal the first sample to give an answer the rules accept
	// stops the others, as a spawn's first solved child stops its siblings:
	// a verified answer is the answer whatever the others would say.
	vctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	v.Inner.Observe.emit(Event{Kind: ThreadStarted, Thread: "samples"})
	for i := range v.K {
		inner := v.Inner
		inner.goal = goal
		inner.Observe = v.Inner.Observe.under(fmt.Sprintf("sample %d", i+1), "samples")
		inner.Seed = v.Inner.Seed*1000003 + uint64(i) + 1
		wg.Go(func() {
			runs[i], errs[i] = inner.Solve(vctx, b, p)
			if v.Inner.JoinAtGoal && errs[i] == nil && runs[i].Answer != "" && countdown.VerifyAnswer(p, runs[i].Answer) == nil {
				stop(errSiblingSolved)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	root := &Thread{Node: "samples"}
	r := &Result{Tree: root, TokensToGoal: int(goal.first.Load())}
	votes := map[string]int{}
	first := map[string]string{}
	var order []string
	for _, run := range runs {
		root.Children = append(root.Children, run.Tree)
		r.Threads += run.Threads
		r.TotalTokens += run.TotalTokens
		r.CriticalPathTokens = max(r.CriticalPathTokens, run.CriticalPathTokens)
		if run.Answer == "" {
			continue
		}
		key := "wrong: " + run.Answer
		if countdown.VerifyAnswer(p, run.Answer) == nil {
			key = "target"
		}
		if _, ok := first[key]; !ok {
			first[key] = run.Answer
			order = append(order, key)
		}
		votes[key]++
	}
	top := 0
	for _, k := range order {
		if votes[k] > top {
			top, r.Answer = votes[k], first[k]
		}
	}
	r.Wall = time.Since(start)
	root.Wall, root.WallMS = r.Wall, r.Wall.Milliseconds()
	v.Inner.Observe.emit(Event{Kind: ThreadFinished, Thread: "samples", Tokens: r.TotalTokens})
	v.Inner.Observe.emit(Event{Kind: AnswerReady, Text: r.Answer})
	return r, nil
}

// CountdownStrategy solves Countdown problems.
type CountdownStrategy interface {
	Solve(ctx context.Context, b backend.Backend, p countdown.Problem) (*Result, error)
}

// ParseCountdown reads a Countdown strategy and builds it on base, whose
// Mode it sets: direct, serial, apr, hybrid:effort=off|light|deep (the
// model's hybrid thinking is its mode: direct, serial and apr), or
// vote:k=N (self-consistency over N sampled serial searches, which needs a
// temperature).
func ParseCountdown(spec string, base Countdown) (CountdownStrategy, error) {
	votes := 0
	mode := spec
	if k, ok := strings.CutPrefix(spec, "vote:k="); ok {
		n, err := strconv.Atoi(k)
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("strategy %q: want vote:k=N with N in 1..1024", spec)
		}
		if base.Temperature == 0 {
			return nil, fmt.Errorf("strategy %s needs a temperature: greedy searches would all agree", spec)
		}
		votes, mode = n, "serial"
	}
	m, ok := map[string]countdown.Mode{"direct": countdown.ModeDirect, "serial": countdown.ModeSerial, "apr": countdown.ModeParallel,
		"hybrid:effort=off": countdown.ModeDirect, "hybrid:effort=light": countdown.ModeSerial, "hybrid:effort=deep": countdown.ModeParallel}[mode]
	if !ok {
		return nil, fmt.Errorf("strategy %q: want direct, serial, apr, hybrid:effort=off|light|deep or vote:k=N", spec)
	}
	base.Mode = m
	if votes > 0 {
		return CountdownVote{Inner: base, K: votes}, nil
	}
	return base, nil
}

// subtreeTokens counts the tokens of a thread and all its descendants.
func subtreeTokens(t *Thread) int {
	n := t.Tokens
	for _, c := range t.Children {
		n += subtreeTokens(c)
	}
	return n
}
