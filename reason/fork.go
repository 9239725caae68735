package reason

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/task"
)

// Format is a parallel structure a model writes itself, as Multiverse and
// ThreadWeaver models were trained to: the text announces a fork (a
// stop string ends the call there), each branch continues the text so far
// from a start the orchestrator writes, and the join is the text the
// thread resumes from. Unlike a task's Protocol, which gives each child a
// prompt of its own, a format's branches share their parent's context: on
// the engine they fork from its cached prefix, on a server they share its
// prefix cache.
type Format interface {
	// Name is the strategy's name.
	Name() string
	// Instruction follows the task's prompt, as the format's models were
	// trained to see ("" for none).
	Instruction() string
	// ForkStop is the text that ends a call where a fork may begin.
	ForkStop() string
	// Branches reads the fork that text (ending with ForkStop) announces:
	// the branches' labels in order; none when the text announces no
	// well-formed fork.
	Branches(text string) []string
	// Start is what the orchestrator writes after the fork to begin
	// branch label: the branch's context is the text through the fork,
	// then its start.
	Start(label string) string
	// BranchStop ends a branch, and is kept in its text.
	BranchStop() string
	// Join is the text a thread resumes from: its text through the fork,
	// then the branches' texts (each its start, what was written and the
	// branch stop) as the format joins them.
	Join(text string, branches []string) string
	// Nests says whether a branch may fork in turn.
	Nests() bool
}

// outlineLabel finds the numbered outlines of a fork: "<Outline>\n1:" or
// "<Outline>1.2:".
var outlineLabel = regexp.MustCompile(`<Outline>\s*([0-9]+(?:\.[0-9]+)*)\s*:`)

// labels are the distinct outline numbers after the last open tag, in
// order.
func labels(text, open string) []string {
	i := strings.LastIndex(text, open)
	if i < 0 {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, m := range outlineLabel.FindAllStringSubmatch(text[i:], -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			out = append(out, m[1])
		}
	}
	return out
}

// Multiverse is the format of Multiverse models (Yang et al. 2025): a
// <Goal> of numbered <Outline>s, one <Path> per outline written
// concurrently, then the model's <Conclusion>. Paths may hold forks of
// their own.
type Multiverse struct{}

func (Multiverse) Name() string { return "multiverse" }
func (Multiverse) Instruction() string {
	return " Think step by step and in parallel before answering."
}
func (Multiverse) ForkStop() string   { return "</Goal>" }
func (Multiverse) BranchStop() string { return "</Path>" }
func (Multiverse) Nests() bool        { return true }

func (Multiverse) Branches(text string) []string { return labels(text, "<Goal>") }

func (Multiverse) Start(label string) string { return "\n<Path>\n" + label + ":" }

// Join writes the paths one after another, a newline after each, and opens
// the conclusion, as the Multiverse engine merges them.
func (Multiverse) Join(text string, branches []string) string {
	var b strings.Builder
	b.WriteString(text)
	b.WriteString("\n")
	for _, br := range branches {
		b.WriteString(strings.TrimPrefix(br, "\n"))
		b.WriteString("\n")
	}
	b.WriteString("<Conclusion>\n")
	return b.String()
}

// ThreadWeaver is the format of ThreadWeaver models (Lian et al. 2025):
// <Outlines> of numbered <Outline>s, then one <Thread> per outline written
// concurrently, after which the model closes the </Parallel> itself. No
// thread forks.
type ThreadWeaver struct{}

func (ThreadWeaver) Name() string        { return "threadweaver" }
func (ThreadWeaver) Instruction() string { return "" }
func (ThreadWeaver) ForkStop() string    { return "</Outlines>" }
func (ThreadWeaver) BranchStop() string  { return "</Thread>" }
func (ThreadWeaver) Nests() bool         { return false }

func (ThreadWeaver) Branches(text string) []string { return labels(text, "<Outlines>") }

func (ThreadWeaver) Start(label string) string { return "\n<Thread>\n" + label + ":" }

// Join writes the threads back to back, each after the first without its
// leading newline (</Thread><Thread>), and a newline, after which the
// model writes </Parallel> (the released models' setting, without a
// conclusion).
func (ThreadWeaver) Join(text string, branches []string) string {
	var b strings.Builder
	b.WriteString(text)
	for i, br := range branches {
		if i > 0 {
			br = strings.TrimPrefix(br, "\n")
		}
		b.WriteString(br)
	}
	b.WriteString("\n")
	return b.String()
}

// Fork runs a format's parallel structure over any task: one thread
// written sequentially until it announces a fork, its branches written
// concurrently from the thread's text, then the thread resumed from their
// join, until it ends.
type Fork struct {
	Options
	Format Format
}

// Name implements Strategy.
func (s Fork) Name() string { return s.Format.Name() }

// Solve implements Strategy.
func (s Fork) Solve(ctx context.Context, b backend.Backend, t task.Task, p task.Problem, observe Observer) (*Result, error) {
	start := time.Now()
	prompt := t.Prompt(p) + s.Format.Instruction()
	f := &forking{Fork: s, t: t, p: p, prompt: prompt, observe: serialized(observe), goal: newGoalWatch(t)}
	root, err := f.thread(ctx, b, "0", "", prompt, 0, 0)
	if err != nil {
		return nil, err
	}
	res := &Result{Tree: root, TokensToGoal: int(f.goal.first.Load()), Answer: t.Extract(p, root.Text)}
	res.LatencyMS = time.Since(start).Milliseconds()
	res.account(root)
	f.observe.emit(Event{Kind: AnswerReady, Text: res.Answer})
	return res, nil
}

