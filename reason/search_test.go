package reason

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/task"
	"github.com/braid-dev/braid/task/countdown"
)

// replay is a backend that answers each prompt with the completion a
// generated rollout has for it, as a model that learned the generator
// perfectly would; it counts a token per byte.
type replay struct {
	// lenient answers a prompt it has no completion for with nothing,
	// as a model that stops at once (a parent resumed with a join the
	// rollout never had).
	lenient bool
	mu      sync.Mutex
	answers map[string]string
	calls   int
	active  int
	peak    int
}

func (r *replay) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	r.mu.Lock()
	r.calls++
	r.active++
	r.peak = max(r.peak, r.active)
	c, ok := r.answers[req.Prompt]
	r.mu.Unlock()
	defer func() { r.mu.Lock(); r.active--; r.mu.Unlock() }()
	// A child waits, a little, for a sibling to be running too: children
	// that run concurrently overlap here however loaded the machine is,
	// and children run one at a time never do.
	if strings.HasPrefix(req.Prompt, "Moving to Node #0,") {
		for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			r.mu.Lock()
			n := r.active
			r.mu.Unlock()
			if n >= 2 {
				break
			}
		}
	}
	if !ok && !r.lenient {
		return nil, fmt.Errorf("no completion for the prompt\n%s", req.Prompt)
	}
	finish := backend.FinishStop
	if req.MaxTokens > 0 && len(c) > req.MaxTokens {
		c, finish = c[:req.MaxTokens], backend.FinishLength
	}
	if req.OnChunk != nil { // stream it, a token per byte, in chunks of replayChunk
		for i := 0; i < len(c); i += replayChunk {
			j := min(i+replayChunk, len(c))
			req.OnChunk(backend.Chunk{Text: c[i:j], Tokens: make([]backend.Token, j-i)})
		}
	}
	return &backend.Completion{Text: c, Finish: finish, Usage: backend.Usage{PromptTokens: len(req.Prompt), CompletionTokens: len(c)}}, nil
}

const replayChunk = 5

func problems(n int) []countdown.Problem {
	next, stop := iter.Pull(countdown.Problems(21, countdown.Test))
	defer stop()
	var ps []countdown.Problem
	for range n {
		p, _ := next()
		ps = append(ps, p)
	}
	return ps
}

func TestAPRRunsTheSpawnJoinProtocol(t *testing.T) {
	spawned := 0
	for i, p := range problems(40) {
		rec, err := countdown.TraceConfig{Format: countdown.ModeParallel, ModeHeader: true}.Generate(p, 21, i)
		if err != nil {
			t.Fatal(err)
		}
		r := &replay{answers: map[string]string{}}
		total, calls := 0, 0
		for _, s := range rec.Sequences {
			r.answers[s.Prompt] = s.Completion
			total += len(s.Completion)
			calls++
		}
		res, err := cdSolve(context.Background(), r, Search{Effort: task.EffortDeep, Options: Options{Env: EnvOff}}, p)
		if err != nil {
			t.Fatalf("problem %d: %v", i, err)
		}
		if r.calls != calls {
			t.Errorf("problem %d: %d calls, the rollout has %d", i, r.calls, calls)
		}
		if res.TotalTokens != total || res.Threads != rec.Children+1 {
			t.Errorf("problem %d: %d tokens in %d threads, want %d in %d", i, res.TotalTokens, res.Threads, total, rec.Children+1)
		}
		if res.Tree.Text != (countdown.Header{Mode: countdown.ModeParallel}).Apply(rec.Text) {
			t.Errorf("problem %d: the root's text differs from the rollout's", i)
		}
		if rec.Solved != (res.Answer != "") || rec.Solved && countdown.VerifyAnswer(p, res.Answer) != nil {
			t.Errorf("problem %d: answer %q, rollout solved %v", i, res.Answer, rec.Solved)
		}
		if reached := strings.Contains(rec.Text, "Goal Reached"); reached != (res.TokensToGoal > 0) || res.TokensToGoal > res.TotalTokens {
			t.Errorf("problem %d: goal after %d of %d tokens; the rollout reached it: %v", i, res.TokensToGoal, res.TotalTokens, reached)
		}
		if len(res.Tree.Children) > 0 {
			spawned++
			if res.CriticalPathTokens >= res.TotalTokens {
				t.Errorf("problem %d: critical path %d of %d tokens with %d children", i, res.CriticalPathTokens, res.TotalTokens, len(res.Tree.Children))
			}
			if r.peak < 2 {
				t.Errorf("problem %d: children ran one at a time", i)
			}
		}
	}
	if spawned == 0 {
		t.Error("no rollout spawned")
	}
}

