package reason

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/task"
)

// Search runs one thread from the task's prompt at a reasoning effort: in
// the task's environment when it has one, and, at effort deep on a task
// with a parallel protocol (APR), spawning children that run concurrently
// and resuming the parent with their results joined. A task.Modal task's
// model takes the effort in its prompt (Countdown: direct, serial or
// parallel search); any other's backend takes it with the request.
type Search struct {
	Options
	// Effort is "" for the model's default, or task.EffortOff, Light or
	// Deep.
	Effort string
	label  string // the name Parse read
}

// Name implements Strategy.
func (s Search) Name() string {
	if s.label != "" {
		return s.label
	}
	switch s.Effort {
	case "":
		return "serial"
	case task.EffortOff:
		return "direct"
	case task.EffortDeep:
		return "apr"
	}
	return "hybrid:effort=" + s.Effort
}

// Solve implements Strategy.
func (s Search) Solve(ctx context.Context, b backend.Backend, t task.Task, p task.Problem, observe Observer) (*Result, error) {
	return s.solve(ctx, b, t, p, serialized(observe), newGoalWatch(t))
}

// search is one run of a Search: what its threads share.
type search struct {
	Search
	t       task.Task
	p       task.Problem
	observe Observer
	used    *atomic.Int64 // tokens spent so far in this run
	goal    *goalWatch
	// protocol is the task's, when the run's threads may spawn.
	protocol task.Protocol
}

func (s Search) solve(ctx context.Context, b backend.Backend, t task.Task, p task.Problem, observe Observer, goal *goalWatch) (*Result, error) {
	start := time.Now()
	r := &search{Search: s, t: t, p: p, observe: observe, used: new(atomic.Int64), goal: goal}
	if pr, ok := t.(task.Protocol); ok && s.Effort == task.EffortDeep {
		r.protocol = pr
	}
	root, err := r.thread(ctx, b, "0", "", s.prompt(t, p), 0, 0)
	if err != nil {
		return nil, err
	}
	res := &Result{Tree: root, TokensToGoal: int(goal.first.Load()), Answer: t.Extract(p, root.Text)}
	res.LatencyMS = time.Since(start).Milliseconds()
	res.account(root)
	observe.emit(Event{Kind: AnswerReady, Text: res.Answer})
	return res, nil
}

// prompt is the root's prompt: at the effort, for a task whose model takes
// it in the prompt.
func (s Search) prompt(t task.Task, p task.Problem) string {
	if m, ok := t.(task.Modal); ok && s.Effort != "" {
		return m.PromptAt(p, s.Effort)
	}
	return t.Prompt(p)
}

// requestEffort is the effort a request carries: none when the prompt
// holds it.
func (s Search) requestEffort(t task.Task) string {
	if _, ok := t.(task.Modal); ok {
		return ""
	}
	return s.Effort
}

// oneCall reports whether each of s's runs on t is a single call: no
// environment writes into it and it never spawns. Such runs can be drawn
// as samples of one request.
func (s Search) oneCall(t task.Task) bool {
	_, env := t.(task.Environment)
	_, protocol := t.(task.Protocol)
	return (!env || s.Env == EnvOff) && (!protocol || s.Effort != task.EffortDeep)
}

