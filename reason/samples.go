package reason

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/braid-dev/braid/backend"
	"github.com/braid-dev/braid/task"
)

// SamplesNode names the thread a vote's (or a multi-sample strategy's)
// samples hang from.
const SamplesNode = "samples"

// Vote is self-consistency: K runs of an inner search, sampled, and the
// answer most of them give, answers grouped by the task's equivalence
// (equal numbers are one answer; on Countdown, every answer that reaches
// the target), not by their spelling. Ties go to the answer given first.
// Runs that are one call each go to the backend as one request for K
// samples, which a server prefills once; others (in an environment,
// spawning, or to be stopped at the first checked answer) run
// concurrently.
type Vote struct {
	Inner Search
	K     int
	// Settle stops the runs still going once none of them could change
	// the answer: the leading answer's runs outnumber the runner-up's and
	// the runs left together (DeepConf's adaptive sampling, by count).
	Settle bool
	// Weighted counts each run's vote by its confidence (its root's
	// lowest group confidence), and Top keeps only the most confident
	// Top percent of the runs before voting: DeepConf's offline modes.
	// Either measures the runs' confidence.
	Weighted bool
	Top      int
	// Warmup, when positive, is DeepConf's online mode: the first Warmup
	// runs go to the end, and the threshold the rest are pruned at is set
	// from them, so that Eta percent of the warm-up runs (90 when 0) would
	// have stayed above it.
	Warmup, Eta int
	// AtOnce, when positive, runs at most AtOnce runs at a time; with
	// Settle, a run the settled vote no longer needs is never started.
	// It spends fewer tokens for a longer wait: DeepConf's online mode
	// samples in batches for the same reason.
	AtOnce int
	label  string
}

// Name implements Strategy.
func (v Vote) Name() string {
	if v.label != "" {
		return v.label
	}
	if v.Inner.Name() == "serial" {
		return fmt.Sprintf("vote:k=%d", v.K)
	}
	return fmt.Sprintf("vote:k=%d:%s", v.K, v.Inner.Name())
}

// Solve implements Strategy.
func (v Vote) Solve(ctx context.Context, b backend.Backend, t task.Task, p task.Problem, observe Observer) (*Result, error) {
	observe = serialized(observe)
	r, answers, err := v.runs(ctx, b, t, p, observe)
	if err != nil {
		return nil, err
	}
	r.Answer = majority(t, p, answers)
	if v.Weighted || v.Top > 0 {
		// A backend that returned no log-probabilities measured nothing:
		// the plain vote stands.
		if a := v.confident(t, p, r.Tree.Children, answers); a != "" {
			r.Answer = a
		}
	}
	observe.emit(Event{Kind: AnswerReady, Text: r.Answer})
	return r, nil
}

// confident is the vote by confidence: of the runs (threads) that gave an
// answer and measured their confidence, the Top percent most confident,
// each counting 1 or, Weighted, its lowest group confidence; the answer
// with the most weight, the first given on a tie.
func (v Vote) confident(t task.Task, p task.Problem, runs []*Thread, answers []string) string {
	type vote struct {
		answer     string
		confidence float64
	}
	var votes []vote
	for i, th := range runs {
		if answers[i] != "" && th.Confidence != nil {
			votes = append(votes, vote{answers[i], th.Confidence.LowestGroup})
		}
	}
	if v.Top > 0 && len(votes) > 0 {
		// The most confident, in the order they were given (ties in
		// the vote go to the first).
		order := make([]int, len(votes))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(votes[b].confidence, votes[a].confidence) })
		order = order[:max(1, (len(votes)*v.Top+99)/100)]
		slices.Sort(order)
		kept := make([]vote, len(order))
		for j, i := range order {
			kept[j] = votes[i]
		}
		votes = kept
	}
	best, top := "", math.Inf(-1)
	for _, a := range votes {
		var w float64
		for _, b := range votes {
			if t.Equivalent(p, a.answer, b.answer) {
				w++
				if v.Weighted {
					w += b.confidence - 1
				}
			}
		}
		if w > top {
			best, top = a.answer, w
		}
	}
	return best
}

