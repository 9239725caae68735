package reason

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/task"
	taskmath "github.com/braid-dev/braid/task/math"
)

// script is a model's recorded outputs: each call is answered with the
// output of the first turn whose prompt suffix the prompt ends with, and
// the request's stop strings must be the turn's.
type script struct {
	mu    sync.Mutex
	turns []turn
	calls []*backend.Request
}

type turn struct {
	suffix string   // the prompt ends with it
	stops  []string // the stop strings the request must carry
	text   string   // what the model writes
	stop   string   // the stop string it ends at ("" for the end of sequence)
	length bool     // it runs to its length
}

func (s *script) Complete(_ context.Context, req *backend.Request) (*backend.Completion, error) {
	s.mu.Lock()
	s.calls = append(s.calls, req)
	s.mu.Unlock()
	for _, tn := range s.turns {
		if !strings.HasSuffix(req.Prompt, tn.suffix) {
			continue
		}
		if !slices.Equal(req.Stop, tn.stops) {
			return nil, fmt.Errorf("prompt ending %q: stops %q, want %q", tn.suffix, req.Stop, tn.stops)
		}
		c := &backend.Completion{Text: tn.text, StopString: tn.stop, Finish: backend.FinishStop,
			Usage: backend.Usage{PromptTokens: len(req.Prompt), CompletionTokens: len(tn.text)}}
		if tn.length {
			c.Finish = backend.FinishLength
		}
		if req.OnChunk != nil {
			req.OnChunk(backend.Chunk{Text: tn.text})
		}
		return c, nil
	}
	return nil, fmt.Errorf("no recorded output for a prompt ending %q", req.Prompt[max(0, len(req.Prompt)-40):])
}