// forking is one run of a Fork.
type forking struct {
	Fork
	t       task.Task
	p       task.Problem
	prompt  string       // every thread's text starts with it
	used    atomic.Int64 // tokens spent so far in the run
	observe Observer
	goal    *goalWatch
}

// finishMalformed is the Finish of a branch that ran out without closing,
// or of a thread whose fork named no branch: the orchestrator closed what
// it could and went on.
const finishMalformed = "malformed"

// thread writes from text until it ends, running the forks it announces.
// A branch (depth > 0) ends at the format's branch stop, which its text
// keeps. The thread's Text is what it wrote, with its branches joined in,
// after the prompt it was given.
func (f *forking) thread(ctx context.Context, b backend.Backend, node, parent, prompt string, depth, share int) (*Thread, error) {
	t, done := begin(f.observe, node, parent)
	defer done()
	text := prompt
	fmtr := f.Format
	var stops []string
	if depth > 0 {
		stops = append(stops, fmtr.BranchStop())
	}
	if depth < f.maxDepth() && (depth == 0 || fmtr.Nests()) {
		stops = append(stops, fmtr.ForkStop())
	}
	for {
		// The run's threads share its budget: each call gets what is
		// left, and branches started together split it (share).
		maxTokens, spent := f.callTokens(int(f.used.Load()), share, subtreeTokens(t))
		if spent != "" {
			t.Finish, t.Reason = "budget", spent
			if depth > 0 {
				text += "\n" + fmtr.BranchStop()
			}
			break
		}
		// The run's prompt, and what was written after it to continue.
		req := &backend.Request{Prompt: text, ReplyAt: len(f.prompt), MaxTokens: maxTokens, Temperature: f.Temperature, Stop: stops,
			Seed: f.seedFor(node, t.Calls), Affinity: f.p.Text, OnChunk: f.goal.watch(f.observe.stream(node, parent))}
		c, err := b.Complete(ctx, req)
		if errors.Is(err, backend.ErrPromptTooLong) {
			// The text outgrew the context: the thread ends here, a
			// branch closed so that its parent's join stays whole.
			t.Finish, t.Reason = string(backend.FinishLength), err.Error()
			if depth > 0 {
				text += "\n" + fmtr.BranchStop()
			}
			break
		}
		if err != nil {
			if depth == 0 || ctx.Err() != nil {
				return nil, err
			}
			// A failed branch joins closed, as one that ran out.
			t.Finish, t.Reason = finishFailed, oneLine(err)
			text += "\n" + fmtr.BranchStop()
			break
		}
		t.Calls++
		t.PromptTokens += c.Usage.PromptTokens
		t.CachedTokens += c.Usage.CachedPromptTokens
		t.Tokens += c.Usage.CompletionTokens
		f.used.Add(int64(c.Usage.CompletionTokens))
		t.Finish = string(c.Finish)
		text += c.Text + c.StopString
		if c.StopString != fmtr.ForkStop() {
			if depth > 0 && c.StopString != fmtr.BranchStop() {
				// A branch that ran out (its length, the end of
				// sequence) is closed by the orchestrator.
				text += "\n" + fmtr.BranchStop()
				t.Finish, t.Reason = finishMalformed, "the branch ended without "+fmtr.BranchStop()
				t.FormatErrors++
			}
			break
		}
		labels := fmtr.Branches(text)
		if len(labels) == 0 {
			// A fork that names no branch: the thread goes on alone,
			// no longer stopped at forks, so it cannot loop.
			t.Reason = "a fork without numbered outlines"
			t.FormatErrors++
			stops = slices.DeleteFunc(stops, func(s string) bool { return s == fmtr.ForkStop() })
			continue
		}
		kids, err := f.branches(ctx, b, node, depth+1, text, labels, f.childShare(int(f.used.Load()), share, subtreeTokens(t), len(labels)))
		if err != nil {
			return nil, err
		}
		texts := make([]string, len(kids))
		for i, k := range kids {
			t.Children = append(t.Children, k)
			texts[i] = k.Text
		}
		text = fmtr.Join(text, texts)
	}
	t.Text = strings.TrimPrefix(text, prompt)
	if depth == 0 {
		t.Text = text
	}
	return t, nil
}

// branches runs a fork's branches concurrently, at most MaxChildren at
// once, each spending at most share of the run's budget (0: no budget);
// each branch's Text is its start and what it wrote.
func (f *forking) branches(ctx context.Context, b backend.Backend, parent string, depth int, text string, labels []string, share int) ([]*Thread, error) {
	kids := make([]*Thread, len(labels))
	errs := make([]error, len(labels))
	limit := f.MaxChildren
	if limit <= 0 {
		limit = len(labels)
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i, label := range labels {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			start := f.Format.Start(label)
			prompt := text + start
			kid, err := f.thread(ctx, b, parent+","+label, parent, prompt, depth, share)
			if err == nil {
				kid.Text = start + kid.Text
			}
			kids[i], errs[i] = kid, err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return kids, nil
}

// maxDepth is how deep branches nest: MaxDepth, or without one the
// deepest the format's own engine goes (5 for a format that nests).
func (f *forking) maxDepth() int {
	switch {
	case f.MaxDepth > 0:
		return f.MaxDepth
	case f.Format.Nests():
		return 5
	}
	return 1
}

// seedFor derives a thread's seed for one of its calls, as a search's
// threads do.
func (f *forking) seedFor(node string, call int) uint64 {
	return seedOf(f.Seed, f.t.Key(f.p), node, call)
}

// formats are the formats Parse knows, by name.
var formats = map[string]Format{"multiverse": Multiverse{}, "threadweaver": ThreadWeaver{}}
