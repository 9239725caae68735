package reason

import (
	"context"
	"fmt"
	"hash/fnv"
	"regexp"
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
	Solve(ctx context.Context, b backend.Backend, t task.Task, p task.Problem) (*Result, error)
}

// Sampling is how each sample is generated.
type Sampling struct {
	// MaxTokens caps each sample (0: the model's context).
	MaxTokens   int
	Temperature float64
	// Seed makes a run repeatable (0: drawn). Sample i of a problem uses
	// base+i+1, base derived from Seed and the problem's prompt: one Seed
	// given to many problems must not draw the same random numbers on
	// each, or their samples would not be independent.
	Seed uint64
	// Observe, when set, receives the run's events as they happen.
	Observe Observer
	// Effort is the reasoning effort asked of a hybrid-thinking model
	// ("off", "light", "deep"; "" for its default).
	Effort string
}

// Serial asks once.
type Serial struct{ Sampling }

// Vote is self-consistency: K samples, and the answer most of them give,
// answers grouped by the task's equivalence (equal numbers are one answer),
// not by their spelling. Ties go to the answer given first.
type Vote struct {
	Sampling
	K int
}

// Best is best-of-N: K samples, and the first answer the task verifies as
// right; without a verdict (no reference answer), the vote's answer.
type Best struct {
	Sampling
	K int
}

// Aggregate draws K samples, then asks the model once more, with the
// question and all K solutions, for one final answer: the aggregator reads
// the others' reasoning, not just their answers (for chat models).
type Aggregate struct {
	Sampling
	K int
}

func (s Aggregate) Name() string { return fmt.Sprintf("aggregate:k=%d", s.K) }

// Solve implements Strategy.
func (s Aggregate) Solve(ctx context.Context, b backend.Backend, t task.Task, p task.Problem) (*Result, error) {
	s.Observe = serialized(s.Observe)
	r, _, err := samples(ctx, s.Sampling, s.K, b, t, p)
	if err != nil {
		return nil, err
	}
	var prompt strings.Builder
	prompt.WriteString(t.Prompt(p))
	fmt.Fprintf(&prompt, "\n\nHere are %d attempted solutions:\n", s.K)
	for i, th := range r.Tree.Children {
		fmt.Fprintf(&prompt, "\n--- Solution %d ---\n%s\n", i+1, strings.TrimSpace(th.Text))
	}
	prompt.WriteString("\nSome of them may be wrong. Check them against each other, then write one correct solution.")
	// The judgement is not sampled.
	judge, err := s.call(ctx, b, "aggregate", prompt.String())
	if err != nil {
		return nil, err
	}
	judge.Children = r.Tree.Children
	r.Tree = judge
	r.Threads++
	r.TotalTokens += judge.Tokens
	r.CriticalPathTokens += judge.Tokens
	r.Wall += judge.Wall
	r.Answer = t.Extract(p, judge.Text)
	s.Observe.emit(Event{Kind: AnswerReady, Text: r.Answer})
	return r, nil
}

// DeepThink branches into K samples, has the model judge which is best,
// then has it check and refine that one into the final solution (for chat
// models).
type DeepThink struct {
	Sampling
	K int
}

func (s DeepThink) Name() string { return fmt.Sprintf("deepthink:k=%d", s.K) }