func runFork(t *testing.T, f Format, b backend.Backend) *Result {
	t.Helper()
	s, err := Parse(f.Name(), Options{}, taskmath.Task{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Solve(context.Background(), b, taskmath.Task{}, task.Problem{Task: "math", Text: "What is 6 times 7?"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A Multiverse model's paths are written concurrently from the goal and
// merged as its engine merges them, byte for byte.
const multiverseGoal = "<Think>\nTwo ways.\n<Parallel>\n<Goal>\n<Outline>\n1: Multiply.\n</Outline>\n<Outline>\n2: Add six sevens.\n</Outline>\n"

// multiverseModel is a Multiverse model's recorded outputs: a goal of two
// outlines, a path for each, the conclusion.
func multiverseModel() *script {
	return &script{turns: []turn{
		{suffix: "</Goal>\n<Path>\n1:", stops: []string{"</Path>", "</Goal>"}, text: " 6*7 = 42.\n", stop: "</Path>"},
		{suffix: "</Goal>\n<Path>\n2:", stops: []string{"</Path>", "</Goal>"}, text: " 7+7+7+7+7+7 = 42.\n", stop: "</Path>"},
		{suffix: "<Conclusion>\n", stops: []string{"</Goal>"}, text: "Both give 42.\n</Conclusion>\n</Parallel>\n</Think>\n\\boxed{42}"},
		{suffix: "in parallel before answering.", stops: []string{"</Goal>"}, text: multiverseGoal, stop: "</Goal>"},
	}}
}

func TestMultiverseForksAndJoins(t *testing.T) {
	goal := multiverseGoal
	b := multiverseModel()
	r := runFork(t, Multiverse{}, b)
	want := "What is 6 times 7?\n\nReason step by step, and put your final answer within \\boxed{}. Think step by step and in parallel before answering." +
		goal + "</Goal>\n" +
		"<Path>\n1: 6*7 = 42.\n</Path>\n" +
		"<Path>\n2: 7+7+7+7+7+7 = 42.\n</Path>\n" +
		"<Conclusion>\nBoth give 42.\n</Conclusion>\n</Parallel>\n</Think>\n\\boxed{42}"
	if r.Tree.Text != want {
		t.Errorf("joined text\n%q\nwant\n%q", r.Tree.Text, want)
	}
	if r.Answer != "42" || r.Threads != 3 || len(b.calls) != 4 || r.FormatErrors != 0 {
		t.Errorf("answer %q, %d threads, %d calls, %d format errors", r.Answer, r.Threads, len(b.calls), r.FormatErrors)
	}
	if r.CriticalPathTokens >= r.TotalTokens {
		t.Errorf("critical path %d of %d tokens: the paths did not count as parallel", r.CriticalPathTokens, r.TotalTokens)
	}
}

// A ThreadWeaver model's threads are written concurrently from the
// outlines and joined back to back; the model closes </Parallel> itself.
const threadWeaverOutlines = "<think>\n<Parallel>\n<Outlines>\n<Outline>1: Multiply.</Outline>\n<Outline>2: Check by adding.</Outline>\n"

// threadWeaverModel is a ThreadWeaver model's recorded outputs: two
// outlines, a thread for each, the rest.
func threadWeaverModel() *script {
	outlines := threadWeaverOutlines
	return &script{turns: []turn{
		{suffix: "</Outlines>\n<Thread>\n1:", stops: []string{"</Thread>"}, text: " 6*7 = 42.\n", stop: "</Thread>"},
		{suffix: "</Outlines>\n<Thread>\n2:", stops: []string{"</Thread>"}, text: " 42/7 = 6.\n", stop: "</Thread>"},
		{suffix: "</Thread>\n", stops: []string{"</Outlines>"}, text: "</Parallel>\nSo \\boxed{42}."},
		{suffix: "within \\boxed{}.", stops: []string{"</Outlines>"}, text: outlines, stop: "</Outlines>"},
	}}
}

func TestThreadWeaverForksAndJoins(t *testing.T) {
	outlines := threadWeaverOutlines
	b := threadWeaverModel()
	r := runFork(t, ThreadWeaver{}, b)
	want := "What is 6 times 7?\n\nReason step by step, and put your final answer within \\boxed{}." + outlines + "</Outlines>" +
		"\n<Thread>\n1: 6*7 = 42.\n</Thread><Thread>\n2: 42/7 = 6.\n</Thread>\n" +
		"</Parallel>\nSo \\boxed{42}."
	if r.Tree.Text != want {
		t.Errorf("joined text\n%q\nwant\n%q", r.Tree.Text, want)
	}
	if r.Answer != "42" || r.Threads != 3 || r.Depth != 1 || r.FormatErrors != 0 {
		t.Errorf("answer %q, %d threads at depth %d, %d format errors", r.Answer, r.Threads, r.Depth, r.FormatErrors)
	}
}

// Malformed structure never fails a request: a branch that runs to its
// length is closed, a fork that names no branch goes on alone, and each is
// counted.
// malformedThreadWeaverModel's one thread runs to its length.
func malformedThreadWeaverModel() *script {
	return &script{turns: []turn{
		{suffix: "</Outlines>\n<Thread>\n1:", stops: []string{"</Thread>"}, text: " runs on and on", length: true},
		{suffix: "</Thread>\n", stops: []string{"</Outlines>"}, text: "</Parallel>\n\\boxed{42}"},
		{suffix: "within \\boxed{}.", stops: []string{"</Outlines>"}, text: "<Parallel>\n<Outlines>\n<Outline>1: Multiply.</Outline>\n", stop: "</Outlines>"},
	}}
}

func TestMalformedStructureIsClosedAndCounted(t *testing.T) {
	r := runFork(t, ThreadWeaver{}, malformedThreadWeaverModel())
	if r.Answer != "42" || r.FormatErrors != 1 || !strings.Contains(r.Tree.Text, " runs on and on\n</Thread>\n</Parallel>") {
		t.Errorf("answer %q, %d format errors, text %q", r.Answer, r.FormatErrors, r.Tree.Text)
	}
	none := &script{turns: []turn{
		{suffix: "</Outlines>", stops: nil, text: "\nNo threads after all. \\boxed{42}"},
		{suffix: "within \\boxed{}.", stops: []string{"</Outlines>"}, text: "<Parallel>\n<Outlines>\n", stop: "</Outlines>"},
	}}
	r = runFork(t, ThreadWeaver{}, none)
	if r.Answer != "42" || r.FormatErrors != 1 || r.Threads != 1 || r.Depth != 0 {
		t.Errorf("a fork without outlines: answer %q, %d format errors, %d threads", r.Answer, r.FormatErrors, r.Threads)
	}
}

const nestedInner = "Split again.\n<Parallel>\n<Goal>\n<Outline>\n1.1: Tens.\n</Outline>\n<Outline>\n1.2: Units.\n</Outline>\n"

// nestedMultiverseModel's first path forks in turn.
func nestedMultiverseModel() *script {
	inner := nestedInner
	return &script{turns: []turn{
		{suffix: "\n<Path>\n1.1:", stops: []string{"</Path>", "</Goal>"}, text: " 6*10 - 6*3 = 42.\n", stop: "</Path>"},
		{suffix: "\n<Path>\n1.2:", stops: []string{"</Path>", "</Goal>"}, text: " 7*6 = 42.\n", stop: "</Path>"},
		{suffix: "1.2: 7*6 = 42.\n</Path>\n<Conclusion>\n", stops: []string{"</Path>", "</Goal>"}, text: "42.\n</Conclusion>\n</Parallel>\n", stop: "</Path>"},
		{suffix: "</Goal>\n<Path>\n1:", stops: []string{"</Path>", "</Goal>"}, text: inner, stop: "</Goal>"},
		{suffix: "</Goal>\n<Path>\n2:", stops: []string{"</Path>", "</Goal>"}, text: " 42.\n", stop: "</Path>"},
		{suffix: "2: 42.\n</Path>\n<Conclusion>\n", stops: []string{"</Goal>"}, text: "\\boxed{42}"},
		{suffix: "in parallel before answering.", stops: []string{"</Goal>"}, stop: "</Goal>",
			text: "<Parallel>\n<Goal>\n<Outline>\n1: One way.\n</Outline>\n<Outline>\n2: Another.\n</Outline>\n"},
	}}
}

// A Multiverse path may fork in turn: its own paths run concurrently and
// join into it before it closes.
func TestMultiversePathsNest(t *testing.T) {
	inner := nestedInner
	b := nestedMultiverseModel()
	r := runFork(t, Multiverse{}, b)
	if r.Answer != "42" || r.Threads != 5 || r.Depth != 2 || r.FormatErrors != 0 {
		t.Fatalf("answer %q, %d threads at depth %d, %d format errors:\n%s", r.Answer, r.Threads, r.Depth, r.FormatErrors, r.Tree.Text)
	}
	want := "<Path>\n1:" + inner + "</Goal>\n<Path>\n1.1: 6*10 - 6*3 = 42.\n</Path>\n<Path>\n1.2: 7*6 = 42.\n</Path>\n<Conclusion>\n42.\n</Conclusion>\n</Parallel>\n</Path>\n<Path>\n2: 42.\n</Path>\n<Conclusion>\n\\boxed{42}"
	if !strings.HasSuffix(r.Tree.Text, want) {
		t.Errorf("joined text\n%q\nwant it to end\n%q", r.Tree.Text, want)
	}
	if one := r.Tree.Children[0]; one.Node != "0,1" || len(one.Children) != 2 || one.Children[1].Node != "0,1,1.2" {
		t.Errorf("the tree: path %s with %d paths", one.Node, len(one.Children))
	}
}

// forkFixture is a recorded run of format f with eight branches of 400
// bytes each over a backend that answers at once: what the benchmarks
// time is the orchestrator's own work.
func forkFixture(f Format) *script {
	var outlines strings.Builder
	open, first := "<Goal>", "in parallel before answering."
	if f.Name() == "threadweaver" {
		open, first = "<Outlines>", "within \\boxed{}."
	}
	outlines.WriteString("<Parallel>\n" + open + "\n")
	s := &script{}
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&outlines, "<Outline>\n%d: part %d.\n</Outline>\n", i, i)
		stops := []string{f.BranchStop()}
		if f.Nests() {
			stops = append(stops, f.ForkStop())
		}
		s.turns = append(s.turns, turn{suffix: f.Start(fmt.Sprint(i)), stops: stops, text: strings.Repeat("x", 399) + "\n", stop: f.BranchStop()})
	}
	s.turns = append(s.turns, turn{suffix: first, stops: []string{f.ForkStop()}, text: outlines.String(), stop: f.ForkStop()},
		turn{suffix: "\n", stops: []string{f.ForkStop()}, text: "\\boxed{42}"})
	return s
}

// BenchmarkForkRuntime runs each format over an instant backend: the
// orchestration per run (parsing the fork, eight branch prompts, the
// join, goroutines, the tree); BenchmarkForkDirectCalls makes the same
// calls one after another, the floor it is measured from.
func BenchmarkForkRuntime(b *testing.B) {
	for _, f := range []Format{Multiverse{}, ThreadWeaver{}} {
		b.Run(f.Name(), func(b *testing.B) {
			s := forkFixture(f)
			st := Fork{Format: f}
			p := task.Problem{Task: "math", Text: "What is 6 times 7?"}
			b.ReportAllocs()
			for b.Loop() {
				s.calls = s.calls[:0]
				if _, err := st.Solve(context.Background(), s, taskmath.Task{}, p, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(9, "threads")
		})
	}
}

// parallelFixture is prompted parallel thinking with a plan of eight
// parts, each worked in 400 bytes, over a backend that answers at once.
func parallelFixture() *answers {
	a := &answers{}
	var plan strings.Builder
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&plan, "<Part>%d: part %d</Part>\n", i, i)
		a.rules = append(a.rules, [2]string{fmt.Sprintf("Work on part %d only: part %d\n", i, i), strings.Repeat("x", 399) + "\n"})
	}
	a.rules = append(a.rules, [2]string{"combine them", "\\boxed{42}"}, [2]string{"Do not solve the problem yet", plan.String()})
	return a
}

// BenchmarkParallelRuntime is BenchmarkForkRuntime for prompted parallel
// thinking: a plan, eight parts, the conclusion (ten threads).
func BenchmarkParallelRuntime(b *testing.B) {
	a := parallelFixture()
	p := task.Problem{Task: "math", Text: "What is 6 times 7?"}
	st := Parallel{K: 8}
	b.ReportAllocs()
	var r *Result
	for b.Loop() {
		a.calls = a.calls[:0]
		var err error
		if r, err = st.Solve(context.Background(), a, taskmath.Task{}, p, nil); err != nil {
			b.Fatal(err)
		}
	}
	if r.Threads != 10 || r.Answer != "42" {
		b.Fatalf("%d threads, answer %q", r.Threads, r.Answer)
	}
	b.ReportMetric(float64(r.Threads), "threads")
	b.ReportMetric(float64(r.TotalTokens)/float64(r.CriticalPathTokens), "speedup")
}

// BenchmarkParallelDirectCalls makes BenchmarkParallelRuntime's ten calls
// one after another.
func BenchmarkParallelDirectCalls(b *testing.B) {
	a := parallelFixture()
	if _, err := (Parallel{K: 8}).Solve(context.Background(), a, taskmath.Task{}, task.Problem{Task: "math", Text: "What is 6 times 7?"}, nil); err != nil {
		b.Fatal(err)
	}
	calls := slices.Clone(a.calls)
	b.ReportAllocs()
	for b.Loop() {
		a.calls = a.calls[:0]
		for _, prompt := range calls {
			if _, err := a.Complete(context.Background(), &backend.Request{Prompt: prompt}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkForkDirectCalls(b *testing.B) {
	for _, f := range []Format{Multiverse{}, ThreadWeaver{}} {
		b.Run(f.Name(), func(b *testing.B) {
			s := forkFixture(f)
			if _, err := (Fork{Format: f}).Solve(context.Background(), s, taskmath.Task{}, task.Problem{Task: "math", Text: "What is 6 times 7?"}, nil); err != nil {
				b.Fatal(err)
			}
			calls := slices.Clone(s.calls)
			b.ReportAllocs()
			for b.Loop() {
				s.calls = s.calls[:0]
				for _, req := range calls {
					if _, err := s.Complete(context.Background(), req); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(9, "threads")
		})
	}
}

// answers is a chat model: each call is answered by the first rule whose
// phrase its prompt holds.
type answers struct {
	mu    sync.Mutex
	rules [][2]string
	calls []string
}

func (a *answers) Complete(_ context.Context, req *backend.Request) (*backend.Completion, error) {
	a.mu.Lock()
	a.calls = append(a.calls, req.Prompt)
	a.mu.Unlock()
	for _, r := range a.rules {
		if strings.Contains(req.Prompt, r[0]) {
			return &backend.Completion{Text: r[1], Finish: backend.FinishStop, Usage: backend.Usage{PromptTokens: len(req.Prompt), CompletionTokens: len(r[1])}}, nil
		}
	}
	return nil, fmt.Errorf("no answer for %q", req.Prompt)
}

// Prompted parallel thinking: the plan's parts are worked concurrently,
// each knowing the whole plan, and the conclusion reads them all.
// parallelModel plans two parts (and repeats one), works each, concludes.
func parallelModel() *answers {
	return &answers{rules: [][2]string{
		{"Work on part 1 only: 6*5", "6*5 = 30."},
		{"Work on part 2 only: 6*2", "6*2 = 12."},
		{"combine them", "30 + 12 = 42, so \\boxed{42}"},
		{"Do not solve the problem yet", "<Part>1: 6*5</Part>\n<Part>2: 6*2</Part>\n<Part>2: again</Part>"},
	}}
}

func TestParallelPlansWorksAndConcludes(t *testing.T) {
	b := parallelModel()
	s, err := Parse("parallel", Options{}, taskmath.Task{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Solve(context.Background(), b, taskmath.Task{}, task.Problem{Task: "math", Text: "What is 6 times 7?"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Answer != "42" || r.Threads != 4 || len(b.calls) != 4 {
		t.Errorf("answer %q, %d threads, %d calls", r.Answer, r.Threads, len(b.calls))
	}
	last := b.calls[len(b.calls)-1]
	if !strings.Contains(last, "6*5 = 30.") || !strings.Contains(last, "6*2 = 12.") {
		t.Errorf("the conclusion did not read the parts:\n%s", last)
	}
	for _, c := range b.calls[1:3] {
		if !strings.Contains(c, "Part 1: 6*5\nPart 2: 6*2\n") {
			t.Errorf("a part did not see the plan:\n%s", c)
		}
	}
	if want := len("<Part>1: 6*5</Part>\n<Part>2: 6*2</Part>\n<Part>2: again</Part>") + len("6*5 = 30.") + len("30 + 12 = 42, so \\boxed{42}"); r.CriticalPathTokens != want {
		t.Errorf("critical path %d, want the plan, the longest part and the conclusion: %d", r.CriticalPathTokens, want)
	}
}

// A model that does not split the problem solves it in one thread.
func TestParallelDegradesToSerial(t *testing.T) {
	b := &answers{rules: [][2]string{
		{"Do not solve the problem yet", "I would rather just solve it."},
		{"What is 6 times 7?", "\\boxed{42}"},
	}}
	r, err := (Parallel{}).Solve(context.Background(), b, taskmath.Task{}, task.Problem{Task: "math", Text: "What is 6 times 7?"}, nil)
	if err != nil || r.Answer != "42" || r.Threads != 2 || r.Tree.Node != "solve" {
		t.Errorf("answer %q, %d threads, root %s, %v", r.Answer, r.Threads, r.Tree.Node, err)
	}
}

// A run's token budget caps every call by what is left of it.
func TestForkKeepsToTheRunsBudget(t *testing.T) {
	b := forkFixture(ThreadWeaver{})
	r, err := (Fork{Format: ThreadWeaver{}, Options: Options{MaxTotalTokens: 500}}).Solve(context.Background(), budgeted{b}, taskmath.Task{},
		task.Problem{Task: "math", Text: "What is 6 times 7?"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The root's outlines, then eight branches splitting what was left.
	if r.TotalTokens > 500 {
		t.Errorf("%d tokens under a budget of 500", r.TotalTokens)
	}
	for _, req := range b.calls {
		if req.MaxTokens <= 0 || req.MaxTokens > 500 {
			t.Errorf("a call given %d tokens", req.MaxTokens)
		}
	}
}

// budgeted cuts a script's outputs to the request's MaxTokens, a token a
// byte.
type budgeted struct{ *script }

func (b budgeted) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	c, err := b.script.Complete(ctx, req)
	if err == nil && req.MaxTokens > 0 && len(c.Text) > req.MaxTokens {
		c.Text, c.StopString, c.Finish = c.Text[:req.MaxTokens], "", backend.FinishLength
		c.Usage.CompletionTokens = req.MaxTokens
	}
	return c, err
}

// Prompted parallel thinking keeps to the run's budget: the parts split
// what the plan left, with a share kept for the conclusion.
func TestParallelKeepsToTheRunsBudget(t *testing.T) {
	b := &answers{rules: [][2]string{
		{"Work on part 1 only", strings.Repeat("a", 300)},
		{"Work on part 2 only", strings.Repeat("b", 300)},
		{"combine them", "\\boxed{42}"},
		{"Do not solve the problem yet", "<Part>1: x</Part>\n<Part>2: y</Part>"},
	}}
	r, err := (Parallel{Options: Options{MaxTotalTokens: 400}}).Solve(context.Background(), budgetedAnswers{b}, taskmath.Task{},
		task.Problem{Task: "math", Text: "What is 6 times 7?"}, nil)
	if err != nil || r.Answer != "42" || r.TotalTokens > 400 {
		t.Errorf("answer %q in %d tokens under a budget of 400, %v", r.Answer, r.TotalTokens, err)
	}
}

// budgetedAnswers cuts answers to the request's MaxTokens, a token a byte.
type budgetedAnswers struct{ *answers }

func (b budgetedAnswers) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	c, err := b.answers.Complete(ctx, req)
	if err == nil && req.MaxTokens > 0 && len(c.Text) > req.MaxTokens {
		c.Text, c.Finish, c.Usage.CompletionTokens = c.Text[:req.MaxTokens], backend.FinishLength, req.MaxTokens
	}
	return c, err
}