func TestSerialAndDirect(t *testing.T) {
	for _, mode := range []countdown.Mode{countdown.ModeSerial, countdown.ModeDirect} {
		for i, p := range problems(10) {
			rec, err := countdown.TraceConfig{Format: mode, ModeHeader: true}.Generate(p, 21, i)
			if err != nil {
				t.Fatal(err)
			}
			s := rec.Sequences[0]
			r := &replay{answers: map[string]string{s.Prompt: s.Completion}}
			res, err := cdSolve(context.Background(), r, Search{Effort: effortOf(mode), Options: Options{Env: EnvOff}}, p)
			if err != nil {
				t.Fatal(err)
			}
			if res.Threads != 1 || res.CriticalPathTokens != res.TotalTokens || !strings.HasSuffix(res.Tree.Text, s.Completion) {
				t.Errorf("%s problem %d: %+v", mode, i, res)
			}
			if rec.Solved != (res.Answer != "") {
				t.Errorf("%s problem %d: answer %q, trace solved %v", mode, i, res.Answer, rec.Solved)
			}
			// The goal is seen in the chunk that completes its line.
			want := -1
			if k := strings.Index(s.Completion, "Goal Reached"); k >= 0 {
				want = min(len(s.Completion), (k+len("Goal Reached")+replayChunk-1)/replayChunk*replayChunk)
			}
			if res.TokensToGoal != want {
				t.Errorf("%s problem %d: goal after %d tokens, want %d", mode, i, res.TokensToGoal, want)
			}
		}
	}
}

// A model that spawns a node it never generated, or whose resumed prompt
// outgrows the context, ends its thread unsolved; the run goes on.
func TestBadThreadsEndUnsolved(t *testing.T) {
	p := countdown.Problem{Target: 27, Numbers: []int{22, 26, 31, 53}}
	root := countdown.RootPrompt(p, countdown.ModeParallel)
	spawn := "Exploring Operation: 53-22=31, Resulting Numbers: [26, 31, 31]\nGenerated Node #0,0: 27:[26, 31, 31] Operation: 53-22=31\n" +
		"<Calling Sub Searches>\n<Start Sub Search 0 at level 1> Moving to Node #0,9\n<End Calling Sub Searches>\n"
	r := &replay{answers: map[string]string{root: spawn}}
	res, err := cdSolve(context.Background(), r, Search{Effort: task.EffortDeep, Options: Options{Env: EnvOff}}, p)
	if err != nil {
		t.Fatal(err)
	}
	if res.Answer != "" || res.Tree.Finish != "invalid spawn" || !strings.Contains(res.Tree.Reason, "#0,9") {
		t.Errorf("got answer %q, finish %q (%s)", res.Answer, res.Tree.Finish, res.Tree.Reason)
	}
	long := &tooLong{}
	res, err = cdSolve(context.Background(), long, Search{Effort: "", Options: Options{Env: EnvOff}}, p)
	if err != nil || res.Tree.Finish != string(backend.FinishLength) {
		t.Errorf("a prompt past the context: %+v, %v", res, err)
	}
}

type tooLong struct{}