// Solve implements Strategy.
func (s DeepThink) Solve(ctx context.Context, b backend.Backend, t task.Task, p task.Problem) (*Result, error) {
	s.Observe = serialized(s.Observe)
	r, _, err := samples(ctx, s.Sampling, s.K, b, t, p)
	if err != nil {
		return nil, err
	}
	var judging strings.Builder
	judging.WriteString(t.Prompt(p))
	fmt.Fprintf(&judging, "\n\nHere are %d candidate solutions:\n", s.K)
	for i, th := range r.Tree.Children {
		fmt.Fprintf(&judging, "\n--- Solution %d ---\n%s\n", i+1, strings.TrimSpace(th.Text))
	}
	fmt.Fprintf(&judging, "\nWhich solution is most likely correct? Reply with its number, 1 to %d, first.", s.K)
	judge, err := s.call(ctx, b, "judge", judging.String())
	if err != nil {
		return nil, err
	}
	pick := 0
	if m := firstNumber.FindString(judge.Text); m != "" {
		if n, err := strconv.Atoi(m); err == nil && n >= 1 && n <= s.K {
			pick = n - 1
		}
	}
	chosen := r.Tree.Children[pick]
	refine := t.Prompt(p) + "\n\nHere is a solution:\n\n" + strings.TrimSpace(chosen.Text) +
		"\n\nCheck every step. Fix any mistake, and write the final solution."
	final, err := s.call(ctx, b, "refine", refine)
	if err != nil {
		return nil, err
	}
	judge.Children = r.Tree.Children
	final.Children = []*Thread{judge}
	r.Tree = final
	r.Threads += 2
	r.TotalTokens += judge.Tokens + final.Tokens
	r.CriticalPathTokens += judge.Tokens + final.Tokens
	r.Wall += judge.Wall + final.Wall
	r.Answer = t.Extract(p, final.Text)
	s.Observe.emit(Event{Kind: AnswerReady, Text: r.Answer})
	return r, nil
}

var firstNumber = regexp.MustCompile(`\d+`)

// call is one greedy call of a multi-stage strategy, as a thread.
func (s Sampling) call(ctx context.Context, b backend.Backend, name, prompt string) (*Thread, error) {
	start := time.Now()
	s.Observe.emit(Event{Kind: ThreadStarted, Thread: name})
	c, err := b.Complete(ctx, &backend.Request{Prompt: prompt, MaxTokens: s.MaxTokens, Effort: s.Effort, OnChunk: s.Observe.stream(name, "")})
	if err != nil {
		return nil, err
	}
	wall := time.Since(start)
	s.Observe.emit(Event{Kind: ThreadFinished, Thread: name, Tokens: c.Usage.CompletionTokens})
	return &Thread{Node: name, Text: c.Text, Calls: 1, Tokens: c.Usage.CompletionTokens,
		PromptTokens: c.Usage.PromptTokens, CachedTokens: c.Usage.CachedPromptTokens, Wall: wall, WallMS: wall.Milliseconds(),
		Finish: string(c.Finish)}, nil
}

// Hybrid asks once, at a reasoning effort: off, light or deep, mapped to a
// hybrid-thinking model's switch (on the Countdown model: direct, serial
// or parallel search, which braid solve maps itself).
type Hybrid struct{ Sampling }

func (s Hybrid) Name() string { return "hybrid:effort=" + s.Effort }

// Solve implements Strategy.
func (s Hybrid) Solve(ctx context.Context, b backend.Backend, t task.Task, p task.Problem) (*Result, error) {
	return Serial(s).Solve(ctx, b, t, p)
}

func (Serial) Name() string { return "serial" }
func (s Vote) Name() string { return fmt.Sprintf("vote:k=%d", s.K) }
func (s Best) Name() string { return fmt.Sprintf("best:k=%d", s.K) }

// Solve implements Strategy.
func (s Serial) Solve(ctx context.Context, b backend.Backend, t task.Task, p task.Problem) (*Result, error) {
	start := time.Now()
	s.Observe = serialized(s.Observe)
	th, err := s.sample(ctx, b, t, p, 0, "")
	if err != nil {
		return nil, err
	}
	r := &Result{Answer: t.Extract(p, th.Text), Tree: th, TokensToGoal: -1, TotalTokens: th.Tokens, CriticalPathTokens: th.Tokens,
		Threads: 1, Wall: time.Since(start)}
	s.Observe.emit(Event{Kind: AnswerReady, Text: r.Answer})
	return r, nil
}

// Solve implements Strategy.
func (s Vote) Solve(ctx context.Context, b backend.Backend, t task.Task, p task.Problem) (*Result, error) {
	s.Observe = serialized(s.Observe)
	r, answers, err := samples(ctx, s.Sampling, s.K, b, t, p)
	if err != nil {
		return nil, err
	}
	r.Answer = majority(t, p, answers)
	s.Observe.emit(Event{Kind: AnswerReady, Text: r.Answer})
	return r, nil
}

