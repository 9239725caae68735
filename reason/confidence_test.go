package reason

import (
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/task"
	taskmath "github.com/braid-dev/braid/task/math"
)

// tok is a token whose alternatives' logprobs average -c: confidence c.
func tok(c float64) backend.Token {
	return backend.Token{ID: 1, Logprob: -0.1, Top: []backend.TopToken{{Logprob: -0.1}, {Logprob: -2*c + 0.1}}}
}

// The measures as DeepConf defines them: a token's confidence is the
// negative mean of its alternatives' logprobs; a group's, the mean over a
// window; the lowest group and the tail are the least and the last of
// them. The environment's tokens are not measured.
func TestConfidenceMeasures(t *testing.T) {
	c := newConfTracker(Confident{Window: 3, PruneBelow: 4})
	filled := tok(100)
	filled.Filled = true
	var trips int
	for _, x := range []float64{9, 9, 6, filled.Logprob, 3, 3, 9} {
		token := tok(x)
		if x == filled.Logprob {
			token = filled
		}
		if c.add([]backend.Token{token}) {
			trips++
		}
	}
	got := c.result()
	// Tokens 9 9 6 3 3 9: groups 8, 6, 4, 5; the tail is the last, 5.
	want := Confidence{Tokens: 6, Mean: 39.0 / 6, LowestGroup: 4, Tail: 5, Pruned: false}
	if math.Abs(got.Mean-want.Mean) > 1e-9 || math.Abs(got.LowestGroup-4) > 1e-9 || math.Abs(got.Tail-5) > 1e-9 || got.Tokens != 6 || got.Pruned || trips != 0 {
		t.Errorf("measures %+v (tripped %d), want %+v", got, trips, want)
	}
	above := c.add([]backend.Token{tok(0.5)}) // group (3+9+0.5)/3, above 4
	below := c.add([]backend.Token{tok(0.5)}) // (9+0.5+0.5)/3, below
	again := c.add([]backend.Token{tok(0.5)})
	if above || !below || again || !c.tripped || c.result().Pruned {
		t.Errorf("a group below the threshold: said so %v, %v, then %v; pruned before its caller stopped it: %v", above, below, again, c.result().Pruned)
	}
	short := newConfTracker(Confident{Window: 32})
	short.add([]backend.Token{tok(2), tok(4)})
	if got := short.result(); got.LowestGroup != 3 || got.Tail != 3 {
		t.Errorf("a thread shorter than a window: %+v, want its mean as the lowest group and the tail", got)
	}
}

// fading streams a token at a time whose confidence falls from 10 by one
// per token, and stops when its context ends (deaf: it finishes anyway, as
// a backend delivering a whole batch does).
type fading struct {
	tokens int
	deaf   bool
}

func (f *fading) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	out := &backend.Completion{Finish: backend.FinishStop}
	for i := range f.tokens {
		if ctx.Err() != nil && !f.deaf {
			out.Finish = backend.FinishCancelled
			return out, ctx.Err()
		}
		tk := tok(10 - float64(i))
		if len(req.Prompt) > 0 && req.TopLogprobs == 0 {
			tk.Top = nil
		}
		ch := backend.Chunk{Text: "x", Tokens: []backend.Token{tk}}
		out.Text += ch.Text
		out.Tokens = append(out.Tokens, tk)
		out.Usage.CompletionTokens++
		if req.OnChunk != nil {
			req.OnChunk(ch)
		}
		time.Sleep(time.Millisecond)
	}
	out.Text += " \\boxed{1}"
	return out, nil
}