func (tooLong) Complete(context.Context, *backend.Request) (*backend.Completion, error) {
	return nil, fmt.Errorf("engine: the prompt has 9999 tokens: %w", backend.ErrPromptTooLong)
}

// sampledReplay answers the root prompt with one of several completions,
// by the request's seed.
type sampledReplay struct {
	completions []string
	mu          sync.Mutex
	seen        map[uint64]int
}

func (s *sampledReplay) Complete(_ context.Context, req *backend.Request) (*backend.Completion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[uint64]int{}
	}
	i, ok := s.seen[req.Seed]
	if !ok {
		i = len(s.seen)
		s.seen[req.Seed] = i
	}
	c := s.completions[i%len(s.completions)]
	return &backend.Completion{Text: c, Finish: backend.FinishStop, Usage: backend.Usage{CompletionTokens: len(c)}}, nil
}

func TestCountdownVote(t *testing.T) {
	p := countdown.Problem{Target: 27, Numbers: []int{22, 26, 31, 53}}
	solved := countdown.DirectTrace(p, mustSolve(t, p))
	b := &sampledReplay{completions: []string{"No solution found.\n", solved, "No solution found.\n"}}
	v := Vote{Inner: Search{Options: Options{Env: EnvOff, Temperature: 1, Seed: 5}}, K: 3}
	r, err := v.Solve(context.Background(), b, countdown.Task{}, countdown.NewProblem(p), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Answer == "" || countdown.VerifyAnswer(p, r.Answer) != nil || len(r.Tree.Children) != 3 || r.Threads != 3 {
		t.Errorf("answer %q from %d threads", r.Answer, r.Threads)
	}
}

// stallingSamples answers the sample whose seed comes first with a solved
// trace, after 50 ms; every other sample stalls until it is cancelled (or
// for a minute).
type stallingSamples struct {
	solved string
	firstSeed
}

// firstSeed tells the sample whose seed a backend saw first from the
// others.
type firstSeed struct {
	mu    sync.Mutex
	first uint64
}

// is reports whether seed is the first the backend saw.
func (f *firstSeed) is(seed uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.first == 0 {
		f.first = seed
	}
	return f.first == seed
}

func (s *stallingSamples) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	if s.is(req.Seed) {
		time.Sleep(50 * time.Millisecond)
		return &backend.Completion{Text: s.solved, Finish: backend.FinishStop, Usage: backend.Usage{CompletionTokens: len(s.solved)}}, nil
	}
	select {
	case <-ctx.Done():
		return &backend.Completion{Finish: backend.FinishCancelled}, ctx.Err()
	case <-time.After(time.Minute):
		return &backend.Completion{Text: "No solution found.\n", Finish: backend.FinishStop}, nil
	}
}

// With JoinAtGoal a vote ends at its first verified answer: the other
// samples are stopped, not waited for.
func TestCountdownVoteJoinsAtGoal(t *testing.T) {
	p := countdown.Problem{Target: 27, Numbers: []int{22, 26, 31, 53}}
	b := &stallingSamples{solved: countdown.DirectTrace(p, mustSolve(t, p))}
	v := Vote{Inner: Search{Options: Options{Env: EnvOff, Temperature: 1, Seed: 5, JoinAtGoal: true}}, K: 4}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	r, err := v.Solve(ctx, b, countdown.Task{}, countdown.NewProblem(p), nil)
	if err != nil {
		t.Fatal(err)
	}
	if wall := time.Since(start); wall > 10*time.Second {
		t.Errorf("the vote took %s: its other samples were not stopped", wall)
	}
	if r.Answer == "" || countdown.VerifyAnswer(p, r.Answer) != nil {
		t.Errorf("answer %q", r.Answer)
	}
	stopped := 0
	for _, run := range r.Tree.Children {
		if run.Finish == finishStopped {
			stopped++
		}
	}
	if stopped != 3 {
		t.Errorf("%d of 4 samples stopped, want 3", stopped)
	}
}