// runs draws the vote's K runs under one root thread, "samples", and
// returns the result without its answer, and each run's answer in order.
func (v Vote) runs(ctx context.Context, b backend.Backend, t task.Task, p task.Problem, observe Observer) (*Result, []string, error) {
	if v.K < 1 {
		return nil, nil, fmt.Errorf("reason: vote of %d", v.K)
	}
	if v.Inner.oneCall(t) && !v.Inner.JoinAtGoal && !v.Settle && v.Inner.Confidence.PruneBelow == 0 && v.Warmup == 0 && v.AtOnce == 0 {
		return samples(ctx, v.Inner, v.K, b, t, p, observe)
	}
	start := time.Now()
	runs := make([]*Result, v.K)
	errs := make([]error, v.K)
	goal := newGoalWatch(t) // the runs go together: the first goal of any
	// With JoinAtGoal the first run to give an answer the task's checker
	// accepts stops the others, as a spawn's first solved child stops its
	// siblings: a checked answer is the answer whatever the others say.
	checker, _ := t.(task.Checker)
	vctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	observe.emit(Event{Kind: ThreadStarted, Thread: SamplesNode})
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // guards given and left, for Settle
		left = v.K
	)
	given := make([]string, 0, v.K)
	warm := min(v.Warmup, v.K)
	threshold := v.Inner.Confidence.PruneBelow
	slots := make(chan struct{}, cmp.Or(v.AtOnce, v.K))
	for i := range v.K {
		// A slot for the run, unless the vote is settled (or the request
		// ended) meanwhile: then it never starts.
		select {
		case slots <- struct{}{}:
		case <-vctx.Done():
		}
		if vctx.Err() != nil {
			break
		}
		if i == warm && warm > 0 {
			// The warm-up runs are done: the rest are pruned below what
			// Eta percent of them stayed above.
			wg.Wait()
			if th, ok := warmThreshold(runs[:warm], v.eta()); ok {
				threshold = th
			}
		}
		inner := v.Inner
		inner.Seed = v.Inner.Seed*1000003 + uint64(i) + 1
		if i >= warm {
			inner.Confidence.PruneBelow = threshold
		}
		wg.Go(func() {
			defer func() { <-slots }()
			runs[i], errs[i] = inner.solve(vctx, b, t, p, observe.under(fmt.Sprintf("sample %d", i+1), SamplesNode), goal)
			if v.Inner.JoinAtGoal && checker != nil && errs[i] == nil && runs[i].Answer != "" && checker.Check(p, runs[i].Answer) == nil {
				stop(errSiblingSolved)
			}
			if v.Settle {
				mu.Lock()
				defer mu.Unlock()
				left--
				if errs[i] == nil {
					given = append(given, voted(runs[i]))
				}
				if settled(t, p, given, left) {
					stop(errVoteSettled)
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	// Runs a settled vote never started are not part of it.
	started := v.K
	for started > 0 && runs[started-1] == nil && errs[started-1] == nil {
		started--
	}
	runs, errs = runs[:started], errs[:started]
	// A sample that failed for good is a failed thread of the vote, which
	// goes on with the others; the vote fails when every sample did, or
	// when the request ended.
	failed := 0
	for i, err := range errs {
		if err == nil {
			continue
		}
		if failed++; failed == started {
			return nil, nil, err
		}
		runs[i] = &Result{Tree: &Thread{Node: "0", Finish: finishFailed, Reason: oneLine(err)}, Usage: Usage{Threads: 1}, TokensToGoal: -1}
	}
	root := &Thread{Node: SamplesNode, Started: start}
	r := &Result{Tree: root, TokensToGoal: int(goal.first.Load())}
	answers := make([]string, len(runs))
	for i, run := range runs {
		root.Children = append(root.Children, run.Tree)
		r.Threads += run.Threads
		r.TotalTokens += run.TotalTokens
		r.PromptTokens += run.PromptTokens
		r.CachedTokens += run.CachedTokens
		r.FormatErrors += run.FormatErrors
		r.Depth = max(r.Depth, run.Depth+1)
		answers[i] = voted(run)
		run.Tree.Answer = run.Answer
	}
	r.CriticalPathTokens = slotsCriticalPath(runs, cmp.Or(v.AtOnce, v.K))
	root.Wall = time.Since(start)
	root.WallMS = root.Wall.Milliseconds()
	r.LatencyMS = root.WallMS
	observe.emit(Event{Kind: ThreadFinished, Thread: SamplesNode, Tokens: r.TotalTokens})
	return r, answers, nil
}

// Best is best-of-N: a vote's K runs, and the answer of the one the
// scorer rates highest (the first of those that tie); when it rates them
// all alike, the vote's answer. The default scorer is the task's checker,
// which Parse requires: picking by a reference answer is an oracle (pass@k),
// not a strategy.
type Best struct {
	Vote
	Scorer Scorer // nil: the task's checker
}

// Name implements Strategy.
func (s Best) Name() string {
	if s.label != "" {
		return s.label
	}
	return "best" + strings.TrimPrefix(s.Vote.Name(), "vote")
}

// Solve implements Strategy.
func (s Best) Solve(ctx context.Context, b backend.Backend, t task.Task, p task.Problem, observe Observer) (*Result, error) {
	scorer := s.Scorer
	if scorer == nil {
		checker, ok := t.(task.Checker)
		if !ok {
			return nil, fmt.Errorf("reason: %s has no checker for best-of-N to pick by", t.Name())
		}
		scorer = verifier{checker}
	}
	observe = serialized(observe)
	r, answers, err := s.runs(ctx, b, t, p, observe)
	if err != nil {
		return nil, err
	}
	candidates := slices.Clone(r.Tree.Children)
	scores, judges, err := scorer.Score(ctx, b, t, p, candidates, answers, observe)
	if err != nil {
		return nil, err
	}
	for i, c := range candidates {
		if !math.IsNaN(scores[i]) {
			c.Score = &scores[i]
		}
	}
	// The judges read the samples, then ran together.
	var judged, wall int64
	for _, j := range judges {
		r.Tree.Children = append(r.Tree.Children, j)
		r.add(j)
		judged, wall = max(judged, int64(j.Tokens)), max(wall, j.WallMS)
	}
	r.CriticalPathTokens += int(judged)
	r.LatencyMS += wall
	r.Answer = majority(t, p, answers)
	if pick := best(scores, answers); pick >= 0 && !alike(scores) {
		r.Answer = answers[pick]
	}
	observe.emit(Event{Kind: AnswerReady, Text: r.Answer})
	return r, nil
}

// alike reports whether every score the scorer gave is the same: it told
// the candidates apart no better than chance.
func alike(scores []float64) bool {
	first := math.NaN()
	for _, s := range scores {
		switch {
		case math.IsNaN(s):
		case math.IsNaN(first):
			first = s
		case s != first:
			return false
		}
	}
	return true
}

// Aggregate draws K samples, then asks the model once more, with the
// question and all K solutions, for one final answer: the aggregator reads
// the others' reasoning, not just their answers (for chat models).
type Aggregate struct {
	Options
	K int
	// Effort is the reasoning effort the requests ask for ("" for the
	// model's default).
	Effort string
}

// Name implements Strategy.
func (s Aggregate) Name() string { return fmt.Sprintf("aggregate:k=%d", s.K) }

// Solve implements Strategy.
func (s Aggregate) Solve(ctx context.Context, b backend.Backend, t task.Task, p task.Problem, observe Observer) (*Result, error) {
	observe = serialized(observe)
	r, _, err := samples(ctx, Search{Options: s.Options, Effort: s.Effort}, s.K, b, t, p, observe)
	if err != nil {
		return nil, err
	}
	prompt := withSolutions(t.Prompt(p), "attempted", r.Tree.Children) +
		"\nSome of them may be wrong. Check them against each other, then write one correct solution."
	// The judgement is not sampled.
	judge, err := call(ctx, b, s.MaxTokens, s.Effort, observe, "aggregate", prompt)
	if err != nil {
		return nil, err
	}
	judge.Children = r.Tree.Children
	r.Tree = judge
	r.add(judge)
	r.CriticalPathTokens += judge.Tokens
	r.LatencyMS += judge.WallMS
	r.Answer = t.Extract(p, judge.Text)
	observe.emit(Event{Kind: AnswerReady, Text: r.Answer})
	return r, nil
}

// DeepThink branches into K samples, has the model judge which is best,
// then has it check and refine that one into the final solution (for chat
// models).
type DeepThink struct {
	Options
	K int
	// Effort is the reasoning effort the requests ask for ("" for the
	// model's default).
	Effort string
	// Rounds, when positive, makes it a search over branches (think):
	// each round scores the open branches with Scorer, keeps the best Keep
	// (2 when 0) and extends them.
	Rounds, Keep int
	Scorer       Scorer
	label        string
}

// Name implements Strategy.
func (s DeepThink) Name() string {
	if s.label != "" {
		return s.label
	}
	return fmt.Sprintf("deepthink:k=%d", s.K)
}

// Solve implements Strategy.
func (s DeepThink) Solve(ctx context.Context, b backend.Backend, t task.Task, p task.Problem, observe Observer) (*Result, error) {
	observe = serialized(observe)
	if s.Rounds > 0 {
		return s.think(ctx, b, t, p, observe)
	}
	r, _, err := samples(ctx, Search{Options: s.Options, Effort: s.Effort}, s.K, b, t, p, observe)
	if err != nil {
		return nil, err
	}
	judging := withSolutions(t.Prompt(p), "candidate", r.Tree.Children) +
		fmt.Sprintf("\nWhich solution is most likely correct? Reply with its number, 1 to %d, first.", s.K)
	judge, err := call(ctx, b, s.MaxTokens, s.Effort, observe, "judge", judging)
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
	final, err := call(ctx, b, s.MaxTokens, s.Effort, observe, "refine", refine)
	if err != nil {
		return nil, err
	}
	judge.Children = r.Tree.Children
	final.Children = []*Thread{judge}
	r.Tree = final
	r.add(judge)
	r.add(final)
	r.CriticalPathTokens += judge.Tokens + final.Tokens
	r.LatencyMS += judge.WallMS + final.WallMS
	r.Answer = t.Extract(p, final.Text)
	observe.emit(Event{Kind: AnswerReady, Text: r.Answer})
	return r, nil
}

var firstNumber = regexp.MustCompile(`\d+`)

// withSolutions is a prompt followed by the samples' solutions, numbered
// from 1, for a stage that reads them.
func withSolutions(prompt, kind string, samples []*Thread) string {
	var b strings.Builder
	b.WriteString(prompt)
	fmt.Fprintf(&b, "\n\nHere are %d %s solutions:\n", len(samples), kind)
	for i, th := range samples {
		fmt.Fprintf(&b, "\n--- Solution %d ---\n%s\n", i+1, strings.TrimSpace(th.Text))
	}
	return b.String()
}

// call is one greedy call of a multi-stage strategy, as a thread.
func call(ctx context.Context, b backend.Backend, maxTokens int, effort string, observe Observer, name, prompt string) (*Thread, error) {
	th, _, err := callThread(ctx, b, observe, name, "", &backend.Request{Prompt: prompt, MaxTokens: maxTokens, Effort: effort})
	return th, err
}

// callThread makes req, one call, a thread named name under parent,
// streaming to observe; it returns the completion too.
func callThread(ctx context.Context, b backend.Backend, observe Observer, name, parent string, req *backend.Request) (*Thread, *backend.Completion, error) {
	start := time.Now()
	observe.emit(Event{Kind: ThreadStarted, Thread: name, Parent: parent})
	req.OnChunk = observe.stream(name, parent)
	c, err := b.Complete(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	wall := time.Since(start)
	observe.emit(Event{Kind: ThreadFinished, Thread: name, Parent: parent, Tokens: c.Usage.CompletionTokens})
	return &Thread{Node: name, Text: c.Text, Calls: 1, Tokens: c.Usage.CompletionTokens, Started: start,
		PromptTokens: c.Usage.PromptTokens, CachedTokens: c.Usage.CachedPromptTokens, Wall: wall, WallMS: wall.Milliseconds(),
		Finish: string(c.Finish)}, c, nil
}

// sampleBase is the seed the samples of the problem with this prompt count
// from: sample i draws with base+i+1, as a backend that takes n seeds the
// samples of one request.
func sampleBase(seed uint64, prompt string) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s", seed, prompt)
	return h.Sum64() >> 1 // base+i+1 never wraps to 0, which means unseeded
}

// samples draws k one-call runs of s concurrently under one root thread
// and returns the result without its answer, and each sample's answer in
// order.
func samples(ctx context.Context, s Search, k int, b backend.Backend, t task.Task, p task.Problem, observe Observer) (*Result, []string, error) {
	if k < 1 {
		return nil, nil, fmt.Errorf("reason: %d samples", k)
	}
	start := time.Now()
	observe.emit(Event{Kind: ThreadStarted, Thread: SamplesNode})
	// The k samples go as one request where the backend takes n (the
	// server prefills the prompt once), else as k concurrent ones; sample
	// i samples with base+i+1 either way.
	prompt := s.prompt(t, p)
	seed := uint64(0)
	if s.Seed != 0 {
		seed = sampleBase(s.Seed, prompt) + 1
	}
	streams := make([]func(backend.Chunk), k)
	for i := range k {
		observe.emit(Event{Kind: ThreadStarted, Thread: strconv.Itoa(i), Parent: SamplesNode})
		streams[i] = observe.stream(strconv.Itoa(i), SamplesNode)
	}
	// A sample's wall time runs to its last chunk: samples drawn in one
	// request all return together.
	last := make([]time.Time, k)
	req := &backend.Request{Prompt: prompt, MaxTokens: s.MaxTokens, Temperature: s.Temperature, Seed: seed, Effort: s.requestEffort(t),
		OnChunk: func(c backend.Chunk) {
			last[c.Index] = time.Now() // each index from one goroutine at a time
			if streams[c.Index] != nil {
				streams[c.Index](c)
			}
		}}
	if s.Confidence.on() {
		req.TopLogprobs = s.Confidence.topK()
	}
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
		observe.emit(Event{Kind: ThreadFinished, Thread: name, Parent: SamplesNode, Tokens: c.Usage.CompletionTokens})
		threads[i] = &Thread{Node: name, Text: c.Text, Calls: 1, Tokens: c.Usage.CompletionTokens, Filled: c.Usage.FilledTokens, Started: start,
			PromptTokens: c.Usage.PromptTokens, CachedTokens: c.Usage.CachedPromptTokens, Wall: wall, WallMS: wall.Milliseconds(),
			Finish: string(c.Finish), Reason: c.EnvError}
		if s.Confidence.on() {
			threads[i].Confidence = s.Confidence.measure(c.Tokens)
		}
	}
	root := &Thread{Node: SamplesNode, Children: threads, Started: start}
	r := &Result{Tree: root, TokensToGoal: -1, Usage: Usage{Depth: 1}}
	answers := make([]string, k)
	for i, th := range threads {
		answers[i] = t.Extract(p, prompt+th.Text)
		th.Answer = answers[i]
		r.add(th)
		r.CriticalPathTokens = max(r.CriticalPathTokens, th.Tokens)
	}
	root.Wall = time.Since(start)
	root.WallMS = root.Wall.Milliseconds()
	r.LatencyMS = root.WallMS
	observe.emit(Event{Kind: ThreadFinished, Thread: SamplesNode, Tokens: r.TotalTokens})
	return r, answers, nil
}

func (v Vote) eta() int {
	if v.Eta > 0 {
		return v.Eta
	}
	return 90
}

// warmThreshold is the confidence that eta percent of the warm-up runs'
// lowest group confidences reach: DeepConf's online threshold.
func warmThreshold(runs []*Result, eta int) (float64, bool) {
	var lows []float64
	for _, r := range runs {
		if r != nil && r.Tree != nil && r.Tree.Confidence != nil {
			lows = append(lows, r.Tree.Confidence.LowestGroup)
		}
	}
	if len(lows) == 0 {
		return 0, false
	}
	slices.Sort(lows)
	// The highest value that eta percent of the runs are at or above.
	return lows[(len(lows)*(100-eta))/100], true
}

// voted is a run's answer as a vote counts it: none from a run whose root
// was stopped for its confidence (DeepConf drops such traces).
func voted(run *Result) string {
	if c := run.Tree.Confidence; c != nil && c.Pruned {
		return ""
	}
	return run.Answer
}

// slotsCriticalPath is the critical path of runs that took at most slots
// at a time in their order, each starting when a slot came free: the end
// of the last, in tokens, each run taking its own critical path. With a
// slot for every run it is the longest run's.
func slotsCriticalPath(runs []*Result, slots int) int {
	free := make([]int, min(slots, len(runs))) // when each slot comes free
	end := 0
	for _, run := range runs {
		s := 0
		for j := range free {
			if free[j] < free[s] {
				s = j
			}
		}
		free[s] += run.CriticalPathTokens
		end = max(end, free[s])
	}
	return end
}

// settled reports whether no run still going could change the vote: the
// leading answer's runs outnumber the runner-up's and the left together.
func settled(t task.Task, p task.Problem, answers []string, left int) bool {
	counts := map[int]int{} // by the first answer of each class
	top, second := 0, 0
	for _, a := range answers {
		if a == "" {
			continue
		}
		counts[slices.IndexFunc(answers, func(b string) bool { return b != "" && t.Equivalent(p, a, b) })]++
	}
	for _, n := range counts {
		switch {
		case n > top:
			top, second = n, top
		case n > second:
			second = n
		}
	}
	return top > second+left
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