// thread runs one thread from its prompt: a call, and for a thread that
// may spawn (the root, at depth 0, up to MaxDepth), after each spawn, the
// children and the call that resumes it. A positive share caps the
// thread's own tokens: children started together split what is left of
// the run's budget, so running at once cannot take them past it.
func (r *search) thread(ctx context.Context, b backend.Backend, node, parent, prompt string, depth, share int) (*Thread, error) {
	t, done := begin(r.observe, node, parent)
	defer done()
	text := prompt
	var conf *confTracker
	if r.Confidence.on() {
		rule := r.Confidence
		if depth == 0 && r.protocol != nil {
			// A spawning search's root carries the run: its children are
			// the traces pruning drops, as a vote's samples are.
			rule.PruneBelow = 0
		}
		conf = newConfTracker(rule)
		defer func() { t.Confidence = conf.result() }()
	}
	for {
		if why := stoppedBy(ctx); why != nil {
			// Stopped before this call (a child not yet started, or a
			// parent whose children were stopped): no call is made.
			t.Finish, t.Reason = finishStopped, why.Error()
			break
		}
		maxTokens, spent := r.callTokens(int(r.used.Load()), share, subtreeTokens(t))
		if spent != "" {
			t.Finish, t.Reason = "budget", spent
			break
		}
		// The thread's prompt, and what was written after it to continue:
		// one text to the engine, a user's and an assistant's message to
		// a chat server. The run's threads share one affinity key, so that
		// one server's prefix cache holds the context they share.
		req := &backend.Request{Prompt: text, ReplyAt: len(prompt), MaxTokens: maxTokens, Temperature: r.Temperature, Effort: r.requestEffort(r.t),
			Seed: r.seedFor(node, t.Calls), Affinity: r.p.Text, OnChunk: r.goal.watch(r.observe.stream(node, parent))}
		if te, ok := r.t.(task.Environment); ok && r.Env != EnvOff {
			env, err := te.Env(r.p, text, depth > 0)
			if err != nil {
				return nil, err
			}
			if r.Env == EnvFill {
				env = fillOnly{env}
			}
			req.Env = env
		}
		cctx := ctx
		var cancel context.CancelCauseFunc = func(error) {}
		if conf != nil {
			// The thread's tokens come with their alternatives; one that
			// loses confidence is stopped where it is.
			req.TopLogprobs = r.Confidence.topK()
			cctx, cancel = context.WithCancelCause(ctx)
			stream := req.OnChunk
			req.OnChunk = func(ch backend.Chunk) {
				if conf.add(ch.Tokens) {
					cancel(errLowConfidence)
				}
				if stream != nil {
					stream(ch)
				}
			}
		}
		c, err := b.Complete(cctx, req)
		pruned := err != nil && ctx.Err() == nil && errors.Is(context.Cause(cctx), errLowConfidence)
		cancel(nil)
		if pruned {
			// Stopped for it; a call that finished before the stop
			// reached it ran its course, and counts as such.
			conf.pruned = true
		}
		if errors.Is(err, backend.ErrPromptTooLong) {
			// A parent resumed past the context: the thread ends here.
			t.Finish, t.Reason = string(backend.FinishLength), err.Error()
			break
		}
		stopped := pruned || errors.Is(err, context.Canceled) && stoppedBy(ctx) != nil
		if err != nil && !stopped {
			// A child whose call failed for good (a server that kept
			// failing) ends as failed and joins as unsolved: faults cost
			// threads, not trees. The root's failure, or the request's
			// end, is the run's.
			if depth == 0 || ctx.Err() != nil && stoppedBy(ctx) == nil {
				return nil, err
			}
			t.Finish, t.Reason = finishFailed, oneLine(err)
			if c != nil {
				t.Calls++
				t.PromptTokens += c.Usage.PromptTokens
				t.Tokens += c.Usage.CompletionTokens
				r.used.Add(int64(c.Usage.CompletionTokens))
				text += c.Text
			}
			break
		}
		if c != nil { // a stopped call returns what it generated, if anything
			t.Calls++
			t.PromptTokens += c.Usage.PromptTokens
			t.CachedTokens += c.Usage.CachedPromptTokens
			t.Tokens += c.Usage.CompletionTokens
			r.used.Add(int64(c.Usage.CompletionTokens))
			t.Filled += c.Usage.FilledTokens
			t.Finish, t.Reason = string(c.Finish), c.EnvError
			text += c.Text
		}
		if pruned {
			t.Finish, t.Reason = finishPruned, errLowConfidence.Error()
			break
		}
		if stopped {
			t.Finish, t.Reason = finishStopped, stoppedBy(ctx).Error()
			break
		}
		if r.protocol == nil || depth >= max(1, r.MaxDepth) {
			break
		}
		before, nodes, ok := r.protocol.Spawned(text)
		if !ok {
			break
		}
		prompts, err := r.protocol.ChildPrompts(r.p, before, nodes)
		if err != nil {
			// The model spawned a node it never generated (possible when
			// nothing constrains it): the thread ends there, unsolved.
			t.Finish, t.Reason = "invalid spawn", err.Error()
			break
		}
		// The children split what this thread may still spend.
		kids, err := r.children(ctx, b, node, depth+1, nodes, prompts, r.childShare(int(r.used.Load()), share, subtreeTokens(t), len(nodes)))
		if err != nil {
			return nil, err
		}
		results := make([]task.Child, len(kids))
		for i, k := range kids {
			results[i] = task.Child{Name: k.Node, Text: k.Text}
		}
		t.Children = append(t.Children, kids...)
		text = before + r.protocol.Join(r.p, depth+1, results)
	}
	t.Text = text
	return t, nil
}