// cdSolve runs s on a Countdown problem.
func cdSolve(ctx context.Context, b backend.Backend, s Search, p countdown.Problem) (*Result, error) {
	return s.Solve(ctx, b, countdown.Task{}, countdown.NewProblem(p), nil)
}

// effortOf is the effort that asks the Countdown model for a mode.
func effortOf(m countdown.Mode) string {
	return map[countdown.Mode]string{countdown.ModeDirect: task.EffortOff, countdown.ModeSerial: "", countdown.ModeParallel: task.EffortDeep}[m]
}

func mustSolve(t *testing.T, p countdown.Problem) countdown.Solution {
	t.Helper()
	sol, ok := countdown.Solve(p)
	if !ok {
		t.Fatal("unsolvable")
	}
	return sol
}

func TestTotalTokenBudget(t *testing.T) {
	for i, p := range problems(40) {
		rec, err := countdown.TraceConfig{Format: countdown.ModeParallel, ModeHeader: true}.Generate(p, 21, i)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Children == 0 {
			continue
		}
		r := &replay{answers: map[string]string{}}
		for _, s := range rec.Sequences {
			r.answers[s.Prompt] = s.Completion
		}
		root := rec.Sequences[0]
		budget := len(root.Completion) // the root's first call spends it all
		res, err := cdSolve(context.Background(), r, Search{Effort: task.EffortDeep, Options: Options{Env: EnvOff, MaxTotalTokens: budget}}, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range res.Tree.Children {
			if k.Finish != "budget" || k.Calls != 0 {
				t.Errorf("child #%s ran (%s, %d calls) on a spent budget", k.Node, k.Finish, k.Calls)
			}
		}
		if res.TotalTokens != budget {
			t.Errorf("%d tokens spent on a budget of %d", res.TotalTokens, budget)
		}
		// A budget that covers the root's first call and half of what
		// the children would spend: children running at once share it
		// and the run stays within it.
		kids := 0
		for _, s := range rec.Sequences[1:] {
			if !strings.HasPrefix(s.Prompt, root.Prompt) { // a child's call, not the root resumed
				kids += len(s.Completion)
			}
		}
		budget += kids / 2
		r.lenient = true
		res, err = cdSolve(context.Background(), r, Search{Effort: task.EffortDeep, Options: Options{Env: EnvOff, MaxTotalTokens: budget}}, p)
		if err != nil {
			t.Fatal(err)
		}
		if res.TotalTokens > budget {
			t.Errorf("%d tokens spent on a budget of %d by %d children at once", res.TotalTokens, budget, len(res.Tree.Children))
		}
		return
	}
	t.Fatal("no rollout spawned")
}

// Spawns nest down to MaxDepth: a child may spawn grandchildren, joined
// back into it at level 2. With the protocol's default depth of 1, the
// child's spawn block stays unanswered.
func TestNestedSpawns(t *testing.T) {
	p := countdown.Problem{Target: 27, Numbers: []int{22, 26, 31, 53}}
	root := countdown.RootPrompt(p, countdown.ModeParallel)
	rootCall := "Exploring Operation: 53-31=22, Resulting Numbers: [22, 26, 22]\n" +
		"Generated Node #0,0: 27:[22, 26, 22] Operation: 53-31=22\n" +
		"<Calling Sub Searches>\n<Start Sub Search 0 at level 1> Moving to Node #0,0\n<End Calling Sub Searches>\n"
	child, err := countdown.ChildPrompt(p, root+rootCall[:strings.Index(rootCall, "<Calling")], "0,0")
	if err != nil {
		t.Fatal(err)
	}
	childCall := "Exploring Operation: 22/22=1, Resulting Numbers: [26, 1]\n" +
		"Generated Node #0,0,0: 27:[26, 1] Operation: 22/22=1\n" +
		"<Calling Sub Searches>\n<Start Sub Search 0 at level 2> Moving to Node #0,0,0\n<End Calling Sub Searches>\n"
	grandchild, err := countdown.ChildPrompt(p, child+childCall[:strings.Index(childCall, "<Calling")], "0,0,0")
	if err != nil {
		t.Fatal(err)
	}
	r := &replay{lenient: true, answers: map[string]string{
		root:       rootCall,
		child:      childCall,
		grandchild: "Exploring Operation: 26+1=27, Resulting Numbers: [27]\n27,27 equal: Goal Reached\n",
	}}
	res, err := cdSolve(context.Background(), r, Search{Effort: task.EffortDeep, Options: Options{Env: EnvOff, MaxDepth: 2}}, p)
	if err != nil {
		t.Fatal(err)
	}
	if res.Threads != 3 || len(res.Tree.Children) != 1 || len(res.Tree.Children[0].Children) != 1 || res.Tree.Children[0].Children[0].Node != "0,0,0" {
		t.Fatalf("tree: %d threads, %+v", res.Threads, res.Tree)
	}
	if k := res.Tree.Children[0]; !strings.Contains(k.Text, "<Goal Reached in Sub Search 0 at level 2 at Node #0,0,0>") {
		t.Errorf("the child was not resumed with its grandchild's join:\n%s", k.Text)
	}
	// A total budget holds down the tree: every spawn splits what its
	// thread may still spend.
	for _, budget := range []int{len(rootCall) + 50, len(rootCall) + len(childCall) + 20} {
		capped, err := cdSolve(context.Background(), r, Search{Effort: task.EffortDeep, Options: Options{Env: EnvOff, MaxDepth: 2, MaxTotalTokens: budget}}, p)
		if err != nil {
			t.Fatal(err)
		}
		if capped.TotalTokens > budget {
			t.Errorf("%d tokens spent on a budget of %d", capped.TotalTokens, budget)
		}
	}
	flat, err := cdSolve(context.Background(), r, Search{Effort: task.EffortDeep, Options: Options{Env: EnvOff}}, p)
	if err != nil {
		t.Fatal(err)
	}
	if flat.Threads != 2 || !strings.HasSuffix(flat.Tree.Children[0].Text, "<End Calling Sub Searches>\n") {
		t.Errorf("depth 1: %d threads; the child's text ends %q", flat.Threads, flat.Tree.Children[0].Text[max(0, len(flat.Tree.Children[0].Text)-40):])
	}
}

// seedLog answers every call with a dead end and keeps each request's seed.
type seedLog struct {
	mu    sync.Mutex
	seeds []uint64
}

func (s *seedLog) Complete(_ context.Context, req *backend.Request) (*backend.Completion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seeds = append(s.seeds, req.Seed)
	c := "No solution found.\n"
	return &backend.Completion{Text: c, Finish: backend.FinishStop, Usage: backend.Usage{CompletionTokens: len(c)}}, nil
}

// An evaluation gives one seed to every problem: the problems must still
// draw their own random numbers (with one stream, samples of different
// problems make the same choices at the same points), while one problem
// with one seed repeats exactly.
func TestSeedDiffersAcrossProblems(t *testing.T) {
	a := countdown.Problem{Target: 27, Numbers: []int{22, 26, 31, 53}}
	b := countdown.Problem{Target: 24, Numbers: []int{3, 8, 1, 5}}
	seedOf := func(p countdown.Problem) uint64 {
		log := &seedLog{}
		s := Search{Options: Options{Env: EnvOff, Temperature: 1, Seed: 1}}
		if _, err := cdSolve(context.Background(), log, s, p); err != nil {
			t.Fatal(err)
		}
		if len(log.seeds) != 1 || log.seeds[0] == 0 {
			t.Fatalf("seeds %v", log.seeds)
		}
		return log.seeds[0]
	}
	first := seedOf(a)
	if first == seedOf(b) {
		t.Error("two problems run with seed 1 sample with the same seed")
	}
	if again := seedOf(a); again != first {
		t.Errorf("one problem with one seed sampled with seeds %d, then %d", first, again)
	}
}

// stallingReplay replays a rollout, except that children which never reach
// the goal stall until their context ends (then return half of what they
// would have written, as a backend does for a cancelled call), or until
// patience runs out (then all of it).
type stallingReplay struct {
	replay
	patience time.Duration
	// onCancel, when set, is what a stalled call returns when its context
	// ends, instead of half its completion.
	onCancel func(ctx context.Context) (*backend.Completion, error)
}

func (r *stallingReplay) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	r.mu.Lock()
	c, ok := r.answers[req.Prompt]
	r.mu.Unlock()
	if !ok || !strings.HasPrefix(req.Prompt, "Moving to Node #0,") || strings.Contains(c, "Goal Reached") {
		return r.replay.Complete(ctx, req)
	}
	select {
	case <-ctx.Done():
		if r.onCancel != nil {
			return r.onCancel(ctx)
		}
		half := c[:len(c)/2]
		if req.OnChunk != nil {
			req.OnChunk(backend.Chunk{Text: half, Tokens: make([]backend.Token, len(half))})
		}
		return &backend.Completion{Text: half, Finish: backend.FinishCancelled,
			Usage: backend.Usage{PromptTokens: len(req.Prompt), CompletionTokens: len(half)}}, ctx.Err()
	case <-time.After(r.patience):
		return r.replay.Complete(ctx, req)
	}
}