// A thread whose group confidence falls below the threshold is stopped
// there, and says why; measuring alone stops nothing.
func TestPruningStopsALostThread(t *testing.T) {
	p := task.Problem{Task: "math", Text: "q"}
	s, err := Parse("serial:prune=5.5,window=2", Options{}, taskmath.Task{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Solve(context.Background(), &fading{tokens: 10}, taskmath.Task{}, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := r.Tree.Confidence
	// Tokens 10 9 8 7 6 5 4: the group (5+4)/2 falls below 5.5 at the
	// seventh.
	if r.Tree.Finish != finishPruned || c == nil || !c.Pruned || c.Tokens != 7 || r.Answer != "" {
		t.Errorf("finish %q, confidence %+v, answer %q", r.Tree.Finish, c, r.Answer)
	}
	m, _ := Parse("serial:measure,window=2", Options{}, taskmath.Task{})
	r, err = m.Solve(context.Background(), &fading{tokens: 10}, taskmath.Task{}, p, nil)
	if err != nil || r.Tree.Finish != "stop" || r.Tree.Confidence.Tokens != 10 || r.Tree.Confidence.LowestGroup != 1.5 || r.Answer != "1" {
		t.Errorf("measured only: %+v, %+v, %q, %v", r.Tree, r.Tree.Confidence, r.Answer, err)
	}
}

// A settled vote stops the samples still going; a pruned sample does not
// vote.
func TestVoteSettles(t *testing.T) {
	b := &slowAnswers{answers: []string{"7", "7", "7", "2", "2"}, delay: []time.Duration{0, 5, 10, 400, 400}}
	p := task.Problem{Task: "math", Text: "q"}
	s, err := Parse("vote:k=5,settle", Options{Temperature: 1, Seed: 100}, taskmath.Task{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r, err := s.Solve(context.Background(), b, taskmath.Task{}, p, nil)
	if err != nil || r.Answer != "7" || time.Since(start) > 300*time.Millisecond {
		t.Fatalf("answer %q after %v, %v", r.Answer, time.Since(start), err)
	}
	stopped := 0
	for _, c := range r.Tree.Children {
		if c.Finish == finishStopped {
			stopped++
		}
	}
	if stopped != 2 {
		t.Errorf("%d samples stopped, want the two still going when three agreed", stopped)
	}
	if voted(&Result{Answer: "7", Tree: &Thread{Confidence: &Confidence{Pruned: true}}}) != "" {
		t.Error("a pruned sample voted")
	}
	for _, bad := range []string{"vote:k=5,prune=0", "apr:window=0", "serial:settle", "vote:k=4,prune=x", "apr:confident"} {
		if _, err := Parse(bad, Options{Temperature: 1}, taskmath.Task{}); err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
}

// slowAnswers answers sample i (by its seed, as scripted) with answers[i]
// after delay[i] milliseconds, or stops when its context ends.
type slowAnswers struct {
	answers []string
	delay   []time.Duration
}

func (s *slowAnswers) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	i := 0
	for j := range s.answers {
		if req.Seed == seedOf(100*1000003+uint64(j)+1, (taskmath.Task{}).Key(task.Problem{Task: "math", Text: "q"}), "0", 0) {
			i = j
		}
	}
	select {
	case <-time.After(s.delay[i] * time.Millisecond):
	case <-ctx.Done():
		return &backend.Completion{Finish: backend.FinishCancelled}, ctx.Err()
	}
	text := "\\boxed{" + s.answers[i] + "}"
	return &backend.Completion{Text: text, Finish: backend.FinishStop, Usage: backend.Usage{CompletionTokens: len(text)}}, nil
}

// A list of strategies splits at the commas that begin a strategy, not
// those within one.
func TestSplitSpecs(t *testing.T) {
	got := SplitSpecs("serial,apr:prune=8.5,window=8,vote:k=8,settle:apr,best:k=4")
	want := []string{"serial", "apr:prune=8.5,window=8", "vote:k=8,settle:apr", "best:k=4"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("split %q, want %q", got, want)
	}
}

// DeepConf's offline votes: weighted by confidence, the confident few
// outvote the many; filtered to the top percent, only the most confident
// vote.
func TestConfidentVotes(t *testing.T) {
	p := task.Problem{Task: "math", Text: "q"}
	th := func(c float64) *Thread { return &Thread{Confidence: &Confidence{LowestGroup: c}} }
	runs := []*Thread{th(1), th(1), th(1), th(5), th(4)}
	answers := []string{"7", "7", "7", "12", "12"}
	if got := (Vote{Weighted: true}).confident(taskmath.Task{}, p, runs, answers); got != "12" {
		t.Errorf("weighted: %q", got)
	}
	if got := (Vote{Top: 40}).confident(taskmath.Task{}, p, runs, answers); got != "12" {
		t.Errorf("top 40%%: %q", got)
	}
	if got := (Vote{Top: 100}).confident(taskmath.Task{}, p, runs, answers); got != "7" {
		t.Errorf("top 100%% is the plain vote: %q", got)
	}
	v, err := Parse("vote:k=5,weighted,top=50", Options{Temperature: 1}, taskmath.Task{})
	if vv, ok := v.(Vote); err != nil || !ok || !vv.Weighted || vv.Top != 50 || !vv.Inner.Confidence.Measure {
		t.Errorf("parsed %+v, %v", v, err)
	}
}

// steady answers sample i (by its seed) with ten tokens of confidence
// conf[i] and then its answer.
type steady struct {
	conf    []float64
	answers []string
}

func (s *steady) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	i := 0
	for j := range s.conf {
		if req.Seed == seedOf(100*1000003+uint64(j)+1, (taskmath.Task{}).Key(task.Problem{Task: "math", Text: "q"}), "0", 0) {
			i = j
		}
	}
	out := &backend.Completion{Finish: backend.FinishStop}
	for range 10 {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		ch := backend.Chunk{Text: "x", Tokens: []backend.Token{tok(s.conf[i])}}
		out.Text += ch.Text
		out.Usage.CompletionTokens++
		if req.OnChunk != nil {
			req.OnChunk(ch)
		}
	}
	out.Text += "\\boxed{" + s.answers[i] + "}"
	return out, nil
}

// DeepConf's online mode: the warm-up runs set the threshold, and a later
// run less sure than it is pruned and does not vote.
func TestWarmupSetsTheThreshold(t *testing.T) {
	b := &steady{conf: []float64{5, 9, 6, 10}, answers: []string{"7", "12", "7", "12"}}
	s, err := Parse("vote:k=4,warmup=2,eta=50,window=2", Options{Temperature: 1, Seed: 100}, taskmath.Task{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Solve(context.Background(), b, taskmath.Task{}, task.Problem{Task: "math", Text: "q"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var pruned []int
	for i, c := range r.Tree.Children {
		if c.Confidence != nil && c.Confidence.Pruned {
			pruned = append(pruned, i)
		}
	}
	// The warm-ups' lowest groups are 5 and 9: half stay at or above 9.
	if len(pruned) != 1 || pruned[0] != 2 || r.Answer != "12" {
		t.Errorf("pruned %v, answer %q", pruned, r.Answer)
	}
	for _, bad := range []string{"vote:k=4,warmup=4", "vote:k=4,eta=50"} {
		if _, err := Parse(bad, Options{Temperature: 1}, taskmath.Task{}); err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
}

// The review's cases: a search over rounds that runs out of budget scores
// only what it kept; a vote by confidence over a backend that returned no
// log-probabilities is the plain vote; a thread whose call finished
// before the stop reached it is not pruned.
func TestConfidenceEdges(t *testing.T) {
	p := task.Problem{Task: "math", Text: "3*4?"}
	s, err := Parse("deepthink:k=6,rounds=2,keep=2", Options{Temperature: 1, Seed: 100, MaxTotalTokens: 1}, checkedMath{})
	if err != nil {
		t.Fatal(err)
	}
	b := &thinking{scorable{scripted{answers: []string{"7", "9", "7", "5", "12", "7"}}}}
	if r, err := s.Solve(context.Background(), b, checkedMath{}, p, nil); err != nil || r.Answer != "12" {
		t.Errorf("deepthink out of budget: %q, %v", r.Answer, err)
	}
	v, _ := Parse("vote:k=3,weighted", Options{Temperature: 1, Seed: 100}, taskmath.Task{})
	if r, err := v.Solve(context.Background(), &scripted{answers: []string{"7", "7", "12"}}, taskmath.Task{}, p, nil); err != nil || r.Answer != "7" {
		t.Errorf("a weighted vote without logprobs: %q, %v", r.Answer, err)
	}
	late, _ := Parse("serial:prune=5.5,window=2", Options{}, taskmath.Task{})
	r, err := late.Solve(context.Background(), &fading{tokens: 10, deaf: true}, taskmath.Task{}, task.Problem{Task: "math", Text: "q"}, nil)
	if err != nil || r.Tree.Finish != "stop" || r.Tree.Confidence.Pruned || r.Answer != "1" {
		t.Errorf("a call done before the stop: finish %q, %+v, %q, %v", r.Tree.Finish, r.Tree.Confidence, r.Answer, err)
	}
	if _, err := Parse("vote:k=4,settle,weighted", Options{Temperature: 1}, taskmath.Task{}); err == nil {
		t.Error("settle with a weighted vote was accepted")
	}
}

// countingBackend tracks the most calls its backend ran at once.
type countingBackend struct {
	backend.Backend
	mu        sync.Mutex
	now, most int
	calls     int
}

func (c *countingBackend) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	c.mu.Lock()
	c.now++
	c.calls++
	c.most = max(c.most, c.now)
	c.mu.Unlock()
	defer func() { c.mu.Lock(); c.now--; c.mu.Unlock() }()
	return c.Backend.Complete(ctx, req)
}

// A vote of at most W samples at once never starts the samples a settled
// vote no longer needs, and its critical path counts the samples' turns.
func TestVoteAtOnceSkipsWhatSettledVotesNeedNot(t *testing.T) {
	p := task.Problem{Task: "math", Text: "q"}
	// One at a time: three 7s settle it, and the last two never start.
	b := &countingBackend{Backend: &slowAnswers{answers: []string{"7", "7", "7", "2", "2"}, delay: []time.Duration{1, 1, 1, 1, 1}}}
	s, err := Parse("vote:k=5,settle,at-once=1", Options{Temperature: 1, Seed: 100}, taskmath.Task{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Solve(context.Background(), b, taskmath.Task{}, p, nil)
	if err != nil || r.Answer != "7" {
		t.Fatalf("answer %q, %v", r.Answer, err)
	}
	if b.most != 1 || b.calls != 3 || len(r.Tree.Children) != 3 {
		t.Errorf("%d calls, %d at most at once, %d samples in the tree; want 3, 1, 3", b.calls, b.most, len(r.Tree.Children))
	}
	one := len(`\boxed{7}`)
	if r.TotalTokens != 3*one || r.CriticalPathTokens != 3*one {
		t.Errorf("%d tokens, critical path %d; want %d and %d (three turns of one slot)", r.TotalTokens, r.CriticalPathTokens, 3*one, 3*one)
	}
	// Without settle every sample runs, two at a time: three turns.
	b = &countingBackend{Backend: &slowAnswers{answers: []string{"7", "7", "7", "2", "2"}, delay: []time.Duration{1, 1, 1, 1, 1}}}
	s, _ = Parse("vote:k=5,at-once=2", Options{Temperature: 1, Seed: 100}, taskmath.Task{})
	if r, err = s.Solve(context.Background(), b, taskmath.Task{}, p, nil); err != nil || b.calls != 5 || b.most > 2 || r.CriticalPathTokens != 3*one {
		t.Errorf("no settle: %d calls, %d at once, critical path %d, %v", b.calls, b.most, r.CriticalPathTokens, err)
	}
	for _, bad := range []string{"vote:k=5,at-once=0", "serial:at-once=2", "best:k=4,at-once=2"} {
		if _, err := Parse(bad, Options{Temperature: 1}, taskmath.Task{}); err == nil {
			t.Errorf("%s was accepted", bad)
		}
	}
}