// Solve implements Strategy.
func (s Best) Solve(ctx context.Context, b backend.Backend, t task.Task, p task.Problem) (*Result, error) {
	s.Observe = serialized(s.Observe)
	r, answers, err := samples(ctx, s.Sampling, s.K, b, t, p)
	if err != nil {
		return nil, err
	}
	defer func() { s.Observe.emit(Event{Kind: AnswerReady, Text: r.Answer}) }()
	for _, a := range answers {
		if a == "" {
			continue
		}
		ok, known := t.Verify(p, a)
		if !known {
			break
		}
		if ok {
			r.Answer = a
			return r, nil
		}
	}
	r.Answer = majority(t, p, answers)
	return r, nil
}

// base is the seed the samples of the problem with this prompt count from.
func (s Sampling) base(prompt string) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s", s.Seed, prompt)
	return h.Sum64() >> 1 // base+i+1 never wraps to 0, which means unseeded
}

// sample runs sample i of a problem: one call, one thread, named name
// under parent ("" for a root).
func (s Sampling) sample(ctx context.Context, b backend.Backend, t task.Task, p task.Problem, i int, parent string) (*Thread, error) {
	start := time.Now()
	prompt := t.Prompt(p)
	seed := uint64(0)
	if s.Seed != 0 {
		seed = s.base(prompt) + uint64(i) + 1
	}
	name := strconv.Itoa(i)
	s.Observe.emit(Event{Kind: ThreadStarted, Thread: name, Parent: parent})
	c, err := b.Complete(ctx, &backend.Request{Prompt: prompt, MaxTokens: s.MaxTokens, Temperature: s.Temperature, Seed: seed,
		Effort: s.Effort, OnChunk: s.Observe.stream(name, parent)})
	if err != nil {
		return nil, err
	}
	wall := time.Since(start)
	s.Observe.emit(Event{Kind: ThreadFinished, Thread: name, Parent: parent, Tokens: c.Usage.CompletionTokens})
	return &Thread{Node: name, Text: c.Text, Calls: 1, Tokens: c.Usage.CompletionTokens, Filled: c.Usage.FilledTokens,
		PromptTokens: c.Usage.PromptTokens, CachedTokens: c.Usage.CachedPromptTokens, Wall: wall, WallMS: wall.Milliseconds(), Finish: string(c.Finish), Reason: c.EnvError}, nil
}