// With JoinAtGoal, the first child to finish solved stops its siblings:
// they join as unsolved with what they wrote, the parent resumes at once,
// and the run spends fewer tokens. Without it, siblings run to their end.
func TestJoinAtGoalStopsSiblings(t *testing.T) {
	p, answers, unsolved := joinAtGoalRollout(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := &stallingReplay{replay: replay{answers: answers, lenient: true}, patience: 20 * time.Second}
	start := time.Now()
	res, err := cdSolve(ctx, r, Search{Effort: task.EffortDeep, Options: Options{Env: EnvOff, JoinAtGoal: true}}, p)
	if err != nil {
		t.Fatal(err)
	}
	if wall := time.Since(start); wall > 10*time.Second {
		t.Errorf("the run took %s: its siblings were not stopped", wall)
	}
	stopped := 0
	for _, k := range res.Tree.Children {
		if k.Finish == finishStopped {
			stopped++
			if k.Reason != errSiblingSolved.Error() || countdown.ChildSolved(p, k.Text) || k.Tokens == 0 {
				t.Errorf("stopped child %s: reason %q, %d tokens", k.Node, k.Reason, k.Tokens)
			}
		}
	}
	if stopped != unsolved {
		t.Errorf("%d children stopped, want the %d that fail", stopped, unsolved)
	}
	join := res.Tree.Text
	if strings.Count(join, "<Goal Reached in Sub Search") != 1 || strings.Count(join, "<No Solution in Sub Search") != unsolved {
		t.Errorf("the join does not hold one solved child and %d unsolved:\n%s", unsolved, join)
	}

	// Without it the siblings run to their end (here: the backend's
	// patience) and join with all they wrote.
	full := &stallingReplay{replay: replay{answers: answers, lenient: true}, patience: 10 * time.Millisecond}
	whole, err := cdSolve(ctx, full, Search{Effort: task.EffortDeep, Options: Options{Env: EnvOff}}, p)
	if err != nil {
		t.Fatal(err)
	}
	if res.TotalTokens >= whole.TotalTokens {
		t.Errorf("%d tokens stopping siblings, %d without", res.TotalTokens, whole.TotalTokens)
	}
	for _, k := range whole.Tree.Children {
		if k.Finish == finishStopped {
			t.Errorf("child %s stopped without JoinAtGoal", k.Node)
		}
	}
}

// joinAtGoalRollout is a problem whose generated parallel rollout has one
// spawn, with exactly one child that reaches the goal among others that
// fail, and that rollout's completions by prompt.
func joinAtGoalRollout(t *testing.T) (countdown.Problem, map[string]string, int) {
	t.Helper()
	for i, p := range problems(60) {
		rec, err := countdown.TraceConfig{Format: countdown.ModeParallel, ModeHeader: true}.Generate(p, 21, i)
		if err != nil {
			t.Fatal(err)
		}
		answers := map[string]string{}
		solved, unsolved := 0, 0
		for _, s := range rec.Sequences {
			answers[s.Prompt] = s.Completion
			if strings.HasPrefix(s.Prompt, "Moving to Node #0,") {
				if strings.Contains(s.Completion, "Goal Reached") {
					solved++
				} else {
					unsolved++
				}
			}
		}
		if solved == 1 && unsolved > 0 && len(rec.Sequences) == solved+unsolved+2 {
			return p, answers, unsolved
		}
	}
	t.Fatal("no rollout has one spawn with one solved child among failing ones")
	return countdown.Problem{}, nil, 0
}

// Stopped siblings whose backend returns nothing on cancellation join as
// unsolved all the same; children still waiting for a slot (MaxChildren)
// make no call at all; and an error that is not the stop is the run's.
func TestJoinAtGoalEdges(t *testing.T) {
	p, answers, unsolved := joinAtGoalRollout(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	empty := &stallingReplay{replay: replay{answers: answers, lenient: true}, patience: 20 * time.Second,
		onCancel: func(ctx context.Context) (*backend.Completion, error) { return nil, ctx.Err() }}
	res, err := cdSolve(ctx, empty, Search{Effort: task.EffortDeep, Options: Options{Env: EnvOff, JoinAtGoal: true}}, p)
	if err != nil {
		t.Fatal(err)
	}
	stopped := 0
	for _, k := range res.Tree.Children {
		if k.Finish == finishStopped {
			stopped++
			if k.Tokens != 0 || k.Calls != 0 {
				t.Errorf("child %s stopped with nothing returned: %d tokens in %d calls", k.Node, k.Tokens, k.Calls)
			}
		}
	}
	if stopped != unsolved {
		t.Errorf("%d children stopped, want %d", stopped, unsolved)
	}

	// One child at a time: whichever order they start in, once the solved
	// one finishes, those after it never call the backend.
	one := &stallingReplay{replay: replay{answers: answers, lenient: true}, patience: 10 * time.Millisecond}
	res, err = cdSolve(ctx, one, Search{Effort: task.EffortDeep, Options: Options{Env: EnvOff, JoinAtGoal: true, MaxChildren: 1}}, p)
	if err != nil {
		t.Fatal(err)
	}
	called := 0
	for _, k := range res.Tree.Children {
		called += k.Calls
		if k.Calls == 0 && k.Finish != finishStopped {
			t.Errorf("child %s made no call yet finished %q", k.Node, k.Finish)
		}
	}
	if one.calls != 2+called { // the root's two calls and the children's
		t.Errorf("the backend saw %d calls; the tree holds %d", one.calls, 2+called)
	}

	broken := &stallingReplay{replay: replay{answers: answers, lenient: true}, patience: 20 * time.Second,
		onCancel: func(context.Context) (*backend.Completion, error) { return nil, errors.New("server broke") }}
	// Children whose calls fail after the stop are failed threads, not a
	// failed run: the answer stands.
	res, err = cdSolve(ctx, broken, Search{Effort: task.EffortDeep, Options: Options{Env: EnvOff, JoinAtGoal: true}}, p)
	if err != nil || res.Answer == "" {
		t.Fatalf("a backend failing after the stop: %v, answer %q", err, res.Answer)
	}
	for _, k := range res.Tree.Children {
		if k.Finish == finishFailed && !strings.Contains(k.Reason, "server broke") {
			t.Errorf("child %s failed for %q", k.Node, k.Reason)
		}
	}
}

// failing fails for good every call whose prompt fail accepts, and replays
// the others.
type failing struct {
	*replay
	fail func(prompt string) bool
}

func (f failing) Complete(ctx context.Context, req *backend.Request) (*backend.Completion, error) {
	if f.fail(req.Prompt) {
		return nil, errors.New("HTTP 500: the server kept failing")
	}
	return f.replay.Complete(ctx, req)
}

// Faults cost threads, not trees: a child whose call fails for good ends
// as failed and joins as unsolved, and its parent resumes; only the
// root's failure fails the run.
func TestAFailedChildJoinsAsUnsolved(t *testing.T) {
	for i, p := range problems(20) {
		rec, err := countdown.TraceConfig{Format: countdown.ModeParallel, ModeHeader: true}.Generate(p, 21, i)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Children < 2 {
			continue
		}
		r := &replay{answers: map[string]string{}, lenient: true}
		for _, s := range rec.Sequences {
			r.answers[s.Prompt] = s.Completion
		}
		first := func(prompt string) bool { return strings.HasPrefix(prompt, "Moving to Node #0,0\n") }
		res, err := cdSolve(context.Background(), failing{r, first}, Search{Effort: task.EffortDeep, Options: Options{Env: EnvOff}}, p)
		if err != nil {
			t.Fatalf("problem %d: a child's failure failed the run: %v", i, err)
		}
		if res.Tree.Calls < 2 {
			t.Errorf("problem %d: the root did not resume after its children (%d calls)", i, res.Tree.Calls)
		}
		var failed *Thread
		for _, k := range res.Tree.Children {
			if k.Finish == finishFailed {
				failed = k
			}
		}
		if failed == nil || failed.Node != "0,0" || !strings.Contains(failed.Reason, "kept failing") {
			t.Errorf("problem %d: no failed child 0,0 in the tree: %+v", i, res.Tree.Children)
		}
		root := func(prompt string) bool { return !strings.HasPrefix(prompt, "Moving to Node") }
		if _, err := cdSolve(context.Background(), failing{r, root}, Search{Effort: task.EffortDeep, Options: Options{Env: EnvOff}}, p); err == nil {
			t.Errorf("problem %d: the root's failure did not fail the run", i)
		}
		return
	}
	t.Fatal("no rollout with two children")
}

// firstSeedFails fails for good the sample whose seed comes first, and
// answers the others with solved.
type firstSeedFails struct {
	solved string
	firstSeed
}

func (f *firstSeedFails) Complete(_ context.Context, req *backend.Request) (*backend.Completion, error) {
	if f.is(req.Seed) {
		return nil, errors.New("HTTP 503: the endpoint is down")
	}
	return &backend.Completion{Text: f.solved, Finish: backend.FinishStop, Usage: backend.Usage{CompletionTokens: len(f.solved)}}, nil
}

// A vote's sample that fails for good is one failed thread: the vote
// answers with the others.
func TestAVoteOutlivesAFailedSample(t *testing.T) {
	p := countdown.Problem{Target: 27, Numbers: []int{22, 26, 31, 53}}
	b := &firstSeedFails{solved: countdown.DirectTrace(p, mustSolve(t, p))}
	v := Vote{Inner: Search{Options: Options{Env: EnvOff, Temperature: 1, Seed: 5, JoinAtGoal: true}}, K: 3}
	r, err := v.Solve(context.Background(), b, countdown.Task{}, countdown.NewProblem(p), nil)
	if err != nil {
		t.Fatalf("one failed sample failed the vote: %v", err)
	}
	failed := 0
	for _, run := range r.Tree.Children {
		if run.Finish == finishFailed {
			failed++
		}
	}
	if r.Answer == "" || failed != 1 || len(r.Tree.Children) != 3 {
		t.Errorf("answer %q, %d failed samples of %d", r.Answer, failed, len(r.Tree.Children))
	}
}