// children runs a spawn's children concurrently, at most MaxChildren at
// once, and returns them in spawn order; each may spend share of the
// run's budget (0: no budget).
func (r *search) children(ctx context.Context, b backend.Backend, parent string, depth int, nodes, prompts []string, share int) ([]*Thread, error) {
	kids := make([]*Thread, len(nodes))
	errs := make([]error, len(nodes))
	limit := r.MaxChildren
	if limit <= 0 {
		limit = len(nodes)
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
			kids[i], errs[i] = r.thread(kctx, b, id, parent, prompts[i], depth, share)
			if r.JoinAtGoal && errs[i] == nil && r.protocol.Solved(r.p, kids[i].Text) {
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

// finishFailed is the Finish of a thread whose call failed for good,
// finishPruned of one stopped for its confidence.
const (
	finishFailed = "failed"
	finishPruned = "pruned"
)

// oneLine is an error's message on one line, for a thread's reason.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// errSiblingSolved is why JoinAtGoal stops a thread, errVoteSettled why a
// vote stops its samples once no sample still running could change its
// answer.
var (
	errSiblingSolved = errors.New("a sibling reached the goal")
	errVoteSettled   = errors.New("the vote was settled")
)

// stoppedBy is why ctx's run stopped the thread on purpose (a sibling
// solved, the vote settled), nil when it did not.
func stoppedBy(ctx context.Context) error {
	cause := context.Cause(ctx)
	for _, why := range []error{errSiblingSolved, errVoteSettled} {
		if errors.Is(cause, why) {
			return why
		}
	}
	return nil
}

// seedFor derives a thread's seed for one of its calls, so that a sampled
// run repeats with its seed whatever order the threads run in. The problem
// is part of it: one seed given to many problems (an evaluation's seed 1)
// must not draw the same random numbers on each, or the samples of
// different problems make the same choices at the same points and are no
// longer independent.
func (r *search) seedFor(node string, call int) uint64 {
	return seedOf(r.Seed, r.t.Key(r.p), node, call)
}

// seedOf is the seed of a thread's call, from the run's seed (0: drawn,
// and so 0) and the problem's key.
func seedOf(seed uint64, key, node string, call int) uint64 {
	if seed == 0 {
		return 0
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s/%s/%d", seed, key, node, call)
	return h.Sum64() | 1
}

// fillOnly is an environment that writes but never constrains.
type fillOnly struct{ backend.Environment }

func (fillOnly) Choices() []string { return nil }

// subtreeTokens counts the tokens of a thread and all its descendants.
func subtreeTokens(t *Thread) int {
	n := t.Tokens
	for _, c := range t.Children {
		n += subtreeTokens(c)
	}
	return n
}

// goalWatch notes when a run (or a vote's runs together) first reaches
// the goal: when the task's marker first appears in what they stream.
type goalWatch struct {
	marker   string // "" for a task without one: nothing is watched
	streamed atomic.Int64
	first    atomic.Int64 // streamed when the marker first appeared; -1 before
}

func newGoalWatch(t task.Task) *goalWatch {
	w := &goalWatch{}
	if m, ok := t.(task.Marked); ok {
		w.marker = m.GoalMarker()
	}
	w.first.Store(-1)
	return w
}

// watch wraps a call's OnChunk: it counts the call's tokens and looks for
// the marker in its text, across chunk boundaries.
func (w *goalWatch) watch(next func(backend.Chunk)) func(backend.Chunk) {
	if w.marker == "" {
		return next
	}
	var tail string
	return func(c backend.Chunk) {
		n := len(c.Tokens)
		if n == 0 && c.Text != "" {
			n = 1
		}
		total := w.streamed.Add(int64(n))
		if w.first.Load() < 0 {
			tail += c.Text
			if strings.Contains(tail, w.marker) {
				w.first.CompareAndSwap(-1, total)
			}
			if len(tail) >= len(w.marker) {
				tail = tail[len(tail)-len(w.marker)+1:]
			}
		}
		if next != nil {
			next(c)
		}
	}
}