// samples runs k samples concurrently under one root thread and returns
// the result without its answer, and each sample's answer in order.
func samples(ctx context.Context, s Sampling, k int, b backend.Backend, t task.Task, p task.Problem) (*Result, []string, error) {
	if k < 1 {
		return nil, nil, fmt.Errorf("reason: %d samples", k)
	}
	start := time.Now()
	s.Observe.emit(Event{Kind: ThreadStarted, Thread: "samples"})
	// The k samples go as one request where the backend takes n (the
	// server prefills the prompt once), else as k concurrent ones; sample
	// i samples with base+i+1 either way.
	prompt := t.Prompt(p)
	seed := uint64(0)
	if s.Seed != 0 {
		seed = s.base(prompt) + 1
	}
	streams := make([]func(backend.Chunk), k)
	for i := range k {
		s.Observe.emit(Event{Kind: ThreadStarted, Thread: strconv.Itoa(i), Parent: "samples"})
		streams[i] = s.Observe.stream(strconv.Itoa(i), "samples")
	}
	// A sample's wall time runs to its last chunk: samples drawn in one
	// request all return together.
	last := make([]time.Time, k)
	req := &backend.Request{Prompt: prompt, MaxTokens: s.MaxTokens, Temperature: s.Temperature, Seed: seed, Effort: s.Effort,
		OnChunk: func(c backend.Chunk) {
			last[c.Index] = time.Now() // each index from one goroutine at a time
			if streams[c.Index] != nil {
				streams[c.Index](c)
			}
		}}
	cs, err := backend.CompleteN(ctx, b, req, k)
	if err != nil {
		return nil, nil, err
	}
	threads := make([]*Thread, k)
	for i, c := range cs {
		name := strconv.Itoa(i)
		wall := time.Since(start)
		if !last[i].IsZero() {
			wall = last[i].Sub(start)
		}
		s.Observe.emit(Event{Kind: ThreadFinished, Thread: name, Parent: "samples", Tokens: c.Usage.CompletionTokens})
		threads[i] = &Thread{Node: name, Text: c.Text, Calls: 1, Tokens: c.Usage.CompletionTokens, Filled: c.Usage.FilledTokens,
			PromptTokens: c.Usage.PromptTokens, CachedTokens: c.Usage.CachedPromptTokens, Wall: wall, WallMS: wall.Milliseconds(),
			Finish: string(c.Finish), Reason: c.EnvError}
	}
	root := &Thread{Node: "samples", Children: threads}
	r := &Result{Tree: root, Threads: k, TokensToGoal: -1}
	answers := make([]string, k)
	for i, th := range threads {
		answers[i] = t.Extract(p, th.Text)
		r.TotalTokens += th.Tokens
		r.CriticalPathTokens = max(r.CriticalPathTokens, th.Tokens)
	}
	r.Wall = time.Since(start)
	root.Wall, root.WallMS = r.Wall, r.Wall.Milliseconds()
	s.Observe.emit(Event{Kind: ThreadFinished, Thread: "samples", Tokens: r.TotalTokens})
	return r, answers, nil
}

// majority is the answer most samples give, by the task's equivalence,
// ties to the one given first; "" when none gave one.
func majority(t task.Task, p task.Problem, answers []string) string {
	best, top := "", 0
	for i, a := range answers {
		if a == "" {
			continue
		}
		n := 0
		for _, b := range answers {
			if b != "" && t.Equivalent(p, a, b) {
				n++
			}
		}
		if n > top || n == top && best == "" {
			best, top = answers[i], n
		}
	}
	return best
}

// ParseStrategy reads a strategy as the command line writes it: "serial",
// "hybrid:effort=deep", "vote:k=8", "best:k=4", "aggregate:k=4",
// "deepthink:k=4".
func ParseStrategy(spec string, s Sampling) (Strategy, error) {
	name, args, _ := strings.Cut(spec, ":")
	if name == "hybrid" {
		effort, ok := strings.CutPrefix(args, "effort=")
		if !ok || effort != "off" && effort != "light" && effort != "deep" {
			return nil, fmt.Errorf("reason: %q: want hybrid:effort=off, light or deep", spec)
		}
		s.Effort = effort
		return Hybrid{s}, nil
	}
	k := 0
	if args != "" {
		v, ok := strings.CutPrefix(args, "k=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("reason: %q: want %s:k=N with N in 1..1024", spec, name)
		}
		k = n
	}
	switch name {
	case "serial":
		if args != "" {
			return nil, fmt.Errorf("reason: %q: serial takes no arguments", spec)
		}
		return Serial{s}, nil
	case "vote":
		if k == 0 {
			return nil, fmt.Errorf("reason: %q: want vote:k=N", spec)
		}
		return Vote{s, k}, nil
	case "best":
		if k == 0 {
			return nil, fmt.Errorf("reason: %q: want best:k=N", spec)
		}
		return Best{s, k}, nil
	case "aggregate":
		if k == 0 {
			return nil, fmt.Errorf("reason: %q: want aggregate:k=N", spec)
		}
		return Aggregate{s, k}, nil
	case "deepthink":
		if k == 0 {
			return nil, fmt.Errorf("reason: %q: want deepthink:k=N", spec)
		}
		return DeepThink{s, k}, nil
	}
	return nil, fmt.Errorf("reason: unknown strategy %q (want serial, hybrid:effort=off|light|deep, vote:k=N, best:k=N, aggregate:k=N or deepthink:k=N)", spec)
}
