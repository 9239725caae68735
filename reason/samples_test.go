package reason

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/task/countdown"
	taskmath "github.com/braid-dev/braid/task/math"
)

// scripted answers sample i (by its seed) with answers[i], a token per
// byte.
type scripted struct {
	mu      sync.Mutex
	answers []string
	prompts []string
}

func (s *scripted) Complete(_ context.Context, req *backend.Request) (*backend.Completion, error) {
	s.mu.Lock()
	s.prompts = append(s.prompts, req.Prompt)
	s.mu.Unlock()
	// The tests run with Seed 100: sample i is seeded base+i+1. A single
	// search, seeded otherwise, gets the first answer.
	i := int(req.Seed - sampleBase(100, req.Prompt) - 1)
	if i < 0 || i >= len(s.answers) {
		i = 0
	}
	text := "Working it out... so \\boxed{" + s.answers[i] + "}"
	return &backend.Completion{Text: text, Finish: backend.FinishStop, Usage: backend.Usage{CompletionTokens: len(text)}}, nil
}

func TestVoteGroupsEquivalentAnswers(t *testing.T) {
	b := &scripted{answers: []string{"3", "0.5", `\frac{1}{2}`, "4", "1/2"}}
	p := task.Problem{Task: "math", Text: "What is one half?", Answer: "0.5"}
	r, err := Vote{Inner: Search{Options: Options{Temperature: 1, Seed: 100}}, K: 5}.Solve(context.Background(), b, taskmath.Task{}, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Answer != "0.5" || r.Threads != 5 || len(r.Tree.Children) != 5 {
		t.Errorf("answer %q from %d threads", r.Answer, r.Threads)
	}
	if r.CriticalPathTokens >= r.TotalTokens || r.CriticalPathTokens == 0 {
		t.Errorf("critical path %d of %d tokens", r.CriticalPathTokens, r.TotalTokens)
	}
	if !strings.Contains(b.prompts[0], "What is one half?") || !strings.Contains(b.prompts[0], `\boxed{}`) {
		t.Errorf("prompt %q", b.prompts[0])
	}
}

// checkedMath is math with a checker that knows the answer is 12: a task
// whose answers can be checked without a reference.
type checkedMath struct{ taskmath.Task }

func (checkedMath) Check(_ task.Problem, answer string) error {
	if answer != "12" {
		return errors.New("not 12")
	}
	return nil
}

func TestBestTakesACheckedAnswer(t *testing.T) {
	b := &scripted{answers: []string{"7", "7", "12"}}
	p := task.Problem{Task: "math", Text: "3*4?"}
	best, err := Parse("best:k=3", Options{Temperature: 1, Seed: 100}, checkedMath{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := best.Solve(context.Background(), b, checkedMath{}, p, nil)
	if err != nil || r.Answer != "12" {
		t.Errorf("best-of-3 answered %q, %v", r.Answer, err)
	}
	vote, err := Vote{Inner: Search{Options: Options{Temperature: 1, Seed: 100}}, K: 3}.Solve(context.Background(), b, checkedMath{}, p, nil)
	if err != nil || vote.Answer != "7" {
		t.Errorf("vote answered %q, %v", vote.Answer, err)
	}
	// Math has a reference answer, not a checker: picking by it is pass@k.
	p.Answer = "12"
	if _, err := Parse("best:k=3", Options{Temperature: 1}, taskmath.Task{}); err == nil || !strings.Contains(err.Error(), "pass@k") {
		t.Errorf("best-of-N on math: %v", err)
	}
	if _, err := (Best{Vote: Vote{Inner: Search{}, K: 3}}).Solve(context.Background(), b, taskmath.Task{}, p, nil); err == nil {
		t.Error("best-of-N ran on math, picking by the reference answer")
	}
}

func TestParse(t *testing.T) {
	for spec, want := range map[string]string{"serial": "serial", "vote:k=8": "vote:k=8", "vote:k=4:apr": "vote:k=4:apr",
		"best:k=2": "best:k=2", "best:k=4:apr": "best:k=4:apr", "direct": "direct", "apr": "apr", "hybrid:effort=deep": "hybrid:effort=deep",
		"aggregate:k=3": "aggregate:k=3", "deepthink:k=2": "deepthink:k=2", "parallel": "parallel", "parallel:k=3": "parallel:k=3",
		"multiverse": "multiverse", "threadweaver": "threadweaver"} {
		s, err := Parse(spec, Options{Temperature: 1}, countdown.Task{})
		if err != nil || s.Name() != want {
			t.Errorf("%q: %v, %v", spec, s, err)
		}
	}
	for _, bad := range []string{"vote", "vote:k=0", "vote:n=3", "best:k=x", "serial:k=2", "wide", "vote:k=2:vote:k=2",
		"aggregate:k=2:apr", "vote:k=2:wide", "apr:k=2", "parallel:k=1", "parallel:n=2", "multiverse:k=2"} {
		if _, err := Parse(bad, Options{Temperature: 1}, countdown.Task{}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := Parse("vote:k=4", Options{}, countdown.Task{}); err == nil || !strings.Contains(err.Error(), "temperature") {
		t.Errorf("a greedy vote: %v", err)
	}
	if _, err := Parse("apr", Options{}, taskmath.Task{}); err == nil || !strings.Contains(err.Error(), "protocol") {
		t.Errorf("apr on math: %v", err)
	}
}

// aggregator answers the aggregation prompt with the answer most solutions
// in it give, and the samples with their scripted answers.
type aggregator struct{ scripted }

func (j *aggregator) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	if strings.Contains(req.Prompt, "attempted solutions") {
		if req.Temperature != 0 || !strings.Contains(req.Prompt, "--- Solution 3 ---") {
			return nil, context.Canceled
		}
		text := `Checking them: \boxed{12}`
		return &backend.Completion{Text: text, Finish: backend.FinishStop, Usage: backend.Usage{CompletionTokens: 9}}, nil
	}
	return j.scripted.Complete(ctx, req)
}

func TestAggregateReadsTheSamples(t *testing.T) {
	b := &aggregator{scripted{answers: []string{"7", "12", "7"}}}
	p := task.Problem{Task: "math", Text: "3*4?", Answer: "12"}
	r, err := Aggregate{Options: Options{Temperature: 1, Seed: 100}, K: 3}.Solve(context.Background(), b, taskmath.Task{}, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Answer != "12" || r.Threads != 4 || r.Tree.Node != "aggregate" || len(r.Tree.Children) != 3 {
		t.Errorf("answer %q, %d threads, tree %s with %d children", r.Answer, r.Threads, r.Tree.Node, len(r.Tree.Children))
	}
	if r.CriticalPathTokens != maxTokens(r.Tree.Children)+9 {
		t.Errorf("critical path %d", r.CriticalPathTokens)
	}
}

func maxTokens(ts []*Thread) int {
	m := 0
	for _, t := range ts {
		m = max(m, t.Tokens)
	}
	return m
}

func TestEventsTellTheRun(t *testing.T) {
	var mu sync.Mutex
	var events []Event
	observe := func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }
	b := &scripted{answers: []string{"1", "2", "2"}}
	r, err := Vote{Inner: Search{Options: Options{Temperature: 1, Seed: 100}}, K: 3}.Solve(context.Background(), b, taskmath.Task{}, task.Problem{Text: "x"}, observe)
	if err != nil {
		t.Fatal(err)
	}
	count := map[EventKind]int{}
	for _, e := range events {
		count[e.Kind]++
	}
	if count[ThreadStarted] != 4 || count[ThreadFinished] != 4 || count[AnswerReady] != 1 || events[len(events)-1].Text != r.Answer {
		t.Errorf("events %v; answer %q", count, r.Answer)
	}
}

// The Countdown strategy tells its tree: the root, then each child under
// it, every thread started before it finishes.
func TestCountdownEvents(t *testing.T) {
	var p countdown.Problem
	var rec countdown.TraceRecord
	for i, q := range problems(20) {
		var err error
		if rec, err = (countdown.TraceConfig{Format: countdown.ModeParallel, ModeHeader: true}).Generate(q, 21, i); err != nil {
			t.Fatal(err)
		}
		if p = q; rec.Children > 0 {
			break
		}
	}
	if rec.Children == 0 {
		t.Fatal("no rollout spawned")
	}
	r := &replay{answers: map[string]string{}}
	for _, s := range rec.Sequences {
		r.answers[s.Prompt] = s.Completion
	}
	var mu sync.Mutex
	started := map[string]string{}
	finished := 0
	_, err := Search{Options: Options{Env: EnvOff}, Effort: task.EffortDeep}.Solve(context.Background(), r, countdown.Task{}, countdown.NewProblem(p), func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e.Kind {
		case ThreadStarted:
			started[e.Thread] = e.Parent
		case ThreadFinished:
			if _, ok := started[e.Thread]; !ok {
				t.Errorf("%s finished before it started", e.Thread)
			}
			finished++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(started) != rec.Children+1 || finished != rec.Children+1 || started["0"] != "" {
		t.Errorf("%d started, %d finished, for %d threads", len(started), finished, rec.Children+1)
	}
	for th, parent := range started {
		if th != "0" && parent != "0" {
			t.Errorf("child %s under %q", th, parent)
		}
	}
}

// thinker samples scripted answers, judges "2", and refines what it is
// given into \boxed{12}; it records the efforts it was asked for.
type thinker struct {
	scripted
	mu      sync.Mutex
	efforts []string
	refined string
}

func (th *thinker) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	th.mu.Lock()
	th.efforts = append(th.efforts, req.Effort)
	th.mu.Unlock()
	switch {
	case strings.Contains(req.Prompt, "candidate solutions"):
		return &backend.Completion{Text: "2. It checks out.", Usage: backend.Usage{CompletionTokens: 5}}, nil
	case strings.Contains(req.Prompt, "Here is a solution"):
		th.refined = req.Prompt
		return &backend.Completion{Text: `Fixed: \boxed{12}`, Usage: backend.Usage{CompletionTokens: 6}}, nil
	}
	return th.scripted.Complete(ctx, req)
}

func TestDeepThinkJudgesAndRefines(t *testing.T) {
	b := &thinker{scripted: scripted{answers: []string{"7", "11", "9"}}}
	p := task.Problem{Text: "3*4?"}
	r, err := DeepThink{Options: Options{Temperature: 1, Seed: 100}, K: 3, Effort: "deep"}.Solve(context.Background(), b, taskmath.Task{}, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Answer != "12" || r.Threads != 5 || r.Tree.Node != "refine" || r.Tree.Children[0].Node != "judge" || len(r.Tree.Children[0].Children) != 3 {
		t.Errorf("answer %q, %d threads, tree %s", r.Answer, r.Threads, r.Tree.Node)
	}
	if !strings.Contains(b.refined, `\boxed{11}`) {
		t.Errorf("refined another solution than the second:\n%s", b.refined)
	}
	for _, e := range b.efforts {
		if e != "deep" {
			t.Errorf("a call at effort %q", e)
		}
	}
	h, err := Parse("hybrid:effort=off", Options{Seed: 100}, taskmath.Task{})
	if err != nil || h.Name() != "hybrid:effort=off" {
		t.Fatalf("%v, %v", h, err)
	}
	b.efforts = nil
	if _, err := h.Solve(context.Background(), b, taskmath.Task{}, p, nil); err != nil || len(b.efforts) != 1 || b.efforts[0] != "off" {
		t.Errorf("hybrid asked with efforts %q, %v", b.efforts, err)
	}
	for _, bad := range []string{"hybrid", "hybrid:effort=max", "deepthink"} {
		if _, err := Parse(bad, Options{}, taskmath.Task{}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// sampler answers k samples in one call, each with its seed, as a server
// taking n does.
type sampler struct {
	calls, sampled int
}

func (s *sampler) Complete(context.Context, *backend.Request) (*backend.Completion, error) {
	return nil, errors.New("sampler: CompleteN only")
}

func (s *sampler) CompleteN(_ context.Context, req *backend.Request, n int) ([]*backend.Completion, error) {
	s.calls++
	s.sampled += n
	var out []*backend.Completion
	for i := range n {
		// Run with Seed 10: samples 1, 2, ... answer 5, 4, 5, ...
		k := req.Seed - sampleBase(10, req.Prompt) + uint64(i)
		text := fmt.Sprintf("the answer is %d", 4+int(k%2))
		if req.OnChunk != nil {
			req.OnChunk(backend.Chunk{Text: text, Index: i})
		}
		out = append(out, &backend.Completion{Text: text, Finish: backend.FinishStop, Seed: req.Seed + uint64(i),
			Usage: backend.Usage{CompletionTokens: 4}})
	}
	return out, nil
}

// A vote's samples go to a backend that takes n as one request, and each
// sample streams as its own thread.
func TestVoteSamplesInOneRequest(t *testing.T) {
	b := &sampler{}
	var mu sync.Mutex
	deltas := map[string]int{}
	st, err := Parse("vote:k=5", Options{Temperature: 1, Seed: 10}, taskmath.Task{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.Solve(context.Background(), b, taskmath.Task{}, task.Problem{Task: "math", Text: "2+2?", Answer: "4"}, func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Kind == ThreadDelta {
			deltas[e.Thread]++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// Samples 1 to 5 answer 5, 4, 5, 4, 5.
	if b.calls != 1 || b.sampled != 5 || r.Threads != 5 || r.Answer != "5" || len(deltas) != 5 {
		t.Errorf("%d calls for %d samples; %d threads, answer %q, deltas by thread %v", b.calls, b.sampled, r.Threads, r.Answer, deltas)
	}
}

// Free-text problems given one seed sample independently too.
func TestSampleSeedsDifferAcrossProblems(t *testing.T) {
	s := Search{Options: Options{Temperature: 1, Seed: 7}}
	seeds := map[uint64]string{}
	for _, q := range []string{"What is 2+2?", "What is 3+3?"} {
		b := &seedLog{}
		p := task.Problem{Task: "math", Text: q, Answer: "4"}
		if _, err := (Vote{Inner: s, K: 3}).Solve(context.Background(), b, taskmath.Task{}, p, nil); err != nil {
			t.Fatal(err)
		}
		for _, seed := range b.seeds {
			if other, ok := seeds[seed]; ok {
				t.Errorf("seed %d drawn for %q and %q", seed, other, q)
			}
			seeds[seed] = q
		}
	}
	if len(seeds) != 6 {
		t.Errorf("%d distinct seeds for 2 problems of 3 samples", len(seeds))
	}
}
